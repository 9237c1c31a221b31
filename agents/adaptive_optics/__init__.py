"""Policies for ``astrogym/AdaptiveOptics-v0`` and its presets: the leaky integrator with its gain tuning
(:mod:`integrator`) and the linear predictive controller (:mod:`predictive`)."""

from astrogym.agents.adaptive_optics.integrator import LeakyIntegrator, run_ao, tune_integrator_gain
from astrogym.agents.adaptive_optics.predictive import LinearPredictiveController

__all__ = ["LeakyIntegrator", "LinearPredictiveController", "run_ao", "tune_integrator_gain"]
