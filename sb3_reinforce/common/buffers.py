"""
Rollout storage for REINFORCE: preallocated, time-major, growable for whole-episode batches. The buffer stores what the
envs emitted and which episodes belong to the batch; :func:`sb3_reinforce.common.batch.make_batch` turns its
:class:`Rollout` into the batch of the update.
"""

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.utils import get_device

from sb3_reinforce.common import returns as ret
from sb3_reinforce.common.utils import Observations, batch_slice


def _finite_rows(obs: np.ndarray) -> np.ndarray:
    """Whether each (row, env) observation of a time-major ``(rows, n_envs, ...)`` array is finite."""
    return np.isfinite(obs).all(axis=tuple(range(2, obs.ndim)))


class Truncation(NamedTuple):
    """An episode cut by a time limit at ``row`` of env ``env``, and the observation it was cut at."""

    row: int
    env: int
    terminal_observation: Any


class Rollout(NamedTuple):
    """One rollout as stored, time-major ``(n_rows, n_envs, ...)``: what the batch is computed from."""

    observations: Observations  # s_t
    actions: np.ndarray  # a_t as sampled, (n_rows, n_envs, action_dim)
    rewards: np.ndarray  # r_t, float64
    dones: np.ndarray  # the episode ended at step t (terminated or truncated)
    timesteps: np.ndarray  # k_t, the step's index in its episode
    start_prefix: np.ndarray  # (n_envs,) sum_{j<k_0} gamma^j r_j of the episode running at row 0
    in_batch: np.ndarray  # whether the step belongs to an episode of a whole-episode batch (all True otherwise)
    whole_episodes: bool  # whether the batch is the episodes marked in_batch, each complete
    truncations: list[Truncation]
    action_masks: np.ndarray | None  # allowed actions (maskable policies), (n_rows, n_envs, mask size)

    def observations_at(self, rows: np.ndarray, envs: np.ndarray) -> Observations:
        """Observations of the given (row, env) pairs, as one flat batch."""
        return batch_slice(self.observations, (rows, envs))  # type: ignore[arg-type]

    def flat_observations(self) -> Observations:
        """Every stored observation, time-major ``(n_rows * n_envs, ...)``, as a view."""
        if isinstance(self.observations, dict):
            return {key: value.reshape(-1, *value.shape[2:]) for key, value in self.observations.items()}
        return self.observations.reshape(-1, *self.observations.shape[2:])


