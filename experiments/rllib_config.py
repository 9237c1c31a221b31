"""RLlib hyperparameters and the ``AlgorithmConfig`` they build (``astrogym train --backend rllib``).

``experiments/data/hyperparams/rllib_{algo}.yml`` (``rllib_ppo.yml``, ``rllib_sac.yml``) use the
SB3 files' layout (:mod:`astrogym.experiments.hyperparams`): env ids (and ``default``) map to an
entry; ``--config F.yml`` merges over it and ``--hp key=value`` over both::

    astrogym/InterferometerLock-v0:
      n_timesteps: 200000             # total environment steps
      num_env_runners: 2              # RLlib EnvRunner actors (one CPU each); --num-env-runners overrides
      num_envs_per_env_runner: 1      # sub-envs per runner (a gymnasium SyncVectorEnv)
      rollout_fragment_length: auto   # steps per runner per sample call
      model: {fcnet_hiddens: [64, 64], fcnet_activation: tanh}   # DefaultModelConfig, or the custom module's
      env_kwargs: {}                  # over the scenario's
      train_batch_size_per_learner: 2048   # any keyword of {Algo}Config.training()
      lr: 3.0e-4
      ...

Which module an env gets follows from its spaces (:func:`module_spec`): RLlib's default MLP for
vectors (the interferometer's (2, H) flattened), :class:`~astrogym.agents.rllib_modules.ConvAOModule`
for AO frames under PPO, :class:`~astrogym.agents.rllib_modules.MaskedNodeScheduler` for the
scheduling graph (PPO only: RLlib's masking pattern is PPO's). Ray is imported inside functions only.
"""

from __future__ import annotations

import fcntl
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym

from astrogym.agents.rllib_adapters import Adapter, RLlibEnv
from astrogym.experiments import hyperparams

ALGOS = ("ppo", "sac")
BACKENDS = ("sb3", "rllib")
ENV_NAME = "astrogym-rllib"  # the registered creator (make_rllib_env); env_config names the env id
# Keys of an entry that are not keywords of {Algo}Config.training()
RUN_KEYS = {"n_timesteps": int, "num_env_runners": int, "num_envs_per_env_runner": int,
            "rollout_fragment_length": (int, str), "model": dict, "env_kwargs": dict, "eval_freq": int,
            "eval_episodes": int, "checkpoint_freq": int, "torch_threads": int}
_DEFAULTS = {"num_env_runners": 2, "num_envs_per_env_runner": 1, "rollout_fragment_length": "auto", "model": {},
             "env_kwargs": {}, "torch_threads": 1}
# training() keywords the backend sets itself (or that take objects, not YAML values)
_MANAGED = {"self", "kwargs", "model", "learner_class", "learner_connector", "optimizer", "q_model_config",
            "policy_model_config", "entropy_coeff_schedule", "lr_schedule", "num_sgd_iter"}


def check_algo(algo: str | None, action_space: gym.Space) -> str:
    """The RLlib algorithm name (default ``ppo``); ``ValueError`` naming the allowed ones."""
    name = str(algo or "ppo").lower().replace("-", "_")
    if name not in ALGOS:
        raise ValueError(f"--algo {algo!r} with --backend rllib; allowed: {', '.join(ALGOS)} (action masking is "
                         "built into the RLlib scheduling module, so maskable_ppo is plain ppo here)")
    if name == "sac" and not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"--algo sac with --backend rllib needs a Box action space, not {action_space}; allowed "
                         "for this env: ppo")
    return name


def config_class(algo: str) -> type:
    """RLlib's ``PPOConfig`` or ``SACConfig``."""
    if algo == "ppo":
        from ray.rllib.algorithms.ppo import PPOConfig

        return PPOConfig
    from ray.rllib.algorithms.sac import SACConfig

    return SACConfig


