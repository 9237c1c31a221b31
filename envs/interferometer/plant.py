"""Continuous-time physics of the arm-cavity pitch loop, and its exact discretisation.

Everything here runs at construction or ``reset`` (SciPy is allowed), never in ``step``.
Numbers and sources are in ``shared/reference/interferometer.md``:

* Suspension: direct torque to test-mass pitch of the aLIGO quadruple pendulum (LLO aLOG
  41815 zpk): poles 0.436 Hz (Q 10), 0.556 Hz (Q 20), 1.49 Hz (Q 15); zeros 0.456 and
  1.124 Hz; DC compliance 0.132 rad/(N m). The zeros' Q is not given there; 10 is used.
  A single pendulum (I = 0.757 kg m^2, f0 = 0.6 Hz) is offered for checking Sidles-Sigg.
* Radiation pressure (Sidles-Sigg; Hirose et al. 2010): the arm beam adds an angular
  stiffness ``k = -(2P/c) dy/dtheta`` to each optical mode, positive (stiffening) for the
  hard mode, negative for the soft mode. Closing that optical spring around the suspension
  gives the plant ``P(s) = G(s) / (1 + k G(s))``: the hard mode becomes a stiff resonance
  (3.05 Hz at 400 kW with the quad) and the soft mode softens until a real pole crosses
  into the right half-plane (about 550 kW with the quad).
* Seismic platform motion: a 6-pole, 4-zero filter fitted to the reference ASD (5.3e-7,
  1.1e-7, 1.3e-11, 1.5e-13 m/sqrt(Hz) at 0.1, 0.2, 1, 10 Hz; microseism peak near 0.1 Hz,
  flattening below 0.05 Hz and falling as f^-2 above 10 Hz). It enters the test mass as
  an equivalent torque ``seismic_coupling * x_ground``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.signal

SPEED_OF_LIGHT = 299_792_458.0  # m/s
ARM_LENGTH_M = 3994.5
G_ITM = -1.065  # 1 - L / R_ITM, R = 1934 m
G_ETM = -0.779  # 1 - L / R_ETM, R = 2245 m
# Beam-spot motion per radian of the optical mode (Lightsaber); radiation_stiffness derives the
# same numbers from the geometry and the tests compare the two.
DY_DTHETA_M_PER_RAD = {"hard": -4.55e4, "soft": 2.07e3}
# Flat angular sensing noise of the wavefront sensors (Lightsaber O3 config).
SENSOR_NOISE_RAD_RTHZ = {"hard": 3e-14, "soft": 1e-13}

QUAD_POLES_HZ_Q = ((0.436, 10.0), (0.556, 20.0), (1.49, 15.0))
QUAD_ZEROS_HZ_Q = ((0.456, 10.0), (1.124, 10.0))
QUAD_DC_COMPLIANCE = 0.132  # rad / (N m)
SINGLE_PENDULUM_INERTIA = 0.757  # kg m^2
SINGLE_PENDULUM_F0_HZ = 0.6
SINGLE_PENDULUM_Q = 1000.0

# Reference ground-motion ASD points (m/sqrt(Hz)) and the fitted filter that reproduces them.
SEISMIC_REFERENCE_POINTS = ((0.1, 5.3e-7), (0.2, 1.1e-7), (1.0, 1.3e-11), (10.0, 1.5e-13))
_SEISMIC_GAIN = 10.0**-9.2269
_SEISMIC_POLES_HZ_Q = ((0.1852, 2.3958), (0.0953, 2.5537), (0.3384, 0.8914))
_SEISMIC_ZEROS_HZ_Q = ((1.0226, 1.7432), (0.602, 0.5))


def _pair_poly(f_hz: float, q: float) -> np.ndarray:
    w = 2.0 * np.pi * f_hz
    return np.array([1.0, w / q, w * w])


def _polyprod(pairs) -> np.ndarray:
    out = np.array([1.0])
    for f, q in pairs:
        out = np.polymul(out, _pair_poly(f, q))
    return out


@functools.lru_cache(maxsize=None)
def suspension_tf(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Torque (N m) to test-mass pitch (rad) of the free suspension, as (num, den) in s."""
    if kind == "quad":
        num, den = _polyprod(QUAD_ZEROS_HZ_Q), _polyprod(QUAD_POLES_HZ_Q)
        num = num * QUAD_DC_COMPLIANCE * den[-1] / num[-1]
        return num, den
    if kind == "single":
        w0 = 2.0 * np.pi * SINGLE_PENDULUM_F0_HZ
        den = SINGLE_PENDULUM_INERTIA * np.array([1.0, w0 / SINGLE_PENDULUM_Q, w0 * w0])
        return np.array([1.0]), den
    raise ValueError(f"suspension={kind!r}; allowed 'quad' or 'single'")


