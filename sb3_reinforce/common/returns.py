"""
The return estimators of the policy gradient, one function per equation.

Every function works on time-major arrays of shape ``(n_steps, n_envs)``: row ``t`` holds the transition
``(s_t, a_t, r_t)`` of each env, and ``dones[t, e]`` is True when the episode of env ``e`` ended at step ``t``
(terminated or truncated), so that row ``t + 1`` holds the first step of the next episode. The loops run
backwards or forwards over time only; every operation inside them is vectorised over the envs.

Notation (Daniel Seita, "Going Deeper Into Reinforcement Learning: Fundamentals of Policy Gradients", 2017): an
episode ``tau = (s_0, a_0, r_0, ..., s_{T-1}, a_{T-1}, r_{T-1}, s_T)``,
``gamma`` the discount factor, ``k_t`` the index of step ``t`` inside its own episode.

- :func:`reward_to_go`: ``G_t = sum_{t'=t}^{T-1} gamma^(t'-t) r_t'`` (Seita's estimator (iii), with the discount of
  his "Discount Factors" section).
- :func:`total_return`: ``R(tau) = sum_{t=0}^{T-1} gamma^t r_t``, the same for every step (Seita's estimator (i),
  the REINFORCE of Williams, 1992).
- :func:`gae_advantages`: generalized advantage estimation (Schulman et al., 2016),
  ``A_t = sum_l (gamma lambda)^l delta_{t+l}``.
- :func:`episode_timesteps`: ``k_t``, used for ``gamma^k_t`` (``discount_score``) and time features.
- :func:`episode_ids`, :func:`complete_episode_mask`: which episode each step belongs to, and whether it ends inside
  the batch.
"""

from abc import ABC, abstractmethod
from typing import ClassVar, NamedTuple

import numpy as np


def episode_timesteps(dones: np.ndarray, start_steps: np.ndarray) -> np.ndarray:
    """
    Index of each step inside its own episode, ``k_t``.

    ``k`` counts from 0 at the first step of an episode. ``start_steps[e]`` is ``k`` of the first row for env
    ``e`` (0 when a new episode starts there, ``n`` when the episode already ran ``n`` steps in earlier batches).

    Example with one env, ``start_steps=[2]`` and ``dones=[0, 1, 0, 0]``: ``k = [2, 3, 0, 1]``.

    :param dones: ``(n_steps, n_envs)`` episode ended at step t
    :param start_steps: ``(n_envs,)`` episode index of row 0
    :return: ``(n_steps, n_envs)`` integer array ``k``
    """
    n_steps = dones.shape[0]
    rows = np.arange(n_steps)[:, None]
    # Row of the most recent episode start at or before each row; a start before the batch is at -start_steps.
    start_rows = np.where(np.vstack([np.zeros_like(dones[:1]), dones[:-1]]), rows, np.iinfo(np.int64).min)
    start_rows[0] = -np.asarray(start_steps, dtype=np.int64)
    return rows - np.maximum.accumulate(start_rows, axis=0)


def reward_to_go(rewards: np.ndarray, dones: np.ndarray, last_values: np.ndarray | None, gamma: float) -> np.ndarray:
    """
    Discounted reward-to-go, Seita's (2017) estimator (iii) with discount:

        G_t = sum_{t'=t}^{T-1} gamma^(t'-t) r_t'   =   r_t + gamma * (1 - done_t) * G_{t+1}

    For one episode of rewards ``[x0, x1, x2]`` this is ``[x0 + g*x1 + g^2*x2, x1 + g*x2, x2]``.
    An episode still running at the last row is continued by ``last_values`` (the bootstrap ``V(s_T)`` of a
    cut-off trajectory), or by nothing when ``last_values`` is None: its returns are then truncated, and the
    caller must not use them (see :func:`complete_episode_mask`).

    :param rewards: ``(n_steps, n_envs)`` rewards ``r_t``
    :param dones: ``(n_steps, n_envs)`` episode ended at step t
    :param last_values: ``(n_envs,)`` value of the observation after the last row, or None
    :param gamma: discount factor
    :return: ``(n_steps, n_envs)`` array ``G`` (float64)
    """
    not_done = 1.0 - dones.astype(np.float64)
    returns = np.empty(rewards.shape, dtype=np.float64)
    next_return = np.zeros(rewards.shape[1]) if last_values is None else np.asarray(last_values, dtype=np.float64)
    for t in range(rewards.shape[0] - 1, -1, -1):
        next_return = rewards[t] + gamma * not_done[t] * next_return
        returns[t] = next_return
    return returns


