"""``sb3-reinforce benchmark``: the command line (see the package docstring)."""

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from sb3_reinforce.benchmark.report import RESULT_COLUMNS, markdown_table, write_report
from sb3_reinforce.benchmark.runner import AlgoSpec, RunSpec, execute_local, execute_ray, load_records
from sb3_reinforce.benchmark.statistics import random_policy_return, threshold_for


def _parse_thresholds(items: list[str]) -> dict[str, float]:
    thresholds = {}
    for item in items:
        env_id, equals, value = item.rpartition("=")
        try:
            thresholds[env_id] = float(value)
        except ValueError:
            equals = ""
        if not equals or not env_id or not np.isfinite(thresholds[env_id]):
            raise ValueError(f"--thresholds: {item!r} is not ENV=NUMBER (a finite number)")
    return thresholds


def _import_gym_packages(packages: list[str]) -> None:
    """Import the modules that register extra envs; one that cannot be imported is a ValueError naming it."""
    import importlib

    for package in packages:
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as error:
            raise ValueError(
                f"--gym-packages: module {package!r} cannot be imported ({error}). Install it, or add its folder to "
                "PYTHONPATH (PYTHONPATH=. sb3-reinforce benchmark ... for a module of the current folder)."
            ) from None


def _budget(env_id: str, n_timesteps: int | None) -> int:
    """``--n-timesteps``, or the REINFORCE zoo config's budget for the env, the same for every algorithm."""
    if n_timesteps is not None:
        return n_timesteps
    from sb3_reinforce.zoo import default_config_path

    config = yaml.safe_load(Path(default_config_path()).read_text())
    if env_id not in config or "n_timesteps" not in config[env_id]:
        raise ValueError(f"--n-timesteps: {env_id!r} has no entry in zoo_configs/reinforce.yml; give --n-timesteps")
    return int(float(config[env_id]["n_timesteps"]))


# Hyperparameters the zoo takes from a config entry besides the algorithm's constructor arguments.
ZOO_KEYS = {"n_envs", "normalize", "normalize_kwargs", "policy", "n_timesteps", "frame_stack", "env_wrapper",
            "vec_env_wrapper", "callback"}  # fmt: skip


def _check_algos(algos: list[AlgoSpec], envs: list[str], conf_files: dict[str, str | None]) -> None:
    """
    Every name is a zoo algorithm, every variant key a zoo key or an argument of its class, and every variant
    builds a model on every env exactly as its runs will (the zoo's config and preprocessing, ``zoo.build_model``).
    """
    import inspect
    import tempfile

    import rl_zoo3

    from sb3_reinforce import zoo

    zoo.register()
    for spec in algos:
        if spec.algo not in rl_zoo3.ALGOS:
            raise ValueError(f"--algos: {spec.algo!r} (in {spec.label!r}) is not one of {sorted(rl_zoo3.ALGOS)}")
        arguments = set(inspect.signature(rl_zoo3.ALGOS[spec.algo].__init__).parameters) - {"self", "policy", "env"}
        for key in spec.params:
            if key not in arguments | ZOO_KEYS:
                raise ValueError(
                    f"--algos: {key!r} (in {spec.label!r}) is not an argument of {spec.algo}; allowed: "
                    f"{sorted(arguments) + sorted(ZOO_KEYS)}"
                )
        if not spec.params:
            continue
        for env_id in envs:
            with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # only the errors matter here; the run itself warns
                try:
                    model, _ = zoo.build_model(spec.algo, env_id, folder, dict(spec.params), conf_files.get(spec.algo))
                except (ValueError, TypeError, AssertionError, NameError, SyntaxError) as error:
                    raise ValueError(f"--algos: {spec.label!r} does not build on {env_id}: {error}") from error
                assert model.env is not None
                model.env.close()


