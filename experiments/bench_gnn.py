"""The GNN scheduling policy against SB3's ``MultiInputPolicy``: network cost and MaskablePPO training speed.

Measured in one run, on the oversubscribed scenario's setting (200 targets, k = 8 nearest neighbours,
so 1,600 edges), with the same PPO hyperparameters for both policies (those of
``experiments/data/configs/scheduling_gnn.yml``) and ``torch`` threads as asked (1 by default, as training):

* forward + backward of one minibatch of 64 graphs (``evaluate_actions`` and the backward pass of
  its summed outputs; median of repeats);
* MaskablePPO training steps/s on one env (``DummyVecEnv``): rollouts plus updates.

``python -m astrogym.experiments.bench_gnn [--steps N] [--threads T]`` or
``astrogym bench astrogym/TelescopeScheduling-v0 --networks``.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

import gymnasium as gym
import numpy as np
import yaml

import astrogym  # noqa: F401

ENV_ID = "astrogym/TelescopeScheduling-v0"
CONFIG = Path(str(resources.files("astrogym.experiments") / "data" / "configs" / "scheduling_gnn.yml"))
PPO_KEYS = ("n_steps", "batch_size", "n_epochs", "learning_rate", "clip_range", "ent_coef", "gamma", "gae_lambda")


def _entry() -> dict:
    return yaml.safe_load(CONFIG.read_text())[ENV_ID]


def _env_kwargs() -> dict:
    from astrogym.experiments.scenarios import get_scenario

    return dict(get_scenario(ENV_ID, "oversubscribed").env_kwargs)


def _observations(env, n: int = 64) -> dict:
    """``n`` observations of greedy nights (several seeds), stacked as a rollout minibatch."""
    from astrogym.agents.scheduling.greedy import GreedyScheduler

    greedy, rows, seed = GreedyScheduler.for_env(env), [], 0
    while len(rows) < n:
        obs, _ = env.reset(seed=seed)
        for _ in range(n // 4):
            rows.append(obs)
            obs, _, done, _, _ = env.step(greedy.predict(obs)[0])
            if done:
                break
        seed += 1
    return {k: np.stack([r[k] for r in rows[:n]]) for k in rows[0]}


def _models(env):
    from sb3_contrib import MaskablePPO

    from astrogym.agents.scheduling.gnn import GNNSchedulingPolicy

    entry = _entry()
    kwargs = {k: float(entry[k]) if isinstance(entry[k], str) else entry[k] for k in PPO_KEYS}
    return {
        f"GNN ({entry['policy_kwargs']['hidden']} wide, {entry['policy_kwargs']['n_layers']} GINE layers)":
            MaskablePPO(GNNSchedulingPolicy, env, seed=0, policy_kwargs=entry["policy_kwargs"], **kwargs),
        "MultiInputPolicy (SB3 default, [64, 64])": MaskablePPO("MultiInputPolicy", env, seed=0, **kwargs),
    }


def minibatch_ms(model, batch: dict, repeats: int = 7) -> float:
    import torch as th

    policy = model.policy
    obs = {k: th.as_tensor(v).float() for k, v in batch.items()}
    actions = th.as_tensor(np.full(len(batch["nodes"]), model.action_space.n - 1))
    masks = th.ones((len(batch["nodes"]), model.action_space.n), dtype=th.bool)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        values, log_prob, entropy = policy.evaluate_actions(obs, actions, masks)
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
        policy.optimizer.zero_grad()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times[1:]))


def training_sps(model, steps: int) -> float:
    model.learn(512)  # warm-up: kernels, the first night tables
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


def bench(steps: int = 2048, threads: int = 1) -> list[dict]:
    import torch as th

    th.set_num_threads(threads)
    env = gym.make(ENV_ID, **_env_kwargs())
    batch = _observations(env)
    rows = []
    for name, model in _models(env).items():
        n_params = sum(p.numel() for p in model.policy.parameters())
        rows.append({"network": name, "parameters": n_params, "minibatch_ms": minibatch_ms(model, batch),
                     "training_sps": training_sps(model, steps)})
    return rows


def table(rows: list[dict], steps: int, threads: int) -> str:
    lines = [f"Forward + backward of one minibatch of 64 graphs (200 targets, 1,600 edges) and MaskablePPO training "
             f"steps/s over {steps} steps on one env, {threads} torch thread(s), the same PPO hyperparameters.\n",
             "| network | parameters | forward+backward per minibatch [ms] | MaskablePPO training steps/s |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['parameters']:,} | {r['minibatch_ms']:.1f} | {r['training_sps']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2048, help="training steps timed per policy")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    print(table(bench(args.steps, args.threads), args.steps, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
