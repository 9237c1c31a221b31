"""Training throughput beside the env's own: is the env ever the bottleneck?

For one env id and algorithm (default: the env's), with the shipped hyperparameters (``n_envs``
included) and no evaluation or checkpoints, it measures in one run:

* the env's raw steps/s: ``env.step`` with random actions through ``gym.make``, one process, caches warm;
* SB3's training steps/s (``fps``): rollouts, optimisation and logging, ``n_envs`` in a
  ``SubprocVecEnv``, ``torch`` threads as configured;

and prints their ratio (how many times faster the env steps than SB3 trains).
"""

from __future__ import annotations

import time

import gymnasium as gym

import astrogym  # noqa: F401
from astrogym.agents.algorithms import get_algorithm
from astrogym.experiments import hyperparams
from astrogym.experiments.registry import get_domain
from astrogym.experiments.scenarios import get_scenario


def raw_env_steps_per_s(env_id: str, env_kwargs: dict, steps: int = 5000) -> float:
    """Random actions through ``gym.make``, resets included, timed on a second identical pass.

    The first pass fills the caches training also fills once (compiled kernels, night tables of
    the dates it draws), so the rate is the one a long training run sees.
    """
    env = gym.make(env_id, **env_kwargs)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(min(steps, 1000))]

    def one_pass() -> float:
        env.reset(seed=0)
        t0 = time.perf_counter()
        for k in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[k % len(actions)])
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - t0)

    one_pass()
    return one_pass()


def training_steps_per_s(env_id: str, algo: str | None = None, steps: int = 10_000, config_file: str | None = None,
                         scenario: str = "default") -> dict:
    """Raw env steps/s and SB3 training steps/s of the shipped (or ``config_file``'s) configuration, in one run."""
    import torch

    from astrogym.experiments.training import make_training_env, new_model

    algorithm = get_algorithm(algo or get_domain(env_id).default_algo)
    entry = hyperparams.resolve(env_id, algorithm, config_file)
    env_kwargs = {**get_scenario(env_id, scenario).played_env_kwargs, **entry.get("env_kwargs", {})}
    raw = raw_env_steps_per_s(env_id, env_kwargs)
    torch.set_num_threads(int(entry["torch_threads"]))
    residual = entry.get("residual")
    if residual:  # the base controller's options as training would freeze them (tuned on seed 0)
        from astrogym.agents.residual import ResidualSpec, resolve_spec

        probe = gym.make(env_id, **env_kwargs)
        residual = resolve_spec(ResidualSpec.from_dict(residual), probe,
                                lambda **kw: gym.make(env_id, **{**env_kwargs, **kw}), 0).to_dict()
    venv = make_training_env(env_id, env_kwargs, entry["n_envs"], 0, entry["normalize"], residual=residual,
                             vec_env=entry.get("vec_env"))
    model = new_model(algorithm, entry, venv, seed=0)
    t0 = time.perf_counter()
    model.learn(steps)
    sps = model.num_timesteps / (time.perf_counter() - t0)
    venv.close()
    return {"env_id": env_id, "algo": algorithm.name, "n_envs": entry["n_envs"], "policy": entry["policy"].split(":")[-1]
            + (" (residual)" if residual else ""),
            "torch_threads": entry["torch_threads"], "raw_env_steps_per_s": raw, "training_steps_per_s": sps,
            "steps": int(model.num_timesteps)}


def training_table(rows: list[dict]) -> str:
    lines = ["| env | algorithm | policy | n_envs | env raw steps/s | SB3 training steps/s | env / training |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['env_id']} | {r['algo']} | {r['policy']} | {r['n_envs']} | {r['raw_env_steps_per_s']:,.0f} | "
                     f"{r['training_steps_per_s']:,.0f} | {r['raw_env_steps_per_s'] / r['training_steps_per_s']:.1f}x |")
    return "\n".join(lines) + "\n"
