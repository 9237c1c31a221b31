"""Policies behind one interface: ``predict(obs, state=None, episode_start=None, deterministic=True)``.

Classical baselines live here beside the learned policies so that evaluation code treats
them alike, grouped by domain the way :mod:`astrogym.envs` is:

* :mod:`astrogym.agents.base`: :class:`Policy`, :class:`ZeroPolicy`;
* :mod:`astrogym.agents.interferometer`: :class:`LoopShapingController` (:mod:`~.interferometer.loop_shaping`),
  :class:`H2Controller` (:mod:`~.interferometer.h2`), the dilated causal encoder of the learned lock policy
  (:mod:`~.interferometer.temporal`);
* :mod:`astrogym.agents.adaptive_optics`: :class:`LeakyIntegrator` and :func:`tune_integrator_gain`
  (:mod:`~.adaptive_optics.integrator`), :class:`LinearPredictiveController` (:mod:`~.adaptive_optics.predictive`),
  the fully convolutional actor-critic of the learned AO policy (:mod:`~.adaptive_optics.cnn`);
* :mod:`astrogym.agents.scheduling`: :class:`GreedyScheduler` (:mod:`~.scheduling.greedy`),
  ``RandomValidScheduler`` (:mod:`~.scheduling.random`), ``to_pyg_batch`` (:mod:`~.scheduling.graph`), the plan
  replayer (:mod:`~.scheduling.replay`), and two baselines that need heavier libraries and are imported from
  their modules only: ``astrogym.agents.scheduling.astroplan.AstroplanScheduler`` (astroplan) and
  ``astrogym.agents.scheduling.optimum.OfflineOptimum`` (OR-Tools CP-SAT, HiGHS).

* :mod:`astrogym.agents.residual`: residual control (a learned, bounded correction over any registered
  baseline), :mod:`astrogym.agents.registry` (policies by name, shipped checkpoints in ``agents/shipped/``),
  :mod:`astrogym.agents.checkpoints` (loading trained models as policies).

``import astrogym.agents`` imports neither astroplan nor OR-Tools, nor the torch modules.
"""

from astrogym.agents.adaptive_optics import LeakyIntegrator, LinearPredictiveController, tune_integrator_gain
from astrogym.agents.base import Policy, ZeroPolicy
from astrogym.agents.interferometer import H2Controller, H2Design, LoopShapingController, LoopShapingDesign
from astrogym.agents.scheduling import GreedyScheduler

__all__ = ["Policy", "ZeroPolicy", "GreedyScheduler", "LeakyIntegrator", "tune_integrator_gain",
           "LinearPredictiveController", "LoopShapingController", "LoopShapingDesign", "H2Controller", "H2Design"]
