"""Policies for ``astrogym/TelescopeScheduling-v0``.

* :mod:`greedy`: :class:`GreedyScheduler`, priority per second needed to complete a visit now;
* :mod:`random`: :class:`RandomValidScheduler`, a uniformly random allowed action;
* :mod:`graph`: :func:`to_pyg_batch`, the graph observation as ``torch_geometric`` data (for GNN policies);
* :mod:`replay`: :class:`PlanReplayer`, the one rule by which planned schedules are replayed through the env;
* :mod:`astroplan`: ``AstroplanScheduler``, astroplan's schedulers planned once and replayed (imports
  astroplan when planning), with :mod:`astroplan_constraints` (the env's rules and numbers for astroplan);
* :mod:`lookahead`: ``RolloutLookahead``, greedy rollouts of the best few actions in a copy of the env, on
  a forecast from the weather so far (online) or on the true weather (a clairvoyant reference);
* :mod:`optimum`: ``OfflineOptimum``, an exact search over the night's action sequences with its weather
  known (warm starts, a CP-SAT plan on small catalogues, large-neighbourhood search), replayed, and the LP
  upper bound on any policy's return (OR-Tools, HiGHS).

This package imports neither astroplan nor OR-Tools: import those two from their modules.
"""

from astrogym.agents.scheduling.graph import to_pyg_batch
from astrogym.agents.scheduling.greedy import GreedyScheduler
from astrogym.agents.scheduling.random import RandomValidScheduler
from astrogym.agents.scheduling.replay import PlanEntry, PlanReplayer

__all__ = ["GreedyScheduler", "PlanEntry", "PlanReplayer", "RandomValidScheduler", "to_pyg_batch"]
