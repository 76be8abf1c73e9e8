"""
Training throughput of REINFORCE against SB3's A2C and PPO, and against the limit of the rollout loop.

For each env (8 envs, ``DummyVecEnv``, default ``MlpPolicy`` architecture of each config) it measures environment steps
per second of ``learn()``:

- REINFORCE with its zoo config, for each baseline (none, mean, linear, value) and both batch modes;
- SB3's A2C and PPO with the zoo's configs for the same env;
- the limit: a loop that only steps the VecEnv with actions from the same policy's forward pass (no storage, no
  training).

All configs get 8 envs (the zoo's ``n_envs`` is overridden) so that every row steps the same VecEnv. Every row is
timed at a fixed policy: the learning rate is a schedule that returns 0, so ``learn()`` does all of its work
(rollouts, gradients, value epochs, optimizer steps) but the parameters do not move. Otherwise a row whose policy
learns faster would play longer episodes (fewer resets) than the others and than the limit loop, and be timed
on a cheaper env. Each row is the median of ``--repeats`` timed runs of ``--steps`` steps, after a warm-up run.

    python benchmarks/throughput.py --out docs/results/throughput.csv
"""

import argparse
import contextlib
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
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import obs_as_tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cartpole import machine_description

from sb3_reinforce import REINFORCE, zoo

N_ENVS = 8
BASELINES = [None, "mean", "linear", "value"]


def frozen(progress_remaining: float) -> float:
    """A learning-rate schedule that keeps the policy fixed."""
    return 0.0


def build(algo: str, env_id: str, overrides: dict[str, Any], config: str | None = None) -> BaseAlgorithm:
    """A model from the zoo's config for ``algo`` (the package's for REINFORCE), through the zoo's own preprocessing."""
    zoo.register()
    manager = ExperimentManager(
        argparse.Namespace(), algo, env_id, "/tmp/sb3_reinforce_throughput", n_timesteps=1, eval_freq=-1,
        hyperparams={"n_envs": N_ENVS, **overrides}, config=config, verbose=0, vec_env_type="dummy",
    )  # fmt: skip
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        result = manager.setup_experiment()
    assert result is not None
    model, _ = result
    model.learning_rate = frozen  # the zoo's schedule parsing only takes numbers and "lin_" strings
    model._setup_lr_schedule()
    return model


def time_learn(model: BaseAlgorithm, steps: int, repeats: int) -> float:
    """Median env steps per second of ``learn(steps)`` over ``repeats`` runs, after a warm-up."""
    model.learn(min(steps, 2048), reset_num_timesteps=True)
    rates = []
    for _ in range(repeats):
        start_steps = model.num_timesteps
        start = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        rates.append((model.num_timesteps - start_steps) / (time.perf_counter() - start))
    return statistics.median(rates)


def time_limit(model: BaseAlgorithm, steps: int, repeats: int) -> float:
    """Steps per second of stepping the model's VecEnv with actions from its policy, nothing else."""
    env = model.get_env()
    assert env is not None
    policy = model.policy
    rates = []
    for _ in range(repeats + 1):
        obs = env.reset()
        n = 0
        start = time.perf_counter()
        while n < steps:
            with th.no_grad():
                actions = policy.get_distribution(obs_as_tensor(obs, model.device)).get_actions().cpu().numpy()  # type: ignore[attr-defined]
            if hasattr(model.action_space, "low"):
                actions = np.clip(actions, model.action_space.low, model.action_space.high)  # type: ignore[attr-defined]
            obs, _, _, _ = env.step(actions)
            n += env.num_envs
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates[1:])


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

        limit = None
        results: dict[str, float] = {}
        for label, algo, overrides in runs:
            model = build(algo, env_id, overrides, zoo.default_config_path() if algo == "reinforce" else None)
            if limit is None:
                assert isinstance(model, REINFORCE)
                limit = time_limit(model, args.steps, args.repeats)
                print(f"{env_id:16s} {'limit (policy forward + env step)':36s} {limit:9.0f} steps/s", flush=True)
            results[label] = time_learn(model, args.steps, args.repeats)
            print(
                f"{env_id:16s} {label:36s} {results[label]:9.0f} steps/s  {results[label] / limit:5.2f} of limit", flush=True
            )
            assert model.env is not None
            model.env.close()
        assert limit is not None
        for label, rate in results.items():
            rows.append(dict(env=env_id, run=label, steps_per_second=round(rate), of_limit=rate / limit,
                             vs_a2c=rate / results["a2c (zoo)"], limit=round(limit)))  # fmt: skip

    date = datetime.date.today().isoformat()
    print(f"\n{date}; {machine_description()}; torch threads {th.get_num_threads()}; {args.steps} steps x {args.repeats} runs")
    print("| env | run | steps/s | of limit | vs A2C |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['env']} | {r['run']} | {r['steps_per_second']} | {r['of_limit']:.2f} | {r['vs_a2c']:.2f} |")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=[*rows[0], "date", "machine"])
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, "date": date, "machine": machine_description()})


if __name__ == "__main__":
    main()