class ReinforceRolloutBuffer(BaseBuffer):
    """
    Time-major storage ``(n_rows, n_envs, ...)`` of one rollout, allocated once and reused.

    With ``n_episodes=None`` a rollout is ``buffer_size`` steps per env (SB3's fixed-size rollouts; an episode cut at
    the end continues in the next rollout, whose ``k_t`` and discounted prefix the buffer carries over). With
    ``n_episodes=N`` (whole-episode batches) a rollout runs until the first ``N`` episodes to start, from fresh envs,
    have ended; whether an episode is part of the batch is decided when it starts (ties broken by env index), never
    from its length or return, so the batch is an unbiased sample of episodes. The number of rows then doubles when
    full; it never shrinks, so memory stays bounded by the longest rollout. :attr:`full` says the rollout is complete.

    Observations keep the observation space's dtype (images stay ``uint8``).

    :param buffer_size: number of rows (steps per env) per rollout, or the initial number with ``n_episodes``
    :param observation_space: observation space (Box, Discrete, MultiDiscrete, MultiBinary or Dict)
    :param action_space: action space
    :param device: device of the batch's tensors
    :param gamma: discount factor, for the discounted rewards an episode carries over into the next rollout
    :param n_envs: number of parallel envs
    :param n_episodes: complete episodes per rollout, or None for rollouts of ``buffer_size`` steps per env
    """

    observations: Observations

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gamma: float = 0.99,
        n_envs: int = 1,
        n_episodes: int | None = None,
    ):
        super().__init__(buffer_size, observation_space, action_space, device=get_device(device), n_envs=n_envs)
        self.gamma = gamma
        self.n_episodes = n_episodes
        self.action_dim = get_action_dim(action_space)
        self.obs_shape = get_obs_shape(observation_space)  # type: ignore[assignment]
        # Floating-point observation entries, checked for NaN/inf after each rollout (check_finite)
        subspaces = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {"": observation_space}
        self.float_obs_keys = [
            key
            for key, space in subspaces.items()
            if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating)  # type: ignore[arg-type]
        ]
        # The batch computed from the last rollout (set by the algorithm: REINFORCE.collect_rollouts)
        self.batch: Any = None
        self._allocate(buffer_size)
        self.reset(envs_reset=True)

    @property
    def whole_episodes(self) -> bool:
        """Whether a rollout is ``n_episodes`` complete episodes (else ``buffer_size`` steps per env)."""
        return self.n_episodes is not None

    def _obs_array(self, rows: int, shape: tuple[int, ...], space: spaces.Space) -> np.ndarray:
        dtype = space.dtype if isinstance(space, spaces.Box) else np.float32
        return np.zeros((rows, self.n_envs, *shape), dtype=dtype)

    def _allocate(self, rows: int) -> None:
        self.buffer_size = rows
        if isinstance(self.observation_space, spaces.Dict):
            obs_shape: dict[str, tuple[int, ...]] = self.obs_shape  # type: ignore[assignment]
            self.observations = {
                key: self._obs_array(rows, shape, self.observation_space.spaces[key]) for key, shape in obs_shape.items()
            }
        else:
            self.observations = self._obs_array(rows, self.obs_shape, self.observation_space)  # type: ignore[arg-type]
        self.actions = np.zeros((rows, self.n_envs, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros((rows, self.n_envs), dtype=np.float64)
        self.dones = np.zeros((rows, self.n_envs), dtype=bool)
        self.in_batch = np.ones((rows, self.n_envs), dtype=bool)
        # Allowed actions of each step, allocated at the first step that gives them (maskable policies)
        self.action_masks: np.ndarray | None = None

    def _grow(self) -> None:
        old = (self.observations, self.actions, self.rewards, self.dones, self.in_batch)
        old_masks = self.action_masks
        n = self.buffer_size
        self._allocate(2 * n)
        if old_masks is not None:
            self.action_masks = np.zeros((2 * n, *old_masks.shape[1:]), dtype=bool)
            self.action_masks[:n] = old_masks
        if isinstance(old[0], dict):
            assert isinstance(self.observations, dict)
            for key, value in old[0].items():
                self.observations[key][:n] = value
        else:
            self.observations[:n] = old[0]  # type: ignore[index]
        self.actions[:n], self.rewards[:n], self.dones[:n], self.in_batch[:n] = old[1:]

    def reset(self, envs_reset: bool = False) -> None:
        """
        Start a new rollout; the arrays are kept and overwritten. The episodes running at the end of the previous
        rollout continue into this one (their step index ``k`` and discounted prefix carry over), unless the envs
        were reset (``envs_reset``).
        """
        if envs_reset:
            self.start_steps = np.zeros(self.n_envs, dtype=np.int64)
            self.start_prefix = np.zeros(self.n_envs, dtype=np.float64)
        elif self.pos > 0:
            rollout = self.rollout()
            self.start_steps = ret.next_start_steps(rollout.timesteps, rollout.dones)
            self.start_prefix = ret.discounted_prefix_after(
                rollout.rewards, rollout.dones, rollout.timesteps, rollout.start_prefix, self.gamma
            )
        super().reset()
        # Episodes cut by a time limit, for the value bootstrap
        self.truncations: list[Truncation] = []
        if self.whole_episodes:
            # Whether each env's current episode is part of the batch, and how many episodes joined the batch so far
            self._running_in_batch = np.arange(self.n_envs) < self.n_episodes  # type: ignore[operator]
            self._episodes_joined = int(self._running_in_batch.sum())
        self.batch = None

    def add(
        self,
        obs: Observations,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict],
        action_masks: np.ndarray | None = None,
    ) -> None:
        """
        Write one step of every env: observation ``s_t``, action ``a_t`` (as sampled, before clipping), reward ``r_t``
        and whether the episode ended; ``infos`` give the time-limit truncations (with SB3's terminal observation).
        ``action_masks`` (``(n_envs, mask size)``, maskable policies) are the actions that were allowed.
        """
        if self.pos == self.buffer_size:
            if not self.whole_episodes:
                raise RuntimeError(f"The rollout buffer is full ({self.buffer_size} rows).")
            self._grow()
        if isinstance(obs, dict):
            assert isinstance(self.observations, dict)
            for key, value in obs.items():
                self.observations[key][self.pos] = value.reshape(self.observations[key].shape[1:])
        else:
            assert isinstance(self.observations, np.ndarray)
            self.observations[self.pos] = obs.reshape(self.observations.shape[1:])
        self.actions[self.pos] = action.reshape(self.n_envs, self.action_dim)
        if action_masks is not None:
            masks = np.asarray(action_masks, dtype=bool).reshape(self.n_envs, -1)
            if self.action_masks is None:
                self.action_masks = np.zeros((self.buffer_size, *masks.shape), dtype=bool)
            self.action_masks[self.pos] = masks
        self.rewards[self.pos] = reward
        self.dones[self.pos] = done
        if self.whole_episodes:
            self.in_batch[self.pos] = self._running_in_batch
        if done.any():
            ended = np.flatnonzero(done)
            for idx in ended:
                if infos[idx].get("TimeLimit.truncated", False) and infos[idx].get("terminal_observation") is not None:
                    self.truncations.append(Truncation(self.pos, int(idx), infos[idx]["terminal_observation"]))
            if self.whole_episodes:
                # The episodes starting now join the batch while it has fewer than n_episodes, by env index
                self._running_in_batch[ended] = False
                join = ended[: max(self.n_episodes - self._episodes_joined, 0)]  # type: ignore[operator]
                self._running_in_batch[join] = True
                self._episodes_joined += len(join)
        self.pos += 1
        self.full = self.pos == self.buffer_size if not self.whole_episodes else not self._running_in_batch.any()

    @property
    def episodes_running(self) -> int:
        """With ``n_episodes``: how many of the batch's episodes have not ended yet."""
        return int(self._running_in_batch.sum()) if self.whole_episodes else 0

    @property
    def episodes_finished(self) -> int:
        """With ``n_episodes``: how many of the batch's episodes have ended."""
        return self._episodes_joined - self.episodes_running if self.whole_episodes else 0

    def rollout(self) -> Rollout:
        """The rollout stored so far (views of the arrays, time-major)."""
        n = self.pos
        dones = self.dones[:n]
        return Rollout(
            observations=batch_slice(self.observations, slice(0, n)),
            actions=self.actions[:n],
            rewards=self.rewards[:n],
            dones=dones,
            timesteps=ret.episode_timesteps(dones, self.start_steps),
            start_prefix=self.start_prefix,
            in_batch=self.in_batch[:n],
            whole_episodes=self.whole_episodes,
            truncations=self.truncations,
            action_masks=None if self.action_masks is None else self.action_masks[:n],
        )

    def check_finite(self, last_obs: Observations) -> None:
        """
        Raise ValueError at the first NaN or infinite reward or observation of the rollout so far, naming the env and
        the step: one vectorised pass over the stored rollout and the last observation, instead of a check per step.
        """
        n = self.pos
        problems: list[tuple[int, str]] = []  # (step, message)
        bad = ~np.isfinite(self.rewards[:n])
        if bad.any():
            row, env = (int(i) for i in np.argwhere(bad)[0])
            problems.append(
                (row, f"Env {env} returned a non-finite reward ({self.rewards[row, env]}) at step {row} of the rollout.")
            )
        for key in self.float_obs_keys:
            stored = self.observations[key] if isinstance(self.observations, dict) else self.observations
            last = last_obs[key] if isinstance(last_obs, dict) else last_obs
            # Row r holds the observation returned by step r - 1 (r = 0: by a reset, or checked with the last rollout);
            # the one returned by the last step is last_obs.
            rows_finite = np.concatenate([_finite_rows(stored[:n]), _finite_rows(np.asarray(last)[None])])
            if not rows_finite.all():
                row, env = (int(i) for i in np.argwhere(~rows_finite)[0])
                value = stored[row, env] if row < n else last[env]
                name = f"observation '{key}'" if key else "observation"
                when = f"at step {row - 1}" if row > 0 else "on reset, before step 0"
                problems.append((row - 1, f"Env {env} returned a non-finite {name} {when} of the rollout: {value}"))
        if problems:
            raise ValueError(min(problems, key=lambda problem: problem[0])[1])

    # BaseBuffer's abstract sampling API: REINFORCE uses the whole batch at once (``batch``).
    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError("Use the buffer's batch: REINFORCE takes one gradient step on the whole batch.")
