"""What of the next observation a dynamics model must learn, and what is known.

Both control envs stack a history in their observation: most of the next observation is the
current one shifted by a step, plus the action just taken. A model that re-learns that shift
wastes capacity and compounds its errors over a rollout, so a *structure* splits the next
observation into the part to learn (the new sensor frame) and the rest, which it assembles
exactly from ``(obs, action)``. Every structure works on torch tensors with a leading batch
dimension and is differentiable in the learned part and the action (model-based policy training
backpropagates through it).

* :class:`FullDelta`: nothing known; the model learns ``next_obs - obs`` (any Box env).
* :class:`AOHistory`: ``astrogym/AdaptiveOptics*``: learn the newest reconstructed measurement
  (channel 0); the measurement channels shift, and the newest command channel is the previous
  command plus the action on the controlled actuators, clipped to the stroke, as the env steps it.
* :class:`LockHistory`: ``astrogym/InterferometerLock-v0``: learn the newest sensor reading; the
  history shifts left and the newest action is the clipped action.

:func:`structure_for` picks one by the env's entry point (a registry, :data:`STRUCTURES`), and a
structure rebuilds from :meth:`Structure.spec` when a model file is loaded.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch


class Structure:
    """Base class: split ``next_obs`` into a learned part and a known rest."""

    name = "base"
    learned_shape: tuple[int, ...]
    # whether the learned part can depend on this step's action; False where a delay makes it physically
    # impossible (the model then never sees the action, so it cannot learn a spurious shortcut through it)
    direct_action = True

    def target(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The learned part of ``next_obs`` (shape ``(B, *learned_shape)``)."""
        raise NotImplementedError

    def assemble(self, obs: torch.Tensor, action: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
        """The next observation from the current one, the action and the learned part."""
        raise NotImplementedError

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation as the model's input sees it (a linear re-parametrisation; default: as it is)."""
        return obs

    def spec(self) -> dict:
        """JSON-able arguments that rebuild this structure (``build_structure``)."""
        raise NotImplementedError


class FullDelta(Structure):
    """Nothing known: learn the change of the whole observation."""

    name = "full-delta"

    def __init__(self, obs_shape):
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.learned_shape = self.obs_shape

    def target(self, obs, action, next_obs):
        return next_obs - obs

    def assemble(self, obs, action, learned):
        return obs + learned

    def spec(self):
        return {"name": self.name, "obs_shape": list(self.obs_shape)}


class AOHistory(Structure):
    """``(2H, N, N)`` AO observation, newest first: channel 0 is learned, the rest is known.

    Parameters
    ----------
    history: ``H``.
    grid: ``N``.
    command_per_action: ``action_scale_rad / dm_stroke_rad``: an action of 1 moves the normalised
        command channel by this much.
    controlled: (N, N) bool, the actuators the action drives.
    direct_action: whether the next measurement sees this step's command (``loop_delay_frames`` 1);
        with two or more frames of delay it cannot, and the model ignores the action.
    """

    name = "ao-history"

    def __init__(self, history: int, grid: int, command_per_action: float, controlled, direct_action: bool = True):
        self.direct_action = bool(direct_action)
        self.history, self.grid = int(history), int(grid)
        self.command_per_action = float(command_per_action)
        self.controlled = np.asarray(controlled, dtype=bool).reshape(self.grid, self.grid)
        self._mask = torch.as_tensor(self.controlled, dtype=torch.float32)
        self.learned_shape = (1, self.grid, self.grid)

    @classmethod
    def from_env(cls, env: gym.Env) -> "AOHistory":
        cfg, system = env.unwrapped.config, env.unwrapped.system
        if cfg.action_layout != "grid":
            raise ValueError("AOHistory needs action_layout='grid' (the action image on the actuator grid)")
        return cls(cfg.history, system.controlled.shape[0], cfg.action_scale_rad / cfg.dm_stroke_rad, system.controlled,
                   direct_action=cfg.loop_delay_frames <= 1)

    def target(self, obs, action, next_obs):
        return next_obs[:, :1]

    def features(self, obs):
        # Closed-loop commands barely change frame to frame, so the raw command channels are nearly
        # collinear and the model cannot tell which one the measurement responds to; their increments
        # (newest minus the one before, ..., then the oldest) carry the same information, well conditioned.
        h = self.history
        commands = obs[:, h:2 * h]
        increments = commands[:, :-1] - commands[:, 1:]
        return torch.cat([obs[:, :h], increments, commands[:, -1:]], dim=1)

    def assemble(self, obs, action, learned):
        h = self.history
        command = obs[:, h] + self.command_per_action * torch.clamp(action, -1.0, 1.0) * self._mask
        command = torch.clamp(command, -1.0, 1.0)
        return torch.cat([learned, obs[:, :h - 1], command[:, None], obs[:, h:2 * h - 1]], dim=1)

    def spec(self):
        return {"name": self.name, "history": self.history, "grid": self.grid,
                "command_per_action": self.command_per_action, "controlled": self.controlled.astype(int).tolist(),
                "direct_action": self.direct_action}


class LockHistory(Structure):
    """``(2, L)`` lock observation, oldest first: row 0 sensor, row 1 applied action; the newest
    sensor sample is learned."""

    name = "lock-history"

    def __init__(self, length: int):
        self.length = int(length)
        self.learned_shape = (1,)

    @classmethod
    def from_env(cls, env: gym.Env) -> "LockHistory":
        return cls(env.observation_space.shape[1])

    def target(self, obs, action, next_obs):
        return next_obs[:, 0, -1:]

    def assemble(self, obs, action, learned):
        applied = torch.clamp(action.reshape(-1, 1), -1.0, 1.0)
        sensor = torch.cat([obs[:, 0, 1:], learned], dim=1)
        actions = torch.cat([obs[:, 1, 1:], applied], dim=1)
        return torch.stack([sensor, actions], dim=1)

    def spec(self):
        return {"name": self.name, "length": self.length}


# env entry point -> a builder from the env; rebuilt from a spec by name
STRUCTURES: dict[str, Any] = {
    "astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv": AOHistory.from_env,
    "astrogym.envs.interferometer.env:InterferometerLockEnv": LockHistory.from_env,
}
_BY_NAME = {cls.name: cls for cls in (FullDelta, AOHistory, LockHistory)}


def structure_for(env: gym.Env) -> Structure:
    """The known-structure split for ``env`` (:class:`FullDelta` for an env without one)."""
    spec = getattr(env, "spec", None)
    builder = STRUCTURES.get(getattr(spec, "entry_point", None) if spec is not None else None)
    if builder is None:
        return FullDelta(env.observation_space.shape)
    return builder(env)


def build_structure(spec: dict) -> Structure:
    """Rebuild a structure from :meth:`Structure.spec`."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in _BY_NAME:
        raise ValueError(f"unknown structure {name!r}; allowed {', '.join(_BY_NAME)}")
    return _BY_NAME[name](**spec)
