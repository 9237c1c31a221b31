"""Learned dynamics: the transition collector, the ensemble against known systems, the surrogate env, files."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import astrogym  # noqa: F401  (registers the envs)
from astrogym.agents.adaptive_optics.integrator import LeakyIntegrator
from astrogym.agents.base import ZeroPolicy
from astrogym.surrogates.dynamics import EnsembleDynamics
from astrogym.surrogates.structure import AOHistory, FullDelta, LockHistory, structure_for
from astrogym.surrogates.surrogate_env import SurrogateEnv, SurrogateVectorEnv
from astrogym.surrogates.transitions import ExplorationNoise, Transitions, collect

torch.set_num_threads(1)

A_TRUE = np.array([[0.95, 0.10], [-0.10, 0.95]])  # a lightly damped rotation
B_TRUE = np.array([[0.0], [0.2]])


class LinearSystemEnv(gym.Env):
    """x' = A x + B u + w, observed exactly: a system whose rollouts are known in closed form."""

    def __init__(self, noise: float = 0.01):
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.noise = noise

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, 2)
        self.t = 0
        return self.x.astype(np.float32), {}

    def step(self, action):
        u = np.asarray(action, dtype=float).reshape(1)
        self.x = A_TRUE @ self.x + B_TRUE @ u + self.noise * self.np_random.normal(size=2)
        self.t += 1
        return self.x.astype(np.float32), -float(self.x @ self.x), False, self.t >= 100, {}


@pytest.fixture(scope="module")
def linear_data():
    env = LinearSystemEnv()
    return collect(env, ZeroPolicy(env.observation_space, env.action_space), 4000, seed=0,
                   noise=ExplorationNoise("gaussian", 0.5))


@pytest.fixture(scope="module")
def linear_model(linear_data):
    env = LinearSystemEnv()
    return EnsembleDynamics.for_env(env, hidden=(64, 64), members=4).fit(linear_data, epochs=40, seed=0)


# -- transitions -------------------------------------------------------------------------------------
def test_collect_is_reproducible_and_records_episodes(linear_data):
    env = LinearSystemEnv()
    again = collect(env, ZeroPolicy(env.observation_space, env.action_space), 4000, seed=0,
                    noise=ExplorationNoise("gaussian", 0.5))
    np.testing.assert_array_equal(again.obs, linear_data.obs)
    np.testing.assert_array_equal(again.actions, linear_data.actions)
    assert linear_data.n_episodes == 40 and linear_data.truncated.sum() == 40
    # next_obs continues obs inside an episode, and the policy's actions carry the noise
    inside = ~linear_data.done[:-1]
    np.testing.assert_array_equal(linear_data.next_obs[:-1][inside], linear_data.obs[1:][inside])
    assert linear_data.actions.std() == pytest.approx(0.5, rel=0.1)
    assert linear_data.metadata["seed"] == 0 and linear_data.metadata["noise"]["scale"] == 0.5


def test_transitions_file_round_trip_and_bad_files(tmp_path, linear_data):
    path = linear_data.save(tmp_path / "data.npz")
    back = Transitions.load(path)
    for name in ("obs", "actions", "exploration", "rewards", "next_obs", "terminated", "truncated", "episode", "step"):
        np.testing.assert_array_equal(getattr(back, name), getattr(linear_data, name))
    assert back.metadata["steps"] == 4000
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="not a readable transitions file"):
        Transitions.load(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, obs=np.zeros(3))
    with pytest.raises(ValueError, match="not an astrogym transitions file"):
        Transitions.load(foreign)
    with pytest.raises(FileNotFoundError):
        Transitions.load(tmp_path / "missing.npz")


def test_split_and_concatenate_keep_episodes_whole(linear_data):
    train, held = linear_data.split_episodes(0.25, seed=1)
    assert len(train) + len(held) == len(linear_data)
    assert not set(np.unique(train.episode)) & set(np.unique(held.episode))
    joined = Transitions.concatenate([train, held])
    assert joined.n_episodes == linear_data.n_episodes


def test_collect_refuses_what_it_cannot_record():
    env = gym.make("astrogym/TelescopeScheduling-v0")
    with pytest.raises(TypeError, match="Box observations"):
        collect(env, None, 10, seed=0)
    lin = LinearSystemEnv()
    with pytest.raises(ValueError, match="steps"):
        collect(lin, ZeroPolicy(lin.observation_space, lin.action_space), 0, seed=0)
    with pytest.raises(ValueError, match="kind"):
        ExplorationNoise("uniform", 0.1)


