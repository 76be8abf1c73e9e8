"""
Per-episode policy-gradient estimates, vectorised: sums of score functions ``grad_theta log pi(a_t|s_t)`` weighted
per step, for every episode of a batch at once.

The per-episode gradient estimate (Williams, 1992; Seita, 2017) is
``g_i = sum_{t in episode i} w_t grad log pi(a_t|s_t) (Psi_t - b_t)``: a sum over the episode's steps, so that
the mean of ``g_i`` over episodes estimates the policy gradient. It is the gradient of ``sum_t W_it log pi(a_t|s_t)``
with ``W_it`` the step's weight inside episode ``i`` and 0 outside: for each group of whole episodes, one forward pass,
then one batched backward pass with the rows of ``W`` as output gradients
(``torch.autograd.grad(..., is_grads_batched=True)``), never one backward pass per step or per episode.
"""

import copy
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_reinforce.common.utils import batch_slice, masking

# A backward pass covers whole episodes of at most SCORE_CHUNK steps in all (a longer episode: parts of it), and at most
# ROW_STEPS (episodes x steps): each row of W costs a backward pass over every step of its chunk.
SCORE_CHUNK = 1024
ROW_STEPS = 8192

# parameters_used_by's answers, per policy object and part (they depend on the architecture only)
_PARAMETER_SPLIT: "weakref.WeakKeyDictionary[ActorCriticPolicy, dict[str, list[str]]]" = weakref.WeakKeyDictionary()


@contextmanager
def eval_mode(policy: ActorCriticPolicy) -> Iterator[None]:
    """The policy in eval mode (a BatchNorm layer in training mode would update its statistics), restored after."""
    training = policy.training
    policy.set_training_mode(False)
    try:
        yield
    finally:
        policy.set_training_mode(training)


def parameters_used_by(policy: ActorCriticPolicy, part: str) -> list[str]:
    """
    Names of the policy's parameters that the actor's ``log pi(a|s)`` (``part="actor"``) or the value function
    ``V(s)`` (``part="value"``) depends on, found once per policy by differentiating it on a sample of the observation
    space (a copy's, so that no random number generator of the model moves) and the distribution's mode.
    """
    if part not in ("actor", "value"):
        raise ValueError(f"Invalid part={part!r}: allowed values are 'actor', 'value'.")
    split = _PARAMETER_SPLIT.setdefault(policy, {})
    if part not in split:
        obs, _ = policy.obs_to_tensor(copy.deepcopy(policy.observation_space).sample())
        with eval_mode(policy):  # no BatchNorm statistics move
            if part == "value":
                output = policy.predict_values(obs).sum()  # type: ignore[arg-type]
            else:
                distribution = policy.get_distribution(obs)  # type: ignore[arg-type]
                output = distribution.log_prob(distribution.get_actions(deterministic=True)).sum()
        named = list(policy.named_parameters())
        grads = th.autograd.grad(output, [param for _, param in named], allow_unused=True)
        split[part] = [name for (name, _), grad in zip(named, grads, strict=True) if grad is not None]
    return split[part]


def episode_gradients(
    policy: ActorCriticPolicy,
    obs: PyTorchObs,
    actions: th.Tensor,
    weights: Sequence[th.Tensor],
    segment_ids: th.Tensor,
    n_segments: int,
    names: list[str] | None = None,
    action_masks: th.Tensor | None = None,
) -> list[dict[str, th.Tensor]]:
    """
    Per-episode sums ``sum_{t in i} weight_t * grad log pi(a_t|s_t)``, for several weight vectors in one pass.

    :param policy: the policy (its parameters are not changed; it runs in eval mode)
    :param obs: ``(n_steps, ...)`` observations (a tensor or a dict of tensors)
    :param actions: ``(n_steps, ...)`` actions, in the form ``log_prob`` takes
    :param weights: each ``(n_steps,)``: e.g. ``w_t (Psi_t - b_t)``, or ``w_t`` alone for the episode's score
    :param segment_ids: ``(n_steps,)`` integer id in ``[0, n_segments)`` of each step's episode
    :param n_segments: number of episodes
    :param names: parameter names (default: every parameter the action distribution depends on)
    :param action_masks: ``(n_steps, mask size)`` allowed actions, for maskable policies
    :return: for each weight vector, ``{name: (n_segments, *param.shape)}``
    """
    if names is None:
        names = parameters_used_by(policy, "actor")
    named = dict(policy.named_parameters())
    params = [named[name] for name in names]
    sums = [{name: th.zeros((n_segments, *named[name].shape), device=named[name].device) for name in names}
            for _ in weights]  # fmt: skip
    with eval_mode(policy):
        for chunk in episode_chunks(segment_ids, n_segments):
            masks = None if action_masks is None else action_masks[chunk]
            log_prob = policy.get_distribution(batch_slice(obs, chunk), **masking(masks)).log_prob(actions[chunk])
            # W: one row per (weight vector, episode of the chunk), the weights of that episode's steps
            episodes, local_ids = th.unique(segment_ids[chunk], return_inverse=True)
            indicator = th.nn.functional.one_hot(local_ids, len(episodes)).T.to(log_prob.dtype)  # (episodes, steps)
            rows = th.cat([indicator * weight[chunk].to(log_prob.dtype) for weight in weights])
            grads = th.autograd.grad(log_prob, params, grad_outputs=rows, is_grads_batched=True, allow_unused=True)
            for index, total in enumerate(sums):
                part = slice(index * len(episodes), (index + 1) * len(episodes))
                for name, grad in zip(names, grads, strict=True):
                    if grad is not None:
                        total[name].index_add_(0, episodes, grad[part])
    return sums


def episode_chunks(segment_ids: th.Tensor, n_segments: int) -> list[th.Tensor]:
    """
    The steps of a batch (indices), grouped by episode: consecutive episodes as long as the group has at most
    SCORE_CHUNK steps and (episodes x steps) at most ROW_STEPS; an episode longer than SCORE_CHUNK is cut in parts.
    """
    order = th.argsort(segment_ids, stable=True)
    groups, start, end, steps, episodes = [], 0, 0, 0, 0
    for length in th.bincount(segment_ids, minlength=n_segments).tolist():
        if episodes and (steps + length > SCORE_CHUNK or (episodes + 1) * (steps + length) > ROW_STEPS):
            groups.append(order[start:end])
            start, steps, episodes = end, 0, 0
        end, steps, episodes = end + length, steps + length, episodes + 1
    groups.append(order[start:end])
    return [group[i : i + SCORE_CHUNK] for group in groups for i in range(0, len(group), SCORE_CHUNK)]


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
