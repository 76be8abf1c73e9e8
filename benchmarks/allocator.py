"""
What keeping freed heap memory (``sb3_reinforce.common.allocator.keep_freed_memory``, applied when ``learn()``
starts) does to the value regression: milliseconds and minor page faults per regression pass of CartPole-v1's
entry (``REINFORCE._fit_value_function``, ``n_value_epochs`` passes per call) on batches of several sizes, with
the setting and with glibc's defaults (``SB3_REINFORCE_KEEP_FREED_MEMORY=0``).

Each setting runs in its own process (an allocator setting cannot be taken back within one), the two alternating
``--repeats`` times; each process times every batch size after a warm-up call. Reported: medians over the
processes.

    python benchmarks/allocator.py --repeats 5
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import cast

import torch as th

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import build
from update_cost import pass_cost

from sb3_reinforce import REINFORCE
from sb3_reinforce.benchmark import machine_description
from sb3_reinforce.common import allocator

ROWS = [256, 1024, 4096, 8192, 16384, 65536]


def measure(rows: list[int], calls: int) -> dict[str, dict[str, float]]:
    """Per batch size: median milliseconds and mean minor page faults per regression pass, in this process."""
    applied = allocator.keep_freed_memory()
    model = cast(REINFORCE, build("reinforce", "CartPole-v1", {"baseline": "value"}))
    generator = th.Generator().manual_seed(0)
    results: dict[str, dict[str, float]] = {}
    for n in rows:
        obs = th.randn(n, 4, generator=generator)
        targets = 20 * th.rand(n, generator=generator)
        seconds, faults = pass_cost(model, obs, targets, calls)
        results[str(n)] = {"ms": 1e3 * seconds, "faults": faults, "applied": float(applied)}
    return results


def child(keep: bool, rows: list[int], calls: int) -> dict[str, dict[str, float]]:
    """:func:`measure` in a fresh process, with the setting (``keep``) or with glibc's defaults."""
    env = {**os.environ, allocator.SWITCH: "1" if keep else "0"}
    command = [sys.executable, __file__, "--child", "--calls", str(calls), "--rows", *map(str, rows)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return cast(dict[str, dict[str, float]], json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=ROWS, help="batch sizes (steps)")
    parser.add_argument("--repeats", type=int, default=5, help="processes per setting")
    parser.add_argument("--calls", type=int, default=10, help="timed calls of n_value_epochs passes per process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.rows, args.calls)))
        return

    why = allocator.why_not_applicable()
    if why is not None:
        sys.exit(f"keep_freed_memory() does not apply in this environment: {why}")
    runs: dict[bool, list[dict[str, dict[str, float]]]] = {False: [], True: []}
    for _ in range(args.repeats):
        for keep in (False, True):
            runs[keep].append(child(keep, args.rows, args.calls))
    assert all(run[str(n)]["applied"] == keep for keep in runs for run in runs[keep] for n in args.rows)

    print(f"{machine_description()}; {args.repeats} processes per setting, {args.calls} timed calls each\n")
    print("| steps in batch | glibc defaults: ms per pass | page faults per pass | kept freed memory: ms per pass "
          "| page faults per pass | kept / defaults |\n| --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for n in args.rows:
        ms = {keep: statistics.median(run[str(n)]["ms"] for run in runs[keep]) for keep in runs}
        faults = {keep: statistics.median(run[str(n)]["faults"] for run in runs[keep]) for keep in runs}
        print(
            f"| {n} | {ms[False]:.3f} | {faults[False]:.0f} | {ms[True]:.3f} | {faults[True]:.0f} | "
            f"{ms[True] / ms[False]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
