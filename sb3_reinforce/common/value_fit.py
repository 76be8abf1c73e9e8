"""
The value function's regression steps, and a worker process that runs them while the next rollout is collected.

:func:`fit_value_function` is REINFORCE's value regression (``n_value_epochs`` full-batch steps on
``vf_coef * mean_t (V(s_t) - target_t)^2``). The next rollout only runs the actor, and ``V`` is next needed for the
baseline of the batch that rollout collects, so the regression of batch ``k`` can run during rollout ``k + 1``:
:class:`ValueFitWorker` does so in a forked process (``overlap_value_fit=True``), on the same parameters and
optimizer state, moved to shared memory. It is the same computation in another order.
"""

import copy
import multiprocessing
import signal
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.utils import obs_as_tensor
from torch.nn import functional as F

# Optimizers whose per-parameter state is made of tensors only (shareable with the worker).
SHAREABLE_OPTIMIZERS = (th.optim.Adam, th.optim.AdamW)


def gradient_step(
    optimizer: th.optim.Optimizer,
    parameters: list[th.nn.Parameter],
    loss: th.Tensor,
    max_grad_norm: float,
    name: str,
    where: str,
) -> float:
    """
    Backward pass, gradient clipping and optimizer step; return the gradient norm before clipping.

    :raises FloatingPointError: if the loss is NaN or infinite, naming ``name`` and ``where`` (the update)
    """
    if not th.isfinite(loss):
        raise FloatingPointError(
            f"The {name} is {loss.item()} {where}; check the rewards' scale, the learning rate and max_grad_norm."
        )
    optimizer.zero_grad()
    loss.backward()
    grad_norm = th.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return float(grad_norm)


def fit_value_function(
    policy: ActorCriticPolicy,
    optimizer: th.optim.Optimizer,
    parameters: list[th.nn.Parameter],
    observations: th.Tensor | TensorDict,
    targets: th.Tensor,
    n_epochs: int,
    vf_coef: float,
    max_grad_norm: float,
    where: str,
) -> th.Tensor:
    """
    The value regression: ``n_epochs`` full-batch gradient steps on ``vf_coef * mean_t (V(s_t) - target_t)^2``
    (Spinning Up fits its value net many times per batch). Returns the mean squared error after them.
    """
    for _ in range(n_epochs):
        predicted = policy.predict_values(observations).flatten()
        gradient_step(optimizer, parameters, vf_coef * F.mse_loss(predicted, targets), max_grad_norm, "value loss", where)
    with th.no_grad():
        return F.mse_loss(policy.predict_values(observations).flatten(), targets)


def critic_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """The parameters the value regression changes: those ``V(s)`` depends on."""
    return [param for param, used in zip(policy.parameters(), _used_by(policy, "value"), strict=True) if used]


def _used_by(policy: ActorCriticPolicy, part: str) -> list[bool]:
    """For each of the policy's parameters, whether ``V(s)`` (``part="value"``) or the actor's log-probability depends
    on it, found by differentiating them on a sample observation."""
    # A sample from a copy of the space and the distribution's mode: no random number generator moves
    obs, _ = policy.obs_to_tensor(copy.deepcopy(policy.observation_space).sample())
    if part == "value":
        output = policy.predict_values(obs).sum()  # type: ignore[arg-type]
    else:
        distribution = policy.get_distribution(obs)  # type: ignore[arg-type]
        output = distribution.log_prob(distribution.get_actions(deterministic=True)).sum()
    parameters = list(policy.parameters())
    grads = th.autograd.grad(output, parameters, allow_unused=True)
    return [grad is not None for grad in grads]


def overlap_unavailable(device: th.device) -> str | None:
    """Why this system or device cannot run the value regression in a worker process, or None if it can."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this system cannot fork processes"
    if device.type != "cpu":
        return f"the worker runs on the CPU only, and the model's device is {device}"
    return None


def overlap_problem(policy: ActorCriticPolicy) -> str | None:
    """Why the value regression of this policy cannot run in a worker process, or None if it can."""
    if not isinstance(policy.optimizer, SHAREABLE_OPTIMIZERS):
        return f"the optimizer must be Adam or AdamW, not {type(policy.optimizer).__name__}"
    shared = [
        name
        for (name, _), value, actor in zip(
            policy.named_parameters(), _used_by(policy, "value"), _used_by(policy, "actor"), strict=True
        )
        if value and actor
    ]
    if shared:
        return (
            f"the value function shares parameters with the policy ({', '.join(shared)}; a features extractor with "
            "parameters is shared by default): pass policy_kwargs=dict(share_features_extractor=False)"
        )
    return None


def _serve(
    conn: Connection,
    policy: ActorCriticPolicy,
    parameters: list[th.nn.Parameter],
    states: list[dict[str, Any]],
    optimizer_class: type[th.optim.Optimizer],
    defaults: dict[str, Any],
) -> None:
    """The worker process: run :func:`fit_value_function` on each batch received, send back its loss or error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    th.set_num_threads(1)
    optimizer = optimizer_class(parameters, **defaults)
    for param, state in zip(parameters, states, strict=True):
        optimizer.state[param] = state  # the parent's tensors, in shared memory
    policy.set_training_mode(True)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        observations, targets, lr, n_epochs, vf_coef, max_grad_norm, where = message
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            loss = fit_value_function(
                policy, optimizer, parameters, obs_as_tensor(observations, th.device("cpu")), th.as_tensor(targets),
                n_epochs, vf_coef, max_grad_norm, where,
            )  # fmt: skip
            conn.send(("ok", float(loss)))
        except Exception as error:  # handed to the parent, which raises it
            try:
                conn.send(("error", error))
            except Exception:  # an exception that cannot be pickled
                conn.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))


