"""``astrogym/TelescopeNetwork-v0``: telescopes at separated sites share one target pool and targets of opportunity."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from astrogym.envs.common.actions import as_discrete_action
from astrogym.envs.common.base import AstrogymEnv
from astrogym.envs.network import kernels as NK
from astrogym.envs.network.config import NetworkConfig
from astrogym.envs.network.toos import TargetOfOpportunity, draw_toos
from astrogym.envs.scheduling import features as F
from astrogym.envs.scheduling import kernels as K
from astrogym.envs.scheduling.catalogue import Catalogue, random_catalogue
from astrogym.envs.scheduling.env import EDGE_GRID_S, first_date, visibility_mask
from astrogym.envs.scheduling.graph import angular_separation_deg, build_edges
from astrogym.envs.scheduling.night import NightTable, night_table
from astrogym.envs.scheduling.sites import Site, get_site
from astrogym.envs.scheduling.telescope import FILTERS, Telescope, get_telescope
from astrogym.envs.scheduling.weather import ClearWeather, StochasticWeather, WeatherTrack

# The ToO pool's random catalogue is seeded apart from the targets' (same catalogue_seed, another stream).
_POOL_SEED_OFFSET = 7_919
_EPISODES = itertools.count()


@dataclass
class SiteNight:
    """One telescope's night in an episode: its site's tables, weather, and the masks over all target slots.

    ``offset_s`` is the night's evening twilight in network seconds (since the earliest evening of the network);
    ``vis`` (T, max_targets) includes the ToO slots' windows.
    """

    site: Site
    telescope: Telescope
    table: NightTable
    pool_table: NightTable
    weather: WeatherTrack
    offset_s: float
    vis: np.ndarray


@dataclass
class _DateArrays:
    """What a date fixes for the network (cached per env): tables, the clock, the catalogue's kernel columns."""

    tables: list
    pools: list
    offsets: np.ndarray
    combined_length_s: float
    n_grid: np.ndarray
    arr: dict
    cat_vis: list
    pool_vis: list
    edge_rows: np.ndarray
    edge_done: np.ndarray


