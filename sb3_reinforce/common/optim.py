"""Generic optimisation steps: one gradient step on a loss, and a full-batch regression of the value function."""

import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs
from torch.nn import functional as F


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
    observations: PyTorchObs,
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
        predicted = policy.predict_values(observations).flatten()
        gradient_step(optimizer, parameters, vf_coef * F.mse_loss(predicted, targets), max_grad_norm, "value loss")
    with th.no_grad():
        return float(F.mse_loss(policy.predict_values(observations).flatten(), targets))
