"""The policy interface shared by baselines and trained agents (stable-baselines3's ``predict``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import gymnasium as gym


def one_observation(observation: Any, who: str) -> tuple[Any, bool]:
    """For policies that follow one env (planners, simulating lookaheads): a scheduling env's Dict observation, or
    a batch of one of them, as one observation; returns ``(observation, batched)``. Anything without a batched
    ``nodes`` entry is returned as it is.

    Raises
    ------
    ValueError: a batch of several observations (naming ``who``).
    """
    if not isinstance(observation, dict) or "nodes" not in observation or np.asarray(observation["nodes"]).ndim != 3:
        return observation, False
    n = np.asarray(observation["nodes"]).shape[0]
    if n != 1:
        raise ValueError(f"{who} follows one env; got a batch of {n} observations")
    return {k: np.asarray(v)[0] for k, v in observation.items()}, True


class Policy:
    """A policy with stable-baselines3's ``predict`` signature.

    Subclasses implement :meth:`predict`; ``obs`` may be one observation or a batch (leading
    dimension = number of envs, as from a ``VecEnv``). Stateful policies return their state
    and reset the entries where ``episode_start`` is true.
    """

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any internal state (start of a new episode for every env)."""


class ZeroPolicy(Policy):
    """Always commands zero: the open-loop reference every controller is compared with."""

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Box):
        self.observation_space = observation_space
        self.action_space = action_space

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation)
        batched = obs.ndim > len(self.observation_space.shape)
        shape = ((obs.shape[0],) if batched else ()) + self.action_space.shape
        return np.zeros(shape, dtype=self.action_space.dtype), state
