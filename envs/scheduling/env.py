"""``astrogym/TelescopeScheduling-v0``: one telescope, one or more nights, pick the next target."""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from astrogym.envs.common.actions import as_discrete_action
from astrogym.envs.common.base import AstrogymEnv
from astrogym.envs.scheduling import kernels as K
from astrogym.envs.scheduling import features as F
from astrogym.envs.scheduling.catalogue import Catalogue, load_catalogue, random_catalogue
from astrogym.envs.scheduling.config import SchedulingConfig
from astrogym.envs.scheduling.features import (  # noqa: F401  (the observation's layout, re-exported)
    EDGE_FEATURES,
    EDGE_HIGH,
    EDGE_LOW,
    GLOBAL_FEATURES,
    GLOBAL_HIGH,
    GLOBAL_LOW,
    N_GLOBAL_FEATURES,
    NODE_FEATURES,
    NODE_HIGH,
    NODE_LOW,
)
from astrogym.envs.scheduling.graph import build_edges, max_edges
from astrogym.envs.scheduling.night import NightTable, night_table, twilight_bounds
from astrogym.envs.scheduling.sites import Site, get_site
from astrogym.envs.scheduling.telescope import FILTERS, Telescope, get_telescope
from astrogym.envs.scheduling.weather import (ClearWeather, Forecaster, StochasticWeather, WeatherModel, WeatherTrack,
                                              make_forecaster)

# Edge features (overheads between targets) drift slowly with the sky's rotation: they are evaluated
# at 10-minute marks (the latest mark at or before now) and kept for the night, so repeated
# episodes on the same night reuse them.
EDGE_GRID_S = 600.0


def visibility_mask(table: NightTable, catalogue: Catalogue, cfg: SchedulingConfig) -> np.ndarray:
    """(T, N) bool: astroplan's Altitude, Airmass, AtNight and MoonSeparation constraints plus time windows."""
    alt = table.alt
    min_alt = max(cfg.min_altitude_deg, np.degrees(np.arcsin(1.0 / cfg.max_airmass)))
    vis = alt >= min_alt
    vis &= (table.sun_alt <= cfg.twilight_deg + 1e-6)[:, None]
    vis &= table.moon_sep >= cfg.min_moon_separation_deg
    has_window = np.isfinite(catalogue.window_start)
    if has_window.any():
        mjd = table.mjd_start + table.times_s / 86400.0
        inside = (mjd[:, None] >= catalogue.window_start[None, :]) & (mjd[:, None] <= catalogue.window_end[None, :])
        vis &= np.where(has_window[None, :], inside, True)
    return vis


def first_date(options: dict, cfg, rng: np.random.Generator) -> datetime.date:
    """The episode's first evening: the reset option ``date`` (ISO ``YYYY-MM-DD``, else ``ValueError``), or the
    config's ``date`` plus a day drawn from ``rng`` in ``[0, date_range_days)`` when that is positive."""
    if "date" in options:
        try:
            return datetime.date.fromisoformat(str(options["date"]))
        except ValueError:
            raise ValueError(f"reset option 'date'={options['date']!r} is not YYYY-MM-DD") from None
    start = datetime.date.fromisoformat(cfg.date)
    if cfg.date_range_days > 0:
        start += datetime.timedelta(days=int(rng.integers(cfg.date_range_days)))
    return start


