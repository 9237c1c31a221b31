"""Night tables: everything about one night at one site that does not depend on the agent.

For a site, a date and a catalogue, :func:`night_table` computes once, with vectorised astropy
calls on a fine time grid from evening to morning twilight: target altitude and azimuth (so
airmass), apparent hour angle and declination (for equatorial mounts), Sun altitude, Moon
altitude, azimuth, phase angle and separation from every target, and the sky brightness at
every target in its filter. Tables are cached in memory and on disk (``$ASTROGYM_CACHE_DIR`` or
``~/.cache/astrogym``), keyed by site, date, grid, twilight and catalogue hash, so a training
run pays for each night once. ``step()`` only interpolates these arrays.

Times: a night starts at the evening crossing of the Sun through ``twilight_deg`` (after local
noon of ``date``, the local calendar date of the evening) and ends at the next morning crossing;
``times_s`` counts seconds from the start on a ``grid_s`` grid (the last point may fall short of
the end by less than one step).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from astrogym.envs.common.cache import atomic_save_npz, cache_dir, load_npz, require_finite
from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.catalogue import Catalogue
from astrogym.envs.scheduling.sites import Site

_TABLE_VERSION = 2
_ARRAYS = ("times_s", "alt", "az", "lst_deg", "ra_app", "dec_app", "sun_alt", "moon_alt", "moon_az",
           "moon_phase_angle", "moon_sep", "sky_mag")
_SCALARS = ("mjd_start", "mjd_end")
_MEMORY: "OrderedDict[str, NightTable]" = OrderedDict()
_MEMORY_SIZE = 16


@dataclass(frozen=True, eq=False)
class NightTable:
    """Precomputed ephemerides of one night (arrays are read-only).

    Attributes
    ----------
    site_key, date, grid_s, twilight_deg, catalogue_digest: what the table was computed for.
    mjd_start, mjd_end: evening and morning twilight (UTC MJD).
    times_s: (T,) grid, seconds since ``mjd_start``.
    alt, az: (T, N) float32 degrees; az east of north.
    lst_deg: (T,) local apparent sidereal time; with ``ra_app``/``dec_app`` (N,) gives hour angles.
    sun_alt, moon_alt, moon_az, moon_phase_angle: (T,) degrees (phase angle 0 = full Moon).
    moon_sep: (T, N) float32 degrees between Moon and target (topocentric).
    sky_mag: (T, N) float32 sky brightness at the target in its filter, mag/arcsec^2.
    """

    site_key: str
    date: str
    grid_s: float
    twilight_deg: float
    catalogue_digest: str
    mjd_start: float
    mjd_end: float
    times_s: np.ndarray
    alt: np.ndarray
    az: np.ndarray
    lst_deg: np.ndarray
    ra_app: np.ndarray
    dec_app: np.ndarray
    sun_alt: np.ndarray
    moon_alt: np.ndarray
    moon_az: np.ndarray
    moon_phase_angle: np.ndarray
    moon_sep: np.ndarray
    sky_mag: np.ndarray

    @property
    def length_s(self) -> float:
        """Night length in seconds (evening to morning twilight)."""
        return (self.mjd_end - self.mjd_start) * 86400.0

    @property
    def moon_illumination(self) -> np.ndarray:
        """(T,) illuminated fraction of the Moon."""
        return 0.5 * (1.0 + np.cos(np.radians(self.moon_phase_angle)))

    def times(self):
        """The grid as an ``astropy.time.Time`` array (UTC)."""
        from astropy.time import Time

        return Time(self.mjd_start + self.times_s / 86400.0, format="mjd", scale="utc")


def _enu(alt_deg, az_deg):
    alt, az = np.radians(alt_deg), np.radians(az_deg)
    return np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)], axis=-1)


def _alt_az_from_enu(v):
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(v[..., 2], -1, 1))), np.degrees(np.arctan2(v[..., 0], v[..., 1])) % 360.0


def _crossing(t, y, level, rising: bool) -> float | None:
    """First time where ``y`` crosses ``level`` (linear interpolation), or None."""
    s = y - level
    idx = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0)) if rising else np.flatnonzero((s[:-1] > 0) & (s[1:] <= 0))
    if idx.size == 0:
        return None
    i = idx[0]
    return float(t[i] + (t[i + 1] - t[i]) * s[i] / (s[i] - s[i + 1]))


def twilight_bounds(site: Site, date: str, twilight_deg: float) -> tuple[float, float]:
    """Evening and morning crossings (MJD UTC) of the Sun through ``twilight_deg`` for the night starting on
    the local calendar date ``date`` (ISO ``YYYY-MM-DD``).

    Raises
    ------
    ValueError: ``date`` is not a valid date, or the Sun does not reach ``twilight_deg`` that night.
    """
    from astropy.coordinates import AltAz, get_sun
    from astropy.time import Time

    try:
        day = Time(date, format="iso", scale="utc")
    except ValueError:
        raise ValueError(f"date={date!r} is not an ISO date (YYYY-MM-DD)") from None
    # local noon of that date, then 26 h at 5 min: both crossings of the night lie inside.
    start = day.mjd + 0.5 - site.longitude_deg / 360.0
    mjd = start + np.arange(0.0, 26.0 / 24.0 + 1e-9, 5.0 / 1440.0)
    times = Time(mjd, format="mjd", scale="utc")
    sun_alt = get_sun(times).transform_to(AltAz(obstime=times, location=site.location())).alt.deg
    evening = _crossing(mjd, sun_alt, twilight_deg, rising=False)
    morning = _crossing(mjd, sun_alt, twilight_deg, rising=True) if evening is not None else None
    if evening is not None and morning is not None and morning < evening:
        later = mjd > evening
        morning = _crossing(mjd[later], sun_alt[later], twilight_deg, rising=True)
    if evening is None or morning is None:
        raise ValueError(f"no night at {site.name} on {date}: the Sun does not cross {twilight_deg:g} deg "
                         "(choose another date or a shallower twilight_deg)")
    # One secant step on the exact Sun altitude: the 5-minute interpolation is good to ~1 s, this to ~1 ms.
    frame = AltAz(obstime=Time([evening, morning], format="mjd", scale="utc"), location=site.location())
    first = get_sun(frame.obstime).transform_to(frame).alt.deg
    shifted = np.array([evening, morning]) + 1.0 / 1440.0
    frame2 = AltAz(obstime=Time(shifted, format="mjd", scale="utc"), location=site.location())
    second = get_sun(frame2.obstime).transform_to(frame2).alt.deg
    slope = (second - first) / (1.0 / 1440.0)
    evening, morning = np.array([evening, morning]) - (first - twilight_deg) / slope
    return float(evening), float(morning)


def compute_night_table(site: Site, date: str, catalogue: Catalogue, grid_s: float = 60.0,
                        twilight_deg: float = -18.0) -> NightTable:
    """Compute a night table (no caching; :func:`night_table` is the cached entry point)."""
    import astropy.units as u
    from astropy.coordinates import CIRS, AltAz, SkyCoord, get_body, get_sun
    from astropy.time import Time

    mjd_start, mjd_end = twilight_bounds(site, date, twilight_deg)
    length = (mjd_end - mjd_start) * 86400.0
    times_s = np.arange(0.0, length + 1e-6, grid_s)
    times = Time(mjd_start + times_s / 86400.0, format="mjd", scale="utc")
    location = site.location()
    frame = AltAz(obstime=times[:, None], location=location)
    targets = SkyCoord(catalogue.ra * u.deg, catalogue.dec * u.deg, frame="icrs")
    altaz = targets[None, :].transform_to(frame)
    alt = altaz.alt.deg.astype(np.float32)
    az = altaz.az.deg.astype(np.float32)
    # Apparent (CIRS) places at mid-night and the local sidereal angle: hour angles for equatorial mounts.
    mid = times[len(times) // 2]
    app = targets.transform_to(CIRS(obstime=mid, location=location))
    lst = times.earth_rotation_angle(location.lon).deg
    # Sun and Moon move smoothly: compute them every 10 minutes and interpolate unit vectors.
    coarse_s = np.unique(np.append(np.arange(0.0, length, 600.0), length))
    coarse = Time(mjd_start + coarse_s / 86400.0, format="mjd", scale="utc")
    coarse_frame = AltAz(obstime=coarse, location=location)
    sun = get_sun(coarse).transform_to(coarse_frame)
    moon = get_body("moon", coarse, location).transform_to(coarse_frame)
    sun_v, moon_v = _enu(sun.alt.deg, sun.az.deg), _enu(moon.alt.deg, moon.az.deg)
    elongation = np.degrees(np.arccos(np.clip(np.sum(sun_v * moon_v, axis=-1), -1, 1)))
    interp = lambda v: np.stack([np.interp(times_s, coarse_s, v[:, k]) for k in range(3)], axis=-1)  # noqa: E731
    sun_alt, _ = _alt_az_from_enu(interp(sun_v))
    moon_alt, moon_az = _alt_az_from_enu(interp(moon_v))
    phase_angle = np.interp(times_s, coarse_s, 180.0 - elongation)
    moon_fine = _enu(moon_alt, moon_az)
    cos_sep = np.einsum("tnk,tk->tn", _enu(alt, az), moon_fine)
    moon_sep = np.degrees(np.arccos(np.clip(cos_sep, -1, 1))).astype(np.float32)
    sky = photometry.sky_brightness(catalogue.filter[None, :], alt, moon_alt[:, None], moon_sep,
                                    phase_angle[:, None]).astype(np.float32)
    arrays = dict(times_s=times_s, alt=alt, az=az, lst_deg=lst, ra_app=app.ra.deg, dec_app=app.dec.deg,
                  sun_alt=sun_alt, moon_alt=moon_alt, moon_az=moon_az, moon_phase_angle=phase_angle,
                  moon_sep=moon_sep, sky_mag=sky)
    return _make(site.key, date, grid_s, twilight_deg, catalogue.digest(), mjd_start, mjd_end, arrays)


def _make(site_key, date, grid_s, twilight_deg, digest, mjd_start, mjd_end, arrays) -> NightTable:
    for a in arrays.values():
        a.setflags(write=False)
    return NightTable(site_key=site_key, date=date, grid_s=float(grid_s), twilight_deg=float(twilight_deg),
                      catalogue_digest=digest, mjd_start=float(mjd_start), mjd_end=float(mjd_end), **arrays)


def _check_cached(n_targets: int, arrays: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` unless cached night arrays fit ``n_targets`` targets, one grid, finite values."""
    n_times = arrays["times_s"].shape[0] if arrays["times_s"].ndim == 1 else -1
    if n_times < 2:
        raise ValueError(f"'times_s' must be a 1-D grid of at least 2 times, got shape {arrays['times_s'].shape}")
    for name in _ARRAYS:
        per_target = name in ("alt", "az", "moon_sep", "sky_mag")
        want = (n_times, n_targets) if per_target else (n_targets,) if name in ("ra_app", "dec_app") else (n_times,)
        if arrays[name].shape != want:
            raise ValueError(f"{name!r} has shape {arrays[name].shape}; expected {want}")
    for name in _SCALARS:
        if arrays[name].shape != ():
            raise ValueError(f"{name!r} must be a scalar, got shape {arrays[name].shape}")
    require_finite(arrays)


