"""
``sb3-reinforce benchmark``: REINFORCE (and its variants) against A2C, PPO or any zoo algorithm, over many seeds,
with the RL Zoo's training and evaluation protocol, and the statistics the field reports.

    sb3-reinforce benchmark --envs CartPole-v1 Acrobot-v1 --algos reinforce a2c ppo --seeds 10 --jobs 2 --out bench/
    sb3-reinforce benchmark --envs CartPole-v1 --algos reinforce reinforce:baseline=mean \\
        reinforce:return_estimator=total,baseline=None --seeds 5 --out ablation/

Each (algorithm, env, seed) run is one ``sb3-reinforce train`` process (the zoo's ``ExperimentManager``, each
algorithm's own zoo config: the package's ``zoo_configs/reinforce.yml`` for REINFORCE, the zoo's files otherwise),
with the same budget (``--n-timesteps``, by default the REINFORCE config's budget for the env) and the same
evaluation for every algorithm: the zoo's ``EvalCallback`` on a separate env every ``--eval-freq`` steps,
``--eval-episodes`` deterministic episodes. An algorithm given as ``ALGO:key=value,key=value`` is a variant of
``ALGO`` with those hyperparameters overriding its zoo config (``-params``), named by that string.

Runs go to local processes (``--jobs``) or, with ``--ray-address``, to the tasks of an existing Ray cluster. A run
that finished is kept in ``OUT/runs/.../result.json`` and skipped when the command runs again; a run that fails is
reported (``failed.json`` and its log) and the others go on. From the finished runs the command writes:

- ``results.csv`` / ``results.md``: per algorithm and env, the final evaluation return (mean, std and 95%
  t-interval over seeds), the steps to first reach the env's threshold, the area under the learning curve, wall time and fps;
- ``aggregate.csv`` / ``aggregate.md`` / ``aggregate.png``: IQM and optimality gap of the final returns normalised
  per env as ``(return - random) / (threshold - random)`` (``random``: a uniformly random policy, measured), with
  95% stratified bootstrap confidence intervals (rliable);
- ``curves_ENV.png``: evaluation return against steps, mean and 95% t-interval over seeds, all algorithms;
- ``report.md``: all of the above with the command, date and machine.
"""

import argparse
import ast
import csv
import datetime
import functools
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import yaml

# Thresholds for envs whose Gymnasium spec has none (the return at which the env counts as solved in the zoo's
# and the literature's reports).
DEFAULT_THRESHOLDS = {"Pendulum-v1": -200.0}
RESULT_FILE = "result.json"
FAILED_FILE = "failed.json"
CONFIDENCE = 0.95


