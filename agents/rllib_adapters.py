"""How an astrogym env is presented to RLlib: the same transformation in training and when a trained module acts.

RLlib's default encoders take a 1-D ``Box`` (an MLP) or a channel-last image ``Box`` (a CNN), and
its Gaussian action distribution produces a flat vector. The astrogym envs differ, so an
:class:`Adapter` maps each observation and action, and :class:`RLlibEnv` applies it inside
RLlib's env runners::

    InterferometerLock   Box (2, H)          -> flattened to (2H,) for the default MLP
    AdaptiveOptics       Box (C, N, N)       -> kept channel-first for the custom CNN (agents/rllib_modules.py),
                                                or flattened for SAC (RLlib's SAC takes a vector);
                         action Box (N, N)   -> flat (N*N,), reshaped back for the env
    TelescopeScheduling  Dict (graph)        -> {nodes, globals, node_mask, action_mask}: the env's
                                                ``action_masks()`` added as a float mask (RLlib's masking
                                                convention); edges dropped (see MaskedNodeScheduler)

:class:`~astrogym.agents.rllib_policy.RLlibPolicy` builds the same adapter from the env it acts
in, so a checkpoint sees at evaluation exactly what it saw in training. Nothing here imports Ray.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

MASK_KEY = "action_mask"
# the Dict keys the scheduling module reads (edge_index / edges are not used: see the module's docstring)
SCHEDULING_KEYS = ("nodes", "globals", "node_mask")


class Adapter:
    """The observation and action maps between an env and what RLlib sees.

    Parameters
    ----------
    observation_space, action_space: the env's spaces.
    flatten_images: also flatten 3-D ``Box`` observations (for algorithms without the custom CNN).
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, flatten_images: bool = False):
        self.env_observation_space, self.env_action_space = observation_space, action_space
        if isinstance(observation_space, gym.spaces.Dict):
            if not isinstance(action_space, gym.spaces.Discrete):
                raise ValueError(f"a Dict observation needs a Discrete action space (for its mask), got {action_space}")
            missing = [k for k in SCHEDULING_KEYS if k not in observation_space.spaces]
            if missing:
                raise ValueError(f"Dict observation lacks {missing}; RLlib's adapter takes the scheduling graph "
                                 f"({', '.join(SCHEDULING_KEYS)})")
            self.kind = "masked"
            spaces = {k: _float_box(observation_space[k]) for k in SCHEDULING_KEYS}
            spaces[MASK_KEY] = gym.spaces.Box(0.0, 1.0, (int(action_space.n),), np.float32)
            self.observation_space = gym.spaces.Dict(spaces)
        elif isinstance(observation_space, gym.spaces.Box):
            image = len(observation_space.shape) == 3 and not flatten_images
            self.kind = "image" if image else ("vector" if len(observation_space.shape) == 1 else "flat")
            self.observation_space = observation_space if self.kind in ("image", "vector") else gym.spaces.Box(
                observation_space.low.reshape(-1), observation_space.high.reshape(-1), dtype=observation_space.dtype)
        else:
            raise ValueError(f"observation space {observation_space} is not supported by the RLlib backend; allowed: "
                             "Box, or the scheduling Dict")
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) != 1:
            self.action_space = gym.spaces.Box(action_space.low.reshape(-1), action_space.high.reshape(-1),
                                               dtype=action_space.dtype)
        elif isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
            self.action_space = action_space
        else:
            raise ValueError(f"action space {action_space} is not supported by the RLlib backend; allowed: Box, "
                             "Discrete")

    def observation(self, obs, env: gym.Env | None = None):
        """One env observation as RLlib sees it; the masked kind reads ``env.unwrapped.action_masks()``."""
        if self.kind == "masked":
            out = {k: np.asarray(obs[k], dtype=np.float32) for k in SCHEDULING_KEYS}
            out[MASK_KEY] = np.asarray(env.unwrapped.action_masks(), dtype=np.float32)
            return out
        if self.kind == "flat":
            return np.asarray(obs, dtype=self.observation_space.dtype).reshape(-1)
        return obs

    def action(self, action):
        """An action of the module as the env takes it (a flat Box action reshaped; clipped to the bounds)."""
        space = self.env_action_space
        if isinstance(space, gym.spaces.Box):
            a = np.asarray(action, dtype=space.dtype).reshape(space.shape)
            return np.clip(a, space.low, space.high)
        return int(np.asarray(action).reshape(()))


def _float_box(space: gym.Space) -> gym.spaces.Box:
    """A ``Box``/``MultiBinary`` entry as a float32 ``Box`` (torch batches floats)."""
    if isinstance(space, gym.spaces.MultiBinary):
        return gym.spaces.Box(0.0, 1.0, tuple(np.atleast_1d(space.n)), np.float32)
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
    raise ValueError(f"Dict entry {space} is neither Box nor MultiBinary")


class RLlibEnv(gym.Wrapper):
    """An env behind its :class:`Adapter`, with its own first seed (RLlib's overlap across env runners).

    RLlib seeds env runner ``w``'s vector env with ``seed + w`` and its sub-envs ``+ 0, 1, ...``, so
    with several envs per runner two runners share seeds. Here the ``i``-th env of runner ``w``
    starts from ``seed + w * envs_per_runner + i`` instead: distinct seeds, all in
    ``[seed, seed + (runners + 1) * envs_per_runner - 1]``, the range the run folder records.
    """

    def __init__(self, env: gym.Env, adapter: Adapter, first_seed: int | None = None):
        super().__init__(env)
        self.adapter = adapter
        self.observation_space, self.action_space = adapter.observation_space, adapter.action_space
        self._first_seed = first_seed

    def reset(self, *, seed=None, options=None):
        if self._first_seed is not None:  # the first reset: this env's own seed instead of RLlib's
            seed, self._first_seed = self._first_seed, None
        obs, info = self.env.reset(seed=seed, options=options)
        return self.adapter.observation(obs, self.env), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.adapter.action(action))
        return self.adapter.observation(obs, self.env), reward, terminated, truncated, info