def total_return(
    returns_to_go: np.ndarray,
    timesteps: np.ndarray,
    start_prefix: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """
    The whole trajectory's discounted return, Seita's (2017) estimator (i) (Williams, 1992):

        R(tau) = sum_{t=0}^{T-1} gamma^t r_t,   the same weight for every step of the episode.

    It is assembled from the reward-to-go of the first step of each episode segment in the batch:
    ``R(tau) = P + gamma^k_f * G_f``, where ``f`` is the segment's first row, ``k_f`` its index in the episode and
    ``P`` the discounted rewards the episode collected before the batch (``start_prefix``, 0 for an episode that
    starts inside the batch).

    :param returns_to_go: ``(n_steps, n_envs)`` output of :func:`reward_to_go`
    :param timesteps: ``(n_steps, n_envs)`` output of :func:`episode_timesteps`
    :param start_prefix: ``(n_envs,)`` ``sum_{j<k_0} gamma^j r_j`` of the episode running at row 0
    :param gamma: discount factor
    :return: ``(n_steps, n_envs)`` array ``R(tau)`` of each step's episode (float64)
    """
    n_steps, n_envs = returns_to_go.shape
    rows = np.arange(n_steps)[:, None]
    first_row = np.maximum(rows - timesteps, 0)  # first row of each step's episode inside the batch
    cols = np.arange(n_envs)[None, :]
    prefix = np.where(rows - timesteps < 0, np.asarray(start_prefix, dtype=np.float64)[None, :], 0.0)
    return prefix + np.power(gamma, timesteps[first_row, cols].astype(np.float64)) * returns_to_go[first_row, cols]


def gae_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """
    Generalized advantage estimation (Schulman et al., 2016, eq. 16), an estimate of the advantage A^{pi,gamma}(s_t, a_t):

        delta_t = r_t + gamma * (1 - done_t) * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

    ``lambda = 1`` gives the reward-to-go minus ``V(s_t)``; ``lambda = 0`` the one-step TD error.

    :param rewards: ``(n_steps, n_envs)`` rewards (with ``gamma V(terminal obs)`` already added at time-limit
        truncations)
    :param values: ``(n_steps, n_envs)`` ``V(s_t)``
    :param dones: ``(n_steps, n_envs)`` episode ended at step t
    :param last_values: ``(n_envs,)`` ``V`` of the observation after the last row
    :param gamma: discount factor
    :param gae_lambda: GAE's lambda
    :return: ``(n_steps, n_envs)`` advantages (float64)
    """
    not_done = 1.0 - dones.astype(np.float64)
    advantages = np.empty(rewards.shape, dtype=np.float64)
    next_values = np.asarray(last_values, dtype=np.float64)
    last_gae = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * not_done[t] * next_values - values[t]
        last_gae = delta + gamma * gae_lambda * not_done[t] * last_gae
        advantages[t] = last_gae
        next_values = values[t]
    return advantages


def complete_episode_mask(dones: np.ndarray) -> np.ndarray:
    """
    Steps whose episode ends inside the batch: ``t <= last done row`` of their env.

    Steps after an env's last ``done`` belong to an episode cut off by the end of the rollout; without a value
    function to bootstrap from, their reward-to-go would be silently truncated, so they are left out of the loss.

    :param dones: ``(n_steps, n_envs)`` episode ended at step t
    :return: ``(n_steps, n_envs)`` boolean mask
    """
    n_steps = dones.shape[0]
    rows = np.arange(n_steps)[:, None]
    last_done = np.where(dones, rows, -1).max(axis=0)
    return rows <= last_done[None, :]


def discounted_prefix_after(
    rewards: np.ndarray,
    dones: np.ndarray,
    timesteps: np.ndarray,
    start_prefix: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """
    ``P`` of the episode that continues after the last row, for :func:`total_return` on the next batch: the
    discounted rewards it collected so far, ``sum_{j<k} gamma^j r_j``, with the part collected before this batch
    (``start_prefix``, for an episode that started before row 0). It is 0 for an env whose episode ended on the
    last row.

    :param rewards: ``(n_steps, n_envs)`` rewards ``r_t``
    :param dones: ``(n_steps, n_envs)`` episode ended at step t
    :param timesteps: ``(n_steps, n_envs)`` output of :func:`episode_timesteps`
    :param start_prefix: ``(n_envs,)`` ``P`` of the episode running at row 0
    :param gamma: discount factor
    :return: ``(n_envs,)`` float64
    """
    rows = np.arange(dones.shape[0])[:, None]
    last_done = np.where(dones, rows, -1).max(axis=0)
    running = rows > last_done[None, :]  # the steps of the episode still running after the last row
    collected = np.where(running, np.power(gamma, timesteps.astype(np.float64)) * rewards, 0.0).sum(axis=0)
    started_before = (last_done < 0) & (timesteps[0] > 0)
    return np.where(dones[-1], 0.0, collected + np.where(started_before, np.asarray(start_prefix, dtype=np.float64), 0.0))


def next_start_steps(timesteps: np.ndarray, dones: np.ndarray) -> np.ndarray:
    """
    ``k`` of the row after the last one: ``k_{T-1} + 1``, or 0 where an episode ended on the last row.

    :return: ``(n_envs,)`` int64
    """
    return np.where(dones[-1], 0, timesteps[-1] + 1).astype(np.int64)


def score_discount(timesteps: np.ndarray, gamma: float) -> np.ndarray:
    """
    ``gamma^k_t``: the factor that makes the reward-to-go (or GAE) estimator an unbiased estimate of the gradient
    of the discounted objective ``E[sum_t gamma^t r_t]`` (Thomas, 2014), used with ``discount_score=True``.

    :param timesteps: output of :func:`episode_timesteps`
    :param gamma: discount factor
    :return: float64 array of the same shape
    """
    return np.power(gamma, timesteps.astype(np.float64))


def episode_ids(dones: np.ndarray) -> np.ndarray:
    """
    An id for every (row, env) of a time-major rollout: episodes (or the parts of them inside the rollout) are
    numbered env by env, in time order.

    :param dones: ``(n_steps, n_envs)`` episode ended at step t
    :return: ``(n_steps, n_envs)`` int64
    """
    starts = np.vstack([np.ones((1, dones.shape[1]), dtype=bool), dones[:-1]])
    offsets = np.concatenate([[0], np.cumsum(starts.sum(axis=0))[:-1]])
    return np.cumsum(starts, axis=0) - 1 + offsets[None, :]


# ----------------------------------------------------------------------------------------------------------------
# The return estimators Psi_t, selected by name (``return_estimator=``). Adding one: a subclass and a registry line.
# ----------------------------------------------------------------------------------------------------------------


class RolloutArrays(NamedTuple):
    """What an estimator reads from a rollout: time-major ``(n_rows, n_envs)`` arrays (``(n_envs,)`` for the last two)."""

    rewards: np.ndarray  # r_t, with gamma * V(terminal observation) added at time-limit truncations (value baseline)
    dones: np.ndarray
    timesteps: np.ndarray  # k_t
    returns_to_go: np.ndarray  # G_t, bootstrapped with V(s_T) where the rollout cuts an episode (value baseline)
    values: np.ndarray | None  # V(s_t) (value baseline)
    last_values: np.ndarray | None  # V(s_T) of the observation after the last row (value baseline, "steps" batches)
    start_prefix: np.ndarray  # sum_{j<k_0} gamma^j r_j of the episode running at row 0


class ReturnEstimator(ABC):
    """
    ``Psi_t``, the weight of ``grad log pi(a_t|s_t)`` in the policy gradient ``E[sum_t Psi_t grad log pi(a_t|s_t)]``.

    :param gamma: discount factor
    :param gae_lambda: GAE's lambda (only used by :class:`GAE`)
    """

    needs_value_function: ClassVar[bool] = False
    # Whether Psi_t is the same at every step of an episode (one number per episode)
    per_episode: ClassVar[bool] = False

    def __init__(self, gamma: float, gae_lambda: float) -> None:
        self.gamma = gamma
        self.gae_lambda = gae_lambda

    @abstractmethod
    def estimate(self, rollout: RolloutArrays) -> np.ndarray:
        """``Psi_t`` for every (row, env), float64."""

    def value_targets(self, rollout: RolloutArrays, psi: np.ndarray) -> np.ndarray:
        """What ``V(s_t)`` is regressed on: the (bootstrapped) reward-to-go."""
        return rollout.returns_to_go


class TotalReturn(ReturnEstimator):
    """``Psi_t = R(tau)``, the whole trajectory's return (:func:`total_return`; Williams, 1992; Seita's (i))."""

    per_episode = True

    def estimate(self, rollout: RolloutArrays) -> np.ndarray:
        return total_return(rollout.returns_to_go, rollout.timesteps, rollout.start_prefix, self.gamma)


class RewardToGo(ReturnEstimator):
    """``Psi_t = G_t``, the return from step ``t`` on (:func:`reward_to_go`; Seita's (iii))."""

    def estimate(self, rollout: RolloutArrays) -> np.ndarray:
        return rollout.returns_to_go


class GAE(ReturnEstimator):
    """
    ``Psi_t = A_t + V(s_t)``, the TD(lambda) return (Schulman et al., 2016, eq. 16 and section 5): with the value
    baseline ``b_t = V(s_t)``, ``Psi_t - b_t`` is GAE's advantage ``A_t`` (:func:`gae_advantages`). ``V`` is regressed
    on the same TD(lambda) return.
    """

    needs_value_function = True

    def estimate(self, rollout: RolloutArrays) -> np.ndarray:
        assert rollout.values is not None, "GAE needs V(s_t)"
        last_values = np.zeros(rollout.rewards.shape[1]) if rollout.last_values is None else rollout.last_values
        advantages = gae_advantages(rollout.rewards, rollout.values, rollout.dones, last_values, self.gamma, self.gae_lambda)
        return advantages + rollout.values

    def value_targets(self, rollout: RolloutArrays, psi: np.ndarray) -> np.ndarray:
        return psi


RETURN_ESTIMATORS: dict[str, type[ReturnEstimator]] = {
    "total": TotalReturn,
    "reward_to_go": RewardToGo,
    "gae": GAE,
}
