"""astroplan's classical schedulers as baselines for ``astrogym/TelescopeScheduling-v0``.

:class:`AstroplanScheduler` turns the env's current episode (catalogue, nights, constraints,
telescope) into astroplan ``ObservingBlock`` s, schedules them once with astroplan's
``PriorityScheduler`` or ``SequentialScheduler``, and then replays that fixed plan through the env
behind stable-baselines3's ``predict`` interface, so that evaluation code treats it like any other
policy. :func:`astroplan_decision_time` times astroplan per placed block for benchmarks. The
constraint builders and the numbers astroplan lacks (:func:`fit_slew_rate`,
:func:`etc_exposures_per_visit`) live in :mod:`astroplan_constraints`; the replay in :mod:`replay`.

What the translation keeps and what it cannot (astroplan 0.10):

* Constraints: ``AltitudeConstraint(min_altitude_deg)``, ``AirmassConstraint(max_airmass)``,
  ``MoonSeparationConstraint(min_moon_separation_deg)`` and ``AtNightConstraint(twilight_deg)``,
  the env's four; a target's time window becomes a per-block ``TimeConstraint``. astroplan checks
  them on its own grid (``time_resolution_s``): at block start, middle and end for
  ``SequentialScheduler``, at every grid point of the block for ``PriorityScheduler``.
* Priorities: astroplan ranks "lower number = more important"; a block gets
  ``max(priority) / priority`` (1 for the most important target, ratios kept). Only the order
  matters to ``PriorityScheduler``; ``SequentialScheduler`` ignores priorities and takes, at each
  time, the first observable block in list order, so blocks are listed first visits first, then
  by decreasing env priority.
* Visits: one block per requested visit. astroplan has no minimum gap between blocks of one
  target (the env masks a later visit until ``min_gap_s`` has passed since the previous visit's
  end), so by default (``visit_rounds=True``) visits are scheduled in rounds, each night into one
  astroplan ``Schedule``: round 1 offers every target's next missing visit; round k+1 offers the
  next visit of only the targets whose visit was placed in round k, each with a per-block
  ``TimeConstraint(min=<end of that visit> + min_gap_s + visit_gap_margin_s)`` (the schedule's
  window bounds it above), and is scheduled into the time the earlier rounds left free. Rounds
  stop when one places no multi-visit target's visit; blocks not placed go to the next night's
  round 1 (their gap constraint then still counts from the earlier night's visit). A mid-night
  :meth:`AstroplanScheduler.replan` takes the env's end of each target's last visit as the start
  of its gap. How the later rounds reuse the schedule (astroplan 0.10.1,
  ``Scheduler.__call__(blocks, schedule)`` documents "the schedule must be empty" but both
  schedulers read what it holds):

  - ``PriorityScheduler`` handles a pre-filled schedule natively: ``_get_filled_indices`` closes
    the grid points inside placed ``ObservingBlock`` s, and ``attempt_insert_block`` adds or
    replaces ``TransitionBlock`` s before and after the new block, using the earlier blocks'
    ``start_idx``/``end_idx``; these stay valid because every round uses the same schedule window
    and ``time_resolution_s``.
  - ``SequentialScheduler`` walks the night again from its start; it rejects a candidate when a
    pre-filled slot's start or end lies inside it, but not one lying wholly inside a pre-filled
    slot (``insert_slot`` would then raise 'slot is already occupied'), so later-round blocks get
    one more per-block constraint, false inside the occupied slots. Its transition into a new block
    is computed from the schedule's last ``ObservingBlock`` (astroplan's rule), not from the one
    before it in time, and the earlier round's transition into the following block is kept, so a
    later-round block's slews are approximate.

  ``visit_rounds=False`` is the old translation: every missing visit at once (astroplan may put
  visits back to back, the env masks the later one and the replay skips it).
* Overheads: astroplan's ``Transitioner`` has one constant slew rate on the sky. The rate is fitted
  to the env's telescope (trapezoidal axes, dome and settle) over pairs of this catalogue's
  targets visible at the same time (total slew time matched); the filter change
  (``instrument_reconfig_times['filter']``) adds to the slew in astroplan, while the env runs them
  in parallel. ``PriorityScheduler`` rounds each transition up to ``time_resolution_s``.
* Durations: a block is ``n_exposures x (exposure_s + readout_s)``, rounded up to the time
  resolution so that astroplan's rounding never shortens it below what the env needs.
  astroplan has no exposure time calculator while the env completes a visit only once its SNR^2
  reaches the request (one catalogue exposure reaches it only at zenith in dark sky and 0.8"
  seeing), so by default (``exposures_per_visit="etc"``) the count comes from the env's
  photometry (:mod:`astrogym.envs.scheduling.photometry`): the median, over the target's visible
  grid points, of the SNR^2 of one exposure at the median seeing and a clear sky.
* Weather: astroplan plans blind (clear sky); the replay meets the env's weather.

The window-end pitfall: in a schedule window shorter than the night (``end_s``), astroplan's
``SequentialScheduler`` may pick a block that runs past the window's end and
``Schedule.insert_slot`` raises ``ValueError('longer block than slot')``, losing the whole run
(``PriorityScheduler`` prints "Failed to insert" and moves on). Here a global
``TimeConstraint(window start, window end)`` keeps every block inside the window
(``guard_window_end=True``); without it the error is caught, the overrunning block is dropped
and the partial schedule kept (``n_dropped_blocks`` counts them).
"""

