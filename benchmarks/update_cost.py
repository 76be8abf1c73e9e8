"""
Cost of one REINFORCE update (``train()``) on a fixed batch, for CartPole-v1's zoo entry with and without the value
baseline, with the default optimizer (Adam, fused implementation) against SB3's default (Adam, loop over
parameters); and the cost of switching the policy between eval and training mode (twice per update).

    python benchmarks/update_cost.py --repeats 300
"""

import argparse
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any, cast

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import build

from sb3_reinforce import REINFORCE, zoo
from sb3_reinforce.benchmark import machine_description


def train_ms(overrides: dict[str, Any], repeats: int) -> tuple[float, int]:
    """Median milliseconds of ``train()`` on one collected batch (frozen policy: every call does the same work)."""
    model = cast(REINFORCE, build("reinforce", "CartPole-v1", overrides))
    model.learn(1000)  # one collected batch in the buffer, optimizer state initialised
    times = timeit.repeat(model.train, number=1, repeat=repeats)
    return 1e3 * statistics.median(times), int(model.rollout_buffer.valid.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    print(f"{machine_description()}; median of {args.repeats} calls\n")
    print("| batch mode | baseline | optimizer | steps in batch | train() ms |\n| --- | --- | --- | --- | --- |")
    entry = yaml.safe_load(open(zoo.default_config_path()))["CartPole-v1"]["policy_kwargs"]
    assert entry.startswith("dict(") and entry.endswith(")") and "optimizer" not in entry
    # SB3's own default optimizer: Adam with eps=1e-5, the loop implementation (giving optimizer_kwargs keeps it)
    sb3_default = entry[:-1] + ", optimizer_kwargs=dict(eps=1e-5))"
    for batch_mode in ("episodes", "steps"):
        for baseline in (None, "value"):
            for fused in (True, False):
                overrides: dict[str, Any] = {"baseline": baseline, "batch_mode": batch_mode, "n_episodes": 8}
                if not fused:
                    overrides["policy_kwargs"] = sb3_default
                ms, n = train_ms(overrides, args.repeats)
                name = "Adam, fused (default)" if fused else "Adam, SB3's default (loop)"
                print(f"| {batch_mode} | {baseline} | {name} | {n} | {ms:.2f} |", flush=True)

    model = cast(REINFORCE, build("reinforce", "CartPole-v1", {"baseline": None}))
    policy = model.policy

    def sb3_switch() -> None:
        policy.set_training_mode(False)
        policy.set_training_mode(True)

    def own_switch() -> None:
        model._set_training_mode(False)
        model._set_training_mode(True)

    for name, switch in [("policy.set_training_mode", sb3_switch), ("REINFORCE._set_training_mode", own_switch)]:
        us = 1e6 * statistics.median(timeit.repeat(switch, number=100, repeat=20)) / 100
        print(f"\n{name}: eval then training mode, {us:.1f} µs")


if __name__ == "__main__":
    main()
