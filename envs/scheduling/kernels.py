"""Compiled step of the scheduling environment: apply one decision, then describe the new state.

Everything here reads precomputed arrays (night table, weather track, catalogue columns) and
updates the env's state arrays in place; no astropy, no Python loops per target. Layouts:

* ``targ`` (N, T_COLS) float64 catalogue columns, ``T_*`` indices below.
* ``par`` float64 parameters: telescope (:meth:`Telescope.params`, first 9) then ``PAR_*``.
* ``st`` float64 scalars of the episode state, ``S_*`` indices (time, pointing, filter, tallies).
* per target: ``visits`` int64, ``snr2`` float64 (SNR^2 gathered on the current visit),
  ``last_end`` float64 (episode seconds when the last visit ended), ``tonight`` uint8.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from astrogym.envs.scheduling.features import (
    EF_OVERHEAD,
    EF_SEPARATION,
    GF_CLOUD,
    GF_FILTER,
    GF_HOURS_LEFT,
    GF_MOON_ALT,
    GF_MOON_ILLUMINATION,
    GF_NIGHT_ELAPSED,
    GF_NIGHT_INDEX,
    GF_SEEING,
    GF_SUN_ALT,
    N_GLOBAL_FEATURES,
    MAX_AIRMASS_FEATURE,
    NF_AIRMASS,
    NF_AIRMASS_1H,
    NF_ALT,
    NF_ALT_1H,
    NF_EXPOSURE,
    NF_FILTER_CHANGE,
    NF_HOURS_VISIBLE,
    NF_MAG,
    NF_MOON_SEP,
    NF_OBSERVED,
    NF_OVERHEAD,
    NF_PRIORITY,
    NF_PROGRESS,
    NF_SNR_LEFT,
    NF_VALID,
    NF_VISITS_LEFT,
    OVERHEAD_SCALE_S,
)
from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.photometry import point_source_snr_nb
from astrogym.envs.scheduling.telescope import (P_A1, P_A2, P_DOME, P_EQUATORIAL, P_FILTER, P_READOUT, P_SETTLE, P_V1,
                                                P_V2, slew_between, slew_time)

# Small helpers are inlined: a call of a compiled function with array arguments costs reference-count
# updates per array (~20 ns each), which dominated the per-target loops before.
T_MAG, T_PRIO, T_SNR, T_EXP, T_NVIS, T_GAP, T_FILT, T_CM, T_EXT, T_WL, T_COLS = range(11)
(PAR_SYS_FWHM, PAR_WAIT, PAR_BONUS, PAR_WEIGHT, PAR_GRID, PAR_NIGHT_LEN, PAR_PARK_ALT, PAR_PARK_AZ,
 PAR_PARK_DEC, PAR_COLS) = range(9, 19)
N_TEL = 9
(S_T, S_OFFSET, S_POINT, S_FILTER, S_EXPOSURE, S_OVERHEAD, S_READOUT, S_WAIT, S_FILTER_CHANGES, S_N_EXP,
 S_AIRMASS_SUM, S_VISITS_DONE, S_REWARD, S_COMPLETED_PW, S_OVERHEAD_LAST, S_SNR_LAST, S_COLS) = range(17)
# the observation's columns (NF_* nodes, EF_* edges) and their counts: astrogym.envs.scheduling.features

# result codes of step_kernel
R_OBSERVED, R_WAITED, R_NIGHT_OVER = 0, 1, 2


def target_columns(mag, priority, snr, exposure_s, n_visits, min_gap_s, filt, aperture_m: float) -> np.ndarray:
    """(N, T_COLS) float64: the kernels' catalogue columns for a telescope of ``aperture_m`` (its zero point ``Cm``
    per filter), extinction and wavelength from each target's filter index ``filt``."""
    filt = np.asarray(filt, dtype=int)
    cm = photometry.cm_for_aperture(aperture_m)
    targ = np.zeros((filt.size, T_COLS))
    targ[:, T_MAG], targ[:, T_PRIO], targ[:, T_SNR] = mag, priority, snr
    targ[:, T_EXP], targ[:, T_NVIS], targ[:, T_GAP] = exposure_s, n_visits, min_gap_s
    targ[:, T_FILT], targ[:, T_CM] = filt, cm[filt]
    targ[:, T_EXT], targ[:, T_WL] = photometry.EXTINCTION[filt], photometry.WAVELENGTH_NM[filt]
    return targ


