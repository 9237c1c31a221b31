"""The env's rules and numbers in astroplan's terms, for :class:`~.astroplan.AstroplanScheduler`.

* constraints: :func:`env_constraints` (the env's altitude, airmass, Moon and twilight rules, plus the
  schedule window), :func:`block_constraints` (a target's time window, and the earliest start a visit
  gap allows), :func:`occupied_constraint` (keeps ``SequentialScheduler`` out of slots earlier rounds
  filled);
* numbers astroplan does not have: :func:`fit_slew_rate` (one constant slew rate matching the env's
  telescope) and :func:`etc_exposures_per_visit` (exposures a visit needs, from the env's ETC).

astroplan and astropy are imported inside the functions: importing this module loads neither.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.env import TelescopeSchedulingEnv
from astrogym.envs.scheduling.telescope import slew_time


def _mjd(value: float) -> Any:
    from astropy.time import Time

    return Time(value, format="mjd", scale="utc")


def env_constraints(cfg: Any, airmass_score: bool, window: tuple[Any, Any] | None = None) -> list:
    """The env's visibility rules as astroplan constraints, in a new list (``PriorityScheduler`` appends to it).

    ``AltitudeConstraint(min_altitude_deg)``, ``AirmassConstraint(max_airmass)`` (a score, not a boolean,
    when ``airmass_score``), ``MoonSeparationConstraint(min_moon_separation_deg)`` and
    ``AtNightConstraint(twilight_deg)`` from the env's ``SchedulingConfig``; with ``window`` (start and end
    ``Time``) a ``TimeConstraint`` that keeps every block inside it.
    """
    import astropy.units as u
    from astroplan import (
        AirmassConstraint,
        AltitudeConstraint,
        AtNightConstraint,
        MoonSeparationConstraint,
        TimeConstraint,
    )

    constraints = [AltitudeConstraint(min=cfg.min_altitude_deg * u.deg),
                   AirmassConstraint(max=cfg.max_airmass, boolean_constraint=not airmass_score),
                   MoonSeparationConstraint(min=cfg.min_moon_separation_deg * u.deg),
                   AtNightConstraint(max_solar_altitude=cfg.twilight_deg * u.deg)]
    if window is not None:
        constraints.append(TimeConstraint(*window))
    return constraints


def block_constraints(catalogue: Any, target: int, earliest_mjd: float | None = None) -> list:
    """Per-block constraints of one target: its time window if it has one, then (``earliest_mjd``) no start
    before that MJD (the end of the previous visit plus the minimum gap; no maximum: the schedule's window
    bounds the block)."""
    from astroplan import TimeConstraint

    out = []
    if np.isfinite(catalogue.window_start[target]):
        out.append(TimeConstraint(_mjd(catalogue.window_start[target]), _mjd(catalogue.window_end[target])))
    if earliest_mjd is not None:
        out.append(TimeConstraint(min=_mjd(earliest_mjd)))
    return out


def occupied_constraint(intervals: list[tuple[float, float]]) -> Any:
    """An astroplan constraint that is false strictly inside any of ``intervals`` (MJD start, end).

    astroplan 0.10's ``SequentialScheduler`` on a pre-filled schedule rejects a candidate only when a
    pre-filled slot's start or end falls inside it (or a slot starts at the candidate's time); one lying
    wholly inside a pre-filled slot passes, and ``Schedule.insert_slot`` then raises 'slot is already
    occupied'. Evaluated at the block's start, middle and end, this closes that hole.
    """
    from astroplan import Constraint

    eps = 1.0 / 86400.0  # 1 s: astroplan's own tolerance in insert_slot
    lo = np.array([a for a, _ in intervals], float) + eps
    hi = np.array([b for _, b in intervals], float) - eps

    class _Occupied(Constraint):
        def compute_constraint(self, times, observer, targets):
            t = np.asarray(times.mjd, float)[..., None]
            return ~np.any((t > lo) & (t < hi), axis=-1)

    return _Occupied()


def fit_slew_rate(env: Any, n_times: int = 6) -> float:
    """A constant slew rate (deg/s on the sky) whose times match the env telescope's on this catalogue.

    At ``n_times`` instants through the first night, every pair of targets that are both above the
    minimum altitude contributes its great-circle separation and the env's slew time (trapezoidal
    axes, dome, settle; :func:`astrogym.envs.scheduling.telescope.slew_time`). The rate is total
    separation / total time, so the summed transition time of astroplan's ``Transitioner`` matches
    the env's over such pairs. Falls back to the slower axis speed when fewer than two targets are up.

    Raises
    ------
    TypeError: ``env`` is not a ``TelescopeSchedulingEnv``.
    gymnasium.error.ResetNeeded: the env has no nights yet.
    """
    import gymnasium as gym

    env = getattr(env, "unwrapped", env)
    if not isinstance(env, TelescopeSchedulingEnv):
        raise TypeError(f"fit_slew_rate needs a TelescopeSchedulingEnv, got {type(env).__name__}")
    if not env.nights:
        raise gym.error.ResetNeeded("reset the env before fitting the slew rate")
    tel, table = env.telescope, env.nights[0].table
    par = tel.params()
    fallback = float(min(tel.axis1_speed_deg_s, tel.axis2_speed_deg_s))
    min_alt = max(env.config.min_altitude_deg, np.degrees(np.arcsin(1.0 / env.config.max_airmass)))
    total_sep = total_t = 0.0
    for k in np.linspace(0, table.times_s.size - 1, n_times).astype(int):
        up = np.flatnonzero(table.alt[k] >= min_alt)
        if up.size < 2:
            continue
        alt, az = table.alt[k, up].astype(float), table.az[k, up].astype(float)
        ha = (table.lst_deg[k] - np.asarray(table.ra_app)[up] + 180.0) % 360.0 - 180.0
        dec = np.asarray(table.dec_app)[up]
        a, z = np.radians(alt), np.radians(az)
        cos_sep = (np.sin(a)[:, None] * np.sin(a)[None, :]
                   + np.cos(a)[:, None] * np.cos(a)[None, :] * np.cos(z[:, None] - z[None, :]))
        sep = np.degrees(np.arccos(np.clip(cos_sep, -1.0, 1.0)))
        for p in range(up.size):
            for q in range(p + 1, up.size):
                total_sep += sep[p, q]
                total_t += slew_time(az[p], alt[p], ha[p], dec[p], az[q], alt[q], ha[q], dec[q], par)
    if total_t <= 0.0 or total_sep <= 0.0:
        return fallback
    return float(total_sep / total_t)


def etc_exposures_per_visit(env: Any, max_exposures: int = 20) -> np.ndarray:
    """Exposures per visit that reach each target's requested SNR in typical conditions (the env's ETC).

    For each target, the SNR^2 of one ``exposure_s`` exposure is evaluated at every grid point
    where the env's visibility mask allows it (all nights of the episode), at the configured median
    seeing (or the site's) under a clear sky, with the night table's sky brightness and airmass;
    the count is ``ceil(snr_requested^2 / median SNR^2)``, clipped to ``[1, max_exposures]``.
    Targets never visible get 1.

    Returns
    -------
    (N,) int64 exposures per visit.
    """
    env = getattr(env, "unwrapped", env)
    if not isinstance(env, TelescopeSchedulingEnv):
        raise TypeError(f"etc_exposures_per_visit needs a TelescopeSchedulingEnv, got {type(env).__name__}")
    cat, tel = env.catalogue, env.telescope
    seeing = env.config.seeing_median_arcsec or env.site.median_seeing_arcsec
    f = np.asarray(cat.filter)
    cm = photometry.cm_for_aperture(tel.aperture_m)[f]
    samples = [[] for _ in range(len(cat))]
    for night in env.nights:
        t = night.table
        alt = np.clip(t.alt.astype(float), 0.5, 90.0)
        x = 1.0 / np.sin(np.radians(alt))
        snr2 = photometry.point_source_snr(np.asarray(cat.mag)[None, :], cm[None, :], t.sky_mag, seeing, x,
                                           photometry.WAVELENGTH_NM[f][None, :], tel.system_fwhm_arcsec,
                                           np.asarray(cat.exposure_s)[None, :], photometry.EXTINCTION[f][None, :],
                                           0.0) ** 2
        for i in range(len(cat)):
            samples[i].append(snr2[night.vis[:, i], i])
    out = np.ones(len(cat), np.int64)
    for i in range(len(cat)):
        s = np.concatenate(samples[i]) if samples[i] else np.empty(0)
        if s.size:
            need = float(cat.snr[i]) ** 2 / max(float(np.median(s)), 1e-12)
            out[i] = int(np.clip(math.ceil(need - 1e-9), 1, max_exposures))
    return out
