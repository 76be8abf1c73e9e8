"""
Summarise an Optuna study of `benchmarks/tune.sh`: trials by state, how many reached a value, and the best trials.

    python benchmarks/study_summary.py --storage sqlite:///logs/tuning/studies.db --study-name cartpole --reach 500
"""

import argparse
from collections import Counter

import optuna


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--reach", type=float, help="count the completed trials whose value is at least this")
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    print(
        f"{args.study_name}: {len(trials)} trials, "
        + ", ".join(f"{n} {s.name.lower()}" for s, n in Counter(t.state for t in trials).items())
    )
    if args.reach is not None:
        print(f"completed trials with value >= {args.reach:g}: {sum(t.value >= args.reach for t in complete)}")
    print(f"best {args.top}:")
    for t in sorted(complete, key=lambda t: -(t.value or 0.0))[: args.top]:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        print(f"  trial {t.number}: {t.value:.1f}  {params}")


if __name__ == "__main__":
    main()
