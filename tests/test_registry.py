"""The registries: a toy env registered in a test shows up in ``list``, ``train`` and ``evaluate``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from astrogym.agents.base import Policy
from astrogym.agents.registry import PolicyContext, make_policy, policies_for, register_policy, unregister_policy
from astrogym.experiments import registry
from astrogym.experiments.cli import main
from astrogym.experiments.evaluation import Evaluation, mean_ci
from astrogym.experiments.registry import Domain, Metric

TOY = "astrogym-test/Toy-v0"


class ToyEnv(gym.Env):
    """Drive x to zero: x' = x + a + noise; reward -x^2; 20 steps."""

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + float(np.asarray(action).reshape(-1)[0]) + 0.01 * self.np_random.normal(),
                               -10, 10))
        self.t += 1
        return np.array([self.x], np.float32), -self.x ** 2, False, self.t >= 20, {"abs_x": abs(self.x)}


class ToyRecorder:
    def reset(self, env, info):
        self.values = []

    def step(self, reward, info):
        self.values.append(info["abs_x"])

    def finish(self, env, info, terminated):
        return {"final_abs_x": self.values[-1]}


class Proportional(Policy):
    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.clip(-np.asarray(observation, np.float32), -1, 1), state


@pytest.fixture
def toy():
    gym.register(TOY, entry_point=ToyEnv)
    domain = registry.register_domain(Domain(name="toy", env_ids=(TOY,), recorder=lambda env: ToyRecorder(),
                                             metrics=(Metric("final_abs_x", "final |x|", higher_is_better=False),),
                                             reference_policy="proportional"))
    register_policy("proportional", lambda ctx: Proportional(), env_ids=(TOY,), summary="a = -x")
    register_policy("still", lambda ctx: make_policy("zero", ctx, env_id="astrogym/InterferometerLock-v0"),
                    env_ids=(TOY,), summary="a = 0")
    yield domain
    unregister_policy("proportional")
    unregister_policy("still")
    registry.unregister_domain(domain)
    del gym.registry[TOY]


def test_toy_env_joins_list_train_and_evaluate(toy, tmp_path, capsys):
    assert main(["list", "--policies", "--scenarios"]) == 0
    text = capsys.readouterr().out
    assert TOY in text and "policy proportional: a = -x" in text and "scenario default (v1)" in text
    run = tmp_path / "toy_run"
    assert main(["train", TOY, "--timesteps", "128", "--run-dir", str(run), "--hp", "n_steps=64",
                 "--hp", "batch_size=32", "--eval-freq", "64", "--eval-episodes", "2", "--no-progress"]) == 0
    assert (run / "best_model.zip").is_file()
    capsys.readouterr()
    assert main(["evaluate", TOY, "--policy", "proportional", "--policy", "still", "--policy", str(run),
                 "--out", str(tmp_path / "res")]) == 0
    text = capsys.readouterr().out
    assert "| proportional |" in text and "| still |" in text and "| toy_run |" in text and "final |x|" in text
    assert (tmp_path / "res" / "Toy-v0" / "default.md").is_file()
    # default policies: every registered one
    assert [p.name for p in policies_for(TOY)] == ["proportional", "still"]


def test_the_same_name_means_each_domain_s_own_controller():
    lock = gym.make("astrogym/InterferometerLock-v0")
    ao = gym.make("astrogym/AdaptiveOpticsSmall-v0")
    assert type(make_policy("baseline", PolicyContext(lock, None))).__name__ == "LoopShapingController"
    ctx = PolicyContext(ao, None, options={"gain": 0.5})
    assert type(make_policy("baseline", ctx)).__name__ == "LeakyIntegrator"
    with pytest.raises(ValueError, match="unknown policy 'greedy' for astrogym/AdaptiveOpticsSmall-v0"):
        make_policy("greedy", ctx)


def test_every_env_has_a_domain_and_the_shipped_policies_build():
    from astrogym.envs import ENV_SPECS

    assert set(registry.env_ids()) >= {s.id for s in ENV_SPECS}
    for spec in ENV_SPECS:
        d = registry.get_domain(spec.id)
        assert spec.id in d.env_ids and d.metrics and d.reference_policy in [p.name for p in policies_for(spec.id)]


def test_mean_ci_is_student_t():
    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and half == pytest.approx(3.182446305 * np.std([1, 2, 3, 4], ddof=1) / 2)
    assert np.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0


def test_paired_difference_to_the_reference(toy):
    from astrogym.experiments.scenarios import get_scenario

    ev = Evaluation(TOY, get_scenario(TOY, "default"), toy)
    ev.episodes = {"proportional": [{"seed": s, "return": -1.0 * s} for s in range(3)],
                   "still": [{"seed": s, "return": -1.0 * s - 2.0 - 0.1 * s} for s in range(3)]}
    summary = ev.summary()
    assert summary["still"]["return_minus_reference"]["mean"] == pytest.approx(-2.1)
    assert "return - proportional (paired)" in ev.table()
