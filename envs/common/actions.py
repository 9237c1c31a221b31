"""Continuous actions as the compiled kernels need them: native float64, of the right shape.

External RL code hands envs actions of every dtype: float32 from torch, float16 from mixed
precision, big-endian arrays from files, ``np.longdouble``, Python lists, integers. The numba
kernels take one layout only (native-endian ``float64``, C-contiguous), so every env's ``step``
converts through :func:`as_float64_action` off its hot path. Values whose meaning as a real
number is not clear are refused with a ``TypeError`` naming what is allowed, never reinterpreted:
complex numbers (the imaginary part would be dropped), booleans, strings, objects, dates.
The schedulers' discrete actions go through :func:`as_discrete_action`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# dtype kinds accepted as real numbers: floating point, signed and unsigned integers
_REAL_KINDS = "fiu"


def as_float64_action(action: Any, shape: tuple[int, ...], what: str = "action") -> np.ndarray:
    """``action`` as a C-contiguous native ``float64`` array of ``shape``.

    A single number is accepted where ``shape`` has one element. Range and finiteness are the
    kernel's to check (it reports them without a second pass over the data).

    Raises
    ------
    TypeError: the values are not real numbers (complex, bool, str, bytes, object, datetime).
    ValueError: the shape differs from ``shape``.
    """
    try:
        a = np.asarray(action)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(f"{what} must be an array of shape {shape}, got {type(action).__name__} ({exc})") from None
    if a.dtype.kind not in _REAL_KINDS:
        kind = "bool" if a.dtype.kind == "b" else str(a.dtype)
        raise TypeError(f"{what} must hold real numbers (a float or integer dtype) of shape {shape}, got dtype "
                        f"{kind}")
    if a.shape != shape:
        if a.size == 1 and int(np.prod(shape)) == 1:
            a = a.reshape(shape)
        else:
            raise ValueError(f"{what} must have shape {shape}, got shape {a.shape}")
    # np.asarray(..., float64) also swaps big-endian bytes and widens float16 / narrows longdouble
    return np.ascontiguousarray(a, dtype=np.float64)


def as_discrete_action(action: Any, wait_action: int) -> int:
    """A scheduler's action as a Python int in ``[0, wait_action]`` (``wait_action`` = wait).

    Accepts Python and NumPy integers, integral floats and one-element arrays of them (what SB3 and vector
    envs pass). Raises ``TypeError`` for anything without an integer meaning (bools, strings, 0.5, None) and
    ``ValueError`` for an array of several elements or an integer outside the range, naming the range.
    """
    if isinstance(action, np.ndarray):
        if action.size != 1:
            raise ValueError(f"action must be a single integer in [0, {wait_action}], got an array of shape "
                             f"{action.shape}")
        action = action.reshape(()).item()
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        if isinstance(action, (float, np.floating)) and float(action).is_integer():
            action = int(action)
        else:
            raise TypeError(f"action must be an integer in [0, {wait_action}], got {action!r}")
    a = int(action)
    if not 0 <= a <= wait_action:
        raise ValueError(f"action={a} is out of range; allowed [0, {wait_action}] ({wait_action} = wait)")
    return a
