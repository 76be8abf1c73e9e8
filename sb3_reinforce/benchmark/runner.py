"""Runs of the benchmark: one zoo ``train`` process per (algorithm, env, seed), locally or as Ray tasks; their records."""

import ast
import functools
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

RESULT_FILE = "result.json"
FAILED_FILE = "failed.json"


def machine_description() -> str:
    """CPU model, core count, OS and torch version: the record of where a figure was measured."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}"


@dataclass(frozen=True)
class AlgoSpec:
    """An algorithm of the benchmark: a zoo algorithm name and the hyperparameters that override its zoo config."""

    label: str
    algo: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> "AlgoSpec":
        """
        ``"reinforce"`` or ``"reinforce:baseline=mean,return_estimator=total"``, read as the keyword arguments of a
        Python call: values are Python literals; anything else (``mean``, ``lin_1e-3``, ``dict(net_arch=[64])``) is
        kept as the string written, as the zoo's config files have it.
        """
        algo, _, rest = text.partition(":")
        source = f"f({rest})"
        expected = "expected ALGO or ALGO:key=value,key=value"
        try:
            call = ast.parse(source, mode="eval").body
        except SyntaxError:
            raise ValueError(f"--algos: {text!r} is not ALGO:key=value,...; {expected}") from None
        assert isinstance(call, ast.Call)
        for item in [*call.args, *(k for k in call.keywords if k.arg is None)]:
            raise ValueError(f"--algos: {text!r} has {ast.get_source_segment(source, item)!r}; {expected}")
        params: dict[str, Any] = {}
        for keyword in call.keywords:
            assert keyword.arg is not None
            try:
                params[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                params[keyword.arg] = ast.get_source_segment(source, keyword.value)
        return cls(label=text, algo=algo.strip().lower(), params=params)

    @property
    def folder(self) -> str:
        """A file-system-safe name for the label."""
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label)


@dataclass(frozen=True)
class RunSpec:
    """One training run: algorithm, env, seed, budget and evaluation protocol."""

    algo: AlgoSpec
    env_id: str
    seed: int
    n_timesteps: int
    eval_freq: int
    eval_episodes: int
    zoo_args: tuple[str, ...] = ()
    conf_file: str | None = None

    def run_dir(self, out: Path) -> Path:
        return out / "runs" / self.algo.folder / self.env_id / f"seed_{self.seed}"

    def command(self, run_dir: Path) -> list[str]:
        """The ``sb3-reinforce train`` command line of this run."""
        command = [
            sys.executable, "-m", "sb3_reinforce", "train", "--algo", self.algo.algo, "--env", self.env_id,
            "--seed", str(self.seed), "-n", str(self.n_timesteps), "-f", str(run_dir / "logs"),
            "--eval-freq", str(self.eval_freq), "--eval-episodes", str(self.eval_episodes), "--num-threads", "1",
            *self.zoo_args,
        ]  # fmt: skip
        if self.conf_file is not None:
            command += ["--conf-file", self.conf_file]
        if self.algo.params:
            command += ["-params", *(f"{key}:{value!r}" for key, value in self.algo.params.items())]
        return command


def _last_fps(log: str) -> float | None:
    """The last ``fps`` that SB3's logger printed (steps per second of ``learn``, evaluation included)."""
    values = re.findall(r"\|\s*fps\s*\|\s*([0-9.]+)", log)
    return float(values[-1]) if values else None


def run_one(spec: RunSpec, run_dir: str) -> dict[str, Any]:
    """
    Train one run in its own process and return its record: evaluation curve, wall time, fps, or the failure.

    Runs wherever it is called: in a local worker thread or as a Ray task (it only needs the package installed and
    ``run_dir`` writable).
    """
    folder = Path(run_dir)
    shutil.rmtree(folder / "logs", ignore_errors=True)  # a run tried again starts afresh
    folder.mkdir(parents=True, exist_ok=True)
    command = spec.command(folder)
    environment = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall_time = time.perf_counter() - start
    log = completed.stdout + completed.stderr
    (folder / "train.log").write_text(log)
    record = {
        **_record_header(spec), "command": shlex.join(command), "wall_time": wall_time,
        "returncode": completed.returncode, "host": platform.node(), "worker_pid": os.getpid(),
    }  # fmt: skip
    evaluations = sorted(folder.glob("logs/*/*/evaluations.npz"))
    if completed.returncode != 0 or not evaluations:
        reason = "no evaluations.npz written" if completed.returncode == 0 else f"exit status {completed.returncode}"
        return {**record, "status": "failed", "error": reason, "log_tail": log[-3000:]}
    data = np.load(evaluations[-1])
    return {
        **record,
        "status": "ok",
        "fps": _last_fps(log),
        "eval_timesteps": data["timesteps"].astype(int).tolist(),
        "eval_returns": data["results"].mean(axis=1).tolist(),
    }


def _record_header(spec: RunSpec) -> dict[str, Any]:
    return {"algo": spec.algo.label, "env": spec.env_id, "seed": spec.seed, "n_timesteps": spec.n_timesteps}


def _finish(spec: RunSpec, out: Path, result: Callable[[], dict[str, Any]], report: Callable[[dict[str, Any]], None]) -> None:
    """Write the run's record (``result()``, or the exception it raised as a failure) as soon as it ends."""
    try:
        record = result()
    except Exception as error:  # a run that raised (or a lost Ray task) must not stop the others
        record = {**_record_header(spec), "status": "failed", "error": f"{type(error).__name__}: {error}", "log_tail": ""}
    folder = spec.run_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT_FILE, FAILED_FILE):
        (folder / stale).unlink(missing_ok=True)
    (folder / (RESULT_FILE if record["status"] == "ok" else FAILED_FILE)).write_text(json.dumps(record, indent=1))
    report(record)


def execute_local(specs: list[RunSpec], out: Path, jobs: int, report: Callable[[dict[str, Any]], None]) -> None:
    """Run the specs in up to ``jobs`` parallel processes."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(run_one, spec, str(spec.run_dir(out))): spec for spec in specs}
        for future in as_completed(futures):
            _finish(futures[future], out, future.result, report)


def execute_ray(specs: list[RunSpec], out: Path, address: str, report: Callable[[dict[str, Any]], None]) -> None:
    """Submit each spec as a task (1 CPU) to the Ray cluster at ``address``; records are written here."""
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        remote_run = ray.remote(num_cpus=1, max_retries=0)(run_one)
        pending = {remote_run.remote(spec, str(spec.run_dir(out).resolve())): spec for spec in specs}
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            _finish(pending.pop(done), out, cast(Callable[[], dict[str, Any]], functools.partial(ray.get, done)), report)
    finally:
        ray.shutdown()


def load_records(out: Path, specs: Iterable[RunSpec]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finished and the failed records of ``specs`` found under ``out``."""
    finished, failed = [], []
    for spec in specs:
        folder = spec.run_dir(out)
        if (folder / RESULT_FILE).exists():
            finished.append(json.loads((folder / RESULT_FILE).read_text()))
        elif (folder / FAILED_FILE).exists():
            failed.append(json.loads((folder / FAILED_FILE).read_text()))
    return finished, failed
