"""The classical loop-shaping baseline: margins, closed-loop behaviour against theory, interface."""

from __future__ import annotations

import control
import gymnasium as gym
import numpy as np
import pytest

import astrogym  # noqa: F401
from astrogym.agents import H2Controller, LoopShapingController, ZeroPolicy
from astrogym.envs.interferometer import metrics
from astrogym.envs.interferometer.config import InterferometerConfig
from astrogym.experiments.evaluate import evaluate_lock, run_lock

ARM_POWERS = [300e3, 350e3, 400e3, 450e3, 500e3]


def test_hard_mode_baseline_is_stable_with_margins_over_arm_power_range():
    rows = LoopShapingController(InterferometerConfig()).margins(ARM_POWERS)
    for row in rows:
        assert row["closed_loop_stable"], row
        assert row["gain_margin"] > 2.0, row  # > 6 dB
        assert row["phase_margin_deg"] > 30.0, row
        assert row["stability_margin"] > 0.5, row
        assert 3.0 < row["ugf_hz"] < 5.0, row


def test_soft_mode_baseline_stabilises_unstable_plant():
    for pole in (0.1, 0.2, 0.3):
        cfg = InterferometerConfig(mode="soft", unstable_pole_hz=pole)
        ctl = LoopShapingController(cfg)
        loop = ctl.loop_gain()
        open_poles = control.ss(loop).poles()
        assert np.any(np.abs(open_poles) > 1.0)  # the plant really is unstable
        (row,) = ctl.margins([cfg.arm_power_w], unstable_pole_hz=pole)
        assert row["closed_loop_stable"], row


def test_margins_detect_an_unstable_design():
    """The margin machinery is not a rubber stamp: ten times the gain destabilises the hard loop."""
    ctl = LoopShapingController(InterferometerConfig())
    ctl.controller = ctl.controller * 10.0
    assert not ctl.margins([400e3])[0]["closed_loop_stable"]


def test_in_band_control_noise_matches_closed_loop_prediction():
    """In 10-30 Hz the control signal is sensor noise shaped by C / (1 + L): check the simulation against it."""
    result = evaluate_lock({"baseline": LoopShapingController}, seconds=120.0, seed=3, progress=False)
    run = result["runs"]["baseline"]
    cfg = result["config"]
    ctl = LoopShapingController(cfg)
    f, asd_u = metrics.welch_asd(run.control_nm, cfg.sample_rate_hz)
    z = np.exp(2j * np.pi * f / cfg.sample_rate_hz)
    c_resp = ctl.controller(z)
    l_resp = ctl.loop_gain()(z)
    predicted = np.abs(c_resp / (1 + l_resp)) * cfg.sensor_noise_rad
    band = (f >= 10) & (f <= 30)
    ratio = metrics.band_rms(f[band], asd_u[band], 10, 30) / metrics.band_rms(f[band], predicted[band], 10, 30)
    assert ratio == pytest.approx(1.0, abs=0.1)


def test_baseline_suppresses_low_frequency_motion_and_zero_policy_does_not():
    result = evaluate_lock({"baseline": LoopShapingController,
                            "zero": lambda env: ZeroPolicy(env.observation_space, env.action_space)},
                           seconds=120.0, seed=1, progress=False)
    base, zero = (next(r for r in result["rows"] if r["policy"] == n) for n in ("baseline", "zero"))
    assert not base["terminated"] and not zero["terminated"]
    assert zero["pitch_rms_below_3hz_rad"] / base["pitch_rms_below_3hz_rad"] > 4.0
    assert zero["control_rms_10_30hz_nm"] == 0.0
    # The reward ranks the classical loop far above doing nothing (alignment is a hard requirement).
    assert base["mean_reward"] > 10 * zero["mean_reward"]
    assert 0.01 < base["actuator_rms_fraction"] < 0.5
    assert "| baseline |" in result["table"]


@pytest.mark.parametrize("controller_class", [LoopShapingController, H2Controller], ids=["loop_shaping", "h2"])
def test_predict_interface_single_and_batched(controller_class):
    """Both linear controllers share this batch handling (astrogym.agents.interferometer.linear)."""
    env = gym.make("astrogym/InterferometerLock-v0")
    ctl = controller_class(env)
    obs, _ = env.reset(seed=0)
    action, state = ctl.predict(obs)
    assert action.shape == (1,) and action.dtype == np.float32 and state is None
    assert env.action_space.contains(action)
    batch = np.stack([obs, obs, obs])
    ctl.reset()
    actions, _ = ctl.predict(batch, episode_start=np.array([True, True, True]))
    assert actions.shape == (3, 1)
    np.testing.assert_array_equal(actions[0], actions[1])
    # episode_start clears that env's filter state only
    ctl.predict(batch)
    a_cont, _ = ctl.predict(batch, episode_start=np.array([False, True, False]))
    ctl.reset()
    a_fresh, _ = ctl.predict(batch)
    np.testing.assert_array_equal(a_cont[1], a_fresh[1])
    assert not np.array_equal(a_cont[0], a_fresh[0])
    with pytest.raises(ValueError, match="observation must have shape"):
        ctl.predict(np.zeros(5))


def test_controller_rejects_wrong_config_type():
    with pytest.raises(TypeError, match="InterferometerConfig"):
        LoopShapingController({"mode": "hard"})


def test_run_lock_with_domain_randomisation_stays_locked():
    env = gym.make("astrogym/InterferometerLock-v0", arm_power_range_w=(300e3, 500e3),
                   seismic_scale_range=(0.5, 2.0), episode_length_s=20.0)
    ctl = LoopShapingController(env)
    for seed in range(3):
        run = run_lock(ctl, env, 20.0, seed)
        assert not run.terminated and len(run.pitch_rad) == 20 * 256


@pytest.mark.parametrize("kw", [{"mode": "soft"}, {"mode": "soft", "unstable_pole_hz": 0.3}])
def test_soft_mode_baseline_holds_lock_and_outscores_open_loop(kw):
    result = evaluate_lock({"baseline": LoopShapingController,
                            "zero": lambda env: ZeroPolicy(env.observation_space, env.action_space)},
                           seconds=60.0, seed=2, progress=False, **kw)
    base, zero = (next(r for r in result["rows"] if r["policy"] == n) for n in ("baseline", "zero"))
    assert not base["terminated"]
    assert base["episode_return"] > 3 * zero["episode_return"]
    if "unstable_pole_hz" in kw:
        assert zero["terminated"]  # the open loop runs away; the baseline holds it
