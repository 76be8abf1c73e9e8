"""Rollout storage for REINFORCE: preallocated, time-major, growable for whole-episode batches."""

from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.utils import get_device, obs_as_tensor

from sb3_reinforce.common.returns import episode_ids

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


class ReinforceBatch(NamedTuple):
    """The steps of one rollout that enter the loss, flattened and on the model's device."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    advantages: th.Tensor  # Psi_t - b_t
    score_weights: th.Tensor | None  # gamma^k_t with discount_score, else None
    value_targets: th.Tensor | None  # targets of V(s) with baseline="value", else None


class ReinforceRolloutBuffer(BaseBuffer):
    """
    Time-major storage ``(n_rows, n_envs, ...)`` of one rollout, allocated once and reused.

    Holds the raw transitions written in the rollout loop (observations, actions, rewards, dones, and which
    steps belong to an episode that is used) and, after the rollout, the arrays the algorithm derives from them
    (``advantages``, ``value_targets``, ``score_weights``, ``valid``). With ``growable=True`` (whole-episode
    batches) the number of rows doubles when full; it never shrinks, so memory stays bounded by the longest
    rollout.

    Observations keep the observation space's dtype (images stay ``uint8``).

    :param buffer_size: initial number of rows (steps per env)
    :param observation_space: observation space (Box, Discrete, MultiDiscrete, MultiBinary or Dict)
    :param action_space: action space
    :param device: device of the tensors returned by :meth:`get_batch`
    :param n_envs: number of parallel envs
    :param growable: whether rows are added beyond ``buffer_size``
    """

    observations: Observations

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        growable: bool = False,
    ):
        super().__init__(buffer_size, observation_space, action_space, device=get_device(device), n_envs=n_envs)
        self.growable = growable
        self.action_dim = get_action_dim(action_space)
        self.obs_shape = get_obs_shape(observation_space)  # type: ignore[assignment]
        self._allocate(buffer_size)
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

    def _grow(self) -> None:
        old = (self.observations, self.actions, self.rewards, self.dones, self.included)
        n = self.buffer_size
        self._allocate(2 * n)
        if isinstance(old[0], dict):
            assert isinstance(self.observations, dict)
            for key, value in old[0].items():
                self.observations[key][:n] = value
        else:
            self.observations[:n] = old[0]  # type: ignore[index]
        self.actions[:n], self.rewards[:n], self.dones[:n], self.included[:n] = old[1:]

    def reset(self) -> None:
        """Start a new rollout; the arrays are kept and overwritten."""
        super().reset()
        # (row, env index, terminal observation) of episodes cut by a time limit, for the value bootstrap
        self.truncations: list[tuple[int, int, Any]] = []
        self.values: np.ndarray | None = None
        self.advantages = np.zeros(0)
        self.value_targets: np.ndarray | None = None
        self.score_weights: np.ndarray | None = None
        self.valid = np.zeros((0, self.n_envs), dtype=bool)

    def add(
        self,
        obs: Observations,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        included: np.ndarray | None = None,
    ) -> None:
        """
        Write one row.

        :param obs: observation ``s_t`` of each env
        :param action: action ``a_t`` (as sampled, before clipping)
        :param reward: reward ``r_t``
        :param done: the episode ended at this step
        :param included: whether each env's current episode is part of the batch (whole-episode mode)
        """
        if self.pos == self.buffer_size:
            if not self.growable:
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
        self.rewards[self.pos] = reward
        self.dones[self.pos] = done
        if included is not None:
            self.included[self.pos] = included
        self.pos += 1
        self.full = self.pos == self.buffer_size

    def add_truncation(self, env_idx: int, terminal_obs: Any) -> None:
        """Record that env ``env_idx``'s episode was cut by a time limit at the last row added."""
        self.truncations.append((self.pos - 1, env_idx, terminal_obs))

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

    def episodes(self, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """
        The steps marked in ``valid`` and the episode of each: ``(rows, envs, ids, n_episodes)``, with ``ids`` in
        ``[0, n_episodes)`` (the parts of episodes inside the rollout count as episodes).
        """
        rows, envs = np.nonzero(valid)
        unique, ids = np.unique(episode_ids(self.dones[: self.pos])[rows, envs], return_inverse=True)
        return rows, envs, ids, len(unique)

    def get_batch(self) -> ReinforceBatch:
        """The steps marked ``valid`` after the rollout, as tensors on the buffer's device."""
        rows, envs = np.nonzero(self.valid)
        # Fancy indexing already copies, so the tensors can share the arrays' memory.
        observations = obs_as_tensor(self.observations_at(rows, envs), self.device)  # type: ignore[arg-type]
        weights = None if self.score_weights is None else self.to_torch(self.score_weights[rows, envs].astype(np.float32))
        targets = None if self.value_targets is None else self.to_torch(self.value_targets[rows, envs].astype(np.float32))
        return ReinforceBatch(
            observations=observations,
            actions=self.to_torch(self.actions[rows, envs]),
            advantages=self.to_torch(self.advantages[rows, envs].astype(np.float32)),
            score_weights=weights,
            value_targets=targets,
        )

    # BaseBuffer's abstract sampling API: REINFORCE uses the whole batch at once (get_batch).
    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError("Use get_batch(): REINFORCE takes one gradient step on the whole batch.")
