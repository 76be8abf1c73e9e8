"""Statistics of the benchmark's records: per-run measures, per-(algorithm, env) summaries, rliable's aggregates."""

from typing import Any

import gymnasium as gym
import numpy as np

# Thresholds for envs whose Gymnasium spec has none (the return at which the env counts as solved in the zoo's
# and the literature's reports).
DEFAULT_THRESHOLDS = {"Pendulum-v1": -200.0}
CONFIDENCE = 0.95


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


def lowest_after_reaching(timesteps: np.ndarray, returns: np.ndarray, threshold: float | None) -> float | None:
    """
    The lowest evaluation from the first one at ``threshold`` on (None: never reached). At or above ``threshold``:
    the run never fell back after solving the env.
    """
    reached = steps_to_threshold(timesteps, returns, threshold)
    return None if reached is None else float(returns[timesteps >= reached].min())


def runs_of(records: list[dict[str, Any]], algo: str, env_id: str) -> list[dict[str, Any]]:
    """The records of ``algo`` on ``env_id``, by seed."""
    return sorted((r for r in records if r["algo"] == algo and r["env"] == env_id), key=lambda r: r["seed"])


def per_seed(records: list[dict[str, Any]], thresholds: dict[str, float | None]) -> list[dict[str, Any]]:
    """
    One row per run: its final and best evaluation, the first step at which it reached the threshold, and the lowest
    evaluation from then on (a run that falls back below the threshold after solving the env shows it here).
    """
    rows = []
    for record in sorted(records, key=lambda r: (r["env"], r["algo"], r["seed"])):
        timesteps, returns = np.array(record["eval_timesteps"]), np.array(record["eval_returns"])
        threshold = thresholds[record["env"]]
        rows.append(
            {
                "env": record["env"],
                "algo": record["algo"],
                "seed": record["seed"],
                "final": float(returns[-1]),
                "best": float(returns.max()),
                "steps_to_threshold": steps_to_threshold(timesteps, returns, threshold),
                "lowest_after_reaching": lowest_after_reaching(timesteps, returns, threshold),
                "auc": area_under_curve(timesteps, returns),
                "wall_time_s": float(record["wall_time"]),
            }
        )
    return rows


def summarize(records: list[dict[str, Any]], thresholds: dict[str, float | None]) -> list[dict[str, Any]]:
    """One row per (algorithm, env) of the finished runs' records."""
    rows = []
    keys = sorted({(r["algo"], r["env"]) for r in records}, key=lambda k: (k[1], k[0]))
    for algo, env_id in keys:
        runs = runs_of(records, algo, env_id)
        finals = np.array([r["eval_returns"][-1] for r in runs])
        _, low, high = t_interval(finals)
        curves = [(np.array(r["eval_timesteps"]), np.array(r["eval_returns"])) for r in runs]
        reached = [steps_to_threshold(t, y, thresholds[env_id]) for t, y in curves]
        hits = [s for s in reached if s is not None]
        threshold = thresholds[env_id]
        lowest = [lowest_after_reaching(t, y, threshold) for t, y in curves]
        held = sum(low is not None and threshold is not None and low >= threshold for low in lowest)
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
                "held": held,
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
        by_env = [{r["seed"]: r["eval_returns"][-1] for r in runs_of(records, algo, env_id)} for env_id in envs]
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

    # rliable's bootstrap draws from NumPy's global generator: seed it for reproducible intervals, then give the
    # caller's generator back its state
    state = np.random.get_state()
    np.random.seed(0)
    try:
        points, intervals = rly.get_interval_estimates(scores, statistics, reps=reps, confidence_interval_size=CONFIDENCE)
    finally:
        np.random.set_state(state)
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
