"""Parameters of ``astrogym/AdaptiveOptics-v0`` with their defaults, ranges and meaning.

Defaults are the standard single-conjugate system of ``shared/reference/adaptive-optics.md``
(COMPASS ``scao_sh_40x40``, Pou 2022, Landman 2021): 8 m telescope, 40x40 Shack-Hartmann,
41x41 Gaussian DM with 0.2 coupling, r0 = 0.16 m at 500 nm, L0 = 25 m, 1 kHz, H-band science.
Phases are carried internally in radians at the reference wavelength (500 nm, where r0 is
quoted) and converted to the science wavelength for Strehl and reward.
"""

from __future__ import annotations

from dataclasses import dataclass

from astrogym.envs import ENV_SPECS
from astrogym.envs.common.config import EnvConfig, param

REFERENCE_WAVELENGTH_UM = 0.5
# n_modes can never exceed the actuators of the largest grid (n_subapertures <= 100) less piston; the env
# checks it against the modes its geometry has.
_MAX_MODES = 101 * 101 - 1

ENTRY_POINT = "astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv"


def _preset_name(env_id: str) -> str:
    """``astrogym/AdaptiveOpticsSmall-v0`` -> ``small``; the plain ``AdaptiveOptics-v0`` is ``standard``."""
    name = env_id.split("/")[-1].rsplit("-v", 1)[0].removeprefix("AdaptiveOptics")
    return name.lower() or "standard"


# The presets are the registered AO ids (astrogym.envs.ENV_SPECS, the one place they are declared):
# name -> id, and name -> the keyword arguments the id adds to AOConfig's defaults.
_SPECS = [spec for spec in ENV_SPECS if spec.entry_point == ENTRY_POINT]
PRESET_IDS = {_preset_name(spec.id): spec.id for spec in _SPECS}
PRESETS = {_preset_name(spec.id): dict(spec.kwargs) for spec in _SPECS}


