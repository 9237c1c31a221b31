"""The scheduling model: kinematics, photometry, kernels against NumPy, time accounting, rewards by hand."""

from __future__ import annotations

import astropy.units as u
import gymnasium as gym
import numpy as np
import pytest
from astroplan import AltitudeConstraint, AtNightConstraint, FixedTarget, MoonSeparationConstraint
from astropy.coordinates import SkyCoord
from astropy.time import Time

import astrogym  # noqa: F401
from astrogym.agents import GreedyScheduler
from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.catalogue import Catalogue
from astrogym.envs.scheduling.kernels import N_TEL, PAR_COLS
from astrogym.envs.scheduling.sites import get_site
from astrogym.envs.scheduling.telescope import axis_move_time, get_telescope, slew_time

ENV_ID = "astrogym/TelescopeScheduling-v0"


def _trapezoid(d, v, a):
    """Reference: rest-to-rest time over distance d with speed v and acceleration a."""
    d = abs(d)
    if d == 0:
        return 0.0
    if d < v * v / a:  # never reaches cruise speed: accelerate half way, decelerate half way
        return 2 * np.sqrt(d / a)
    return 2 * v / a + (d - v * v / a) / v


def test_axis_profile_matches_kinematics():
    for d in (0.0, 0.1, 1.0, 15.625, 15.7, 40.0, 180.0):
        assert axis_move_time(d, 2.5, 0.4) == pytest.approx(_trapezoid(d, 2.5, 0.4), rel=1e-12)
    # continuous where the triangle becomes a trapezoid (d = v^2 / a)
    assert axis_move_time(15.625 - 1e-9, 2.5, 0.4) == pytest.approx(axis_move_time(15.625 + 1e-9, 2.5, 0.4))


def test_slew_times_are_symmetric_and_respect_each_axis():
    rng = np.random.default_rng(0)
    for key in ("most", "ztf", "rubin"):
        p = np.zeros(PAR_COLS)
        p[:N_TEL] = get_telescope(key).params()
        tel = get_telescope(key)
        for _ in range(200):
            a = rng.uniform([0, 20, -180, -30], [360, 90, 180, 80])
            b = rng.uniform([0, 20, -180, -30], [360, 90, 180, 80])
            ab, ba = slew_time(*a, *b, p), slew_time(*b, *a, p)
            assert ab == pytest.approx(ba, rel=1e-12)
            daz = abs((b[0] - a[0] + 180) % 360 - 180)
            if tel.mount == "altaz":
                axes = max(_trapezoid(daz, tel.axis1_speed_deg_s, tel.axis1_accel_deg_s2),
                           _trapezoid(b[1] - a[1], tel.axis2_speed_deg_s, tel.axis2_accel_deg_s2))
            else:
                dha = abs((b[2] - a[2] + 180) % 360 - 180)
                axes = max(_trapezoid(dha, tel.axis1_speed_deg_s, tel.axis1_accel_deg_s2),
                           _trapezoid(b[3] - a[3], tel.axis2_speed_deg_s, tel.axis2_accel_deg_s2))
            expected = max(axes, daz / tel.dome_speed_deg_s) + tel.settle_s
            assert ab == pytest.approx(expected, rel=1e-12)
        assert slew_time(10.0, 50.0, 0.0, 20.0, 10.0, 50.0, 0.0, 20.0, p) == 0.0


def test_compiled_photometry_matches_numpy():
    rng = np.random.default_rng(1)
    for _ in range(50):
        args = rng.uniform([20, 18, 0.5, 10, 1.0, 0.05, 0.0], [26, 23, 3.0, 900, 2.5, 0.5, 2.0])
        assert photometry.m5_depth_nb(*args) == pytest.approx(photometry.m5_depth(*args), rel=1e-12)
        s, x, w, sys_ = rng.uniform([0.3, 1.0, 350, 0.1], [2.0, 3.0, 1000, 1.0])
        assert photometry.fwhm_eff_nb(s, x, w, sys_) == pytest.approx(photometry.fwhm_eff(s, x, w, sys_), rel=1e-12)


def test_snr_grows_as_sqrt_time_and_inverts():
    cm, mu, fw, k = 24.0, 21.0, 0.9, 0.13
    m5_30 = photometry.m5_depth(cm, mu, fw, 30.0, 1.2, k, 0.0)
    m5_120 = photometry.m5_depth(cm, mu, fw, 120.0, 1.2, k, 0.0)
    assert photometry.snr_from_m5(22.0, m5_120) / photometry.snr_from_m5(22.0, m5_30) == pytest.approx(2.0)
    t = photometry.exposure_for_snr(50.0, 22.0, cm, mu, fw, 1.2, k)
    assert photometry.snr_from_m5(22.0, photometry.m5_depth(cm, mu, fw, t, 1.2, k, 0.0)) == pytest.approx(50.0)
    # Ivezic et al. 2019 Table 2: Rubin's r-band 30 s depth at zenith in 0.83" effective seeing is 24.35
    r = photometry.filter_index("r")
    assert photometry.m5_depth(photometry.CM_RUBIN[r], photometry.DARK_SKY_MAG[r], 0.83, 30.0, 1.0,
                               photometry.EXTINCTION[r], 0.0) == pytest.approx(24.35, abs=0.01)


