"""Numba kernels of the adaptive-optics simulation: atmosphere, sensors, reconstruction and the loop's per-frame
bookkeeping (fused so that a frame makes few Python-level calls and no allocations)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def extrude_columns(buffer, head, a, b, z_rows, z_cols, noise):
    """Append ``noise.shape[0]`` new columns to the ring ``buffer`` (n, length); returns the new head.

    Each new column is ``a @ z + b @ w`` with ``z`` read from the stencil: ``z_cols[k]`` columns
    behind the new one, row ``z_rows[k]``. The new column overwrites the oldest (``head``).
    """
    n, length = buffer.shape
    nz = z_rows.shape[0]
    z = np.empty(nz)
    for s in range(noise.shape[0]):
        newest = (head - 1) % length
        for k in range(nz):
            z[k] = buffer[z_rows[k], (newest - (z_cols[k] - 1)) % length]
        column = np.dot(a, z) + np.dot(b, noise[s])  # BLAS: the stencil has hundreds of points
        for i in range(n):
            buffer[i, head] = column[i]
        head = (head + 1) % length
    return head


@njit(cache=True, inline="always")
def _bilinear_ring(buffer, head, ix, iy, fx, fy):
    """Bilinear value at window column ix + fx, row iy + fy of a ring whose oldest column is ``head``."""
    length = buffer.shape[1]
    c0 = head + ix
    if c0 >= length:
        c0 -= length
    c1 = c0 + 1
    if c1 >= length:
        c1 -= length
    return ((1.0 - fx) * ((1.0 - fy) * buffer[iy, c0] + fy * buffer[iy + 1, c0])
            + fx * ((1.0 - fy) * buffer[iy, c1] + fy * buffer[iy + 1, c1]))


@njit(cache=True)
def sample_ring(buffer, head, offset, x_px, y_px, out, accumulate=False):
    """Bilinear samples of the ring ``buffer`` at (x, y) pixels, x counted from the oldest column + offset.

    Points outside the window give NaN. With ``accumulate`` the samples are added to ``out``.
    """
    n, length = buffer.shape
    for k in range(x_px.shape[0]):
        x = x_px[k] + offset
        y = y_px[k]
        ix = int(x)  # x, y >= 0 inside the window, so int() is floor()
        iy = int(y)
        if x < 0.0 or y < 0.0 or ix + 1 >= length or iy + 1 >= n:
            out[k] = np.nan
            continue
        v = _bilinear_ring(buffer, head, ix, iy, x - ix, y - iy)
        if accumulate:
            out[k] += v
        else:
            out[k] = v
    return out


@njit(cache=True)
def masked_variance(phase, pupil):
    """Variance of ``phase`` over the pixels where ``pupil`` is non-zero (two-pass, no copies)."""
    n = 0
    total = 0.0
    for r in range(phase.shape[0]):
        for c in range(phase.shape[1]):
            if pupil[r, c] != 0.0:
                total += phase[r, c]
                n += 1
    mean = total / n
    acc = 0.0
    for r in range(phase.shape[0]):
        for c in range(phase.shape[1]):
            if pupil[r, c] != 0.0:
                d = phase[r, c] - mean
                acc += d * d
    return acc / n


@njit(cache=True, inline="always")
def _fully_lit(pupil, r0, c0, p):
    for r in range(r0, r0 + p):
        for c in range(c0, c0 + p):
            if pupil[r, c] == 0.0:
                return False
    return True


@njit(cache=True)
def sh_geometric_slopes(phase, pupil, valid, p, out):
    """Geometric Shack-Hartmann: mean finite-difference gradient over each valid subaperture's lit pixels.

    ``out[:n]`` are x slopes, ``out[n:]`` y slopes, in rad of phase across one subaperture
    (mean per-pixel difference times ``p``). Only differences between two lit pixels count.
    """
    n = valid.shape[0]
    for k in range(n):
        r0 = valid[k, 0] * p
        c0 = valid[k, 1] * p
        if _fully_lit(pupil, r0, c0, p):
            # Differences telescope along each row/column: only the edges are needed.
            sx = 0.0
            sy = 0.0
            for i in range(p):
                sx += phase[r0 + i, c0 + p - 1] - phase[r0 + i, c0]
                sy += phase[r0 + p - 1, c0 + i] - phase[r0, c0 + i]
            out[k] = sx / (p - 1)
            out[n + k] = sy / (p - 1)
            continue
        sx = 0.0
        cx = 0.0
        sy = 0.0
        cy = 0.0
        for r in range(r0, r0 + p):
            for c in range(c0, c0 + p):
                if pupil[r, c] == 0.0:
                    continue
                if c + 1 < c0 + p and pupil[r, c + 1] != 0.0:
                    sx += phase[r, c + 1] - phase[r, c]
                    cx += 1.0
                if r + 1 < r0 + p and pupil[r + 1, c] != 0.0:
                    sy += phase[r + 1, c] - phase[r, c]
                    cy += 1.0
        out[k] = sx / cx * p if cx > 0 else 0.0
        out[n + k] = sy / cy * p if cy > 0 else 0.0
    return out


@njit(cache=True)
def poke_slopes(g, pupil, valid, p, out):
    """Slopes of every actuator's influence ``outer(g[:, i], g[:, j])``: column ``i * n_act + j`` of ``out``."""
    n_pix, n_act = g.shape
    phase = np.empty((n_pix, n_pix))
    col = np.empty(out.shape[0])
    for i in range(n_act):
        for j in range(n_act):
            for r in range(n_pix):
                gi = g[r, i]
                for c in range(n_pix):
                    phase[r, c] = gi * g[c, j]
            sh_geometric_slopes(phase, pupil, valid, p, col)
            out[:, i * n_act + j] = col
    return out


