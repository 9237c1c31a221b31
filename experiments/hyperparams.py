"""Hyperparameters in YAML, in rl-baselines3-zoo's layout: one file per algorithm, keyed by env id.

``experiments/data/hyperparams/{algo}.yml`` maps env ids (and ``default``, used for any env the
file does not name) to an entry::

    astrogym/InterferometerLock-v0:
      n_timesteps: 200000         # total environment steps
      policy: MlpPolicy           # or a class path "package.module:Class"
      n_envs: 2                   # SubprocVecEnv above 1 ...
      vec_env: dummy              # ... or all in this process (fast envs: one batched policy call, no IPC),
                                  # or native: the env's own vector env, one compiled call for all copies
                                  # (astrogym.agents.vec_env; what --vectorised sets)
      normalize: {norm_obs: true, norm_reward: true}   # VecNormalize kwargs, or true/false
      policy_kwargs: {net_arch: [64, 64], activation_fn: torch.nn.Tanh}
      env_kwargs: {}              # over the scenario's
      residual: {policy: integrator, scale: 0.3}   # learn a bounded correction to a baseline
                                  # (astrogym.agents.residual; Box actions only)
      learning_rate: lin_3e-4     # any keyword of the algorithm; lin_X is a linear schedule
      ...

A user file (``--config``) has the same layout; it is merged over the shipped entry, and
``--hp key=value`` (YAML values) over both. Unknown keys and wrong types raise ``ValueError``/
``TypeError`` naming the key and what is allowed.
"""

from __future__ import annotations

import copy
import inspect
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from astrogym.agents.algorithms import Algorithm
from astrogym.envs.common.imports import import_path

# Keys of an entry that are not keywords of the algorithm's constructor.
RUN_KEYS = {"n_timesteps": int, "policy": str, "n_envs": int, "normalize": (bool, dict), "policy_kwargs": dict,
            "env_kwargs": dict, "eval_freq": int, "eval_episodes": int, "checkpoint_freq": int, "torch_threads": int,
            "residual": dict, "vec_env": str}
VEC_ENVS = ("subproc", "dummy", "native")
# Constructor keywords that the training layer sets itself.
_MANAGED = {"policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model", "policy_kwargs"}
_SCHEDULABLE = {"learning_rate", "clip_range", "clip_range_vf"}
_DEFAULTS = {"n_envs": 1, "normalize": False, "policy_kwargs": {}, "env_kwargs": {}, "torch_threads": 1}


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(exc, 'problem', None) or exc}{where}"


def shipped_file(algo: str) -> Path:
    return Path(str(resources.files("astrogym.experiments") / "data" / "hyperparams" / f"{algo}.yml"))


