"""Throughput of ``astrogym/TelescopeNetwork-v0`` against the single-site scheduler, measured in one run.

``env_steps_per_s`` times ``env.step`` alone (resets and the policy are not timed), after the night
tables are precomputed, with a random allowed action each step, as
:func:`astrogym.experiments.bench_scheduling.env_steps_per_s` does for the single-site env; the
peer in the same run is ``TelescopeScheduling-v0`` at the same number of targets (one telescope
deciding per step in both, so the ratio is the network's event bookkeeping and its larger view:
every telescope's row and every target's per-site features).
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import astrogym  # noqa: F401

ENV_ID = "astrogym/TelescopeNetwork-v0"


def network_steps_per_s(env_id: str = ENV_ID, steps: int = 20_000, repeats: int = 3, **env_kwargs) -> float:
    """Median over ``repeats`` of ``env.step`` calls per second (resets and the random policy untimed)."""
    env = gym.make(env_id, **env_kwargs).unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(repeats):
        spent, done = 0.0, 0
        while done < steps:
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            t0 = time.perf_counter()
            _, _, terminated, _, _ = env.step(action)
            spent += time.perf_counter() - t0
            done += 1
            if terminated:
                env.reset(seed=done)
        rates.append(steps / spent)
    return float(np.median(rates))


def precompute_seconds(n_targets: int, date: str = "2027-03-01") -> float:
    """Seconds of a first reset with empty caches: every site's night tables for the catalogue and the ToO pool."""
    import os
    import tempfile

    from astrogym.envs.scheduling.night import clear_memory_cache

    old = os.environ.get("ASTROGYM_CACHE_DIR")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["ASTROGYM_CACHE_DIR"] = folder
        try:
            clear_memory_cache()
            env = gym.make(ENV_ID, n_targets=n_targets, date=date)
            t0 = time.perf_counter()
            env.reset(seed=0)
            return time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("ASTROGYM_CACHE_DIR", None)
            else:
                os.environ["ASTROGYM_CACHE_DIR"] = old
            clear_memory_cache()


def bench_network(n_targets: int = 500, steps: int = 20_000, repeats: int = 3) -> dict:
    """The network (default four sites) and the single-site env at ``n_targets`` targets, in one run."""
    network = network_steps_per_s(ENV_ID, steps, repeats, n_targets=n_targets)
    single = network_steps_per_s("astrogym/TelescopeScheduling-v0", steps, repeats, n_targets=n_targets)
    return {"n_targets": n_targets, "network_steps_per_s": network, "single_site_steps_per_s": single,
            "ratio": network / single, "precompute_s": precompute_seconds(n_targets)}


def network_bench_table(result: dict) -> str:
    return ("| env | targets | env steps/s | vs single site |\n|---|---|---|---|\n"
            f"| TelescopeNetwork-v0 (4 sites) | {result['n_targets']} | {result['network_steps_per_s']:,.0f} | "
            f"{result['ratio']:.2f}x |\n"
            f"| TelescopeScheduling-v0 (1 site) | {result['n_targets']} | {result['single_site_steps_per_s']:,.0f} | "
            "1.00x |\n\n"
            f"Precompute (first reset, empty caches: 4 sites x (catalogue + ToO pool) night tables): "
            f"{result['precompute_s']:.1f} s.\n")
