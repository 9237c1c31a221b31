"""Every shipped policy (``agents/shipped/NAME.yml`` + its checkpoint) loads by name and acts validly.

CI trains nothing long: this loads each shipped checkpoint through the registry, as
``astrogym evaluate --policy NAME`` does, and plays a short stretch of its env.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import astrogym  # noqa: F401
from astrogym.agents.registry import PACKAGE_ROOT, PolicyContext, make_policy, policies_for

# NAME.yml records; NAME.residual.yml companions are not records
SHIPPED = sorted(p for p in (PACKAGE_ROOT / "agents" / "shipped").glob("*.yml") if p.stem.count(".") == 0)


def _record(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_policies_are_shipped():
    assert {_record(p)["policy"] for p in SHIPPED} >= {"cnn", "temporal", "gnn", "po4ao"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_records_its_training_command(path):
    record = _record(path)
    assert record["command"].startswith(f"astrogym train {record['env_id']}")
    assert f"--seed {record['seed']}" in record["command"]
    from astrogym.agents.algorithms import get_algorithm

    assert (path.parent / f"{path.stem}{get_algorithm(record.get('algo', record.get('algorithm'))).suffix}").is_file()
    size = sum(f.stat().st_size for f in path.parent.glob(f"{path.stem}.*"))  # the model and its companions
    assert size < 3 * 2**20, f"{path.stem} ships {size / 2**20:.1f} MB"
    assert record["policy"] in {s.name for s in policies_for(record["env_id"], benchmark_only=True)}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_loads_by_name_and_acts(path):
    record = _record(path)
    env_id = record["env_id"]
    kwargs = {"episode_frames": 30} if "AdaptiveOptics" in env_id else {}
    env = gym.make(env_id, **kwargs)
    policy = make_policy(record["policy"], PolicyContext(env, lambda **kw: gym.make(env_id, **{**kwargs, **kw})))
    obs, _ = env.reset(seed=123)  # a training-range seed: this checks behaviour, not skill
    start = np.ones(1, bool)
    for _ in range(25):
        action, _ = policy.predict(obs, episode_start=start, deterministic=True)
        start = np.zeros(1, bool)
        assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype)
                                         if not isinstance(env.action_space, gym.spaces.Discrete) else int(action))
        obs, reward, terminated, truncated, _ = env.step(action)
        assert np.isfinite(reward)
        if terminated or truncated:
            break
