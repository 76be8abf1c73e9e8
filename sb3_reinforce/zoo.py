"""
RL Baselines3 Zoo plugin: registers REINFORCE as ``--algo reinforce`` and MaskableREINFORCE as ``--algo
reinforce_mask``, each with its own hyperparameter file, REINFORCE's Optuna sampler and converter, and Weights &
Biases tracking of the model's hyperparameters and final files. With ``reinforce_mask`` the evaluations (training's
and tuning's) use the env's action masks, through sb3-contrib's maskable ``evaluate_policy``; the maskable envs of
sb3-contrib are registered as ``InvalidActionDiscrete-v0`` and ``InvalidActionMultiDiscrete-v0``.

Registration mutates the zoo's own registries (``rl_zoo3.ALGOS``, ``HYPERPARAMS_SAMPLER``,
``HYPERPARAMS_CONVERTER``), which every zoo module shares by reference, so that every zoo command and every other
zoo algorithm keep working unchanged.
"""

import argparse
import contextlib
import os
import time
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
import rl_zoo3
import rl_zoo3.enjoy
import rl_zoo3.exp_manager
import rl_zoo3.hyperparams_opt
import rl_zoo3.train as zoo_train
import rl_zoo3.utils
from rl_zoo3.callbacks import TrialEvalCallback
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.hyperparams_opt import convert_onpolicy_params
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from sb3_contrib.common.maskable.evaluation import evaluate_policy as maskable_evaluate_policy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import sync_envs_normalization

from sb3_reinforce.common.baselines import BASELINES
from sb3_reinforce.common.returns import RETURN_ESTIMATORS
from sb3_reinforce.reinforce import REINFORCE
from sb3_reinforce.reinforce_mask import MaskableREINFORCE

ALGO_NAME = "reinforce"
MASK_ALGO_NAME = "reinforce_mask"
ALGORITHMS: dict[str, type[REINFORCE]] = {ALGO_NAME: REINFORCE, MASK_ALGO_NAME: MaskableREINFORCE}

# sb3-contrib's envs with invalid actions, registered for the zoo's commands: reward 1 for naming the state (the
# observation), most actions invalid at each step, 100 steps per episode
MASKED_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "InvalidActionDiscrete-v0": ("sb3_contrib.common.envs:InvalidActionEnvDiscrete", dict(dim=60, n_invalid_actions=55)),
    "InvalidActionMultiDiscrete-v0": (
        "sb3_contrib.common.envs:InvalidActionEnvMultiDiscrete",
        dict(dims=[30, 30], n_invalid_actions=54),
    ),
}


# The registry name of the policy's value head as baseline (what a return estimator that needs V(s) is given)
VALUE_BASELINE = "value"


def default_config_path(algo: str = ALGO_NAME) -> str:
    """Path of the package's ``reinforce.yml`` or ``reinforce_mask.yml`` (the repository's ``zoo_configs/``)."""
    return str(resources.files("sb3_reinforce.zoo_configs").joinpath(f"{algo}.yml"))


