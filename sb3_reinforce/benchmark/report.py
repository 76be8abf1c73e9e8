"""The benchmark's output: CSV and Markdown tables, learning-curve and aggregate plots, ``report.md``."""

import csv
import datetime
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from sb3_reinforce.benchmark.runner import machine_description
from sb3_reinforce.benchmark.statistics import aggregate, per_seed, runs_of, summarize, t_interval


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_format(row[key]) for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


RESULT_COLUMNS = {
    "env": "env", "algo": "algorithm", "seeds": "seeds", "n_timesteps": "steps", "final_mean": "final return",
    "final_std": "std", "final_ci_low": "95% CI low", "final_ci_high": "95% CI high", "threshold": "threshold",
    "reached": "seeds reaching it", "held": "seeds never below it after",
    "median_steps_to_threshold": "median steps to threshold",
    "auc": "AUC (mean return)", "wall_time_s": "wall time (s)", "fps": "fps",
}  # fmt: skip
SEED_COLUMNS = {
    "env": "env", "algo": "algorithm", "seed": "seed", "final": "final return", "best": "best evaluation",
    "steps_to_threshold": "first step at threshold", "lowest_after_reaching": "lowest evaluation after it",
    "auc": "AUC (mean return)", "wall_time_s": "wall time (s)",
}  # fmt: skip
AGGREGATE_COLUMNS = {
    "algo": "algorithm", "envs": "envs", "runs_per_env": "runs per env", "iqm": "IQM", "iqm_low": "IQM 95% low",
    "iqm_high": "IQM 95% high", "optimality_gap": "optimality gap", "gap_low": "gap 95% low", "gap_high": "gap 95% high",
}  # fmt: skip


def comparison_table(rows: list[dict[str, Any]], aggregate_rows: list[dict[str, Any]]) -> str:
    """
    One line per env and one column per algorithm: final return, mean +/- std (number of seeds), then a line of
    rliable's IQM [95% interval] for the algorithms that ran on every env (a blank cell: no runs).
    """
    algos = sorted({r["algo"] for r in rows})
    cells = {(r["env"], r["algo"]): f"{_format(r['final_mean'])} +/- {_format(r['final_std'])} ({r['seeds']})" for r in rows}
    lines = ["| env | " + " | ".join(algos) + " |", "|" + " --- |" * (len(algos) + 1)]
    for env_id in sorted({r["env"] for r in rows}):
        lines.append(f"| {env_id} | " + " | ".join(cells.get((env_id, algo), "") for algo in algos) + " |")
    if aggregate_rows:
        iqm = {r["algo"]: f"{r['iqm']:.3f} [{r['iqm_low']:.3f}, {r['iqm_high']:.3f}]" for r in aggregate_rows}
        lines.append("| IQM (normalised, 95% CI) | " + " | ".join(iqm.get(algo, "") for algo in algos) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as file:
        if rows:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def plot_curves(records: list[dict[str, Any]], env_id: str, threshold: float | None, path: Path) -> None:
    """Evaluation return against steps for every algorithm on ``env_id``: mean and 95% t-interval over seeds."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch

    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for algo in sorted({r["algo"] for r in records if r["env"] == env_id}):
        runs = runs_of(records, algo, env_id)
        length = min(len(r["eval_returns"]) for r in runs)
        steps = np.array(runs[0]["eval_timesteps"][:length])
        curves = np.array([r["eval_returns"][:length] for r in runs])
        mean, low, high = t_interval(curves)
        (line,) = axes.plot(steps, mean, label=textwrap.fill(f"{algo} ({len(runs)} seeds)", 70))
        axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        axes.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axes.set(title=env_id, xlabel="environment steps", ylabel="evaluation return (deterministic)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def plot_aggregate(rows: list[dict[str, Any]], path: Path) -> None:
    """IQM and optimality gap with their 95% intervals, one row per algorithm."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch

    figure = Figure(figsize=(11, 0.7 * len(rows) + 1.5))
    axes = figure.subplots(1, 2)
    panels = [("iqm", "iqm_low", "iqm_high", "IQM"), ("optimality_gap", "gap_low", "gap_high", "Optimality gap")]
    for axis, (key, low, high, title) in zip(axes, panels, strict=True):
        for i, row in enumerate(rows):
            axis.barh(i, row[high] - row[low], left=row[low], height=0.6, alpha=0.6)
            axis.plot([row[key], row[key]], [i - 0.3, i + 0.3], color="black")
        labels = [textwrap.fill(row["algo"], 32) if axis is axes[0] else "" for row in rows]
        axis.set_yticks(range(len(rows)), labels, fontsize=7)
        span = max(row[high] for row in rows) - min(row[low] for row in rows)
        pad = 0.05 * span + 0.02
        axis.set_xlim(min(row[low] for row in rows) - pad, max(row[high] for row in rows) + pad)
        axis.set(title=title, xlabel="normalised score")
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_report(
    out: Path,
    command: str,
    records: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    thresholds: dict[str, float | None],
    randoms: dict[str, float],
    settings: str,
) -> list[dict[str, Any]]:
    """Write the tables, figures and ``report.md``; return the results rows."""
    rows = summarize(records, thresholds)
    aggregate_rows = aggregate(records, thresholds, randoms) if records else []
    _write_csv(out / "results.csv", rows)
    _write_csv(out / "aggregate.csv", aggregate_rows)
    seed_rows = per_seed(records, thresholds)
    _write_csv(out / "per_seed.csv", seed_rows)
    results_md = markdown_table(rows, RESULT_COLUMNS)
    aggregate_md = markdown_table(aggregate_rows, AGGREGATE_COLUMNS)
    seeds_md = markdown_table(seed_rows, SEED_COLUMNS)
    summary_md = comparison_table(rows, aggregate_rows)
    (out / "results.md").write_text(results_md)
    (out / "summary.md").write_text(summary_md)
    (out / "per_seed.md").write_text(seeds_md)
    (out / "aggregate.md").write_text(aggregate_md)
    figures = []
    for env_id in sorted({r["env"] for r in records}):
        name = f"curves_{env_id}.png"
        plot_curves(records, env_id, thresholds[env_id], out / name)
        figures.append(name)
    if aggregate_rows:
        plot_aggregate(aggregate_rows, out / "aggregate.png")
        figures.append("aggregate.png")
    normalisation = ", ".join(f"{env} ({randoms[env]:.4g} .. {thresholds[env]})" for env in sorted(randoms))
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}`",
        "",
        f"Date: {datetime.date.today().isoformat()}. Machine: {machine_description()}.",
        "",
        settings,
        "",
        "## Summary (final return, mean +/- std (seeds); IQM over the envs)",
        "",
        summary_md,
        "## Per environment",
        "",
        results_md,
        "## Aggregate (rliable, 95% stratified bootstrap intervals)",
        "",
        f"Normalised score (random policy .. threshold): {normalisation}.",
        "",
        aggregate_md,
        "## Per seed",
        "",
        seeds_md,
        "## Figures",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    if failed:
        lines += ["## Failed runs", ""] + [f"- {f['algo']} {f['env']} seed {f['seed']}: {f['error']}" for f in failed]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return rows
