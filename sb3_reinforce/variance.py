"""
The variance study: at a fixed policy, every return estimator and baseline on the same episodes.

    sb3-reinforce variance --env CartPole-v1 [--model PATH] --episodes 1000 [--out DIR]

Three independent sets of complete episodes of the fixed policy are sampled:

1. *fit* episodes, on which the baselines are fitted: the mean, the optimal constant and the optimal constants per
   parameter (per estimator), the linear-feature regression, and the value head (regressed on the reward-to-go);
2. *test* episodes, on which every (estimator, baseline) gives its per-episode gradient estimates
   ``g_i = sum_t grad log pi(a_t|s_t) (Psi_t - b_t)``: their mean norm, the trace of their covariance (total
   variance), the single-episode signal-to-noise ratio ``||mean||^2 / trace(cov)``, and the distance of their mean from
3. a *reference* gradient: the mean of reward-to-go with the value baseline over many more episodes.

The leave-one-out baseline takes each test episode's batch to be ``--loo-batch`` consecutive episodes of the test set,
as ``n_episodes`` is for a training batch.

With ``gamma = 1`` (the default) every combination except GAE with ``lambda < 1`` is an unbiased estimate of the
same gradient ``grad E[sum_t r_t]``, so they differ only in variance. The table is printed and written as CSV, and
a bar chart as PNG.
"""

import argparse
import csv
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce.common import returns as ret
from sb3_reinforce.common import scores
from sb3_reinforce.common.baselines import (
    LeaveOneOutBaseline,
    LinearFeatureBaseline,
    OptimalBaseline,
    OptimalConstantBaseline,
    fit_value_function,
    subtract_parameter_baseline,
)
from sb3_reinforce.common.buffers import predict_values
from sb3_reinforce.diagnostics import EpisodeSample, collect_episodes, episode_gradients
from sb3_reinforce.reinforce.reinforce import REINFORCE

COMBINATIONS: tuple[tuple[str, str | None], ...] = (
    *(
        (estimator, baseline)
        for estimator in ("total", "reward_to_go")
        for baseline in (None, "mean", "optimal_scalar", "optimal", "loo", "linear", "value")
    ),
    ("gae", "value"),
)


@dataclass
class _Returns:
    """Flat ``(n_steps,)`` estimators of one sample."""

    psi: dict[str, np.ndarray]  # estimator -> Psi_t - V(s_t) for GAE (its advantage), Psi_t otherwise
    timesteps: np.ndarray


def _returns(model: REINFORCE, sample: EpisodeSample, gamma: float, gae_lambda: float) -> _Returns:
    """Every estimator of :data:`sb3_reinforce.common.returns.RETURN_ESTIMATORS` on the sample's complete episodes."""
    buffer = sample.buffer
    rewards, dones = buffer.rewards[: buffer.pos], buffer.dones[: buffer.pos]
    zeros = np.zeros(buffer.n_envs)
    k = ret.episode_timesteps(dones, zeros.astype(np.int64))
    values = np.zeros_like(rewards)
    values[sample.rows, sample.envs] = _values(model, sample)
    arrays = ret.RolloutArrays(rewards, dones, k, ret.reward_to_go(rewards, dones, None, gamma), values, None, zeros)
    psi = {
        name: sample.flat(estimator(gamma, gae_lambda).estimate(arrays)) for name, estimator in ret.RETURN_ESTIMATORS.items()
    }
    psi["gae"] = psi["gae"] - sample.flat(values)  # GAE's advantage A_t = TD(lambda) return - V(s_t)
    return _Returns(psi=psi, timesteps=sample.flat(k))


def _values(model: REINFORCE, sample: EpisodeSample) -> np.ndarray:
    return predict_values(model.policy, sample.buffer.observations_at(sample.rows, sample.envs))


def _fit_value_head(model: REINFORCE, sample: EpisodeSample, targets: np.ndarray, steps: int, lr: float = 1e-3) -> None:
    """Regress the value head on the fit episodes' reward-to-go (full batch, Adam on the parameters V depends on)."""
    named = dict(model.policy.named_parameters())
    optimizer = th.optim.Adam([named[name] for name in scores.parameters_used_by(model.policy, "value")], lr=lr)
    y = th.as_tensor(targets, dtype=th.float32, device=model.device)
    fit_value_function(model.policy, optimizer, sample.observations(model.device), y, steps)


