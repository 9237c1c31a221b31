"""Shipped evaluation scenarios: valid, held-out seeds, and each decisive where it claims to be."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml

from astrogym.experiments.registry import env_ids
from astrogym.experiments.scenarios import FIRST_EVAL_SEED, get_scenario, load_scenario_file, scenarios_for


def test_every_env_has_scenarios_with_held_out_seeds():
    for env_id in env_ids():
        found = scenarios_for(env_id)
        assert "default" in found
        for s in found.values():
            lo, hi = s.train_seeds
            assert all(not lo <= e <= hi for e in s.eval_seeds) and s.eval_seeds[0] >= FIRST_EVAL_SEED
            gym.make(env_id, **s.env_kwargs).close()  # the configuration is valid


def test_each_domain_has_a_scenario_where_control_decides():
    assert "power-seismic-range" in scenarios_for("astrogym/InterferometerLock-v0")
    assert "servo-lag-noise" in scenarios_for("astrogym/AdaptiveOpticsSmall-v0")
    assert "oversubscribed" in scenarios_for("astrogym/TelescopeScheduling-v0")


def test_lock_scenario_draws_power_and_seismic_per_episode():
    s = get_scenario("astrogym/InterferometerLock-v0", "power-seismic-range")
    env = gym.make(s.env_id, **s.env_kwargs)
    drawn = [env.reset(seed=k)[1] for k in s.eval_seeds[:10]]
    powers = [d["arm_power_w"] for d in drawn]
    scales = [d["seismic_scale"] for d in drawn]
    assert 250e3 <= min(powers) < max(powers) <= 550e3 and 0.5 <= min(scales) < max(scales) <= 3.0


def test_ao_servo_lag_scenario_has_a_large_prediction_ceiling():
    from astrogym.envs.adaptive_optics import theory

    default = gym.make("astrogym/AdaptiveOpticsSmall-v0").unwrapped.config
    s = get_scenario("astrogym/AdaptiveOpticsSmall-v0", "servo-lag-noise")
    cfg = gym.make(s.env_id, **s.env_kwargs).unwrapped.config
    # temporal error of the integrator: what a predictive controller can win back
    servo, servo_default = (theory.integrator_servo_error_rad2(c, gain=0.5) for c in (cfg, default))
    assert servo > 10 * servo_default
    assert servo > theory.fitting_error_rad2(cfg) + theory.aliasing_error_rad2(cfg)
    assert cfg.guide_star_magnitude >= 12 and cfg.wfs == "diffractive" and cfg.loop_delay_frames == 2


def test_scheduling_oversubscribed_requests_twice_the_night_and_separates_random_from_greedy():
    from astrogym.agents.registry import PolicyContext, make_policy
    from astrogym.experiments.domains.scheduling import ScheduleRecorder
    from astrogym.experiments.evaluation import run_episode

    s = get_scenario("astrogym/TelescopeScheduling-v0", "oversubscribed")
    env = gym.make(s.env_id, **s.env_kwargs)
    env.reset(seed=s.eval_seeds[0])
    u = env.unwrapped
    requested = float(np.sum(u.catalogue.exposure_s * u.catalogue.n_visits))
    assert requested >= 2.0 * u.nights[0].table.length_s
    assert (u.catalogue.n_visits > 1).mean() > 0.5
    windowed = np.isfinite(u.catalogue.window_start)
    night = u.nights[0].table
    assert 0.1 < windowed.mean() < 0.3
    assert np.all(u.catalogue.window_start[windowed] >= night.mjd_start)
    assert np.all(u.catalogue.window_end[windowed] <= night.mjd_end + 1e-9)
    hours = (u.catalogue.window_end - u.catalogue.window_start)[windowed] * 24
    assert hours.min() > 0 and hours.max() <= 4.0 + 1e-9
    ctx = PolicyContext(env, None, s.tuning_seed)
    returns = {name: run_episode(env, make_policy(name, ctx), s.eval_seeds[0], ScheduleRecorder())["return"]
               for name in ("random", "greedy")}
    assert returns["greedy"] > 1.5 * returns["random"]


def test_scenario_file_errors_name_the_field(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"astrogym/InterferometerLock-v0": {"x": {"episodes": 3}}}))
    with pytest.raises(ValueError, match=r"scenario 'x': unknown key\(s\) \['episodes'\]"):
        load_scenario_file(path)
    path.write_text(yaml.safe_dump({"astrogym/InterferometerLock-v0": {"x": {"eval_seeds": [5]}}}))
    with pytest.raises(ValueError, match=r"evaluation seeds \[5\] lie inside the training range"):
        load_scenario_file(path)
    path.write_text(yaml.safe_dump({"astrogym/InterferometerLock-v0": {"x": {"train_seeds": [0, "a"]}}}))
    with pytest.raises(TypeError, match=r"train_seeds\[1\] must be an integer"):
        load_scenario_file(path)


def test_fault_scenarios_score_with_the_fault_but_tune_without_it():
    from astrogym.agents.registry import register_policy, unregister_policy
    from astrogym.experiments.evaluation import evaluate

    scenario = get_scenario("astrogym/InterferometerLock-v0", "power-seismic-range-burst")
    assert scenario.fault["fault"] == "seismic_burst" and "fault" not in scenario.env_kwargs
    seen = {}

    def spy(ctx):
        from astrogym.agents.base import ZeroPolicy

        seen["played"] = ctx.env.unwrapped.config.fault
        seen["tuning"] = ctx.make_env().unwrapped.config.fault
        return ZeroPolicy(ctx.env.observation_space, ctx.env.action_space)

    register_policy("spy", spy, env_ids=scenario.env_id, summary="test only")
    try:
        evaluate(scenario.env_id, scenario, ["spy"], episodes=1, progress=False)
    finally:
        unregister_policy("spy")
    assert seen == {"played": "seismic_burst", "tuning": "none"}
    faults = {s.fault.get("fault") for e in env_ids() for s in scenarios_for(e).values() if s.fault}
    assert faults == {"seismic_burst", "sensor_glitch", "wind_burst", "stuck_actuator", "dead_subapertures"}


def test_scenario_fault_must_be_a_mapping(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"astrogym/InterferometerLock-v0": {"x": {"fault": "seismic_burst"}}}))
    with pytest.raises(TypeError, match="fault must be a mapping"):
        load_scenario_file(path)
