"""Evaluate policies on InterferometerLock: long closed-loop runs, ASDs, margins, Markdown tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import astrogym  # noqa: F401  (registers the ids)
from astrogym.agents.base import Policy
from astrogym.envs.interferometer import metrics

LOCK_ID = "astrogym/InterferometerLock-v0"


@dataclass
class LockRun:
    """Signals of one closed-loop run."""

    name: str
    pitch_rad: np.ndarray
    control_nm: np.ndarray
    rewards: np.ndarray
    terminated: bool


def run_lock(policy: Policy, env: gym.Env, seconds: float, seed: int, name: str = "",
             progress: bool = False) -> LockRun:
    """Run one episode of ``seconds`` (the env must allow that length) and record pitch and control."""
    fs = env.unwrapped.config.sample_rate_hz
    steps = int(round(seconds * fs))
    pitch = np.empty(steps)
    control = np.empty(steps)
    rewards = np.empty(steps)
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset()
    state, start = None, np.array([True])
    terminated = False
    k = 0
    for k in tqdm(range(steps), disable=not progress, desc=name or "run", unit="step", mininterval=0.5):
        action, state = policy.predict(obs, state=state, episode_start=start, deterministic=True)
        start[0] = False
        obs, rewards[k], terminated, truncated, info = env.step(action)
        pitch[k], control[k] = info["pitch_rad"], info["control_nm"]
        if terminated or truncated:
            k += 1
            break
    else:
        k = steps
    return LockRun(name, pitch[:k], control[:k], rewards[:k], bool(terminated))


def evaluate_lock(policies: dict[str, Callable[[gym.Env], Policy]], seconds: float = 300.0, seed: int = 0,
                  out_dir: str | Path | None = None, progress: bool = True, **config) -> dict:
    """Compare policies on the same seeded disturbance; returns rows, a Markdown table and the plot path.

    Every policy sees the identical seismic and sensor-noise realisation (same seed), so
    differences are the controllers' alone.
    """
    env = gym.make(LOCK_ID, episode_length_s=seconds, **config)
    cfg = env.unwrapped.config
    runs = {}
    for name, make_policy in policies.items():
        runs[name] = run_lock(make_policy(env), env, seconds, seed, name, progress)
    rows = []
    ref = runs.get("baseline")
    f_ref = a_ref = None
    if ref is not None and len(ref.control_nm) > 16:
        f_ref, a_ref = metrics.welch_asd(ref.control_nm, cfg.sample_rate_hz)
    for name, run in runs.items():
        row = {"policy": name, "seconds": len(run.pitch_rad) / cfg.sample_rate_hz, "terminated": run.terminated,
               "episode_return": float(np.sum(run.rewards)),
               "mean_reward": float(np.mean(run.rewards)) if len(run.rewards) else float("nan")}
        if len(run.pitch_rad) > 16 * cfg.sample_rate_hz:
            row.update(metrics.loop_metrics(run.pitch_rad, run.control_nm, cfg.sample_rate_hz, cfg.torque_limit_nm))
            if a_ref is not None:
                f, a = metrics.welch_asd(run.control_nm, cfg.sample_rate_hz)
                in_band = metrics.band_rms(f, a, *metrics.IN_BAND_HZ)
                # A policy that injects nothing (open loop) has an infinite reduction.
                row["in_band_reduction_vs_baseline"] = (metrics.band_rms(f_ref, a_ref, *metrics.IN_BAND_HZ) / in_band
                                                        if in_band > 0 else float("inf"))
        rows.append(row)
    result = {"rows": rows, "table": lock_table(rows), "runs": runs, "config": cfg}
    if out_dir is not None:
        long_runs = {n: (r.pitch_rad, r.control_nm) for n, r in runs.items() if len(r.pitch_rad) > 16 * cfg.sample_rate_hz}
        result["plot"] = metrics.plot_asds(long_runs, cfg.sample_rate_hz, Path(out_dir) / "interferometer_asd.png",
                                           title=f"InterferometerLock-v0, {cfg.mode} mode, "
                                                 f"{cfg.arm_power_w / 1e3:.0f} kW, {seconds:.0f} s")
    env.close()
    return result


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def lock_table(rows: list[dict]) -> str:
    """Markdown table of evaluation rows."""
    cols = ["policy", "control_rms_10_30hz_nm", "pitch_rms_below_3hz_rad", "actuator_rms_fraction",
            "in_band_reduction_vs_baseline", "episode_return", "mean_reward", "terminated", "seconds"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |\n" for r in rows)


def margins_table(rows: list[dict]) -> str:
    """Markdown table of :meth:`LoopShapingController.margins` rows."""
    head = ("| arm power [kW] | gain margin | phase margin [deg] | stability margin | UGF [Hz] | closed-loop stable |\n"
            "|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['arm_power_w'] / 1e3:.0f} | {r['gain_margin']:.2f} ({20 * np.log10(r['gain_margin']):.1f} dB) | "
        f"{r['phase_margin_deg']:.1f} | {r['stability_margin']:.2f} | {r['ugf_hz']:.2f} | "
        f"{'yes' if r['closed_loop_stable'] else 'NO'} |\n" for r in rows)
