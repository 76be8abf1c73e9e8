"""
Per-step score functions ``grad_theta log pi(a_t|s_t)`` and per-episode gradient estimates, vectorised with
``torch.func`` (one ``vmap`` of ``grad`` per chunk of steps, never one backward pass per step).

The per-episode gradient estimate (Williams, 1992; Seita, 2017) is
``g_i = sum_{t in episode i} w_t grad log pi(a_t|s_t) (Psi_t - b_t)``: a sum over the episode's steps, so that
the mean of ``g_i`` over episodes estimates the policy gradient.
"""

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn
from torch.func import functional_call, grad, vmap

from sb3_reinforce.common.buffers import batch_length, batch_slice

# Steps per vmap call: bounds memory at chunk * number of actor parameters floats.
SCORE_CHUNK = 1024


class _LogProb(nn.Module):
    """
    ``log pi(a|s)`` of a policy from *preprocessed* observations, as a module call (so that ``functional_call`` can
    swap its parameters). It is ``policy.get_distribution(obs).log_prob(a)`` with SB3's ``preprocess_obs`` done
    beforehand, outside ``vmap`` (one-hot encoding has data-dependent checks that ``vmap`` cannot trace).
    """

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, preprocessed_obs: PyTorchObs, actions: th.Tensor, action_masks: th.Tensor | None = None) -> th.Tensor:
        features = self.policy.pi_features_extractor(preprocessed_obs)
        latent_pi = self.policy.mlp_extractor.forward_actor(features)
        distribution = self.policy._get_action_dist_from_latent(latent_pi)
        if action_masks is not None:  # sb3-contrib's maskable distributions
            distribution.apply_masking(action_masks)  # type: ignore[attr-defined]
        return distribution.log_prob(actions)


@contextmanager
def _per_step_mode(policy: ActorCriticPolicy) -> Iterator[None]:
    """
    What ``vmap`` over single steps needs: the policy in eval mode (a BatchNorm layer in training mode would update
    its statistics in place, and its batch statistics of one sample have no meaning), and no argument checks in
    torch.distributions (data-dependent branches that vmap cannot trace). Both are restored after.
    """
    training, validate = policy.training, th.distributions.Distribution._validate_args
    policy.set_training_mode(False)
    th.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        th.distributions.Distribution.set_default_validate_args(validate)
        policy.set_training_mode(training)


def parameters_used_by(policy: ActorCriticPolicy, part: str) -> list[str]:
    """
    Names of the policy's parameters that the actor's ``log pi(a|s)`` (``part="actor"``) or the value function
    ``V(s)`` (``part="value"``) depends on, found by differentiating it on a sample observation of a copy of the
    observation space and the distribution's mode (no random number generator of the model moves).
    """
    if part not in ("actor", "value"):
        raise ValueError(f"Invalid part={part!r}: allowed values are 'actor', 'value'.")
    obs, _ = policy.obs_to_tensor(copy.deepcopy(policy.observation_space).sample())
    with _per_step_mode(policy):  # eval mode: no BatchNorm statistics move
        if part == "value":
            output = policy.predict_values(obs).sum()  # type: ignore[arg-type]
        else:
            distribution = policy.get_distribution(obs)  # type: ignore[arg-type]
            output = distribution.log_prob(distribution.get_actions(deterministic=True)).sum()
    named = list(policy.named_parameters())
    grads = th.autograd.grad(output, [param for _, param in named], allow_unused=True)
    return [name for (name, _), grad in zip(named, grads, strict=True) if grad is not None]


