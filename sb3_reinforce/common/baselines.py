"""
Baselines ``b_t`` subtracted from the return estimate ``Psi_t`` (``baseline=``: a registered name or a class).

Any ``b_t`` that does not depend on ``a_t`` leaves the gradient unbiased, because
``E_{a_t}[grad log pi(a_t|s_t)] = 0`` (Williams, 1992; Daniel Seita, "Going Deeper Into Reinforcement Learning:
Fundamentals of Policy Gradients", 2017, "How to Introduce a Baseline"); a good one (close to ``E[Psi_t | s_t]``)
reduces its variance.

A baseline is built once per model, ``baseline_class(policy, **baseline_kwargs)``, and has two methods, called once
per batch:

- :meth:`Baseline.predict` gives ``b_t`` on the batch's steps, with what was fitted on earlier batches;
- :meth:`Baseline.fit` then fits it to that batch, after the policy step, so that a baseline never sees the returns
  it is subtracted from.

What the algorithm must know about a baseline is declared on its class (:attr:`Baseline.needs_value_function`,
:attr:`Baseline.min_episodes`, :attr:`Baseline.is_constant`, :attr:`Baseline.per_parameter`) and checked by the class
(:meth:`Baseline.check`). A new baseline is a subclass, passed as ``baseline=MyBaseline`` (``docs/reinforce.md`` has
an example); what it fits is saved with the model.
"""

import warnings
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_reinforce.common import scores
from sb3_reinforce.common.batch import ReinforceBatch
from sb3_reinforce.common.optim import fit_value_function


