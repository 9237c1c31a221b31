"""Plant identification for the pitch loop, and the H2 controller synthesised on the identified model only.

As Deep Loop Shaping did (its simulator was a linear model identified from measured data), the
controller here is designed from recorded closed-loop data, not from the env's true parameters:

1. **record**: the loop-shaping baseline holds the loop while a small white excitation (``excitation``
   of the actuator range, 5% by default) is added to its torque (:func:`astrogym.surrogates.transitions.collect`);
2. **plant**: the indirect closed-loop estimate ``P = S_ry / S_ru`` over 0.3-30 Hz
   (:func:`astrogym.surrogates.system_id.frequency_response`), then a grey-box model fitted to it:
   the suspension's transfer function is known physics (the quad pendulum's zpk), the optical spring
   stiffness ``k`` and the actuator gain ``g`` are learned:
   ``P(z) = g ZOH{G / (1 + k G)}``. These are what change at a detector (arm power, beam-spot
   position, actuator calibration) while the suspension stays as built;
3. **disturbance**: the output disturbance ``y - P u`` of the same record, fitted as the known seismic
   filter shape at a learned level plus a flat sensing noise at a learned level;
4. **controller**: :class:`~astrogym.agents.interferometer.h2.H2Controller` synthesised for the
   identified stiffness, gain, seismic level and sensing noise, with the tuned H2 weights.

The truth enters nowhere but the recorded data. :func:`identify` returns an :class:`IdentifiedPlant`;
``astrogym evaluate ... --policy h2-identified`` runs step 4 on a plant identified on a training seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import scipy.optimize
import scipy.signal

from astrogym.agents.interferometer.h2 import DEFAULT_DESIGNS, H2Controller
from astrogym.agents.interferometer.loop_shaping import LoopShapingController
from astrogym.envs.interferometer.config import InterferometerConfig
from astrogym.envs.interferometer.plant import (build_discrete_loop, discrete_plant_response, discrete_response,
                                                 mode_stiffness)
from astrogym.surrogates.system_id import (FrequencyResponse, disturbance_spectrum, fit_parametric,
                                           frequency_response)
from astrogym.surrogates.transitions import ExplorationNoise, Transitions, collect

BAND_HZ = (0.3, 30.0)


@dataclass(frozen=True)
class IdentifiedPlant:
    """What :func:`identify` learned, in physical units.

    Attributes
    ----------
    stiffness: optical spring stiffness k, N m/rad.
    actuator_gain: g (1 = the nominal torque per action).
    seismic_scale: level of the ground motion against the reference model (the env's ``seismic_scale``).
    sensor_noise_rad: flat sensing noise, rad/sqrt(Hz).
    fit_rms_log_error: RMS of the plant fit's complex log error over the band (0.01 is about 0.09 dB).
    estimate: the non-parametric response over the band, action units to observation units.
    """

    stiffness: float
    actuator_gain: float
    seismic_scale: float
    sensor_noise_rad: float
    fit_rms_log_error: float
    estimate: FrequencyResponse

    def response(self, config: InterferometerConfig, f_hz) -> np.ndarray:
        """The identified plant, torque (N m) to pitch (rad), at ``f_hz``."""
        cfg = config.resolved()
        return self.actuator_gain * discrete_plant_response(cfg.suspension, self.stiffness, cfg.sample_rate_hz, f_hz)

    def summary(self) -> dict:
        return {"stiffness_nm_per_rad": self.stiffness, "actuator_gain": self.actuator_gain,
                "seismic_scale": self.seismic_scale, "sensor_noise_rad_rthz": self.sensor_noise_rad,
                "fit_rms_log_error": self.fit_rms_log_error}


def loop_io(data: Transitions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, y, r)`` of a lock record, aligned: the applied action, the reading it first moves (the newest
    sample of the next observation) and the excitation in the action, in action and observation units."""
    return data.actions[:, 0].astype(float), data.next_obs[:, 0, -1].astype(float), data.exploration[:, 0].astype(float)


def record(make_env: Callable[..., gym.Env], seed: int, seconds: float = 600.0, episode_s: float = 200.0,
           excitation: float = 0.05, controller=None) -> Transitions:
    """Closed-loop data of ``controller`` (default: loop shaping) with white excitation, ``seconds`` in all.

    Recorded at the config's nominal operating point (arm power, seismic level and unstable pole ranges
    off), where the true-plant H2 is designed too: one record holds one plant, and a model identified
    across episodes of different plants fits none of them near the optical resonance."""
    env = make_env(episode_length_s=episode_s, arm_power_range_w=None, seismic_scale_range=None,
                   unstable_pole_range_hz=None)
    cfg = env.unwrapped.config.resolved()
    steps = int(round(seconds * cfg.sample_rate_hz))
    controller = controller if controller is not None else LoopShapingController(env)
    return collect(env, controller, steps, seed=seed, noise=ExplorationNoise("gaussian", excitation))


def identify(data: Transitions, config: InterferometerConfig, nperseg: int = 8192) -> IdentifiedPlant:
    """Fit the grey-box plant and the disturbance levels to a closed-loop record (module docstring).

    ``config`` supplies what is known: the suspension, the sample rate and the units (torque range and
    observation scale); its arm power only seeds the stiffness fit.
    """
    cfg = config.resolved()
    fs = cfg.sample_rate_hz
    units = cfg.torque_limit_nm / cfg.obs_pitch_scale_rad  # physical response -> action-to-observation units
    u, y, r = loop_io(data)
    estimate = frequency_response(u, y, r, fs, nperseg=nperseg, episode=data.episode).band(*BAND_HZ)

    def model(p, f):
        # the reading y[k] follows u[k] by one sample more than c (zI - A)^-1 b: the factor z
        z = np.exp(2j * np.pi * f / fs)
        return p["gain"] * units * z * discrete_plant_response(cfg.suspension, p["stiffness"], fs, f)

    k0 = mode_stiffness(cfg.mode, cfg.suspension, cfg.arm_power_w, cfg.unstable_pole_hz)
    fit = fit_parametric(model, {"stiffness": k0, "gain": 1.0}, estimate, log_params=("gain",))
    k, g = fit.params["stiffness"], fit.params["gain"]

    # disturbance: the known seismic path at a learned level, plus flat sensing noise at a learned level
    loop = build_discrete_loop(cfg.suspension, k, cfg.seismic_coupling, fs)
    n_p = loop.n_plant
    plant = (loop.ad[:n_p, :n_p], loop.bd[:n_p, :1] * g * units, loop.c[None, :n_p], np.zeros((1, 1)), 1.0 / fs)

    def simulate(u_part):
        # the reading y[k] is c x[k+1]: dlsim's output one sample on
        _, out, _ = scipy.signal.dlsim(plant, np.r_[u_part, 0.0])
        return out[1:, 0]

    f, s_d = disturbance_spectrum(u, y, simulate, fs, nperseg=nperseg, episode=data.episode, skip=int(20 * fs))
    seis = discrete_response(loop.ad, loop.bd[:, 1], loop.c, fs, f)  # ground drive -> pitch (|z| = 1: no shift)
    seis_psd = np.abs(seis) ** 2 * 2.0 / fs / cfg.obs_pitch_scale_rad**2  # per-sample unit drive -> one-sided PSD
    # seismic below 2 Hz, sensing noise above 10 Hz: near the optical resonance (2-4 Hz, Q ~ 100) a small
    # plant error leaves y - P u dominated by the error, not by the disturbance
    band = ((f > 0.05) & (f < 2.0)) | ((f > 10.0) & (f < fs / 2.0 * 0.9))

    def psd_residual(x):
        model_psd = np.exp(2 * x[0]) * seis_psd[band] + np.exp(2 * x[1]) * (1.0 / cfg.obs_pitch_scale_rad) ** 2
        return np.log(model_psd) - np.log(s_d[band])

    x0 = np.array([0.0, np.log(cfg.sensor_noise_rad)])
    # robust loss: near the lightly damped resonances a small plant error leaves large residuals in y - P u
    sol = scipy.optimize.least_squares(psd_residual, x0, loss="cauchy", f_scale=0.5)
    return IdentifiedPlant(stiffness=float(k), actuator_gain=float(g), seismic_scale=float(np.exp(sol.x[0])),
                           sensor_noise_rad=float(np.exp(sol.x[1])), fit_rms_log_error=fit.rms_log_error,
                           estimate=estimate)


def identified_h2(env: gym.Env, plant: IdentifiedPlant) -> H2Controller:
    """The tuned H2 design synthesised for ``plant`` (stiffness, gain, seismic level and sensing noise)."""
    cfg = env.unwrapped.config.resolved()
    design = dataclasses.replace(DEFAULT_DESIGNS[cfg.mode], seismic_scale=plant.seismic_scale,
                                 sensor_noise_scale=plant.sensor_noise_rad / cfg.sensor_noise_rad)
    controller = H2Controller(env, design=design, stiffness=plant.stiffness, actuator_gain=plant.actuator_gain)
    controller.identified = plant
    return controller


__all__ = ["IdentifiedPlant", "identified_h2", "identify", "loop_io", "record"]
