"""Throughput benchmarks: ``astrogym bench ENV`` prints steps/s and ratios measured in one run.

For InterferometerLock-v0 three things step the same plant, seismic and sensor noise, and
reward filters:

* the env through ``gym.make`` (what an RL library sees, wrappers included);
* the raw numba kernel in a compiled loop (the physics alone);
* a per-sample SciPy reference that carries filter state between ``scipy.signal.sosfilt``
  calls, the way Lightsaber-style simulators step.

Each is timed ``repeats`` times; the median is reported, and ratios are taken from medians of
the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import gymnasium as gym
import numpy as np
import scipy.signal

import astrogym  # noqa: F401
from astrogym.envs.interferometer import kernels
from astrogym.envs.interferometer.plant import tf_to_cascade_ss, plant_tf, seismic_tf


def _timed(fn, steps: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = fn(steps)
        rates.append(done / (time.perf_counter() - t0))
    return float(np.median(rates))


class ScipyReferenceLoop:
    """The same loop stepped one sample at a time with SciPy filters and carried state."""

    def __init__(self, env: gym.Env, seed: int = 0):
        base = env.unwrapped
        cfg = base.config
        fs = cfg.sample_rate_hz
        stiffness = base.episode_parameters["stiffness_nm_per_rad"]
        self.plant = self._zoh_sos(plant_tf(cfg.suspension, stiffness), fs)
        self.seismic = self._zoh_sos(seismic_tf(), fs)
        self.filters = list(base.reward_filter_sections)
        self.states = [np.zeros((s.shape[0], 2)) for s in [self.plant, self.seismic, *self.filters]]
        self.coupling = cfg.seismic_coupling
        self.torque_limit = cfg.torque_limit_nm
        self.white_scale = np.sqrt(fs / 2.0)
        self.sensor_sigma = cfg.sensor_noise_rad * np.sqrt(fs / 2.0)
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _zoh_sos(tf, fs):
        # Through the well-conditioned cascade state space: the raw polynomial is too stiff.
        a, b, c = tf_to_cascade_ss(*tf)
        ad, bd, cd, dd, _ = scipy.signal.cont2discrete((a, b, c, np.zeros((1, 1))), 1.0 / fs, method="zoh")
        with warnings.catch_warnings():
            # ss2zpk warns about a numerically zero leading numerator coefficient; the resulting
            # sections match the env's plant response to 0.1% in magnitude (checked 0.2-20 Hz).
            warnings.simplefilter("ignore", scipy.signal.BadCoefficients)
            return scipy.signal.zpk2sos(*scipy.signal.ss2zpk(ad, bd, cd, dd))

    def step(self, action: float) -> float:
        zi = self.states
        w, n = self.rng.standard_normal(2)
        torque = action * self.torque_limit
        ground, zi[1] = scipy.signal.sosfilt(self.seismic, [w * self.white_scale], zi=zi[1])
        pitch, zi[0] = scipy.signal.sosfilt(self.plant, [torque + self.coupling * ground[0]], zi=zi[0])
        _, zi[2] = scipy.signal.sosfilt(self.filters[0], pitch, zi=zi[2])
        _, zi[3] = scipy.signal.sosfilt(self.filters[1], [torque], zi=zi[3])
        _, zi[4] = scipy.signal.sosfilt(self.filters[2], [torque], zi=zi[4])
        return pitch[0] + self.sensor_sigma * n


_COLD_START = """
import subprocess
import sys
import time
t0 = time.perf_counter()
import gymnasium as gym
env = gym.make("astrogym:{env_id}")
env.reset(seed=0)
env.step(env.action_space.sample())
print(time.perf_counter() - t0)
"""


def cold_start_seconds(env_id: str, repeats: int = 3) -> float:
    """Median wall time of import + ``make`` + ``reset`` + ``step`` in fresh processes (numba cache warm)."""
    code = _COLD_START.format(env_id=env_id)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fills the numba cache
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return float(np.median(times))


def bench_interferometer(steps: int = 200_000, repeats: int = 5, reference_steps: int = 5_000,
                         seed: int = 0) -> dict:
    """Median steps/s of the env, the raw kernel and the SciPy reference, with the ratios."""
    env = gym.make("astrogym/InterferometerLock-v0", episode_length_s=86400.0)
    env.reset(seed=seed)
    actions = (0.01 * np.random.default_rng(seed).standard_normal((steps, 1))).astype(np.float32)

    def run_env(n):
        step = env.step
        for k in range(n):
            step(actions[k])
        return n

    base = env.unwrapped

    def run_kernel(n):
        out = np.empty(n)
        return kernels.lock_rollout(*base.kernel_arguments(), actions[:n].astype(np.float64), out, out, out)

    reference = ScipyReferenceLoop(env, seed)

    def run_reference(n):
        for k in range(n):
            reference.step(float(actions[k, 0]))
        return n

    run_env(1000), run_kernel(1000), run_reference(100)  # warm caches and JIT
    result = {
        "env_steps_per_s": _timed(run_env, steps, repeats),
        "kernel_steps_per_s": _timed(run_kernel, steps, repeats),
        "scipy_reference_steps_per_s": _timed(run_reference, reference_steps, repeats),
    }
    result["env_vs_scipy"] = result["env_steps_per_s"] / result["scipy_reference_steps_per_s"]
    result["kernel_vs_env"] = result["kernel_steps_per_s"] / result["env_steps_per_s"]
    result["real_time_factor_env"] = result["env_steps_per_s"] / base.config.sample_rate_hz
    result["cold_start_s"] = cold_start_seconds("astrogym/InterferometerLock-v0")
    env.close()
    return result


def bench_table(result: dict) -> str:
    """Markdown table of a benchmark result."""
    rows = [("env through gym.make", result["env_steps_per_s"]),
            ("raw numba kernel", result["kernel_steps_per_s"]),
            ("SciPy per-sample reference", result["scipy_reference_steps_per_s"])]
    out = "| stepper | steps/s (median) |\n|---|---|\n"
    out += "".join(f"| {name} | {rate:,.0f} |\n" for name, rate in rows)
    out += (f"\nenv / SciPy reference: **{result['env_vs_scipy']:.1f}x**; kernel / env: "
            f"{result['kernel_vs_env']:.1f}x; env runs {result['real_time_factor_env']:.0f}x real time.\n"
            f"First import + make + reset + step in a fresh process (numba cache warm): "
            f"{result['cold_start_s']:.2f} s.\n")
    return out


BENCHMARKS = {"astrogym/InterferometerLock-v0": bench_interferometer}
