"""astroplan baselines replayed through TelescopeScheduling-v0 (agents/scheduling/astroplan.py).

astroplan is slow (minutes for 100 targets), so these tests use an 8-target hand-made catalogue
placed near the evening meridian of the default night (Muztagh-ata, 2026-12-15) and, for the
SequentialScheduler, windows of a few hours.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("astroplan")

import astrogym  # noqa: F401
import astropy.units as u
import gymnasium as gym
from astrogym.agents.scheduling.astroplan import (
    AstroplanScheduler,
    PlannedBlock,
    astroplan_decision_time,
    etc_exposures_per_visit,
    fit_slew_rate,
)
from astrogym.envs.scheduling.catalogue import Catalogue
from astropy.time import Time

ENV_ID = "astrogym/TelescopeScheduling-v0"


def _catalogue() -> Catalogue:
    # Evening sidereal angle on 2026-12-15 at Muztagh-ata is ~358 deg; the Moon (RA ~337, Dec ~-8)
    # sets ~4 h into the night: RA 5-80 deg at Dec 20-60 rise to the meridian during the night, >30 deg
    # from the Moon.
    return Catalogue.from_columns({
        "name": [f"S{i}" for i in range(8)],
        "ra": [5.0, 15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 80.0],
        "dec": [35.0, 50.0, 25.0, 45.0, 60.0, 30.0, 40.0, 20.0],
        "mag": [16.0, 16.5, 17.0, 16.0, 15.5, 17.0, 16.5, 16.0],
        "priority": [9.0, 2.0, 5.0, 1.0, 7.0, 3.0, 4.0, 6.0],
        "snr": [20.0] * 8,
        "filter": ["g", "r", "r", "i", "g", "r", "i", "r"],
        "exposure_s": [180.0, 120.0, 240.0, 150.0, 120.0, 300.0, 200.0, 160.0],
        "n_visits": [2, 1, 1, 1, 2, 1, 1, 1],
        "min_gap_s": [1800.0, 0, 0, 0, 1800.0, 0, 0, 0],
    })


def _make_env(**kwargs):
    return gym.make(ENV_ID, catalogue=_catalogue(), weather="clear", wait_s=60.0, **kwargs)


@pytest.fixture(scope="module")
def env():
    e = _make_env()
    e.reset(seed=0)
    return e


def _constraints(cfg):
    from astroplan import (
        AirmassConstraint,
        AltitudeConstraint,
        AtNightConstraint,
        MoonSeparationConstraint,
    )

    return [AltitudeConstraint(min=cfg.min_altitude_deg * u.deg), AirmassConstraint(max=cfg.max_airmass),
            MoonSeparationConstraint(min=cfg.min_moon_separation_deg * u.deg),
            AtNightConstraint(max_solar_altitude=cfg.twilight_deg * u.deg)]


def _check_plan_constraints(sched: AstroplanScheduler, window_end_s: float | None = None) -> None:
    """Every placed block satisfies the env's constraints at its start and end (astroplan's own check)."""
    from astroplan import FixedTarget, is_observable
    from astropy.coordinates import SkyCoord

    env = sched.env
    cat, table = env.catalogue, env.nights[0].table
    observer = env.site.observer()
    constraints = _constraints(env.config)
    assert sched.plan, "astroplan placed nothing"
    last_end = -np.inf
    for b in sched.plan:
        assert isinstance(b, PlannedBlock)
        assert b.decision_s <= b.start_s < b.end_s
        assert b.decision_s >= last_end - 1.0  # time order, no overlap
        last_end = b.end_s
        assert b.end_s <= (window_end_s if window_end_s is not None else table.length_s) + 1.0
        need = b.n_exposures * (cat.exposure_s[b.target] + env.telescope.readout_s)
        assert b.end_s - b.start_s >= need - 1.0  # readout included: the replay fits
        target = FixedTarget(SkyCoord(cat.ra[b.target] * u.deg, cat.dec[b.target] * u.deg), name=cat.name[b.target])
        times = Time(table.mjd_start + np.array([b.start_s, b.end_s]) / 86400.0, format="mjd", scale="utc")
        ok = is_observable(constraints, observer, [target], times=times)
        assert ok.all(), f"block {b} violates a constraint at its start or end"


def _replay(env, sched, seed=1):
    obs, _ = env.reset(seed=seed)
    done, invalid, info, steps = False, [], None, 0
    episode_start = np.array([True])
    while not done:
        action, state = sched.predict(obs, state=None, episode_start=episode_start, deterministic=True)
        assert state is None and isinstance(action, np.ndarray) and action.shape == ()
        episode_start = np.array([False])
        obs, _, done, truncated, info = env.step(action)
        invalid.append(info["invalid_action"])
        steps += 1
        assert not truncated and steps < 5000
    return info, invalid


# -- input checks -----------------------------------------------------------------------------------------
def test_rejects_wrong_env_and_kind(env):
    with pytest.raises(TypeError, match="TelescopeScheduling"):
        AstroplanScheduler(object())
    with pytest.raises(ValueError, match="kind"):
        AstroplanScheduler(env, kind="greedy")
    with pytest.raises(ValueError, match="time_resolution_s"):
        AstroplanScheduler(env, time_resolution_s=0)
    with pytest.raises(ValueError, match="exposures_per_visit"):
        AstroplanScheduler(env, exposures_per_visit="many")
    with pytest.raises(ValueError, match="visit_gap_margin_s"):
        AstroplanScheduler(env, visit_gap_margin_s=-1.0)
    with pytest.raises(ValueError, match="kind"):
        astroplan_decision_time(env, kind="optimal")


def test_not_reset_env_needs_reset():
    e = _make_env()
    sched = AstroplanScheduler(e)  # plans lazily at the first predict
    assert sched.plan == [] and sched.n_decisions == 0
    with pytest.raises(gym.error.ResetNeeded):
        sched.predict(None)


def test_env_numbers_for_astroplan(env):
    rate = fit_slew_rate(env)
    tel = env.unwrapped.telescope
    assert 0.2 < rate < max(tel.axis1_speed_deg_s, tel.axis2_speed_deg_s)
    n_exp = etc_exposures_per_visit(env)
    assert n_exp.shape == (8,) and n_exp.dtype == np.int64 and np.all(n_exp >= 1)


# -- PriorityScheduler --------------------------------------------------------------------------------------
def test_priority_plan_respects_constraints_and_replays(env):
    sched = AstroplanScheduler(env, kind="priority")
    assert sched.n_decisions == len(sched.plan) > 0 and sched.plan_seconds > 0
    assert sched.n_blocks == int(env.unwrapped.catalogue.n_visits.sum())
    assert sched.n_dropped_blocks == 0
    _check_plan_constraints(sched)
    info, invalid = _replay(env, sched)
    assert not any(invalid)
    assert info["priority_weighted_completion"] > 0 and info["exposures"] > 0
    assert all(o is not None for o in sched.outcomes)
    assert sched.outcomes.count("observed") > 0


def test_new_episode_rewinds_or_replans(env):
    sched = AstroplanScheduler(env, kind="priority")
    plan, seconds = sched.plan, sched.plan_seconds
    info1, _ = _replay(env, sched, seed=3)
    # same night and catalogue (other weather seed): the stored plan is replayed again from the start
    info2, invalid = _replay(env, sched, seed=4)
    assert sched.plan is plan and sched.plan_seconds == seconds and not any(invalid)
    assert info2["priority_weighted_completion"] == pytest.approx(info1["priority_weighted_completion"])
    # a reset without episode_start: detected from the clock going back
    env.reset(seed=5)
    sched.predict(None)
    assert sched.replay.position <= 1
    # another date: astroplan runs again
    env.reset(seed=6, options={"date": "2026-12-20"})
    sched.predict(None)
    assert sched.plan is not plan
    assert all(abs(b.start_s) < env.unwrapped.nights[0].table.length_s for b in sched.plan)
    env.reset(seed=0)


# -- visit rounds (minimum gap between visits) -------------------------------------------------------------
def _multi_visit(cat) -> list[int]:
    return [i for i in range(len(cat)) if cat.n_visits[i] > 1]


@pytest.mark.parametrize("kind,end_s", [("priority", None), ("sequential", 4.0 * 3600.0)])
def test_visit_rounds_keep_min_gap_and_replay(env, kind, end_s):
    env.reset(seed=0)
    cat = env.unwrapped.catalogue
    multi = _multi_visit(cat)
    assert multi and all(cat.min_gap_s[i] > 0 for i in multi)
    sched = AstroplanScheduler(env, kind=kind, end_s=end_s)
    assert sched.visit_rounds and sched.n_rounds == 2 and sched.n_offered == sched.n_blocks == 10
    assert sched.n_decisions == len(sched.plan) == 10  # plan_seconds / n_decisions counts both rounds
    _check_plan_constraints(sched, window_end_s=end_s)
    for i in multi:
        first, second = sorted((b for b in sched.plan if b.target == i), key=lambda b: b.visit)
        assert (first.visit, second.visit) == (0, 1)
        assert second.start_s >= first.end_s + cat.min_gap_s[i] - 1.0
    info, invalid = _replay(env, sched)
    assert not any(invalid)
    assert sched.outcomes.count("observed") == len(sched.plan)
    visits = env.unwrapped.state["visits"]
    assert all(visits[i] == 2 for i in multi)
    assert info["priority_weighted_completion"] == pytest.approx(1.0)


def test_without_visit_rounds_priority_puts_visits_back_to_back(env):
    """The old translation (``visit_rounds=False``): the env masks the later visits and the replay skips them."""
    env.reset(seed=0)
    cat = env.unwrapped.catalogue
    sched = AstroplanScheduler(env, kind="priority", visit_rounds=False)
    assert sched.n_rounds == 1 and sched.n_decisions == 10
    gaps = []
    for i in _multi_visit(cat):
        a, b = sorted((p for p in sched.plan if p.target == i), key=lambda p: p.start_s)
        gaps.append(b.start_s - a.end_s)
    assert min(gaps) < 1800.0
    _, invalid = _replay(env, sched)
    assert not any(invalid) and "skipped:masked" in sched.outcomes


def test_replan_from_now_keeps_gap_after_observed_visit(env):
    obs, _ = env.reset(seed=1)
    u_env = env.unwrapped
    sched = AstroplanScheduler(env, kind="priority")
    target = sched.plan[0].target
    assert u_env.catalogue.n_visits[target] == 2
    episode_start = np.array([True])
    while u_env.state["visits"][target] == 0:  # replay until the first visit of the first block is done
        action, _ = sched.predict(obs, episode_start=episode_start)
        episode_start = np.array([False])
        obs, _, done, _, _ = env.step(action)
        assert not done
    night = u_env.nights[u_env.state["night"]]
    visit_end_s = float(u_env.last_visit_end_s[target] - night.offset_s)
    sched.replan(from_now=True)
    (second,) = [b for b in sched.plan if b.target == target]
    assert second.visit == 1
    assert second.start_s >= visit_end_s + u_env.catalogue.min_gap_s[target] - 1.0
    done, invalid = False, []
    while not done:
        action, _ = sched.predict(obs)
        obs, _, done, _, info = env.step(action)
        invalid.append(info["invalid_action"])
    assert not any(invalid) and u_env.state["visits"][target] == 2


# -- SequentialScheduler --------------------------------------------------------------------------------------
def test_sequential_plan_respects_constraints_and_replays(env):
    env.reset(seed=0)
    end_s = 2.0 * 3600.0
    sched = AstroplanScheduler(env, kind="sequential", end_s=end_s)  # a 2 h window keeps astroplan fast
    assert sched.n_decisions > 0 and sched.n_dropped_blocks == 0
    _check_plan_constraints(sched, window_end_s=end_s)
    # replay: the plan is kept for the episode (same night and catalogue), so predict does not re-plan
    obs, _ = env.reset(seed=2)
    sched.reset()
    done, invalid = False, []
    while not done:
        action, _ = sched.predict(obs)
        obs, _, done, _, info = env.step(action)
        invalid.append(info["invalid_action"])
    assert not any(invalid)
    assert info["priority_weighted_completion"] > 0
    assert sched.outcomes.count("observed") > 0


def test_window_shorter_than_night_pitfall(env):
    """astroplan's ValueError('longer block than slot') in a short window is caught (or prevented)."""
    env.reset(seed=0)
    end_s = 1000.0  # ends inside the third block of the sequence
    unguarded = AstroplanScheduler(env, kind="sequential", guard_window_end=False, end_s=end_s)
    # astroplan raised: the overrunning block was dropped and the partial schedule kept
    assert unguarded.n_dropped_blocks == 1
    assert all(b.end_s <= end_s + 1.0 for b in unguarded.plan)
    guarded = AstroplanScheduler(env, kind="sequential", end_s=end_s)
    assert guarded.n_dropped_blocks == 0 and guarded.n_decisions >= unguarded.n_decisions
    _check_plan_constraints(guarded, window_end_s=end_s)
    with pytest.raises(ValueError, match="end_s"):
        guarded.replan(from_now=False, end_s=0.0)
    with pytest.raises(ValueError, match="end_s"):
        AstroplanScheduler(env, end_s=-1.0)


# -- benchmark helper ---------------------------------------------------------------------------------------
def test_decision_time_helper(env):
    out = astroplan_decision_time(env, kind="priority")
    assert out["kind"] == "priority" and out["n_targets"] == 8
    assert out["n_decisions"] > 0 and out["plan_seconds"] > 0
    assert out["seconds_per_decision"] == pytest.approx(out["plan_seconds"] / out["n_decisions"])
    with pytest.raises(ValueError, match="n_targets"):
        astroplan_decision_time(env, kind="priority", n_targets=99)