def _training_keywords(algo: str) -> dict[str, Any]:
    """The keywords of ``{Algo}Config.training()`` with the defaults of a fresh config."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    cls = config_class(algo)
    fresh = cls()
    names = set(inspect.signature(cls.training).parameters) | set(inspect.signature(AlgorithmConfig.training).parameters)
    return {n: getattr(fresh, n, None) for n in sorted(names - _MANAGED)}


def resolve(env_id: str, algo: str, config_file: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """The merged, validated RLlib hyperparameters of one run (plain YAML values, as saved in config.yml)."""
    shipped = hyperparams._read(hyperparams.shipped_file(f"rllib_{algo}"), "hyperparameter file")
    entry = hyperparams._merge(hyperparams._merge(_DEFAULTS, shipped.get("default", {})), shipped.get(env_id, {}))
    if config_file is not None:
        user = hyperparams._read(Path(config_file), "--config file")
        unknown = [k for k in user if k not in ("default", env_id) and "/" not in k]
        if unknown:
            raise ValueError(f"--config {config_file}: top-level key(s) {unknown} are neither 'default' nor an env "
                             f"id (expected e.g. {env_id!r})")
        entry = hyperparams._merge(hyperparams._merge(entry, user.get("default", {})), user.get(env_id, {}))
    for text in overrides:
        key, value = hyperparams.parse_override(text)
        entry = hyperparams._merge(entry, {key: value})
    validate(entry, algo, source=str(config_file) if config_file else f"rllib_{algo}.yml")
    return entry


def validate(entry: dict, algo: str, source: str = "hyperparameters") -> None:
    """Check every key and its type in place (numeric strings become numbers)."""
    allowed = _training_keywords(algo)
    unknown = sorted(k for k in entry if k not in RUN_KEYS and k not in allowed)
    if unknown:
        raise ValueError(f"{source}: unknown hyperparameter(s) {unknown} for rllib {algo}; allowed: "
                         f"{', '.join(sorted(RUN_KEYS))} and {algo.upper()}Config.training()'s keywords "
                         f"{', '.join(allowed)}")
    for key, value in list(entry.items()):
        where = f"{source}: {key}={value!r}"
        if key == "rollout_fragment_length":
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{where}; allowed 'auto' or a positive integer")
            continue
        if key in RUN_KEYS:
            kind = RUN_KEYS[key]
            if kind is int:
                value = entry[key] = hyperparams._numeric(value)
                if isinstance(value, float) and value.is_integer():
                    value = entry[key] = int(value)
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{where}; allowed a positive integer")
            elif not isinstance(value, kind):
                raise TypeError(f"{where} must be {kind.__name__}")
            continue
        default = allowed[key]
        ok, value = hyperparams.number_like(default, value)
        if ok is None:  # a dict default wants a dict; None or a string default: RLlib checks these itself
            ok = isinstance(value, dict) if isinstance(default, dict) else True
        if not ok:
            raise TypeError(f"{where} has the wrong type; {algo.upper()}Config.training() expects "
                            f"{type(default).__name__} (default {default!r})")
        entry[key] = value


def training_kwargs(entry: dict) -> dict:
    """The ``training()`` keywords of an entry."""
    return {k: v for k, v in entry.items() if k not in RUN_KEYS}


def seeds_used(seed: int, entry: dict) -> int:
    """How many consecutive training seeds from ``seed`` the env runners use (see :class:`RLlibEnv`)."""
    return (entry["num_env_runners"] + 1) * entry["num_envs_per_env_runner"]


# -- the env inside an env runner ------------------------------------------------------------------------
_WARMED: set[str] = set()
_CREATED: dict[int, int] = {}  # env runner index -> envs created in this process


def warm_kernels_once(env_id: str, env_kwargs: dict) -> None:
    """Compile (or load) the env's numba kernels once per process, one process per machine at a time.

    The driver warms the cache before any env runner starts; on a cluster node that has never
    run the env, its runners would all compile at once and race to write numba's cache. A lock
    file in the node's temp dir serialises the first compile: the first runner writes the cache,
    the others then load it.
    """
    if env_id in _WARMED:
        return
    from astrogym.experiments.training import warm_kernels

    lock = Path(tempfile.gettempdir()) / f"astrogym-numba-{os.getuid()}.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            warm_kernels(env_id, env_kwargs)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    _WARMED.add(env_id)


def make_rllib_env(env_config: dict) -> gym.Env:
    """RLlib's env creator: the astrogym env behind its adapter, with its own first seed.

    ``env_config`` (an RLlib ``EnvContext``): ``env_id``, ``env_kwargs``, ``seed``,
    ``envs_per_runner``, ``flatten_images``; the context adds ``worker_index``.
    """
    import torch

    import astrogym  # noqa: F401  (a fresh Ray worker registers the ids)

    torch.set_num_threads(1)  # one CPU per env runner: the module acts on a handful of observations
    env_id, env_kwargs = env_config["env_id"], dict(env_config.get("env_kwargs") or {})
    warm_kernels_once(env_id, env_kwargs)
    worker = int(getattr(env_config, "worker_index", 0) or 0)
    index = _CREATED.get(worker, 0)
    _CREATED[worker] = index + 1
    env = gym.make(env_id, **env_kwargs)
    adapter = Adapter(env.observation_space, env.action_space, flatten_images=bool(env_config.get("flatten_images")))
    seed = env_config.get("seed")
    first = None if seed is None else int(seed) + worker * int(env_config.get("envs_per_runner", 1)) + index
    return RLlibEnv(env, adapter, first_seed=first)


# -- the algorithm config --------------------------------------------------------------------------------
def module_spec(algo: str, adapter: Adapter, model: dict):
    """The RLModuleSpec of an env's adapted spaces (see the module docstring), or None for RLlib's default."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    if adapter.kind == "masked":
        from astrogym.agents.rllib_modules import MaskedNodeScheduler

        return RLModuleSpec(module_class=MaskedNodeScheduler, model_config=dict(model))
    if adapter.kind == "image":
        from astrogym.agents.rllib_modules import ConvAOModule

        return RLModuleSpec(module_class=ConvAOModule, model_config=dict(model))
    return None


