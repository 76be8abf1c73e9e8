"""
Gradient diagnostics: complete episodes of the current policy, per-episode policy-gradient estimates, their variance
and signal-to-noise ratio.

:func:`collect_episodes` runs the model's current policy for complete episodes and computes the model's own
``Psi_t`` and ``b_t`` on them; :func:`sample_gradients` returns one gradient estimate per episode,
``g_i = sum_t w_t grad log pi(a_t|s_t) (Psi_t - b_t)``: a sum over the episode's steps (not a mean) and no
normalisation of advantages, so that for the unbiased combinations the mean over episodes estimates the gradient of
``J = E[sum_t gamma^t r_t]`` (with ``discount_score=True``, or ``gamma = 1``; Thomas, 2014). To log such statistics
during training, see :class:`sb3_reinforce.common.callbacks.GradientStatsCallback`.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th

from sb3_reinforce.common import scores
from sb3_reinforce.common.baselines import subtract_parameter_baseline
from sb3_reinforce.common.buffers import ReinforceRolloutBuffer
from sb3_reinforce.common.utils import sample_actions
from sb3_reinforce.reinforce.reinforce import REINFORCE


@dataclass
class EpisodeSample:
    """
    Complete episodes of a policy: the rollout buffer they were collected in, with the model's ``psi``,
    ``baseline_values``, ``advantages``, ``timesteps`` and ``score_weights`` computed, and the flat list of their steps
    (in time order within each episode).
    """

    buffer: ReinforceRolloutBuffer
    rows: np.ndarray  # (n_steps,) row of each step in the buffer
    envs: np.ndarray  # (n_steps,) env of each step
    episode_ids: np.ndarray  # (n_steps,) in [0, n_episodes)
    n_episodes: int

    def flat(self, array: np.ndarray) -> np.ndarray:
        """The steps' entries of a time-major ``(n_rows, n_envs)`` array of the buffer."""
        return array[self.rows, self.envs]

    def observations(self, device: th.device | str = "cpu") -> th.Tensor | dict[str, th.Tensor]:
        """The steps' observations, as tensors on ``device``."""
        observations = self.buffer.get_batch().observations
        if isinstance(observations, dict):
            return {key: value.to(device) for key, value in observations.items()}
        return observations.to(device)

    def actions(self, device: th.device | str = "cpu") -> th.Tensor:
        """The steps' actions, in the form ``log_prob`` takes them, on ``device``."""
        return self.buffer.get_batch().actions.to(device)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode."""
        return np.bincount(
            self.episode_ids, weights=self.flat(self.buffer.rewards[: self.buffer.pos]), minlength=self.n_episodes
        )


def collect_episodes(model: REINFORCE, n_episodes: int, progress_bar: bool = False) -> EpisodeSample:
    """
    Run the model's current (stochastic) policy on its env for ``n_episodes`` complete episodes, the first
    ``n_episodes`` to start, as in ``batch_mode="episodes"``, and compute the model's ``Psi_t`` and ``b_t`` on them.

    The model is not changed: no parameter, baseline, counter or episode statistic moves, and ``VecNormalize``
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
    vec_normalize = model.get_vec_normalize_env()
    was_training = vec_normalize.training if vec_normalize is not None else False
    if vec_normalize is not None:
        vec_normalize.training = False
    buffer = ReinforceRolloutBuffer(
        max(64, model.n_steps), model.observation_space, model.action_space, device=model.device, n_envs=env.num_envs,
        n_episodes=n_episodes,
    )  # fmt: skip
    bar = _progress_bar(n_episodes) if progress_bar else None
    model.policy.set_training_mode(False)
    try:
        obs = env.reset()
        while not buffer.full:
            action_masks = model.action_masks(env)
            actions, env_actions = sample_actions(model.policy, obs, action_masks)  # type: ignore[arg-type]
            new_obs, rewards, dones, infos = env.step(env_actions)
            buffer.add(obs, actions, rewards, dones, infos, action_masks)  # type: ignore[arg-type]
            obs = new_obs
            if bar is not None and dones.any():
                bar.update(buffer.episodes_finished - bar.n)
        buffer.check_finite(obs)  # type: ignore[arg-type]
        assert model.fitted_baseline is not None
        buffer.compute_returns_and_advantage(model.estimator, model.fitted_baseline, model.policy, obs, model.discount_score)  # type: ignore[arg-type]
    finally:
        if bar is not None:
            bar.close()
        model.set_env(env)  # the env was reset: the model's next learn() starts from a reset too
        if vec_normalize is not None:
            vec_normalize.training = was_training
    rows, envs, ids, found = buffer.episodes(buffer.valid)
    assert found == n_episodes
    return EpisodeSample(buffer, rows, envs, ids, n_episodes)


def _progress_bar(total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress_bar=True needs tqdm: pip install 'sb3-reinforce[extra]'") from None
    return tqdm(total=total, unit="episode", desc="sampling episodes")


def episode_gradients(model: REINFORCE, sample: EpisodeSample, weights: list[np.ndarray]) -> list[dict[str, th.Tensor]]:
    """Per-episode ``sum_t weight_t grad log pi(a_t|s_t)`` for each flat ``(n_steps,)`` weight array of ``sample``."""
    tensors = [th.as_tensor(w, dtype=th.float32, device=model.device) for w in weights]
    masks = sample.buffer.get_batch().action_masks
    return scores.episode_gradients(
        model.policy, sample.observations(model.device), sample.actions(model.device), tensors,
        th.as_tensor(sample.episode_ids, device=model.device), sample.n_episodes,
        action_masks=None if masks is None else masks.to(model.device),
    )  # fmt: skip


def sample_gradients(model: REINFORCE, n_episodes: int, progress_bar: bool = False) -> dict[str, th.Tensor]:
    """
    One policy-gradient estimate per episode, ``g_i = sum_{t in episode i} w_t grad log pi(a_t|s_t) (Psi_t - b_t)``.

    ``Psi_t``, ``b_t`` and ``w_t`` are the model's own (``return_estimator``, ``baseline`` as currently fitted,
    ``gamma``, ``discount_score``; a per-parameter baseline ``b`` gives ``g_i - b * S_i``, ``S_i`` the episode's
    score), with no advantage normalisation; the gradient is of ``+J`` (ascent direction).
    The per-step gradients are computed with ``torch.func`` (vectorised), not one backward pass per step.

    :param model: a REINFORCE model with an env
    :param n_episodes: number of complete episodes
    :param progress_bar: show a progress bar of the sampled episodes (tqdm)
    :return: for each parameter of ``model.policy.named_parameters()`` that the action distribution depends on, a
        tensor of shape ``(n_episodes, *param.shape)``
    """
    sample = collect_episodes(model, n_episodes, progress_bar)
    buffer = sample.buffer
    score_weights = np.ones_like(buffer.advantages) if buffer.score_weights is None else buffer.score_weights
    assert model.fitted_baseline is not None
    constants = model.fitted_baseline.parameter_constants()
    if constants is None:
        return episode_gradients(model, sample, [sample.flat(buffer.advantages * score_weights)])[0]
    # One constant per parameter: g_i = G_i - b * S_i
    weighted, episode_scores = episode_gradients(
        model, sample, [sample.flat(buffer.psi * score_weights), sample.flat(score_weights)]
    )
    return subtract_parameter_baseline(weighted, episode_scores, constants)


def gradient_statistics(per_episode: dict[str, th.Tensor]) -> dict[str, float]:
    """Trace of the covariance, single-episode SNR and norm of the mean of :func:`sample_gradients`' output."""
    return scores.gradient_statistics(scores.flatten(per_episode))
