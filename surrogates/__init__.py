"""Learned models every domain reuses: normalizing-flow density estimators (and, later, dynamics models).

* :mod:`~astrogym.surrogates.flows`: :class:`FlowDensityEstimator`, a conditional flow (zuko NSF or
  MAF) with standardisation, categorical columns, ``fit`` / ``log_prob`` / ``sample`` / ``save`` / ``load``.
* :mod:`~astrogym.surrogates.weather`: :class:`FlowWeatherModel`, a weather generator for the
  scheduling envs (``weather_model=``) fitted on site condition records.
* :mod:`~astrogym.surrogates.forecast`: :class:`SeeingForecaster`, expected seeing and clear
  probability over the next hour by Monte Carlo over the weather generator.
* :mod:`~astrogym.surrogates.shield`: :class:`OODDetector` (a flow on features of normal operation,
  calibrated to a false-alarm rate) and :class:`ShieldedPolicy` (hands control to a classical
  fallback while out of distribution, with hysteresis and a hand-over log); the shipped shields are
  fitted by :mod:`astrogym.experiments.shield` and registered as ``temporal-shielded`` and ``cnn-shielded``.

Environments never import this package at module level; its models plug into the envs' protocols
from above. A config can name a shipped model instead (``forecaster="weather-flow"``), which the env
resolves through its registry (:data:`astrogym.envs.scheduling.weather.FORECASTERS`) only when asked.
"""

from astrogym.surrogates.flows import FlowDensityEstimator, FlowSpec
from astrogym.surrogates.forecast import SeeingForecaster
from astrogym.surrogates.shield import OODDetector, ShieldedPolicy
from astrogym.surrogates.weather import FlowWeatherModel, load_records

__all__ = ["FlowDensityEstimator", "FlowSpec", "FlowWeatherModel", "OODDetector", "SeeingForecaster", "ShieldedPolicy",
           "load_records"]
