"""An upper bound on any policy's return for one ``TelescopeScheduling-v0`` night: an LP relaxation.

:func:`upper_bound_lp` (the offline optimum's ``upper_bound``) bounds the return of *any* policy on
the episode (not just the optimum's formulation): an LP (HiGHS) over slots of ``bound_slot_s``
where an exposure starting anywhere in slot ``s`` is credited the SNR it would reach under the best
conditions found on the grid points around its mid-exposure (best altitude, darkest sky, best
seeing, thinnest cloud: the SNR is monotone in each), must be visible on every grid point it surely
spans, occupies only the slots it surely covers (``floor((exposure + readout) / Δb) - 1``), and
overheads, visit gaps and the visit structure are dropped (progress per target
``<= min(n_visits, sum q)``, completion bonus linear in progress; :func:`_max_visits` caps the
visits a target can start tonight).

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
    """Most visits of target n that can start tonight (capped at ``n_visits``): the greedy earliest-start
    sequence of exposures that pass the env's ``visible_through`` with starts at least
    ``exposure + gap`` apart. Within a grid cell the feasible starts form an interval that begins at
    the cell's grid point, so the earliest feasible start at or after tau is tau or a later grid point."""
    count, tau = 0, 0.0
    n_grid = vis.shape[0]
    while count < n_visits:
        start = None
        if tau + exposure <= length and visible_through(vis, n, tau, tau + exposure, grid_s):
            start = tau
        else:
            k = math.floor(tau / grid_s) + 1
            while k < n_grid and k * grid_s + exposure <= length:
                if visible_through(vis, n, k * grid_s, k * grid_s + exposure, grid_s):
                    start = k * grid_s
                    break
                k += 1
        if start is None:
            break
        count += 1
        tau = start + exposure + gap
    return count


def upper_bound_lp(env, bound_slot_s: float | None = None) -> float:
    """An upper bound on any policy's return for the env's current (single-night) episode.

    The LP relaxation described in the module docstring, solved with HiGHS.

    Parameters
    ----------
    env: the env after ``reset``.
    bound_slot_s: slot length (None: the env's ``grid_s``); smaller is tighter and larger.

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
            q = float(snr) ** 2 / float(cat.snr[i]) ** 2
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
    reach = np.array([_max_visits(vis, i, exp[i], float(cat.min_gap_s[i]), int(nvis[i]), length, grid_s)
                      for i in range(n)], dtype=float)
    upper = np.concatenate([np.ones(n_x), reach, np.where(multi & (reach >= nvis), 1.0, 0.0)])
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
    per_target: list[list[int]] = [[] for _ in range(n)]
    for col, i in enumerate(cols_i):
        per_target[i].append(col)
    for i in range(n):
        # P_i - sum q x <= 0
        add_row([n_x + i] + per_target[i], [1.0] + [-cols_q[c] for c in per_target[i]], -inf, 0.0)
        if multi[i]:  # C_i - P_i / nvis_i <= 0
            add_row([n_x + n + i, n_x + i], [1.0, -1.0 / nvis[i]], -inf, 0.0)
    if rows_lo:
        h.addRows(len(rows_lo), np.array(rows_lo), np.array(rows_hi), len(index), np.array(starts, np.int32),
                  np.array(index, np.int32), np.array(value))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"upper-bound LP: HiGHS status {h.modelStatusToString(h.getModelStatus())}")
    return float(-h.getInfo().objective_function_value)
