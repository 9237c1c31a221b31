"""Every id under the wrappers that external training scripts stack, as they stack them.

CleanRL, RL Zoo and hand-written loops wrap envs in ``TimeLimit``, ``RecordEpisodeStatistics``,
``ClipAction``, ``FlattenObservation`` and ``NormalizeObservation`` (in that order, or close);
the env must come out of that stack with finite flat observations, episode statistics and the
time limit honoured. SB3's and Gymnasium's own checkers run in ``test_harness.py``; the CleanRL
PPO loop on the flat AO layout in ``test_cleanrl_flat_ao.py``.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import astrogym  # noqa: F401  (registers the ids)
from astrogym.envs import ENV_SPECS

FAST = {
    "astrogym.envs.interferometer.env:InterferometerLockEnv": {},
    "astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv": {"n_subapertures": 8, "action_layout": "flat"},
    "astrogym.envs.scheduling.env:TelescopeSchedulingEnv": {"n_targets": 12},
    "astrogym.envs.network.env:TelescopeNetworkEnv": {"n_targets": 12, "too_pool": 16},
}
LIMIT = 15


def _training_stack(env_id: str) -> gym.Env:
    spec = next(s for s in ENV_SPECS if s.id == env_id)
    env = gym.make(env_id, **FAST[spec.entry_point])  # passive env checker on, as in user code
    env = gym.wrappers.TimeLimit(env, max_episode_steps=LIMIT)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if isinstance(env.action_space, gym.spaces.Box):
        env = gym.wrappers.ClipAction(env)
    env = gym.wrappers.FlattenObservation(env)
    return gym.wrappers.NormalizeObservation(env)


@pytest.mark.parametrize("env_id", [s.id for s in ENV_SPECS])
def test_the_usual_wrapper_stack_trains_cleanly(env_id):
    env = _training_stack(env_id)
    assert len(env.observation_space.shape) == 1
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    episodes, steps = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker or wrapper warning is acceptable
        for _ in range(2 * LIMIT + 2):
            action = env.action_space.sample()
            if isinstance(env.action_space, gym.spaces.Box):
                action = 3.0 * action  # beyond the range: ClipAction's job, not an error
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            assert obs.shape == env.observation_space.shape and np.all(np.isfinite(obs))
            assert np.isfinite(reward)
            if terminated or truncated:
                assert terminated or steps == LIMIT, "TimeLimit not honoured"
                episodes.append(info["episode"])
                obs, _ = env.reset()
                steps = 0
    assert episodes and all(np.isfinite(e["r"]) and 1 <= e["l"] <= LIMIT for e in episodes)
    env.close()
