"""Policies behind one interface: ``predict(obs, state=None, episode_start=None, deterministic=True)``.

Classical baselines live here beside the learned policies so that evaluation code treats
them alike. The scheduling baselines that need heavier libraries are imported from their modules:
``astrogym.agents.astroplan_scheduler.AstroplanScheduler`` (astroplan) and
``astrogym.agents.offline_optimum.OfflineOptimum`` (OR-Tools CP-SAT, HiGHS).
"""

from astrogym.agents.base import Policy, ZeroPolicy
from astrogym.agents.greedy_scheduler import GreedyScheduler
from astrogym.agents.integrator import LeakyIntegrator, tune_integrator_gain
from astrogym.agents.loop_shaping import LoopShapingController, LoopShapingDesign
from astrogym.agents.predictive import LinearPredictiveController

__all__ = ["Policy", "ZeroPolicy", "GreedyScheduler", "LeakyIntegrator", "tune_integrator_gain",
           "LinearPredictiveController", "LoopShapingController", "LoopShapingDesign"]
