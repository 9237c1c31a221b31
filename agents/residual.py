"""Residual policies: a learned, bounded correction added to a classical controller's action.

``applied = clip(base(obs) + scale * correction(obs), low, high)`` with ``correction`` in [-1, 1].

Why: a learner whose correction starts at zero starts from a stable closed loop (the leaky
integrator's AO loop, the loop-shaping lock) instead of from an open loop that diverges or
loses lock in the first second; it only has to learn what the baseline gets wrong (residual
RL, Johannink et al. 2019; Silver et al. 2018). ``scale`` bounds how far it may move the
baseline's command, so even an untrained or badly trained correction cannot take the loop
arbitrarily far from the baseline.

The same mechanism serves training and evaluation:

* training wraps every env in :class:`ResidualActionWrapper` (the learner's action space is the
  correction's, the env's own shape and bounds); the hyperparameter entry's ``residual`` key
  turns it on (``{policy: integrator, scale: 0.3}``);
* a checkpoint trained that way carries ``NAME.residual.yml`` beside ``NAME.zip``, and
  :meth:`astrogym.agents.checkpoints.TrainedPolicy.load` returns a :class:`ResidualPolicy` that
  adds the same base controller's action, so ``astrogym evaluate`` plays the policy as trained.

The base policy's options are frozen when training starts (:func:`resolve_spec`: e.g. the
integrator gain tuned on a training seed), so the correction is always added to the controller
it was trained against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from astrogym.agents.base import Policy

RESIDUAL_SUFFIX = ".residual.yml"
RESIDUAL_FORMAT = 1
MAX_SCALE = 2.0


@dataclass(frozen=True)
class ResidualSpec:
    """Which controller the correction is added to, and how large it may be.

    Attributes
    ----------
    policy: a registered policy name for the env (``astrogym list --policies``), e.g. ``integrator``.
    scale: the correction's bound in action units, in (0, 2].
    options: the base policy's options (frozen at training start; see :func:`resolve_spec`).
    """

    policy: str
    scale: float
    options: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "residual") -> "ResidualSpec":
        if not isinstance(data, dict):
            raise TypeError(f"{where} must be a mapping {{policy: NAME, scale: X[, options: {{...}}]}}, got "
                            f"{type(data).__name__}")
        unknown = sorted(set(data) - {"policy", "scale", "options", "format"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed policy, scale, options")
        policy = data.get("policy")
        if not isinstance(policy, str) or not policy:
            raise ValueError(f"{where}.policy must name a registered policy, got {policy!r}")
        scale = data.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 < float(scale) <= MAX_SCALE:
            raise ValueError(f"{where}.scale={scale!r} is out of range; allowed (0, {MAX_SCALE}]")
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise TypeError(f"{where}.options must be a mapping, got {type(options).__name__}")
        return cls(policy, float(scale), dict(options))

    def to_dict(self) -> dict:
        return {"format": RESIDUAL_FORMAT, "policy": self.policy, "scale": self.scale, "options": dict(self.options)}


def _no_tuning_env(**_: Any) -> gym.Env:
    raise ValueError("the residual's base policy needs its options frozen (resolve_spec) before it is rebuilt")


def build_base(spec: ResidualSpec, env: gym.Env, make_env=None, tuning_seed: int = 0) -> Any:
    """The base controller of ``spec`` for ``env``, through the policy registry."""
    from astrogym.agents.registry import PolicyContext, make_policy

    ctx = PolicyContext(env=env, make_env=make_env or _no_tuning_env, tuning_seed=tuning_seed,
                        options=dict(spec.options))
    return make_policy(spec.policy, ctx, env.spec.id if env.spec is not None else None)


def resolve_spec(spec: ResidualSpec, env: gym.Env, make_env, tuning_seed: int) -> ResidualSpec:
    """Freeze the base policy's tuned options (``registry_options()``, e.g. the integrator gain) into the spec."""
    base = build_base(spec, env, make_env, tuning_seed)
    frozen = getattr(base, "registry_options", lambda: {})()
    return ResidualSpec(spec.policy, spec.scale, {**frozen, **spec.options})


def _check_correction(action: Any, space: gym.spaces.Box) -> np.ndarray:
    a = np.asarray(action)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"residual correction must be a real array, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if a.shape != space.shape:
        raise ValueError(f"residual correction has shape {a.shape}; expected {space.shape}")
    if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
        raise ValueError("residual correction must be finite and inside [-1, 1] (it is scaled by residual.scale)")
    return a


class ResidualActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The env with the base controller in the loop: the agent's action is the bounded correction.

    Parameters
    ----------
    env: a Box-action astrogym env.
    spec: a :class:`ResidualSpec` (or its dict) with frozen base options.

    The observation, reward and info are the env's; the action space is the env's (the correction
    has the same shape, in [-1, 1]). Out-of-range or non-finite corrections raise ``ValueError``.
    """

    def __init__(self, env: gym.Env, spec: ResidualSpec | dict):
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec.to_dict() if isinstance(spec, ResidualSpec) else spec)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, gym.spaces.Box):
            raise TypeError(f"residual control needs a Box action space, got {env.action_space}")
        self.residual_spec = spec if isinstance(spec, ResidualSpec) else ResidualSpec.from_dict(spec)
        self.base = build_base(self.residual_spec, env)
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)
        self._obs: Any = None
        self._start = True

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        if hasattr(self.base, "reset"):
            self.base.reset()
        self._obs, self._start = obs, True
        return obs, info

    def step(self, action):
        correction = _check_correction(action, self.action_space)
        base_action, _ = self.base.predict(self._obs, episode_start=np.array([self._start]))
        space = self.env.action_space
        applied = np.clip(np.asarray(base_action, np.float32) + self.residual_spec.scale * correction, space.low, space.high)
        obs, reward, terminated, truncated, info = self.env.step(applied.astype(space.dtype))
        self._obs, self._start = obs, False
        return obs, reward, terminated, truncated, info


class ResidualPolicy(Policy):
    """``clip(base + scale * correction)`` behind ``predict``: a residual checkpoint as trained.

    Parameters
    ----------
    correction: the learned policy (a :class:`~astrogym.agents.checkpoints.TrainedPolicy`).
    base: the base controller (built with the frozen options of the checkpoint's spec).
    spec: the :class:`ResidualSpec` it was trained with.
    action_space: the env's action space (bounds of the applied action).
    """

    def __init__(self, correction: Any, base: Any, spec: ResidualSpec, action_space: gym.spaces.Box):
        self.correction, self.base, self.residual_spec, self.action_space = correction, base, spec, action_space
        self.name = getattr(correction, "name", "residual")

    def reset(self) -> None:
        for part in (self.base, self.correction):
            if hasattr(part, "reset"):
                part.reset()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        base_action, _ = self.base.predict(observation, episode_start=episode_start)
        correction, state = self.correction.predict(observation, state=state, episode_start=episode_start,
                                                    deterministic=deterministic)
        applied = np.asarray(base_action, np.float32) + self.residual_spec.scale * np.asarray(correction, np.float32)
        return np.clip(applied, self.action_space.low, self.action_space.high).astype(self.action_space.dtype), state
