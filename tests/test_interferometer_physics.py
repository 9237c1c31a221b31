"""InterferometerLock physics against theory, and its kernels against NumPy references."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import scipy.signal

import astrogym  # noqa: F401
from astrogym.envs.common.linear import sos_step
from astrogym.envs.common.rng import next_u64, normal_pair, reference_next_u64
from astrogym.envs.interferometer import kernels
from astrogym.envs.interferometer.plant import (
    DY_DTHETA_M_PER_RAD,
    SEISMIC_REFERENCE_POINTS,
    build_discrete_loop,
    mode_frequencies_hz,
    plant_tf,
    radiation_stiffness,
    seismic_asd,
    sidles_sigg_frequencies,
    stiffness_for_unstable_pole,
)

FS = 256.0


def _env(**kw):
    return gym.make("astrogym/InterferometerLock-v0", **kw).unwrapped


def _rollout_kernel(env, actions):
    """Run the env's own kernel over ``actions``; returns (pitch, torque) arrays."""
    n = len(actions)
    pitch, torque, reward = np.empty(n), np.empty(n), np.empty(n)
    done = kernels.lock_rollout(*env.kernel_arguments(),
                                np.ascontiguousarray(actions, dtype=np.float64).reshape(n, 1), pitch, torque, reward)
    assert done == n
    return pitch, torque


# -- Sidles-Sigg ----------------------------------------------------------------------------------


@pytest.mark.parametrize("power_kw, hard_hz, soft_hz", [(50, 0.93, 0.58), (200, 1.55, 0.52), (400, 2.10, 0.42)])
def test_sidles_sigg_formula_reproduces_reference_table(power_kw, hard_hz, soft_hz):
    hard, soft = sidles_sigg_frequencies(power_kw * 1e3)
    assert hard == pytest.approx(hard_hz, abs=0.01)
    assert soft == pytest.approx(soft_hz, abs=0.01)


def test_geometric_stiffness_matches_lightsaber_beam_spot_coefficients():
    for mode in ("hard", "soft"):
        k = radiation_stiffness(mode, 1e5)
        lightsaber = -(2 * 1e5 / 299_792_458.0) * DY_DTHETA_M_PER_RAD[mode]
        assert k == pytest.approx(lightsaber, rel=0.01)


@pytest.mark.parametrize("power_kw", [50, 200, 400, 700])
def test_single_pendulum_plant_modes_follow_sidles_sigg(power_kw):
    """The discretised plant's pole frequencies equal the formula's, for both modes."""
    hard, soft = sidles_sigg_frequencies(power_kw * 1e3)
    for mode, expected in (("hard", hard), ("soft", soft)):
        loop = build_discrete_loop("single", radiation_stiffness(mode, power_kw * 1e3), 1.0, FS)
        f = mode_frequencies_hz(loop, FS)
        assert f[0] == pytest.approx(expected, rel=2e-3), (mode, f)


def test_soft_mode_goes_unstable_near_780_kw_for_single_pendulum():
    _, soft_below = sidles_sigg_frequencies(770e3)
    _, soft_above = sidles_sigg_frequencies(790e3)
    assert soft_below > 0 > soft_above
    for power, unstable in ((770e3, False), (790e3, True)):
        loop = build_discrete_loop("single", radiation_stiffness("soft", power), 1.0, FS)
        z = np.linalg.eigvals(loop.ad[: loop.n_plant, : loop.n_plant])
        assert (np.max(np.abs(z)) > 1.0) == unstable


def test_quad_hard_mode_stiffens_and_soft_mode_softens_with_power():
    def highest(mode, p):
        return mode_frequencies_hz(build_discrete_loop("quad", radiation_stiffness(mode, p), 1.0, FS), FS)

    hard = [highest("hard", p)[-1] for p in (200e3, 300e3, 400e3, 500e3)]
    soft = [highest("soft", p)[0] for p in (200e3, 300e3, 400e3, 500e3)]
    assert np.all(np.diff(hard) > 0) and np.all(np.diff(soft) < 0)
    assert hard[2] == pytest.approx(3.05, abs=0.02)  # the 400 kW optical spring


@pytest.mark.parametrize("pole_hz", [0.1, 0.3, 0.8])
def test_unstable_pole_is_placed_where_asked(pole_hz):
    loop = build_discrete_loop("quad", stiffness_for_unstable_pole("quad", pole_hz), 1.0, FS)
    z = np.linalg.eigvals(loop.ad[: loop.n_plant, : loop.n_plant])
    growth_hz = np.log(np.max(np.abs(z))) * FS / (2 * np.pi)
    assert growth_hz == pytest.approx(pole_hz, rel=1e-6)


