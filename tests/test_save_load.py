"""save/load round trip: parameters, predictions, baseline state, optimizer state, and training that continues exactly."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.baselines import LinearFeatureBaseline, MeanBaseline, OptimalBaseline, OptimalScalarBaseline

CONFIGS = [
    dict(baseline="value"),
    dict(baseline="linear", return_estimator="total"),
    dict(baseline="mean", discount_score=True, gamma=0.95),
    dict(baseline=None, batch_mode="episodes", n_episodes=3),
    dict(baseline="value", return_estimator="gae", gae_lambda=0.9),
    dict(baseline="optimal", normalize_advantage=False),
    dict(baseline="optimal_scalar", normalize_advantage=False, return_estimator="total"),
    dict(baseline="loo", batch_mode="episodes", n_episodes=3),
]


def params(model: REINFORCE) -> np.ndarray:
    return th.nn.utils.parameters_to_vector(model.policy.parameters()).detach().numpy().copy()


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_save_load_round_trip(tmp_path, kwargs):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=64, seed=0, **kwargs).learn(512)
    obs = env.reset()
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")

    loaded = REINFORCE.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=2))
    np.testing.assert_array_equal(params(model), params(loaded))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
    for key in [
        "batch_mode",
        "n_episodes",
        "return_estimator",
        "baseline",
        "discount_score",
        "gamma",
        "n_value_epochs",
        "n_steps",
    ]:
        assert getattr(loaded, key) == getattr(model, key), key
    assert loaded.num_timesteps == model.num_timesteps
    # The loaded baseline fits and predicts with the loaded policy, not a copy saved with it
    assert type(loaded.baseline_object) is type(model.baseline_object) and loaded.baseline_object.policy is loaded.policy
    assert loaded._n_updates == model._n_updates
    # Optimizer state (Adam's moments) survives.
    for a, b in zip(
        model.policy.optimizer.state_dict()["state"].values(),
        loaded.policy.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        th.testing.assert_close(a["exp_avg"], b["exp_avg"])
    if kwargs["baseline"] == "linear":
        assert isinstance(loaded.baseline_object, LinearFeatureBaseline)
        assert isinstance(model.baseline_object, LinearFeatureBaseline)
        assert model.baseline_object.coef is not None
        np.testing.assert_array_equal(loaded.baseline_object.coef, model.baseline_object.coef)
    if kwargs["baseline"] in ("mean", "optimal_scalar"):
        assert isinstance(loaded.baseline_object, MeanBaseline | OptimalScalarBaseline)
        assert loaded.baseline_object.value == model.baseline_object.value != 0.0  # type: ignore[union-attr]
    if kwargs["baseline"] == "optimal":
        assert isinstance(loaded.baseline_object, OptimalBaseline) and isinstance(model.baseline_object, OptimalBaseline)
        saved, restored = model.baseline_object.constants, loaded.baseline_object.constants
        assert saved is not None and restored is not None and saved.keys() == restored.keys()
        for name in saved:
            np.testing.assert_array_equal(saved[name], restored[name])


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_training_continues_exactly_after_load(tmp_path, kwargs):
    """A saved-and-loaded model and the original, continued from the same seed, stay identical."""
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=64, seed=0, **kwargs).learn(512)
    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=2))
    model.set_env(make_vec_env("CartPole-v1", n_envs=2))

    for m in (model, loaded):
        m.set_random_seed(7)
        m.learn(512, reset_num_timesteps=False)
    np.testing.assert_array_equal(params(model), params(loaded))
    assert model.num_timesteps == loaded.num_timesteps
    if kwargs["baseline"] == "linear":
        np.testing.assert_array_equal(loaded.baseline_object.coef, model.baseline_object.coef)  # type: ignore[union-attr]


def test_load_keeps_the_baseline_object_object_fresh_for_new_models():
    a = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, baseline="linear", seed=0).learn(256)
    b = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, baseline="linear", seed=0)
    assert a.baseline_object is not b.baseline_object
    assert b.baseline_object.coef is None  # type: ignore[union-attr]


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_load_with_a_different_number_of_envs(tmp_path, batch_mode):
    """Storage and the per-env episode state follow the new env count (the total estimator carries state per env)."""
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=64, batch_mode=batch_mode,
                      return_estimator="total", baseline="linear", seed=0).learn(500)  # fmt: skip
    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=5))
    loaded.learn(600, reset_num_timesteps=False)
    assert loaded.n_envs == loaded.rollout_buffer.n_envs == len(loaded.rollout_buffer.start_steps) == 5
    assert loaded.num_timesteps >= model.num_timesteps + 600