def _zenith_catalogue(site, mjd, n_visits=(1, 1, 2), filters=("r", "r", "g"), mags=(20.0, 20.5, 19.0)):
    """Three targets near the meridian at the start of the night."""
    lst = Time(mjd, format="mjd").sidereal_time("apparent", longitude=site.longitude_deg * u.deg).deg
    return Catalogue.from_columns({
        "name": ["A", "B", "C"], "ra": [(lst + d) % 360 for d in (5.0, 15.0, 25.0)],
        "dec": [site.latitude_deg, site.latitude_deg - 10, site.latitude_deg + 5], "mag": list(mags),
        "priority": [3.0, 1.0, 2.0], "snr": [30.0, 30.0, 40.0], "filter": list(filters),
        "exposure_s": [120.0, 90.0, 60.0], "n_visits": list(n_visits), "min_gap_s": [0.0, 0.0, 1800.0]})


@pytest.fixture(scope="module")
def tiny_env():
    site = get_site("muztagh_ata")
    from astrogym.envs.scheduling.night import twilight_bounds

    mjd0, _ = twilight_bounds(site, "2026-12-15", -18.0)
    cat = _zenith_catalogue(site, mjd0 + 0.02)
    env = gym.make(ENV_ID, catalogue=cat, weather="clear", seeing_median_arcsec=0.8, wait_s=600.0)
    return env, cat