def machine_description() -> str:
    """CPU model, core count, OS and torch version: the record of where a figure was measured."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}"


@dataclass(frozen=True)
class AlgoSpec:
    """An algorithm of the benchmark: a zoo algorithm name and the hyperparameters that override its zoo config."""

    label: str
    algo: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> "AlgoSpec":
        """
        ``"reinforce"`` or ``"reinforce:baseline=mean,return_estimator=total"``, read as the keyword arguments of a
        Python call: values are Python literals; anything else (``mean``, ``lin_1e-3``, ``dict(net_arch=[64])``) is
        kept as the string written, as the zoo's config files have it.
        """
        algo, _, rest = text.partition(":")
        source = f"f({rest})"
        expected = "expected ALGO or ALGO:key=value,key=value"
        try:
            call = ast.parse(source, mode="eval").body
        except SyntaxError:
            raise ValueError(f"--algos: {text!r} is not ALGO:key=value,...; {expected}") from None
        assert isinstance(call, ast.Call)
        for item in [*call.args, *(k for k in call.keywords if k.arg is None)]:
            raise ValueError(f"--algos: {text!r} has {ast.get_source_segment(source, item)!r}; {expected}")
        params: dict[str, Any] = {}
        for keyword in call.keywords:
            assert keyword.arg is not None
            try:
                params[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                params[keyword.arg] = ast.get_source_segment(source, keyword.value)
        return cls(label=text, algo=algo.strip().lower(), params=params)

    @property
    def folder(self) -> str:
        """A file-system-safe name for the label."""
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label)


@dataclass(frozen=True)
class RunSpec:
    """One training run: algorithm, env, seed, budget and evaluation protocol."""

    algo: AlgoSpec
    env_id: str
    seed: int
    n_timesteps: int
    eval_freq: int
    eval_episodes: int
    zoo_args: tuple[str, ...] = ()
    conf_file: str | None = None

    def run_dir(self, out: Path) -> Path:
        return out / "runs" / self.algo.folder / self.env_id / f"seed_{self.seed}"

    def command(self, run_dir: Path) -> list[str]:
        """The ``sb3-reinforce train`` command line of this run."""
        command = [
            sys.executable, "-m", "sb3_reinforce", "train", "--algo", self.algo.algo, "--env", self.env_id,
            "--seed", str(self.seed), "-n", str(self.n_timesteps), "-f", str(run_dir / "logs"),
            "--eval-freq", str(self.eval_freq), "--eval-episodes", str(self.eval_episodes), "--num-threads", "1",
            *self.zoo_args,
        ]  # fmt: skip
        if self.conf_file is not None:
            command += ["--conf-file", self.conf_file]
        if self.algo.params:
            command += ["-params", *(f"{key}:{value!r}" for key, value in self.algo.params.items())]
        return command


def _last_fps(log: str) -> float | None:
    """The last ``fps`` that SB3's logger printed (steps per second of ``learn``, evaluation included)."""
    values = re.findall(r"\|\s*fps\s*\|\s*([0-9.]+)", log)
    return float(values[-1]) if values else None


def run_one(spec: RunSpec, run_dir: str) -> dict[str, Any]:
    """
    Train one run in its own process and return its record: evaluation curve, wall time, fps, or the failure.

    Runs wherever it is called: in a local worker thread or as a Ray task (it only needs the package installed and
    ``run_dir`` writable).
    """
    folder = Path(run_dir)
    shutil.rmtree(folder / "logs", ignore_errors=True)  # a run tried again starts afresh
    folder.mkdir(parents=True, exist_ok=True)
    command = spec.command(folder)
    environment = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall_time = time.perf_counter() - start
    log = completed.stdout + completed.stderr
    (folder / "train.log").write_text(log)
    record = {
        **_record_header(spec), "command": shlex.join(command), "wall_time": wall_time,
        "returncode": completed.returncode, "host": platform.node(), "worker_pid": os.getpid(),
    }  # fmt: skip
    evaluations = sorted(folder.glob("logs/*/*/evaluations.npz"))
    if completed.returncode != 0 or not evaluations:
        reason = "no evaluations.npz written" if completed.returncode == 0 else f"exit status {completed.returncode}"
        return {**record, "status": "failed", "error": reason, "log_tail": log[-3000:]}
    data = np.load(evaluations[-1])
    return {
        **record,
        "status": "ok",
        "fps": _last_fps(log),
        "eval_timesteps": data["timesteps"].astype(int).tolist(),
        "eval_returns": data["results"].mean(axis=1).tolist(),
    }


def _record_header(spec: RunSpec) -> dict[str, Any]:
    return {"algo": spec.algo.label, "env": spec.env_id, "seed": spec.seed, "n_timesteps": spec.n_timesteps}


def _finish(spec: RunSpec, out: Path, result: Callable[[], dict[str, Any]], report: Callable[[dict[str, Any]], None]) -> None:
    """Write the run's record (``result()``, or the exception it raised as a failure) as soon as it ends."""
    try:
        record = result()
    except Exception as error:  # a run that raised (or a lost Ray task) must not stop the others
        record = {**_record_header(spec), "status": "failed", "error": f"{type(error).__name__}: {error}", "log_tail": ""}
    folder = spec.run_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT_FILE, FAILED_FILE):
        (folder / stale).unlink(missing_ok=True)
    (folder / (RESULT_FILE if record["status"] == "ok" else FAILED_FILE)).write_text(json.dumps(record, indent=1))
    report(record)


