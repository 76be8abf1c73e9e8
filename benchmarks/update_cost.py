"""
Cost of one REINFORCE update (``train()``) on a fixed batch, for CartPole-v1's zoo entry with and without the value
baseline, with the default optimizer (Adam, fused implementation) against SB3's default (Adam, loop over
parameters); the cost of switching the policy between eval and training mode (twice per update); and what one
regression pass of the value function costs (``REINFORCE._fit_value_function``, the ``n_value_epochs`` extra passes):
milliseconds, the floating-point rate of its matrix products against that of a bare matrix product of the critic's
largest layer on the same batch, and the share of its time that torch's profiler puts in matrix products; and the
critic's first-layer weight gradient in both orientations of its matrix product.

    python benchmarks/update_cost.py --repeats 300
"""

import argparse
import resource
import statistics
import sys
import time
import timeit
from pathlib import Path
from typing import Any, cast

import torch as th
import yaml
from stable_baselines3.common.type_aliases import TensorDict
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import build

from sb3_reinforce import REINFORCE, zoo
from sb3_reinforce.benchmark import machine_description


def train_ms(variants: list[dict[str, Any]], repeats: int) -> tuple[list[float], list[int], float]:
    """
    Median milliseconds of ``train()`` for each variant, each on one collected batch of its own model (frozen policy:
    every call does the same work), timed one call of each in turn so that drifts of the machine's speed affect
    all alike; the batch sizes; and the median over the rounds of the first variant's time over the second's.
    """
    models = [cast(REINFORCE, build("reinforce", "CartPole-v1", overrides)) for overrides in variants]
    for model in models:
        model.learn(1000)  # one collected batch in the buffer, optimizer state initialised
        model.train()
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for model, column in zip(models, times, strict=True):
            column.append(timeit.timeit(model.train, number=1))
    ratio = statistics.median(a / b for a, b in zip(times[0], times[1], strict=True))
    return [1e3 * statistics.median(column) for column in times], [int(m.rollout_buffer.valid.sum()) for m in models], ratio


def critic_flops(model: REINFORCE, n: int) -> tuple[float, tuple[int, int]]:
    """
    Floating-point operations of the matrix products of one regression pass (forward and backward) of the critic on
    ``n`` rows, and the critic's largest layer shape. Forward: ``2 n in out`` per linear layer; backward: the same for
    the weight gradient of every layer and for the input gradient of every layer but the first.
    """
    policy = model.policy
    layers = [m for m in [*policy.mlp_extractor.value_net.modules(), policy.value_net] if isinstance(m, th.nn.Linear)]
    sizes = [layer.in_features * layer.out_features for layer in layers]
    largest = max(layers, key=lambda layer: layer.in_features * layer.out_features)
    return 2.0 * n * (2 * sum(sizes) + sum(sizes[1:])), (largest.in_features, largest.out_features)


def pass_cost(model: REINFORCE, observations: th.Tensor | TensorDict, targets: th.Tensor, calls: int) -> tuple[float, float]:
    """
    Seconds per value-regression pass (median over ``calls`` calls of ``_fit_value_function`` with the model's
    ``n_value_epochs`` passes, after a warm-up call) and the mean number of minor page faults per pass.
    """
    n_passes = model.n_value_epochs
    model._fit_value_function(observations, targets, n_passes)
    seconds, faults = [], 0
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        model._fit_value_function(observations, targets, n_passes)
        seconds.append(time.perf_counter() - start)
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return statistics.median(seconds) / n_passes, faults / (calls * n_passes)