def night_parameters(telescope, site, cfg, total_weight: float, night_length_s: float) -> np.ndarray:
    """(PAR_COLS,) float64: the telescope's numbers, then ``PAR_*`` for one night. ``cfg`` gives ``wait_s``,
    ``sequence_bonus``, ``grid_s`` and ``park_altitude_deg``; the telescope parks on its meridian (south of the
    zenith in the north, north of it in the south)."""
    par = np.zeros(PAR_COLS)
    par[:N_TEL] = telescope.params()
    par[PAR_SYS_FWHM], par[PAR_WAIT], par[PAR_BONUS] = telescope.system_fwhm_arcsec, cfg.wait_s, cfg.sequence_bonus
    par[PAR_WEIGHT], par[PAR_GRID] = total_weight, cfg.grid_s
    par[PAR_NIGHT_LEN] = night_length_s
    par[PAR_PARK_ALT], par[PAR_PARK_AZ] = cfg.park_altitude_deg, 180.0 if site.latitude_deg >= 0 else 0.0
    par[PAR_PARK_DEC] = site.latitude_deg - (90.0 - cfg.park_altitude_deg) * np.sign(site.latitude_deg or 1.0)
    return par


@njit(cache=True, inline="always")
def _interp_pos(alt, az, k0, w, n):
    """Altitude and azimuth of target n at fractional grid position k0 + w (azimuth wrap-aware)."""
    a0 = alt[k0, n]
    if w == 0.0 or k0 + 1 >= alt.shape[0]:
        return a0, az[k0, n]
    a1 = alt[k0 + 1, n]
    z0 = az[k0, n]
    dz = az[k0 + 1, n] - z0
    dz -= 360.0 * np.floor((dz + 180.0) / 360.0)
    z = z0 + w * dz
    return a0 + w * (a1 - a0), z - 360.0 * np.floor(z / 360.0)


@njit(cache=True, inline="always")
def _grid(t, grid_s, n_grid):
    """Grid index and weight of time t (clamped to the table)."""
    x = t / grid_s
    if x <= 0.0:
        return 0, 0.0
    k = int(x)
    if k >= n_grid - 1:
        return n_grid - 1, 0.0
    return k, x - k


@njit(cache=True, inline="always")
def _lerp(a, k, w, n):
    if w == 0.0 or k + 1 >= a.shape[0]:
        return a[k, n]
    return a[k, n] + w * (a[k + 1, n] - a[k, n])


@njit(cache=True, inline="always")
def airmass_of(alt_deg):
    """Plane-parallel airmass sec(z), as astroplan's AirmassConstraint (1/sin(alt))."""
    s = np.sin(np.radians(max(alt_deg, 0.5)))
    return 1.0 / s


@njit(cache=True, inline="always")
def _pointing_kw(n, k, w, alt, az, lst, ra_app, dec_app, par):
    """(az, alt, ha, dec) of target n at grid position (k, w); alt-az mounts get no hour angle."""
    a, z = _interp_pos(alt, az, k, w, n)
    ha = 0.0
    dec = 0.0
    if par[P_EQUATORIAL] > 0.5:
        dl = 0.0 if w == 0.0 else lst[k + 1] - lst[k]
        dl -= 360.0 * np.floor((dl + 180.0) / 360.0)
        ha = lst[k] + w * dl - ra_app[n]
        ha -= 360.0 * np.floor((ha + 180.0) / 360.0)
        dec = dec_app[n]
    return z, a, ha, dec