def execute_local(specs: list[RunSpec], out: Path, jobs: int, report: Callable[[dict[str, Any]], None]) -> None:
    """Run the specs in up to ``jobs`` parallel processes."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(run_one, spec, str(spec.run_dir(out))): spec for spec in specs}
        for future in as_completed(futures):
            _finish(futures[future], out, future.result, report)


def execute_ray(specs: list[RunSpec], out: Path, address: str, report: Callable[[dict[str, Any]], None]) -> None:
    """Submit each spec as a task (1 CPU) to the Ray cluster at ``address``; records are written here."""
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        remote_run = ray.remote(num_cpus=1, max_retries=0)(run_one)
        pending = {remote_run.remote(spec, str(spec.run_dir(out).resolve())): spec for spec in specs}
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            _finish(pending.pop(done), out, cast(Callable[[], dict[str, Any]], functools.partial(ray.get, done)), report)
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------------------------------------- stats


def threshold_for(env_id: str, overrides: dict[str, float]) -> float | None:
    """The return at which ``env_id`` counts as solved: ``--thresholds``, the Gymnasium spec, or our default."""
    if env_id in overrides:
        return overrides[env_id]
    spec_threshold = gym.spec(env_id).reward_threshold
    return float(spec_threshold) if spec_threshold is not None else DEFAULT_THRESHOLDS.get(env_id)


def random_policy_return(env_id: str, n_episodes: int = 20, seed: int = 0) -> float:
    """Mean return of a uniformly random policy over ``n_episodes`` (the zero point of the normalised score)."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(n_episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / n_episodes


def steps_to_threshold(timesteps: np.ndarray, returns: np.ndarray, threshold: float | None) -> int | None:
    """The first evaluation step at which the evaluation mean reached ``threshold`` (None: never)."""
    if threshold is None:
        return None
    reached = np.flatnonzero(returns >= threshold)
    return int(timesteps[reached[0]]) if len(reached) else None


def area_under_curve(timesteps: np.ndarray, returns: np.ndarray) -> float:
    """Area under the evaluation curve divided by its length in steps: the return averaged over training."""
    if len(timesteps) < 2:
        return float(returns[-1])
    return float(np.trapezoid(returns, timesteps) / (timesteps[-1] - timesteps[0]))


