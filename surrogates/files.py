"""Versioned torch files for the learned models: one writer and one careful reader.

Every model file is a ``torch.save`` dict with a ``format`` tag and a ``version``, written atomically.
:func:`load_state` turns every way a file can be wrong (missing, truncated, not torch, another
format, a newer version) into ``FileNotFoundError`` or a ``ValueError`` that names the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from astrogym.envs.common.files import atomic_write_bytes


def save_state(path: str | Path, state: dict) -> Path:
    """``torch.save(state)`` to ``path`` through a temporary file and a rename."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_state(path: str | Path, fmt: str, version: int, what: str) -> dict:
    """The dict :func:`save_state` wrote, checked to carry ``format == fmt`` and a version in 1..``version``.

    ``what`` names the kind of file in the errors ("flow", "dynamics model", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {str(path)!r} does not exist")
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors all mean "not readable"
        raise ValueError(f"{path}: not a readable {what} file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: not an astrogym {what} (format tag missing or {found!r})")
    if not 1 <= int(state.get("version", -1)) <= version:
        raise ValueError(f"{path}: {what} format version {state.get('version')} is not supported (this astrogym "
                         f"reads 1-{version})")
    return state
