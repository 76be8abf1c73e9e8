"""The value regression in a worker process (overlap_value_fit): the same computation as in process, in another order."""

import os
import signal
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import sb3_reinforce.common.value_fit as value_fit
from sb3_reinforce import REINFORCE


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch with one thread, as learn() runs it with overlap_value_fit (results depend on the thread count)."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


def make_model(overlap: bool, batch_mode: str, **kwargs: Any) -> REINFORCE:
    # Episodes cut by a time limit (bootstrapped with V of the terminal observation), several envs
    env = make_vec_env(lambda: gym.make("CartPole-v1", max_episode_steps=30), n_envs=3, seed=5)
    params: dict[str, Any] = dict(batch_mode=batch_mode, n_steps=40, n_episodes=4, n_value_epochs=4, seed=5)
    return REINFORCE("MlpPolicy", env, overlap_value_fit=overlap, **{**params, **kwargs})


def training_state(model: REINFORCE) -> dict[str, th.Tensor]:
    state = {f"policy.{key}": value.clone() for key, value in model.policy.state_dict().items()}
    for index, param_state in model.policy.optimizer.state_dict()["state"].items():
        state.update({f"optimizer.{index}.{key}": value.clone() for key, value in param_state.items()})
    return state


def assert_same(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not th.equal(a[key], b[key])]
    assert not different, different


