from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import (
    MaskableActorCriticCnnPolicy,
    MaskableActorCriticPolicy,
    MaskableMultiInputActorCriticPolicy,
)
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.reinforce.reinforce import REINFORCE

MASKABLE_ACTION_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class MaskableREINFORCE(REINFORCE):
    """
    REINFORCE with invalid-action masking (Huang and Ontañón, 2022, "A Closer Look at Invalid Action Masking in
    Policy Gradient Algorithms"), built from sb3-contrib's maskable policies and distributions, as ``MaskablePPO``.

    At every step the env's ``action_masks()`` (a method of the env, or sb3-contrib's ``ActionMasker`` wrapper) says
    which actions are allowed; the policy samples from ``pi`` restricted to them (the logits of the others set to a
    large negative number), the masks are stored with the step, and the update uses the same masked distribution:
    a masked action has probability 0, and ``log pi(a_t|s_t)`` and the entropy are those of the masked distribution,
    so its logit gets no gradient from that step. Everything else (return estimators, baselines, batch modes, the
    natural step) is :class:`~sb3_reinforce.REINFORCE`'s, with the same arguments.

    ``predict(obs, action_masks=...)`` takes the masks of the observations, as ``MaskablePPO.predict``; sb3-contrib's
    ``MaskableEvalCallback`` and ``sb3_contrib.common.maskable.evaluation.evaluate_policy`` read them from the env.

    Action spaces: ``Discrete``, ``MultiDiscrete`` and ``MultiBinary``.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy): sb3-contrib's maskable policies
    :param env: The environment to learn from (if registered in Gym, can be str); it must have ``action_masks()``
    :param kwargs: every other argument of :class:`~sb3_reinforce.REINFORCE`
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MaskableActorCriticPolicy,
        "CnnPolicy": MaskableActorCriticCnnPolicy,
        "MultiInputPolicy": MaskableMultiInputActorCriticPolicy,
    }
    policy: MaskableActorCriticPolicy  # type: ignore[assignment]

    def __init__(self, policy: str | type[MaskableActorCriticPolicy], env: GymEnv | str, **kwargs: Any) -> None:
        init_setup_model = kwargs.pop("_init_setup_model", True)
        super().__init__(policy, env, _init_setup_model=False, **kwargs)  # type: ignore[arg-type]
        if self.env is not None:  # before the policy is built for the action space
            self._check_env(self.env)
        if init_setup_model:
            self._setup_model()

    @staticmethod
    def _check_env(env: VecEnv) -> None:
        """Raise ValueError for an action space that cannot be masked, or an env without ``action_masks()``."""
        if not isinstance(env.action_space, MASKABLE_ACTION_SPACES):
            raise ValueError(
                f"MaskableREINFORCE masks Discrete, MultiDiscrete and MultiBinary actions, not {env.action_space}: use "
                "REINFORCE for other action spaces."
            )
        if not is_masking_supported(env):
            raise ValueError(
                "MaskableREINFORCE needs an env with an action_masks() method (returning the allowed actions as a "
                "boolean array), or wrapped in sb3_contrib.common.wrappers.ActionMasker; this env has none. Use "
                "REINFORCE for an env without invalid actions."
            )

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        assert self.env is not None
        self._check_env(self.env)

    def action_masks(self, env: VecEnv) -> np.ndarray:
        """The actions each env allows now, from its ``action_masks()`` (sb3-contrib's ``get_action_masks``)."""
        return get_action_masks(env)

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        The policy's action for an observation, as ``MaskablePPO.predict``: among the allowed actions when
        ``action_masks`` is given (``sb3_contrib.common.maskable.utils.get_action_masks(env)``), among all otherwise.
        """
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)
