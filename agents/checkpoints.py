"""Trained models on disk: the file layout, atomic writes, and loading a checkpoint as a :class:`Policy`.

A checkpoint is a stable-baselines3 ``.zip`` with optional companions that share its stem::

    NAME.zip                  the model (SB3's own format)
    NAME.vecnormalize.pkl     VecNormalize statistics (observation and return running means)
    NAME.replay_buffer.pkl    the replay buffer (off-policy algorithms, for resuming)

A run folder (written by ``astrogym train``) holds ``config.yml`` (which names the algorithm),
``model.zip`` (final), ``best_model.zip`` (best held-out evaluation) and ``checkpoints/step_*.zip``.
Every file is written to a temporary name in its folder and renamed, so a reader (or a resumed
run after a kill) sees either the old file or the whole new one.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from astrogym.agents.algorithms import Algorithm, algorithm_of_policy_class, get_algorithm
from astrogym.agents.base import Policy
from astrogym.envs.common.files import atomic_write_bytes  # also imported from here by experiments/

RUN_CONFIG = "config.yml"
FINAL_MODEL = "model.zip"
BEST_MODEL = "best_model.zip"
CHECKPOINT_DIR = "checkpoints"
VECNORMALIZE_SUFFIX = ".vecnormalize.pkl"
REPLAY_BUFFER_SUFFIX = ".replay_buffer.pkl"


def companion(model_path: str | Path, suffix: str) -> Path:
    """``dir/NAME.zip`` -> ``dir/NAME{suffix}``."""
    p = Path(model_path)
    return p.with_name(p.name[:-4] + suffix if p.name.endswith(".zip") else p.name + suffix)


def save_model_atomic(model: Any, path: str | Path, vecnormalize: Any = None, replay_buffer: bool = False,
                      residual: dict | None = None) -> Path:
    """Save an SB3 model (and its VecNormalize statistics, and optionally its replay buffer) atomically.

    ``residual`` (a :class:`~astrogym.agents.residual.ResidualSpec` dict) is written as
    ``NAME.residual.yml``: the model is a correction to that base controller. The companions are
    written first and the model last, so a model file on disk always has its companions beside it.
    """
    path = Path(path)
    if residual is not None:
        import yaml

        from astrogym.agents.residual import RESIDUAL_SUFFIX, ResidualSpec

        text = yaml.safe_dump(ResidualSpec.from_dict(residual).to_dict(), sort_keys=False)
        atomic_write_bytes(companion(path, RESIDUAL_SUFFIX), text.encode())
    if vecnormalize is not None:
        atomic_write_bytes(companion(path, VECNORMALIZE_SUFFIX), pickle.dumps(vecnormalize))
    if replay_buffer and getattr(model, "replay_buffer", None) is not None:
        buf = io.BytesIO()
        model.save_replay_buffer(buf)
        atomic_write_bytes(companion(path, REPLAY_BUFFER_SUFFIX), buf.getvalue())
    buf = io.BytesIO()
    model.save(buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_vecnormalize(path: str | Path) -> Any:
    """VecNormalize statistics saved beside a model (without their VecEnv: enough to normalise)."""
    from stable_baselines3.common.vec_env import VecNormalize

    try:
        with open(path, "rb") as f:
            stats = pickle.load(f)
    except Exception as exc:  # truncated or not a pickle
        raise ValueError(f"VecNormalize statistics {path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(stats, VecNormalize):
        raise ValueError(f"VecNormalize statistics {path}: holds a {type(stats).__name__}, not VecNormalize")
    stats.training = False
    stats.norm_reward = False
    return stats


def run_algorithm(model_path: Path) -> Algorithm | None:
    """The algorithm named by the run folder's config.yml (the model's folder or the one above)."""
    import yaml

    for folder in (model_path.parent, model_path.parent.parent):
        cfg = folder / RUN_CONFIG
        if cfg.is_file():
            try:
                data = yaml.safe_load(cfg.read_text())
                return get_algorithm(data["algo"])
            except Exception:
                return None
    return None


def _saved_algorithm(model_path: Path) -> Algorithm:
    """The algorithm of a bare ``.zip``: from the class of the policy it saved."""
    from stable_baselines3.common.save_util import load_from_zip_file

    data, _, _ = load_from_zip_file(model_path, device="cpu", load_data=True, print_system_info=False)
    if not data or "policy_class" not in data:
        raise ValueError("no policy class in the file")
    return algorithm_of_policy_class(data["policy_class"])


def resolve_model_file(path: str | Path) -> Path:
    """A run folder -> its best model (else the final one, else the newest checkpoint); a ``.zip`` -> itself."""
    p = Path(path)
    if p.is_dir():
        if not (p / RUN_CONFIG).is_file():
            raise ValueError(f"policy {str(path)!r}: a folder but not a run folder (no {RUN_CONFIG})")
        for name in (BEST_MODEL, FINAL_MODEL):
            if (p / name).is_file():
                return p / name
        steps = sorted((p / CHECKPOINT_DIR).glob("step_*.zip"))
        if steps:
            return steps[-1]
        raise ValueError(f"policy {str(path)!r}: the run folder holds no model yet ({BEST_MODEL}, {FINAL_MODEL} or "
                         f"{CHECKPOINT_DIR}/step_*.zip)")
    if p.is_file():
        return p
    raise ValueError(f"policy {str(path)!r}: no such file or run folder")


def load_model(path: str | Path, algo: str | None = None, env: Any = None, device: str = "cpu",
               custom_objects: dict | None = None) -> tuple[Any, Algorithm]:
    """Load an SB3 model; a truncated, corrupt or foreign file raises ``ValueError`` naming it."""
    p = Path(path)
    if not zipfile.is_zipfile(p):
        raise ValueError(f"checkpoint {str(p)!r}: not a stable-baselines3 model (not a zip archive; truncated or "
                         "foreign file)")
    try:
        algorithm = get_algorithm(algo) if algo else (run_algorithm(p) or _saved_algorithm(p))
        model = algorithm.load_class().load(p, env=env, device=device, custom_objects=custom_objects,
                                            print_system_info=False)
    except ValueError as exc:
        raise ValueError(f"checkpoint {str(p)!r}: not a loadable stable-baselines3 model ({exc})") from None
    except Exception as exc:  # zipfile, pickle, torch and key errors of a damaged or foreign archive
        raise ValueError(f"checkpoint {str(p)!r}: not a loadable stable-baselines3 model "
                         f"({type(exc).__name__}: {exc})") from None
    return model, algorithm


class TrainedPolicy(Policy):
    """A trained SB3 model behind the common ``predict``, with its VecNormalize statistics applied.

    Parameters
    ----------
    model: the SB3 model.
    algorithm: its :class:`Algorithm` (masked algorithms read ``env.unwrapped.action_masks()``).
    env: the env it acts in (for action masks); may be None for unmasked algorithms.
    vecnormalize: VecNormalize statistics to normalise observations with, or None.
    name: a label for tables.
    """

    def __init__(self, model: Any, algorithm: Algorithm, env: gym.Env | None = None, vecnormalize: Any = None,
                 name: str = "trained"):
        self.model, self.algorithm, self.env, self.vecnormalize, self.name = model, algorithm, env, vecnormalize, name
        self._eval_mode = None  # the policy object last switched to eval mode (training may swap it)
        if algorithm.masked and env is None:
            raise ValueError(f"{algorithm.name} needs the env it acts in (for action masks)")

    def _predict_box(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """SB3's ``predict`` for a Box observation without its per-call overhead.

        ``model.predict`` switches every module to eval mode and checks the spaces on each call
        (~1 ms, more than the forward pass of a small network); acting step by step in a
        benchmark pays that thousands of times. Same arithmetic: the forward pass under
        ``no_grad``, then clip (or unscale, for squashed policies) to the action space.
        """
        import torch

        policy = self.model.policy
        if self._eval_mode is not policy:
            policy.set_training_mode(False)
            self._eval_mode = policy
        batched = obs.ndim > len(self.model.observation_space.shape)
        with torch.no_grad():
            tensor = torch.as_tensor(obs if batched else obs[None], dtype=torch.float32, device=policy.device)
            actions = policy._predict(tensor, deterministic=deterministic).cpu().numpy()
        space = self.model.action_space
        if isinstance(space, gym.spaces.Box):
            actions = actions.reshape((-1, *space.shape))
            actions = policy.unscale_action(actions) if policy.squash_output else np.clip(actions, space.low, space.high)
        return actions if batched else actions[0]

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = observation
        if self.vecnormalize is not None and self.vecnormalize.norm_obs:
            obs = self.vecnormalize.normalize_obs(observation)
        if (not self.algorithm.masked and not self.algorithm.recurrent and isinstance(obs, np.ndarray)
                and isinstance(self.model.observation_space, gym.spaces.Box)):
            return self._predict_box(obs, deterministic), state
        kwargs = {}
        if self.algorithm.masked:
            kwargs["action_masks"] = self.env.unwrapped.action_masks()
        if self.algorithm.recurrent:
            kwargs["episode_start"] = (np.ones(1, bool) if episode_start is None else np.asarray(episode_start))
        return self.model.predict(obs, state=state, deterministic=deterministic, **kwargs)

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None, device: str = "cpu") -> "TrainedPolicy":
        """Load from a ``.zip`` or a run folder, with the statistics beside it; spaces must match ``env``."""
        model_file = resolve_model_file(path)
        model, algorithm = load_model(model_file, device=device)
        if env is not None:
            for what in ("observation_space", "action_space"):
                saved, here = getattr(model, what), getattr(env, what)
                if saved != here:
                    raise ValueError(f"checkpoint {str(model_file)!r}: its {what} {saved} does not match the env's "
                                     f"{here}")
        stats_file = companion(model_file, VECNORMALIZE_SUFFIX)
        stats = load_vecnormalize(stats_file) if stats_file.is_file() else None
        policy = cls(model, algorithm, env=env, vecnormalize=stats, name=Path(path).name)
        residual = load_residual_spec(model_file)
        if residual is None:
            return policy
        from astrogym.agents.residual import ResidualPolicy, build_base

        if env is None:
            raise ValueError(f"checkpoint {str(model_file)!r} is a residual over {residual.policy!r}: loading it needs "
                             "the env it acts in")
        return ResidualPolicy(policy, build_base(residual, env), residual, env)


def load_residual_spec(model_file: str | Path):
    """The :class:`~astrogym.agents.residual.ResidualSpec` beside a model, or None if it is not a residual policy."""
    import yaml

    from astrogym.agents.residual import RESIDUAL_SUFFIX, ResidualSpec

    path = companion(model_file, RESIDUAL_SUFFIX)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"residual spec {str(path)!r}: unreadable ({type(exc).__name__})") from None
    try:
        return ResidualSpec.from_dict(data, where=str(path))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"residual spec {exc}") from None
