"""
Training throughput of REINFORCE against SB3's A2C and PPO, and against the limit of the rollout loop.

For each env (8 envs, ``DummyVecEnv``, default ``MlpPolicy`` architecture of each config) it measures environment steps
per second of ``learn()``:

- REINFORCE with its zoo config, for each baseline (none, mean, linear, value) and both batch modes;
- SB3's A2C and PPO with the zoo's configs for the same env;
- the limit: a loop that only steps the VecEnv with actions from the same policy's forward pass (no storage, no
  training), timed on each row's own model and env, alternately with the row's own timed runs.

All configs get 8 envs (the zoo's ``n_envs`` is overridden) so that every row steps the same VecEnv. Every row is
timed at a fixed policy: the learning rate is a schedule that returns 0, so ``learn()`` does all of its work
(rollouts, gradients, value epochs, optimizer steps) but the parameters do not move. Otherwise a row whose policy
learns faster would play longer episodes (fewer resets) than the others and than the limit loop, and be timed
on a cheaper env. Each row is the median of ``--repeats`` timed runs of ``--steps`` steps, after a warm-up run.

    python benchmarks/throughput.py --out docs/results/throughput.csv
"""

import argparse
import csv
import datetime
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import obs_as_tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cartpole import machine_description

from sb3_reinforce import zoo

N_ENVS = 8
BASELINES = [None, "mean", "linear", "value"]


def frozen(progress_remaining: float) -> float:
    """A learning-rate schedule that keeps the policy fixed."""
    return 0.0


def build(algo: str, env_id: str, overrides: dict[str, Any], config: str | None = None) -> BaseAlgorithm:
    """A model from the zoo's config for ``algo`` (the package's for REINFORCE) with 8 envs, at a fixed policy."""
    model, _ = zoo.build_model(algo, env_id, "/tmp/sb3_reinforce_throughput", {"n_envs": N_ENVS, **overrides}, config)
    model.learning_rate = frozen  # the zoo's schedule parsing only takes numbers and "lin_" strings
    model._setup_lr_schedule()
    return model


def learn_rate(model: BaseAlgorithm, steps: int) -> float:
    """Env steps per second of one ``learn(steps)``."""
    start_steps = model.num_timesteps
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return (model.num_timesteps - start_steps) / (time.perf_counter() - start)


def limit_rate(model: BaseAlgorithm, steps: int) -> float:
    """Steps per second of stepping the model's VecEnv with actions from its policy's forward pass, nothing else."""
    env = model.get_env()
    assert env is not None
    policy = model.policy
    low = getattr(model.action_space, "low", None)
    high = getattr(model.action_space, "high", None)
    obs = env.reset()
    n = 0
    start = time.perf_counter()
    while n < steps:
        with th.no_grad():
            actions = policy.get_distribution(obs_as_tensor(obs, model.device)).get_actions().cpu().numpy()  # type: ignore[attr-defined]
        if low is not None:
            actions = np.clip(actions, low, high)
        obs, _, _, _ = env.step(actions)
        n += env.num_envs
    return n / (time.perf_counter() - start)


def measure(model: BaseAlgorithm, steps: int, repeats: int) -> tuple[float, float]:
    """
    Median rates of ``learn()`` and of the limit loop on the same (frozen) model and env, timed alternately so that
    slow drifts of the machine's speed affect both alike.
    """
    model.learn(min(steps, 2048), reset_num_timesteps=True)  # warm-up
    limit_rate(model, min(steps, 2048))
    learn, limit = [], []
    for _ in range(repeats):
        limit.append(limit_rate(model, steps))
        learn.append(learn_rate(model, steps))
    return statistics.median(learn), statistics.median(limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "HalfCheetah-v5"])
    parser.add_argument("--steps", type=int, default=40_000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--out", help="CSV file")
    args = parser.parse_args()
    if args.threads:
        th.set_num_threads(args.threads)

    config = yaml.safe_load(open(zoo.default_config_path()))
    rows: list[dict[str, Any]] = []
    for env_id in args.envs:
        entry = config.get(env_id, config["default"])
        runs: list[tuple[str, str, dict[str, Any]]] = []
        for batch_mode in ("steps", "episodes"):
            for baseline in BASELINES:
                overrides: dict[str, Any] = {"baseline": baseline, "batch_mode": batch_mode}
                if entry.get("return_estimator") == "gae" and baseline != "value":
                    overrides["return_estimator"] = "reward_to_go"
                if batch_mode == "episodes":
                    overrides["n_episodes"] = entry.get("n_episodes", N_ENVS)
                runs.append((f"reinforce {batch_mode} {baseline}", "reinforce", overrides))
        runs += [("a2c (zoo)", "a2c", {}), ("ppo (zoo)", "ppo", {})]

        results: dict[str, tuple[float, float]] = {}
        for label, algo, overrides in runs:
            model = build(algo, env_id, overrides, zoo.default_config_path() if algo == "reinforce" else None)
            rate, limit = measure(model, args.steps, args.repeats)
            results[label] = (rate, limit)
            print(f"{env_id:16s} {label:28s} {rate:9.0f} steps/s, limit {limit:9.0f}: {rate / limit:5.2f}", flush=True)
            assert model.env is not None
            model.env.close()
        a2c = results["a2c (zoo)"][0]
        for label, (rate, limit) in results.items():
            rows.append(dict(env=env_id, run=label, steps_per_second=round(rate), limit=round(limit), of_limit=rate / limit,
                             vs_a2c=rate / a2c))  # fmt: skip

    date = datetime.date.today().isoformat()
    print(f"\n{date}; {machine_description()}; torch threads {th.get_num_threads()}; {args.steps} steps x {args.repeats} runs")
    print("| env | run | steps/s | limit steps/s | of limit | vs A2C |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['env']} | {r['run']} | {r['steps_per_second']} | {r['limit']} | {r['of_limit']:.2f} | {r['vs_a2c']:.2f} |"
        )
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=[*rows[0], "date", "machine"])
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, "date": date, "machine": machine_description()})


if __name__ == "__main__":
    main()
