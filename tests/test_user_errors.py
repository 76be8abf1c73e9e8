"""What a user meets in the first hour: clear failures, warnings instead of refusals, SB3's contracts kept."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.callbacks import GradientStatsCallback
from sb3_reinforce.diagnostics import sample_gradients
from sb3_reinforce.reinforce import reinforce as reinforce_module


class EndlessEnv(gym.Env):
    """Episodes that never end (no TimeLimit)."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


@pytest.mark.parametrize("n_envs, n_episodes, rows", [(8, 2, 200), (2, 5, 600)])
def test_endless_episodes_in_episode_batches_are_refused(monkeypatch, n_envs, n_episodes, rows):
    """
    The rollout stops with an error that names TimeLimit once each env has run MAX_EPISODE_STEPS (here 200) steps for
    each episode it may have to play, whatever the learning budget (a diagnostic's rollout has none).
    """
    monkeypatch.setattr(reinforce_module, "MAX_EPISODE_STEPS", 200)
    model = REINFORCE("MlpPolicy", make_vec_env(EndlessEnv, n_envs=n_envs), batch_mode="episodes", n_episodes=n_episodes)
    message = rf"each env ran {rows + 1} steps.*{min(n_envs, n_episodes)} of its n_episodes={n_episodes} .*TimeLimit"
    with pytest.raises(RuntimeError, match=message):
        model.learn(10)


def test_steps_batches_without_finished_episode_warn():
    model = REINFORCE("MlpPolicy", EndlessEnv(), n_steps=64, baseline=None)
    with pytest.warns(UserWarning, match=r"No episode ended in the last rollout of 64 steps.*no update was made"):
        model.learn(128)
    assert model._n_updates == 0


def test_loading_another_algorithms_file_names_it(tmp_path):
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64).save(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match=r"was not saved by REINFORCE but by PPO"):
        REINFORCE.load(tmp_path / "ppo.zip")


def test_load_with_the_policy_kwargs_the_model_was_built_with(tmp_path):
    policy_kwargs = dict(net_arch=dict(pi=[16], vf=[16]))
    REINFORCE("MlpPolicy", "CartPole-v1", policy_kwargs=policy_kwargs, n_steps=32).learn(64).save(tmp_path / "m.zip")
    loaded = REINFORCE.load(tmp_path / "m.zip", policy_kwargs=policy_kwargs)
    assert loaded.policy_kwargs == policy_kwargs


def test_batches_of_one_step_warn_instead_of_refusing():
    with pytest.warns(UserWarning, match=r"normalize_advantage=True has no effect with n_steps=1"):
        model = REINFORCE("MlpPolicy", "Pendulum-v1", n_steps=1, seed=0)
    before = th.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    model.learn(8)
    assert model._n_updates == 8
    assert not th.equal(before, th.nn.utils.parameters_to_vector(model.policy.parameters()))


def test_sb3s_rollout_buffer_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"rollout_buffer_class=.*RolloutBuffer.*which SB3's RolloutBuffer does not"):
        REINFORCE("MlpPolicy", "CartPole-v1", rollout_buffer_class=RolloutBuffer)


class BatchNormExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: gym.spaces.Box) -> None:
        super().__init__(observation_space, features_dim=8)
        self.net = th.nn.Sequential(th.nn.Linear(observation_space.shape[0], 8), th.nn.BatchNorm1d(8), th.nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


@pytest.mark.parametrize("baseline", ["optimal", "value"])
def test_per_step_gradients_with_batch_norm_and_extractor_parameters(baseline):
    """
    The per-episode gradients (optimal baseline, GradientStatsCallback, sample_gradients) work with a BatchNorm layer
    and a features extractor with parameters, shared by the actor and V, and every parameter still trains.
    """
    policy_kwargs = dict(features_extractor_class=BatchNormExtractor)
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=64, baseline=baseline,
                      normalize_advantage=False, policy_kwargs=policy_kwargs, seed=0)  # fmt: skip
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    model.learn(512, callback=GradientStatsCallback())
    optimized = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.policy.parameters()}  # none replaced by a copy
    for name, param in model.policy.named_parameters():
        # The bias before BatchNorm has no gradient (the normalisation removes it); V only trains with its baseline
        if name != "features_extractor.net.0.bias" and (baseline == "value" or "value_net" not in name):
            assert not th.equal(before[name], param.detach()), f"{name} did not move"
    per_episode = sample_gradients(model, 4)
    assert "features_extractor.net.0.weight" in per_episode
    assert all(th.isfinite(g).all() for g in per_episode.values())


def test_sample_gradients_progress_bar(capsys):
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0)
    sample_gradients(model, 6, progress_bar=True)
    assert "6/6" in capsys.readouterr().err


def test_commands_name_the_missing_extra():
    """Without optuna (the zoo extra), a zoo command exits with a message naming the extra, not a traceback."""
    code = "import sys; sys.modules['optuna'] = None; from sb3_reinforce.cli import main; main(['train', '--help'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "sb3-reinforce train needs the 'zoo' extra" in result.stderr and "pip install 'sb3-reinforce[zoo]'" in result.stderr
    assert "Traceback" not in result.stderr
    help_code = "import sys; sys.modules['optuna'] = None; from sb3_reinforce.cli import main; main(['--help'])"
    assert "commands:" in subprocess.run([sys.executable, "-c", help_code], capture_output=True, text=True).stdout
