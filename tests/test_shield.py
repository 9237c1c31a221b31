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


# -- the detector's file, the shield's options ---------------------------------------------------------------

def test_registered_features_travel_with_the_file_and_bad_files_are_refused(gaussian_detector, tmp_path):
    from astrogym.surrogates.flows import FlowDensityEstimator
    from astrogym.surrogates.shield import FEATURES

    assert gaussian_detector.features_name == "flat" and FEATURES["lock"] is lock_features
    back = OODDetector.load(gaussian_detector.save(tmp_path / "det.pt", fitted_on="gaussian"))
    assert back.features is FEATURES["flat"] and back.metadata["fitted_on"] == "gaussian"
    custom = OODDetector(lambda o: np.asarray(o, float).ravel()[:3])
    custom.estimator, custom.threshold = gaussian_detector.estimator, gaussian_detector.threshold
    custom.save(tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="pass features= to load it"):
        OODDetector.load(tmp_path / "custom.pt")
    assert OODDetector.load(tmp_path / "custom.pt", features="flat").threshold == gaussian_detector.threshold
    plain = FlowDensityEstimator(features=3).fit(np.random.default_rng(0).normal(size=(200, 3)), epochs=1)
    with pytest.raises(ValueError, match="not a calibrated OOD detector"):
        OODDetector.load(plain.save(tmp_path / "flow.pt"))
    with pytest.raises(ValueError, match="features='nope' is not registered; allowed: flat, lock, ao"):
        OODDetector("nope")
    with pytest.raises(RuntimeError, match="fit the detector before saving"):
        OODDetector().save(tmp_path / "empty.pt")


class _Counts(_Says):
    calls = 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.calls += 1
        return self.name, state


def test_shield_checks_at_its_cadence_and_keeps_the_idle_policy_warm(gaussian_detector):
    learned, fallback = _Counts("learned"), _Counts("fallback")
    shield = ShieldedPolicy(learned, fallback, gaussian_detector, enter_after=2, release_after=2, check_every=3)
    odd = np.full(3, 6.0)
    who = [shield.predict(odd)[0] for _ in range(7)]
    assert who == ["learned"] * 3 + ["fallback"] * 4  # checks at decisions 0 and 3: the second alarm hands over
    assert [(h.step, h.to) for h in shield.log] == [(3, "fallback")]
    assert learned.calls == fallback.calls == 7 and shield.fallback_steps == 4 and shield.steps == 7
    cold = ShieldedPolicy(_Counts("l"), idle := _Counts("f"), gaussian_detector, keep_warm=False)
    cold.predict(np.zeros(3))
    assert idle.calls == 0
    with pytest.raises(ValueError, match="check_every=0 is out of range; allowed >= 1"):
        ShieldedPolicy(learned, fallback, gaussian_detector, check_every=0)


def test_ao_features_see_a_stuck_actuator_and_faster_wind():
    from astrogym.surrogates.shield import ao_features

    rng = np.random.default_rng(0)
    obs = rng.normal(scale=0.1, size=(4, 9, 9)).astype(np.float32)
    base = ao_features(obs)
    assert base.shape == (6,) and np.all(np.isfinite(base))
    stuck = obs.copy()
    stuck[2, 4, 4] = 5.0  # one command at full stroke
    assert ao_features(stuck)[5] > base[5] + 2  # the command map turns peaky
    fast = obs.copy()
    fast[0] = obs[1] + rng.normal(scale=0.5, size=(9, 9))  # the measurement changes faster than it did
    assert ao_features(fast)[1] > base[1] + 2
    with pytest.raises(ValueError, match="history H >= 2"):
        ao_features(np.zeros((2, 9, 9)))


# -- the shipped shields --------------------------------------------------------------------------------------

