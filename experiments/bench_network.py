"""Throughput of ``astrogym/TelescopeNetwork-v0`` against the single-site scheduler, measured in one run.

:func:`~astrogym.experiments.bench_scheduling.env_steps_per_s` times ``env.step`` alone (resets and the policy are not timed), after the night
tables are precomputed, with a random allowed action each step, as
:func:`astrogym.experiments.bench_scheduling.env_steps_per_s` does for the single-site env; the
peer in the same run is ``TelescopeScheduling-v0`` at the same number of targets (one telescope
deciding per step in both, so the ratio is the network's event bookkeeping and its larger view:
every telescope's row and every target's per-site features).
"""

from __future__ import annotations

import time

import gymnasium as gym

from astrogym.experiments.bench_scheduling import env_steps_per_s

ENV_ID = "astrogym/TelescopeNetwork-v0"


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
    network = env_steps_per_s(n_targets, steps, repeats, env_id=ENV_ID)
    single = env_steps_per_s(n_targets, steps, repeats)
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
