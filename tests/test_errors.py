"""Bad input fails at construction with a ValueError naming the argument, the value and the allowed values."""

import warnings

import numpy as np
import pytest
from stable_baselines3.common.envs import FakeImageEnv

from sb3_reinforce import REINFORCE


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(return_estimator="td"), r"return_estimator='td'.*'total', 'reward_to_go', 'gae'"),
        (
            dict(baseline="optimal_value"),
            r"baseline='optimal_value'.*None, 'mean', 'value', 'linear', 'optimal', 'optimal_scalar', 'loo'",
        ),
        (dict(baseline="loo"), r"baseline='loo'.*batch_mode='steps'.*batch_mode='episodes'"),
        (dict(baseline="loo", batch_mode="episodes", n_episodes=1), r"n_episodes=1.*>= 2 with baseline='loo'"),
        (dict(baseline="optimal"), r"baseline='optimal'.*normalize_advantage=True.*normalize_advantage=False"),
        (dict(batch_mode="trajectories"), r"batch_mode='trajectories'.*'steps', 'episodes'"),
        (dict(return_estimator="gae", baseline=None), r"return_estimator='gae'.*baseline=None.*baseline='value'"),
        (dict(return_estimator="gae", baseline="linear"), r"return_estimator='gae'.*baseline='linear'"),
        (dict(gamma=1.5), r"gamma=1.5.*\[0, 1\]"),
        (dict(gamma=-0.1), r"gamma=-0.1.*\[0, 1\]"),
        (dict(gae_lambda=2.0), r"gae_lambda=2.0.*\[0, 1\]"),
        (dict(n_steps=0), r"n_steps=0.*positive integers"),
        (dict(n_steps=-5), r"n_steps=-5.*positive integers"),
        (dict(n_steps=2.5), r"n_steps=2.5.*positive integers"),
        (dict(n_episodes=0), r"n_episodes=0.*positive integers"),
        (dict(n_value_epochs=-1), r"n_value_epochs=-1.*non-negative integers"),
        (dict(discount_score="yes"), r"discount_score='yes'.*True, False"),
        (dict(ent_coef=-0.1), r"ent_coef=-0.1.*>= 0"),
        (dict(vf_coef=float("nan")), r"vf_coef=nan.*>= 0"),
        (dict(max_grad_norm=0.0), r"max_grad_norm=0.0.*> 0"),
        (dict(learning_rate=0.0), r"learning_rate=0.0.*> 0"),
        (dict(learning_rate=float("inf")), r"learning_rate=inf"),
        (dict(policy_step="newton"), r"policy_step='newton'.*'gradient', 'natural'"),
        (dict(policy_step="natural", target_kl=0.0), r"target_kl=0.0.*finite numbers > 0"),
        (dict(target_kl=float("inf")), r"target_kl=inf.*finite numbers > 0"),
        (dict(policy_step="natural", natural_step_size=0.0), r"natural_step_size=0.0.*None, finite numbers > 0"),
        (dict(natural_step_size=float("nan")), r"natural_step_size=nan.*None, finite numbers > 0"),
        (dict(cg_max_steps=0), r"cg_max_steps=0.*positive integers"),
        (dict(cg_damping=-0.1), r"cg_damping=-0.1.*finite numbers >= 0"),
        (dict(rollout_buffer_class=dict), r"rollout_buffer_class=<class 'dict'>.*ReinforceRolloutBuffer"),
    ],
)
def test_invalid_arguments_raise_before_training(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        REINFORCE("MlpPolicy", "CartPole-v1", **kwargs)


def test_linear_baseline_rejects_images():
    with pytest.raises(ValueError, match=r"baseline='linear'.*image.*None, 'mean', 'value'"):
        REINFORCE("CnnPolicy", FakeImageEnv(screen_height=36, screen_width=36), baseline="linear")


def test_valid_edge_values_are_accepted():
    REINFORCE("MlpPolicy", "CartPole-v1", gamma=0.0, gae_lambda=1.0, n_value_epochs=0, max_grad_norm=float("inf"))
    REINFORCE("MlpPolicy", "CartPole-v1", gamma=1, n_steps=1, normalize_advantage=False)
    REINFORCE("MlpPolicy", "CartPole-v1", batch_mode="episodes", n_episodes=1, n_steps=1)


@pytest.mark.parametrize("baseline", ["mean", "optimal_scalar"])
def test_constant_baseline_with_normalisation_warns(baseline):
    with pytest.warns(UserWarning, match=rf"baseline='{baseline}'.*normalize_advantage=False"):
        REINFORCE("MlpPolicy", "CartPole-v1", baseline=baseline)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        REINFORCE("MlpPolicy", "CartPole-v1", baseline=baseline, normalize_advantage=False)
    assert not [w for w in caught if "normalize_advantage" in str(w.message)]


def test_numpy_numbers_are_accepted():
    """As A2C accepts them: NumPy floats and integers for every numeric argument."""
    model = REINFORCE(
        "MlpPolicy", "CartPole-v1", gamma=np.float32(0.99), learning_rate=np.float64(1e-3), ent_coef=np.float32(0.01),
        gae_lambda=np.float32(0.9), n_steps=np.int64(32), n_value_epochs=np.int32(2), max_grad_norm=np.float32(1.0),
        normalize_advantage=np.bool_(True),
    )  # fmt: skip
    model.learn(64)
    assert model.num_timesteps == 64
