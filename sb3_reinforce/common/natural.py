"""
The natural policy gradient step (Kakade, 2001, "A Natural Policy Gradient"), truncated as in TRPO (Schulman et al.,
2015, "Trust Region Policy Optimization", appendix C) without its line search:

    s = F^-1 g    (conjugate gradient, ``cg_max_steps`` iterations, Fisher-vector products only)
    theta <- theta + min(alpha, sqrt(2 delta / (s^T F s))) s

``g`` is the policy gradient of the batch (the ascent direction of the REINFORCE objective), ``F`` the Fisher
information matrix of the policy, averaged over the batch's states, plus ``cg_damping * I``, and ``delta`` the target
KL (``target_kl``): the step's KL divergence is ``delta`` in its quadratic approximation
``KL(pi_old || pi_new) ~ 1/2 d^T F d``. ``alpha`` (``natural_step_size``, infinite when None) is the step size of
Kakade's natural gradient ascent ``theta <- theta + alpha F^-1 g`` (Tianshou's NPG takes this step with a fixed
``alpha``): with it, ``delta`` is a trust region that bounds the step, and the step shrinks with the gradient once
``alpha F^-1 g`` is inside it (near an optimum, where ``g`` is small), where the KL-target step would keep a KL of
``delta`` whatever the gradient's size. ``F v`` is computed as sb3-contrib's TRPO computes it: the gradient of
``<grad KL(pi_old || pi_theta), v>`` at ``theta = theta_old``, where the Hessian of the KL is the Fisher matrix; the
linear solve is sb3-contrib's ``conjugate_gradient_solver``.
"""

import math
from collections.abc import Sequence

import torch as th
from sb3_contrib.common.utils import conjugate_gradient_solver, flat_grad
from stable_baselines3.common.distributions import Distribution
from torch import nn


def distribution_parts(distribution: Distribution) -> th.distributions.Distribution | list[th.distributions.Distribution]:
    """
    The torch distribution(s) behind an SB3 or sb3-contrib distribution. SB3's policies return one distribution
    object per policy, updated in place by each ``get_distribution`` call: keep its parts to compare two of them.
    """
    parts = getattr(distribution, "distributions", None)  # sb3-contrib's maskable multi-categorical
    return list(parts) if parts is not None else distribution.distribution  # type: ignore[return-value]


def kl_divergence(
    old: th.distributions.Distribution | list[th.distributions.Distribution],
    new: th.distributions.Distribution | list[th.distributions.Distribution],
) -> th.Tensor:
    """
    ``KL(old || new)`` of each sample, from :func:`distribution_parts` (a multi-categorical's components, and a
    diagonal Gaussian's dimensions, are summed).
    """
    if isinstance(old, list):
        assert isinstance(new, list)
        return th.stack([th.distributions.kl_divergence(p, q) for p, q in zip(old, new, strict=True)], dim=1).sum(dim=1)
    assert not isinstance(new, list)
    kl = th.distributions.kl_divergence(old, new)
    return kl.sum(dim=-1) if kl.dim() > 1 else kl


def natural_gradient_step(
    parameters: Sequence[nn.Parameter],
    gradient: th.Tensor,
    kl: th.Tensor,
    target_kl: float,
    cg_max_steps: int,
    cg_damping: float,
    max_step_size: float | None = None,
) -> tuple[th.Tensor, dict[str, float]]:
    """
    The step along the natural gradient, scaled so that its quadratic KL is ``target_kl``, or ``max_step_size * s``
    where that is smaller (not applied: see :func:`add_to_parameters`).

    :param parameters: the actor's parameters (those ``log pi`` depends on)
    :param gradient: ``g``, flat, in the order of ``parameters``: the ascent direction of the objective
    :param kl: ``mean KL(pi_old || pi_theta)`` over the batch, with its graph, at ``theta = theta_old`` (so 0)
    :param target_kl: ``delta``
    :param cg_max_steps: conjugate-gradient iterations
    :param cg_damping: added to the Fisher matrix's diagonal
    :param max_step_size: ``alpha``, or None for the KL-target step alone
    :return: the flat step ``min(alpha, sqrt(2 delta / s^T F s)) s``, and what to log: ``train/step_size`` (that
        multiplier), ``train/cg_residual`` (``||F s - g|| / ||g||``) and ``train/natural_step_norm``
    """
    grad_kl = flat_grad(kl, parameters, create_graph=True, retain_graph=True)

    def fisher_vector_product(vector: th.Tensor) -> th.Tensor:
        # F v = grad <grad KL, v> (+ damping): the Hessian of the KL at theta_old is the Fisher matrix
        return flat_grad((grad_kl * vector).sum(), parameters, retain_graph=True) + cg_damping * vector

    direction = conjugate_gradient_solver(fisher_vector_product, gradient, max_iter=cg_max_steps)
    fisher_direction = fisher_vector_product(direction)
    quadratic = float((direction * fisher_direction).sum())  # s^T F s
    gradient_norm = float(gradient.norm())
    if not (quadratic > 0 and math.isfinite(quadratic)) or gradient_norm == 0:
        # A zero gradient (every advantage 0) gives no direction: no step
        return th.zeros_like(gradient), {"train/step_size": 0.0, "train/cg_residual": 0.0, "train/natural_step_norm": 0.0}
    step_size = math.sqrt(2.0 * target_kl / quadratic)
    if max_step_size is not None:
        step_size = min(step_size, max_step_size)
    residual = float((fisher_direction - gradient).norm()) / gradient_norm
    step = (step_size * direction).detach()
    return step, {"train/step_size": step_size, "train/cg_residual": residual, "train/natural_step_norm": float(step.norm())}


def add_to_parameters(parameters: Sequence[nn.Parameter], vector: th.Tensor) -> None:
    """``theta += vector``, ``vector`` flat in the order of ``parameters``."""
    with th.no_grad():
        start = 0
        for param in parameters:
            param.add_(vector[start : start + param.numel()].view_as(param))
            start += param.numel()
