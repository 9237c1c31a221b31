"""Learned models every domain reuses: normalizing-flow density estimators (and, later, dynamics models).

* :mod:`~astrogym.surrogates.flows`: :class:`FlowDensityEstimator`, a conditional flow (zuko NSF or
  MAF) with standardisation, categorical columns, ``fit`` / ``log_prob`` / ``sample`` / ``save`` / ``load``.
* :mod:`~astrogym.surrogates.weather`: :class:`FlowWeatherModel`, a weather generator for the
  scheduling envs (``weather_model=``) fitted on site condition records.

Environments never import this package; its models plug into the envs' protocols from above.
"""

from astrogym.surrogates.flows import FlowDensityEstimator, FlowSpec
from astrogym.surrogates.weather import FlowWeatherModel, load_records

__all__ = ["FlowDensityEstimator", "FlowSpec", "FlowWeatherModel", "load_records"]
