"""The native vector env of the AO ids: N adaptive-optics loops, one compiled frame for all copies.

``gym.make_vec("astrogym/AdaptiveOpticsSmall-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba.typed import List

from astrogym.envs.adaptive_optics import kernels
from astrogym.envs.adaptive_optics.env import _F32, _F64, _MEASUREMENT_CLIP, AdaptiveOpticsEnv
from astrogym.envs.adaptive_optics.wfs import DiffractiveSH
from astrogym.envs.common.actions import as_float64_action
from astrogym.envs.common.vector import AstrogymVectorEnv

# per-layer arrays the compiled frame reads, by name: where each comes from in a copy's atmosphere (layer k)
_LAYER_ARRAYS = {
    "buffer": lambda atmosphere, k: atmosphere.layers[k].buffer, "a": lambda atmosphere, k: atmosphere.layers[k]._a,
    "b": lambda atmosphere, k: atmosphere.layers[k]._b, "z_rows": lambda atmosphere, k: atmosphere.layers[k]._z_rows,
    "z_cols": lambda atmosphere, k: atmosphere.layers[k]._z_cols, "x": lambda atmosphere, k: atmosphere._x[k],
    "y": lambda atmosphere, k: atmosphere._y[k],
}
_LAYOUT_KINDS = {"grid": kernels.LAYOUT_GRID, "flat": kernels.LAYOUT_FLAT, "modal": kernels.LAYOUT_MODAL}


class AdaptiveOpticsVectorEnv(AstrogymVectorEnv):
    """N copies of :class:`~astrogym.envs.adaptive_optics.env.AdaptiveOpticsEnv` stepped together.

    ## Description
    :func:`~astrogym.envs.adaptive_optics.kernels.ao_frame_batch` runs a whole loop frame of every
    copy (action, delay line, frozen-flow layers, DM, Shack-Hartmann, reconstruction, observation
    history) across numba's threads, calling the single env's own kernels in the single env's order,
    so per copy the numbers are bit-identical to a single env with the same seed. The copies' random
    draws (new atmosphere columns, WFS noise) come from each copy's own NumPy generator, in the single
    env's order; drawing them is the only per-copy Python work of a step, and what keeps the copies
    identical to single envs. The reconstructor is applied per copy with the single env's float32
    kernel: a shared matrix-matrix product would change its summation order and break that identity.

    The copies share the system (pupil, DM influence, interaction matrix, reconstructor) and hold
    their own atmosphere, DM command, delay line and observation window; after a reset, the single env
    that reset a copy reads the live residual phase, command and observation (its accessors and
    ``render`` see them).

    ## Spaces
    ``observation_space``: the single env's ``(2 history, N_act, N_act)`` float32 stacked to
    ``(N, ...)``; ``action_space``: the single env's action layout stacked likewise.

    ## Autoreset
    Gymnasium's ``NEXT_STEP`` by default; ``"SameStep"`` and ``"Disabled"`` as in
    :class:`~astrogym.envs.common.vector.AstrogymVectorEnv`.

    ## Arguments
    ``AdaptiveOpticsVectorEnv(num_envs, autoreset_mode=..., copy=True, render_mode=None, **config)``:
    config fields as for the single env, the same for every copy; ``reset(options=...)`` takes the
    single env's options (``r0_m``, wind speeds and directions) plus ``reset_mask``. Fault injection
    (``fault``) and PSF accumulation (``psf_every``) run on single envs only: other values than
    ``"none"`` and 0 raise ``ValueError``. ``step`` returns ``info["strehl"]`` and
    ``info["residual_rad2"]`` as arrays over copies; a batch with a non-finite or out-of-range action
    raises ``ValueError`` naming the copy before any copy moves.
    """

    env_class = AdaptiveOpticsEnv
    PARALLEL_FROM = 4  # a copy's frame is ~100 us: threads pay at once
    metadata = {**AstrogymVectorEnv.metadata, "render_fps": 30}

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        first = self.envs[0]
        cfg = first.config
        if cfg.fault != "none":
            raise ValueError(f"AOConfig.fault={cfg.fault!r}: fault injection runs on single envs (gym.make); the "
                             "vector env takes fault='none'")
        if cfg.psf_every:
            raise ValueError(f"AOConfig.psf_every={cfg.psf_every}: the science PSF is computed on single envs "
                             "(gym.make); the vector env takes psf_every=0")
        n = self.num_envs
        system = first.system
        n_act, n_pix, h = cfg.n_actuators, cfg.pupil_pixels, cfg.history
        layout = first._layout
        self._layout_kind = _LAYOUT_KINDS[layout.name]
        self._controlled_f = layout._controlled_f
        self._index = np.ascontiguousarray(first._controlled_index)
        self._modes_t = layout._modes_t if layout.name == "modal" else np.zeros((1, self._index.size))
        self._clipped = np.zeros((n, self._modes_t.shape[0]))
        self._increment = np.zeros((n, self._index.size))
        self._command = np.zeros((n, n_act, n_act))
        self._queue = np.zeros((n, cfg.loop_delay_frames, n_act, n_act))
        self._obs = np.zeros((n, 2 * h, n_act, n_act), np.float32)
        self._residual = np.zeros((n, n_pix, n_pix))
        self._gc = np.zeros((n, n_pix, n_act))
        self._slopes = np.zeros((n, system.n_slopes))
        self._slopes32 = np.zeros((n, system.n_slopes), np.float32)
        self._recon_tmp = np.zeros((n, self._index.size), np.float32)
        self._recon = np.zeros((n, self._index.size), np.float32)
        self._variance = np.zeros(n)
        self._frames = np.zeros(n, np.int64)
        wfs = first._wfs
        self._diffractive = isinstance(wfs, DiffractiveSH)
        self._photons = first._photons
        self._sigma = 0.0 if self._diffractive else wfs.noise_sigma(self._photons, cfg.wfs_read_noise_e)
        self._wr, self._wi = (wfs._wr, wfs._wi) if self._diffractive else (np.zeros((1, 1), np.float32),) * 2
        self._to_wfs = wfs.to_wfs if self._diffractive else 1.0
        m = 2 * cfg.pixels_per_subaperture
        n_valid = system.valid_subapertures.shape[0]
        noisy = self._photons > 0.0
        self._slope_noise = np.zeros((n, system.n_slopes) if noisy and not self._diffractive else (n, 1))
        self._spot_noise = np.zeros((n, n_valid, m, m, 2) if noisy and self._diffractive else (n, 1, 1, 1, 2))
        self._dt = 1.0 / cfg.loop_rate_hz
        self._science_scale2 = cfg.science_scale ** 2
        self._penalty = cfg.action_penalty
        self._action_shape = (n, *first._action_shape)
        self._flat_shape = (n, int(np.prod(first._action_shape)))
        self._clip = cfg.action_out_of_range == "clip"
        # per-copy layer state: typed Lists (index i * L + l) of each copy's own arrays; heads and offsets here
        self._lists: dict[str, List] = {}
        self._n_layers = 0

    # -- loading a copy after its reset -------------------------------------------------------------------
    def _load_copy(self, i: int) -> None:
        env = self.envs[i]
        layers = env._atmosphere.layers
        if not self._lists:  # the first reset fixes the layer count (a config property) and the lists' types
            self._n_layers = len(layers)
            self._heads = np.zeros((self.num_envs, self._n_layers), np.int64)
            self._offsets = np.zeros((self.num_envs, self._n_layers))
            self._speeds = np.zeros((self.num_envs, self._n_layers))
            self._pixel_scale = layers[0].pixel_scale
            self._noise_width = layers[0]._b.shape[1]
            self._lists = {name: List([get(env._atmosphere, k) for k in range(self._n_layers)] * self.num_envs)
                           for name, get in _LAYER_ARRAYS.items()}
            self._aligned = np.zeros(self.num_envs * self._n_layers, np.bool_)
        atmosphere = env._atmosphere
        for k, layer in enumerate(layers):
            j = i * self._n_layers + k
            for name, get in _LAYER_ARRAYS.items():
                self._lists[name][j] = get(atmosphere, k)
            self._aligned[j] = atmosphere._aligned[k]
            self._heads[i, k], self._offsets[i, k] = layer.head, layer.offset
            self._speeds[i, k] = atmosphere.speeds[k]
        for batch, own in ((self._command, env._command), (self._queue, env._queue), (self._obs, env._obs),
                           (self._residual, env._residual)):
            batch[i] = own
        # the copy's env now reads (and its next reset writes) the rows the batched frame updates
        env._command, env._queue, env._obs, env._residual = (self._command[i], self._queue[i], self._obs[i],
                                                              self._residual[i])
        self._frames[i] = 0

    # -- one frame of every copy ----------------------------------------------------------------------------
    def _draw_noise(self, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance the layers' offsets and draw each copy's random numbers in the single env's order.

        Per copy: the new columns of each layer that crossed a pixel (``InfiniteScreen.advance``), then the
        WFS noise. Returns the stacked extrusion noise and where each copy's layers start in it.
        """
        moving = active[:, None] & (self._speeds > 0)
        advanced = self._offsets + self._speeds * self._dt / self._pixel_scale
        steps = np.where(moving, advanced.astype(np.int64), 0)
        self._offsets = np.where(moving, advanced - steps, self._offsets)
        counts = steps.reshape(-1)
        starts = np.zeros_like(counts)
        np.cumsum(counts[:-1], out=starts[1:])
        noise = np.empty((max(int(counts.sum()), 1), self._noise_width))
        noisy = self._photons > 0.0
        for i in np.flatnonzero(active if noisy else steps.any(axis=1)):
            rng = self.envs[i].np_random
            for k in range(self._n_layers):
                j = i * self._n_layers + k
                if counts[j]:
                    noise[starts[j]:starts[j] + counts[j]] = rng.standard_normal((counts[j], self._noise_width))
            if noisy:
                if self._diffractive:
                    self._spot_noise[i] = rng.standard_normal(self._spot_noise.shape[1:])
                else:
                    self._slope_noise[i] = rng.standard_normal(self._slope_noise.shape[1:])
        return noise, starts.reshape(steps.shape), steps

    def _step_copies(self, actions, active):
        a = actions
        if not (type(a) is np.ndarray and a.shape == self._action_shape and (a.dtype == _F32 or a.dtype == _F64)
                and a.flags.c_contiguous):
            a = as_float64_action(actions, self._action_shape, "actions (one action per copy)")
        flat = a.reshape(self._flat_shape)
        status, i, peak = kernels.check_batch_actions(flat, self._clip)
        if status == 1:
            raise ValueError(f"actions[{i}] must be finite; the action space is [-1, 1]")
        if status == 2:
            raise ValueError(f"actions[{i}] has entries up to {peak:.3g}, outside the action space [-1, 1] (make the "
                             "env with action_out_of_range='clip' to clip instead)")
        noise, starts, counts = self._draw_noise(active)
        first, lists, system = self.envs[0], self._lists, self.envs[0].system
        f = system.factored
        (kernels.ao_frame_batch_parallel if self.parallel else kernels.ao_frame_batch)(
            flat, self._layout_kind, self._controlled_f, self._index, self._modes_t, self._clipped, self._increment,
            first.config.action_scale_rad, first.config.dm_stroke_rad, self._clip, self._command, self._queue,
            lists["buffer"], self._heads, self._offsets, lists["a"], lists["b"], lists["z_rows"], lists["z_cols"],
            noise, starts, counts, lists["x"], lists["y"], self._aligned, self._residual, first._gt, first._dm_lo,
            first._dm_hi, self._gc, first._pupil, self._science_scale2,
            kernels.WFS_DIFFRACTIVE if self._diffractive else kernels.WFS_GEOMETRIC, system.valid_subapertures,
            first.config.pixels_per_subaperture, self._to_wfs, self._photons, first.config.wfs_read_noise_e,
            self._sigma, self._slope_noise, self._spot_noise, self._wr, self._wi, self._slopes, self._slopes32,
            f.dt_indptr, f.dt_indices, f.dt_data, f.gram_packed, self._recon_tmp, self._recon, self._obs,
            first.config.history, 1.0 / first.config.action_scale_rad, _MEASUREMENT_CLIP, active, self._variance)
        self._frames += active
        variance = self._variance.copy()
        rewards = -variance
        if self._penalty:
            increments = self._applied_increments(a)
            rewards -= self._penalty * np.mean(increments * increments, axis=1)
        info = {"strehl": np.array([math.exp(-v) for v in variance]), "residual_rad2": variance}
        truncated = active & (self._frames >= first.config.episode_frames)
        return rewards, np.zeros(self.num_envs, np.bool_), truncated, info

    def _applied_increments(self, actions: np.ndarray) -> np.ndarray:
        """(N, grid) increments of the action penalty, as the single env's layout defines them."""
        n_grid = self._command.shape[1] * self._command.shape[2]
        if self._layout_kind == kernels.LAYOUT_GRID:
            return np.clip(np.asarray(actions, np.float64).reshape(self.num_envs, n_grid), -1.0, 1.0)
        grid = np.zeros((self.num_envs, n_grid))
        values = (self._increment if self._layout_kind == kernels.LAYOUT_MODAL
                  else np.clip(np.asarray(actions, np.float64), -1.0, 1.0))
        grid[:, self._index] = values
        return grid

    def _observations(self) -> np.ndarray:
        return self._obs
