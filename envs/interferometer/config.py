"""Parameters of ``astrogym/InterferometerLock-v0`` with their defaults, ranges and meaning."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from astrogym.envs.common.config import EnvConfig, param
from astrogym.envs.interferometer.plant import SENSOR_NOISE_RAD_RTHZ


# Scales differ by the modes' compliance (the soft mode moves ~40x more): per-mode defaults for
# the fields left at None. The reward specs sit relative to the loop-shaping baseline measured
# with ``astrogym evaluate`` (hard: low-passed pitch 1.15e-10 rad, 8-30 Hz control 1.07e-10 N m,
# >40 Hz control 2.1e-11 N m; soft: 4.4e-9, 2.0e-10, 2.5e-11): alignment spec 1.5x the baseline,
# in-band spec ~3.5x below it, high-frequency spec at it.
MODE_DEFAULTS = {
    "hard": {"sensor_noise_rad": SENSOR_NOISE_RAD_RTHZ["hard"], "torque_limit_nm": 1e-6, "pitch_limit_rad": 1e-8,
             "obs_pitch_scale_rad": 1e-9, "reward_pitch_spec_rad": 1.5e-10, "reward_band_spec_nm": 3e-11,
             "reward_high_spec_nm": 2e-11},
    "soft": {"sensor_noise_rad": SENSOR_NOISE_RAD_RTHZ["soft"], "torque_limit_nm": 2e-5, "pitch_limit_rad": 3e-7,
             "obs_pitch_scale_rad": 1e-8, "reward_pitch_spec_rad": 6.5e-9, "reward_band_spec_nm": 5.5e-11,
             "reward_high_spec_nm": 2.5e-11},
}


@dataclass(frozen=True)
class InterferometerConfig(EnvConfig):
    """Everything ``gym.make("astrogym/InterferometerLock-v0", **kwargs)`` accepts.

    Physical defaults come from ``shared/reference/interferometer.md`` (aLIGO quad suspension,
    Sidles-Sigg radiation torque, Lightsaber O3 sensor noise, 256 Hz loop). Fields left at
    ``None`` take the default of the chosen ``mode`` (``MODE_DEFAULTS``); the env holds the
    :meth:`resolved` config, so ``env.unwrapped.config`` shows the numbers in use.
    """

    # -- plant ----------------------------------------------------------------------------------
    mode: str = param("hard", "controlled optical mode: the stiff 'hard' or the softening 'soft' pitch mode",
                      choices=("hard", "soft"))
    suspension: str = param("quad", "'quad' (aLIGO quadruple pendulum) or 'single' pendulum (Sidles-Sigg check)",
                            choices=("quad", "single"))
    sample_rate_hz: float = param(256.0, "loop rate; the reward filters need at least 128 Hz", low=128.0,
                                  high=16384.0)
    arm_power_w: float = param(400e3, "circulating arm power (sets the optical stiffness)", low=0.0, high=2e6)
    arm_power_range_w: tuple | None = param(None, "if set, arm power drawn uniformly per episode from (lo, hi)",
                                            low=0.0, high=2e6, kind="range")
    unstable_pole_hz: float | None = param(None, "soft mode only: place its unstable real pole here instead of "
                                           "deriving it from the arm power", low=0.01, high=10.0, kind="optional")
    unstable_pole_range_hz: tuple | None = param(None, "soft mode only: unstable pole frequency drawn per "
                                                 "episode from (lo, hi)", low=0.01, high=10.0, kind="range")
    # -- disturbances ---------------------------------------------------------------------------
    seismic_coupling: float = param(1.0, "ground motion to test-mass torque, N m per m (1 gives ~1 nrad RMS "
                                    "uncontrolled hard-mode pitch)", low=0.0, high=1e3)
    seismic_scale: float = param(1.0, "multiplies the reference seismic ASD", low=0.0, high=1e3)
    seismic_scale_range: tuple | None = param(None, "if set, seismic scale drawn log-uniformly per episode",
                                              low=1e-3, high=1e3, kind="range")
    sensor_noise_rad: float | None = param(None, "flat sensing noise, rad/sqrt(Hz) (Lightsaber: hard 3e-14, "
                                           "soft 1e-13)", low=0.0, high=1e-6, kind="optional")
    # -- actuator, limits, observation ------------------------------------------------------------
    torque_limit_nm: float | None = param(None, "actuator range: action +-1 is this torque (N m)", low=1e-15,
                                          high=1e3, kind="optional")
    pitch_limit_rad: float | None = param(None, "linear range of the sensors; |pitch| beyond it ends the episode",
                                          low=1e-15, high=1e-2, kind="optional")
    obs_pitch_scale_rad: float | None = param(None, "sensor readings are divided by this in the observation",
                                              low=1e-18, high=1e-2, kind="optional")
    history_length: int = param(64, "samples of sensor and action history in the observation", low=1, high=8192,
                                kind="int")
    episode_length_s: float = param(20.0, "episode length before truncation, seconds", low=0.05, high=86400.0)
    action_out_of_range: str = param("raise", "'raise' a ValueError for actions outside [-1, 1], or 'clip' them",
                                     choices=("raise", "clip"))
    # -- fault injection (off by default; the default env is bit-identical without it) -------------
    fault: str = param("none", "inject a fault: 'seismic_burst' (ground motion x fault_seismic_factor) or "
                       "'sensor_glitch' (fault_glitch_rad added to the pitch reading) from fault_start_s for "
                       "fault_duration_s", choices=("none", "seismic_burst", "sensor_glitch"))
    fault_start_s: float = param(5.0, "when the fault starts, seconds into the episode", low=0.0, high=86400.0)
    fault_duration_s: float = param(1.0, "how long the fault lasts, seconds", low=0.0, high=86400.0)
    fault_seismic_factor: float = param(30.0, "seismic_burst: ground-motion multiplier", low=1.0, high=1e4)
    fault_glitch_rad: float = param(2e-9, "sensor_glitch: offset added to the pitch reading, rad", low=-1e-2,
                                    high=1e-2)
    # -- reward (Deep Loop Shaping style; see env docstring) --------------------------------------
    reward_pitch_cutoff_hz: float = param(3.0, "low-pass corner for the alignment (pitch) score", low=0.01,
                                          high=1e3)
    reward_band_hz: tuple = param((8.0, 30.0), "band-pass of the control signal for the noise-injection score",
                                  low=0.01, high=8192.0, kind="range")
    reward_high_cutoff_hz: float = param(40.0, "high-pass corner for the high-frequency control score",
                                         low=0.01, high=8192.0)
    reward_pitch_spec_rad: float | None = param(None, "RMS of low-passed pitch that scores 0.5", low=1e-18, high=1.0,
                                                kind="optional")
    reward_band_spec_nm: float | None = param(None, "RMS of band-passed control that scores 0.5", low=1e-20,
                                              high=1.0, kind="optional")
    reward_high_spec_nm: float | None = param(None, "RMS of high-passed control that scores 0.5", low=1e-20,
                                              high=1.0, kind="optional")
    reward_pitch_time_constant_s: float = param(2.0, "averaging time of the running pitch RMS (spans microseism)",
                                                low=1e-3, high=1e3)
    reward_control_time_constant_s: float = param(0.5, "averaging time of the running control RMS", low=1e-3,
                                                  high=1e3)
    reward_pitch_sharpness: float = param(6.0, "pitch score = 1 / (1 + (rms / spec)^sharpness): alignment is a "
                                          "hard requirement", low=0.1, high=100.0)
    reward_control_sharpness: float = param(2.0, "exponent of the two control scores (graded)", low=0.1,
                                            high=100.0)

    def resolved(self) -> "InterferometerConfig":
        """A copy with every ``None`` replaced by the default of this ``mode`` (see ``MODE_DEFAULTS``)."""
        missing = {k: v for k, v in MODE_DEFAULTS[self.mode].items() if getattr(self, k) is None}
        return dataclasses.replace(self, **missing) if missing else self

    def validate(self) -> None:
        band = self.reward_band_hz
        if band is None or not band[0] < band[1]:
            raise ValueError(f"InterferometerConfig.reward_band_hz={band!r} must be a (low, high) pair with low < high "
                             "(a band-pass), each in [0.01, 8192] Hz")
        nyquist = self.sample_rate_hz / 2.0
        for name, f in (("reward_pitch_cutoff_hz", self.reward_pitch_cutoff_hz),
                        ("reward_band_hz[1]", self.reward_band_hz[1]),
                        ("reward_high_cutoff_hz", self.reward_high_cutoff_hz)):
            if f >= nyquist:
                raise ValueError(f"InterferometerConfig.{name}={f:g} must be below the Nyquist frequency "
                                 f"{nyquist:g} Hz (sample_rate_hz={self.sample_rate_hz:g})")
        if self.mode != "soft" and (self.unstable_pole_hz is not None or self.unstable_pole_range_hz is not None):
            raise ValueError("InterferometerConfig.unstable_pole_hz / unstable_pole_range_hz apply to mode='soft' "
                             f"only (mode={self.mode!r})")
        full = {k: (v if getattr(self, k) is None else getattr(self, k)) for k, v in MODE_DEFAULTS[self.mode].items()}
        if full["pitch_limit_rad"] < full["obs_pitch_scale_rad"]:
            raise ValueError(f"InterferometerConfig.pitch_limit_rad={full['pitch_limit_rad']:g} must be at least "
                             f"obs_pitch_scale_rad={full['obs_pitch_scale_rad']:g} (mode={self.mode!r})")
        if self.history_length > self.episode_steps:
            raise ValueError(f"InterferometerConfig.history_length={self.history_length} exceeds the episode: "
                             f"episode_length_s={self.episode_length_s:g} at sample_rate_hz={self.sample_rate_hz:g} "
                             f"is {self.episode_steps} steps")

    @property
    def episode_steps(self) -> int:
        return max(1, int(round(self.episode_length_s * self.sample_rate_hz)))
