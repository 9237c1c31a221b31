"""Numba kernels of the adaptive-optics simulation (atmosphere so far)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def extrude_columns(buffer, head, a, b, z_rows, z_cols, noise):
    """Append ``noise.shape[0]`` new columns to the ring ``buffer`` (n, length); returns the new head.

    Each new column is ``a @ z + b @ w`` with ``z`` read from the stencil: ``z_cols[k]`` columns
    behind the newest, row ``z_rows[k]``. The new column overwrites the oldest (``head``).
    """
    n, length = buffer.shape
    nz = z_rows.shape[0]
    z = np.empty(nz)
    for s in range(noise.shape[0]):
        newest = (head - 1) % length
        for k in range(nz):
            z[k] = buffer[z_rows[k], (newest - (z_cols[k] - 1)) % length]
        for i in range(n):
            acc = 0.0
            for k in range(nz):
                acc += a[i, k] * z[k]
            for k in range(b.shape[1]):
                acc += b[i, k] * noise[s, k]
            buffer[i, head] = acc
        head = (head + 1) % length
    return head


@njit(cache=True)
def sample_ring(buffer, head, offset, x_px, y_px, out):
    """Bilinear samples of the ring ``buffer`` at (x, y) pixels, x counted from the oldest column + offset."""
    n, length = buffer.shape
    for k in range(x_px.shape[0]):
        x = x_px[k] + offset
        y = y_px[k]
        ix = int(np.floor(x))
        iy = int(np.floor(y))
        fx = x - ix
        fy = y - iy
        if ix < 0 or iy < 0 or ix + 1 >= length or iy + 1 >= n:
            out[k] = np.nan
            continue
        c0 = (head + ix) % length
        c1 = (head + ix + 1) % length
        out[k] = ((1 - fx) * ((1 - fy) * buffer[iy, c0] + fy * buffer[iy + 1, c0])
                  + fx * ((1 - fy) * buffer[iy, c1] + fy * buffer[iy + 1, c1]))
    return out
