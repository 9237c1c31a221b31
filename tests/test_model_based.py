"""Model-based AO (PO4AO-style) and plant identification for the interferometer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import astrogym  # noqa: F401  (registers the envs)
from astrogym.agents.adaptive_optics.integrator import LeakyIntegrator, run_ao
from astrogym.agents.adaptive_optics.model_based import ModelBasedPolicy, PO4AOSettings, PO4AOTrainer

torch.set_num_threads(1)
# a 9x9-actuator loop at 500 Hz with two frames of delay and fast wind: servo-lag dominated, cheap to step
AO_KW = dict(n_subapertures=8, loop_rate_hz=500.0, loop_delay_frames=2, wind_speeds_mps=[35.0], episode_frames=500)


def make_ao(**kw):
    return gym.make("astrogym/AdaptiveOpticsSmall-v0", **{**AO_KW, **kw})


def test_policy_starts_at_the_integrator_and_round_trips(tmp_path):
    env = make_ao()
    obs, _ = env.reset(seed=0)
    policy = ModelBasedPolicy(env, env.unwrapped.system.controlled, gain=0.4)
    np.testing.assert_allclose(policy.predict(obs)[0], LeakyIntegrator(env, gain=0.4).predict(obs)[0], atol=1e-6)
    with torch.no_grad():
        for p in policy.net.parameters():
            p.add_(0.05)
    path = policy.save(tmp_path / "p.pt")
    back = ModelBasedPolicy.load(path, env)
    np.testing.assert_array_equal(back.predict(obs)[0], policy.predict(obs)[0])
    other = gym.make("astrogym/AdaptiveOpticsSmall-v0", n_subapertures=10)
    with pytest.raises(ValueError, match="actuator grid"):
        ModelBasedPolicy.load(path, other)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable model-based AO policy"):
        ModelBasedPolicy.load(bad, env)
    with pytest.raises(ValueError, match="warmup_frames"):
        PO4AOSettings(warmup_frames=5000, total_frames=1000)


def test_model_based_agent_beats_the_integrator_on_a_short_seeded_run(tmp_path):
    gain = 0.5
    settings = PO4AOSettings(warmup_frames=1000, frames_per_round=500, total_frames=3000, snapshots=(2000,),
                             members=2, model_channels=(16, 16), model_epochs=3, policy_updates=60, horizon=8)
    policy = PO4AOTrainer(make_ao, gain, settings, seed=0, out=tmp_path).train()
    assert (tmp_path / "policy_2000.pt").is_file() and (tmp_path / "dynamics_final.pt").is_file()
    env = make_ao()
    integ = LeakyIntegrator(env, gain=gain)
    ours = [run_ao(policy, env, 400, seed)["residual_rad2"] for seed in (1_000_000, 1_000_001)]
    theirs = [run_ao(integ, env, 400, seed)["residual_rad2"] for seed in (1_000_000, 1_000_001)]
    assert np.mean(ours) < 0.9 * np.mean(theirs), (ours, theirs)


# -- plant identification ------------------------------------------------------------------------------
def test_identified_plant_poles_match_the_truth_on_a_noiseless_record():
    from astrogym.agents.interferometer.identified import identify, record
    from astrogym.envs.interferometer.plant import mode_frequencies_hz, build_discrete_loop, mode_stiffness

    def make_env(**kw):
        return gym.make("astrogym/InterferometerLock-v0", seismic_scale=0.0, sensor_noise_rad=1e-18, **kw)

    cfg = make_env().unwrapped.config.resolved()
    # long segments: Welch's window leaks across the Q ~ 130 optical resonance and biases the stiffness
    # by ~0.2% at 8192 samples (the default, which trades that for variance on noisy records)
    plant = identify(record(make_env, seed=0, seconds=300.0, episode_s=300.0), cfg, nperseg=32768)
    k_true = mode_stiffness(cfg.mode, cfg.suspension, cfg.arm_power_w, None)
    assert plant.stiffness == pytest.approx(k_true, rel=1e-3)
    assert plant.actuator_gain == pytest.approx(1.0, rel=1e-3)
    fs = cfg.sample_rate_hz
    found = mode_frequencies_hz(build_discrete_loop(cfg.suspension, plant.stiffness, 0.0, fs), fs)
    true = mode_frequencies_hz(build_discrete_loop(cfg.suspension, k_true, 0.0, fs), fs)
    np.testing.assert_allclose(found, true, rtol=1e-3)


def test_h2_on_the_identified_plant_keeps_lock_on_the_true_plant():
    from astrogym.agents.interferometer.h2 import H2Controller, closed_loop_figures
    from astrogym.agents.interferometer.identified import identified_h2, identify, record
    from astrogym.agents.interferometer.loop_shaping import LoopShapingController

    def make_env(**kw):
        return gym.make("astrogym/InterferometerLock-v0", **kw)

    env = make_env()
    plant = identify(record(make_env, seed=0, seconds=400.0), env.unwrapped.config)
    assert plant.sensor_noise_rad == pytest.approx(env.unwrapped.config.resolved().sensor_noise_rad, rel=0.05)
    assert 0.5 < plant.seismic_scale < 2.0
    cfg = env.unwrapped.config
    ours = closed_loop_figures(identified_h2(env, plant).controller, cfg)
    truth = closed_loop_figures(H2Controller(env).controller, cfg)
    classical = closed_loop_figures(LoopShapingController(env).controller, cfg)
    assert ours["closed_loop_stable"]
    assert ours["control_rms_10_30hz_nm"] < 3 * truth["control_rms_10_30hz_nm"] < classical["control_rms_10_30hz_nm"]
    assert ours["pitch_rms_below_3hz_rad"] < 1.5 * classical["pitch_rms_below_3hz_rad"]
    # and in the env itself: a held-out episode keeps lock
    policy = identified_h2(env, plant)
    obs, _ = env.reset(seed=1_000_000)
    for _ in range(2560):
        obs, _, terminated, truncated, _ = env.step(policy.predict(obs)[0])
        assert not terminated


TINY = PO4AOSettings(warmup_frames=400, frames_per_round=200, total_frames=800, snapshots=(400, 800), members=2,
                     model_channels=(8,), model_epochs=1, model_batch=32, policy_updates=3, policy_batch=4,
                     policy_channels=(8,), skip_frames=20)


def test_an_interrupted_run_resumes_to_the_same_policy(tmp_path):
    full = PO4AOTrainer(make_ao, 0.5, TINY, seed=3, out=tmp_path / "a").train()
    # the state after the last round's collection is what a run killed before its last fit leaves behind
    assert (tmp_path / "a" / "state.pt").is_file() and (tmp_path / "a" / "policy_400.pt").is_file()
    import shutil

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    resumed = PO4AOTrainer(make_ao, 0.5, TINY, seed=3, out=tmp_path / "b", resume=True).train()
    for p, q in zip(full.net.parameters(), resumed.net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(ValueError, match="seed"):
        PO4AOTrainer(make_ao, 0.5, TINY, seed=4, out=tmp_path / "b", resume=True).train()


def test_astrogym_train_po4ao_writes_a_run_that_evaluate_loads(tmp_path, capsys):
    import yaml

    from astrogym.agents.registry import PolicyContext, make_policy
    from astrogym.experiments.cli import main

    config = tmp_path / "tiny.yml"
    fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(TINY).items() if k != "total_frames"}
    config.write_text(yaml.safe_dump({"astrogym/AdaptiveOpticsSmall-v0": {
        **fields, "env_kwargs": {"n_subapertures": 8, "episode_frames": 200, "psf_every": 0}}}))
    run = tmp_path / "run"
    argv = ["train", "astrogym/AdaptiveOpticsSmall-v0", "--algo", "po4ao", "--scenario", "servo-lag-noise",
            "--config", str(config), "--timesteps", "800", "--seed", "1", "--run-dir", str(run), "--no-progress"]
    assert main(argv) == 0
    status = yaml.safe_load((run / "status.yml").read_text())
    assert status["state"] == "finished" and status["num_timesteps"] == 800
    for name in ("model.pt", "best_model.pt", "dynamics.pt", "log.csv", "checkpoints/policy_800.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    env = gym.make("astrogym/AdaptiveOpticsSmall-v0", n_subapertures=8, episode_frames=20)
    policy = make_policy(str(run), PolicyContext(env, lambda **kw: env))
    assert isinstance(policy, ModelBasedPolicy) and policy.metadata["command"].startswith("astrogym train")
    obs, _ = env.reset(seed=5)
    assert env.action_space.contains(policy.predict(obs)[0])
