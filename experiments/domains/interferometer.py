"""InterferometerLock-v0 in the experiment layer: lock metrics, the TensorBoard callback, bench and report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astrogym.agents.registry import LOCK_IDS, PolicyContext, make_policy, policies_for
from astrogym.experiments.registry import Domain, Metric, register_domain


class LockRecorder:
    """Pitch and torque of one episode -> 10-30 Hz control RMS, pitch RMS below 3 Hz, lock lost."""

    def reset(self, env, info):
        self.fs = env.unwrapped.config.sample_rate_hz
        self.torque_limit = env.unwrapped.config.torque_limit_nm
        self.pitch, self.control = [], []

    def step(self, reward, info):
        self.pitch.append(info["pitch_rad"])
        self.control.append(info["control_nm"])

    def finish(self, env, info, terminated):
        from astrogym.envs.interferometer import metrics

        out = {"lock_lost": float(terminated)}
        if len(self.pitch) >= self.fs:  # a second resolves both bands
            m = metrics.loop_metrics(np.asarray(self.pitch), np.asarray(self.control), self.fs, self.torque_limit)
            out.update(control_rms_10_30hz_nm=m["control_rms_10_30hz_nm"],
                       pitch_rms_below_3hz_rad=m["pitch_rms_below_3hz_rad"])
        return out


def _callbacks(env):
    from astrogym.experiments.callbacks import LockMetricsCallback

    return [LockMetricsCallback(sample_rate_hz=env.unwrapped.config.sample_rate_hz)]


def _throughput(env_id: str, quick: bool) -> str:
    from astrogym.experiments.bench import bench_interferometer, bench_table

    repeats = 5
    return f"Median of {repeats}.\n\n" + bench_table(bench_interferometer(steps=20_000 if quick else 200_000,
                                                                          repeats=repeats))


def _report(env_id: str, out: Path, quick: bool, seed: int) -> str:
    """A long closed-loop run of every benchmarked policy: ASDs, in-band noise; margins of the linear ones."""
    import gymnasium as gym

    from astrogym.experiments.evaluate import evaluate_lock, margins_table

    seconds = 30.0 if quick else 120.0  # 120 s: 0.03 Hz resolution of the ASDs, and a learned policy steps ~10x slower than a filter
    names = [p.name for p in policies_for(env_id, benchmark_only=True)]
    makers = {name: (lambda env, n=name: make_policy(n, PolicyContext(env, lambda **kw: gym.make(env_id, **kw))))
              for name in names}
    result = evaluate_lock(makers, seconds=seconds, seed=seed, out_dir=out)
    powers = [300e3, 350e3, 400e3, 450e3, 500e3]
    text = (f"Long closed loop: {seconds:.0f} s, seed {seed}, hard mode, 400 kW.\n\n{result['table']}\n"
            f"ASD plot: `{Path(result['plot']).name}`\n")
    for name in names:  # linear controllers have margins; learned and open-loop policies do not
        policy = makers[name](gym.make(env_id))
        if hasattr(policy, "margins"):
            text += f"\n#### {name}: margins over arm power\n\n{margins_table(policy.margins(powers))}"
    return text


INTERFEROMETER = register_domain(Domain(
    name="interferometer",
    env_ids=LOCK_IDS,
    metrics=(Metric("control_rms_10_30hz_nm", "10-30 Hz control RMS [N m]", higher_is_better=False, paired=True),
             Metric("pitch_rms_below_3hz_rad", "pitch RMS < 3 Hz [rad]", higher_is_better=False),
             Metric("lock_lost", "lock lost (fraction)", higher_is_better=False, fmt=".2f")),
    recorder=lambda env: LockRecorder(),
    default_algo="ppo",
    reference_policy="baseline",
    training_callbacks=_callbacks,
    throughput=_throughput,
    report=_report,
))
