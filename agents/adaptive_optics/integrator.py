"""The classical AO baseline: a leaky integrator, plus a helper that tunes its gain."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from astrogym.agents.base import Policy
from astrogym.envs.adaptive_optics.config import AOConfig



def require_grid_layout(config: AOConfig, controller: str) -> None:
    """The classical controllers act on the actuator grid: refuse another layout before the first step."""
    if config.action_layout != "grid":
        raise ValueError(f"{controller} commands the (N+1, N+1) actuator grid; the env has action_layout="
                         f"{config.action_layout!r}: make it with action_layout='grid', or convert with the env's "
                         "grid_to_action()")

class LeakyIntegrator(Policy):
    """``c_t = leak c_{t-1} + gain R s_t`` on the DM actuators, as a ``predict`` policy.

    It reads the newest reconstructed measurement ``R s_t`` (observation channel 0) and the
    last command (channel ``history``) from the observation, so it needs no state. In this
    env the residual is atmosphere minus DM, so the correction adds ``gain R s``. Defaults:
    leak 0.99, gain 0.4 (PO4AO code, COMPASS).

    Parameters
    ----------
    config: the env's :class:`AOConfig` (or the env).
    gain, leak: integrator gain and leak.
    """

    def __init__(self, config, gain: float = 0.4, leak: float = 0.99):
        if hasattr(config, "unwrapped") and hasattr(config.unwrapped, "config"):
            config = config.unwrapped.config
        if not isinstance(config, AOConfig):
            raise TypeError(f"config must be an AOConfig or an AdaptiveOptics env, got {type(config).__name__}")
        require_grid_layout(config, type(self).__name__)
        if not 0.0 < gain <= 2.0:
            raise ValueError(f"gain={gain} is out of range; allowed (0, 2]")
        if not 0.0 < leak <= 1.0:
            raise ValueError(f"leak={leak} is out of range; allowed (0, 1]")
        self.config, self.gain, self.leak = config, gain, leak
        self._command_to_action = config.dm_stroke_rad / config.action_scale_rad

    def registry_options(self) -> dict:
        """The options that rebuild this controller through the policy registry (``integrator``)."""
        return {"gain": float(self.gain), "leak": float(self.leak)}

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (3, 4) or obs.shape[-3] != 2 * self.config.history:
            raise ValueError(f"observation must have shape (2*history, N+1, N+1) or a batch of them, got {obs.shape}")
        h = self.config.history
        measurement = obs[..., 0, :, :]
        last_command = obs[..., h, :, :] * self._command_to_action
        action = (self.leak - 1.0) * last_command + self.gain * measurement
        return np.clip(action, -1.0, 1.0).astype(np.float32), state


def run_ao(policy: Policy, env: gym.Env, frames: int, seed: int, skip: int = 50) -> dict:
    """Run ``frames`` frames; mean residual (rad^2, science) and Marechal Strehl after ``skip`` frames."""
    obs, _ = env.reset(seed=seed)
    variances = []
    info: dict = {}
    for _ in range(frames):
        action, _ = policy.predict(obs)
        obs, _, _, truncated, info = env.step(action)
        variances.append(info["residual_rad2"])
        if truncated:
            break
    v = np.asarray(variances[skip:])
    return {"residual_rad2": float(v.mean()), "strehl": float(np.exp(-v).mean()), "last_info": info}


def tune_integrator_gain(make_env: Callable[[], gym.Env], gains=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8),
                         frames: int = 400, seed: int = 0, leak: float = 0.99) -> tuple[float, list[dict]]:
    """Pick the gain with the lowest mean residual on the same seeded atmosphere; returns (gain, table)."""
    env = make_env()
    rows = []
    for g in gains:
        result = run_ao(LeakyIntegrator(env, gain=g, leak=leak), env, frames, seed)
        rows.append({"gain": g, "residual_rad2": result["residual_rad2"], "strehl": result["strehl"]})
    env.close()
    best = min(rows, key=lambda r: r["residual_rad2"])
    return best["gain"], rows
