"""
Where REINFORCE's time goes: cProfile of ``learn()`` on CartPole-v1 with its zoo entry (8 envs), for one row of
``throughput.py`` (a baseline and a batch mode, at a fixed policy), grouped by component.

    python -m benchmarks.profile_rollout --baseline None --batch-mode episodes --steps 40000
    python -m benchmarks.profile_rollout --baseline value --batch-mode steps --steps 40000
"""

import argparse
import cProfile
import pstats

from benchmarks.throughput import build

# (label, function-name fragments whose cumulative time is reported)
COMPONENTS = [
    ("learn() total", "reinforce.py:*(learn)"),
    ("rollout (collect_rollouts)", "reinforce.py:*(collect_rollouts)"),
    ("  env step (DummyVecEnv.step)", "base_vec_env.py:*(step)"),
    ("  policy forward (sample_actions)", "(sample_actions)"),
    ("  callbacks (on_step)", "callbacks.py:*(on_step)"),
    ("  episode statistics (_update_info_buffer)", "(_update_info_buffer)"),
    ("  NaN/inf check of the rollout (check_finite)", "(check_finite)"),
    ("  storage (buffer.add)", "buffers.py:*(add)"),
    ("  the batch: returns and baselines (_make_batch)", "(_make_batch)"),
    ("update (train)", "reinforce.py:*(train)"),
    ("  backward passes", "__init__.py:*(backward)"),
    ("  optimizer steps", "optimizer.py:*(wrapper)"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--baseline", default="value", choices=["None", "mean", "linear", "value"])
    parser.add_argument("--batch-mode", default="episodes", choices=["steps", "episodes"])
    args = parser.parse_args()
    baseline = None if args.baseline == "None" else args.baseline
    overrides = {"baseline": baseline, "batch_mode": args.batch_mode}
    model = build("reinforce", "CartPole-v1", overrides)
    model.learn(4096)
    profile = cProfile.Profile()
    profile.enable()
    model.learn(args.steps, reset_num_timesteps=False)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = None
    print(f"{'component':55s} {'seconds':>8s} {'share':>6s}")
    for label, pattern in COMPONENTS:
        file_part, _, name_part = pattern.rpartition("*")
        seconds = sum(
            value[3]
            for (filename, line, name), value in stats.items()
            if f"({name})" == name_part and (not file_part or f"{filename.rsplit('/', 1)[-1]}:" == file_part)
        )
        total = total or seconds
        print(f"{label:55s} {seconds:8.2f} {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
