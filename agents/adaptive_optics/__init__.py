"""Policies for ``astrogym/AdaptiveOptics-v0`` and its presets: the leaky integrator with its gain tuning
(:mod:`integrator`), the linear predictive controller (:mod:`predictive`), the convolutional PPO policy
(:mod:`cnn`) and the model-based PO4AO-style controller (:mod:`model_based`; torch, imported from its module)."""

from astrogym.agents.adaptive_optics.integrator import LeakyIntegrator, run_ao, tune_integrator_gain
from astrogym.agents.adaptive_optics.predictive import LinearPredictiveController

__all__ = ["LeakyIntegrator", "LinearPredictiveController", "run_ao", "tune_integrator_gain"]
