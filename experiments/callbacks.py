"""stable-baselines3 callbacks that put the domain metrics into TensorBoard during training."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from astrogym.envs.adaptive_optics.metrics import episode_strehl
from astrogym.envs.interferometer import metrics


class LockMetricsCallback(BaseCallback):
    """Log InterferometerLock metrics of every finished episode to the SB3 logger (TensorBoard).

    Scalars, averaged over the episodes that ended since the last dump:
    ``lock/control_rms_10_30hz_nm`` (injected noise), ``lock/pitch_rms_below_3hz_rad``
    (alignment), ``lock/score_pitch``, ``lock/score_band``, ``lock/score_high`` (episode means)
    and ``lock/terminated`` (fraction of episodes that lost lock).

    Parameters
    ----------
    sample_rate_hz: the env's sample rate (for the spectra).
    """

    def __init__(self, sample_rate_hz: float = 256.0, verbose: int = 0):
        super().__init__(verbose)
        self.sample_rate_hz = sample_rate_hz
        self._signals: dict[int, list] = {}

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        for i, (info, done) in enumerate(zip(infos, dones)):
            if "pitch_rad" not in info:
                continue
            buf = self._signals.setdefault(i, [])
            buf.append((info["pitch_rad"], info["control_nm"], info["score_pitch"], info["score_band"],
                        info["score_high"]))
            if done:
                # SB3's VecEnvs mark a time-limit end as "TimeLimit.truncated"; any other end lost lock.
                self._log_episode(np.array(buf), terminated=not info.get("TimeLimit.truncated", False))
                buf.clear()
        return True

    def _log_episode(self, data: np.ndarray, terminated: bool) -> None:
        self.logger.record_mean("lock/terminated", float(terminated))
        for k, name in enumerate(("score_pitch", "score_band", "score_high"), start=2):
            self.logger.record_mean(f"lock/{name}", float(data[:, k].mean()))
        if len(data) >= max(16, int(self.sample_rate_hz / 2)):  # half a second resolves 10-30 Hz and < 3 Hz
            m = metrics.loop_metrics(data[:, 0], data[:, 1], self.sample_rate_hz)
            self.logger.record_mean("lock/control_rms_10_30hz_nm", m["control_rms_10_30hz_nm"])
            self.logger.record_mean("lock/pitch_rms_below_3hz_rad", m["pitch_rms_below_3hz_rad"])


class SchedulingMetricsCallback(BaseCallback):
    """Log TelescopeScheduling metrics of every finished episode to the SB3 logger (TensorBoard).

    Scalars, averaged over the episodes that ended since the last dump (from the env's final
    ``info``): ``schedule/priority_weighted_completion``, ``schedule/open_shutter_fraction``,
    ``schedule/mean_overhead_s``, ``schedule/mean_airmass``, ``schedule/completed_visits``,
    ``schedule/filter_changes`` and ``schedule/invalid_action_rate`` (masked actions chosen per step).
    """

    KEYS = ("priority_weighted_completion", "open_shutter_fraction", "mean_overhead_s", "mean_airmass",
            "completed_visits", "filter_changes")

    def __init__(self, verbose: int = 0):
        super().__init__(verbose)
        self._steps: dict[int, list[int]] = {}

    def _on_step(self) -> bool:
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"])):
            if "priority_weighted_completion" not in info:
                continue
            counts = self._steps.setdefault(i, [0, 0])
            counts[0] += 1
            counts[1] += int(bool(info.get("invalid_action", False)))
            if done:
                for key in self.KEYS:
                    self.logger.record_mean(f"schedule/{key}", float(info[key]))
                self.logger.record_mean("schedule/invalid_action_rate", counts[1] / max(counts[0], 1))
                counts[0] = counts[1] = 0
        return True


class NetworkMetricsCallback(BaseCallback):
    """Log TelescopeNetwork metrics of every finished episode to the SB3 logger (TensorBoard).

    Scalars, averaged over the episodes that ended since the last dump (from the env's final ``info``):
    ``network/priority_weighted_completion``, ``network/toos_served``, ``network/too_served_fraction``,
    ``network/too_mean_latency_s``, ``network/duplicates``, ``network/open_shutter_fraction``,
    ``network/completed_visits`` and ``network/open_shutter_<k>`` per telescope ``k``.
    """

    KEYS = ("priority_weighted_completion", "toos_served", "too_mean_latency_s", "duplicates",
            "open_shutter_fraction", "completed_visits")

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if done and "toos_served" in info:
                for key in self.KEYS:
                    self.logger.record_mean(f"network/{key}", float(info[key]))
                arrived = int(info["toos_arrived"])
                if arrived:
                    self.logger.record_mean("network/too_served_fraction", float(info["toos_served"]) / arrived)
                for k, value in enumerate(np.asarray(info["open_shutter_per_telescope"]).ravel()):
                    self.logger.record_mean(f"network/open_shutter_{k}", float(value))
        return True


class AOMetricsCallback(BaseCallback):
    """Log AdaptiveOptics metrics of every finished episode to the SB3 logger (TensorBoard).

    Scalars, averaged over the episodes that ended since the last dump: ``ao/strehl`` (mean
    Marechal Strehl at the science wavelength over the episode) and ``ao/residual_rad2`` (mean
    residual phase variance), both after the first ``settle_frames`` frames of each episode.
    """

    def __init__(self, settle_frames: int = 50, verbose: int = 0):
        super().__init__(verbose)
        self.settle_frames = settle_frames
        self._residuals: dict[int, list[float]] = {}

    def _on_step(self) -> bool:
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"])):
            if "residual_rad2" not in info:
                continue
            buf = self._residuals.setdefault(i, [])
            buf.append(float(info["residual_rad2"]))
            if done:
                for key, value in episode_strehl(buf, self.settle_frames).items():
                    self.logger.record_mean(f"ao/{key}", value)
                buf.clear()
        return True
