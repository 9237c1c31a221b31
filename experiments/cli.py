"""The ``astrogym`` command.

    astrogym list [--config] [--scenarios] [--policies]   ids, spaces, config keys, scenarios, policies
    astrogym bench ENV                                    env throughput against a peer, measured in one run
    astrogym evaluate ENV [--policy P ...] [--scenario S] [--episodes K] [--json OUT] [--report]
                                                          policies on a scenario's held-out seeds, 95% intervals
    astrogym train ENV [--algo A] [--config F.yml] [--timesteps N] [--seed S] [--n-envs K] [--run-dir D]
                       [--resume RUN_DIR] [--eval-freq N] [--device cpu|cuda|auto] [--hp key=value ...]
                       [--backend sb3|rllib] [--num-env-runners N] [--address HEAD:PORT]
    astrogym plot RUN_DIR [RUN_DIR ...]                   training curves (several seeds with a band) as PNG
    astrogym benchmark [--quick]                          the main job: every registered policy on every scenario

Every command asks the experiment registry (``experiments/registry.py``) and the policy registry
(``agents/registry.py``) about an env: nothing here is specific to one env. Errors in what the
user asked for print one line naming the thing and what is allowed, and exit with status 2.
Set ``ASTROGYM_TRACEBACK=1`` for the full traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import astrogym  # noqa: F401  (registers the ids)
from astrogym.envs import ENV_SPECS
from astrogym.experiments import registry
from astrogym.experiments.scenarios import get_scenario, scenarios_for


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


def _summary(env_id: str) -> str:
    """The one-line summary of a shipped id; the entry point of an id registered elsewhere."""
    for s in ENV_SPECS:
        if s.id == env_id:
            return s.summary
    entry = gym.registry[env_id].entry_point
    return entry if isinstance(entry, str) else getattr(entry, "__name__", "")


def cmd_list(args) -> int:
    from astrogym.agents.registry import policies_for

    for env_id in registry.env_ids():
        env = gym.make(env_id)
        print(f"{env_id}\n    {_summary(env_id)}\n    observation: {describe_space(env.observation_space)}\n"
              f"    action:      {describe_space(env.action_space)}")
        config = getattr(env.unwrapped, "config", None)
        if args.config and hasattr(type(config), "describe"):
            for name, default, allowed, doc in type(config).describe(config):  # this id's defaults
                print(f"      {name} = {default!r}  {allowed}\n          {doc}")
        if args.scenarios:
            for s in scenarios_for(env_id).values():
                print(f"    scenario {s.label}: {s.summary}\n        training seeds {s.train_seeds[0]}-"
                      f"{s.train_seeds[1]}, evaluation seeds {s.eval_seeds[0]}-{s.eval_seeds[-1]} "
                      f"({len(s.eval_seeds)})")
        if args.policies:
            for p in policies_for(env_id):
                print(f"    policy {p.name}: {p.summary}")
        env.close()
    return 0


def cmd_bench(args) -> int:
    domain = registry.get_domain(args.env)
    if args.num_envs is not None:
        from astrogym.experiments import bench_vector

        sizes = bench_vector.parse_sizes(args.num_envs, args.env)
        rows = bench_vector.bench(args.env, sizes, seconds=0.5 if args.quick else 2.0, repeats=1 if args.quick else 3)
        print(f"## {args.env} vector throughput (copy-steps/s, medians)\n\n{bench_vector.table(rows)}")
        return 0
    if args.networks:
        from astrogym.experiments.bench_gnn import bench, table

        steps = 1024 if args.quick else 2048
        print(f"## {args.env} networks\n\n{table(bench(steps), steps, 1)}")
        return 0
    if args.training:
        from astrogym.experiments.bench_training import training_steps_per_s, training_table

        steps = args.training_steps or (2_000 if args.quick else 20_000)
        rows = [training_steps_per_s(args.env, args.algo, steps=steps, scenario=args.scenario)]
        if args.config:  # the configured policy beside the shipped default, in the same run
            rows.append(training_steps_per_s(args.env, args.algo, steps=steps, config_file=args.config,
                                             scenario=args.scenario))
        print(f"## {args.env} training throughput ({rows[0]['steps']} steps)\n\n{training_table(rows)}")
        return 0
    if domain.throughput is None:
        raise ValueError(f"{args.env} has no throughput bench")
    print(f"## {args.env} throughput\n\n{domain.throughput(args.env, args.quick)}")
    return 0


def _torch_threads(n: int) -> None:
    """Policies act on one observation at a time: extra intra-op threads only contend (10x slower on 2 busy cores)."""
    import torch

    if n < 1:
        raise ValueError(f"--torch-threads {n}; allowed >= 1")
    torch.set_num_threads(n)


def cmd_evaluate(args) -> int:
    from astrogym.agents.registry import policies_for
    from astrogym.experiments.evaluation import evaluate, section, write_evaluation

    _torch_threads(args.torch_threads)

    domain = registry.get_domain(args.env)
    scenario = get_scenario(args.env, args.scenario)
    policies = args.policy or [p.name for p in policies_for(args.env, benchmark_only=True)
                               if p.name not in scenario.skip_in_benchmark]
    result = evaluate(args.env, scenario, policies, episodes=args.episodes, quick=args.quick)
    path = write_evaluation(result, args.out, args.json)
    print(section(result))
    if args.report and domain.report is not None:
        folder = Path(args.out) / args.env.split("/")[-1]
        text = domain.report(args.env, folder, args.quick, args.seed)
        print(text)
        from astrogym.agents.checkpoints import atomic_write_bytes

        atomic_write_bytes(folder / "report.md", text.encode())
    print(f"written: {path}")
    return 0


def cmd_train(args, argv: list[str]) -> int:
    from astrogym.experiments import training

    command = "astrogym " + shlex.join(argv)
    if args.backend == "rllib" or (args.resume and _is_rllib_run(args.resume)):
        return _train_rllib(args, command)
    if args.num_env_runners is not None or args.address is not None:
        raise ValueError("--num-env-runners and --address need --backend rllib")
    if args.resume:
        run_dir = training.run(args.resume, resume=True, progress=not args.no_progress, command=command)
    else:
        if args.env is None:
            raise ValueError("train needs an env id (or --resume RUN_DIR)")
        folder = training.prepare_run(args.env, args.algo, config_file=args.config, timesteps=args.timesteps,
                                      seed=args.seed, n_envs=args.n_envs, run_dir=args.run_dir,
                                      runs_root=args.runs_root, eval_freq=args.eval_freq,
                                      eval_episodes=args.eval_episodes, checkpoint_freq=args.checkpoint_freq,
                                      device=args.device, hp=args.hp, scenario=args.scenario, command=command,
                                      vectorised=args.vectorised)
        print(f"run folder: {folder}")
        run_dir = training.run(folder, progress=not args.no_progress)
    status = training.update_status(Path(run_dir))
    print(f"{run_dir}: {status.get('state')} at {status.get('num_timesteps')} steps, "
          f"{status.get('training_sps', '-')} steps/s; best held-out mean return {status.get('best_mean_return', '-')}")
    return 0


def _is_rllib_run(run_dir: str) -> bool:
    from astrogym.agents.rllib_policy import is_rllib_run

    return is_rllib_run(run_dir)


def _train_rllib(args, command: str) -> int:
    """``train --backend rllib`` (experiments/rllib_backend.py); a resumed RLlib run needs no --backend."""
    from astrogym.experiments import rllib_backend, training

    if args.num_env_runners is not None:
        rllib_backend.check_num_env_runners(args.num_env_runners)
    if args.n_envs is not None:
        raise ValueError("--n-envs with --backend rllib; allowed: --num-env-runners N (and --hp "
                         "num_envs_per_env_runner=K for several envs per runner)")
    if args.resume:
        run_dir = rllib_backend.run(args.resume, resume=True, progress=not args.no_progress, command=command,
                                    address=args.address)
    else:
        if args.env is None:
            raise ValueError("train needs an env id (or --resume RUN_DIR)")
        folder = rllib_backend.prepare_run(args.env, args.algo, config_file=args.config, timesteps=args.timesteps,
                                           seed=args.seed, num_env_runners=args.num_env_runners,
                                           run_dir=args.run_dir, runs_root=args.runs_root, eval_freq=args.eval_freq,
                                           eval_episodes=args.eval_episodes, checkpoint_freq=args.checkpoint_freq,
                                           device=args.device, hp=args.hp, scenario=args.scenario, command=command,
                                           address=args.address)
        print(f"run folder: {folder}")
        run_dir = rllib_backend.run(folder, progress=not args.no_progress, address=args.address)
    status = training.update_status(Path(run_dir))
    print(f"{run_dir}: {status.get('state')} at {status.get('num_timesteps')} steps, "
          f"{status.get('training_sps', '-')} steps/s; best held-out mean return {status.get('best_mean_return', '-')}")
    return 0


def cmd_plot(args) -> int:
    from astrogym.experiments.plotting import plot_training_curves

    path = plot_training_curves(args.run_dirs, args.out)
    print(f"written: {path}")
    return 0


def cmd_benchmark(args) -> int:
    from astrogym.experiments.benchmark import run_benchmark

    _torch_threads(args.torch_threads)
    t0 = time.perf_counter()
    index = run_benchmark(Path(args.out), quick=args.quick, seed=args.seed, env_ids=args.env or None,
                          throughput=not args.no_throughput)
    print(f"\nwritten: {index} ({time.perf_counter() - t0:.0f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="astrogym", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="environment ids, summaries and spaces")
    p.add_argument("--config", action="store_true", help="also print every config key with its range")
    p.add_argument("--scenarios", action="store_true", help="also print the evaluation scenarios and their seeds")
    p.add_argument("--policies", action="store_true", help="also print the registered policies")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("bench", help="environment throughput against a peer")
    p.add_argument("env")
    p.add_argument("--quick", action="store_true", help="shorter timings")
    p.add_argument("--training", action="store_true",
                   help="SB3 training steps/s of the default algorithm beside the env's raw steps/s")
    p.add_argument("--algo", default=None, help="with --training: the algorithm (default: the env's)")
    p.add_argument("--training-steps", type=int, default=None, help="with --training: steps to time")
    p.add_argument("--config", default=None,
                   help="with --training: also time this hyperparameter file's policy (e.g. a shipped policy's)")
    p.add_argument("--scenario", default="default", help="with --training: the scenario's env configuration")
    p.add_argument("--networks", action="store_true",
                   help="scheduling: the GNN policy against MultiInputPolicy (minibatch time, MaskablePPO steps/s)")
    p.add_argument("--num-envs", nargs="?", const="default", default=None, metavar="N[,N...]",
                   help="the native vector env against SyncVectorEnv and AsyncVectorEnv at these copy counts "
                        "(default 1,64,1024; AO 1,64)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("evaluate", help="policies on a scenario's held-out seeds, with 95%% confidence intervals")
    p.add_argument("env")
    p.add_argument("--policy", action="append", default=None,
                   help="a registered name (astrogym list --policies), a .zip or a run folder; repeatable "
                        "(default: every registered policy of the env)")
    p.add_argument("--scenario", default="default", help="astrogym list --scenarios")
    p.add_argument("--episodes", type=int, default=None, help="the first K evaluation seeds (default: all)")
    p.add_argument("--quick", action="store_true", help="the scenario's quick episode count")
    p.add_argument("--json", default=None, help="also write the results here (default: beside the Markdown)")
    p.add_argument("--report", action="store_true",
                   help="also the domain's detailed report: ASDs and margins, PSFs and error budget, schedule plots")
    p.add_argument("--seed", type=int, default=0, help="seed of the detailed report")
    p.add_argument("--out", default="results")
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads while policies act (default 1)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train a stable-baselines3 (or, --backend rllib, Ray RLlib) agent into a run folder")
    p.add_argument("env", nargs="?", default=None)
    p.add_argument("--algo", default=None, help="ppo, a2c, sac, td3, maskable_ppo, recurrent_ppo "
                                                "(default: the env's); with --backend rllib: ppo (default), sac")
    p.add_argument("--config", default=None, help="a hyperparameter YAML (the shipped files' layout)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="override one hyperparameter")
    p.add_argument("--timesteps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0, help="training envs use seed .. seed + n_envs - 1")
    p.add_argument("--n-envs", type=int, default=None)
    p.add_argument("--vectorised", "--vectorized", action="store_true",
                   help="step the --n-envs copies in the env's native vector env (one compiled call for all)")
    p.add_argument("--scenario", default="default", help="its env configuration and evaluation seeds")
    p.add_argument("--run-dir", default=None, help="the run folder (default runs/{env}__{algo}__{seed}__{time})")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--eval-freq", type=int, default=None, help="environment steps between evaluations")
    p.add_argument("--eval-episodes", type=int, default=None, help="held-out episodes per evaluation (default 5)")
    p.add_argument("--checkpoint-freq", type=int, default=None, help="environment steps between checkpoints")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--backend", default="sb3", choices=("sb3", "rllib"),
                   help="sb3 (stable-baselines3, default) or rllib (Ray RLlib PPO/SAC; pip install 'astrogym[ray]')")
    p.add_argument("--num-env-runners", type=int, default=None,
                   help="with --backend rllib: RLlib env runner actors (default: the hyperparameter file's)")
    p.add_argument("--address", default=None, metavar="HEAD:PORT",
                   help="with --backend rllib: join this Ray cluster (default: start a local Ray)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("plot", help="training curves from run folders")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default=None, help="PNG path (default: training_curves.png beside the first run)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("benchmark", help="the main job: every registered policy on every scenario of every env")
    p.add_argument("--quick", action="store_true", help="a few episodes each (a smoke run of the whole job)")
    p.add_argument("--env", action="append", default=None, help="only these env ids (repeatable)")
    p.add_argument("--no-throughput", action="store_true", help="skip the throughput benches")
    p.add_argument("--seed", type=int, default=0, help="seed of the detailed reports")
    p.add_argument("--out", default="results")
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads while policies act (default 1)")
    p.set_defaults(func=cmd_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.func is cmd_train:
            return cmd_train(args, argv)
        return args.func(args)
    except (ValueError, TypeError) as exc:
        if os.environ.get("ASTROGYM_TRACEBACK"):
            raise
        print(f"astrogym {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
