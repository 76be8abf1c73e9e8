"""The measurement machinery of benchmarks/throughput.py: recorded policies, the replayed limit loop, paired medians."""

import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from benchmarks import throughput
from sb3_reinforce import REINFORCE


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_recorder_keeps_each_rollouts_policy_and_length(batch_mode):
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4, seed=0), n_steps=32, batch_mode=batch_mode,
                      n_episodes=4, learning_rate=1e-2, seed=0)  # fmt: skip
    recorder = throughput.PolicyRecorder()
    rate = throughput.learn_rate(model, 1000, recorder)
    assert rate > 0
    assert len(recorder.segments) == model._n_updates >= 2
    assert sum(steps for _, steps in recorder.segments) == model.num_timesteps
    if batch_mode == "steps":
        assert all(steps == 32 * 4 for _, steps in recorder.segments)
    # Each segment holds the policy as it was during its rollout: consecutive ones differ (the policy learns).
    first, second = (th.nn.utils.parameters_to_vector(state.values()) for state, _ in recorder.segments[:2])
    assert not th.equal(first, second)
    final = recorder.segments[-1][0]
    assert recorder.seconds > 0

    # The replay loads each recorded policy and steps the env as many times as its rollout did.
    loaded = []
    original = model.policy.load_state_dict

    def spy(state, *args, **kwargs):
        loaded.append(state)
        return original(state, *args, **kwargs)

    model.policy.load_state_dict = spy  # type: ignore[method-assign]
    env = model.get_env()
    steps_before = sum(monitor.get_total_steps() for monitor in env.envs)  # type: ignore[attr-defined]
    assert throughput.replay_limit_rate(model, recorder.segments) > 0
    assert loaded == [state for state, _ in recorder.segments] and loaded[-1] is final
    steps_after = sum(monitor.get_total_steps() for monitor in env.envs)  # type: ignore[attr-defined]
    assert steps_after - steps_before == sum(steps for _, steps in recorder.segments)


def test_medians_pair_the_runs():
    learn, limit = [10.0, 30.0, 20.0], [20.0, 30.0, 80.0]
    assert throughput.medians(learn, limit) == (20.0, 30.0, 0.5)  # ratios 0.5, 1.0, 0.25


def test_frozen_model_does_not_learn():
    kwargs = {"n_steps": 16, "return_estimator": "reward_to_go", "baseline": None, "batch_mode": "steps"}
    model = throughput.build("reinforce", "CartPole-v1", kwargs)
    before = th.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    throughput.learn_rate(model, 256)
    assert th.equal(before, th.nn.utils.parameters_to_vector(model.policy.parameters()).detach())
