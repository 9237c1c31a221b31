"""Counter-free random numbers inside numba kernels, with the state in a plain array.

Kernels cannot use ``env.np_random`` directly at full speed, and numba's global
``np.random`` is shared by every env in a process (so two envs would disturb each other's
streams). Each env therefore owns a 4-word xoshiro256** state (Blackman & Vigna 2018),
seeded from ``np_random`` at ``reset``: trajectories depend only on the seed, envs are
independent, and the state pickles with the env.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MASK = (1 << 64) - 1


def seed_state(np_random: np.random.Generator) -> np.ndarray:
    """Draw a fresh, non-zero xoshiro256** state from a NumPy generator."""
    state = np_random.integers(0, np.iinfo(np.uint64).max, size=4, dtype=np.uint64, endpoint=True)
    if not state.any():  # the all-zero state is the one fixed point of xoshiro
        state[0] = np.uint64(0x9E3779B97F4A7C15)
    return state


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def next_u64(s):
    """Advance the state ``s`` (uint64[4]) and return the next 64-bit output."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True)
def next_uniform(s):
    """A double uniform on [0, 1) from the top 53 bits."""
    return float(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def normal_pair(s):
    """Two independent standard normals (Box-Muller)."""
    u1 = 1.0 - next_uniform(s)  # in (0, 1]: log is finite
    u2 = next_uniform(s)
    r = np.sqrt(-2.0 * np.log(u1))
    a = 2.0 * np.pi * u2
    return r * np.cos(a), r * np.sin(a)


def reference_next_u64(state: list[int]) -> int:
    """Pure-Python xoshiro256** (the published algorithm), for testing the kernel."""

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & _MASK

    s0, s1, s2, s3 = state
    result = (rotl((s1 * 5) & _MASK, 7) * 9) & _MASK
    t = (s1 << 17) & _MASK
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 45)
    state[:] = [s0, s1, s2, s3]
    return result
