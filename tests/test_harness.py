"""Gymnasium citizenship of every registered environment (later envs join through ENV_SPECS)."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import astrogym  # noqa: F401  (registers the ids)
from astrogym.envs import ENV_SPECS, register_envs
from checkers import sb3_check_env


def _rollout(env, seed: int, steps: int, action_seed: int = 123):
    obs, info = env.reset(seed=seed)
    env.action_space.seed(action_seed)
    out = [(obs, info)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            out.append((obs, info))
    return out


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    else:
        assert a == b or (a != a and b != b), (a, b)  # NaN == NaN for this purpose


def test_check_env_passes_without_warnings(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_sb3_env_checker(env_id):
    sb3_check_env(gym.make(env_id).unwrapped)


def test_same_seed_same_trajectory(env_id):
    a = _rollout(gym.make(env_id), seed=7, steps=200)
    b = _rollout(gym.make(env_id), seed=7, steps=200)
    _assert_same(a, b)


def _flat(obs) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in obs.values()])
    return np.asarray(obs)


def test_different_seed_different_trajectory(env_id):
    a = _rollout(gym.make(env_id), seed=1, steps=20)
    b = _rollout(gym.make(env_id), seed=2, steps=20)
    assert not np.array_equal(_flat(a[-1][0]), _flat(b[-1][0]))


def test_observations_stay_in_space(env_id):
    env = gym.make(env_id)
    for item in _rollout(env, seed=3, steps=500):
        assert env.observation_space.contains(item[0])
        if len(item) == 5:
            assert np.isfinite(item[1])


def test_pickle_round_trip_continues_identically(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=11)
    for _ in range(10):
        env.step(env.action_space.sample() * 0)
    clone = pickle.loads(pickle.dumps(env))
    action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    for _ in range(50):
        _assert_same(env.step(action), clone.step(action))


def test_vector_envs_sync_and_async_spawn(env_id):
    """Batched use: Gymnasium's vector envs, the async one in spawned processes (no fork state)."""
    for mode, kwargs in (("sync", {}), ("async", {"vector_kwargs": {"context": "spawn"}})):
        envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, **kwargs)
        obs, _ = envs.reset(seed=[0, 1])
        if isinstance(obs, dict):
            for key, space in envs.single_observation_space.spaces.items():
                assert obs[key].shape == (2, *space.shape), key
        else:
            assert obs.shape == (2, *envs.single_observation_space.shape)
        obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample() * 0)
        assert rewards.shape == (2,) and np.all(np.isfinite(rewards))
        envs.close()


def test_render_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.ndim == 3 and frame.shape[2] == 3 and min(frame.shape[:2]) >= 64
    assert frame.std() > 0  # something was drawn


def test_unknown_config_key_is_rejected(env_id):
    with pytest.raises(ValueError, match="not_a_real_key"):
        gym.make(env_id, not_a_real_key=1)


def test_unknown_reset_option_is_rejected(env_id):
    env = gym.make(env_id)
    with pytest.raises(ValueError, match="bogus"):
        env.reset(seed=0, options={"bogus": 1})


def test_step_before_reset_is_an_error(env_id):
    env = gym.make(env_id, disable_env_checker=True)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(env.action_space.sample())
    with pytest.raises(gym.error.ResetNeeded, match=r"before reset\(\): call reset\(\) first"):
        env.unwrapped.step(env.action_space.sample())  # the env's own check, not Gymnasium's wrapper


# Per env class: configuration that ends an episode within a few steps (a new env class adds its own).
SHORT_EPISODES = {
    "astrogym.envs.interferometer.env:InterferometerLockEnv": {"episode_length_s": 0.05, "history_length": 4},
    "astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv": {"episode_frames": 3},
    "astrogym.envs.scheduling.env:TelescopeSchedulingEnv": {"n_targets": 5, "wait_s": 7200.0},
    "astrogym.envs.network.env:TelescopeNetworkEnv": {"n_targets": 5, "too_pool": 8, "wait_s": 7200.0},
}


def _spec(env_id):
    return next(s for s in ENV_SPECS if s.id == env_id)