def _alarm_rates(env_id, detector_file, policy_name, fault_kwargs, every, settle=0, **options):
    """Alarm rates of a shipped detector under a classical controller: before the fault (after ``settle``
    steps of lock acquisition) and from the fault's start to the end of the episode."""
    from astrogym.agents.registry import PACKAGE_ROOT
    from astrogym.experiments.evaluation import scenario_policy
    from astrogym.experiments.scenarios import get_scenario
    from astrogym.experiments.shield import play

    det = OODDetector.load(PACKAGE_ROOT / "agents" / "shipped" / detector_file)
    scenario = get_scenario(env_id, "power-seismic-range" if env_id == LOCK else "servo-lag-noise")
    env = scenario.make_tuning_env(**fault_kwargs)  # the normal scenario with this test's fault added
    policy = scenario_policy(policy_name, scenario, env, options)
    obs, steps, faulted, _ = play(scenario, policy, env, [123], every)
    alarm = det.score(obs) < det.threshold
    start = steps[faulted].min()
    return alarm[(steps >= settle) & (steps < start)].mean(), alarm[steps >= start].mean()


@pytest.mark.parametrize("fault", [
    {"fault": "sensor_glitch", "fault_glitch_rad": 5e-9, "fault_start_s": 3.0, "fault_duration_s": 2.0},
    # the microseism takes a second or two to move the mirror: a burst is seen late (README)
    {"fault": "seismic_burst", "fault_seismic_factor": 30.0, "fault_start_s": 3.0, "fault_duration_s": 2.0}])
def test_shipped_lock_detector_flags_each_lock_fault(fault):
    normal, faulted = _alarm_rates(LOCK, "temporal.shield.pt", "h2", {**fault, "episode_length_s": 8.0}, 8,
                                   settle=256)  # the first second: lock acquisition
    assert faulted > 0.25 and faulted > 5 * normal


def _ao_features_run(seed, **kw):
    from astrogym.agents.adaptive_optics import LeakyIntegrator
    from astrogym.surrogates.shield import ao_features

    env = gym.make(AO, n_subapertures=8, episode_frames=400, **kw).unwrapped
    obs, _ = env.reset(seed=seed)
    controller = LeakyIntegrator(env, gain=0.4)
    feats, faulted = [], []
    for k in range(400):
        if k >= 50:  # after the loop has closed
            feats.append(ao_features(obs))
            faulted.append(env.fault_active)
        obs, *_ = env.step(controller.predict(obs)[0])
    return np.array(feats), np.array(faulted)


@pytest.fixture(scope="module")
def ao_detector():
    """Fitted on a noiseless 8x8 system, where the WFS sees the residual itself (the shipped servo-lag-noise
    detector works on a faint, noise-dominated guide star: see the README for what it detects)."""
    fit = np.concatenate([_ao_features_run(s)[0] for s in range(3)])
    cal = np.concatenate([_ao_features_run(s)[0] for s in range(3, 6)])
    det = OODDetector("flat", transforms=2, hidden=(32, 32)).fit(fit, epochs=40)  # rows are ao_features already
    det.calibrate(cal, 0.02)
    return det


# Not dead subapertures: a dead one reads zero slope, which the reconstructor maps to "no error there", so
# the observation (the reconstructed measurement and the commands) carries no trace of it (README).
@pytest.mark.parametrize("fault", [
    {"fault": "wind_burst", "fault_wind_factor": 3.0}, {"fault": "stuck_actuator", "fault_stuck_actuators": 2}])
def test_ao_detector_flags_wind_bursts_and_stuck_actuators(ao_detector, fault):
    feats, faulted = _ao_features_run(11, fault_start_frame=150, fault_duration_frames=250, **fault)
    alarm = ao_detector.score(feats) < ao_detector.threshold
    assert alarm[faulted].mean() > 0.5 and alarm[~faulted].mean() < 0.1


def test_shipped_shielded_policies_build_from_their_files_and_play():
    from astrogym.agents.registry import PolicyContext, make_policy
    from astrogym.surrogates.shield import ShieldedPolicy

    for env_id, name, kw in [(LOCK, "temporal-shielded", {"episode_length_s": 1.0}),
                             (AO, "cnn-shielded", {"episode_frames": 30})]:
        make = lambda **o: gym.make(env_id, **{**kw, **o})  # noqa: E731
        env = make()
        shield = make_policy(name, PolicyContext(env, make, options={"release_after": 3}))
        assert isinstance(shield, ShieldedPolicy) and shield.release_after == 3
        obs, _ = env.reset(seed=1)
        for k in range(20):
            action, _ = shield.predict(obs, episode_start=np.array([k == 0]))
            assert env.action_space.contains(action)
            obs, *_ = env.step(action)