def regression_pass(batch_mode: str, repeats: int) -> str:
    """One table row: cost of one value-regression pass on a batch of CartPole-v1's entry (policy fixed)."""
    overrides = {"baseline": "value", "batch_mode": batch_mode, "n_episodes": 8}
    model = cast(REINFORCE, build("reinforce", "CartPole-v1", overrides))
    model.learn(1000)
    batch = model.rollout_buffer.get_batch()
    assert batch.value_targets is not None
    targets = batch.value_targets
    seconds, _ = pass_cost(model, batch.observations, targets, repeats)
    n = len(targets)
    flops, (fan_in, fan_out) = critic_flops(model, n)
    a, b = th.randn(n, fan_in), th.randn(fan_in, fan_out)
    mm_seconds = statistics.median(timeit.repeat(lambda: a @ b, number=10, repeat=max(repeats // 5, 3))) / 10
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model._fit_value_function(batch.observations, targets, model.n_value_epochs)
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    products = sum(event.self_cpu_time_total for event in events if event.key in ("aten::mm", "aten::addmm"))
    return (
        f"| {batch_mode} | {n} | {1e3 * seconds:.3f} | {flops / seconds / 1e9:.1f} | "
        f"{2.0 * n * fan_in * fan_out / mm_seconds / 1e9:.1f} | {100 * products / total:.0f}% |"
    )


def first_layer_weight_gradient(n: int, repeats: int) -> tuple[float, float]:
    """
    Microseconds of the weight gradient of the first layer of CartPole-v1's critic on ``n`` rows in the orientation
    autograd uses for a row-major weight, ``grad_out^T @ x`` (``[out, n] x [n, in]``), and in the other one,
    ``(x^T @ grad_out)^T``.
    """
    model = cast(REINFORCE, build("reinforce", "CartPole-v1", {"baseline": "value"}))
    layer = next(m for m in model.policy.mlp_extractor.value_net.modules() if isinstance(m, th.nn.Linear))
    x, grad_out = th.randn(n, layer.in_features), th.randn(n, layer.out_features)
    times = [
        statistics.median(timeit.repeat(product, number=10, repeat=repeats)) / 10 * 1e6
        for product in (lambda: grad_out.t().mm(x), lambda: x.t().mm(grad_out).t())
    ]
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    print(f"{machine_description()}; median of {args.repeats} calls of each, in turn\n")
    print(
        "| batch mode | baseline | steps in batch | Adam, fused (default) ms | Adam, SB3's default (loop) ms | fused / loop |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    entry = yaml.safe_load(open(zoo.default_config_path()))["CartPole-v1"]["policy_kwargs"]
    assert entry.startswith("dict(") and entry.endswith(")") and "optimizer" not in entry
    # SB3's own default optimizer: Adam with eps=1e-5, the loop implementation (giving optimizer_kwargs keeps it)
    sb3_default = entry[:-1] + ", optimizer_kwargs=dict(eps=1e-5))"
    for batch_mode in ("episodes", "steps"):
        for baseline in (None, "value"):
            fused: dict[str, Any] = {"baseline": baseline, "batch_mode": batch_mode, "n_episodes": 8}
            (fused_ms, loop_ms), (n, _), ratio = train_ms([fused, {**fused, "policy_kwargs": sb3_default}], args.repeats)
            print(f"| {batch_mode} | {baseline} | {n} | {fused_ms:.2f} | {loop_ms:.2f} | {ratio:.2f} |", flush=True)

    model = cast(REINFORCE, build("reinforce", "CartPole-v1", {"baseline": None}))
    policy = model.policy

    def sb3_switch() -> None:
        policy.set_training_mode(False)
        policy.set_training_mode(True)

    def own_switch() -> None:
        model._set_training_mode(False)
        model._set_training_mode(True)

    for name, switch in [("policy.set_training_mode", sb3_switch), ("REINFORCE._set_training_mode", own_switch)]:
        us = 1e6 * statistics.median(timeit.repeat(switch, number=100, repeat=20)) / 100
        print(f"\n{name}: eval then training mode, {us:.1f} µs")

    print(f"\nValue regression passes (CartPole-v1 entry, baseline='value'; median of {max(args.repeats // 10, 5)} calls)\n")
    print("| batch mode | steps in batch | ms per pass | GFLOP/s of its products | GFLOP/s of a bare product of the "
          "largest layer | share of time in products |\n| --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for batch_mode in ("episodes", "steps"):
        print(regression_pass(batch_mode, max(args.repeats // 10, 5)), flush=True)

    autograd_us, other_us = first_layer_weight_gradient(8192, max(args.repeats // 10, 5))
    print(f"\nThe critic's first-layer weight gradient on 8192 rows: {autograd_us:.0f} µs as autograd orders it "
          f"(grad_out^T @ x), {other_us:.0f} µs in the other orientation ((x^T @ grad_out)^T)")  # fmt: skip


if __name__ == "__main__":
    main()
