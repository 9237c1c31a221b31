"""Compiled step of the network env: commit the deciding telescope's choice, advance to the next free telescope.

The single-site kernels (:mod:`astrogym.envs.scheduling.kernels`) do the physics: overheads, SNR,
visibility, node features. What is new here is the event order of several telescopes sharing one
target pool:

* **Commit.** The deciding telescope's exposure is fixed when it is chosen (slew, SNR from the
  site's true conditions at mid-exposure), and its clock moves past the readout, but its effect on
  the shared pool waits in ``pending`` until the exposure *ends*.
* **Advance.** The next decision belongs to the telescope whose clock (seconds since the network's
  first evening) is earliest among those whose night is not over (ties: the lower index). Every
  pending exposure that ended by then is applied first, in order of its end.
* **Apply.** An exposure adds its SNR^2 to the target's current visit as the single-site step does;
  one that arrives after the target's visits are all done, or inside the minimum gap after a visit
  another telescope just completed, is a *duplicate*: it counts nothing.

Per-site arrays are stacked over telescopes (row ``k`` for telescope ``k``) and padded to the longest
night, with ``n_grid[k]`` the length of telescope ``k``'s grid; per-telescope rows ``targ[k]``, ``par[k]``, ``st[k]`` use the single-site column
indices (``T_*``, ``PAR_*``, ``S_*``); ``visits``, ``snr2``, ``last_end`` (absolute seconds) are shared.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from astrogym.envs.scheduling import features as F
from astrogym.envs.scheduling.kernels import (
    PAR_GRID,
    PAR_NIGHT_LEN,
    R_OBSERVED,
    S_EXPOSURE,
    S_FILTER,
    S_N_EXP,
    S_OFFSET,
    S_T,
    T_GAP,
    T_NVIS,
    T_PRIO,
    credit_exposure,
    edge_kernel,
    expose,
    observe_kernel,
)

# pending exposure of a telescope: target (-1: none), SNR^2, start and end (network seconds), its log entry
PD_TARGET, PD_SNR2, PD_START, PD_END, PD_LOG, PD_COLS = range(6)
# episode tallies of the network (``net``)
NET_DUPLICATES, NET_VISITS, NET_COMPLETED_PW, NET_REWARD, NET_COLS = range(5)
# outcome of an applied exposure (``applied[j] = (log entry, outcome)``)
COUNTED, DUPLICATE = 0, 1
# per-telescope features (``telescopes`` observation rows)
TELESCOPE_FEATURES = ("deciding", "night_running", "night_fraction_elapsed", "hours_left/12", "busy/300s",
                      "seeing/2arcsec", "clear", "thin", "thick")
(TF_DECIDING, TF_RUNNING, TF_ELAPSED, TF_HOURS_LEFT, TF_BUSY, TF_SEEING, TF_CLOUD) = range(7)
N_TELESCOPE_FEATURES = len(TELESCOPE_FEATURES)
TELESCOPE_LOW = np.zeros(N_TELESCOPE_FEATURES, np.float32)
TELESCOPE_HIGH = np.array([1, 1, 1, 2, 100, 50, 1, 1, 1], np.float32)
# per target and telescope (``site_nodes``)
SITE_NODE_FEATURES = ("alt_now/90", "visible_now", "in_flight")
SN_ALT, SN_VISIBLE, SN_IN_FLIGHT = range(3)
N_SITE_NODE_FEATURES = len(SITE_NODE_FEATURES)
SITE_NODE_LOW = np.array([-1, 0, 0], np.float32)
SITE_NODE_HIGH = np.array([1, 1, 1], np.float32)


@njit(cache=True)
def commit(action, alt, az, lst, ra_app, dec_app, sky, seeing, cloud_tau, targ, par, st, tonight, pending, log_index):
    """The deciding telescope's action (the single-site :func:`~astrogym.envs.scheduling.kernels.expose`); an
    exposure's effect on the pool is left in ``pending`` until it ends. Returns the result code."""
    code, snr, start, end = expose(action, alt, az, lst, ra_app, dec_app, sky, seeing, cloud_tau, targ, par, st,
                                   tonight)
    if code == R_OBSERVED:
        pending[PD_TARGET] = action
        pending[PD_SNR2] = snr * snr
        pending[PD_START] = st[S_OFFSET] + start
        pending[PD_END] = st[S_OFFSET] + end
        pending[PD_LOG] = log_index
    return code


