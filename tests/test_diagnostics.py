"""
Per-episode gradients against the exact policy gradient of a small tabular MDP, the optimal baseline's variance,
and the training diagnostics.

The MDP has known transitions, so ``J(theta) = mu0^T (I - gamma P_pi)^-1 r_pi`` is computed exactly and
differentiated with autograd through the linear solve. The policy is linear-softmax: Discrete observations are
one-hot encoded by SB3 and ``net_arch=[]`` leaves only ``action_net``, so ``pi(a|s) = softmax(W e_s + c)_a``.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_reinforce import REINFORCE
from sb3_reinforce.common import returns as ret
from sb3_reinforce.common import scores
from sb3_reinforce.common.baselines import LeaveOneOutBaseline, OptimalBaseline, OptimalScalarBaseline
from sb3_reinforce.common.callbacks import GradientStatsCallback
from sb3_reinforce.diagnostics import EpisodeSample, collect_episodes, gradient_statistics, sample_gradients


def episode_gradients(model: REINFORCE, sample: EpisodeSample, weights: list[np.ndarray]) -> list[dict[str, th.Tensor]]:
    """Per-episode ``sum_t weight_t grad log pi(a_t|s_t)`` of the sample's batch, for each flat weight array."""
    batch = sample.batch
    tensors = [th.as_tensor(w, dtype=th.float32) for w in weights]
    return scores.episode_gradients(
        model.policy, batch.observations, batch.actions, tensors, batch.segment_ids, batch.n_segments
    )


N_STATES, N_ACTIONS = 3, 2
RNG = np.random.default_rng(2024)
# P[s, a, s']: probability of moving to s' (the rest, 1 - sum, is the probability that the episode terminates)
P = RNG.dirichlet(np.ones(N_STATES + 1), size=(N_STATES, N_ACTIONS))[..., :N_STATES] * 0.85
R = RNG.uniform(-1.0, 2.0, size=(N_STATES, N_ACTIONS))
MU0 = np.array([0.6, 0.3, 0.1])
# Policy parameters where the gradient is far from zero
W = th.tensor([[0.8, -0.5, 0.3], [-0.4, 0.6, -0.9]])
C = th.tensor([0.2, -0.1])


class TabularMDP(gym.Env):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Discrete(N_STATES)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.state = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(N_STATES, p=MU0))
        return self.state, {}

    def step(self, action):
        reward = float(R[self.state, action])
        probs = P[self.state, action]
        u = self.np_random.random()
        cumulative = np.cumsum(probs)
        if u >= cumulative[-1]:
            return self.state, reward, True, False, {}
        self.state = int(np.searchsorted(cumulative, u, side="right"))
        return self.state, reward, False, False, {}


def exact_gradient(gamma: float) -> dict[str, th.Tensor]:
    """grad of J = mu0^T (I - gamma P_pi)^-1 r_pi with respect to action_net's weight and bias."""
    weight, bias = W.clone().double().requires_grad_(True), C.clone().double().requires_grad_(True)
    pi = th.softmax(weight.T + bias, dim=1)  # (S, A): logits of state s are W e_s + c
    p = th.as_tensor(P)
    p_pi = th.einsum("sa,sat->st", pi, p)
    r_pi = (pi * th.as_tensor(R)).sum(dim=1)
    values = th.linalg.solve(th.eye(N_STATES, dtype=th.float64) - gamma * p_pi, r_pi)
    j = th.as_tensor(MU0) @ values
    g_weight, g_bias = th.autograd.grad(j, [weight, bias])
    return {"action_net.weight": g_weight.float(), "action_net.bias": g_bias.float()}


def tabular_model(gamma: float, seed: int = 0, n_envs: int = 16, **kwargs) -> REINFORCE:
    env = make_vec_env(TabularMDP, n_envs=n_envs, seed=seed)
    model = REINFORCE("MlpPolicy", env, gamma=gamma, policy_kwargs=dict(net_arch=[]), seed=seed, **kwargs)
    with th.no_grad():
        model.policy.action_net.weight.copy_(W)
        model.policy.action_net.bias.copy_(C)
    return model


