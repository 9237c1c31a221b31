"""RLlib scaling on this machine: env-runner sampling throughput at 1, 2 and 4 runners, and the learner's.

    python -m astrogym.experiments.bench_rllib [--env ENV] [--runners 1 2 4] [--steps 2000] [--repeats 5] [--vector 8]

Each runner count builds the env's RLlib PPO (the shipped ``rllib_ppo.yml`` entry) on a local Ray
with that many env runners, then times ``sample(num_timesteps=steps)`` on all runners at once
(the module acting with exploration, as in training), ``repeats`` times after a warm-up; the table
gives the median environment steps per second of the whole round. The learner row times
``algo.train()``'s learner update on the shipped batch (``train_batch_size_per_learner`` steps,
``num_epochs`` passes) in the driver. The first row is the bare env in one process with random
actions, the ceiling one runner could reach; the last sampling row gives each runner ``--vector`` envs
(``num_envs_per_env_runner``), one batched forward pass per step of all of them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym

import astrogym  # noqa: F401  (registers the ids)
from astrogym.experiments import rllib_config
from astrogym.experiments.scenarios import get_scenario


def env_alone(env_id: str, env_kwargs: dict, steps: int, repeats: int) -> float:
    """Median steps/s of the bare env with random actions in this process."""
    env = gym.make(env_id, **env_kwargs)
    env.action_space.seed(0)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - t))
    env.close()
    return statistics.median(rates)


def _algo(env_id: str, env_kwargs: dict, runners: int, envs_per_runner: int = 1):
    entry = rllib_config.resolve(env_id, "ppo", None, [])
    entry["num_env_runners"], entry["num_envs_per_env_runner"] = runners, envs_per_runner
    probe = gym.make(env_id, **env_kwargs)
    algo = rllib_config.build_config(env_id, "ppo", entry, env_kwargs, 0, probe).build_algo()
    probe.close()
    return algo, entry


def sampling(env_id: str, env_kwargs: dict, runners: int, steps: int, repeats: int,
             envs_per_runner: int = 1) -> tuple[float, float]:
    """Median and spread (min-max / 2) of env steps/s of one parallel ``sample`` round over ``runners`` runners."""
    algo, _ = _algo(env_id, env_kwargs, runners, envs_per_runner)
    group = algo.env_runner_group
    try:
        group.foreach_env_runner(lambda er: er.sample(num_timesteps=64), local_env_runner=False)  # warm-up
        rates = []
        for _ in range(repeats):
            t = time.perf_counter()
            counts = group.foreach_env_runner(lambda er: sum(len(e) for e in er.sample(num_timesteps=steps)),
                                              local_env_runner=False)
            rates.append(sum(counts) / (time.perf_counter() - t))
    finally:
        algo.stop()
    return statistics.median(rates), (max(rates) - min(rates)) / 2


def learner(env_id: str, env_kwargs: dict, repeats: int) -> tuple[float, float, dict]:
    """Median env steps/s of the learner update and of whole training iterations (2 runners, shipped batch)."""
    from ray.rllib.utils.metrics import LEARNER_UPDATE_TIMER, TIMERS, TRAINING_ITERATION_TIMER

    algo, entry = _algo(env_id, env_kwargs, 2)
    try:
        algo.train()  # warm-up (first update builds the optimiser)
        update, iteration = [], []
        for _ in range(repeats):
            result = algo.train()
            batch = int(result["env_runners"]["num_env_steps_sampled"])
            update.append(batch / result[TIMERS][LEARNER_UPDATE_TIMER])
            iteration.append(batch / result[TIMERS][TRAINING_ITERATION_TIMER])
    finally:
        algo.stop()
    return statistics.median(update), statistics.median(iteration), entry


def table(env_id: str, runner_counts: list[int], steps: int, repeats: int, vector: int = 8) -> str:
    import ray
    import torch

    torch.set_num_threads(1)
    env_kwargs = dict(get_scenario(env_id, "default").played_env_kwargs)
    rllib_config.warm_kernels_once(env_id, env_kwargs)
    rows = [f"| bare env, 1 process, random actions | {env_alone(env_id, env_kwargs, steps, repeats):,.0f} | - |"]
    ray.init(num_cpus=max(max(runner_counts), os.cpu_count() or 1), include_dashboard=False, logging_level="ERROR")
    try:
        base = None
        for n in runner_counts:
            median, spread = sampling(env_id, env_kwargs, n, steps, repeats)
            base = base or median / n
            rows.append(f"| sampling, {n} env runner{'s' if n > 1 else ''} | {median:,.0f} +- {spread:,.0f} | "
                        f"{median / base / n:.2f} |")
        if vector > 1:  # the env runner's per-step overhead (connectors, one forward pass) amortised over K envs
            median, spread = sampling(env_id, env_kwargs, 2, steps, repeats, envs_per_runner=vector)
            rows.append(f"| sampling, 2 env runners x {vector} envs each | {median:,.0f} +- {spread:,.0f} | "
                        f"{median / base / 2:.2f} |")
        update, iteration, entry = learner(env_id, env_kwargs, max(3, repeats // 2))
        rows.append(f"| learner update ({entry['train_batch_size_per_learner']} steps x {entry['num_epochs']} epochs, "
                    f"minibatch {entry['minibatch_size']}) | {update:,.0f} | - |")
        rows.append(f"| whole training iteration, 2 env runners | {iteration:,.0f} | - |")
    finally:
        ray.shutdown()
    head = ("| what | env steps/s (median of repeats) | efficiency per runner |\n|---|---|---|")
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="astrogym/InterferometerLock-v0")
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=2000, help="steps per runner per sample round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vector", type=int, default=8,
                        help="also 2 runners with this many envs each (num_envs_per_env_runner; 1: skip)")
    args = parser.parse_args(argv)
    for n in args.runners:
        if n < 1:
            raise SystemExit(f"--runners {n}; allowed >= 1")
    t0 = time.perf_counter()
    text = table(args.env, args.runners, args.steps, args.repeats, args.vector)
    print(f"## {args.env}: RLlib throughput on {os.cpu_count()} CPUs ({args.steps} steps per runner per round, "
          f"{args.repeats} repeats; {time.perf_counter() - t0:.0f} s)\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