# -- the ensemble on a known linear system -----------------------------------------------------------
def test_one_step_error_is_far_below_the_signal(linear_model, linear_data):
    env = LinearSystemEnv()
    held = collect(env, ZeroPolicy(env.observation_space, env.action_space), 1000, seed=99,
                   noise=ExplorationNoise("gaussian", 0.5))
    err = linear_model.one_step_error(held)
    assert err["relative_mse"] < 0.05
    # the noise it predicts is the system's (0.01 per step) to a factor of 2
    pred = linear_model.predict(held.obs[:500], held.actions[:500])
    assert 0.005 < float(np.median(pred.aleatoric_std)) < 0.02


def test_rollouts_match_the_linear_system(linear_model):
    rng = np.random.default_rng(3)
    x0 = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    actions = rng.uniform(-0.5, 0.5, (10, 64, 1)).astype(np.float32)
    out = linear_model.rollout(x0, actions, horizon=10)
    x = x0.astype(float)
    for t in range(10):
        x = x @ A_TRUE.T + actions[t] @ B_TRUE.T
        np.testing.assert_allclose(out["obs"][t + 1], x, atol=0.03 + 0.01 * t)
    assert out["obs"].shape == (11, 64, 2) and out["rewards"].shape == (10, 64)


def test_members_disagree_off_the_training_data(linear_model):
    rng = np.random.default_rng(4)
    near = rng.uniform(-1, 1, (200, 2)).astype(np.float32)
    far = rng.uniform(6, 9, (200, 2)).astype(np.float32)
    u = np.zeros((200, 1), np.float32)
    on, off = linear_model.predict(near, u), linear_model.predict(far, u)
    assert off.epistemic_std.mean() > 5 * on.epistemic_std.mean()
    np.testing.assert_allclose(on.std**2, on.epistemic_std**2 + on.aleatoric_std**2, rtol=1e-5)