@njit(cache=True)
def sample_ring_grid(buffer, head, offset, x0, y0, n, out, accumulate=False):
    """``sample_ring`` on an n x n grid aligned with the layer: pupil column c sits at window
    x = x0 - c (+ offset), row r at y = y0 + r, so the bilinear weights are the same everywhere."""
    length = buffer.shape[1]
    x_first = x0 + offset
    xs = x_first - (n - 1)  # the smallest x the grid reads
    y_int = int(y0)
    fy = y0 - y_int
    ix_min = int(xs)
    fx = xs - ix_min
    if xs < 0.0 or x_first + 1.0 >= length or y0 < 0.0 or y_int + n >= buffer.shape[0]:
        for r in range(n):
            for c in range(n):
                out[r, c] = np.nan
        return out
    c_last = head + ix_min  # ring column read by pupil column n - 1 (and +1)
    w00, w10 = (1.0 - fx) * (1.0 - fy), (1.0 - fx) * fy
    w01, w11 = fx * (1.0 - fy), fx * fy
    if c_last + n < length:  # the window does not wrap round the ring: a branch-free loop that vectorises
        top = c_last + n - 1  # ring column read by pupil column 0
        for r in range(n):
            row0 = buffer[y_int + r]
            row1 = buffer[y_int + r + 1]
            target = out[r]
            for c in range(n):
                c0 = top - c
                v = w00 * row0[c0] + w10 * row1[c0] + w01 * row0[c0 + 1] + w11 * row1[c0 + 1]
                if accumulate:
                    target[c] += v
                else:
                    target[c] = v
        return out
    for r in range(n):
        row0 = buffer[y_int + r]
        row1 = buffer[y_int + r + 1]
        target = out[r]
        for c in range(n):  # rows outer: contiguous writes and (reversed) reads
            c0 = c_last + (n - 1 - c)
            if c0 >= length:
                c0 -= length
            c1 = c0 + 1
            if c1 >= length:
                c1 -= length
            v = ((1.0 - fx) * ((1.0 - fy) * row0[c0] + fy * row1[c0])
                 + fx * ((1.0 - fy) * row0[c1] + fy * row1[c1]))
            if accumulate:
                target[c] += v
            else:
                target[c] = v
    return out


def dft_matrix(p):
    """(p, 2p) float32 real and imaginary parts of ``exp(-2 pi i x u / 2p)``: the forward DFT of p samples
    zero-padded to 2p (numpy's sign), for :func:`sh_diffractive_slopes`."""
    m = 2 * p
    w = np.exp(-2j * np.pi * np.outer(np.arange(p), np.arange(m)) / m)
    return np.ascontiguousarray(w.real, dtype=np.float32), np.ascontiguousarray(w.imag, dtype=np.float32)


