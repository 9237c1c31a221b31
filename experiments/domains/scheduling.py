"""TelescopeScheduling-v0 in the experiment layer: schedule metrics, the TensorBoard callback, bench and report."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

from astrogym.agents.registry import SCHEDULING_IDS
from astrogym.experiments.registry import Domain, Metric, register_domain

_FINAL_KEYS = ("priority_weighted_completion", "open_shutter_fraction", "mean_overhead_s", "completed_visits")


class ScheduleRecorder:
    """The env's end-of-night metrics (its final ``info``, keys ``KEYS``) and the rate of masked actions chosen."""

    KEYS = _FINAL_KEYS

    def reset(self, env, info):
        self.steps = self.invalid = 0

    def step(self, reward, info):
        self.steps += 1
        self.invalid += int(bool(info.get("invalid_action", False)))

    def finish(self, env, info, terminated):
        out = {k: float(info[k]) for k in self.KEYS if k in info}
        out["invalid_action_rate"] = self.invalid / max(self.steps, 1)
        return out


def _callbacks(env):
    from astrogym.experiments.callbacks import SchedulingMetricsCallback

    return [SchedulingMetricsCallback()]


def _throughput(env_id: str, quick: bool) -> str:
    from astrogym.experiments.bench_scheduling import bench_scheduling, scheduling_bench_table

    # astroplan's SequentialScheduler needs ~2 s per decision: fewer targets in a smoke run
    return "Median of 3.\n\n" + scheduling_bench_table(bench_scheduling(repeats=3,
                                                                         astroplan_targets=8 if quick else 15))


def plot_each_policy(env_id: str, out: Path, figure, file_prefix: str, title: str,
                     columns: tuple[tuple[str, Callable[[dict], str]], ...]) -> str:
    """Every benchmarked policy (but those the scenario leaves out of the main job) on the default scenario's first
    evaluation seed, ``figure(env.unwrapped)`` saved as ``out/{file_prefix}_{policy}.png``; returns a Markdown table
    of ``columns`` (header, cell of the episode's row) and the plot's file name, under ``title``."""
    from astrogym.agents.checkpoints import atomic_write_bytes
    from astrogym.agents.registry import policies_for
    from astrogym.experiments.evaluation import evaluate
    from astrogym.experiments.scenarios import get_scenario

    scenario = get_scenario(env_id, "default")
    headers = ["policy", *(h for h, _ in columns), "plot"]
    lines = [f"{title} of evaluation seed {scenario.eval_seeds[0]} (scenario {scenario.label}):\n",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]

    def plot(name: str, env, row: dict) -> None:
        buf = io.BytesIO()
        figure(env.unwrapped).savefig(buf, format="png")
        path = out / f"{file_prefix}_{name}.png"
        atomic_write_bytes(path, buf.getvalue())
        lines.append("| " + " | ".join([name, *(cell(row) for _, cell in columns), f"`{path.name}`"]) + " |")

    names = [p.name for p in policies_for(env_id, benchmark_only=True) if p.name not in scenario.skip_in_benchmark]
    evaluate(env_id, scenario, names, episodes=1, progress=False, after_episode=plot)
    return "\n".join(lines) + "\n"


def _report(env_id: str, out: Path, quick: bool, seed: int) -> str:
    """Each policy's schedule of the default scenario's first evaluation night, as PNGs (sky and timeline).

    The lunation study with the offline optimum's solver status and its LP bound is
    ``experiments.evaluate_scheduling.evaluate_scheduling`` (minutes per night set).
    """
    from astrogym.envs.scheduling.plots import schedule_figure

    return plot_each_policy(env_id, out, schedule_figure, "schedule", "Schedules",
                            (("return", lambda row: f"{row['return']:.3f}"),))


SCHEDULING = register_domain(Domain(
    name="scheduling",
    env_ids=SCHEDULING_IDS,
    metrics=(Metric("priority_weighted_completion", "priority-weighted completion", fmt=".3f", paired=True),
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
