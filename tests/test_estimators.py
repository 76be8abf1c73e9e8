"""
Every estimator and baseline, through the algorithm's own rollouts, against plain-loop references computed from
what the envs emitted: several envs of different episode lengths, episodes starting mid-rollout, cut-offs at the
rollout end, time-limit truncation, gamma in {1, 0.9}, lambda in {1, 0.9}.
"""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

from sb3_reinforce import REINFORCE
from tests.reference import KnownRewardEnv, gae_loop, reward_to_go_loop, split_episodes

# (episode length, reward offset, time limit or None) of each env
ENV_SPECS = [(3, 0.0, None), (5, 1.0, 4), (7, -2.0, None)]


class Recorder(VecEnvWrapper):
    """Records, per env, every transition the algorithm sees: (obs, reward, done, truncated, terminal obs)."""

    def __init__(self, venv: Any) -> None:
        super().__init__(venv)
        self.records: list[list[dict]] = [[] for _ in range(venv.num_envs)]

    def reset(self) -> Any:
        self.last_obs = self.venv.reset()
        for records in self.records:
            if records:
                records[-1]["reset_after"] = True
        return self.last_obs

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for e in range(self.num_envs):
            self.records[e].append(
                dict(
                    obs=self.last_obs[e].copy(),
                    reward=float(rewards[e]),
                    done=bool(dones[e]),
                    truncated=bool(infos[e].get("TimeLimit.truncated", False)),
                    terminal_obs=infos[e].get("terminal_observation"),
                )
            )
        self.last_obs = obs
        return obs, rewards, dones, infos


def make_env(specs: list = ENV_SPECS) -> Recorder:
    def factory(length: int, offset: float, limit: int | None) -> Any:
        def _init() -> gym.Env:
            env: gym.Env = KnownRewardEnv(length, offset)
            if limit is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps=limit)
            return Monitor(env)

        return _init

    return Recorder(DummyVecEnv([factory(*spec) for spec in specs]))


class TimeMajor:
    """The model's last batch laid out time-major ``(n_rows, n_envs)``, as the rollout was stored (0 off the batch)."""

    def __init__(self, model: REINFORCE) -> None:
        buffer, batch = model.rollout_buffer, model.rollout_buffer.batch
        self.pos, self.actions, self.batch = buffer.pos, buffer.actions, batch
        self.valid = self.lay_out(th.ones(len(batch))).astype(bool)
        self.advantages = self.lay_out(batch.advantages)
        self.values = None if batch.values is None else self.lay_out(batch.values)
        self.value_targets = None if batch.value_targets is None else self.lay_out(batch.value_targets)
        self.score_weights = self.lay_out(batch.score_weights)

    def lay_out(self, values: th.Tensor) -> np.ndarray:
        array = np.zeros((self.pos, self.actions.shape[1]))
        array[self.batch.rows, self.batch.envs] = values.cpu().numpy()
        return array


def run_rollouts(model: REINFORCE, n_rollouts: int) -> None:
    """Collect rollouts as learn() does; the envs are reset only before the first one."""
    if not hasattr(model, "_test_callback"):
        _, model._test_callback = model._setup_learn(10**6, None)
    callback = model._test_callback
    for _ in range(n_rollouts):
        assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def values_of(model: REINFORCE, obs: list[np.ndarray]) -> np.ndarray:
    with th.no_grad():
        return model.policy.predict_values(th.as_tensor(np.array(obs))).flatten().numpy().astype(np.float64)


