"""Greedy scheduling baseline: the most valuable visible target per second of telescope time."""

from __future__ import annotations

import numpy as np

from astrogym.agents.base import Policy
from astrogym.envs.scheduling.features import (
    N_NODE_FEATURES,
    NF_EXPOSURE,
    NF_OVERHEAD,
    NF_PRIORITY,
    NF_PROGRESS,
    NF_SNR_LEFT,
    NF_VALID,
    OVERHEAD_SCALE_S,
)


class GreedyScheduler(Policy):
    """Pick the allowed target with the most priority per second of telescope time; wait if there is none.

    Score = ``priority / (overhead + n_needed * (exposure + readout))``: the value of completing the
    target's current visit over the time it takes from now. ``n_needed`` comes from the exposure time
    calculator in the current conditions: the env's node feature ``expected_progress_now`` (column
    ``NF_PROGRESS`` of :mod:`astrogym.envs.scheduling.features`, where every column read here is named) is the
    fraction of the visit's requested SNR^2 one exposure started now would add (airmass, sky,
    seeing and clouds included), so ``n_needed = ceil(SNR^2 left / that)``; bad conditions, high
    airmass or a bright Moon make a target cost more exposures. Overhead is the slew or filter
    change from the current pointing, so staying on a target is favoured. This is the issue's
    "priority x quality / (overhead + exposure)" with quality measured as the exposures a visit
    needs; it completes more visits than scoring a single exposure's partial progress, and than
    highest-priority-first (measured on seeded nights: ``astrogym evaluate``).

    Reads only the observation (plus the readout time), so it works on single observations and on
    ``VecEnv`` batches alike.

    Parameters
    ----------
    wait_action: the env's wait action (``env.unwrapped.wait_action``, i.e. ``max_targets``).
    readout_s: the telescope's readout time (``for_env`` takes it from the env).
    max_exposures: targets needing more exposures than this for their visit now (thick cloud, Moon)
        are skipped.
    """

    def __init__(self, wait_action: int, readout_s: float = 8.0, max_exposures: int = 20):
        if not isinstance(wait_action, (int, np.integer)) or wait_action < 0:
            raise ValueError(f"wait_action must be a non-negative integer, got {wait_action!r}")
        if not 0.0 <= readout_s <= 3600.0:
            raise ValueError(f"readout_s={readout_s} is out of range; allowed [0, 3600]")
        if not isinstance(max_exposures, (int, np.integer)) or max_exposures < 1:
            raise ValueError(f"max_exposures must be an integer >= 1, got {max_exposures!r}")
        self.wait_action = int(wait_action)
        self.readout_s = float(readout_s)
        self.max_exposures = int(max_exposures)

    @classmethod
    def for_env(cls, env, **kwargs) -> "GreedyScheduler":
        un = env.unwrapped
        return cls(un.wait_action, readout_s=un.telescope.readout_s, **kwargs)

    def scores(self, nodes: np.ndarray) -> np.ndarray:
        """Score per target (``-inf`` where not allowed); ``nodes`` is (..., max_targets, ``N_NODE_FEATURES``)."""
        gain = nodes[..., NF_PROGRESS]
        left = nodes[..., NF_SNR_LEFT]
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.ceil(np.where(gain > 0, left / np.maximum(gain, 1e-12) - 1e-9, np.inf))
        seconds = (OVERHEAD_SCALE_S * nodes[..., NF_OVERHEAD]
                   + needed * (OVERHEAD_SCALE_S * nodes[..., NF_EXPOSURE] + self.readout_s))
        allowed = (nodes[..., NF_VALID] > 0.5) & (gain > 0.0) & (needed <= self.max_exposures)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = nodes[..., NF_PRIORITY] / np.maximum(seconds, 1.0)
        return np.where(allowed, score, -np.inf)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        if not isinstance(observation, dict) or "nodes" not in observation:
            raise TypeError("GreedyScheduler needs the scheduling env's Dict observation (with 'nodes')")
        nodes = np.asarray(observation["nodes"], dtype=np.float64)
        if nodes.ndim not in (2, 3) or nodes.shape[-1] != N_NODE_FEATURES:
            raise ValueError(f"observation['nodes'] must be (max_targets, {N_NODE_FEATURES}) or (n_envs, max_targets, "
                             f"{N_NODE_FEATURES}), got {nodes.shape}")
        if nodes.shape[-2] != self.wait_action:
            raise ValueError(f"observation has {nodes.shape[-2]} target slots but wait_action={self.wait_action}")
        score = self.scores(nodes)
        best = np.argmax(score, axis=-1)
        none = ~np.isfinite(np.take_along_axis(score, best[..., None], axis=-1)[..., 0])
        action = np.where(none, self.wait_action, best).astype(np.int64)
        return action, state
