"""The RL Zoo's commands with ``--algo reinforce``: train, enjoy, plots, tuning with shared storage, and the configs."""

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import FixedTrial, TrialState
from rl_zoo3.exp_manager import ExperimentManager

from sb3_reinforce import REINFORCE, zoo

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "zoo_configs" / "reinforce.yml"


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "sb3_reinforce", *args],
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_registration_reaches_every_zoo_module():
    import rl_zoo3
    import rl_zoo3.enjoy
    import rl_zoo3.exp_manager
    import rl_zoo3.hyperparams_opt
    import rl_zoo3.train

    zoo.register()
    zoo.register()  # idempotent
    for module in (rl_zoo3, rl_zoo3.utils, rl_zoo3.train, rl_zoo3.enjoy, rl_zoo3.exp_manager):
        assert module.ALGOS["reinforce"] is REINFORCE
        assert "ppo" in module.ALGOS and "a2c" in module.ALGOS
    assert rl_zoo3.exp_manager.HYPERPARAMS_SAMPLER["reinforce"] is zoo.sample_reinforce_params
    assert rl_zoo3.exp_manager.HYPERPARAMS_CONVERTER["reinforce"] is zoo.convert_reinforce_params
    assert rl_zoo3.train.ExperimentManager is zoo.ReinforceExperimentManager


def test_default_config_is_the_repository_file():
    assert Path(zoo.default_config_path()).resolve() == CONFIG.resolve()
    assert zoo.uses_default_config(["--algo", "reinforce", "--env", "CartPole-v1"])
    assert zoo.uses_default_config(["--algo=reinforce"])
    assert not zoo.uses_default_config(["--algo", "reinforce", "-conf", "my.yml"])
    assert not zoo.uses_default_config(["--algo", "ppo"])


def test_default_config_ships_in_the_wheel(tmp_path):
    """The wheel carries zoo_configs/reinforce.yml, and an installed copy finds it without the checkout."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sb3_reinforce-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "sb3_reinforce/zoo_configs/reinforce.yml" in names
        assert "sb3_reinforce/py.typed" in names
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        assert "sb3-reinforce = sb3_reinforce.cli:main" in entry_points
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True)
    code = "from sb3_reinforce import zoo; print(zoo.default_config_path())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True
    )
    path = Path(out.stdout.strip())
    assert path.is_relative_to(site), out.stdout + out.stderr
    assert path.read_text() == CONFIG.read_text()


ENTRIES = sorted(yaml.safe_load(CONFIG.read_text()))


@pytest.mark.parametrize("env_id", ENTRIES)
def test_every_config_entry_builds_a_model(tmp_path, env_id):
    """Every key of every entry is understood by the zoo or is a valid REINFORCE argument."""
    zoo.register()
    config = CONFIG
    if env_id == "default":
        # An env without an entry of its own gets the default block.
        config = tmp_path / "default_only.yml"
        config.write_text(yaml.safe_dump({"default": yaml.safe_load(CONFIG.read_text())["default"]}))
    manager = ExperimentManager(
        argparse.Namespace(),
        "reinforce",
        "CartPole-v1" if env_id == "default" else env_id,
        str(tmp_path),
        n_timesteps=10,
        eval_freq=-1,
        config=str(config),
        verbose=0,
    )
    model, saved = manager.setup_experiment()  # type: ignore[misc]
    assert isinstance(model, REINFORCE)
    assert model.n_envs == saved["n_envs"]
    assert "n_timesteps" in saved and "policy" in saved
    model.env.close()  # type: ignore[union-attr]


def tuned_entries(text: str) -> set[str]:
    """The entries of a zoo config whose comment block (the comment lines right above them) starts with ``# Tuned``."""
    tuned, block = set(), []
    for line in text.splitlines():
        if line.startswith("#"):
            block.append(line)
            continue
        if line and not line[0].isspace() and line.rstrip().endswith((":", "&mujoco-npg")) and block:
            if block[0].startswith("# Tuned"):
                tuned.add(line.split(":")[0])
        block = []
    return tuned