@njit(cache=True, inline="always")
def pointing(n, t, alt, az, lst, ra_app, dec_app, par):
    """(az, alt, ha, dec) of target n at time t, or the park position for n < 0 (start of a night: on the
    meridian at the parameters' altitude, azimuth and declination)."""
    if n < 0:
        return par[PAR_PARK_AZ], par[PAR_PARK_ALT], 0.0, par[PAR_PARK_DEC]
    k, w = _grid(t, par[PAR_GRID], alt.shape[0])
    return _pointing_kw(n, k, w, alt, az, lst, ra_app, dec_app, par)


@njit(cache=True, inline="always")
def _with_filter_change(slew, filter_from, filter_to, par):
    """A filter change runs in parallel with the slew: the overhead is the longer of the two."""
    if filter_from != filter_to:
        return max(slew, par[P_FILTER])
    return slew


@njit(cache=True)
def overhead_time(src, dst, t, alt, az, lst, ra_app, dec_app, targ, par, current_filter):
    """Seconds before an exposure of ``dst`` can start when pointing at ``src`` at time t: the slew, or the
    filter change if ``dst`` needs another filter and that takes longer (they run in parallel)."""
    z0, a0, h0, d0 = pointing(src, t, alt, az, lst, ra_app, dec_app, par)
    z1, a1, h1, d1 = pointing(dst, t, alt, az, lst, ra_app, dec_app, par)
    return _with_filter_change(slew_time(z0, a0, h0, d0, z1, a1, h1, d1, par), current_filter,
                               int(targ[dst, T_FILT]), par)


@njit(cache=True, inline="always")
def _overhead_between(pos, i, j, par, filter_i, filter_j):
    """Overhead from target i to j given their positions ``pos[:, (az, alt, ha, dec)]`` (i < 0: park)."""
    if i < 0:
        z0, a0, h0, d0 = par[PAR_PARK_AZ], par[PAR_PARK_ALT], 0.0, par[PAR_PARK_DEC]
    else:
        z0, a0, h0, d0 = pos[i, 0], pos[i, 1], pos[i, 2], pos[i, 3]
    return _with_filter_change(slew_time(z0, a0, h0, d0, pos[j, 0], pos[j, 1], pos[j, 2], pos[j, 3], par),
                               filter_i, filter_j, par)


@njit(cache=True, inline="always")
def visible_through(vis_run, n, t0, t1, grid_s):
    """True when target n is visible at every grid point from the one at or before t0 to the one at or after t1.

    ``vis_run[k, n]`` is the number of consecutive visible grid points starting at k (:func:`visible_runs`),
    so the check is one lookup instead of a loop over the exposure.
    """
    k0 = int(t0 / grid_s)
    k1 = int(np.ceil(t1 / grid_s - 1e-9))
    if k0 < 0 or k1 > vis_run.shape[0] - 1:
        return False
    return vis_run[k0, n] >= k1 - k0 + 1


@njit(cache=True)
def visible_runs(vis):
    """(T, N) int32: how many consecutive grid points from each one (inclusive) the target stays visible."""
    n_grid, n_targets = vis.shape
    run = np.zeros((n_grid, n_targets), np.int32)
    for n in range(n_targets):
        count = 0
        for k in range(n_grid - 1, -1, -1):
            count = count + 1 if vis[k, n] else 0
            run[k, n] = count
    return run


@njit(cache=True, inline="always")
def exposure_snr(n, t_mid, alt, sky, seeing, cloud_tau, targ, par):
    """SNR of one exposure of target n centred at t_mid (conditions at mid-exposure)."""
    k, w = _grid(t_mid, par[PAR_GRID], alt.shape[0])
    a = _lerp(alt, k, w, n)
    x = airmass_of(a)
    mu = _lerp(sky, k, w, n)
    kw = k + 1 if (w >= 0.5 and k + 1 < seeing.shape[0]) else k  # weather: nearest grid point
    snr = point_source_snr_nb(targ[n, T_MAG], targ[n, T_CM], mu, seeing[kw], x, targ[n, T_WL], par[PAR_SYS_FWHM],
                              targ[n, T_EXP], targ[n, T_EXT], cloud_tau[kw])
    return snr, x


