"""On-disk cache for precomputed tables (calibrations, night tables): atomic, checksummed, self-healing.

The folder is ``$ASTROGYM_CACHE_DIR`` or ``~/.cache/astrogym``. Readers see either the old file or
the whole new one, never a torn one (:func:`atomic_save_npz` writes a temporary file and renames
it). Every file carries a SHA-256 digest of its arrays (names, dtypes, shapes and bytes), so a
truncated file, a flipped bit or arrays swapped by hand are detected before use; the caller's
``validate`` then checks meaning (shapes that fit the config, finite values). A damaged entry is
removed with a :class:`CacheWarning` naming it and why (silently for an older release's file
without a digest), and the caller recomputes and replaces it.
A read-only home only means no disk cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

# the digest's entry in each file; files without it (older releases) are recomputed once
_DIGEST_KEY = "__sha256__"


class CacheWarning(UserWarning):
    """A cache entry was damaged (or from an older release) and is being recomputed and replaced."""


def cache_dir() -> Path:
    return Path(os.environ.get("ASTROGYM_CACHE_DIR", Path.home() / ".cache" / "astrogym"))


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _remove(path: Path) -> None:
    """Delete a cache entry, or the folder standing where one belongs (never a user's: the name is ours)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def atomic_save_npz(path: Path, **arrays) -> bool:
    """Write ``arrays`` and their digest to ``path`` atomically; returns False (and writes nothing) if it cannot."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    try:
        if path.is_dir() and not path.is_symlink():  # a folder where the file belongs
            _remove(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    except OSError:
        return False
    os.close(fd)
    try:
        np.savez(tmp, **arrays, **{_DIGEST_KEY: np.array(_digest(arrays))})
        os.replace(tmp, path)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _discard(path: Path, reason: str, warn: bool = True) -> None:
    if warn:
        warnings.warn(f"astrogym cache entry {str(path)!r} is unusable ({reason}); recomputing and replacing it",
                      CacheWarning, stacklevel=3)
    try:
        _remove(path)
    except OSError:
        pass  # read-only: the fresh result is still used, just not stored


def load_npz(path: Path, keys: tuple[str, ...],
             validate: Callable[[dict[str, np.ndarray]], None] | None = None) -> dict[str, np.ndarray] | None:
    """The named arrays of a cached file, or None when it is missing or damaged (then it is removed).

    Parameters
    ----------
    path: the cache file.
    keys: the arrays the caller needs (all must be present).
    validate: called with the arrays once the digest matches; raises ``ValueError`` saying what is wrong
        (a shape that does not fit the config, non-finite values): the entry is then treated as damaged.
    """
    if not os.path.lexists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, numpy and OS errors all mean "damaged"
        _discard(path, f"unreadable: {type(exc).__name__}: {exc}")
        return None
    digest = stored.pop(_DIGEST_KEY, None)
    if digest is None or digest.shape != () or digest.dtype.kind != "U":
        _discard(path, "no checksum", warn=False)  # an older release's format: replaced without fuss
        return None
    if str(digest) != _digest(stored):
        _discard(path, "checksum mismatch")
        return None
    missing = [k for k in keys if k not in stored]
    if missing:
        _discard(path, f"missing arrays {missing}")
        return None
    arrays = {k: stored[k] for k in keys}
    if validate is not None:
        try:
            validate(arrays)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            _discard(path, f"invalid contents: {exc}")
            return None
    return arrays


def require_finite(arrays: dict[str, np.ndarray]) -> None:
    """``validate`` helper: raise ``ValueError`` naming the first array with a NaN or infinity."""
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            raise ValueError(f"array {name!r} has non-finite entries")
