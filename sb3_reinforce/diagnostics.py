"""
Gradient diagnostics: per-episode policy-gradient estimates, their variance and signal-to-noise ratio.

:func:`sample_gradients` runs the model's current policy for complete episodes and returns one gradient estimate per
episode, ``g_i = sum_t w_t grad log pi(a_t|s_t) (Psi_t - b_t)``, with the model's own return estimator, baseline,
``gamma`` and ``discount_score``: a sum over the episode's steps (not a mean) and no normalisation of advantages,
so that for the unbiased combinations the mean over episodes estimates the gradient of ``J = E[sum_t gamma^t r_t]``
(with ``discount_score=True``, or ``gamma = 1``).
"""

from dataclasses import dataclass

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import obs_as_tensor

from sb3_reinforce.common import scores
from sb3_reinforce.common.buffers import ReinforceRolloutBuffer
from sb3_reinforce.reinforce.reinforce import REINFORCE, RolloutEstimate


@dataclass
class EpisodeSample:
    """Complete episodes of the current policy, flattened over their steps (in time order within each episode)."""

    buffer: ReinforceRolloutBuffer  # the time-major rollout they came from
    estimate: RolloutEstimate  # Psi_t, b_t, ... of the model's own estimator and baseline
    rows: np.ndarray  # (n_steps,) row of each step in the buffer
    envs: np.ndarray  # (n_steps,) env of each step
    episode_ids: np.ndarray  # (n_steps,) in [0, n_episodes)
    n_episodes: int

    def flat(self, array: np.ndarray) -> np.ndarray:
        """The steps' entries of a time-major ``(n_rows, n_envs)`` array."""
        return array[self.rows, self.envs]

    def observations(self, model: REINFORCE) -> th.Tensor | dict[str, th.Tensor]:
        return obs_as_tensor(self.buffer.observations_at(self.rows, self.envs), model.device)  # type: ignore[arg-type]

    def actions(self, model: REINFORCE) -> th.Tensor:
        actions = th.as_tensor(self.buffer.actions[self.rows, self.envs], device=model.device)
        return actions.long().flatten() if isinstance(model.action_space, spaces.Discrete) else actions

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode."""
        return np.bincount(
            self.episode_ids, weights=self.flat(self.buffer.rewards[: self.buffer.pos]), minlength=self.n_episodes
        )


def collect_episodes(model: REINFORCE, n_episodes: int) -> EpisodeSample:
    """
    Run the model's current (stochastic) policy on its env for ``n_episodes`` complete episodes.

    The model is not changed: no parameter, baseline, counter or episode statistic moves, and ``VecNormalize``
    statistics are frozen while sampling. The env is reset first (and the model's next ``learn()`` resets it again).
    The episodes are the first ``n_episodes`` to start, as in ``batch_mode="episodes"``.
    """
    if not isinstance(n_episodes, int | np.integer) or n_episodes <= 0:
        raise ValueError(f"Invalid n_episodes={n_episodes!r}: allowed values are positive integers.")
    env = model.get_env()
    if env is None:
        raise ValueError("The model has no env: pass one to the constructor, to load(), or with set_env().")
    vec_normalize = model.get_vec_normalize_env()
    was_training = vec_normalize.training if vec_normalize is not None else False
    if vec_normalize is not None:
        vec_normalize.training = False
    buffer = ReinforceRolloutBuffer(
        max(64, model.n_steps), model.observation_space, model.action_space, device=model.device, n_envs=env.num_envs,
        growable=True,
    )  # fmt: skip
    try:
        model._last_obs = env.reset()  # type: ignore[assignment]
        model._last_episode_starts = np.ones(env.num_envs, dtype=bool)
        model._run_policy(env, buffer, 0, n_episodes, callback=None)
        zeros = np.zeros(env.num_envs)
        estimate = model._estimate(buffer, model._last_obs, True, zeros.astype(np.int64), zeros)  # type: ignore[arg-type]
    finally:
        model._last_obs = None  # type: ignore[assignment]
        if vec_normalize is not None:
            vec_normalize.training = was_training
    rows, envs, ids, found = buffer.episodes(estimate.valid)
    assert found == n_episodes
    return EpisodeSample(buffer, estimate, rows, envs, ids, n_episodes)


def episode_gradients(model: REINFORCE, sample: EpisodeSample, weights: list[np.ndarray]) -> list[dict[str, th.Tensor]]:
    """Per-episode ``sum_t weight_t grad log pi(a_t|s_t)`` for each flat ``(n_steps,)`` weight array of ``sample``."""
    grids = []
    for flat in weights:
        grid = np.zeros(sample.estimate.valid.shape)
        grid[sample.rows, sample.envs] = flat
        grids.append(grid)
    return model._episode_gradients(sample.buffer, sample.estimate.valid, grids)


def sample_gradients(model: REINFORCE, n_episodes: int) -> dict[str, th.Tensor]:
    """
    One policy-gradient estimate per episode, ``g_i = sum_{t in episode i} w_t grad log pi(a_t|s_t) (Psi_t - b_t)``.

    ``Psi_t``, ``b_t`` and ``w_t`` are the model's own (``return_estimator``, ``baseline`` as currently fitted,
    ``gamma``, ``discount_score``), with no advantage normalisation; the gradient is of ``+J`` (ascent direction).
    The per-step gradients are computed with ``torch.func`` (vectorised), not one backward pass per step.

    :param model: a REINFORCE model with an env
    :param n_episodes: number of complete episodes
    :return: for each parameter of ``model.policy.named_parameters()`` that the action distribution depends on, a
        tensor of shape ``(n_episodes, *param.shape)``
    """
    sample = collect_episodes(model, n_episodes)
    estimate = sample.estimate
    advantages = estimate.psi - estimate.baseline_values
    if estimate.score_weights is not None:
        advantages = advantages * estimate.score_weights
    return model._episode_gradients(sample.buffer, estimate.valid, [advantages])[0]


def gradient_statistics(per_episode: dict[str, th.Tensor]) -> dict[str, float]:
    """Trace of the covariance, single-episode SNR and norm of the mean of :func:`sample_gradients`' output."""
    return scores.gradient_statistics(scores.flatten(per_episode))
