"""learn/predict on every action and observation space REINFORCE supports, with every baseline."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.scores import parameters_used_by


def learn_and_check(model: REINFORCE, steps: int) -> REINFORCE:
    """learn(), then check that updates were made and that every parameter log pi depends on moved."""
    actor = set(parameters_used_by(model.policy, "actor"))
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters() if name in actor}
    model.learn(steps)
    assert model._n_updates > 0
    # The optimizer still holds the policy's own parameters (none was replaced by a copy)
    optimized = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.policy.parameters()}
    for name, param in model.policy.named_parameters():
        if name in before:
            assert not th.equal(before[name], param.detach()), f"{name} did not move"
    return model


class DiscreteObsEnv(gym.Env):
    """A chain with Discrete observations, reward 1 for action 1."""

    def __init__(self) -> None:
        self.observation_space = spaces.Discrete(4)
        self.action_space = spaces.Discrete(2)
        self.state = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return self.state, {}

    def step(self, action):
        self.state = min(self.state + 1, 3)
        return self.state, float(action), self.state == 3, False, {}


ACTION_ENVS = {
    "Discrete": lambda: IdentityEnv(4, ep_length=10),
    "Box": lambda: IdentityEnvBox(ep_length=10),
    "MultiDiscrete": lambda: IdentityEnvMultiDiscrete(3, ep_length=10),
    "MultiBinary": lambda: IdentityEnvMultiBinary(3, ep_length=10),
}


@pytest.mark.parametrize("action_space", list(ACTION_ENVS))
@pytest.mark.parametrize("baseline", [None, "mean", "value", "linear", "optimal", "loo"])
@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_action_spaces(action_space, baseline, batch_mode):
    if baseline == "loo" and batch_mode == "steps":
        pytest.skip("the leave-one-out baseline needs whole-episode batches")
    env = make_vec_env(ACTION_ENVS[action_space], n_envs=2, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=16, n_episodes=3, batch_mode=batch_mode, baseline=baseline,
                      normalize_advantage=baseline != "optimal", seed=0)  # fmt: skip
    learn_and_check(model, 200)
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action[0])


@pytest.mark.parametrize("baseline", [None, "value", "linear"])
def test_discrete_observations(baseline):
    model = learn_and_check(REINFORCE("MlpPolicy", DiscreteObsEnv(), n_steps=16, baseline=baseline, seed=0), 100)
    assert model.predict(0)[0] in (0, 1)


@pytest.mark.parametrize("baseline", [None, "value", "mean", "optimal", "optimal_scalar"])
@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_image_observations_cnn(baseline, batch_mode):
    """Every parameter of a CNN policy, its features extractor included, moves under every baseline."""
    # Reward 1 per step and episodes of 6 steps, so that Psi_t varies and every update has a gradient
    image_env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    env = gym.wrappers.TimeLimit(gym.wrappers.TransformReward(image_env, lambda r: 1.0), max_episode_steps=6)
    model = REINFORCE(
        "CnnPolicy",
        env,
        n_steps=8,
        n_episodes=1,
        batch_mode=batch_mode,
        baseline=baseline,
        normalize_advantage=baseline != "optimal",
        policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)),
        seed=0,
    )
    learn_and_check(model, 48)
    assert model.rollout_buffer.observations.dtype == np.uint8  # type: ignore[union-attr]


class VectorDictEnv(gym.Env):
    """Dict observations without images: a Box, a Discrete and a MultiBinary entry."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {"pos": spaces.Box(-1, 1, (2,), np.float32), "room": spaces.Discrete(3), "flags": spaces.MultiBinary(2)}
        )
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), float(action), self.t >= 5, False, {}


@pytest.mark.parametrize("baseline", [None, "value", "linear"])
@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_dict_observations(baseline, batch_mode):
    env = VectorDictEnv()
    model = REINFORCE("MultiInputPolicy", env, n_steps=16, n_episodes=2, batch_mode=batch_mode, baseline=baseline, seed=0)
    learn_and_check(model, 64)
    obs, _ = env.reset()
    assert env.action_space.contains(int(model.predict(obs)[0]))


@pytest.mark.parametrize("baseline", [None, "value"])
@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_dict_observations_with_image(baseline, batch_mode):
    env = gym.wrappers.TimeLimit(SimpleMultiObsEnv(random_start=True), max_episode_steps=10)
    model = REINFORCE("MultiInputPolicy", env, n_steps=16, n_episodes=2, batch_mode=batch_mode, baseline=baseline, seed=0)
    learn_and_check(model, 64)
    obs, _ = env.reset()
    assert env.action_space.contains(int(model.predict(obs)[0]))


@pytest.mark.parametrize("use_sde", [False, True])
def test_continuous_gsde(use_sde):
    model = learn_and_check(REINFORCE("MlpPolicy", "Pendulum-v1", n_steps=32, use_sde=use_sde, sde_sample_freq=4, seed=0), 128)
    assert model.logger.name_to_value["train/std"] > 0


@pytest.mark.parametrize("squash_output", [False, True])
def test_entropy_bonus_with_gsde(squash_output):
    """ent_coef > 0 with gSDE: the closed-form entropy, or -log pi where squashing leaves none, enters the update."""
    kwargs = dict(n_steps=32, use_sde=True, policy_kwargs=dict(squash_output=squash_output), seed=0)
    entropy_losses, parameters = [], []
    for ent_coef in (0.0, 0.1):
        model = REINFORCE("MlpPolicy", "Pendulum-v1", ent_coef=ent_coef, **kwargs).learn(64)
        entropy_losses.append(model.logger.name_to_value["train/entropy_loss"])
        parameters.append(th.nn.utils.parameters_to_vector(model.policy.parameters()).detach())
    assert np.isfinite(entropy_losses).all()
    assert th.isfinite(parameters[1]).all()
    assert not th.equal(parameters[0], parameters[1])  # the bonus changed the update


class MatrixActionEnv(gym.Env):
    """A Box action space of shape (2, 2): reward is minus the squared distance of the action to 0.5."""

    observation_space = spaces.Box(-1, 1, (3,), np.float32)
    action_space = spaces.Box(-1, 1, (2, 2), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        assert action.shape == (2, 2) and self.action_space.contains(action.astype(np.float32))
        self.t += 1
        return np.full(3, self.t / 5, np.float32), -float(((action - 0.5) ** 2).sum()), self.t >= 5, False, {}


@pytest.mark.parametrize("baseline", [None, "value"])
def test_matrix_box_actions(baseline):
    """Actions are reshaped to the space's shape before clipping, as SB3's rollouts do."""
    env = make_vec_env(MatrixActionEnv, n_envs=2, seed=0)
    model = learn_and_check(REINFORCE("MlpPolicy", env, n_steps=10, baseline=baseline, seed=0), 100)
    assert model.predict(np.zeros(3, np.float32))[0].shape == (2, 2)
