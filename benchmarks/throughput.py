"""
Training throughput of REINFORCE against SB3's A2C and PPO, and against the limit of the rollout loop.

For each env (8 envs, ``DummyVecEnv``, each config's own ``MlpPolicy`` architecture) it measures environment steps
per second of ``learn()``:

- REINFORCE with its zoo config, for each baseline (none, mean, linear, value) and both batch modes;
- SB3's A2C and PPO with the zoo's configs for the same env;
- the limit: a loop that only steps the VecEnv with actions from the same policy's forward pass (no storage, no
  training), on each row's own model and env.

All configs get 8 envs (the zoo's ``n_envs`` is overridden) so that every row steps the same VecEnv. Two modes
(``--modes``), as a learning policy changes the env's cost (CartPole episodes lengthen, with fewer resets):

- ``fixed``: the learning rate is a schedule that returns 0, so ``learn()`` does all of its work (rollouts,
  gradients, value epochs, optimizer steps) but the parameters do not move. ``--repeats`` timed runs of ``--steps``
  steps after a warm-up, each paired with a limit run just before it.
- ``training``: ``--repeats`` training runs of ``--train-steps`` steps (at most REINFORCE's budget for the env) from
  a fresh model, each followed by the limit loop replaying that run's policies, each for as many steps as its
  rollout took (a callback records them; its time is left out).

A row's ratio to the limit is the median over its pairs, so slow drifts of the machine's speed cancel in a pair.

    python -m benchmarks.throughput --envs CartPole-v1 --modes training --repeats 3 --out docs/results/throughput_cartpole.csv
"""

import argparse
import csv
import datetime
import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch as th
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_reinforce import zoo
from sb3_reinforce.benchmark import AlgoSpec, machine_description
from sb3_reinforce.common.utils import sample_actions

N_ENVS = 8
BASELINES = [None, "mean", "linear", "value"]


def frozen(progress_remaining: float) -> float:
    """A learning-rate schedule that keeps the policy fixed."""
    return 0.0


def build(algo: str, env_id: str, overrides: dict[str, Any], fixed: bool = True) -> BaseAlgorithm:
    """A model from the zoo's config for ``algo`` (the package's for REINFORCE) with 8 envs, at a fixed policy if asked."""
    model, _ = zoo.build_model(algo, env_id, "/tmp/sb3_reinforce_throughput", {"n_envs": N_ENVS, **overrides})
    if fixed:
        model.learning_rate = frozen  # the zoo's schedule parsing only takes numbers and "lin_" strings
        model._setup_lr_schedule()
    return model


def learn_rate(model: BaseAlgorithm, steps: int, callback: "PolicyRecorder | None" = None) -> float:
    """Env steps per second of one ``learn(steps)`` (the recorder's own time, if any, left out)."""
    start_steps = model.num_timesteps
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False, callback=callback)
    elapsed = time.perf_counter() - start - (callback.seconds if callback is not None else 0.0)
    return (model.num_timesteps - start_steps) / elapsed


def _act(model: BaseAlgorithm, obs: Any) -> np.ndarray:
    """Actions from the policy's actor, as the env takes them (clipped to a Box space), as the training loops do."""
    return sample_actions(cast(ActorCriticPolicy, model.policy), obs)[1]


def limit_rate(model: BaseAlgorithm, steps: int) -> float:
    """Steps per second of stepping the model's VecEnv with actions from its policy's forward pass, nothing else."""
    return replay_limit_rate(model, [(None, steps)])


class PolicyRecorder(BaseCallback):
    """
    Keeps, for each rollout of a training run, the policy's parameters and the number of env steps it took, so that
    the limit loop can replay the same sequence of policies (same episode lengths). Its own time is counted in
    ``seconds`` and left out of the training rate.
    """

    def __init__(self) -> None:
        super().__init__()
        self.segments: list[tuple[dict[str, th.Tensor] | None, int]] = []
        self.seconds = 0.0
        self._start_steps = 0
        self._state: dict[str, th.Tensor] = {}

    def _on_rollout_start(self) -> None:
        start = time.perf_counter()
        self._start_steps = self.model.num_timesteps
        self._state = {key: value.clone() for key, value in self.model.policy.state_dict().items()}
        self.seconds += time.perf_counter() - start

    def _on_rollout_end(self) -> None:
        self.segments.append((self._state, self.model.num_timesteps - self._start_steps))

    def _on_step(self) -> bool:
        return True


def replay_limit_rate(model: BaseAlgorithm, segments: list[tuple[dict[str, th.Tensor] | None, int]]) -> float:
    """
    The limit loop over a sequence of policies (a training run's, from :class:`PolicyRecorder`; ``None``: the model's
    current one), each for as many steps as its rollout took; the loading of each policy is not timed.
    """
    env = model.get_env()
    assert env is not None
    obs = env.reset()
    total, elapsed = 0, 0.0
    for state, steps in segments:
        if state is not None:
            model.policy.load_state_dict(state)
        n = 0
        start = time.perf_counter()
        while n < steps:
            obs, _, _, _ = env.step(_act(model, obs))
            n += env.num_envs
        elapsed += time.perf_counter() - start
        total += n
    return total / elapsed


def medians(learn: list[float], limit: list[float]) -> tuple[float, float, float]:
    """Median rate of ``learn()``, median rate of the limit loop, and median ratio of the runs timed in pairs."""
    ratios = [a / b for a, b in zip(learn, limit, strict=True)]
    return statistics.median(learn), statistics.median(limit), statistics.median(ratios)