def z_scores(per_episode: dict[str, th.Tensor], exact: dict[str, th.Tensor]) -> np.ndarray:
    """(sample mean - exact) / standard error, for every component."""
    out = []
    for name, value in exact.items():
        g = per_episode[name].double()
        se = g.std(dim=0) / np.sqrt(len(g))
        out.append(((g.mean(dim=0) - value.double()) / se).flatten().numpy())
    return np.concatenate(out)


N_EPISODES = 20_000
# 8 components; with 8 tests of 8 normal z-scores, P(max |z| > 4.5) is about 4e-4.
Z_MAX = 4.5

UNBIASED = [
    dict(return_estimator="total", gamma=1.0),
    dict(return_estimator="reward_to_go", gamma=1.0),
    dict(return_estimator="reward_to_go", gamma=0.8, discount_score=True),
    dict(return_estimator="total", gamma=0.8),
]


@pytest.mark.parametrize("kwargs", UNBIASED)
@pytest.mark.parametrize("constant", [None, 1.5])
def test_sample_gradients_are_unbiased(kwargs, constant):
    baseline = None if constant is None else "mean"
    model = tabular_model(baseline=baseline, **kwargs)
    if constant is not None:
        model.baseline_object.value = constant  # type: ignore[union-attr]
    per_episode = sample_gradients(model, N_EPISODES)
    assert set(per_episode) == {"action_net.weight", "action_net.bias"}
    assert per_episode["action_net.weight"].shape == (N_EPISODES, N_ACTIONS, N_STATES)
    z = z_scores(per_episode, exact_gradient(kwargs["gamma"]))
    assert np.abs(z).max() < Z_MAX, z


def test_reward_to_go_without_discounted_score_is_biased():
    """With gamma < 1, sum_t grad log pi_t G_t is not the gradient of E[sum_t gamma^t r_t] (Thomas, 2014)."""
    gamma = 0.5
    model = tabular_model(gamma=gamma, return_estimator="reward_to_go", baseline=None)
    z = z_scores(sample_gradients(model, N_EPISODES), exact_gradient(gamma))
    assert np.abs(z).max() > 10, z
    # The same episodes with the discounted score are unbiased.
    model = tabular_model(gamma=gamma, return_estimator="reward_to_go", baseline=None, discount_score=True)
    assert np.abs(z_scores(sample_gradients(model, N_EPISODES), exact_gradient(gamma))).max() < Z_MAX


def test_optimal_baseline_variance_is_not_above_the_mean_baseline():
    """Both constants fitted on one set of episodes, the variance measured on another (same episodes for both)."""
    model = tabular_model(gamma=1.0, return_estimator="reward_to_go", baseline="optimal_scalar", normalize_advantage=False)
    fit = collect_episodes(model, 5_000)
    psi = fit.batch.psi.numpy()
    weighted, score = (scores.flatten(g).numpy() for g in episode_gradients(model, fit, [psi, np.ones_like(psi)]))
    b_star = float((weighted * score).sum() / (score**2).sum())
    b_mean = float(psi.mean())
    assert b_star != pytest.approx(b_mean, rel=0.05)

    test = collect_episodes(model, N_EPISODES)
    psi = test.batch.psi.numpy()
    with_optimal, with_mean = episode_gradients(model, test, [psi - b_star, psi - b_mean])
    var_optimal = gradient_statistics(with_optimal)["grad_variance"]
    var_mean = gradient_statistics(with_mean)["grad_variance"]
    assert var_optimal <= var_mean, (var_optimal, var_mean)


LOO_BATCH = 4  # episodes per batch: small, where including an episode's own return would bias the estimate most
LOO_ENVS = 2048


