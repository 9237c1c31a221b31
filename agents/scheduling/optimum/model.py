"""A time-indexed CP-SAT plan of a ``astrogym/TelescopeScheduling-v0`` night with its weather known.

One candidate of the offline optimum (:class:`~astrogym.agents.scheduling.optimum.offline.OfflineOptimum`
replays this plan in a simulation copy and keeps it if it is the best start of its search; used on small
catalogues, up to ``cpsat_max_targets``). Its formulation is conservative: every block pays the
worst-case slew to its target and whole slots, so its own value is a lower estimate and a good
heuristic can beat it; the offline optimum's exact search over action sequences does not have that
limitation.

:class:`TimeIndexedPlanner` reads the episode's night table, visibility mask and drawn
:class:`~astrogym.envs.scheduling.weather.WeatherTrack` (``env.unwrapped.nights[0]``), plans the
whole night as a time-indexed integer program solved with OR-Tools CP-SAT, and replays the plan
through the env with the stable-baselines3 ``predict`` interface. Single-night episodes only.

Formulation (time-indexed, slots of ``slot_s`` = Δ, ``T = floor(night / Δ)`` slots)
-----------------------------------------------------------------------------------
*Blocks.* A block ``b = (i, v, k, s)`` is ``k`` back-to-back exposures of target ``i`` for its visit
``v`` whose block starts at slot ``s``. Its first exposure is planned to start at
``P = s Δ + ob(i, s)``, where ``ob`` is a conservative slew bound: the largest slew to ``i`` at
time ``s Δ`` from any other target or the park position, plus ``overhead_margin_s``. Exposure
``j`` (1-based) of the block starts at ``P + (j - 1)(exposure + readout)`` (repeating a target
needs no slew: the env's overhead is zero). The block occupies slots
``[s, s + ceil((ob + k exposure + k readout) / Δ))``. It exists only if the target is visible
(the env's mask ``vis`` on the night grid, tested like the env's ``visible_through``) from
``P - w`` to the end of its last exposure, which must end before dawn; ``w`` is the replay's
timing slack (``wait_slack_s``, the env's ``wait_s`` by default, see *Replay*). Blocks whose
``k - 1`` exposures already complete a visit are left out (dominated).

*Value.* Exposure SNR is :func:`kernels.exposure_snr` (what ``step_kernel`` calls: conditions
at mid-exposure, weather at the nearest grid point) taken at the worst of the starts in
``[P - w, P]`` where the replay may begin it (``valuation="worst"``, sampled every half grid
step, so a plan never counts on the good side of a cloud edge it might miss), or at
``P - w / 2`` (``valuation="mid"``); ``q = SNR^2 / SNR_req^2`` and a block's value is
``Q_b = sum_j q_j``.

*Variables.* ``x_b`` binary; progress ``p_iv`` in ``[0, 1]``; visit-complete ``c_iv`` binary;
filter state ``y_ft`` binary (the wheel is in filter ``f`` during slot ``t``); ``F_ivt``
binary, monotone in ``t``: all blocks of visit ``v`` have ended by slot boundary ``t``.

*Constraints.*

1. Capacity and filters: ``sum_{b in filter f covering t} x_b <= y_ft`` and ``sum_f y_ft <= 1``
   (no two blocks overlap). A filter change takes ``filter_change_s`` in parallel with the slew:
   ``y_{g,t} + sum_{f != g} y_{f,t-m} <= 1`` for ``m = 1..G`` with
   ``G = ceil((filter_change_s - min ob) / Δ)``; the night starts in filter r.
2. Progress: ``p_iv <= min(1, sum_b Q_b x_b)`` over the visit's blocks; ``c_iv <= p_iv``
   (a visit counts complete only when its SNR^2 reaches the request).
3. Visits in order: a block of visit ``v + 1`` needs ``c_iv = 1`` and ``F_{i,v,t*} = 1`` with
   ``t* = floor((P - w - min_gap) / Δ)``; ``F_ivt + sum_{b in v ending in (t, t+1]Δ} x_b <= 1`` and
   ``F_ivt <= F_iv(t+1)``, so every block of visit ``v`` ends (exposure end) at least
   ``min_gap + w`` before visit ``v + 1`` starts.

*Objective* (the env's return): ``sum_iv priority_i p_iv / n_visits_i + sequence_bonus
priority_i c_i,last`` (multi-visit targets) over ``env.unwrapped.total_weight``, minus a
negligible penalty per block (drops useless exposures). CP-SAT needs integers: progress is
scaled by ``Q = 10^5`` with ``Q_b`` rounded down (a planned completion is a real one), weights
are rounded to integers near ``10^6``; :attr:`objective` is the plan's value recomputed exactly
in floating point, :attr:`bound` the solver's best bound converted back plus the largest
possible rounding error (an upper bound on this formulation's optimum).

Replay
------
The shared :class:`~astrogym.agents.scheduling.replay.PlanReplayer` (the astroplan baseline uses it
too), each planned exposure an entry of one exposure for its visit. At each decision, with the
next planned exposure ``(i, P)`` and the env's actual overhead ``o`` to ``i`` now: skip it if its
visit is already complete; wait while ``t + o < P - w``; otherwise observe ``i`` if the action mask
allows it, wait if not, and drop the exposure once ``t + o > P + drop_late_s``. Decisions come after every
readout and every ``wait_s``, so when nothing is late the replayed start lies in ``[P - w, P]``
(``w = wait_s``). The replayed return therefore differs from :attr:`objective`: with the
default ``valuation="worst"`` each replayed exposure does at least as well as planned up to the
curvature of altitude and sky brightness within a grid step, so the replay is usually a little
better (a visit may also complete with fewer exposures and free the rest); with ``"mid"`` the
difference is the change of conditions over at most ``w / 2`` either way (a cloud edge can flip
an exposure). A planned exposure the mask refuses until ``drop_late_s`` past its time is dropped.
Create the env with a small ``wait_s`` (e.g. 60 s) for replays: ``w`` is slack in every block.

Upper bound
-----------
:attr:`upper_bound` bounds the return of *any* policy on the episode (not just this formulation):
:func:`~astrogym.agents.scheduling.optimum.lp_bound.upper_bound_lp`, an LP relaxation (HiGHS).

Modules: :mod:`plan` (exposures, blocks, a plan's value), :mod:`warm_start` (the greedy starting
solution), :mod:`lp_bound` (the upper bound), this one (the model and the policy).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from numba import njit

from astrogym.agents.base import Policy, one_observation
from astrogym.agents.scheduling.optimum.lp_bound import upper_bound_lp
from astrogym.agents.scheduling.optimum.plan import (
    PROGRESS_SCALE,
    Block,
    PlannedExposure,
    plan_value,
    visible_through,
)
from astrogym.agents.scheduling.optimum.warm_start import add_hints, best_greedy
from astrogym.agents.scheduling.replay import PlanEntry, PlanReplayer
from astrogym.envs.scheduling import kernels as K
from astrogym.envs.scheduling.telescope import FILTERS, P_FILTER, P_READOUT, slew_time

_MAX_COEF = 1_000_000  # largest objective weight per unit of scaled progress


@njit(cache=True)
def _slew_bounds(times, alt, az, lst, ra_app, dec_app, par):
    """(S, N) largest slew to each target at each time, from any other target or the park position."""
    n = alt.shape[1]
    out = np.zeros((times.shape[0], n))
    pos = np.empty((n + 1, 4))
    for s in range(times.shape[0]):
        t = times[s]
        for j in range(-1, n):
            pos[j + 1, 0], pos[j + 1, 1], pos[j + 1, 2], pos[j + 1, 3] = K.pointing(j, t, alt, az, lst, ra_app,
                                                                                  dec_app, par)
        for i in range(n):
            m = 0.0
            for j in range(-1, n):
                if j == i:
                    continue
                d = slew_time(pos[j + 1, 0], pos[j + 1, 1], pos[j + 1, 2], pos[j + 1, 3], pos[i + 1, 0],
                              pos[i + 1, 1], pos[i + 1, 2], pos[i + 1, 3], par)
                m = max(m, d)
            out[s, i] = m
    return out


class TimeIndexedPlanner(Policy):
    """Plan a night with full knowledge of its weather (CP-SAT), then replay the plan.

    Parameters
    ----------
    env: a ``TelescopeScheduling-v0`` env (wrapped or not) with ``n_nights == 1``; the policy reads
        ``env.unwrapped`` (night table, mask, weather, catalogue) and its time, overheads and action
        mask while replaying.
    slot_s: slot length of the formulation, s (60-300 is sensible; smaller is tighter and slower).
    time_limit_s: CP-SAT wall-clock limit per night.
    num_workers: CP-SAT search workers.
    max_block_exposures: most back-to-back exposures of one target in one block.
    overhead_margin_s: added to the slew bound (the sky turns while the telescope waits).
    wait_slack_s: the replay's timing slack ``w`` (None: the env's ``wait_s``). Planned starts carry
        this much margin for visibility and visit gaps.
    drop_late_s: the replay gives up on a planned exposure that it could start only this late
        (None: ``slot_s``).
    valuation: ``"worst"`` values each exposure at the worst start in ``[P - w, P]`` (sampled every half
        grid step; the replay then rarely falls short of the plan), ``"mid"`` at ``P - w / 2``.
    upper_bound: compute :attr:`upper_bound` (an LP with HiGHS) when planning.
    bound_slot_s: slot length of the upper-bound LP (None: the env's ``grid_s``).
    seed: CP-SAT random seed.
    log_search: print CP-SAT's search log.
    solver_params: further CP-SAT parameters by name (e.g. ``{"linearization_level": 0}``).

    Attributes
    ----------
    plan: list of :class:`PlannedExposure` in time order (after :meth:`solve`).
    objective: the plan's return (the formulation's value, computed exactly).
    solver_objective: CP-SAT's objective converted to return units (rounded model).
    bound: upper bound on the formulation's optimum (CP-SAT's best bound plus rounding).
    upper_bound: upper bound on any policy's return on this episode (None if not computed).
    status: ``"OPTIMAL"`` (within CP-SAT's ``relative_gap_limit``, 1e-5 unless ``solver_params`` says
        otherwise), ``"FEASIBLE"`` (time limit), ``"INFEASIBLE"`` or ``"UNKNOWN"``.
    solve_seconds: CP-SAT wall time; ``build_seconds`` model building; ``bound_seconds`` the LP.
    n_blocks: number of block variables in the model.
    skipped: planned exposures the replay dropped (mask never allowed them in time).
    replay: the :class:`~astrogym.agents.scheduling.replay.PlanReplayer` following the plan (after :meth:`solve`).

    Raises
    ------
    TypeError: ``env`` is not a TelescopeScheduling env.
    ValueError: a parameter is out of range, or the env has more than one night.
    """

    def __init__(self, env, slot_s: float = 120.0, time_limit_s: float = 60.0, num_workers: int = 2,
                 max_block_exposures: int = 4, overhead_margin_s: float = 2.0, wait_slack_s: float | None = None,
                 drop_late_s: float | None = None, upper_bound: bool = True, bound_slot_s: float | None = None,
                 valuation: str = "worst", seed: int = 0, log_search: bool = False,
                 solver_params: dict | None = None):
        u = getattr(env, "unwrapped", env)
        if not all(hasattr(u, a) for a in ("nights", "action_masks", "overhead_s", "wait_action", "catalogue")):
            raise TypeError(f"env must be an astrogym/TelescopeScheduling-v0 env, got {type(u).__name__}")
        if u.config.n_nights != 1:
            raise ValueError(f"TimeIndexedPlanner plans single nights; this env has n_nights={u.config.n_nights}")
        for name, value, lo in (("slot_s", slot_s, 1.0), ("time_limit_s", time_limit_s, 0.0)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= lo) or (
                    name == "time_limit_s" and value == 0):
                raise ValueError(f"{name}={value!r} must be a finite number > {0 if name == 'time_limit_s' else lo}")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 1:
            raise ValueError(f"num_workers={num_workers!r} must be an integer >= 1")
        if not isinstance(max_block_exposures, (int, np.integer)) or not 1 <= max_block_exposures <= 20:
            raise ValueError(f"max_block_exposures={max_block_exposures!r} must be an integer in [1, 20]")
        for name, value in (("overhead_margin_s", overhead_margin_s), ("wait_slack_s", wait_slack_s),
                            ("drop_late_s", drop_late_s), ("bound_slot_s", bound_slot_s)):
            if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r} must be a finite number >= 0 (or None)")
        if bound_slot_s is not None and bound_slot_s < 1.0:
            raise ValueError(f"bound_slot_s={bound_slot_s!r} must be >= 1 s")
        self.env = env
        self.slot_s = float(slot_s)
        self.time_limit_s = float(time_limit_s)
        self.num_workers = int(num_workers)
        self.max_block_exposures = int(max_block_exposures)
        self.overhead_margin_s = float(overhead_margin_s)
        self.wait_slack_s = float(u.config.wait_s if wait_slack_s is None else wait_slack_s)
        self.drop_late_s = float(self.slot_s if drop_late_s is None else drop_late_s)
        self.compute_upper_bound = bool(upper_bound)
        self.bound_slot_s = None if bound_slot_s is None else float(bound_slot_s)
        self.seed = int(seed)
        self.log_search = bool(log_search)
        if valuation not in ("worst", "mid"):
            raise ValueError(f"valuation={valuation!r} is not allowed; choose 'worst' or 'mid'")
        self.valuation = valuation
        if solver_params is not None and not isinstance(solver_params, dict):
            raise TypeError(f"solver_params must be a dict of CP-SAT parameters, got {type(solver_params).__name__}")
        self.solver_params = dict(solver_params or {})
        from ortools.sat import sat_parameters_pb2

        known = sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name
        unknown = sorted(set(self.solver_params) - set(known))
        if unknown:
            raise ValueError(f"unknown CP-SAT parameter(s) {unknown}")
        self._reset_results()

    # -- planning -------------------------------------------------------------------------------------------
    def _reset_results(self) -> None:
        self.plan: list[PlannedExposure] = []
        self.objective = float("nan")
        self.solver_objective = float("nan")
        self.bound = float("nan")
        self.upper_bound: float | None = None
        self.status = "UNKNOWN"
        self.solve_seconds = self.build_seconds = self.bound_seconds = 0.0
        self.n_blocks = 0
        self.greedy_objective = float("nan")
        self.replay: PlanReplayer | None = None
        self._nights_ref = None
        self._last_t = -1.0

    def reset(self) -> None:
        """Forget the plan; the next :meth:`predict` plans the env's current episode."""
        self._reset_results()

    def solve(self) -> TimeIndexedPlanner:
        """Plan the env's current episode (call after ``env.reset``; :meth:`predict` does it by itself).

        Raises
        ------
        ValueError: the env has not been reset, or its episode has already started (time > 0 or
            visits done).
        """
        u = self.env.unwrapped
        if not u.nights:
            raise ValueError("reset the env before planning")
        st = u.state
        if st["time_s"] > 0.0 or st["visits"].any() or st["snr2"].any():
            raise ValueError("TimeIndexedPlanner plans from the start of an episode; reset the env first")
        self._reset_results()
        self._nights_ref = u.nights
        t0 = time.perf_counter()
        blocks, model_parts = self._build(u)
        self.build_seconds = time.perf_counter() - t0
        self._solve_cpsat(u, blocks, model_parts)
        if self.compute_upper_bound:
            t0 = time.perf_counter()
            self.upper_bound = upper_bound_lp(u, self.bound_slot_s)
            self.bound_seconds = time.perf_counter() - t0
        entries = [PlanEntry(target=ex.target, earliest_s=ex.start_s - self.wait_slack_s - 1e-6,
                             latest_s=ex.start_s + self.drop_late_s, visit=ex.visit) for ex in self.plan]
        self.replay = PlanReplayer(entries, lead_s=None)
        return self

    @property
    def skipped(self) -> list[PlannedExposure]:
        """Planned exposures the replay dropped: the mask refused them until ``drop_late_s`` past their time."""
        if self.replay is None:
            return []
        return [ex for ex, outcome in zip(self.plan, self.replay.outcomes) if outcome == "skipped:masked"]

    def _build(self, u):
        from ortools.sat.python import cp_model

        night = u.nights[0]
        table, vis, weather = night.table, night.vis, night.weather
        cat, targ, par = u.catalogue, u.target_table, u.kernel_parameters
        grid_s, length = float(u.config.grid_s), float(table.length_s)
        dt, w = self.slot_s, self.wait_slack_s
        readout, filter_s = float(par[P_READOUT]), float(par[P_FILTER])
        n_slots = int(length // dt)
        if n_slots < 1:
            raise ValueError(f"slot_s={dt} is longer than the night ({length:.0f} s)")
        times = np.arange(n_slots) * dt
        ob = _slew_bounds(times, table.alt, table.az, table.lst_deg, table.ra_app, table.dec_app,
                          par) + self.overhead_margin_s
        n = len(cat)
        exp, nvis, gap = cat.exposure_s.astype(float), cat.n_visits.astype(int), cat.min_gap_s.astype(float)
        req2 = cat.snr.astype(float) ** 2
        # where in [P - w, P] the replay will start an exposure is not known: value it at the middle, or at
        # the worst of starts sampled every half grid step (never on the wrong side of a cloud edge)
        if self.valuation == "mid":
            offsets = (-0.5 * w,)
        else:
            offsets = tuple(np.linspace(-w, 0.0, math.ceil(w / (0.5 * grid_s)) + 1))
        blocks: list[Block] = []
        for i in range(n):
            first = None  # earliest planned start of any block of i: visit v starts >= first + v (exp + gap + w)
            for s in range(n_slots):
                start = s * dt + ob[s, i]
                qs = []
                for k in range(1, self.max_block_exposures + 1):
                    if qs and sum(qs) >= 1.0:
                        break  # k - 1 exposures already complete a visit
                    end = start + k * exp[i] + (k - 1) * readout
                    if end > length or not visible_through(vis, i, start - w, end, grid_s):
                        break
                    mid = start + (k - 1) * (exp[i] + readout) + 0.5 * exp[i]
                    snr = min(K.exposure_snr(i, mid + d, table.alt, table.sky_mag, weather.seeing_arcsec,
                                             weather.cloud_tau, targ, par)[0] for d in offsets)
                    qs.append(snr * snr / req2[i])
                    qint = math.floor(min(sum(qs), 1.0) * PROGRESS_SCALE)
                    if qint < 1:
                        continue
                    dur = ob[s, i] + k * (exp[i] + readout)
                    first = start if first is None else first
                    for v in range(nvis[i]):
                        if start < first + v * (exp[i] + gap[i] + w) - 1e-6:
                            break
                        blocks.append(Block(i, v, k, s, math.ceil(dur / dt - 1e-9), start, np.array(qs), qint,
                                             math.ceil(end / dt - 1e-9)))
        self.n_blocks = len(blocks)
        m = cp_model.CpModel()
        x = [m.NewBoolVar(f"x{b}") for b in range(len(blocks))]
        # capacity and filter states
        used = sorted(set(cat.filter.tolist()))
        r = FILTERS.index("r")
        gslots = math.ceil(max(0.0, filter_s - float(ob.min())) / dt - 1e-9) if used != [r] else 0
        cover: dict[tuple[int, int], list] = {}
        for b, blk in enumerate(blocks):
            f = int(cat.filter[blk.target])
            for t in range(blk.slot, min(blk.slot + blk.n_slots, n_slots)):
                cover.setdefault((f, t), []).append(x[b])
        y = {}
        if len(used) == 1 and gslots == 0:
            for t in range(n_slots):
                terms = cover.get((used[0], t), [])
                if len(terms) > 1:
                    m.AddAtMostOne(terms)
        else:
            y = {(f, t): m.NewBoolVar(f"y{f}_{t}") for f in used for t in range(n_slots)}
            for t in range(n_slots):
                m.AddAtMostOne([y[f, t] for f in used])
                for f in used:
                    terms = cover.get((f, t), [])
                    if terms:
                        m.Add(sum(terms) <= y[f, t])
                    for mm in range(1, gslots + 1):
                        if t - mm < 0:
                            if f != r:
                                m.Add(y[f, t] == 0)  # the night starts in filter r
                        else:
                            others = [y[g, t - mm] for g in used if g != f]
                            if others:
                                m.Add(y[f, t] + sum(others) <= 1)
        # visits: progress, completion, order and gaps
        by_visit: dict[tuple[int, int], list[int]] = {}
        for b, blk in enumerate(blocks):
            by_visit.setdefault((blk.target, blk.visit), []).append(b)
        p, c, fvars = {}, {}, {}
        for i in range(n):
            for v in range(nvis[i]):
                p[i, v] = m.NewIntVar(0, PROGRESS_SCALE, f"p{i}_{v}")
                c[i, v] = m.NewBoolVar(f"c{i}_{v}")
                bs = by_visit.get((i, v), [])
                m.Add(p[i, v] <= sum(blocks[b].qint * x[b] for b in bs))
                m.Add(PROGRESS_SCALE * c[i, v] <= p[i, v])
                if v > 0:
                    m.Add(p[i, v] <= PROGRESS_SCALE * c[i, v - 1])
                    for b in bs:
                        m.AddImplication(x[b], c[i, v - 1])
            for v in range(nvis[i] - 1):
                later = by_visit.get((i, v + 1), [])
                if not later:
                    continue
                fv = fvars[i, v] = [m.NewBoolVar(f"F{i}_{v}_{t}") for t in range(n_slots + 1)]
                ends: dict[int, list] = {}
                for b in by_visit.get((i, v), []):
                    ends.setdefault(blocks[b].end_slot, []).append(x[b])
                for t in range(n_slots + 1):
                    if t < n_slots:
                        m.AddImplication(fv[t], fv[t + 1])
                    terms = ends.get(t + 1, [])
                    if terms:
                        m.Add(fv[t] + sum(terms) <= 1)
                for b in later:
                    tstar = math.floor((blocks[b].start_s - w - gap[i]) / dt)
                    if tstar < 0:
                        m.Add(x[b] == 0)
                    else:
                        m.AddImplication(x[b], fv[min(tstar, n_slots)])
        # objective in integers: weights ~ _MAX_COEF per unit of scaled progress
        unit = cat.priority / nvis
        scale = _MAX_COEF / float(unit.max())
        coef = np.maximum(np.round(scale * unit), 1).astype(np.int64)
        bonus = float(u.config.sequence_bonus)
        bcoef = np.round(scale * bonus * cat.priority * PROGRESS_SCALE).astype(np.int64)
        terms = [int(coef[i]) * p[i, v] for i in range(n) for v in range(nvis[i])]
        terms += [int(bcoef[i]) * c[i, nvis[i] - 1] for i in range(n) if nvis[i] > 1 and bcoef[i] > 0]
        m.Maximize(sum(terms) - sum(x))
        n_visits_total = int(nvis.sum())
        # largest gap between the rounded model and the true value of any solution, in model units:
        # weights rounded (0.5 per unit of progress), each block's value floored (< 1 unit per block; blocks
        # cannot overlap), bonus weights rounded, block penalties
        max_blocks = n_slots // max(1, min((blk.n_slots for blk in blocks), default=1))
        slack = 0.5 * PROGRESS_SCALE * n_visits_total + float(coef.max()) * max_blocks + 0.5 * n + max_blocks
        denom = scale * PROGRESS_SCALE * u.total_weight
        # a greedy schedule in the same formulation as a starting point (CP-SAT's LNS improves it)
        tstar = [math.floor((blk.start_s - w - gap[blk.target]) / dt) for blk in blocks]
        greedy = best_greedy(blocks, tstar, cat, bonus, n_slots, gslots, r,
                             lambda cand: plan_value(u, self._plan_from(u, blocks, cand)))
        add_hints(m, x, p, c, y, fvars, blocks, greedy, n_slots, cat)
        return blocks, {"model": m, "x": x, "denom": denom, "slack": slack, "greedy": greedy, "gslots": gslots}

    def _solve_cpsat(self, u, blocks, parts) -> None:
        from ortools.sat.python import cp_model

        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = self.time_limit_s
        solver.parameters.num_workers = self.num_workers
        solver.parameters.random_seed = self.seed
        solver.parameters.log_search_progress = self.log_search
        # the integer objective carries ~1e-5 of rounding: stop there instead of proving the last digits
        solver.parameters.relative_gap_limit = 1e-5
        for key, value in self.solver_params.items():
            setattr(solver.parameters, key, value)
        t0 = time.perf_counter()
        code = solver.Solve(parts["model"])
        self.solve_seconds = time.perf_counter() - t0
        self.status = solver.StatusName(code)
        self.greedy_objective = plan_value(u, self._plan_from(u, blocks, parts["greedy"]))
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            self.solver_objective = solver.ObjectiveValue() / parts["denom"]
            self.bound = (solver.BestObjectiveBound() + parts["slack"]) / parts["denom"]
            chosen = [b for b, xb in enumerate(parts["x"]) if solver.Value(xb)]
        else:
            chosen = parts["greedy"]  # CP-SAT found nothing in time: keep the feasible greedy start
        self.plan = self._plan_from(u, blocks, chosen)
        self.objective = plan_value(u, self.plan)
        if self.objective < self.greedy_objective:  # the rounded model can rank two plans the other way
            self.plan = self._plan_from(u, blocks, parts["greedy"])
            self.objective = self.greedy_objective

    def _plan_from(self, u, blocks, chosen) -> list[PlannedExposure]:
        exp, readout = u.catalogue.exposure_s, float(u.kernel_parameters[P_READOUT])
        out = []
        for bi, b in enumerate(sorted(chosen, key=lambda b: blocks[b].start_s)):
            blk = blocks[b]
            i = blk.target
            for j in range(blk.k):
                start = blk.start_s + j * (exp[i] + readout)
                out.append(PlannedExposure(i, blk.visit, bi, blk.slot * self.slot_s,
                                           (blk.slot + blk.n_slots) * self.slot_s, float(start),
                                           float(start + exp[i]), float(blk.q[j])))
        return out

    # -- replay ---------------------------------------------------------------------------------------------
    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[Any, None]:
        """The next action of the plan for the env this policy was built with.

        ``observation`` is only used for its batch shape (one env: a dict of unbatched arrays, or a batch
        of one). Plans the episode first when it is new (``episode_start`` true, a fresh ``reset``, or the
        env's time running back).

        Raises
        ------
        ValueError: a batch of more than one observation (this policy follows one env).
        """
        _, batched = one_observation(observation, "TimeIndexedPlanner")
        u = self.env.unwrapped
        t = float(u.state["time_s"])
        new = (episode_start is not None and bool(np.any(episode_start))) or u.nights is not self._nights_ref \
            or t < self._last_t
        if new:
            self.solve()
        self._last_t = t
        a = self.replay.next_action(u)
        return (np.array([a]) if batched else a), None


__all__ = ["TimeIndexedPlanner"]
