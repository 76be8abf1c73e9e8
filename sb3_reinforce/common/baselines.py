"""
Baselines ``b_t`` subtracted from the return estimate ``Psi_t`` (the seeds' "How to Introduce a Baseline").

Any ``b_t`` that does not depend on ``a_t`` leaves the gradient unbiased, because
``E_{a_t}[grad log pi(a_t|s_t)] = 0``; a good one (close to ``E[Psi_t | s_t]``) reduces its variance.
Every baseline here is evaluated (:meth:`predict`) before it is fitted (:meth:`fit`) to the current batch, so it
never sees the returns it is subtracted from.

The learned value function ``V(s)`` (``baseline="value"``) is the policy's own value head and is trained by the
algorithm with gradient steps; the baselines here are fitted in closed form on numpy arrays.
"""

from abc import ABC, abstractmethod

import numpy as np


class Baseline(ABC):
    """A baseline fitted in closed form: ``predict`` on a batch, then ``fit`` on that batch."""

    @abstractmethod
    def predict(self, features: np.ndarray) -> np.ndarray:
        """
        :param features: ``(n_samples, n_features)`` (ignored by baselines that are constants)
        :return: ``(n_samples,)`` baseline values
        """


class ConstantBaseline(Baseline):
    """A baseline that is the same number ``b`` for every step (0 until it is first fitted)."""

    def __init__(self) -> None:
        self.value = 0.0

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.full(len(features), self.value, dtype=np.float64)


class MeanBaseline(ConstantBaseline):
    """
    A constant baseline ``b``: the mean of ``Psi`` over a batch.

    Fitted to each batch after it was used on it, so each batch gets the mean of the previous batch's ``Psi``
    (0 on the first batch): a constant that does not depend on the current batch, hence exactly unbiased.
    """

    def fit(self, features: np.ndarray, targets: np.ndarray) -> None:
        """:param targets: ``(n_samples,)`` the batch's ``Psi_t``"""
        if len(targets) > 0:
            self.value = float(np.mean(targets))


class OptimalConstantBaseline(ConstantBaseline):
    """
    The minimum-variance constant baseline (Greensmith, Bartlett and Baxter, 2004).

    For the per-episode estimate ``g_i(b) = sum_t w_t s_t (Psi_t - b)``, with ``s_t = grad log pi(a_t|s_t)``, write
    ``S_i = sum_t w_t s_t`` (the episode's score) and ``G_i = sum_t w_t s_t Psi_t``; then
    ``E||g(b) - E g||^2`` is smallest at

        b* = E[<G, S>] / E[||S||^2]

    (the scalar form, one ``b`` for all parameters). With the whole-trajectory return (``Psi_t = R(tau)``),
    ``G_i = R_i S_i`` and this is Greensmith et al.'s ``E[||S||^2 R] / E[||S||^2]``: returns weighted by the squared
    norm of the episode's score. Fitted on a batch after it was used on it, like the other baselines.
    """

    def fit(self, weighted_scores: np.ndarray, scores: np.ndarray) -> None:
        """
        :param weighted_scores: ``(n_episodes, n_params)`` the ``G_i``
        :param scores: ``(n_episodes, n_params)`` the ``S_i``
        """
        denominator = float((scores**2).sum())
        if denominator > 0:
            self.value = float((weighted_scores * scores).sum()) / denominator


class LinearFeatureBaseline(Baseline):
    """
    The linear-feature baseline of rllab and garage: ridge regression of ``Psi_t`` on the features

        phi(s_t, k_t) = [s, s^2, u, u^2, u^3, 1],   s = clip(obs, -10, 10),   u = k_t / 100

    (``k_t`` the step's index in its episode), fitted by solving ``(X^T X + c I) w = X^T y``. As in rllab, the
    ridge coefficient ``c`` starts at ``reg_coef`` and grows tenfold (up to 5 times) until the solution is finite.

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
        u = (timesteps.astype(np.float64) / 100.0)[:, None]
        return np.concatenate([obs, obs**2, u, u**2, u**3, np.ones_like(u)], axis=1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self.coef is None:
            return np.zeros(len(features), dtype=np.float64)
        return features @ self.coef

    def fit(self, features: np.ndarray, targets: np.ndarray) -> None:
        """
        :param features: ``(n_samples, n_features)`` output of :meth:`features`
        :param targets: ``(n_samples,)`` the batch's ``Psi_t``
        """
        if len(targets) == 0:
            return
        gram = features.T @ features
        rhs = features.T @ targets.astype(np.float64)
        reg = self.reg_coef
        identity = np.eye(gram.shape[0])
        for _ in range(5):
            try:
                coef = np.linalg.solve(gram + reg * identity, rhs)
            except np.linalg.LinAlgError:
                coef = np.full(gram.shape[0], np.nan)
            if np.all(np.isfinite(coef)):
                self.coef = coef
                return
            reg *= 10.0
        # Keep the previous coefficients rather than a non-finite fit.
