"""Numba kernels of the adaptive-optics simulation (atmosphere so far)."""

from __future__ import annotations

import numpy as np
from numba import njit


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
    for c in range(n):
        ix = ix_min + (n - 1 - c)  # column c reads window columns ix and ix + 1
        for r in range(n):
            v = _bilinear_ring(buffer, head, ix, y_int + r, fx, fy)
            if accumulate:
                out[r, c] += v
            else:
                out[r, c] = v
    return out


@njit(cache=True, fastmath=True)
def sh_lenslet_fields(phase_wfs, pupil, valid, p, fields):
    """Lenslet fields ``pupil * exp(i phase)`` of every valid subaperture, zero-padded 2x (Nyquist spots).

    ``fields`` is (n_valid, 2p, 2p) complex64: the top-left p x p block gets the field and the
    padding is zeroed (the buffer is reused for an in-place FFT). The trigonometry runs in
    float32 (the fields are complex64 anyway): half the cost.
    """
    m = 2 * p
    for k in range(valid.shape[0]):
        r0 = valid[k, 0] * p
        c0 = valid[k, 1] * p
        for r in range(m):
            for c in range(m):
                if r < p and c < p:
                    a = np.float32(pupil[r0 + r, c0 + c])
                    ph = np.float32(phase_wfs[r0 + r, c0 + c])
                    fields[k, r, c] = complex(a * np.cos(ph), a * np.sin(ph))
                else:
                    fields[k, r, c] = 0.0
    return fields


@njit(cache=True)
def sh_centroid_slopes(spots_f, p, photons, read_noise, noise, out):
    """Centroids of the lenslet spots |FFT|^2 as slopes (rad across a subaperture, at the WFS wavelength).

    ``spots_f`` holds the 2p x 2p FFTs; frequency index k maps to pixel k (k < p) or k - 2p.
    A pixel is lambda / (2 d), so a centroid of one pixel is a phase difference of pi across
    the subaperture. With ``photons`` > 0 each spot is scaled to that many photons and
    ``noise`` (n_valid, 2p, 2p, 2) standard normals add photon (Gaussian approximation) and
    read noise.
    """
    n = spots_f.shape[0]
    m = 2 * p
    for k in range(n):
        total = 0.0
        for r in range(m):
            for c in range(m):
                v = spots_f[k, r, c]
                total += v.real * v.real + v.imag * v.imag
        scale = photons / total if photons > 0.0 and total > 0.0 else 1.0
        sx = 0.0
        sy = 0.0
        s = 0.0
        for r in range(m):
            fy = r if r < p else r - m
            for c in range(m):
                fx = c if c < p else c - m
                v = spots_f[k, r, c]
                i = (v.real * v.real + v.imag * v.imag) * scale
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
