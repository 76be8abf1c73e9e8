"""The vectorised return math of ``sb3_reinforce.common.returns`` against plain loops, on random episodes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sb3_reinforce.common import returns as ret
from tests.reference import gae_loop, reward_to_go_loop, split_episodes

GAMMAS = [1.0, 0.9]
LAMBDAS = [1.0, 0.9]


@st.composite
def rollouts(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random (rewards, dones, values, last_values) of shape (n_steps, n_envs), random episode boundaries."""
    n_steps = draw(st.integers(1, 25))
    n_envs = draw(st.integers(1, 4))
    floats = st.floats(-10, 10, allow_nan=False, width=32)
    rewards = np.array(draw(st.lists(floats, min_size=n_steps * n_envs, max_size=n_steps * n_envs))).reshape(n_steps, n_envs)
    dones = np.array(draw(st.lists(st.booleans(), min_size=n_steps * n_envs, max_size=n_steps * n_envs))).reshape(
        n_steps, n_envs
    )
    values = np.array(draw(st.lists(floats, min_size=n_steps * n_envs, max_size=n_steps * n_envs))).reshape(n_steps, n_envs)
    last_values = np.array(draw(st.lists(floats, min_size=n_envs, max_size=n_envs)))
    return rewards, dones, values, last_values


@settings(max_examples=150, deadline=None)
@given(data=rollouts(), gamma=st.sampled_from(GAMMAS), bootstrap=st.booleans())
def test_reward_to_go_matches_loop(data, gamma, bootstrap):
    rewards, dones, _, last_values = data
    result = ret.reward_to_go(rewards, dones, last_values if bootstrap else None, gamma)
    for e in range(rewards.shape[1]):
        expected = reward_to_go_loop(
            list(rewards[:, e]), list(dones[:, e]), gamma, float(last_values[e]) if bootstrap else None
        )
        np.testing.assert_allclose(result[:, e], expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(data=rollouts(), gamma=st.sampled_from(GAMMAS), lam=st.sampled_from(LAMBDAS))
def test_gae_matches_loop(data, gamma, lam):
    rewards, dones, values, last_values = data
    result = ret.gae_advantages(rewards, values, dones, last_values, gamma, lam)
    for e in range(rewards.shape[1]):
        expected = gae_loop(list(rewards[:, e]), list(values[:, e]), list(dones[:, e]), float(last_values[e]), gamma, lam)
        np.testing.assert_allclose(result[:, e], expected, rtol=1e-7, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(data=rollouts(), gamma=st.sampled_from(GAMMAS))
def test_gae_with_lambda_one_is_reward_to_go_minus_value(data, gamma):
    rewards, dones, values, last_values = data
    gae = ret.gae_advantages(rewards, values, dones, last_values, gamma, 1.0)
    rtg = ret.reward_to_go(rewards, dones, last_values, gamma)
    np.testing.assert_allclose(gae, rtg - values, rtol=1e-7, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(data=rollouts(), start=st.lists(st.integers(0, 7), min_size=4, max_size=4))
def test_episode_timesteps_count_from_each_start(data, start):
    _, dones, _, _ = data
    n_envs = dones.shape[1]
    start_steps = np.array(start[:n_envs])
    k = ret.episode_timesteps(dones, start_steps)
    for e in range(n_envs):
        expected, current = [], int(start_steps[e])
        for t in range(dones.shape[0]):
            expected.append(current)
            current = 0 if dones[t, e] else current + 1
        assert list(k[:, e]) == expected
    np.testing.assert_array_equal(ret.next_start_steps(k, dones), [0 if dones[-1, e] else k[-1, e] + 1 for e in range(n_envs)])


@settings(max_examples=150, deadline=None)
@given(
    data=rollouts(),
    gamma=st.sampled_from(GAMMAS),
    bootstrap=st.booleans(),
    start=st.lists(st.integers(0, 5), min_size=4, max_size=4),
    prefix=st.lists(st.floats(-5, 5), min_size=4, max_size=4),
)
def test_total_return_matches_loop(data, gamma, bootstrap, start, prefix):
    """R(tau) = sum_t gamma^t r_t of each step's whole episode, including the part before the batch."""
    rewards, dones, _, last_values = data
    n_envs = rewards.shape[1]
    start_steps, start_prefix = np.array(start[:n_envs]), np.array(prefix[:n_envs])
    boot = last_values if bootstrap else None
    k = ret.episode_timesteps(dones, start_steps)
    rtg = ret.reward_to_go(rewards, dones, boot, gamma)
    result = ret.total_return(rtg, k, start_prefix, gamma)
    for e in range(n_envs):
        episodes = split_episodes(list(dones[:, e]))
        for n, episode in enumerate(episodes):
            k0 = int(start_steps[e]) if n == 0 else 0
            total = float(start_prefix[e]) if n == 0 and k0 > 0 else 0.0
            for j, i in enumerate(episode):
                total += gamma ** (k0 + j) * rewards[i, e]
            if not dones[episode[-1], e] and bootstrap:
                total += gamma ** (k0 + len(episode)) * last_values[e]
            np.testing.assert_allclose(result[episode, e], total, rtol=1e-9, atol=1e-9)
        # The prefix carried to the next batch is what the unfinished episode collected so far.
        last = episodes[-1]
        if dones[-1, e]:
            expected_prefix = 0.0
        else:
            k0 = int(start_steps[e]) if len(episodes) == 1 else 0
            expected_prefix = (float(start_prefix[e]) if len(episodes) == 1 and k0 > 0 else 0.0) + sum(
                gamma ** (k0 + j) * rewards[i, e] for j, i in enumerate(last)
            )
        carried = ret.discounted_prefix_after(rewards, dones, k, start_prefix, gamma)
        np.testing.assert_allclose(carried[e], expected_prefix, rtol=1e-7, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(data=rollouts())
def test_complete_episode_mask(data):
    _, dones, _, _ = data
    mask = ret.complete_episode_mask(dones)
    for e in range(dones.shape[1]):
        for episode in split_episodes(list(dones[:, e])):
            assert all(mask[i, e] == bool(dones[episode[-1], e]) for i in episode)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_score_discount(gamma):
    k = np.array([[0, 3], [1, 0], [2, 1]])
    np.testing.assert_allclose(ret.score_discount(k, gamma), gamma**k)


def test_worked_example_of_the_docstring():
    """[x0 + g*x1 + g^2*x2, x1 + g*x2, x2] for one finished episode."""
    rewards = np.array([[1.0], [2.0], [4.0]])
    dones = np.array([[False], [False], [True]])
    np.testing.assert_allclose(ret.reward_to_go(rewards, dones, None, 0.5)[:, 0], [1 + 1 + 1, 2 + 2, 4])
    np.testing.assert_array_equal(
        ret.episode_timesteps(np.array([[0], [1], [0], [0]], dtype=bool), np.array([2]))[:, 0], [2, 3, 0, 1]
    )


def test_long_episode_total_return_is_finite():
    """gamma^k for k in the tens of thousands must neither overflow nor turn the return into NaN."""
    n = 20_000
    rewards = np.ones((n, 1))
    dones = np.zeros((n, 1), dtype=bool)
    dones[-1] = True
    k = ret.episode_timesteps(dones, np.array([0]))
    total = ret.total_return(ret.reward_to_go(rewards, dones, None, 0.99), k, np.zeros(1), 0.99)
    assert np.all(np.isfinite(total))
    np.testing.assert_allclose(total, (1 - 0.99**n) / (1 - 0.99))