def seismic_tf() -> tuple[np.ndarray, np.ndarray]:
    """Filter whose magnitude is the ground-motion ASD (m/sqrt(Hz)) for a 1/sqrt(Hz) white input."""
    num = _SEISMIC_GAIN * _polyprod(_SEISMIC_ZEROS_HZ_Q)
    return num, _polyprod(_SEISMIC_POLES_HZ_Q)


def seismic_asd(f_hz) -> np.ndarray:
    """Model ground-motion ASD in m/sqrt(Hz) at the given frequencies."""
    num, den = seismic_tf()
    s = 2j * np.pi * np.asarray(f_hz, dtype=float)
    return np.abs(np.polyval(num, s) / np.polyval(den, s))


def radiation_stiffness(mode: str, arm_power_w: float) -> float:
    """Optical angular stiffness k (N m/rad) of a mode; positive restores, negative anti-restores.

    Sidles-Sigg from the cavity geometry: k = (P L / c) [(g1 + g2) -+ sqrt(4 + (g1 - g2)^2)] / (1 - g1 g2)
    with the sign that makes the hard mode stiffen (k > 0). This equals -(2P/c) dy/dtheta with
    Lightsaber's dy/dtheta (-4.55e4 hard, +2.07e3 soft m/rad) to their three digits.
    """
    sign = {"hard": +1.0, "soft": -1.0}[mode]
    root = np.sqrt(4.0 + (G_ITM - G_ETM) ** 2)
    return (arm_power_w * ARM_LENGTH_M / SPEED_OF_LIGHT) * (-(G_ITM + G_ETM) + sign * root) / (1.0 - G_ITM * G_ETM)


def sidles_sigg_frequencies(arm_power_w, f0_hz: float = SINGLE_PENDULUM_F0_HZ,
                            inertia: float = SINGLE_PENDULUM_INERTIA):
    """(hard, soft) mode frequencies in Hz of a single pendulum, from Sidles-Sigg (Hirose 2010).

    An unstable soft mode (negative squared frequency) is returned as a negative number:
    minus the growth rate of its real pole in Hz.
    """
    p = np.asarray(arm_power_w, dtype=float)
    w0sq = (2.0 * np.pi * f0_hz) ** 2
    root = np.sqrt(4.0 + (G_ITM - G_ETM) ** 2)
    scale = p * ARM_LENGTH_M / (inertia * SPEED_OF_LIGHT * (1.0 - G_ITM * G_ETM))
    out = []
    for sign in (+1.0, -1.0):
        wsq = w0sq + scale * (-(G_ITM + G_ETM) + sign * root)
        out.append(np.sign(wsq) * np.sqrt(np.abs(wsq)) / (2.0 * np.pi))
    return out[0], out[1]


def stiffness_for_unstable_pole(suspension: str, pole_hz: float) -> float:
    """Anti-spring k < 0 that puts a real right-half-plane pole of G/(1 + k G) at ``pole_hz``.

    1 + k G(s_u) = 0 at s_u = 2 pi pole_hz; G is real and positive on the positive real
    axis for these suspensions, so k = -1 / G(s_u) is real and negative.
    """
    num, den = suspension_tf(suspension)
    s = 2.0 * np.pi * pole_hz
    return -1.0 / (np.polyval(num, s) / np.polyval(den, s))


