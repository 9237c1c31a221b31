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
observation. A domain supplies a compact summary (e.g. log mean squares of the lock's pitch and
torque histories, :func:`lock_features`), which is what keeps the flow small and well calibrated.
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


class OODDetector:
    """Log-density of observation features under a flow fitted on normal operation, with a calibrated threshold.

    Parameters
    ----------
    features: ``obs -> 1-D array``; :func:`flat_features` by default.
    flow_kwargs: passed to :class:`FlowDensityEstimator` (``transforms``, ``hidden``, ``flow``).
    """

    def __init__(self, features: Callable[[Any], np.ndarray] = flat_features, **flow_kwargs):
        self.features = features
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

    def save(self, path: str | Path) -> Path:
        """The flow file with the threshold in its metadata (the feature function is code: pass it to :meth:`load`)."""
        self.estimator.metadata.update(ood_threshold=self.threshold, false_alarm_rate=self.false_alarm_rate)
        return self.estimator.save(path)

    @classmethod
    def load(cls, path: str | Path, features: Callable[[Any], np.ndarray] = flat_features) -> "OODDetector":
        det = cls(features)
        det.estimator = FlowDensityEstimator.load(path)
        meta = det.estimator.metadata
        det.threshold, det.false_alarm_rate = meta.get("ood_threshold"), meta.get("false_alarm_rate")
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
    """

    learned: Any
    fallback: Any
    detector: OODDetector
    enter_after: int = 2
    release_after: int = 64
    log: list[HandOver] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.detector.threshold is None:
            raise ValueError("detector must be calibrated (OODDetector.calibrate) before shielding a policy")
        if self.enter_after < 1 or self.release_after < 1:
            raise ValueError(f"enter_after={self.enter_after} and release_after={self.release_after} must be >= 1")
        self.reset()

    def reset(self) -> None:
        """Start an episode: the learned policy in control, counters cleared (the log is kept)."""
        self.shielded, self._alarms, self._calm, self._step = False, 0, 0, 0

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        if episode_start is not None and np.any(episode_start):
            self.reset()
        alarm, score = self.detector.is_out_of_distribution(obs)
        self._alarms, self._calm = (self._alarms + 1, 0) if alarm else (0, self._calm + 1)
        if not self.shielded and self._alarms >= self.enter_after:
            self.shielded = True
            self.log.append(HandOver(self._step, "fallback", score))
        elif self.shielded and self._calm >= self.release_after:
            self.shielded = False
            self.log.append(HandOver(self._step, "learned", score))
        self._step += 1
        policy = self.fallback if self.shielded else self.learned
        return policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
