"""stable-baselines3 on astrogym's native vector envs: a ``VecEnv`` over a ``gymnasium.vector`` env.

SB3 does not take ``gymnasium.vector`` envs: its ``VecEnv`` resets a finished copy within the step
(the last observation in ``info["terminal_observation"]``, a time-limit end flagged by
``info["TimeLimit.truncated"]``) and returns one info dict per copy. :class:`NativeVecEnv` runs the
native vector env with ``autoreset_mode=SAME_STEP``, which has exactly those semantics, and
translates the rest. Copies are seeded ``seed + i`` as SB3's ``make_vec_env`` seeds its envs, so a
run on the native vector env plays the same episodes as one on ``DummyVecEnv`` of single envs.

Use :func:`make_native_vec_env` (what ``astrogym train --vectorised`` does), then SB3's
``VecMonitor`` for episode statistics and ``VecNormalize`` as usual.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class NativeVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a ``gymnasium.vector.VectorEnv`` in ``SAME_STEP`` autoreset mode.

    Parameters
    ----------
    venv: the vector env, e.g. ``gym.make_vec(id, num_envs=K, vectorization_mode="vector_entry_point",
        autoreset_mode="SameStep")``.

    Raises
    ------
    ValueError: ``venv``'s autoreset mode is not ``SAME_STEP``.
    TypeError: ``venv`` is not a ``gymnasium.vector.VectorEnv``.
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        if not isinstance(venv, gym.vector.VectorEnv):
            raise TypeError(f"venv must be a gymnasium.vector.VectorEnv, got {type(venv).__name__}")
        mode = venv.metadata.get("autoreset_mode")
        if mode is not AutoresetMode.SAME_STEP:
            raise ValueError(f"venv's autoreset_mode is {mode}; SB3's VecEnv semantics need AutoresetMode.SAME_STEP")
        self.venv = venv
        self.render_mode = venv.render_mode
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: Any = None

    # -- the VecEnv API ----------------------------------------------------------------------------------
    def reset(self):
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, info = self.venv.reset(seed=seeds, options=self._options[0] if self._options[0] else None)
        self.reset_infos = per_copy_infos(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        top = [k for k in info if not k.startswith("_") and k not in ("final_info", "final_obs")]
        # copies that go on report this step's info at the top level; an ended copy reports its new episode's
        # reset info there (SB3 keeps that in reset_infos) and this step's under final_info
        _merge(infos, {k: info[k] for k in top}, {k: info[f"_{k}"] for k in top}, skip=dones)
        if dones.any():
            final = info.get("final_info", {})
            keys = [k for k in final if not k.startswith("_")]
            _merge(infos, {k: final[k] for k in keys}, {k: final[f"_{k}"] for k in keys}, only=dones)
            for i in np.flatnonzero(dones):
                self.reset_infos[i] = {}
            _merge(self.reset_infos, {k: info[k] for k in top}, {k: info[f"_{k}"] for k in top}, only=dones)
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def _copies(self, indices) -> list[gym.Env]:
        envs = getattr(self.venv.unwrapped, "envs", None)
        if envs is None:
            raise AttributeError(f"{type(self.venv).__name__} does not expose its copies (.envs)")
        return [envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(env, attr_name) for env in self._copies(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for env in self._copies(indices):
            setattr(env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        batched = getattr(self.venv.unwrapped, method_name, None)
        if method_name == "action_masks" and callable(batched):  # one batched call (sb3-contrib asks every step)
            masks = batched()
            return [masks[i] for i in self._get_indices(indices)]
        return [getattr(env, method_name)(*method_args, **method_kwargs) for env in self._copies(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))


def per_copy_infos(info: dict, n: int) -> list[dict]:
    """Gymnasium's vector info (arrays plus ``_key`` masks) as one dict per copy, SB3's layout."""
    infos: list[dict] = [{} for _ in range(n)]
    keys = [k for k in info if not k.startswith("_") and k not in ("final_info", "final_obs")]
    _merge(infos, {k: info[k] for k in keys}, {k: info.get(f"_{k}") for k in keys})
    return infos


def _merge(infos: list[dict], values: dict, masks: dict, skip: np.ndarray | None = None,
           only: np.ndarray | None = None) -> None:
    for key, column in values.items():
        mask = masks.get(key)
        mask = np.ones(len(infos), np.bool_) if mask is None else np.asarray(mask, np.bool_).copy()
        if skip is not None:
            mask &= ~skip
        if only is not None:
            mask &= only
        if isinstance(column, dict):
            nested = per_copy_infos(column, len(infos))
            for i in np.flatnonzero(mask):
                infos[i][key] = nested[i]
            continue
        items = column.tolist() if isinstance(column, np.ndarray) and column.ndim == 1 and column.dtype != object \
            else list(column)
        if mask.all():
            for info, value in zip(infos, items):
                info[key] = value
        else:
            for i in np.flatnonzero(mask):
                infos[i][key] = items[i]


def make_native_vec_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict | None = None) -> NativeVecEnv:
    """``n_envs`` copies of ``env_id`` in its native vector env, seeded ``seed .. seed + n_envs - 1``.

    Raises
    ------
    ValueError: ``env_id`` has no native vector env (no ``vector_entry_point``), or what the env raises.
    """
    import astrogym  # noqa: F401  (registers the ids)

    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        raise ValueError(f"{env_id} has no native vector env (vector_entry_point); train it without --vectorised")
    venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode=AutoresetMode.SAME_STEP, **(env_kwargs or {}))
    vec = NativeVecEnv(venv)
    vec.seed(seed)
    return vec
