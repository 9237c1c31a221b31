"""Per night of a scheduling scenario: greedy, the lookaheads, the offline optimum (time, status), the LP bound.

``python -m astrogym.experiments.optimum_gap --scenario default`` (or ``oversubscribed``) prints one row per
evaluation seed and writes them as JSON (``--out``): greedy's return played through the env, the offline
optimum's replayed return, its gap to greedy ``(optimum - greedy) / optimum`` (never negative: greedy is
one of its warm starts), the warm starts' returns (the lookaheads', exactly what those policies earn on
the night), the search's solve seconds and status, and the LP bound before issue 12's tightenings and
after (the optimum's remaining gap is to the latter).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def night_rows(scenario_name: str, episodes: int | None = None, time_limit_s: float | None = None,
               old_bound: bool = True) -> list[dict]:
    from astrogym.agents.scheduling.greedy import GreedyScheduler
    from astrogym.agents.scheduling.optimum import OfflineOptimum, upper_bound_lp
    from astrogym.experiments.scenarios import get_scenario

    env_id = "astrogym/TelescopeScheduling-v0"
    scenario = get_scenario(env_id, scenario_name)
    options = dict(scenario.policy_options.get("optimum", {}))
    if time_limit_s is not None:
        options["time_limit_s"] = time_limit_s
    env = scenario.make_env()
    rows = []
    for seed in scenario.seeds(episodes):
        obs, _ = env.reset(seed=seed, options=dict(scenario.reset_options) or None)
        greedy = GreedyScheduler.for_env(env)
        g, done = 0.0, False
        while not done:
            obs, r, done, _, _ = env.step(greedy.predict(obs)[0])
            g += r
        obs, _ = env.reset(seed=seed, options=dict(scenario.reset_options) or None)
        row = {"seed": seed, "greedy": g}
        if old_bound:
            t0 = time.perf_counter()
            row["bound_old"] = upper_bound_lp(env, cap_progress=False, busy_windows_s=(), visit_order=False)
            row["bound_old_seconds"] = time.perf_counter() - t0
        policy = OfflineOptimum(env, **options)
        ret, done, first = 0.0, False, True
        while not done:
            a, _ = policy.predict(obs, episode_start=np.array([first]))
            first = False
            obs, r, done, _, _ = env.step(a)
            ret += r
        row.update(optimum=ret, plan=policy.objective, gap_to_greedy=(ret - g) / ret if ret > 0 else 0.0,
                   solve_seconds=policy.solve_seconds, status=policy.status, bound=policy.upper_bound,
                   bound_seconds=policy.bound_seconds, gap_to_bound=policy.gap, source=policy.source,
                   lns_moves=policy.search.iterations, lns_improvements=policy.search.improvements,
                   diverged=policy.diverged, **{f"start:{k}": v for k, v in policy.candidates.items()})
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
    env.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=None, help="the optimum's search seconds per night")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = night_rows(args.scenario, args.episodes, args.time_limit)
    gaps = np.array([r["gap_to_greedy"] for r in rows])
    print(f"gap to greedy {100 * gaps.mean():.2f}% (min {100 * gaps.min():.2f}%, max {100 * gaps.max():.2f}%); "
          f"optimum {np.mean([r['optimum'] for r in rows]):.4f} +- {np.std([r['optimum'] for r in rows]):.4f}, "
          f"greedy {np.mean([r['greedy'] for r in rows]):.4f} +- {np.std([r['greedy'] for r in rows]):.4f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1, default=float)


if __name__ == "__main__":
    main()
