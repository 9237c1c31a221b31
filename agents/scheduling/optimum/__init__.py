"""Offline optimum of ``astrogym/TelescopeScheduling-v0``: the best action sequence found, the weather known.

* :mod:`offline`: :class:`OfflineOptimum`, candidates (greedy, the rollout lookaheads, the CP-SAT plan on
  small catalogues) valued exactly in a simulation copy of the env, improved by a large-neighbourhood
  search over action sequences, replayed action for action; never below any of its warm starts;
* :mod:`search`: trajectories, exact evaluation of action sequences, the large-neighbourhood search;
* :mod:`model`: :class:`TimeIndexedPlanner`, the time-indexed CP-SAT program (worst-case slews, whole
  slots), one candidate; :mod:`warm_start`: its greedy starting solution; :mod:`plan`: its exposures;
* :mod:`lp_bound`: :func:`upper_bound_lp`, an LP bound on any policy's return (the optimality gap).

OR-Tools and HiGHS are imported only when a plan or a bound is computed.
"""

from astrogym.agents.scheduling.optimum.lp_bound import upper_bound_lp
from astrogym.agents.scheduling.optimum.model import TimeIndexedPlanner
from astrogym.agents.scheduling.optimum.offline import OfflineOptimum
from astrogym.agents.scheduling.optimum.plan import PlannedExposure, plan_value

__all__ = ["OfflineOptimum", "PlannedExposure", "TimeIndexedPlanner", "plan_value", "upper_bound_lp"]
