"""What the linear lock controllers share: the sampled plant, batch handling in ``predict``, loop gain and margins.

:class:`~astrogym.agents.interferometer.loop_shaping.LoopShapingController` and
:class:`~astrogym.agents.interferometer.h2.H2Controller` both hold a discrete compensator
``controller`` (sensor reading in rad to torque in N m, applied as ``-controller * reading``) and
keep a filter state per env of a batch; this module holds those parts once.
"""

from __future__ import annotations

import control
import numpy as np

from astrogym.agents.base import Policy
from astrogym.envs.interferometer.config import InterferometerConfig
from astrogym.envs.interferometer.plant import build_discrete_loop, mode_stiffness


def plant_ss(config: InterferometerConfig, arm_power_w: float, unstable_pole_hz: float | None = None):
    """The sampled torque-to-pitch plant (zero-order hold at the env's rate) at one arm power."""
    k = mode_stiffness(config.mode, config.suspension, arm_power_w, unstable_pole_hz)
    loop = build_discrete_loop(config.suspension, k, config.seismic_coupling, config.sample_rate_hz)
    n = loop.n_plant
    return control.ss(loop.ad[:n, :n], loop.bd[:n, :1], loop.c[None, :n], 0.0, 1.0 / config.sample_rate_hz)


def observation_batch(observation) -> tuple[np.ndarray, bool]:
    """``(batch, batched)``: the lock observation as ``(n_envs, channels, history)`` float64, and whether it was."""
    obs = np.asarray(observation, dtype=np.float64)
    if obs.ndim not in (2, 3):
        raise ValueError(f"observation must have shape (channels, history) or (n_envs, channels, history), "
                         f"got {obs.shape}")
    batched = obs.ndim == 3
    return (obs if batched else obs[None]), batched


def state_for_batch(state: np.ndarray, n: int, episode_start) -> np.ndarray:
    """Per-env filter states for a batch of ``n``: reallocated (zeros) when ``n`` changed, zeroed where episodes start."""
    if state.shape[0] != n:
        state = np.zeros((n, *state.shape[1:]))
    if episode_start is not None:
        state[np.asarray(episode_start, dtype=bool).reshape(n)] = 0.0
    return state


class LinearLockController(Policy):
    """Base of the linear lock controllers: subclasses set ``config`` and ``controller`` (discrete C(z))."""

    config: InterferometerConfig
    controller: control.StateSpace

    def loop_gain(self, arm_power_w: float | None = None, unstable_pole_hz: float | None = None):
        """Discrete open-loop gain L(z) = C(z) P(z) at an arm power (default: the config's)."""
        power = self.config.arm_power_w if arm_power_w is None else arm_power_w
        pole = self.config.unstable_pole_hz if unstable_pole_hz is None else unstable_pole_hz
        return self.controller * plant_ss(self.config, power, pole)

    def loop_response(self, loop, arm_power_w: float, unstable_pole_hz: float | None, z: np.ndarray) -> np.ndarray:
        """L(z) at the points ``z`` (python-control's evaluation; subclasses may evaluate it faster)."""
        return loop(z)

    def margins(self, arm_powers_w, unstable_pole_hz: float | None = None,
                n_frequencies: int = 20000) -> list[dict]:
        """Gain margin, phase margin (deg), stability margin, UGF and closed-loop stability per arm power.

        python-control's ``stability_margins`` runs on the frequency response of the discrete
        loop sampled densely up to Nyquist (``n_frequencies`` log-spaced points from 1e-3 rad/s;
        its polynomial method is unreliable for discrete poles within 1e-3 of z = 1); stability
        is decided from the closed-loop poles.
        """
        fs = self.config.sample_rate_hz
        omega = np.logspace(-3, np.log10(np.pi * fs * 0.999), n_frequencies)
        pole = self.config.unstable_pole_hz if unstable_pole_hz is None else unstable_pole_hz
        rows = []
        for power in arm_powers_w:
            loop = self.loop_gain(power, pole)
            response = control.frd(self.loop_response(loop, power, pole, np.exp(1j * omega / fs)), omega)
            gm, pm, sm, wpc, wgc, wms = control.stability_margins(response)
            stable = bool(np.all(np.abs(control.feedback(loop, 1).poles()) < 1.0))
            rows.append({"arm_power_w": float(power), "gain_margin": float(gm), "phase_margin_deg": float(pm),
                         "stability_margin": float(sm), "ugf_hz": float(wgc) / (2 * np.pi),
                         "closed_loop_stable": stable})
        return rows
