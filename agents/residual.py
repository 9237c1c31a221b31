"""Residual policies: a learned, bounded correction added to a classical controller's action.

``applied = clip(base(obs) + scale * correction(obs), low, high)`` with ``correction`` in [-1, 1];
or, with ``band_hz``, a *band gain*: ``applied = clip(base + scale * correction * BP(base))``, where
``BP`` is a causal 2nd-order Butterworth band-pass of the base's own command history.

Why the band form exists: when what the baseline gets wrong lives in one band of its command
(the loop-shaping lock injects sensor noise at 10-30 Hz, ~1e-4 of its full-scale command), an
additive correction must resolve that tiny signal, and its white exploration noise lands in every
band at once (measured on training seeds: noise of 2.5e-5 cut the lock's high-frequency score
from 0.37 to 0.06). A gain on the band-passed command explores only inside the band and in
proportion to what is there; ``correction = -1`` cancels the band's centre frequency (elsewhere the
command is multiplied by ``|1 - BP|``, which the policy's state-dependent gain has to live with).

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
from astrogym.envs.common.linear import normalized_sos, sos_step_batch

RESIDUAL_SUFFIX = ".residual.yml"
RESIDUAL_FORMAT = 1
MAX_SCALE = 2.0


@dataclass(frozen=True)
class ResidualSpec:
    """Which controller the correction is added to, and how large it may be.

    Attributes
    ----------
    policy: a registered policy name for the env (``astrogym list --policies``), e.g. ``integrator``.
    scale: the correction's bound in action units, in (0, 2] (with ``band_hz``: the bound of the gain).
    options: the base policy's options (frozen at training start; see :func:`resolve_spec`).
    band_hz: ``[low, high]`` for the band-gain form, inside (0, Nyquist) of the env's sample rate.
    """

    policy: str
    scale: float
    options: dict = field(default_factory=dict)
    band_hz: tuple[float, float] | None = None  # the band-gain form (module docstring)

    @classmethod
    def from_dict(cls, data: Any, where: str = "residual") -> "ResidualSpec":
        if not isinstance(data, dict):
            raise TypeError(f"{where} must be a mapping {{policy: NAME, scale: X[, options: {{...}}]}}, got "
                            f"{type(data).__name__}")
        unknown = sorted(set(data) - {"policy", "scale", "options", "format", "band_hz"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed policy, scale, options, band_hz")
        policy = data.get("policy")
        if not isinstance(policy, str) or not policy:
            raise ValueError(f"{where}.policy must name a registered policy, got {policy!r}")
        scale = data.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 < float(scale) <= MAX_SCALE:
            raise ValueError(f"{where}.scale={scale!r} is out of range; allowed (0, {MAX_SCALE}]")
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise TypeError(f"{where}.options must be a mapping, got {type(options).__name__}")
        band = data.get("band_hz")
        if band is not None:
            ok = (isinstance(band, (list, tuple)) and len(band) == 2
                  and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in band)
                  and 0.0 < float(band[0]) < float(band[1]))
            if not ok:
                raise ValueError(f"{where}.band_hz={band!r}; allowed [low, high] with 0 < low < high (Hz)")
            band = (float(band[0]), float(band[1]))
        return cls(policy, float(scale), dict(options), band)

    def to_dict(self) -> dict:
        out = {"format": RESIDUAL_FORMAT, "policy": self.policy, "scale": self.scale, "options": dict(self.options)}
        if self.band_hz is not None:
            out["band_hz"] = list(self.band_hz)
        return out


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
    ResidualMixer(spec, env, 1)  # a band outside the env's Nyquist fails here
    return ResidualSpec(spec.policy, spec.scale, {**frozen, **spec.options}, spec.band_hz)


def _sample_rate_hz(env: gym.Env) -> float:
    config = getattr(env.unwrapped, "config", None)
    for name in ("sample_rate_hz", "loop_rate_hz"):
        if hasattr(config, name):
            return float(getattr(config, name))
    raise ValueError("residual band_hz needs an env whose config has sample_rate_hz or loop_rate_hz")


class ResidualMixer:
    """Base action + correction -> applied action, for a batch of ``n`` envs (band-pass states per env)."""

    def __init__(self, spec: ResidualSpec, env: gym.Env, n: int):
        import scipy.signal

        self.spec, self.space = spec, env.action_space
        self.sos = None
        if spec.band_hz is not None:
            fs = _sample_rate_hz(env)
            if spec.band_hz[1] >= fs / 2:
                raise ValueError(f"residual band_hz={list(spec.band_hz)} must lie below Nyquist ({fs / 2:g} Hz)")
            self.sos = normalized_sos(scipy.signal.butter(2, spec.band_hz, "bandpass", fs=fs, output="sos"))
        self._zi = np.zeros((n, int(np.prod(self.space.shape)), 0 if self.sos is None else self.sos.shape[0], 2))

    def reset(self) -> None:
        self._zi[:] = 0.0

    def __call__(self, base_action, correction, episode_start=None) -> np.ndarray:
        base = np.asarray(base_action, np.float64)
        corr = np.asarray(correction, np.float64)
        if self.sos is None:
            applied = base + self.spec.scale * corr
        else:
            batch = base.reshape(-1, int(np.prod(self.space.shape)))
            if self._zi.shape[0] != batch.shape[0]:
                self._zi = np.zeros((batch.shape[0], batch.shape[1], self.sos.shape[0], 2))
            if episode_start is not None:
                self._zi[np.asarray(episode_start, dtype=bool).reshape(-1)] = 0.0
            band = np.empty_like(batch)
            for j in range(batch.shape[1]):
                column = np.empty(batch.shape[0])
                zi = np.ascontiguousarray(self._zi[:, j])
                sos_step_batch(self.sos, zi, np.ascontiguousarray(batch[:, j]), column)
                self._zi[:, j] = zi
                band[:, j] = column
            applied = base + self.spec.scale * corr * band.reshape(base.shape)
        return np.clip(applied, self.space.low, self.space.high).astype(self.space.dtype)


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
        self.mixer = ResidualMixer(self.residual_spec, env, 1)
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)
        self._obs: Any = None
        self._start = True

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        if hasattr(self.base, "reset"):
            self.base.reset()
        self.mixer.reset()
        self._obs, self._start = obs, True
        return obs, info

    def step(self, action):
        correction = _check_correction(action, self.action_space)
        start = np.array([self._start])
        base_action, _ = self.base.predict(self._obs, episode_start=start)
        obs, reward, terminated, truncated, info = self.env.step(self.mixer(base_action, correction, start))
        self._obs, self._start = obs, False
        return obs, reward, terminated, truncated, info


class ResidualPolicy(Policy):
    """``clip(base + scale * correction)`` behind ``predict``: a residual checkpoint as trained.

    Parameters
    ----------
    correction: the learned policy (a :class:`~astrogym.agents.checkpoints.TrainedPolicy`).
    base: the base controller (built with the frozen options of the checkpoint's spec).
    spec: the :class:`ResidualSpec` it was trained with.
    env: the env (its action space bounds the applied action; its sample rate sets ``band_hz``).
    """

    def __init__(self, correction: Any, base: Any, spec: ResidualSpec, env: gym.Env):
        self.correction, self.base, self.residual_spec, self.action_space = correction, base, spec, env.action_space
        self.mixer = ResidualMixer(spec, env, 1)
        self.name = getattr(correction, "name", "residual")

    def reset(self) -> None:
        self.mixer.reset()
        for part in (self.base, self.correction):
            if hasattr(part, "reset"):
                part.reset()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        base_action, _ = self.base.predict(observation, episode_start=episode_start)
        correction, state = self.correction.predict(observation, state=state, episode_start=episode_start,
                                                    deterministic=deterministic)
        return self.mixer(base_action, correction, episode_start), state


class ConstantCorrection(Policy):
    """A correction that never changes: the residual structure without learning (an ablation baseline)."""

    def __init__(self, value: float, env: gym.Env):
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"value={value} is out of range; allowed [-1, 1]")
        self.value, self.observation_space, self.action_space = float(value), env.observation_space, env.action_space

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation)
        batch = obs.shape[:1] if obs.ndim > len(self.observation_space.shape) else ()
        return np.full(batch + self.action_space.shape, self.value, np.float32), state