@njit(cache=True)
def apply_exposure(pending, targ, par, st, visits, snr2, last_end, net, too_done, n_catalogue):
    """Add a finished exposure to the shared pool (:func:`~astrogym.envs.scheduling.kernels.credit_exposure`);
    returns (reward, outcome ``COUNTED``/``DUPLICATE``)."""
    n = int(pending[PD_TARGET])
    nvis = targ[n, T_NVIS]
    if visits[n] >= int(nvis) or (visits[n] > 0 and snr2[n] == 0.0 and pending[PD_START] < last_end[n] + targ[n, T_GAP]):
        net[NET_DUPLICATES] += 1.0
        return 0.0, DUPLICATE
    done_before = visits[n]
    reward = credit_exposure(n, pending[PD_SNR2], pending[PD_END], targ, par, st, visits, snr2, last_end)
    if visits[n] > done_before:
        net[NET_VISITS] += 1.0
        net[NET_COMPLETED_PW] += targ[n, T_PRIO] / nvis
        if n >= n_catalogue and too_done[n - n_catalogue] < 0.0:
            too_done[n - n_catalogue] = pending[PD_END]
    net[NET_REWARD] += reward
    return reward, COUNTED


@njit(cache=True)
def advance(st, par, pending, targ, visits, snr2, last_end, net, too_done, n_catalogue, applied):
    """Pick the next deciding telescope and apply every pending exposure that ended by its clock.

    Returns (telescope, its clock in network seconds, reward of the applied exposures, how many were applied
    (rows of ``applied``: log entry, outcome)). Telescope -1: every night is over, and everything pending was
    applied.
    """
    n_tel = st.shape[0]
    decider = -1
    clock = np.inf
    for k in range(n_tel):
        if st[k, S_T] < par[k, PAR_NIGHT_LEN] - 1e-9:
            c = st[k, S_OFFSET] + st[k, S_T]
            if c < clock:
                clock, decider = c, k
    reward = 0.0
    count = 0
    while True:
        first, first_end = -1, np.inf
        for k in range(n_tel):
            if pending[k, PD_TARGET] >= 0.0 and pending[k, PD_END] <= clock and pending[k, PD_END] < first_end:
                first, first_end = k, pending[k, PD_END]
        if first < 0:
            break
        r, outcome = apply_exposure(pending[first], targ[first], par[first], st[first], visits, snr2, last_end, net,
                                    too_done, n_catalogue)
        reward += r
        applied[count, 0] = pending[first, PD_LOG]
        applied[count, 1] = outcome
        count += 1
        pending[first, PD_TARGET] = -1.0
    return decider, clock, reward, count