def _read(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{what} {path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {path}: not valid YAML ({yaml_problem(exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ValueError(f"{what} {path}: must map env ids (or 'default') to mappings of hyperparameters")
    return {k: dict(v or {}) for k, v in data.items()}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key in ("policy_kwargs", "env_kwargs") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a YAML value (``gamma=0.99``, ``policy_kwargs={net_arch: [32]}``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--hp {text!r}: expected key=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"--hp {text!r}: the value is not valid YAML ({yaml_problem(exc)})") from None


def resolve(env_id: str, algorithm: Algorithm, config_file: str | Path | None = None,
            overrides: list[str] = ()) -> dict:
    """The merged, validated hyperparameters of one run (plain YAML values, as saved in config.yml)."""
    shipped = _read(shipped_file(algorithm.name), "hyperparameter file")
    entry = _merge(_merge(_DEFAULTS, shipped.get("default", {})), shipped.get(env_id, {}))
    if config_file is not None:
        user = _read(Path(config_file), "--config file")
        unknown = [k for k in user if k not in ("default", env_id) and "/" not in k]
        if unknown:
            raise ValueError(f"--config {config_file}: top-level key(s) {unknown} are neither 'default' nor an env "
                             f"id (expected e.g. {env_id!r})")
        entry = _merge(_merge(entry, user.get("default", {})), user.get(env_id, {}))
    for text in overrides:
        key, value = parse_override(text)
        entry = _merge(entry, {key: value})
    validate(entry, algorithm, source=str(config_file) if config_file else f"{algorithm.name}.yml")
    return entry


def _numeric(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` as a string; accept it as the number it spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _constructor_defaults(algorithm: Algorithm) -> dict[str, Any]:
    params = inspect.signature(algorithm.load_class().__init__).parameters
    return {n: p.default for n, p in params.items()
            if n not in _MANAGED and n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def number_like(default: Any, value: Any) -> tuple[bool | None, Any]:
    """Whether a YAML ``value`` (numeric strings read as numbers) fits a numeric keyword's ``default``, and
    the value converted to its type: ``(ok, value)`` for a bool, int or float default, ``(None, value)``
    for any other default (the caller decides). Shared by the SB3 and RLlib hyperparameter checks."""
    value = _numeric(value)
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, int):
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float)
                                                                          and value.is_integer())
        return ok, int(value) if ok else value
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    return None, value


def validate(entry: dict, algorithm: Algorithm, source: str = "hyperparameters") -> None:
    """Check every key and its type in place (numeric strings become numbers)."""
    allowed = _constructor_defaults(algorithm)
    unknown = sorted(k for k in entry if k not in RUN_KEYS and k not in allowed)
    if unknown:
        raise ValueError(f"{source}: unknown hyperparameter(s) {unknown} for {algorithm.name}; allowed: "
                         f"{', '.join(sorted(RUN_KEYS))} and {algorithm.name}'s keywords {', '.join(sorted(allowed))}")
    for key, value in list(entry.items()):
        where = f"{source}: {key}={value!r}"
        if key in RUN_KEYS:
            kind = RUN_KEYS[key]
            if kind is int:
                value = entry[key] = _numeric(value)
                if isinstance(value, float) and value.is_integer():
                    value = entry[key] = int(value)
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise TypeError(f"{where} must be a positive integer")
            elif not isinstance(value, kind):
                names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise TypeError(f"{where} must be {names}")
            elif key == "vec_env" and value not in VEC_ENVS:
                raise ValueError(f"{where}; allowed {', '.join(VEC_ENVS)}")
            continue
        default = allowed[key]
        if key in _SCHEDULABLE and isinstance(value, str) and value.startswith("lin_"):
            if not isinstance(_numeric(value[4:]), float):
                raise ValueError(f"{where}: a linear schedule is lin_<number>, e.g. lin_3e-4")
            continue
        ok, value = number_like(default, value)
        if ok is None:
            # a string default wants a string; None, a tuple, a schedule: SB3 checks these itself
            ok = isinstance(value, str) if isinstance(default, str) else True
        if not ok:
            raise TypeError(f"{where} has the wrong type; {algorithm.name} expects "
                            f"{type(default).__name__} (default {default!r})")
        entry[key] = value
    normalize = entry.get("normalize")
    if isinstance(normalize, dict):
        from stable_baselines3.common.vec_env import VecNormalize

        keys = set(inspect.signature(VecNormalize.__init__).parameters) - {"self", "venv"}
        bad = sorted(set(normalize) - keys)
        if bad:
            raise ValueError(f"{source}: normalize has unknown key(s) {bad}; allowed {sorted(keys)}")


def _linear(start: float):
    return lambda progress_remaining: progress_remaining * start


def algorithm_kwargs(entry: dict) -> dict:
    """The constructor keywords of an entry, with class paths imported and ``lin_X`` schedules built."""
    kwargs = {k: v for k, v in entry.items() if k not in RUN_KEYS}
    for key in _SCHEDULABLE:
        if isinstance(kwargs.get(key), str) and kwargs[key].startswith("lin_"):
            kwargs[key] = _linear(float(kwargs[key][4:]))
    if "train_freq" in kwargs and isinstance(kwargs["train_freq"], list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    return kwargs


def policy_kwargs(entry: dict) -> dict:
    """``policy_kwargs`` with string values of class-valued keys imported."""
    out = {}
    for key, value in entry.get("policy_kwargs", {}).items():
        if isinstance(value, str) and (key.endswith("_class") or key == "activation_fn"):
            value = import_path(value)
        out[key] = value
    return out


def policy_class(entry: dict) -> Any:
    """A policy alias (``MlpPolicy``) stays a string for SB3; a class path is imported."""
    name = entry.get("policy", "MlpPolicy")
    return import_path(name) if (":" in name or "." in name) else name
