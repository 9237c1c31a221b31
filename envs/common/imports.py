"""Objects named by a string, imported only when asked for (registries keep ``"module:attr"`` entries so
that listing them imports nothing heavy: solvers, torch, learned models)."""

from __future__ import annotations

import importlib
from typing import Any


def import_path(path: str) -> Any:
    """``"package.module:attr"`` (or ``"package.module.attr"``) -> the object.

    Raises
    ------
    ValueError: the module or the attribute does not exist (the message names the path).
    """
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {path!r} ({exc})") from None
