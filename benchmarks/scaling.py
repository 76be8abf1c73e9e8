"""
How REINFORCE's cost grows with the work: time per update (rollout and update separately) against the batch size,
the episode length and the number of envs, and memory across updates.

    python -m benchmarks.scaling --out docs/results/scaling.csv

- batch size: CartPole-v1, 8 envs, ``batch_mode="steps"``, batches of 1k to 64k steps;
- episode length: Pendulum-v1 (never terminates) with ``max_episode_steps`` from 100 to 10,000, whole-episode
  batches of 8 episodes on 8 envs;
- number of envs: CartPole-v1, batches of 16k steps, 1 to 64 envs;
- memory: the peak resident memory and the rollout storage's rows after each of 30 whole-episode updates.
Each row uses the value baseline (the most expensive update) unless stated, and one torch thread.
"""

import argparse
import csv
import datetime
import os
import resource
import time
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.cartpole import machine_description
from sb3_reinforce import REINFORCE


class Timed(REINFORCE):
    """REINFORCE that accumulates the wall time of its rollouts and of its updates."""

    rollout_seconds = 0.0
    train_seconds = 0.0

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> bool:
        start = time.perf_counter()
        result = super().collect_rollouts(*args, **kwargs)
        self.rollout_seconds += time.perf_counter() - start
        return result

    def train(self) -> None:
        start = time.perf_counter()
        super().train()
        self.train_seconds += time.perf_counter() - start


def measure(model: Timed, updates: int) -> dict[str, float]:
    model.learn(1)  # warm-up: one rollout and one update
    model.rollout_seconds = model.train_seconds = 0.0
    before_updates, before_steps = model._n_updates, model.num_timesteps
    while model._n_updates - before_updates < updates:
        model.learn(1, reset_num_timesteps=False)
    n = model._n_updates - before_updates
    steps = model.num_timesteps - before_steps
    return dict(
        updates=n,
        steps_per_update=steps / n,
        rollout_ms_per_update=1000 * model.rollout_seconds / n,
        train_ms_per_update=1000 * model.train_seconds / n,
        us_per_step=1e6 * (model.rollout_seconds + model.train_seconds) / steps,
    )


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--out", help="CSV file")
    args = parser.parse_args()
    th.set_num_threads(1)
    rows: list[dict[str, Any]] = []

    def record(study: str, setting: str, result: dict[str, float]) -> None:
        rows.append(dict(study=study, setting=setting, **result))
        print(f"{study:16s} {setting:28s} " + "  ".join(f"{k}={v:.1f}" for k, v in result.items()), flush=True)

    for batch in (1024, 4096, 16384, 65536):
        model = Timed("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), n_steps=batch // 8, seed=0)
        record("batch size", f"{batch} steps (8 envs x {batch // 8})", measure(model, args.updates))

    for length in (100, 1000, 10000):
        env = make_vec_env(lambda length=length: gym.make("Pendulum-v1", max_episode_steps=length), n_envs=8, seed=0)
        model = Timed("MlpPolicy", env, batch_mode="episodes", n_episodes=8, seed=0)
        record("episode length", f"max_episode_steps={length}", measure(model, max(2, args.updates // (1 + length // 2000))))

    for n_envs in (1, 4, 16, 64):
        model = Timed("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs, seed=0), n_steps=16384 // n_envs, seed=0)
        record("n_envs", f"{n_envs} envs, 16k-step batches", measure(model, args.updates))

    model = Timed("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), batch_mode="episodes", n_episodes=16, seed=0)
    model.learn(1)
    for update in range(1, 31):
        model.learn(1, reset_num_timesteps=False)
        if update in (1, 10, 20, 30):
            record("memory", f"after update {update}",
                   dict(max_rss_mb=max_rss_mb(), storage_rows=model.rollout_buffer.buffer_size,
                        rollout_rows=model.rollout_buffer.pos))  # fmt: skip

    date = datetime.date.today().isoformat()
    print(f"{date}; {machine_description()}")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        fields = sorted({key for row in rows for key in row} - {"study", "setting"})
        with open(args.out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["study", "setting", *fields, "date", "machine"])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "date": date, "machine": machine_description()})


if __name__ == "__main__":
    main()
