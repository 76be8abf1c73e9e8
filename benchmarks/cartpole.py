"""
Learning benchmark of REINFORCE's defaults: ``REINFORCE("MlpPolicy", "CartPole-v1", seed=s).learn(N)`` for each seed,
then a deterministic evaluation (mean over ``--eval-episodes`` episodes on a fresh env).

Each run uses ``--threads`` torch threads (1 by default: for networks of 64 units, more threads only add
synchronisation, and on a loaded machine they wait for each other; the zoo's ``--num-threads`` is the same choice).

    python benchmarks/cartpole.py --seeds 0 1 2 3 4 --timesteps 100000 --out docs/results/cartpole_defaults.csv
"""

import argparse
import csv
import datetime
import multiprocessing
import os
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_reinforce import REINFORCE, __version__
from sb3_reinforce.benchmark import machine_description


def train_and_evaluate(
    seed: int, timesteps: int, eval_episodes: int, env_id: str, threads: int, progress_bar: bool = False
) -> dict[str, Any]:
    th.set_num_threads(threads)  # this script's own process (or pool worker), not the library's choice
    start = time.perf_counter()
    model = REINFORCE("MlpPolicy", env_id, seed=seed).learn(timesteps, progress_bar=progress_bar)
    train_seconds = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000 + seed)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
    assert isinstance(mean, float) and isinstance(std, float)  # not per-episode lists (return_episode_rewards=False)
    return dict(
        seed=seed, timesteps=model.num_timesteps, eval_mean=float(mean), eval_std=float(std), train_seconds=train_seconds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=475.0, help="evaluation mean that counts as solved")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", help="CSV file for the per-seed results")
    parser.add_argument("--progress-bar", action="store_true", help="SB3's progress bar (runs the seeds one at a time)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    args = parser.parse_args()
    if args.progress_bar:
        args.jobs = 1

    jobs = [(seed, args.timesteps, args.eval_episodes, args.env, args.threads) for seed in args.seeds]
    if args.jobs > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
            results = pool.starmap(train_and_evaluate, jobs)
    else:
        results = [train_and_evaluate(*job, progress_bar=args.progress_bar) for job in jobs]

    date = datetime.date.today().isoformat()
    machine = machine_description()
    print(f"REINFORCE {__version__} defaults on {args.env}, {args.timesteps} steps, {date}, {machine}")
    print(f"{'seed':>4} {'eval mean':>10} {'eval std':>9} {'train s':>8}")
    for r in results:
        print(f"{r['seed']:>4} {r['eval_mean']:>10.1f} {r['eval_std']:>9.1f} {r['train_seconds']:>8.1f}")
    means = np.array([r["eval_mean"] for r in results])
    solved = int((means >= args.threshold).sum())
    print(f"mean {means.mean():.1f}, median {np.median(means):.1f}, seeds >= {args.threshold:g}: {solved}/{len(means)}")

    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=[*results[0], "env", "date", "machine"])
            writer.writeheader()
            for r in results:
                writer.writerow({**r, "env": args.env, "date": date, "machine": machine})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