def leave_one_out_batches(kwargs: dict, include_own: bool = False) -> dict[str, th.Tensor]:
    """
    Mean gradient of each batch of LOO_BATCH episodes with the leave-one-out baseline: 8 x LOO_ENVS episodes, the
    first of each env (fresh resets, so none is chosen for its length), grouped into batches by env index.
    With ``include_own``, each episode's baseline is the mean over its whole batch, itself included.
    """
    model = tabular_model(baseline=None, n_envs=LOO_ENVS, **kwargs)
    per_estimator = ret.RETURN_ESTIMATORS[kwargs["return_estimator"]]
    batches: list[dict[str, th.Tensor]] = []
    for _ in range(8):
        sample = collect_episodes(model, LOO_ENVS)
        psi, k = sample.batch.psi.numpy(), sample.batch.timesteps.numpy()
        batch = sample.batch.envs // LOO_BATCH
        b = np.zeros_like(psi)
        for index in range(LOO_ENVS // LOO_BATCH):
            steps = batch == index
            ids = sample.batch.envs[steps] % LOO_BATCH
            b[steps] = LeaveOneOutBaseline.leave_one_out(
                th.as_tensor(psi[steps]), th.as_tensor(ids), LOO_BATCH, th.as_tensor(k[steps]), per_estimator.per_episode
            ).numpy()
            if include_own:
                b[steps] = (b[steps] * (LOO_BATCH - 1) + psi[steps]) / LOO_BATCH
        w = ret.score_discount(k, kwargs["gamma"]) if kwargs.get("discount_score") else 1.0
        first_steps = np.r_[0, np.flatnonzero(np.diff(sample.batch.segment_ids.numpy())) + 1]
        assert np.array_equal(np.unique(sample.batch.envs[first_steps]), np.arange(LOO_ENVS))
        (per_episode,) = episode_gradients(model, sample, [w * (psi - b)])
        env_of_episode = np.zeros(sample.batch.n_segments, dtype=np.int64)
        env_of_episode[sample.batch.segment_ids.numpy()] = sample.batch.envs
        order = np.argsort(env_of_episode)
        batches.append({name: g[order].reshape(-1, LOO_BATCH, *g.shape[1:]).mean(dim=1) for name, g in per_episode.items()})
    return {name: th.cat([b[name] for b in batches]) for name in batches[0]}


LOO_CASES = [
    dict(return_estimator="total", gamma=1.0),
    dict(return_estimator="reward_to_go", gamma=1.0),
    dict(return_estimator="reward_to_go", gamma=0.8, discount_score=True),
]


@pytest.mark.parametrize("kwargs", LOO_CASES)
def test_leave_one_out_baseline_is_unbiased(kwargs):
    """
    Batches of 4 episodes: the mean gradient of a batch with the leave-one-out baseline (per episode with the total
    return, per time step with reward-to-go) matches the exact gradient; with each episode's own return included in
    its baseline it does not (that bias, -1/4 of the gradient, is what leaving it out removes).
    """
    exact = exact_gradient(kwargs["gamma"])
    z = z_scores(leave_one_out_batches(kwargs), exact)
    assert np.abs(z).max() < Z_MAX, z
    z_own = z_scores(leave_one_out_batches(kwargs, include_own=True), exact)
    assert np.abs(z_own).max() > 2 * Z_MAX, z_own


@pytest.mark.parametrize("kwargs", UNBIASED[:3])
def test_per_parameter_optimal_baseline_is_unbiased(kwargs):
    """Any constants b (here: far from 0, different per component) leave g_i = G_i - b * S_i unbiased."""
    model = tabular_model(baseline="optimal", normalize_advantage=False, **kwargs)
    generator = np.random.default_rng(7)
    model.baseline_object.constants = {  # type: ignore[union-attr]
        name: generator.normal(2.0, 1.0, size=p.shape)
        for name, p in model.policy.action_net.named_parameters(prefix="action_net")
    }
    per_episode = sample_gradients(model, N_EPISODES)
    z = z_scores(per_episode, exact_gradient(kwargs["gamma"]))
    assert np.abs(z).max() < Z_MAX, z


def test_per_parameter_optimal_baseline_variance_is_not_above_the_scalar_one():
    """
    Both fitted on one set of episodes (the package's own formulas), the total variance measured on another: the
    per-parameter constants, each the minimiser of its component's variance, are not worse than the single constant.
    """
    model = tabular_model(gamma=1.0, return_estimator="reward_to_go", baseline="optimal", normalize_advantage=False)
    fit = collect_episodes(model, 5_000)
    psi = fit.batch.psi.numpy()
    weighted, score = episode_gradients(model, fit, [psi, np.ones_like(psi)])
    per_parameter = OptimalBaseline.optimal_constants(weighted, score)
    scalar = OptimalScalarBaseline.optimal_constant(scores.flatten(weighted), scores.flatten(score))
    assert scalar is not None

    test = collect_episodes(model, N_EPISODES)
    psi = test.batch.psi.numpy()
    weighted, score = episode_gradients(model, test, [psi, np.ones_like(psi)])
    baseline = OptimalBaseline(model.policy)
    baseline.constants = per_parameter
    with_parameter = {name: g - baseline.gradient_offset(score)[name] for name, g in weighted.items()}
    with_scalar = {name: weighted[name] - scalar * score[name] for name in weighted}
    var_parameter = gradient_statistics(with_parameter)["grad_variance"]
    var_scalar = gradient_statistics(with_scalar)["grad_variance"]
    var_none = gradient_statistics(weighted)["grad_variance"]
    assert var_parameter <= var_scalar < var_none, (var_parameter, var_scalar, var_none)


@pytest.mark.parametrize("baseline", ["optimal_scalar", "optimal"])
def test_optimal_baseline_fit_matches_its_formula(baseline):
    """
    The baseline the algorithm fits is sum_i <G_i, S_i> / sum_i ||S_i||^2 over the batch's episodes (scalar), or
    sum_i G_ik S_ik / sum_i S_ik^2 for every component k, with the scores of the policy after the update (the policy
    the baseline is used with next).
    """
    model = tabular_model(gamma=1.0, baseline=baseline, batch_mode="episodes", n_episodes=64, normalize_advantage=False)
    model.learn(1)  # one rollout and one update
    buffer, batch = model.rollout_buffer, model.rollout_buffer.batch
    rows, envs, ids = batch.rows, batch.envs, batch.segment_ids.numpy()
    psi = batch.advantages.numpy()  # the first batch's baseline is 0, so these are Psi_t
    # Plain loop: per-episode G and S, one autograd call per step.
    g = np.zeros((ids.max() + 1, 8))
    s = np.zeros_like(g)
    assert not th.equal(model.policy.action_net.weight.detach(), W)  # updated
    params = [model.policy.action_net.weight, model.policy.action_net.bias]
    for i, (row, env) in enumerate(zip(rows, envs, strict=True)):
        obs = th.as_tensor(buffer.observations[row, env][None])  # type: ignore[index]
        action = th.as_tensor(buffer.actions[row, env]).long()
        log_prob = model.policy.get_distribution(obs).log_prob(action)
        score = th.cat([p.flatten() for p in th.autograd.grad(log_prob.sum(), params)]).numpy()
        g[ids[i]] += psi[i] * score
        s[ids[i]] += score
    if baseline == "optimal_scalar":
        assert model.baseline_object.value == pytest.approx((g * s).sum() / (s**2).sum(), rel=1e-4)  # type: ignore[union-attr]
    else:
        constants = model.baseline_object.constants  # type: ignore[union-attr]
        fitted = np.concatenate([constants["action_net.weight"].ravel(), constants["action_net.bias"].ravel()])
        np.testing.assert_allclose(fitted, (g * s).sum(axis=0) / (s**2).sum(axis=0), rtol=1e-4)


class LinearExtractor(BaseFeaturesExtractor):
    """A features extractor with parameters, shared by the actor and V (reached under three names in the policy)."""

    def __init__(self, observation_space: gym.spaces.Box) -> None:
        super().__init__(observation_space, features_dim=8)
        self.net = th.nn.Linear(observation_space.shape[0], 8)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return th.tanh(self.net(observations))


@pytest.mark.parametrize("policy_kwargs", [None, dict(features_extractor_class=LinearExtractor)])
def test_vectorised_scores_match_a_per_step_loop(policy_kwargs):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, policy_kwargs=policy_kwargs, seed=0).learn(128)
    parameters = list(model.policy.parameters())
    sample = collect_episodes(model, 5)
    weights = np.random.default_rng(0).normal(size=len(sample.batch))
    (vectorised,) = episode_gradients(model, sample, [weights])
    obs, actions = sample.batch.observations, sample.batch.actions
    named = [(n, p) for n, p in model.policy.named_parameters() if n in vectorised]
    expected = {n: th.zeros_like(v) for n, v in vectorised.items()}
    for i in range(len(weights)):
        log_prob = model.policy.get_distribution(obs[i : i + 1]).log_prob(actions[i : i + 1]).sum()  # type: ignore[index]
        for (name, _), grad in zip(named, th.autograd.grad(log_prob, [p for _, p in named]), strict=True):
            expected[name][sample.batch.segment_ids.numpy()[i]] += weights[i] * grad
    for name in vectorised:
        th.testing.assert_close(vectorised[name], expected[name], rtol=1e-4, atol=1e-5)
    assert all(a is b for a, b in zip(parameters, model.policy.parameters(), strict=True))  # the policy's own, kept


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_sample_gradients_leave_the_model_unchanged(env_id):
    model = REINFORCE("MlpPolicy", env_id, n_steps=64, baseline="linear", seed=0).learn(256)
    before = th.nn.utils.parameters_to_vector(model.policy.parameters()).clone()
    coef = model.baseline_object.coef.copy()  # type: ignore[union-attr]
    counters = (model.num_timesteps, model._n_updates, len(model.ep_info_buffer))  # type: ignore[arg-type]
    per_episode = sample_gradients(model, 3)
    assert all(len(v) == 3 for v in per_episode.values())
    assert th.equal(before, th.nn.utils.parameters_to_vector(model.policy.parameters()))
    np.testing.assert_array_equal(coef, model.baseline_object.coef)  # type: ignore[union-attr]
    assert counters == (model.num_timesteps, model._n_updates, len(model.ep_info_buffer))  # type: ignore[arg-type]
    model.learn(128, reset_num_timesteps=False)  # training goes on


