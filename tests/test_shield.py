"""The OOD shield (calibration, hysteresis, hand-over log) and the interferometer's fault injection."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import astrogym  # noqa: F401
from astrogym.surrogates.shield import OODDetector, ShieldedPolicy, lock_features

torch.set_num_threads(1)
LOCK = "astrogym/InterferometerLock-v0"


@pytest.fixture(scope="module")
def gaussian_detector():
    rng = np.random.default_rng(0)
    det = OODDetector(transforms=2, hidden=(32, 32)).fit(rng.normal(size=(2000, 3)), epochs=25)
    det.calibrate(rng.normal(size=(4000, 3)), false_alarm_rate=0.05)
    return det


def test_calibrated_false_alarm_rate_holds_on_fresh_normal_data(gaussian_detector):
    fresh = np.random.default_rng(1).normal(size=(20000, 3))
    rate = np.mean(gaussian_detector.score(fresh) < gaussian_detector.threshold)
    assert rate == pytest.approx(0.05, abs=0.02)  # within +-2 points of the chosen rate
    far = np.random.default_rng(2).normal(size=(500, 3)) + 4.0
    assert np.mean(gaussian_detector.score(far) < gaussian_detector.threshold) > 0.95


def test_calibration_needs_enough_held_out_data(gaussian_detector):
    with pytest.raises(ValueError, match="needs at least 1000 held-out observations"):
        gaussian_detector.calibrate(np.zeros((50, 3)), false_alarm_rate=0.01)
    with pytest.raises(ValueError, match=r"false_alarm_rate=0.9 is out of range; allowed \(0, 0.5\]"):
        gaussian_detector.calibrate(np.zeros((50, 3)), false_alarm_rate=0.9)


class _Says:
    def __init__(self, name):
        self.name = name

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.name, state


def test_hand_over_has_hysteresis_and_is_logged(gaussian_detector):
    shield = ShieldedPolicy(_Says("learned"), _Says("fallback"), gaussian_detector, enter_after=2, release_after=3)
    normal, odd = np.zeros(3), np.full(3, 6.0)
    sequence = [normal, odd, normal, odd, odd, normal, normal, odd, normal, normal, normal, normal]
    who = [shield.predict(o)[0] for o in sequence]
    assert who == ["learned", "learned", "learned", "learned", "fallback", "fallback", "fallback", "fallback",
                   "fallback", "fallback", "learned", "learned"]
    assert [(h.step, h.to) for h in shield.log] == [(4, "fallback"), (10, "learned")]
    shield.predict(normal, episode_start=np.array([True]))
    assert not shield.shielded and len(shield.log) == 2


def test_save_load_keeps_the_threshold(gaussian_detector, tmp_path):
    back = OODDetector.load(gaussian_detector.save(tmp_path / "det.pt"))
    x = np.random.default_rng(3).normal(size=(20, 3))
    np.testing.assert_array_equal(back.score(x), gaussian_detector.score(x))
    assert back.threshold == gaussian_detector.threshold and back.false_alarm_rate == 0.05


def _readings(**kw):
    env = gym.make(LOCK, episode_length_s=3.0, **kw).unwrapped
    obs, _ = env.reset(seed=4)
    out = []
    for _ in range(700):
        obs, *_ = env.step(np.zeros(1))
        out.append(obs[0, -1])
    return np.array(out)


def test_fault_injection_is_bit_identical_when_off_and_acts_only_in_its_window():
    plain = _readings()
    np.testing.assert_array_equal(plain, _readings(fault="sensor_glitch", fault_start_s=100.0))
    glitch = _readings(fault="sensor_glitch", fault_start_s=1.0, fault_duration_s=0.5, fault_glitch_rad=1e-9)
    start, end = 256, 384  # steps at 256 Hz
    np.testing.assert_array_equal(glitch[:start], plain[:start])
    np.testing.assert_allclose(glitch[start:end] - plain[start:end], 1.0, atol=1e-5)  # 1e-9 rad / 1e-9 obs scale
    np.testing.assert_array_equal(glitch[end:], plain[end:])  # open loop: the reading returns exactly
    burst = _readings(fault="seismic_burst", fault_start_s=1.0, fault_duration_s=0.5, fault_seismic_factor=100.0)
    np.testing.assert_array_equal(burst[:start + 1], plain[:start + 1])
    assert np.std(burst[end:] - plain[end:]) > 0


def test_lock_features_see_a_compensated_sensor_offset():
    h = np.zeros((2, 64), dtype=np.float32)
    h[1] = 0.3  # constant torque holding an offset, pitch reading back at zero
    assert lock_features(h)[5] == pytest.approx(0.3) and lock_features(np.zeros((2, 64)))[5] == 0.0


AO = "astrogym/AdaptiveOpticsSmall-v0"


def _ao_run(frames=40, **kw):
    from astrogym.agents.adaptive_optics import LeakyIntegrator

    env = gym.make(AO, n_subapertures=8, **kw).unwrapped
    obs, _ = env.reset(seed=2)
    controller = LeakyIntegrator(env, gain=0.4)
    out = []
    for _ in range(frames):
        obs, reward, *_ = env.step(controller.predict(obs)[0])
        out.append((obs.copy(), reward))
    return out


@pytest.mark.parametrize("fault, extra", [("dead_subapertures", {"fault_dead_fraction": 0.3}),
                                          ("stuck_actuator", {"fault_stuck_actuators": 2}),
                                          ("wind_burst", {"fault_wind_factor": 10.0})])
def test_ao_faults_are_off_by_default_and_act_only_from_their_start(fault, extra):
    plain = _ao_run()
    late = _ao_run(fault=fault, fault_start_frame=1000, **extra)  # configured but never reached: identical
    for (o1, r1), (o2, r2) in zip(plain, late):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    faulted = _ao_run(fault=fault, fault_start_frame=20, fault_duration_frames=20, **extra)
    for (o1, r1), (o2, r2) in zip(plain[:19], faulted[:19]):
        np.testing.assert_array_equal(o1, o2)
    assert np.mean([r for _, r in faulted[20:]]) < np.mean([r for _, r in plain[20:]])  # the loop is worse
