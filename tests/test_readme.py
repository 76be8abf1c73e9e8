"""
Every shell and Python block of the README runs, as written but with small budgets, so that a wrong command fails
here instead of for a user; and the tables that quote result files match them.

Left out: `make` (the quick start: CI runs `make test` itself) and `pip` lines (CI's wheel check installs the wheel
as the README says), and a command with a `...` placeholder.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import docs_tables

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, re.DOTALL)

# (pattern, replacement) applied to every command or Python block: the same calls with small budgets
SMALL_BUDGETS = [
    (r"100_000", "2_000"),
    (r"10_000", "1_000"),
    (r"20_000", "2_000"),
    (r"n_episodes=500", "n_episodes=5"),
    (r"(--n-trials) \d+", r"\1 2"),
    (r"(-n|--n-timesteps) \d+", r"\1 1000"),
    (r"(--seeds) \d+", r"\1 1"),
]


def small(text: str) -> str:
    for pattern, replacement in SMALL_BUDGETS:
        text = re.sub(pattern, replacement, text)
    return text


def shell_commands(block: str) -> list[str]:
    """The block's commands (continuation lines joined), without comments, `make`, `pip` and placeholders."""
    commands = []
    for command in re.sub(r"\\\n\s*", " ", block).splitlines():
        command = command.split(" #")[0].strip()
        if not command or command.startswith(("#", "make ", "pip ")) or "..." in command:
            continue
        if re.search(r"sb3-reinforce (train|benchmark)", command) and not re.search(r" (-n|--n-timesteps) ", command):
            command += " --n-timesteps 1000 --eval-freq 500" if "benchmark" in command else " -n 1000"
        commands.append(small(command))
    return commands


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MPLBACKEND": "Agg",
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SILENT": "true",
    }


def run(command: list[str], tmp_path: Path) -> None:
    result = subprocess.run(command, cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def test_the_readme_has_blocks_of_both_kinds():
    kinds = [kind for kind, _ in BLOCKS]
    assert kinds.count("bash") >= 5 and kinds.count("python") >= 4
    assert sum(len(shell_commands(block)) for kind, block in BLOCKS if kind == "bash") >= 7


@pytest.mark.parametrize("index", [i for i, (kind, _) in enumerate(BLOCKS) if kind == "bash"])
def test_readme_shell_block_runs(tmp_path, index):
    """The commands of one block, in order, in one folder (a later command may use an earlier one's files)."""
    for command in shell_commands(BLOCKS[index][1]):
        run(["bash", "-c", command], tmp_path)


def test_readme_python_blocks_run(tmp_path):
    """The Python blocks in order, as one session (a later block uses the `model` of an earlier one)."""
    script = "\n".join(small(block) for kind, block in BLOCKS if kind == "python")
    (tmp_path / "readme.py").write_text(script)
    run([sys.executable, "readme.py"], tmp_path)


def test_generated_tables_match_their_result_files():
    assert docs_tables.stale() == []


def test_generated_regions_keep_their_markers_and_options(tmp_path, monkeypatch):
    """A region is re-rendered in place (markers kept, idempotent); `envs=` keeps rows, `by-algorithm` names them."""
    (tmp_path / "results.md").write_text(
        "| env | algorithm | x |\n| --- | --- | --- |\n| A-v1 | ppo | 1 |\n| B-v1 | ppo | 2 |\n"
    )
    (tmp_path / "summary.md").write_text(
        "| env | a2c | reinforce |\n| --- | --- | --- |\n| A-v1 | 1 | 2 |\n| IQM | 0.1 | 0.2 |\n"
    )
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    text = (
        "before\n<!-- table from results.md envs=B-v1 -->\nold\n<!-- end table -->\nbetween\n"
        "<!-- table from summary.md by-algorithm -->\n<!-- end table -->\nafter\n"
    )
    updated = docs_tables.update(text)
    assert updated == docs_tables.update(updated)
    assert updated.count("<!-- end table -->") == 2 and "old" not in updated and "A-v1 | ppo" not in updated
    assert "| B-v1 | ppo | 2 |" in updated and updated.endswith("<!-- end table -->\nafter\n")
    assert "| A2C (zoo) | 1 | 0.1 |" in updated and "| REINFORCE (entry) | 2 | 0.2 |" in updated