_LANES = 16  # subapertures processed side by side: the innermost loops run across them and vectorise


@njit(cache=True, inline="always")
def _sincos(x):
    """(sin x, cos x) in float64 without libm calls, so loops over it vectorise: reduction by pi/2,
    then Taylor series on [-pi/4, pi/4] (error < 2e-9, far below the float32 fields)."""
    q = np.floor(x * 0.6366197723675814 + 0.5)  # nearest multiple of pi/2
    y = (x - q * 1.5707963267341256) - q * 6.077100506506192e-11  # two-part pi/2 (Cody-Waite)
    y2 = y * y
    sn = y * (1.0 + y2 * (-1.0 / 6 + y2 * (1.0 / 120 + y2 * (-1.0 / 5040 + y2 * (1.0 / 362880 - y2 / 39916800)))))
    cs = 1.0 + y2 * (-0.5 + y2 * (1.0 / 24 + y2 * (-1.0 / 720 + y2 * (1.0 / 40320 + y2 * (-1.0 / 3628800
                                                                                     + y2 / 479001600)))))
    k = np.int64(q) & 3
    s_ = cs if k & 1 else sn
    c_ = sn if k & 1 else cs
    if k & 2:
        s_ = -s_
    if (k + 1) & 2:
        c_ = -c_
    return s_, c_


@njit(cache=True, fastmath={"nnan", "ninf", "nsz", "arcp", "afn"})
def sh_diffractive_slopes(phase, to_wfs, pupil, valid, p, wr, wi, photons, read_noise, noise, out):
    """Diffractive Shack-Hartmann: each valid lenslet's spot ``|DFT(pupil exp(i phase))|^2`` and its centroid.

    The field (``phase * to_wfs`` rad at the WFS, p x p) is zero-padded 2x (Nyquist pixels of
    lambda / 2d); as only a quarter of the padded field is non-zero, two small DFT matrix
    products (``wr + i wi`` from :func:`dft_matrix`) beat an FFT. ``_LANES`` subapertures go
    through together, innermost, so every loop vectorises and a block stays in L1. Spots are
    float32 (as complex64 FFTs were). Frequency index k maps to pixel k (k < p) or k - 2p; a
    pixel is lambda / (2 d), so a centroid of one pixel is a phase difference of pi across
    the subaperture. With ``photons`` > 0 each spot is scaled to that many photons and
    ``noise`` (n_valid, 2p, 2p, 2) standard normals add photon (Gaussian approximation) and
    read noise. ``out[:n]`` are x slopes, ``out[n:]`` y slopes, in rad across a subaperture at
    the WFS wavelength.
    """
    n = valid.shape[0]
    m = 2 * p
    L = _LANES
    er = np.zeros((p, p, L), dtype=np.float32)
    ei = np.zeros((p, p, L), dtype=np.float32)
    zr = np.empty((p, m * L), dtype=np.float32)  # index u * L + lane
    zi = np.empty((p, m * L), dtype=np.float32)
    spot2 = np.empty((m, m * L), dtype=np.float32)
    yr = np.empty(m * L, dtype=np.float32)
    yi = np.empty(m * L, dtype=np.float32)
    # The field pupil * exp(i phase) over the whole grid first: one flat loop that vectorises (inside the
    # per-lenslet gather below, the sine and cosine ran scalar and took a quarter of the kernel).
    n_rows, n_cols = phase.shape
    fr = np.empty((n_rows, n_cols), dtype=np.float32)
    fi = np.empty((n_rows, n_cols), dtype=np.float32)
    for r in range(n_rows):
        for c in range(n_cols):
            sn, cs = _sincos(phase[r, c] * to_wfs)
            a = pupil[r, c]
            fr[r, c] = a * cs
            fi[r, c] = a * sn
    for b0 in range(0, n, L):
        nb = min(L, n - b0)
        for j in range(nb):
            r0 = valid[b0 + j, 0] * p
            c0 = valid[b0 + j, 1] * p
            for r in range(p):
                for c in range(p):
                    er[r, c, j] = fr[r0 + r, c0 + c]
                    ei[r, c, j] = fi[r0 + r, c0 + c]
        # rows: z[r, u] = sum_c e[r, c] w[c, u] (plain indexing: array views would cost refcounting)
        for r in range(p):
            for t in range(m * L):
                zr[r, t] = 0.0
                zi[r, t] = 0.0
            for u in range(m):
                for c in range(p):
                    a = wr[c, u]
                    b = wi[c, u]
                    for j in range(L):
                        zr[r, u * L + j] += a * er[r, c, j] - b * ei[r, c, j]
                        zi[r, u * L + j] += a * ei[r, c, j] + b * er[r, c, j]
        # columns: y[v, u] = sum_r w[r, v] z[r, u]; the spot is |y|^2. (u, lane) run as one flat,
        # contiguous index.
        for v in range(m):
            for t in range(m * L):
                yr[t] = 0.0
                yi[t] = 0.0
            for r in range(p):
                a = wr[r, v]
                b = wi[r, v]
                for t in range(m * L):
                    yr[t] += a * zr[r, t] - b * zi[r, t]
                    yi[t] += a * zi[r, t] + b * zr[r, t]
            for t in range(m * L):
                spot2[v, t] = yr[t] * yr[t] + yi[t] * yi[t]
        for j in range(nb):
            k = b0 + j
            total = 0.0
            for r in range(m):
                for c in range(m):
                    total += spot2[r, c * L + j]
            scale = photons / total if photons > 0.0 and total > 0.0 else 1.0
            sx = 0.0
            sy = 0.0
            s = 0.0
            for r in range(m):
                fy = r if r < p else r - m
                for c in range(m):
                    fx = c if c < p else c - m
                    i = spot2[r, c * L + j] * scale
                    if photons > 0.0:
                        i += np.sqrt(max(i, 0.0)) * noise[k, r, c, 0] + read_noise * noise[k, r, c, 1]
                    sx += i * fx
                    sy += i * fy
                    s += i
            if s > 0.0:
                out[k] = np.pi * sx / s
                out[n + k] = np.pi * sy / s
            else:
                out[k] = 0.0
                out[n + k] = 0.0
    return out


