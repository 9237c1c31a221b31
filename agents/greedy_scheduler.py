"""Greedy scheduling baseline: the most valuable visible target per second of telescope time."""

from __future__ import annotations

import numpy as np

from astrogym.agents.base import Policy

# Columns of the scheduling env's node features (astrogym.envs.scheduling.env.NODE_FEATURES).
_PRIORITY, _OVERHEAD, _EXPOSURE, _PROGRESS, _VALID = 5, 11, 12, 13, 14


class GreedyScheduler(Policy):
    """Pick ``argmax priority x quality / (overhead + exposure)`` among the allowed targets; wait if none.

    Quality is the visit progress that one exposure started now would make (SNR^2 gathered over
    SNR^2 requested, capped at what the visit still needs), computed by the env from the current
    airmass, sky, seeing and clouds (node feature ``expected_progress_now``); overhead is the
    slew or filter change from the current pointing. Reads only the observation, so it works on
    single observations and on ``VecEnv`` batches alike.

    Parameters
    ----------
    wait_action: the env's wait action (``env.unwrapped.wait_action``, i.e. ``max_targets``).
    min_quality: targets whose expected progress is below this are not worth the time (e.g.
        under thick cloud); 0 observes whatever is allowed.
    """

    def __init__(self, wait_action: int, min_quality: float = 0.0):
        if not isinstance(wait_action, (int, np.integer)) or wait_action < 0:
            raise ValueError(f"wait_action must be a non-negative integer, got {wait_action!r}")
        if not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality={min_quality} is out of range; allowed [0, 1]")
        self.wait_action = int(wait_action)
        self.min_quality = float(min_quality)

    @classmethod
    def for_env(cls, env, **kwargs) -> "GreedyScheduler":
        return cls(env.unwrapped.wait_action, **kwargs)

    def scores(self, nodes: np.ndarray) -> np.ndarray:
        """Score per target (``-inf`` where not allowed); ``nodes`` is (..., max_targets, 16)."""
        seconds = 300.0 * (nodes[..., _OVERHEAD] + nodes[..., _EXPOSURE])
        quality = nodes[..., _PROGRESS]
        score = nodes[..., _PRIORITY] * quality / np.maximum(seconds, 1.0)
        allowed = (nodes[..., _VALID] > 0.5) & (quality > self.min_quality) & (quality > 0.0)
        return np.where(allowed, score, -np.inf)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        if not isinstance(observation, dict) or "nodes" not in observation:
            raise TypeError("GreedyScheduler needs the scheduling env's Dict observation (with 'nodes')")
        nodes = np.asarray(observation["nodes"], dtype=np.float64)
        if nodes.ndim not in (2, 3) or nodes.shape[-1] != 16:
            raise ValueError(f"observation['nodes'] must be (max_targets, 16) or (n_envs, max_targets, 16), got "
                             f"{nodes.shape}")
        if nodes.shape[-2] != self.wait_action:
            raise ValueError(f"observation has {nodes.shape[-2]} target slots but wait_action={self.wait_action}")
        score = self.scores(nodes)
        best = np.argmax(score, axis=-1)
        none = ~np.isfinite(np.take_along_axis(score, best[..., None], axis=-1)[..., 0])
        action = np.where(none, self.wait_action, best).astype(np.int64)
        return action, state
