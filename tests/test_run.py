"""The SB3 contract: callbacks, VecEnvs, VecNormalize, seeding, progress bar, logging; and the rollout hot path."""

import csv
import glob
import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback, StopTrainingOnMaxEpisodes
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import safe_mean
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.callbacks import GradientStatsCallback
from sb3_reinforce.diagnostics import sample_gradients


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_callbacks_and_early_stop(tmp_path, batch_mode):
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1)
    callbacks = [
        CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"), name_prefix="rl_model"),
        EvalCallback(eval_env, eval_freq=100, n_eval_episodes=2, log_path=str(tmp_path / "eval")),
        StopTrainingOnMaxEpisodes(max_episodes=30),
    ]
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, batch_mode=batch_mode, n_episodes=2, seed=0)
    model.learn(10_000, callback=callbacks)
    # Stopped early by StopTrainingOnMaxEpisodes, long before 10k steps.
    assert model.num_timesteps < 10_000
    assert os.path.exists(tmp_path / "eval" / "evaluations.npz")
    assert glob.glob(str(tmp_path / "ckpt" / "rl_model_*.zip"))


class CountingCallback(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.calls = {"rollout_start": 0, "step": 0, "rollout_end": 0, "training_start": 0, "training_end": 0}

    def _on_training_start(self) -> None:
        self.calls["training_start"] += 1

    def _on_rollout_start(self) -> None:
        self.calls["rollout_start"] += 1

    def _on_step(self) -> bool:
        self.calls["step"] += 1
        return True

    def _on_rollout_end(self) -> None:
        self.calls["rollout_end"] += 1

    def _on_training_end(self) -> None:
        self.calls["training_end"] += 1


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_callback_hooks_are_called_per_env_step(batch_mode):
    callback = CountingCallback()
    model = REINFORCE(
        "MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=32, batch_mode=batch_mode, n_episodes=3
    )
    model.learn(500, callback=callback)
    assert callback.calls["step"] * 2 == model.num_timesteps
    assert callback.calls["rollout_start"] == callback.calls["rollout_end"] == model._n_updates
    assert callback.calls["training_start"] == callback.calls["training_end"] == 1


def test_stop_from_on_step_stops_mid_rollout():
    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            return self.num_timesteps < 10

    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64)
    model.learn(1000, callback=StopAt())
    assert model.num_timesteps == 10
    assert model._n_updates == 0


@pytest.mark.parametrize("baseline", [None, "value"])
def test_vec_normalize(baseline):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), gamma=0.9)
    model = REINFORCE("MlpPolicy", env, n_steps=64, gamma=0.9, baseline=baseline, seed=0).learn(512)
    assert model.get_vec_normalize_env() is env
    assert env.obs_rms.count > 512  # statistics were updated during training


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_subproc_vec_env(batch_mode):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = REINFORCE("MlpPolicy", env, n_steps=32, batch_mode=batch_mode, n_episodes=2, seed=0).learn(300)
        assert model.num_timesteps >= 300
    finally:
        env.close()


@pytest.mark.parametrize("kwargs", [dict(), dict(baseline="linear", batch_mode="episodes"), dict(baseline=None)])
def test_same_seed_same_result(kwargs):
    def train() -> np.ndarray:
        model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=64, seed=42, **kwargs).learn(1000)
        return th.nn.utils.parameters_to_vector(model.policy.parameters()).detach().numpy()

    np.testing.assert_array_equal(train(), train())


def test_different_seeds_differ():
    results = [
        th.nn.utils.parameters_to_vector(
            REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, seed=s).learn(256).policy.parameters()
        )
        for s in (0, 1)
    ]
    assert not th.allclose(results[0], results[1])


def test_progress_bar(capsys):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64).learn(256, progress_bar=True)
    assert model.num_timesteps == 256
    assert "256/256" in capsys.readouterr().out  # the bar's final count