def convert_reinforce_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the values an Optuna trial sampled (``trial.params``) into REINFORCE constructor arguments.

    Shares the zoo's on-policy conversion (``one_minus_gamma``, ``one_minus_gae_lambda``, ``net_arch``,
    ``activation_fn``, ``n_steps_pow``) and adds REINFORCE's own: ``baseline="none"`` becomes ``None``, and
    ``return_estimator="gae"`` implies ``baseline="value"``.
    """
    params = dict(sampled_params)
    params.setdefault("one_minus_gae_lambda", 0.05)
    if RETURN_ESTIMATORS[params.get("return_estimator", "reward_to_go")].needs_value_function:
        params["baseline"] = VALUE_BASELINE
    if params.get("baseline") == "none":
        params["baseline"] = None
    return convert_onpolicy_params(params)


def sample_reinforce_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Optuna sampler of REINFORCE's hyperparameters: return estimator, baseline, batch mode and size, learning
    rate, gamma, GAE lambda, advantage normalisation, entropy, value-function fitting, clipping, network.

    Parameters that only matter for some choices have names of their own (``n_steps_pow`` for step batches,
    ``n_episodes`` for episode batches, ``baseline`` unless the estimator is GAE, ...), so that each name always has
    the same set of choices, as Optuna's samplers require.
    """
    sampled: dict[str, Any] = {}
    estimator = trial.suggest_categorical("return_estimator", ["reward_to_go", "gae", "total"])
    sampled["return_estimator"] = estimator
    if RETURN_ESTIMATORS[estimator].needs_value_function:
        baseline = VALUE_BASELINE
        sampled["one_minus_gae_lambda"] = trial.suggest_float("one_minus_gae_lambda", 0.001, 0.2, log=True)
    else:
        baseline = trial.suggest_categorical("baseline", ["none", "mean", VALUE_BASELINE, "linear"])
        sampled["baseline"] = baseline
    if baseline != "none" and BASELINES[baseline].needs_value_function:
        sampled["n_value_epochs"] = trial.suggest_categorical("n_value_epochs", [0, 5, 10, 20, 40])

    batch_mode = trial.suggest_categorical("batch_mode", ["steps", "episodes"])
    sampled["batch_mode"] = batch_mode
    if batch_mode == "steps":
        sampled["n_steps_pow"] = trial.suggest_int("n_steps_pow", 5, 11)
    else:
        sampled["n_episodes"] = trial.suggest_categorical("n_episodes", [1, 2, 4, 8, 16, 32])

    sampled["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True)
    sampled["one_minus_gamma"] = trial.suggest_float("one_minus_gamma", 1e-4, 0.05, log=True)
    sampled["normalize_advantage"] = trial.suggest_categorical("normalize_advantage", [True, False])
    sampled["ent_coef"] = trial.suggest_float("ent_coef", 1e-8, 0.01, log=True)
    sampled["max_grad_norm"] = trial.suggest_float("max_grad_norm", 0.3, 5.0, log=True)
    sampled["net_arch"] = trial.suggest_categorical("net_arch", ["tiny", "small", "medium"])
    sampled["activation_fn"] = trial.suggest_categorical("activation_fn", ["tanh", "relu"])

    trial.set_user_attr("gamma", 1 - sampled["one_minus_gamma"])
    return convert_reinforce_params(sampled)


class ReinforceExperimentManager(ExperimentManager):
    """
    The zoo's experiment manager, plus Weights & Biases tracking when a run is active (``--track``): the model's
    hyperparameters go into the run's config (through ``wandb.integration.sb3.WandbCallback``), and the final
    model, its ``VecNormalize`` statistics, the zoo's ``config.yml`` and the ``Monitor`` episode logs become files of
    the run. Without an active run it behaves exactly as the zoo's.
    """

    def create_callbacks(self) -> None:
        super().create_callbacks()
        if self.algo == MASK_ALGO_NAME:  # the same evaluation, with the env's action masks
            self.callbacks = [
                _maskable(callback) if type(callback) is EvalCallback else callback for callback in self.callbacks
            ]
        wandb = _active_wandb()
        if wandb is not None and not self.optimize_hyperparameters:
            from wandb.integration.sb3 import WandbCallback

            self.callbacks.append(WandbCallback(verbose=0))

    def save_trained_model(self, model: BaseAlgorithm) -> None:
        super().save_trained_model(model)
        wandb = _active_wandb()
        if wandb is None:
            return
        # One wandb.save per pattern (W&B prints one line per call): the model, the zoo's parameter files (config.yml,
        # args.yml, vecnormalize.pkl), and the Monitor episode logs
        patterns = [
            Path(self.save_path) / f"{self.env_name}.zip",
            Path(self.params_path) / "*",
            Path(self.save_path) / "*.monitor.csv",
        ]
        for pattern in patterns:
            if any(Path(self.save_path).glob(str(pattern.relative_to(self.save_path)))):
                wandb.save(str(pattern), base_path=self.save_path, policy="now")

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """
        The zoo's, plus the Optuna study's hyperparameters when ``--storage`` and ``--study-name`` are given without
        ``-optimize``: the trial ``--trial-id`` (0 included, which the zoo skips), or the best trial without it (the
        zoo then loads none).
        """
        hyperparams, saved = super().read_hyperparameters()
        zoo_loaded = self.storage and self.study_name and self.trial_id
        if self.storage and self.study_name and not zoo_loaded and not self.optimize_hyperparameters:
            trial = "the best trial" if self.trial_id is None else f"trial {self.trial_id}"
            print(f"Loading {trial} of the Optuna study {self.study_name!r}")
            hyperparams.update(self.load_trial(self.storage, self.study_name, self.trial_id))
            if self.custom_hyperparams is not None:
                hyperparams.update(self.custom_hyperparams)
            saved = OrderedDict((key, hyperparams[key]) for key in sorted(hyperparams))
        return hyperparams, saved


def _maskable(callback: EvalCallback) -> MaskableEvalCallback:
    """sb3-contrib's ``MaskableEvalCallback`` with the settings of the zoo's ``EvalCallback``."""
    return MaskableEvalCallback(
        callback.eval_env, callback_on_new_best=callback.callback_on_new_best, n_eval_episodes=callback.n_eval_episodes,
        eval_freq=callback.eval_freq, log_path=callback.log_path and os.path.dirname(callback.log_path),
        best_model_save_path=callback.best_model_save_path, deterministic=callback.deterministic,
    )  # fmt: skip


class MaskAwareTrialEvalCallback(TrialEvalCallback):
    """The zoo's tuning evaluation; for MaskableREINFORCE, with the env's action masks (sb3-contrib's evaluation)."""

    def _on_step(self) -> bool:
        if not isinstance(self.model, MaskableREINFORCE):
            return super()._on_step()
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            sync_envs_normalization(self.training_env, self.eval_env)
            rewards, _ = maskable_evaluate_policy(
                self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes,  # type: ignore[arg-type]
                deterministic=self.deterministic, return_episode_rewards=True, warn=self.warn,
            )  # fmt: skip
            self.last_mean_reward = float(np.mean(rewards))
            self.eval_idx += 1
            self.trial.report(self.last_mean_reward, self.eval_idx)
            if self.trial.should_prune():
                self.is_pruned = True
                return False
        return True


def register_masked_envs() -> None:
    """Register :data:`MASKED_ENVS` with Gymnasium (once)."""
    for env_id, (entry_point, kwargs) in MASKED_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=100)