def test_sample_gradients_rejects_bad_episode_count():
    with pytest.raises(ValueError, match=r"n_episodes=0.*positive integers"):
        sample_gradients(REINFORCE("MlpPolicy", "CartPole-v1"), 0)


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_gradient_stats_callback(batch_mode):
    """The logged statistics are those of the batch's per-episode gradients, weighted as in the loss."""

    class Check(GradientStatsCallback):
        def _on_rollout_end(self) -> None:
            super()._on_rollout_end()
            batch = self.model.rollout_buffer.batch
            advantages = batch.advantages
            weights = (advantages - advantages.mean()) / (advantages.std() + 1e-8)  # normalize_advantage=True
            (per_episode,) = scores.episode_gradients(
                self.model.policy, batch.observations, batch.actions, [weights], batch.segment_ids, batch.n_segments
            )
            expected = scores.gradient_statistics(scores.flatten(per_episode))
            self.checked.append((dict(self.logger.name_to_value), expected["grad_variance"]))

    callback = Check()
    callback.checked = []
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=256, batch_mode=batch_mode, seed=0)
    model.learn(1024, callback=callback)
    assert len(callback.checked) == model._n_updates >= 2
    for logged, expected in callback.checked:
        assert logged["train/grad_variance"] == pytest.approx(expected, rel=1e-5) and expected > 0
        assert logged["train/grad_snr"] > 0
    assert "train/grad_cosine" not in callback.checked[0][0]  # no previous batch
    assert all(-1.0 <= logged["train/grad_cosine"] <= 1.0 for logged, _ in callback.checked[1:])


