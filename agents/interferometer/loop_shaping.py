"""The classical baseline: a loop-shaping linear controller as used on LIGO's angular loops.

Structure (``shared/reference/interferometer.md``): low-frequency boost stages (zpk lag
filters between 0.05 and 0.7 Hz) for gain against microseism, lead stages for phase margin
at the unity-gain frequency, and elliptic low-passes (1 dB ripple, 40 dB stop band) that cut
the sensor noise the loop would otherwise inject. The LIGO example puts the low-passes at
10 and 20 Hz; this plant's hard optical spring (3 Hz at 400 kW, Q ~ 140) forces the unity
gain frequency above the resonance, and 10/20 Hz low-passes then leave no phase margin, so
the default hard-mode design uses 20 and 40 Hz with two leads. That is exactly why the
classical loop injects noise in 10-30 Hz, the band an RL controller is asked to clean.

The controller is designed in continuous time, discretised with the bilinear transform at
the env's sample rate, and its margins are computed on the discrete loop (sampled plant
with its zero-order hold), so they hold for the loop that actually runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import control
import numpy as np
import scipy.signal

from astrogym.agents.interferometer.linear import (LinearLockController, observation_batch, plant_ss,
                                                   state_for_batch)
from astrogym.envs.common.linear import normalized_sos, sos_step_batch
from astrogym.envs.interferometer.config import InterferometerConfig


@dataclass(frozen=True)
class LoopShapingDesign:
    """Shape of the compensator; the overall gain is set so the loop crosses unity at ``ugf_hz``.

    Attributes
    ----------
    ugf_hz: unity-gain frequency at the nominal arm power.
    boosts: (pole_hz, zero_hz) lag stages; each adds zero/pole of gain at DC, none at high f.
    leads: (zero_hz, pole_hz) lead stages, unit gain at DC.
    lowpasses: (order, corner_hz) elliptic low-passes with ``ripple_db`` and ``stop_db``.
    """

    ugf_hz: float
    boosts: tuple = ((0.05, 0.7), (0.05, 0.7))
    leads: tuple = ((3.0, 20.0), (3.0, 20.0))
    lowpasses: tuple = ((2, 20.0), (4, 40.0))
    ripple_db: float = 1.0
    stop_db: float = 40.0

    def shape_zpk(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Continuous zeros, poles (rad/s) and gain of the compensator before the loop-gain scaling."""
        zeros, poles, gain = [], [], 1.0
        for p_hz, z_hz in self.boosts:  # unit gain at high frequency
            zeros.append(-2 * np.pi * z_hz)
            poles.append(-2 * np.pi * p_hz)
        for z_hz, p_hz in self.leads:  # unit gain at DC
            zeros.append(-2 * np.pi * z_hz)
            poles.append(-2 * np.pi * p_hz)
            gain *= p_hz / z_hz
        for order, f_hz in self.lowpasses:
            z, p, k = scipy.signal.ellip(order, self.ripple_db, self.stop_db, 2 * np.pi * f_hz,
                                         analog=True, output="zpk")
            dc = k * np.prod(-z) / np.prod(-p)  # elliptic of even order has DC gain 10^(-ripple/20)
            zeros.extend(z)
            poles.extend(p)
            gain *= k / abs(dc)
        return np.array(zeros, dtype=complex), np.array(poles, dtype=complex), float(np.real(gain))


DEFAULT_DESIGNS = {
    # Hard mode: UGF 4 Hz above the 3 Hz optical spring; margins 3.5 (11 dB) / 36-40 deg over 300-500 kW.
    "hard": LoopShapingDesign(ugf_hz=4.0),
    # The soft mode must be held above its unstable pole (0.1-0.5 Hz): UGF 3 Hz, one boost,
    # two leads. Margins 2.6 / 55 deg over 300-500 kW and unstable poles of 0.1-0.3 Hz.
    "soft": LoopShapingDesign(ugf_hz=3.0, boosts=((0.05, 0.7),), leads=((0.5, 5.0), (0.5, 5.0))),
}


def _sos_to_ss(sos: np.ndarray, fs: float):
    # A series of per-section state-space blocks: one polynomial of high order would lose
    # the poles that sit within 1e-3 of z = 1.
    out = None
    for sec in sos:
        block = control.ss(control.tf(sec[:3], sec[3:], 1.0 / fs))
        out = block if out is None else block * out
    return out


class LoopShapingController(LinearLockController):
    """The linear baseline as a policy with the stable-baselines3 ``predict`` interface.

    It reads the newest wavefront-sensor sample from the observation (channel 0, last
    column), filters it through the discrete compensator and returns the normalised torque
    ``-C(z) y / torque_limit`` clipped to [-1, 1] (the actuator saturates). Filter states are
    kept per env of a batch and cleared where ``episode_start`` is true.

    Parameters
    ----------
    config: the env's :class:`InterferometerConfig` (or an env, whose config is used).
    design: compensator shape; defaults to the design for ``config.mode``.
    """

    def __init__(self, config, design: LoopShapingDesign | None = None):
        if hasattr(config, "unwrapped") and hasattr(config.unwrapped, "config"):
            config = config.unwrapped.config
        if not isinstance(config, InterferometerConfig):
            raise TypeError(f"config must be an InterferometerConfig or an InterferometerLock env, "
                            f"got {type(config).__name__}")
        self.config = config = config.resolved()
        self.design = design or DEFAULT_DESIGNS[config.mode]
        z, p, k = self.design.shape_zpk()
        fs = config.sample_rate_hz
        zz, pp, kk = scipy.signal.bilinear_zpk(z, p, k, fs=fs)
        shape_sos = scipy.signal.zpk2sos(zz, pp, kk)
        plant = plant_ss(config, config.arm_power_w, config.unstable_pole_hz)
        w = 2 * np.pi * self.design.ugf_hz / fs
        self.gain = 1.0 / abs(complex((_sos_to_ss(shape_sos, fs) * plant)(np.exp(1j * w))))
        shape_sos[0, :3] *= self.gain
        self.sos = normalized_sos(shape_sos)
        self.controller = _sos_to_ss(self.sos, fs)  # discrete C(z), torque (N m) per rad
        self._scale = config.obs_pitch_scale_rad / config.torque_limit_nm
        self._zi = np.zeros((1, self.sos.shape[0], 2))

    # -- policy --------------------------------------------------------------------------------
    def reset(self) -> None:
        self._zi[:] = 0.0

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        batch, batched = observation_batch(observation)
        n = batch.shape[0]
        self._zi = state_for_batch(self._zi, n, episode_start)
        y = batch[:, 0, -1] * self._scale  # newest sensor sample, in units of torque_limit / C
        u = np.empty(n)
        sos_step_batch(self.sos, self._zi, y, u)
        action = np.clip(-u, -1.0, 1.0).astype(np.float32)[:, None]
        return (action if batched else action[0]), state