@njit(cache=True)
def describe(decider, clock, n_grid, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing, cloud_tau,
             cloud_state, moon_alt, moon_phase_angle, sun_alt, targ, par, st, visits, snr2, last_end, tonight, pending,
             too_arrival, n_catalogue, edge_src, edge_dst, edge_sep, edge_rows, edge_done, too_edge_src, too_edge_dst,
             too_edge_sep, too_edge_rows, too_edge_done, edge_grid_s, nodes, mask, edges, site_nodes, telescopes, glob):
    """The observation of the deciding telescope at ``clock``: its node features and mask (the single-site
    :func:`~astrogym.envs.scheduling.kernels.observe_kernel`), its edge features (computed once per
    ``edge_grid_s`` mark of its night: the catalogue's edges, kept for the date, then the ToO slots',
    kept for the episode), its site's globals, every telescope's row and every (target,
    telescope) pair's features. ToO slots not yet arrived are zeroed and masked.

    Per-site arrays are stacked over telescopes and padded to the longest night; ``n_grid[k]`` is
    telescope ``k``'s grid length, and each is sliced to it (the kernels clamp times to the grid's end).
    """
    d = decider
    ng = n_grid[d]
    a_d, z_d, lst_d, see_d = alt[d, :ng], az[d, :ng], lst[d, :ng], seeing[d, :ng]
    observe_kernel(a_d, z_d, lst_d, ra_app[d], dec_app[d], sky[d, :ng], vis_run[d, :ng], vis_left[d, :ng],
                   moon_sep[d, :ng], see_d, cloud_tau[d, :ng], targ[d], par[d], st[d], visits, snr2, last_end,
                   tonight[d], nodes, mask)
    n_targets = targ.shape[1]
    for j in range(too_arrival.shape[0]):
        if too_arrival[j] > clock:
            n = n_catalogue + j
            nodes[n, :] = 0.0
            mask[n] = False
    mask[n_targets] = True
    row = int(st[d, S_T] // edge_grid_s)
    if not edge_done[d, row]:
        edge_kernel(row * edge_grid_s, a_d, z_d, lst_d, ra_app[d], dec_app[d], targ[d], par[d], edge_src, edge_dst,
                    edge_sep, edge_rows[d, row])
        edge_done[d, row] = True
    if not too_edge_done[d, row]:
        edge_kernel(row * edge_grid_s, a_d, z_d, lst_d, ra_app[d], dec_app[d], targ[d], par[d], too_edge_src,
                    too_edge_dst, too_edge_sep, too_edge_rows[d, row])
        too_edge_done[d, row] = True
    features = edge_rows[d, row]
    n_cat_edges = edge_src.shape[0]
    for e in range(n_cat_edges):
        edges[e, 0] = features[e, 0]
        edges[e, 1] = features[e, 1]
    features = too_edge_rows[d, row]
    for e in range(too_edge_src.shape[0]):
        edges[n_cat_edges + e, 0] = features[e, 0]
        edges[n_cat_edges + e, 1] = features[e, 1]
    # globals of the deciding telescope's site, as the single-site env's
    s, p = st[d], par[d]
    length = p[PAR_NIGHT_LEN]
    k = min(int(s[S_T] / p[PAR_GRID] + 0.5), ng - 1)
    glob[:] = 0.0
    glob[F.GF_NIGHT_ELAPSED] = s[S_T] / length
    glob[F.GF_HOURS_LEFT] = min((length - s[S_T]) / 3600.0 / 12.0, 2.0)
    glob[F.GF_SEEING] = min(seeing[d, k] / 2.0, 50.0)
    glob[F.GF_CLOUD + int(cloud_state[d, k])] = 1.0
    glob[F.GF_FILTER + int(s[S_FILTER])] = 1.0
    glob[F.GF_MOON_ALT] = moon_alt[d, k] / 90.0
    glob[F.GF_MOON_ILLUMINATION] = 0.5 * (1.0 + np.cos(np.radians(moon_phase_angle[d, k])))
    glob[F.GF_SUN_ALT] = sun_alt[d, k] / 90.0
    # every telescope, and every target as seen from every site now
    for q in range(st.shape[0]):
        local = clock - st[q, S_OFFSET]
        length_q = par[q, PAR_NIGHT_LEN]
        tel = telescopes[q]
        tel[:] = 0.0
        tel[TF_DECIDING] = 1.0 if q == d else 0.0
        running = 0.0 <= local < length_q
        tel[TF_RUNNING] = 1.0 if running else 0.0
        tel[TF_ELAPSED] = min(max(local / length_q, 0.0), 1.0)
        tel[TF_HOURS_LEFT] = min(max(length_q - max(local, 0.0), 0.0) / 3600.0 / 12.0, 2.0)
        tel[TF_BUSY] = min(max(st[q, S_OFFSET] + st[q, S_T] - clock, 0.0) / F.OVERHEAD_SCALE_S, 100.0)
        g = min(max(int(local / par[q, PAR_GRID] + 0.5), 0), n_grid[q] - 1)
        if running:
            tel[TF_SEEING] = min(seeing[q, g] / 2.0, 50.0)
            tel[TF_CLOUD + int(cloud_state[q, g])] = 1.0
        in_flight = int(pending[q, PD_TARGET]) if pending[q, PD_END] > clock else -1
        for n in range(n_targets):
            if running:
                site_nodes[n, q, SN_ALT] = alt[q, g, n] / 90.0
                site_nodes[n, q, SN_VISIBLE] = 1.0 if vis_run[q, g, n] > 0 else 0.0
            else:
                site_nodes[n, q, SN_ALT] = -1.0
                site_nodes[n, q, SN_VISIBLE] = 0.0
            site_nodes[n, q, SN_IN_FLIGHT] = 1.0 if n == in_flight else 0.0
    for j in range(too_arrival.shape[0]):
        if too_arrival[j] > clock:
            site_nodes[n_catalogue + j, :, :] = 0.0


@njit(cache=True)
def network_step(action, decider, log_index, n_grid, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep,
                 seeing, cloud_tau, cloud_state, moon_alt, moon_phase_angle, sun_alt, targ, par, st, visits, snr2,
                 last_end, tonight, pending, net, too_arrival, too_done, n_catalogue, applied, edge_src, edge_dst,
                 edge_sep, edge_rows, edge_done, too_edge_src, too_edge_dst, too_edge_sep, too_edge_rows, too_edge_done,
                 edge_grid_s, nodes, mask, edges, site_nodes, telescopes, glob):
    """One decision: :func:`commit` for ``decider``, :func:`advance`, then :func:`describe` for the next one.

    ``action`` is the kernel's (``n_targets`` = wait), already checked against the mask. Returns (next decider,
    its clock, reward, result code, applied count); next decider -1 ends the episode (nothing is described).
    """
    d = decider
    ng = n_grid[d]
    code = commit(action, alt[d, :ng], az[d, :ng], lst[d, :ng], ra_app[d], dec_app[d], sky[d, :ng], seeing[d, :ng],
                  cloud_tau[d, :ng], targ[d], par[d], st[d], tonight[d], pending[d], log_index)
    nxt, clock, reward, count = advance(st, par, pending, targ, visits, snr2, last_end, net, too_done, n_catalogue,
                                        applied)
    if nxt >= 0:
        describe(nxt, clock, n_grid, alt, az, lst, ra_app, dec_app, sky, vis_run, vis_left, moon_sep, seeing,
                 cloud_tau, cloud_state, moon_alt, moon_phase_angle, sun_alt, targ, par, st, visits, snr2, last_end,
                 tonight, pending, too_arrival, n_catalogue, edge_src, edge_dst, edge_sep, edge_rows, edge_done,
                 too_edge_src, too_edge_dst, too_edge_sep, too_edge_rows, too_edge_done, edge_grid_s, nodes, mask,
                 edges, site_nodes, telescopes, glob)
    return nxt, clock, reward, code, count


# the episode's metrics (``summarise``): scalars, then per telescope
(SU_COMPLETED_PW, SU_VISITS, SU_DUPLICATES, SU_TOOS_ARRIVED, SU_TOOS_SERVED, SU_TOO_LATENCY, SU_OPEN_SHUTTER,
 SU_EXPOSURES, SU_COLS) = range(9)


@njit(cache=True)
def summarise(clock, st, par, net, too_arrival, too_done, n_toos, summary, open_per_telescope):
    """``info``'s metrics at network time ``clock`` (inf: the end): ToOs arrived and served (visit completed, hence
    by the deadline), mean arrival-to-completion latency of the served, open-shutter fractions over the night
    time elapsed so far (each telescope's own clock may run ahead of the network's)."""
    summary[SU_COMPLETED_PW] = net[NET_COMPLETED_PW]
    summary[SU_VISITS] = net[NET_VISITS]
    summary[SU_DUPLICATES] = net[NET_DUPLICATES]
    arrived = served = 0
    latency = 0.0
    for j in range(n_toos):
        arrived += too_arrival[j] <= clock
        if too_done[j] >= 0.0:
            served += 1
            latency += too_done[j] - too_arrival[j]
    summary[SU_TOOS_ARRIVED] = arrived
    summary[SU_TOOS_SERVED] = served
    summary[SU_TOO_LATENCY] = latency / served if served else 0.0
    exposure_total = elapsed_total = exposures = 0.0
    for k in range(st.shape[0]):
        elapsed = min(max(clock - st[k, S_OFFSET], 0.0), par[k, PAR_NIGHT_LEN])
        elapsed = max(elapsed, st[k, S_T])
        open_per_telescope[k] = st[k, S_EXPOSURE] / elapsed if elapsed > 0.0 else 0.0
        exposure_total += st[k, S_EXPOSURE]
        elapsed_total += elapsed
        exposures += st[k, S_N_EXP]
    summary[SU_OPEN_SHUTTER] = exposure_total / elapsed_total if elapsed_total > 0.0 else 0.0
    summary[SU_EXPOSURES] = exposures
