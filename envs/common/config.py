"""Validated, documented environment configs shared by every domain.

Each environment has one frozen dataclass of parameters. Fields are declared with
:func:`param`, which records the allowed range or choices and a one-line doc; the base
class checks every value on construction and :meth:`EnvConfig.from_kwargs` rejects unknown
keys, so ``gym.make(id, typo=1)`` fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

_MISSING = object()


def param(
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    kind: str = "scalar",
) -> Any:
    """Declare a config field.

    Parameters
    ----------
    default: the default value.
    doc: one line for users (shown by ``astrogym list --config``).
    low, high: inclusive bounds for numbers (and for both ends of a ``kind="range"`` pair).
    choices: the allowed values for a categorical field.
    kind: ``"scalar"`` (number or choice), ``"int"``, ``"range"`` (``None`` or a ``(lo, hi)``
        pair used for domain randomisation), ``"optional"`` (``None`` or a number), ``"tuple"``
        (numbers, one per item, e.g. per atmospheric layer).
    """
    meta = {"doc": doc, "low": low, "high": high, "choices": choices, "kind": kind}
    return dataclasses.field(default=default, metadata=meta)


def _bounds_text(low, high) -> str:
    """``[lo, hi]``, or ``>= lo`` / ``<= hi`` / ``any finite number`` where a side is open."""
    if low is None and high is None:
        return "any finite number"
    if high is None:
        return f">= {low:g}"
    if low is None:
        return f"<= {high:g}"
    return f"[{low:g}, {high:g}]"


def _check_number(owner: str, name: str, value: Any, low, high, integer: bool) -> float:
    # bools, complex numbers (float() would drop the imaginary part) and arrays are not numbers here
    if (isinstance(value, (bool, np.bool_, complex, np.complexfloating, np.ndarray))
            or not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise TypeError(f"{owner}.{name} must be a{'n integer' if integer else ' number'}, got "
                        f"{type(value).__name__} {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{owner}.{name} must be a number, got {type(value).__name__} {value!r} ({exc})") from None
    if not math.isfinite(v):
        raise ValueError(f"{owner}.{name}={value!r} is not finite; allowed {_bounds_text(low, high)}")
    if integer and v != int(v):
        raise TypeError(f"{owner}.{name} must be an integer, got {value!r}")
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{owner}.{name}={value!r} is out of range; allowed {_bounds_text(low, high)}")
    return v


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Base class: validation, construction from keyword arguments, documentation."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for f in dataclasses.fields(self):
            meta = f.metadata
            if "kind" not in meta:
                continue
            value = getattr(self, f.name)
            kind, low, high, choices = meta["kind"], meta["low"], meta["high"], meta["choices"]
            if choices is not None:
                if value not in choices:
                    raise ValueError(f"{owner}.{f.name}={value!r} is not allowed; choose one of {list(choices)}")
                continue
            if kind == "range":
                if value is None:
                    continue
                if not isinstance(value, (tuple, list)) or len(value) != 2:
                    raise ValueError(f"{owner}.{f.name} must be None or a (low, high) pair, got {value!r}")
                lo = _check_number(owner, f.name + "[0]", value[0], low, high, False)
                hi = _check_number(owner, f.name + "[1]", value[1], low, high, False)
                if lo > hi:
                    raise ValueError(f"{owner}.{f.name}={value!r}: low end exceeds high end")
                object.__setattr__(self, f.name, (lo, hi))
            elif kind == "tuple":
                if not isinstance(value, (tuple, list)):
                    raise ValueError(f"{owner}.{f.name} must be a tuple of numbers, got {value!r}")
                object.__setattr__(self, f.name, tuple(
                    _check_number(owner, f"{f.name}[{i}]", v, low, high, False) for i, v in enumerate(value)))
            elif kind == "optional":
                if value is not None:
                    object.__setattr__(self, f.name, _check_number(owner, f.name, value, low, high, False))
            elif kind == "int":
                object.__setattr__(self, f.name, int(_check_number(owner, f.name, value, low, high, True)))
            else:
                object.__setattr__(self, f.name, _check_number(owner, f.name, value, low, high, False))
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses override and raise ``ValueError`` naming the fields."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_kwargs(cls, config: "EnvConfig | Mapping[str, Any] | None" = None, **kwargs: Any):
        """Build a config from an optional base (instance or dict) overridden by keyword arguments.

        Raises
        ------
        ValueError: a key is not a field of this config (the message lists the valid keys), or a
            value is out of its range.
        TypeError: a value has the wrong type.
        """
        base: dict[str, Any] = {}
        if isinstance(config, cls):
            base = dataclasses.asdict(config)
        elif isinstance(config, Mapping):
            base = dict(config)
        elif config is not None:
            raise TypeError(f"config must be a {cls.__name__}, a dict or None, got {type(config).__name__}")
        base.update(kwargs)
        valid = cls.field_names()
        unknown = sorted(k for k in base if k not in valid)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; valid keys: {list(valid)}")
        return cls(**base)

    def replace(self, **kwargs: Any):
        """A copy with some fields changed, validated like a new config."""
        return type(self).from_kwargs(self, **kwargs)

    @classmethod
    def describe(cls, values: "EnvConfig | None" = None) -> list[tuple[str, Any, str, str]]:
        """Rows of (name, default, allowed, doc) for documentation and ``astrogym list --config``.

        ``values``: a config whose values are shown as the defaults (e.g. a registered preset's, whose
        id overrides some of the class defaults); ``None`` shows the class defaults.
        """
        rows = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if meta.get("choices") is not None:
                allowed = " | ".join(map(str, meta["choices"]))
            else:
                allowed = _bounds_text(meta.get("low"), meta.get("high"))
                if meta.get("kind") == "tuple":
                    allowed = "tuple of numbers, each " + allowed
                elif meta.get("kind") in ("range", "optional"):
                    allowed = "None or " + ("(lo, hi) in " if meta["kind"] == "range" else "") + allowed
            default = f.default if values is None else getattr(values, f.name)
            rows.append((f.name, default, allowed, meta.get("doc", "")))
        return rows
