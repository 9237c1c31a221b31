"""A learned dynamics model behind the Gymnasium API: :class:`SurrogateEnv` and its batched :class:`SurrogateVectorEnv`.

The surrogate has the real env's spaces, so any policy or SB3 algorithm that runs on the real env
runs on it. Episodes start from recorded real observations (a :class:`Transitions`' ``obs``), each
episode follows one ensemble member drawn at reset (trajectory sampling, Chua et al. 2018) and,
with ``sample=True``, draws each step from that member's predicted noise. The reward is
``reward_fn(obs, action, next_obs)`` where the real env's reward is a function of those
(none of the astrogym control envs' is: their rewards depend on hidden state), else the model's
learned reward. Observations are clipped into the observation space's bounds.

:class:`SurrogateVectorEnv` steps N copies in one batched model call per member, which is where a
surrogate pays: ``python -m astrogym.experiments.bench_surrogate`` prints its steps/s against the
real env's.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from astrogym.surrogates.dynamics import EnsembleDynamics

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _check_model(model: EnsembleDynamics, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                 reward_fn) -> None:
    if not isinstance(model, EnsembleDynamics):
        raise TypeError(f"model must be an EnsembleDynamics, got {type(model).__name__}")
    if not model.fitted:
        raise ValueError("the model is not fitted: call fit (or load a saved model) first")
    if tuple(observation_space.shape) != model.spec.obs_shape or tuple(action_space.shape) != model.spec.action_shape:
        raise ValueError(f"the model takes obs {model.spec.obs_shape} and actions {model.spec.action_shape}; the spaces "
                         f"are {observation_space.shape} and {action_space.shape}")
    if reward_fn is None and not model.spec.learn_reward:
        raise ValueError("the model does not learn the reward: pass reward_fn")


def _checked_actions(actions, space: gym.spaces.Box, low, high, what: str) -> np.ndarray:
    """Float32 actions of ``space``'s shape, finite, clipped to ``[low, high]``; else ``ValueError``."""
    a = np.asarray(actions, dtype=np.float32)
    if a.shape != space.shape:
        raise ValueError(f"{what} has shape {a.shape}; expected {space.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} has non-finite entries")
    return np.clip(a, low, high)


def _start_states(start_states, shape) -> np.ndarray:
    states = np.asarray(getattr(start_states, "obs", start_states), dtype=np.float32)
    if states.ndim != len(shape) + 1 or states.shape[1:] != tuple(shape) or states.shape[0] < 1:
        raise ValueError(f"start_states must be Transitions or an array (n, *{tuple(shape)}), got shape {states.shape}")
    return states


