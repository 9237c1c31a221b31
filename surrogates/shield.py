"""An out-of-distribution shield: a flow fitted on normal operation decides who controls.

:class:`OODDetector` scores observations by their log-density under a
:class:`~astrogym.surrogates.flows.FlowDensityEstimator` fitted on features of normal operation,
and :meth:`OODDetector.calibrate` sets the threshold to the chosen false-alarm rate on *held-out*
normal data (the fitted data would give too few alarms). :class:`ShieldedPolicy` plays a learned
policy while the state is in distribution and hands control to a classical fallback while it is
not, with hysteresis: it hands over after ``enter_after`` consecutive alarms and hands back after
``release_after`` consecutive normal scores, and logs every hand-over. Both policies must share
the ``predict`` interface; the shield itself has it too, so it evaluates like any policy.

Features: what the detector sees is ``features(obs)``, a vector; the default flattens the
observation. A domain supplies a compact summary (log mean squares of the lock's pitch and torque
histories, :func:`lock_features`; of the AO measurement and commands, :func:`ao_features`), which is
what keeps the flow small and well calibrated. Features registered in :data:`FEATURES` are saved by
name with the detector, so :meth:`OODDetector.load` needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from astrogym.surrogates.flows import FlowDensityEstimator


def flat_features(obs) -> np.ndarray:
    """The observation as one flat float vector (the default features)."""
    return np.asarray(obs, dtype=np.float64).ravel()


def lock_features(obs) -> np.ndarray:
    """``InterferometerLock-v0``: per channel (pitch reading, torque), the log mean square over the newest 8 and
    all samples and the mean over all samples (6 numbers). A burst raises the mean squares; a sensor offset the
    loop has compensated leaves a constant torque, which only the mean shows."""
    h = np.asarray(obs, dtype=np.float64)
    tiny = 1e-12
    out = []
    for row in h:
        out += [np.log(np.mean(row[-8:] ** 2) + tiny), np.log(np.mean(row ** 2) + tiny), float(np.mean(row))]
    return np.array(out)


def ao_features(obs) -> np.ndarray:
    """``AdaptiveOptics*-v0`` (grid layout, history >= 2): log mean squares of the newest reconstructed
    measurement, of its change since the previous frame, of the newest command and of its change, and
    the log peak-to-mean ratio of each of the two newest maps (6 numbers). Faster wind raises the
    changes, a stuck actuator or a dead patch of subapertures makes the maps peaky or flat."""
    o = np.asarray(obs, dtype=np.float64)
    h = o.shape[0] // 2
    if o.ndim != 3 or h < 2:
        raise ValueError(f"ao_features needs a (2 H, N+1, N+1) observation with history H >= 2, got {o.shape}")
    tiny = 1e-12
    meas, cmd = o[0], o[h]
    ms = [np.mean(meas ** 2), np.mean((meas - o[1]) ** 2), np.mean(cmd ** 2), np.mean((cmd - o[h + 1]) ** 2)]
    peak = [np.max(meas ** 2) / (ms[0] + tiny), np.max(cmd ** 2) / (ms[2] + tiny)]
    return np.log(np.array(ms + peak) + tiny)


# feature functions a detector file may name (its metadata keeps the name, so loading needs no code)
FEATURES: dict[str, Callable[[Any], np.ndarray]] = {"flat": flat_features, "lock": lock_features, "ao": ao_features}


def _feature_function(features: str | Callable[[Any], np.ndarray]) -> tuple[str | None, Callable]:
    if callable(features):
        name = next((k for k, f in FEATURES.items() if f is features), None)
        return name, features
    if features not in FEATURES:
        raise ValueError(f"features={features!r} is not registered; allowed: {', '.join(FEATURES)} or a callable")
    return features, FEATURES[features]


class OODDetector:
    """Log-density of observation features under a flow fitted on normal operation, with a calibrated threshold.

    Parameters
    ----------
    features: ``obs -> 1-D array``, or the name of one in :data:`FEATURES`; ``"flat"`` by default.
    flow_kwargs: passed to :class:`FlowDensityEstimator` (``transforms``, ``hidden``, ``flow``).
    """

    def __init__(self, features: str | Callable[[Any], np.ndarray] = "flat", **flow_kwargs):
        self.features_name, self.features = _feature_function(features)
        self.flow_kwargs = flow_kwargs
        self.estimator: FlowDensityEstimator | None = None
        self.threshold: float | None = None
        self.false_alarm_rate: float | None = None

    def _matrix(self, observations) -> np.ndarray:
        return np.stack([self.features(o) for o in observations])

    def fit(self, observations, *, epochs: int = 60, seed: int = 0) -> "OODDetector":
        x = self._matrix(observations)
        self.estimator = FlowDensityEstimator(features=x.shape[1], **self.flow_kwargs).fit(x, epochs=epochs,
                                                                                           seed=seed)
        return self

    def score(self, observations) -> np.ndarray:
        """Log-density per observation (higher = more normal)."""
        if self.estimator is None:
            raise RuntimeError("fit the detector first")
        return self.estimator.log_prob(self._matrix(observations))

    def calibrate(self, held_out_normal, false_alarm_rate: float = 0.01) -> float:
        """Set the threshold so that ``false_alarm_rate`` of held-out normal observations score below it.

        Raises
        ------
        ValueError: a rate outside (0, 0.5], or fewer held-out observations than 10 / rate.
        """
        if not 0.0 < false_alarm_rate <= 0.5:
            raise ValueError(f"false_alarm_rate={false_alarm_rate} is out of range; allowed (0, 0.5]")
        scores = self.score(held_out_normal)
        if scores.size < 10 / false_alarm_rate:
            raise ValueError(f"calibrating to {false_alarm_rate:g} needs at least {int(np.ceil(10 / false_alarm_rate))} "
                             f"held-out observations, got {scores.size}")
        self.threshold = float(np.quantile(scores, false_alarm_rate))
        self.false_alarm_rate = false_alarm_rate
        return self.threshold

    def is_out_of_distribution(self, obs) -> tuple[bool, float]:
        if self.threshold is None:
            raise RuntimeError("calibrate the detector first")
        s = float(self.score([obs])[0])
        return s < self.threshold, s

    @property
    def metadata(self) -> dict:
        """What the detector's file carries besides the flow (threshold, features, how it was fitted)."""
        return {} if self.estimator is None else self.estimator.metadata

    def save(self, path: str | Path, **metadata) -> Path:
        """The flow file with the threshold, the features' name and ``metadata`` (JSON-like: how it was fitted).

        An unregistered feature function is code, not data: pass it again to :meth:`load`.
        """
        if self.estimator is None:
            raise RuntimeError("fit the detector before saving it")
        self.estimator.metadata.update(metadata, ood_threshold=self.threshold, false_alarm_rate=self.false_alarm_rate,
                                       features=self.features_name)
        return self.estimator.save(path)

    @classmethod
    def load(cls, path: str | Path, features: str | Callable[[Any], np.ndarray] | None = None) -> "OODDetector":
        """Read a file written by :meth:`save`; ``features`` defaults to the registered ones it names.

        Raises
        ------
        ValueError: not a flow file, or not a calibrated detector's (no threshold), or one whose feature
            function is not registered and ``features`` was not given.
        """
        estimator = FlowDensityEstimator.load(path)
        meta = estimator.metadata
        if meta.get("ood_threshold") is None:
            raise ValueError(f"{path}: a flow file, but not a calibrated OOD detector's (no ood_threshold)")
        if features is None:
            features = meta.get("features")
            if features is None:
                raise ValueError(f"{path}: its feature function is not a registered one; pass features= to load it")
        det = cls(features)
        det.estimator = estimator
        det.threshold, det.false_alarm_rate = meta["ood_threshold"], meta.get("false_alarm_rate")
        return det


