"""Plans of the offline optimum: exposures, the model's candidate blocks, and a plan's value under the env's reward.

Shared by :mod:`model` (the CP-SAT program), :mod:`warm_start` (its greedy starting solution) and
:mod:`lp_bound` (the upper bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

PROGRESS_SCALE = 100_000  # progress scale of the integer model (1 = a complete visit)


class PlannedExposure(NamedTuple):
    """One exposure of the plan (times in seconds from the start of the night).

    Attributes
    ----------
    target: catalogue index.
    visit: which visit of the target (0-based) the plan counts it for.
    block: index of its block; exposures of one block are consecutive, with no slew between them.
    block_start_s, block_end_s: the block's slots, ``[block_start_s, block_end_s)``.
    start_s: planned start ``P`` (the replay starts it in ``[P - w, P]``).
    end_s: planned end of the exposure (before readout).
    q: SNR^2 / SNR_requested^2 expected for it (at ``P - w / 2``).
    """

    target: int
    visit: int
    block: int
    block_start_s: float
    block_end_s: float
    start_s: float
    end_s: float
    q: float


@dataclass
class Block:
    """A candidate block of the integer model: ``k`` back-to-back exposures of one target's visit from one slot."""

    target: int
    visit: int
    k: int
    slot: int
    n_slots: int
    start_s: float
    q: np.ndarray  # per exposure
    qint: int
    end_slot: int  # ceil(exposure end / slot_s)


def visible_through(vis: np.ndarray, n: int, t0: float, t1: float, grid_s: float) -> bool:
    """The env's :func:`kernels.visible_through` (grid points from the one at or before t0 to the one at or
    after t1), in Python for the model builder."""
    k0 = math.floor(t0 / grid_s)
    k1 = math.ceil(t1 / grid_s - 1e-9)
    if k0 < 0 or k1 > vis.shape[0] - 1:
        return False
    return bool(vis[k0:k1 + 1, n].all())


def plan_value(env, plan: list[PlannedExposure]) -> float:
    """Return of a plan under the env's reward, each exposure valued at its ``q`` (visits complete when the
    cumulated SNR^2 reaches the request, the excess is lost, as in ``step_kernel``)."""
    u = getattr(env, "unwrapped", env)
    cat = u.catalogue
    bonus = float(u.config.sequence_bonus)
    visits = np.zeros(len(cat), int)
    prog = np.zeros(len(cat))
    total = 0.0
    for ex in sorted(plan, key=lambda e: e.start_s):
        i = ex.target
        if visits[i] >= cat.n_visits[i]:
            continue
        before = min(1.0, prog[i])
        prog[i] += ex.q
        after = min(1.0, prog[i])
        total += cat.priority[i] * (after - before) / cat.n_visits[i]
        if after >= 1.0:
            visits[i] += 1
            prog[i] = 0.0
            if visits[i] == cat.n_visits[i] and cat.n_visits[i] > 1:
                total += bonus * cat.priority[i]
    return total / u.total_weight
