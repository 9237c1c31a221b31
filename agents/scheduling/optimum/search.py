"""Exact search over the env's own action sequences: trajectories, policy runs and a large-neighbourhood search.

The env is deterministic after ``reset`` (weather drawn, or given), so an action sequence played from the
episode's start gives the same return every time: a sequence's value here is exactly what replaying it
through the env earns, with the env's slews, filter changes, visibility tests and exposure times, and
no slot rounding (the only time step is the env's own ``wait_s``). Everything runs in a simulation copy
(``copy.deepcopy(env.unwrapped)``) through its
:meth:`~astrogym.envs.scheduling.env.TelescopeSchedulingEnv.snapshot` /
:meth:`~astrogym.envs.scheduling.env.TelescopeSchedulingEnv.restore`.

:func:`large_neighbourhood_search` improves a sequence: pick a decision (one where more than waiting
was allowed), restore the snapshot before it, *destroy* the following ``window_s`` by re-deciding it
with a randomised greedy (one of greedy's best few, waiting included, with probability ``p_random``),
*repair* the rest either with plain greedy or by resuming the incumbent's remaining targets in their
order (each when the mask allows it, skipped once it is ``wait_s`` late), evaluate exactly, keep the
result if its return is higher. The incumbent never gets worse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from astrogym.agents.scheduling.greedy import GreedyScheduler
from astrogym.agents.scheduling.lookahead import greedy_candidates


@dataclass
class Trajectory:
    """An action sequence played from one snapshot, with what it earned.

    Attributes
    ----------
    actions: the env's actions in order.
    rewards: the reward of each step.
    times: (night, time) before each step.
    choice: whether more than waiting was allowed before each step (where a search may change it).
    snapshots: the env's snapshot before each step (for the search; may be empty).
    """

    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    times: list[tuple[int, float]] = field(default_factory=list)
    choice: list[bool] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The return, summed in step order as an evaluation loop sums it."""
        total = 0.0
        for r in self.rewards:
            total += r
        return total

    def head(self, k: int) -> Trajectory:
        """The first ``k`` steps."""
        return Trajectory(self.actions[:k], self.rewards[:k], self.times[:k], self.choice[:k], self.snapshots[:k])


def play(sim, decide: Callable[[Any, dict, int], int], snapshot, keep_snapshots: bool = True,
         into: Trajectory | None = None) -> Trajectory:
    """From ``snapshot``, play ``decide(sim, obs, step index) -> action`` in ``sim`` to the episode's end; the steps
    are appended to ``into`` (a copy of a prefix, or a new trajectory)."""
    traj = Trajectory() if into is None else into
    obs = sim.restore(snapshot)
    if sim.needs_reset:
        return traj
    k = 0
    while True:
        mask = sim.action_masks()
        traj.times.append(sim.search_clock)
        traj.choice.append(bool(mask[:-1].any()))
        if keep_snapshots:
            traj.snapshots.append(sim.snapshot())
        a = int(decide(sim, obs, k))
        obs, r, terminated, _, info = sim.step(a)
        if info["invalid_action"]:
            a = sim.wait_action  # what the env did
        traj.actions.append(a)
        traj.rewards.append(float(r))
        k += 1
        if terminated:
            return traj


def policy_decider(policy) -> Callable[[Any, dict, int], int]:
    """A ``predict`` policy as a decider of :func:`play` (episode start flagged on its first call)."""
    first = [True]

    def decide(sim, obs, k):
        a, _ = policy.predict(obs, episode_start=np.array([first[0]]), deterministic=True)
        first[0] = False
        return int(np.asarray(a).reshape(-1)[0])
    return decide


def sequence_decider(actions: list[int], fallback: Callable[[Any, dict, int], int]) -> Callable[[Any, dict, int], int]:
    """Replay ``actions`` in order, then ``fallback``."""
    def decide(sim, obs, k):
        return actions[k] if k < len(actions) else fallback(sim, obs, k)
    return decide