def _flat_observations(model: REINFORCE, sample: EpisodeSample) -> np.ndarray:
    return LinearFeatureBaseline.flatten_observations(sample.observations(model.device), model.observation_space)


def run_study(
    model: REINFORCE,
    n_episodes: int,
    n_fit: int,
    n_reference: int,
    gamma: float = 1.0,
    gae_lambda: float = 0.95,
    value_steps: int = 300,
    progress_bar: bool = False,
    loo_batch: int = 8,
) -> list[dict[str, Any]]:
    """
    Fit every baseline on ``n_fit`` episodes, measure every combination on ``n_episodes`` others, and compare with a
    reference gradient from ``n_reference`` more. The policy is not changed (its value head is fitted).

    :param loo_batch: episodes per batch of the leave-one-out baseline
    :return: one row per (estimator, baseline)
    """
    fit = collect_episodes(model, n_fit, progress_bar)
    fit_returns = _returns(model, fit, gamma, gae_lambda)
    _fit_value_head(model, fit, fit_returns.psi["reward_to_go"], value_steps)
    fit_returns = _returns(model, fit, gamma, gae_lambda)  # GAE with the fitted value head

    # Constant baselines per estimator: the mean, the optimal b* = sum <G_i, S_i> / sum ||S_i||^2, and the optimal
    # b_k = sum_i G_ik S_ik / sum_i S_ik^2 of every parameter
    ones = np.ones_like(fit_returns.timesteps, dtype=np.float64)
    total_g, rtg_g, score = episode_gradients(model, fit, [fit_returns.psi["total"], fit_returns.psi["reward_to_go"], ones])
    constants = {
        ("total", "mean"): float(fit_returns.psi["total"].mean()),
        ("reward_to_go", "mean"): float(fit_returns.psi["reward_to_go"].mean()),
        ("total", "optimal_scalar"): OptimalConstantBaseline.optimal_constant(scores.flatten(total_g), scores.flatten(score)),
        ("reward_to_go", "optimal_scalar"): OptimalConstantBaseline.optimal_constant(
            scores.flatten(rtg_g), scores.flatten(score)
        ),
    }
    per_parameter = {
        "total": OptimalBaseline.optimal_constants(total_g, score),
        "reward_to_go": OptimalBaseline.optimal_constants(rtg_g, score),
    }
    linear = {}
    fit_features = LinearFeatureBaseline.features(_flat_observations(model, fit), fit_returns.timesteps)
    for estimator in ("total", "reward_to_go"):
        linear[estimator] = LinearFeatureBaseline.ridge_fit(fit_features, fit_returns.psi[estimator])

    def weights(sample: EpisodeSample, returns: _Returns, estimator: str, baseline: str | None) -> np.ndarray:
        psi = returns.psi[estimator]
        if baseline in (None, "optimal") or estimator == "gae":  # the per-parameter b is subtracted from G_i below
            return psi
        if baseline == "loo":
            return psi - _leave_one_out(sample, psi, returns.timesteps, estimator, loo_batch)
        if baseline == "value":
            return psi - _values(model, sample)
        if baseline == "linear":
            return (
                psi - LinearFeatureBaseline.features(_flat_observations(model, sample), returns.timesteps) @ linear[estimator]
            )
        return psi - constants[(estimator, baseline)]

    reference_sample = collect_episodes(model, n_reference, progress_bar)
    reference_returns = _returns(model, reference_sample, gamma, gae_lambda)
    (reference,) = episode_gradients(
        model, reference_sample, [weights(reference_sample, reference_returns, "reward_to_go", "value")]
    )
    reference_mean = scores.flatten(reference).mean(dim=0)

    test = collect_episodes(model, n_episodes, progress_bar)
    test_returns = _returns(model, test, gamma, gae_lambda)
    *per_combination, test_score = episode_gradients(
        model, test, [*(weights(test, test_returns, e, b) for e, b in COMBINATIONS), np.ones_like(test_returns.timesteps)]
    )
    rows: list[dict[str, Any]] = []
    for (estimator, baseline), per_episode in zip(COMBINATIONS, per_combination, strict=True):
        if baseline == "optimal":
            per_episode = subtract_parameter_baseline(per_episode, test_score, per_parameter[estimator])
        flat = scores.flatten(per_episode)
        stats = scores.gradient_statistics(flat)
        deviation = float((flat.mean(dim=0) - reference_mean).norm() / reference_mean.norm())
        rows.append(
            dict(
                estimator=estimator,
                baseline=str(baseline),
                constant=constants.get((estimator, str(baseline))),
                mean_grad_norm=stats["grad_norm_mean"],
                total_variance=stats["grad_variance"],
                snr=stats["grad_snr"],
                deviation_from_reference=deviation,
            )
        )
    base = rows[0]["total_variance"]
    for row in rows:
        row["variance_vs_total_none"] = row["total_variance"] / base
    return rows


