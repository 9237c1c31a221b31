"""``astrogym/AdaptiveOptics-v0``: a single-conjugate adaptive-optics loop (Shack-Hartmann, Gaussian DM)."""

from __future__ import annotations

from typing import Any

import math

import gymnasium as gym
import numpy as np

from astrogym.envs.adaptive_optics import kernels, layouts, metrics
from astrogym.envs.adaptive_optics.atmosphere import Atmosphere
from astrogym.envs.adaptive_optics.config import AOConfig
from astrogym.envs.adaptive_optics.optics import build_system
from astrogym.envs.adaptive_optics.wfs import DiffractiveSH, GeometricSH
from astrogym.envs.common.actions import as_float64_action
from astrogym.envs.common.base import AstrogymEnv

_PSF_PADDING = 4  # focal-plane pixels per lambda/D
# Reconstructed measurements saturate here (in action units), far beyond any loop that is closed,
# so the observation space is bounded.
_MEASUREMENT_CLIP = 100.0
# Photons/s/m^2 of a magnitude-0 star in the WFS band (R, ~160 nm wide; Bessell 1998 zero points).
_ZERO_POINT_PHOTONS = 1.7e10
# Action dtypes the kernels take as they come (native byte order); any other goes through as_float64_action.
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


class AdaptiveOpticsEnv(AstrogymEnv):
    """Closed-loop single-conjugate adaptive optics on an 8 m telescope.

    ## Description
    Frozen-flow von Karman turbulence (infinite screens, one or more layers) crosses the pupil;
    a Shack-Hartmann sensor measures the residual wavefront; the agent commands a Gaussian-
    influence deformable mirror whose commands take effect ``loop_delay_frames`` later. The
    science camera sees the residual phase at ``science_wavelength_um``. Defaults: the 40x40
    standard system of ``shared/reference/adaptive-optics.md``; ``AdaptiveOpticsSmall-v0`` is
    the 20x20 preset. The WFS is ``wfs="geometric"`` (mean gradient per subaperture, fast) or
    ``"diffractive"`` (lenslet FFT spots and centroids, calibrated by push-pull pokes); it is
    noiseless unless ``guide_star_magnitude`` is set.

    ## Action Space
    Chosen by ``action_layout`` (:mod:`~astrogym.envs.adaptive_optics.layouts`); every layout drives
    the same DM command, and the observation does not depend on it:

    * ``"grid"`` (default): ``Box(-1, 1, (N+1, N+1), float32)``: DM command increments on the
      actuator grid in units of ``action_scale_rad`` (phase at 500 nm). Uncontrolled actuators
      (outside the pupil, ``system.controlled`` false) ignore their entry. The baselines of
      ``astrogym.agents`` (integrator, predictive, residual) need this layout.
    * ``"flat"``: ``Box(-1, 1, (n_controlled,), float32)``: the controlled actuators only, in
      ``np.flatnonzero(system.controlled)`` order, same units: for libraries that need a 1-D Box
      (CleanRL's PPO, for one). ``grid[controlled]`` steps it to the bit as ``grid`` steps the grid
      layout, for grids that are zero on the uncontrolled actuators.
    * ``"modal"``: ``Box(-1, 1, (n_modes,), float32)``: coefficients on the Karhunen-Loeve modes of
      von Karman phase (``r0_m``, ``outer_scale_m``) at the controlled actuators, piston excluded,
      largest variance first (modes 0 and 1 are tip and tilt); ``n_modes=0`` takes all
      ``n_controlled - 1``. Each mode is scaled so its largest actuator is 1: a coefficient of 1
      moves that actuator by ``action_scale_rad``. The coefficients are range-checked; the
      actuator increment they make may exceed 1 and goes straight to the stroke clip.
      :attr:`modal_basis` is the (n_controlled, n_modes) basis.

    The command is clipped to ``dm_stroke_rad``. Out-of-range (outside [-1, 1]) or non-finite
    actions raise ``ValueError`` unless ``action_out_of_range="clip"``, which clips them to [-1, 1].
    Actions may be of any real dtype (float16, big-endian, long double and integer arrays, lists);
    native float32 and float64 arrays are used as they are, others converted to float64; complex,
    boolean, string and object actions raise ``TypeError``, a wrong shape ``ValueError``.
    :meth:`action_to_grid` and :meth:`grid_to_action` convert between a layout and the grid.

    ## Observation Space
    ``Box((2 H, N+1, N+1), float32)``, channel-first (the PO4AO layout), ``H = history``:
    channels ``0..H-1`` are the WFS measurement reconstructed onto the actuator grid
    (``R s``, divided by ``action_scale_rad``, saturating at +-100), newest first; channels ``H..2H-1`` the DM
    commands computed at the previous H steps (divided by ``dm_stroke_rad``), newest first.

    ## Rewards
    ``-sigma^2``: the piston-removed residual phase variance over the pupil in rad^2 at the
    science wavelength, minus ``action_penalty`` times the mean over the actuator grid of the
    squared actuator increments in action units (for the grid layout ``mean(clip(action)^2)`` over
    every entry, uncontrolled ones included). Nothing else.

    ## Starting State
    A fresh atmosphere drawn from the env's RNG, a flat DM, and the open-loop measurement.

    ## Episode End
    Never terminated (the loop cannot leave a state); truncated after ``episode_frames``. Calling
    ``step`` after that, or before the first ``reset``, raises ``gymnasium.error.ResetNeeded``
    (:class:`~astrogym.envs.common.base.AstrogymEnv`'s rule, the same in every astrogym env);
    :attr:`needs_reset` says whether it would.

    ## Arguments
    ``gym.make("astrogym/AdaptiveOptics-v0", render_mode=None, config=None, **kwargs)``: keyword
    arguments are fields of :class:`AOConfig` (``astrogym list --config``). ``reset`` options
    (``RESET_OPTIONS``) may set this episode's ``r0_m``, ``wind_speeds_mps`` or
    ``wind_directions_deg``; another key raises ``ValueError``, options that are not a dict ``TypeError``.

    ``info`` each step: ``strehl`` (Marechal, exp(-sigma^2)), ``residual_rad2``; on frames where
    the PSF is computed (``psf_every``), ``strehl_psf``; at the end of an episode, with
    ``psf_every > 0``, ``long_exposure_strehl`` and ``raw_contrast`` (perfect coronagraph,
    mean over 3-10 lambda/D of the long exposure) and ``raw_contrast_2_5`` (the same over 2-5 lambda/D).

    Fault injection (off by default; the env is bit-identical with ``fault="none"``), from
    ``fault_start_frame`` for ``fault_duration_frames``: ``"dead_subapertures"`` (a fixed random
    ``fault_dead_fraction`` of the valid subapertures reads zero slopes), ``"stuck_actuator"``
    (``fault_stuck_actuators`` controlled actuators held at ``+dm_stroke_rad``), ``"wind_burst"``
    (every layer ``fault_wind_factor`` times faster); :attr:`fault_active` says whether the coming
    frame is faulted. They exercise out-of-distribution shields (:mod:`astrogym.surrogates.shield`).

    ``render_mode="rgb_array"``: the science PSF (log scale) beside the residual phase; ``"human"``
    shows it in a matplotlib window after each ``reset``/``step`` (an interactive backend is needed,
    else ``ValueError``). Any other mode raises ``ValueError`` naming the allowed ones.

    ## Accessors
    Read-only, for evaluation and diagnostics (nothing outside this package reads the env's
    private attributes): :attr:`residual_phase_rad` (pupil grid, 500 nm),
    :attr:`science_residual_phase_rad` (science wavelength), :attr:`episode_parameters`,
    :meth:`long_exposure_psf` and :attr:`psf_padding` (with :meth:`reset_long_exposure`),
    :attr:`system` (pupil, influence functions, reconstructor), :attr:`modal_basis` and
    :attr:`needs_reset`. Conversions: :meth:`action_to_grid` (an action of this env's layout ->
    (N+1, N+1) float64 actuator increments in action units) and :meth:`grid_to_action` (back:
    exact for flat, least squares onto the modes for modal).

    ## Version History
    * v0: initial release; ``action_layout`` (``"flat"``, ``"modal"``) and ``n_modes`` added later, the
      default ``"grid"`` unchanged.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}
    config_class = AOConfig
    RESET_OPTIONS = ("r0_m", "wind_speeds_mps", "wind_directions_deg")

    def __init__(self, render_mode: str | None = None, config: AOConfig | dict | None = None, **kwargs: Any):
        """Build the system (calibration cached per geometry) and, for ``action_layout="modal"``, its
        KL basis (cached in memory).

        ``config`` / ``kwargs``: fields of :class:`AOConfig`. The controllers of ``astrogym.agents``
        (the integrator and the other baselines) read and write the actuator grid: make their envs
        with ``action_layout="grid"`` (the default); ``"flat"`` and ``"modal"`` are for external RL code.

        Raises
        ------
        ValueError: a config value out of range, or ``n_modes`` above the modes of this geometry.
        TypeError: a config value of the wrong type.
        """
        super().__init__(render_mode, config, **kwargs)
        cfg = self.config
        self.system = system = build_system(cfg)
        n_act, h = cfg.n_actuators, cfg.history
        self._layout = layouts.make_layout(cfg, system.controlled)
        self.action_space = self._layout.space
        self._action_shape = self.action_space.shape
        low = np.full((2 * h, n_act, n_act), -_MEASUREMENT_CLIP, dtype=np.float32)
        low[h:] = -1.0
        self.observation_space = gym.spaces.Box(low, -low, dtype=np.float32)

        self._controlled_index = np.flatnonzero(system.controlled)
        self._g = system.influence_1d
        self._gt = np.ascontiguousarray(system.influence_1d.T)
        # Per-frame work buffers: a frame allocates nothing large.
        n_pix, n_ctrl = cfg.pupil_pixels, self._controlled_index.size
        self._gc = np.empty((n_pix, n_act))
        lit = self._gt != 0.0  # the pixels each actuator column reaches (a contiguous run)
        self._dm_lo = lit.argmax(axis=1)
        self._dm_hi = n_pix - lit[:, ::-1].argmax(axis=1)
        self._slopes32 = np.empty(system.n_slopes, dtype=np.float32)
        self._recon_tmp = np.empty(n_ctrl, dtype=np.float32)
        self._recon = np.empty(n_ctrl, dtype=np.float32)
        self._pupil = system.pupil
        sensor = DiffractiveSH if cfg.wfs == "diffractive" else GeometricSH
        self._wfs = sensor(cfg, system.pupil, system.valid_subapertures)
        self._photons = self._photons_per_subaperture()
        self._obs = np.zeros((2 * h, n_act, n_act), dtype=np.float32)
        self._queue = np.zeros((cfg.loop_delay_frames, n_act, n_act))
        self._command = np.zeros((n_act, n_act))
        self._episode: dict[str, Any] = {}
        self._frame = 0
        self._atmosphere: Atmosphere | None = None
        self._residual = np.zeros((cfg.pupil_pixels, cfg.pupil_pixels))
        self._long_psf = None
        self._long_coro = None
        self._n_psf = 0
        self._build_fault()

    # -- physics helpers ---------------------------------------------------------------------------
    def _photons_per_subaperture(self) -> float:
        """Photons per subaperture per frame at the WFS (0 = noiseless)."""
        cfg = self.config
        if cfg.guide_star_magnitude is None:
            return 0.0
        return (_ZERO_POINT_PHOTONS * 10 ** (-0.4 * cfg.guide_star_magnitude) * cfg.subaperture_m**2
                * cfg.wfs_throughput / cfg.loop_rate_hz)

    def _build_fault(self) -> None:
        """The configured fault's fixed pieces: which subapertures die or which actuators stick (seeded by 0)."""
        cfg = self.config
        self._fault = None if cfg.fault == "none" else (cfg.fault_start_frame,
                                                          cfg.fault_start_frame + cfg.fault_duration_frames)
        rng = np.random.default_rng(0)  # the same broken hardware in every episode
        n_valid = self.system.valid_subapertures.shape[0]
        dead = rng.choice(n_valid, int(round(cfg.fault_dead_fraction * n_valid)), replace=False)
        self._dead_slopes = np.concatenate([dead, dead + n_valid])  # x slopes then y slopes
        n_stuck = min(cfg.fault_stuck_actuators, self._controlled_index.size)
        self._stuck = rng.choice(self._controlled_index, n_stuck, replace=False)

    @property
    def fault_active(self) -> bool:
        """Whether the configured fault acts on the coming frame (always False with ``fault='none'``)."""
        return self._fault is not None and self._fault[0] <= self._frame < self._fault[1]

    def _measure(self) -> None:
        """WFS on the current residual, reconstruction onto the actuator grid, history shift."""
        cfg = self.config
        slopes = self._wfs.measure(self._residual, self._photons, cfg.wfs_read_noise_e, self.np_random)
        if self._fault is not None and cfg.fault == "dead_subapertures" and self.fault_active:
            slopes[self._dead_slopes] = 0.0
        self._slopes32[:] = slopes
        reconstructed = self.system.factored.apply(self._slopes32, self._recon_tmp, self._recon)
        h = cfg.history
        obs = self._obs
        obs[1:h] = obs[: h - 1]
        obs[h + 1:] = obs[h:-1]
        kernels.scatter_scaled(reconstructed, self._controlled_index, 1.0 / cfg.action_scale_rad, _MEASUREMENT_CLIP,
                               obs[0].reshape(-1))
        np.divide(self._command, cfg.dm_stroke_rad, out=obs[h])

    def _update_residual(self) -> float:
        """Residual = atmosphere - DM (applied command); returns its variance at the science wavelength."""
        phase = self._atmosphere.phase(self._residual)
        variance = kernels.subtract_dm_and_variance(phase, self._gt, self._dm_lo, self._dm_hi, self._queue[0],
                                                    self._gc, self._pupil)
        return variance * self.config.science_scale**2

    # -- gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cfg = self.config
        options = self._reset_options(options)
        episode_cfg = cfg.replace(**options) if options else cfg
        self._episode = {k: getattr(episode_cfg, k) for k in self.RESET_OPTIONS}
        self._atmosphere = Atmosphere(cfg.pupil_pixels, cfg.pixel_scale_m, episode_cfg.r0_m, cfg.outer_scale_m,
                                      cfg.layer_weights, episode_cfg.wind_speeds_mps,
                                      episode_cfg.wind_directions_deg, self.np_random)
        self._command[:] = 0.0
        self._queue[:] = 0.0
        self._obs[:] = 0.0
        variance = self._update_residual()
        self._measure()
        self._frame = 0
        self._start_episode()
        self.reset_long_exposure()
        info = dict(self._episode)
        info.update(strehl=metrics.marechal_strehl(variance), residual_rad2=variance)
        if self._human:
            self.render()
        return self._obs.copy(), info

    def step(self, action):
        if self._needs_reset:
            raise self._reset_needed("step()")
        cfg = self.config
        layout = self._layout
        a = action
        if not (type(a) is np.ndarray and a.shape == self._action_shape and (a.dtype == _F32 or a.dtype == _F64)
                and a.flags.c_contiguous):
            a = as_float64_action(action, self._action_shape)
        status, peak = layout.apply(a, self._command, cfg.action_scale_rad, cfg.dm_stroke_rad,
                                    cfg.action_out_of_range == "clip")
        if status == 1:
            raise ValueError("action must be finite; the action space is [-1, 1]")
        if status == 2:
            raise ValueError(f"action has entries up to {peak:.3g}, outside the action space "
                             "[-1, 1] (make the env with action_out_of_range='clip' to clip instead)")
        dt = 1.0 / cfg.loop_rate_hz
        if self._fault is not None and self.fault_active:
            if cfg.fault == "stuck_actuator":
                self._command.reshape(-1)[self._stuck] = cfg.dm_stroke_rad
            elif cfg.fault == "wind_burst":
                dt *= cfg.fault_wind_factor
        # The command computed now takes effect loop_delay_frames from now.
        self._queue[:-1] = self._queue[1:]
        self._queue[-1] = self._command
        self._atmosphere.advance(dt)
        variance = self._update_residual()
        self._measure()
        self._frame += 1
        reward = -variance
        if cfg.action_penalty:
            increments = layout.applied_increments(a)
            reward -= cfg.action_penalty * float(np.mean(increments * increments))
        info = {"strehl": math.exp(-variance), "residual_rad2": variance}
        if cfg.psf_every and self._frame % cfg.psf_every == 0:
            info["strehl_psf"] = self._accumulate_psf()
        truncated = self._frame >= cfg.episode_frames
        if truncated:
            self._end_episode()
            if self._n_psf:
                info["long_exposure_strehl"] = metrics.strehl_from_psf(self._long_psf / self._n_psf)
                info["raw_contrast"] = metrics.annulus_mean(self._long_coro / self._n_psf, _PSF_PADDING)
                info["raw_contrast_2_5"] = metrics.annulus_mean(self._long_coro / self._n_psf, _PSF_PADDING, 2.0, 5.0)
        if self._human:
            self.render()
        return self._obs.copy(), reward, False, truncated, info

    # -- action layouts ----------------------------------------------------------------------------
    def action_to_grid(self, action) -> np.ndarray:
        """The actuator increments ``action`` (of this env's layout) asks for: (N+1, N+1) float64 in
        units of ``action_scale_rad``, 0 on the uncontrolled actuators.

        A linear map: no range check and no clipping (``step`` does those). For ``"modal"`` it is
        ``modal_basis @ action`` scattered onto the controlled actuators.

        Raises
        ------
        TypeError: ``action`` is not real numbers. ValueError: its shape is not ``action_space.shape``.
        """
        return self._layout.to_grid(as_float64_action(action, self._action_shape))

    def grid_to_action(self, grid) -> np.ndarray:
        """The action of this env's layout closest to the actuator increments ``grid`` ((N+1, N+1), action units).

        ``"grid"``: ``grid`` with the uncontrolled entries zeroed; ``"flat"``: its controlled
        entries (exact: ``action_to_grid`` gives them back); ``"modal"``: the least-squares
        coefficients (the modes are orthogonal), which reproduce a piston-free grid exactly with
        all modes, and its projection onto the first ``n_modes`` otherwise. Returns float64 (``step``
        takes it as it is; cast to ``action_space.dtype`` to store it in the space); not clipped.

        Raises
        ------
        TypeError: ``grid`` is not real numbers. ValueError: its shape is not (N+1, N+1).
        """
        n_act = self.config.n_actuators
        return self._layout.from_grid(as_float64_action(grid, (n_act, n_act), "grid"))

    @property
    def modal_basis(self) -> np.ndarray | None:
        """For ``action_layout="modal"``, the read-only (n_controlled, n_modes) float64 basis: column ``m`` is
        mode ``m`` at the controlled actuators (``np.flatnonzero(system.controlled)`` order), orthogonal,
        piston-free, peak ``|value|`` 1, by decreasing von Karman variance. None for the other layouts."""
        return self._layout.basis

    def reset_long_exposure(self) -> None:
        """Start the long exposure afresh (e.g. once the loop has converged)."""
        self._long_psf = self._long_coro = None
        self._n_psf = 0

    def long_exposure_psf(self, coronagraph: bool = False) -> np.ndarray | None:
        """The PSF averaged over the frames sampled so far this episode (``psf_every``), or None."""
        if not self._n_psf:
            return None
        return (self._long_coro if coronagraph else self._long_psf) / self._n_psf

    @property
    def psf_padding(self) -> int:
        """Focal-plane pixels per lambda/D of the PSFs."""
        return _PSF_PADDING

    @property
    def residual_phase_rad(self) -> np.ndarray:
        """A copy of the residual phase (atmosphere minus DM) on the pupil grid, rad at 500 nm (0 outside)."""
        return self._residual.copy()

    @property
    def science_residual_phase_rad(self) -> np.ndarray:
        """The residual phase at the science wavelength, rad (a new array): what the reward and PSFs see."""
        return self._residual * self.config.science_scale

    @property
    def episode_parameters(self) -> dict[str, Any]:
        """This episode's ``r0_m``, ``wind_speeds_mps`` and ``wind_directions_deg`` (a copy; reset options win)."""
        return dict(self._episode)

    def _accumulate_psf(self) -> float:
        science = self.science_residual_phase_rad
        image = metrics.psf(science, self._pupil, _PSF_PADDING)
        coro = metrics.psf(science, self._pupil, _PSF_PADDING, coronagraph=True)
        if self._long_psf is None:
            self._long_psf, self._long_coro = image, coro
        else:
            self._long_psf = self._long_psf + image
            self._long_coro = self._long_coro + coro
        self._n_psf += 1
        return metrics.strehl_from_psf(image)

    def _render_frame(self):
        from astrogym.envs.common.rendering import figure_to_rgb

        science = self.science_residual_phase_rad
        image = metrics.psf(science, self._pupil, 2)
        fig = metrics.plot_psf_and_phase(image, science, self._pupil, 2,
                                         title=f"frame {self._frame}, Strehl {metrics.strehl_from_psf(image):.2f}")
        return figure_to_rgb(fig)
