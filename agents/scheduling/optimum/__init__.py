"""Offline optimum of ``astrogym/TelescopeScheduling-v0``: a CP-SAT plan of the night with its weather known.

:mod:`model` holds the integer program and :class:`OfflineOptimum` (plan, then replay through the env).
OR-Tools and HiGHS are imported only when a plan or a bound is computed.
"""

from astrogym.agents.scheduling.optimum.model import OfflineOptimum, PlannedExposure, plan_value, upper_bound_lp

__all__ = ["OfflineOptimum", "PlannedExposure", "plan_value", "upper_bound_lp"]