def mode_stiffness(mode: str, suspension: str, arm_power_w: float, unstable_pole_hz: float | None) -> float:
    """Optical stiffness of the controlled mode: Sidles-Sigg from the arm power, except that a
    soft mode with ``unstable_pole_hz`` set gets the anti-spring that places its unstable pole
    there (the Deep Loop Shaping randomisation, standing for power and beam-spot offsets)."""
    if unstable_pole_hz is not None:
        if mode != "soft":
            raise ValueError("unstable_pole_hz applies to mode='soft' only")
        return stiffness_for_unstable_pole(suspension, unstable_pole_hz)
    return radiation_stiffness(mode, arm_power_w)


def plant_tf(suspension: str, stiffness: float) -> tuple[np.ndarray, np.ndarray]:
    """Torque to pitch with the optical spring closed: G / (1 + k G) as (num, den)."""
    num, den = suspension_tf(suspension)
    den_cl = np.polyadd(den, stiffness * num)
    return num, den_cl


def tf_to_cascade_ss(num, den):
    """Well-conditioned state space of a strictly proper (num, den): a cascade of 2nd-order sections.

    A companion form of the whole polynomial spans too many decades (coefficients up to
    omega^6, states from 1e-30 to 1e-10) for Lyapunov solves and long simulations; a cascade
    of sections of at most second order keeps every block near unit scale.
    """
    z, p, k = scipy.signal.tf2zpk(num, den)
    if len(z) >= len(p):
        raise ValueError("expected a strictly proper transfer function")
    sos = scipy.signal.zpk2sos(z, p, k, analog=True)
    # zpk2sos puts the whole gain in the first section; spread it so no block is badly scaled.
    per = abs(k) ** (1.0 / len(sos))
    sos[0, :3] /= k
    sos[:, :3] *= per
    sos[0, :3] *= np.sign(k)
    blocks = []
    for sec in sos:
        b, a = np.trim_zeros(sec[:3], "f"), np.trim_zeros(sec[3:], "f")
        blocks.append(scipy.signal.tf2ss(b, a))
    n = sum(blk[0].shape[0] for blk in blocks)
    a_all = np.zeros((n, n))
    b_all = np.zeros((n, 1))
    c_prev, d_prev = None, None
    i = 0
    for ab, bb, cb, db in blocks:
        m = ab.shape[0]
        a_all[i:i + m, i:i + m] = ab
        if c_prev is None:  # first block takes the external input
            b_all[i:i + m] = bb
        else:  # its input is the previous block's output y = C x + D u
            a_all[i:i + m, :i] = bb @ c_prev
            b_all[i:i + m] = bb @ d_prev
        c_row = np.zeros((1, i + m))
        c_row[:, :i] = db @ c_prev if c_prev is not None else 0.0
        c_row[:, i:i + m] = cb
        c_prev = c_row
        d_prev = db @ d_prev if d_prev is not None else db
        i += m
    if np.any(d_prev):
        raise ValueError("expected a strictly proper transfer function")
    return a_all, b_all, c_prev


@dataclass(frozen=True)
class DiscreteLoop:
    """Exact ZOH discretisation of suspension + optical spring + seismic path for one episode.

    State ``x`` (plant states first, then seismic-filter states) evolves as
    ``x' = ad @ x + bd[:, 0] * torque + bd[:, 1] * w`` with ``w ~ N(0, 1)`` per sample (the
    sqrt(fs/2) that makes it a 1/sqrt(Hz) white input is folded into ``bd``), and the true
    pitch is ``c @ x``.
    """

    ad: np.ndarray
    bd: np.ndarray
    c: np.ndarray
    n_plant: int
    stiffness: float