def _key(site: Site, date: str, catalogue: Catalogue, grid_s: float, twilight_deg: float) -> str:
    fields = {"site": [site.key, site.latitude_deg, site.longitude_deg, site.elevation_m], "date": date,
              "catalogue": catalogue.digest(), "grid_s": float(grid_s), "twilight_deg": float(twilight_deg),
              "version": _TABLE_VERSION}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def night_table(site: Site, date: str, catalogue: Catalogue, grid_s: float = 60.0, twilight_deg: float = -18.0,
                use_disk_cache: bool = True) -> NightTable:
    """The night table, from memory, from the disk cache, or computed (and then cached atomically)."""
    key = _key(site, date, catalogue, grid_s, twilight_deg)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    path = cache_dir() / "nights" / f"{site.key}-{date}-{key}.npz"
    # None when missing or damaged (checksum, shapes, NaN): recomputed and replaced, never trusted
    data = load_npz(path, _ARRAYS + _SCALARS, functools.partial(_check_cached, len(catalogue))) \
        if use_disk_cache else None
    if data is not None:
        table = _make(site.key, date, grid_s, twilight_deg, catalogue.digest(), float(data["mjd_start"]),
                      float(data["mjd_end"]), {k: data[k] for k in _ARRAYS})
    else:
        table = compute_night_table(site, date, catalogue, grid_s, twilight_deg)
        if use_disk_cache:
            atomic_save_npz(path, mjd_start=np.float64(table.mjd_start), mjd_end=np.float64(table.mjd_end),
                            **{k: getattr(table, k) for k in _ARRAYS})
    _MEMORY[key] = table
    if len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return table


def clear_memory_cache() -> None:
    """Forget in-process night tables (the disk cache stays); for benchmarks of the cached path."""
    _MEMORY.clear()