@njit(cache=True, inline="always")
def can_observe(n, t, overhead, vis_run, targ, par, visits, snr2, last_end, offset):
    """Whether an exposure of n may start after ``overhead`` seconds from time t (the action mask)."""
    if visits[n] >= int(targ[n, T_NVIS]):
        return False
    start = t + overhead
    end = start + targ[n, T_EXP]
    if end > par[PAR_NIGHT_LEN]:
        return False
    if visits[n] > 0 and snr2[n] == 0.0 and offset + start < last_end[n] + targ[n, T_GAP]:
        return False
    return visible_through(vis_run, n, start, end, par[PAR_GRID])


@njit(cache=True, inline="always")
def expose(action, alt, az, lst, ra_app, dec_app, sky, seeing, cloud_tau, targ, par, st, tonight):
    """The telescope's half of a decision: wait (``wait_s`` or to the end of the night), or slew (a filter change
    in parallel), expose and read out. Moves the telescope's clock, pointing, filter and tallies in ``st``;
    returns (result code, the exposure's SNR, its start and end in seconds of the night). What it does to its
    target is :func:`credit_exposure` (at once here, at the exposure's end in the network env)."""
    n_targets = targ.shape[0]
    t = st[S_T]
    night_len = par[PAR_NIGHT_LEN]
    if action >= n_targets:
        dt = min(par[PAR_WAIT], night_len - t)
        st[S_T] = t + dt
        st[S_WAIT] += dt
        st[S_OVERHEAD_LAST] = 0.0
        st[S_SNR_LAST] = 0.0
        return R_WAITED, 0.0, t, t
    n = action
    current = int(st[S_POINT])
    overhead = overhead_time(current, n, t, alt, az, lst, ra_app, dec_app, targ, par, int(st[S_FILTER]))
    if int(targ[n, T_FILT]) != int(st[S_FILTER]):
        st[S_FILTER_CHANGES] += 1.0
        st[S_FILTER] = targ[n, T_FILT]
    start = t + overhead
    exposure = targ[n, T_EXP]
    snr, x = exposure_snr(n, start + 0.5 * exposure, alt, sky, seeing, cloud_tau, targ, par)
    end = start + exposure
    tonight[n] = 1
    st[S_T] = min(end + par[P_READOUT], night_len)
    st[S_POINT] = n
    st[S_EXPOSURE] += exposure
    st[S_OVERHEAD] += overhead
    st[S_READOUT] += st[S_T] - end
    st[S_N_EXP] += 1.0
    st[S_AIRMASS_SUM] += x
    st[S_OVERHEAD_LAST] = overhead
    st[S_SNR_LAST] = snr
    return R_OBSERVED, snr, start, end


@njit(cache=True, inline="always")
def credit_exposure(n, snr_squared, end_s, targ, par, st, visits, snr2, last_end):
    """An exposure's SNR^2 added to target n's current visit; returns the normalised reward. ``end_s`` (on the
    clock of ``last_end``) becomes the visit's end when it completes; tallies go to ``st``."""
    req2 = targ[n, T_SNR] * targ[n, T_SNR]
    before = min(1.0, snr2[n] / req2)
    snr2[n] += snr_squared
    after = min(1.0, snr2[n] / req2)
    nvis = targ[n, T_NVIS]
    reward = targ[n, T_PRIO] * (after - before) / nvis
    if after >= 1.0:
        visits[n] += 1
        snr2[n] = 0.0
        last_end[n] = end_s
        st[S_VISITS_DONE] += 1.0
        st[S_COMPLETED_PW] += targ[n, T_PRIO] / nvis
        if visits[n] == int(nvis) and nvis > 1:
            reward += par[PAR_BONUS] * targ[n, T_PRIO]
    reward /= par[PAR_WEIGHT]
    st[S_REWARD] += reward
    return reward


