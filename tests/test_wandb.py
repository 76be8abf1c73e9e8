"""Weights & Biases, offline: `--track` through the zoo CLI, and the Python recipe. No test touches the network."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sb3_reinforce import REINFORCE

wandb = pytest.importorskip("wandb")
from tests.wandb_records import read_offline_run  # noqa: E402  (needs wandb)

REINFORCE_METRICS = [
    "train/policy_loss", "train/value_loss", "train/entropy_loss", "train/explained_variance", "train/approx_kl",
    "train/grad_norm", "train/learning_rate", "rollout/ep_rew_mean", "rollout/discarded_steps",
]  # fmt: skip
HYPERPARAMETERS = ["return_estimator", "baseline", "batch_mode", "n_episodes", "gamma", "gae_lambda", "discount_score",
                   "normalize_advantage", "n_value_epochs", "ent_coef", "vf_coef", "n_steps", "learning_rate"]  # fmt: skip


def offline_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true", "MPLBACKEND": "Agg"}


def the_run(tmp_path: Path) -> Path:
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    return run_dir


def test_track_from_the_zoo_cli(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sb3_reinforce", "train", "--algo", "reinforce", "--env", "CartPole-v1", "-n", "4096",
         "-f", "logs", "--eval-freq", "1024", "--eval-episodes", "2", "--track", "--wandb-project-name", "offline-test",
         "-params", "return_estimator:'reward_to_go'", "baseline:'linear'", "n_steps:128"],
        cwd=tmp_path, env=offline_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = read_offline_run(the_run(tmp_path))
    assert run.finished
    for key in [m for m in REINFORCE_METRICS if m != "train/value_loss"] + ["eval/mean_reward"]:
        assert key in run.history, key
    for key in [*HYPERPARAMETERS, "algo", "env", "seed"]:
        assert key in run.config, key
    assert json.loads(run.config["baseline"]) == "linear"
    assert json.loads(run.config["algo"]) in ("reinforce", "REINFORCE")
    assert "CartPole-v1.zip" in run.files
    assert any(f.endswith("config.yml") for f in run.files)
    # The saved model is the trained REINFORCE agent.
    saved = the_run(tmp_path) / "files" / "CartPole-v1.zip"
    assert REINFORCE.load(saved).baseline == "linear"


def test_python_recipe(tmp_path, monkeypatch):
    """The documented recipe: wandb.init(sync_tensorboard=True) + WandbCallback."""
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    from wandb.integration.sb3 import WandbCallback

    run = wandb.init(project="offline-test", config={"env_id": "CartPole-v1"}, sync_tensorboard=True, dir=tmp_path)
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=256, tensorboard_log=str(tmp_path / "runs" / run.id), seed=0)
    model.learn(2048, callback=WandbCallback(model_save_path=str(tmp_path / "models" / run.id)))
    run.finish()
    wandb.teardown()  # stop W&B's service process, which writes the run's file

    record = read_offline_run(the_run(tmp_path))
    assert record.finished
    for key in REINFORCE_METRICS:
        assert key in record.history, key
    assert len(record.history["train/explained_variance"]) >= 4
    for key in [*HYPERPARAMETERS, "algo", "env_id"]:
        assert key in record.config, key
    assert json.loads(record.config["algo"]) == "REINFORCE"
    assert "model.zip" in record.files
