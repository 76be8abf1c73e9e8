"""
``sb3-reinforce benchmark``: REINFORCE (and its variants) against A2C, PPO or any zoo algorithm, over many seeds,
with the RL Zoo's training and evaluation protocol, and the statistics the field reports.

    sb3-reinforce benchmark --envs CartPole-v1 Acrobot-v1 --algos reinforce a2c ppo --seeds 10 --jobs 2 --out bench/
    sb3-reinforce benchmark --envs CartPole-v1 --algos reinforce reinforce:baseline=mean \\
        reinforce:return_estimator=total,baseline=None --seeds 5 --out ablation/

Each (algorithm, env, seed) run is one ``sb3-reinforce train`` process (the zoo's ``ExperimentManager``, each
algorithm's own zoo config: the package's ``zoo_configs/reinforce.yml`` for REINFORCE, the zoo's files otherwise),
with the same budget (``--n-timesteps``, by default the REINFORCE config's budget for the env) and the same
evaluation for every algorithm: the zoo's ``EvalCallback`` on a separate env every ``--eval-freq`` steps,
``--eval-episodes`` deterministic episodes. An algorithm given as ``ALGO:key=value,key=value`` is a variant of
``ALGO`` with those hyperparameters overriding its zoo config (``-params``), named by that string. ``--seeds N``
runs seeds 0 to N-1, or ``--first-seed S`` to S+N-1 (seeds that took no part in choosing a configuration).

Runs go to local processes (``--jobs``) or, with ``--ray-address``, to the tasks of an existing Ray cluster. A run
that finished is kept in ``OUT/runs/.../result.json`` and skipped when the command runs again; a run that fails is
reported (``failed.json`` and its log) and the others go on. From the finished runs the command writes:

- ``results.csv`` / ``results.md``: per algorithm and env, the final evaluation return (mean, std and 95%
  t-interval over seeds), the steps to first reach the env's threshold, the area under the learning curve, wall time and fps;
- ``aggregate.csv`` / ``aggregate.md`` / ``aggregate.png``: IQM and optimality gap of the final returns normalised
  per env as ``(return - random) / (threshold - random)`` (``random``: a uniformly random policy, measured), with
  95% stratified bootstrap confidence intervals (rliable);
- ``per_seed.csv`` / ``per_seed.md``: per run, the final and best evaluation, the first step at the threshold and the
  lowest evaluation after it;
- ``curves_ENV.png``: evaluation return against steps, mean and 95% t-interval over seeds, all algorithms;
- ``report.md``: all of the above with the command, date and machine.

The package: :mod:`~sb3_reinforce.benchmark.runner` (run specs, local and Ray execution, records),
:mod:`~sb3_reinforce.benchmark.statistics` (per-run measures, summaries, rliable aggregates),
:mod:`~sb3_reinforce.benchmark.report` (tables, plots, report) and :mod:`~sb3_reinforce.benchmark.cli` (the command).
"""

from typing import Any

from sb3_reinforce.benchmark.runner import AlgoSpec, RunSpec, machine_description, run_one
from sb3_reinforce.benchmark.statistics import aggregate, area_under_curve, steps_to_threshold, summarize, t_interval

__all__ = [
    "AlgoSpec",
    "RunSpec",
    "aggregate",
    "area_under_curve",
    "machine_description",
    "main",
    "run_one",
    "steps_to_threshold",
    "summarize",
    "t_interval",
]


def __getattr__(name: str) -> Any:
    """``main`` is imported on use: the command needs PyYAML (the ``benchmark`` extra), the helpers above do not."""
    if name == "main":
        from sb3_reinforce.benchmark.cli import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