def test_optimal_baseline_trains_and_round_trips(tmp_path):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=256, baseline="optimal_scalar", normalize_advantage=False, seed=0)
    model.learn(1024)
    assert model.baseline_object.value > 0  # type: ignore[union-attr]
    model.save(tmp_path / "m.zip")
    loaded = REINFORCE.load(tmp_path / "m.zip")
    assert loaded.baseline_object.value == model.baseline_object.value  # type: ignore[union-attr]


def test_per_parameter_baseline_in_the_gradient_callback():
    """GradientStatsCallback's per-episode estimates subtract b * S_i, as the update does."""
    model = tabular_model(gamma=1.0, baseline="optimal", normalize_advantage=False, batch_mode="episodes", n_episodes=32)
    model.learn(1)  # fit the constants once
    logged: list[float] = []

    class Check(GradientStatsCallback):
        def _on_rollout_end(self) -> None:
            super()._on_rollout_end()
            logged.append(self.logger.name_to_value["train/grad_variance"])
            batch = self.model.rollout_buffer.batch  # type: ignore[attr-defined]
            ids = batch.segment_ids
            weights = [batch.psi.float(), th.ones_like(batch.advantages)]
            policy = self.model.policy
            g, s = scores.episode_gradients(policy, batch.observations, batch.actions, weights, ids, batch.n_segments)  # type: ignore[arg-type]
            b = self.model.baseline_object.constants  # type: ignore[attr-defined]
            expected = {name: g[name] - th.as_tensor(b[name]).float() * s[name] for name in g}
            logged.append(gradient_statistics(expected)["grad_variance"])

    model.learn(1, callback=Check(), reset_num_timesteps=False)
    assert logged[0] == pytest.approx(logged[1], rel=1e-5) and logged[0] > 0


