"""
How often runs fall back below the threshold after first reaching it, by the step at which they first reached it.

Reads the ``per_seed.csv`` of ``sb3-reinforce benchmark`` reports (columns ``steps_to_threshold`` and
``lowest_after_reaching``) and prints, for every first step at the threshold, the number of runs and how many of them
evaluate below the threshold at some later evaluation. All rows of all files are pooled unless ``--algo`` names one.

    python -m benchmarks.fallbacks docs/results/benchmark/cartpole_round6_seeds100/per_seed.csv --threshold 475

With ``--blocks N`` it prints instead, for each block of ``N`` consecutive seeds (seeds ``k N`` to ``k N + N - 1``) of
one algorithm, the median first step at the threshold (runs that never reach it count as later than any), the runs
that never fall below it after reaching it, and the lowest final return; then the pooled rate of runs that hold, its
95% Wilson interval, and the probability that all ``N`` seeds of a block hold at that rate and at the interval's ends.
"""

import argparse
import csv
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

from scipy.stats import binomtest


class Run(NamedTuple):
    """One row of a ``per_seed.csv``: its seed, first step at the threshold (inf if never), fall back, final return."""

    seed: int
    first: float
    falls_back: bool
    final: float


def read_runs(paths: list[Path], threshold: float, algo: str | None = None) -> list[Run]:
    """The runs of the ``per_seed.csv`` files, of one algorithm label if ``algo`` is given."""
    if not math.isfinite(threshold):
        raise ValueError(f"threshold: {threshold!r} is not a finite number (the reports' threshold, e.g. 475)")
    runs = []
    for path in paths:
        with open(path) as file:
            for row in csv.DictReader(file):
                if algo is not None and row["algo"] != algo:
                    continue
                reached = row["steps_to_threshold"] not in ("", "-")
                runs.append(
                    Run(
                        seed=int(row["seed"]),
                        first=float(row["steps_to_threshold"]) if reached else math.inf,
                        falls_back=reached and float(row["lowest_after_reaching"]) < threshold,
                        final=float(row["final"]),
                    )
                )
    return runs


def count_fallbacks(paths: list[Path], threshold: float, algo: str | None = None) -> dict[int, tuple[int, int]]:
    """``{first step at the threshold: (runs, runs that fall back below it later)}``, runs that never reach it left out."""
    reached: Counter[int] = Counter()
    fell_back: Counter[int] = Counter()
    for run in read_runs(paths, threshold, algo):
        if math.isfinite(run.first):
            reached[int(run.first)] += 1
            fell_back[int(run.first)] += run.falls_back
    return {step: (reached[step], fell_back[step]) for step in sorted(reached)}


def seed_blocks(paths: list[Path], threshold: float, size: int, algo: str) -> dict[int, tuple[int, float, int, float]]:
    """``{first seed of the block: (runs, median first step at the threshold, runs that hold, lowest final)}``; a run
    holds if it reaches the threshold and never falls below it after."""
    if size < 1:
        raise ValueError(f"size: {size!r} is not a block size; allowed: integers >= 1")
    blocks: defaultdict[int, list[Run]] = defaultdict(list)
    for run in read_runs(paths, threshold, algo):
        blocks[run.seed // size * size].append(run)
    return {
        start: (
            len(runs),
            statistics.median(run.first for run in runs),
            sum(math.isfinite(run.first) and not run.falls_back for run in runs),
            min(run.final for run in runs),
        )
        for start, runs in sorted(blocks.items())
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("per_seed", nargs="+", type=Path, help="per_seed.csv files of benchmark reports")
    parser.add_argument("--threshold", type=float, required=True, help="the reports' threshold (475 for CartPole-v1)")
    parser.add_argument("--algo", help="only the rows of this algorithm label (default: all)")
    parser.add_argument("--blocks", type=int, help="per block of this many seeds, of the rows of --algo")
    args = parser.parse_args(argv)
    if args.blocks is not None:
        if args.algo is None:
            parser.error("--blocks needs --algo")
        blocks = seed_blocks(args.per_seed, args.threshold, args.blocks, args.algo)
        if not blocks:
            parser.error(f"--algo {args.algo!r}: no row of the per_seed files has this algorithm label")
        print("| seeds | runs | median first step at threshold | never below it after | lowest final return |")
        print("| --- | --- | --- | --- | --- |")
        for start, (runs, median, holds, final) in blocks.items():
            print(f"| {start}-{start + args.blocks - 1} | {runs} | {median:g} | {holds} | {final:g} |")
        runs = sum(block[0] for block in blocks.values())
        holds = sum(block[2] for block in blocks.values())
        print(f"| all | {runs} | | {holds} | {min(block[3] for block in blocks.values()):g} |")
        interval = binomtest(holds, runs).proportion_ci(confidence_level=0.95, method="wilson")
        rate, low, high = holds / runs, interval.low, interval.high
        print(
            f"\nRuns that hold: {rate:.2f} (95% Wilson interval {low:.2f} to {high:.2f}); all {args.blocks} of a block "
            f"hold with probability {rate**args.blocks:.2f} ({low**args.blocks:.2f} to {high**args.blocks:.2f})."
        )
        return
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
