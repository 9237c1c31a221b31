"""The floor every scheduler must clear: a uniformly random allowed action."""

from __future__ import annotations

import numpy as np

from astrogym.agents.base import Policy


class RandomValidScheduler(Policy):
    """Uniform over the allowed actions (waiting included) of ``astrogym/TelescopeScheduling-v0``.

    It reads ``env.unwrapped.action_masks()`` at each call (not the observation), so it follows
    one env, not a ``VecEnv``.

    Parameters
    ----------
    env: the scheduling env (wrapped or not) it acts in.
    seed: seed of its own random generator.
    """

    def __init__(self, env, seed: int = 0):
        self.env, self.rng = env, np.random.default_rng(seed)

    @classmethod
    def for_env(cls, env, seed: int = 0) -> "RandomValidScheduler":
        """The same as the constructor (the spelling :class:`GreedyScheduler` uses)."""
        return cls(env, seed=seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.int64(self.rng.choice(np.flatnonzero(self.env.unwrapped.action_masks()))), state
