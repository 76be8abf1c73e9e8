"""
The batch of one update: the seam between collecting a rollout, estimating ``Psi_t`` and ``b_t``, and the update.

:func:`make_batch` is the one place where a stored :class:`~sb3_reinforce.common.buffers.Rollout` becomes the steps of
the loss: it applies the return estimator (:mod:`sb3_reinforce.common.returns`), chooses the steps that enter the
loss, and subtracts the baseline's prediction. It changes nothing: the policy's ``V(s)`` is evaluated before
(:class:`RolloutValues`), and the baseline is fitted after the update.
"""

import dataclasses
from typing import NamedTuple, Protocol

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.utils import obs_as_tensor

from sb3_reinforce.common import returns as ret
from sb3_reinforce.common.buffers import Rollout
from sb3_reinforce.common.utils import masking


class RolloutValues(NamedTuple):
    """``V(s)`` of a rollout, as the policy that generated it gives them (for the value baseline and GAE)."""

    values: np.ndarray  # (n_rows, n_envs) V(s_t) (0 for the steps outside a whole-episode batch)
    last_values: np.ndarray | None  # (n_envs,) V(s_T) of the observation after the last row; None: whole episodes
    truncation_values: np.ndarray  # V(terminal observation) of each of the rollout's truncations, in their order


@dataclasses.dataclass(frozen=True)
class ReinforceBatch:
    """
    The steps of one rollout that enter the loss, flat, on the device: every episode of a whole-episode batch, or
    in ``"steps"`` batches every step (with a value function to bootstrap from) or every step of an episode that ends
    in the rollout (without). Episodes cut by the rollout's ends count as separate *segments*.
    """

    observations: PyTorchObs
    actions: th.Tensor  # as log_prob takes them (long and flat for Discrete)
    action_masks: th.Tensor | None  # which actions were allowed (maskable policies), else None
    psi: th.Tensor  # Psi_t, float64
    values: th.Tensor | None  # V(s_t) with the rollout's policy (value baseline), float64, else None
    value_targets: th.Tensor | None  # what V(s_t) is regressed on (value baseline), else None
    baseline_values: th.Tensor  # b_t, float64 (0 before the baseline's prediction)
    advantages: th.Tensor  # Psi_t - b_t
    score_weights: th.Tensor  # w_t: gamma^k_t with discount_score, else 1
    timesteps: th.Tensor  # k_t, the step's index in its episode
    segment_ids: th.Tensor  # in [0, n_segments): the episode (or part of one inside the rollout) of each step
    n_segments: int
    psi_per_episode: bool  # whether Psi_t is one number per episode (the whole-trajectory return)
    rows: np.ndarray  # where each step lies in the rollout: its row ...
    envs: np.ndarray  # ... and env
    rollout_steps: int  # steps collected in the rollout, those of the batch and the ones discarded

    def __len__(self) -> int:
        return len(self.psi)

    @property
    def masking(self) -> dict[str, th.Tensor]:
        """The batch's masks as keyword arguments of the policy."""
        return masking(self.action_masks)

    def policy_weights(self, normalize_advantage: bool) -> th.Tensor:
        """
        The weight of ``grad log pi(a_t|s_t)`` in the loss: ``w_t (Psi_t - b_t)``, with ``Psi_t - b_t`` normalised over
        the batch (zero mean, unit std) first if asked.
        """
        advantages = self.advantages
        if normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages * self.score_weights


class BaselinePredictor(Protocol):
    """What :func:`make_batch` asks of a baseline (:class:`sb3_reinforce.common.baselines.Baseline`)."""

    def predict(self, batch: ReinforceBatch) -> th.Tensor: ...


