"""Telescope and observatory overheads: slews, settle, dome, filter changes, readout.

The slew model is the one the reference cites from ZTF and Rubin: each axis follows a
trapezoidal velocity profile (accelerate, cruise, decelerate; a triangle for short moves), the
axes move together, the dome follows in azimuth, and the slowest of them plus a settle time is
the slew. A filter change runs in parallel with the slew; readout follows every exposure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

FILTERS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class Telescope:
    """Kinematics, overheads and light collection of one telescope.

    Attributes
    ----------
    key, name: identifiers.
    aperture_m: effective collecting diameter (sets the depth, see :mod:`photometry`).
    mount: ``"altaz"`` (axes are altitude and azimuth) or ``"equatorial"`` (hour angle and declination).
    axis1_speed_deg_s, axis1_accel_deg_s2: azimuth (alt-az) or hour-angle (equatorial) axis.
    axis2_speed_deg_s, axis2_accel_deg_s2: altitude or declination axis.
    dome_speed_deg_s: dome rotation speed in azimuth (0 means no dome, e.g. a roll-off roof).
    settle_s: added after any move.
    readout_s: after every exposure.
    filter_change_s: to change filter (in parallel with the slew).
    system_fwhm_arcsec: image blur of telescope and camera, added in quadrature to the seeing.
    """

    key: str
    name: str
    aperture_m: float
    mount: str
    axis1_speed_deg_s: float
    axis1_accel_deg_s2: float
    axis2_speed_deg_s: float
    axis2_accel_deg_s2: float
    dome_speed_deg_s: float
    settle_s: float
    readout_s: float
    filter_change_s: float
    system_fwhm_arcsec: float = 0.4

    def __post_init__(self) -> None:
        if self.mount not in ("altaz", "equatorial"):
            raise ValueError(f"Telescope.mount={self.mount!r} is not allowed; choose 'altaz' or 'equatorial'")
        for name in ("aperture_m", "axis1_speed_deg_s", "axis1_accel_deg_s2", "axis2_speed_deg_s",
                     "axis2_accel_deg_s2"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Telescope.{name}={getattr(self, name)} must be > 0")
        for name in ("dome_speed_deg_s", "settle_s", "readout_s", "filter_change_s", "system_fwhm_arcsec"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Telescope.{name}={getattr(self, name)} must be >= 0")

    def params(self) -> np.ndarray:
        """The numbers the compiled kernels need, in the order of the ``P_*`` indices below."""
        return np.array([1.0 if self.mount == "equatorial" else 0.0, self.axis1_speed_deg_s, self.axis1_accel_deg_s2,
                         self.axis2_speed_deg_s, self.axis2_accel_deg_s2, self.dome_speed_deg_s, self.settle_s,
                         self.readout_s, self.filter_change_s], dtype=np.float64)


P_EQUATORIAL, P_V1, P_A1, P_V2, P_A2, P_DOME, P_SETTLE, P_READOUT, P_FILTER = range(9)

TELESCOPES: dict[str, Telescope] = {t.key: t for t in (
    # ZTF (reference): HA 2.5 deg/s at 0.4 deg/s^2, Dec 3.0 deg/s at 0.5 deg/s^2, dome 3 deg/s, settle 1 s,
    # readout 8 s, filter change 135 s; 1.22 m Schmidt (effective ~1.0 m with the obstruction).
    Telescope("ztf", "ZTF / P48", 1.0, "equatorial", 2.5, 0.4, 3.0, 0.5, 3.0, 1.0, 8.0, 135.0, 1.0),
    # Rubin (reference): az 7 deg/s at 7 deg/s^2, alt 3.5 deg/s at 3.5 deg/s^2, settle 3 s, dome 1.5 deg/s,
    # readout 3.07 s, filter change 120 s; 6.423 m effective aperture.
    Telescope("rubin", "Rubin / Simonyi", 6.423, "altaz", 7.0, 7.0, 3.5, 3.5, 1.5, 3.0, 3.07, 120.0, 0.4),
    # MOST at Muztagh-ata: its 1.93 m aperture, on an alt-az mount with ZTF's axis, dome and overhead
    # numbers (the reference gives no MOST kinematics).
    Telescope("most", "MOST 1.93 m", 1.93, "altaz", 2.5, 0.4, 3.0, 0.5, 3.0, 1.0, 8.0, 135.0, 0.6),
)}


def get_telescope(telescope: "str | Telescope") -> Telescope:
    """A telescope by key (or the telescope itself); unknown keys raise ``ValueError``."""
    if isinstance(telescope, Telescope):
        return telescope
    if telescope not in TELESCOPES:
        raise ValueError(f"unknown telescope {telescope!r}; known telescopes: {sorted(TELESCOPES)}")
    return TELESCOPES[telescope]


@njit(cache=True, inline="always")
def axis_move_time(distance_deg, speed, accel):
    """Trapezoidal profile: time to move ``distance_deg`` from rest to rest (a triangle if short)."""
    d = abs(distance_deg)
    if d == 0.0:
        return 0.0
    ramp = speed * speed / accel  # distance spent accelerating and decelerating at full speed
    if d >= ramp:
        return d / speed + speed / accel
    return 2.0 * np.sqrt(d / accel)


@njit(cache=True, inline="always")
def _wrap180(x):
    """x folded into [-180, 180) (floor instead of Python's float modulo, which is slower in numba)."""
    return x - 360.0 * np.floor((x + 180.0) / 360.0)


@njit(cache=True, inline="always")
def slew_between(az0, alt0, ha0, dec0, az1, alt1, ha1, dec1, equatorial, v1, a1, v2, a2, dome, settle):
    """:func:`slew_time` on scalars (the telescope's ``P_*`` numbers passed one by one): for loops over many
    targets, where passing the parameter array to an inlined helper costs reference counting per call."""
    if equatorial:
        t1 = axis_move_time(_wrap180(ha1 - ha0), v1, a1)
        t2 = axis_move_time(dec1 - dec0, v2, a2)
    else:
        t1 = axis_move_time(_wrap180(az1 - az0), v1, a1)
        t2 = axis_move_time(alt1 - alt0, v2, a2)
    t = max(t1, t2)
    if dome > 0.0:
        t = max(t, abs(_wrap180(az1 - az0)) / dome)
    if t == 0.0:
        return 0.0
    return t + settle


@njit(cache=True, inline="always")
def slew_time(az0, alt0, ha0, dec0, az1, alt1, ha1, dec1, p):
    """Seconds from one pointing to another: slowest of the two axes and the dome, plus settle.

    Positions in degrees; ``p`` is :meth:`Telescope.params`. Azimuth and hour angle take the short
    way round (no cable wrap). Zero if nothing moves.
    """
    return slew_between(az0, alt0, ha0, dec0, az1, alt1, ha1, dec1, p[P_EQUATORIAL] > 0.5, p[P_V1], p[P_A1], p[P_V2],
                        p[P_A2], p[P_DOME], p[P_SETTLE])
