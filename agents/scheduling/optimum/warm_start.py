"""The greedy warm start of the offline optimum's integer program.

:func:`greedy_blocks` builds a feasible solution of the model by a sweep over the slots,
:func:`best_greedy` keeps the best of a few variants, and :func:`add_hints` hands it to CP-SAT as a
solution hint (its large-neighbourhood search starts from there).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from astrogym.agents.scheduling.optimum.plan import PROGRESS_SCALE, Block


def greedy_blocks(blocks: list[Block], tstar: list[int], cat, bonus: float, n_slots: int, gslots: int,
                  first_filter: int, alpha: float = 1.0) -> list[int]:
    """A feasible solution of the integer model: sweep the slots and start, whenever the telescope is free,
    the block with the best reward / slots^alpha (next visit of its target, gaps and filter changes respected)."""
    by_slot: list[list[int]] = [[] for _ in range(n_slots)]
    for b, blk in enumerate(blocks):
        by_slot[blk.slot].append(b)
    n = len(cat)
    visit = np.zeros(n, int)
    progress = np.zeros(n, int)  # scaled like the model (floored block values)
    end_of: dict[tuple[int, int], int] = {}
    last_filter, last_end = first_filter, 0
    chosen = []
    cur = 0
    while cur < n_slots:
        best, best_rate = -1, 0.0
        for b in by_slot[cur]:
            blk = blocks[b]
            i = blk.target
            if blk.visit != visit[i] or visit[i] >= cat.n_visits[i]:
                continue
            if blk.visit > 0 and tstar[b] < end_of[i, blk.visit - 1]:
                continue
            f = int(cat.filter[i])
            if f != last_filter and cur < last_end + gslots:
                continue
            gain = (cat.priority[i] / cat.n_visits[i] * (min(PROGRESS_SCALE, progress[i] + blk.qint) - progress[i])
                    / PROGRESS_SCALE)
            if progress[i] + blk.qint >= PROGRESS_SCALE and blk.visit == cat.n_visits[i] - 1 and cat.n_visits[i] > 1:
                gain += bonus * cat.priority[i]
            rate = gain / blk.n_slots ** alpha
            if rate > best_rate:
                best, best_rate = b, rate
        if best < 0:
            cur += 1
            continue
        blk = blocks[best]
        i = blk.target
        chosen.append(best)
        progress[i] += blk.qint
        end_of[i, blk.visit] = max(end_of.get((i, blk.visit), 0), blk.end_slot)
        if progress[i] >= PROGRESS_SCALE:
            visit[i] += 1
            progress[i] = 0
        last_filter, last_end = int(cat.filter[i]), blk.slot + blk.n_slots
        cur = last_end
    return chosen


def best_greedy(blocks: list[Block], tstar: list[int], cat, bonus: float, n_slots: int, gslots: int,
                first_filter: int, value: Callable[[list[int]], float]) -> list[int]:
    """The best, by ``value`` (a chosen block list's return), of :func:`greedy_blocks` ranking by reward per
    slot^alpha for a few alphas."""
    greedy, best = [], -1.0
    for alpha in (0.0, 0.5, 1.0, 1.5):  # reward per slot^alpha: a few variants, keep the best
        cand = greedy_blocks(blocks, tstar, cat, bonus, n_slots, gslots, first_filter, alpha)
        v = value(cand)
        if v > best:
            greedy, best = cand, v
    return greedy


def add_hints(m: Any, x: list, p: dict, c: dict, y: dict, fvars: dict, blocks: list[Block], greedy: list[int],
              n_slots: int, cat) -> None:
    """Hint every variable of the CP-SAT model ``m`` with its value in the solution ``greedy`` (block indices):
    block choices ``x``, progress ``p``, completions ``c``, filter states ``y`` and visit-ended flags ``fvars``."""
    chosen = set(greedy)
    for b, xb in enumerate(x):
        m.AddHint(xb, b in chosen)
    total = {}
    ends: dict[tuple[int, int], int] = {}
    covered = {}
    for b in greedy:
        blk = blocks[b]
        key = (blk.target, blk.visit)
        total[key] = total.get(key, 0) + blk.qint
        ends[key] = max(ends.get(key, 0), blk.end_slot)
        for t in range(blk.slot, min(blk.slot + blk.n_slots, n_slots)):
            covered[t] = int(cat.filter[blk.target])
    for (i, v), pv in p.items():
        m.AddHint(pv, min(PROGRESS_SCALE, total.get((i, v), 0)))
        m.AddHint(c[i, v], total.get((i, v), 0) >= PROGRESS_SCALE)
    for (f, t), yv in y.items():
        m.AddHint(yv, covered.get(t) == f)
    for (i, v), fv in fvars.items():
        for t, fvt in enumerate(fv):
            m.AddHint(fvt, t >= ends.get((i, v), 0))
