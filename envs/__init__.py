"""Gymnasium environments of astrogym; registration lives in one place, here.

Entry points are strings, so registering imports no physics: a later ``gym.make``
imports just the domain it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym


@dataclass(frozen=True)
class EnvSpec:
    """What ``astrogym list`` shows and ``register_envs`` registers."""

    id: str
    entry_point: str
    summary: str
    kwargs: dict = field(default_factory=dict)
    # the native vector env (``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``)
    vector_entry_point: str | None = None


ENV_SPECS: tuple[EnvSpec, ...] = (
    EnvSpec(
        id="astrogym/AdaptiveOptics-v0",
        entry_point="astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv",
        vector_entry_point="astrogym.envs.adaptive_optics.vector:AdaptiveOpticsVectorEnv",
        summary="single-conjugate AO: 8 m, 40x40 Shack-Hartmann, 41x41 DM, frozen-flow von Karman layers",
    ),
    EnvSpec(
        id="astrogym/AdaptiveOpticsSmall-v0",
        entry_point="astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv",
        vector_entry_point="astrogym.envs.adaptive_optics.vector:AdaptiveOpticsVectorEnv",
        summary="the fast AO preset: 8 m, 20x20 Shack-Hartmann, 21x21 DM",
        kwargs={"n_subapertures": 20},
    ),
    EnvSpec(
        id="astrogym/TelescopeScheduling-v0",
        entry_point="astrogym.envs.scheduling.env:TelescopeSchedulingEnv",
        vector_entry_point="astrogym.envs.scheduling.vector:TelescopeSchedulingVectorEnv",
        summary="one telescope (MOST at Muztagh-ata), one night, 100 targets as a graph: pick the next target",
    ),
    EnvSpec(
        id="astrogym/TelescopeNetwork-v0",
        entry_point="astrogym.envs.network.env:TelescopeNetworkEnv",
        vector_entry_point="astrogym.envs.network.vector:TelescopeNetworkVectorEnv",
        summary="four telescopes (Muztagh-ata, La Palma, Cerro Pachon, Siding Spring) share 200 targets and "
                "targets of opportunity; event-driven: each free telescope picks its next target",
    ),
    EnvSpec(
        id="astrogym/InterferometerLock-v0",
        entry_point="astrogym.envs.interferometer.env:InterferometerLockEnv",
        vector_entry_point="astrogym.envs.interferometer.vector:InterferometerLockVectorEnv",
        summary="LIGO-style angular control of a radiation-pressure-coupled arm-cavity pitch mode",
    ),
)


def ids_for(entry_point: str) -> tuple[str, ...]:
    """The registered ids of one env class (its ``"module:Class"`` entry point), in ``ENV_SPECS`` order.

    The AO presets share one class: ``ids_for("astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv")``
    is ``("astrogym/AdaptiveOptics-v0", "astrogym/AdaptiveOpticsSmall-v0")``.
    """
    return tuple(spec.id for spec in ENV_SPECS if spec.entry_point == entry_point)


def register_envs() -> None:
    """Register every astrogym id with Gymnasium; calling it again changes nothing."""
    for spec in ENV_SPECS:
        if spec.id in gym.registry:
            continue
        # Episodes are truncated by the env itself (its config sets the length), so no
        # TimeLimit wrapper sits in the hot path.
        gym.register(id=spec.id, entry_point=spec.entry_point, vector_entry_point=spec.vector_entry_point,
                     kwargs=dict(spec.kwargs))