class Baseline:
    """
    The interface of a baseline, and ``b_t = 0``.

    :param policy: the model's policy (what a baseline may evaluate or train: its value head, its scores)
    """

    # Whether b_t is the policy's value head V(s_t): V is then evaluated after each rollout (batch.values), and
    # bootstrapped from at truncations and cut-offs
    needs_value_function: ClassVar[bool] = False
    # The fewest complete episodes a batch must have (> 1: the baseline needs batch_mode="episodes")
    min_episodes: ClassVar[int] = 1
    # Whether b_t is one number for every step of the batch (normalize_advantage=True then removes it again)
    is_constant: ClassVar[bool] = False
    # Whether b is one constant per policy parameter, subtracted from the gradient (gradient_offset), not from Psi_t
    per_parameter: ClassVar[bool] = False
    # Whether image observations can be used (False: the baseline regresses on the flattened observation)
    accepts_images: ClassVar[bool] = True

    def __init__(self, policy: ActorCriticPolicy) -> None:
        self.policy = policy

    @classmethod
    def check(
        cls,
        name: str,
        batch_mode: str,
        n_episodes: int,
        normalize_advantage: bool,
        observation_space: spaces.Space | None,
    ) -> None:
        """
        Raise ValueError (or warn) where the algorithm's settings cannot work with this baseline; called by the
        algorithm's constructor. Subclasses that need more call ``super().check(...)`` first.

        :param name: the baseline as the user named it, for the messages (``"'loo'"``, ``"MyBaseline"``)
        """
        if cls.min_episodes > 1 and batch_mode != "episodes":
            raise ValueError(
                f"baseline={name} compares each episode with the other complete episodes of its batch, but "
                f"batch_mode={batch_mode!r}: use batch_mode='episodes' (with n_episodes >= {cls.min_episodes})."
            )
        if cls.min_episodes > 1 and n_episodes < cls.min_episodes:
            raise ValueError(
                f"Invalid n_episodes={n_episodes!r}: allowed values are integers >= {cls.min_episodes} with "
                f"baseline={name} (the baseline of each episode comes from the others)."
            )
        if cls.per_parameter and normalize_advantage:
            raise ValueError(
                f"baseline={name} subtracts one constant per parameter from the gradient, which cannot be combined "
                "with normalize_advantage=True (a per-step normalisation of Psi_t - b_t): pass "
                "normalize_advantage=False, or use a per-step baseline such as 'optimal_scalar'."
            )
        subspaces = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
        if not cls.accepts_images and any(space is not None and is_image_space(space) for space in subspaces):
            raise ValueError(
                f"baseline={name} regresses on the flattened observation, which is not practical for image "
                f"observations ({observation_space}); allowed here: None, 'mean', 'value', 'optimal', 'optimal_scalar', "
                "'loo', or a baseline of your own."
            )
        if cls.is_constant and normalize_advantage:
            warnings.warn(
                f"baseline={name} is a constant, which normalize_advantage=True removes again (normalisation "
                "subtracts the batch mean): the baseline has no effect. Pass normalize_advantage=False to use it.",
                UserWarning,
                stacklevel=3,
            )

    def predict(self, batch: ReinforceBatch) -> th.Tensor:
        """
        :param batch: a batch whose ``psi``, ``values``, ``timesteps``, ``segment_ids`` and observations are set
        :return: ``(len(batch),)`` ``b_t`` of each step, with what was fitted on earlier batches
        """
        return th.zeros(len(batch), dtype=th.float64, device=batch.psi.device)

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        """Fit to the batch it was just used on, after the policy step; returns what to log."""
        return {}

    def gradient_offset(self, score_sums: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        """
        What the baseline takes off a gradient estimate, by parameter name, given ``S``: the matching sums of
        ``w_t grad log pi(a_t|s_t)`` (per episode, or one for the batch). Nothing for a per-step ``b_t``, which is in
        ``Psi_t - b_t`` already; ``b * S`` for a baseline with one constant per parameter (:attr:`per_parameter`).
        """
        return {}

    def __getstate__(self) -> dict[str, Any]:
        # Saved with the model without its policy (the model saves that); REINFORCE gives it the loaded policy.
        state = self.__dict__.copy()
        state.pop("policy", None)
        return state


class NoBaseline(Baseline):
    """``b_t = 0`` (``baseline=None``): the plain estimator."""


def episode_estimates(
    policy: ActorCriticPolicy, batch: ReinforceBatch, weights: list[th.Tensor], baselines: list[Baseline]
) -> list[dict[str, th.Tensor]]:
    """
    Policy-gradient estimates per episode of the batch, ``g_i = sum_{t in i} weights_t grad log pi(a_t|s_t)``, less
    what a per-parameter baseline takes off (``b * S_i``, :meth:`Baseline.gradient_offset`), for several weight
    vectors in one backward pass: the one place where a baseline enters per-episode gradients (training's callback,
    the diagnostics and the variance study).

    :param weights: each ``(len(batch),)``: every step's weight, e.g. ``w_t (Psi_t - b_t)``
    :param baselines: the baseline each weight vector was computed with
    :return: for each weight vector, ``{name: (n_segments, *param.shape)}`` for every parameter the actor depends on
    """
    per_parameter = any(baseline.per_parameter for baseline in baselines)
    vectors = [*weights, batch.score_weights] if per_parameter else list(weights)
    sums = scores.episode_gradients(
        policy, batch.observations, batch.actions, vectors, batch.segment_ids, batch.n_segments,
        action_masks=batch.action_masks,
    )  # fmt: skip
    episode_scores = sums.pop() if per_parameter else {}
    estimates = []
    for gradients, baseline in zip(sums, baselines, strict=True):
        offsets = baseline.gradient_offset(episode_scores) if baseline.per_parameter else {}
        estimates.append({name: g - offsets[name] if name in offsets else g for name, g in gradients.items()})
    return estimates


class ConstantBaseline(Baseline):
    """
    A baseline that is the same number ``b`` for every step (0 until it is first fitted): the reinforcement
    baseline of Williams (1992), which may be any quantity that does not depend on the action.
    """

    is_constant = True

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__(policy)
        self.value = 0.0

    def predict(self, batch: ReinforceBatch) -> th.Tensor:
        return th.full((len(batch),), self.value, dtype=th.float64, device=batch.psi.device)


class MeanBaseline(ConstantBaseline):
    """
    ``b = mean of Psi`` over the previous batch (0 on the first): a constant that does not depend on the current
    batch, hence exactly unbiased.
    """

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        if len(batch) > 0:
            self.value = float(batch.psi.mean())
        return {}


def _gradient_and_score(policy: ActorCriticPolicy, batch: ReinforceBatch) -> list[dict[str, th.Tensor]]:
    """Per episode, ``G_i = sum_t w_t s_t Psi_t`` and ``S_i = sum_t w_t s_t`` (``s_t = grad log pi(a_t|s_t)``)."""
    weights = batch.score_weights
    return scores.episode_gradients(
        policy, batch.observations, batch.actions, [weights * batch.psi.float(), weights], batch.segment_ids,
        batch.n_segments, action_masks=batch.action_masks,
    )  # fmt: skip


class OptimalScalarBaseline(ConstantBaseline):
    """
    The minimum-variance constant baseline (Greensmith, Bartlett and Baxter, 2004, section 3).

    For the per-episode estimate ``g_i(b) = sum_t w_t s_t (Psi_t - b)``, with ``s_t = grad log pi(a_t|s_t)``, write
    ``S_i = sum_t w_t s_t`` (the episode's score) and ``G_i = sum_t w_t s_t Psi_t``; then
    ``E||g(b) - E g||^2`` is smallest at

        b* = E[<G, S>] / E[||S||^2]                                               (:meth:`optimal_constant`)

    (one ``b`` for all parameters; :class:`OptimalBaseline` has one per parameter). With the whole-trajectory return
    (``Psi_t = R(tau)``), ``G_i = R_i S_i`` and this is ``E[||S||^2 R] / E[||S||^2]``: returns weighted by the squared
    norm of the episode's score. Fitted on each batch after the policy step, with the updated policy's scores, for the
    next batch.
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

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        if len(batch) > 0:
            weighted, episode_scores = (scores.flatten(g) for g in _gradient_and_score(self.policy, batch))
            value = self.optimal_constant(weighted, episode_scores)
            if value is not None:
                self.value = value
        return {}


class OptimalBaseline(Baseline):
    """
    The minimum-variance constant baseline, one constant per parameter (Greensmith, Bartlett and Baxter, 2004;
    Peters and Schaal, 2008, "Reinforcement learning of motor skills with policy gradients", eq. 13).

    With ``S_i = sum_t w_t grad log pi(a_t|s_t)`` the episode's score and ``G_i = sum_t w_t grad log pi(a_t|s_t) Psi_t``,
    the estimate of component ``k`` with a constant ``b_k`` is ``g_ik = G_ik - b_k S_ik``; as ``E[S_ik] = 0`` it stays
    unbiased for any ``b_k``, and its variance ``E[(G_ik - b_k S_ik)^2] - (E g_k)^2`` is smallest at

        b_k* = E[G_k S_k] / E[S_k^2]            (with Psi_t = R(tau): E[S_k^2 R] / E[S_k^2])

    for every component at once, so the total variance is never above that of the best single constant
    (:class:`OptimalScalarBaseline`). ``b`` is a vector, not a per-step ``b_t``: the loss uses ``Psi_t`` and
    :meth:`gradient_offset` takes ``b * S`` off the gradient. Fitted on each batch after the policy step, with the
    updated policy's scores, for the next batch (0 before the first), so ``b`` never depends on the episodes it is used
    on. Needs ``normalize_advantage=False``.
    """

    per_parameter = True

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__(policy)
        self.constants: dict[str, np.ndarray] | None = None

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

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        if len(batch) > 0:
            self.constants = self.optimal_constants(*_gradient_and_score(self.policy, batch))
        return {}

    def gradient_offset(self, score_sums: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        """``b * S`` per parameter (nothing before the first fit)."""
        if self.constants is None:
            return {}
        return {
            name: th.as_tensor(self.constants[name], dtype=score.dtype, device=score.device) * score
            for name, score in score_sums.items()
            if name in self.constants
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

    min_episodes = 2

    @staticmethod
    def leave_one_out(
        psi: th.Tensor, segment_ids: th.Tensor, n_episodes: int, timesteps: th.Tensor, per_episode: bool
    ) -> th.Tensor:
        """
        ``b`` of every step of a batch of ``n_episodes`` complete episodes (flat tensors of their steps).

        :param psi: ``(n_steps,)`` ``Psi_t``
        :param segment_ids: ``(n_steps,)`` in ``[0, n_episodes)``
        :param n_episodes: number of episodes, at least 2
        :param timesteps: ``(n_steps,)`` ``k_t``, the step's index in its episode
        :param per_episode: whether ``Psi`` is one number per episode (the whole-trajectory return)
        """
        if per_episode:
            returns = th.zeros(n_episodes, dtype=psi.dtype, device=psi.device).index_copy(0, segment_ids, psi)
            return (returns.sum() - returns[segment_ids]) / (n_episodes - 1)
        sums, counts = th.bincount(timesteps, weights=psi), th.bincount(timesteps)
        others = counts[timesteps] - 1  # the other episodes that reach step k
        return th.where(others > 0, (sums[timesteps] - psi) / others.clamp(min=1), th.zeros_like(psi))

    def predict(self, batch: ReinforceBatch) -> th.Tensor:
        if batch.n_segments < 2:
            raise ValueError(
                f"The leave-one-out baseline needs at least 2 complete episodes per batch, but this batch has "
                f"{batch.n_segments}: use batch_mode='episodes' with n_episodes >= 2."
            )
        return self.leave_one_out(batch.psi, batch.segment_ids, batch.n_segments, batch.timesteps, batch.psi_per_episode)


class LinearFeatureBaseline(Baseline):
    """
    The linear-feature baseline of rllab and garage (Duan et al., 2016): ridge regression of ``Psi_t`` on

        phi(s_t, k_t) = [s, s^2, u, u^2, u^3, 1],   s = clip(obs, -10, 10),   u = k_t / 100

    (``k_t`` the step's index in its episode, observations flattened, one-hot for discrete spaces), fitted by solving
    ``(X^T X + c I) w = X^T y``. As in rllab, the ridge coefficient ``c`` starts at ``reg_coef`` and grows tenfold (up
    to 5 times) until the solution is finite.

    :param policy: the model's policy (its observation space)
    :param reg_coef: initial ridge coefficient
    """

    def __init__(self, policy: ActorCriticPolicy, reg_coef: float = 1e-5) -> None:
        super().__init__(policy)
        self.reg_coef = reg_coef
        self.coef: np.ndarray | None = None

    accepts_images = False

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
    def flatten_observations(observations: PyTorchObs, observation_space: spaces.Space) -> np.ndarray:
        """Observations as flat float vectors (one-hot for discrete spaces), the dict's keys in sorted order."""
        processed = preprocess_obs(observations, observation_space, normalize_images=False)
        if isinstance(processed, dict):
            return th.cat([processed[key].reshape(len(processed[key]), -1) for key in sorted(processed)], dim=1).cpu().numpy()
        return processed.reshape(len(processed), -1).cpu().numpy()

    def batch_features(self, batch: ReinforceBatch) -> np.ndarray:
        """``phi(s_t, k_t)`` of every step of the batch."""
        flat = self.flatten_observations(batch.observations, self.policy.observation_space)
        return self.features(flat, batch.timesteps.cpu().numpy())

    def predict(self, batch: ReinforceBatch) -> th.Tensor:
        if self.coef is None or len(batch) == 0:
            return super().predict(batch)
        return th.as_tensor(self.batch_features(batch) @ self.coef, device=batch.psi.device)

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

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        if len(batch) > 0:
            coef = self.ridge_fit(self.batch_features(batch), batch.psi.cpu().numpy(), self.reg_coef)
            if coef is not None:  # else keep the previous coefficients rather than a non-finite fit
                self.coef = coef
        return {}


class ValueBaseline(Baseline):
    """
    ``b_t = V(s_t)``, the policy's learned value head (the state-value baseline, Seita 2017; Schulman et al., 2016).

    ``V(s_t)`` is evaluated after each rollout, in one batched pass, with the parameters that generated it (the rollout
    loop only runs the actor). It is trained by the ``vf_coef`` term of the policy step and, in :meth:`fit`, by
    ``n_epochs`` more full-batch regression steps (:func:`~sb3_reinforce.common.optim.fit_value_function`) with the
    policy's optimizer towards the estimator's value targets. REINFORCE passes its ``n_value_epochs``, ``vf_coef``
    and ``max_grad_norm``.

    :param policy: the model's policy, whose value head this is
    :param n_epochs: regression steps per batch
    :param vf_coef: factor of the squared error
    :param max_grad_norm: gradient clipping of each regression step
    """

    needs_value_function = True

    def __init__(
        self, policy: ActorCriticPolicy, n_epochs: int = 10, vf_coef: float = 0.5, max_grad_norm: float = 0.5
    ) -> None:
        super().__init__(policy)
        self.n_epochs = n_epochs
        self.vf_coef = vf_coef
        self.max_grad_norm = max_grad_norm

    def predict(self, batch: ReinforceBatch) -> th.Tensor:
        assert batch.values is not None, "the value baseline's batch has V(s_t)"
        return batch.values

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        assert batch.value_targets is not None
        loss = fit_value_function(
            self.policy, self.policy.optimizer, batch.observations, batch.value_targets, self.n_epochs, self.vf_coef,
            self.max_grad_norm,
        )  # fmt: skip
        return {"train/value_loss": loss}


BASELINES: dict[str | None, type[Baseline]] = {
    None: NoBaseline,
    "mean": MeanBaseline,
    "value": ValueBaseline,
    "linear": LinearFeatureBaseline,
    "optimal": OptimalBaseline,
    "optimal_scalar": OptimalScalarBaseline,
    "loo": LeaveOneOutBaseline,
}
