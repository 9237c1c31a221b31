"""The ``astrogym`` command.

    astrogym list [--config]          ids, one-line summaries, spaces (and every config key)
    astrogym bench ENV                environment throughput against a peer (SciPy, HCIPy), measured in one run
    astrogym evaluate ENV             closed-loop evaluation against the baseline; Markdown table + PNG
                                      (scheduling: the baselines on seeded nights, gap to the offline optimum)
    astrogym benchmark                the main job: bench + baseline evaluation of every env
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import astrogym
from astrogym.envs import ENV_SPECS


def _known_env(name: str) -> str:
    ids = [s.id for s in ENV_SPECS]
    if name not in ids:
        raise SystemExit(f"astrogym: unknown environment {name!r}; known: {', '.join(ids)}")
    return name


def describe_space(space: gym.spaces.Space) -> str:
    """One line for a space; a Box's bounds as a range instead of every element."""
    if isinstance(space, gym.spaces.Box):
        lo, hi = float(space.low.min()), float(space.high.max())
        uniform = bool(np.all(space.low == lo) and np.all(space.high == hi))
        return f"Box{space.shape} {space.dtype}, values in [{lo:g}, {hi:g}]" + ("" if uniform else " (per element)")
    if isinstance(space, gym.spaces.Dict):
        parts = "\n".join(f"        {key}: {describe_space(sub)}" for key, sub in space.spaces.items())
        return f"Dict of\n{parts}"
    return str(space)


def cmd_list(args) -> int:
    for spec in ENV_SPECS:
        env = gym.make(spec.id)
        print(f"{spec.id}\n    {spec.summary}\n    observation: {describe_space(env.observation_space)}\n"
              f"    action:      {describe_space(env.action_space)}")
        if args.config:
            for name, default, allowed, doc in type(env.unwrapped.config).describe():
                print(f"      {name} = {default!r}  {allowed}\n          {doc}")
        env.close()
    return 0


def _ao_throughput(frames: int, repeats: int, hcipy_frames: int = 20) -> tuple[str, object]:
    from astrogym.experiments.bench_ao import ao_bench_table, bench_adaptive_optics

    rows = bench_adaptive_optics(frames=frames, hcipy_frames=hcipy_frames, repeats=repeats)
    return ao_bench_table(rows), rows


def _lock_throughput(steps: int, repeats: int) -> tuple[str, object]:
    from astrogym.experiments.bench import bench_interferometer, bench_table

    result = bench_interferometer(steps=steps, repeats=repeats)
    return bench_table(result), result


def _scheduling_throughput(repeats: int) -> tuple[str, object]:
    from astrogym.experiments.bench_scheduling import bench_scheduling, scheduling_bench_table

    result = bench_scheduling(repeats=repeats)
    return scheduling_bench_table(result), result


SCHEDULING_POLICIES = ["random", "greedy", "astroplan-priority", "optimum"]


def _scheduling_report(policies: list[str], nights: int, seed: int, out: Path, time_limit_s: float) -> str:
    from astrogym.experiments.evaluate_scheduling import evaluate_scheduling

    r = evaluate_scheduling(policies, nights=nights, seed=seed, out_dir=out, optimum_time_limit_s=time_limit_s)
    kw = ", ".join(f"{k}={v}" for k, v in r["env_kwargs"].items())
    plots = ", ".join(f"`{p}`" for p in r["plots"])
    return (f"## astrogym/TelescopeScheduling-v0: {nights} seeded nights from 2026-12-15 every 3 days ({kw}), "
            f"seeds {seed}-{seed + nights - 1}\n\n{r['table']}\nSchedule plots (first night): {plots}\n")


def cmd_bench(args) -> int:
    env_id = _known_env(args.env)
    if env_id.startswith("astrogym/TelescopeScheduling"):
        text, data = _scheduling_throughput(min(args.repeats, 3))
        print(f"## {env_id} throughput (median of {min(args.repeats, 3)})\n")
        print(text)
        if args.json:
            print(json.dumps(data, indent=2))
        return 0
    if env_id.startswith("astrogym/AdaptiveOptics"):
        text, data = _ao_throughput(args.steps or 300, args.repeats)
    else:
        text, data = _lock_throughput(args.steps or 200_000, args.repeats)
    print(f"## {env_id} throughput (median of {args.repeats})\n")
    print(text)
    if args.json:
        print(json.dumps(data, indent=2))
    return 0