@njit(cache=True, fastmath=True)
def reconstruct(dt_indptr, dt_indices, dt_data, gram_packed, slopes, tmp, out):
    """``out = M (D^T slopes)``: sparse ``D^T`` (CSR) then the symmetric ``M`` stored as its packed
    upper triangle (row i holds ``M[i, i:]``), so each element is read once (the product is
    memory-bound). ``tmp`` and ``out`` are float32 like ``M``; slicing the rows lets LLVM
    vectorise the inner loop."""
    n = tmp.shape[0]
    for i in range(n):
        data = dt_data[dt_indptr[i]:dt_indptr[i + 1]]
        index = dt_indices[dt_indptr[i]:dt_indptr[i + 1]]
        acc = np.float32(0.0)
        for k in range(data.shape[0]):
            acc += data[k] * slopes[index[k]]
        tmp[i] = acc
        out[i] = 0.0
    base = 0
    for i in range(n):
        row = gram_packed[base:base + n - i]
        upper = tmp[i:]
        lower = out[i:]
        xi = tmp[i]
        acc = np.float32(0.0)
        for j in range(n - i):
            m = row[j]
            acc += m * upper[j]
            lower[j] += m * xi
        out[i] += acc - row[0] * xi  # the diagonal went into both sums
        base += n - i
    return out


@njit(cache=True, inline="always")
def _range_status(a, clip_out_of_range):
    """``(status, max |a|)`` of the 1-D ``a``: 1 = a non-finite entry, 2 = beyond [-1, 1] without
    ``clip_out_of_range``, else 0 (the status every ``apply_*`` kernel returns)."""
    peak = 0.0
    for k in range(a.shape[0]):
        v = abs(np.float64(a[k]))
        if not np.isfinite(v):
            return 1, np.inf
        peak = max(peak, v)
    if peak > 1.0 and not clip_out_of_range:
        return 2, peak
    return 0, peak


