"""
Tables in the README and docs that quote a result file are generated from it, so that they cannot drift.

A generated region is written as

    <!-- table from docs/results/FILE -->
    ...
    <!-- end table -->

and holds the rendering of FILE: a benchmark's ``results.md``/``aggregate.md`` verbatim, or a ``cartpole_defaults``
CSV of ``benchmarks/cartpole.py`` as a per-seed table with its summary line.

    python -m benchmarks.docs_tables           # rewrite every region
    python -m benchmarks.docs_tables --check   # exit 1 if a region differs from its file (run by the tests)
"""

import argparse
import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/*.md"]
REGION = re.compile(r"(<!-- table from (?P<source>\S+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.DOTALL)


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


def render(source: str) -> str:
    path = ROOT / source
    if path.suffix == ".csv":
        return render_cartpole_csv(path)
    return path.read_text()


def update(text: str) -> str:
    """``text`` with every region's body replaced by the rendering of its source."""
    return REGION.sub(lambda m: m.group(1) + render(m.group("source")) + m.group(4), text)


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
