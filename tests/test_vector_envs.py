"""Native vector envs: per copy bit-identical to single envs (SyncVectorEnv), autoreset modes, errors, SB3 adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import astrogym  # noqa: F401
from astrogym.envs import ENV_SPECS

# short episodes so that every run crosses several autoresets; each case exercises other code paths
CASES = {
    "lock": ("astrogym/InterferometerLock-v0", {"episode_length_s": 0.3, "arm_power_range_w": (250e3, 550e3)}),
    "lock-fault": ("astrogym/InterferometerLock-v0", {"episode_length_s": 0.4, "fault": "seismic_burst",
                                                      "fault_start_s": 0.1, "fault_duration_s": 0.1}),
    "ao": ("astrogym/AdaptiveOpticsSmall-v0", {"episode_frames": 12}),
    "ao-noisy-flat-2-layers": ("astrogym/AdaptiveOpticsSmall-v0", {
        "episode_frames": 10, "guide_star_magnitude": 10.0, "action_layout": "flat", "action_penalty": 0.1,
        "loop_delay_frames": 2, "layer_weights": (0.6, 0.4), "wind_speeds_mps": (20.0, 35.0),
        "wind_directions_deg": (0.0, 30.0)}),
    "ao-diffractive-modal": ("astrogym/AdaptiveOpticsSmall-v0", {
        "episode_frames": 8, "wfs": "diffractive", "guide_star_magnitude": 11.0, "action_layout": "modal",
        "n_modes": 20, "action_penalty": 0.05}),
    "scheduling-2-nights": ("astrogym/TelescopeScheduling-v0", {"n_nights": 2, "n_targets": 30, "max_targets": 40,
                                                                "wait_s": 1800.0}),
    "scheduling-pool": ("astrogym/TelescopeScheduling-v0", {"n_targets": 30, "n_targets_range": (20, 40),
                                                            "max_targets": 40, "catalogue_pool": 3,
                                                            "date_range_days": 4, "wait_s": 1800.0}),
}


def _actions(venv, rng):
    base = venv.unwrapped
    if hasattr(base, "action_masks"):
        masks = base.action_masks()
        # mostly allowed targets, sometimes any slot (masked ones become flagged waits)
        chosen = np.argmax(rng.random(masks.shape) * masks, axis=1)
        anything = rng.integers(0, masks.shape[1], masks.shape[0])
        return np.where(rng.random(masks.shape[0]) < 0.9, chosen, anything)
    space = venv.single_action_space
    return rng.uniform(-0.3, 0.3, (venv.num_envs, *space.shape)).astype(np.float32)


def _assert_same(a, b, where):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (where, set(a) ^ set(b))
        for k in a:
            if k in ("final_obs", "final_info"):  # object arrays / nested dicts: compared below
                continue
            _assert_same(a[k], b[k], (where, k))
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (where, a.dtype, b.dtype)
    assert np.array_equal(a, b), (where, np.max(np.abs(a.astype(float) - b.astype(float))))


def _run_pair(env_id, kwargs, n, mode, steps, parallel=None):
    native = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", autoreset_mode=mode,
                          parallel=parallel, **kwargs)
    sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode(mode)}, **kwargs)
    rng = np.random.default_rng(0)
    out_n, info_n = native.reset(seed=7)
    out_s, info_s = sync.reset(seed=7)
    _assert_same(out_n, out_s, "reset obs")
    _assert_same(info_n, info_s, "reset info")
    ended = 0
    for t in range(steps):
        actions = _actions(native, rng)
        got, want = native.step(actions), sync.step(actions)
        for k, name in enumerate(("obs", "reward", "terminated", "truncated", "info")):
            _assert_same(got[k], want[k], (t, name))
        if "final_obs" in want[4]:
            for i in np.flatnonzero(want[4]["_final_obs"]):
                _assert_same(got[4]["final_obs"][i], want[4]["final_obs"][i], (t, "final_obs", i))
            _assert_same(got[4]["final_info"], want[4]["final_info"], (t, "final_info"))
        ended += int(np.sum(got[2] | got[3]))
    native.close()
    sync.close()
    return ended


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
@pytest.mark.parametrize("case", list(CASES))
def test_native_vector_env_is_bit_identical_to_sync_vector_env(case, mode):
    env_id, kwargs = CASES[case]
    steps = {"astrogym/InterferometerLock-v0": 250, "astrogym/AdaptiveOpticsSmall-v0": 30}.get(env_id, 400)
    ended = _run_pair(env_id, kwargs, 3, mode, steps)
    assert ended >= 2, "the run must cross autoresets to test them"


@pytest.mark.parametrize("env_id, kwargs", [CASES["lock"], CASES["ao"], CASES["scheduling-2-nights"]])
def test_threaded_and_serial_steps_agree_with_single_envs(env_id, kwargs):
    steps = {"astrogym/InterferometerLock-v0": 120, "astrogym/AdaptiveOpticsSmall-v0": 15}.get(env_id, 200)
    for parallel in (True, False):
        assert _run_pair(env_id, kwargs, 4, "NextStep", steps, parallel=parallel) >= 1


def test_every_env_id_has_a_native_vector_env():
    for spec in ENV_SPECS:
        venv = gym.make_vec(spec.id, num_envs=2, vectorization_mode="vector_entry_point")
        assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
        obs, _ = venv.reset(seed=0)
        assert venv.observation_space.contains(obs) or isinstance(obs, dict)
        assert venv.single_action_space == gym.make(spec.id).action_space
        venv.close()


def test_bad_actions_raise_naming_the_copy_and_change_nothing():
    env_id, kwargs = CASES["lock"]
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    twin = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    venv.reset(seed=1)
    twin.reset(seed=1)
    bad = np.zeros((3, 1), np.float32)
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"actions\[2\].*finite"):
        venv.step(bad)
    bad[2, 0] = 1.5
    with pytest.raises(ValueError, match=r"actions\[2\].*outside"):
        venv.step(bad)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((2, 1)))
    good = np.full((3, 1), 0.1, np.float32)
    for got, want in zip(venv.step(good)[:4], twin.step(good)[:4]):  # the failed calls moved no copy
        assert np.array_equal(got, want)


def test_scheduling_bad_actions_and_masks():
    env_id, kwargs = CASES["scheduling-2-nights"]
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    with pytest.raises(gym.error.ResetNeeded):
        venv.unwrapped.action_masks()
    venv.reset(seed=0)
    masks = venv.unwrapped.action_masks()
    assert masks.shape == (2, 41) and masks[:, -1].all()
    with pytest.raises(ValueError, match=r"actions\[1\]=41 is out of range"):
        venv.step(np.array([0, 41]))
    with pytest.raises(TypeError, match="integers"):
        venv.step(np.array([0.5, 1.0]))
    strict = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", invalid_action="raise",
                          **kwargs)
    strict.reset(seed=0)
    masked = int(np.flatnonzero(~strict.unwrapped.action_masks()[1])[0])
    with pytest.raises(ValueError, match=r"actions\[1\]"):
        strict.step(np.array([40, masked]))


def test_disabled_autoreset_and_reset_mask():
    env_id, kwargs = CASES["lock"]
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", autoreset_mode="Disabled",
                        **kwargs)
    venv.reset(seed=0)
    done = np.zeros(2, bool)
    while not done.any():
        _, _, term, trunc, _ = venv.step(np.zeros((2, 1), np.float32))
        done = term | trunc
    with pytest.raises(gym.error.ResetNeeded, match="reset_mask"):
        venv.step(np.zeros((2, 1), np.float32))
    obs, info = venv.reset(options={"reset_mask": done})
    assert info[f"_{next(iter(k for k in info if not k.startswith('_')))}"].tolist() == done.tolist()
    venv.step(np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.zeros(2, bool)})


def test_invalid_construction():
    with pytest.raises(ValueError, match="num_envs=0"):
        gym.make_vec("astrogym/InterferometerLock-v0", num_envs=0, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="autoreset_mode"):
        gym.make_vec("astrogym/InterferometerLock-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="psf_every"):
        gym.make_vec("astrogym/AdaptiveOpticsSmall-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     psf_every=10)
    with pytest.raises(ValueError, match="history_length"):  # the single env's own validation
        gym.make_vec("astrogym/InterferometerLock-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     history_length=0)


def test_sb3_trains_identically_on_the_native_vector_env():
    """PPO on the adapter over the native vector env equals PPO on DummyVecEnv of single envs, to the bit."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    from astrogym.agents.vec_env import make_native_vec_env

    torch.set_num_threads(1)
    kwargs = {"episode_length_s": 1.0}

    def parameters(venv):
        model = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=2, seed=3, verbose=0)
        model.learn(768)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()]), model

    dummy = make_vec_env("astrogym/InterferometerLock-v0", n_envs=3, seed=5, env_kwargs=kwargs,
                         vec_env_cls=DummyVecEnv)
    native = VecMonitor(make_native_vec_env("astrogym/InterferometerLock-v0", 3, 5, kwargs))
    p_dummy, m_dummy = parameters(dummy)
    p_native, m_native = parameters(native)
    assert torch.equal(p_dummy, p_native)
    assert [e["l"] for e in m_dummy.ep_info_buffer] == [int(e["l"]) for e in m_native.ep_info_buffer]