@njit(cache=True)
def apply_action(action, command, controlled, scale, stroke, clip_out_of_range):
    """``command = clip(command + scale * action, +-stroke) * controlled``, in place.

    Returns ``(status, max |action|)``: status 1 = non-finite entries, 2 = entries beyond [-1, 1]
    without ``clip_out_of_range`` (``command`` is then untouched), else 0.
    """
    a = action.ravel()
    status, peak = _range_status(a, clip_out_of_range)
    if status:
        return status, peak
    cmd = command.ravel()
    mask = controlled.ravel()
    for k in range(a.shape[0]):
        v = min(max(np.float64(a[k]), -1.0), 1.0)
        c = min(max(cmd[k] + v * scale, -stroke), stroke)
        cmd[k] = c * mask[k]
    return 0, peak


@njit(cache=True)
def apply_flat_action(action, command, index, scale, stroke, clip_out_of_range):
    """``command.flat[index] = clip(command.flat[index] + scale * clip(action, +-1), +-stroke)``, in place.

    The flat action layout: entry ``k`` of ``action`` drives actuator ``index[k]``, with the
    arithmetic of :func:`apply_action` (so a flat action equals its grid action to the bit).
    Returns ``(status, max |action|)`` as :func:`apply_action` does.
    """
    status, peak = _range_status(action, clip_out_of_range)
    if status:
        return status, peak
    cmd = command.ravel()
    for k in range(index.shape[0]):
        v = min(max(np.float64(action[k]), -1.0), 1.0)
        i = index[k]
        cmd[i] = min(max(cmd[i] + v * scale, -stroke), stroke)
    return 0, peak


@njit(cache=True)
def apply_modal_action(coeffs, modes_t, command, index, scale, stroke, clip_out_of_range, clipped, increment):
    """``increment = modes_t.T @ clip(coeffs, +-1)``; ``command.flat[index] = clip(command.flat[index] +
    scale * increment, +-stroke)``, in place.

    The modal action layout: ``modes_t`` (n_modes, n_controlled) holds one mode per row. Only the
    coefficients are range-checked (the increment of an actuator may exceed 1). ``clipped``
    (n_modes) and ``increment`` (n_controlled) are work buffers; ``increment`` keeps the last
    increment in action units. Returns ``(status, max |coeffs|)`` as :func:`apply_action` does
    (``command`` and the buffers untouched when status is not 0).
    """
    status, peak = _range_status(coeffs, clip_out_of_range)
    if status:
        return status, peak
    n_modes, n = modes_t.shape
    for m in range(n_modes):
        clipped[m] = min(max(np.float64(coeffs[m]), -1.0), 1.0)
    for i in range(n):
        increment[i] = 0.0
    for m in range(n_modes):  # a row at a time: the inner loop is an axpy that vectorises
        c = clipped[m]
        if c == 0.0:
            continue
        row = modes_t[m]
        for i in range(n):
            increment[i] += c * row[i]
    cmd = command.ravel()
    for k in range(n):
        i = index[k]
        cmd[i] = min(max(cmd[i] + increment[k] * scale, -stroke), stroke)
    return 0, peak


@njit(cache=True)
def scatter_scaled(values, index, inv_scale, limit, out):
    """``out[index[k]] = clip(values[k] * inv_scale, +-limit)``: the reconstruction into its observation channel."""
    for k in range(index.shape[0]):
        out[index[k]] = min(max(values[k] * inv_scale, -limit), limit)
    return out


@njit(cache=True, fastmath=True)
def subtract_dm_and_variance(phase, gt, col_lo, col_hi, command, tmp, pupil):
    """``phase -= G C G^T`` (the separable DM surface) and the variance of the result over the lit pupil.

    ``gt`` is ``G^T`` (n_act, n_pix); actuator j's influence is non-zero only on pixels
    ``col_lo[j]:col_hi[j]``, so both products skip the exact zeros (a third of the dense work)
    and need no BLAS, whose threads only add latency at this size. ``tmp`` is (n_pix, n_act).
    """
    n_act, n_pix = gt.shape
    for r in range(n_pix):  # tmp = G C
        for j in range(n_act):
            tmp[r, j] = 0.0
        for i in range(n_act):
            g = gt[i, r]
            if g == 0.0:
                continue
            for j in range(n_act):
                tmp[r, j] += g * command[i, j]
    for r in range(n_pix):  # phase -= tmp G^T, one actuator column at a time
        for j in range(n_act):
            t = tmp[r, j]
            if t == 0.0:
                continue
            for c in range(np.uint64(col_lo[j]), np.uint64(col_hi[j])):  # unsigned: no wraparound check
                phase[r, c] -= t * gt[j, c]
    return masked_variance(phase, pupil)