@dataclass(frozen=True)
class AOConfig(EnvConfig):
    """Everything ``gym.make("astrogym/AdaptiveOptics-v0", **kwargs)`` accepts."""

    # -- telescope and sensor geometry ----------------------------------------------------------
    telescope_diameter_m: float = param(8.0, "primary mirror diameter", low=0.5, high=50.0)
    central_obstruction: float = param(0.14, "central obstruction, as a fraction of the diameter", low=0.0,
                                       high=0.5)
    n_subapertures: int = param(40, "Shack-Hartmann subapertures across the pupil (DM has one more actuator)",
                                low=4, high=100, kind="int")
    pixels_per_subaperture: int = param(4, "phase samples across a subaperture", low=2, high=16, kind="int")
    wfs: str = param("geometric", "Shack-Hartmann model: 'geometric' (mean gradient, fast) or 'diffractive' "
                     "(lenslet FFT spots and centroids)", choices=("geometric", "diffractive"))
    valid_subaperture_fraction: float = param(0.5, "a subaperture carries slopes when this fraction is lit",
                                              low=0.01, high=1.0)
    # -- atmosphere (one entry per layer in the tuples) -----------------------------------------
    r0_m: float = param(0.16, "Fried parameter at 500 nm", low=0.01, high=2.0)
    outer_scale_m: float = param(25.0, "von Karman outer scale L0", low=1.0, high=1e4)
    layer_weights: tuple = param((1.0,), "fractional Cn2 per layer (normalised to sum 1)", low=0.0, kind="tuple")
    wind_speeds_mps: tuple = param((20.0,), "wind speed per layer", low=0.0, high=200.0, kind="tuple")
    wind_directions_deg: tuple = param((0.0,), "wind direction per layer, degrees from +x", kind="tuple")
    # -- deformable mirror and loop -------------------------------------------------------------
    dm_coupling: float = param(0.2, "influence of an actuator at its neighbour's position", low=0.01, high=0.9)
    dm_stroke_rad: float = param(60.0, "command limit, rad of phase at 500 nm (~4.8 um of surface OPD)",
                                 low=0.1, high=1e4)
    loop_rate_hz: float = param(1000.0, "frames per second", low=10.0, high=1e5)
    loop_delay_frames: int = param(1, "frames between a measurement and its command taking effect", low=1,
                                   high=2, kind="int")
    reconstructor_rcond: float = param(0.05, "relative singular-value cut of the reconstructor (kills waffle)",
                                       low=1e-6, high=0.9)
    # -- noise ----------------------------------------------------------------------------------
    guide_star_magnitude: float | None = param(None, "R-band magnitude of the guide star; None = noiseless WFS",
                                               low=-5.0, high=25.0, kind="optional")
    wfs_wavelength_um: float = param(0.7, "WFS wavelength (sets photon-noise phase units)", low=0.3, high=5.0)
    wfs_read_noise_e: float = param(0.5, "read noise per pixel, electrons", low=0.0, high=100.0)
    wfs_throughput: float = param(0.3, "photons reaching the WFS detector / photons at the telescope", low=1e-4,
                                  high=1.0)
    # -- science, observation, action, reward ---------------------------------------------------
    science_wavelength_um: float = param(1.65, "science wavelength (H band)", low=0.3, high=20.0)
    history: int = param(4, "past measurement and command frames in the observation (PO4AO layout)", low=1,
                         high=64, kind="int")
    action_scale_rad: float = param(6.283185307179586, "an action of 1 moves an actuator by this (rad at 500 nm)",
                                    low=1e-3, high=1e3)
    action_penalty: float = param(0.0, "reward -= action_penalty * mean over the actuator grid of the squared "
                                  "increment in action units (grid layout: of the clipped action)", low=0.0,
                                  high=1e6)
    action_out_of_range: str = param("raise", "'raise' on actions outside [-1, 1], or 'clip' them",
                                     choices=("raise", "clip"))
    action_layout: str = param("grid", "action space: 'grid' (N+1, N+1) actuator increments (the astrogym.agents "
                               "baselines need it), 'flat' (n_controlled,) the controlled actuators only, 'modal' "
                               "(n_modes,) Karhunen-Loeve mode coefficients", choices=("grid", "flat", "modal"))
    n_modes: int = param(0, "modes of action_layout='modal', lowest-order (largest-variance) first; 0 = all "
                         "(n_controlled - 1, piston excluded)", low=0, high=_MAX_MODES, kind="int")
    # -- fault injection (off by default; the default env is bit-identical without it) -------------
    fault: str = param("none", "inject a fault from fault_start_frame for fault_duration_frames: "
                       "'dead_subapertures' (fault_dead_fraction of the valid subapertures read 0), "
                       "'stuck_actuator' (fault_stuck_actuators controlled actuators stuck at +dm_stroke_rad), "
                       "'wind_burst' (every layer moves fault_wind_factor times faster)",
                       choices=("none", "dead_subapertures", "stuck_actuator", "wind_burst"))
    fault_start_frame: int = param(200, "first faulted frame", low=0, high=10**9, kind="int")
    fault_duration_frames: int = param(200, "faulted frames", low=0, high=10**9, kind="int")
    fault_dead_fraction: float = param(0.1, "dead_subapertures: fraction of the valid subapertures (a fixed random "
                                       "set)", low=0.0, high=1.0)
    fault_stuck_actuators: int = param(1, "stuck_actuator: how many controlled actuators (a fixed random set)",
                                       low=1, high=10201, kind="int")
    fault_wind_factor: float = param(3.0, "wind_burst: wind-speed multiplier", low=0.0, high=100.0)
    episode_frames: int = param(1000, "frames per episode before truncation", low=1, high=10**9, kind="int")
    psf_every: int = param(0, "compute the science PSF every this many frames (0 = never; end of episode "
                           "long-exposure Strehl needs it)", low=0, high=10**9, kind="int")

    def validate(self) -> None:
        if self.n_modes and self.action_layout != "modal":
            raise ValueError(f"AOConfig.n_modes={self.n_modes} applies to action_layout='modal' only, not "
                             f"action_layout={self.action_layout!r}; leave it 0")
        n = len(self.layer_weights)
        for name in ("wind_speeds_mps", "wind_directions_deg"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"AOConfig.{name} has {len(getattr(self, name))} entries; layer_weights has {n}")
        if n == 0 or any(w < 0 for w in self.layer_weights) or sum(self.layer_weights) <= 0:
            raise ValueError(f"AOConfig.layer_weights={self.layer_weights!r}: need at least one non-negative "
                             "weight with a positive sum")
        if self.wfs == "diffractive" and self.pixels_per_subaperture < 4:
            raise ValueError(f"AOConfig.pixels_per_subaperture={self.pixels_per_subaperture} is too few for "
                             "wfs='diffractive'; allowed [4, 16] (6 gives a 6 lambda/d field of view)")
        if any(v < 0 or v > 200 for v in self.wind_speeds_mps):
            raise ValueError(f"AOConfig.wind_speeds_mps={self.wind_speeds_mps!r}: each must be in [0, 200]")

    @property
    def n_actuators(self) -> int:
        return self.n_subapertures + 1

    @property
    def pupil_pixels(self) -> int:
        return self.n_subapertures * self.pixels_per_subaperture

    @property
    def pixel_scale_m(self) -> float:
        return self.telescope_diameter_m / self.pupil_pixels

    @property
    def subaperture_m(self) -> float:
        return self.telescope_diameter_m / self.n_subapertures

    @property
    def science_scale(self) -> float:
        """Multiply a 500 nm phase by this to get it at the science wavelength."""
        return REFERENCE_WAVELENGTH_UM / self.science_wavelength_um
