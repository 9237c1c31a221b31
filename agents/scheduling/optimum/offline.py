"""Offline optimum of ``astrogym/TelescopeScheduling-v0``: the best action sequence found, the weather known.

:class:`OfflineOptimum` plans the episode in a simulation copy of the env (``copy.deepcopy(env.unwrapped)``
at the episode's start, true weather included) and replays the best sequence it found, action for
action, through the real env. Every candidate is valued *exactly*: it is played through the env's own
compiled step (:mod:`search`), so the plan's value is the replayed return, with the env's real
sequence-dependent slews and filter changes and no slot rounding (the only time step left is the
env's ``wait_s`` between decisions).

Candidates (each an action sequence from the episode's start):

1. every policy of ``warm_start_policies`` (registry names, default greedy, the clairvoyant and the online
   rollout lookahead of :mod:`~astrogym.agents.scheduling.lookahead`), played in the copy: the optimum
   starts from, hence is never below, any of them on the same night;
2. the time-indexed CP-SAT plan of :mod:`model`
   (:class:`~astrogym.agents.scheduling.optimum.model.TimeIndexedPlanner`, worst-case slews, whole slots)
   replayed in the copy, on catalogues of at most ``cpsat_max_targets``;

then a large-neighbourhood search over the best one
(:func:`~astrogym.agents.scheduling.optimum.search.large_neighbourhood_search`: re-decide a time window
with randomised greedy, repair the rest by greedy or by resuming the incumbent's targets, keep it if
the exact return is higher) for ``time_limit_s``.

Time resolution: decisions come after every readout and every ``wait_s`` (60 s in the scenarios), as for
every policy; nothing is rounded to slots, so the plan loses nothing to slot rounding beyond what the
env's own decision points impose on any policy.

The same search runs on ``TelescopeNetwork-v0`` (the offline optimum on small network instances): the
base policy is :class:`~astrogym.agents.network.greedy.CoordinatedGreedy`, the warm starts are the
network's greedies and lookaheads, the copy knows every site's weather and every ToO, and there is no LP
bound (status ``"feasible"``).

Status: ``"optimal"`` when the value reaches :attr:`upper_bound` (the LP bound of :mod:`lp_bound`, valid
for any policy) within 1e-9, else ``"feasible"`` (a heuristic search: the remaining optimality gap is
at most :attr:`gap`, relative to the bound).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from astrogym.agents.base import Policy, one_observation
from astrogym.agents.scheduling.greedy import GreedyScheduler
from astrogym.agents.scheduling.optimum.lp_bound import upper_bound_lp
from astrogym.agents.scheduling.optimum.search import (
    SearchStats,
    Trajectory,
    greedy_decider,
    large_neighbourhood_search,
    play,
    policy_decider,
    sequence_decider,
)

ENV_ID = "astrogym/TelescopeScheduling-v0"
NETWORK_ID = "astrogym/TelescopeNetwork-v0"
DEFAULT_WARM_START = ("greedy", "lookahead-clairvoyant", "lookahead")
NETWORK_WARM_START = ("coordinated-greedy", "greedy", "lookahead-clairvoyant", "lookahead")


def _is_network(u) -> bool:
    from astrogym.envs.network.env import TelescopeNetworkEnv

    return isinstance(u, TelescopeNetworkEnv)


def base_greedy(u):
    """The search's base policy: the single-site greedy, or the network's coordinated greedy."""
    if _is_network(u):
        from astrogym.agents.network.greedy import CoordinatedGreedy

        return CoordinatedGreedy.for_env(u)
    return GreedyScheduler.for_env(u)


def _episode(u):
    """What identifies the env's current episode (its nights, rebuilt by every reset)."""
    return u.site_nights if _is_network(u) else u.nights