def _lerp(a, t, grid):
    k = int(t // grid)
    w = t / grid - k
    return a[k] + w * (a[k + 1] - a[k])


def test_reward_and_metrics_by_hand_on_a_tiny_night(tiny_env):
    env, cat = tiny_env
    obs, info = env.reset(seed=0)
    un = env.unwrapped
    table = un.nights[0].table
    tel = get_telescope("most")
    p = np.zeros(PAR_COLS)
    p[:N_TEL] = tel.params()
    weight = 3.0 + 1.0 + 2.0 * 1.5  # priorities, the 2-visit target with the 0.5 sequence bonus
    assert un.total_weight == pytest.approx(weight)
    # target A from the park position (meridian, altitude 60, az 180, northern site)
    a_alt, a_az = float(table.alt[0, 0]), float(table.az[0, 0])
    overhead = max(_trapezoid((a_az - 180 + 180) % 360 - 180, 2.5, 0.4), _trapezoid(a_alt - 60, 3.0, 0.5),
                   abs((a_az - 180 + 180) % 360 - 180) / 3.0) + 1.0
    assert un.overhead_s(0) == pytest.approx(overhead, rel=1e-9)
    obs, reward, term, trunc, info = env.step(0)
    mid = overhead + 60.0
    alt = _lerp(table.alt[:, 0].astype(float), mid, 60.0)
    x = 1 / np.sin(np.radians(alt))
    sky = _lerp(table.sky_mag[:, 0].astype(float), mid, 60.0)
    r = photometry.filter_index("r")
    fw = photometry.fwhm_eff(0.8, x, photometry.WAVELENGTH_NM[r], tel.system_fwhm_arcsec)
    m5 = photometry.m5_depth(photometry.cm_for_aperture(1.93)[r], sky, fw, 120.0, x, photometry.EXTINCTION[r], 0.0)
    snr = photometry.snr_from_m5(20.0, m5)
    assert info["snr"] == pytest.approx(snr, rel=1e-9)
    assert reward == pytest.approx(3.0 * min(1.0, snr ** 2 / 30.0 ** 2) / weight, rel=1e-9)
    assert info["time_s"] == pytest.approx(overhead + 120.0 + 8.0)
    assert info["open_shutter_fraction"] == pytest.approx(120.0 / (overhead + 128.0))
    assert info["completed_visits"] == (1 if snr >= 30.0 else 0)
    assert info["mean_airmass"] == pytest.approx(x, rel=1e-9)


def test_multi_visit_gap_and_sequence_bonus(tiny_env):
    env, cat = tiny_env
    env.reset(seed=0)
    un = env.unwrapped
    # target C needs the g filter (a 135 s change in parallel with the slew) and two visits 30 min apart
    assert un.overhead_s(2) == pytest.approx(135.0)
    total = 0.0
    obs, r, *_ , info = env.step(2)
    total += r
    assert info["filter_changes"] == 1 and un.state["visits"][2] == 1  # bright: one exposure is enough
    first_end = info["time_s"] - 8.0
    assert not un.action_masks()[2]  # too soon for the second visit
    while not un.action_masks()[2]:
        obs, r, term, _, info = env.step(un.wait_action)
        total += r
    assert info["time_s"] + un.overhead_s(2) >= first_end + 1800.0 - 1e-6
    obs, r, *_ , info = env.step(2)
    assert un.state["visits"][2] == 2
    # the second visit's progress plus the sequence bonus: 2 * (1/2) + 0.5 * 2
    assert r == pytest.approx((2.0 * 0.5 + 0.5 * 2.0) / un.total_weight)
    assert not un.action_masks()[2]  # complete


def test_time_accounting_and_nothing_outside_visibility():
    env = gym.make(ENV_ID, n_targets=60, catalogue_seed=4)
    obs, info = env.reset(seed=5)
    policy = GreedyScheduler.for_env(env)
    while True:
        obs, r, term, trunc, info = env.step(policy.predict(obs)[0])
        assert not info["invalid_action"]
        if term:
            break
    un = env.unwrapped
    table = un.nights[0].table
    parts = info["exposure_s"] + info["slew_overhead_s"] + info["readout_s"] + info["wait_s"]
    assert parts == pytest.approx(table.length_s, abs=1e-6)
    assert info["time_s"] == pytest.approx(table.length_s, abs=1e-6)
    log = np.array([(e[1], e[3], e[4]) for e in un.log])
    assert len(log) > 20
    starts = np.diff(log[:, 1])
    assert np.all(starts > 0)  # exposures never overlap
    assert np.all(log[1:, 1] >= log[:-1, 2] + 8.0 - 1e-6)  # readout between them
    # astroplan's constraints hold at the start and end of every exposure
    cat = un.catalogue
    obs_ = un.site.observer()
    targets = [FixedTarget(SkyCoord(cat.ra[i] * u.deg, cat.dec[i] * u.deg)) for i in log[:, 0].astype(int)]
    for col in (1, 2):
        times = Time(table.mjd_start + log[:, col] / 86400.0, format="mjd")
        for c in (AltitudeConstraint(min=29.99 * u.deg), AtNightConstraint(max_solar_altitude=-17.99 * u.deg),
                  MoonSeparationConstraint(min=29.9 * u.deg)):
            ok = np.array([c(obs_, [t], times=tt)[0] for t, tt in zip(targets, times)]).ravel()
            assert ok.all(), (c, np.flatnonzero(~ok))


def test_invalid_actions(tiny_env):
    env, cat = tiny_env
    env.reset(seed=0)
    assert env.unwrapped.action_masks()[3]  # waiting is always allowed
    with pytest.raises(ValueError, match=r"out of range; allowed \[0, 3\]"):
        env.step(7)
    with pytest.raises(TypeError, match="integer"):
        env.step(1.5)
    with pytest.raises(TypeError, match="integer"):
        env.step(float("nan"))
    with pytest.raises(ValueError, match="single integer"):
        env.step(np.array([0, 1]))
    env.step(2)
    obs, r, term, trunc, info = env.step(2)  # visit 2 of C is masked (the gap): treated as a wait
    assert info["invalid_action"] and r == 0.0
    strict = gym.make(ENV_ID, catalogue=cat, weather="clear", invalid_action="raise")
    strict.reset(seed=0)
    strict.step(2)
    with pytest.raises(ValueError, match=r"action 2 \(C\) is masked"):
        strict.step(2)
    with pytest.raises(ValueError, match="twilight_deg"):
        gym.make(ENV_ID, twilight_deg=-30)
    with pytest.raises(ValueError, match="date"):
        gym.make(ENV_ID, date="next tuesday")


def test_reset_options_and_multi_night_episodes(tiny_env):
    env, cat = tiny_env
    un = env.unwrapped
    with pytest.raises(ValueError, match="not YYYY-MM-DD"):
        env.reset(options={"date": "soon"})
    env.reset(seed=1, options={"date": "2027-01-10"})
    assert un.nights[0].table.date == "2027-01-10"
    two = gym.make(ENV_ID, n_targets=30, n_nights=2, weather="clear")
    obs, info = two.reset(seed=0)
    policy = GreedyScheduler.for_env(two)
    nights_seen = set()
    while True:
        obs, r, term, _, info = two.step(policy.predict(obs)[0])
        nights_seen.add(info["night"])
        if term:
            break
    assert nights_seen == {0, 1}
    nights = two.unwrapped.nights
    assert nights[1].offset_s == pytest.approx((nights[1].table.mjd_start - nights[0].table.mjd_start) * 86400)
    assert info["time_s"] == pytest.approx(nights[1].offset_s + nights[1].table.length_s)
    # a smaller catalogue in a padded env
    padded = gym.make(ENV_ID, n_targets=30, max_targets=40, weather="clear")
    obs, _ = padded.reset(seed=0, options={"catalogue": cat})
    assert obs["node_mask"].sum() == 3 and obs["nodes"].shape == (40, 16)
    mask = padded.unwrapped.action_masks()
    assert mask.shape == (41,) and mask[40] and not mask[3:40].any()
    with pytest.raises(ValueError, match="max_targets"):
        gym.make(ENV_ID, n_targets=30, max_targets=2)


def test_date_range_draws_nights_from_the_seed():
    env = gym.make(ENV_ID, n_targets=20, date_range_days=30, weather="clear")
    dates = set()
    for seed in range(6):
        env.reset(seed=seed)
        dates.add(env.unwrapped.nights[0].table.date)
    assert len(dates) >= 4 and all("2026-12-15" <= d < "2027-01-14" for d in dates)
    env.reset(seed=2)
    again = env.unwrapped.nights[0].table.date
    env.reset(seed=2)
    assert env.unwrapped.nights[0].table.date == again