def make_batch(
    rollout: Rollout,
    values: RolloutValues | None,
    estimator: ret.ReturnEstimator,
    baseline: BaselinePredictor,
    discount_score: bool,
    action_space: spaces.Space,
    device: th.device | str = "cpu",
) -> ReinforceBatch:
    """
    The batch of a rollout: ``Psi_t`` from the estimator, ``b_t`` from the baseline as fitted on earlier batches,
    ``Psi_t - b_t``, the value targets and ``w_t``.

    With ``values``, an episode cut off at the end of a ``"steps"`` rollout is bootstrapped with ``V(s_T)``, and one
    cut by a time limit with ``V(terminal observation)``. Without a value function there is nothing to bootstrap
    from: a time-limit truncation ends the return, and the steps of an episode still running at the end of the
    rollout are left out (their reward-to-go would be silently truncated). In whole-episode batches only the batch's
    episodes are used.

    :param rollout: the stored rollout
    :param values: ``V(s)`` of the rollout, or None without a value function
    :param estimator: the return estimator ``Psi_t``
    :param baseline: the baseline ``b_t`` (its ``predict`` is called on the batch, whose ``psi``, ``values``,
        ``timesteps`` and ``segment_ids`` are set)
    :param discount_score: whether each step's term is weighted by ``w_t = gamma^k_t`` (Thomas, 2014)
    :param action_space: the action space (Discrete actions become flat integers, as ``log_prob`` takes them)
    :param device: device of the batch's tensors
    """
    gamma, dones = estimator.gamma, rollout.dones
    rewards = rollout.rewards
    if values is not None and rollout.truncations:
        rewards = rewards.copy()
        cut_rows, cut_envs = (list(index) for index in zip(*((t.row, t.env) for t in rollout.truncations), strict=True))
        rewards[cut_rows, cut_envs] += gamma * values.truncation_values
    state_values = None if values is None else values.values
    last_values = None if values is None else values.last_values
    returns_to_go = ret.reward_to_go(rewards, dones, last_values, gamma)
    arrays = ret.RolloutArrays(
        rewards, dones, rollout.timesteps, returns_to_go, state_values, last_values, rollout.start_prefix
    )
    psi = estimator.estimate(arrays)
    value_targets = None if state_values is None else estimator.value_targets(arrays, psi)

    if rollout.whole_episodes:
        used = rollout.in_batch
    elif state_values is not None:
        used = np.ones_like(dones)
    else:
        used = ret.complete_episode_mask(dones)
    rows, envs = np.nonzero(used)
    _, segment_ids = np.unique(ret.episode_ids(dones)[rows, envs], return_inverse=True)

    def tensor(array: np.ndarray, dtype: th.dtype = th.float32) -> th.Tensor:
        return th.as_tensor(array[rows, envs], dtype=dtype, device=device)

    actions = tensor(rollout.actions)
    if isinstance(action_space, spaces.Discrete):
        actions = actions.long().flatten()
    weights = ret.score_discount(rollout.timesteps, gamma) if discount_score else np.ones_like(psi)
    batch = ReinforceBatch(
        observations=obs_as_tensor(rollout.observations_at(rows, envs), device),  # type: ignore[arg-type]
        actions=actions,
        action_masks=None if rollout.action_masks is None else tensor(rollout.action_masks, th.bool),
        psi=tensor(psi, th.float64),
        values=None if state_values is None else tensor(state_values, th.float64),
        value_targets=None if value_targets is None else tensor(value_targets),
        baseline_values=th.zeros(len(rows), dtype=th.float64, device=device),
        advantages=tensor(psi),
        score_weights=tensor(weights),
        timesteps=tensor(rollout.timesteps, th.int64),
        segment_ids=th.as_tensor(segment_ids, device=device),
        n_segments=int(segment_ids.max()) + 1 if len(segment_ids) else 0,
        psi_per_episode=estimator.per_episode,
        rows=rows,
        envs=envs,
        rollout_steps=dones.size,
    )
    baseline_values = baseline.predict(batch).to(device=device, dtype=th.float64)
    return dataclasses.replace(batch, baseline_values=baseline_values, advantages=(batch.psi - baseline_values).float())