from __future__ import annotations

import contextlib
import io
import math
import time as _time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from astrogym.agents.scheduling.astroplan_constraints import (
    block_constraints,
    env_constraints,
    etc_exposures_per_visit,
    fit_slew_rate,
    occupied_constraint,
)
from astrogym.agents.scheduling.replay import PlanEntry, PlanReplayer
from astrogym.envs.scheduling.env import TelescopeSchedulingEnv
from astrogym.envs.scheduling.telescope import FILTERS

KINDS = ("priority", "sequential")


@dataclass(frozen=True)
class PlannedBlock:
    """One block astroplan placed, in env terms.

    Attributes
    ----------
    target: index into the env's catalogue.
    visit: which requested visit of the target this block stands for (0-based).
    night: index of the episode's night it lies in.
    decision_s: seconds since that night's evening twilight when the telescope should start moving
        (start of astroplan's transition before the block, else the block's start).
    start_s, end_s: the block itself, seconds since that night's evening twilight.
    n_exposures: exposures the block holds (each ``exposure_s`` plus readout).
    priority: the astroplan priority it was scheduled with (lower = more important).
    """

    target: int
    visit: int
    night: int
    decision_s: float
    start_s: float
    end_s: float
    n_exposures: int
    priority: float


class AstroplanScheduler:
    """astroplan's ``PriorityScheduler`` or ``SequentialScheduler``, planned once per episode and replayed.

    ## Description
    On the first :meth:`predict` of an episode (or at construction, if the env was already reset)
    the scheduler builds astroplan blocks and constraints from ``env.unwrapped`` (see the module
    docstring for the translation), schedules every night of the episode in turn (blocks not placed
    on one night are offered to the next), each night in visit rounds that keep the minimum gap
    between a target's visits, and stores the placed blocks in time order (:attr:`plan`).
    :meth:`predict` then replays the plan against the env's own state: it reads ``env.unwrapped``
    (time, night, visits, action mask, exposure log), not the observation, and keeps only a pointer
    into the plan.

    ## Replay rule
    The shared :class:`~astrogym.agents.scheduling.replay.PlanReplayer` (the offline optimum uses
    it too), with each block an entry due at its decision time, ``lead_s = start_tolerance_s``,
    dropped as soon as it is masked and holding up to ``ceil(max_exposure_factor x n_exposures)``
    exposures. At each decision, for the next block of the plan:

    * the block's night is over, or its target has all its visits: skip it;
    * its decision time (the start of astroplan's transition into it) is more than
      ``start_tolerance_s`` ahead of the env's time: wait (``env.wait_action``, which lasts
      ``config.wait_s``; create the env with a small ``wait_s``, e.g. 60 s, or replays start up to
      one wait late);
    * due or late, and allowed by ``env.action_masks()``: observe it. The block then keeps the
      telescope for up to ``ceil(max_exposure_factor x n_exposures)`` exposures, ending early
      when the env reports the visit complete or masks the target;
    * due or late but masked (the env's stricter model: real slews, visibility through the whole
      exposure from the end of the slew, minimum gap between visits, dawn): skip it. Skipped blocks
      are never retried; :attr:`outcomes` records each block's fate.

    When the plan is exhausted it waits until the end of the episode. Clouds do not mask targets
    in the env: a block observed through clouds gains little SNR and, with
    ``max_exposure_factor`` > 1, takes extra exposures up to the limit.

    ## New episodes
    A new episode is detected from ``episode_start`` (any true entry), from the env's clock going
    back (night index, then ``state["time_s"]``), from the env's exposure log shrinking (a reset
    clears it), or from a changed catalogue or night dates. The plan depends only on the catalogue,
    the nights and the configuration (astroplan plans blind to weather), so a new episode with the
    same ones reuses the stored plan (astroplan is deterministic) and only rewinds the pointer;
    otherwise astroplan runs again. :meth:`replan` forces a run, e.g. from the current time.

    ## Arguments
    env: the ``astrogym/TelescopeScheduling-v0`` env (wrapped or not) to plan and act for; one env,
        not a ``VecEnv``.
    kind: ``"priority"`` (``PriorityScheduler``: blocks in priority order, each at its best-scoring
        time) or ``"sequential"`` (``SequentialScheduler``: walks the night, taking the first
        observable block).
    time_resolution_s: astroplan's time grid (s). Coarser is faster and wastes more time.
    exposures_per_visit: ``"etc"`` (default, see the module docstring) or an int used for every
        visit (1 = the catalogue's single exposure).
    max_exposures_per_visit: cap on the ETC's count.
    slew_rate_deg_s: astroplan's constant slew rate; ``None`` fits it to the env's telescope.
    airmass_score: ``None`` (default): for ``"priority"`` a non-boolean ``AirmassConstraint``, so
        each block goes to the lowest airmass available (astroplan's documented usage); for
        ``"sequential"`` a boolean one, so that list (priority) order decides. ``True``/``False``
        force it.
    gap_time_s: ``SequentialScheduler``'s step forward when nothing is observable.
    start_tolerance_s: how early a block's decision time may be and still count as due.
    max_exposure_factor: exposures a replayed block may take, relative to the plan (>= 1).
    guard_window_end: add the ``TimeConstraint`` that keeps blocks inside the schedule window.
    end_s: plan the first night only up to this many seconds after its evening twilight (a window
        shorter than the night: faster, and what the window-end pitfall needs); ``None`` = whole
        night. Later nights are always planned whole.
    visit_rounds: schedule visits in rounds that keep each target's ``min_gap_s`` (module
        docstring); ``False``: all visits in one astroplan call per night, as astroplan alone would.
    visit_gap_margin_s: seconds added to ``min_gap_s`` in the rounds' time constraints (slack for a
        replay that ends the earlier visit later than planned).

    ## Attributes
    plan: the placed blocks, :class:`PlannedBlock` s in time order.
    schedules: astroplan ``Schedule`` per night of the last run.
    plan_seconds: wall time of the last astroplan run, all nights and visit rounds (building
        constraints, blocks and the ``Transitioner``, and scheduling; not the slew-rate fit or the ETC).
    n_decisions: blocks astroplan placed in the last run, all rounds; ``plan_seconds / n_decisions``
        is its time per decision.
    n_blocks: visits the last run had to schedule (one block each; with visit rounds a later visit
        is offered only once the one before is placed).
    n_offered: blocks handed to astroplan in the last run, summed over its calls (a block not placed
        on one night is offered again on the next).
    n_rounds: astroplan scheduler calls in the last run (visit rounds x nights).
    n_dropped_blocks: blocks lost to a caught ``ValueError('longer block than slot')``.
    n_insert_failures: "Failed to insert" messages printed by ``PriorityScheduler`` (captured).
    slew_rate_deg_s: the rate used. ``exposures``: (N,) exposures per visit used.
    outcomes: list, per plan entry, of ``None`` (not reached yet), ``"observed"`` or
        ``"skipped:<reason>"`` with reason ``masked``, ``done`` or ``night_over``.
    replay: the :class:`~astrogym.agents.scheduling.replay.PlanReplayer` following the plan
        (``replay.position``: index of the next plan entry).

    Raises
    ------
    TypeError: ``env`` is not a ``TelescopeSchedulingEnv`` (after unwrapping).
    ValueError: unknown ``kind`` or out-of-range numbers.
    """

    def __init__(self, env: Any, kind: str = "priority", time_resolution_s: float = 60.0, *,
                 exposures_per_visit: int | str = "etc", max_exposures_per_visit: int = 20,
                 slew_rate_deg_s: float | None = None, airmass_score: bool | None = None, gap_time_s: float = 300.0,
                 start_tolerance_s: float = 30.0, max_exposure_factor: float = 1.5, guard_window_end: bool = True,
                 end_s: float | None = None, visit_rounds: bool = True, visit_gap_margin_s: float = 0.0):
        unwrapped = getattr(env, "unwrapped", env)
        if not isinstance(unwrapped, TelescopeSchedulingEnv):
            raise TypeError("AstroplanScheduler needs an astrogym/TelescopeScheduling-v0 env, got "
                            f"{type(unwrapped).__name__}")
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; choose one of {list(KINDS)}")
        if not (isinstance(time_resolution_s, (int, float)) and time_resolution_s > 0):
            raise ValueError(f"time_resolution_s={time_resolution_s!r} must be a number > 0")
        if isinstance(exposures_per_visit, str):
            if exposures_per_visit != "etc":
                raise ValueError(f"exposures_per_visit={exposures_per_visit!r}: use 'etc' or an int >= 1")
        elif isinstance(exposures_per_visit, bool) or not isinstance(exposures_per_visit, (int, np.integer)) \
                or exposures_per_visit < 1:
            raise ValueError(f"exposures_per_visit={exposures_per_visit!r}: use 'etc' or an int >= 1")
        if not int(max_exposures_per_visit) >= 1:
            raise ValueError(f"max_exposures_per_visit={max_exposures_per_visit} must be >= 1")
        if slew_rate_deg_s is not None and not slew_rate_deg_s > 0:
            raise ValueError(f"slew_rate_deg_s={slew_rate_deg_s} must be > 0 (or None to fit it)")
        if not gap_time_s > 0:
            raise ValueError(f"gap_time_s={gap_time_s} must be > 0")
        if not start_tolerance_s >= 0:
            raise ValueError(f"start_tolerance_s={start_tolerance_s} must be >= 0")
        if not max_exposure_factor >= 1.0:
            raise ValueError(f"max_exposure_factor={max_exposure_factor} must be >= 1")
        if end_s is not None and not end_s > 0:
            raise ValueError(f"end_s={end_s} must be > 0 (or None for the whole night)")
        if not visit_gap_margin_s >= 0:
            raise ValueError(f"visit_gap_margin_s={visit_gap_margin_s} must be >= 0")
        self.env = unwrapped
        self.kind = kind
        self.time_resolution_s = float(time_resolution_s)
        self.exposures_per_visit = exposures_per_visit
        self.max_exposures_per_visit = int(max_exposures_per_visit)
        self._slew_rate_override = slew_rate_deg_s
        self.airmass_score = (kind == "priority") if airmass_score is None else bool(airmass_score)
        self.gap_time_s = float(gap_time_s)
        self.start_tolerance_s = float(start_tolerance_s)
        self.max_exposure_factor = float(max_exposure_factor)
        self.guard_window_end = bool(guard_window_end)
        self.end_s = None if end_s is None else float(end_s)
        self.visit_rounds = bool(visit_rounds)
        self.visit_gap_margin_s = float(visit_gap_margin_s)
        self.plan: list[PlannedBlock] = []
        self.schedules: list = []
        self.plan_seconds = 0.0
        self.n_decisions = 0
        self.n_blocks = 0
        self.n_dropped_blocks = 0
        self.n_insert_failures = 0
        self.n_rounds = 0
        self.n_offered = 0
        self.slew_rate_deg_s: float | None = None
        self.exposures: np.ndarray | None = None
        self._key = None
        self.replay = PlanReplayer([], lead_s=self.start_tolerance_s)
        if unwrapped.nights:  # already reset: plan now, so plan_seconds is available at once
            self.replan(from_now=False)

    # -- planning -------------------------------------------------------------------------------------
    def _episode_key(self) -> tuple:
        env = self.env
        return (id(env.catalogue), env.catalogue.digest(), tuple(n.table.mjd_start for n in env.nights))

    def replan(self, from_now: bool = True, end_s: float | None = None) -> list[PlannedBlock]:
        """Run astroplan for the env's current episode and rewind the replay to the new plan.

        Parameters
        ----------
        from_now: plan from the env's current time and night with the visits still missing (mid-night
            replanning); ``False`` plans the whole episode from its first evening with every visit.
        end_s: end the current night's window this many seconds after its evening twilight (a window
            shorter than the night); ``None`` = the constructor's ``end_s`` (``None`` there: morning
            twilight). Later nights are planned whole.

        Returns
        -------
        The new :attr:`plan`.

        Raises
        ------
        gymnasium.error.ResetNeeded: the env has not been reset.
        ValueError: ``end_s`` is not after the window's start.
        """
        import gymnasium as gym

        env = self.env
        if not env.nights:
            raise gym.error.ResetNeeded("reset the env before planning with astroplan")
        state = env.state
        night0 = state["night"] if from_now else 0
        start0 = state["time_s"] if from_now else 0.0
        visits_done = state["visits"] if from_now else np.zeros(len(env.catalogue), np.int64)
        if end_s is not None and not end_s > start0:
            raise ValueError(f"end_s={end_s} must be after the window's start ({start0:.0f} s)")
        # an explicit end_s cuts the current night; the constructor's cuts the episode's first night only
        cut_night, cut_s = (night0, float(end_s)) if end_s is not None else (0, self.end_s)
        self._prepare()
        windows = []
        for k in range(night0, len(env.nights)):
            length = env.nights[k].table.length_s
            lo = start0 if k == night0 else 0.0
            hi = min(cut_s, length) if (cut_s is not None and k == cut_night) else length
            windows.append((k, lo, hi))
        last_end_mjd = None
        if from_now and self.visit_rounds:
            # the env measures a visit's gap from the previous visit's end (episode seconds); a visit in
            # progress (SNR^2 > 0) has no gap to keep
            ep_end = np.asarray(env.last_visit_end_s, float)
            night = env.nights[night0]
            last_end_mjd = np.where((ep_end > -1e17) & (np.asarray(state["snr2"]) == 0.0),
                                    night.table.mjd_start + (ep_end - night.offset_s) / 86400.0, -np.inf)
        self._run_astroplan(windows, visits_done, last_end_mjd)
        self._key = self._episode_key()
        self._rewind()
        return self.plan

    def _prepare(self) -> None:
        """Slew rate and exposures per visit: numbers from the env's models that astroplan lacks."""
        self.slew_rate_deg_s = (float(self._slew_rate_override) if self._slew_rate_override is not None
                                else fit_slew_rate(self.env))
        if self.exposures_per_visit == "etc":
            self.exposures = etc_exposures_per_visit(self.env, self.max_exposures_per_visit)
        else:
            self.exposures = np.full(len(self.env.catalogue), int(self.exposures_per_visit), np.int64)

    def _run_astroplan(self, windows: list[tuple[int, float, float]], visits_done: np.ndarray,
                       last_end_mjd: np.ndarray | None = None) -> None:
        import astropy.units as u
        from astroplan import FixedTarget
        from astroplan.scheduling import (
            ObservingBlock,
            PriorityScheduler,
            Schedule,
            SequentialScheduler,
            TransitionBlock,
            Transitioner,
        )
        from astropy.coordinates import NonRotationTransformationWarning, SkyCoord
        from astropy.time import Time

        env, cfg, cat, tel = self.env, self.env.config, self.env.catalogue, self.env.telescope
        res = self.time_resolution_s
        t0 = _time.perf_counter()
        observer = env.site.observer()
        coords = SkyCoord(np.asarray(cat.ra) * u.deg, np.asarray(cat.dec) * u.deg, frame="icrs")
        targets = [FixedTarget(coord=coords[i], name=str(cat.name[i])) for i in range(len(cat))]
        prio = float(np.max(cat.priority)) / np.asarray(cat.priority, float)
        n_vis = np.asarray(cat.n_visits, np.int64)
        min_gap = np.asarray(cat.min_gap_s, float)

        def make_block(i: int, v: int, earliest_mjd: float | None = None) -> Any:
            n_exp = int(self.exposures[i])
            seconds = n_exp * (float(cat.exposure_s[i]) + tel.readout_s)
            seconds = math.ceil(seconds / res - 1e-9) * res
            if self.kind == "priority":
                # PriorityScheduler strides ceil(duration / res) grid points from the start, so the block's
                # end is never checked; 1 s more makes it check the end point too, and its rounding down
                # to whole grid steps takes the second off again.
                seconds += 1.0
            return ObservingBlock(targets[i], seconds * u.s, float(prio[i]),
                                  configuration={"filter": FILTERS[int(cat.filter[i])]},
                                  constraints=block_constraints(cat, i, earliest_mjd) or None, name=f"{i}:{v}")

        transitioner = Transitioner(slew_rate=self.slew_rate_deg_s * u.deg / u.s,
                                    instrument_reconfig_times={"filter": {"default": tel.filter_change_s * u.s}})

        def run_round(offered: list, schedule: Any, start: Any, end: Any) -> Any:
            """One astroplan call: ``offered`` into ``schedule`` (empty, or holding earlier rounds)."""
            # a fresh constraint list per call: PriorityScheduler appends to the one it is given
            constraints = env_constraints(cfg, self.airmass_score, (start, end) if self.guard_window_end else None)
            cls = PriorityScheduler if self.kind == "priority" else SequentialScheduler
            kwargs = {"gap_time": self.gap_time_s * u.s} if self.kind == "sequential" else {}
            scheduler = cls(constraints=constraints, observer=observer, transitioner=transitioner,
                            time_resolution=res * u.s, **kwargs)
            captured = io.StringIO()
            try:
                with contextlib.redirect_stdout(captured), warnings.catch_warnings():
                    # the Transitioner measures separations between AltAz frames of one time and site:
                    # astropy warns that such separations depend on direction; harmless here.
                    warnings.simplefilter("ignore", NonRotationTransformationWarning)
                    schedule = scheduler(offered, schedule)
            except ValueError as exc:
                if "longer block than slot" not in str(exc):
                    raise
                # The overrunning block was already taken off astroplan's list: keep what was placed.
                schedule = scheduler.schedule
                self.n_dropped_blocks += 1
            self.n_insert_failures += captured.getvalue().count("Failed to insert")
            self.n_rounds += 1
            self.n_offered += len(offered)
            return schedule

        placed: list[PlannedBlock] = []
        self.schedules = []
        self.n_dropped_blocks = 0
        self.n_insert_failures = 0
        self.n_rounds = 0
        self.n_offered = 0
        visits_done = np.minimum(np.asarray(visits_done, np.int64), n_vis)
        self.n_blocks = int((n_vis - visits_done).sum())
        # Without rounds: every missing visit at once, first visits first, then by decreasing env priority
        # (SequentialScheduler's tie order). With rounds: only each target's next visit (see the module docstring).
        pending = [(i, v) for v, _, i in sorted((v, -float(cat.priority[i]), i) for i in range(len(cat))
                                                for v in range(int(visits_done[i]), int(n_vis[i])))]
        blocks = {} if self.visit_rounds else {key: make_block(*key) for key in pending}
        # MJD end of each target's previous visit (placed, or observed before a mid-night re-plan)
        prev_end = np.full(len(cat), -np.inf) if last_end_mjd is None else np.asarray(last_end_mjd, float).copy()
        for night, lo, hi in windows:
            if not pending or hi - lo < res:  # nothing left, or a window too short for astroplan's grid
                continue
            table = env.nights[night].table
            start = Time(table.mjd_start + lo / 86400.0, format="mjd", scale="utc")
            end = Time(table.mjd_start + hi / 86400.0, format="mjd", scale="utc")
            schedule = Schedule(start, end)
            if not self.visit_rounds:
                schedule = run_round([blocks[key] for key in pending], schedule, start, end)
            else:
                # round 1: each target's next missing visit; round k+1: the next visit of the targets whose
                # visit was placed in round k, no earlier than min_gap after that visit's end.
                first: dict[int, int] = {}
                for i, v in pending:
                    first.setdefault(i, v)
                offer = sorted(first.items(), key=lambda iv: (-cat.priority[iv[0]], iv[0]))
                while offer:
                    offered = []
                    for i, v in offer:
                        earliest = None
                        if np.isfinite(prev_end[i]) and min_gap[i] > 0:
                            earliest = prev_end[i] + (min_gap[i] + self.visit_gap_margin_s) / 86400.0
                        offered.append(make_block(i, v, earliest))
                    if self.kind == "sequential" and schedule.scheduled_blocks:
                        busy = occupied_constraint([(s.start.mjd, s.end.mjd) for s in schedule.slots if s.block])
                        for b in offered:
                            b.constraints = (b.constraints or []) + [busy]
                    before = {b.name for b in schedule.observing_blocks}
                    schedule = run_round(offered, schedule, start, end)
                    offer = []
                    for b in schedule.observing_blocks:
                        if b.name in before:
                            continue
                        i, v = (int(x) for x in b.name.split(":"))
                        prev_end[i] = b.end_time.mjd
                        if v + 1 < n_vis[i]:
                            offer.append((i, v + 1))
                    offer.sort(key=lambda iv: (-cat.priority[iv[0]], iv[0]))
            self.schedules.append(schedule)
            done = set()
            transition_start = None
            for slot in schedule.slots:
                b = slot.block
                if isinstance(b, TransitionBlock):
                    transition_start = slot.start
                    continue
                if b is None or not isinstance(b, ObservingBlock):
                    transition_start = None
                    continue
                i, v = (int(x) for x in b.name.split(":"))
                s = (b.start_time.mjd - table.mjd_start) * 86400.0
                e = (b.end_time.mjd - table.mjd_start) * 86400.0
                d = s if transition_start is None else (transition_start.mjd - table.mjd_start) * 86400.0
                placed.append(PlannedBlock(target=i, visit=v, night=night, decision_s=float(d), start_s=float(s),
                                           end_s=float(e), n_exposures=int(self.exposures[i]),
                                           priority=float(b.priority)))
                done.add((i, v))
                transition_start = None
            pending = [key for key in pending if key not in done]
        self.plan_seconds = _time.perf_counter() - t0
        self.plan = sorted(placed, key=lambda p: (p.night, p.start_s))
        self.n_decisions = len(self.plan)

    # -- replay -----------------------------------------------------------------------------------------
    def plan_entries(self) -> list[PlanEntry]:
        """The stored plan as :class:`~astrogym.agents.scheduling.replay.PlanEntry` s: each block due at its decision
        time, holding up to ``ceil(max_exposure_factor x n_exposures)`` exposures."""
        return [PlanEntry(target=b.target, earliest_s=b.decision_s, night=b.night,
                          max_exposures=math.ceil(self.max_exposure_factor * b.n_exposures - 1e-9)) for b in self.plan]

    def _rewind(self) -> None:
        """A fresh replay of the stored plan from the env's current clock (:mod:`replay`'s rule)."""
        self.replay = PlanReplayer(self.plan_entries(), lead_s=self.start_tolerance_s).rewind(self.env)

    @property
    def outcomes(self) -> list[str | None]:
        """Per plan entry: ``None`` (not reached yet), ``"observed"`` or ``"skipped:<reason>"``."""
        return self.replay.outcomes

    def reset(self) -> None:
        """Rewind the replay to the start of the stored plan (the next :meth:`predict` re-checks the episode)."""
        if self.plan:
            self._rewind()

    def predict(self, observation: Any = None, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The next action of the replayed plan (stable-baselines3's signature).

        Parameters
        ----------
        observation: ignored; the replay reads ``env.unwrapped`` directly.
        state: ignored (the scheduler is not recurrent); ``None`` is returned.
        episode_start: if any entry is true, the episode is treated as new (re-plan or rewind).
        deterministic: ignored (the replay is deterministic).

        Returns
        -------
        ``(np.array(action), None)``: a target index or ``env.wait_action``.
        """
        import gymnasium as gym

        env = self.env
        if not env.nights:
            raise gym.error.ResetNeeded("reset the env before calling predict()")
        new_episode = (episode_start is not None and bool(np.any(episode_start))) or self.replay.went_back(env)
        if self._key != self._episode_key():
            self.replan(from_now=False)
        elif new_episode:
            self._rewind()
        return np.array(self.replay.next_action(env)), None

    def __repr__(self) -> str:
        return (f"AstroplanScheduler(kind={self.kind!r}, time_resolution_s={self.time_resolution_s:g}, "
                f"blocks placed={self.n_decisions}/{self.n_blocks})")


# -- benchmark helper ---------------------------------------------------------------------------------------
def astroplan_decision_time(env: Any = None, kind: str = "priority", n_targets: int | None = None, *,
                            seed: int = 0, time_resolution_s: float = 60.0, **make_kwargs: Any) -> dict:
    """Time astroplan on one episode: wall seconds per block placed.

    Parameters
    ----------
    env: a TelescopeScheduling env to plan for (reset with ``seed`` first); ``None`` makes one with
        ``gym.make("astrogym/TelescopeScheduling-v0", n_targets=n_targets or 30, **make_kwargs)``.
    kind: ``"priority"`` or ``"sequential"``.
    n_targets: catalogue size for a new env (ignored, but must match, when ``env`` is given).
    seed: reset seed. time_resolution_s: astroplan's grid.
    make_kwargs: more env configuration for a new env (e.g. ``date``, ``weather``).

    Returns
    -------
    dict with ``kind``, ``n_targets``, ``n_blocks`` (offered), ``n_decisions`` (placed), ``plan_seconds``
    and ``seconds_per_decision`` (``plan_seconds / max(n_decisions, 1)``).

    Raises
    ------
    ValueError: ``n_targets`` disagrees with the given env's catalogue; unknown ``kind``.
    TypeError: ``env`` is not a TelescopeScheduling env.
    """
    if env is None:
        import astrogym  # noqa: F401  (registers the ids)
        import gymnasium as gym

        env = gym.make("astrogym/TelescopeScheduling-v0", n_targets=n_targets or 30, **make_kwargs)
    elif make_kwargs:
        raise ValueError(f"make_kwargs {sorted(make_kwargs)} only apply when no env is given")
    unwrapped = getattr(env, "unwrapped", env)
    if not isinstance(unwrapped, TelescopeSchedulingEnv):
        raise TypeError(f"astroplan_decision_time needs a TelescopeScheduling env, got {type(unwrapped).__name__}")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; choose one of {list(KINDS)}")
    env.reset(seed=seed)
    if n_targets is not None and n_targets != len(unwrapped.catalogue):
        raise ValueError(f"n_targets={n_targets} but the env's catalogue has {len(unwrapped.catalogue)} targets")
    sched = AstroplanScheduler(env, kind=kind, time_resolution_s=time_resolution_s)
    return {"kind": kind, "n_targets": len(unwrapped.catalogue), "n_blocks": sched.n_blocks,
            "n_decisions": sched.n_decisions, "plan_seconds": sched.plan_seconds,
            "seconds_per_decision": sched.plan_seconds / max(sched.n_decisions, 1)}