def t_interval(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the 95% Student-t confidence interval of the mean along ``axis``."""
    from scipy import stats

    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def _runs(records: list[dict[str, Any]], algo: str, env_id: str) -> list[dict[str, Any]]:
    """The records of ``algo`` on ``env_id``, by seed."""
    return sorted((r for r in records if r["algo"] == algo and r["env"] == env_id), key=lambda r: r["seed"])


def summarize(records: list[dict[str, Any]], thresholds: dict[str, float | None]) -> list[dict[str, Any]]:
    """One row per (algorithm, env) of the finished runs' records."""
    rows = []
    keys = sorted({(r["algo"], r["env"]) for r in records}, key=lambda k: (k[1], k[0]))
    for algo, env_id in keys:
        runs = _runs(records, algo, env_id)
        finals = np.array([r["eval_returns"][-1] for r in runs])
        _, low, high = t_interval(finals)
        curves = [(np.array(r["eval_timesteps"]), np.array(r["eval_returns"])) for r in runs]
        reached = [steps_to_threshold(t, y, thresholds[env_id]) for t, y in curves]
        hits = [s for s in reached if s is not None]
        median_steps = float(np.median([np.inf if s is None else s for s in reached]))
        fps = [r["fps"] for r in runs if r.get("fps")]
        rows.append(
            {
                "env": env_id,
                "algo": algo,
                "seeds": len(runs),
                "n_timesteps": int(np.median([t[-1] for t, _ in curves])),
                "final_mean": float(finals.mean()),
                "final_std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
                "final_ci_low": float(low),
                "final_ci_high": float(high),
                "threshold": thresholds[env_id],
                "reached": len(hits),
                "median_steps_to_threshold": None if np.isinf(median_steps) else int(median_steps),
                "auc": float(np.mean([area_under_curve(t, y) for t, y in curves])),
                "wall_time_s": float(np.mean([r["wall_time"] for r in runs])),
                "fps": float(np.mean(fps)) if fps else None,
            }
        )
    return rows


def aggregate(
    records: list[dict[str, Any]], thresholds: dict[str, float | None], randoms: dict[str, float], reps: int = 2000
) -> list[dict[str, Any]]:
    """
    IQM and optimality gap over envs of the normalised final returns, with 95% stratified bootstrap intervals.

    Normalised score: ``(return - random) / (threshold - random)``, 1 at the threshold; the optimality gap is the
    mean shortfall below 1. Envs without a threshold are left out; an algorithm enters with the seeds it finished
    on every env (rliable needs a runs x envs matrix, one row per seed).
    """
    from rliable import library as rly
    from rliable import metrics

    envs = sorted({r["env"] for r in records if thresholds.get(r["env"]) is not None})
    if not envs:
        return []
    scores: dict[str, np.ndarray] = {}
    for algo in sorted({r["algo"] for r in records}):
        by_env = [{r["seed"]: r["eval_returns"][-1] for r in _runs(records, algo, env_id)} for env_id in envs]
        seeds = sorted(set.intersection(*(set(finals) for finals in by_env)))
        if seeds:
            columns = []
            for env_id, finals in zip(envs, by_env, strict=True):
                low, high = randoms[env_id], thresholds[env_id]
                assert high is not None
                columns.append((np.array([finals[seed] for seed in seeds]) - low) / (high - low))
            scores[algo] = np.stack(columns, axis=1)

    def statistics(matrix: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(matrix), metrics.aggregate_optimality_gap(matrix, 1.0)])

    np.random.seed(0)  # rliable's bootstrap draws from NumPy's global generator
    points, intervals = rly.get_interval_estimates(scores, statistics, reps=reps, confidence_interval_size=CONFIDENCE)
    return [
        {
            "algo": algo,
            "envs": len(envs),
            "runs_per_env": scores[algo].shape[0],
            "iqm": float(points[algo][0]),
            "iqm_low": float(intervals[algo][0, 0]),
            "iqm_high": float(intervals[algo][1, 0]),
            "optimality_gap": float(points[algo][1]),
            "gap_low": float(intervals[algo][0, 1]),
            "gap_high": float(intervals[algo][1, 1]),
        }
        for algo in scores
    ]


# ----------------------------------------------------------------------------------------------------------- output


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
    "reached": "seeds reaching it", "median_steps_to_threshold": "median steps to threshold",
    "auc": "AUC (mean return)", "wall_time_s": "wall time (s)", "fps": "fps",
}  # fmt: skip
AGGREGATE_COLUMNS = {
    "algo": "algorithm", "envs": "envs", "runs_per_env": "runs per env", "iqm": "IQM", "iqm_low": "IQM 95% low",
    "iqm_high": "IQM 95% high", "optimality_gap": "optimality gap", "gap_low": "gap 95% low", "gap_high": "gap 95% high",
}  # fmt: skip


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as file:
        if rows:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def plot_curves(records: list[dict[str, Any]], env_id: str, threshold: float | None, path: Path) -> None:
    """Evaluation return against steps for every algorithm on ``env_id``: mean and 95% t-interval over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for algo in sorted({r["algo"] for r in records if r["env"] == env_id}):
        runs = _runs(records, algo, env_id)
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
    plt.close(figure)


def plot_aggregate(rows: list[dict[str, Any]], path: Path) -> None:
    """IQM and optimality gap with their 95% intervals, one row per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 0.7 * len(rows) + 1.5))
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
    plt.close(figure)


