"""The scheduling env trains through sb3-contrib's MaskablePPO, with its metrics in the SB3 logger."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest

import astrogym  # noqa: F401
from astrogym.experiments.callbacks import SchedulingMetricsCallback


def test_maskable_ppo_learns_on_the_graph_observation_and_logs_metrics(tmp_path):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from stable_baselines3.common.logger import configure

    env = gym.make("astrogym/TelescopeScheduling-v0", n_targets=30, wait_s=600.0)
    model = sb3_contrib.MaskablePPO("MultiInputPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0,
                                    device="cpu")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(total_timesteps=256, callback=SchedulingMetricsCallback())
    model.logger.close()
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("schedule/priority_weighted_completion")]
    assert logged, rows[0].keys()
    assert 0.0 <= float(logged[-1]["schedule/priority_weighted_completion"]) <= 1.0
    # masking works: a masked policy never picks an invalid action
    obs, _ = env.reset(seed=3)
    for _ in range(50):
        action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks())
        obs, r, term, trunc, info = env.step(action)
        assert not info["invalid_action"] and np.isfinite(r)
        if term:
            break
