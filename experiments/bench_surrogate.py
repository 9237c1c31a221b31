"""Steps per second of a learned surrogate against the real env, measured in one run.

::

    python -m astrogym.experiments.bench_surrogate [--repeats 3]

For the lock (MLP ensemble) and the small AO preset on servo-lag-noise (convolutional ensemble, PO4AO's
5 members of 32 channels), it fits a model briefly (speed does not depend on its skill), then times the
real env stepping one copy and :class:`~astrogym.surrogates.surrogate_env.SurrogateVectorEnv` stepping
1, 64 and 256 copies, and prints the median of ``--repeats`` timings and the ratio to the real env.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import astrogym  # noqa: F401


def _steps_per_s(step, n_steps: int, copies: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    return copies * n_steps / (time.perf_counter() - t0)


def bench(repeats: int = 3) -> str:
    import torch

    from astrogym.agents.base import ZeroPolicy
    from astrogym.surrogates.dynamics import EnsembleDynamics
    from astrogym.surrogates.surrogate_env import SurrogateVectorEnv
    from astrogym.surrogates.transitions import ExplorationNoise, collect

    torch.set_num_threads(1)
    cases = {
        "InterferometerLock-v0 (MLP, 5 x 200-200-200)": (gym.make("astrogym/InterferometerLock-v0"), "mlp", 2000),
        "AdaptiveOpticsSmall-v0 servo-lag-noise (conv, 5 x 32-32)": (gym.make(
            "astrogym/AdaptiveOpticsSmall-v0", loop_rate_hz=500.0, loop_delay_frames=2, wind_speeds_mps=[35.0],
            wfs="diffractive", pixels_per_subaperture=6, guide_star_magnitude=12.0), "conv", 300),
    }
    lines = ["| env (model) | real env, 1 copy [steps/s] | surrogate 1 | surrogate 64 | surrogate 256 | "
             "256 copies / real |", "|---|---|---|---|---|---|"]
    for label, (env, member, frames) in cases.items():
        data = collect(env, ZeroPolicy(env.observation_space, env.action_space), frames, seed=0,
                       noise=ExplorationNoise("gaussian", 0.05))
        hidden = (200, 200, 200) if member == "mlp" else (32, 32)
        model = EnsembleDynamics.for_env(env, member=member, hidden=hidden).fit(data, epochs=1)
        action = env.action_space.sample() * 0.0
        env.reset(seed=0)
        real = np.median([_steps_per_s(lambda: env.step(action), 200, 1) for _ in range(repeats)])
        cells = []
        for n in (1, 64, 256):
            venv = SurrogateVectorEnv.from_env(env, model, data, num_envs=n, episode_steps=10**6)
            venv.reset(seed=0)
            acts = np.zeros((n, *env.action_space.shape), np.float32)
            steps = max(5, 2000 // n)
            cells.append(np.median([_steps_per_s(lambda: venv.step(acts), steps, n) for _ in range(repeats)]))
        lines.append(f"| {label} | {real:,.0f} | " + " | ".join(f"{c:,.0f}" for c in cells)
                     + f" | {cells[-1] / real:.1f}x |")
        env.close()
    return "\n".join(lines) + f"\n\nMedian of {repeats} timings on this machine, one torch thread.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astrogym.experiments.bench_surrogate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(bench(args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
