"""A trained RLlib RLModule behind the common ``predict``, loaded from an RLlib run folder or checkpoint.

``astrogym train --backend rllib`` writes RLlib algorithm checkpoints (``best_model/``,
``model/``, ``checkpoints/step_N/``) into the run folder, whose ``config.yml`` says
``backend: rllib``. This module reads only the RLModule inside one
(``learner_group/learner/rl_module/default_policy``), so acting needs neither Ray running nor the
env runners. RLlib's connector pipelines are not applied when a module is loaded on its own; the
backend uses none beyond its defaults, and :class:`~astrogym.agents.rllib_adapters.Adapter`
reproduces the only transformation (flattening, the action mask). Box actions go through
RLlib's ``unsquash_action`` (``[-1, 1]`` to the bounds, then clipped), as in its env runners.

Paths accepted by :func:`load_policy_file` (and so by ``astrogym evaluate --policy``): a run
folder (its best model, else the final one, else the newest checkpoint), an algorithm checkpoint
folder, or an RLModule folder. Ray is imported only when a policy is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from astrogym.agents.base import Policy
from astrogym.agents.rllib_adapters import Adapter

RUN_CONFIG = "config.yml"
BEST_MODEL_DIR = "best_model"
FINAL_MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
MODULE_PATH = Path("learner_group") / "learner" / "rl_module" / "default_policy"
_MODULE_FILE = "class_and_ctor_args.pkl"  # what an RLModule checkpoint folder holds (RLlib's Checkpointable)


def ray_missing_message(what: str) -> str:
    return f"{what} needs Ray RLlib, which is not installed: pip install 'astrogym[ray]'"


def import_rllib() -> None:
    """Import ``ray.rllib`` or raise ``ValueError`` saying how to install it."""
    try:
        import ray.rllib  # noqa: F401
    except ImportError:
        raise ValueError(ray_missing_message("the RLlib backend")) from None


def is_rllib_run(path: str | Path) -> bool:
    """Whether ``path`` is a run folder whose ``config.yml`` says ``backend: rllib`` (no Ray import)."""
    import yaml

    cfg = Path(path) / RUN_CONFIG
    if not cfg.is_file():
        return False
    try:
        data = yaml.safe_load(cfg.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("backend") == "rllib"


def is_rllib_path(path: str | Path) -> bool:
    """An RLlib run folder, algorithm checkpoint or RLModule folder (no Ray import)."""
    p = Path(path)
    return p.is_dir() and (is_rllib_run(p) or (p / MODULE_PATH).is_dir() or (p / _MODULE_FILE).is_file())


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete ``checkpoints/step_N`` folders, oldest first (temporary ones are dot-named)."""
    folder = run_dir / CHECKPOINT_DIR
    return sorted(p for p in folder.glob("step_*") if p.is_dir()) if folder.is_dir() else []


