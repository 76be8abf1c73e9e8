"""
How often runs fall back below the threshold after first reaching it, by the step at which they first reached it.

Reads the ``per_seed.csv`` of ``sb3-reinforce benchmark`` reports (columns ``steps_to_threshold`` and
``lowest_after_reaching``) and prints, for every first step at the threshold, the number of runs and how many of them
evaluate below the threshold at some later evaluation. All rows of all files are pooled unless ``--algo`` names one.

    python -m benchmarks.fallbacks docs/results/benchmark/cartpole_round6_seeds100/per_seed.csv --threshold 475
"""

import argparse
import csv
import math
from collections import Counter
from pathlib import Path


def count_fallbacks(paths: list[Path], threshold: float, algo: str | None = None) -> dict[int, tuple[int, int]]:
    """``{first step at the threshold: (runs, runs that fall back below it later)}``, runs that never reach it left out."""
    if not math.isfinite(threshold):
        raise ValueError(f"threshold: {threshold!r} is not a finite number (the reports' threshold, e.g. 475)")
    reached: Counter[int] = Counter()
    fell_back: Counter[int] = Counter()
    for path in paths:
        with open(path) as file:
            for row in csv.DictReader(file):
                if algo is not None and row["algo"] != algo:
                    continue
                if row["steps_to_threshold"] in ("", "-"):
                    continue
                step = int(float(row["steps_to_threshold"]))
                reached[step] += 1
                fell_back[step] += float(row["lowest_after_reaching"]) < threshold
    return {step: (reached[step], fell_back[step]) for step in sorted(reached)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("per_seed", nargs="+", type=Path, help="per_seed.csv files of benchmark reports")
    parser.add_argument("--threshold", type=float, required=True, help="the reports' threshold (475 for CartPole-v1)")
    parser.add_argument("--algo", help="only the rows of this algorithm label (default: all)")
    args = parser.parse_args(argv)
    counts = count_fallbacks(args.per_seed, args.threshold, args.algo)
    print("| first step at threshold | runs | fall back below it later |")
    print("| --- | --- | --- |")
    for step, (runs, fell) in counts.items():
        print(f"| {step} | {runs} | {fell} |")
    runs = sum(runs for runs, _ in counts.values())
    fell = sum(fell for _, fell in counts.values())
    print(f"| all | {runs} | {fell} |")


if __name__ == "__main__":
    main()