def greedy_decider(greedy: GreedyScheduler) -> Callable[[Any, dict, int], int]:
    def decide(sim, obs, k):
        a, _ = greedy.predict(obs)
        return int(a)
    return decide


def _randomised(greedy: GreedyScheduler, rng: np.random.Generator, width: int, p_random: float, until,
                after: Callable[[Any, dict, int], int]) -> Callable[[Any, dict, int], int]:
    """Randomised greedy until (night, time) ``until``, then ``after``."""
    def decide(sim, obs, k):
        if sim.search_clock >= until:
            return after(sim, obs, k)
        if rng.random() < p_random:
            mask = sim.action_masks()
            cands = [a for a in greedy_candidates(greedy, obs, width) if mask[a]]
            return int(cands[rng.integers(len(cands))])
        a, _ = greedy.predict(obs)
        return int(a)
    return decide


def _resume(incumbent: Trajectory, start: int, greedy: GreedyScheduler, wait_s: float):
    """Follow the incumbent's targets from step ``start`` on, in order: each when the mask allows it, waiting while it
    is early, skipped once it is more than ``wait_s`` late or its visits are done; greedy when none are left."""
    queue = [(incumbent.times[j], a) for j, a in enumerate(incumbent.actions[start:], start) if a != greedy.wait_action]
    pos = [0]

    def decide(sim, obs, k):
        now = sim.search_clock
        mask = sim.action_masks()
        visits, n_visits = sim.state["visits"], sim.requested_visits
        while pos[0] < len(queue):
            (night, t), a = queue[pos[0]]
            if visits[a] >= n_visits[a] or night < now[0] or (night == now[0] and now[1] > t + wait_s):
                pos[0] += 1
                continue
            if mask[a]:
                # several exposures of one visit: stay while the queue repeats the target
                pos[0] += 1
                return a
            if (night, t) > now:
                return sim.wait_action
            pos[0] += 1
        a, _ = greedy.predict(obs)
        return int(a)
    return decide


@dataclass
class SearchStats:
    iterations: int = 0
    improvements: int = 0
    seconds: float = 0.0


def large_neighbourhood_search(sim, incumbent: Trajectory, greedy: GreedyScheduler, time_limit_s: float,
                               seed: int = 0, window_s: tuple[float, float] = (600.0, 3600.0), width: int = 3,
                               p_random: float = 0.3, target: float = np.inf) -> tuple[Trajectory, SearchStats]:
    """Improve ``incumbent`` (played with snapshots in ``sim``) for ``time_limit_s`` (module docstring); stops early
    once its value reaches ``target`` (an upper bound). Returns the best trajectory and counts."""
    rng = np.random.default_rng(seed)
    stats = SearchStats()
    t0 = time.perf_counter()
    wait_s = float(sim.config.wait_s)
    best = incumbent
    while time.perf_counter() - t0 < time_limit_s and best.value < target - 1e-12:
        where = np.flatnonzero(best.choice)
        if where.size == 0:
            break
        d = int(where[rng.integers(where.size)])
        night, t = best.times[d]
        until = (night, t + float(rng.uniform(*window_s)))
        after = _resume(best, d, greedy, wait_s) if rng.random() < 0.5 else greedy_decider(greedy)
        # the window's first decision always changes (another of greedy's best, or waiting)
        first = _randomised(greedy, rng, width, 1.0, (night, t + 1e-9), _randomised(greedy, rng, width, p_random,
                                                                                     until, after))
        cand = play(sim, first, best.snapshots[d], into=_copy_prefix(best, d))
        stats.iterations += 1
        if cand.value > best.value + 1e-12:
            best = cand
            stats.improvements += 1
    stats.seconds = time.perf_counter() - t0
    return best, stats


def _copy_prefix(traj: Trajectory, k: int) -> Trajectory:
    return traj.head(k)


__all__ = ["SearchStats", "Trajectory", "greedy_decider", "large_neighbourhood_search", "play", "policy_decider",
           "sequence_decider"]