def module_dir(path: str | Path) -> Path:
    """The RLModule folder for a run folder, an algorithm checkpoint or an RLModule folder."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"policy {str(path)!r}: no such RLlib run folder or checkpoint")
    if (p / MODULE_PATH).is_dir():  # an algorithm checkpoint (it holds a class_and_ctor_args.pkl too)
        return p / MODULE_PATH
    if (p / _MODULE_FILE).is_file() and not (p / "learner_group").exists():
        return p
    if is_rllib_run(p):
        for candidate in (p / BEST_MODEL_DIR, p / FINAL_MODEL_DIR, *reversed(checkpoints(p))):
            if (candidate / MODULE_PATH).is_dir():
                return candidate / MODULE_PATH
        raise ValueError(f"policy {str(path)!r}: the RLlib run folder holds no model yet ({BEST_MODEL_DIR}/, "
                         f"{FINAL_MODEL_DIR}/ or {CHECKPOINT_DIR}/step_*/)")
    raise ValueError(f"policy {str(path)!r}: not an RLlib run folder, algorithm checkpoint or RLModule folder")


def _to_tensor(obs: Any):
    import torch

    if isinstance(obs, dict):
        return {k: _to_tensor(v) for k, v in obs.items()}
    return torch.as_tensor(np.asarray(obs, dtype=np.float32))[None]


class RLlibPolicy(Policy):
    """An RLlib RLModule acting in an astrogym env through the same adapter as in training.

    Parameters
    ----------
    module: the RLModule (from a checkpoint, or the live module during training).
    env: the env it acts in (the scheduling adapter reads its ``action_masks()``).
    name: a label for tables.
    """

    def __init__(self, module: Any, env: gym.Env, name: str = "rllib"):
        self.module, self.env, self.name = module, env, name
        space = getattr(module, "observation_space", None)
        flatten = (isinstance(space, gym.spaces.Box) and len(space.shape) == 1
                   and len(env.observation_space.shape or ()) == 3)
        self.adapter = Adapter(env.observation_space, env.action_space, flatten_images=flatten)
        for what in ("observation_space", "action_space"):
            saved, here = getattr(module, what, None), getattr(self.adapter, what)
            if saved is not None and not _same_space(saved, here):
                raise ValueError(f"RLlib policy {name!r}: its {what} {_shape(saved)} does not match the env's "
                                 f"(adapted) {_shape(here)}; was it trained on another configuration (scenario)?")
        self._dist = module.get_inference_action_dist_cls()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """One action (or a batch of them for a batch of ``Box`` observations, leading dimension = envs)."""
        import torch
        from ray.rllib.core.columns import Columns

        space = self.env.observation_space
        batched = (isinstance(space, gym.spaces.Box) and np.ndim(observation) > len(space.shape))
        items = list(observation) if batched else [observation]
        obs = [self.adapter.observation(o, self.env) for o in items]
        if isinstance(obs[0], dict):
            tensor = {k: _to_tensor(obs[0][k]) for k in obs[0]}
        else:
            tensor = torch.as_tensor(np.stack(obs).astype(np.float32))
        was_training = self.module.training
        self.module.eval()
        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: tensor})
            dist = self._dist.from_logits(out[Columns.ACTION_DIST_INPUTS])
            actions = (dist.to_deterministic() if deterministic else dist).sample().cpu().numpy()
        if was_training:
            self.module.train()
        adapted = self.adapter.action_space
        if isinstance(adapted, gym.spaces.Box):  # RLlib's unsquash_action (normalize_actions=True, the default)
            actions = np.clip(adapted.low + (actions + 1.0) * (adapted.high - adapted.low) / 2.0, adapted.low,
                              adapted.high)
        out = [self.adapter.action(a) for a in actions]
        return (np.stack(out) if batched else out[0]), state

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> "RLlibPolicy":
        """Load the RLModule of a run folder or checkpoint (see the module docstring)."""
        import_rllib()
        from ray.rllib.core.rl_module.rl_module import RLModule

        folder = module_dir(path)
        try:
            module = RLModule.from_checkpoint(str(folder.resolve()))
        except Exception as exc:  # a torn or foreign checkpoint: pickle, torch and key errors
            raise ValueError(f"RLlib checkpoint {str(folder)!r}: not loadable ({type(exc).__name__}: {exc})") from None
        return cls(module, env, name=Path(path).name)


def _shape(space: gym.Space) -> str:
    """A space in a few words: its kind and shapes, not every bound."""
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_shape(v)}" for k, v in space.spaces.items()) + ")"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    return f"{type(space).__name__}{getattr(space, 'shape', '')}"


def _same_space(a: gym.Space, b: gym.Space) -> bool:
    """Equal up to dtype details RLlib may change when it saves a space (shapes and kinds must match)."""
    if isinstance(a, gym.spaces.Dict) and isinstance(b, gym.spaces.Dict):
        return a.keys() == b.keys() and all(_same_space(a[k], b[k]) for k in a.keys())
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n
    return type(a) is type(b) and getattr(a, "shape", None) == getattr(b, "shape", None)


def load_policy_file(path: str | Path, env: gym.Env) -> RLlibPolicy:
    """``make_policy``'s loader for RLlib paths (``CHECKPOINT_LOADERS`` style: ``(path, env)``)."""
    return RLlibPolicy.load(path, env)
