"""
Baselines ``b_t`` subtracted from the return estimate ``Psi_t``, selected by name (``baseline=``).

Any ``b_t`` that does not depend on ``a_t`` leaves the gradient unbiased, because
``E_{a_t}[grad log pi(a_t|s_t)] = 0`` (Williams, 1992; Daniel Seita, "Going Deeper Into Reinforcement Learning:
Fundamentals of Policy Gradients", 2017, "How to Introduce a Baseline"); a good one (close to ``E[Psi_t | s_t]``)
reduces its variance.

Every baseline has the same two methods, called once per batch:

- :meth:`Baseline.predict` gives ``b_t`` on the batch's used steps, with what was fitted on earlier batches (and, for
  the value function, ``V(s_t)`` as the rollout's policy gives it);
- :meth:`Baseline.fit` then fits it to that batch, after the policy step, so that a baseline never sees the returns
  it is subtracted from.

Adding a baseline: a subclass and a line in :data:`BASELINES`.
"""

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.utils import obs_as_tensor
from torch.nn import functional as F

from sb3_reinforce.common import scores

if TYPE_CHECKING:
    from sb3_reinforce.common.buffers import ReinforceBatch, ReinforceRolloutBuffer
    from sb3_reinforce.reinforce.reinforce import REINFORCE


class Baseline:
    """``b_t = 0`` (``baseline=None``): the plain estimator."""

    # Whether the baseline is the policy's learned value head (evaluated after each rollout, and bootstrapped from).
    uses_value_function: ClassVar[bool] = False

    def predict(self, rollout: "ReinforceRolloutBuffer") -> np.ndarray:
        """
        :param rollout: a rollout whose ``psi``, ``timesteps``, ``values`` and ``valid`` are computed
        :return: ``(n_used,)`` ``b_t`` on the used steps (``rollout.valid``), in ``np.nonzero`` order
        """
        return np.zeros(int(rollout.valid.sum()))

    def fit(self, batch: "ReinforceBatch", model: "REINFORCE") -> dict[str, float]:
        """Fit to the batch it was just used on; returns what to log (``{"train/value_loss": ...}``)."""
        return {}

    def parameter_constants(self) -> dict[str, np.ndarray] | None:
        """
        A baseline with one constant per policy parameter (:class:`OptimalBaseline`) is not a per-step ``b_t``: it
        returns ``{parameter name: b}`` (arrays of the parameters' shapes), subtracted from the gradient as
        ``b * sum_t w_t grad log pi(a_t|s_t)`` (:func:`subtract_parameter_baseline`). None for every other baseline.
        """
        return None

    def gradient_term(self, policy: ActorCriticPolicy, batch: "ReinforceBatch", log_prob: th.Tensor) -> dict[str, th.Tensor]:
        """What the baseline adds to the gradient of the policy loss, by parameter name (nothing for a per-step ``b_t``)."""
        return {}


class ConstantBaseline(Baseline):
    """
    A baseline that is the same number ``b`` for every step (0 until it is first fitted): the reinforcement
    baseline of Williams (1992), which may be any quantity that does not depend on the action.
    """

    def __init__(self) -> None:
        self.value = 0.0

    def predict(self, rollout: "ReinforceRolloutBuffer") -> np.ndarray:
        return np.full(int(rollout.valid.sum()), self.value)


class MeanBaseline(ConstantBaseline):
    """
    ``b = mean of Psi`` over the previous batch (0 on the first): a constant that does not depend on the current
    batch, hence exactly unbiased.
    """

    def fit(self, batch: "ReinforceBatch", model: "REINFORCE") -> dict[str, float]:
        if len(batch.psi) > 0:
            self.value = float(batch.psi.mean())
        return {}