def test_model_file_round_trip_and_bad_files(tmp_path, linear_model):
    path = linear_model.save(tmp_path / "model.pt", note="test")
    back = EnsembleDynamics.load(path)
    x = np.random.default_rng(5).uniform(-1, 1, (8, 2)).astype(np.float32)
    u = np.zeros((8, 1), np.float32)
    np.testing.assert_array_equal(back.predict(x, u).mean, linear_model.predict(x, u).mean)
    assert back.metadata["note"] == "test" and back.history == linear_model.history
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="not a readable ensemble dynamics model"):
        EnsembleDynamics.load(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something else"}, foreign)
    with pytest.raises(ValueError, match="not an astrogym ensemble dynamics model"):
        EnsembleDynamics.load(foreign)
    with pytest.raises(ValueError, match="unfitted"):
        EnsembleDynamics.for_env(LinearSystemEnv()).save(tmp_path / "x.pt")


def test_bad_inputs_name_the_field(linear_model):
    with pytest.raises(ValueError, match="obs has shape"):
        linear_model.predict(np.zeros((3, 5), np.float32), np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="member"):
        EnsembleDynamics.for_env(LinearSystemEnv(), member="transformer")
    with pytest.raises(ValueError, match="epochs"):
        linear_model.fit(Transitions(np.zeros((20, 2)), np.zeros((20, 1)), np.zeros((20, 1)), np.zeros(20), np.zeros((20, 2)),
                                     np.zeros(20), np.zeros(20), np.zeros(20), np.zeros(20)), epochs=0)


# -- the astrogym envs -------------------------------------------------------------------------------
def test_structures_assemble_what_the_envs_do():
    lock = gym.make("astrogym/InterferometerLock-v0")
    ao = gym.make("astrogym/AdaptiveOpticsSmall-v0", n_subapertures=8, loop_delay_frames=2)
    assert isinstance(structure_for(lock), LockHistory) and isinstance(structure_for(ao), AOHistory)
    assert isinstance(structure_for(LinearSystemEnv()), FullDelta)
    assert not structure_for(ao).direct_action
    for env in (lock, ao):
        data = collect(env, ZeroPolicy(env.observation_space, env.action_space), 30, seed=0,
                       noise=ExplorationNoise("gaussian", 0.3))
        s = structure_for(env)
        obs, act, nxt = (torch.from_numpy(x) for x in (data.obs, data.actions, data.next_obs))
        rebuilt = s.assemble(obs, act, s.target(obs, act, nxt))
        np.testing.assert_allclose(rebuilt.numpy(), data.next_obs, atol=1e-6)


def test_lock_ensemble_predicts_the_sensor_far_below_its_variance():
    env = gym.make("astrogym/InterferometerLock-v0")
    from astrogym.agents.interferometer.loop_shaping import LoopShapingController

    data = collect(env, LoopShapingController(env), 5000, seed=0, noise=ExplorationNoise("gaussian", 0.02))
    train, held = data.subset(slice(0, 4000)), data.subset(slice(4000, None))
    model = EnsembleDynamics.for_env(env, hidden=(64, 64), members=3).fit(train, epochs=30)
    err = model.one_step_error(held)
    assert err["relative_mse"] < 0.1, err


def test_ao_conv_ensemble_learns_the_measurement_and_the_command_response():
    kw = dict(n_subapertures=8, loop_delay_frames=2, loop_rate_hz=500.0, wind_speeds_mps=[35.0], episode_frames=400)
    env = gym.make("astrogym/AdaptiveOpticsSmall-v0", **kw)
    integ = LeakyIntegrator(env, gain=0.5)
    data = collect(env, integ, 1200, seed=0, noise=ExplorationNoise("sign", 0.1))
    train, held = data.subset(slice(0, 800)), data.subset(slice(800, None))
    model = EnsembleDynamics.for_env(env, member="conv", members=2, hidden=(16, 16)).fit(train, epochs=8,
                                                                                           batch_size=32)
    assert model.one_step_error(held)["relative_mse"] < 0.5
    # a command poke moves the predicted measurement two frames later by about minus the poke (two of delay)
    ctrl = env.unwrapped.system.controlled
    poke = np.zeros(ctrl.shape, np.float32)
    poke[ctrl] = 0.2 * np.random.default_rng(0).choice([-1, 1], ctrl.sum())
    obs0 = held.obs[100:101]
    base = np.zeros((3, 1, *ctrl.shape), np.float32)
    poked = base.copy()
    poked[0, 0] = poke
    d = model.rollout(obs0, poked, 3)["obs"][:, 0, 0] - model.rollout(obs0, base, 3)["obs"][:, 0, 0]
    assert np.abs(d[1][ctrl]).max() < 1e-6  # one frame on: the delay hides the poke
    assert np.corrcoef(d[2][ctrl], -poke[ctrl])[0, 1] > 0.8


# -- the surrogate env -------------------------------------------------------------------------------
def test_surrogate_env_passes_check_env_and_is_seeded(linear_model, linear_data):
    env = SurrogateEnv.from_env(LinearSystemEnv(), linear_model, linear_data, episode_steps=20)
    check_env(env, skip_render_check=True)
    a = [env.reset(seed=7)[0]] + [env.step(np.array([0.3], np.float32))[0] for _ in range(5)]
    b = [env.reset(seed=7)[0]] + [env.step(np.array([0.3], np.float32))[0] for _ in range(5)]
    np.testing.assert_array_equal(np.array(a), np.array(b))
    with pytest.raises(ValueError, match="action has shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="start"):
        env.reset(options={"start": 10**9})


def test_surrogate_vector_env_steps_a_batch_and_autoresets(linear_model, linear_data):
    venv = SurrogateVectorEnv.from_env(LinearSystemEnv(), linear_model, linear_data, num_envs=16, episode_steps=3,
                                       sample=False)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (16, 2)
    actions = np.zeros((16, 1), np.float32)
    for t in range(3):
        nxt, reward, terminated, truncated, _ = venv.step(actions)
        expected = np.clip(obs @ A_TRUE.T, -10, 10)
        np.testing.assert_allclose(nxt, expected, atol=0.05)
        obs = nxt
    assert truncated.all() and not terminated.any()
    restarted, reward, _, truncated, _ = venv.step(actions)  # next-step autoreset: copies restart
    assert not truncated.any() and np.all(reward == 0.0)


def test_sb3_learns_on_the_surrogate(linear_model, linear_data):
    from stable_baselines3 import PPO

    env = SurrogateEnv.from_env(LinearSystemEnv(), linear_model, linear_data, episode_steps=20)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    action, _ = model.predict(env.reset(seed=0)[0])
    assert env.action_space.contains(action)
