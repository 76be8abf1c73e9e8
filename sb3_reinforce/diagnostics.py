"""
Gradient diagnostics: complete episodes of the current policy, per-episode policy-gradient estimates, their variance
and signal-to-noise ratio.

:func:`collect_episodes` runs the model's own rollout (:meth:`~sb3_reinforce.REINFORCE.collect_rollouts`) for
complete episodes and gives their batch, with the model's own ``Psi_t`` and ``b_t``; :func:`sample_gradients` returns
one gradient estimate per episode, ``g_i = sum_t w_t grad log pi(a_t|s_t) (Psi_t - b_t)``: a sum over the episode's
steps (not a mean) and no normalisation of advantages, so that for the unbiased combinations the mean over episodes
estimates the gradient of ``J = E[sum_t gamma^t r_t]`` (with ``discount_score=True``, or ``gamma = 1``; Thomas, 2014).
To log such statistics during training, see :class:`sb3_reinforce.common.callbacks.GradientStatsCallback`.
"""

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_reinforce.common import scores
from sb3_reinforce.common.baselines import episode_estimates
from sb3_reinforce.common.batch import ReinforceBatch
from sb3_reinforce.common.buffers import ReinforceRolloutBuffer, Rollout
from sb3_reinforce.reinforce.reinforce import REINFORCE


@dataclass
class EpisodeSample:
    """Complete episodes of a policy: the rollout they were collected in, and their batch under the model's settings."""

    rollout: Rollout
    batch: ReinforceBatch

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode."""
        rewards = self.rollout.rewards[self.batch.rows, self.batch.envs]
        return np.bincount(self.batch.segment_ids.cpu().numpy(), weights=rewards, minlength=self.batch.n_segments)


class _EpisodeProgress(BaseCallback):
    """A tqdm bar of the episodes finished so far in the rollout."""

    def __init__(self, total: int) -> None:
        super().__init__()
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError("progress_bar=True needs tqdm: pip install 'sb3-reinforce[extra]'") from None
        self.bar = tqdm(total=total, unit="episode", desc="sampling episodes")

    def _on_step(self) -> bool:
        self.bar.update(self.locals["rollout_buffer"].episodes_finished - self.bar.n)
        return True

    def _on_rollout_end(self) -> None:
        self.bar.update(self.bar.total - self.bar.n)


def collect_episodes(model: REINFORCE, n_episodes: int, progress_bar: bool = False) -> EpisodeSample:
    """
    Run the model's current (stochastic) policy on its env for ``n_episodes`` complete episodes, the first
    ``n_episodes`` to start, with the model's own rollout loop (as ``batch_mode="episodes"``, gSDE noise and action
    masks included), and compute their batch with the model's ``Psi_t`` and ``b_t``.

    The model is not changed: no parameter, baseline, step count or episode statistic moves, and ``VecNormalize``
    statistics are frozen while sampling. The env is reset first, and reset again by the model's next ``learn()``.

    :param model: a REINFORCE model with an env
    :param n_episodes: number of complete episodes
    :param progress_bar: show a progress bar of the finished episodes (tqdm, installed with the ``extra`` extra)
    """
    if not isinstance(n_episodes, int | np.integer) or isinstance(n_episodes, bool) or n_episodes <= 0:
        raise ValueError(f"Invalid n_episodes={n_episodes!r}: allowed values are positive integers.")
    env = model.get_env()
    if env is None:
        raise ValueError("The model has no env: pass one to the constructor, to load(), or with set_env().")
    buffer = ReinforceRolloutBuffer(
        max(64, model.n_steps), model.observation_space, model.action_space, device=model.device, gamma=model.gamma,
        n_envs=env.num_envs, n_episodes=n_episodes,
    )  # fmt: skip
    callback: BaseCallback = _EpisodeProgress(n_episodes) if progress_bar else CallbackList([])
    callback.init_callback(model)
    vec_normalize = model.get_vec_normalize_env()
    was_training = vec_normalize.training if vec_normalize is not None else False
    saved = (model.num_timesteps, model.ep_info_buffer, model.ep_success_buffer)
    try:
        if vec_normalize is not None:
            vec_normalize.training = False
        model.ep_info_buffer, model.ep_success_buffer = deque(maxlen=1), deque(maxlen=1)
        model._last_obs = env.reset()  # type: ignore[assignment]
        model._last_episode_starts = np.ones(env.num_envs, dtype=bool)
        model.collect_rollouts(env, callback, buffer, n_rollout_steps=0)  # type: ignore[arg-type]
    finally:
        if progress_bar:
            callback.bar.close()  # type: ignore[attr-defined]
        model.num_timesteps, model.ep_info_buffer, model.ep_success_buffer = saved
        model.set_env(env)  # the env was reset: the model's next learn() starts from a reset too
        if vec_normalize is not None:
            vec_normalize.training = was_training
    assert buffer.batch.n_segments == n_episodes
    return EpisodeSample(buffer.rollout(), buffer.batch)


def sample_gradients(model: REINFORCE, n_episodes: int, progress_bar: bool = False) -> dict[str, th.Tensor]:
    """
    One policy-gradient estimate per episode, ``g_i = sum_{t in episode i} w_t grad log pi(a_t|s_t) (Psi_t - b_t)``.

    ``Psi_t``, ``b_t`` and ``w_t`` are the model's own (``return_estimator``, ``baseline`` as currently fitted,
    ``gamma``, ``discount_score``; a per-parameter baseline ``b`` gives ``g_i - b * S_i``, ``S_i`` the episode's
    score), with no advantage normalisation; the gradient is of ``+J`` (ascent direction).

    :param model: a REINFORCE model with an env
    :param n_episodes: number of complete episodes
    :param progress_bar: show a progress bar of the sampled episodes (tqdm)
    :return: for each parameter of ``model.policy.named_parameters()`` that the action distribution depends on, a
        tensor of shape ``(n_episodes, *param.shape)``
    """
    batch = collect_episodes(model, n_episodes, progress_bar).batch
    return episode_estimates(model.policy, batch, [batch.score_weights * batch.advantages], [model.baseline_object])[0]


def gradient_statistics(per_episode: dict[str, th.Tensor]) -> dict[str, float]:
    """Trace of the covariance, single-episode SNR and norm of the mean of :func:`sample_gradients`' output."""
    return scores.gradient_statistics(scores.flatten(per_episode))
