"""
Can the value regression hide behind the next rollout in a worker *thread*? A schedule that REINFORCE does not use,
measured (``overlap_value_fit`` runs it in a worker process instead: ``throughput.py`` measures that).

The critic is not evaluated during a rollout (``V(s)`` is computed after it), so the ``n_value_epochs`` regression
passes of an update could run in a worker thread while the main thread collects the next rollout, and be joined
before that rollout's returns are computed: the same computation in a different order. This script runs CartPole-v1's
value rows (zoo entry, 8 envs, policy fixed at its initialisation as in ``throughput.py``) with the sequential
schedule and with that overlapped one, and reports, per 1,000 env steps, the time of the rollouts (main thread) and
of the regression passes (worker thread), and the rate of ``learn()`` against the limit loop (a ``learn()`` call
ends when the passes of its last update do).

    python benchmarks/value_overlap.py --steps 30000 --repeats 5
"""

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import torch as th
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecEnv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import build, measure_fixed

from sb3_reinforce import REINFORCE
from sb3_reinforce.benchmark import machine_description
from sb3_reinforce.common.buffers import ReinforceRolloutBuffer


class TimedREINFORCE(REINFORCE):
    """REINFORCE that times its rollouts and regression passes; with ``overlap``, runs the passes in a worker thread."""

    overlap = False
    worker_threads = 1

    def reset_timers(self) -> None:
        self.rollout_seconds = 0.0
        self.regression_seconds = 0.0
        self._worker: threading.Thread | None = None

    def _fit_value_function(self, observations: th.Tensor | TensorDict, targets: th.Tensor, n_epochs: int) -> th.Tensor:
        def passes() -> th.Tensor:
            start = time.perf_counter()
            loss = REINFORCE._fit_value_function(self, observations, targets, n_epochs)
            self.regression_seconds += time.perf_counter() - start
            return loss

        if not self.overlap:
            return passes()

        def worker() -> None:
            th.set_num_threads(self.worker_threads)  # this thread's own setting: the main thread keeps its own
            passes()

        self._worker = threading.Thread(target=worker)
        self._worker.start()
        return th.full((), th.nan)  # the loss after the passes is known when the worker ends: not logged here

    def join(self) -> None:
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _run_policy(
        self, env: VecEnv, buffer: ReinforceRolloutBuffer, n_rollout_steps: int, n_episodes: int | None, callback: Any
    ) -> bool:
        start = time.perf_counter()
        result = super()._run_policy(env, buffer, n_rollout_steps, n_episodes, callback)
        self.rollout_seconds += time.perf_counter() - start
        self.join()  # the returns of this rollout need the fitted critic
        return result

    def learn(self, *args: Any, **kwargs: Any) -> "TimedREINFORCE":
        result = super().learn(*args, **kwargs)
        self.join()  # the last update's passes belong to this call's time
        return result


def measure(batch_mode: str, overlap: bool, steps: int, repeats: int) -> list[float]:
    """
    ``throughput.measure_fixed`` on the value row of ``batch_mode`` (medians of learn() steps/s, limit steps/s and
    their paired ratio), and the rollout and regression milliseconds per 1,000 steps over all its learn() steps.
    """
    # The regression in this process (the entry's worker process, overlap_value_fit, is measured by throughput.py)
    overrides = {"baseline": "value", "batch_mode": batch_mode, "overlap_value_fit": False}
    model = cast(TimedREINFORCE, build("reinforce", "CartPole-v1", overrides))
    model.__class__ = TimedREINFORCE
    model.overlap = overlap
    model.reset_timers()
    rates = measure_fixed(model, steps, repeats)  # its warm-up resets num_timesteps: from then on, every step is timed
    per_k = 1000 / model.num_timesteps
    assert model.env is not None
    model.env.close()
    return [*rates, 1e3 * model.rollout_seconds * per_k, 1e3 * model.regression_seconds * per_k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{machine_description()}; torch threads {th.get_num_threads()} (worker: {TimedREINFORCE.worker_threads}); "
          f"median of {args.repeats} paired runs of {args.steps} steps\n")  # fmt: skip
    print("| batch mode | value passes | steps/s | limit steps/s | of limit | rollout ms per 1k steps "
          "| regression ms per 1k steps |\n| --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for batch_mode in ("steps", "episodes"):
        for overlap in (False, True):
            rate, limit, ratio, rollout, regression = measure(batch_mode, overlap, args.steps, args.repeats)
            schedule = "worker thread, during the next rollout" if overlap else "after the policy step (REINFORCE)"
            print(f"| {batch_mode} | {schedule} | {rate:.0f} | {limit:.0f} | {ratio:.2f} | {rollout:.1f} | {regression:.1f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
