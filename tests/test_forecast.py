"""The seeing forecaster: more skill than climatology on held-out nights of the shipped records."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import astrogym  # noqa: F401
from astrogym.surrogates.forecast import SeeingForecaster
from astrogym.surrogates.weather import FlowWeatherModel, load_records

torch.set_num_threads(1)


def test_forecasts_beat_climatology_on_held_out_nights():
    records = load_records()
    train = records.night % 5 != 0
    model = FlowWeatherModel.fit(records.subset(train), epochs=15, seed=0, hidden=(32, 32), transforms=2)
    forecaster = SeeingForecaster(model, horizon_s=3600.0, n_samples=16)
    rng = np.random.default_rng(0)
    err_f, err_c, p_hits = [], [], []
    climatology = np.median(records.seeing_arcsec[train])
    for night in np.unique(records.night[~train])[:8]:
        sel = records.night == night
        s, c = records.seeing_arcsec[sel], records.cloud_state[sel]
        expected, p_clear = forecaster.forecast(s, c, float(records.mjd[sel][0]), rng)
        assert expected.shape == s.shape and np.all((p_clear >= 0) & (p_clear <= 1))
        for k in range(s.size - forecaster.steps):
            future = s[k + 1:k + 1 + forecaster.steps]
            err_f.append((expected[k] - future.mean()) ** 2)
            err_c.append((climatology - future.mean()) ** 2)
            p_hits.append((p_clear[k], np.mean(c[k + 1:k + 1 + forecaster.steps] == 0)))
    assert np.mean(err_f) < 0.9 * np.mean(err_c)  # the recent past carries information
    p = np.array(p_hits)
    assert p[p[:, 0] > 0.7, 1].mean() > p[p[:, 0] < 0.3, 1].mean() + 0.3  # clear probability discriminates


def test_invalid_forecaster_settings_are_refused():
    model = FlowWeatherModel.fit(load_records(), epochs=1, hidden=(8,), transforms=1)
    with pytest.raises(ValueError, match="horizon_s=60.0 must be at least the model's cadence"):
        SeeingForecaster(model, horizon_s=60.0)
    with pytest.raises(ValueError, match="must be equal 1-D shapes"):
        SeeingForecaster(model).forecast(np.ones(3), np.zeros(4), 61000.0, np.random.default_rng(0))


def test_forecasts_enter_the_scheduling_observation_only_when_asked():
    model = FlowWeatherModel.fit(load_records(), epochs=3, hidden=(16,), transforms=1)
    plain = gym.make("astrogym/TelescopeScheduling-v0", n_targets=12)
    shown = gym.make("astrogym/TelescopeScheduling-v0", n_targets=12, forecaster=SeeingForecaster(model, n_samples=4))
    n = plain.observation_space["globals"].shape[0]
    assert shown.observation_space["globals"].shape == (n + 2,)
    o1, _ = plain.reset(seed=0)
    o2, _ = shown.reset(seed=0)
    np.testing.assert_array_equal(o1["globals"], o2["globals"][:n])  # the same weather, two more numbers
    assert shown.observation_space.contains(o2) and 0.0 <= o2["globals"][-1] <= 1.0
    for _ in range(5):
        o2, *_ = shown.step(shown.unwrapped.action_masks().nonzero()[0][0])
        assert shown.observation_space.contains(o2)
    with pytest.raises(TypeError, match="forecaster must have a forecast_night"):
        gym.make("astrogym/TelescopeScheduling-v0", n_targets=12, forecaster=object())


def test_configs_name_the_shipped_forecaster_and_seeds_stay_paired():
    """``forecaster="weather-flow"`` (what a YAML config can say) loads the shipped generator; the forecast
    draws from its own stream, so a seed gives the same night with and without it (the paired comparison)."""
    kw = dict(n_targets=15, date="2026-12-15")
    shown = gym.make("astrogym/TelescopeScheduling-v0", forecaster="weather-flow", **kw)
    plain = gym.make("astrogym/TelescopeScheduling-v0", **kw)
    for seed in (3, 4):
        o1, _ = shown.reset(seed=seed)
        o2, _ = plain.reset(seed=seed)
        np.testing.assert_array_equal(o1["globals"][:-2], o2["globals"])
        w1, w2 = shown.unwrapped.nights[0].weather, plain.unwrapped.nights[0].weather
        np.testing.assert_array_equal(w1.seeing_arcsec, w2.seeing_arcsec)
        np.testing.assert_array_equal(w1.cloud_state, w2.cloud_state)
        assert 0.0 < o1["globals"][-1] < 1.0 and 0.1 < o1["globals"][-2] < 5.0
    again = gym.make("astrogym/TelescopeScheduling-v0", forecaster="weather-flow", **kw)
    np.testing.assert_array_equal(again.reset(seed=4)[0]["globals"], o1["globals"])
    with pytest.raises(ValueError, match="forecaster='oracle' is not a registered forecaster; allowed: weather-flow"):
        gym.make("astrogym/TelescopeScheduling-v0", forecaster="oracle", **kw)


def test_the_gnn_policy_sizes_itself_to_the_forecast_globals():
    from astrogym.agents.scheduling.gnn import GNNSchedulingPolicy

    env = gym.make("astrogym/TelescopeScheduling-v0", forecaster="weather-flow", n_targets=15, date="2026-12-15")
    policy = GNNSchedulingPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden=8)
    obs, _ = env.reset(seed=0)
    tensors = {k: torch.as_tensor(np.asarray(v))[None] for k, v in obs.items()}
    logits, value = policy.logits_and_value(tensors)
    assert logits.shape == (1, env.action_space.n) and value.shape == (1, 1)