@njit(cache=True)
def step_kernel(action, alt, az, lst, ra_app, dec_app, sky, vis_run, seeing, cloud_tau, targ, par, st, visits, snr2,
                last_end, tonight):
    """Apply one decision; returns (reward, result code). Actions 0..N-1 observe, N (or more) waits.

    Observing: overhead (slew / filter change), one exposure of the target's length, readout
    (:func:`expose`). The exposure's SNR^2 adds to the visit's; the visit completes when it reaches the
    requested SNR^2 (the excess is not carried over). Reward (:func:`credit_exposure`): priority x
    progress of the visit / n_visits, plus ``bonus`` x priority when a multi-visit target completes, all
    divided by the catalogue's total weight (so a night's return is its priority-weighted completion,
    bonus included). Waiting: ``wait_s`` or up to the end of the night. The caller checks the mask first.
    """
    code, snr, _, end = expose(action, alt, az, lst, ra_app, dec_app, sky, seeing, cloud_tau, targ, par, st, tonight)
    if code == R_WAITED:
        return 0.0, R_WAITED
    return credit_exposure(action, snr * snr, st[S_OFFSET] + end, targ, par, st, visits, snr2, last_end), R_OBSERVED


@njit(cache=True, inline="always")
def _lerp_scalar(v0, v1, w, last):
    """``_lerp`` on values already read: ``v0`` at the grid point, ``v1`` at the next (ignored when ``last``)."""
    if w == 0.0 or last:
        return v0
    return v0 + w * (v1 - v0)


