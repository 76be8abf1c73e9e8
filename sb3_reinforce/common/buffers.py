"""
Rollout storage for REINFORCE: preallocated, time-major, growable for whole-episode batches. The buffer owns the
batch: :meth:`ReinforceRolloutBuffer.compute_returns_and_advantage` computes ``Psi_t``, ``b_t``, the value targets
and the steps that enter the loss, from the equations of :mod:`sb3_reinforce.common.returns` and the baseline.
"""

from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.utils import get_device, obs_as_tensor

from sb3_reinforce.common import returns as ret

if TYPE_CHECKING:
    from sb3_reinforce.common.baselines import Baseline

Observations = np.ndarray | dict[str, np.ndarray]
Batch = TypeVar("Batch", bound=np.ndarray | th.Tensor | dict[str, np.ndarray] | dict[str, th.Tensor])


def batch_length(obs: Batch) -> int:
    """Number of samples in a batch of observations (an array or tensor, or a dict of them)."""
    first: Any = next(iter(obs.values())) if isinstance(obs, dict) else obs
    return len(first)


def batch_slice(obs: Batch, part: slice) -> Batch:
    """A slice of a batch of observations (an array or tensor, or a dict of them)."""
    if isinstance(obs, dict):
        return {key: value[part] for key, value in obs.items()}  # type: ignore[return-value]
    return obs[part]  # type: ignore[return-value]


# Size of the chunks in which stored observations go through the value network after a rollout.
VALUE_CHUNK = 8192


def predict_values(policy: ActorCriticPolicy, obs: Observations) -> np.ndarray:
    """``V(s)`` of a flat batch of observations (arrays), in chunks, as float64."""
    n = batch_length(obs)
    values = np.empty(n, dtype=np.float64)
    with th.no_grad():
        for start in range(0, n, VALUE_CHUNK):
            chunk = obs_as_tensor(batch_slice(obs, slice(start, start + VALUE_CHUNK)), policy.device)  # type: ignore[arg-type]
            values[start : start + VALUE_CHUNK] = policy.predict_values(chunk).flatten().cpu().numpy()
    return values


def _stack(observations: list[Any]) -> Observations:
    """Stack single-env observations (arrays or dicts of arrays) into a batch."""
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


def _finite_rows(obs: np.ndarray) -> np.ndarray:
    """Whether each (row, env) observation of a time-major ``(rows, n_envs, ...)`` array is finite."""
    return np.isfinite(obs).all(axis=tuple(range(2, obs.ndim)))


def masking(action_masks: Any) -> dict[str, Any]:
    """``{"action_masks": ...}`` for a maskable policy's ``get_distribution``/``evaluate_actions``, ``{}`` for None."""
    return {} if action_masks is None else {"action_masks": action_masks}


class ReinforceBatch(NamedTuple):
    """The steps of one rollout that enter the loss (``valid``), flattened in ``np.nonzero`` order, on the device."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor  # as log_prob takes them (long and flat for Discrete)
    psi: th.Tensor  # Psi_t (float64)
    advantages: th.Tensor  # Psi_t - b_t
    score_weights: th.Tensor | None  # gamma^k_t with discount_score, else None
    value_targets: th.Tensor | None  # targets of V(s) with the value baseline, else None
    timesteps: th.Tensor  # k_t
    episode_ids: th.Tensor  # in [0, n_episodes): parts of episodes inside the rollout count as episodes
    n_episodes: int
    action_masks: th.Tensor | None = None  # which actions were allowed (maskable policies), else None

    @property
    def masking(self) -> dict[str, th.Tensor]:
        """The batch's masks as keyword arguments of the policy (:func:`masking`)."""
        return masking(self.action_masks)

    def policy_weights(self, normalize_advantage: bool) -> th.Tensor:
        """
        The weight of ``grad log pi(a_t|s_t)`` in the loss: ``w_t (Psi_t - b_t)``, with ``Psi_t - b_t`` normalised over
        the batch (zero mean, unit std) first if asked, and ``w_t = gamma^k_t`` with ``discount_score``, else 1.
        """
        advantages = self.advantages
        if normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages if self.score_weights is None else advantages * self.score_weights