def test_step_after_episode_end_needs_reset(env_id):
    spec = _spec(env_id)
    assert spec.entry_point in SHORT_EPISODES, f"add a short-episode configuration for {spec.entry_point}"
    env = gym.make(env_id, disable_env_checker=True, **SHORT_EPISODES[spec.entry_point]).unwrapped
    assert env.needs_reset
    env.reset(seed=0)
    assert not env.needs_reset
    action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    for _ in range(1000):
        *_, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert (terminated or truncated) and env.needs_reset
    with pytest.raises(gym.error.ResetNeeded, match=r"after the episode ended.*call reset\(\) first"):
        env.step(action)
    env.reset(seed=1)
    env.step(action)  # usable again after a reset


def test_unsupported_render_mode_is_the_envs_own_value_error(env_id):
    env_class = gym.envs.registration.load_env_creator(_spec(env_id).entry_point)
    with pytest.raises(ValueError, match=r"render_mode='ansi' is not supported .*allowed None or \['rgb_array', "
                                         r"'human'\]"):
        env_class(render_mode="ansi")


def test_human_render_without_a_display_is_the_envs_own_value_error(env_id, monkeypatch):
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    # through gym.make too: Gymnasium passes "human" on (the env lists it) instead of wrapping it in pygame
    with pytest.raises(ValueError, match=r"render_mode='human' needs an interactive matplotlib backend.*"
                                         r"backend is 'agg'.*rgb_array"):
        gym.make(env_id, render_mode="human")


def test_human_render_shows_each_frame_in_a_window(env_id, monkeypatch):
    from astrogym.envs.common import base, rendering

    shown = []
    monkeypatch.setattr(base, "interactive_backend", lambda: "TkAgg")
    monkeypatch.setattr(rendering.FrameViewer, "show", lambda self, frame: shown.append(frame.shape))
    env = gym.make(env_id, render_mode="human", disable_env_checker=True, **SHORT_EPISODES[_spec(env_id).entry_point])
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.render() is None
    assert len(shown) == 3 and all(len(shape) == 3 and shape[2] == 3 for shape in shown)
    env.close()


def test_reset_options_must_be_a_dict(env_id):
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    with pytest.raises(TypeError, match="options must be a dict or None"):
        env.reset(seed=0, options=[("bogus", 1)])
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['bogus'\].*allowed \["):
        env.reset(seed=0, options={"bogus": 1})


def test_registration_is_idempotent():
    before = {k for k in gym.registry if k.startswith("astrogym/")}
    register_envs()
    register_envs()
    assert {k for k in gym.registry if k.startswith("astrogym/")} == before == {s.id for s in ENV_SPECS}


def test_make_with_module_prefix_in_fresh_process():
    ids = [s.id for s in ENV_SPECS]
    code = ("import gymnasium as gym\n"
            f"for i in {ids!r}:\n"
            "    env = gym.make('astrogym:' + i); env.reset(seed=0); env.step(env.action_space.sample())\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_wheel_installs_only_the_astrogym_namespace(tmp_path):
    """Built from this checkout, the wheel holds ``astrogym/...`` and its metadata, nothing bare."""
    pytest.importorskip("setuptools", minversion="77")
    root = Path(__file__).resolve().parents[1]  # the checkout these tests belong to
    assert (root / "pyproject.toml").exists()
    # Build from a copy: an in-tree setuptools build would leave build/ and *.egg-info behind.
    src = tmp_path / "src"
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "results",
                                                             "runs", "__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("astrogym-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"astrogym", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for sub in ("envs", "agents", "surrogates", "experiments"):
        assert f"astrogym/{sub}/__init__.py" in names
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)


def test_subpackages_import_under_the_namespace_only():
    import astrogym.agents
    import astrogym.envs
    import astrogym.surrogates

    assert astrogym.envs.__name__ == "astrogym.envs" and astrogym.agents.__name__ == "astrogym.agents"
    assert astrogym.__version__
    for bare in ("envs", "agents", "surrogates", "experiments"):
        out = subprocess.run([sys.executable, "-c", f"import {bare}"], capture_output=True, text=True, cwd="/")
        assert out.returncode != 0, f"a bare '{bare}' package is importable"


def test_every_package_folder_is_installed():
    """Each folder with an ``__init__.py`` under the four layers is listed in pyproject's packages (a fresh install
    would otherwise miss it, while the editable checkout still imports it)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"astrogym." + ".".join(init.parent.relative_to(root).parts)
             for layer in ("envs", "agents", "surrogates", "experiments") for init in (root / layer).rglob("__init__.py")
             if "__pycache__" not in init.parts}
    assert found - listed == set(), f"add to pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