@njit(cache=True)
def observe_kernel(alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing, cloud_tau, targ, par, st,
                   visits, snr2, last_end, tonight, nodes, mask):
    """Fill node features (columns ``NF_*`` of :mod:`features`) and the action mask for the current state.

    The loop over targets reads the arrays itself and calls only scalar helpers: an inlined helper that
    takes arrays still pays reference counting per array and call, which made this loop ~10x slower.
    The arithmetic is that of :func:`pointing`, :func:`can_observe` and :func:`exposure_snr`, operation for
    operation, so the features and the mask agree with :func:`step_kernel` to the bit.
    """
    n_targets = targ.shape[0]
    t = st[S_T]
    grid_s = par[PAR_GRID]
    night_len = par[PAR_NIGHT_LEN]
    n_grid = alt.shape[0]
    k, w = _grid(t, grid_s, n_grid)
    k_hour, w_hour = _grid(t + 3600.0, grid_s, n_grid)
    last = w == 0.0 or k + 1 >= n_grid
    last_hour = w_hour == 0.0 or k_hour + 1 >= n_grid
    hour_ok = t + 3600.0 <= night_len
    k_next = k + 1 if k + 1 < n_grid else k
    k_hour_next = k_hour + 1 if k_hour + 1 < n_grid else k_hour
    kw = k + 1 if (w >= 0.5 and k + 1 < seeing.shape[0]) else k  # weather: nearest grid point (exposure_snr)
    seeing_now, tau_now = seeing[kw], cloud_tau[kw]
    current = int(st[S_POINT])
    current_filter = int(st[S_FILTER])
    offset = st[S_OFFSET]
    equatorial = par[P_EQUATORIAL] > 0.5
    lst_now = lst[k]
    if equatorial and w != 0.0:
        dl = lst[k + 1] - lst[k]
        dl -= 360.0 * np.floor((dl + 180.0) / 360.0)
        lst_now = lst[k] + w * dl
    # telescope constants for slew_between (scalars: see the docstring)
    v1, a1, v2, a2 = par[P_V1], par[P_A1], par[P_V2], par[P_A2]
    dome, settle, filter_s = par[P_DOME], par[P_SETTLE], par[P_FILTER]
    sys_fwhm = par[PAR_SYS_FWHM]
    any_valid = False
    pos = np.empty((n_targets, 4))
    for n in range(n_targets):
        a0 = alt[k, n]
        if last:
            pos[n, 0], pos[n, 1] = az[k, n], a0
        else:
            z0 = az[k, n]
            dz = az[k + 1, n] - z0
            dz -= 360.0 * np.floor((dz + 180.0) / 360.0)
            z = z0 + w * dz
            pos[n, 0], pos[n, 1] = z - 360.0 * np.floor(z / 360.0), a0 + w * (alt[k + 1, n] - a0)
        ha = 0.0
        dec = 0.0
        if equatorial:
            ha = lst_now - ra_app[n]
            ha -= 360.0 * np.floor((ha + 180.0) / 360.0)
            dec = dec_app[n]
        pos[n, 2], pos[n, 3] = ha, dec
    if current < 0:
        z_from, a_from, h_from, d_from = par[PAR_PARK_AZ], par[PAR_PARK_ALT], 0.0, par[PAR_PARK_DEC]
    else:
        z_from, a_from, h_from, d_from = pos[current, 0], pos[current, 1], pos[current, 2], pos[current, 3]
    for n in range(n_targets):
        a = pos[n, 1]
        a_hour = _lerp_scalar(alt[k_hour, n], alt[k_hour_next, n], w_hour, last_hour) if hour_ok else -90.0
        filt = int(targ[n, T_FILT])
        overhead = slew_between(z_from, a_from, h_from, d_from, pos[n, 0], pos[n, 1], pos[n, 2], pos[n, 3],
                                equatorial, v1, a1, v2, a2, dome, settle)
        if filt != current_filter:
            overhead = max(overhead, filter_s)
        # can_observe, on scalars
        nvis = int(targ[n, T_NVIS])
        exposure = targ[n, T_EXP]
        ok = visits[n] < nvis
        start = t + overhead
        end = start + exposure
        if ok and end > night_len:
            ok = False
        if ok and visits[n] > 0 and snr2[n] == 0.0 and offset + start < last_end[n] + targ[n, T_GAP]:
            ok = False
        if ok:
            k0 = int(start / grid_s)
            k1 = int(np.ceil(end / grid_s - 1e-9))
            ok = k0 >= 0 and k1 <= vis_run.shape[0] - 1 and vis_run[k0, n] >= k1 - k0 + 1
        mask[n] = ok
        any_valid = any_valid or ok
        x = airmass_of(a)
        req2 = targ[n, T_SNR] * targ[n, T_SNR]
        progress = 0.0
        if ok:  # expected progress of one exposure started now, in the current conditions (0 if not allowed)
            mu = _lerp_scalar(sky[k, n], sky[k_next, n], w, last)
            # x is exposure_snr's airmass: the same interpolated altitude
            snr = point_source_snr_nb(targ[n, T_MAG], targ[n, T_CM], mu, seeing_now, x, targ[n, T_WL], sys_fwhm,
                                      exposure, targ[n, T_EXT], tau_now)
            progress = min(1.0, (snr2[n] + snr * snr) / req2) - min(1.0, snr2[n] / req2)
        nodes[n, NF_ALT] = a / 90.0
        nodes[n, NF_AIRMASS] = min(x, MAX_AIRMASS_FEATURE) if a > 0.0 else MAX_AIRMASS_FEATURE
        nodes[n, NF_ALT_1H] = a_hour / 90.0
        nodes[n, NF_AIRMASS_1H] = (min(airmass_of(a_hour), MAX_AIRMASS_FEATURE) if a_hour > 0.0
                                   else MAX_AIRMASS_FEATURE)
        nodes[n, NF_HOURS_VISIBLE] = min(vis_left[k, n] / 3600.0, 24.0)
        nodes[n, NF_PRIORITY] = targ[n, T_PRIO]
        nodes[n, NF_VISITS_LEFT] = (targ[n, T_NVIS] - visits[n]) / targ[n, T_NVIS]
        nodes[n, NF_SNR_LEFT] = 0.0 if visits[n] >= nvis else 1.0 - min(1.0, snr2[n] / req2)
        nodes[n, NF_MAG] = min(max((targ[n, T_MAG] - 20.0) / 5.0, -5.0), 2.0)
        nodes[n, NF_MOON_SEP] = _lerp_scalar(moon_sep[k, n], moon_sep[k_next, n], w, last) / 180.0
        nodes[n, NF_OBSERVED] = tonight[n]
        nodes[n, NF_OVERHEAD] = min(overhead / OVERHEAD_SCALE_S, 100.0)
        nodes[n, NF_EXPOSURE] = min(exposure / OVERHEAD_SCALE_S, 12.0)
        nodes[n, NF_PROGRESS] = progress
        nodes[n, NF_VALID] = 1.0 if ok else 0.0
        nodes[n, NF_FILTER_CHANGE] = 1.0 if filt != current_filter else 0.0
    mask[n_targets] = True  # waiting is always allowed
    return any_valid


