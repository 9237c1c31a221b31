"""On-disk cache for precomputed tables (calibrations, night tables), written atomically.

The folder is ``$ASTROGYM_CACHE_DIR`` or ``~/.cache/astrogym``. Readers see either the old file or
the whole new one, never a torn one; a file that fails to load is recomputed, not trusted; a
read-only home only means no disk cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    return Path(os.environ.get("ASTROGYM_CACHE_DIR", Path.home() / ".cache" / "astrogym"))


def atomic_save_npz(path: Path, **arrays) -> bool:
    """Write ``arrays`` to ``path`` atomically; returns False (and writes nothing) if it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    except OSError:
        return False
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The named arrays of a cached file, or None when it is missing, corrupt or incomplete."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError):
        return None