def test_tensorboard_logs(tmp_path):
    model = REINFORCE("MlpPolicy", "Pendulum-v1", n_steps=64, tensorboard_log=str(tmp_path), seed=0)
    model.learn(512, tb_log_name="run")
    event_files = glob.glob(str(tmp_path / "run_1" / "events.out.tfevents.*"))
    assert event_files
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(event_files[0])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for key in [
        "train/policy_loss",
        "train/value_loss",
        "train/entropy_loss",
        "train/explained_variance",
        "train/approx_kl",
        "train/std",
        "train/grad_norm",
        "rollout/ep_rew_mean",
        "rollout/discarded_steps",
    ]:
        assert key in tags, key


@pytest.mark.parametrize("baseline", [None, "mean", "linear", "value"])
def test_logged_keys(tmp_path, baseline):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=256, baseline=baseline, seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(1024)
    with open(tmp_path / "progress.csv") as file:
        columns = set(csv.DictReader(file).fieldnames or [])
    expected = {
        "train/policy_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/grad_norm",
        "train/learning_rate",
        "rollout/ep_rew_mean",
        "rollout/discarded_steps",
        "time/fps",
    }
    assert expected <= columns
    assert ("train/value_loss" in columns) == (baseline == "value")
    # Every per-step baseline's explained variance is logged: 0 for no baseline, which explains nothing
    assert "train/explained_variance" in columns
    if baseline is None:
        assert model.logger.name_to_value["train/explained_variance"] == 0.0


def test_approx_kl_is_measured_after_the_update():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=128, learning_rate=1e-2, seed=0).learn(512)
    assert model.logger.name_to_value["train/approx_kl"] > 0


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
@pytest.mark.parametrize("baseline", [None, "mean", "linear", "optimal", "loo"])
def test_no_value_forward_pass_without_value_baseline(monkeypatch, batch_mode, baseline):
    if baseline == "loo" and batch_mode == "steps":
        pytest.skip("the leave-one-out baseline needs whole-episode batches")
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, batch_mode=batch_mode, baseline=baseline, n_episodes=2,
                      normalize_advantage=baseline != "optimal")  # fmt: skip
    critic_before = [p.detach().clone() for p in model.policy.value_net.parameters()]

    def forbidden(*args, **kwargs):
        raise AssertionError("the value head was evaluated")

    monkeypatch.setattr(model.policy, "predict_values", forbidden)
    monkeypatch.setattr(model.policy, "forward", forbidden)
    monkeypatch.setattr(model.policy, "evaluate_actions", forbidden)
    monkeypatch.setattr(model.policy.mlp_extractor, "forward_critic", forbidden)
    model.learn(512)
    for before, after in zip(critic_before, model.policy.value_net.parameters(), strict=True):
        assert th.equal(before, after), "the value head was trained"


def test_set_env_and_continue():
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=32).learn(128)
    model.set_env(make_vec_env("CartPole-v1", n_envs=2, seed=3))
    model.learn(128, reset_num_timesteps=False)
    assert model.num_timesteps >= 256


class NaNEnv(gym.Env):
    """Finite for ``bad_step`` steps, then returns a NaN reward or observation (``bad_step=0``: from the reset)."""

    def __init__(self, what: str, bad_step: int = 5, box_actions: bool = False, bad_value: float = np.inf) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32) if box_actions else gym.spaces.Discrete(2)
        self.what, self.bad_step, self.bad_value, self.t = what, bad_step, bad_value, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs = np.zeros(4, np.float32)
        if self.bad_step == 0 and self.what == "observation":
            obs[2] = self.bad_value
        return obs, {}

    def step(self, action):
        self.t += 1
        obs, reward = np.zeros(4, np.float32), 1.0
        if self.t >= self.bad_step:
            if self.what == "reward":
                reward = float("inf")
            else:
                obs[1] = np.nan
        return obs, reward, False, False, {}


@pytest.mark.parametrize("what", ["reward", "observation"])
def test_non_finite_env_output_stops_training(what):
    env = DummyVecEnv([lambda: gym.make("CartPole-v1"), lambda: NaNEnv(what)])
    model = REINFORCE("MlpPolicy", env, n_steps=16)
    with pytest.raises(ValueError, match=rf"Env 1 returned a non-finite {what}.*step 4 of the rollout"):
        model.learn(1000)