@njit(cache=True)
def edge_kernel(t, alt, az, lst, ra_app, dec_app, targ, par, edge_src, edge_dst, edge_sep, edges):
    """Edge features at time t: overhead from source to destination (each in its own filter), separation."""
    n_targets = targ.shape[0]
    k, w = _grid(t, par[PAR_GRID], alt.shape[0])
    pos = np.empty((n_targets, 4))
    for n in range(n_targets):
        pos[n, 0], pos[n, 1], pos[n, 2], pos[n, 3] = _pointing_kw(n, k, w, alt, az, lst, ra_app, dec_app, par)
    for e in range(edge_src.shape[0]):
        i, j = edge_src[e], edge_dst[e]
        edges[e, EF_OVERHEAD] = min(_overhead_between(pos, i, j, par, int(targ[i, T_FILT]), int(targ[j, T_FILT]))
                                    / OVERHEAD_SCALE_S, 100.0)
        edges[e, EF_SEPARATION] = edge_sep[e] / 180.0


# -- the native vector env's step: every copy in one call (envs/scheduling/vector.py) -----------------------
# Per-copy arrays of different shapes (catalogue sizes, night lengths) come as numba typed Lists,
# element i for copy i; per-copy state as stacked arrays padded to max_targets.
@njit(cache=True)
def _step_copy(i, actions, n_targets, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing,
               cloud_tau, targ, par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src, edge_dst, edge_sep,
               edge_features, edge_done, edges, edge_grid_s, rewards, codes, night_over):
    n = n_targets[i]
    p, s = par[i], st[i]
    reward, code = step_kernel(actions[i], alt[i], az[i], lst[i], ra_app[i], dec_app[i], sky[i], vis_run[i],
                               seeing[i], cloud_tau[i], targ[i], p, s, visits[i, :n], snr2[i, :n], last_end[i, :n],
                               tonight[i, :n])
    rewards[i] = reward
    codes[i] = code
    night_over[i] = s[S_T] >= p[PAR_NIGHT_LEN] - 1e-9
    if not night_over[i]:
        observe_copy(i, n, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing, cloud_tau, targ,
                     par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src, edge_dst, edge_sep,
                     edge_features, edge_done, edges, edge_grid_s)


@njit(cache=True)
def step_batch(actions, active, n_targets, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing,
               cloud_tau, targ, par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src, edge_dst, edge_sep,
               edge_features, edge_done, edges, edge_grid_s, rewards, codes, night_over):
    """:func:`step_kernel` then, unless the night ended, :func:`observe_kernel` and the edge features, for every
    copy ``i`` with ``active[i]``, one after the other, as the single env's ``step`` does.

    ``actions[i]`` is the kernel's action (``n_targets[i]`` = wait), already checked against the mask.
    Writes ``rewards[i]``, ``codes[i]`` (``R_*``) and ``night_over[i]``; a copy whose night ended is left
    for the caller to start its next night (or end the episode) and observe. :func:`step_batch_parallel`
    is the same across numba's threads.
    """
    for i in range(actions.shape[0]):
        if active[i]:
            _step_copy(i, actions, n_targets, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing,
                       cloud_tau, targ, par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src, edge_dst,
                       edge_sep, edge_features, edge_done, edges, edge_grid_s, rewards, codes, night_over)


