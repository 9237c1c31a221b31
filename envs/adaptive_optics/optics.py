"""Pupil, Shack-Hartmann geometry, deformable mirror and the calibrated reconstructor.

Everything here runs at construction (and is cached per configuration); ``step`` only uses
the arrays it returns.

* Pupil: an annulus sampled at ``pixels_per_subaperture`` points per subaperture.
* Shack-Hartmann (geometric): the slope of a subaperture is the mean phase gradient over its
  lit pixels, times the subaperture size (rad of phase across the subaperture). A
  subaperture is valid when at least ``valid_subaperture_fraction`` of it is lit.
* DM: (N+1) x (N+1) actuators on the subaperture corners (Fried geometry), Gaussian influence
  ``exp(ln(coupling) (r / pitch)^2)``, which is separable: the surface is ``G C G^T`` with one
  1-D influence matrix ``G``, so applying the DM costs two small matrix products, not a
  pixels x actuators product.
* Interaction matrix: the slopes of each actuator's influence (exact for a geometric SH);
  actuators whose slopes are weaker than 5% of the strongest are not controlled.
  Reconstructor: truncated pseudo-inverse (``reconstructor_rcond``; ~0.05 removes the
  waffle modes a Fried SH cannot see, which otherwise grow without bound), applied in the
  factored form of ``reconstructor.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from astrogym.envs.adaptive_optics import kernels
from astrogym.envs.common.cache import atomic_save_npz, cache_dir, load_npz, require_finite
from astrogym.envs.adaptive_optics.config import AOConfig
from astrogym.envs.adaptive_optics.reconstructor import FactoredReconstructor, reconstructors
from astrogym.envs.adaptive_optics.wfs import DiffractiveSH

_GEOMETRY_FIELDS = ("telescope_diameter_m", "central_obstruction", "n_subapertures", "pixels_per_subaperture",
                    "valid_subaperture_fraction", "dm_coupling", "reconstructor_rcond", "wfs", "wfs_wavelength_um")


@dataclass(frozen=True)
class AOSystem:
    """The static arrays of one configuration."""

    pupil: np.ndarray  # (N, N) float 0/1
    valid_subapertures: np.ndarray  # (n_valid, 2) row, col of each valid subaperture
    influence_1d: np.ndarray  # (N, n_act) G: surface = G C G^T
    controlled: np.ndarray  # (n_act, n_act) bool, actuators the loop drives
    interaction: np.ndarray  # (2 n_valid, n_controlled) slopes per unit command
    reconstructor: np.ndarray  # (n_controlled, 2 n_valid) float32
    factored: FactoredReconstructor  # the same operator, cheap to apply each frame

    @property
    def n_slopes(self) -> int:
        return 2 * self.valid_subapertures.shape[0]


def make_pupil(cfg: AOConfig) -> np.ndarray:
    n = cfg.pupil_pixels
    x = (np.arange(n) - n / 2 + 0.5) * cfg.pixel_scale_m
    r = np.hypot(*np.meshgrid(x, x, indexing="ij"))
    radius = cfg.telescope_diameter_m / 2
    return ((r <= radius) & (r >= cfg.central_obstruction * radius)).astype(np.float64)


def valid_subapertures(cfg: AOConfig, pupil: np.ndarray) -> np.ndarray:
    p, n_sub = cfg.pixels_per_subaperture, cfg.n_subapertures
    lit = pupil.reshape(n_sub, p, n_sub, p).mean(axis=(1, 3))
    return np.argwhere(lit >= cfg.valid_subaperture_fraction).astype(np.int64)


def influence_1d(cfg: AOConfig) -> np.ndarray:
    """1-D Gaussian influence of the actuator columns sampled at the pupil pixels (N, N+1)."""
    n = cfg.pupil_pixels
    x = (np.arange(n) - n / 2 + 0.5) * cfg.pixel_scale_m
    act = (np.arange(cfg.n_actuators) - cfg.n_subapertures / 2) * cfg.subaperture_m
    g = np.exp(np.log(cfg.dm_coupling) * ((x[:, None] - act[None, :]) / cfg.subaperture_m) ** 2)
    # Tails below 1e-9 of the peak (beyond ~3.6 actuator pitches at coupling 0.2) are set to zero:
    # they are 100x below float32 resolution of the phase, would underflow to subnormals further out
    # (each a ~10x slowdown of the DM products), and cutting them lets the DM kernel skip ~80% of
    # each actuator's row instead of ~30%.
    g[g < 1e-9] = 0.0
    return g


def geometric_slopes(cfg: AOConfig, pupil: np.ndarray, valid: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Slopes (x then y, rad across a subaperture) of ``phase`` (N, N) or a stack (k, N, N)."""
    stack = phase[None] if phase.ndim == 2 else phase
    out = np.empty((stack.shape[0], 2 * valid.shape[0]))
    for k in range(stack.shape[0]):
        kernels.sh_geometric_slopes(np.ascontiguousarray(stack[k]), pupil, valid, cfg.pixels_per_subaperture,
                                    out[k])
    return out[0] if phase.ndim == 2 else out


# Bump when the calibration procedure changes, so stale disk caches are not reused.
_CALIBRATION_VERSION = 3