@pytest.mark.parametrize("box_actions", [False, True])
@pytest.mark.parametrize("validate", [True, False])
def test_non_finite_observation_is_named_however_the_policy_meets_it(box_actions, validate):
    """
    Found when the policy's distribution rejects it (validation on), when sampling fails (Categorical without
    validation), or by the check after the rollout (a Gaussian policy without validation samples NaN actions).
    """
    env = DummyVecEnv([lambda: gym.make("CartPole-v1"), lambda: NaNEnv("observation", box_actions=box_actions)])
    if box_actions:
        envs = [NaNEnv("observation", bad_step=100, box_actions=True), NaNEnv("observation", box_actions=True)]
        env = DummyVecEnv([lambda: envs[0], lambda: envs[1]])
    model = REINFORCE("MlpPolicy", env, n_steps=16)
    previous = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(validate)
    try:
        with pytest.raises(ValueError, match=r"Env 1 returned a non-finite observation at step 4 of the rollout"):
            model.learn(1000)
    finally:
        th.distributions.Distribution.set_default_validate_args(previous)


@pytest.mark.parametrize("bad_value", [np.inf, np.nan])
def test_non_finite_observation_on_reset(bad_value):
    """inf saturates the policy's tanh (the check after the rollout finds it); NaN fails the very first step."""
    env = DummyVecEnv([lambda: gym.make("CartPole-v1"), lambda: NaNEnv("observation", bad_step=0, bad_value=bad_value)])
    with pytest.raises(ValueError, match=r"Env 1 returned a non-finite observation on reset, before step 0 of the rollout"):
        REINFORCE("MlpPolicy", env, n_steps=16).learn(1000)


def test_non_finite_dict_observation_is_named():
    class DictNaNEnv(gym.Wrapper):
        def __init__(self) -> None:
            super().__init__(NaNEnv("observation"))
            self.observation_space = gym.spaces.Dict({"fine": gym.spaces.Discrete(3), "state": self.env.observation_space})

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            return {"fine": 0, "state": obs}, info

        def step(self, action):
            obs, *rest = self.env.step(action)
            return {"fine": 1, "state": obs}, *rest

    env = DummyVecEnv([lambda: DictNaNEnv(), lambda: DictNaNEnv()])
    with pytest.raises(ValueError, match=r"Env 0 returned a non-finite observation 'state' at step 4 of the rollout"):
        REINFORCE("MultiInputPolicy", env, n_steps=16).learn(1000)


class HugeRewardEnv(gym.Env):
    """Finite float32 rewards of 3e38, whose returns overflow float32 in the loss."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 3e38, self.t >= 4, False, {}


@pytest.mark.parametrize("baseline", [None, "value"])
def test_non_finite_loss_stops_training(baseline):
    model = REINFORCE("MlpPolicy", HugeRewardEnv(), n_steps=8, baseline=baseline, seed=0)
    with pytest.raises(FloatingPointError, match=r"The loss is (nan|inf)"):
        model.learn(64)


def test_learn_leaves_the_process_as_it_found_it(monkeypatch):
    """No thread-count change, no child process, no thread left running, no global torch setting switched."""
    import multiprocessing
    import threading

    switched: list[bool] = []
    monkeypatch.setattr(th.distributions.Distribution, "set_default_validate_args", staticmethod(switched.append))
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=64, baseline="optimal",
                      normalize_advantage=False, seed=0)  # fmt: skip
    model.learn(128, callback=GradientStatsCallback())  # torch's own thread pools start here, if at all
    threads, python_threads = th.get_num_threads(), set(threading.enumerate())
    tasks = set(os.listdir(f"/proc/{os.getpid()}/task")) if os.path.exists("/proc") else set()
    model.learn(512, callback=GradientStatsCallback(), reset_num_timesteps=False)
    sample_gradients(model, 4)
    assert th.get_num_threads() == threads
    assert switched == []  # distribution argument checks stay as the user set them, for every thread
    assert th.is_grad_enabled()
    assert not multiprocessing.active_children()
    assert set(threading.enumerate()) == python_threads
    if tasks:  # no operating-system thread started by the second run either
        assert set(os.listdir(f"/proc/{os.getpid()}/task")) <= tasks


def test_learning_rate_schedule():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, learning_rate=lambda progress: 1e-3 * progress).learn(640)
    assert model.logger.name_to_value["train/learning_rate"] < 1e-3 / 2


def test_episodes_mode_logs_discarded_fraction():
    """Six episodes on four envs: two envs start a second batch episode, the others' second episodes are discarded."""

    class AtRolloutEnd(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            batch = self.model.rollout_buffer.batch
            used.append((len(batch) / batch.rollout_steps, batch.n_segments))

        def _on_rollout_start(self) -> None:  # after the previous batch's update, which logs it
            if used:
                logged.append(self.logger.name_to_value["rollout/discarded_steps"])

    used: list[tuple[float, int]] = []
    logged: list[float] = []
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4), batch_mode="episodes", n_episodes=6, seed=0)
    model.learn(1000, callback=AtRolloutEnd())
    assert len(logged) >= 2
    for discarded, (fraction, n_episodes) in zip(logged, used, strict=False):
        assert discarded == pytest.approx(1.0 - fraction) and 0.0 < discarded < 1.0
        assert n_episodes == 6


