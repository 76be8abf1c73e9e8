"""
The natural policy gradient step (``policy_step="natural"``) against the exact Fisher matrix of a linear-softmax policy.

The policy is that of tests/test_diagnostics.py's tabular MDP: ``pi(a|s) = softmax(W e_s + c)_a``, whose Fisher matrix
over a batch of states is ``F = mean_t J_t^T (diag(p_t) - p_t p_t^T) J_t``, ``J_t`` the Jacobian of the logits with
respect to ``(W, c)``: computed here directly, without the KL's Hessian the algorithm uses.
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE
from tests.test_diagnostics import C, TabularMDP, W


def natural_model(**kwargs) -> REINFORCE:
    env = make_vec_env(TabularMDP, n_envs=8, seed=0)
    model = REINFORCE("MlpPolicy", env, policy_kwargs=dict(net_arch=[]), batch_mode="episodes", n_episodes=64,
                      policy_step="natural", normalize_advantage=False, seed=0, **kwargs)  # fmt: skip
    with th.no_grad():
        model.policy.action_net.weight.copy_(W)
        model.policy.action_net.bias.copy_(C)
    return model


def exact_fisher(model: REINFORCE, observations: th.Tensor) -> np.ndarray:
    """mean_t J_t^T (diag(p_t) - p_t p_t^T) J_t over the batch's states, parameters ordered (weight, bias)."""
    weight, bias = model.policy.action_net.weight.detach().double(), model.policy.action_net.bias.detach().double()
    n_actions, n_states = weight.shape
    fisher = np.zeros((weight.numel() + bias.numel(),) * 2)
    for obs in observations.long().flatten():
        one_hot = th.nn.functional.one_hot(obs, n_states).double()
        p = th.softmax(weight @ one_hot + bias, dim=0).numpy()
        # d logits_a / d W[a', s'] = [a == a'] e_s[s'];  d logits_a / d c[a'] = [a == a']
        jacobian = np.concatenate([np.kron(np.eye(n_actions), one_hot.numpy()[None]), np.eye(n_actions)], axis=1)
        fisher += jacobian.T @ (np.diag(p) - np.outer(p, p)) @ jacobian
    return fisher / len(observations)


def rollout_and_gradient(model: REINFORCE, callback) -> tuple:
    """
    One rollout of the model; returns its batch, the actor's parameters (weight, bias), their flat values before the
    update, ``log pi`` of the batch's actions (with its graph) and ``g``, the batch's policy gradient as the loss gives
    it (without a per-parameter baseline's term).
    """
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)  # type: ignore[arg-type]
    batch = model.rollout_buffer.batch
    params = [model.policy.action_net.weight, model.policy.action_net.bias]
    before = th.cat([p.detach().flatten() for p in params]).double().numpy()
    log_prob = model.policy.get_distribution(batch.observations).log_prob(batch.actions)
    objective = (batch.policy_weights(False) * log_prob).mean()
    g = th.cat([x.flatten() for x in th.autograd.grad(objective, params, retain_graph=True)]).double().numpy()
    return batch, params, before, log_prob, g


@pytest.mark.parametrize("baseline, damping", [(None, 1e-4), ("mean", 1e-4), ("optimal", 0.1)])
def test_natural_step_is_the_fisher_inverse_times_the_gradient(baseline, damping):
    """
    The parameter change is along F^-1 g (cosine > 0.999), and the step's KL is within 20% of target_kl.

    The softmax Fisher matrix is singular (shifting every logit of a state changes nothing). With a scalar baseline g
    is in its range, F^-1 is its pseudo-inverse, and a small damping reaches it. A per-parameter baseline's term
    b * S has components along the singular directions (they do not change the policy): there the algorithm's
    damped F + damping * I is what is inverted, and its quadratic form is what reaches target_kl.
    """
    target_kl = 0.01
    model = natural_model(baseline=baseline, cg_damping=damping, cg_max_steps=20, target_kl=target_kl)
    _, callback = model._setup_learn(10**6, None)
    for _ in range(2):  # the second batch has a fitted mean or per-parameter baseline
        batch, params, before, log_prob, g = rollout_and_gradient(model, callback)
        # with a per-parameter baseline, g has its term too
        constants = getattr(model.baseline_object, "constants", None)
        if constants is not None:
            score = th.autograd.grad(log_prob.mean(), params)
            b = np.concatenate([constants["action_net.weight"].ravel(), constants["action_net.bias"].ravel()])
            g = g - b * th.cat([x.flatten() for x in score]).double().numpy()
        with th.no_grad():
            old_probs = model.policy.get_distribution(batch.observations).distribution.probs.clone()  # type: ignore[union-attr]
        fisher = exact_fisher(model, batch.observations)  # type: ignore[arg-type]
        if baseline == "optimal":
            fisher = fisher + damping * np.eye(len(fisher))
        expected = np.linalg.pinv(fisher, rcond=1e-10) @ g

        model.train()
        change = th.cat([p.detach().flatten() for p in params]).double().numpy() - before
        cosine = change @ expected / (np.linalg.norm(change) * np.linalg.norm(expected))
        assert cosine > 0.999, cosine
        with th.no_grad():
            new_probs = model.policy.get_distribution(batch.observations).distribution.probs  # type: ignore[union-attr]
        kl = float((old_probs * (old_probs.log() - new_probs.log())).sum(dim=1).mean())
        if baseline != "optimal":
            assert kl == pytest.approx(target_kl, rel=0.2), kl
        assert model.logger.name_to_value["train/kl"] == pytest.approx(kl, rel=1e-4)
        assert model.logger.name_to_value["train/cg_residual"] < 1e-3
        # The quadratic KL of the step is the target: 1/2 d^T F d = target_kl (damping 1e-4 aside)
        assert 0.5 * change @ fisher @ change == pytest.approx(target_kl, rel=0.01)


