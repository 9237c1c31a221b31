"""False-alarm and detection rates of the OOD detector on the interferometer lock, under injected faults.

``python -m astrogym.experiments.shield_lock [--fit-episodes 6] [--eval-episodes 4]`` fits an
:class:`~astrogym.surrogates.shield.OODDetector` (features :func:`~astrogym.surrogates.shield.lock_features`)
on normal operation of the loop-shaping baseline from training seeds, calibrates it to 1% on other
training seeds, then reports on evaluation seeds (from 1,000,000): the false-alarm rate in normal
operation, and per fault the alarm rate before the fault, in its window (plus 0.5 s) and after it.
"""

from __future__ import annotations

import argparse
import warnings

import gymnasium as gym
import numpy as np

ENV_ID = "astrogym/InterferometerLock-v0"
EPISODE_S, START_S, DURATION_S = 8.0, 4.0, 1.0
FAULTS = {"seismic_burst": {"fault_seismic_factor": 30.0}, "sensor_glitch": {"fault_glitch_rad": 2e-9}}


def _episodes(fault: str, seeds, **kw) -> tuple[list[np.ndarray], np.ndarray]:
    """Observations of the baseline's episodes and each one's time (s) since its episode started."""
    from astrogym.agents.registry import PolicyContext, make_policy

    def make(**o):
        return gym.make(ENV_ID, **{**dict(fault=fault, episode_length_s=EPISODE_S, fault_start_s=START_S,
                                          fault_duration_s=DURATION_S), **kw, **o})

    env = make()
    policy = make_policy("baseline", PolicyContext(env=env, make_env=make))
    fs = env.unwrapped.config.sample_rate_hz
    observations, times = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        k = 0
        while True:
            observations.append(obs)
            times.append(k / fs)
            action, _ = policy.predict(obs, episode_start=np.array([k == 0]))  # clears the controller's state
            obs, _, terminated, truncated, _ = env.step(action)
            k += 1
            if terminated or truncated:
                break
    return observations, np.asarray(times)


def main(argv: list[str] | None = None) -> int:
    import torch

    from astrogym.surrogates.shield import OODDetector, lock_features

    p = argparse.ArgumentParser(prog="python -m astrogym.experiments.shield_lock", description=__doc__)
    p.add_argument("--fit-episodes", type=int, default=6)
    p.add_argument("--eval-episodes", type=int, default=4)
    p.add_argument("--rate", type=float, default=0.01, help="false-alarm rate to calibrate to")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    fit, _ = _episodes("none", range(args.fit_episodes))
    held, _ = _episodes("none", range(100, 100 + args.fit_episodes))  # training range, not evaluation seeds
    detector = OODDetector(lock_features, transforms=2, hidden=(32, 32)).fit(fit[::2], epochs=30)
    threshold = detector.calibrate(held[::2], args.rate)
    eval_seeds = range(1_000_000, 1_000_000 + args.eval_episodes)
    normal, _ = _episodes("none", eval_seeds)
    print(f"| condition | alarms before the fault | in the fault window (+0.5 s) | after |\n|---|---|---|---|\n"
          f"| normal operation (calibrated to {args.rate:.0%}) | {np.mean(detector.score(normal) < threshold):.1%} "
          f"| | |")
    for fault, kw in FAULTS.items():
        obs, t = _episodes(fault, eval_seeds, **kw)
        alarm = detector.score(obs) < threshold
        window = (t >= START_S) & (t < START_S + DURATION_S + 0.5)
        print(f"| {fault} {kw} | {alarm[t < START_S].mean():.1%} | {alarm[window].mean():.1%} | "
              f"{alarm[t >= START_S + DURATION_S + 0.5].mean():.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
