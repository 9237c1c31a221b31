"""An upper bound on any policy's return for one ``TelescopeScheduling-v0`` night: an LP relaxation.

:func:`upper_bound_lp` (the offline optimum's ``upper_bound``) bounds the return of *any* policy on
the episode (not just the optimum's formulation): an LP (HiGHS) over slots of ``bound_slot_s``
where an exposure starting anywhere in slot ``s`` is credited the SNR it would reach under the best
conditions found on the grid points around its mid-exposure (best altitude, darkest sky, best
seeing, thinnest cloud: the SNR is monotone in each), must be visible on every grid point it surely
spans, occupies only the slots it surely covers (``floor((exposure + readout) / Δb) - 1``), and
overheads are dropped (progress per target ``<= min(n_visits, sum q)``, completion bonus linear in
progress; :func:`_max_visits` caps the visits a target can start tonight).

Tightenings (issue 12), each valid for every policy, so the LP stays a relaxation:

* *capped credit* (``cap_progress``): an exposure adds ``min(1, p + q) - p <= min(q, 1)`` to its visit's
  progress ``p`` (the env does not carry excess SNR^2 over to the next visit), so columns are credited
  ``min(q, 1)``;
* *busy time* (``busy_windows_s``): the env's exposures, each followed by its readout (cut at dawn), are
  disjoint intervals, so those that surely lie inside a window ``[a, b]`` (start slot at or after ``a``,
  latest end ``(s + 1) Δb + exposure (+ readout)`` at or before ``b``) add up to at most ``b - a``:
  one row per window of 15 min, 1 h, 4 h and the whole night, every half length. This counts
  exposures that are shorter than a slot, which the slot-cover rows cannot;
* *visit order* (``visit_order``): with ``t_v`` the earliest start of visit ``v`` (:func:`_earliest_visits`,
  a lower bound for every schedule), the progress of visits ``v, v+1, ...`` comes only from exposures
  starting at or after ``t_v``, each visit at most 1, so ``P_i <= v + sum_{start >= t_v} q x``; and the
  completion bonus needs the last visit complete: ``C_i <= sum_{start >= t_last} q x``. A visit takes at
  least ``ceil(1 / q_max_i)`` exposures (``q_max_i`` the target's largest credit tonight), so ``t_v`` steps
  by that many exposures and the readouts between them, plus the gap. A visit can complete only if an
  exposure can still start that long after its first one (its last exposure): the visits that can
  start cap the progress (an incomplete visit still earns its partial progress), those that can
  complete gate the next visit and the bonus (:func:`_visit_starts`).

``tests/test_offline_optimum.py`` checks on seeded nights that the bound stays above the best plan found.

HiGHS is imported when the bound is computed.
"""

from __future__ import annotations

import math

import numpy as np

from astrogym.agents.scheduling.optimum.plan import visible_through
from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.telescope import P_READOUT


def _max_visits(vis: np.ndarray, n: int, exposure: float, gap: float, n_visits: int, length: float,
                grid_s: float) -> int:
    """Most visits of target n that can start tonight (capped at ``n_visits``): see :func:`_earliest_visits`."""
    return len(_earliest_visits(vis, n, exposure, gap, n_visits, length, grid_s))


def _earliest_visits(vis: np.ndarray, n: int, exposure: float, gap: float, n_visits: int, length: float,
                     grid_s: float, span: float | None = None) -> list[float]:
    """Earliest possible start of each visit of target n tonight (at most ``n_visits``): the greedy
    earliest-start sequence of exposures that pass the env's ``visible_through`` with starts at least
    ``span + gap`` apart, ``span`` (default ``exposure``) a lower bound on the time from a visit's first
    exposure's start to its last one's end. Within a grid cell the feasible starts form an interval that
    begins at the cell's grid point, so the earliest feasible start at or after tau is tau or a later grid
    point. By induction no schedule starts visit v (0-based) earlier: visit v - 1 starts at or after its
    earliest start and ends at least ``span`` later, then the gap (the env's mask counts it from the end of
    the exposure that completed the visit)."""
    span = exposure if span is None else max(float(span), exposure)
    return _visit_starts(vis, n, exposure, gap, n_visits, length, grid_s, span)[0]


def _visit_starts(vis: np.ndarray, n: int, exposure: float, gap: float, n_visits: int, length: float,
                  grid_s: float, span: float) -> tuple[list[float], int]:
    """:func:`_earliest_visits` and how many of those visits can complete: a visit completes only if an exposure
    can still start ``span - exposure`` after its first one (its last exposure; if none can then, none can
    after a later first one either). A visit that can start but not complete still earns partial progress;
    the next one cannot start."""
    starts: list[float] = []
    tau = 0.0
    while len(starts) < n_visits:
        start = _first_start(vis, n, tau, exposure, length, grid_s)
        if start is None:
            break
        starts.append(start)
        if span > exposure and _first_start(vis, n, start + span - exposure, exposure, length, grid_s) is None:
            return starts, len(starts) - 1
        tau = start + span + gap
    return starts, len(starts)


