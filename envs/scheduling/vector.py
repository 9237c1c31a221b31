"""The native vector env of ``astrogym/TelescopeScheduling-v0``: N telescopes' nights, one compiled step.

``gym.make_vec("astrogym/TelescopeScheduling-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba.typed import List

from astrogym.envs.common.vector import AstrogymVectorEnv
from astrogym.envs.scheduling import kernels as K
from astrogym.envs.scheduling.env import EDGE_GRID_S, TelescopeSchedulingEnv

# per-copy arrays the compiled step reads, by name: where each comes from in the copy's env and current night
_NIGHT_ARRAYS = {
    "alt": lambda env, night: night.table.alt, "az": lambda env, night: night.table.az,
    "lst": lambda env, night: night.table.lst_deg, "ra_app": lambda env, night: night.table.ra_app,
    "dec_app": lambda env, night: night.table.dec_app, "sky": lambda env, night: night.table.sky_mag,
    "vis_run": lambda env, night: night.vis_run, "vis_left": lambda env, night: night.vis_left_s,
    "moon_sep": lambda env, night: night.table.moon_sep, "seeing": lambda env, night: night.weather.seeing_arcsec,
    "cloud_tau": lambda env, night: night.weather.cloud_tau, "targ": lambda env, night: env._targ,
    "edge_src": lambda env, night: env._edge_src, "edge_dst": lambda env, night: env._edge_dst,
    "edge_sep": lambda env, night: env._edge_sep, "edge_features": lambda env, night: night.edge_features,
    "edge_done": lambda env, night: night.edge_done, "cloud_state": lambda env, night: night.weather.cloud_state,
    "moon_alt": lambda env, night: night.table.moon_alt,
    "moon_phase_angle": lambda env, night: night.table.moon_phase_angle,
    "sun_alt": lambda env, night: night.table.sun_alt,
    "forecast": lambda env, night: night.forecast if night.forecast is not None else np.zeros((1, 2), np.float32),
}
_INFO_FLOATS = ("time_s", "priority_weighted_completion", "open_shutter_fraction", "slew_overhead_s", "exposure_s",
                "readout_s", "wait_s", "mean_overhead_s", "mean_airmass", "overhead_s", "snr")


class TelescopeSchedulingVectorEnv(AstrogymVectorEnv):
    """N copies of :class:`~astrogym.envs.scheduling.env.TelescopeSchedulingEnv` stepped together.

    ## Description
    :func:`~astrogym.envs.scheduling.kernels.step_batch` applies every copy's decision and describes its
    new state (node features, action mask, edge features) with the single env's own kernels, and
    :func:`~astrogym.envs.scheduling.kernels.globals_batch` fills the global features, so per copy the
    numbers are bit-identical to a single env with the same seed. Each copy keeps its own nights,
    weather and (with ``n_targets_range``) catalogue; the copies share the catalogue object, the
    catalogue pool and the edge-feature cache, which are functions of the config alone. A night's end
    (the next night starts, or the episode ends) is handled per copy in Python, a few times per episode.
    After a reset the single env that reset a copy reads the live state (its accessors and ``render``
    see it), except :attr:`~TelescopeSchedulingEnv.log`: the vector env keeps no per-exposure log (use
    single envs for schedule plots).

    ## Spaces
    The single env's ``Dict`` observation stacked over copies (``nodes`` ``(N, max_targets, 16)`` ...);
    actions ``(N,)`` integers in ``[0, max_targets]``. :meth:`action_masks` returns ``(N, max_targets + 1)``.

    ## Autoreset
    Gymnasium's ``NEXT_STEP`` by default; ``"SameStep"`` and ``"Disabled"`` as in
    :class:`~astrogym.envs.common.vector.AstrogymVectorEnv`.

    ## Arguments
    ``TelescopeSchedulingVectorEnv(num_envs, autoreset_mode=..., copy=True, render_mode=None, **config)``:
    the single env's arguments (config fields, ``catalogue``, ``weather_model``, ``forecaster``), the same
    for every copy. ``reset(options=...)``: the single env's options plus ``reset_mask``. ``step`` returns
    the single env's info keys as arrays over copies. Masked actions are waits flagged by
    ``info["invalid_action"]`` (``invalid_action="raise"`` raises ``ValueError`` naming the copy, before
    any copy moves); actions that are not integers in range raise ``TypeError``/``ValueError``.
    """

    env_class = TelescopeSchedulingEnv
    PARALLEL_FROM = 8  # a copy's step is ~30 us (100 targets): threads pay from a few copies on
    metadata = {**AstrogymVectorEnv.metadata, "render_fps": 4}

    def _make_copies(self, n: int, render_mode: str | None, kwargs: dict) -> list:
        first = self.env_class(render_mode=render_mode, **kwargs)
        shared = {**kwargs, "catalogue": kwargs.get("catalogue") or first.catalogue}
        copies = [first] + [self.env_class(render_mode=render_mode, **shared) for _ in range(n - 1)]
        for env in copies[1:]:  # caches that depend on the config only: one for all copies
            env._edge_caches = first._edge_caches
            env.__dict__["_pool"] = first.__dict__.setdefault("_pool", {})
            env.__dict__["_pool_tables"] = first.__dict__.setdefault("_pool_tables", {})
        return copies

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        first = self.envs[0]
        n, m = self.num_envs, first.max_targets
        self.max_targets, self.wait_action = m, first.wait_action
        self._raise_invalid = first.config.invalid_action == "raise"
        self._st = np.zeros((n, K.S_COLS))
        self._par = np.zeros((n, K.PAR_COLS))
        self._visits = np.zeros((n, m), np.int64)
        self._snr2 = np.zeros((n, m))
        self._last_end = np.zeros((n, m))
        self._tonight = np.zeros((n, m), np.uint8)
        self._n_targets = np.zeros(n, np.int64)
        self._night_index = np.zeros(n, np.int64)
        self._elapsed_before = np.zeros(n)  # seconds of the episode's earlier nights
        self._priority_sum = np.ones(n)
        space = first.observation_space
        self._obs = {key: np.zeros((n, *sub.shape), sub.dtype) for key, sub in space.spaces.items()}
        self._mask = np.zeros((n, m + 1), np.bool_)
        self._has_forecast = first.forecaster is not None
        self._n_nights = first.config.n_nights
        self._lists: dict[str, List] = {}
        self._rewards = np.zeros(n)
        self._codes = np.zeros(n, np.int64)
        self._night_over = np.zeros(n, np.bool_)

    # -- loading a copy ----------------------------------------------------------------------------------
    def _load_night(self, i: int) -> None:
        """Point copy ``i``'s list entries at its current night, and its env at the batch rows."""
        env = self.envs[i]
        night = env.nights[env._night_index]
        if not self._lists:  # the first copy's arrays fix the lists' element types
            self._lists = {name: List([get(env, night)] * self.num_envs) for name, get in _NIGHT_ARRAYS.items()}
        for name, get in _NIGHT_ARRAYS.items():
            self._lists[name][i] = get(env, night)
        self._par[i] = env._par
        self._night_index[i] = env._night_index
        self._elapsed_before[i] = sum(nt.table.length_s for nt in env.nights[:env._night_index])
        env._par = self._par[i]
        env._bind_kernel_args()

    def _load_copy(self, i: int) -> None:
        env = self.envs[i]
        n = len(env.catalogue)
        self._n_targets[i] = n
        self._priority_sum[i] = env.catalogue.priority.sum()
        for batch, own in ((self._visits, env._visits), (self._snr2, env._snr2), (self._last_end, env._last_end),
                           (self._tonight, env._tonight)):
            batch[i] = 0
            batch[i, :n] = own
        self._st[i] = env._st
        obs = self._obs
        obs["nodes"][i], obs["edges"][i], self._mask[i] = env._nodes, env._edges, env._mask
        obs["edge_index"][i], obs["node_mask"][i], obs["edge_mask"][i] = (env._edge_index, env._node_mask,
                                                                          env._edge_mask)
        obs["globals"][i] = env._globals()
        # the copy's env now reads (and its next reset writes) the rows the compiled step updates
        env._visits, env._snr2 = self._visits[i, :n], self._snr2[i, :n]
        env._last_end, env._tonight = self._last_end[i, :n], self._tonight[i, :n]
        env._st, env._nodes, env._edges, env._mask = self._st[i], obs["nodes"][i], obs["edges"][i], self._mask[i]
        self._load_night(i)

    # -- the batched step ----------------------------------------------------------------------------------
    def _check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        if a.dtype.kind not in "iu":
            if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise TypeError(f"actions must be integers in [0, {self.wait_action}] (one per copy), got dtype "
                                f"{a.dtype}")
        if a.shape != (self.num_envs,):
            if a.size == self.num_envs:
                a = a.reshape(self.num_envs)
            else:
                raise ValueError(f"actions must have shape ({self.num_envs},), got {a.shape}")
        bad = (a < 0) | (a > self.wait_action)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"actions[{i}]={int(a[i])} is out of range; allowed [0, {self.wait_action}] "
                             f"({self.wait_action} = wait)")
        return a.astype(np.int64)

    def _step_copies(self, actions, active):
        a = self._check_actions(actions)
        n = self._n_targets
        rows = np.arange(self.num_envs)
        allowed = (a == self.wait_action) | ((a < n) & self._mask[rows, np.minimum(a, self.max_targets)])
        invalid = active & ~allowed
        if invalid.any() and self._raise_invalid:
            i = int(np.flatnonzero(invalid)[0])
            raise ValueError(f"actions[{i}]: {self.envs[i]._why_invalid(int(a[i]))}")
        kernel_actions = np.where(invalid | (a >= n), n, a)
        lists = self._lists
        step = K.step_batch_parallel if self.parallel else K.step_batch
        step(kernel_actions, active, n, lists["alt"], lists["az"], lists["lst"], lists["ra_app"], lists["dec_app"],
             lists["sky"], lists["vis_run"], lists["vis_left"], lists["moon_sep"], lists["seeing"], lists["cloud_tau"],
             lists["targ"], self._par, self._st, self._visits, self._snr2, self._last_end, self._tonight,
             self._obs["nodes"], self._mask, lists["edge_src"], lists["edge_dst"], lists["edge_sep"],
             lists["edge_features"], lists["edge_done"], self._obs["edges"], EDGE_GRID_S, self._rewards, self._codes,
             self._night_over)
        terminated = np.zeros(self.num_envs, np.bool_)
        for i in np.flatnonzero(active & self._night_over):  # a few times per episode
            env = self.envs[i]
            if env._night_index + 1 < len(env.nights):
                env._start_night(env._night_index + 1)
                self._load_night(i)
            else:
                terminated[i] = True
                env._end_episode()
            env._observe()
        self._fill_globals()
        return self._rewards.copy(), terminated, np.zeros(self.num_envs, np.bool_), self._info(invalid)

    def _fill_globals(self) -> None:
        lists = self._lists
        K.globals_batch(self._st, self._par, self._night_index, self._n_nights, lists["seeing"], lists["cloud_state"],
                        lists["moon_alt"], lists["moon_phase_angle"], lists["sun_alt"], lists["forecast"],
                        self._has_forecast, self._obs["globals"])

    def _info(self, invalid: np.ndarray) -> dict:
        """The single env's ``info`` for every copy, as arrays (the same arithmetic, element by element)."""
        st = self._st
        n_exp = st[:, K.S_N_EXP]
        elapsed = self._elapsed_before + st[:, K.S_T]
        with np.errstate(divide="ignore", invalid="ignore"):
            info = {
                "time_s": st[:, K.S_OFFSET] + st[:, K.S_T],
                "night": self._night_index.copy(),
                "completed_visits": st[:, K.S_VISITS_DONE].astype(np.int64),
                "priority_weighted_completion": st[:, K.S_COMPLETED_PW] / self._priority_sum,
                "open_shutter_fraction": np.where(elapsed > 0, st[:, K.S_EXPOSURE] / elapsed, 0.0),
                "slew_overhead_s": st[:, K.S_OVERHEAD].copy(),
                "exposure_s": st[:, K.S_EXPOSURE].copy(),
                "readout_s": st[:, K.S_READOUT].copy(),
                "wait_s": st[:, K.S_WAIT].copy(),
                "mean_overhead_s": np.where(n_exp != 0, st[:, K.S_OVERHEAD] / n_exp, 0.0),
                "mean_airmass": np.where(n_exp != 0, st[:, K.S_AIRMASS_SUM] / n_exp, 0.0),
                "filter_changes": st[:, K.S_FILTER_CHANGES].astype(np.int64),
                "exposures": n_exp.astype(np.int64),
                "overhead_s": st[:, K.S_OVERHEAD_LAST].copy(),
                "snr": st[:, K.S_SNR_LAST].copy(),
                "invalid_action": invalid.copy(),
            }
        return info

    def _observations(self) -> dict:
        return self._obs

    def action_masks(self) -> np.ndarray:
        """Allowed actions of every copy now, ``(N, max_targets + 1)`` bool (the last column is 'wait')."""
        if not self._has_reset:
            raise self.envs[0]._reset_needed("action_masks()")
        return self._mask.copy()