def _global_bounds(forecast: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``globals``; a forecaster appends expected seeing / 2 in [0, 50] and clear probability in [0, 1]."""
    if not forecast:
        return GLOBAL_LOW, GLOBAL_HIGH
    return np.append(GLOBAL_LOW, [0.0, 0.0]).astype(np.float32), np.append(GLOBAL_HIGH, [50.0, 1.0]).astype(np.float32)


@dataclass
class _Night:
    """One night of an episode: the ephemerides, the weather drawn for it and the derived masks."""

    table: NightTable
    weather: WeatherTrack
    vis: np.ndarray
    vis_run: np.ndarray  # (T, N) int32 consecutive visible grid points from each one (kernels.visible_runs)
    vis_left_s: np.ndarray  # (T, N) float32 seconds of visibility left from each grid point
    offset_s: float  # seconds from the episode's first evening to this one
    edge_features: np.ndarray  # (ceil(length / EDGE_GRID_S) + 1, E, 2) float32, filled lazily
    edge_done: np.ndarray  # which rows of edge_features are computed
    forecast: np.ndarray | None = None  # (T, 2) expected seeing / 2 and clear probability, with a forecaster


class TelescopeSchedulingEnv(AstrogymEnv):
    """Choose the next target for a telescope through one or more nights.

    ## Description
    Each step picks a target to observe next (or waits). Observing slews there (trapezoidal
    per-axis profiles, dome, settle; a filter change runs in parallel), takes one exposure of the
    target's length and reads out. The exposure's SNR follows from an m5-style exposure time
    calculator (magnitude, sky brightness with the Moon, seeing at the target's airmass and
    wavelength, extinction, clouds); a visit counts once its SNR^2 reaches the request. Targets
    need ``n_visits`` visits at least ``min_gap_s`` apart. Ephemerides are precomputed per night
    with astropy (:mod:`night`, cached on disk); weather is drawn per night from the env's RNG
    (:mod:`weather`). ``step`` runs compiled kernels only.

    ## Action Space
    ``Discrete(max_targets + 1)``: ``i < n_targets`` observes target ``i``; ``max_targets`` waits
    ``wait_s`` (or until dawn). :meth:`action_masks` (sb3-contrib's convention) says which are
    allowed: not complete, the minimum gap since the last visit elapsed, and visible (altitude,
    airmass, twilight, Moon distance, time window) from the end of the slew to the end of the
    exposure, which must end before dawn. Waiting is always allowed. A masked action is treated as
    a wait with ``info["invalid_action"] = True`` (``invalid_action="raise"`` raises instead).

    ## Observation Space
    A ``Dict`` of padded arrays describing the targets as a graph (feature names ``NODE_FEATURES``,
    ``EDGE_FEATURES``, ``GLOBAL_FEATURES`` and column indices ``NF_*``, ``EF_*``, ``GF_*`` in
    :mod:`astrogym.envs.scheduling.features`; :func:`astrogym.agents.scheduling.graph.to_pyg_batch`
    turns a batch into ``torch_geometric`` data):

    * ``nodes`` (max_targets, 16) float32, per target: altitude and airmass now and in one hour,
      hours of visibility left tonight, priority, fraction of visits left, fraction of the current
      visit's SNR^2 left, magnitude, Moon separation, observed-tonight flag, overhead from the
      current pointing, exposure length, expected visit progress of an exposure started now (0
      where not allowed), valid-now flag, filter-change flag.
    * ``edge_index`` (2, max_edges) int64, rows source and destination; ``edges`` (max_edges, 2)
      float32: overhead from source to destination (each in its own filter) at the latest
      10-minute mark of the night (it drifts slowly with the sky), angular separation.
    * ``globals`` (16,) float32: night elapsed, hours left, night index, seeing, cloud state
      (one-hot), current filter (one-hot u g r i z y), Moon altitude and illumination, Sun altitude.
    * ``node_mask`` (max_targets,), ``edge_mask`` (max_edges,) int8: which entries are real.

    ## Rewards
    For an exposure of target i: ``priority_i * (progress after - progress before) / n_visits_i``
    where progress = min(1, SNR^2 gathered on the visit / SNR_requested^2), plus
    ``sequence_bonus * priority_i`` when the last visit of a multi-visit target completes; waits
    earn 0. Every reward is divided by the catalogue's total weight
    ``sum_i priority_i (1 + sequence_bonus [n_visits_i > 1])``, so an episode's return is the
    priority-weighted completion it achieved (1 = everything done). No other terms.

    ## Starting State
    The telescope parked on the meridian at ``park_altitude_deg`` at evening twilight, filter r,
    no visits done.

    ## Episode End
    Terminated at morning twilight of the last night. Never truncated. Calling ``step`` after that,
    or before the first ``reset``, raises ``gymnasium.error.ResetNeeded``
    (:class:`~astrogym.envs.common.base.AstrogymEnv`'s rule, the same in every astrogym env);
    :attr:`needs_reset` says whether it would. :meth:`action_masks` before the first ``reset``
    raises it too.

    ## Info
    ``time_s`` (since the first evening), ``night``, ``completed_visits``,
    ``priority_weighted_completion`` (sum of priority x completed visits / n_visits over the total
    priority), ``open_shutter_fraction`` (exposure time / night time so far), ``slew_overhead_s``
    (total overhead), ``mean_overhead_s`` (per exposure), ``mean_airmass`` (of exposures),
    ``filter_changes``, ``exposures``, totals ``exposure_s``, ``readout_s`` and ``wait_s`` (with
    the overheads they add up to the time elapsed), ``invalid_action``, and for the last step
    ``overhead_s`` and ``snr``.

    ## Arguments
    ``gym.make("astrogym/TelescopeScheduling-v0", render_mode=None, catalogue=None,
    weather_model=None, **config)``: every :class:`SchedulingConfig` field (``astrogym list
    --config``); ``catalogue`` a :class:`Catalogue` instead of the random or file one;
    ``weather_model`` any object with ``sample_night(rng, times_s, site) -> WeatherTrack`` (given a
    ``start_mjd`` keyword too, the night's evening twilight, when it accepts one: seasonal models).
    ``forecaster`` (default None) any object with ``forecast_night(weather, times_s, start_mjd, rng) ->
    (expected_seeing_arcsec, clear_probability)``, arrays on the night's grid that use only the
    weather up to each point (e.g. :class:`astrogym.surrogates.forecast.SeeingForecaster`), or the
    name of a registered one (``"weather-flow"``: the shipped learned weather generator's hour-ahead
    forecast; :data:`~astrogym.envs.scheduling.weather.FORECASTERS`), so configs can ask for it:
    computed once per night at reset, they are appended to ``globals`` as its last two entries
    (expected seeing over the forecaster's horizon / 2 arcsec, in [0, 50], and the clear
    probability, in [0, 1]). The forecaster draws from a random stream of its own, spawned from the
    reset seed, so a seed gives the same catalogue and weather with and without it.
    ``n_targets_range=(lo, hi)`` (with ``max_targets >= hi``) makes each reset draw its catalogue
    from a pool of ``catalogue_pool`` random ones of sizes in ``[lo, hi]`` (training over catalogue
    sizes; the pool's night tables are kept in memory, not in the disk cache). Off by default, and
    then nothing is drawn.

    ``render_mode="rgb_array"``: the sky and the night's timeline (:mod:`plots`); ``"human"`` shows
    it in a matplotlib window after each ``reset``/``step`` (an interactive backend is needed, else
    ``ValueError``). Any other mode raises ``ValueError`` naming the allowed ones.

    ## Accessors
    Read-only, for baselines, tests and plots (nothing outside this package reads the env's private
    attributes): :attr:`nights` (tables, weather, masks), :attr:`state` (time, night, pointing,
    filter, visits, SNR^2), :attr:`visits_done`, :attr:`last_visit_end_s`, :meth:`overhead_s`,
    :meth:`action_masks`, :attr:`target_table` and :attr:`kernel_parameters` (copies of the
    kernels' catalogue columns and tonight's parameters), :attr:`log` (one
    ``(night, target, decision time, start, end, snr)`` per exposure), :attr:`needs_reset`.

    Search protocol (lookahead and offline search over the env's own compiled step; a network env
    implements the same names): :meth:`snapshot` returns an opaque copy of every piece of episode
    state that ``step`` and the observation change (state arrays, visits, SNR^2, last visit ends,
    the observed-tonight flags, night index, exposure log, the observation buffers and mask, the
    end-of-episode flag), not the read-only night tables; :meth:`restore` puts the env (or a
    ``copy.deepcopy`` of it) back exactly and returns the observation there, so the same actions then
    give bit-identical rewards, observations and infos. Only ``reset`` draws
    from the env's RNG, so the RNG is not part of a snapshot. :attr:`weather_tracks` is the episode's
    weather (one :class:`WeatherTrack` per night) and :meth:`set_weather` replaces it from now on
    (simulation copies made with ``copy.deepcopy(env.unwrapped)`` plan on forecast weather that
    way; a forecaster's globals, computed at reset, are left as they were).

    ## Reset Options
    ``RESET_OPTIONS``: ``{"date": "YYYY-MM-DD"}`` starts on that date; ``{"catalogue": Catalogue}``
    swaps the targets (at most ``max_targets``); ``{"weather": [WeatherTrack, ...]}`` (one per
    night, on the night tables' grid) replaces the drawn weather (offline optimum, replays).
    Another key raises ``ValueError``, options that are not a dict ``TypeError``.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 4}
    config_class = SchedulingConfig
    RESET_OPTIONS = ("date", "catalogue", "weather")

    def __init__(self, render_mode: str | None = None, config: SchedulingConfig | dict | None = None,
                 catalogue: Catalogue | None = None, weather_model: WeatherModel | None = None,
                 forecaster: Forecaster | str | None = None, **kwargs: Any):
        super().__init__(render_mode, config, **kwargs)
        cfg = self.config
        self.site: Site = get_site(cfg.site)
        self.telescope: Telescope = get_telescope(cfg.telescope)
        if catalogue is None:
            if cfg.catalogue_path:
                catalogue = load_catalogue(cfg.catalogue_path, self.telescope)
            else:
                night = (twilight_bounds(self.site, cfg.date, cfg.twilight_deg) if cfg.catalogue_window_fraction > 0
                         else None)
                catalogue = random_catalogue(cfg.n_targets, cfg.catalogue_seed, self.telescope,
                                             window_fraction=cfg.catalogue_window_fraction, window_night_mjd=night)
        elif not isinstance(catalogue, Catalogue):
            raise TypeError(f"catalogue must be a Catalogue, got {type(catalogue).__name__}")
        self.max_targets = cfg.max_targets or len(catalogue)
        if len(catalogue) > self.max_targets:
            raise ValueError(f"the catalogue has {len(catalogue)} targets, more than max_targets={self.max_targets}")
        if weather_model is None:
            weather_model = (ClearWeather(cfg.seeing_median_arcsec) if cfg.weather == "clear" else StochasticWeather(
                median_seeing_arcsec=cfg.seeing_median_arcsec, seeing_sigma_log=cfg.seeing_sigma_log,
                seeing_tau_s=cfg.seeing_tau_s, clear_fraction=cfg.clear_fraction,
                cloud_mean_duration_s=cfg.cloud_mean_duration_s))
        if not callable(getattr(weather_model, "sample_night", None)):
            raise TypeError("weather_model must have a sample_night(rng, times_s, site) method")
        # models that condition on the season take the night's start as start_mjd (optional in the protocol)
        self._weather_takes_date = "start_mjd" in inspect.signature(weather_model.sample_night).parameters
        self.weather_model = weather_model
        if isinstance(forecaster, str):
            forecaster = make_forecaster(forecaster)
        if forecaster is not None and not callable(getattr(forecaster, "forecast_night", None)):
            raise TypeError("forecaster must have a forecast_night(weather, times_s, start_mjd, rng) method")
        self.forecaster = forecaster
        self._forecast_rng: np.random.Generator | None = None
        self.max_edges = max_edges(self.max_targets, cfg.edges, cfg.k_neighbors)
        n, e = self.max_targets, self.max_edges
        self.action_space = spaces.Discrete(n + 1)
        self.wait_action = n
        self.observation_space = spaces.Dict({
            "nodes": spaces.Box(np.tile(NODE_LOW, (n, 1)), np.tile(NODE_HIGH, (n, 1)), dtype=np.float32),
            "edge_index": spaces.Box(0, max(n - 1, 0), (2, e), np.int64),
            "edges": spaces.Box(np.tile(EDGE_LOW, (e, 1)), np.tile(EDGE_HIGH, (e, 1)), dtype=np.float32),
            "globals": spaces.Box(*_global_bounds(forecaster is not None), dtype=np.float32),
            "node_mask": spaces.MultiBinary(n),
            "edge_mask": spaces.MultiBinary(e),
        })
        self._nodes = np.zeros((n, F.N_NODE_FEATURES), np.float32)
        self._edges = np.zeros((e, F.N_EDGE_FEATURES), np.float32)
        self._mask = np.zeros(n + 1, np.bool_)
        self._edge_caches: dict = {}
        self._set_catalogue(catalogue)
        self._nights: list[_Night] = []
        self._st: np.ndarray | None = None
        self.log: list[tuple] = []

    # -- set-up -------------------------------------------------------------------------------------
    def _set_catalogue(self, catalogue: Catalogue) -> None:
        if len(catalogue) > self.max_targets:
            raise ValueError(f"reset option 'catalogue' has {len(catalogue)} targets; this env takes at most "
                             f"max_targets={self.max_targets}")
        self.catalogue = cat = catalogue
        n = len(cat)
        self._targ = K.target_columns(cat.mag, cat.priority, cat.snr, cat.exposure_s, cat.n_visits, cat.min_gap_s,
                                      cat.filter, self.telescope.aperture_m)
        self.total_weight = float(np.sum(cat.priority * (1.0 + self.config.sequence_bonus * (cat.n_visits > 1))))
        src, dst, sep = build_edges(cat.ra, cat.dec, self.config.edges, self.config.k_neighbors)
        self._edge_src, self._edge_dst, self._edge_sep = src, dst, sep
        self._edge_index = np.zeros((2, self.max_edges), np.int64)
        self._edge_index[0, :src.size], self._edge_index[1, :src.size] = src, dst
        self._node_mask = np.zeros(self.max_targets, np.int8)
        self._node_mask[:n] = 1
        self._edge_mask = np.zeros(self.max_edges, np.int8)
        self._edge_mask[:src.size] = 1
        self._nodes[:] = 0.0
        self._edges[:] = 0.0
        self._mask[:] = False

    # -- the catalogue pool of ``n_targets_range`` (off by default) ------------------------------------------
    _POOL_TABLES = 256  # night tables kept per env (pool x dates), about 1 MB each at 100 targets

    def _pool_catalogue(self, k: int) -> Catalogue:
        """Pool member ``k``: size and seed drawn from ``(catalogue_seed, k)``, so every env agrees on the pool."""
        pool = self.__dict__.setdefault("_pool", {})
        if k not in pool:
            cfg = self.config
            lo, hi = cfg.n_targets_range
            rng = np.random.default_rng([cfg.catalogue_seed, k])
            size, seed = int(rng.integers(lo, hi + 1)), int(rng.integers(1, 2**31 - 1))
            night = (twilight_bounds(self.site, cfg.date, cfg.twilight_deg) if cfg.catalogue_window_fraction > 0
                     else None)
            pool[k] = random_catalogue(size, seed, self.telescope, window_fraction=cfg.catalogue_window_fraction,
                                       window_night_mjd=night)
        return pool[k]

    def _pool_table(self, k: int, date: str) -> NightTable:
        """The pool catalogue's night table, computed once per env and kept in memory only (a pool of fresh
        catalogues would otherwise fill the disk cache with tables no other run reads)."""
        tables = self.__dict__.setdefault("_pool_tables", {})
        if (k, date) not in tables:
            cfg = self.config
            tables[(k, date)] = night_table(self.site, date, self.catalogue, cfg.grid_s, cfg.twilight_deg,
                                            use_disk_cache=False)
            while len(tables) > self._POOL_TABLES:
                tables.pop(next(iter(tables)))
        return tables[(k, date)]

    def _params(self, night: _Night) -> np.ndarray:
        return K.night_parameters(self.telescope, self.site, self.config, self.total_weight, night.table.length_s)

    def _build_night(self, table: NightTable, offset_s: float, weather: WeatherTrack | None) -> _Night:
        cfg = self.config
        if weather is None:
            dated = {"start_mjd": table.mjd_start} if self._weather_takes_date else {}
            weather = self.weather_model.sample_night(self.np_random, table.times_s, self.site, **dated)
        if not isinstance(weather, WeatherTrack) or weather.seeing_arcsec.shape != table.times_s.shape:
            raise ValueError(f"weather for {table.date} must be a WeatherTrack on the night's grid of "
                             f"{table.times_s.size} points")
        vis = visibility_mask(table, self.catalogue, cfg)
        # seconds of visibility left from each grid point (suffix sums of the mask)
        left = np.cumsum(vis[::-1], axis=0)[::-1].astype(np.float32) * np.float32(cfg.grid_s)
        edge_features, edge_done = self._edge_cache(table)
        forecast = None
        if self.forecaster is not None:
            expected, p_clear = self.forecaster.forecast_night(weather, table.times_s, table.mjd_start,
                                                               self._forecast_rng)
            forecast = np.column_stack([np.clip(np.asarray(expected) / 2.0, 0.0, 50.0),
                                        np.clip(np.asarray(p_clear), 0.0, 1.0)]).astype(np.float32)
            if forecast.shape != (table.times_s.size, 2):
                raise ValueError(f"forecaster returned {forecast.shape[0]} forecasts; the night's grid has "
                                 f"{table.times_s.size} points")
        return _Night(table=table, weather=weather, vis=vis, vis_run=K.visible_runs(vis), vis_left_s=left,
                      offset_s=offset_s, edge_features=edge_features, edge_done=edge_done, forecast=forecast)

    def _edge_cache(self, table: NightTable) -> tuple[np.ndarray, np.ndarray]:
        key = (id(table), id(self.catalogue))
        if key not in self._edge_caches:
            rows = int(np.ceil(table.length_s / EDGE_GRID_S)) + 1
            # the table and catalogue ride along so that their ids cannot be reused while the entry lives
            self._edge_caches[key] = (table, self.catalogue,
                                      np.zeros((rows, self._edge_src.size, F.N_EDGE_FEATURES), np.float32),
                                      np.zeros(rows, np.bool_))
            while len(self._edge_caches) > 32:  # bounded: a date range would otherwise grow it forever
                self._edge_caches.pop(next(iter(self._edge_caches)))
        return self._edge_caches[key][2:]

    # -- Gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.forecaster is not None and (seed is not None or self._forecast_rng is None):
            # a stream of its own (spawned from the seed, not drawn from np_random): with or without a
            # forecaster, one seed gives the same catalogues and weather, so the two can be compared paired
            self._forecast_rng = np.random.default_rng(self.np_random.bit_generator.seed_seq.spawn(1)[0])
        options = self._reset_options(options)
        cfg = self.config
        pooled = None
        if "catalogue" in options:
            if not isinstance(options["catalogue"], Catalogue):
                raise TypeError("reset option 'catalogue' must be a Catalogue")
            self._set_catalogue(options["catalogue"])
        elif cfg.n_targets_range is not None and not cfg.catalogue_path:
            pooled = int(self.np_random.integers(cfg.catalogue_pool))
            self._set_catalogue(self._pool_catalogue(pooled))
        start = first_date(options, cfg, self.np_random)
        weathers = options.get("weather")
        if weathers is not None:
            if not isinstance(weathers, (list, tuple)) or not all(isinstance(w, WeatherTrack) for w in weathers):
                raise TypeError(f"reset option 'weather' must be a list of WeatherTrack, one per night "
                                f"({cfg.n_nights}), got {type(weathers).__name__}")
            if len(weathers) != cfg.n_nights:
                raise ValueError(f"reset option 'weather' needs one WeatherTrack per night ({cfg.n_nights}), got "
                                 f"{len(weathers)}")
        self._nights = []
        first_mjd = None
        for k in range(cfg.n_nights):
            date = (start + datetime.timedelta(days=k)).isoformat()
            table = (night_table(self.site, date, self.catalogue, cfg.grid_s, cfg.twilight_deg) if pooled is None
                     else self._pool_table(pooled, date))
            first_mjd = table.mjd_start if first_mjd is None else first_mjd
            self._nights.append(self._build_night(table, (table.mjd_start - first_mjd) * 86400.0,
                                                  None if weathers is None else weathers[k]))
        n = len(self.catalogue)
        self._visits = np.zeros(n, np.int64)
        self._snr2 = np.zeros(n)
        self._last_end = np.full(n, -1e18)
        self._tonight = np.zeros(n, np.uint8)
        self._st = np.zeros(K.S_COLS)
        self.log = []
        # identifies the episode for restore(); a deepcopy keeps it, so a simulation copy takes the snapshots
        self._episode_token = int.from_bytes(os.urandom(8), "little")
        self._start_episode()
        self._start_night(0)
        self._observe()
        if self._human:
            self.render()
        return self._obs(), self._info(False)

    def _start_night(self, index: int) -> None:
        self._night_index = index
        night = self._nights[index]
        self._par = self._params(night)
        st = self._st
        st[K.S_T], st[K.S_OFFSET], st[K.S_POINT] = 0.0, night.offset_s, -1.0
        if index == 0:
            st[K.S_FILTER] = FILTERS.index("r")
        self._tonight[:] = 0
        self._bind_kernel_args()

    def _bind_kernel_args(self) -> None:
        """Argument tuples of the compiled kernels for the current night (views into the env's arrays)."""
        night = self._nights[self._night_index]
        t = night.table
        self._kernel_night = (t.alt, t.az, t.lst_deg, t.ra_app, t.dec_app, t.sky_mag, night.vis_run)
        self._kernel_weather = (night.weather.seeing_arcsec, night.weather.cloud_tau)
        n = len(self.catalogue)
        self._step_args = (*self._kernel_night, *self._kernel_weather, self._targ, self._par, self._st, self._visits,
                           self._snr2, self._last_end, self._tonight)
        self._observe_args = (*self._kernel_night, night.vis_left_s, t.moon_sep, *self._kernel_weather, self._targ,
                              self._par, self._st, self._visits, self._snr2, self._last_end, self._tonight,
                              self._nodes[:n], self._mask[:n + 1])
        self._edge_args = (*self._kernel_night[:5], self._targ, self._par, self._edge_src, self._edge_dst,
                           self._edge_sep)

    _KERNEL_ARGS = ("_kernel_night", "_kernel_weather", "_step_args", "_observe_args", "_edge_args")

    def __getstate__(self) -> dict:
        # The argument tuples hold views (nodes[:n], mask[:n+1]); pickled, a view becomes a copy and the
        # kernels would write into it, so they are rebuilt on unpickling instead.
        return {k: v for k, v in self.__dict__.items() if k not in self._KERNEL_ARGS}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._st is not None and self._nights:
            self._bind_kernel_args()

    def _observe(self) -> None:
        K.observe_kernel(*self._observe_args)
        night = self._nights[self._night_index]
        row = int(self._st[K.S_T] // EDGE_GRID_S)
        if not night.edge_done[row]:
            K.edge_kernel(row * EDGE_GRID_S, *self._edge_args, night.edge_features[row])
            night.edge_done[row] = True
        self._edges[:self._edge_src.size] = night.edge_features[row]
        n = len(self.catalogue)
        if n < self.max_targets:  # the kernel put 'wait' at index n; it lives at max_targets
            self._mask[n:self.max_targets] = False
            self._mask[self.max_targets] = True

    def action_masks(self) -> np.ndarray:
        """Allowed actions now (bool, length ``max_targets + 1``; the last is 'wait'), as sb3-contrib expects."""
        self._require_reset("action_masks()")
        return self._mask.copy()

    def step(self, action):
        if self._needs_reset:
            raise self._reset_needed("step()")
        a = self._check_action(action)
        n = len(self.catalogue)
        invalid = False
        if a != self.wait_action and not (a < n and self._mask[a]):
            if self.config.invalid_action == "raise":
                raise ValueError(self._why_invalid(a))
            invalid = True
            a = self.wait_action
        t_before = self._st[K.S_T]
        reward, code = K.step_kernel(a if a < n else n, *self._step_args)
        if code == K.R_OBSERVED:
            start = t_before + self._st[K.S_OVERHEAD_LAST]
            self.log.append((self._night_index, a, t_before, start, start + self._targ[a, K.T_EXP],
                             float(self._st[K.S_SNR_LAST])))
        terminated = False
        if self._st[K.S_T] >= self._par[K.PAR_NIGHT_LEN] - 1e-9:
            if self._night_index + 1 < len(self._nights):
                self._start_night(self._night_index + 1)
            else:
                terminated = True
        if terminated:
            self._end_episode()
        self._observe()
        if self._human:
            self.render()
        return self._obs(), float(reward), terminated, False, self._info(invalid)

    def _check_action(self, action) -> int:
        return as_discrete_action(action, self.wait_action)

    def _why_invalid(self, a: int) -> str:
        if a >= len(self.catalogue):
            return f"action {a} is a padding slot (this catalogue has {len(self.catalogue)} targets)"
        name = self.catalogue.name[a]
        if self._visits[a] >= self.catalogue.n_visits[a]:
            return f"action {a} ({name}) is masked: all {self.catalogue.n_visits[a]} visits are done"
        return (f"action {a} ({name}) is masked: not visible for a whole exposure from the end of the slew, "
                "too soon after its last visit, or the exposure would end after dawn; see action_masks()")

    def _obs(self) -> dict:
        return {"nodes": self._nodes.copy(), "edge_index": self._edge_index.copy(), "edges": self._edges.copy(),
                "globals": self._globals(), "node_mask": self._node_mask.copy(), "edge_mask": self._edge_mask.copy()}

    def _globals(self) -> np.ndarray:
        st, night = self._st, self._nights[self._night_index]
        length = self._par[K.PAR_NIGHT_LEN]
        k = min(int(st[K.S_T] / self.config.grid_s + 0.5), night.table.times_s.size - 1)
        g = np.zeros(N_GLOBAL_FEATURES, np.float32)
        g[F.GF_NIGHT_ELAPSED] = st[K.S_T] / length
        g[F.GF_HOURS_LEFT] = min((length - st[K.S_T]) / 3600.0 / 12.0, 2.0)
        g[F.GF_NIGHT_INDEX] = self._night_index / len(self._nights)
        g[F.GF_SEEING] = min(night.weather.seeing_arcsec[k] / 2.0, 50.0)
        g[F.GF_CLOUD + int(night.weather.cloud_state[k])] = 1.0
        g[F.GF_FILTER + int(st[K.S_FILTER])] = 1.0
        g[F.GF_MOON_ALT] = night.table.moon_alt[k] / 90.0
        g[F.GF_MOON_ILLUMINATION] = 0.5 * (1.0 + np.cos(np.radians(night.table.moon_phase_angle[k])))
        g[F.GF_SUN_ALT] = night.table.sun_alt[k] / 90.0
        if night.forecast is not None:
            g = np.concatenate([g, night.forecast[k]])
        return g

    def _info(self, invalid: bool) -> dict:
        st = self._st
        n_exp = st[K.S_N_EXP]
        elapsed = sum(nt.table.length_s for nt in self._nights[:self._night_index]) + st[K.S_T]
        return {
            "time_s": float(st[K.S_OFFSET] + st[K.S_T]),
            "night": self._night_index,
            "completed_visits": int(st[K.S_VISITS_DONE]),
            "priority_weighted_completion": float(st[K.S_COMPLETED_PW] / self.catalogue.priority.sum()),
            "open_shutter_fraction": float(st[K.S_EXPOSURE] / elapsed) if elapsed > 0 else 0.0,
            "slew_overhead_s": float(st[K.S_OVERHEAD]),
            "exposure_s": float(st[K.S_EXPOSURE]),
            "readout_s": float(st[K.S_READOUT]),
            "wait_s": float(st[K.S_WAIT]),
            "mean_overhead_s": float(st[K.S_OVERHEAD] / n_exp) if n_exp else 0.0,
            "mean_airmass": float(st[K.S_AIRMASS_SUM] / n_exp) if n_exp else 0.0,
            "filter_changes": int(st[K.S_FILTER_CHANGES]),
            "exposures": int(n_exp),
            "overhead_s": float(st[K.S_OVERHEAD_LAST]),
            "snr": float(st[K.S_SNR_LAST]),
            "invalid_action": invalid,
        }

    # -- accessors for baselines, tests and the network env ---------------------------------------------
    @property
    def nights(self) -> list[_Night]:
        """This episode's nights (tables, weather, visibility masks)."""
        return self._nights

    @property
    def state(self) -> dict:
        """A copy of the scheduling state: time, night, pointing, filter, visits, SNR^2 per target."""
        st = self._st
        return {"time_s": float(st[K.S_T]), "night": self._night_index, "pointing": int(st[K.S_POINT]),
                "filter": FILTERS[int(st[K.S_FILTER])], "visits": self._visits.copy(), "snr2": self._snr2.copy()}

    @property
    def target_table(self) -> np.ndarray:
        """A copy of the catalogue as the kernels read it: (N, ``kernels.T_COLS``) float64, columns ``kernels.T_*``
        (magnitude, priority, SNR request, exposure, visits, gap, filter, Cm, extinction, wavelength)."""
        return self._targ.copy()

    @property
    def kernel_parameters(self) -> np.ndarray:
        """A copy of tonight's parameter vector of the kernels: the telescope's (``Telescope.params``, indices
        ``telescope.P_*``) then ``kernels.PAR_*`` (system FWHM, wait, bonus, total weight, grid, night length,
        park position)."""
        self._require_reset("kernel_parameters")
        return self._par.copy()

    @property
    def visits_done(self) -> np.ndarray:
        """(N,) int64 completed visits per target (a copy)."""
        self._require_reset("visits_done")
        return self._visits.copy()

    @property
    def last_visit_end_s(self) -> np.ndarray:
        """(N,) float64 end of each target's last completed visit, in seconds since the episode's first evening
        twilight (the clock the minimum gap between visits runs on); ``-1e18`` where none was completed."""
        self._require_reset("last_visit_end_s")
        return self._last_end.copy()

    def _require_reset(self, name: str) -> None:
        if self._st is None:
            raise self._reset_needed(name)

    def overhead_s(self, target: int) -> float:
        """Overhead (slew or filter change) to start ``target`` now."""
        alt, az, lst, ra_app, dec_app, _, _ = self._kernel_night
        return float(K.overhead_time(int(self._st[K.S_POINT]), int(target), self._st[K.S_T], alt, az, lst, ra_app,
                                     dec_app, self._targ, self._par, int(self._st[K.S_FILTER])))

    # -- search protocol: snapshot / restore / weather, for lookahead and offline search ------------------
    _SNAPSHOT_ARRAYS = ("_st", "_visits", "_snr2", "_last_end", "_tonight", "_nodes", "_edges", "_mask")

    def snapshot(self) -> tuple:
        """An opaque copy of the episode's mutable state (see the class docstring's Accessors); cheap: the
        night tables are shared, not copied. :meth:`restore` takes it back."""
        self._require_reset("snapshot()")
        arrays = tuple(getattr(self, a).copy() for a in self._SNAPSHOT_ARRAYS)
        return self._episode_token, self._night_index, arrays, tuple(self.log), self._needs_reset

    def restore(self, snapshot: tuple) -> dict:
        """Put the env back in the state :meth:`snapshot` returned and return the observation there. The
        snapshot may come from this env or from a ``copy.deepcopy`` of it taken in the same episode (a
        simulation copy follows the real env that way); the same actions then give bit-identical results.
        Arrays are written in place, so the kernels' argument bindings stay valid.

        Raises
        ------
        ValueError: the snapshot is of another episode (this env was reset since, or never copied from it).
        """
        self._require_reset("restore()")
        token, index, arrays, log, needs_reset = snapshot
        if token != self._episode_token:
            raise ValueError("restore(): the snapshot is of another episode (reset since it was taken)")
        for name, value in zip(self._SNAPSHOT_ARRAYS, arrays):
            getattr(self, name)[...] = value
        if index != self._night_index:
            self._night_index = index
            self._par = self._params(self._nights[index])
            self._bind_kernel_args()
        self.log = list(log)
        self._needs_reset = needs_reset
        return self._obs()

    @property
    def search_clock(self) -> tuple[int, float]:
        """(night, seconds into it) of the next decision: ordered like time, what search code compares (the network
        env gives its network clock the same shape)."""
        self._require_reset("search_clock")
        return self._night_index, float(self._st[K.S_T])

    @property
    def requested_visits(self) -> np.ndarray:
        """(N,) visits each target needs (the catalogue's, indexed like the actions)."""
        return np.asarray(self.catalogue.n_visits, np.int64)

    @property
    def weather_tracks(self) -> list[WeatherTrack]:
        """This episode's weather, one :class:`WeatherTrack` per night (the env's own; do not modify them)."""
        return [night.weather for night in self._nights]

    def set_weather(self, tracks: list[WeatherTrack]) -> None:
        """Replace the episode's weather from now on (one :class:`WeatherTrack` per night, on the night tables'
        grid; the env keeps copies): a simulation copy's forecast. The kernels are rebound to the new arrays;
        the state, the exposure log and the current observation are unchanged (the next step sees the new
        weather).

        Raises
        ------
        ValueError: not one track per night on the nights' grids.
        """
        self._require_reset("set_weather()")
        if len(tracks) != len(self._nights):
            raise ValueError(f"set_weather() needs one WeatherTrack per night ({len(self._nights)}), got "
                             f"{len(tracks)}")
        for night, w in zip(self._nights, tracks):
            if not isinstance(w, WeatherTrack) or w.seeing_arcsec.shape != night.table.times_s.shape:
                raise ValueError(f"set_weather(): a WeatherTrack on the night's grid of {night.table.times_s.size} "
                                 "points is needed for every night")
        for night, w in zip(self._nights, tracks):
            night.weather = WeatherTrack(seeing_arcsec=np.array(w.seeing_arcsec, dtype=float),
                                         cloud_state=np.array(w.cloud_state, dtype=np.int8),
                                         cloud_tau=np.array(w.cloud_tau, dtype=float))
        self._bind_kernel_args()

    # -- rendering -----------------------------------------------------------------------------------------
    def _render_frame(self):
        from astrogym.envs.scheduling.plots import schedule_figure
        from astrogym.envs.common.rendering import figure_to_rgb

        fig = schedule_figure(self)
        frame = figure_to_rgb(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return frame