# -- the native vector env's frame: every copy in one call (envs/adaptive_optics/vector.py) --------------------
LAYOUT_GRID, LAYOUT_FLAT, LAYOUT_MODAL = 0, 1, 2
WFS_GEOMETRIC, WFS_DIFFRACTIVE = 0, 1


@njit(cache=True)
def check_batch_actions(actions, clip_out_of_range):
    """``(status, copy, peak)`` of the first copy whose action row an ``apply_*`` kernel would refuse
    (status as :func:`_range_status`); ``(0, -1, 0.0)`` when every row is fine."""
    for i in range(actions.shape[0]):
        status, peak = _range_status(actions[i], clip_out_of_range)
        if status:
            return status, i, peak
    return 0, -1, 0.0


@njit(cache=True)
def _ao_frame_copy(i, actions, layout_kind, controlled_f, index, modes_t, clipped, increment, scale, stroke, clip,
                   command, queue, buffers, heads, offsets, a_ops, b_ops, z_rows, z_cols, noise, noise_start,
                   noise_count, xs, ys, aligned, residual, gt, dm_lo, dm_hi, gc, pupil, science_scale2, wfs_kind,
                   valid, p, to_wfs, photons, read_noise, sigma, slope_noise, spot_noise, wr, wi, slopes, slopes32,
                   dt_indptr, dt_indices, dt_data, gram_packed, recon_tmp, recon, obs, history, inv_action_scale,
                   measurement_clip, active, variance):
    n_layers = heads.shape[1]
    n_pix = residual.shape[1]
    h = history
    a = actions[i]
    if layout_kind == LAYOUT_GRID:
        apply_action(a, command[i], controlled_f, scale, stroke, clip)
    elif layout_kind == LAYOUT_FLAT:
        apply_flat_action(a, command[i], index, scale, stroke, clip)
    else:
        apply_modal_action(a, modes_t, command[i], index, scale, stroke, clip, clipped[i], increment[i])
    q = queue[i]
    for k in range(q.shape[0] - 1):
        q[k] = q[k + 1]
    q[q.shape[0] - 1] = command[i]
    for lay in range(n_layers):
        j = i * n_layers + lay
        if noise_count[i, lay] > 0:
            start = noise_start[i, lay]
            heads[i, lay] = extrude_columns(buffers[j], heads[i, lay], a_ops[j], b_ops[j], z_rows[j], z_cols[j],
                                            noise[start:start + noise_count[i, lay]])
        if aligned[j]:
            sample_ring_grid(buffers[j], heads[i, lay], offsets[i, lay], xs[j][0], ys[j][0], n_pix, residual[i],
                             lay > 0)
        else:
            sample_ring(buffers[j], heads[i, lay], offsets[i, lay], xs[j], ys[j], residual[i].reshape(-1),
                        lay > 0)
    variance[i] = subtract_dm_and_variance(residual[i], gt, dm_lo, dm_hi, q[0], gc[i], pupil) * science_scale2
    s = slopes[i]
    if wfs_kind == WFS_GEOMETRIC:
        sh_geometric_slopes(residual[i], pupil, valid, p, s)
        if photons > 0.0:
            for k in range(s.shape[0]):
                s[k] += sigma * slope_noise[i, k]
    else:
        sh_diffractive_slopes(residual[i], to_wfs, pupil, valid, p, wr, wi, photons, read_noise, spot_noise[i], s)
        for k in range(s.shape[0]):
            s[k] /= to_wfs
    s32 = slopes32[i]
    for k in range(s.shape[0]):
        s32[k] = s[k]
    reconstruct(dt_indptr, dt_indices, dt_data, gram_packed, s32, recon_tmp[i], recon[i])
    o = obs[i]
    for k in range(h - 1, 0, -1):  # the history moves one frame back, newest first
        o[k] = o[k - 1]
    for k in range(2 * h - 1, h, -1):
        o[k] = o[k - 1]
    scatter_scaled(recon[i], index, inv_action_scale, measurement_clip, o[0].reshape(-1))
    c = command[i]
    for r in range(c.shape[0]):
        for col in range(c.shape[1]):
            o[h, r, col] = c[r, col] / stroke