def test_maskable_ppo_reads_batched_masks_through_the_adapter():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    from astrogym.agents.vec_env import make_native_vec_env

    env_id, kwargs = CASES["scheduling-2-nights"]
    venv = make_native_vec_env(env_id, 2, 0, kwargs)
    venv.reset()
    masks = get_action_masks(venv)
    assert masks.shape == (2, 41) and masks.dtype == bool
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0, verbose=0)
    model.learn(64)
    assert model.num_timesteps >= 64


def test_adapter_refuses_other_autoreset_modes():
    from astrogym.agents.vec_env import NativeVecEnv

    venv = gym.make_vec("astrogym/InterferometerLock-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="SAME_STEP"):
        NativeVecEnv(venv)
    with pytest.raises(TypeError, match="VectorEnv"):
        NativeVecEnv(gym.make("astrogym/InterferometerLock-v0"))


def test_astrogym_train_vectorised_writes_a_run_that_loads(tmp_path, capsys):
    import yaml

    from astrogym.agents.checkpoints import load_model
    from astrogym.experiments.cli import main

    run = tmp_path / "run"
    argv = ["train", "astrogym/TelescopeScheduling-v0", "--vectorised", "--n-envs", "4", "--timesteps", "128",
            "--run-dir", str(run), "--eval-freq", "128", "--eval-episodes", "1", "--no-progress",
            "--hp", "n_steps=32", "--hp", "batch_size=64", "--hp", "n_epochs=1"]
    assert main(argv) == 0
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["hyperparameters"]["vec_env"] == "native"
    model, _ = load_model(run / "model.zip")
    assert model.num_timesteps >= 128 and model.n_envs == 4
    capsys.readouterr()
    assert main(["train", "astrogym/AdaptiveOpticsSmall-v0", "--algo", "po4ao", "--vectorised", "--run-dir",
                 str(tmp_path / "po4ao")]) == 2
    assert "--vectorised: po4ao runs its own loop" in capsys.readouterr().err
    assert not (tmp_path / "po4ao").exists()


def test_rgb_array_frames_show_each_copys_live_state():
    venv = gym.make_vec("astrogym/InterferometerLock-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        render_mode="rgb_array")
    venv.reset(seed=0)
    venv.step(np.array([[0.5], [-0.5]], np.float32))
    frames = venv.render()
    assert len(frames) == 2 and all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # each copy draws its own history
