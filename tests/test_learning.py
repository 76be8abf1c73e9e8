"""Learning with the default hyperparameters (slow: run with ``pytest -m slow``; see benchmarks/cartpole.py)."""

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_reinforce import REINFORCE


@pytest.mark.slow
def test_defaults_solve_cartpole_in_100k_steps():
    """At least 4 of 5 seeds reach a deterministic evaluation mean of 475 after 100k steps."""
    means = []
    for seed in range(5):
        model = REINFORCE("MlpPolicy", "CartPole-v1", seed=seed).learn(100_000)
        mean, _ = evaluate_policy(
            model, make_vec_env("CartPole-v1", seed=10_000 + seed), n_eval_episodes=20, deterministic=True
        )
        means.append(mean)
    assert np.sum(np.array(means) >= 475) >= 4, means