# -- open-loop frequency response -------------------------------------------------------------------


def test_simulated_open_loop_response_matches_transfer_function():
    """Drive the env with white torque (no seismic, no sensor noise) and estimate P(f) = S_yu / S_uu."""
    env = _env(seismic_scale=0.0, sensor_noise_rad=0.0, episode_length_s=3600.0, pitch_limit_rad=1e-3)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    actions = np.clip(0.3 * rng.standard_normal(400 * int(FS)), -1, 1)
    pitch, torque = _rollout_kernel(env, actions)
    f, s_uu = scipy.signal.welch(torque, fs=FS, nperseg=8192)
    _, s_uy = scipy.signal.csd(torque, pitch, fs=FS, nperseg=8192)
    estimate = s_uy / s_uu
    num, den = plant_tf("quad", radiation_stiffness("hard", 400e3))
    # Away from the Q ~ 140 optical-spring peak (3.05 Hz), where Welch bins are too coarse.
    for f0 in (0.2, 0.7, 1.5, 5.0, 10.0, 30.0):
        k = np.argmin(np.abs(f - f0))
        s = 2j * np.pi * f[k]
        analytic = np.polyval(num, s) / np.polyval(den, s)
        # Torque held over a sample, pitch recorded at its end: ZOH sinc and half a sample of lead.
        analytic *= np.exp(s / (2 * FS)) * np.sinc(f[k] / FS)
        assert abs(estimate[k]) == pytest.approx(abs(analytic), rel=0.05), f0
        assert np.degrees(np.angle(estimate[k] / analytic)) == pytest.approx(0.0, abs=3.0), f0


# -- noise generation ---------------------------------------------------------------------------------


def test_seismic_model_passes_through_reference_points():
    for f, asd in SEISMIC_REFERENCE_POINTS:
        assert seismic_asd(f) == pytest.approx(asd, rel=0.03)


def test_generated_seismic_pitch_matches_target_asd():
    """Uncontrolled pitch ASD = |P(f)| x coupling x seismic ASD, from a 30-minute stream."""
    env = _env(sensor_noise_rad=0.0, episode_length_s=7200.0)
    env.reset(seed=9)
    pitch, _ = _rollout_kernel(env, np.zeros(1800 * int(FS)))
    f, psd = scipy.signal.welch(pitch, fs=FS, nperseg=64 * int(FS))
    num, den = plant_tf("quad", radiation_stiffness("hard", 400e3))
    for f0 in (0.1, 0.2, 0.5, 1.0, 2.0):
        sel = (f > f0 * 0.9) & (f < f0 * 1.1)
        s = 2j * np.pi * f[sel]
        target = np.abs(np.polyval(num, s) / np.polyval(den, s)) * env.config.seismic_coupling * seismic_asd(f[sel])
        ratio = np.sqrt(np.mean(psd[sel]) / np.mean(target**2))
        assert ratio == pytest.approx(1.0, abs=0.2), (f0, ratio)


def test_sensor_noise_is_flat_at_reference_level():
    env = _env(seismic_scale=0.0, episode_length_s=3600.0)
    obs, _ = env.reset(seed=4)
    n = 120 * int(FS)
    readings = np.empty(n)
    truths = np.empty(n)
    action = np.zeros(1)
    for k in range(n):
        obs, _, _, _, info = env.step(action)
        readings[k] = obs[0, -1] * env.config.obs_pitch_scale_rad
        truths[k] = info["pitch_rad"]
    f, psd = scipy.signal.welch(readings - truths, fs=FS, nperseg=1024)
    asd = np.sqrt(psd[(f > 1) & (f < 120)])
    assert np.median(asd) == pytest.approx(3e-14, rel=0.05)  # Lightsaber hard-mode level
    assert asd.max() / asd.min() < 2.0  # flat (Welch scatter only)


def test_episodes_are_not_capped():
    """Noise is generated per sample: a day-long episode has no precomputed buffer to run out of."""
    env = _env(episode_length_s=86400.0)
    env.reset(seed=0)
    assert env.config.episode_steps == 86400 * 256
    pitch, _ = _rollout_kernel(env, np.zeros(200_000))
    assert np.all(np.isfinite(pitch)) and np.std(pitch[-50_000:]) > 0


# -- kernels against references ------------------------------------------------------------------------


