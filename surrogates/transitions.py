"""Recorded transitions ``(obs, action, reward, next_obs, terminated, truncated)`` from any env and policy.

One collector and one on-disk format for every learned model of :mod:`astrogym.surrogates`: the
dynamics ensembles (:mod:`~astrogym.surrogates.dynamics`), plant identification
(:mod:`~astrogym.surrogates.system_id`) and the density estimators (shields fit on features of
recorded normal operation).

File format (``Transitions.save``): a NumPy ``.npz`` archive written atomically, holding

* ``format`` = ``"astrogym.surrogates.Transitions"`` and ``version`` (1);
* ``obs`` (N, *obs_shape) and ``next_obs`` (N, *obs_shape) float32, ``actions`` (N, *action_shape)
  float32 (the action *applied*, exploration noise included), ``exploration`` (N, *action_shape) float32
  (the noise added to the policy's action, zeros without: the excitation for closed-loop system
  identification), ``rewards`` (N,) float64,
  ``terminated`` and ``truncated`` (N,) bool, ``episode`` (N,) int64 (index of the episode in the
  collection, for splitting by episode) and ``step`` (N,) int64 (the step within its episode);
* ``metadata``: a JSON string (env id, env keyword arguments, policy, noise, seeds).

``done = terminated | truncated``; ``next_obs`` of a done step is the episode's last observation,
not the next episode's first. Box observations and Box or Discrete actions only: a ``Dict``
observation (the scheduling graph) raises ``TypeError``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from astrogym.envs.common.files import atomic_write_bytes

FORMAT = "astrogym.surrogates.Transitions"
VERSION = 1
_ARRAYS = ("obs", "actions", "exploration", "rewards", "next_obs", "terminated", "truncated", "episode", "step")


@dataclass
class Transitions:
    """A batch of transitions (see the module docstring for the fields and the file format)."""

    obs: np.ndarray
    actions: np.ndarray
    exploration: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.next_obs = np.asarray(self.next_obs, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.exploration = np.asarray(self.exploration, dtype=np.float32)
        if self.exploration.shape != self.actions.shape:
            raise ValueError(f"Transitions.exploration has shape {self.exploration.shape}, actions {self.actions.shape}")
        self.rewards = np.asarray(self.rewards, dtype=np.float64).reshape(-1)
        self.terminated = np.asarray(self.terminated, dtype=bool).reshape(-1)
        self.truncated = np.asarray(self.truncated, dtype=bool).reshape(-1)
        self.episode = np.asarray(self.episode, dtype=np.int64).reshape(-1)
        self.step = np.asarray(self.step, dtype=np.int64).reshape(-1)
        n = self.obs.shape[0]
        for name in _ARRAYS:
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"Transitions.{name} has {getattr(self, name).shape[0]} rows, obs has {n}")
        if self.next_obs.shape != self.obs.shape:
            raise ValueError(f"Transitions.next_obs has shape {self.next_obs.shape}, obs {self.obs.shape}")

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    @property
    def n_episodes(self) -> int:
        return int(np.unique(self.episode).size)

    def subset(self, index) -> "Transitions":
        """The rows ``index`` (a mask or indices), metadata shared."""
        return Transitions(**{name: getattr(self, name)[index] for name in _ARRAYS}, metadata=dict(self.metadata))

    def split_episodes(self, fraction: float, seed: int = 0) -> tuple["Transitions", "Transitions"]:
        """(train, held out): a random ``fraction`` of whole episodes held out (at least one)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction={fraction!r}; allowed (0, 1)")
        episodes = np.unique(self.episode)
        if episodes.size < 2:
            raise ValueError("split_episodes needs at least two episodes")
        rng = np.random.default_rng(seed)
        held = rng.choice(episodes, size=max(1, int(round(fraction * episodes.size))), replace=False)
        mask = np.isin(self.episode, held)
        return self.subset(~mask), self.subset(mask)

    @classmethod
    def concatenate(cls, parts: list["Transitions"]) -> "Transitions":
        """Join collections; episode indices are renumbered so they stay distinct."""
        if not parts:
            raise ValueError("concatenate needs at least one Transitions")
        arrays = {name: [] for name in _ARRAYS}
        offset = 0
        for part in parts:
            for name in _ARRAYS:
                value = getattr(part, name)
                arrays[name].append(value + offset if name == "episode" else value)
            offset += int(part.episode.max()) + 1 if len(part) else 0
        meta = dict(parts[0].metadata)
        meta["parts"] = [p.metadata for p in parts]
        return cls(**{k: np.concatenate(v) for k, v in arrays.items()}, metadata=meta)

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` file atomically (a reader never sees half of it)."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, format=np.array(FORMAT), version=np.array(VERSION),
                            metadata=np.array(json.dumps(self.metadata, default=str)),
                            **{name: getattr(self, name) for name in _ARRAYS})
        atomic_write_bytes(path, buffer.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Transitions":
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, not a transitions file, from a newer version or inconsistent.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"transitions file {str(path)!r} does not exist")
        try:
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except Exception as exc:  # noqa: BLE001 - zip, zlib and format errors all mean "not readable"
            raise ValueError(f"{path}: not a readable transitions file ({type(exc).__name__}: {exc})") from None
        if str(contents.get("format", "")) != FORMAT:
            raise ValueError(f"{path}: not an astrogym transitions file (format tag missing)")
        version = int(contents.get("version", -1))
        if not 1 <= version <= VERSION:
            raise ValueError(f"{path}: transitions format version {version} is not supported (reads 1-{VERSION})")
        missing = [name for name in _ARRAYS if name not in contents]
        if missing:
            raise ValueError(f"{path}: transitions file lacks {', '.join(missing)}")
        try:
            metadata = json.loads(str(contents.get("metadata", "{}")))
            return cls(**{name: contents[name] for name in _ARRAYS}, metadata=metadata)
        except ValueError as exc:
            raise ValueError(f"{path}: inconsistent transitions file ({exc})") from None


@dataclass(frozen=True)
class ExplorationNoise:
    """Noise added to a Box policy's actions while collecting, then clipped to the action bounds.

    Attributes
    ----------
    kind: ``"gaussian"`` (N(0, scale^2) per entry) or ``"sign"`` (+-scale per entry, PO4AO's warm-up noise).
    scale: in action units at the first step.
    decay_steps: the scale falls linearly to 0 over this many steps of the collection (0: constant).
    """

    kind: str = "gaussian"
    scale: float = 0.1
    decay_steps: int = 0

    def __post_init__(self):
        if self.kind not in ("gaussian", "sign"):
            raise ValueError(f"ExplorationNoise.kind={self.kind!r}; allowed 'gaussian' or 'sign'")
        if not (np.isfinite(self.scale) and self.scale >= 0.0):
            raise ValueError(f"ExplorationNoise.scale={self.scale!r}; allowed a finite number >= 0")
        if int(self.decay_steps) != self.decay_steps or self.decay_steps < 0:
            raise ValueError(f"ExplorationNoise.decay_steps={self.decay_steps!r}; allowed an integer >= 0")

    def sample(self, shape, step: int, rng: np.random.Generator) -> np.ndarray:
        scale = self.scale if self.decay_steps == 0 else self.scale * max(0.0, 1.0 - step / self.decay_steps)
        if self.kind == "gaussian":
            return rng.normal(0.0, scale, shape)
        return scale * rng.choice((-1.0, 1.0), size=shape)


def collect(env: gym.Env, policy: Any, steps: int, *, seed: int, noise: ExplorationNoise | None = None,
            reset_options: dict | None = None, progress: bool = False, metadata: dict | None = None) -> Transitions:
    """Run ``policy`` in ``env`` for ``steps`` steps and record every transition.

    Parameters
    ----------
    env: a Gymnasium env with a Box observation space and a Box or Discrete action space.
    policy: anything with the ``predict(obs, state, episode_start, deterministic)`` interface
        (baselines, trained policies, SB3 models).
    steps: transitions to record; the last episode may be cut short (its last row is not done).
    seed: the first episode resets with ``seed``, the k-th with ``seed + k``; the noise RNG is
        seeded from it too, so a collection is reproducible.
    noise: exploration noise on Box actions (``None``: the policy's own actions).
    reset_options: passed to every ``reset``.
    progress: show a tqdm bar.
    metadata: extra entries stored with the transitions.
    """
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise TypeError(f"collect records Box observations; this env has {type(env.observation_space).__name__} "
                        "(the scheduling graph is not supported)")
    box_action = isinstance(env.action_space, gym.spaces.Box)
    if not box_action and not isinstance(env.action_space, gym.spaces.Discrete):
        raise TypeError(f"collect records Box or Discrete actions; this env has {type(env.action_space).__name__}")
    if noise is not None and not box_action:
        raise ValueError("exploration noise applies to Box actions only")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r}; allowed an integer >= 1")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(1)[0])
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    buf = {"obs": np.empty((steps, *obs_shape), np.float32), "next_obs": np.empty((steps, *obs_shape), np.float32),
           "actions": np.empty((steps, *act_shape), np.float32),
           "exploration": np.zeros((steps, *act_shape), np.float32), "rewards": np.empty(steps),
           "terminated": np.zeros(steps, bool), "truncated": np.zeros(steps, bool),
           "episode": np.empty(steps, np.int64), "step": np.empty(steps, np.int64)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="collect", unit="step")
    episode, t = 0, 0
    obs, _ = env.reset(seed=int(seed), options=reset_options)
    state, start = None, np.ones(1, dtype=bool)
    low = env.action_space.low if box_action else None
    high = env.action_space.high if box_action else None
    for i in range(steps):
        action, state = policy.predict(obs, state=state, episode_start=start, deterministic=True)
        start = np.zeros(1, dtype=bool)
        action = np.asarray(action)
        if noise is not None:
            own = action
            action = np.clip(own + noise.sample(own.shape, i, rng), low, high).astype(env.action_space.dtype)
            buf["exploration"][i] = action - own  # what was added, after the clip
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buf["obs"][i], buf["next_obs"][i], buf["actions"][i] = obs, next_obs, action
        buf["rewards"][i], buf["terminated"][i], buf["truncated"][i] = reward, terminated, truncated
        buf["episode"][i], buf["step"][i] = episode, t
        t += 1
        if terminated or truncated:
            episode, t = episode + 1, 0
            obs, _ = env.reset(seed=int(seed) + episode, options=reset_options)
            state, start = None, np.ones(1, dtype=bool)
        else:
            obs = next_obs
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    spec = getattr(env, "spec", None)
    meta = {"env_id": getattr(spec, "id", None), "env_kwargs": dict(getattr(spec, "kwargs", {}) or {}),
            "policy": type(policy).__name__, "noise": None if noise is None else vars(noise), "seed": int(seed),
            "steps": int(steps), **(metadata or {})}
    return Transitions(**buf, metadata=meta)
