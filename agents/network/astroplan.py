"""astroplan per site: each telescope of a network follows its own astroplan schedule, as separate observatories do.

:class:`AstroplanPerSite` plans every site's night on its own with
:class:`~astrogym.agents.scheduling.astroplan.AstroplanScheduler` (astroplan's ``PriorityScheduler``
or ``SequentialScheduler`` over the shared catalogue, with that site's telescope, night and
constraints, through a single-site env built for it) and replays each plan at its telescope with
the shared :class:`~astrogym.agents.scheduling.replay.PlanReplayer` rule. The sites do not know each
other's plans, so two of them may plan the same target: the replay skips a target whose visits
another telescope has completed, and an exposure of one in flight elsewhere may turn out a
duplicate. Targets of opportunity are unknown when the night is planned; with ``toos_first``
(default) a telescope that is free when a ToO is allowed interrupts its plan for it (highest
priority first), then resumes the plan at its clock, which is how observatories handle alerts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from astrogym.agents.base import Policy
from astrogym.agents.scheduling.replay import PlanReplayer
from astrogym.envs.network.env import TelescopeNetworkEnv
from astrogym.envs.scheduling import kernels as K


class _TelescopeView:
    """What :class:`PlanReplayer` reads of a single-site env, for one telescope of the network (when it decides)."""

    def __init__(self, env: TelescopeNetworkEnv, telescope: int):
        self.env, self.k = env, telescope
        self.wait_action = env.wait_action
        self.catalogue = env.catalogue

    @property
    def state(self) -> dict:
        st = self.env.state
        return {"night": 0, "time_s": float(st["time_s"][self.k]), "visits": st["visits"]}

    @property
    def log(self) -> list[tuple]:
        return [(0, e["target"], e["decided_s"], e["start_s"], e["end_s"], e["snr"]) for e in self.env.log
                if e["telescope"] == self.k]

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks()

    def overhead_s(self, target: int) -> float:
        return self.env.overhead_s(target, self.k)


class AstroplanPerSite(Policy):
    """Each telescope replays its own site's astroplan plan (see the module docstring).

    Parameters
    ----------
    env: the network env (wrapped or not).
    kind: ``"priority"`` or ``"sequential"`` (astroplan's scheduler).
    toos_first: interrupt the plan for an allowed ToO.
    planner_options: keyword arguments of :class:`AstroplanScheduler` (time resolution, tolerances, ...).

    Attributes
    ----------
    planners: the per-site :class:`AstroplanScheduler` s of the current episode.
    plan_seconds: astroplan's planning time of the current episode, all sites.
    """

    def __init__(self, env: Any, kind: str = "priority", toos_first: bool = True, **planner_options: Any):
        un = getattr(env, "unwrapped", env)
        if not isinstance(un, TelescopeNetworkEnv):
            raise TypeError(f"AstroplanPerSite needs an astrogym/TelescopeNetwork-v0 env, got {type(un).__name__}")
        self.env, self.kind, self.toos_first = un, kind, bool(toos_first)
        self.planner_options = planner_options
        self.planners: list = []
        self.plan_seconds = 0.0
        self._episode = None
        self._replayers: list[PlanReplayer] = []

    def _plan(self) -> None:
        from astrogym.agents.scheduling.astroplan import AstroplanScheduler
        from astrogym.envs.scheduling.env import TelescopeSchedulingEnv

        env, cfg = self.env, self.env.config
        self.planners, self._replayers, self.plan_seconds = [], [], 0.0
        for k, night in enumerate(env.site_nights):
            single = TelescopeSchedulingEnv(
                site=night.site.key, telescope=night.telescope.key, date=night.table.date, grid_s=cfg.grid_s,
                twilight_deg=cfg.twilight_deg, min_altitude_deg=cfg.min_altitude_deg, max_airmass=cfg.max_airmass,
                min_moon_separation_deg=cfg.min_moon_separation_deg, wait_s=cfg.wait_s,
                sequence_bonus=cfg.sequence_bonus, n_targets=env.n_catalogue, catalogue=env.catalogue)
            single.reset(seed=0, options={"weather": [night.weather]})
            planner = AstroplanScheduler(single, kind=self.kind, **self.planner_options)
            self.planners.append(planner)
            self.plan_seconds += planner.plan_seconds
            # the single-site env's one night is night 0, as the replay's view reports it
            self._replayers.append(PlanReplayer(planner.plan_entries(), lead_s=planner.start_tolerance_s))
        self._episode = id(env.site_nights)

    def reset(self) -> None:
        self._episode = None

    def predict(self, observation: Any = None, state: Any = None, episode_start: Any = None,
                deterministic: bool = True):
        env = self.env
        if self._episode != id(env.site_nights):
            self._plan()
        k = env.decider
        mask = env.action_masks()
        if self.toos_first:
            toos = np.flatnonzero(mask[env.n_catalogue:env.wait_action]) + env.n_catalogue
            if toos.size:
                prio = env.target_table[k][toos, K.T_PRIO]
                return np.array(int(toos[np.argmax(prio)])), state
        return np.array(self._replayers[k].next_action(_TelescopeView(env, k))), state

    def episode_report(self) -> dict:
        """astroplan's planning time for the episode (all sites), for evaluation rows."""
        return {"plan_seconds": self.plan_seconds}
