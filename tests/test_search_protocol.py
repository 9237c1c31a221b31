"""The scheduling env's search protocol (snapshot, restore, weather) and the rollout lookaheads built on it."""

from __future__ import annotations

import copy

import astrogym  # noqa: F401
import gymnasium as gym
import numpy as np
import pytest
from astrogym.agents.scheduling.greedy import GreedyScheduler
from astrogym.agents.scheduling.lookahead import (RolloutLookahead, expected_forecast, greedy_candidates,
                                                  persistence_forecast)
from astrogym.envs.scheduling.weather import WeatherTrack

ENV_ID = "astrogym/TelescopeScheduling-v0"


def _env(**kwargs):
    kw = {"n_targets": 12, "wait_s": 60.0, "date": "2026-12-15"}
    kw.update(kwargs)
    return gym.make(ENV_ID, **kw)


def _steps(u, obs, policy, n):
    out = []
    for _ in range(n):
        a = int(policy.predict(obs)[0])
        obs, r, done, trunc, info = u.step(a)
        out.append((a, r, obs, done, info, len(u.log)))
        if done:
            break
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[0] == y[0] and x[1] == y[1] and x[3] == y[3] and x[4] == y[4] and x[5] == y[5]
        assert all(np.array_equal(x[2][k], y[2][k]) for k in x[2])


def test_snapshot_restore_is_bit_identical():
    """Across a night boundary, in the env and in a deepcopy of it; restoring the end state keeps needs_reset."""
    env = _env(n_nights=2)
    obs, _ = env.reset(seed=5)
    u = env.unwrapped
    greedy = GreedyScheduler.for_env(env)
    obs = _steps(u, obs, greedy, 150)[-1][2]
    snap = u.snapshot()
    first = _steps(u, obs, greedy, 10_000)
    assert first[-1][3] and u.needs_reset and first[-1][4]["night"] == 1
    end = u.snapshot()
    back = u.restore(snap)
    assert all(np.array_equal(back[k], obs[k]) for k in obs) and not u.needs_reset
    _same(first, _steps(u, back, greedy, 10_000))
    sim = copy.deepcopy(u)
    _same(first, _steps(sim, sim.restore(snap), greedy, 10_000))
    u.restore(end)
    assert u.needs_reset
    env.reset(seed=6)
    with pytest.raises(ValueError, match="another episode"):
        u.restore(snap)


def test_set_weather_changes_the_future_only_in_the_copy():
    env = _env()
    obs, _ = env.reset(seed=2)
    u = env.unwrapped
    tracks = u.weather_tracks
    assert len(tracks) == 1 and isinstance(tracks[0], WeatherTrack)
    sim = copy.deepcopy(u)
    n = tracks[0].seeing_arcsec.size
    thick = WeatherTrack(np.full(n, 0.8), np.full(n, 2, np.int8), np.full(n, 2.0))
    sim.set_weather([thick])
    assert u.weather_tracks[0] is tracks[0]  # the real env keeps its weather
    assert sim.weather_tracks[0].cloud_tau.min() == 2.0
    a = int(np.flatnonzero(u.action_masks()[:-1])[0])
    _, r_real, *_ = u.step(a)
    _, r_sim, *_ = sim.step(a)
    assert r_sim < r_real
    with pytest.raises(ValueError, match="one WeatherTrack per night"):
        sim.set_weather([thick, thick])
    with pytest.raises(ValueError, match="grid"):
        sim.set_weather([WeatherTrack(np.ones(3), np.zeros(3, np.int8), np.zeros(3))])


@pytest.mark.parametrize("weather", ["forecast", "truth"])
def test_lookahead_respects_the_mask(weather):
    env = _env(n_targets=8, invalid_action="raise")
    policy = RolloutLookahead(env, n_candidates=3, horizon_s=1200.0, weather=weather)
    obs, _ = env.reset(seed=1)
    done, total = False, 0.0
    while not done:
        a, _ = policy.predict(obs)
        assert env.unwrapped.action_masks()[a]
        obs, r, done, _, _ = env.step(a)
        total += r
    assert policy.simulated > 0 and total > 0
    batch, _ = policy.predict({k: v[None] for k, v in env.reset(seed=1)[0].items()})
    assert np.asarray(batch).shape == (1,)


def test_online_lookahead_never_reads_future_weather():
    """Changing the weather after the grid point at or before now (and the next one, which the observation's
    nearest-point conditions may read) leaves the decision and both forecasts as they were."""
    env = _env(n_targets=10)
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    greedy = GreedyScheduler.for_env(env)
    for _ in range(40):
        obs, *_ = u.step(int(greedy.predict(obs)[0]))
    while sum(u.action_masks()[a] for a in greedy_candidates(greedy, obs["nodes"].astype(float), 4)) < 2:
        obs, *_ = u.step(int(greedy.predict(obs)[0]))  # on to a decision with a choice to simulate
    grid = u.config.grid_s
    k0 = int(np.floor(u.state["time_s"] / grid))
    times = [u.nights[0].table.times_s]

    def forecasts():
        args = (u.weather_tracks, 0, u.state["time_s"], grid)
        return persistence_forecast(*args), expected_forecast(u.weather_model, u.site, *args, times)

    before = forecasts()
    decisions = []
    for variant in range(3):
        w = u.weather_tracks[0]
        seeing, state, tau = w.seeing_arcsec.copy(), w.cloud_state.copy(), w.cloud_tau.copy()
        if variant:
            rng = np.random.default_rng(variant)
            # the env's own observation reads the nearest grid point: keep k0 + 1, change everything later
            seeing[k0 + 2:] = rng.uniform(0.4, 3.0, seeing.size - k0 - 2)
            state[k0 + 2:] = rng.integers(0, 3, state.size - k0 - 2)
            tau[k0 + 2:] = np.array([0.0, 0.3, 2.0])[state[k0 + 2:]]
        snap = u.snapshot()
        u.set_weather([WeatherTrack(seeing, state, tau)])
        obs = u.restore(snap)
        for b, a in zip(before, forecasts()):
            for name in ("seeing_arcsec", "cloud_state", "cloud_tau"):
                assert np.array_equal(getattr(a[0], name), getattr(b[0], name))
        online = RolloutLookahead(env, n_candidates=4, horizon_s=3600.0, weather="forecast")
        decisions.append(int(online.predict(obs)[0]))
        assert online.simulated == 1
        u.set_weather([w])
    assert decisions[0] == decisions[1] == decisions[2]


def test_lookahead_bad_input():
    env = _env(n_targets=4)
    for kwargs, match in (({"n_candidates": 0}, "n_candidates"), ({"horizon_s": -1.0}, "horizon_s"),
                          ({"weather": "psychic"}, "weather"), ({"forecast": "tea leaves"}, "forecast"),
                          ({"margin": -0.1}, "margin")):
        with pytest.raises(ValueError, match=match):
            RolloutLookahead(env, **kwargs)
    with pytest.raises(TypeError, match="TelescopeScheduling"):
        RolloutLookahead(gym.make("CartPole-v1"))
    assert RolloutLookahead(env).margin == 0.05 and RolloutLookahead(env, weather="truth").margin == 0.0
