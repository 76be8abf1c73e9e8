"""
A baseline and a return estimator of a user's own, defined here as a user would (outside the package), trained with,
checked against their formulas, saved and loaded.
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.baselines import Baseline
from sb3_reinforce.common.batch import ReinforceBatch
from sb3_reinforce.common.returns import ReturnEstimator, RolloutArrays


class MovingAverageBaseline(Baseline):
    """``b``: an exponential moving average of the previous batches' mean ``Psi`` (0 before the first)."""

    is_constant = True

    def __init__(self, policy, decay: float = 0.9) -> None:
        super().__init__(policy)
        self.decay, self.value, self.n_fits = decay, 0.0, 0

    def predict(self, batch: ReinforceBatch) -> th.Tensor:
        return th.full((len(batch),), self.value, dtype=th.float64)

    def fit(self, batch: ReinforceBatch) -> dict[str, float]:
        mean = float(batch.psi.mean())
        self.value = mean if self.n_fits == 0 else self.decay * self.value + (1 - self.decay) * mean
        self.n_fits += 1
        return {"train/baseline": self.value}


class NStepReturn(ReturnEstimator):
    """``Psi_t = sum_{l<n} gamma^l r_{t+l} + gamma^n V(s_{t+n})``, stopping at the episode's end."""

    needs_value_function = True

    def __init__(self, gamma: float, gae_lambda: float, n: int = 3) -> None:
        super().__init__(gamma, gae_lambda)
        self.n = n

    def estimate(self, rollout: RolloutArrays) -> np.ndarray:
        r, done, v = rollout.rewards, rollout.dones, rollout.values
        last = rollout.last_values if rollout.last_values is not None else np.zeros(r.shape[1])
        v_next = np.vstack([v[1:], last[None]])  # V(s_{t+1}); after the last row, V(s_T)
        psi = np.zeros(r.shape)
        for e in range(r.shape[1]):
            for t in range(r.shape[0]):
                for k in range(self.n):
                    j = t + k
                    psi[t, e] += self.gamma**k * r[j, e]
                    if done[j, e]:
                        break
                    if k == self.n - 1 or j == r.shape[0] - 1:
                        psi[t, e] += self.gamma ** (k + 1) * v_next[j, e]
                        break
        return psi


def test_own_baseline_trains_predicts_its_formula_and_round_trips(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=64, baseline=MovingAverageBaseline, baseline_kwargs=dict(decay=0.5),
                      normalize_advantage=False, seed=0)  # fmt: skip
    means: list[float] = []  # each batch's mean Psi

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:  # b of this batch: the average of the earlier batches' means
            expected = 0.0
            for i, mean in enumerate(means):
                expected = mean if i == 0 else 0.5 * expected + 0.5 * mean
            batch = self.model.rollout_buffer.batch
            np.testing.assert_allclose(batch.baseline_values.numpy(), expected)
            means.append(float(batch.psi.mean()))

    model.learn(640, callback=Check())
    assert len(means) == model._n_updates == 5 and model.baseline_object.n_fits == 5
    assert model.logger.name_to_value["train/baseline"] == model.baseline_object.value != 0.0

    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=2))
    assert isinstance(loaded.baseline_object, MovingAverageBaseline) and loaded.baseline_object.policy is loaded.policy
    assert (loaded.baseline_object.value, loaded.baseline_object.decay) == (model.baseline_object.value, 0.5)
    model.set_env(make_vec_env("CartPole-v1", n_envs=2))
    for m in (model, loaded):
        m.set_random_seed(7)
        m.learn(256, reset_num_timesteps=False)
    assert loaded.baseline_object.value == model.baseline_object.value
    np.testing.assert_array_equal(
        th.nn.utils.parameters_to_vector(model.policy.parameters()).detach().numpy(),
        th.nn.utils.parameters_to_vector(loaded.policy.parameters()).detach().numpy(),
    )


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_own_estimator_matches_the_built_in_ones_at_its_limits(batch_mode, tmp_path):
    """The 1-step return is GAE with lambda 0; an n-step return longer than any episode is the reward-to-go."""
    kwargs = dict(n_steps=32, batch_mode=batch_mode, n_episodes=3, gamma=0.9, baseline="value", seed=0)

    def first_batch(**extra) -> ReinforceBatch:
        model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=1), **kwargs, **extra)
        model.learn(1)
        return model.rollout_buffer.batch

    one_step = first_batch(return_estimator=NStepReturn, return_estimator_kwargs=dict(n=1))
    th.testing.assert_close(one_step.advantages, first_batch(return_estimator="gae", gae_lambda=0.0).advantages)
    long = first_batch(return_estimator=NStepReturn, return_estimator_kwargs=dict(n=10_000))
    th.testing.assert_close(long.advantages, first_batch(return_estimator="reward_to_go").advantages)
    three = first_batch(return_estimator=NStepReturn)  # n=3: neither
    assert not th.allclose(three.advantages, one_step.advantages) and not th.allclose(three.advantages, long.advantages)

    model = REINFORCE("MlpPolicy", "CartPole-v1", return_estimator=NStepReturn, return_estimator_kwargs=dict(n=5))
    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip")
    assert loaded.return_estimator_class is NStepReturn and loaded.return_estimator_object.n == 5


def test_own_parts_are_checked_as_the_registered_ones():
    with pytest.raises(ValueError, match=r"NStepReturn.*needs the learned value function.*baseline=None"):
        REINFORCE("MlpPolicy", "CartPole-v1", return_estimator=NStepReturn, baseline=None)
    with pytest.warns(UserWarning, match=r"baseline=MovingAverageBaseline is a constant.*normalize_advantage=False"):
        REINFORCE("MlpPolicy", "CartPole-v1", baseline=MovingAverageBaseline)
    for bad in (["value"], int, "moving_average", ReturnEstimator):
        with pytest.raises(ValueError, match=r"Invalid baseline=.*allowed values are None, 'mean'.*or a subclass of"):
            REINFORCE("MlpPolicy", "CartPole-v1", baseline=bad)
    with pytest.raises(ValueError, match=r"Invalid return_estimator=.*'total', 'reward_to_go', 'gae', or a subclass"):
        REINFORCE("MlpPolicy", "CartPole-v1", return_estimator=MovingAverageBaseline)
