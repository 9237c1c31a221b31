"""Analytic error budget of the AO loop, for tests and reports (``shared/reference/adaptive-optics.md``)."""

from __future__ import annotations

import numpy as np

from astrogym.envs.adaptive_optics.atmosphere import von_karman_psd
from astrogym.envs.adaptive_optics.config import AOConfig


def fitting_error_rad2(cfg: AOConfig, coefficient: float = 0.275) -> float:
    """Continuous-facesheet DM fitting error at the science wavelength: 0.275 (d / r0)^(5/3)."""
    return coefficient * (cfg.subaperture_m / cfg.r0_m) ** (5 / 3) * cfg.science_scale**2


def aliasing_error_rad2(cfg: AOConfig) -> float:
    """Shack-Hartmann aliasing, ~0.35 x the fitting error."""
    return 0.35 * fitting_error_rad2(cfg)


def effective_wind_speed(cfg: AOConfig, speeds=None) -> float:
    """The 5/3-weighted wind speed (sum w_i v_i^(5/3))^(3/5)."""
    w = np.asarray(cfg.layer_weights, dtype=float)
    w = w / w.sum()
    v = np.asarray(cfg.wind_speeds_mps if speeds is None else speeds, dtype=float)
    return float(np.sum(w * v ** (5 / 3)) ** (3 / 5))


def classical_servo_lag_rad2(cfg: AOConfig, lag_s: float) -> float:
    """(tau / tau0)^(5/3) at the science wavelength with tau0 = 0.314 r0 / v.

    This is the structure function at the wind displacement over the lag: it counts the
    small scales the DM cannot fit anyway, so it overestimates the lag error of a real loop
    once v tau is well below the actuator pitch.
    """
    v = effective_wind_speed(cfg)
    if v == 0.0:
        return 0.0
    return (lag_s / (0.314 * cfg.r0_m / v)) ** (5 / 3) * cfg.science_scale**2


def integrator_servo_error_rad2(cfg: AOConfig, gain: float, leak: float = 0.99, n: int = 401) -> float:
    """Temporal error of a leaky integrator on the DM-corrected spatial frequencies, frozen flow.

    Each spatial frequency k of layer i crosses the pupil at temporal frequency k . v_i; the
    loop leaves a fraction |E|^2 of its power, E(z) = (1 - leak/z) / (1 - leak/z + g z^-d)
    (measurement at frame t, command effective at t + d). Integrated over the square
    |kx|, |ky| <= 1 / (2 pitch) that a Fried-geometry DM corrects, minus the same with no wind
    (the leak's static share, which the static residual already contains).
    """
    pitch = cfg.subaperture_m
    kc = 1.0 / (2.0 * pitch)
    k = np.linspace(-kc, kc, n)
    dk = k[1] - k[0]
    kx, ky = np.meshgrid(k, k, indexing="ij")
    w = np.asarray(cfg.layer_weights, dtype=float)
    w = w / w.sum()
    total = 0.0
    period = 1.0 / cfg.loop_rate_hz
    d = cfg.loop_delay_frames

    def rejection(freq):
        z = np.exp(2j * np.pi * freq * period)
        return np.abs((1 - leak / z) / (1 - leak / z + gain * z ** (-d))) ** 2

    for wi, v, direction in zip(w, cfg.wind_speeds_mps, cfg.wind_directions_deg):
        t = np.deg2rad(direction)
        psd = von_karman_psd(np.hypot(kx, ky), cfg.r0_m * wi ** (-3 / 5), cfg.outer_scale_m)
        psd[n // 2, n // 2] = 0.0
        moving = rejection((kx * np.cos(t) + ky * np.sin(t)) * v)
        total += np.sum(psd * (moving - rejection(0.0 * kx))) * dk * dk
    return float(total * cfg.science_scale**2)