def _first_start(vis: np.ndarray, n: int, tau: float, exposure: float, length: float, grid_s: float) -> float | None:
    """The earliest start at or after tau of an exposure of target n that passes the env's ``visible_through``
    and ends before dawn (tau itself or a later grid point), or None."""
    if tau + exposure <= length and visible_through(vis, n, tau, tau + exposure, grid_s):
        return tau
    k = math.floor(tau / grid_s) + 1
    while k < vis.shape[0] and k * grid_s + exposure <= length:
        if visible_through(vis, n, k * grid_s, k * grid_s + exposure, grid_s):
            return k * grid_s
        k += 1
    return None


BUSY_WINDOWS_S = (900.0, 3600.0, 14400.0, 1e9)  # window lengths of the busy-time rows (1e9: the whole night)


def upper_bound_lp(env, bound_slot_s: float | None = None, cap_progress: bool = True,
                   busy_windows_s: tuple[float, ...] = BUSY_WINDOWS_S, visit_order: bool = True,
                   details: bool = False):
    """An upper bound on any policy's return for the env's current (single-night) episode.

    The LP relaxation described in the module docstring, solved with HiGHS.

    Parameters
    ----------
    env: the env after ``reset``.
    bound_slot_s: slot length (None: the env's ``grid_s``); smaller is tighter and larger.
    cap_progress: credit an exposure at most ``min(q, 1)`` (the tightening of issue 12; False: the old bound).
    busy_windows_s: lengths of the busy-time windows (rows every half length; ``()``: none, the old bound).
    visit_order: the rows on visits' earliest starts (False: the old bound).
    details: also return the LP's progress (completed visits, fractional) and bonus share per target:
        ``(bound, progress, bonus)`` (where the bound's slack lies).

    Raises
    ------
    ValueError: bad ``bound_slot_s`` or the env has not been reset.
    RuntimeError: HiGHS does not report an optimal LP.
    """
    import highspy

    u = getattr(env, "unwrapped", env)
    if not u.nights:
        raise ValueError("reset the env before computing the bound")
    night = u.nights[0]
    table, vis, weather = night.table, night.vis, night.weather
    cat, par = u.catalogue, u.kernel_parameters
    grid_s, length = float(u.config.grid_s), float(table.length_s)
    db = grid_s if bound_slot_s is None else float(bound_slot_s)
    if not np.isfinite(db) or db <= 0:
        raise ValueError(f"bound_slot_s={bound_slot_s!r} must be > 0")
    readout = float(par[P_READOUT])
    n_grid = table.times_s.size
    n_slots = int(length // db)
    n = len(cat)
    exp, nvis = cat.exposure_s.astype(float), cat.n_visits.astype(float)
    cm = photometry.cm_for_aperture(u.telescope.aperture_m)[cat.filter]
    wl, ext = photometry.WAVELENGTH_NM[cat.filter], photometry.EXTINCTION[cat.filter]
    cols_i, cols_s, cols_q = [], [], []
    for i in range(n):
        for s in range(n_slots):
            lo = s * db
            if lo + exp[i] > length:
                break
            # visibility on the grid points every start in the slot spans, and at the start itself
            k_a, k_b = math.ceil((lo + db) / grid_s), math.floor((lo + exp[i]) / grid_s)
            if k_a <= k_b and not vis[k_a:min(k_b, n_grid - 1) + 1, i].all():
                continue
            k_s0, k_s1 = int(lo // grid_s), min(int((lo + db) // grid_s), n_grid - 1)
            if not vis[k_s0:k_s1 + 1, i].any():
                continue
            # best conditions on the grid points around the mid-exposure range
            m0, m1 = lo + 0.5 * exp[i], lo + db + 0.5 * exp[i]
            g0 = min(max(math.floor(m0 / grid_s), 0), n_grid - 1)
            g1 = min(max(math.ceil(m1 / grid_s), 0), n_grid - 1)
            sl = slice(g0, g1 + 1)
            alt = float(table.alt[sl, i].max())
            mu = float(table.sky_mag[sl, i].max())
            seeing = float(weather.seeing_arcsec[sl].min())
            tau = float(weather.cloud_tau[sl].min())
            x = 1.0 / math.sin(math.radians(max(alt, 0.5)))
            snr = photometry.point_source_snr(cat.mag[i], cm[i], mu, seeing, x, wl[i], u.telescope.system_fwhm_arcsec,
                                              exp[i], ext[i], tau)
            # an exposure adds at most min(q, 1) to its visit's progress (the excess SNR^2 is not carried over)
            q = min(float(snr) ** 2 / float(cat.snr[i]) ** 2, 1.0) if cap_progress else float(snr) ** 2 / float(
                cat.snr[i]) ** 2
            if q > 0:
                cols_i.append(i)
                cols_s.append(s)
                cols_q.append(q)
    n_x = len(cols_i)
    # variables: x (n_x) in [0, 1], then progress P_i in [0, nvis_i], then bonus C_i in [0, 1]
    bonus = float(u.config.sequence_bonus)
    multi = nvis > 1
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    n_var = n_x + 2 * n
    cost = np.zeros(n_var)
    cost[n_x:n_x + n] = cat.priority / nvis / u.total_weight
    cost[n_x + n:] = np.where(multi, bonus * cat.priority / u.total_weight, 0.0)
    lower = np.zeros(n_var)
    # a visit needs at least ceil(1 / q_max) exposures (q_max: the target's best credit tonight), back to back at
    # best: it spans at least that many exposures and the readouts between them
    q_max = np.zeros(n)
    for i, q in zip(cols_i, cols_q):
        q_max[i] = max(q_max[i], q)
    n_min = np.where(q_max > 0, np.ceil(1.0 / np.maximum(q_max, 1e-12) - 1e-9), 1.0)
    span = exp * n_min + readout * (n_min - 1) if visit_order else exp
    visits = [_visit_starts(vis, i, exp[i], float(cat.min_gap_s[i]), int(nvis[i]), length, grid_s, float(span[i]))
              for i in range(n)]
    earliest = [v[0] for v in visits]
    reach = np.array([len(e) for e in earliest], dtype=float)  # visits that can start (partial progress counts)
    complete = np.array([v[1] for v in visits], dtype=float)  # visits that can complete
    upper = np.concatenate([np.ones(n_x), reach, np.where(multi & (complete >= nvis), 1.0, 0.0)])
    h.addVars(n_var, lower, upper)
    h.changeColsCost(n_var, np.arange(n_var, dtype=np.int32), -cost)  # HiGHS minimises
    rows_lo, rows_hi, starts, index, value = [], [], [], [], []

    def add_row(idx, val, lo_, hi_):
        starts.append(len(index))
        index.extend(idx)
        value.extend(val)
        rows_lo.append(lo_)
        rows_hi.append(hi_)

    # slots surely covered: start in slot s covers slots s+1 .. s + floor((exp + readout) / db) - 1
    cover: list[list[int]] = [[] for _ in range(n_slots)]
    for col, (i, s) in enumerate(zip(cols_i, cols_s)):
        for t in range(s + 1, min(s + int((exp[i] + readout) // db), n_slots)):
            cover[t].append(col)
    for t in range(n_slots):
        if len(cover[t]) > 1:
            add_row(cover[t], [1.0] * len(cover[t]), -inf, 1.0)
    # busy time: the exposures (and their readouts) of a night are disjoint intervals, so those that surely lie
    # in a window [a, b] take at most b - a of it
    for lw in busy_windows_s:
        lw = min(float(lw), length)
        step = max(lw / 2.0, db)
        a = 0.0
        while a < length - 1e-9:
            b = min(a + lw, length)
            idx, val = [], []
            for col, (i, s) in enumerate(zip(cols_i, cols_s)):
                lo, hi = s * db, (s + 1) * db
                if lo < a - 1e-9:
                    continue
                if hi + exp[i] + readout <= b + 1e-9:
                    idx.append(col)
                    val.append(exp[i] + readout)
                elif hi + exp[i] <= b + 1e-9:
                    idx.append(col)
                    val.append(exp[i])
            if len(idx) > 1:
                add_row(idx, val, -inf, b - a)
            if b >= length - 1e-9:
                break
            a += step
    per_target: list[list[int]] = [[] for _ in range(n)]
    for col, i in enumerate(cols_i):
        per_target[i].append(col)
    for i in range(n):
        # P_i - sum q x <= 0
        add_row([n_x + i] + per_target[i], [1.0] + [-cols_q[c] for c in per_target[i]], -inf, 0.0)
        if visit_order:
            # visits v.. of i come from exposures starting at or after visit v's earliest start t_v (each visit's
            # progress is at most 1): P_i <= v + sum_{start >= t_v} q x; the bonus needs the last visit complete
            late = [[c for c in per_target[i] if (cols_s[c] + 1) * db > t_v + 1e-9] for t_v in earliest[i]]
            for v in range(1, len(late)):
                if len(late[v]) < len(per_target[i]):
                    add_row([n_x + i] + late[v], [1.0] + [-cols_q[c] for c in late[v]], -inf, float(v))
            if multi[i] and complete[i] >= nvis[i]:
                add_row([n_x + n + i] + late[-1], [1.0] + [-cols_q[c] for c in late[-1]], -inf, 0.0)
        if multi[i]:  # C_i - P_i / nvis_i <= 0
            add_row([n_x + n + i, n_x + i], [1.0, -1.0 / nvis[i]], -inf, 0.0)
    if rows_lo:
        h.addRows(len(rows_lo), np.array(rows_lo), np.array(rows_hi), len(index), np.array(starts, np.int32),
                  np.array(index, np.int32), np.array(value))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"upper-bound LP: HiGHS status {h.modelStatusToString(h.getModelStatus())}")
    bound = float(-h.getInfo().objective_function_value)
    if details:
        col = np.asarray(h.getSolution().col_value)
        return bound, col[n_x:n_x + n].copy(), col[n_x + n:].copy()
    return bound
