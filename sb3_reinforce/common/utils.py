"""Helpers shared by the rollout loop and the diagnostics."""

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import obs_as_tensor

from sb3_reinforce.common.buffers import Observations, masking


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
