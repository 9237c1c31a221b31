"""Evaluation on a scenario's held-out seeds: every policy on identical episodes, means with 95% intervals.

Each policy is built once per scenario (tuning, if any, on the scenario's tuning seed, which lies in
its training range) and then plays one episode per evaluation seed: ``env.reset(seed=s,
options=scenario.reset_options)``. Intervals are Student-t over episodes; the difference to the
domain's reference policy is paired by seed (same disturbance, same night), which is the
comparison a referee asks for.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import astrogym  # noqa: F401  (registers the ids)
from astrogym.agents.registry import PolicyContext, is_checkpoint_path, make_policy
from astrogym.experiments.registry import Domain, Metric, get_domain
from astrogym.experiments.scenarios import Scenario

RETURN = Metric("return", "return")


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its two-sided Student-t confidence interval (NaN half-width for one value)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2.0, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean()), float(half)


def run_episode(env: gym.Env, policy: Any, seed: int, recorder: Any, options: dict | None = None,
                max_steps: int | None = None) -> dict[str, float]:
    """Play one episode from ``env.reset(seed=seed)``; returns the return, length, end and domain metrics."""
    obs, info = env.reset(seed=seed, options=dict(options) if options else None)
    if hasattr(policy, "reset"):
        policy.reset()
    recorder.reset(env, info)
    state, start = None, np.ones(1, dtype=bool)
    total, steps, terminated, truncated = 0.0, 0, False, False
    while not (terminated or truncated):
        action, state = policy.predict(obs, state=state, episode_start=start, deterministic=True)
        start = np.zeros(1, dtype=bool)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        recorder.step(reward, info)
        if max_steps is not None and steps >= max_steps:
            break
    out = {"seed": seed, "return": total, "length": steps, "terminated": bool(terminated)}
    out.update(recorder.finish(env, info, bool(terminated)))
    report = getattr(policy, "episode_report", None)
    if callable(report):  # what a planner knows of the episode (the offline optimum: its bound, status, time)
        out.update(report())
    return out


@dataclass
class Evaluation:
    """Per-episode results of several policies on one scenario."""

    env_id: str
    scenario: Scenario
    domain: Domain
    episodes: dict[str, list[dict]] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    play_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return (RETURN,) + self.domain.metrics

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{policy: {metric: {mean, ci95, n}}}`` plus the paired difference to the reference policy."""
        out: dict[str, dict] = {}
        ref = self.episodes.get(self.domain.reference_policy or "")
        for name, rows in self.episodes.items():
            entry = {}
            for m in self.metrics:
                values = [r.get(m.key) for r in rows]
                mean, half = mean_ci(values)
                entry[m.key] = {"mean": mean, "ci95": half, "n": int(sum(v is not None for v in values))}
            if ref is not None and name != self.domain.reference_policy:
                by_seed = {r["seed"]: r for r in ref}
                for key in ("return", *(m.key for m in self.domain.metrics if m.paired)):
                    diffs = [r[key] - by_seed[r["seed"]][key] for r in rows
                             if r["seed"] in by_seed and r.get(key) is not None and by_seed[r["seed"]].get(key) is not None]
                    mean, half = mean_ci(diffs)
                    entry[f"{key}_minus_reference"] = {"mean": mean, "ci95": half, "n": len(diffs)}
            out[name] = entry
        return out

    def table(self) -> str:
        """Markdown: one row per policy, ``mean +- 95% CI`` per metric."""
        summary = self.summary()
        ref = self.domain.reference_policy
        cols = [m.label for m in self.metrics]
        paired = ref is not None and ref in self.episodes
        paired_keys = [("return", ".3g")] + [(m.key, m.fmt) for m in self.domain.metrics if m.paired]
        if paired:
            cols += [f"{'return' if k == 'return' else next(m.label for m in self.metrics if m.key == k)} - {ref} "
                     "(paired)" for k, _ in paired_keys]
        lines = ["| policy | " + " | ".join(cols) + " | episodes |", "|---" * (len(cols) + 2) + "|"]
        for name, entry in summary.items():
            cells = [_fmt(entry[m.key], m.fmt) for m in self.metrics]
            if paired:
                cells += [_fmt(entry[f"{k}_minus_reference"], f) if f"{k}_minus_reference" in entry else "-"
                          for k, f in paired_keys]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(self.episodes[name])} |")
        seeds = self.scenario.seeds(len(next(iter(self.episodes.values()))) if self.episodes else None)
        return ("\n".join(lines) + f"\n\nMean +- 95% confidence half-width (Student t) over held-out seeds "
                f"{seeds[0]}-{seeds[-1]}; arrows: " + ", ".join(
                    f"{m.label} {'higher' if m.higher_is_better else 'lower'} is better" for m in self.metrics)
                + ".\n" + self.gap_table())

    def gaps(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per policy, the relative gap in return to the best known plan of each seed (the highest return any
        policy here reached on it) and to the upper bound a policy reported for the seed (``upper_bound`` in its
        episode rows: the offline optimum's LP bound; NaN where none was reported); ``{}`` when no policy is a
        planner (no ``solve_seconds``) and none reported a bound."""
        best: dict[int, float] = {}
        bound: dict[int, float] = {}
        for rows in self.episodes.values():
            for r in rows:
                best[r["seed"]] = max(best.get(r["seed"], -np.inf), r["return"])
                if r.get("upper_bound") is not None:
                    bound[r["seed"]] = min(bound.get(r["seed"], np.inf), r["upper_bound"])
        planner = any("solve_seconds" in r for rows in self.episodes.values() for r in rows)
        if not bound and not planner:
            return {}
        out = {}
        for name, rows in self.episodes.items():
            to_best = [(best[r["seed"]] - r["return"]) / best[r["seed"]] for r in rows if best[r["seed"]] > 0]
            to_bound = [(bound[r["seed"]] - r["return"]) / bound[r["seed"]] for r in rows
                        if bound.get(r["seed"], 0) > 0]
            out[name] = {"to_best": dict(zip(("mean", "ci95"), mean_ci(to_best))),
                         "to_bound": (dict(zip(("mean", "ci95"), mean_ci(to_bound))) if to_bound
                                      else {"mean": float("nan"), "ci95": float("nan")})}
        return out

    def gap_table(self) -> str:
        """Markdown of :meth:`gaps` (empty without a planner or a bound), with the planner's status and solve times."""
        gaps = self.gaps()
        if not gaps:
            return ""
        lines = ["", "| policy | gap to the best known plan | gap to the upper bound |", "|---|---|---|"]
        for name, g in gaps.items():
            cells = [_fmt({"mean": 100 * g[k]["mean"], "ci95": 100 * g[k]["ci95"]}, ".1f") + "%"
                     if np.isfinite(g[k]["mean"]) else "- (no bound)" for k in ("to_best", "to_bound")]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
        notes = []
        for name, rows in self.episodes.items():
            if any("solve_seconds" in r for r in rows):
                solve = np.array([r["solve_seconds"] for r in rows])
                statuses = sorted({str(r.get("status", "?")) for r in rows})
                notes.append(f"{name}: status {', '.join(statuses)}, solve {solve.min():.1f}-{solve.max():.1f} s "
                             "per episode")
        return ("\n".join(lines) + "\n\nGaps: (best known plan or bound - return) / it, per seed (best known plan: "
                "the highest return of any policy on the seed; bound: the LP upper bound on any policy's return)"
                + ("; " + "; ".join(notes) if notes else "") + ".\n")

    def to_json(self) -> dict:
        return {"env_id": self.env_id, "scenario": self.scenario.name, "version": self.scenario.version,
                "summary": self.summary(), "episodes": self.episodes, "build_seconds": self.build_seconds,
                "play_seconds": self.play_seconds}


def _fmt(stat: dict, fmt: str) -> str:
    mean, half = stat["mean"], stat["ci95"]
    if not np.isfinite(mean):
        return "-"
    return f"{mean:{fmt}}" + ("" if not np.isfinite(half) else f" +- {half:{fmt}}")


def scenario_policy(name: str, scenario: Scenario, env: gym.Env, options: dict | None = None) -> Any:
    """Build policy ``name`` to act in ``env`` (the scenario's, fault included): it tunes on the scenario's
    training seed in the env without the fault (:meth:`Scenario.make_tuning_env`)."""
    return make_policy(name, PolicyContext(env, scenario.make_tuning_env, scenario.tuning_seed, dict(options or {})),
                       env_id=scenario.env_id)


def evaluate(env_id: str, scenario: Scenario, policies: list[str], episodes: int | None = None, quick: bool = False,
             progress: bool = True, policy_options: dict | None = None,
             after_episode: Callable[[str, gym.Env, dict], None] | None = None) -> Evaluation:
    """Play every policy on the scenario's evaluation seeds (the first ``episodes`` of them).

    ``after_episode(policy label, env, row)``, if given, sees each finished episode before the next
    reset (for plots of the env's final state).
    """
    domain = get_domain(env_id)
    seeds = scenario.seeds(episodes, quick=quick)
    result = Evaluation(env_id, scenario, domain)
    options = {**scenario.policy_options, **(policy_options or {})}

    for name in policies:
        label = Path(name).name if is_checkpoint_path(name) else name  # a run folder or .zip: its own name
        if label in result.episodes:  # two runs' policy_5000.pt: name them by their folder too
            label = "/".join(Path(name).parts[-2:])
        env = scenario.make_env()
        t0 = time.perf_counter()
        policy = scenario_policy(name, scenario, env, options.get(name, {}))
        t1 = time.perf_counter()
        rows = []
        for seed in tqdm(seeds, desc=f"{env_id.split('/')[-1]} {scenario.name} {label}", unit="episode",
                         disable=not progress, leave=False):
            rows.append(run_episode(env, policy, seed, domain.recorder(env), scenario.reset_options))
            if after_episode is not None:
                after_episode(label, env, rows[-1])
        result.episodes[label] = rows
        result.build_seconds[label] = t1 - t0
        result.play_seconds[label] = time.perf_counter() - t1
        env.close()
    return result


def write_evaluation(result: Evaluation, out_dir: str | Path, json_path: str | Path | None = None) -> Path:
    """``out_dir/{Env}/{scenario}.md`` (and the JSON) without touching other envs' or scenarios' files."""
    from astrogym.agents.checkpoints import atomic_write_bytes

    folder = Path(out_dir) / result.env_id.split("/")[-1]
    md = folder / f"{result.scenario.name}.md"
    atomic_write_bytes(md, (section(result) + "\n").encode())
    atomic_write_bytes(Path(json_path) if json_path else md.with_suffix(".json"),
                       json.dumps(result.to_json(), indent=1, default=float).encode())
    return md


def section(result: Evaluation) -> str:
    s = result.scenario
    return f"### {result.env_id}, scenario {s.label}\n\n{s.summary}\n\n{result.table()}"