def zoo_configs_with_aliases(algo: str, envs: list[str], folder: Path) -> str | None:
    """
    The zoo's config file for ``algo`` with entries added for envs it only has under another version
    (``HalfCheetah-v5`` from ``HalfCheetah-v4``: same dynamics, newer Gymnasium API). None when nothing is missing.
    """
    import rl_zoo3

    path = Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"
    if not path.exists():
        return None
    config = yaml.safe_load(path.read_text())
    added = {}
    for env_id in envs:
        if env_id in config:
            continue
        name, _, version = env_id.rpartition("-v")
        older = [k for k in config if k.rpartition("-v")[0] == name and k.rpartition("-v")[2].isdigit()]
        if older and version.isdigit():
            added[env_id] = config[max(older, key=lambda k: int(k.rpartition("-v")[2]))]
    if not added:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{algo}.yml"
    target.write_text(yaml.safe_dump({**config, **added}, sort_keys=False))
    return str(target)


def _shell_quote(argument: str) -> str:
    """Quote for a POSIX shell, in double quotes when that reads better (``"reinforce:baseline='mean'"``)."""
    quoted = shlex.quote(argument)
    if quoted != argument and not any(char in argument for char in '"$`\\!'):
        return f'"{argument}"'
    return quoted


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument("--algos", nargs="+", default=["reinforce", "a2c", "ppo"], help="ALGO or ALGO:key=value,...")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (FIRST .. FIRST+N-1)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0): FIRST")
    parser.add_argument("--n-timesteps", type=int, help="budget of every run (default: REINFORCE's config per env)")
    parser.add_argument("--eval-freq", type=int, help="steps between evaluations (default: budget / 20)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel local runs")
    parser.add_argument("--ray-address", help="run on this Ray cluster (e.g. 127.0.0.1:6379) instead of locally")
    parser.add_argument("--hyperparams", nargs="+", default=[], help="zoo -params for every run (key:value)")
    parser.add_argument("--thresholds", nargs="+", default=[], help="ENV=RETURN, overriding the solved thresholds")
    parser.add_argument("--gym-packages", nargs="+", default=[], help="modules that register extra envs")
    parser.add_argument("--out", required=True, help="output folder (runs already finished there are skipped)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the tables and figures")
    return parser


def _validate(args: argparse.Namespace) -> tuple[list[AlgoSpec], dict[str, float], dict[str, int]]:
    """Check the arguments that need no model; return the algorithms, threshold overrides and budgets per env."""
    from sb3_reinforce.zoo import register_masked_envs

    _import_gym_packages(args.gym_packages)
    register_masked_envs()  # as every `sb3-reinforce train` run registers them
    if args.seeds < 1:
        raise ValueError(f"--seeds: {args.seeds} given; allowed: a number of seeds >= 1")
    if args.first_seed < 0:
        raise ValueError(f"--first-seed: {args.first_seed} given; allowed: an integer >= 0")
    for name in ("jobs", "n_timesteps", "eval_freq", "eval_episodes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: {value} given; allowed: an integer >= 1")
    if len(set(args.envs)) != len(args.envs):
        raise ValueError(f"--envs: {args.envs} names an env twice")
    registered = set(gym.registry)
    for env_id in args.envs:
        if env_id not in registered:
            raise ValueError(f"--envs: {env_id!r} is not a registered Gymnasium env (add its module to --gym-packages)")
    algos = [AlgoSpec.parse(text) for text in args.algos]
    if len({a.label for a in algos}) != len(algos):
        raise ValueError(f"--algos: {args.algos} names an algorithm twice")
    if args.hyperparams and any(a.params for a in algos):
        raise ValueError("--hyperparams: cannot be combined with ALGO:key=value variants; put them in the variants")
    thresholds = _parse_thresholds(args.thresholds)
    for env_id in set(thresholds) - set(args.envs):
        raise ValueError(f"--thresholds: {env_id!r} is not one of --envs {args.envs}")
    budgets = {env_id: _budget(env_id, args.n_timesteps) for env_id in args.envs}
    return algos, thresholds, budgets