class ValueFitWorker:
    """
    A forked process that runs :func:`fit_value_function` on the policy's value-function parameters while the parent
    collects the next rollout.

    The parameters and their optimizer state are moved to shared memory before the fork, so the worker's steps are
    the parent's: the parent must not read or write them between :meth:`submit` and :meth:`wait`. The worker uses
    one torch thread. It is (re)started by :meth:`submit` whenever the parameters' or the optimizer state's storage
    changed (a loaded model, a new optimizer state), and stopped by :meth:`close`.

    :param policy: the policy, whose value function does not share parameters with the actor
        (:func:`overlap_problem`)
    """

    def __init__(self, policy: ActorCriticPolicy) -> None:
        self.policy = policy
        self.parameters = critic_parameters(policy)
        self._process: Any = None
        self._conn: Connection | None = None
        self._layout: tuple[int, ...] | None = None
        self.pending = False
        self.fits = 0  # batches fitted in the worker

    def _current_layout(self) -> tuple[int, ...] | None:
        """Addresses of the parameters and optimizer state tensors (None: some state not created yet)."""
        state = self.policy.optimizer.state
        layout = [id(self.policy.optimizer)]
        for param in self.parameters:
            if param not in state or not state[param]:
                return None
            layout.append(param.data_ptr())
            layout.extend(value.data_ptr() for value in state[param].values() if isinstance(value, th.Tensor))
        return tuple(layout)

    def _start(self) -> None:
        self.close()
        optimizer = self.policy.optimizer
        for param in self.parameters:
            param.data.share_memory_()
            for value in optimizer.state[param].values():
                if isinstance(value, th.Tensor):
                    value.share_memory_()
        states = [optimizer.state[param] for param in self.parameters]
        defaults = {key: value for key, value in optimizer.defaults.items() if key != "lr"}
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, self.policy, self.parameters, states, type(optimizer), defaults),
            daemon=True,
            name="sb3-reinforce-value-fit",
        )
        self._process.start()
        child.close()
        self._layout = self._current_layout()

    def submit(
        self,
        observations: th.Tensor | TensorDict,
        targets: th.Tensor,
        n_epochs: int,
        vf_coef: float,
        max_grad_norm: float,
        where: str,
    ) -> bool:
        """
        Start fitting the value function on a batch in the worker. Returns False, doing nothing, when the optimizer
        has no state for some value-function parameter yet (the caller then fits it itself).
        """
        assert not self.pending, "the previous batch's fit was not waited for"
        layout = self._current_layout()
        if layout is None:
            return False
        if self._process is None or not self._process.is_alive() or layout != self._layout:
            self._start()
        assert self._conn is not None
        lr = self.policy.optimizer.param_groups[0]["lr"]
        self._conn.send((as_numpy(observations), targets.cpu().numpy(), lr, n_epochs, vf_coef, max_grad_norm, where))
        self.pending = True
        return True

    def wait(self) -> float | None:
        """Wait for the batch in progress; return its mean squared error after the fit (None if none was in progress)."""
        if not self.pending:
            return None
        self.pending = False
        assert self._conn is not None
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):  # closed, or reset by the dying process
            code = self._process.exitcode if self._process is not None else None
            self.close()
            raise RuntimeError(f"The value-fit worker process ended unexpectedly (exit code {code}).") from None
        if status == "error":
            raise payload
        self.fits += 1
        return float(payload)

    def close(self) -> None:
        """Stop the worker (without waiting for a batch in progress)."""
        if self._process is not None:
            if self._process.is_alive() and self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn, self._layout = None, None, None
        self.pending = False

    @property
    def alive(self) -> bool:
        """Whether the worker process is running."""
        return self._process is not None and self._process.is_alive()


def as_numpy(observations: th.Tensor | TensorDict) -> np.ndarray | dict[str, np.ndarray]:
    """Observations as arrays (for sending them to the worker)."""
    if isinstance(observations, dict):
        return {key: value.cpu().numpy() for key, value in observations.items()}
    return observations.cpu().numpy()