class OfflineOptimum(Policy):
    """Search the night's action sequences with its weather known, then replay the best (module docstring).

    Parameters
    ----------
    env: a ``TelescopeScheduling-v0`` env (wrapped or not) with ``n_nights == 1``, or a ``TelescopeNetwork-v0``
        env (module docstring); the policy reads
        ``env.unwrapped`` and copies it at the start of each episode.
    time_limit_s: wall-clock budget of the large-neighbourhood search per night (the warm starts and the
        CP-SAT candidate come on top: :attr:`solve_seconds` is the total).
    warm_start_policies: registered policies of the env (``agents/registry.py``) whose sequences are
        candidates; the optimum is never below any of them on the same night (None: ``DEFAULT_WARM_START``, or
        ``NETWORK_WARM_START`` on the network).
    cpsat_max_targets: catalogues up to this size also get the time-indexed CP-SAT candidate (0: never).
    cpsat_time_limit_s: its CP-SAT limit (None: half of ``time_limit_s``, at most 10 s).
    cpsat_options: further keyword arguments of :class:`~astrogym.agents.scheduling.optimum.model.TimeIndexedPlanner`.
    upper_bound: compute :attr:`upper_bound` (an LP with HiGHS).
    bound_slot_s: slot length of the upper-bound LP (None: :func:`upper_bound_lp`'s default).
    seed: the search's random seed.
    lns_options: further keyword arguments of :func:`large_neighbourhood_search` (``window_s``, ``width``,
        ``p_random``).

    Attributes
    ----------
    actions: the best sequence (after :meth:`solve`).
    objective: its return, exactly what the replay earns.
    candidates: each candidate's return, by name (``"cpsat"`` for the time-indexed plan).
    source: the candidate the search started from.
    upper_bound: LP bound on any policy's return on this episode (None if not computed).
    gap: ``(upper_bound - objective) / upper_bound`` (NaN without the bound).
    status: ``"optimal"`` or ``"feasible"``; :attr:`status_detail` says more.
    solve_seconds: the whole search (warm starts, CP-SAT, LNS); ``bound_seconds`` the LP.
    search: the LNS's :class:`~astrogym.agents.scheduling.optimum.search.SearchStats`.
    diverged: steps of the replay where the env was not where the plan expected (0 unless the env changed).

    Raises
    ------
    TypeError: ``env`` is not a TelescopeScheduling env.
    ValueError: a parameter is out of range, or the env has more than one night.
    """

    def __init__(self, env, time_limit_s: float = 10.0, warm_start_policies: tuple[str, ...] | None = None,
                 cpsat_max_targets: int = 40, cpsat_time_limit_s: float | None = None,
                 cpsat_options: dict | None = None, upper_bound: bool = True, bound_slot_s: float | None = None,
                 seed: int = 0, lns_options: dict | None = None):
        u = getattr(env, "unwrapped", env)
        if not all(hasattr(type(u), a) for a in ("search_clock", "action_masks", "snapshot", "restore")):
            raise TypeError(f"env must be an astrogym/TelescopeScheduling-v0 or TelescopeNetwork-v0 env, got "
                            f"{type(u).__name__}")
        self.network = _is_network(u)
        self.env_id = NETWORK_ID if self.network else ENV_ID
        if warm_start_policies is None:
            warm_start_policies = NETWORK_WARM_START if self.network else DEFAULT_WARM_START
        if self.network:
            upper_bound = False  # the LP bound is single-site (the network's would need every site's sky)
            cpsat_max_targets = 0
        elif u.config.n_nights != 1:
            raise ValueError(f"OfflineOptimum plans single nights; this env has n_nights={u.config.n_nights}")
        if not (isinstance(time_limit_s, (int, float)) and np.isfinite(time_limit_s) and time_limit_s >= 0):
            raise ValueError(f"time_limit_s={time_limit_s!r} must be a finite number >= 0")
        if isinstance(warm_start_policies, str):
            warm_start_policies = (warm_start_policies,)
        if "optimum" in warm_start_policies:
            raise ValueError("warm_start_policies cannot contain 'optimum' itself")
        if not isinstance(cpsat_max_targets, (int, np.integer)) or cpsat_max_targets < 0:
            raise ValueError(f"cpsat_max_targets={cpsat_max_targets!r} must be an integer >= 0")
        self.env = env
        self.time_limit_s = float(time_limit_s)
        self.warm_start_policies = tuple(warm_start_policies)
        self.cpsat_max_targets = int(cpsat_max_targets)
        self.cpsat_time_limit_s = (min(10.0, max(1.0, 0.5 * self.time_limit_s)) if cpsat_time_limit_s is None
                                   else float(cpsat_time_limit_s))
        self.cpsat_options = dict(cpsat_options or {})
        self.compute_upper_bound = bool(upper_bound)
        self.bound_slot_s = bound_slot_s
        self.seed = int(seed)
        self.lns_options = dict(lns_options or {})
        self._reset_results()

    def _reset_results(self) -> None:
        self.actions: list[int] = []
        self.times: list[tuple[int, float]] = []
        self.objective = float("nan")
        self.candidates: dict[str, float] = {}
        self.source = ""
        self.upper_bound: float | None = None
        self.gap = float("nan")
        self.status = "UNKNOWN"
        self.status_detail = ""
        self.solve_seconds = self.bound_seconds = 0.0
        self.search = SearchStats()
        self.diverged = 0
        self._nights_ref = None
        self._step = 0
        self._last_t = (-1, -1.0)

    def reset(self) -> None:
        """Forget the plan; the next :meth:`predict` plans the env's current episode."""
        self._reset_results()

    # -- planning -------------------------------------------------------------------------------------------
    def _warm_start(self, name: str, sim, start) -> Trajectory:
        from astrogym.agents.registry import PolicyContext, make_policy

        import gymnasium as gym

        sim.restore(start)
        policy = make_policy(name, PolicyContext(sim, lambda **kw: gym.make(self.env_id, **kw), 0, {}),
                             env_id=self.env_id)
        return play(sim, policy_decider(policy), start, keep_snapshots=False)

    def _cpsat(self, sim, start) -> Trajectory:
        from astrogym.agents.scheduling.optimum.model import TimeIndexedPlanner

        sim.restore(start)
        planner = TimeIndexedPlanner(sim, **{"time_limit_s": self.cpsat_time_limit_s, "upper_bound": False,
                                             **self.cpsat_options})
        return play(sim, policy_decider(planner), start, keep_snapshots=False)

    def solve(self) -> OfflineOptimum:
        """Plan the env's current episode (call after ``env.reset``; :meth:`predict` does it by itself).

        Raises
        ------
        ValueError: the env has not been reset, or its episode has already started.
        """
        u = self.env.unwrapped
        if not _episode(u):
            raise ValueError("reset the env before planning")
        st = u.state
        if np.any(st["time_s"] > 0.0) or st["visits"].any() or st["snr2"].any() or u.log:
            raise ValueError("OfflineOptimum plans from the start of an episode; reset the env first")
        self._reset_results()
        self._nights_ref = _episode(u)
        t0 = time.perf_counter()
        if self.compute_upper_bound:
            self.upper_bound = upper_bound_lp(u, self.bound_slot_s)
            self.bound_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = copy.deepcopy(u)
        start = u.snapshot()
        greedy = base_greedy(sim)
        trajs: dict[str, Trajectory] = {}
        for name in self.warm_start_policies:
            trajs[name] = self._warm_start(name, sim, start)
        if not self.network and len(u.catalogue) <= self.cpsat_max_targets and self.cpsat_time_limit_s > 0:
            trajs["cpsat"] = self._cpsat(sim, start)
        if not trajs:
            trajs["greedy"] = play(sim, greedy_decider(greedy), start, keep_snapshots=False)
        self.candidates = {name: tr.value for name, tr in trajs.items()}
        self.source = max(self.candidates, key=lambda k: self.candidates[k])
        # replay the best with snapshots (exactly the same steps), then search around it
        best = play(sim, sequence_decider(trajs[self.source].actions, greedy_decider(greedy)), start)
        target = np.inf if self.upper_bound is None else self.upper_bound
        if self.time_limit_s > 0:
            best, self.search = large_neighbourhood_search(sim, best, greedy, self.time_limit_s, seed=self.seed,
                                                           target=target, **self.lns_options)
        self.solve_seconds = time.perf_counter() - t0
        self.actions, self.times = list(best.actions), list(best.times)
        self.objective = best.value
        if self.upper_bound is not None:
            self.gap = (self.upper_bound - self.objective) / self.upper_bound if self.upper_bound > 0 else 0.0
            self.status = "optimal" if self.objective >= self.upper_bound - 1e-9 else "feasible"
        else:
            self.status = "feasible"
        self.status_detail = (f"{self.status}: best of {', '.join(self.candidates)} then LNS "
                              f"({self.search.iterations} moves, {self.search.improvements} improvements)"
                              + ("" if self.upper_bound is None else f", gap to the LP bound {100 * self.gap:.1f}%"))
        return self

    def episode_report(self) -> dict:
        """What the evaluation records with the episode: the bound, the gap to it, the status and the solve time."""
        return {"upper_bound": self.upper_bound, "bound_gap": self.gap, "status": self.status,
                "solve_seconds": self.solve_seconds, "plan_objective": self.objective}

    # -- replay ---------------------------------------------------------------------------------------------
    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[Any, None]:
        """The next action of the best sequence for the env this policy was built with (planning first when the
        episode is new: ``episode_start`` true, a fresh ``reset``, or the env's clock running back).

        Raises
        ------
        ValueError: a batch of more than one observation (this policy follows one env).
        """
        observation, batched = one_observation(observation, "OfflineOptimum")
        u = self.env.unwrapped
        clock = u.search_clock
        new = (episode_start is not None and bool(np.any(episode_start))) or _episode(u) is not self._nights_ref \
            or clock < self._last_t
        if new:
            self.solve()
        self._last_t = clock
        k = self._step
        self._step += 1
        mask = u.action_masks()
        if k < len(self.actions) and self.times[k] == clock and mask[self.actions[k]]:
            a = self.actions[k]
        else:  # the env is not where the plan is (it was stepped by someone else): greedy from here
            self.diverged += 1
            a = int(np.asarray(base_greedy(u).predict(observation)[0]).reshape(-1)[0])
        return (np.array([a]) if batched else a), None


__all__ = ["DEFAULT_WARM_START", "OfflineOptimum"]
