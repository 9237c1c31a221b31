"""Numba kernels of the pitch loop: one env step, and a compiled rollout for benchmarks.

Pure functions on arrays: every bit of state (plant + seismic state ``x``, filter states,
running mean squares, RNG words, observation history) is passed in and updated in place, so
the kernel can be checked step by step against the NumPy reference in the tests.

Parameter vector ``p`` (float64, filled by the env; see ``P_*`` indices):
torque limit (N m), seismic scale, sensor-noise sigma per sample (rad), 1 / observation scale,
observation clip, pitch limit (rad), EMA weights per sample (pitch, control), sharpness / 2
(pitch, control), 1 / spec^2 of the three reward scores (pitch low-pass, control band-pass,
control high-pass), whether out-of-range actions are clipped, and a sensor offset (rad; fault injection).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from astrogym.envs.common.linear import sos_step
from astrogym.envs.common.rng import normal_pair

P_TORQUE_LIMIT = 0
P_SEISMIC_SCALE = 1
P_SENSOR_SIGMA = 2
P_OBS_INV_SCALE = 3
P_OBS_CLIP = 4
P_PITCH_LIMIT = 5
P_ALPHA_PITCH = 6
P_ALPHA_CONTROL = 7
P_HALF_SHARPNESS_PITCH = 8
P_HALF_SHARPNESS_CONTROL = 9
P_INV_SPEC2 = 10  # three entries: pitch, band, high
P_CLIP_ACTIONS = 13
P_SENSOR_OFFSET = 14  # rad added to the sensor reading (0 unless a sensor-glitch fault is injected)
N_PARAMS = 15


class LockKernelArguments(NamedTuple):
    """The state and parameter arrays :func:`lock_step` and :func:`lock_rollout` take first, in order.

    ``lock_rollout(*args, actions, pitch_out, torque_out, reward_out)`` steps them in place, and
    ``lock_step(*args, action)`` one sample (the env's ``kernel_arguments()`` returns its own).

    Attributes
    ----------
    x: plant and seismic-filter state. ad, bd, c: the discrete loop (:class:`plant.DiscreteLoop`).
    rng: the four RNG words. p: parameter vector (``P_*`` indices).
    sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp: the reward filters' sections and their states.
    ema: running mean squares of the three filtered signals. hist: the observation window.
    """

    x: np.ndarray
    ad: np.ndarray
    bd: np.ndarray
    c: np.ndarray
    rng: np.ndarray
    p: np.ndarray
    sos_lp: np.ndarray
    zi_lp: np.ndarray
    sos_bp: np.ndarray
    zi_bp: np.ndarray
    sos_hp: np.ndarray
    zi_hp: np.ndarray
    ema: np.ndarray
    hist: np.ndarray


OK = 0
ERR_NOT_FINITE = 1
ERR_OUT_OF_RANGE = 2


@njit(cache=True, inline="always")
def _score(mean_square, inv_spec2, half_sharpness):
    # 1 / (1 + (rms / spec)^sharpness), written on mean squares to skip a sqrt.
    r = mean_square * inv_spec2
    if r <= 0.0:
        return 1.0
    return 1.0 / (1.0 + np.exp(half_sharpness * np.log(r)))


@njit(cache=True)
def lock_step(x, ad, bd, c, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist, action):
    """Advance the loop by one sample under ``action`` (normalised torque, shape (1,)).

    Returns ``(code, reward, pitch, torque, score_pitch, score_band, score_high, terminated)``;
    ``code`` is ``OK`` or an error (non-finite or out-of-range action), in which case nothing
    was changed.
    """
    a = float(action[0])
    if not np.isfinite(a):
        return ERR_NOT_FINITE, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False
    if a > 1.0 or a < -1.0:
        if p[P_CLIP_ACTIONS] == 0.0:
            return ERR_OUT_OF_RANGE, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False
        a = min(1.0, max(-1.0, a))
    torque = a * p[P_TORQUE_LIMIT]
    w_seis, n_sens = normal_pair(rng)
    w_seis *= p[P_SEISMIC_SCALE]

    # x' = Ad x + Bd [torque, w]; the new state goes to a scratch row of ``hist``-free storage
    n = x.shape[0]
    pitch = 0.0
    xn = np.empty(n)
    # Four rows at a time: each row's sum keeps its order (bd terms, then j = 0..n-1), so the numbers
    # are those of the plain loop, but four independent chains hide the add latency (1.4x faster).
    i = 0
    while i + 3 < n:
        a0 = bd[i, 0] * torque + bd[i, 1] * w_seis
        a1 = bd[i + 1, 0] * torque + bd[i + 1, 1] * w_seis
        a2 = bd[i + 2, 0] * torque + bd[i + 2, 1] * w_seis
        a3 = bd[i + 3, 0] * torque + bd[i + 3, 1] * w_seis
        for j in range(n):
            xj = x[j]
            a0 += ad[i, j] * xj
            a1 += ad[i + 1, j] * xj
            a2 += ad[i + 2, j] * xj
            a3 += ad[i + 3, j] * xj
        xn[i], xn[i + 1], xn[i + 2], xn[i + 3] = a0, a1, a2, a3
        i += 4
    while i < n:
        acc = bd[i, 0] * torque + bd[i, 1] * w_seis
        for j in range(n):
            acc += ad[i, j] * x[j]
        xn[i] = acc
        i += 1
    for i in range(n):
        x[i] = xn[i]
        pitch += c[i] * xn[i]

    # Reward: running mean squares of the filtered signals, each mapped to a [0, 1] score.
    lp = sos_step(sos_lp, zi_lp, pitch)
    bp = sos_step(sos_bp, zi_bp, torque)
    hp = sos_step(sos_hp, zi_hp, torque)
    alpha = p[P_ALPHA_CONTROL]
    ema[0] += p[P_ALPHA_PITCH] * (lp * lp - ema[0])
    ema[1] += alpha * (bp * bp - ema[1])
    ema[2] += alpha * (hp * hp - ema[2])
    hs = p[P_HALF_SHARPNESS_CONTROL]
    s_pitch = _score(ema[0], p[P_INV_SPEC2], p[P_HALF_SHARPNESS_PITCH])
    s_band = _score(ema[1], p[P_INV_SPEC2 + 1], hs)
    s_high = _score(ema[2], p[P_INV_SPEC2 + 2], hs)
    terminated = abs(pitch) > p[P_PITCH_LIMIT]
    reward = 0.0 if terminated else s_pitch * s_band * s_high

    # Observation: shift the history left, newest sample last. The sensor saturates at its
    # linear range, so the reading is clipped there.
    reading = (pitch + p[P_SENSOR_SIGMA] * n_sens + p[P_SENSOR_OFFSET]) * p[P_OBS_INV_SCALE]
    clip = p[P_OBS_CLIP]
    reading = min(clip, max(-clip, reading))
    h = hist.shape[1]
    for k in range(h - 1):
        hist[0, k] = hist[0, k + 1]
        hist[1, k] = hist[1, k + 1]
    hist[0, h - 1] = reading
    hist[1, h - 1] = a
    return OK, reward, pitch, torque, s_pitch, s_band, s_high, terminated


@njit(cache=True)
def lock_rollout(x, ad, bd, c, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist, actions,
                 pitch_out, torque_out, reward_out):
    """Run ``lock_step`` over ``actions`` (steps, 1) without leaving compiled code.

    Stops early at termination; returns the number of steps taken.
    """
    for k in range(actions.shape[0]):
        code, r, pitch, torque, s1, s2, s3, term = lock_step(
            x, ad, bd, c, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist, actions[k])
        if code != OK:
            return -k - 1
        pitch_out[k] = pitch
        torque_out[k] = torque
        reward_out[k] = r
        if term:
            return k + 1
    return actions.shape[0]


@njit(cache=True)
def check_batch_actions(actions, active, clip):
    """The first active copy whose action (``actions[i, 0]``) :func:`lock_step` would refuse, as
    ``(code, copy)``; ``(OK, -1)`` when every active one is fine. ``clip``: out-of-range actions are clipped."""
    for i in range(actions.shape[0]):
        if active[i]:
            a = actions[i, 0]
            if not np.isfinite(a):
                return ERR_NOT_FINITE, i
            if (a > 1.0 or a < -1.0) and not clip:
                return ERR_OUT_OF_RANGE, i
    return OK, -1


@njit(cache=True, inline="always")
def _lock_step_copy(i, x, ad, bd, c, loop, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist, actions,
                    out, terminated):
    k = loop[i]
    _, r, pitch, torque, s1, s2, s3, term = lock_step(
        x[i], ad[k], bd[k], c[k], rng[i], p[i], sos_lp, zi_lp[i], sos_bp, zi_bp[i], sos_hp, zi_hp[i], ema[i], hist[i],
        actions[i])
    out[i, 0] = r
    out[i, 1] = pitch
    out[i, 2] = torque
    out[i, 3] = s1
    out[i, 4] = s2
    out[i, 5] = s3
    terminated[i] = term


@njit(cache=True)
def lock_step_batch(x, ad, bd, c, loop, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist, actions,
                    active, out, terminated):
    """:func:`lock_step` for every copy ``i`` with ``active[i]``, one after the other.

    Every state argument has a leading copy axis; the discrete loops ``ad``, ``bd``, ``c`` are a table of
    the distinct plants, copy ``i`` runs ``loop[i]`` (copies of one arm power share one, so a step reads
    ~0.7 kB per copy instead of ~2 kB); the filters' sections are shared. ``actions``
    (copies, 1) float64, checked beforehand with :func:`check_batch_actions`. Writes ``out[i]`` =
    (reward, pitch, torque, score_pitch, score_band, score_high) and ``terminated[i]``; inactive
    copies are left as they were. :func:`lock_step_batch_parallel` is the same across threads.
    """
    for i in range(x.shape[0]):
        if active[i]:
            _lock_step_copy(i, x, ad, bd, c, loop, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist,
                            actions, out, terminated)


@njit(cache=True, parallel=True)
def lock_step_batch_parallel(x, ad, bd, c, loop, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist,
                             actions, active, out, terminated):
    """:func:`lock_step_batch` with the copies spread over numba's threads (``prange``): for many copies."""
    for i in prange(x.shape[0]):
        if active[i]:
            _lock_step_copy(i, x, ad, bd, c, loop, rng, p, sos_lp, zi_lp, sos_bp, zi_bp, sos_hp, zi_hp, ema, hist,
                            actions, out, terminated)
