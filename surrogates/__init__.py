"""Learned models every domain reuses: dynamics ensembles, system identification and normalizing flows.

* :mod:`~astrogym.surrogates.transitions`: :func:`collect` records ``(obs, action, reward, next_obs, done)``
  from any Box env and ``predict`` policy (with exploration noise) into :class:`Transitions` (an atomic,
  versioned ``.npz`` format).
* :mod:`~astrogym.surrogates.dynamics`: :class:`EnsembleDynamics`, K probabilistic members (MLP or
  convolutional) predicting the next observation's learned part and the reward, with epistemic and
  aleatoric spread kept apart, multi-step rollouts and save/load; :mod:`~astrogym.surrogates.structure`
  says what of the next observation is known (the shifted history) and what is learned.
* :mod:`~astrogym.surrogates.surrogate_env`: :class:`SurrogateEnv` and :class:`SurrogateVectorEnv`, the
  model behind the Gymnasium API.
* :mod:`~astrogym.surrogates.system_id`: closed-loop frequency-response estimation with a known
  excitation, parametric fits, the output-disturbance spectrum (the interferometer's plant identification).

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

from astrogym.surrogates.dynamics import EnsembleDynamics
from astrogym.surrogates.flows import FlowDensityEstimator, FlowSpec
from astrogym.surrogates.forecast import SeeingForecaster
from astrogym.surrogates.shield import OODDetector, ShieldedPolicy
from astrogym.surrogates.surrogate_env import SurrogateEnv, SurrogateVectorEnv
from astrogym.surrogates.transitions import ExplorationNoise, Transitions, collect
from astrogym.surrogates.weather import FlowWeatherModel, load_records

__all__ = ["EnsembleDynamics", "ExplorationNoise", "FlowDensityEstimator", "FlowSpec", "FlowWeatherModel", "OODDetector",
           "SeeingForecaster", "ShieldedPolicy", "SurrogateEnv", "SurrogateVectorEnv", "Transitions", "collect",
           "load_records"]