def test_xoshiro_matches_reference_algorithm():
    state = np.array([0x0123456789ABCDEF, 42, 7, 2**63 + 5], dtype=np.uint64)
    ref = [int(v) for v in state]
    for _ in range(1000):
        assert int(next_u64(state)) == reference_next_u64(ref)


def test_normal_pair_statistics():
    state = np.array([1, 2, 3, 4], dtype=np.uint64)
    x = np.array([normal_pair(state) for _ in range(200_000)])
    assert abs(x.mean()) < 0.01 and x.std() == pytest.approx(1.0, abs=0.01)
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.01


def test_sos_step_matches_scipy_sosfilt():
    sos = scipy.signal.butter(4, [8, 30], "bandpass", fs=FS, output="sos")
    x = np.random.default_rng(0).standard_normal(500)
    zi = np.zeros((sos.shape[0], 2))
    y = np.array([sos_step(sos, zi, v) for v in x])
    np.testing.assert_allclose(y, scipy.signal.sosfilt(sos, x), rtol=1e-12, atol=1e-15)


def _numpy_reference_step(state, action, w, n):
    """The loop in plain NumPy: one sample of plant, reward filters, scores and observation."""
    env, x, zis, ema, hist = state
    cfg = env.config
    torque = float(action) * cfg.torque_limit_nm
    loop, p = env.discrete_loop, env.kernel_arguments().p
    x[:] = loop.ad @ x + loop.bd @ np.array([torque, w * p[kernels.P_SEISMIC_SCALE]])
    pitch = float(loop.c @ x)
    signals = []
    for sos, zi, v in zip(env.reward_filter_sections, zis, (pitch, torque, torque)):
        y, zi[:] = scipy.signal.sosfilt(sos, [v], zi=zi)
        signals.append(y[0])
    tau = np.array([cfg.reward_pitch_time_constant_s] + [cfg.reward_control_time_constant_s] * 2)
    alpha = 1 - np.exp(-1 / (tau * cfg.sample_rate_hz))
    ema[:] = ema + alpha * (np.square(signals) - ema)
    specs = np.array([cfg.reward_pitch_spec_rad, cfg.reward_band_spec_nm, cfg.reward_high_spec_nm])
    sharpness = np.array([cfg.reward_pitch_sharpness] + [cfg.reward_control_sharpness] * 2)
    scores = 1 / (1 + (np.sqrt(ema) / specs) ** sharpness)
    terminated = abs(pitch) > cfg.pitch_limit_rad
    reading = np.clip((pitch + cfg.sensor_noise_rad * np.sqrt(cfg.sample_rate_hz / 2) * n) / cfg.obs_pitch_scale_rad,
                      -cfg.pitch_limit_rad / cfg.obs_pitch_scale_rad, cfg.pitch_limit_rad / cfg.obs_pitch_scale_rad)
    hist[:, :-1] = hist[:, 1:]
    hist[:, -1] = reading, action
    return (0.0 if terminated else float(np.prod(scores))), pitch, scores, terminated


@pytest.mark.parametrize("kw", [{}, {"mode": "soft", "unstable_pole_hz": 0.2, "seismic_scale": 3.0}])
def test_kernel_equals_numpy_reference_step_by_step(kw):
    env = _env(**kw)
    env.reset(seed=21)
    args = env.kernel_arguments()
    ref_state = (env, args.x.copy(), [z.copy() for z in (args.zi_lp, args.zi_bp, args.zi_hp)], args.ema.copy(),
                 args.hist.astype(np.float64))
    rng_copy = args.rng.copy()
    actions = np.random.default_rng(1).uniform(-0.2, 0.2, 500).astype(np.float32).astype(np.float64)
    for a in actions:
        w, n = normal_pair(rng_copy)  # the same draws the kernel makes
        r_ref, pitch_ref, scores_ref, term_ref = _numpy_reference_step(ref_state, a, w, n)
        obs, r, term, _, info = env.step(np.array([a]))
        assert pitch_ref == pytest.approx(info["pitch_rad"], rel=1e-9, abs=1e-22)
        assert r == pytest.approx(r_ref, rel=1e-9, abs=1e-12)
        np.testing.assert_allclose([info["score_pitch"], info["score_band"], info["score_high"]], scores_ref,
                                   rtol=1e-9)
        np.testing.assert_allclose(obs, ref_state[4].astype(np.float32), rtol=1e-6, atol=1e-7)
        assert term == term_ref
        if term:
            break