@njit(cache=True)
def ao_frame_batch(actions, layout_kind, controlled_f, index, modes_t, clipped, increment, scale, stroke, clip,
                   command, queue, buffers, heads, offsets, a_ops, b_ops, z_rows, z_cols, noise, noise_start,
                   noise_count, xs, ys, aligned, residual, gt, dm_lo, dm_hi, gc, pupil, science_scale2, wfs_kind,
                   valid, p, to_wfs, photons, read_noise, sigma, slope_noise, spot_noise, wr, wi, slopes, slopes32,
                   dt_indptr, dt_indices, dt_data, gram_packed, recon_tmp, recon, obs, history, inv_action_scale,
                   measurement_clip, active, variance):
    """One loop frame of every copy ``i`` with ``active[i]``, one after the other (the others are left as they
    are), with the single env's kernels in the single env's order.

    Per copy: apply ``actions[i]`` (flattened, checked beforehand with :func:`check_batch_actions`) by
    ``layout_kind``; push the command into the delay ``queue``; extrude ``noise_count[i, l]`` columns of
    layer ``l`` (``buffers[i * L + l]``, rows ``noise_start[i, l]...`` of ``noise``; ``offsets`` already
    advanced); sample the layers into ``residual[i]``; subtract the DM and take the variance (times
    ``science_scale2``) into ``variance[i]``; measure the slopes (geometric plus ``sigma *
    slope_noise[i]``, or diffractive with ``spot_noise[i]``); reconstruct; shift the observation
    history and write the new measurement and command. Layer lists hold per-copy arrays (typed Lists).
    :func:`ao_frame_batch_parallel` is the same across numba's threads.
    """
    for i in range(command.shape[0]):
        if active[i]:
            _ao_frame_copy(i, actions, layout_kind, controlled_f, index, modes_t, clipped, increment, scale, stroke,
                           clip, command, queue, buffers, heads, offsets, a_ops, b_ops, z_rows, z_cols, noise,
                           noise_start, noise_count, xs, ys, aligned, residual, gt, dm_lo, dm_hi, gc, pupil,
                           science_scale2, wfs_kind, valid, p, to_wfs, photons, read_noise, sigma, slope_noise,
                           spot_noise, wr, wi, slopes, slopes32, dt_indptr, dt_indices, dt_data, gram_packed,
                           recon_tmp, recon, obs, history, inv_action_scale, measurement_clip, active, variance)


@njit(cache=True, parallel=True)
def ao_frame_batch_parallel(actions, layout_kind, controlled_f, index, modes_t, clipped, increment, scale, stroke,
                            clip, command, queue, buffers, heads, offsets, a_ops, b_ops, z_rows, z_cols, noise,
                            noise_start, noise_count, xs, ys, aligned, residual, gt, dm_lo, dm_hi, gc, pupil,
                            science_scale2, wfs_kind, valid, p, to_wfs, photons, read_noise, sigma, slope_noise,
                            spot_noise, wr, wi, slopes, slopes32, dt_indptr, dt_indices, dt_data, gram_packed,
                            recon_tmp, recon, obs, history, inv_action_scale, measurement_clip, active, variance):
    """:func:`ao_frame_batch` with the copies spread over numba's threads (``prange``): for many copies."""
    for i in prange(command.shape[0]):
        if active[i]:
            _ao_frame_copy(i, actions, layout_kind, controlled_f, index, modes_t, clipped, increment, scale, stroke,
                           clip, command, queue, buffers, heads, offsets, a_ops, b_ops, z_rows, z_cols, noise,
                           noise_start, noise_count, xs, ys, aligned, residual, gt, dm_lo, dm_hi, gc, pupil,
                           science_scale2, wfs_kind, valid, p, to_wfs, photons, read_noise, sigma, slope_noise,
                           spot_noise, wr, wi, slopes, slopes32, dt_indptr, dt_indices, dt_data, gram_packed,
                           recon_tmp, recon, obs, history, inv_action_scale, measurement_clip, active, variance)