def _leave_one_out(sample: EpisodeSample, psi: np.ndarray, timesteps: np.ndarray, estimator: str, batch: int) -> np.ndarray:
    """The leave-one-out baseline of every step, each episode's batch being ``batch`` consecutive episodes."""
    b = np.zeros_like(psi)
    group = sample.episode_ids // batch
    per_episode = ret.RETURN_ESTIMATORS[estimator].per_episode
    for index in range(int(group.max()) + 1):
        steps = group == index
        ids = sample.episode_ids[steps] - index * batch
        n = int(ids.max()) + 1
        if n >= 2:  # a last batch of one episode keeps b = 0
            b[steps] = LeaveOneOutBaseline.leave_one_out(psi[steps], ids, n, timesteps[steps], per_episode)
    return b


def format_table(rows: list[dict[str, Any]]) -> str:
    columns = ["estimator", "baseline", "b", "mean grad norm", "total variance", "variance / (total, None)", "SNR",
               "deviation from reference"]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        b = "" if r["constant"] is None else f"{r['constant']:.3g}"
        lines.append(
            f"| {r['estimator']} | {r['baseline']} | {b} | {r['mean_grad_norm']:.4g} | {r['total_variance']:.4g} | "
            f"{r['variance_vs_total_none']:.3f} | {r['snr']:.4g} | {r['deviation_from_reference']:.3f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['estimator']}\n{r['baseline']}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = ["tab:blue" if r["estimator"] == "total" else "tab:orange" if r["estimator"] == "reward_to_go" else "tab:green"
              for r in rows]  # fmt: skip
    axes[0].bar(labels, [r["total_variance"] for r in rows], color=colors)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("total variance of per-episode gradients (log)")
    axes[1].bar(labels, [r["deviation_from_reference"] for r in rows], color=colors)
    axes[1].set_ylabel("||mean - reference|| / ||reference||")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7, rotation=90)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sb3-reinforce variance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--model", help="a saved REINFORCE model (default: a freshly initialised policy)")
    parser.add_argument("--episodes", type=int, default=1000, help="test episodes")
    parser.add_argument("--fit-episodes", type=int, help="episodes to fit the baselines on (default: = --episodes)")
    parser.add_argument("--reference-episodes", type=int, help="episodes of the reference gradient (default: 5x)")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--loo-batch", type=int, default=8, help="episodes per batch of the leave-one-out baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="variance_study", help="folder for the CSV and PNG")
    args = parser.parse_args(argv)
    if args.loo_batch < 2:
        parser.error(f"--loo-batch must be at least 2, got {args.loo_batch}")
    for name in ("episodes", "n_envs"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0.0 <= args.gamma <= 1.0:
        parser.error(f"--gamma must be in [0, 1], got {args.gamma}")

    env = make_vec_env(args.env, n_envs=args.n_envs, seed=args.seed)
    if args.model:
        model = REINFORCE.load(args.model, env=env, seed=args.seed)
        policy = args.model
    else:
        model = REINFORCE("MlpPolicy", env, seed=args.seed)
        policy = "random initial policy"
    model.set_random_seed(args.seed)
    rows = run_study(model, args.episodes, args.fit_episodes or args.episodes, args.reference_episodes or 5 * args.episodes,
                     gamma=args.gamma, gae_lambda=args.gae_lambda, progress_bar=True, loo_batch=args.loo_batch)  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"variance_{args.env}")
    with open(stem + ".csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    title = f"{args.env}, {policy}, {args.episodes} episodes, gamma={args.gamma}"
    plot(rows, stem + ".png", title)
    print(title)
    print(format_table(rows))
    print(f"wrote {stem}.csv and {stem}.png")