def reference(model: REINFORCE, env: Recorder, n_rows: int) -> dict[str, np.ndarray]:
    """Psi, V-targets and valid mask of the last rollout (n_rows per env), computed with plain loops."""
    gamma, use_value = model.gamma, model.baseline == "value"
    n_envs = env.num_envs
    psi, targets = np.zeros((n_rows, n_envs)), np.zeros((n_rows, n_envs))
    valid = np.zeros((n_rows, n_envs), dtype=bool)
    last_values = values_of(model, list(model._last_obs)) if use_value else np.zeros(n_envs)
    for e in range(n_envs):
        full = env.records[e]
        offset = len(full) - n_rows
        rewards = [r["reward"] for r in full]
        dones = [r["done"] for r in full]
        if use_value:  # time-limit truncation: bootstrap with V(terminal observation)
            for i, r in enumerate(full):
                if r["truncated"]:
                    rewards[i] += gamma * values_of(model, [r["terminal_obs"]])[0]
        window_rewards, window_dones = rewards[offset:], dones[offset:]
        boot = float(last_values[e]) if use_value else None
        rtg = reward_to_go_loop(window_rewards, window_dones, gamma, boot)
        if model.return_estimator == "gae":
            window_values = list(values_of(model, [r["obs"] for r in full[offset:]]))
            adv = gae_loop(window_rewards, window_values, window_dones, float(last_values[e]), gamma, model.gae_lambda)
            psi[:, e] = adv
            targets[:, e] = np.array(adv) + np.array(window_values)
        elif model.return_estimator == "total":
            for episode in split_episodes(dones):
                window_part = [i for i in episode if i >= offset]
                if not window_part:
                    continue
                total = sum(gamma**j * rewards[i] for j, i in enumerate(episode))
                if not dones[episode[-1]] and boot is not None:
                    total += gamma ** len(episode) * boot
                psi[[i - offset for i in window_part], e] = total
            targets[:, e] = rtg
        else:
            psi[:, e] = rtg
            targets[:, e] = rtg
        for episode in split_episodes(window_dones):
            valid[episode, e] = use_value or window_dones[episode[-1]]
    return dict(psi=psi, targets=targets, valid=valid)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("estimator", ["reward_to_go", "total"])