def test_tuned_entries_are_marked():
    """Every entry docs/tuning.md describes as tuned carries a `# Tuned` comment, and no other entry does."""
    assert tuned_entries("# Tuned (x)\nA-v1:\n  a: 1\n\n# other\nB-v1:\n  b: 1\nC-v1: &anchor\n") == {"A-v1"}
    tuning = (Path(__file__).parents[1] / "docs" / "tuning.md").read_text()
    documented = {line[3:].strip() for line in tuning.splitlines() if line.startswith("## ") and "-v" in line}
    assert documented and tuned_entries(CONFIG.read_text()) == documented


def test_train_enjoy_and_plot(tmp_path):
    """`train --algo reinforce` without -conf uses the package's config; `enjoy` runs the saved agent."""
    out = run_cli(
        "train", "--algo", "reinforce", "--env", "CartPole-v1", "-n", "3000", "--seed", "3", "-f", "logs",
        "--eval-freq", "1000", "--eval-episodes", "2", "--vec-env", "subproc", "-P", cwd=tmp_path,
    )  # fmt: skip
    assert f"Loading hyperparameters from: {CONFIG}" in out.stdout or "zoo_configs/reinforce.yml" in out.stdout
    run_dir = tmp_path / "logs" / "reinforce" / "CartPole-v1_1"
    model = REINFORCE.load(run_dir / "CartPole-v1.zip")
    saved = yaml.load(
        (run_dir / "CartPole-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader
    )  # the zoo writes OrderedDicts
    assert dict(saved)["return_estimator"] == model.return_estimator
    evaluations = np.load(run_dir / "evaluations.npz")
    assert evaluations["results"].shape[1] == 2  # --eval-episodes

    out = run_cli(
        "enjoy", "--algo", "reinforce", "--env", "CartPole-v1", "-f", "logs", "-n", "300", "--no-render", cwd=tmp_path
    )
    assert "Mean reward" in out.stdout or "Episode Reward" in out.stdout
    run_cli("plot_train", "-a", "reinforce", "-e", "CartPole-v1", "-f", "logs/", cwd=tmp_path)


def test_other_zoo_algorithms_use_the_same_command(tmp_path):
    out = run_cli(
        "train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "1000", "-f", "logs", "--eval-freq", "-1", cwd=tmp_path
    )
    assert "hyperparams/a2c.yml" in out.stdout
    assert (tmp_path / "logs" / "a2c" / "CartPole-v1_1" / "CartPole-v1.zip").exists()


def test_hyperparams_override_and_own_config(tmp_path):
    conf = tmp_path / "mine.yml"
    conf.write_text("CartPole-v1:\n  n_envs: 2\n  n_timesteps: 1000\n  policy: MlpPolicy\n  baseline: linear\n")
    run_cli(
        "train", "--algo", "reinforce", "--env", "CartPole-v1", "-conf", str(conf), "-f", "logs", "--eval-freq", "-1",
        "-params", "return_estimator:'total'", "batch_mode:'episodes'", "n_episodes:4", cwd=tmp_path,
    )  # fmt: skip
    model = REINFORCE.load(tmp_path / "logs" / "reinforce" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert (model.baseline, model.return_estimator, model.batch_mode, model.n_episodes, model.n_envs) == (
        "linear", "total", "episodes", 4, 2,
    )  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [
        dict(return_estimator="gae", one_minus_gae_lambda=0.05, n_value_epochs=5, batch_mode="steps", n_steps_pow=6),
        dict(return_estimator="total", baseline="none", batch_mode="episodes", n_episodes=4),
        dict(return_estimator="reward_to_go", baseline="linear", batch_mode="steps", n_steps_pow=5),
        dict(return_estimator="reward_to_go", baseline="value", n_value_epochs=0, batch_mode="episodes", n_episodes=1),
    ],
)
def test_sampler_and_converter_agree(params):
    common = dict(
        learning_rate=1e-3, one_minus_gamma=0.01, normalize_advantage=True, ent_coef=1e-4, max_grad_norm=0.5,
        net_arch="tiny", activation_fn="relu",
    )  # fmt: skip
    trial = FixedTrial({**common, **params})
    sampled = zoo.sample_reinforce_params(trial, n_actions=2, n_envs=1, additional_args={})
    # The zoo re-creates a trial's hyperparameters with the converter from trial.params
    assert zoo.convert_reinforce_params({**common, **params}) == sampled
    model = REINFORCE("MlpPolicy", "CartPole-v1", **sampled)
    assert model.gamma == pytest.approx(0.99)
    if params["return_estimator"] == "gae":
        assert model.baseline == "value"
    if params.get("baseline") == "none":
        assert model.baseline is None


def test_optimize_with_two_workers_sharing_one_study(tmp_path):
    """Two worker processes on one SQLite study: every trial is recorded once, with its own number."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [
        "train", "--algo", "reinforce", "--env", "CartPole-v1", "-n", "1024", "-optimize", "--n-trials", "3",
        "--n-jobs", "1", "--sampler", "random", "--pruner", "none", "--storage", storage, "--study-name", "shared",
        "--n-evaluations", "1", "--eval-episodes", "2", "-f", "logs", "--no-optim-plots",
    ]  # fmt: skip
    env = {**os.environ, "MPLBACKEND": "Agg"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "sb3_reinforce", *args, "--seed", str(seed)], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for seed in (1, 2)
    ]  # fmt: skip
    for worker in workers:
        output, _ = worker.communicate(timeout=900)
        assert worker.returncode == 0, output[-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({t._trial_id for t in trials}) == 6
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert "return_estimator" in study.best_trial.params
    # The best trial re-creates a valid model through the converter, as `--trial-id` does.
    REINFORCE("MlpPolicy", "CartPole-v1", **zoo.convert_reinforce_params(study.best_trial.params))


def test_prepare_storage_retries_while_another_worker_creates_the_tables(monkeypatch, tmp_path):
    """The schema creation that fails while another worker creates the same tables is retried, then succeeds."""
    calls = []
    real = optuna.storages.RDBStorage

    def busy_twice(url: str) -> optuna.storages.RDBStorage:
        calls.append(url)
        if len(calls) <= 2:
            raise RuntimeError("table studies already exists")
        return real(url)

    monkeypatch.setattr(zoo.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(optuna.storages, "RDBStorage", busy_twice)
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    zoo.prepare_storage(storage)
    assert len(calls) == 3
    # A storage that never becomes ready: the last attempt's error comes through
    calls.clear()

    def always_busy(url: str) -> None:
        calls.append(url)
        raise RuntimeError("table studies already exists")

    monkeypatch.setattr(optuna.storages, "RDBStorage", always_busy)
    with pytest.raises(RuntimeError, match="already exists"):
        zoo.prepare_storage(storage, attempts=2)
    assert len(calls) == 2


def test_all_plots_and_plot_from_file(tmp_path):
    """The zoo's aggregate plots over several runs of REINFORCE."""
    for seed in ("1", "2"):
        run_cli(
            "train", "--algo", "reinforce", "--env", "CartPole-v1", "-n", "1024", "--seed", seed, "-f", "logs",
            "--eval-freq", "256", "--eval-episodes", "2", "-params", "batch_mode:'steps'", "n_steps:32", cwd=tmp_path,
        )  # fmt: skip
    out = run_cli(
        "all_plots", "-a", "reinforce", "-e", "CartPole-v1", "-f", "logs/", "-o", "all", "--no-display", cwd=tmp_path
    )
    assert "CartPole-v1" in out.stdout
    run_cli("plot_from_file", "-i", "all.pkl", "-o", "curves", "--format", "png", cwd=tmp_path)
    assert (tmp_path / "curves").stat().st_size > 1000


def test_cli_help_and_unknown_command(capsys):
    from sb3_reinforce.cli import main

    main(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "enjoy", "plot_train", "plot_from_file", "all_plots", "variance"):
        assert command in out
    with pytest.raises(SystemExit, match=r"unknown command 'trian'.*train"):
        main(["trian"])


@pytest.mark.parametrize("trial_id", [None, 0, 1])
def test_train_loads_the_studys_trial(tmp_path, trial_id):
    """
    `train --storage ... --study-name ...` loads the study's best trial, or trial --trial-id (0 included): the zoo itself
    skips both (its check is `if trial_id:`).
    """
    import argparse

    from optuna.distributions import CategoricalDistribution, FloatDistribution

    common = dict(return_estimator="reward_to_go", batch_mode="episodes", n_episodes=4, learning_rate=1e-3,
                  one_minus_gamma=0.01, normalize_advantage=False, ent_coef=1e-4, max_grad_norm=0.5, net_arch="tiny",
                  activation_fn="relu")  # fmt: skip
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    for baseline, value in (("linear", 100.0), ("mean", 300.0)):  # trial 1 is the best
        params = {**common, "baseline": baseline}
        distributions = {key: CategoricalDistribution([v]) for key, v in common.items()}
        distributions["baseline"] = CategoricalDistribution(["linear", "mean"])
        distributions["learning_rate"] = FloatDistribution(1e-5, 1.0)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    zoo.register()
    manager = zoo.ReinforceExperimentManager(
        argparse.Namespace(), "reinforce", "CartPole-v1", str(tmp_path), n_timesteps=1, eval_freq=-1, verbose=0,
        config=zoo.default_config_path(), storage=storage, study_name="s", trial_id=trial_id,
    )  # fmt: skip
    hyperparams, saved = manager.read_hyperparameters()
    expected = "linear" if trial_id == 0 else "mean"
    assert hyperparams["baseline"] == saved["baseline"] == expected
    assert hyperparams["n_episodes"] == 4 and hyperparams["normalize_advantage"] is False


MASK_CONFIG = ROOT / "zoo_configs" / "reinforce_mask.yml"


def test_maskable_algorithm_is_registered_with_its_config_and_envs(tmp_path):
    zoo.register()
    import rl_zoo3.exp_manager

    from sb3_reinforce import MaskableREINFORCE

    assert rl_zoo3.exp_manager.ALGOS["reinforce_mask"] is MaskableREINFORCE
    assert Path(zoo.default_config_path("reinforce_mask")).resolve() == MASK_CONFIG.resolve()
    assert zoo.uses_default_config(["--algo", "reinforce_mask"])
    for env_id in yaml.safe_load(MASK_CONFIG.read_text()):
        if env_id != "default":
            model, _ = zoo.build_model("reinforce_mask", env_id, str(tmp_path))
            assert isinstance(model, MaskableREINFORCE)
            model.env.close()  # type: ignore[union-attr]


def test_maskable_train_evaluates_with_masks_and_tunes(tmp_path):
    """`train --algo reinforce_mask`: evaluations with the env's masks (a policy that ignored them would score near 0
    on this env, where 55 of 60 actions are invalid); `-optimize` runs trials through the masked evaluation."""
    run_cli(
        "train", "--algo", "reinforce_mask", "--env", "InvalidActionDiscrete-v0", "-n", "8000", "--seed", "0",
        "-f", "logs", "--eval-freq", "4000", "--eval-episodes", "3", cwd=tmp_path,
    )  # fmt: skip
    evaluations = np.load(tmp_path / "logs" / "reinforce_mask" / "InvalidActionDiscrete-v0_1" / "evaluations.npz")
    assert evaluations["results"].shape == (2, 3)
    assert evaluations["results"][-1].mean() > 30  # out of 100 (measured: 73.0 at 8,000 steps, seed 0)
    storage = f"sqlite:///{tmp_path / 'mask.db'}"
    run_cli(
        "train", "--algo", "reinforce_mask", "--env", "InvalidActionDiscrete-v0", "-n", "2000", "-optimize",
        "--n-trials", "2", "--n-jobs", "1", "--sampler", "random", "--pruner", "none", "--storage", storage,
        "--study-name", "mask", "--n-evaluations", "1", "--eval-episodes", "2", "-f", "logs", "--no-optim-plots",
        cwd=tmp_path,
    )  # fmt: skip
    trials = optuna.load_study(study_name="mask", storage=storage).get_trials(deepcopy=False)
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value is not None and t.value > 0 for t in trials)  # a masked random policy scores about 100/5 = 20