def load_records(out: Path, specs: Iterable[RunSpec]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finished and the failed records of ``specs`` found under ``out``."""
    finished, failed = [], []
    for spec in specs:
        folder = spec.run_dir(out)
        if (folder / RESULT_FILE).exists():
            finished.append(json.loads((folder / RESULT_FILE).read_text()))
        elif (folder / FAILED_FILE).exists():
            failed.append(json.loads((folder / FAILED_FILE).read_text()))
    return finished, failed


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
    results_md = markdown_table(rows, RESULT_COLUMNS)
    aggregate_md = markdown_table(aggregate_rows, AGGREGATE_COLUMNS)
    (out / "results.md").write_text(results_md)
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
        "## Per environment",
        "",
        results_md,
        "## Aggregate (rliable, 95% stratified bootstrap intervals)",
        "",
        f"Normalised score (random policy .. threshold): {normalisation}.",
        "",
        aggregate_md,
        "## Figures",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    if failed:
        lines += ["## Failed runs", ""] + [f"- {f['algo']} {f['env']} seed {f['seed']}: {f['error']}" for f in failed]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return rows


# ------------------------------------------------------------------------------------------------------------- CLI


def _parse_thresholds(items: list[str]) -> dict[str, float]:
    thresholds = {}
    for item in items:
        env_id, equals, value = item.rpartition("=")
        try:
            thresholds[env_id] = float(value)
        except ValueError:
            equals = ""
        if not equals or not env_id or not np.isfinite(thresholds[env_id]):
            raise ValueError(f"--thresholds: {item!r} is not ENV=NUMBER (a finite number)")
    return thresholds


def _import_gym_packages(packages: list[str]) -> None:
    import importlib

    if packages and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as with `python -m`: modules of the current folder can be named
    for package in packages:
        importlib.import_module(package)


def _budget(env_id: str, n_timesteps: int | None) -> int:
    """``--n-timesteps``, or the REINFORCE zoo config's budget for the env, the same for every algorithm."""
    if n_timesteps is not None:
        return n_timesteps
    from sb3_reinforce.zoo import default_config_path

    config = yaml.safe_load(Path(default_config_path()).read_text())
    if env_id not in config or "n_timesteps" not in config[env_id]:
        raise ValueError(f"--n-timesteps: {env_id!r} has no entry in zoo_configs/reinforce.yml; give --n-timesteps")
    return int(float(config[env_id]["n_timesteps"]))


# Hyperparameters the zoo takes from a config entry besides the algorithm's constructor arguments.
ZOO_KEYS = {"n_envs", "normalize", "normalize_kwargs", "policy", "n_timesteps", "frame_stack", "env_wrapper",
            "vec_env_wrapper", "callback"}  # fmt: skip


def _check_algos(algos: list[AlgoSpec], envs: list[str], conf_files: dict[str, str | None]) -> None:
    """
    Every name is a zoo algorithm, every variant key a zoo key or an argument of its class, and every variant
    builds a model on every env exactly as its runs will (the zoo's config and preprocessing, ``zoo.build_model``).
    """
    import inspect
    import tempfile

    import rl_zoo3

    from sb3_reinforce import zoo

    zoo.register()
    for spec in algos:
        if spec.algo not in rl_zoo3.ALGOS:
            raise ValueError(f"--algos: {spec.algo!r} (in {spec.label!r}) is not one of {sorted(rl_zoo3.ALGOS)}")
        arguments = set(inspect.signature(rl_zoo3.ALGOS[spec.algo].__init__).parameters) - {"self", "policy", "env"}
        for key in spec.params:
            if key not in arguments | ZOO_KEYS:
                raise ValueError(
                    f"--algos: {key!r} (in {spec.label!r}) is not an argument of {spec.algo}; allowed: "
                    f"{sorted(arguments) + sorted(ZOO_KEYS)}"
                )
        if not spec.params:
            continue
        for env_id in envs:
            with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # only the errors matter here; the run itself warns
                try:
                    model, _ = zoo.build_model(spec.algo, env_id, folder, dict(spec.params), conf_files.get(spec.algo))
                except (ValueError, TypeError, AssertionError, NameError, SyntaxError) as error:
                    raise ValueError(f"--algos: {spec.label!r} does not build on {env_id}: {error}") from error
                assert model.env is not None
                model.env.close()


def zoo_configs_with_aliases(algo: str, envs: list[str], folder: Path) -> str | None:
    """
    The zoo's config file for ``algo`` with entries added for envs it only has under another version
    (``HalfCheetah-v5`` from ``HalfCheetah-v4``: same dynamics, newer Gymnasium API). None when nothing is missing.
    """
    import rl_zoo3

    path = Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"
    if not path.exists():
        return None
    config = yaml.safe_load(path.read_text())
    added = {}
    for env_id in envs:
        if env_id in config:
            continue
        name, _, version = env_id.rpartition("-v")
        older = [k for k in config if k.rpartition("-v")[0] == name and k.rpartition("-v")[2].isdigit()]
        if older and version.isdigit():
            added[env_id] = config[max(older, key=lambda k: int(k.rpartition("-v")[2]))]
    if not added:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{algo}.yml"
    target.write_text(yaml.safe_dump({**config, **added}, sort_keys=False))
    return str(target)


def _shell_quote(argument: str) -> str:
    """Quote for a POSIX shell, in double quotes when that reads better (``"reinforce:baseline='mean'"``)."""
    quoted = shlex.quote(argument)
    if quoted != argument and not any(char in argument for char in '"$`\\!'):
        return f'"{argument}"'
    return quoted


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument("--algos", nargs="+", default=["reinforce", "a2c", "ppo"], help="ALGO or ALGO:key=value,...")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0 .. N-1)")
    parser.add_argument("--n-timesteps", type=int, help="budget of every run (default: REINFORCE's config per env)")
    parser.add_argument("--eval-freq", type=int, help="steps between evaluations (default: budget / 20)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel local runs")
    parser.add_argument("--ray-address", help="run on this Ray cluster (e.g. 127.0.0.1:6379) instead of locally")
    parser.add_argument("--hyperparams", nargs="+", default=[], help="zoo -params for every run (key:value)")
    parser.add_argument("--thresholds", nargs="+", default=[], help="ENV=RETURN, overriding the solved thresholds")
    parser.add_argument("--gym-packages", nargs="+", default=[], help="modules that register extra envs")
    parser.add_argument("--out", required=True, help="output folder (runs already finished there are skipped)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the tables and figures")
    return parser


