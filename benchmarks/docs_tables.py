"""
Tables in the README and docs that quote a result file are generated from it, so that they cannot drift.

A generated region is written as

    <!-- table from docs/results/FILE -->
    ...
    <!-- end table -->

and holds the rendering of FILE: a benchmark's ``results.md``/``aggregate.md`` verbatim, or a ``cartpole_defaults``
CSV of ``benchmarks/cartpole.py`` as a per-seed table with its summary line, or a variance study's CSV as its table.
Options after the file name:

- ``envs=A,B``: only the rows of those envs (a per-environment table);
- ``by-algorithm``: a benchmark's ``summary.md`` turned to one row per algorithm, each named by :data:`NAMES`;
- ``before=FILE``: a ``benchmarks/throughput.py`` CSV beside an earlier one (the same rows, measured before a change).

    python -m benchmarks.docs_tables           # rewrite every region
    python -m benchmarks.docs_tables --check   # exit 1 if a region differs from its file (run by the tests)
"""

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/*.md"]
REGION = re.compile(
    r"(?P<start><!-- table from (?P<source>\S+)(?P<options>(?: [\w=,./-]+)*) -->\n)(?P<body>.*?)(?P<end><!-- end table -->)",
    re.DOTALL,
)

# The shared MuJoCo block as benchmarks/reproduce.sh spells it out
MUJOCO_SHARED = (
    "n_envs=8,n_steps=256,learning_rate=0.0003,n_value_epochs=10,natural_step_size=None,target_kl=0.01,policy_kwargs="
    "'dict(log_std_init=-1, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256]))'"
)
# The names of the benchmark's rows in the docs, by the algorithm spec that labels them in a report
# (`sb3-reinforce benchmark --algos SPEC`): the published reports' labels, and those of benchmarks/reproduce.sh, whose
# MuJoCo rows spell the shared block out; docs/benchmark.md lists each name's configuration.
NAMES = {
    f"reinforce:{MUJOCO_SHARED},policy_step='gradient'": "REINFORCE, plain step",
    f"reinforce:{MUJOCO_SHARED},policy_step='natural'": "REINFORCE, natural step",
    f"reinforce:{MUJOCO_SHARED},return_estimator='reward_to_go',batch_mode='episodes',n_episodes=8,policy_step='gradient'": (
        "REINFORCE, Monte Carlo"
    ),
    "a2c": "A2C (zoo)",
    "ppo": "PPO (zoo)",
    "trpo": "TRPO (zoo)",
    "reinforce": "REINFORCE (entry)",
    "reinforce:policy_step='gradient'": "REINFORCE, plain step",
    "reinforce:policy_step='natural'": "REINFORCE, natural step",
    (
        "reinforce:policy_step='natural',natural_step_size=0.1,target_kl=0.05,n_envs=16,n_steps=64,n_value_epochs=20,"
        "learning_rate='lin_0.001',policy_kwargs='dict(net_arch=dict(pi=[64, 64], vf=[64, 64]))'"
    ): "REINFORCE, bounded natural step",
    "reinforce:return_estimator='reward_to_go',batch_mode='episodes',n_episodes=8,policy_step='gradient'": (
        "REINFORCE, Monte Carlo"
    ),
}


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def row(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def render_by_algorithm(text: str) -> str:
    """A ``summary.md`` (a row per env, a column per algorithm) as a row per named algorithm, a column per env."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header, *body = [cells(line) for line in lines if not set(line) <= set("|- ")]
    algorithms = header[1:]
    unnamed = [algorithm for algorithm in algorithms if algorithm not in NAMES]
    if unnamed:
        raise KeyError(f"no name in benchmarks.docs_tables.NAMES for {unnamed}")
    out = [row(["", *(line[0] for line in body)]), row(["---"] * (len(body) + 1))]
    out += [row([NAMES[algorithm], *(line[i + 1] for line in body)]) for i, algorithm in enumerate(algorithms)]
    return "\n".join(out) + "\n"


def render_envs(text: str, envs: list[str]) -> str:
    """A per-environment table with only the rows whose first cell is one of ``envs`` (and its header)."""
    lines = text.splitlines()
    kept = lines[:2] + [line for line in lines[2:] if cells(line)[0] in envs]
    return "\n".join(kept) + "\n"


def render_cartpole_csv(path: Path) -> str:
    """Per-seed table and summary of ``benchmarks/cartpole.py --out``."""
    with open(path) as file:
        rows = list(csv.DictReader(file))
    lines = ["| seed | eval mean | eval std | training time (s) |", "| --- | --- | --- | --- |"]
    means = []
    for row in rows:
        means.append(float(row["eval_mean"]))
        lines.append(
            f"| {row['seed']} | {float(row['eval_mean']):.1f} | {float(row['eval_std']):.1f} | "
            f"{float(row['train_seconds']):.1f} |"
        )
    solved = sum(mean >= 475 for mean in means)
    lines.append("")
    lines.append(
        f"Mean {sum(means) / len(means):.1f}, {solved} of {len(means)} seeds at or above 475 "
        f"({rows[0]['env']}, measured {rows[0]['date']} on {rows[0]['machine']})."
    )
    return "\n".join(lines) + "\n"


def render_throughput(path: Path, before: Path | None = None) -> str:
    """``benchmarks/throughput.py --out`` as a table (rate, ratio to the limit, ratio to A2C), beside ``before``'s."""

    def read(csv_path: Path) -> dict[str, dict[str, str]]:
        with open(csv_path) as file:
            return {row["run"]: row for row in csv.DictReader(file)}

    def figures(measured: dict[str, str] | None) -> list[str]:
        if measured is None:
            return ["", "", ""]
        rate, limit, a2c = (float(measured[key]) for key in ("steps_per_second", "of_limit", "vs_a2c"))
        return [f"{rate:,.0f}", f"{limit:.2f}", f"{a2c:.2f}"]

    after, earlier = read(path), read(before) if before else None
    header = ["run", "steps/s", "of limit", "vs A2C"]
    if earlier is not None:
        header = ["run", "before: steps/s", "before: of limit", "before: vs A2C", "after: steps/s", "after: of limit",
                  "after: vs A2C"]  # fmt: skip
    lines = [row(header), row(["---"] * len(header))]
    for run, values in after.items():
        lines.append(row([run, *(figures(earlier.get(run)) if earlier is not None else []), *figures(values)]))
    first = next(iter(after.values()))
    lines += ["", f"Measured {first['date']} on {first['machine']}, {first['env']}, mode {first['mode']}."]
    return "\n".join(lines) + "\n"


def render_variance(path: Path) -> str:
    """A variance study's CSV (``sb3-reinforce variance``) as its table (:func:`sb3_reinforce.variance.format_table`)."""
    from sb3_reinforce.variance import format_table

    with open(path) as file:
        rows: list[dict[str, Any]] = []
        for row in csv.DictReader(file):
            parsed: dict[str, Any] = dict(row)
            for key in ("mean_grad_norm", "total_variance", "snr", "deviation_from_reference", "variance_vs_total_none"):
                parsed[key] = float(row[key])
            parsed["constant"] = float(row["constant"]) if row["constant"] else None
            rows.append(parsed)
    return format_table(rows) + "\n"


def render(source: str, options: str = "") -> str:
    path = ROOT / source
    if path.name.startswith("variance_"):
        return render_variance(path)
    if path.name.startswith("throughput"):
        befores = [option[len("before=") :] for option in options.split() if option.startswith("before=")]
        return render_throughput(path, ROOT / befores[0] if befores else None)
    if path.suffix == ".csv":
        return render_cartpole_csv(path)
    text = path.read_text()
    for option in options.split():
        if option == "by-algorithm":
            text = render_by_algorithm(text)
        elif option.startswith("envs="):
            text = render_envs(text, option[len("envs=") :].split(","))
        else:
            raise ValueError(f"unknown table option {option!r} for {source}")
    return text


def update(text: str) -> str:
    """``text`` with every region's body replaced by the rendering of its source."""
    return REGION.sub(lambda m: m["start"] + render(m["source"], m["options"]) + m["end"], text)


def documents() -> list[Path]:
    return sorted(path for pattern in DOCUMENTS for path in ROOT.glob(pattern))


def stale() -> list[str]:
    """The documents whose generated regions differ from their sources."""
    return [str(path.relative_to(ROOT)) for path in documents() if update(path.read_text()) != path.read_text()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a region is stale")
    args = parser.parse_args()
    if args.check:
        names = stale()
        if names:
            sys.exit(f"stale generated tables in: {', '.join(names)} (run python -m benchmarks.docs_tables)")
        return
    for path in documents():
        text = path.read_text()
        if update(text) != text:
            path.write_text(update(text))
            print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
