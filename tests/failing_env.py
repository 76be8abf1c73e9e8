"""An env that breaks mid-training (``FailingCartPole-v0``), to test that one failed run does not stop the others."""

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class FailingCartPole(CartPoleEnv):
    """CartPole whose ``step`` raises after ``fail_after`` steps of this instance."""

    def __init__(self, fail_after: int = 50, **kwargs):
        super().__init__(**kwargs)
        self.fail_after = fail_after
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps > self.fail_after:
            raise RuntimeError("FailingCartPole: simulated crash")
        return super().step(action)


if "FailingCartPole-v0" not in gym.registry:
    gym.register("FailingCartPole-v0", entry_point=FailingCartPole, max_episode_steps=500)
