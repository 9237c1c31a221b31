"""Night tables against astroplan and astropy: visibility, positions, twilight, Moon, sky brightness."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astroplan import (AirmassConstraint, AltitudeConstraint, AtNightConstraint, FixedTarget,
                       MoonSeparationConstraint)
from astropy.coordinates import SkyCoord

from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.catalogue import random_catalogue
from astrogym.envs.scheduling.config import SchedulingConfig
from astrogym.envs.scheduling.env import visibility_mask
from astrogym.envs.scheduling.night import night_table, twilight_bounds
from astrogym.envs.scheduling.sites import get_site

DATE = "2026-12-15"


@pytest.fixture(scope="module")
def night():
    site = get_site("muztagh_ata")
    cat = random_catalogue(24, seed=3)
    return site, cat, night_table(site, DATE, cat)


def test_night_length_matches_the_reference(night):
    # scheduling.md: Muztagh-ata, night of 2026-12-15, 11.3 h between astronomical twilights
    assert night[2].length_s / 3600 == pytest.approx(11.3, abs=0.05)


def test_twilight_times_match_astroplan(night):
    site, _, table = night
    obs = site.observer()
    evening = obs.twilight_evening_astronomical(table.times()[0] + 1 * u.min, which="previous")
    morning = obs.twilight_morning_astronomical(table.times()[0], which="next")
    assert abs(table.mjd_start - evening.mjd) * 86400 < 60
    assert abs(table.mjd_end - morning.mjd) * 86400 < 60


def test_positions_match_astroplan_altaz(night):
    site, cat, table = night
    obs = site.observer()
    idx = np.arange(0, table.times_s.size, 37)
    coords = SkyCoord(cat.ra * u.deg, cat.dec * u.deg)
    altaz = obs.altaz(table.times()[idx][:, None], coords[None, :])
    assert np.max(np.abs(altaz.alt.deg - table.alt[idx])) < 1e-4  # float32 storage, ~0.3 arcsec
    daz = (altaz.az.deg - table.az[idx] + 180) % 360 - 180
    assert np.max(np.abs(daz * np.cos(np.radians(altaz.alt.deg)))) < 1e-4


def test_sun_and_moon_match_astroplan(night):
    site, cat, table = night
    obs = site.observer()
    idx = np.arange(0, table.times_s.size, 23)
    times = table.times()[idx]
    assert np.max(np.abs(obs.sun_altaz(times).alt.deg - table.sun_alt[idx])) < 0.02
    moon = obs.moon_altaz(times)
    assert np.max(np.abs(moon.alt.deg - table.moon_alt[idx])) < 0.02
    illum = obs.moon_illumination(times)
    assert np.max(np.abs(illum - table.moon_illumination[idx])) < 0.01


@pytest.mark.filterwarnings("ignore::astropy.coordinates.NonRotationTransformationWarning")
def test_visibility_mask_equals_astroplan_constraints(night):
    """The env's mask against astroplan's own constraint evaluation, target by target and time by time.

    Points within a hair of a threshold (float32 altitudes, the 10-minute Moon interpolation) may
    differ; everything else must agree exactly."""
    site, cat, table = night
    cfg = SchedulingConfig(min_altitude_deg=35.0, max_airmass=1.8, min_moon_separation_deg=40.0)
    mask = visibility_mask(table, cat, cfg)
    obs = site.observer()
    idx = np.arange(0, table.times_s.size, 7)
    times = table.times()[idx]
    targets = [FixedTarget(SkyCoord(r * u.deg, d * u.deg), name=n) for r, d, n in zip(cat.ra, cat.dec, cat.name)]
    constraints = [AltitudeConstraint(min=35 * u.deg), AirmassConstraint(max=1.8),
                   AtNightConstraint(max_solar_altitude=-18 * u.deg), MoonSeparationConstraint(min=40 * u.deg)]
    expected = np.ones((len(targets), idx.size), bool)
    for c in constraints:
        expected &= c(obs, targets, times=times, grid_times_targets=True)
    ours = mask[idx].T
    alt = table.alt[idx].T
    near = (np.abs(alt - 35.0) < 1e-3) | (np.abs(alt - np.degrees(np.arcsin(1 / 1.8))) < 1e-3)
    near |= np.abs(table.moon_sep[idx].T - 40.0) < 0.05
    near |= (np.abs(table.sun_alt[idx] + 18.0) < 1e-3)[None, :]
    assert expected.sum() > 0.1 * expected.size  # a meaningful sample: many visible, many not
    assert expected.sum() < 0.9 * expected.size
    assert np.array_equal(ours[~near], expected[~near])


def test_polar_summer_has_no_night():
    site = get_site("muztagh_ata")
    with pytest.raises(ValueError, match="no night"):
        from astrogym.envs.scheduling.sites import Site

        twilight_bounds(Site("svalbard", "Svalbard", 78.2, 15.6, 500.0, 1.0, 0.5), "2026-06-21", -18.0)
    with pytest.raises(ValueError, match="ISO date"):
        twilight_bounds(site, "15/12/2026", -18.0)


def test_sky_brightness_model():
    f = photometry.filter_index("r")
    dark = photometry.sky_brightness(f, 90.0, -10.0, 90.0, 0.0)
    assert dark == pytest.approx(photometry.DARK_SKY_MAG[f], abs=1e-9)  # Moon down, zenith
    full_near = photometry.sky_brightness(f, 90.0, 60.0, 30.0, 0.0)
    full_far = photometry.sky_brightness(f, 90.0, 60.0, 90.0, 0.0)
    quarter = photometry.sky_brightness(f, 90.0, 60.0, 90.0, 90.0)
    assert full_near < full_far < quarter < dark  # brighter (smaller mag) nearer a fuller Moon
    # Krisciunas & Schaefer: a full Moon brightens the V sky by roughly 2-4 mag at moderate separations
    assert 1.5 < dark - full_far < 4.5
    assert photometry.sky_brightness(f, 30.0, -10.0, 90.0, 0.0) < dark  # brighter towards the horizon


def test_iers_downloads_are_off_by_default():
    """Offline observatory computers: importing the scheduling env turns astropy's IERS downloads off."""
    import subprocess
    import sys

    code = ("import astrogym.envs.scheduling\nfrom astropy.utils import iers\n"
            "print(iers.conf.auto_download, iers.conf.auto_max_age)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "None"]