def test_natural_step_size_bounds_the_step_below_the_trust_region():
    """
    With natural_step_size alpha, the step is alpha F^-1 g where that is inside the trust region, so its quadratic KL
    is 1/2 alpha^2 g^T F^-1 g < target_kl; with an alpha too large for the region the step is the KL-target one.
    """
    steps = {}
    for alpha in (None, 1e-3, 1e3):
        model = natural_model(baseline=None, cg_damping=1e-4, cg_max_steps=20, target_kl=0.01, natural_step_size=alpha)
        _, callback = model._setup_learn(10**6, None)
        batch, params, before, _, g = rollout_and_gradient(model, callback)
        fisher = exact_fisher(model, batch.observations)  # type: ignore[arg-type]
        natural = np.linalg.pinv(fisher, rcond=1e-10) @ g
        model.train()
        steps[alpha] = change = th.cat([p.detach().flatten() for p in params]).double().numpy() - before
        quadratic_kl = 0.5 * change @ fisher @ change
        if alpha == 1e-3:
            # the same batch as the other models (same seed): alpha F^-1 g, well inside the trust region
            np.testing.assert_allclose(change, alpha * natural, rtol=0.01)  # float32 parameters, damping 1e-4
            assert quadratic_kl < 0.01 / 100
            assert model.logger.name_to_value["train/step_size"] == alpha
        else:
            assert quadratic_kl == pytest.approx(0.01, rel=0.01)
    np.testing.assert_allclose(steps[1e3], steps[None])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(baseline="value"),
        dict(baseline="value", return_estimator="gae"),
        dict(baseline="loo", batch_mode="episodes", n_episodes=4),
        dict(baseline="linear", return_estimator="total"),
    ],
)
def test_natural_step_trains_with_every_baseline(kwargs):
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=64, policy_step="natural",
                      target_kl=0.02, seed=0, **kwargs)  # fmt: skip
    before = [p.detach().clone() for p in model.policy.action_net.parameters()]
    model.learn(1000)
    logged = model.logger.name_to_value
    assert 0 < logged["train/kl"] < 0.1 and logged["train/step_size"] > 0 and logged["train/cg_residual"] < 1
    assert not all(th.equal(a, b) for a, b in zip(before, model.policy.action_net.parameters(), strict=True))


def test_natural_step_with_a_shared_features_extractor_and_value_loss():
    """A CNN's features extractor, shared by the actor and V: the value step runs before the actor moves."""
    from stable_baselines3.common.envs import FakeImageEnv

    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    model = REINFORCE("CnnPolicy", env, n_steps=16, policy_step="natural", seed=0,
                      policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)))  # fmt: skip
    model.learn(64)
    assert model._n_updates > 0 and "train/value_loss" in model.logger.name_to_value


@pytest.mark.parametrize("case", ["box", "gsde", "masked_multidiscrete", "masked_multibinary"])
def test_natural_step_with_every_distribution(case):
    """The KL and its Fisher-vector products for Gaussian, gSDE and sb3-contrib's masked multi-categorical policies."""
    from sb3_contrib.common.envs import InvalidActionEnvMultiBinary, InvalidActionEnvMultiDiscrete

    from sb3_reinforce import MaskableREINFORCE

    if case in ("box", "gsde"):
        model = REINFORCE("MlpPolicy", "Pendulum-v1", n_steps=256, policy_step="natural", use_sde=case == "gsde", seed=0)
    else:
        env = (InvalidActionEnvMultiDiscrete(dims=[4, 4], n_invalid_actions=3) if case == "masked_multidiscrete"
               else InvalidActionEnvMultiBinary(dims=3, n_invalid_actions=2))  # fmt: skip
        model = MaskableREINFORCE("MlpPolicy", env, batch_mode="episodes", n_episodes=2, policy_step="natural", seed=0)
    model.learn(600)
    logged = model.logger.name_to_value
    assert 0.001 < logged["train/kl"] < 0.03 and logged["train/cg_residual"] < 0.1, logged