def build_discrete_loop(suspension: str, stiffness: float, seismic_coupling: float,
                        sample_rate_hz: float) -> DiscreteLoop:
    """Discretise the continuous loop at ``sample_rate_hz`` with a zero-order hold on the torque."""
    ap, bp, cp = tf_to_cascade_ss(*plant_tf(suspension, stiffness))
    as_, bs, cs = tf_to_cascade_ss(*seismic_tf())
    n_p, n_s = ap.shape[0], as_.shape[0]
    a = np.zeros((n_p + n_s, n_p + n_s))
    a[:n_p, :n_p] = ap
    a[:n_p, n_p:] = seismic_coupling * bp @ cs  # ground motion as an equivalent torque
    a[n_p:, n_p:] = as_
    b = np.zeros((n_p + n_s, 2))
    b[:n_p, 0] = bp[:, 0]
    b[n_p:, 1] = bs[:, 0] * np.sqrt(sample_rate_hz / 2.0)
    c = np.concatenate([cp[0], np.zeros(n_s)])
    # ZOH: expm of the augmented matrix [[A, B], [0, 0]] * dt.
    n = a.shape[0]
    aug = np.zeros((n + 2, n + 2))
    aug[:n, :n] = a
    aug[:n, n:] = b
    e = scipy.linalg.expm(aug / sample_rate_hz)
    return DiscreteLoop(ad=np.ascontiguousarray(e[:n, :n]), bd=np.ascontiguousarray(e[:n, n:]),
                        c=c, n_plant=n_p, stiffness=stiffness)


def stationary_covariance(loop: DiscreteLoop) -> np.ndarray:
    """Covariance of the state driven by seismic noise alone, zero control.

    Where the open-loop plant is unstable (a soft mode past threshold) only the seismic
    block has a stationary state; the plant block then starts at rest.
    """
    ad, bw = loop.ad, loop.bd[:, 1:2]
    if np.max(np.abs(np.linalg.eigvals(ad))) < 1.0:
        return scipy.linalg.solve_discrete_lyapunov(ad, bw @ bw.T)
    n_p = loop.n_plant
    cov = np.zeros_like(ad)
    cov[n_p:, n_p:] = scipy.linalg.solve_discrete_lyapunov(ad[n_p:, n_p:], bw[n_p:] @ bw[n_p:].T)
    return cov


def mode_frequencies_hz(loop: DiscreteLoop, sample_rate_hz: float) -> np.ndarray:
    """Continuous-equivalent frequencies (|s| / 2 pi) of the discrete plant poles, sorted."""
    z = np.linalg.eigvals(loop.ad[: loop.n_plant, : loop.n_plant])
    s = np.log(z.astype(complex)) * sample_rate_hz
    return np.sort(np.abs(s)) / (2.0 * np.pi)


def discrete_response(a: np.ndarray, b: np.ndarray, c: np.ndarray, sample_rate_hz: float, f_hz) -> np.ndarray:
    """``c (zI - A)^-1 b`` of a single-input, single-output discrete system at ``z = exp(2 pi i f / fs)``."""
    z = np.exp(2j * np.pi * np.atleast_1d(np.asarray(f_hz, dtype=float)) / sample_rate_hz)
    eye = np.eye(a.shape[0])
    return np.array([c @ np.linalg.solve(zi * eye - a, b) for zi in z])


def discrete_plant_response(suspension: str, stiffness: float, sample_rate_hz: float, f_hz) -> np.ndarray:
    """Torque (N m) to pitch (rad) of the zero-order-hold discrete plant at ``f_hz``, as the env steps it
    (the sample the action acts over, then the reading)."""
    loop = build_discrete_loop(suspension, stiffness, 0.0, sample_rate_hz)
    n = loop.n_plant
    return discrete_response(loop.ad[:n, :n], loop.bd[:n, 0], loop.c[:n], sample_rate_hz, f_hz)