def _validate(args: argparse.Namespace) -> tuple[list[AlgoSpec], dict[str, float], dict[str, int]]:
    """Check the arguments that need no model; return the algorithms, threshold overrides and budgets per env."""
    _import_gym_packages(args.gym_packages)
    if args.seeds < 1:
        raise ValueError(f"--seeds: {args.seeds} given; allowed: a number of seeds >= 1")
    for name in ("jobs", "n_timesteps", "eval_freq", "eval_episodes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: {value} given; allowed: an integer >= 1")
    if len(set(args.envs)) != len(args.envs):
        raise ValueError(f"--envs: {args.envs} names an env twice")
    registered = set(gym.registry)
    for env_id in args.envs:
        if env_id not in registered:
            raise ValueError(f"--envs: {env_id!r} is not a registered Gymnasium env (add its module to --gym-packages)")
    algos = [AlgoSpec.parse(text) for text in args.algos]
    if len({a.label for a in algos}) != len(algos):
        raise ValueError(f"--algos: {args.algos} names an algorithm twice")
    if args.hyperparams and any(a.params for a in algos):
        raise ValueError("--hyperparams: cannot be combined with ALGO:key=value variants; put them in the variants")
    thresholds = _parse_thresholds(args.thresholds)
    for env_id in set(thresholds) - set(args.envs):
        raise ValueError(f"--thresholds: {env_id!r} is not one of --envs {args.envs}")
    budgets = {env_id: _budget(env_id, args.n_timesteps) for env_id in args.envs}
    return algos, thresholds, budgets