def test_variance_command_writes_table_csv_and_plot(tmp_path, capsys):
    from sb3_reinforce.cli import main

    main(["variance", "--env", "CartPole-v1", "--episodes", "16", "--reference-episodes", "32", "--n-envs", "4",
          "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert "| reward_to_go | optimal |" in out and "| total | loo |" in out and "| gae | value |" in out
    import csv

    with open(tmp_path / "variance_CartPole-v1.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 15
    assert all(float(r["total_variance"]) > 0 for r in rows)
    assert float(rows[0]["variance_vs_total_none"]) == 1.0
    assert (tmp_path / "variance_CartPole-v1.png").stat().st_size > 10_000


def test_variance_command_rejects_bad_input(tmp_path):
    from sb3_reinforce.cli import main

    with pytest.raises(SystemExit):
        main(["variance", "--episodes", "0", "--out", str(tmp_path)])


def test_episode_chunks_cover_every_step_once_in_whole_episodes():
    """Groups of whole episodes (interleaved in the batch), within the bounds; a long episode alone, in parts."""
    rng = np.random.default_rng(0)
    lengths = [3, 1, 40, 5, 2500, 7, 1, 300, 2]
    ids = np.repeat(np.arange(len(lengths)), lengths)
    ids = th.as_tensor(ids[rng.permutation(len(ids))])
    chunks = scores.episode_chunks(ids, len(lengths))
    assert sorted(th.cat(chunks).tolist()) == list(range(len(ids)))
    for chunk in chunks:
        episodes = th.unique(ids[chunk])
        assert len(chunk) <= scores.SCORE_CHUNK and len(episodes) * len(chunk) <= max(scores.ROW_STEPS, len(chunk))
        if len(episodes) > 1:  # whole episodes only
            assert all(int((ids[chunk] == e).sum()) == lengths[int(e)] for e in episodes)
    assert sum(bool((ids[chunk] == 4).any()) for chunk in chunks) == 3  # 2500 steps: 1024 + 1024 + 452