def measure_fixed(model: BaseAlgorithm, steps: int, repeats: int) -> tuple[float, float, float]:
    """
    Median rates of ``learn()`` and of the limit loop on the same (frozen) model and env, timed in alternation so
    that slow drifts of the machine's speed affect both alike, and the median of the pairs' ratios.
    """
    model.learn(min(steps, 2048), reset_num_timesteps=True)  # warm-up
    limit_rate(model, min(steps, 2048))
    learn, limit = [], []
    for _ in range(repeats):
        limit.append(limit_rate(model, steps))
        learn.append(learn_rate(model, steps))
    return medians(learn, limit)


def measure_training(make: Callable[[], BaseAlgorithm], steps: int, repeats: int) -> tuple[float, float, float]:
    """
    Rates of training runs of ``steps`` steps from a fresh model (its own learning-rate schedule, so episode
    lengths change as it learns), each followed by the limit loop replaying that run's policies; medians over
    ``repeats`` runs, and the median of the pairs' ratios.
    """
    learn, limit = [], []
    for _ in range(repeats):
        model = make()
        recorder = PolicyRecorder()
        learn.append(learn_rate(model, steps, recorder))
        limit.append(replay_limit_rate(model, recorder.segments))
        assert model.env is not None
        model.env.close()
    return medians(learn, limit)


def runs_for(entry: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The rows of one env: (label, algorithm, hyperparameters over the zoo config)."""
    runs: list[tuple[str, str, dict[str, Any]]] = []
    for batch_mode in ("steps", "episodes"):
        for baseline in BASELINES:
            overrides: dict[str, Any] = {"baseline": baseline, "batch_mode": batch_mode}
            if entry.get("return_estimator") == "gae" and baseline != "value":
                overrides["return_estimator"] = "reward_to_go"
            if batch_mode == "episodes":
                overrides["n_episodes"] = entry.get("n_episodes", N_ENVS)
            runs.append((f"reinforce {batch_mode} {baseline}", "reinforce", overrides))
    return [*runs, ("a2c (zoo)", "a2c", {}), ("ppo (zoo)", "ppo", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "HalfCheetah-v5"])
    parser.add_argument("--modes", nargs="+", choices=["fixed", "training"], default=["fixed", "training"])
    parser.add_argument("--steps", type=int, default=40_000, help="steps per timed run at a fixed policy")
    parser.add_argument("--train-steps", type=int, default=100_000,
                        help="steps per training run (at most REINFORCE's budget for the env)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reinforce-params", nargs="+", default=[], metavar="KEY=VALUE",
                        help="over REINFORCE's zoo config in every REINFORCE row, e.g. n_value_epochs=10")  # fmt: skip
    parser.add_argument("--only", nargs="+", help="run only the rows whose label contains one of these strings")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--out", help="CSV file")
    args = parser.parse_args()
    if args.threads:
        th.set_num_threads(args.threads)

    config = yaml.safe_load(open(zoo.default_config_path()))
    labels = [label for env_id in args.envs for label, _, _ in runs_for(config.get(env_id, config["default"]))]
    if args.only and not any(part in label for part in args.only for label in labels):
        raise ValueError(f"--only: {args.only} matches no row; the rows are {sorted(set(labels))}")
    extra = AlgoSpec.parse("reinforce:" + ",".join(args.reinforce_params)).params  # as `benchmark --algos` reads them
    rows: list[dict[str, Any]] = []
    for mode in args.modes:
        for env_id in args.envs:
            entry = config.get(env_id, config["default"])
            steps = args.steps if mode == "fixed" else min(args.train_steps, int(float(entry["n_timesteps"])))
            results: dict[str, tuple[float, float, float]] = {}
            for label, algo, overrides in runs_for(entry):
                if args.only and not any(part in label for part in args.only):
                    continue
                if algo == "reinforce":
                    overrides = {**overrides, **extra}
                if mode == "fixed":
                    model = build(algo, env_id, overrides)
                    results[label] = measure_fixed(model, steps, args.repeats)
                    assert model.env is not None
                    model.env.close()
                else:
                    make = functools.partial(build, algo, env_id, overrides, fixed=False)
                    results[label] = measure_training(make, steps, args.repeats)
                rate, limit, ratio = results[label]
                print(f"{mode:8s} {env_id:16s} {label:26s} {rate:9.0f} steps/s, limit {limit:9.0f}: {ratio:5.2f}", flush=True)
            a2c = results["a2c (zoo)"][0] if "a2c (zoo)" in results else float("nan")
            for label, (rate, limit, ratio) in results.items():
                rows.append(dict(mode=mode, env=env_id, run=label, steps=steps, steps_per_second=round(rate),
                                 limit=round(limit), of_limit=ratio, vs_a2c=rate / a2c))  # fmt: skip

    date = datetime.date.today().isoformat()
    print(f"\n{date}; {machine_description()}; torch threads {th.get_num_threads()}; {args.repeats} runs per row")
    print("| policy | env | run | steps/s | limit steps/s | of limit | vs A2C |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['mode']} | {r['env']} | {r['run']} | {r['steps_per_second']} | {r['limit']} | {r['of_limit']:.2f} | "
            f"{r['vs_a2c']:.2f} |"
        )
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=[*rows[0], "date", "machine"])
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, "date": date, "machine": machine_description()})


if __name__ == "__main__":
    main()
