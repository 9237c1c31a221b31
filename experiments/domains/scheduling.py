"""TelescopeScheduling-v0 in the experiment layer: schedule metrics, the TensorBoard callback, bench and report."""

from __future__ import annotations

from pathlib import Path

from astrogym.agents.registry import SCHEDULING_IDS
from astrogym.experiments.registry import Domain, Metric, register_domain

_FINAL_KEYS = ("priority_weighted_completion", "open_shutter_fraction", "mean_overhead_s", "completed_visits")


class ScheduleRecorder:
    """The env's end-of-night metrics (its final ``info``) and the rate of masked actions chosen."""

    def reset(self, env, info):
        self.steps = self.invalid = 0

    def step(self, reward, info):
        self.steps += 1
        self.invalid += int(bool(info.get("invalid_action", False)))

    def finish(self, env, info, terminated):
        out = {k: float(info[k]) for k in _FINAL_KEYS if k in info}
        out["invalid_action_rate"] = self.invalid / max(self.steps, 1)
        return out


def _callbacks(env):
    from astrogym.experiments.callbacks import SchedulingMetricsCallback

    return [SchedulingMetricsCallback()]


def _throughput(env_id: str, quick: bool) -> str:
    from astrogym.experiments.bench_scheduling import bench_scheduling, scheduling_bench_table

    return "Median of 3.\n\n" + scheduling_bench_table(bench_scheduling(repeats=3))


def _report(env_id: str, out: Path, quick: bool, seed: int) -> str:
    """The baselines through a lunation of nights (every 3 days), gaps to the offline optimum, schedule plots."""
    from astrogym.experiments.evaluate_scheduling import evaluate_scheduling

    nights = 2 if quick else 10
    r = evaluate_scheduling(["random", "greedy", "astroplan-priority", "optimum"], nights=nights, seed=seed,
                            out_dir=out, optimum_time_limit_s=5.0 if quick else 30.0)
    kw = ", ".join(f"{k}={v}" for k, v in r["env_kwargs"].items())
    plots = ", ".join(f"`{Path(p).name}`" for p in r["plots"])
    return (f"{nights} nights from 2026-12-15 every 3 days ({kw}), weather seeds {seed}-{seed + nights - 1}; "
            f"mean +- standard deviation over nights.\n\n{r['table']}\nSchedule plots (first night): {plots}\n")


SCHEDULING = register_domain(Domain(
    name="scheduling",
    env_ids=SCHEDULING_IDS,
    metrics=(Metric("priority_weighted_completion", "priority-weighted completion", fmt=".3f"),
             Metric("open_shutter_fraction", "open-shutter fraction", fmt=".3f"),
             Metric("mean_overhead_s", "mean overhead [s]", higher_is_better=False, fmt=".1f"),
             Metric("completed_visits", "completed visits", fmt=".1f")),
    recorder=lambda env: ScheduleRecorder(),
    default_algo="maskable_ppo",
    reference_policy="greedy",
    training_callbacks=_callbacks,
    throughput=_throughput,
    report=_report,
))
