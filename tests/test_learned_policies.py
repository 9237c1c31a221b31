"""The learned policy families for AO and the interferometer, and residual control over a baseline.

Structure is tested, not skill (skill is measured by ``astrogym evaluate`` on held-out seeds):
the convolutional AO actor is translation equivariant and grid-size independent, the temporal
encoder is causal with the receptive field it claims, a residual correction of zero reproduces
its base controller bit for bit, and residual checkpoints load back as the policy they trained.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO

import astrogym  # noqa: F401
from astrogym.agents.adaptive_optics.cnn import ConvActorCriticPolicy, ConvFeaturesExtractor
from astrogym.agents.checkpoints import TrainedPolicy, save_model_atomic
from astrogym.agents.interferometer.temporal import DilatedCausalConvExtractor
from astrogym.agents.registry import PolicyContext, make_policy
from astrogym.agents.residual import RESIDUAL_SUFFIX, ResidualActionWrapper, ResidualPolicy, ResidualSpec
from astrogym.experiments.cli import main

AO = "astrogym/AdaptiveOpticsSmall-v0"
LOCK = "astrogym/InterferometerLock-v0"


def _ao_policy(shape=(8, 21, 21)) -> ConvActorCriticPolicy:
    obs = gym.spaces.Box(-100, 100, shape, np.float32)
    act = gym.spaces.Box(-1, 1, shape[1:], np.float32)
    return ConvActorCriticPolicy(obs, act, lambda _: 3e-4, channels=(8, 8))


def _randomise(policy: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))


# -- the convolutional AO policy -------------------------------------------------------------------------------
def test_cnn_actor_starts_at_zero_correction():
    policy = _ao_policy()
    obs = torch.randn(3, 8, 21, 21)
    with torch.no_grad():
        actions, _, _ = policy(obs, deterministic=True)
    assert actions.shape == (3, 21, 21) and torch.count_nonzero(actions) == 0


def test_cnn_actor_is_translation_equivariant():
    policy = _ao_policy()
    _randomise(policy)
    obs = torch.zeros(1, 8, 21, 21)
    obs[0, :, 5:12, 6:13] = torch.randn(8, 7, 7)  # a patch well inside the grid
    shifted = torch.roll(obs, shifts=(3, 2), dims=(2, 3))
    with torch.no_grad():
        a = policy.mlp_extractor.forward_actor(obs).reshape(21, 21)
        b = policy.mlp_extractor.forward_actor(shifted).reshape(21, 21)
    # away from the zero-padded border (3 layers of 3x3: 3 actuators) the command moves with the wavefront
    assert torch.allclose(a[3:15, 3:16], b[6:18, 5:18], atol=1e-5)


def test_cnn_weights_run_on_both_presets():
    small, large = _ao_policy((8, 21, 21)), _ao_policy((8, 41, 41))
    _randomise(small)
    large.load_state_dict(small.state_dict())  # same parameters, any grid
    with torch.no_grad():
        actions, values, _ = large(torch.randn(2, 8, 41, 41), deterministic=True)
    assert actions.shape == (2, 41, 41) and values.shape == (2, 1)
    assert sum(p.numel() for p in small.parameters()) < 10_000  # no dense head


def test_cnn_rejects_bad_spaces_and_options():
    obs = gym.spaces.Box(-1, 1, (8, 21, 21), np.float32)
    with pytest.raises(ValueError, match="action space"):
        ConvActorCriticPolicy(obs, gym.spaces.Box(-1, 1, (20, 20), np.float32), lambda _: 1e-3)
    with pytest.raises(ValueError, match="kernel_size"):
        ConvActorCriticPolicy(obs, gym.spaces.Box(-1, 1, (21, 21), np.float32), lambda _: 1e-3, kernel_size=2)
    with pytest.raises(ValueError, match="activation"):
        ConvActorCriticPolicy(obs, gym.spaces.Box(-1, 1, (21, 21), np.float32), lambda _: 1e-3, activation="x")
    with pytest.raises(ValueError, match="channels, H, W"):
        ConvFeaturesExtractor(gym.spaces.Box(-1, 1, (4,), np.float32))


def test_cnn_features_extractor_serves_dense_heads():
    from stable_baselines3 import TD3

    env = gym.make(AO, episode_frames=50)
    model = TD3("MlpPolicy", env, learning_starts=10, buffer_size=100, seed=0,
                policy_kwargs={"features_extractor_class": ConvFeaturesExtractor, "normalize_images": False,
                               "features_extractor_kwargs": {"channels": [4], "features_dim": 16}, "net_arch": [16]})
    model.learn(20)
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert action.shape == (21, 21)


# -- the temporal lock encoder -----------------------------------------------------------------------------
def test_temporal_encoder_is_causal_with_its_receptive_field():
    space = gym.spaces.Box(-10, 10, (2, 64), np.float32)
    enc = DilatedCausalConvExtractor(space, channels=8, layers=3)
    _randomise(enc, seed=1)
    assert enc.receptive_field == 8
    x = torch.randn(1, 2, 64)
    y = x.clone()
    y[:, :, 40:] += torch.randn(1, 2, 24)  # change the future of step 39
    with torch.no_grad():
        hx, hy = enc.sequence(x), enc.sequence(y)
        assert torch.equal(hx[:, :, :40], hy[:, :, :40])  # nothing before t=40 sees it
        z = x.clone()
        z[:, :, :64 - enc.receptive_field] = 0.0  # beyond the receptive field of the newest step
        assert torch.allclose(enc(x), enc(z), atol=1e-6)
        assert not torch.allclose(enc(x), enc(y))


@pytest.mark.parametrize("layers,length", [(6, 64), (3, 64), (7, 64), (2, 5)])
def test_temporal_encoder_fast_path_equals_the_dilated_sequence(layers, length):
    enc = DilatedCausalConvExtractor(gym.spaces.Box(-10, 10, (2, length), np.float32), channels=8, layers=layers)
    _randomise(enc, seed=2)
    x = torch.randn(5, 2, length)
    with torch.no_grad():
        assert torch.allclose(enc(x), enc.sequence(x)[:, :, -1], atol=1e-5)


def test_temporal_encoder_rejects_bad_options():
    space = gym.spaces.Box(-10, 10, (2, 64), np.float32)
    with pytest.raises(ValueError, match="layers"):
        DilatedCausalConvExtractor(space, layers=0)
    with pytest.raises(ValueError, match="channels, time"):
        DilatedCausalConvExtractor(gym.spaces.Box(-1, 1, (4,), np.float32))


# -- residual control -----------------------------------------------------------------------------------------
def _rollout(env, act, seed: int, steps: int):
    obs, _ = env.reset(seed=seed)
    out = []
    for t in range(steps):
        obs, reward, *_ = env.step(act(obs, t))
        out.append((obs.copy(), reward))
    return out


def test_zero_correction_reproduces_the_base_controller():
    env = gym.make(LOCK, episode_length_s=1.0)
    base = make_policy("baseline", PolicyContext(env, None))
    plain = _rollout(env, lambda o, t: base.predict(o, episode_start=np.array([t == 0]))[0], 3, 200)
    wrapped = ResidualActionWrapper(gym.make(LOCK, episode_length_s=1.0), ResidualSpec("baseline", 0.01))
    residual = _rollout(wrapped, lambda o, t: np.zeros(1, np.float32), 3, 200)
    for (o1, r1), (o2, r2) in zip(plain, residual):
        assert np.array_equal(o1, o2) and r1 == r2


def test_band_gain_residual_scales_the_base_commands_band():
    import scipy.signal

    spec = ResidualSpec("baseline", 1.0, band_hz=(6.0, 50.0))
    base_env = gym.make(LOCK, episode_length_s=1.0)
    base = make_policy("baseline", PolicyContext(base_env, None))
    obs, _ = base_env.reset(seed=5)
    commands = []
    for t in range(120):  # the baseline's own commands, open to compare
        a, _ = base.predict(obs, episode_start=np.array([t == 0]))
        commands.append(float(a[0]))
        obs, *_ = base_env.step(a)
    fs = base_env.unwrapped.config.sample_rate_hz
    band = scipy.signal.sosfilt(scipy.signal.butter(2, (6.0, 50.0), "bandpass", fs=fs, output="sos"), commands)
    env = ResidualActionWrapper(gym.make(LOCK, episode_length_s=1.0), spec)
    env.reset(seed=5)
    # a gain of zero is the baseline; the first step's band-pass output is the filter's b0 * command
    for t in range(3):
        _, _, _, _, info = env.step(np.zeros(1, np.float32))
        assert info["control_nm"] == pytest.approx(commands[t] * base_env.unwrapped.config.torque_limit_nm)
    assert abs(band[1]) > 0  # the band carries part of the command
    with pytest.raises(ValueError, match="Nyquist"):
        ResidualActionWrapper(gym.make(LOCK), ResidualSpec("baseline", 1.0, band_hz=(6.0, 500.0)))
    with pytest.raises(ValueError, match="band_hz"):
        ResidualSpec.from_dict({"policy": "baseline", "scale": 1.0, "band_hz": [30, 10]})


def test_band_gain_of_minus_one_removes_the_band():
    from astrogym.agents.residual import ResidualMixer

    env = gym.make(LOCK)
    mixer = ResidualMixer(ResidualSpec("baseline", 1.0, band_hz=(20.0, 45.0)), env, 1)  # centre ~30 Hz
    fs = env.unwrapped.config.sample_rate_hz
    t = np.arange(2048) / fs
    low, high = 0.3 * np.sin(2 * np.pi * 1.0 * t), 0.01 * np.sin(2 * np.pi * 30.0 * t)
    out = np.array([mixer(np.array([x], np.float32), np.array([-1.0]), np.array([k == 0]))[0]
                    for k, x in enumerate(low + high)])
    freqs = np.fft.rfftfreq(1024, 1 / fs)
    line = lambda x, f: np.abs(np.fft.rfft(x[1024:] * np.hanning(1024)))[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert line(out, 30.0) < 0.1 * line(high, 30.0)  # 1 - BP vanishes at the band's centre: cut by > 90%
    assert line(out, 1.0) == pytest.approx(line(low, 1.0), rel=0.05)  # the loop's band is untouched


def test_residual_wrapper_checks_its_correction_and_passes_check_env():
    env = ResidualActionWrapper(gym.make(AO, episode_frames=20), {"policy": "integrator", "scale": 0.2,
                                                                 "options": {"gain": 0.4}})
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(np.full((21, 21), 1.5, np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(np.full((21, 21), np.nan, np.float32))


@pytest.mark.parametrize("bad,match", [({"policy": "integrator", "scale": 0.0}, "scale"),
                                       ({"policy": "integrator", "scale": 3}, "scale"),
                                       ({"policy": "", "scale": 0.1}, "policy"),
                                       ({"policy": "integrator", "scale": 0.1, "gain": 1}, "unknown key")])
def test_residual_spec_errors_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        ResidualSpec.from_dict(bad)


def test_residual_over_an_unknown_policy_names_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: .*integrator"):
        ResidualActionWrapper(gym.make(AO, episode_frames=20), {"policy": "nope", "scale": 0.1})


def test_residual_checkpoint_loads_as_base_plus_correction(tmp_path):
    spec = ResidualSpec("integrator", 0.25, {"gain": 0.4, "leak": 0.99})
    env = ResidualActionWrapper(gym.make(AO, episode_frames=20), spec)
    model = PPO(ConvActorCriticPolicy, env, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                policy_kwargs={"channels": [4]})
    path = save_model_atomic(model, tmp_path / "cnn.zip", residual=spec.to_dict())
    assert yaml.safe_load((tmp_path / f"cnn{RESIDUAL_SUFFIX}").read_text())["options"]["gain"] == 0.4
    raw = gym.make(AO, episode_frames=20)
    policy = TrainedPolicy.load(path, env=raw)
    assert isinstance(policy, ResidualPolicy)
    obs, _ = raw.reset(seed=4)
    integrator = make_policy("integrator", PolicyContext(raw, None, options={"gain": 0.4}))
    # an untrained correction is exactly zero: the checkpoint acts as its base controller
    assert np.array_equal(policy.predict(obs)[0], integrator.predict(obs)[0])
    (tmp_path / f"cnn{RESIDUAL_SUFFIX}").write_text("policy: [unclosed")
    with pytest.raises(ValueError, match="residual spec"):
        TrainedPolicy.load(path, env=raw)


def test_train_with_a_residual_then_evaluate(tmp_path, capsys):
    run = tmp_path / "lock"
    argv = ["train", LOCK, "--timesteps", "256", "--n-envs", "2", "--run-dir", str(run), "--eval-freq", "256",
            "--eval-episodes", "1", "--no-progress", "--hp", "residual={policy: baseline, scale: 0.001}",
            "--hp", "vec_env=dummy", "--hp", "n_steps=128", "--hp", "batch_size=64", "--hp", "n_epochs=1",
            "--hp", "env_kwargs={episode_length_s: 2.0}",
            "--hp", "policy_kwargs={features_extractor_class: "
                    "astrogym.agents.interferometer.temporal:DilatedCausalConvExtractor, net_arch: [8]}"]
    assert main(argv) == 0
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["hyperparameters"]["residual"]["policy"] == "baseline"
    assert (run / f"model{RESIDUAL_SUFFIX}").is_file() and (run / f"best_model{RESIDUAL_SUFFIX}").is_file()
    capsys.readouterr()
    assert main(["evaluate", LOCK, "--policy", "baseline", "--policy", str(run), "--episodes", "1",
                 "--out", str(tmp_path / "results")]) == 0
    assert "lock" in capsys.readouterr().out


def test_vec_env_choice_is_validated(tmp_path):
    from astrogym.agents.algorithms import get_algorithm
    from astrogym.experiments import hyperparams

    with pytest.raises(ValueError, match="vec_env.*allowed subproc, dummy"):
        hyperparams.resolve(LOCK, get_algorithm("ppo"), overrides=["vec_env=threads"])