class OptimalConstantBaseline(ConstantBaseline):
    """
    The minimum-variance constant baseline (Greensmith, Bartlett and Baxter, 2004, section 3).

    For the per-episode estimate ``g_i(b) = sum_t w_t s_t (Psi_t - b)``, with ``s_t = grad log pi(a_t|s_t)``, write
    ``S_i = sum_t w_t s_t`` (the episode's score) and ``G_i = sum_t w_t s_t Psi_t``; then
    ``E||g(b) - E g||^2`` is smallest at

        b* = E[<G, S>] / E[||S||^2]                                               (:meth:`optimal_constant`)

    (the scalar form, one ``b`` for all parameters: ``baseline="optimal_scalar"``; :class:`OptimalBaseline` has one per
    parameter). With the whole-trajectory return (``Psi_t = R(tau)``),
    ``G_i = R_i S_i`` and this is ``E[||S||^2 R] / E[||S||^2]``: returns weighted by the squared norm of the episode's
    score. Fitted on each batch after the policy step, with the updated policy's scores, for the next batch.
    """

    @staticmethod
    def optimal_constant(weighted_scores: th.Tensor, episode_scores: th.Tensor) -> float | None:
        """
        ``b* = sum_i <G_i, S_i> / sum_i ||S_i||^2`` (None when every score is zero).

        :param weighted_scores: ``(n_episodes, n_params)`` the ``G_i``
        :param episode_scores: ``(n_episodes, n_params)`` the ``S_i``
        """
        denominator = float((episode_scores**2).sum())
        return float((weighted_scores * episode_scores).sum()) / denominator if denominator > 0 else None

    def fit(self, batch: "ReinforceBatch", model: "REINFORCE") -> dict[str, float]:
        if len(batch.psi) == 0:
            return {}
        weights = th.ones_like(batch.advantages) if batch.score_weights is None else batch.score_weights
        # Per-episode G_i = sum_t w_t s_t Psi_t and S_i = sum_t w_t s_t
        per_episode = scores.episode_gradients(
            model.policy, batch.observations, batch.actions, [weights * batch.psi.float(), weights], batch.episode_ids,
            batch.n_episodes, action_masks=batch.action_masks,
        )  # fmt: skip
        weighted, episode_scores = (scores.flatten(g) for g in per_episode)
        value = self.optimal_constant(weighted, episode_scores)
        if value is not None:
            self.value = value
        return {}


def subtract_parameter_baseline(
    gradients: dict[str, th.Tensor], episode_scores: dict[str, th.Tensor], constants: dict[str, np.ndarray]
) -> dict[str, th.Tensor]:
    """
    ``g - b * S`` per parameter: the gradient estimates ``g`` (computed with ``b_t = 0``) with a per-parameter
    baseline ``b`` subtracted, ``S`` the matching sums of ``w_t grad log pi(a_t|s_t)`` (same shapes as ``g``: per
    episode, or one for the batch). Parameters without a constant are left as they are.
    """
    return {
        name: value - th.as_tensor(constants[name], dtype=value.dtype, device=value.device) * episode_scores[name]
        if name in constants
        else value
        for name, value in gradients.items()
    }


