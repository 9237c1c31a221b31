"""The native vector env of ``astrogym/TelescopeNetwork-v0``: N copies behind Gymnasium's ``VectorEnv`` API.

``gym.make_vec("astrogym/TelescopeNetwork-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
Each copy's step is one compiled call (:func:`~astrogym.envs.network.kernels.network_step`); the
copies are stepped one after another in one process. Unlike the single-site scheduler's, there is no
call that steps every copy at once yet: each copy's next decision belongs to a different telescope
at a different time. The stacked observation buffers, the autoreset modes, seeding and the info
layout are :class:`~astrogym.envs.common.vector.AstrogymVectorEnv`'s, so the results are those of
``SyncVectorEnv`` over single envs with the same seeds (tested), without its per-step batching of
Python dicts, and :meth:`action_masks` returns every copy's mask at once (sb3-contrib's
``MaskablePPO`` through :class:`~astrogym.agents.vec_env.NativeVecEnv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from astrogym.envs.common.vector import AstrogymVectorEnv
from astrogym.envs.network.env import TelescopeNetworkEnv


class TelescopeNetworkVectorEnv(AstrogymVectorEnv):
    """``num_envs`` copies of :class:`TelescopeNetworkEnv` (see the module docstring).

    Parameters are :class:`~astrogym.envs.common.vector.AstrogymVectorEnv`'s; ``parallel`` is accepted and
    ignored (the copies are stepped in turn).
    """

    env_class = TelescopeNetworkEnv

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        self.parallel = False
        space = self.single_observation_space
        self._obs = {k: np.zeros((self.num_envs, *s.shape), s.dtype) for k, s in space.spaces.items()}
        self._masks = np.zeros((self.num_envs, self.single_action_space.n), np.bool_)

    def _load_copy(self, i: int) -> None:
        env = self.envs[i]
        for key, value in env._obs().items():
            self._obs[key][i] = value
        self._masks[i] = env.action_masks()

    def _check_actions(self, actions) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), one per copy, got {actions.shape}")
        out = np.zeros(self.num_envs, np.int64)
        for i, a in enumerate(actions):
            try:
                out[i] = self.envs[i]._check_action(a)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"actions[{i}]: {exc}") from None
        return out

    def _step_copies(self, actions, active):
        actions = self._check_actions(actions)
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, np.bool_)
        truncated = np.zeros(self.num_envs, np.bool_)
        infos: list[dict | None] = [None] * self.num_envs
        for i in np.flatnonzero(active):
            env = self.envs[i]
            obs, rewards[i], terminated[i], truncated[i], infos[i] = env.step(int(actions[i]))
            for key, value in obs.items():
                self._obs[key][i] = value
            if not terminated[i]:
                self._masks[i] = env.action_masks()
        template = next(info for info in infos if info is not None)
        stacked = {}
        for key, value in template.items():
            rows = [info[key] if info is not None else np.zeros_like(value) for info in infos]
            stacked[key] = np.array(rows)
        return rewards, terminated, truncated, stacked

    def _observations(self) -> dict:
        return self._obs

    def action_masks(self) -> np.ndarray:
        """(num_envs, max_targets + 1) bool: every copy's deciding telescope's allowed actions."""
        return self._masks.copy()
