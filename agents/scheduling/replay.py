"""Replay a time-ordered plan through ``astrogym/TelescopeScheduling-v0``: one rule for every planner.

Planners that decide a night in advance (:mod:`astroplan`'s blocks, the offline optimum's exposures)
describe their plan as :class:`PlanEntry` s in time order and hand it to a :class:`PlanReplayer`, which
turns it into the env's actions at the env's own time, reading ``env.unwrapped`` (clock, visits,
action mask, exposure log), never the observation.

Rule, at each decision, for the next entry of the plan (``ready`` is the env's time plus ``lead_s``,
or plus the env's overhead to the entry's target when ``lead_s`` is ``None``):

1. an entry of an earlier night, or whose target has all its visits (or more visits than the entry's
   ``visit``), is skipped (``"skipped:night_over"``, ``"skipped:done"``);
2. an entry of a later night, or with ``ready < earliest_s``, is not due: wait;
3. due, and allowed by the action mask: observe its target. An entry with ``max_exposures=None`` is
   then done (``"observed"``); otherwise it keeps the telescope for up to ``max_exposures``
   exposures and ends (``"observed"``) when the target's visit count rises or the mask refuses it;
4. due but masked: dropped (``"skipped:masked"``) once ``ready > latest_s`` (``-inf``: at once), else wait.

When the plan is exhausted the replayer waits. Entries are never retried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class PlanEntry:
    """One planned observation, times in seconds since its night's evening twilight.

    Attributes
    ----------
    target: catalogue index.
    earliest_s: the replayer waits while its ready time is before this.
    latest_s: a masked entry is dropped once the ready time is past this (``-inf``: as soon as it is masked).
    night: index of the episode's night it belongs to.
    visit: the visit it counts for: skipped once the target has more visits (``None``: only once all are done).
    max_exposures: ``None``: one exposure, then the next entry; an int: exposures it may hold the telescope for.
    """

    target: int
    earliest_s: float
    latest_s: float = -math.inf
    night: int = 0
    visit: int | None = None
    max_exposures: int | None = None


class PlanReplayer:
    """Turns a time-ordered plan into actions of one ``TelescopeSchedulingEnv`` (the module docstring's rule).

    Parameters
    ----------
    entries: the plan, :class:`PlanEntry` s in time order.
    lead_s: seconds added to the env's time before comparing with an entry's window; ``None`` adds the
        env's overhead (slew or filter change) to the entry's target instead.

    Attributes
    ----------
    entries: the plan.
    outcomes: per entry, ``None`` (not reached yet), ``"observed"`` or ``"skipped:<reason>"`` with reason
        ``night_over``, ``done`` or ``masked``.
    position: index of the next entry to act on.
    """

    def __init__(self, entries: Sequence[PlanEntry], lead_s: float | None = 0.0):
        self.entries = list(entries)
        self.lead_s = lead_s
        self._start(log_len=0, clock=(-1, -1.0))

    def _start(self, log_len: int, clock: tuple[int, float]) -> None:
        self.outcomes: list[str | None] = [None] * len(self.entries)
        self.position = 0
        self._in_entry = False
        self._exposures = 0
        self._visits0 = 0
        self._log_len = log_len
        self._clock = clock

    def rewind(self, env) -> PlanReplayer:
        """Start again at the first entry, from the env's current clock and exposure log; returns ``self``."""
        state = env.state
        self._start(log_len=len(env.log), clock=(state["night"], state["time_s"]))
        return self

    def went_back(self, env) -> bool:
        """Whether the env's clock (night, time) ran back or its exposure log shrank since the last call: a reset."""
        state = env.state
        return (state["night"], state["time_s"]) < self._clock or len(env.log) < self._log_len

    def next_action(self, env) -> int:
        """The action the plan asks for now: a target index or ``env.wait_action``."""
        state = env.state
        self._clock = (state["night"], state["time_s"])
        self._count_exposures(env.log)
        mask = env.action_masks()
        night, now, visits = state["night"], state["time_s"], state["visits"]
        n_visits = env.catalogue.n_visits
        while self.position < len(self.entries):
            e = self.entries[self.position]
            i = e.target
            if self._in_entry:
                if visits[i] > self._visits0 or self._exposures >= e.max_exposures or not mask[i]:
                    self._finish("observed")
                    continue
                return i
            if e.night < night:
                self._finish("skipped:night_over")
                continue
            if visits[i] >= n_visits[i] or (e.visit is not None and visits[i] > e.visit):
                self._finish("skipped:done")
                continue
            ready = now + (env.overhead_s(i) if self.lead_s is None else self.lead_s)
            if e.night > night or ready < e.earliest_s:
                return env.wait_action
            if mask[i]:
                if e.max_exposures is None:
                    self._finish("observed")
                else:
                    self._in_entry = True
                    self._exposures = 0
                    self._visits0 = int(visits[i])
                return i
            if ready > e.latest_s:
                self._finish("skipped:masked")
                continue
            return env.wait_action
        return env.wait_action

    def _count_exposures(self, log: list) -> None:
        """Exposures the env made since the last call on the entry in progress."""
        if self._in_entry and self.position < len(self.entries):
            target = self.entries[self.position].target
            self._exposures += sum(1 for entry in log[self._log_len:] if entry[1] == target)
        self._log_len = len(log)

    def _finish(self, outcome: str) -> None:
        self.outcomes[self.position] = outcome
        self.position += 1
        self._in_entry = False
        self._exposures = 0