class WorkerProbe(BaseCallback):
    """Records, at each rollout's end, whether the worker process runs and how many batches it fitted."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, int]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        worker = self.model._value_fit
        self.seen.append((worker is not None and worker.alive, worker.fits if worker is not None else -1))


@pytest.mark.parametrize("batch_mode", ["steps", "episodes"])
def test_overlap_gives_the_same_training_as_in_process(batch_mode: str, one_thread: None) -> None:
    in_process = make_model(False, batch_mode)
    in_process.learn(1500)
    overlapped = make_model(True, batch_mode)
    probe = WorkerProbe()
    overlapped.learn(1500, callback=probe)
    assert_same(training_state(in_process), training_state(overlapped))
    assert in_process.logger.name_to_value["train/value_loss"] == overlapped.logger.name_to_value["train/value_loss"]
    # The worker ran and fitted the batches (the first rollout ends before any fit)
    assert all(alive for alive, _ in probe.seen[1:])
    assert probe.seen[-1][1] >= len(probe.seen) - 2 > 0
    # Stopped after learn(), threads restored
    assert overlapped._value_fit is None
    assert th.get_num_threads() == 1


def test_learn_sets_one_thread_and_restores_it() -> None:
    threads = th.get_num_threads()
    seen: list[int] = []

    class Threads(BaseCallback):
        def _on_step(self) -> bool:
            seen.append(th.get_num_threads())
            return True

    make_model(True, "steps").learn(300, callback=Threads())
    assert set(seen) == {1}
    assert th.get_num_threads() == threads


def test_save_from_a_callback_waits_for_the_fit(tmp_path: Any, one_thread: None) -> None:
    """A model saved during a rollout holds the value function fitted on the previous batch, as in process."""

    class SaveAt(BaseCallback):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def _on_step(self) -> bool:
            if self.num_timesteps == 600:
                self.model.save(self.path)
            return True

    for overlap in (False, True):
        make_model(overlap, "steps").learn(900, callback=SaveAt(str(tmp_path / f"model_{overlap}")))
    saved = [REINFORCE.load(tmp_path / f"model_{overlap}", device="cpu") for overlap in (False, True)]
    assert_same(training_state(saved[0]), training_state(saved[1]))
    assert saved[1].overlap_value_fit is True


def test_loaded_model_continues_as_in_process(tmp_path: Any, one_thread: None) -> None:
    """After save/load (new parameter and optimizer-state storage) the worker is started again on the new ones."""
    models = []
    for overlap in (False, True):
        model = make_model(overlap, "episodes")
        model.learn(600)
        model.save(tmp_path / f"model_{overlap}")
        loaded = REINFORCE.load(tmp_path / f"model_{overlap}", env=model.get_env(), device="cpu")
        loaded.learn(600, reset_num_timesteps=False)
        loaded.learn(300, reset_num_timesteps=False)
        models.append(loaded)
    assert_same(training_state(models[0]), training_state(models[1]))


def test_error_in_the_worker_is_raised_in_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getpid()
    fit = value_fit.fit_value_function

    def failing_in_worker(*args: Any, **kwargs: Any) -> th.Tensor:
        if os.getpid() != parent:
            raise FloatingPointError("The value loss is nan (raised in the worker)")
        return fit(*args, **kwargs)

    monkeypatch.setattr(value_fit, "fit_value_function", failing_in_worker)  # the forked worker inherits it
    model = make_model(True, "steps")
    with pytest.raises(FloatingPointError, match="raised in the worker"):
        model.learn(1000)
    assert model._value_fit is None  # stopped


def test_worker_killed_during_a_rollout() -> None:
    class Kill(BaseCallback):
        def _on_step(self) -> bool:
            worker = self.model._value_fit
            if worker is not None and worker.pending and worker.alive:
                os.kill(worker._process.pid, signal.SIGKILL)
                worker._process.join()
            return True

    with pytest.raises(RuntimeError, match="value-fit worker process ended unexpectedly"):
        make_model(True, "steps").learn(1000, callback=Kill())


def test_no_worker_without_value_regression() -> None:
    threads = th.get_num_threads()
    for kwargs in (dict(baseline="mean", normalize_advantage=False), dict(n_value_epochs=0)):
        model = make_model(True, "steps", **kwargs)
        probe = WorkerProbe()
        model.learn(300, callback=probe)
        assert all(seen == (False, -1) for seen in probe.seen)
        assert th.get_num_threads() == threads


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(overlap_value_fit="yes"), r"Invalid overlap_value_fit='yes': allowed values are True, False"),
        (
            dict(overlap_value_fit=True, policy_kwargs=dict(optimizer_class=th.optim.RMSprop)),
            r"Invalid overlap_value_fit=True: the optimizer must be Adam or AdamW, not RMSprop",
        ),
    ],
)
def test_invalid_overlap_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        REINFORCE("MlpPolicy", "CartPole-v1", **kwargs)


def test_shared_features_extractor_with_parameters_is_refused() -> None:
    from stable_baselines3.common.torch_layers import FlattenExtractor

    class Linear(FlattenExtractor):
        """A features extractor with parameters."""

        def __init__(self, observation_space: gym.Space) -> None:
            super().__init__(observation_space)
            self.layer = th.nn.Linear(4, 4)
            self._features_dim = 4

        def forward(self, observations: th.Tensor) -> th.Tensor:
            return self.layer(observations)

    kwargs: dict[str, Any] = dict(features_extractor_class=Linear)
    message = r"shares parameters with the policy \(features_extractor.layer.weight, .*share_features_extractor=False"
    with pytest.raises(ValueError, match=message):
        REINFORCE("MlpPolicy", "CartPole-v1", overlap_value_fit=True, policy_kwargs=kwargs)
    model = REINFORCE(
        "MlpPolicy",
        "CartPole-v1",
        overlap_value_fit=True,
        n_steps=64,
        policy_kwargs={**kwargs, "share_features_extractor": False},
    )
    model.learn(200)  # its own extractor is fitted in the worker


def test_without_fork_the_fit_stays_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that sets overlap_value_fit still trains where no worker can run, with a warning."""
    monkeypatch.setattr(value_fit.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    threads = th.get_num_threads()
    with pytest.warns(
        UserWarning, match="overlap_value_fit=True: this system cannot fork processes; the value function is fitted"
    ):
        model = make_model(True, "steps")
    probe = WorkerProbe()
    model.learn(300, callback=probe)
    assert all(seen == (False, -1) for seen in probe.seen)
    assert th.get_num_threads() == threads
    assert "train/value_loss" in model.logger.name_to_value