def _active_wandb() -> Any:
    """The ``wandb`` module when a run is active, else None (wandb is an optional dependency)."""
    try:
        import wandb
    except ImportError:
        return None
    return wandb if wandb.run is not None else None


def build_model(
    algo: str,
    env_id: str,
    log_folder: str,
    hyperparams: dict[str, Any] | None = None,
    config: str | None = None,
    vec_env_type: str = "dummy",
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """
    A model as ``train --algo ALGO --env ENV -params ...`` would build it: the zoo config (the package's for
    REINFORCE when ``config`` is None) with ``hyperparams`` on top, through the zoo's own preprocessing (``lin_``
    schedules, ``policy_kwargs`` strings, normalisation, wrappers). Nothing is trained; the zoo's output is silenced.

    :return: the model and the hyperparameters the zoo saved for it
    """
    register()
    if config is None and algo in ALGORITHMS:
        config = default_config_path(algo)
    manager = ExperimentManager(
        argparse.Namespace(), algo, env_id, log_folder, n_timesteps=1, eval_freq=-1, hyperparams=hyperparams,
        config=config, verbose=0, vec_env_type=vec_env_type,
    )  # fmt: skip
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        result = manager.setup_experiment()
    assert result is not None  # None only when optimizing hyperparameters
    return result


def register() -> None:
    """Make ``--algo reinforce`` known to every zoo command. Idempotent."""
    # The zoo modules import these registries by name; set the entry in each of them, so that a zoo release that
    # copies a registry instead of sharing it still sees REINFORCE.
    for name, algorithm in ALGORITHMS.items():
        for module in (rl_zoo3, rl_zoo3.utils, zoo_train, rl_zoo3.enjoy, rl_zoo3.exp_manager):
            module.ALGOS[name] = algorithm
        for module in (rl_zoo3.hyperparams_opt, rl_zoo3.exp_manager):
            module.HYPERPARAMS_SAMPLER[name] = sample_reinforce_params
            module.HYPERPARAMS_CONVERTER[name] = convert_reinforce_params
    zoo_train.ExperimentManager = ReinforceExperimentManager  # type: ignore[misc]
    rl_zoo3.exp_manager.TrialEvalCallback = MaskAwareTrialEvalCallback  # type: ignore[misc]
    register_masked_envs()


def prepare_storage(storage: str, attempts: int = 5) -> None:
    """
    Create the tables of an Optuna database storage, tolerating other workers doing the same at the same moment.

    Optuna protects the creation of a study against concurrent workers (``load_if_exists=True``), but not the
    creation of the database schema: two workers that start together on a new SQLite file can both try to create
    its tables, and one fails. Retrying sees the tables the other worker made. Journal files (``.log``) need nothing.
    """
    if storage.endswith(".log"):
        return
    for attempt in range(attempts):
        try:
            optuna.storages.RDBStorage(storage)
            return
        except Exception:  # sqlalchemy's OperationalError, or optuna's wrapping of it
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def option_value(argv: list[str], *names: str) -> str | None:
    """The value of a command-line option given as ``NAME VALUE`` or ``NAME=VALUE`` (the last one wins)."""
    value = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def uses_default_config(argv: list[str]) -> bool:
    """Whether a ``train`` command line runs REINFORCE (or MaskableREINFORCE) without its own ``-conf``/``--conf-file``."""
    has_conf = option_value(argv, "-conf", "--conf-file") is not None
    return option_value(argv, "--algo") in ALGORITHMS and not has_conf
