"""
Plain-loop references of the policy-gradient estimators (Williams, 1992; Seita, 2017; Schulman et al., 2016),
written independently of ``sb3_reinforce.common.returns``:
one Python loop per episode and per step, no vectorisation, no recursion shared with the package.
"""

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np


def split_episodes(dones: list[bool]) -> list[list[int]]:
    """Indices of each episode in a single env's sequence (the last one may be unfinished)."""
    episodes: list[list[int]] = [[]]
    for i, done in enumerate(dones):
        episodes[-1].append(i)
        if done:
            episodes.append([])
    return [ep for ep in episodes if ep]


def reward_to_go_loop(rewards: list[float], dones: list[bool], gamma: float, bootstrap: float | None) -> list[float]:
    """G_t = sum_{t'=t}^{end} gamma^(t'-t) r_t' (+ gamma^(end-t+1) * bootstrap for an unfinished last episode)."""
    out = [0.0] * len(rewards)
    for episode in split_episodes(dones):
        unfinished = not dones[episode[-1]]
        for pos, i in enumerate(episode):
            total = 0.0
            for power, j in enumerate(episode[pos:]):
                total += gamma**power * rewards[j]
            if unfinished and bootstrap is not None:
                total += gamma ** (len(episode) - pos) * bootstrap
            out[i] = total
    return out


def gae_loop(
    rewards: list[float], values: list[float], dones: list[bool], last_value: float, gamma: float, lam: float
) -> list[float]:
    """A_t = sum_l (gamma lam)^l delta_{t+l} over the rest of the episode, delta_t = r_t + gamma V_{t+1} - V_t."""
    n = len(rewards)
    deltas = []
    for t in range(n):
        next_value = 0.0 if dones[t] else (values[t + 1] if t + 1 < n else last_value)
        deltas.append(rewards[t] + gamma * next_value - values[t])
    out = [0.0] * n
    for episode in split_episodes(dones):
        for pos, i in enumerate(episode):
            out[i] = sum((gamma * lam) ** power * deltas[j] for power, j in enumerate(episode[pos:]))
    return out


class KnownRewardEnv(gym.Env[np.ndarray, int]):
    """
    Episodes of ``episode_length`` steps; the reward of step ``k`` (0-based) is ``offset + k + 0.5 * action``.
    Observation: ``[k / episode_length, offset]``. Every transition is appended to ``history``.
    """

    def __init__(self, episode_length: int = 5, offset: float = 0.0) -> None:
        self.episode_length = episode_length
        self.offset = offset
        self.observation_space = gym.spaces.Box(-10.0, 10.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.k = 0
        self.history: list[dict] = []

    def _obs(self) -> np.ndarray:
        return np.array([self.k / self.episode_length, self.offset], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.k = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = self.offset + self.k + 0.5 * int(action)
        entry = {"k": self.k, "reward": reward, "obs": self._obs()}
        self.k += 1
        terminated = self.k >= self.episode_length
        entry.update(terminated=terminated, next_obs=self._obs())
        self.history.append(entry)
        return self._obs(), reward, terminated, False, {}


@dataclass
class EnvHistory:
    """One env's transitions with episode boundaries, as the algorithm's VecEnv saw them."""

    rewards: list[float] = field(default_factory=list)
    dones: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    obs: list[np.ndarray] = field(default_factory=list)
    next_obs: list[np.ndarray] = field(default_factory=list)
    k: list[int] = field(default_factory=list)