@pytest.mark.parametrize("baseline", [None, "value"])
def test_estimators_match_reference(gamma, estimator, baseline):
    env = make_env()
    model = REINFORCE("MlpPolicy", env, n_steps=6, gamma=gamma, return_estimator=estimator, baseline=baseline, seed=0)
    for _ in range(3):  # the later rollouts start with episodes begun in the earlier ones
        run_rollouts(model, 1)
        buffer = TimeMajor(model)
        expected = reference(model, env, buffer.pos)
        np.testing.assert_array_equal(buffer.valid, expected["valid"])
        b = buffer.values if baseline == "value" else 0.0
        np.testing.assert_allclose(buffer.advantages[buffer.valid], (expected["psi"] - b)[buffer.valid], rtol=1e-5, atol=1e-5)
        if baseline == "value":
            assert buffer.value_targets is not None
            np.testing.assert_allclose(buffer.value_targets, expected["targets"], rtol=1e-5, atol=1e-5)
        model.train()


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("gae_lambda", [1.0, 0.9])
def test_gae_matches_reference(gamma, gae_lambda):
    env = make_env()
    model = REINFORCE("MlpPolicy", env, n_steps=6, gamma=gamma, return_estimator="gae", gae_lambda=gae_lambda, seed=1)
    for _ in range(3):
        run_rollouts(model, 1)
        buffer = TimeMajor(model)
        expected = reference(model, env, buffer.pos)
        assert buffer.valid.all()
        np.testing.assert_allclose(buffer.advantages, expected["psi"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(buffer.value_targets, expected["targets"], rtol=1e-5, atol=1e-5)
        model.train()


def test_value_baseline_is_the_value_head_before_fitting():
    """b_t = V(s_t) as evaluated with the parameters that generated the rollout."""
    env = make_env()
    model = REINFORCE("MlpPolicy", env, n_steps=6, seed=2)
    run_rollouts(model, 1)
    obs = [r["obs"] for t in range(6) for r in [env.records[e][t] for e in range(3)]]
    np.testing.assert_allclose(TimeMajor(model).values.ravel(), values_of(model, obs), rtol=1e-5, atol=1e-6)
    before = TimeMajor(model).values.copy()
    model.train()
    assert not np.allclose(before.ravel(), values_of(model, obs))


@pytest.mark.parametrize("estimator", ["reward_to_go", "total"])
def test_mean_baseline_is_the_previous_batch_mean(estimator):
    env = make_env()
    model = REINFORCE("MlpPolicy", env, n_steps=7, return_estimator=estimator, baseline="mean", gamma=0.9, seed=0)
    previous_mean = 0.0
    for _ in range(3):
        run_rollouts(model, 1)
        buffer = TimeMajor(model)
        expected = reference(model, env, buffer.pos)
        valid = expected["valid"]
        np.testing.assert_allclose(buffer.advantages[valid], expected["psi"][valid] - previous_mean, rtol=1e-6, atol=1e-6)
        previous_mean = expected["psi"][valid].mean()
        model.train()


def test_linear_baseline_is_the_previous_batch_ridge_fit():
    env = make_env()
    model = REINFORCE("MlpPolicy", env, n_steps=8, baseline="linear", gamma=0.9, seed=0)
    lengths = [spec[0] for spec in ENV_SPECS]
    coef = None
    for _ in range(3):
        run_rollouts(model, 1)
        buffer = TimeMajor(model)
        expected = reference(model, env, buffer.pos)
        valid = expected["valid"]
        rows, envs = np.nonzero(valid)
        obs = np.array([env.records[e][len(env.records[e]) - buffer.pos + t]["obs"] for t, e in zip(rows, envs, strict=True)])
        k = np.array([round(o[0] * lengths[e]) for o, e in zip(obs, envs, strict=True)])
        x = np.clip(obs.astype(np.float64), -10, 10)
        u = (k / 100.0)[:, None]
        features = np.hstack([x, x**2, u, u**2, u**3, np.ones_like(u)])
        baseline = np.zeros(len(rows)) if coef is None else features @ coef
        np.testing.assert_allclose(buffer.advantages[rows, envs], expected["psi"][rows, envs] - baseline, rtol=1e-4, atol=1e-4)
        y = expected["psi"][rows, envs]
        coef = np.linalg.solve(features.T @ features + 1e-5 * np.eye(features.shape[1]), features.T @ y)
        model.train()


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_discount_score_weights_are_gamma_to_the_episode_step(gamma):
    env = make_env()
    model = REINFORCE("MlpPolicy", env, n_steps=9, gamma=gamma, discount_score=True, seed=0)
    run_rollouts(model, 2)
    buffer = TimeMajor(model)
    lengths = [spec[0] for spec in ENV_SPECS]
    k = np.array(
        [[round(env.records[e][len(env.records[e]) - 9 + t]["obs"][0] * lengths[e]) for e in range(3)] for t in range(9)]
    )
    assert buffer.score_weights is not None
    np.testing.assert_allclose(buffer.score_weights, gamma**k)


@pytest.mark.parametrize("baseline", [None, "value"])
def test_episodes_mode_uses_the_first_episodes_to_start(baseline):
    """Whole-episode batches: exactly the first n_episodes episodes to start, each complete, with exact returns."""
    specs = [(2, 0.0, None), (5, 1.0, None), (3, 0.5, 2)]
    env = make_env(specs)
    n_episodes = 5
    model = REINFORCE("MlpPolicy", env, n_steps=2, batch_mode="episodes", n_episodes=n_episodes, baseline=baseline, gamma=0.9)
    for _ in range(3):
        before = [len(r) for r in env.records]
        run_rollouts(model, 1)
        buffer = TimeMajor(model)
        # Episodes of this rollout, with their start row; the envs were reset at the start of the rollout.
        starts = []
        for e in range(3):
            window = env.records[e][before[e] :]
            assert len(window) == buffer.pos
            for episode in split_episodes([r["done"] for r in window]):
                starts.append((episode[0], e, episode))
        starts.sort(key=lambda item: (item[0], item[1]))
        chosen = starts[:n_episodes]
        expected_valid = np.zeros((buffer.pos, 3), dtype=bool)
        for _, e, episode in chosen:
            window = env.records[e][before[e] :]
            assert window[episode[-1]]["done"], "every episode of the batch is complete"
            expected_valid[episode, e] = True
            rewards = [window[i]["reward"] for i in episode]
            if baseline == "value" and window[episode[-1]]["truncated"]:
                rewards[-1] += 0.9 * values_of(model, [window[episode[-1]]["terminal_obs"]])[0]
            rtg = reward_to_go_loop(rewards, [False] * (len(episode) - 1) + [True], 0.9, None)
            b = TimeMajor(model).values[episode, e] if baseline == "value" else 0.0
            np.testing.assert_allclose(buffer.advantages[episode, e], np.array(rtg) - b, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(buffer.valid, expected_valid)
        # The rollout ends as soon as the last chosen episode ends.
        assert buffer.pos == max(episode[-1] for _, _, episode in chosen) + 1
        model.train()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(baseline=None, return_estimator="reward_to_go"),
        dict(baseline=None, return_estimator="total"),
        dict(baseline="mean", return_estimator="reward_to_go", gamma=0.9, discount_score=True),
        dict(baseline="value", return_estimator="reward_to_go"),
        dict(baseline="value", return_estimator="gae", gae_lambda=0.9, gamma=0.9),
        dict(baseline="optimal", return_estimator="reward_to_go", gamma=0.9, discount_score=True),
        dict(baseline="optimal", return_estimator="total"),
    ],
)
def test_sgd_update_follows_the_policy_gradient_estimator(kwargs):
    """
    With SGD, one batch, no normalisation, entropy or clipping, the actor's parameter change is exactly
    lr * (1/N) sum_t w_t grad log pi(a_t|s_t) (Psi_t - b_t), with the sum computed here one step at a time.
    """
    env = make_env()
    lr = 1.0  # large, so that the change is far above float32 rounding of the weights
    model = REINFORCE(
        "MlpPolicy",
        env,
        learning_rate=lr,
        n_steps=8,
        normalize_advantage=False,
        ent_coef=0.0,
        max_grad_norm=float("inf"),
        n_value_epochs=0,
        policy_kwargs=dict(optimizer_class=th.optim.SGD, optimizer_kwargs={}),
        seed=3,
        **kwargs,
    )
    gamma = model.gamma
    run_rollouts(model, 1)
    model.train()  # fits the mean baseline to the first batch
    run_rollouts(model, 1)  # the second batch starts mid-episode and has a fitted mean baseline
    buffer = TimeMajor(model)
    expected = reference(model, env, buffer.pos)
    valid = expected["valid"]
    psi = expected["psi"]
    if model.baseline == "mean":
        # b is the first batch's mean of Psi: recover it from the buffer (checked elsewhere) as Psi - A.
        b = (psi - buffer.advantages)[valid]
        np.testing.assert_allclose(b, b[0])
        baseline_values = np.full_like(psi, b[0])
    elif model.baseline == "value" and model.return_estimator != "gae":
        baseline_values = buffer.values
    else:
        baseline_values = np.zeros_like(psi)
    # The per-parameter baseline: the step is lr * (1/N) sum_t w_t grad log pi (Psi_t - b), b a vector
    constants = getattr(model.baseline_object, "constants", None)
    assert (constants is not None) == (model.baseline == "optimal")
    lengths = [spec[0] for spec in ENV_SPECS]

    actor = {
        name: p for name, p in model.policy.named_parameters() if not name.startswith(("value_net", "mlp_extractor.value"))
    }
    before = {name: p.detach().clone() for name, p in actor.items()}
    grad_sum = {name: th.zeros_like(p) for name, p in actor.items()}
    score_sum = {name: th.zeros_like(p) for name, p in actor.items()}
    n_valid = 0
    for t in range(buffer.pos):
        for e in range(3):
            if not valid[t, e]:
                continue
            n_valid += 1
            record = env.records[e][len(env.records[e]) - buffer.pos + t]
            k = round(record["obs"][0] * lengths[e])
            weight = gamma**k if model.discount_score else 1.0
            action = th.as_tensor(buffer.actions[t, e]).long().flatten()
            log_prob = model.policy.get_distribution(th.as_tensor(record["obs"][None])).log_prob(action)
            grads = th.autograd.grad(log_prob.sum(), list(actor.values()), allow_unused=True)
            for (name, _), grad in zip(actor.items(), grads, strict=True):
                if grad is not None:
                    grad_sum[name] += weight * (psi[t, e] - baseline_values[t, e]) * grad
                    score_sum[name] += weight * grad
    if constants is not None:
        assert set(constants) == {name for name in actor if name.startswith(("action_net", "mlp_extractor.policy"))}
        assert all(np.abs(b).max() > 0 for b in constants.values())
        grad_sum = {name: g - th.as_tensor(constants[name]).float() * score_sum[name] for name, g in grad_sum.items()}
    model.train()
    for name, p in actor.items():
        np.testing.assert_allclose(
            (p.detach() - before[name]).numpy(), (lr * grad_sum[name] / n_valid).numpy(), rtol=1e-3, atol=2e-6
        )


@pytest.mark.parametrize("estimator", ["reward_to_go", "total"])
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_leave_one_out_baseline_matches_reference(estimator, gamma):
    """
    Each episode's baseline is the mean over the other episodes of its batch: of their returns R_j (total), or of
    G_{j,k} over the other episodes that reach step k (reward-to-go; 0 where none does). Three envs, episodes of
    2, 5 and 2 steps (the last cut by a time limit), batches of the first 5 episodes to start.
    """
    env = make_env([(2, 0.0, None), (5, 1.0, None), (3, 0.5, 2)])
    model = REINFORCE("MlpPolicy", env, n_steps=2, batch_mode="episodes", n_episodes=5, baseline="loo",
                      return_estimator=estimator, gamma=gamma, seed=0)  # fmt: skip
    for _ in range(2):
        before = [len(r) for r in env.records]
        run_rollouts(model, 1)
        buffer = TimeMajor(model)
        episodes = []  # (env, rows, Psi of each step)
        for e in range(3):
            window = env.records[e][before[e] :]
            for episode in split_episodes([r["done"] for r in window]):
                if buffer.valid[episode[0], e]:
                    rewards = [window[i]["reward"] for i in episode]
                    rtg = reward_to_go_loop(rewards, [False] * (len(episode) - 1) + [True], gamma, None)
                    episodes.append((e, episode, [rtg[0]] * len(episode) if estimator == "total" else rtg))
        assert len(episodes) == 5
        no_other = 0
        for i, (e, rows, psi) in enumerate(episodes):
            for k, row in enumerate(rows):
                if estimator == "total":
                    others = [p[0] for j, (_, _, p) in enumerate(episodes) if j != i]
                else:
                    others = [p[k] for j, (_, _, p) in enumerate(episodes) if j != i and len(p) > k]
                no_other += not others
                b = sum(others) / len(others) if others else 0.0
                assert buffer.advantages[row, e] == pytest.approx(psi[k] - b, rel=1e-6, abs=1e-6)
        assert no_other == (3 if estimator == "reward_to_go" else 0)  # steps 2..4 of the 5-step episode
        model.train()


@pytest.mark.parametrize("baseline", [None, "value"])
def test_entropy_bonus_adds_ent_coef_times_the_entropy_gradient(baseline):
    """
    With SGD, the update with ``ent_coef=c`` differs from the one with ``ent_coef=0`` (where the entropy is only
    logged, not differentiated) by ``lr * c * grad mean_t H[pi(.|s_t)]`` on the same batch.
    """
    changes, models = [], []
    for ent_coef in (0.0, 0.5):
        model = REINFORCE(
            "MlpPolicy",
            make_env(),
            learning_rate=0.1,
            n_steps=8,
            normalize_advantage=False,
            ent_coef=ent_coef,
            max_grad_norm=float("inf"),
            n_value_epochs=0,
            baseline=baseline,
            policy_kwargs=dict(optimizer_class=th.optim.SGD, optimizer_kwargs={}),
            seed=3,
        )
        run_rollouts(model, 1)
        before = [p.detach().clone() for p in model.policy.parameters()]
        batch = model.rollout_buffer.batch
        entropy = model.policy.get_distribution(batch.observations).entropy().mean()
        entropy_grads = th.autograd.grad(entropy, list(model.policy.parameters()), allow_unused=True)
        model.train()
        changes.append([p.detach() - b for p, b in zip(model.policy.parameters(), before, strict=True)])
        models.append((model, entropy_grads))
    np.testing.assert_allclose(models[0][0].rollout_buffer.batch.advantages, models[1][0].rollout_buffer.batch.advantages)
    assert "train/entropy_loss" in models[0][0].logger.name_to_value
    for without, with_bonus, grad in zip(changes[0], changes[1], models[1][1], strict=True):
        expected = th.zeros_like(without) if grad is None else 0.1 * 0.5 * grad
        np.testing.assert_allclose((with_bonus - without).numpy(), expected.numpy(), rtol=1e-3, atol=1e-6)
