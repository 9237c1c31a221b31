"""The least-squares reconstructor, factored so that applying it each frame is cheap.

``R = pinv(D, rcond)`` (truncated SVD of the interaction matrix ``D``) is dense: a float32
(n_controlled, n_slopes) product reads ~14 MB per frame on the 40x40 system, which is memory-
bound. The same operator is ``R = M D^T`` with ``M = V_k S_k^-2 V_k^T`` (the truncated
pseudo-inverse of ``D^T D``): ``D^T`` is sparse (an actuator only moves the slopes of nearby
subapertures; entries below ``_SPARSE_TOL`` of the largest are dropped, far below float32
resolution) and ``M`` is symmetric, so storing its upper triangle halves it again. The two
together read ~4 MB per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrogym.envs.adaptive_optics import kernels

_SPARSE_TOL = 1e-9  # relative to max |D|; float32 resolves ~6e-8


@dataclass(frozen=True)
class FactoredReconstructor:
    """``R s = M (D^T s)`` with ``D^T`` in CSR form and ``M`` as its packed upper triangle (float32)."""

    dt_indptr: np.ndarray  # int32
    dt_indices: np.ndarray  # int32
    dt_data: np.ndarray  # float32
    gram_packed: np.ndarray  # float32, row i holds M[i, i:]

    @property
    def n_controlled(self) -> int:
        return self.dt_indptr.shape[0] - 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {"dt_indptr": self.dt_indptr, "dt_indices": self.dt_indices, "dt_data": self.dt_data,
                "gram_packed": self.gram_packed}

    def apply(self, slopes: np.ndarray, tmp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = R slopes`` (float32 ``slopes``, ``tmp``, ``out`` of n_controlled)."""
        return kernels.reconstruct(self.dt_indptr, self.dt_indices, self.dt_data, self.gram_packed, slopes, tmp,
                                   out)


def reconstructors(interaction: np.ndarray, rcond: float) -> tuple[np.ndarray, FactoredReconstructor]:
    """The dense float32 ``pinv(D, rcond)`` (exactly as ``np.linalg.pinv``) and its factored form, from one SVD."""
    u, s, vt = np.linalg.svd(interaction, full_matrices=False)
    large = s > rcond * np.max(s)
    inv = np.where(large, 1.0 / np.where(large, s, 1.0), 0.0)
    dense = np.matmul(vt.T, inv[:, None] * u.T).astype(np.float32)
    vk = vt[large]
    gram = (vk.T / s[large] ** 2) @ vk
    n = gram.shape[0]
    dt = interaction.T
    keep = np.abs(dt) > _SPARSE_TOL * np.abs(dt).max()
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    rows, cols = np.nonzero(keep)  # row-major, so each row's columns come in order
    factored = FactoredReconstructor(dt_indptr=indptr, dt_indices=cols.astype(np.int32),
                                     dt_data=dt[rows, cols].astype(np.float32),
                                     gram_packed=gram[np.triu_indices(n)].astype(np.float32))
    return dense, factored
