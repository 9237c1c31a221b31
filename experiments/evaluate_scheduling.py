"""Scheduling baselines on seeded nights: the table the closing note and ``astrogym benchmark`` report.

Every policy plays the same nights (same targets, same drawn weather per seed) through
``TelescopeScheduling-v0``, so the env's metrics compare them directly. The offline optimum searches
the night's action sequences with its weather known in advance (warm starts from greedy and the
rollout lookaheads, a large-neighbourhood search, every sequence valued exactly through the env) and
replays the best; it is the best known plan of the night and never below its warm starts. Every
policy's gap to it is ``(optimum - policy) / optimum`` in return, per night, then averaged; the
second gap is to an LP upper bound that no policy can exceed on that night
(``agents.scheduling.optimum.upper_bound_lp``: best conditions, no overheads, capped credit, busy time,
visit order), which also bounds how far the optimum may be from the true optimum.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import astrogym  # noqa: F401

ENV_ID = "astrogym/TelescopeScheduling-v0"
METRICS = ("return", "priority_weighted_completion", "open_shutter_fraction", "mean_overhead_s", "mean_airmass",
           "completed_visits")


def _policy_makers(names: list[str], optimum_time_limit_s: float) -> dict[str, Callable]:
    """Registered scheduling policies by name (``agents/registry.py``), built for each night's env."""
    from astrogym.agents.registry import PolicyContext, make_policy, policies_for

    known = {p.name for p in policies_for(ENV_ID)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scheduling policy {unknown}; known: {', '.join(sorted(known))}")

    def maker(name: str) -> Callable:
        options = {"time_limit_s": optimum_time_limit_s} if name == "optimum" else {}
        return lambda env: make_policy(name, PolicyContext(env, lambda **kw: gym.make(ENV_ID, **kw), 0, options),
                                       env_id=ENV_ID)
    return {name: maker(name) for name in names}


def play_night(env, policy, obs) -> dict:
    """Run one episode from ``obs`` (what the caller's ``env.reset`` returned); returns the final metrics."""
    total, invalid, start = 0.0, 0, time.perf_counter()
    while True:
        action, _ = policy.predict(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        invalid += int(info["invalid_action"])
        if terminated or truncated:
            break
    out = {k: float(info[k]) for k in METRICS if k != "return"}
    out.update({"return": total, "invalid_actions": invalid, "seconds": time.perf_counter() - start})
    return out


def evaluate_scheduling(policies: list[str], nights: int = 10, n_targets: int = 20, seed: int = 0,
                        first_date: str = "2026-12-15", days_between: int = 3, optimum_time_limit_s: float = 30.0,
                        out_dir: str | Path | None = None, env_kwargs: dict | None = None) -> dict:
    """Play every policy on ``nights`` seeded nights (night k: ``first_date + k * days_between``, weather seed
    ``seed + k``); returns per-night results, a Markdown table and the schedule plot of night 0."""
    # waits of 60 s: the optimum's replay slack (its plans are valued at the worst start within one wait)
    kwargs = {"n_targets": n_targets, "wait_s": 60.0, **(env_kwargs or {})}
    makers = _policy_makers(policies, optimum_time_limit_s)
    results: dict[str, list[dict]] = {name: [] for name in makers}
    plots = []
    out = Path(out_dir) if out_dir is not None else None
    for k in tqdm(range(nights), desc="scheduling nights", unit="night"):
        date = (datetime.date.fromisoformat(first_date) + datetime.timedelta(days=k * days_between)).isoformat()
        for name, make in makers.items():
            env = gym.make(ENV_ID, **kwargs)
            obs, _ = env.reset(seed=seed + k, options={"date": date})
            policy = make(env)
            row = play_night(env, policy, obs)
            row.update(date=date, seed=seed + k)
            if name == "optimum":
                row.update(policy.episode_report())
            results[name].append(row)
            if out is not None and k == 0:
                from astrogym.envs.scheduling.plots import schedule_figure

                out.mkdir(parents=True, exist_ok=True)
                fig = schedule_figure(env.unwrapped)
                path = out / f"schedule_{name}.png"
                fig.savefig(path)
                plots.append(str(path))
    return {"results": results, "table": scheduling_table(results), "plots": plots, "env_kwargs": kwargs}


def scheduling_table(results: dict[str, list[dict]]) -> str:
    """Markdown: mean +- standard deviation over nights per policy, and the mean gaps to the optimum."""
    optimum = results.get("optimum")
    lines = ["| policy | priority-weighted completion | return | open-shutter fraction | mean overhead (s) | "
             "mean airmass | gap to optimum | gap to upper bound |", "|---|---|---|---|---|---|---|---|"]

    def stat(rows, key, fmt=".3f"):
        v = np.array([r[key] for r in rows])
        return f"{v.mean():{fmt}} +- {v.std():{fmt}}"

    for name, rows in results.items():
        gap, gap_ub = "-", "-"
        if optimum is not None:
            if name != "optimum":
                g = [(o["return"] - r["return"]) / o["return"] for r, o in zip(rows, optimum) if o["return"] > 0]
                gap = f"{100 * np.mean(g):.1f}% +- {100 * np.std(g):.1f}%"
            g = [(o["upper_bound"] - r["return"]) / o["upper_bound"] for r, o in zip(rows, optimum)
                 if o.get("upper_bound")]
            gap_ub = f"{100 * np.mean(g):.1f}% +- {100 * np.std(g):.1f}%"
        lines.append(f"| {name} | {stat(rows, 'priority_weighted_completion')} | {stat(rows, 'return')} | "
                     f"{stat(rows, 'open_shutter_fraction')} | {stat(rows, 'mean_overhead_s', '.1f')} | "
                     f"{stat(rows, 'mean_airmass', '.2f')} | {gap} | {gap_ub} |")
    if optimum is not None:
        statuses = sorted({o["status"] for o in optimum})
        solve = np.array([o["solve_seconds"] for o in optimum])
        ub = np.array([o["upper_bound"] for o in optimum])
        bound_gap = np.array([o["bound_gap"] for o in optimum])
        lines.append(f"\nOffline optimum: status {', '.join(statuses)}, solve {solve.min():.1f}-"
                     f"{solve.max():.1f} s per night, remaining gap to the LP bound {100 * bound_gap.mean():.1f}% +- "
                     f"{100 * bound_gap.std():.1f}%; LP upper bound on the return {ub.mean():.3f} +- {ub.std():.3f}.")
    return "\n".join(lines) + "\n"
