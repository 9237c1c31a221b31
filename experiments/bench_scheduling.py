"""``astrogym bench astrogym/TelescopeScheduling-v0``: precompute, step and decision rates, one run.

Prints: the night-table precompute for 100 and 1,000 targets (computed with astropy, loaded from
the disk cache, found in memory); env steps/s for 100 targets after precompute (``env.step`` only,
random allowed actions, through ``gym.make``); and the greedy baseline's decisions/s (policy +
env step) against astroplan's SequentialScheduler on the same night and targets (seconds of
astroplan planning per block it places). Targets from the issue: 100-target night < 1 s (cached
< 50 ms), >= 10,000 steps/s, >= 1,000x astroplan per decision.
"""

from __future__ import annotations

import datetime
import time

import gymnasium as gym
import numpy as np

import astrogym  # noqa: F401
from astrogym.agents import GreedyScheduler
from astrogym.envs.scheduling import night as night_mod
from astrogym.envs.scheduling.catalogue import random_catalogue
from astrogym.envs.scheduling.sites import get_site
from astrogym.envs.scheduling.telescope import get_telescope

ENV_ID = "astrogym/TelescopeScheduling-v0"


def precompute_times(n_targets: int, repeats: int = 3, first_date: str = "2027-02-01") -> dict:
    """Median seconds to compute a night, to load it from disk, and to find it in memory."""
    site, tel = get_site("muztagh_ata"), get_telescope("most")
    cat = random_catalogue(n_targets, seed=123, telescope=tel)
    night_mod.night_table(site, "2027-01-01", random_catalogue(5, seed=0))  # astropy's one-off start-up
    compute, disk, memory = [], [], []
    for k in range(repeats):
        date = (datetime.date.fromisoformat(first_date) + datetime.timedelta(days=k)).isoformat()
        t0 = time.perf_counter()
        night_mod.night_table(site, date, cat, use_disk_cache=False)
        compute.append(time.perf_counter() - t0)
        night_mod.clear_memory_cache()
        night_mod.night_table(site, date, cat)  # make sure it is on disk
        night_mod.clear_memory_cache()
        t0 = time.perf_counter()
        night_mod.night_table(site, date, cat)
        disk.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        night_mod.night_table(site, date, cat)
        memory.append(time.perf_counter() - t0)
    return {"n_targets": n_targets, "compute_s": float(np.median(compute)), "disk_s": float(np.median(disk)),
            "memory_s": float(np.median(memory))}


def env_steps_per_s(n_targets: int = 100, steps: int = 20_000, repeats: int = 3, env_id: str = ENV_ID,
                    **env_kwargs) -> float:
    """``env.step`` calls per second (resets and the random policy are not timed); ``env_id`` and ``env_kwargs``:
    another scheduling env (the network's bench uses it)."""
    env = gym.make(env_id, n_targets=n_targets, **env_kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(repeats):
        spent, done = 0.0, 0
        while done < steps:
            action = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
            t0 = time.perf_counter()
            _, _, terminated, _, _ = env.step(action)
            spent += time.perf_counter() - t0
            done += 1
            if terminated:
                env.reset()
        rates.append(steps / spent)
    return float(np.median(rates))


def greedy_decisions_per_s(env_kwargs: dict, seed: int = 0, repeats: int = 3) -> tuple[float, int]:
    """Whole nights scheduled by the greedy baseline: decisions (policy + env step) per second."""
    env = gym.make(ENV_ID, **env_kwargs)
    policy = GreedyScheduler.for_env(env)
    rates = []
    for _ in range(repeats):
        obs, _ = env.reset(seed=seed)
        n, t0 = 0, time.perf_counter()
        while True:
            obs, _, terminated, _, _ = env.step(policy.predict(obs)[0])
            n += 1
            if terminated:
                break
        rates.append(n / (time.perf_counter() - t0))
    return float(np.median(rates)), n


def astroplan_seconds_per_decision(env_kwargs: dict, seed: int = 0, kind: str = "sequential") -> dict:
    """astroplan's scheduler on the same night and targets: planning seconds per placed block."""
    from astrogym.agents.scheduling.astroplan import astroplan_decision_time

    return astroplan_decision_time(kind=kind, seed=seed, **env_kwargs)


def bench_scheduling(repeats: int = 3, astroplan_targets: int = 30) -> dict:
    out = {"precompute": [precompute_times(100, repeats), precompute_times(1000, repeats)],
           "env_steps_per_s": env_steps_per_s(100, repeats=repeats)}
    same = {"n_targets": astroplan_targets, "wait_s": 60.0}
    rate, decisions = greedy_decisions_per_s(same, repeats=repeats)
    out["greedy"] = {"n_targets": astroplan_targets, "decisions_per_s": rate, "decisions": decisions}
    astro = astroplan_seconds_per_decision(same)
    out["astroplan_sequential"] = astro
    out["greedy_vs_astroplan"] = rate * astro["seconds_per_decision"]
    return out


def scheduling_bench_table(result: dict) -> str:
    lines = ["| quantity | value | target |", "|---|---|---|"]
    for p in result["precompute"]:
        n = p["n_targets"]
        lines.append(f"| night precompute, {n} targets (astropy) | {p['compute_s'] * 1e3:.0f} ms |"
                     f" {'< 1 s' if n == 100 else ''} |")
        lines.append(f"| night from disk cache, {n} targets | {p['disk_s'] * 1e3:.1f} ms |"
                     f" {'< 50 ms' if n == 100 else ''} |")
        lines.append(f"| night from memory, {n} targets | {p['memory_s'] * 1e6:.0f} us | |")
    lines.append(f"| env steps/s, 100 targets (gym.make, env.step only) | {result['env_steps_per_s']:,.0f} |"
                 " >= 10,000 |")
    g = result["greedy"]
    lines.append(f"| greedy decisions/s, {g['n_targets']} targets (policy + step) | {g['decisions_per_s']:,.0f} | |")
    if "astroplan_sequential" in result:
        a = result["astroplan_sequential"]
        lines.append(f"| astroplan SequentialScheduler, same night and targets | {a['seconds_per_decision']:.2f} s "
                     f"per block ({a['n_decisions']} blocks in {a['plan_seconds']:.0f} s) | |")
        lines.append(f"| greedy / astroplan per decision | {result['greedy_vs_astroplan']:,.0f}x | >= 1,000x |")
    return "\n".join(lines) + "\n"