def _lock_report(seconds: float, seed: int, policies: list[str], out: Path, powers) -> str:
    from astrogym.agents import LoopShapingController
    from astrogym.experiments.evaluate import evaluate_lock, load_policy, margins_table

    makers = {name: (lambda env, n=name: load_policy(n, env)) for name in policies}
    result = evaluate_lock(makers, seconds=seconds, seed=seed, out_dir=out)
    baseline = LoopShapingController(result["config"])
    text = (f"## astrogym/InterferometerLock-v0: {seconds:.0f} s closed loop, seed {seed}\n\n{result['table']}\n"
            f"ASD plot: `{result['plot']}`\n\n### Loop-shaping baseline margins over arm power\n\n"
            f"{margins_table(baseline.margins(powers))}")
    return text


def _ao_report(env_ids, frames: int, seed: int, out: Path) -> str:
    from astrogym.experiments.evaluate_ao import ao_table, evaluate_integrator

    results = []
    for e in env_ids:
        integrator = evaluate_integrator(e, frames=frames, seed=seed, out_dir=out)
        # the predictive row reuses the tuned gain for its budget column instead of tuning again
        results += [integrator, evaluate_integrator(e, frames=frames, seed=seed, out_dir=out,
                                                    gain=integrator["row"]["gain"], controller="predictive")]
    plots = ", ".join(f"`{r['plot']}`" for r in results)
    return (f"## Adaptive optics: leaky integrator (gain tuned on another seed) and linear predictive controller "
            f"(fitted on another seed), {frames} frames, seed {seed}\n\n"
            f"{ao_table([r['row'] for r in results])}\nPSF plots: {plots}\n")


def cmd_evaluate(args) -> int:
    env_id = _known_env(args.env)
    out = Path(args.out)
    if env_id.startswith("astrogym/TelescopeScheduling"):
        policies = SCHEDULING_POLICIES if args.policy == ["baseline", "zero"] else args.policy
        text = _scheduling_report(policies, args.nights, args.seed, out, args.time_limit)
        print(text)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.md").write_text(text)
        return 0
    if env_id.startswith("astrogym/AdaptiveOptics"):
        text = _ao_report([env_id], 3000 if args.frames is None else args.frames, args.seed, out)
        print(text)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.md").write_text(text)
        return 0
    text = _lock_report(args.seconds, args.seed, args.policy, out, [300e3, 400e3, 500e3])
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.md").write_text(text)
    return 0


def cmd_benchmark(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps, seconds, frames = (20_000, 60.0, 500) if args.quick else (200_000, 300.0, 3000)
    parts = [f"# astrogym benchmark (astrogym {astrogym.__version__})\n"]
    parts.append(_lock_report(seconds, args.seed, ["baseline", "zero"], out, [300e3, 350e3, 400e3, 450e3, 500e3]))
    parts.append("### Throughput (median of 5)\n\n" + _lock_throughput(steps, 5)[0])
    parts.append(_ao_report(["astrogym/AdaptiveOpticsSmall-v0", "astrogym/AdaptiveOptics-v0"], frames, args.seed,
                            out))
    parts.append("### Adaptive-optics throughput (median of 3; HCIPy only where installed)\n\n"
                 + _ao_throughput(100 if args.quick else 300, 3, 5 if args.quick else 20)[0])
    parts.append(_scheduling_report(SCHEDULING_POLICIES, 2 if args.quick else 10, args.seed, out,
                                    5.0 if args.quick else 30.0))
    parts.append("### Scheduling throughput (median of 3)\n\n" + _scheduling_throughput(3)[0])
    text = "\n".join(parts)
    print(text)
    (out / "benchmark.md").write_text(text)
    print(f"\nwritten: {out / 'benchmark.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="astrogym", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="environment ids, summaries and spaces")
    p.add_argument("--config", action="store_true", help="also print every config key with its range")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("bench", help="environment throughput")
    p.add_argument("env")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per timing (default 200,000; frames for adaptive optics, default 300)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("evaluate", help="closed-loop evaluation of policies against the baseline")
    p.add_argument("env")
    p.add_argument("--policy", action="append", default=None,
                   help="'baseline', 'zero' or an SB3 .zip; scheduling: random, greedy, astroplan-priority, "
                        "astroplan-sequential, optimum; repeatable (default: every baseline)")
    p.add_argument("--seconds", type=float, default=300.0, help="interferometer: simulated seconds")
    p.add_argument("--frames", type=int, default=None, help="adaptive optics: frames (default 3000)")
    p.add_argument("--nights", type=int, default=10, help="scheduling: seeded nights (default 10)")
    p.add_argument("--time-limit", type=float, default=30.0,
                   help="scheduling: CP-SAT time limit per night for the offline optimum, s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("benchmark", help="the main job: every env's baseline evaluation and throughput")
    p.add_argument("--quick", action="store_true", help="short runs (a smoke test of the whole job)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    p.set_defaults(func=cmd_benchmark)
    args = parser.parse_args(argv)
    if getattr(args, "policy", "") is None:
        args.policy = ["baseline", "zero"]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
