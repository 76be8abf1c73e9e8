"""Callbacks for REINFORCE's diagnostics."""

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_reinforce.common import scores
from sb3_reinforce.common.baselines import episode_estimates
from sb3_reinforce.common.buffers import ReinforceRolloutBuffer


class GradientStatsCallback(BaseCallback):
    """
    Logs statistics of each batch's per-episode policy-gradient estimates
    ``g_i = sum_{t in episode i} w_t (Psi_t - b_t) grad log pi(a_t|s_t)``, weighted as in the model's loss (advantages
    normalised if it normalises them), at the end of each rollout, before the update:

    - ``train/grad_variance``: trace of their covariance;
    - ``train/grad_snr``: ``||mean||^2 / trace(cov)``, the signal-to-noise ratio of a single episode's estimate;
    - ``train/grad_cosine``: cosine between this batch's mean gradient and the previous batch's.

    Costs one batched backward pass over the batch (:func:`sb3_reinforce.common.scores.episode_gradients`).
    Works with :class:`~sb3_reinforce.REINFORCE`: ``model.learn(..., callback=GradientStatsCallback())``.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.previous_mean: th.Tensor | None = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = getattr(self.model, "rollout_buffer", None)
        if not isinstance(buffer, ReinforceRolloutBuffer):
            raise TypeError(f"GradientStatsCallback needs a REINFORCE model, not {type(self.model).__name__}.")
        batch = buffer.batch
        if batch.n_segments == 0:
            return
        weights = batch.policy_weights(self.model.normalize_advantage)  # type: ignore[attr-defined]
        (per_episode,) = episode_estimates(self.model.policy, batch, [weights], [self.model.baseline_object])  # type: ignore[arg-type, attr-defined]
        flat = scores.flatten(per_episode)
        stats = scores.gradient_statistics(flat)
        self.logger.record("train/grad_variance", stats["grad_variance"])
        self.logger.record("train/grad_snr", stats["grad_snr"])
        mean = flat.mean(dim=0)
        if self.previous_mean is not None and len(self.previous_mean) == len(mean):
            self.logger.record("train/grad_cosine", float(th.nn.functional.cosine_similarity(mean, self.previous_mean, dim=0)))
        self.previous_mean = mean