@njit(cache=True, parallel=True)
def step_batch_parallel(actions, active, n_targets, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep,
                        seeing, cloud_tau, targ, par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src,
                        edge_dst, edge_sep, edge_features, edge_done, edges, edge_grid_s, rewards, codes, night_over):
    """:func:`step_batch` with the copies spread over numba's threads (``prange``). Copies on one night share
    its edge-feature rows; two threads filling the same row write the same numbers."""
    for i in prange(actions.shape[0]):
        if active[i]:
            _step_copy(i, actions, n_targets, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing,
                       cloud_tau, targ, par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src, edge_dst,
                       edge_sep, edge_features, edge_done, edges, edge_grid_s, rewards, codes, night_over)


@njit(cache=True)
def observe_copy(i, n, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing, cloud_tau, targ,
                 par, st, visits, snr2, last_end, tonight, nodes, mask, edge_src, edge_dst, edge_sep, edge_features,
                 edge_done, edges, edge_grid_s):
    """The single env's ``_observe`` for copy ``i``: node features, mask (wait at the last slot), edge row."""
    p, s = par[i], st[i]
    observe_kernel(alt[i], az[i], lst[i], ra_app[i], dec_app[i], sky[i], vis_run[i], vis_left[i], moon_sep[i],
                   seeing[i], cloud_tau[i], targ[i], p, s, visits[i, :n], snr2[i, :n], last_end[i, :n],
                   tonight[i, :n], nodes[i, :n], mask[i, :n + 1])
    row = int(s[S_T] // edge_grid_s)
    features = edge_features[i]
    if not edge_done[i][row]:
        edge_kernel(row * edge_grid_s, alt[i], az[i], lst[i], ra_app[i], dec_app[i], targ[i], p, edge_src[i],
                    edge_dst[i], edge_sep[i], features[row])
        edge_done[i][row] = True
    n_edges = edge_src[i].shape[0]
    for e in range(n_edges):
        edges[i, e, 0] = features[row, e, 0]
        edges[i, e, 1] = features[row, e, 1]
    max_targets = mask.shape[1] - 1
    if n < max_targets:  # the kernel put 'wait' at index n; it lives at max_targets
        for k in range(n, max_targets):
            mask[i, k] = False
        mask[i, max_targets] = True


@njit(cache=True)
def globals_batch(st, par, night_index, n_nights, seeing, cloud_state, moon_alt, moon_phase_angle, sun_alt,
                  forecast, has_forecast, out):
    """The single env's ``globals`` observation for every copy (columns ``GF_*`` of :mod:`features`)."""
    for i in range(st.shape[0]):
        s, p, g = st[i], par[i], out[i]
        length = p[PAR_NIGHT_LEN]
        n_grid = seeing[i].shape[0]
        k = min(int(s[S_T] / p[PAR_GRID] + 0.5), n_grid - 1)
        for c in range(g.shape[0]):
            g[c] = 0.0
        g[GF_NIGHT_ELAPSED] = s[S_T] / length
        g[GF_HOURS_LEFT] = min((length - s[S_T]) / 3600.0 / 12.0, 2.0)
        g[GF_NIGHT_INDEX] = night_index[i] / n_nights
        g[GF_SEEING] = min(seeing[i][k] / 2.0, 50.0)
        g[GF_CLOUD + int(cloud_state[i][k])] = 1.0
        g[GF_FILTER + int(s[S_FILTER])] = 1.0
        g[GF_MOON_ALT] = moon_alt[i][k] / 90.0
        g[GF_MOON_ILLUMINATION] = 0.5 * (1.0 + np.cos(np.radians(moon_phase_angle[i][k])))
        g[GF_SUN_ALT] = sun_alt[i][k] / 90.0
        if has_forecast:
            g[N_GLOBAL_FEATURES] = forecast[i][k, 0]
            g[N_GLOBAL_FEATURES + 1] = forecast[i][k, 1]