class OptimalBaseline(Baseline):
    """
    The minimum-variance constant baseline, one constant per parameter (Greensmith, Bartlett and Baxter, 2004;
    Peters and Schaal, 2008, "Reinforcement learning of motor skills with policy gradients", eq. 13).

    With ``S_i = sum_t w_t grad log pi(a_t|s_t)`` the episode's score and ``G_i = sum_t w_t grad log pi(a_t|s_t) Psi_t``,
    the estimate of component ``k`` with a constant ``b_k`` is ``g_ik = G_ik - b_k S_ik``; as ``E[S_ik] = 0`` it stays
    unbiased for any ``b_k``, and its variance ``E[(G_ik - b_k S_ik)^2] - (E g_k)^2`` is smallest at

        b_k* = E[G_k S_k] / E[S_k^2]            (with Psi_t = R(tau): E[S_k^2 R] / E[S_k^2])

    for every component at once, so the total variance is never above that of the best single constant
    (:class:`OptimalConstantBaseline`). ``b`` is a vector, not a per-step ``b_t``: the loss uses ``Psi_t`` and the
    policy step subtracts ``b * grad mean_t w_t log pi(a_t|s_t)`` from the gradient (:meth:`gradient_term`). Fitted on
    each batch after the policy step, with the updated policy's scores, for the next batch (0 before the first), so
    ``b`` never depends on the episodes it is used on. Needs ``normalize_advantage=False``.
    """

    def __init__(self) -> None:
        self.constants: dict[str, np.ndarray] | None = None

    def parameter_constants(self) -> dict[str, np.ndarray] | None:
        return self.constants

    @staticmethod
    def optimal_constants(
        weighted_scores: dict[str, th.Tensor], episode_scores: dict[str, th.Tensor]
    ) -> dict[str, np.ndarray]:
        """
        ``b_k = sum_i G_ik S_ik / sum_i S_ik^2`` for every component (0 where every ``S_ik`` is zero).

        :param weighted_scores: ``{name: (n_episodes, *shape)}`` the ``G_i``
        :param episode_scores: ``{name: (n_episodes, *shape)}`` the ``S_i``
        """
        constants = {}
        for name, score in episode_scores.items():
            numerator = (weighted_scores[name].double() * score.double()).sum(dim=0)
            denominator = (score.double() ** 2).sum(dim=0)
            safe = th.where(denominator > 0, denominator, th.ones_like(denominator))
            constants[name] = th.where(denominator > 0, numerator / safe, th.zeros_like(numerator)).cpu().numpy()
        return constants

    def fit(self, batch: "ReinforceBatch", model: "REINFORCE") -> dict[str, float]:
        if len(batch.psi) == 0:
            return {}
        weights = th.ones_like(batch.advantages) if batch.score_weights is None else batch.score_weights
        weighted, episode_scores = scores.episode_gradients(
            model.policy, batch.observations, batch.actions, [weights * batch.psi.float(), weights], batch.episode_ids,
            batch.n_episodes, action_masks=batch.action_masks,
        )  # fmt: skip
        self.constants = self.optimal_constants(weighted, episode_scores)
        return {}

    def gradient_term(self, policy: ActorCriticPolicy, batch: "ReinforceBatch", log_prob: th.Tensor) -> dict[str, th.Tensor]:
        """
        ``b * grad mean_t w_t log pi(a_t|s_t)`` per parameter name: added to the gradient of the loss
        ``-mean_t w_t Psi_t log pi(a_t|s_t)``, it makes the step's direction the sum over the batch's episodes of
        ``G_i - b S_i`` (divided by the number of steps). Empty before the first fit.
        """
        if self.constants is None:
            return {}
        weights = th.ones_like(log_prob) if batch.score_weights is None else batch.score_weights
        named = dict(policy.named_parameters())
        names = list(self.constants)
        score = th.autograd.grad((weights * log_prob).mean(), [named[name] for name in names], retain_graph=True)
        return {
            name: th.as_tensor(self.constants[name], dtype=s.dtype, device=s.device) * s
            for name, s in zip(names, score, strict=True)
        }


class LeaveOneOutBaseline(Baseline):
    """
    The leave-one-out baseline (Kool, van Hoof and Welling, 2019, "Buy 4 REINFORCE samples, get a baseline for
    free!"; Ahmadian et al., 2024, RLOO): each episode's baseline is the mean return of the *other* episodes of the
    same batch. It uses the current batch, unlike :class:`MeanBaseline`, and stays exactly unbiased: the batch's
    episodes are independent draws of the current policy (an episode joins a whole-episode batch when it starts,
    from a fresh reset, never because of its length or return), so ``b_i`` is independent of episode ``i``'s actions.

    - With the whole-trajectory return (``Psi_t = R_i`` at every step), over the ``N`` episodes of the batch:

          b_i = (1 / (N - 1)) sum_{j != i} R_j

    - With any per-step ``Psi`` (reward-to-go), the per-time-step form: ``b_{i,t}`` is the mean of ``Psi_{j,t}`` over
      the other episodes ``j`` that reach step ``t`` (``k_t``, the step's index in its episode):

          b_{i,t} = (1 / |J_t^i|) sum_{j in J_t^i} G_{j,t},   J_t^i = {j != i : episode j is longer than t}

      An episode that ended before step ``t`` contributes nothing (its return from ``t`` on is not a draw of
      ``G_t``; counting it as 0 would pull the baseline towards 0 wherever episodes differ in length). When no
      other episode reaches step ``t``, ``b_{i,t} = 0``. Which episodes reach ``t`` depends on the other episodes
      only, so ``b_{i,t}`` is still independent of episode ``i`` and the estimate unbiased.

    Needs whole-episode batches (``batch_mode="episodes"``) of at least 2 episodes. Nothing is fitted.
    """

    @staticmethod
    def leave_one_out(
        psi: np.ndarray, episode_ids: np.ndarray, n_episodes: int, timesteps: np.ndarray, per_episode: bool
    ) -> np.ndarray:
        """
        ``b`` of every step of a batch of ``n_episodes`` complete episodes (flat arrays of their steps).

        :param psi: ``(n_steps,)`` ``Psi_t``
        :param episode_ids: ``(n_steps,)`` in ``[0, n_episodes)``
        :param n_episodes: number of episodes, at least 2
        :param timesteps: ``(n_steps,)`` ``k_t``, the step's index in its episode
        :param per_episode: whether ``Psi`` is one number per episode (the whole-trajectory return)
        """
        if per_episode:
            returns = np.zeros(n_episodes)
            returns[episode_ids] = psi
            return (returns.sum() - returns[episode_ids]) / (n_episodes - 1)
        sums, counts = np.bincount(timesteps, weights=psi), np.bincount(timesteps)
        others = counts[timesteps] - 1  # the other episodes that reach step k
        return np.where(others > 0, (sums[timesteps] - psi) / np.maximum(others, 1), 0.0)

    def predict(self, rollout: "ReinforceRolloutBuffer") -> np.ndarray:
        rows, envs, ids, n_episodes = rollout.episodes(rollout.valid)
        if n_episodes < 2:
            raise ValueError(
                f"baseline='loo' needs at least 2 complete episodes per batch, but this batch has {n_episodes}: use "
                "batch_mode='episodes' with n_episodes >= 2."
            )
        assert rollout.estimator is not None
        return self.leave_one_out(
            rollout.psi[rows, envs], ids, n_episodes, rollout.timesteps[rows, envs], rollout.estimator.per_episode
        )