def build_config(env_id: str, algo: str, entry: dict, env_kwargs: dict, seed: int, probe: gym.Env):
    """The RLlib ``AlgorithmConfig`` of a run (new API stack: RLModule, Learner, EnvRunner, ConnectorV2)."""
    from ray.tune.registry import register_env

    register_env(ENV_NAME, make_rllib_env)  # Ray ships the registry to every worker
    adapter = Adapter(probe.observation_space, probe.action_space, flatten_images=algo != "ppo")
    if adapter.kind == "masked" and algo != "ppo":
        raise ValueError(f"--algo {algo} with --backend rllib: {env_id}'s masked actions need ppo")
    config = (config_class(algo)()
              .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
              .framework("torch")
              .environment(ENV_NAME, env_config={"env_id": env_id, "env_kwargs": env_kwargs, "seed": seed,
                                                       "envs_per_runner": entry["num_envs_per_env_runner"],
                                                       "flatten_images": algo != "ppo"},
                           observation_space=adapter.observation_space, action_space=adapter.action_space)
              .env_runners(num_env_runners=entry["num_env_runners"],
                           num_envs_per_env_runner=entry["num_envs_per_env_runner"],
                           rollout_fragment_length=entry["rollout_fragment_length"], num_cpus_per_env_runner=1)
              .learners(num_learners=0)
              .training(**training_kwargs(entry))
              .debugging(seed=seed))
    spec = module_spec(algo, adapter, entry.get("model", {}))
    if spec is not None:
        config = config.rl_module(rl_module_spec=spec)
    elif entry.get("model"):
        from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

        config = config.rl_module(model_config=DefaultModelConfig(**entry["model"]))
    return config
