"""Offline optimum of ``astrogym/TelescopeScheduling-v0``: a CP-SAT plan of the night with its weather known.

* :mod:`model`: the time-indexed integer program and :class:`OfflineOptimum` (plan, then replay through
  the env with :class:`~astrogym.agents.scheduling.replay.PlanReplayer`);
* :mod:`warm_start`: the greedy solution CP-SAT starts from;
* :mod:`lp_bound`: :func:`upper_bound_lp`, an LP bound on any policy's return;
* :mod:`plan`: :class:`PlannedExposure`, the model's blocks, :func:`plan_value`.

OR-Tools and HiGHS are imported only when a plan or a bound is computed.
"""

from astrogym.agents.scheduling.optimum.lp_bound import upper_bound_lp
from astrogym.agents.scheduling.optimum.model import OfflineOptimum
from astrogym.agents.scheduling.optimum.plan import PlannedExposure, plan_value

__all__ = ["OfflineOptimum", "PlannedExposure", "plan_value", "upper_bound_lp"]
