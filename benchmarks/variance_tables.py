"""Print the Markdown tables of docs/variance.md from the CSV files that benchmarks/variance_study.py wrote."""

import csv
import sys
from pathlib import Path

from sb3_reinforce.variance import format_table

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/variance")
for csv_path in sorted(folder.glob("*/variance_*.csv")):
    with open(csv_path) as file:
        rows = []
        for row in csv.DictReader(file):
            parsed: dict = dict(row)
            for key in ("mean_grad_norm", "total_variance", "snr", "deviation_from_reference", "variance_vs_total_none"):
                parsed[key] = float(row[key])
            parsed["constant"] = float(row["constant"]) if row["constant"] else None
            rows.append(parsed)
    print(f"### {csv_path.parent.name}\n")
    print(format_table(rows))
    print()