def episode_gradients(
    policy: ActorCriticPolicy,
    obs: PyTorchObs,
    actions: th.Tensor,
    weights: Sequence[th.Tensor],
    episode_ids: th.Tensor,
    n_episodes: int,
    names: list[str] | None = None,
    action_masks: th.Tensor | None = None,
) -> list[dict[str, th.Tensor]]:
    """
    Per-episode sums ``sum_{t in i} weight_t * grad log pi(a_t|s_t)``, for several weight vectors in one pass.

    :param policy: the policy (its parameters are not changed)
    :param obs: ``(n_steps, ...)`` observations (a tensor or a dict of tensors)
    :param actions: ``(n_steps, ...)`` actions, in the form ``log_prob`` takes
    :param weights: each ``(n_steps,)``: e.g. ``w_t (Psi_t - b_t)``, or ``w_t`` alone for the episode's score
    :param episode_ids: ``(n_steps,)`` integer id in ``[0, n_episodes)`` of each step's episode
    :param n_episodes: number of episodes
    :param names: parameter names (default: every parameter the action distribution depends on)
    :param action_masks: ``(n_steps, mask size)`` allowed actions, for maskable policies
    :return: for each weight vector, ``{name: (n_episodes, *param.shape)}``
    """
    n_steps = batch_length(obs)
    if names is None:
        names = parameters_used_by(policy, "actor")
    parameters = dict(policy.named_parameters())
    params = {f"policy.{name}": parameters[name].detach() for name in names}
    module = _LogProb(policy)

    def log_prob(p: dict[str, th.Tensor], o: PyTorchObs, a: th.Tensor, m: th.Tensor | None) -> th.Tensor:
        one_obs = {k: v.unsqueeze(0) for k, v in o.items()} if isinstance(o, dict) else o.unsqueeze(0)
        if m is not None:
            return functional_call(module, p, (one_obs, a.unsqueeze(0), m.unsqueeze(0)), tie_weights=False).sum()
        # tie_weights=False: a shared features extractor is reached under several names (features_extractor,
        # pi_features_extractor, vf_features_extractor); swapping it under one name swaps the module they share, and
        # tying would leave copies in the policy in place of the optimizer's parameters when the call ends.
        return functional_call(module, p, (one_obs, a.unsqueeze(0)), tie_weights=False).sum()

    per_step_grad = vmap(grad(log_prob), in_dims=(None, 0, 0, None if action_masks is None else 0))
    preprocessed = preprocess_obs(obs, policy.observation_space, normalize_images=policy.normalize_images)
    sums = [{name: th.zeros((n_episodes, *parameters[name].shape), device=parameters[name].device) for name in names}
            for _ in weights]  # fmt: skip
    with _per_step_mode(policy):
        for start in range(0, n_steps, SCORE_CHUNK):
            chunk = slice(start, start + SCORE_CHUNK)
            masks = None if action_masks is None else action_masks[chunk]
            scores = per_step_grad(params, batch_slice(preprocessed, chunk), actions[chunk], masks)
            ids = episode_ids[chunk]
            for weight, total in zip(weights, sums, strict=True):
                w = weight[chunk]
                for name in names:
                    score = scores[f"policy.{name}"]
                    total[name].index_add_(0, ids, score * w.reshape(-1, *([1] * (score.dim() - 1))))
    return sums


def flatten(per_episode: dict[str, th.Tensor]) -> th.Tensor:
    """``{name: (n, *shape)}`` -> ``(n, total number of parameters)``, in the dict's order."""
    return th.cat([value.reshape(len(value), -1) for value in per_episode.values()], dim=1)


def gradient_statistics(per_episode: th.Tensor) -> dict[str, float]:
    """
    Statistics of per-episode gradient estimates ``g_i`` (rows of a ``(n_episodes, n_params)`` matrix):

    - ``grad_variance``: trace of their covariance, ``sum_j Var[g_ij]`` (unbiased, ``n - 1`` denominator);
    - ``grad_snr``: ``||mean g||^2 / trace(cov)``, the signal-to-noise ratio of a single episode's estimate;
    - ``grad_norm_mean``: ``||mean g||``.
    """
    mean = per_episode.mean(dim=0)
    n = per_episode.shape[0]
    variance = float(((per_episode - mean) ** 2).sum() / max(n - 1, 1))
    signal = float((mean**2).sum())
    return dict(
        grad_variance=variance, grad_snr=signal / variance if variance > 0 else float("inf"), grad_norm_mean=signal**0.5
    )
