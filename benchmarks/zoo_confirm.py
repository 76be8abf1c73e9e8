"""
Confirm a zoo config over several seeds with the zoo's own training and evaluation protocol (the figures of
docs/zoo.md for CartPole-v1 and Acrobot-v1; later entries were confirmed with ``sb3-reinforce benchmark``, which
does the same for many algorithms and envs at once).

Each seed runs ``sb3-reinforce train --algo ALGO --env ENV --seed S --eval-freq F --eval-episodes E`` (the package's
``zoo_configs/reinforce.yml`` for REINFORCE, the zoo's own file for other algorithms); the zoo's ``EvalCallback``
(deterministic, on a separate env) writes ``evaluations.npz``. From it this script reports, per seed: the final
evaluation mean, and the first step at which the evaluation mean reached ``--threshold``.

    python benchmarks/zoo_confirm.py --env CartPole-v1 --seeds 0 1 2 3 4 --threshold 475 --out docs/results/zoo_CartPole-v1.csv
"""

import argparse
import csv
import datetime
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sb3_reinforce.benchmark import machine_description, steps_to_threshold


def run_seed(algo: str, env_id: str, seed: int, folder: str, eval_freq: int, eval_episodes: int, extra: list[str]) -> Path:
    log = Path(folder) / f"{algo}_{env_id}_{seed}.log"
    command = [
        sys.executable, "-m", "sb3_reinforce", "train", "--algo", algo, "--env", env_id, "--seed", str(seed),
        "-f", folder, "--eval-freq", str(eval_freq), "--eval-episodes", str(eval_episodes), "--num-threads", "1",
        "--uuid", *extra,
    ]  # fmt: skip
    with open(log, "w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, env={**os.environ, "MPLBACKEND": "Agg"})
    text = log.read_text()
    run_dir = next(line.split("Saving to ", 1)[1].strip() for line in text.splitlines() if line.startswith("Saving to "))
    return Path(run_dir)


def summarize(run_dir: Path, threshold: float) -> dict[str, Any]:
    data = np.load(run_dir / "evaluations.npz")
    means = data["results"].mean(axis=1)
    steps = data["timesteps"]
    return dict(
        final_mean=float(means[-1]),
        final_std=float(data["results"][-1].std()),
        best_mean=float(means.max()),
        first_step_at_threshold=steps_to_threshold(steps, means, threshold),
        n_timesteps=int(steps[-1]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="reinforce")
    parser.add_argument("--env", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threshold", type=float, required=True)
    parser.add_argument("--eval-freq", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--folder", help="log folder (default: a temporary one)")
    parser.add_argument("--out", help="CSV file for the per-seed results")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more zoo flags, after --")
    args = parser.parse_args()
    extra = [a for a in args.extra if a != "--"]
    folder = args.folder or tempfile.mkdtemp(prefix="zoo_confirm_")

    with ThreadPoolExecutor(args.jobs) as pool:
        dirs = list(
            pool.map(lambda s: run_seed(args.algo, args.env, s, folder, args.eval_freq, args.eval_episodes, extra), args.seeds)
        )
    rows = [{"seed": s, **summarize(d, args.threshold)} for s, d in zip(args.seeds, dirs, strict=True)]
    finals = np.array([r["final_mean"] for r in rows])
    firsts = [r["first_step_at_threshold"] for r in rows]
    reached = [f for f in firsts if f is not None]
    date = datetime.date.today().isoformat()
    print(f"{args.algo} on {args.env}, {len(rows)} seeds, eval every {args.eval_freq} steps x {args.eval_episodes} episodes")
    print(f"{'seed':>4} {'final mean':>11} {'best mean':>10} {'first step >= ' + format(args.threshold, 'g'):>20}")
    for r in rows:
        print(f"{r['seed']:>4} {r['final_mean']:>11.1f} {r['best_mean']:>10.1f} {r['first_step_at_threshold']!s:>20}")
    median_first = float(np.median([f if f is not None else np.inf for f in firsts]))
    print(
        f"final mean over seeds {finals.mean():.1f} +/- {finals.std():.1f}; seeds reaching {args.threshold:g}: "
        f"{len(reached)}/{len(rows)}; median first step {median_first:g}; {date}; {machine_description()}"
    )
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=[*rows[0], "algo", "env", "date", "machine", "command"])
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {**r, "algo": args.algo, "env": args.env, "date": date, "machine": machine_description(),
                     "command": " ".join(sys.argv)}
                )  # fmt: skip


if __name__ == "__main__":
    main()