def _run_specs(
    args: argparse.Namespace, algos: list[AlgoSpec], budgets: dict[str, int], conf_files: dict[str, str | None]
) -> list[RunSpec]:
    zoo_args: list[str] = []
    if args.gym_packages:
        zoo_args += ["--gym-packages", *args.gym_packages]
    if args.hyperparams:
        zoo_args += ["-params", *args.hyperparams]
    return [
        RunSpec(algo, env_id, seed, budget, args.eval_freq or max(budget // 20, 1), args.eval_episodes,
                tuple(zoo_args), conf_files.get(algo.algo))
        for env_id, budget in budgets.items()
        for algo in algos
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]  # fmt: skip


def _print_record(record: dict[str, Any]) -> None:
    name = f"{record['algo']} {record['env']} seed {record['seed']}"
    if record["status"] == "ok":
        print(f"  done   {name}: final {record['eval_returns'][-1]:.1f} in {record['wall_time']:.0f} s", flush=True)
    else:
        print(f"  FAILED {name}: {record['error']}", flush=True)


def _random_returns(out: Path, envs: list[str], thresholds: dict[str, float | None]) -> dict[str, float]:
    """
    Random-policy returns of the envs with a threshold, measured once and kept in ``OUT/random_policy.json``; each
    threshold must lie above it, or the normalised score would have no meaning.
    """
    path = out / "random_policy.json"
    randoms = json.loads(path.read_text()) if path.exists() else {}
    for env_id in envs:
        if env_id not in randoms and thresholds[env_id] is not None:
            randoms[env_id] = random_policy_return(env_id)
    path.write_text(json.dumps(randoms, indent=1))
    for env_id in envs:
        threshold = thresholds[env_id]
        if threshold is not None and threshold <= randoms[env_id]:
            raise ValueError(
                f"--thresholds: {env_id}={threshold:g} is not above the return of a random policy ({randoms[env_id]:.4g})"
            )
    return {env_id: randoms[env_id] for env_id in envs if env_id in randoms}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    algos, thresholds_given, budgets = _validate(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The zoo's files for the other algorithms, with -v5 aliases where the zoo only has -v4 entries.
    conf_files = {a.algo: zoo_configs_with_aliases(a.algo, args.envs, out / "configs") for a in algos if a.algo != "reinforce"}
    _check_algos(algos, args.envs, conf_files)
    specs = _run_specs(args, algos, budgets, conf_files)

    thresholds = {env_id: threshold_for(env_id, thresholds_given) for env_id in args.envs}
    randoms = _random_returns(out, args.envs, thresholds)

    finished, _ = load_records(out, specs)
    done = {(r["algo"], r["env"], r["seed"], r["n_timesteps"]) for r in finished}
    pending = [s for s in specs if (s.algo.label, s.env_id, s.seed, s.n_timesteps) not in done]
    print(f"benchmark: {len(specs)} runs, {len(specs) - len(pending)} already finished in {out}, {len(pending)} to run")
    if pending and not args.report_only:
        if args.ray_address:
            execute_ray(pending, out, args.ray_address, _print_record)
        else:
            execute_local(pending, out, args.jobs, _print_record)

    records, failed = load_records(out, specs)
    settings = (
        f"Every run: the zoo's `train` with each algorithm's zoo config, budget "
        f"{', '.join(f'{e} {b:g}' for e, b in budgets.items())} steps; evaluation every "
        f"{args.eval_freq or 'budget/20'} steps, {args.eval_episodes} deterministic episodes on a separate env; "
        f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}."
    )
    # The command that produces these results (with --report-only it is the same command that ran them).
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"]
    command = "sb3-reinforce benchmark " + " ".join(_shell_quote(a) for a in given)
    rows = write_report(out, command, records, failed, thresholds, randoms, settings)
    print(markdown_table(rows, RESULT_COLUMNS))
    print(f"report: {out / 'report.md'}")
    if failed:
        print(f"{len(failed)} run(s) failed:", ", ".join(f"{f['algo']} {f['env']} seed {f['seed']}" for f in failed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