class SurrogateEnv(gym.Env):
    """One copy of the real env, simulated by a learned :class:`EnsembleDynamics`.

    ## Observation and Action Spaces
    Those of the real env (``observation_space``, ``action_space``).

    ## Starting State
    A recorded real observation drawn uniformly from ``start_states`` with the env's RNG; reset
    ``options`` may give ``{"start": index}`` to start from a chosen one, or ``{"member": k}`` to
    follow member ``k``.

    ## Rewards
    ``reward_fn(obs, action, next_obs)`` if given, else the model's predicted reward (ensemble member's mean).

    ## Episode End
    Never terminated; truncated after ``episode_steps``.

    Parameters
    ----------
    model: a fitted ensemble.
    observation_space, action_space: the real env's (``from_env`` copies them).
    start_states: :class:`Transitions` or an array of observations.
    episode_steps: episode length.
    reward_fn: the reward as a function of ``(obs, action, next_obs)``, or ``None`` for the learned one.
    sample: draw each step from the member's predicted Gaussian (aleatoric noise) rather than its mean.
    """

    metadata = {"render_modes": []}

    def __init__(self, model: EnsembleDynamics, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                 start_states, episode_steps: int = 200, reward_fn: RewardFn | None = None, sample: bool = True):
        _check_model(model, observation_space, action_space, reward_fn)
        if int(episode_steps) != episode_steps or episode_steps < 1:
            raise ValueError(f"episode_steps={episode_steps!r}; allowed an integer >= 1")
        self.model, self.reward_fn, self.sample = model, reward_fn, bool(sample)
        self.observation_space, self.action_space = observation_space, action_space
        self.start_states = _start_states(start_states, observation_space.shape)
        self.episode_steps = int(episode_steps)
        self._obs: np.ndarray | None = None
        self._t = 0
        self._member = 0
        self._gen = torch.Generator()

    @classmethod
    def from_env(cls, env: gym.Env, model: EnsembleDynamics, start_states, **kwargs) -> "SurrogateEnv":
        """A surrogate with ``env``'s spaces."""
        return cls(model, env.observation_space, env.action_space, start_states, **kwargs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"start", "member"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; allowed 'start', 'member'")
        n, k = len(self.start_states), len(self.model.members)
        start = int(options.get("start", self.np_random.integers(n)))
        if not 0 <= start < n:
            raise ValueError(f"reset option start={start}; allowed 0..{n - 1}")
        self._member = int(options.get("member", self.np_random.integers(k)))
        if not 0 <= self._member < k:
            raise ValueError(f"reset option member={self._member}; allowed 0..{k - 1}")
        self._gen.manual_seed(int(self.np_random.integers(2**62)))
        self._obs = self.start_states[start].copy()
        self._t = 0
        return self._obs.copy(), {"member": self._member, "start": start}

    def step(self, action):
        if self._obs is None or self._t >= self.episode_steps:
            raise gym.error.ResetNeeded("call reset before step (and after the episode is truncated)")
        a = _checked_actions(action, self.action_space, self.action_space.low, self.action_space.high, "action")
        with torch.no_grad():
            nxt, r = self.model.step(torch.from_numpy(self._obs[None]), torch.from_numpy(a[None]),
                                     member=self._member, sample=self.sample, generator=self._gen)
        nxt = np.clip(nxt.numpy()[0], self.observation_space.low, self.observation_space.high).astype(np.float32)
        reward = float(self.reward_fn(self._obs, a, nxt)) if self.reward_fn is not None else float(r[0])
        self._obs = nxt
        self._t += 1
        return nxt.copy(), reward, False, self._t >= self.episode_steps, {"member": self._member}


class SurrogateVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` surrogate copies stepped together (one batched model call per ensemble member).

    Gymnasium's ``next_step`` autoreset: the step after a copy's episode ends resets that copy
    (its action is ignored, its reward 0). Seeding ``reset(seed=s)`` seeds copy ``i`` with ``s + i``.
    Other behaviour as :class:`SurrogateEnv`.
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, model: EnsembleDynamics, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                 start_states, num_envs: int, episode_steps: int = 200, reward_fn: RewardFn | None = None,
                 sample: bool = True):
        _check_model(model, observation_space, action_space, reward_fn)
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r}; allowed an integer >= 1")
        if int(episode_steps) != episode_steps or episode_steps < 1:
            raise ValueError(f"episode_steps={episode_steps!r}; allowed an integer >= 1")
        self.model, self.reward_fn, self.sample = model, reward_fn, bool(sample)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = observation_space, action_space
        self.observation_space = gym.vector.utils.batch_space(observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(action_space, self.num_envs)
        self.start_states = _start_states(start_states, observation_space.shape)
        self.episode_steps = int(episode_steps)
        self._obs = np.zeros((self.num_envs, *observation_space.shape), np.float32)
        self._t = np.zeros(self.num_envs, np.int64)
        self._member = np.zeros(self.num_envs, np.int64)
        self._done = np.zeros(self.num_envs, bool)
        self._rng = np.random.default_rng()
        self._gen = torch.Generator()
        self._started = False

    @classmethod
    def from_env(cls, env: gym.Env, model: EnsembleDynamics, start_states, num_envs: int, **kwargs):
        return cls(model, env.observation_space, env.action_space, start_states, num_envs, **kwargs)

    def _reset_copies(self, index: np.ndarray) -> None:
        self._obs[index] = self.start_states[self._rng.integers(len(self.start_states), size=index.size)]
        self._member[index] = self._rng.integers(len(self.model.members), size=index.size)
        self._t[index] = 0
        self._done[index] = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if options:
            raise ValueError(f"SurrogateVectorEnv.reset takes no options, got {sorted(options)}")
        if seed is not None:
            self._rng = np.random.default_rng(int(seed))
            self._gen.manual_seed(int(seed))
        self._reset_copies(np.arange(self.num_envs))
        self._started = True
        return self._obs.copy(), {}

    def step(self, actions):
        if not self._started:
            raise gym.error.ResetNeeded("call reset before step")
        a = _checked_actions(actions, self.action_space, self.single_action_space.low, self.single_action_space.high,
                             "actions")
        rewards = np.zeros(self.num_envs)
        restart = np.flatnonzero(self._done)
        live = np.flatnonzero(~self._done)
        nxt = self._obs.copy()
        with torch.no_grad():
            for k in np.unique(self._member[live]):
                idx = live[self._member[live] == k]
                o, r = self.model.step(torch.from_numpy(self._obs[idx]), torch.from_numpy(a[idx]), member=int(k),
                                       sample=self.sample, generator=self._gen)
                nxt[idx] = np.clip(o.numpy(), self.single_observation_space.low, self.single_observation_space.high)
                if self.reward_fn is None:
                    rewards[idx] = r.numpy()
        if self.reward_fn is not None and live.size:
            rewards[live] = [float(self.reward_fn(self._obs[i], a[i], nxt[i])) for i in live]
        self._obs = nxt
        self._t[live] += 1
        truncated = np.zeros(self.num_envs, bool)
        truncated[live] = self._t[live] >= self.episode_steps
        if restart.size:
            self._reset_copies(restart)
        self._done = truncated.copy()
        return self._obs.copy(), rewards, np.zeros(self.num_envs, bool), truncated, {}


__all__ = ["SurrogateEnv", "SurrogateVectorEnv"]
