"""TelescopeNetwork-v0 in the experiment layer: network metrics, the TensorBoard callback, bench and report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astrogym.agents.registry import NETWORK_IDS
from astrogym.experiments.domains.scheduling import ScheduleRecorder, plot_each_policy
from astrogym.experiments.registry import Domain, Metric, register_domain

_FINAL_KEYS = ("priority_weighted_completion", "toos_arrived", "toos_served", "too_mean_latency_s", "duplicates",
               "open_shutter_fraction", "completed_visits")


class NetworkRecorder(ScheduleRecorder):
    """The single-site recorder's metrics with the network's keys, plus the ToO service rate and each telescope's
    open-shutter fraction (``open_shutter_<k>``)."""

    KEYS = _FINAL_KEYS

    def finish(self, env, info, terminated):
        out = super().finish(env, info, terminated)
        arrived = out.get("toos_arrived", 0.0)
        # a night without ToOs has no service rate: NaN, left out of the means
        out["too_served_fraction"] = out.get("toos_served", 0.0) / arrived if arrived else float("nan")
        for k, value in enumerate(np.asarray(info.get("open_shutter_per_telescope", [])).ravel()):
            out[f"open_shutter_{k}"] = float(value)
        return out


def _callbacks(env):
    from astrogym.experiments.callbacks import NetworkMetricsCallback

    return [NetworkMetricsCallback()]


def _throughput(env_id: str, quick: bool) -> str:
    from astrogym.experiments.bench_network import bench_network, network_bench_table

    steps = 3_000 if quick else 20_000
    return "Median of 3, random allowed actions, `env.step` alone timed.\n\n" + network_bench_table(
        bench_network(n_targets=500, steps=steps, repeats=3))


def _report(env_id: str, out: Path, quick: bool, seed: int) -> str:
    """Each policy's timelines (one lane per telescope) on the default scenario's first evaluation night, as PNGs."""
    from astrogym.envs.network.plots import timeline_figure

    return plot_each_policy(env_id, out, timeline_figure, "network_timeline", "Timelines", (
        ("return", lambda row: f"{row['return']:.3f}"),
        ("ToOs served", lambda row: f"{row.get('toos_served', 0):.0f}/{row.get('toos_arrived', 0):.0f}"),
        ("duplicates", lambda row: f"{row.get('duplicates', 0):.0f}")))


NETWORK = register_domain(Domain(
    name="network",
    env_ids=NETWORK_IDS,
    metrics=(Metric("priority_weighted_completion", "priority-weighted completion", fmt=".3f", paired=True),
             Metric("too_served_fraction", "ToOs served in time (fraction)", fmt=".2f"),
             Metric("too_mean_latency_s", "ToO latency [s]", higher_is_better=False, fmt=".0f"),
             Metric("duplicates", "duplicate exposures", higher_is_better=False, fmt=".1f"),
             Metric("open_shutter_fraction", "open-shutter fraction", fmt=".3f"),
             Metric("completed_visits", "completed visits", fmt=".1f")),
    recorder=lambda env: NetworkRecorder(),
    default_algo="maskable_ppo",
    reference_policy="coordinated-greedy",
    training_callbacks=_callbacks,
    throughput=_throughput,
    report=_report,
))