class ReinforceRolloutBuffer(BaseBuffer):
    """
    Time-major storage ``(n_rows, n_envs, ...)`` of one rollout, allocated once and reused, and the batch computed
    from it.

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
    :param device: device of the tensors returned by :meth:`get_batch`
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
        n_envs: int = 1,
        n_episodes: int | None = None,
    ):
        super().__init__(buffer_size, observation_space, action_space, device=get_device(device), n_envs=n_envs)
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
        self._allocate(buffer_size)
        self.reset_episodes()
        self.reset()

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
        self.included = np.ones((rows, self.n_envs), dtype=bool)
        # Allowed actions of each step, allocated at the first step that gives them (maskable policies)
        self.action_masks: np.ndarray | None = None

    def _grow(self) -> None:
        old = (self.observations, self.actions, self.rewards, self.dones, self.included)
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
        self.actions[:n], self.rewards[:n], self.dones[:n], self.included[:n] = old[1:]

    def reset_episodes(self) -> None:
        """Forget the episodes in progress (the envs were reset): their step index ``k`` and discounted prefix."""
        self.episode_start_steps = np.zeros(self.n_envs, dtype=np.int64)
        self.episode_start_prefix = np.zeros(self.n_envs, dtype=np.float64)

    def reset(self) -> None:
        """Start a new rollout; the arrays are kept and overwritten."""
        super().reset()
        # (row, env index, terminal observation) of episodes cut by a time limit, for the value bootstrap
        self.truncations: list[tuple[int, int, Any]] = []
        if self.n_episodes is not None:
            # Whether each env's current episode is part of the batch, and how many episodes were taken so far
            self._in_batch = np.arange(self.n_envs) < self.n_episodes
            self._taken = int(self._in_batch.sum())
        # Computed by compute_returns_and_advantage, time-major (n_rows, n_envs):
        self.valid = np.zeros((0, self.n_envs), dtype=bool)  # the steps that enter the loss
        self.timesteps = np.zeros((0, self.n_envs), dtype=np.int64)  # k_t
        self.values: np.ndarray | None = None  # V(s_t) with the value baseline
        self.psi = np.zeros((0, self.n_envs))  # Psi_t
        self.estimator: ret.ReturnEstimator | None = None  # the estimator psi was computed with
        self.baseline_values = np.zeros((0, self.n_envs))  # b_t (0 where not used)
        self.advantages = np.zeros((0, self.n_envs))  # Psi_t - b_t
        self.value_targets: np.ndarray | None = None
        self.score_weights: np.ndarray | None = None  # gamma^k_t with discount_score
        self._batch: ReinforceBatch | None = None

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
            if self.n_episodes is None:
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
        if self.n_episodes is not None:
            self.included[self.pos] = self._in_batch
        if done.any():
            ended = np.flatnonzero(done)
            for idx in ended:
                if infos[idx].get("TimeLimit.truncated", False) and infos[idx].get("terminal_observation") is not None:
                    self.truncations.append((self.pos, int(idx), infos[idx]["terminal_observation"]))
            if self.n_episodes is not None:
                # The episodes starting now join the batch while it has fewer than n_episodes, by env index
                self._in_batch[ended] = False
                take = ended[: max(self.n_episodes - self._taken, 0)]
                self._in_batch[take] = True
                self._taken += len(take)
        self.pos += 1
        self.full = self.pos == self.buffer_size if self.n_episodes is None else not self._in_batch.any()

    @property
    def episodes_running(self) -> int:
        """With ``n_episodes``: how many of the batch's episodes have not ended yet."""
        return int(self._in_batch.sum()) if self.n_episodes is not None else 0

    @property
    def episodes_finished(self) -> int:
        """With ``n_episodes``: how many of the batch's episodes have ended."""
        return self._taken - self.episodes_running if self.n_episodes is not None else 0

    def observations_at(self, rows: np.ndarray, envs: np.ndarray) -> Observations:
        """Observations of the given (row, env) pairs, as one flat batch."""
        if isinstance(self.observations, dict):
            return {key: value[rows, envs] for key, value in self.observations.items()}
        return self.observations[rows, envs]

    def stored_observations(self) -> Observations:
        """All observations of the rollout, flattened time-major to ``(n_rows * n_envs, ...)``."""
        if isinstance(self.observations, dict):
            return {key: value[: self.pos].reshape(-1, *value.shape[2:]) for key, value in self.observations.items()}
        return self.observations[: self.pos].reshape(-1, *self.observations.shape[2:])

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

    def compute_returns_and_advantage(
        self,
        estimator: ret.ReturnEstimator,
        baseline: "Baseline",
        policy: ActorCriticPolicy,
        last_obs: Observations,
        discount_score: bool = False,
    ) -> None:
        """
        After a rollout: ``Psi_t`` (``psi``), the baseline ``b_t`` as fitted on earlier batches (``baseline_values``),
        ``Psi_t - b_t`` (``advantages``), the value targets, ``gamma^k_t`` (``score_weights``, with ``discount_score``)
        and the steps that enter the loss (``valid``). The policy and the baseline are not changed.

        With the value baseline, ``V(s_t)`` is evaluated here with the policy that generated the rollout; an episode
        cut off at the end of a ``"steps"`` rollout is bootstrapped with ``V(s_T)`` of ``last_obs``, and one cut by a
        time limit with ``V(terminal observation)``. Without a value function there is nothing to bootstrap from:
        a time-limit truncation ends the return, and the steps of an episode still running at the end of the rollout
        are left out of the loss (their reward-to-go would be silently truncated). In whole-episode batches only the
        batch's episodes are used.

        :param estimator: the return estimator ``Psi_t``
        :param baseline: the baseline ``b_t`` (:meth:`~sb3_reinforce.common.baselines.Baseline.predict` is called)
        :param policy: the policy that generated the rollout (for ``V(s)`` with the value baseline)
        :param last_obs: the observation after the last row
        :param discount_score: whether each step's term is weighted by ``gamma^k_t`` (Thomas, 2014)
        """
        n, gamma = self.pos, estimator.gamma
        rewards, dones = self.rewards[:n], self.dones[:n]
        values = last_values = None
        if baseline.uses_value_function or estimator.needs_value_function:
            if self.n_episodes is not None:
                # Only the batch's episodes: each is complete, so no V of another step enters their returns
                values = np.zeros((n, self.n_envs))
                rows, envs = np.nonzero(self.included[:n])
                values[rows, envs] = predict_values(policy, self.observations_at(rows, envs))
            else:
                values = predict_values(policy, self.stored_observations()).reshape(n, self.n_envs)
                last_values = predict_values(policy, last_obs)
            if self.truncations:
                cut_rows, cut_envs, terminal = zip(*self.truncations, strict=True)
                rewards = rewards.copy()
                rewards[list(cut_rows), list(cut_envs)] += gamma * predict_values(policy, _stack(list(terminal)))

        timesteps = ret.episode_timesteps(dones, self.episode_start_steps)
        returns_to_go = ret.reward_to_go(rewards, dones, last_values, gamma)
        arrays = ret.RolloutArrays(rewards, dones, timesteps, returns_to_go, values, last_values, self.episode_start_prefix)
        self.estimator = estimator
        self.psi = estimator.estimate(arrays)
        self.value_targets = estimator.value_targets(arrays, self.psi) if values is not None else None
        if self.n_episodes is not None:
            self.valid = self.included[:n].copy()
        elif values is not None:
            self.valid = np.ones_like(dones)
        else:
            self.valid = ret.complete_episode_mask(dones)
        self.timesteps, self.values = timesteps, values
        self.baseline_values = np.zeros_like(self.psi)
        self.baseline_values[self.valid] = baseline.predict(self)
        self.advantages = self.psi - self.baseline_values
        self.score_weights = ret.score_discount(timesteps, gamma) if discount_score else None

        # Carry the episodes running after the last row over to the next rollout
        total = ret.total_return(returns_to_go, timesteps, self.episode_start_prefix, gamma)
        self.episode_start_prefix = ret.discounted_prefix_after(total, timesteps, dones, last_values, gamma)
        self.episode_start_steps = ret.next_start_steps(timesteps, dones)
        self._batch = None

    def episodes(self, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """
        The steps marked in ``valid`` and the episode of each: ``(rows, envs, ids, n_episodes)``, with ``ids`` in
        ``[0, n_episodes)`` (the parts of episodes inside the rollout count as episodes).
        """
        rows, envs = np.nonzero(valid)
        unique, ids = np.unique(ret.episode_ids(self.dones[: self.pos])[rows, envs], return_inverse=True)
        return rows, envs, ids, len(unique)

    def get_batch(self) -> ReinforceBatch:
        """The steps marked ``valid`` by :meth:`compute_returns_and_advantage`, as tensors on the buffer's device."""
        if self._batch is None:
            rows, envs, ids, n_episodes = self.episodes(self.valid)

            def flat(array: np.ndarray | None) -> th.Tensor | None:
                return None if array is None else self.to_torch(array[rows, envs].astype(np.float32))

            actions = self.to_torch(self.actions[rows, envs])
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.long().flatten()
            # Fancy indexing already copies, so the tensors can share the arrays' memory.
            self._batch = ReinforceBatch(
                observations=obs_as_tensor(self.observations_at(rows, envs), self.device),  # type: ignore[arg-type]
                actions=actions,
                psi=self.to_torch(self.psi[rows, envs]),  # float64, for the baselines' fits
                advantages=flat(self.advantages),  # type: ignore[arg-type]
                score_weights=flat(self.score_weights),
                value_targets=flat(self.value_targets),
                timesteps=th.as_tensor(self.timesteps[rows, envs], device=self.device),
                episode_ids=th.as_tensor(ids, device=self.device),
                n_episodes=n_episodes,
                action_masks=None
                if self.action_masks is None
                else th.as_tensor(self.action_masks[rows, envs], device=self.device),
            )
        return self._batch

    # BaseBuffer's abstract sampling API: REINFORCE uses the whole batch at once (get_batch).
    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError("Use get_batch(): REINFORCE takes one gradient step on the whole batch.")
