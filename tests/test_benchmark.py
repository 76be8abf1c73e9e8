"""``sb3-reinforce benchmark``: run specs, statistics against their definitions, a tiny grid, resume, failures, Ray."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sb3_reinforce import benchmark
from sb3_reinforce.benchmark import AlgoSpec, RunSpec
from sb3_reinforce.benchmark import cli as benchmark_cli

ROOT = Path(__file__).resolve().parent.parent


def test_algo_spec_parsing():
    assert AlgoSpec.parse("PPO") == AlgoSpec("PPO", "ppo", {})
    spec = AlgoSpec.parse("reinforce:baseline=mean,return_estimator=total,gamma=0.9")
    assert spec.algo == "reinforce"
    assert spec.params == {"baseline": "mean", "return_estimator": "total", "gamma": 0.9}
    spec = AlgoSpec.parse("reinforce:baseline=None,policy_kwargs=dict(net_arch=[64, 64]),n_steps=256")
    assert spec.params == {"baseline": None, "policy_kwargs": "dict(net_arch=[64, 64])", "n_steps": 256}
    spec = AlgoSpec.parse("reinforce:policy_kwargs={'net_arch': [8, 8]}")
    assert spec.params == {"policy_kwargs": {"net_arch": [8, 8]}}
    assert "/" not in AlgoSpec.parse("reinforce:baseline='a/b'").folder
    with pytest.raises(ValueError, match="--algos: 'reinforce:baseline' has 'baseline'"):
        AlgoSpec.parse("reinforce:baseline")


def test_run_command_is_the_zoo_train_command():
    spec = RunSpec(AlgoSpec.parse("reinforce:baseline=mean"), "CartPole-v1", 3, 5000, 1000, 4, ("-P",))
    command = spec.command(Path("out"))
    assert command[1:4] == ["-m", "sb3_reinforce", "train"]
    text = " ".join(command)
    for part in ("--algo reinforce", "--env CartPole-v1", "--seed 3", "-n 5000", "--eval-freq 1000", "--eval-episodes 4"):
        assert part in text
    assert command[-2:] == ["-params", "baseline:'mean'"]
    assert "-P" in command


def test_commands_are_reported_as_a_shell_reads_them():
    for argument in ["plain", "reinforce:baseline='mean'", "a b", 'it\'s "x"', "$HOME"]:
        quoted = benchmark_cli._shell_quote(argument)
        assert subprocess.run(f"printf %s {quoted}", shell=True, capture_output=True, text=True).stdout == argument
    assert benchmark_cli._shell_quote("reinforce:baseline='mean'") == "\"reinforce:baseline='mean'\""


def test_statistics_match_their_definitions():
    steps = np.array([0, 10, 20, 40])
    returns = np.array([0.0, 5.0, 20.0, 10.0])
    assert benchmark.steps_to_threshold(steps, returns, 5.0) == 10
    assert benchmark.steps_to_threshold(steps, returns, 21.0) is None
    assert benchmark.steps_to_threshold(steps, returns, None) is None
    # trapezoids: (0+5)/2*10 + (5+20)/2*10 + (20+10)/2*20 = 25 + 125 + 300 = 450 over 40 steps
    assert benchmark.area_under_curve(steps, returns) == pytest.approx(450 / 40)
    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 13.0]])
    mean, low, high = benchmark.t_interval(values)
    half = stats.t.ppf(0.975, 2) * values.std(axis=0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(mean, [2.0, 11.0])
    np.testing.assert_allclose(high - mean, half)
    np.testing.assert_allclose(mean - low, half)


def _record(algo, env, seed, returns, steps=None, fps=100.0):
    steps = steps or [100 * (i + 1) for i in range(len(returns))]
    return dict(algo=algo, env=env, seed=seed, n_timesteps=steps[-1], eval_timesteps=steps, eval_returns=returns,
                wall_time=2.0, fps=fps, status="ok")  # fmt: skip


def test_summary_and_aggregate_on_known_runs():
    records = [
        _record("a", "E1", 0, [0.0, 10.0]),
        _record("a", "E1", 1, [0.0, 4.0]),
        _record("a", "E2", 0, [0.0, 1.0]),
        _record("a", "E2", 1, [0.0, 0.5]),
        _record("b", "E1", 0, [10.0, 10.0]),
        _record("b", "E1", 1, [10.0, 10.0]),
        _record("b", "E2", 0, [0.0, 0.0]),
        _record("b", "E2", 1, [1.0, 1.0]),
    ]
    thresholds = {"E1": 10.0, "E2": 1.0}
    rows = {(r["algo"], r["env"]): r for r in benchmark.summarize(records, thresholds)}
    row = rows["a", "E1"]
    assert row["final_mean"] == 7.0 and row["final_std"] == pytest.approx(np.std([10, 4], ddof=1))
    half = stats.t.ppf(0.975, 1) * np.std([10, 4], ddof=1) / np.sqrt(2)
    assert row["final_ci_low"] == pytest.approx(7.0 - half) and row["final_ci_high"] == pytest.approx(7.0 + half)
    assert row["reached"] == 1 and row["median_steps_to_threshold"] is None  # median of {200, never}
    assert rows["b", "E1"]["median_steps_to_threshold"] == 100
    assert row["held"] == 1 and rows["b", "E1"]["held"] == 2 and rows["b", "E2"]["held"] == 1
    dipped = benchmark.summarize([_record("c", "E1", 0, [10.0, 9.0, 10.0])], thresholds)[0]
    assert dipped["reached"] == 1 and dipped["held"] == 0
    assert row["auc"] == pytest.approx(np.mean([5.0, 2.0]))

    randoms = {"E1": 0.0, "E2": 0.0}
    np.random.seed(123)
    expected_draw = np.random.random_sample()
    np.random.seed(123)
    table = {r["algo"]: r for r in benchmark.aggregate(records, thresholds, randoms, reps=500)}
    assert np.random.random_sample() == expected_draw  # the global generator is left as it was
    # normalised finals of "a": E1 {1.0, 0.4}, E2 {1.0, 0.5}: IQM = mean of the middle half
    a_scores = np.array([1.0, 0.4, 1.0, 0.5])
    assert table["a"]["iqm"] == pytest.approx(stats.trim_mean(a_scores, 0.25))
    assert table["a"]["optimality_gap"] == pytest.approx(np.mean(1 - np.minimum(a_scores, 1.0)))
    for r in table.values():
        assert r["iqm_low"] <= r["iqm"] <= r["iqm_high"]
        assert r["gap_low"] <= r["optimality_gap"] <= r["gap_high"]
        assert r["runs_per_env"] == 2 and r["envs"] == 2


def test_comparison_table_pivots_the_results():
    """summary.md: one line per env, one column per algorithm, a blank cell where an algorithm has no runs."""
    from sb3_reinforce.benchmark.report import comparison_table

    records = [_record("a", "E1", 0, [0.0, 10.0]), _record("a", "E1", 1, [0.0, 4.0]), _record("b", "E2", 0, [0.0, 2.0])]
    rows = benchmark.summarize(records, {"E1": 10.0, "E2": 1.0})
    table = comparison_table(rows, [dict(algo="a", iqm=0.5, iqm_low=0.25, iqm_high=0.75)]).splitlines()
    assert table[0] == "| env | a | b |"
    assert table[2] == f"| E1 | 7 +/- {np.std([10, 4], ddof=1):.4g} (2) |  |"
    assert table[3] == "| E2 |  | 2 +/- 0 (1) |"
    assert table[4] == "| IQM (normalised, 95% CI) | 0.500 [0.250, 0.750] |  |"


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--envs", "CartPole-v1", "--algos", "dqnx"], "--algos: 'dqnx'"),
        (["--envs", "NoSuchEnv-v0"], "--envs: 'NoSuchEnv-v0'"),
        (["--envs", "CartPole-v1", "--algos", "reinforce:no_such_arg=1"], "'no_such_arg' .* not an argument of reinforce"),
        (["--envs", "CartPole-v1", "--algos", "reinforce:baseline=bogus"], "baseline"),
        # valid with Pendulum-v1's entry (continuous actions), not with CartPole-v1's (gSDE needs a Box action space)
        (["--envs", "Pendulum-v1", "CartPole-v1", "--algos", "reinforce:use_sde=True"], "does not build on CartPole-v1"),
        # CartPole-v1's entry uses GAE, which needs the value baseline
        (["--envs", "CartPole-v1", "--algos", "reinforce:baseline=None"], "on CartPole-v1: return_estimator='gae'"),
        (["--envs", "CartPole-v1", "--seeds", "0"], "--seeds: 0"),
        (["--envs", "CartPole-v1", "--first-seed", "-1"], "--first-seed: -1"),
        (["--envs", "CartPole-v1", "--jobs", "0"], "--jobs: 0"),
        (["--envs", "CartPole-v1", "--thresholds", "CartPole-v1=high"], "--thresholds"),
        (["--envs", "CartPole-v1", "--thresholds", "CartPole-v1=nan"], "--thresholds: 'CartPole-v1=nan'"),
        (["--envs", "CartPole-v1", "--thresholds", "Acrobot-v1=-90"], "--thresholds: 'Acrobot-v1' is not one of"),
        (["--envs", "CartPole-v1", "--thresholds", "CartPole-v1=5"], "not above the return of a random policy"),
        (["--envs", "CartPole-v1", "--algos", "ppo", "ppo"], "--algos: .* twice"),
        (["--envs", "CartPole-v1", "CartPole-v1"], "--envs: .* twice"),
    ],
)
def test_bad_arguments_fail_before_any_run(tmp_path, argv, match):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        benchmark.main([*argv, "--out", str(out)])
    assert not (out / "runs").exists()


def test_variants_are_checked_as_the_zoo_preprocesses_them():
    specs = [
        AlgoSpec.parse("reinforce:learning_rate='lin_1e-3',policy_kwargs='dict(net_arch=[8])',n_envs=4"),
        AlgoSpec.parse("a2c"),
    ]
    benchmark_cli._check_algos(specs, ["CartPole-v1"], {})  # a schedule string, a policy_kwargs string and a zoo key are valid
    with pytest.raises(ValueError, match="learning_rate"):
        benchmark_cli._check_algos([AlgoSpec.parse("reinforce:learning_rate=-1.0")], ["CartPole-v1"], {})


def test_first_seed_selects_fresh_seeds():
    """``--first-seed 10 --seeds 3``: seeds 10, 11, 12 (for a check on seeds that no choice was made on)."""
    args = benchmark_cli._parser().parse_args(["--envs", "CartPole-v1", "--algos", "reinforce", "a2c", "--seeds", "3",
                                               "--first-seed", "10", "--out", "unused"])  # fmt: skip
    algos, _, budgets = benchmark_cli._validate(args)
    specs = benchmark_cli._run_specs(args, algos, budgets, {})
    assert [(s.algo.label, s.seed) for s in specs] == [(a, seed) for a in ("reinforce", "a2c") for seed in (10, 11, 12)]
    assert {s.run_dir(Path("out")).name for s in specs} == {"seed_10", "seed_11", "seed_12"}


def test_aliases_zoo_configs_of_older_env_versions(tmp_path):
    path = benchmark_cli.zoo_configs_with_aliases("ppo", ["HalfCheetah-v5", "CartPole-v1"], tmp_path)
    assert path is not None
    import yaml

    config = yaml.safe_load(Path(path).read_text())
    assert config["HalfCheetah-v5"] == config["HalfCheetah-v4"]
    assert benchmark_cli.zoo_configs_with_aliases("ppo", ["CartPole-v1"], tmp_path / "none") is None


def test_per_seed_rows():
    """First step at the threshold, and the lowest evaluation from then on (here a fall back below it)."""
    from sb3_reinforce.benchmark.statistics import per_seed

    record = dict(env="CartPole-v1", algo="reinforce", seed=3, wall_time=2.0, eval_timesteps=[10, 20, 30, 40],
                  eval_returns=[100.0, 480.0, 300.0, 500.0])  # fmt: skip
    never = {**record, "seed": 4, "eval_returns": [1.0, 2.0, 3.0, 4.0]}
    rows = per_seed([never, record], {"CartPole-v1": 475.0})
    assert [r["seed"] for r in rows] == [3, 4]
    assert rows[0]["steps_to_threshold"] == 20 and rows[0]["lowest_after_reaching"] == 300.0
    assert rows[0]["final"] == 500.0 and rows[0]["best"] == 500.0
    assert rows[1]["steps_to_threshold"] is None and rows[1]["lowest_after_reaching"] is None


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sb3_reinforce", "benchmark", *args],
        cwd=cwd, env={**os.environ, "MPLBACKEND": "Agg"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_tiny_grid_resume_and_failure(tmp_path):
    """Two envs (one that crashes) x REINFORCE, a variant and A2C x 2 seeds, 2 parallel jobs, then run again."""
    out = tmp_path / "bench"
    args = [
        "--envs", "CartPole-v1", "FailingCartPole-v0", "--gym-packages", "tests.failing_env",
        "--algos", "reinforce", "reinforce:gamma=0.98,n_steps=128", "a2c", "--seeds", "2",
        "--n-timesteps", "1500", "--eval-freq", "500", "--eval-episodes", "2", "--jobs", "2", "--out", str(out),
    ]  # fmt: skip
    first = _bench(*args, cwd=ROOT)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]  # the crashing env's runs failed
    assert "12 runs, 0 already finished" in first.stdout
    assert "6 run(s) failed" in first.stdout, first.stdout[-1500:]
    results = sorted(out.glob("runs/*/CartPole-v1/seed_*/result.json"))
    failures = sorted(out.glob("runs/*/FailingCartPole-v0/seed_*/failed.json"))
    assert len(results) == 6 and len(failures) == 6
    failure = json.loads(failures[0].read_text())
    assert "simulated crash" in failure["log_tail"]
    record = json.loads(results[0].read_text())
    assert record["eval_timesteps"][-1] > 1500 - 500 and len(record["eval_returns"]) == len(record["eval_timesteps"])

    import csv

    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["algo"] for r in rows} == {"reinforce", "reinforce:gamma=0.98,n_steps=128", "a2c"}
    assert all(r["env"] == "CartPole-v1" and r["seeds"] == "2" for r in rows)
    aggregate = list(csv.DictReader(open(out / "aggregate.csv")))
    assert len(aggregate) == 3
    names = ("results.md", "aggregate.md", "per_seed.md", "summary.md", "report.md", "curves_CartPole-v1.png", "aggregate.png")
    for name in names:
        assert (out / name).stat().st_size > 0
    seeds = list(csv.DictReader(open(out / "per_seed.csv")))
    assert len(seeds) == 6 and {(r["algo"], r["seed"]) for r in seeds} >= {("a2c", "0"), ("a2c", "1")}
    for row in seeds:  # every run's own curve
        folder = out / "runs" / AlgoSpec.parse(row["algo"]).folder / "CartPole-v1" / f"seed_{row['seed']}"
        run = json.loads((folder / "result.json").read_text())
        assert float(row["final"]) == pytest.approx(run["eval_returns"][-1])
        assert float(row["best"]) == pytest.approx(max(run["eval_returns"]))
    report = (out / "report.md").read_text()
    assert "sb3-reinforce benchmark --envs CartPole-v1" in report and "Failed runs" in report

    # Resume: finished runs are skipped (not rewritten); the failed ones are tried again.
    removed = out / "runs" / "a2c" / "CartPole-v1" / "seed_1"
    mtimes = {p: p.stat().st_mtime_ns for p in results if removed not in p.parents}
    shutil.rmtree(removed)
    second = _bench(*[a for a in args if a != "FailingCartPole-v0"], cwd=ROOT)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "6 runs, 5 already finished" in second.stdout
    assert len(mtimes) == 5 and all(path.stat().st_mtime_ns == mtime for path, mtime in mtimes.items())
    assert (removed / "result.json").exists()

    # --report-only rebuilds the tables from what is there and runs nothing.
    third = _bench(*[a if a != "2" else "3" for a in args if a != "FailingCartPole-v0"], "--report-only", cwd=ROOT)
    assert third.returncode == 0 and "9 runs, 6 already finished" in third.stdout
    assert not list(out.glob("runs/*/CartPole-v1/seed_2"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runs_on_a_local_ray_cluster(tmp_path):
    """The same runs as Ray tasks on a head node started on the loopback address."""
    ray_cli = Path(sys.executable).parent / "ray"
    port = _free_port()
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = subprocess.run(
        [str(ray_cli), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
    try:
        out = tmp_path / "ray_bench"
        benchmark.main(
            ["--envs", "CartPole-v1", "--algos", "reinforce", "a2c", "--seeds", "2", "--n-timesteps", "1000",
             "--eval-freq", "500", "--eval-episodes", "2", "--ray-address", f"127.0.0.1:{port}", "--out", str(out)]
        )  # fmt: skip
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], env=environment, capture_output=True, timeout=120)
    records = [json.loads(p.read_text()) for p in out.glob("runs/*/*/*/result.json")]
    assert len(records) == 4
    # Each run was a Ray task: it ran in a worker process, not in this one (local runs run in this process's threads).
    assert all(r["worker_pid"] != os.getpid() for r in records)
    assert (out / "results.csv").exists()


def test_fallbacks_counts_runs_by_first_step_at_threshold(tmp_path, capsys):
    from benchmarks import fallbacks

    per_seed = tmp_path / "per_seed.csv"
    per_seed.write_text(
        "env,algo,seed,final,best,steps_to_threshold,lowest_after_reaching,auc,wall_time_s\n"
        "CartPole-v1,reinforce,0,500.0,500.0,5000,424.0,470.0,30.0\n"
        "CartPole-v1,reinforce,1,500.0,500.0,5000,475.0,480.0,30.0\n"
        "CartPole-v1,reinforce,2,500.0,500.0,10000,500.0,480.0,30.0\n"
        "CartPole-v1,reinforce,3,9.7,219.1,,,15.0,10.0\n"
        'CartPole-v1,"reinforce:ent_coef=0.05",0,500.0,500.0,10000,300.0,450.0,30.0\n'
    )
    # 475 itself is not a fall back; a run that never reaches the threshold is left out
    assert fallbacks.count_fallbacks([per_seed], 475.0) == {5000: (2, 1), 10000: (2, 1)}
    assert fallbacks.count_fallbacks([per_seed], 475.0, algo="reinforce") == {5000: (2, 1), 10000: (1, 0)}
    fallbacks.main([str(per_seed), "--threshold", "475"])
    assert capsys.readouterr().out.splitlines()[-1] == "| all | 4 | 2 |"
    with pytest.raises(ValueError, match="threshold: nan"):
        fallbacks.count_fallbacks([per_seed], float("nan"))
    # Blocks of 2 seeds of one algorithm: seeds 0-1 and 2-3; a run that never reaches the threshold counts as later than
    # any (the median of 10000 and never is inf) and does not hold
    assert fallbacks.seed_blocks([per_seed], 475.0, 2, "reinforce") == {0: (2, 5000.0, 1, 500.0), 2: (2, math.inf, 1, 9.7)}
    fallbacks.main([str(per_seed), "--threshold", "475", "--algo", "reinforce", "--blocks", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3] == "| all | 4 | | 2 | 9.7 |"
    # 2 of 4 hold: Wilson's interval for 2 of 4 is 0.15 to 0.85; both seeds of a block hold with probability 0.5^2
    assert lines[-1] == (
        "Runs that hold: 0.50 (95% Wilson interval 0.15 to 0.85); all 2 of a block hold with probability 0.25 (0.02 to 0.72)."
    )
    with pytest.raises(SystemExit):  # no row of this label: an error, not an empty table
        fallbacks.main([str(per_seed), "--threshold", "475", "--algo", "ppo", "--blocks", "2"])
    assert "--algo 'ppo': no row" in capsys.readouterr().err
    with pytest.raises(ValueError, match="size: 0"):
        fallbacks.seed_blocks([per_seed], 475.0, 0, "reinforce")
