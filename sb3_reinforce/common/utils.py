"""Helpers on batches of observations and on the policy, shared by the rollout loop, the batch and the diagnostics."""

from typing import Any, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import obs_as_tensor

Observations = np.ndarray | dict[str, np.ndarray]
Batch = TypeVar("Batch", bound=np.ndarray | th.Tensor | dict[str, np.ndarray] | dict[str, th.Tensor])

# Size of the chunks in which stored observations go through the value network after a rollout.
VALUE_CHUNK = 8192


def batch_length(obs: Batch) -> int:
    """Number of samples in a batch of observations (an array or tensor, or a dict of them)."""
    first: Any = next(iter(obs.values())) if isinstance(obs, dict) else obs
    return len(first)


def batch_slice(obs: Batch, part: Any) -> Batch:
    """A part of a batch of observations (an array or tensor, or a dict of them), by slice or index array."""
    if isinstance(obs, dict):
        return {key: value[part] for key, value in obs.items()}  # type: ignore[return-value]
    return obs[part]  # type: ignore[return-value]


def stack(observations: list[Any]) -> Observations:
    """Stack single-env observations (arrays or dicts of arrays) into a batch."""
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


def masking(action_masks: Any) -> dict[str, Any]:
    """``{"action_masks": ...}`` for a maskable policy's ``get_distribution``/``evaluate_actions``, ``{}`` for None."""
    return {} if action_masks is None else {"action_masks": action_masks}


def predict_values(policy: ActorCriticPolicy, obs: Observations) -> np.ndarray:
    """``V(s)`` of a flat batch of observations (arrays), in chunks, as float64."""
    n = batch_length(obs)
    values = np.empty(n, dtype=np.float64)
    with th.no_grad():
        for start in range(0, n, VALUE_CHUNK):
            chunk = obs_as_tensor(batch_slice(obs, slice(start, start + VALUE_CHUNK)), policy.device)  # type: ignore[arg-type]
            values[start : start + VALUE_CHUNK] = policy.predict_values(chunk).flatten().cpu().numpy()
    return values


def sample_actions(
    policy: ActorCriticPolicy, obs: Observations, action_masks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """
    ``a_t ~ pi(.|s_t)`` from the actor alone (no value forward pass).

    :param action_masks: which actions are allowed, for sb3-contrib's maskable policies (None: no masking)

    :return: the actions as sampled (what ``log pi`` is taken of), and as the env takes them: for a Box action space,
        reshaped to its shape, then unscaled (squashed policies) or clipped to its bounds, as SB3's rollouts do
    """
    with th.no_grad():
        distribution = policy.get_distribution(obs_as_tensor(obs, policy.device), **masking(action_masks))  # type: ignore[arg-type]
        actions = distribution.get_actions().cpu().numpy()
    env_actions = actions
    space = policy.action_space
    if isinstance(space, spaces.Box):
        env_actions = actions.reshape((-1, *space.shape))
        if policy.squash_output:
            env_actions = policy.unscale_action(env_actions)
        else:
            env_actions = np.clip(env_actions, space.low, space.high)
    return actions, env_actions