def _run_specs(
    args: argparse.Namespace, algos: list[AlgoSpec], budgets: dict[str, int], conf_files: dict[str, str | None]
) -> list[RunSpec]:
    zoo_args: list[str] = []
    if args.gym_packages:
        zoo_args += ["--gym-packages", *args.gym_packages]
    if args.hyperparams:
        zoo_args += ["-params", *args.hyperparams]
    return [
        RunSpec(algo, env_id, seed, budget, args.eval_freq or max(budget // 20, 1), args.eval_episodes,
                tuple(zoo_args), conf_files.get(algo.algo))
        for env_id, budget in budgets.items()
        for algo in algos
        for seed in range(args.seeds)
    ]  # fmt: skip


def _print_record(record: dict[str, Any]) -> None:
    name = f"{record['algo']} {record['env']} seed {record['seed']}"
    if record["status"] == "ok":
        print(f"  done   {name}: final {record['eval_returns'][-1]:.1f} in {record['wall_time']:.0f} s", flush=True)
    else:
        print(f"  FAILED {name}: {record['error']}", flush=True)


def _random_returns(out: Path, envs: list[str], thresholds: dict[str, float | None]) -> dict[str, float]:
    """
    Random-policy returns of the envs with a threshold, measured once and kept in ``OUT/random_policy.json``; each
    threshold must lie above it, or the normalised score would have no meaning.
    """
    path = out / "random_policy.json"
    randoms = json.loads(path.read_text()) if path.exists() else {}
    for env_id in envs:
        if env_id not in randoms and thresholds[env_id] is not None:
            randoms[env_id] = random_policy_return(env_id)
    path.write_text(json.dumps(randoms, indent=1))
    for env_id in envs:
        threshold = thresholds[env_id]
        if threshold is not None and threshold <= randoms[env_id]:
            raise ValueError(
                f"--thresholds: {env_id}={threshold:g} is not above the return of a random policy ({randoms[env_id]:.4g})"
            )
    return {env_id: randoms[env_id] for env_id in envs if env_id in randoms}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    algos, thresholds_given, budgets = _validate(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The zoo's files for the other algorithms, with -v5 aliases where the zoo only has -v4 entries.
    conf_files = {a.algo: zoo_configs_with_aliases(a.algo, args.envs, out / "configs") for a in algos if a.algo != "reinforce"}
    _check_algos(algos, args.envs, conf_files)
    specs = _run_specs(args, algos, budgets, conf_files)

    thresholds = {env_id: threshold_for(env_id, thresholds_given) for env_id in args.envs}
    randoms = _random_returns(out, args.envs, thresholds)

    finished, _ = load_records(out, specs)
    done = {(r["algo"], r["env"], r["seed"], r["n_timesteps"]) for r in finished}
    pending = [s for s in specs if (s.algo.label, s.env_id, s.seed, s.n_timesteps) not in done]
    print(f"benchmark: {len(specs)} runs, {len(specs) - len(pending)} already finished in {out}, {len(pending)} to run")
    if pending and not args.report_only:
        if args.ray_address:
            execute_ray(pending, out, args.ray_address, _print_record)
        else:
            execute_local(pending, out, args.jobs, _print_record)

    records, failed = load_records(out, specs)
    settings = (
        f"Every run: the zoo's `train` with each algorithm's zoo config, budget "
        f"{', '.join(f'{e} {b:g}' for e, b in budgets.items())} steps; evaluation every "
        f"{args.eval_freq or 'budget/20'} steps, {args.eval_episodes} deterministic episodes on a separate env; "
        f"seeds 0..{args.seeds - 1}."
    )
    # The command that produces these results (with --report-only it is the same command that ran them).
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"]
    command = "sb3-reinforce benchmark " + " ".join(_shell_quote(a) for a in given)
    rows = write_report(out, command, records, failed, thresholds, randoms, settings)
    print(markdown_table(rows, RESULT_COLUMNS))
    print(f"report: {out / 'report.md'}")
    if failed:
        print(f"{len(failed)} run(s) failed:", ", ".join(f"{f['algo']} {f['env']} seed {f['seed']}" for f in failed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