@pytest.mark.slow
def test_learns_cartpole_quickly():
    """
    A quick learning smoke test: in 30k steps with the defaults, the training episodes' mean return (stochastic
    policy, last 100 episodes) climbs far above a uniformly random policy's (about 22); seeds 0-2 give 72-77.
    """
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0).learn(30_000)
    assert model.ep_info_buffer is not None
    assert safe_mean([info["r"] for info in model.ep_info_buffer]) > 50


def test_default_optimizer_is_sb3s(tmp_path):
    """SB3's default optimizer (Adam, eps=1e-5, not fused); a user's choice is kept as given."""
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=16, seed=0)
    group = model.policy.optimizer.param_groups[0]
    assert type(model.policy.optimizer) is th.optim.Adam and group["eps"] == 1e-5 and not group["fused"]
    sgd = REINFORCE("MlpPolicy", "CartPole-v1", policy_kwargs=dict(optimizer_class=th.optim.SGD), seed=0)
    assert isinstance(sgd.policy.optimizer, th.optim.SGD)
    fused = REINFORCE("MlpPolicy", "CartPole-v1", policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5, fused=True)), seed=0)
    assert fused.policy.optimizer.param_groups[0]["fused"] is True


class _ModeRecordingExtractor(th.nn.Module):
    """A features extractor that overrides ``train`` (as modules with frozen statistics do)."""

    def __init__(self, observation_space, features_dim: int = 4) -> None:
        super().__init__()
        self.features_dim = features_dim
        self.modes: list[bool] = []

    def train(self, mode: bool = True):
        self.modes.append(mode)
        return super().train(mode)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return obs


@pytest.mark.parametrize("custom", [False, True])
def test_training_mode_switch(custom):
    """Rollouts run in eval mode and updates in training mode, on every module; custom ``train`` methods are called."""
    policy_kwargs = dict(features_extractor_class=_ModeRecordingExtractor) if custom else None
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=policy_kwargs, seed=0)
    modes: list[tuple[bool, ...]] = []
    original_train = model.train

    def spy_train() -> None:
        modes.append(tuple(module.training for module in model.policy.modules()))
        original_train()
        modes.append(tuple(module.training for module in model.policy.modules()))

    model.train = spy_train  # type: ignore[method-assign]
    model.learn(64)
    # Before each update: every module in eval mode (set by the rollout); after it: every module in training mode.
    assert modes and all(not any(m) for m in modes[::2]) and all(all(m) for m in modes[1::2])
    if custom:
        extractor = model.policy.features_extractor
        assert extractor.modes[-2:] == [False, True] and len(extractor.modes) >= len(modes)  # twice per update
