"""
The variance study: at a fixed policy, every return estimator and baseline on the same episodes.

    sb3-reinforce variance --env CartPole-v1 [--model PATH] --episodes 1000 [--out DIR]

Three independent sets of complete episodes of the fixed policy are sampled with the model's own rollout loop
(:func:`~sb3_reinforce.diagnostics.collect_episodes`):

1. *fit* episodes, on which every registered baseline (:data:`~sb3_reinforce.common.baselines.BASELINES`) is fitted,
   for every return estimator (:data:`~sb3_reinforce.common.returns.RETURN_ESTIMATORS`) it works with; the value head
   is regressed on their reward-to-go;
2. *test* episodes, in batches of ``--loo-batch`` episodes (as ``n_episodes`` is for a training batch), on which every
   (estimator, baseline) gives its per-episode gradient estimates ``g_i = sum_t grad log pi(a_t|s_t) (Psi_t - b_t)``:
   their mean norm, the trace of their covariance (total variance), the single-episode signal-to-noise ratio
   ``||mean||^2 / trace(cov)``, and the distance of their mean from
3. a *reference* gradient: the mean of reward-to-go with the value baseline over many more episodes.

With ``gamma = 1`` (the default) every combination except GAE with ``lambda < 1`` is an unbiased estimate of the
same gradient ``grad E[sum_t r_t]``, so they differ only in variance. The table is printed and written as CSV, and
a bar chart as PNG.
"""

import argparse
import csv
import os
from typing import Any

import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce.common import scores
from sb3_reinforce.common.baselines import BASELINES, Baseline, ConstantBaseline, ValueBaseline, episode_estimates
from sb3_reinforce.common.batch import ReinforceBatch, RolloutValues, make_batch
from sb3_reinforce.common.returns import RETURN_ESTIMATORS, ReturnEstimator
from sb3_reinforce.diagnostics import EpisodeSample, collect_episodes
from sb3_reinforce.reinforce.reinforce import REINFORCE


def combinations(loo_batch: int) -> list[tuple[str, str | None]]:
    """Every registered (estimator, baseline) that the baseline accepts with unnormalised batches of ``loo_batch``."""
    pairs = []
    for estimator, estimator_class in RETURN_ESTIMATORS.items():
        for baseline, baseline_class in BASELINES.items():
            if estimator_class.needs_value_function and not baseline_class.needs_value_function:
                continue
            try:
                baseline_class.check(repr(baseline), "episodes", loo_batch, False, None)
            except ValueError:
                continue
            pairs.append((estimator, baseline))
    return pairs


def _batch(
    model: REINFORCE, sample: EpisodeSample, estimator: ReturnEstimator, baseline: Baseline, values: RolloutValues
) -> ReinforceBatch:
    """The sample's batch with another estimator and baseline, and ``V(s)`` of its episodes."""
    return make_batch(sample.rollout, values, estimator, baseline, False, model.action_space, model.device)


def _values(model: REINFORCE, sample: EpisodeSample) -> RolloutValues:
    """``V(s)`` of the sample's episodes, with the value head as it is now (once per sample, for every pair)."""
    return model._predict_values(sample.rollout, None)


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

    :param value_steps: full-batch regression steps of the value head (with the policy's optimizer)
    :param loo_batch: episodes per test batch (the leave-one-out baseline compares the episodes of a batch)
    :return: one row per (estimator, baseline)
    """
    estimators = {name: cls(gamma, gae_lambda) for name, cls in RETURN_ESTIMATORS.items()}
    pairs = combinations(loo_batch)
    fit = collect_episodes(model, n_fit, progress_bar)
    value = ValueBaseline(model.policy, n_epochs=value_steps, vf_coef=1.0, max_grad_norm=float("inf"))
    value.fit(_batch(model, fit, estimators["reward_to_go"], value, _values(model, fit)))
    fit_values = _values(model, fit)  # with the fitted value head
    baselines: dict[tuple[str, str | None], Baseline] = {}
    for estimator, name in pairs:
        baseline = value if name == "value" else BASELINES[name](model.policy)
        if baseline is not value:
            baseline.fit(_batch(model, fit, estimators[estimator], baseline, fit_values))
        baselines[(estimator, name)] = baseline

    reference_sample = collect_episodes(model, n_reference, progress_bar)
    reference_batch = _batch(model, reference_sample, estimators["reward_to_go"], value, _values(model, reference_sample))
    (reference,) = episode_estimates(model.policy, reference_batch, [reference_batch.advantages], [value])
    reference_mean = scores.flatten(reference).mean(dim=0)

    per_pair: list[list[th.Tensor]] = [[] for _ in pairs]
    for start in range(0, n_episodes, loo_batch):
        test = collect_episodes(model, min(loo_batch, n_episodes - start))
        test_values = _values(model, test)
        batches = [_batch(model, test, estimators[e], baselines[(e, b)], test_values) for e, b in pairs]
        estimates = episode_estimates(
            model.policy, batches[0], [batch.advantages for batch in batches], [baselines[pair] for pair in pairs]
        )
        for collected, per_episode in zip(per_pair, estimates, strict=True):
            collected.append(scores.flatten(per_episode))

    rows: list[dict[str, Any]] = []
    for (estimator, name), collected in zip(pairs, per_pair, strict=True):
        flat = th.cat(collected)
        stats = scores.gradient_statistics(flat)
        baseline = baselines[(estimator, name)]
        rows.append(
            dict(
                estimator=estimator,
                baseline=str(name),
                constant=baseline.value if isinstance(baseline, ConstantBaseline) else None,
                mean_grad_norm=stats["grad_norm_mean"],
                total_variance=stats["grad_variance"],
                snr=stats["grad_snr"],
                deviation_from_reference=float((flat.mean(dim=0) - reference_mean).norm() / reference_mean.norm()),
            )
        )
    base = rows[0]["total_variance"]
    for row in rows:
        row["variance_vs_total_none"] = row["total_variance"] / base
    return rows


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
    """A bar chart of the total variance and the deviation from the reference, written to ``path`` (PNG)."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch

    labels = [f"{r['estimator']}\n{r['baseline']}" for r in rows]
    fig = Figure(figsize=(13, 4.5))
    axes = fig.subplots(1, 2)
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