class TelescopeNetworkEnv(AstrogymEnv):
    """Schedule a network of telescopes at separated sites through one combined night, with targets of opportunity.

    ## Description
    Each site has its own telescope (kinematics, aperture, overheads), its own night (evening to
    morning twilight at ``twilight_deg``) and its own weather, drawn from the site's median seeing and
    clear fraction. All of them share one catalogue of targets, and targets of opportunity (ToOs)
    arrive during the night (:mod:`toos`). Physics is the single-site env's
    (:class:`~astrogym.envs.scheduling.env.TelescopeSchedulingEnv`): the same slews, exposure time
    calculator, visibility constraints and compiled kernels.

    **Decisions are event-driven.** Whenever a telescope becomes free (after a readout or a wait), the
    env asks for that telescope's next target: the deciding telescope is the one whose clock is
    earliest among those whose night is not over. The observation is that telescope's view, and
    :meth:`action_masks` is for it. A chosen exposure is committed at once (the telescope is busy
    until its readout ends), but its effect on the shared pool is applied when it *ends*: a
    telescope may start on a target another one is already exposing, and if that other exposure
    completes the visit first, the later one is a *duplicate* and counts nothing. The observation
    shows what every telescope has in flight (``site_nodes``), so a coordinated policy can avoid it.
    An episode spans the network's combined night: from the earliest evening twilight of any site
    to the latest morning twilight. (Stepping telescopes in a fixed round-robin instead would make
    them wait on each other; one decision per free telescope keeps each telescope's timeline its own
    and the episode's length proportional to the work done.)

    ## Action Space
    ``Discrete(max_targets + 1)`` with ``max_targets = n_targets + max_toos``: ``i < n_targets``
    observes catalogue target ``i``, ``n_targets + j`` the ``j``-th ToO of the episode (in order of
    arrival), ``max_targets`` waits ``wait_s`` (or to the end of the deciding telescope's night).
    :meth:`action_masks` (sb3-contrib's convention) allows what the single-site env allows, at the
    deciding telescope's site, and only ToOs that have arrived and whose deadline a whole exposure
    still meets. A masked action is a wait with ``info["invalid_action"] = True``
    (``invalid_action="raise"`` raises ``ValueError``).

    ## Observation Space
    A ``Dict``; the first six keys are the single-site env's layout, from the deciding telescope's
    point of view, so single-site policies (the greedy baseline, the GNN with
    :func:`~astrogym.agents.scheduling.graph.to_pyg_batch`) read it unchanged:

    * ``nodes`` (max_targets, 16), ``edge_index`` (2, max_edges), ``edges`` (max_edges, 2),
      ``globals`` (16,), ``node_mask`` (max_targets,), ``edge_mask`` (max_edges,): as in
      ``TelescopeScheduling-v0`` (:mod:`astrogym.envs.scheduling.features`), for the deciding
      telescope's site, pointing and filter. ToO slots that have not arrived are zero rows with
      ``node_mask`` 0 (arrived ones come first, so real nodes stay a prefix), and edges touching
      them have ``edge_mask`` 0.
    * ``telescopes`` (n_telescopes, 9) float32, per telescope (:data:`kernels.TELESCOPE_FEATURES`):
      deciding flag, night running, fraction of its night elapsed, hours left / 12, seconds until it
      is free / 300, seeing / 2 arcsec, cloud state one-hot (clear, thin, thick; zeros outside its night).
    * ``site_nodes`` (max_targets, n_telescopes, 3) float32, per target and telescope
      (:data:`kernels.SITE_NODE_FEATURES`): altitude / 90 at that site now (-1 outside its night),
      visible now there, and in flight at that telescope (being exposed, not yet applied).

    ## Rewards
    The single-site reward, credited when an exposure is applied (at its end): priority x visit
    progress / n_visits, plus ``sequence_bonus`` x priority when a multi-visit target completes,
    over the total weight of the catalogue and this episode's ToOs. A step's reward is what was
    applied between this decision and the next. An episode's return is the network's
    priority-weighted completion (ToOs included). Duplicates earn nothing.

    ## Starting State
    Every telescope parked on its meridian at ``park_altitude_deg`` at its evening twilight, filter
    r, no visits done; the first decision is the earliest site's.

    ## Episode End
    Terminated when every site's night is over (the last pending exposures are applied on that
    step). Never truncated. ``step`` before ``reset`` or after the end raises ``ResetNeeded``.

    ## Info
    ``time_s`` (network seconds of the next decision), ``telescope`` (who decides next),
    ``acted`` (who just acted), ``priority_weighted_completion``, ``completed_visits``,
    ``duplicates``, ``toos_arrived``, ``toos_served`` (visit completed before the deadline),
    ``too_mean_latency_s`` (arrival to completion, over the served; 0 if none),
    ``open_shutter_fraction`` (exposure time over elapsed night time, all telescopes),
    ``open_shutter_per_telescope`` and ``exposures_per_telescope`` (arrays over telescopes),
    ``exposures``, ``overhead_s`` and ``snr`` (of the last exposure), ``invalid_action``.

    ## Arguments
    ``gym.make("astrogym/TelescopeNetwork-v0", render_mode=None, catalogue=None, **config)``: every
    :class:`~astrogym.envs.network.config.NetworkConfig` field (``astrogym list --config``);
    ``catalogue`` a :class:`~astrogym.envs.scheduling.catalogue.Catalogue` to share instead of the
    random one. ``render_mode="rgb_array"``: every telescope's timeline (:mod:`plots`).

    ## Reset Options
    ``RESET_OPTIONS``: ``{"date": "YYYY-MM-DD"}``; ``{"weather": [WeatherTrack, ...]}`` one per
    telescope on its night's grid (replays, the offline optimum); ``{"toos": [TargetOfOpportunity,
    ...]}`` the episode's ToOs instead of drawn ones (hand-made scenarios; at most ``max_toos``, in
    order of arrival). The seed draws the date (with ``date_range_days``), then each site's weather
    in site order, then the ToOs.

    ## Accessors
    :attr:`site_nights`, :attr:`toos`, :attr:`state`, :attr:`log` (one dict per exposure: telescope,
    target, decided/start/end network seconds, snr, outcome ``"counted"``/``"duplicate"``/``"pending"``),
    :attr:`target_table` (per telescope), :meth:`overhead_s`, :meth:`action_masks`, :attr:`decider`,
    :attr:`network_clock_s`; :meth:`snapshot` / :meth:`restore` (search), :attr:`weather_tracks` /
    :meth:`set_weather`.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 4}
    config_class = NetworkConfig
    RESET_OPTIONS = ("date", "weather", "toos")

    def __init__(self, render_mode: str | None = None, config: NetworkConfig | dict | None = None,
                 catalogue: Catalogue | None = None, **kwargs: Any):
        super().__init__(render_mode, config, **kwargs)
        cfg = self.config
        self.sites: list[Site] = [get_site(s) for s in cfg.site_keys]
        self.telescopes: list[Telescope] = [get_telescope(t) for t in cfg.telescope_keys]
        self.n_telescopes = len(self.sites)
        if catalogue is None:
            catalogue = random_catalogue(cfg.n_targets, cfg.catalogue_seed, self.telescopes[0],
                                         dec_range_deg=(cfg.dec_min_deg, cfg.dec_max_deg))
        elif not isinstance(catalogue, Catalogue):
            raise TypeError(f"catalogue must be a Catalogue, got {type(catalogue).__name__}")
        elif len(catalogue) != cfg.n_targets:
            raise ValueError(f"catalogue has {len(catalogue)} targets but n_targets={cfg.n_targets}; pass "
                             f"n_targets={len(catalogue)}")
        self.catalogue = catalogue
        self.too_pool = random_catalogue(cfg.too_pool, cfg.catalogue_seed + _POOL_SEED_OFFSET, self.telescopes[0],
                                         dec_range_deg=(cfg.dec_min_deg, cfg.dec_max_deg))
        self.weather_models = [
            ClearWeather() if cfg.weather == "clear" else StochasticWeather(
                seeing_sigma_log=cfg.seeing_sigma_log, seeing_tau_s=cfg.seeing_tau_s,
                cloud_mean_duration_s=cfg.cloud_mean_duration_s) for _ in self.sites]
        self.n_catalogue = n_cat = len(catalogue)
        self.max_targets = m = n_cat + cfg.max_toos
        self.wait_action = m
        # the catalogue's edges are fixed; each ToO slot gets edges from and to its nearest catalogue targets,
        # re-drawn with the ToO's position every episode
        self._edge_src, self._edge_dst, self._edge_sep = build_edges(catalogue.ra, catalogue.dec, cfg.edges,
                                                                     cfg.k_neighbors)
        self._too_k = n_cat if cfg.edges == "full" else min(cfg.k_neighbors, n_cat)
        self.max_edges = e = max(self._edge_src.size + 2 * cfg.max_toos * self._too_k, 1)
        k = self.n_telescopes
        self.action_space = spaces.Discrete(m + 1)
        self.observation_space = spaces.Dict({
            "nodes": spaces.Box(np.tile(F.NODE_LOW, (m, 1)), np.tile(F.NODE_HIGH, (m, 1)), dtype=np.float32),
            "edge_index": spaces.Box(0, max(m - 1, 0), (2, e), np.int64),
            "edges": spaces.Box(np.tile(F.EDGE_LOW, (e, 1)), np.tile(F.EDGE_HIGH, (e, 1)), dtype=np.float32),
            "globals": spaces.Box(F.GLOBAL_LOW, F.GLOBAL_HIGH, dtype=np.float32),
            "node_mask": spaces.MultiBinary(m),
            "edge_mask": spaces.MultiBinary(e),
            "telescopes": spaces.Box(np.tile(NK.TELESCOPE_LOW, (k, 1)), np.tile(NK.TELESCOPE_HIGH, (k, 1)),
                                     dtype=np.float32),
            "site_nodes": spaces.Box(np.tile(NK.SITE_NODE_LOW, (m, k, 1)), np.tile(NK.SITE_NODE_HIGH, (m, k, 1)),
                                     dtype=np.float32),
        })
        self._nodes = np.zeros((m, F.N_NODE_FEATURES), np.float32)
        self._edges = np.zeros((e, F.N_EDGE_FEATURES), np.float32)
        self._glob = np.zeros(F.N_GLOBAL_FEATURES, np.float32)
        self._tel_obs = np.zeros((k, NK.N_TELESCOPE_FEATURES), np.float32)
        self._site_nodes = np.zeros((m, k, NK.N_SITE_NODE_FEATURES), np.float32)
        self._mask = np.zeros(m + 1, np.bool_)
        self._node_mask = np.zeros(m, np.int8)
        self._edge_mask = np.zeros(e, np.int8)
        self._edge_index = np.zeros((2, e), np.int64)
        self._edge_index[0, :self._edge_src.size], self._edge_index[1, :self._edge_src.size] = (self._edge_src,
                                                                                                 self._edge_dst)
        self._applied = np.zeros((k, 2))
        self._summary = np.zeros(NK.SU_COLS)
        self._dates: dict = {}
        self._decider = -1
        self._clock = 0.0
        self._st: np.ndarray | None = None
        self._nights: list[SiteNight] = []
        self._toos: list[TargetOfOpportunity] = []
        self._log: list[list] = []

    # -- set-up -------------------------------------------------------------------------------------------
    def _targ(self, telescope: Telescope, toos: list[TargetOfOpportunity]) -> np.ndarray:
        """(max_targets, T_COLS) kernel columns for one telescope: the catalogue, then the ToO slots."""
        cat, pool = self.catalogue, self.too_pool
        columns = K.target_columns(
            np.concatenate([cat.mag, [t.mag for t in toos]]), np.concatenate([cat.priority, [t.priority for t in toos]]),
            np.concatenate([cat.snr, [t.snr for t in toos]]),
            np.concatenate([cat.exposure_s, [t.exposure_s for t in toos]]),
            np.concatenate([cat.n_visits, np.ones(len(toos))]), np.concatenate([cat.min_gap_s, np.zeros(len(toos))]),
            np.concatenate([cat.filter, [pool.filter[t.pool_index] for t in toos]]), telescope.aperture_m)
        targ = np.zeros((self.max_targets, K.T_COLS))
        targ[:, K.T_NVIS] = 1.0  # empty slots: one visit, never visible
        targ[:, K.T_SNR] = 1.0
        targ[:, K.T_EXP] = 60.0
        targ[:columns.shape[0]] = columns
        return targ

    _SITE_ARRAYS = ("alt", "az", "lst", "ra_app", "dec_app", "sky", "vis_run", "vis_left", "moon_sep", "seeing",
                    "cloud_tau", "cloud_state", "moon_alt", "moon_phase_angle", "sun_alt")
    _DATES_KEPT = 4  # dates whose arrays stay in memory (about 6 MB per date and 100 targets at 4 sites)

    def _date_arrays(self, date: str) -> _DateArrays:
        """What one date fixes: each site's night tables, the network's clock, and the kernels' arrays stacked over
        telescopes with the catalogue's columns filled (the ToO slots' columns are rewritten every episode)."""
        if date in self._dates:
            return self._dates[date]
        cfg, m, n_cat = self.config, self.max_targets, self.n_catalogue
        tables = [night_table(s, date, self.catalogue, cfg.grid_s, cfg.twilight_deg) for s in self.sites]
        pools = [night_table(s, date, self.too_pool, cfg.grid_s, cfg.twilight_deg) for s in self.sites]
        epoch = min(t.mjd_start for t in tables)
        offsets = np.array([(t.mjd_start - epoch) * 86400.0 for t in tables])
        n_grid = np.array([t.times_s.size for t in tables], np.int64)
        k_tel, t_max = len(tables), int(n_grid.max())
        arr = {name: np.zeros((k_tel, t_max, m), np.float32) for name in ("alt", "az", "sky", "vis_left", "moon_sep")}
        arr["vis_run"] = np.zeros((k_tel, t_max, m), np.int32)
        for name in ("lst", "seeing", "cloud_tau", "moon_alt", "moon_phase_angle", "sun_alt"):
            arr[name] = np.zeros((k_tel, t_max))
        arr["seeing"][:] = 1.0
        arr["cloud_state"] = np.zeros((k_tel, t_max), np.int8)
        arr["ra_app"], arr["dec_app"] = np.zeros((k_tel, m)), np.zeros((k_tel, m))
        cat_vis, pool_vis = [], []
        for k, (t, p) in enumerate(zip(tables, pools)):
            ng = n_grid[k]
            for name, source in (("alt", "alt"), ("az", "az"), ("sky", "sky_mag"), ("moon_sep", "moon_sep")):
                arr[name][k, :ng, :n_cat] = getattr(t, source)
            arr["ra_app"][k, :n_cat], arr["dec_app"][k, :n_cat] = t.ra_app, t.dec_app
            vis = visibility_mask(t, self.catalogue, cfg)
            arr["vis_run"][k, :ng, :n_cat] = K.visible_runs(vis)
            arr["vis_left"][k, :ng, :n_cat] = np.cumsum(vis[::-1], axis=0)[::-1] * np.float32(cfg.grid_s)
            for name, source in (("lst", "lst_deg"), ("moon_alt", "moon_alt"), ("moon_phase_angle", "moon_phase_angle"),
                                 ("sun_alt", "sun_alt")):
                arr[name][k, :ng] = getattr(t, source)
            cat_vis.append(vis)
            pool_vis.append(visibility_mask(p, self.too_pool, cfg))
        rows = int(np.ceil(max(t.length_s for t in tables) / EDGE_GRID_S)) + 1
        # overheads along the catalogue's edges at each 10-minute mark of each night, filled on first use
        edge_rows = np.zeros((k_tel, rows, self._edge_src.size, F.N_EDGE_FEATURES), np.float32)
        entry = _DateArrays(tables, pools, offsets, float(np.max(offsets + [t.length_s for t in tables])), n_grid,
                            arr, cat_vis, pool_vis, edge_rows, np.zeros((k_tel, rows), np.bool_))
        self._dates[date] = entry
        while len(self._dates) > self._DATES_KEPT:
            self._dates.pop(next(iter(self._dates)))
        return entry

    def _load_toos(self, da: _DateArrays) -> list[np.ndarray]:
        """Write this episode's ToOs into the slot columns of the date's arrays; returns each site's full visibility."""
        arr, n_cat, grid_s = da.arr, self.n_catalogue, self.config.grid_s
        slots = slice(n_cat, self.max_targets)
        arr["alt"][:, :, slots] = -90.0
        for name in ("az", "sky", "moon_sep", "vis_left"):
            arr[name][:, :, slots] = 0.0
        arr["vis_run"][:, :, slots] = 0
        arr["ra_app"][:, slots] = 0.0
        arr["dec_app"][:, slots] = 0.0
        where = np.array([t.pool_index for t in self._toos], np.int64)
        arrival = np.array([t.arrival_s for t in self._toos])
        deadline = np.array([t.deadline_s for t in self._toos])
        cols = slice(n_cat, n_cat + where.size)
        full = []
        for k, (p, ng) in enumerate(zip(da.pools, da.n_grid)):
            network_t = da.offsets[k] + p.times_s
            vis = da.pool_vis[k][:, where] & (network_t[:, None] >= arrival) & (network_t[:, None] <= deadline)
            for name, source in (("alt", "alt"), ("az", "az"), ("sky", "sky_mag"), ("moon_sep", "moon_sep")):
                arr[name][k, :ng, cols] = getattr(p, source)[:, where]
            arr["ra_app"][k, cols], arr["dec_app"][k, cols] = p.ra_app[where], p.dec_app[where]
            arr["vis_run"][k, :ng, cols] = K.visible_runs(vis)
            arr["vis_left"][k, :ng, cols] = np.cumsum(vis[::-1], axis=0)[::-1] * np.float32(grid_s)
            padded = np.zeros((ng, self.config.max_toos), np.bool_)
            padded[:, :where.size] = vis
            full.append(np.concatenate([da.cat_vis[k], padded], axis=1))
        return full

    def _load_too_edges(self) -> None:
        """Edges between each ToO slot and its nearest catalogue targets (both ways), for this episode's positions."""
        cfg, pool, n_cat, k = self.config, self.too_pool, self.n_catalogue, self._too_k
        where = np.array([t.pool_index for t in self._toos] + [0] * (cfg.max_toos - len(self._toos)), np.int64)
        cat = self.catalogue
        if where.size and k > 0:
            sep = angular_separation_deg(pool.ra[where, None], pool.dec[where, None], cat.ra[None, :],
                                         cat.dec[None, :])
            nearest = np.argsort(sep, axis=1, kind="stable")[:, :k]
            slot = np.repeat(n_cat + np.arange(where.size), k)
            near = nearest.ravel()
            near_sep = np.take_along_axis(sep, nearest, 1).ravel()
            src, dst, esep = np.concatenate([near, slot]), np.concatenate([slot, near]), np.concatenate([near_sep] * 2)
        else:
            src = dst = np.zeros(0, np.int64)
            esep = np.zeros(0)
        self._too_edge_src, self._too_edge_dst, self._too_edge_sep = src.astype(np.int64), dst.astype(np.int64), esep
        e0 = self._edge_src.size
        self._edge_index[0, e0:e0 + src.size], self._edge_index[1, e0:e0 + src.size] = src, dst
        rows = self._date.edge_rows.shape[1]
        self._too_edge_rows = np.zeros((self.n_telescopes, rows, src.size, F.N_EDGE_FEATURES), np.float32)
        self._too_edge_done = np.zeros((self.n_telescopes, rows), np.bool_)

    # -- Gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = self._reset_options(options)
        cfg = self.config
        date = first_date(options, cfg, self.np_random)
        weathers = options.get("weather")
        if weathers is not None and (not isinstance(weathers, (list, tuple)) or len(weathers) != self.n_telescopes
                                     or not all(isinstance(w, WeatherTrack) for w in weathers)):
            raise ValueError(f"reset option 'weather' must be a list of {self.n_telescopes} WeatherTrack, one per "
                             "telescope")
        da = self._date = self._date_arrays(date.isoformat())
        tables, pools, offsets = da.tables, da.pools, da.offsets
        self.combined_length_s = da.combined_length_s
        tracks = []
        for k, (site, table) in enumerate(zip(self.sites, tables)):
            w = weathers[k] if weathers is not None else self.weather_models[k].sample_night(
                self.np_random, table.times_s, site)
            if w.seeing_arcsec.shape != table.times_s.shape:
                raise ValueError(f"reset option 'weather'[{k}] must be on {site.name}'s night grid of "
                                 f"{table.times_s.size} points, got {w.seeing_arcsec.size}")
            tracks.append(w)
        if "toos" in options:
            toos = options["toos"]
            if not isinstance(toos, (list, tuple)) or not all(isinstance(t, TargetOfOpportunity) for t in toos):
                raise TypeError("reset option 'toos' must be a list of TargetOfOpportunity")
            if len(toos) > cfg.max_toos:
                raise ValueError(f"reset option 'toos' has {len(toos)} ToOs; this env has max_toos={cfg.max_toos}")
            for t in toos:
                t.check(len(self.too_pool))
            if any(b.arrival_s < a.arrival_s for a, b in zip(toos, toos[1:])):
                raise ValueError("reset option 'toos' must be in order of arrival_s")
            self._toos = list(toos)
        else:
            self._toos = draw_toos(self.np_random, cfg, self.combined_length_s, self.too_pool, self.telescopes[0])
        cat = self.catalogue
        self.total_weight = float(np.sum(cat.priority * (1.0 + cfg.sequence_bonus * (cat.n_visits > 1)))
                                  + sum(t.priority for t in self._toos))
        self.total_priority = float(cat.priority.sum() + sum(t.priority for t in self._toos))
        for k, (w, ng) in enumerate(zip(tracks, da.n_grid)):
            da.arr["seeing"][k, :ng], da.arr["cloud_tau"][k, :ng], da.arr["cloud_state"][k, :ng] = (
                w.seeing_arcsec, w.cloud_tau, w.cloud_state)
        vis = self._load_toos(da)
        self._nights = [SiteNight(*row) for row in zip(self.sites, self.telescopes, tables, pools, tracks, offsets, vis)]
        self._build_state()
        self._load_too_edges()
        self._arrived = -1  # forces the node and edge masks to be set
        self._log = []
        self._episode_token = next(_EPISODES)  # copies of the env (deepcopy, pickle) share it: their snapshots fit
        self._start_episode()
        self._decider, self._clock, _, _ = NK.advance(self._st, self._par, self._pending, self._targ_all, self._visits,
                                                      self._snr2, self._last_end, self._net, self._too_done,
                                                      self.n_catalogue, self._applied)
        self._describe()
        if self._human:
            self.render()
        return self._obs(), self._info(False, -1)

    def _build_state(self) -> None:
        """Per-telescope rows and the shared pool's state for a new episode; the kernels' argument tuples."""
        k_tel, m, da = self.n_telescopes, self.max_targets, self._date
        self._arr, self._n_grid = da.arr, da.n_grid
        self._site_args = (da.n_grid, *(da.arr[name] for name in self._SITE_ARRAYS))
        self._targ_all = np.stack([self._targ(tel, self._toos) for tel in self.telescopes])
        self._par = np.stack([K.night_parameters(n.telescope, n.site, self.config, self.total_weight, n.table.length_s)
                              for n in self._nights])
        self._st = np.zeros((k_tel, K.S_COLS))
        self._st[:, K.S_OFFSET] = da.offsets
        self._st[:, K.S_POINT] = -1.0
        self._st[:, K.S_FILTER] = FILTERS.index("r")
        self._visits = np.zeros(m, np.int64)
        self._snr2 = np.zeros(m)
        self._last_end = np.full(m, -1e18)
        self._tonight = np.zeros((k_tel, m), np.uint8)
        self._pending = np.zeros((k_tel, NK.PD_COLS))
        self._pending[:, NK.PD_TARGET] = -1.0
        self._net = np.zeros(NK.NET_COLS)
        self._too_arrival = np.full(self.config.max_toos, np.inf)
        self._too_arrival[:len(self._toos)] = [t.arrival_s for t in self._toos]
        self._too_done = np.full(self.config.max_toos, -1.0)

    @property
    def _edge_args(self) -> tuple:
        return (self._edge_src, self._edge_dst, self._edge_sep, self._date.edge_rows, self._date.edge_done,
                self._too_edge_src, self._too_edge_dst, self._too_edge_sep, self._too_edge_rows, self._too_edge_done,
                EDGE_GRID_S)

    def _describe(self) -> None:
        NK.describe(self._decider, self._clock, *self._site_args, self._targ_all, self._par, self._st, self._visits,
                    self._snr2, self._last_end, self._tonight, self._pending, self._too_arrival, self.n_catalogue,
                    *self._edge_args, self._nodes, self._mask, self._edges, self._site_nodes, self._tel_obs,
                    self._glob)
        self._update_masks()

    def _update_masks(self) -> None:
        """Node and edge masks: the catalogue and the ToOs arrived so far (they change only at arrivals)."""
        arrived = int(np.searchsorted(self._too_arrival, self._clock, side="right"))
        if arrived != self._arrived:
            self._arrived = arrived
            real = self.n_catalogue + arrived
            self._node_mask[:] = 0
            self._node_mask[:real] = 1
            self._edge_mask[:] = 0
            e0, e1 = self._edge_src.size, self._too_edge_src.size
            self._edge_mask[:e0] = 1
            self._edge_mask[e0:e0 + e1] = (self._too_edge_src < real) & (self._too_edge_dst < real)

    def action_masks(self) -> np.ndarray:
        """Allowed actions of the deciding telescope now (bool, ``max_targets + 1``; the last is 'wait')."""
        self._require_reset("action_masks()")
        return self._mask.copy()

    def step(self, action):
        if self._needs_reset:
            raise self._reset_needed("step()")
        a = self._check_action(action)
        invalid = False
        if a != self.wait_action and not self._mask[a]:
            if self.config.invalid_action == "raise":
                raise ValueError(self._why_invalid(a))
            invalid = True
            a = self.wait_action
        acted = self._decider
        decided_at = self._clock
        nxt, clock, reward, code, count = NK.network_step(
            a, acted, len(self._log), *self._site_args, self._targ_all, self._par, self._st, self._visits,
            self._snr2, self._last_end, self._tonight, self._pending, self._net, self._too_arrival, self._too_done,
            self.n_catalogue, self._applied, *self._edge_args, self._nodes, self._mask, self._edges,
            self._site_nodes, self._tel_obs, self._glob)
        if code == K.R_OBSERVED:
            p = self._pending[acted]
            self._log.append([acted, a, decided_at, float(p[NK.PD_START]), float(p[NK.PD_END]),
                              float(self._st[acted, K.S_SNR_LAST]), "pending"])
        for j in range(count):
            self._log[int(self._applied[j, 0])][6] = "counted" if self._applied[j, 1] == NK.COUNTED else "duplicate"
        self._decider, self._clock = nxt, clock
        terminated = nxt < 0
        if terminated:
            self._end_episode()
        else:
            self._update_masks()
        if self._human:
            self.render()
        return self._obs(), float(reward), terminated, False, self._info(invalid, acted)

    def _check_action(self, action) -> int:
        return as_discrete_action(action, self.wait_action)

    def _why_invalid(self, a: int) -> str:
        who = self.sites[self._decider].name
        if a >= self.n_catalogue:
            j = a - self.n_catalogue
            if j >= len(self._toos) or self._toos[j].arrival_s > self._clock:
                return f"action {a} is ToO slot {j}, which has not arrived (or is empty) at {self._clock:.0f} s"
        elif self._visits[a] >= self.catalogue.n_visits[a]:
            return f"action {a} ({self.catalogue.name[a]}) is masked: all its visits are done"
        return (f"action {a} is masked for the telescope at {who}: not visible for a whole exposure from the end of "
                "the slew, too soon after its last visit, past its deadline, or ending after dawn; see action_masks()")

    def _obs(self) -> dict:
        return {"nodes": self._nodes.copy(), "edge_index": self._edge_index.copy(), "edges": self._edges.copy(),
                "globals": self._glob.copy(), "node_mask": self._node_mask.copy(), "edge_mask": self._edge_mask.copy(),
                "telescopes": self._tel_obs.copy(), "site_nodes": self._site_nodes.copy()}

    def _info(self, invalid: bool, acted: int) -> dict:
        su, per_tel = self._summary, np.zeros(self.n_telescopes)
        NK.summarise(self._clock, self._st, self._par, self._net, self._too_arrival, self._too_done, len(self._toos),
                     su, per_tel)
        last = self._st[acted] if acted >= 0 else self._st[0] * 0.0
        return {
            "time_s": float(self._clock) if self._decider >= 0 else float(self.combined_length_s),
            "telescope": int(self._decider),
            "acted": int(acted),
            "priority_weighted_completion": float(su[NK.SU_COMPLETED_PW] / self.total_priority),
            "completed_visits": int(su[NK.SU_VISITS]),
            "duplicates": int(su[NK.SU_DUPLICATES]),
            "toos_arrived": int(su[NK.SU_TOOS_ARRIVED]),
            "toos_served": int(su[NK.SU_TOOS_SERVED]),
            "too_mean_latency_s": float(su[NK.SU_TOO_LATENCY]),
            "open_shutter_fraction": float(su[NK.SU_OPEN_SHUTTER]),
            "open_shutter_per_telescope": per_tel,
            "exposures_per_telescope": self._st[:, K.S_N_EXP].astype(np.int64),
            "exposures": int(su[NK.SU_EXPOSURES]),
            "overhead_s": float(last[K.S_OVERHEAD_LAST]),
            "snr": float(last[K.S_SNR_LAST]),
            "invalid_action": invalid,
        }

    # -- accessors ------------------------------------------------------------------------------------------
    def _require_reset(self, name: str) -> None:
        if self._st is None:
            raise self._reset_needed(name)

    @property
    def site_nights(self) -> list[SiteNight]:
        """This episode's nights, one per telescope (tables, weather, visibility over all slots, offset)."""
        return self._nights

    @property
    def toos(self) -> list[TargetOfOpportunity]:
        """This episode's ToOs in order of arrival (slot ``j`` is action ``n_targets + j``); known to the env at
        reset, shown to policies only once arrived."""
        return list(self._toos)

    @property
    def decider(self) -> int:
        """Index of the telescope that decides next (-1 once the episode is over)."""
        return self._decider

    @property
    def network_clock_s(self) -> float:
        """Network seconds (since the earliest evening twilight) of the next decision."""
        return float(self._clock)

    @property
    def state(self) -> dict:
        """Copies of the scheduling state: per telescope its own clock, pointing, filter and tallies; shared visits,
        SNR^2 of the current visits, and each ToO's completion time (-1 if not served)."""
        self._require_reset("state")
        st = self._st
        return {"time_s": st[:, K.S_T].copy(), "offset_s": st[:, K.S_OFFSET].copy(),
                "pointing": st[:, K.S_POINT].astype(int), "filter": [FILTERS[int(f)] for f in st[:, K.S_FILTER]],
                "exposure_s": st[:, K.S_EXPOSURE].copy(), "overhead_s": st[:, K.S_OVERHEAD].copy(),
                "readout_s": st[:, K.S_READOUT].copy(), "wait_s": st[:, K.S_WAIT].copy(),
                "night_length_s": self._par[:, K.PAR_NIGHT_LEN].copy(), "visits": self._visits.copy(),
                "snr2": self._snr2.copy(), "too_done_s": self._too_done[:len(self._toos)].copy(),
                "in_flight": self._pending[:, NK.PD_TARGET].astype(int)}

    @property
    def log(self) -> list[dict]:
        """One dict per exposure: telescope, target, decided_s, start_s, end_s (network seconds), snr, outcome."""
        keys = ("telescope", "target", "decided_s", "start_s", "end_s", "snr", "outcome")
        return [dict(zip(keys, entry)) for entry in self._log]

    @property
    def target_table(self) -> np.ndarray:
        """A copy of the kernels' target columns, (n_telescopes, max_targets, ``kernels.T_COLS``)."""
        self._require_reset("target_table")
        return self._targ_all.copy()

    def overhead_s(self, target: int, telescope: int | None = None) -> float:
        """Overhead (slew or filter change) for ``telescope`` (default: the deciding one) to start ``target`` now."""
        self._require_reset("overhead_s()")
        k = self._decider if telescope is None else int(telescope)
        arr, ng = self._arr, self._n_grid[k]
        return float(K.overhead_time(int(self._st[k, K.S_POINT]), int(target), self._st[k, K.S_T], arr["alt"][k, :ng],
                                     arr["az"][k, :ng], arr["lst"][k, :ng], arr["ra_app"][k], arr["dec_app"][k],
                                     self._targ_all[k], self._par[k], int(self._st[k, K.S_FILTER])))

    # -- search protocol (shared with TelescopeScheduling-v0): snapshots and replaceable weather ---------------
    _MUTABLE = ("_st", "_visits", "_snr2", "_last_end", "_tonight", "_pending", "_net", "_too_done", "_nodes", "_mask",
                "_site_nodes", "_tel_obs", "_glob", "_edges", "_node_mask", "_edge_mask")

    def snapshot(self) -> dict:
        """An opaque copy of the episode's mutable state: :meth:`restore` returns the env to it exactly."""
        self._require_reset("snapshot()")
        snap = {name: getattr(self, name).copy() for name in self._MUTABLE}
        snap.update(decider=self._decider, clock=self._clock, arrived=self._arrived, needs_reset=self._needs_reset,
                    log=[list(e) for e in self._log], episode=self._episode_token)
        return snap

    def restore(self, snapshot: dict) -> dict:
        """Put back a :meth:`snapshot` of this episode, or of a copy of the env in it, and return the observation
        there (``ValueError`` for one of another episode)."""
        if not isinstance(snapshot, dict) or snapshot.get("episode") != self._episode_token:
            raise ValueError("restore() needs a snapshot() of this env's current episode (or of a copy of it)")
        for name in self._MUTABLE:
            np.copyto(getattr(self, name), snapshot[name])
        self._decider, self._clock, self._arrived = snapshot["decider"], snapshot["clock"], snapshot["arrived"]
        self._needs_reset = snapshot["needs_reset"]
        self._log = [list(e) for e in snapshot["log"]]
        return self._obs()

    @property
    def search_clock(self) -> tuple[int, float]:
        """``(0, network seconds)`` of the next decision (the single-site env's ``(night, seconds)`` shape)."""
        self._require_reset("search_clock")
        return 0, float(self._clock) if self._decider >= 0 else float(self.combined_length_s)

    @property
    def requested_visits(self) -> np.ndarray:
        """(max_targets,) visits each action's target needs (catalogue, then ToO slots)."""
        self._require_reset("requested_visits")
        return self._targ_all[0][:, K.T_NVIS].astype(np.int64)

    @property
    def weather_tracks(self) -> list[WeatherTrack]:
        """This episode's weather, one track per telescope (what the kernels read now)."""
        arr = self._arr
        return [WeatherTrack(arr["seeing"][k, :ng].copy(), arr["cloud_state"][k, :ng].copy(),
                             arr["cloud_tau"][k, :ng].copy()) for k, ng in enumerate(self._n_grid)]

    def set_weather(self, tracks: list[WeatherTrack]) -> None:
        """Replace the weather the kernels read (in place): simulation copies of lookahead policies give it a
        forecast. The episode's drawn weather (:attr:`site_nights`) is left as it was."""
        if len(tracks) != self.n_telescopes:
            raise ValueError(f"set_weather needs {self.n_telescopes} tracks, got {len(tracks)}")
        arr = self._arr
        for k, (w, ng) in enumerate(zip(tracks, self._n_grid)):
            if w.seeing_arcsec.shape != (ng,):
                raise ValueError(f"set_weather: track {k} has {w.seeing_arcsec.size} points; the night has {ng}")
            arr["seeing"][k, :ng], arr["cloud_state"][k, :ng], arr["cloud_tau"][k, :ng] = (
                w.seeing_arcsec, w.cloud_state, w.cloud_tau)

    def hide_toos_after(self, clock_s: float) -> None:
        """Make ToOs arriving after ``clock_s`` never arrive (and those before it arrive as drawn), in this env's own
        arrays: simulation copies of online lookahead policies, which must not know of alerts still to come."""
        self._require_reset("hide_toos_after()")
        arr, n_cat, n = self._arr, self.n_catalogue, len(self._toos)
        cols = slice(n_cat, n_cat + n)
        if getattr(self, "_too_columns", None) is None or self._too_columns[0] is not self._nights:
            self._too_columns = (self._nights, arr["vis_run"][:, :, cols].copy(), arr["vis_left"][:, :, cols].copy(),
                                 np.array([t.arrival_s for t in self._toos]))
        _, vis_run, vis_left, arrival = self._too_columns
        known = arrival <= clock_s
        arr["vis_run"][:, :, cols] = np.where(known[None, None, :], vis_run, 0)
        arr["vis_left"][:, :, cols] = np.where(known[None, None, :], vis_left, 0.0)
        self._too_arrival[:n] = np.where(known, arrival, np.inf)

    # -- rendering ------------------------------------------------------------------------------------------
    def _render_frame(self):
        import matplotlib.pyplot as plt

        from astrogym.envs.common.rendering import figure_to_rgb
        from astrogym.envs.network.plots import timeline_figure

        fig = timeline_figure(self)
        frame = figure_to_rgb(fig)
        plt.close(fig)
        return frame