class LinearFeatureBaseline(Baseline):
    """
    The linear-feature baseline of rllab and garage (Duan et al., 2016): ridge regression of ``Psi_t`` on

        phi(s_t, k_t) = [s, s^2, u, u^2, u^3, 1],   s = clip(obs, -10, 10),   u = k_t / 100

    (``k_t`` the step's index in its episode, observations flattened, one-hot for discrete spaces), fitted by solving
    ``(X^T X + c I) w = X^T y``. As in rllab, the ridge coefficient ``c`` starts at ``reg_coef`` and grows tenfold (up
    to 5 times) until the solution is finite.

    :param reg_coef: initial ridge coefficient
    """

    def __init__(self, reg_coef: float = 1e-5) -> None:
        self.reg_coef = reg_coef
        self.coef: np.ndarray | None = None

    @staticmethod
    def features(flat_obs: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """
        :param flat_obs: ``(n_samples, obs_dim)`` observations, flattened (one-hot for discrete spaces)
        :param timesteps: ``(n_samples,)`` index of each step in its episode
        :return: ``(n_samples, 2 * obs_dim + 4)`` features
        """
        obs = np.clip(flat_obs.astype(np.float64), -10.0, 10.0)
        u = (np.asarray(timesteps, dtype=np.float64) / 100.0)[:, None]
        return np.concatenate([obs, obs**2, u, u**2, u**3, np.ones_like(u)], axis=1)

    @staticmethod
    def flatten_observations(observations: th.Tensor | TensorDict, observation_space: spaces.Space) -> np.ndarray:
        """Observations as flat float vectors (one-hot for discrete spaces), the dict's keys in sorted order."""
        processed = preprocess_obs(observations, observation_space, normalize_images=False)
        if isinstance(processed, dict):
            return th.cat([processed[key].reshape(len(processed[key]), -1) for key in sorted(processed)], dim=1).cpu().numpy()
        return processed.reshape(len(processed), -1).cpu().numpy()

    def predict(self, rollout: "ReinforceRolloutBuffer") -> np.ndarray:
        n = int(rollout.valid.sum())
        if self.coef is None or n == 0:
            return np.zeros(n)
        rows, envs = np.nonzero(rollout.valid)
        observations = obs_as_tensor(rollout.observations_at(rows, envs), rollout.device)  # type: ignore[arg-type]
        flat = self.flatten_observations(observations, rollout.observation_space)
        return self.features(flat, rollout.timesteps[rows, envs]) @ self.coef

    @staticmethod
    def ridge_fit(features: np.ndarray, targets: np.ndarray, reg_coef: float = 1e-5) -> np.ndarray | None:
        """
        ``w`` solving ``(X^T X + c I) w = X^T y``, ``c`` from ``reg_coef`` growing tenfold (up to 5 times) until ``w`` is
        finite; None if it never is.
        """
        gram = features.T @ features
        rhs = features.T @ targets.astype(np.float64)
        for attempt in range(5):
            try:
                coef = np.linalg.solve(gram + reg_coef * 10.0**attempt * np.eye(len(gram)), rhs)
            except np.linalg.LinAlgError:
                continue
            if np.all(np.isfinite(coef)):
                return coef
        return None

    def fit(self, batch: "ReinforceBatch", model: "REINFORCE") -> dict[str, float]:
        if len(batch.psi) > 0:
            flat = self.flatten_observations(batch.observations, model.observation_space)
            features = self.features(flat, batch.timesteps.cpu().numpy())
            coef = self.ridge_fit(features, batch.psi.cpu().numpy(), self.reg_coef)
            if coef is not None:  # else keep the previous coefficients rather than a non-finite fit
                self.coef = coef
        return {}


def gradient_step(
    optimizer: th.optim.Optimizer,
    parameters: list[th.nn.Parameter],
    loss: th.Tensor,
    max_grad_norm: float,
    name: str,
    added: list[tuple[th.nn.Parameter, th.Tensor]] | None = None,
) -> float:
    """
    Backward pass, gradient clipping and optimizer step; return the gradient norm before clipping.

    :param added: terms added to the gradient of ``loss`` before clipping (a per-parameter baseline's)

    :raises FloatingPointError: if the loss is NaN or infinite, naming it (``name``)
    """
    if not th.isfinite(loss):
        raise FloatingPointError(
            f"The {name} is {loss.item()}; check the rewards' scale, the learning rate and max_grad_norm."
        )
    optimizer.zero_grad()
    loss.backward()
    for param, term in added or []:
        param.grad = term.detach() if param.grad is None else param.grad + term.detach()
    grad_norm = th.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return float(grad_norm)


def fit_value_function(
    policy: ActorCriticPolicy,
    optimizer: th.optim.Optimizer,
    observations: th.Tensor | TensorDict,
    targets: th.Tensor,
    n_epochs: int,
    vf_coef: float = 1.0,
    max_grad_norm: float = float("inf"),
) -> float:
    """
    The value regression: ``n_epochs`` full-batch gradient steps on ``vf_coef * mean_t (V(s_t) - target_t)^2``
    (Spinning Up's VPG fits its value function many times per batch). Returns the mean squared error after them.
    """
    parameters = [param for group in optimizer.param_groups for param in group["params"]]
    for _ in range(n_epochs):
        predicted = policy.predict_values(observations).flatten()  # type: ignore[arg-type]
        gradient_step(optimizer, parameters, vf_coef * F.mse_loss(predicted, targets), max_grad_norm, "value loss")
    with th.no_grad():
        return float(F.mse_loss(policy.predict_values(observations).flatten(), targets))  # type: ignore[arg-type]


class ValueBaseline(Baseline):
    """
    ``b_t = V(s_t)``, the policy's learned value head (the state-value baseline, Seita 2017; Schulman et al., 2016).

    ``V(s_t)`` is evaluated after each rollout, in one batched pass, with the parameters that generated it (the rollout
    loop only runs the actor). It is trained by the ``vf_coef`` term of the policy step and, in :meth:`fit`, by
    ``n_value_epochs`` more regression steps (:func:`fit_value_function`) towards the estimator's value targets.
    """

    uses_value_function = True

    def predict(self, rollout: "ReinforceRolloutBuffer") -> np.ndarray:
        assert rollout.values is not None
        return rollout.values[rollout.valid]

    def fit(self, batch: "ReinforceBatch", model: "REINFORCE") -> dict[str, float]:
        assert batch.value_targets is not None
        loss = fit_value_function(
            model.policy, model.policy.optimizer, batch.observations, batch.value_targets, model.n_value_epochs,
            model.vf_coef, model.max_grad_norm,
        )  # fmt: skip
        return {"train/value_loss": loss}


BASELINES: dict[str | None, type[Baseline]] = {
    None: Baseline,
    "mean": MeanBaseline,
    "value": ValueBaseline,
    "linear": LinearFeatureBaseline,
    "optimal": OptimalBaseline,
    "optimal_scalar": OptimalConstantBaseline,
    "loo": LeaveOneOutBaseline,
}
