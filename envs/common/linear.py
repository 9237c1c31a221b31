"""Linear filters stepped one sample at a time inside numba kernels.

Second-order sections in transposed direct form II, the form SciPy's ``sosfilt`` uses, so
a kernel and ``scipy.signal.sosfilt`` with the same ``zi`` give the same numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sos_step(sos, zi, x):
    """Filter one sample ``x`` through ``sos`` (n, 6), updating the state ``zi`` (n, 2) in place."""
    for i in range(sos.shape[0]):
        b0, b1, b2, a1, a2 = sos[i, 0], sos[i, 1], sos[i, 2], sos[i, 4], sos[i, 5]
        y = b0 * x + zi[i, 0]
        zi[i, 0] = b1 * x - a1 * y + zi[i, 1]
        zi[i, 1] = b2 * x - a2 * y
        x = y
    return x


@njit(cache=True)
def sos_step_batch(sos, zi, x, out):
    """``sos_step`` for a batch: ``zi`` (batch, n, 2), ``x`` and ``out`` (batch,)."""
    for k in range(x.shape[0]):
        out[k] = sos_step(sos, zi[k], x[k])
    return out


def normalized_sos(sos: np.ndarray) -> np.ndarray:
    """Contiguous float64 copy with a0 = 1 checked (what the kernels assume)."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or not np.allclose(sos[:, 3], 1.0):
        raise ValueError("sos must have shape (n, 6) with a0 = 1")
    return sos