def _cache_key(cfg: AOConfig) -> str:
    fields = {name: getattr(cfg, name) for name in _GEOMETRY_FIELDS}
    fields["calibration_version"] = _CALIBRATION_VERSION
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def calibrate(cfg: AOConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interaction matrix, controlled-actuator mask and reconstructor (computed, not cached).

    Which actuators are controlled comes from the geometric sensor (exact and cheap). A
    diffractive sensor is then calibrated as on a bench: push-pull pokes of 0.1 rad, within its
    linear range, so the reconstructor absorbs its centroid gain.
    """
    interaction, controlled = _interaction(cfg)
    reconstructor, _ = reconstructors(interaction, cfg.reconstructor_rcond)
    return interaction, controlled, reconstructor


def _interaction(cfg: AOConfig) -> tuple[np.ndarray, np.ndarray]:
    pupil = make_pupil(cfg)
    valid = valid_subapertures(cfg, pupil)
    g = influence_1d(cfg)
    n_act = cfg.n_actuators
    full = np.empty((2 * valid.shape[0], n_act * n_act))
    kernels.poke_slopes(g, pupil, valid, cfg.pixels_per_subaperture, full)
    strength = np.linalg.norm(full, axis=0)
    controlled = (strength >= 0.05 * strength.max()).reshape(n_act, n_act)
    interaction = full[:, controlled.ravel()]
    if cfg.wfs == "diffractive":
        sensor = DiffractiveSH(cfg, pupil, valid)
        amplitude = 0.1
        for col, (i, j) in enumerate(np.argwhere(controlled)):
            poke = amplitude * np.outer(g[:, i], g[:, j])
            plus = sensor.measure(poke).copy()
            interaction[:, col] = (plus - sensor.measure(-poke)) / (2 * amplitude)
    return interaction, controlled


def _calibrate_arrays(cfg: AOConfig) -> dict[str, np.ndarray]:
    interaction, controlled = _interaction(cfg)
    reconstructor, factored = reconstructors(interaction, cfg.reconstructor_rcond)
    return dict(interaction=interaction, controlled=controlled, reconstructor=reconstructor, **factored.arrays())


_CACHED = ("interaction", "controlled", "reconstructor", "dt_indptr", "dt_indices", "dt_data", "gram_packed")


def _check_cached(cfg: AOConfig, n_slopes: int, arrays: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` unless cached calibration arrays fit ``cfg`` (with ``n_slopes`` slopes) and are finite."""
    n_act = cfg.n_actuators
    controlled = arrays["controlled"]
    if controlled.dtype != np.bool_ or controlled.shape != (n_act, n_act):
        raise ValueError(f"'controlled' must be a ({n_act}, {n_act}) bool mask, got {controlled.dtype} "
                         f"{controlled.shape}")
    n_ctrl = int(controlled.sum())
    for name, shape in (("interaction", (n_slopes, n_ctrl)), ("reconstructor", (n_ctrl, n_slopes))):
        if arrays[name].shape != shape:
            raise ValueError(f"{name!r} has shape {arrays[name].shape}; this config needs {shape}")
    require_finite(arrays)


@functools.lru_cache(maxsize=8)
def _system_for_key(key: str, cfg: AOConfig) -> AOSystem:
    pupil = make_pupil(cfg)
    valid = valid_subapertures(cfg, pupil)
    if valid.shape[0] < 3:  # tip, tilt and one more mode need at least three subapertures' slopes
        raise ValueError(f"only {valid.shape[0]} subaperture(s) are lit to valid_subaperture_fraction="
                         f"{cfg.valid_subaperture_fraction:g} with n_subapertures={cfg.n_subapertures} and "
                         f"central_obstruction={cfg.central_obstruction:g}; lower valid_subaperture_fraction, raise "
                         "n_subapertures or shrink central_obstruction (at least 3 are needed)")
    path = cache_dir() / "ao" / f"system-{key}.npz"
    # None when missing or damaged (checksum, shapes, NaN): recomputed and replaced, never trusted
    arrays = load_npz(path, _CACHED, functools.partial(_check_cached, cfg, 2 * valid.shape[0]))
    if arrays is None:
        arrays = _calibrate_arrays(cfg)
        atomic_save_npz(path, **arrays)  # a read-only home just means no disk cache
    factored = FactoredReconstructor(**{name: arrays[name] for name in _CACHED[3:]})
    return AOSystem(pupil=pupil, valid_subapertures=valid, influence_1d=influence_1d(cfg),
                    controlled=arrays["controlled"], interaction=arrays["interaction"],
                    reconstructor=arrays["reconstructor"], factored=factored)


def build_system(cfg: AOConfig) -> AOSystem:
    """The calibrated system for a configuration: cached in-process and on disk (atomic writes).

    Raises
    ------
    ValueError: fewer than three subapertures are lit enough to measure (the message names the fields).
    """
    key = _cache_key(cfg)
    geometry = AOConfig(**{name: getattr(cfg, name) for name in _GEOMETRY_FIELDS})
    return _system_for_key(key, geometry)


def clear_memory_cache() -> None:
    """Forget the systems built in this process (the disk cache stays); for tests of the disk cache."""
    _system_for_key.cache_clear()
