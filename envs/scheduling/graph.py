"""The target graph's static part: which targets are joined by edges.

Edges join targets that are close on the sky (``knn``: each target's k nearest neighbours by
angular separation, as sources of directed edges into it) or all ordered pairs (``full``). Edge
*features* (the overhead between the two targets now) change every step and are computed by the
compiled observation kernel; the structure is fixed per catalogue.
"""

from __future__ import annotations

import numpy as np


def angular_separation_deg(ra1, dec1, ra2, dec2):
    """Great-circle separation (haversine form, accurate at small angles); broadcasts."""
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def build_edges(ra, dec, mode: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, destination, separation_deg) arrays; PyG's convention, messages flow source -> destination."""
    n = ra.shape[0]
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    if mode == "full":
        src, dst = np.nonzero(~np.eye(n, dtype=bool))
    else:
        k = min(k, n - 1)
        src_list, dst_list = [], []
        for start in range(0, n, 512):  # blocks keep the n x n distance matrix small for big catalogues
            block = slice(start, min(start + 512, n))
            d = angular_separation_deg(ra[block, None], dec[block, None], ra[None, :], dec[None, :])
            rows = np.arange(block.start, block.stop)
            d[rows - start, rows] = np.inf
            nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
            nearest = np.take_along_axis(nearest, np.argsort(np.take_along_axis(d, nearest, 1), axis=1), 1)
            src_list.append(nearest.ravel())
            dst_list.append(np.repeat(rows, k))
        src, dst = np.concatenate(src_list), np.concatenate(dst_list)
    sep = angular_separation_deg(ra[src], dec[src], ra[dst], dec[dst])
    return src.astype(np.int64), dst.astype(np.int64), sep


def max_edges(n_targets: int, mode: str, k: int) -> int:
    if n_targets < 2:
        return 1  # keep every array non-empty
    return n_targets * (n_targets - 1) if mode == "full" else n_targets * min(k, n_targets - 1)
