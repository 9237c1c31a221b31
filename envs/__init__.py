"""Gymnasium environments of astrogym; registration lives in one place, here.

Entry points are strings, so registering imports no physics: a later ``gym.make``
imports just the domain it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym


@dataclass(frozen=True)
class EnvSpec:
    """What ``astrogym list`` shows and ``register_envs`` registers."""

    id: str
    entry_point: str
    summary: str


ENV_SPECS: tuple[EnvSpec, ...] = (
    EnvSpec(
        id="astrogym/InterferometerLock-v0",
        entry_point="astrogym.envs.interferometer.env:InterferometerLockEnv",
        summary="LIGO-style angular control of a radiation-pressure-coupled arm-cavity pitch mode",
    ),
)


def register_envs() -> None:
    """Register every astrogym id with Gymnasium; calling it again changes nothing."""
    for spec in ENV_SPECS:
        if spec.id in gym.registry:
            continue
        # Episodes are truncated by the env itself (its config sets the length), so no
        # TimeLimit wrapper sits in the hot path.
        gym.register(id=spec.id, entry_point=spec.entry_point)
