"""A seeing and cloud forecaster built on the learned weather generator: Monte Carlo over the next hour.

:class:`SeeingForecaster` starts ``n_samples`` chains of a fitted
:class:`~astrogym.surrogates.weather.FlowWeatherModel` from the conditions observed so far and rolls
them ``horizon_s`` forward: the expected seeing over the horizon is the mean of the chains' seeing,
the clear probability their fraction of clear records. All starts of a night are rolled in one
batch (one flow call per horizon step), so a whole night's forecasts cost a handful of calls: an
env can precompute them at reset and look them up in ``step``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from astrogym.surrogates.weather import FlowWeatherModel

# The generator fitted by ``python -m astrogym.surrogates.weather --out results/weather`` on the shipped sample
# records (4 nights in 5; its report gives the fit), copied here: what ``forecaster="weather-flow"`` loads.
SHIPPED_WEATHER_MODEL = Path(__file__).parent / "data" / "weather_generator.pt"


class SeeingForecaster:
    """Expected seeing and clear probability over the next ``horizon_s``, given the conditions so far.

    Parameters
    ----------
    model: a fitted :class:`FlowWeatherModel` (its cadence is the forecast's step).
    horizon_s: how far ahead (default one hour).
    n_samples: Monte Carlo chains per forecast.
    """

    def __init__(self, model: FlowWeatherModel, horizon_s: float = 3600.0, n_samples: int = 32):
        if horizon_s < model.cadence_s:
            raise ValueError(f"horizon_s={horizon_s} must be at least the model's cadence ({model.cadence_s:g} s)")
        if n_samples < 1:
            raise ValueError(f"n_samples={n_samples} must be >= 1")
        self.model, self.n_samples = model, int(n_samples)
        self.steps = int(round(horizon_s / model.cadence_s))

    def forecast(self, seeing_arcsec, cloud_state, night_start_mjd: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Forecasts after each record of a night (records at the model's cadence from ``night_start_mjd``).

        Returns ``(expected_seeing_arcsec, clear_probability)``, one per record: over the ``horizon_s``
        after that record, from chains started at it.
        """
        seeing = np.asarray(seeing_arcsec, dtype=float)
        cloud = np.asarray(cloud_state, dtype=np.int64)
        if seeing.shape != cloud.shape or seeing.ndim != 1:
            raise ValueError(f"seeing_arcsec {seeing.shape} and cloud_state {cloud.shape} must be equal 1-D shapes")
        m, n, cad = self.n_samples, seeing.size, self.model.cadence_s
        prev_s = np.repeat(np.log(seeing), m)
        prev_c = np.repeat(cloud, m)
        k0 = np.repeat(np.arange(n), m)
        sum_s, clear = np.zeros(n * m), np.zeros(n * m)
        not_first = np.zeros(n * m, bool)
        with torch.random.fork_rng():  # the caller's rng decides; the user's torch RNG is left alone
            torch.manual_seed(int(rng.integers(2**62)))
            for j in range(1, self.steps + 1):
                prev_s, prev_c = self.model.step(prev_s, prev_c, not_first, (k0 + j) * cad, night_start_mjd)
                sum_s += np.exp(prev_s)
                clear += prev_c == 0
        expected = (sum_s / self.steps).reshape(n, m).mean(axis=1)
        p_clear = (clear / self.steps).reshape(n, m).mean(axis=1)
        return expected, p_clear

    def forecast_night(self, weather, times_s, start_mjd: float, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The scheduling env's ``forecaster`` protocol: forecasts on the env's grid ``times_s``.

        The night's weather is read at the forecaster's cadence (the latest grid point at or before
        each record time); each grid point gets the forecast made at the latest record before it, so
        nothing after a point is used for its forecast.
        """
        times_s = np.asarray(times_s, dtype=float)
        cad = self.model.cadence_s
        records = np.arange(0.0, times_s[-1] + 1e-9, cad)
        at = np.clip(np.searchsorted(times_s, records, side="right") - 1, 0, times_s.size - 1)
        expected, p_clear = self.forecast(weather.seeing_arcsec[at], weather.cloud_state[at], start_mjd, rng)
        latest = np.clip((times_s / cad + 1e-9).astype(np.int64), 0, records.size - 1)
        return expected[latest], p_clear[latest]


def forecast_skill(forecaster: SeeingForecaster, records, climatology_seeing: float, clear_fraction: float,
                   seed: int = 0) -> dict:
    """Hour-ahead skill on ``records`` (nights not used to fit): mean squared error of the forecast mean
    seeing against climatology (``climatology_seeing``) and persistence (the seeing now), and of the
    clear-fraction forecast against the climatological ``clear_fraction``."""
    rng = np.random.default_rng(seed)
    errors = {"forecast": [], "climatology": [], "persistence": [], "clear_forecast": [], "clear_climatology": []}
    h = forecaster.steps
    for night in np.unique(records.night):
        sel = records.night == night
        s, c = records.seeing_arcsec[sel], records.cloud_state[sel]
        expected, p_clear = forecaster.forecast(s, c, float(records.mjd[sel][0]), rng)
        for k in range(s.size - h):
            future, clear = s[k + 1:k + 1 + h].mean(), np.mean(c[k + 1:k + 1 + h] == 0)
            errors["forecast"].append((expected[k] - future) ** 2)
            errors["climatology"].append((climatology_seeing - future) ** 2)
            errors["persistence"].append((s[k] - future) ** 2)
            errors["clear_forecast"].append((p_clear[k] - clear) ** 2)
            errors["clear_climatology"].append((clear_fraction - clear) ** 2)
    out = {f"mse_{k}": float(np.mean(v)) for k, v in errors.items()}
    out["n_forecasts"] = len(errors["forecast"])
    return out


@functools.lru_cache(maxsize=1)
def _shipped_model() -> FlowWeatherModel:
    return FlowWeatherModel.load(SHIPPED_WEATHER_MODEL)


def shipped_forecaster(horizon_s: float = 3600.0, n_samples: int = 32) -> SeeingForecaster:
    """The hour-ahead forecaster on the shipped weather generator (``forecaster="weather-flow"`` in the
    scheduling envs); the model file is read once per process. Its records come from the stochastic
    model at the default settings, so it forecasts the envs' default weather."""
    return SeeingForecaster(_shipped_model(), horizon_s, n_samples)