@dataclass
class HandOver:
    """One switch of control: the step (since the last reset), who took over, and the score that decided."""

    step: int
    to: str  # "fallback" or "learned"
    score: float


@dataclass
class ShieldedPolicy:
    """``learned`` while the observation is in distribution, ``fallback`` while it is not (with hysteresis).

    Parameters
    ----------
    learned, fallback: policies with ``predict(obs, state=None, episode_start=None, deterministic=True)``.
    detector: a fitted and calibrated :class:`OODDetector`.
    enter_after: consecutive alarms before handing control to the fallback.
    release_after: consecutive normal scores before handing it back.
    check_every: score every this many decisions (the counters count checks). A flow's log-density
        costs milliseconds in PyTorch, more than a fast loop's step: the lock checks at 32 Hz, not 256.
    arm_after: decisions after a reset before the shield may act (lock acquisition is a transient the
        learned policy handles; handing a half-acquired loop to another controller is what loses it).
    keep_warm: both policies see every observation (the idle one's action is dropped), so a
        controller with internal state (filters, integrators) takes over from a current state, not a
        stale one (bumpless transfer); False runs only the one in control.
    """

    learned: Any
    fallback: Any
    detector: OODDetector
    enter_after: int = 2
    release_after: int = 64
    keep_warm: bool = True
    check_every: int = 1
    arm_after: int = 0
    log: list[HandOver] = field(default_factory=list)
    steps: int = 0  # decisions since construction (all episodes), and how many of them the fallback made
    fallback_steps: int = 0

    def __post_init__(self) -> None:
        if self.detector.threshold is None:
            raise ValueError("detector must be calibrated (OODDetector.calibrate) before shielding a policy")
        for name in ("enter_after", "release_after", "check_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is out of range; allowed >= 1")
        if int(self.arm_after) < 0:
            raise ValueError(f"arm_after={self.arm_after} is out of range; allowed >= 0")
        self.reset()

    def reset(self) -> None:
        """Start an episode: the learned policy in control, counters cleared (the log is kept)."""
        self.shielded, self._alarms, self._calm, self._step = False, 0, 0, 0

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        if episode_start is not None and np.any(episode_start):
            self.reset()
        if self._step >= self.arm_after and self._step % self.check_every == 0:
            alarm, score = self.detector.is_out_of_distribution(obs)
            self._alarms, self._calm = (self._alarms + 1, 0) if alarm else (0, self._calm + 1)
            if not self.shielded and self._alarms >= self.enter_after:
                self.shielded = True
                self.log.append(HandOver(self._step, "fallback", score))
            elif self.shielded and self._calm >= self.release_after:
                self.shielded = False
                self.log.append(HandOver(self._step, "learned", score))
        self._step += 1
        self.steps += 1
        self.fallback_steps += self.shielded
        active, idle = (self.fallback, self.learned) if self.shielded else (self.learned, self.fallback)
        if self.keep_warm:
            idle.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        return active.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
