"""Interferometer-loop metrics shared by evaluation, benchmarks and TensorBoard logging.

The fair-benchmark quantities of ``shared/reference/interferometer.md``: the Welch ASD of the
control signal and of the pitch over a long run, the control RMS in 10-30 Hz (injected
noise), the residual pitch RMS below 3 Hz (disturbance rejection), and a plot of both ASDs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.signal

IN_BAND_HZ = (10.0, 30.0)
LOW_FREQUENCY_HZ = 3.0


def welch_asd(x: np.ndarray, sample_rate_hz: float, segment_s: float = 32.0) -> tuple[np.ndarray, np.ndarray]:
    """One-sided amplitude spectral density (units/sqrt(Hz)) by Welch's method, Hann window, 50% overlap."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size < 16:
        raise ValueError(f"need a 1-D signal of at least 16 samples, got shape {x.shape}")
    nperseg = int(min(x.size, round(segment_s * sample_rate_hz)))
    f, psd = scipy.signal.welch(x, fs=sample_rate_hz, nperseg=nperseg, detrend="constant")
    return f, np.sqrt(psd)


def band_rms(f: np.ndarray, asd: np.ndarray, low_hz: float, high_hz: float) -> float:
    """RMS in [low_hz, high_hz] from an ASD: sqrt of the integrated PSD (trapezoid rule)."""
    sel = (f >= low_hz) & (f <= high_hz)
    if sel.sum() < 2:
        raise ValueError(f"band [{low_hz}, {high_hz}] Hz holds fewer than two frequency bins")
    return float(np.sqrt(np.trapezoid(asd[sel] ** 2, f[sel])))


def loop_metrics(pitch_rad: np.ndarray, control_nm: np.ndarray, sample_rate_hz: float,
                 torque_limit_nm: float | None = None) -> dict[str, float]:
    """The benchmark numbers of one run.

    Returns ``control_rms_10_30hz_nm`` (injected noise), ``pitch_rms_below_3hz_rad`` (residual
    alignment error, from 1/segment Hz up), total RMS of both, and, given the actuator range,
    ``actuator_rms_fraction``.
    """
    f, a_u = welch_asd(control_nm, sample_rate_hz)
    _, a_p = welch_asd(pitch_rad, sample_rate_hz)
    out = {
        "control_rms_10_30hz_nm": band_rms(f, a_u, *IN_BAND_HZ),
        "pitch_rms_below_3hz_rad": band_rms(f, a_p, 0.0, LOW_FREQUENCY_HZ),
        "pitch_rms_rad": float(np.std(pitch_rad)),
        "control_rms_nm": float(np.std(control_nm)),
    }
    if torque_limit_nm:
        out["actuator_rms_fraction"] = out["control_rms_nm"] / torque_limit_nm
    return out


def subband_ratios(f: np.ndarray, asd: np.ndarray, asd_ref: np.ndarray,
                   edges_hz=(10.0, 15.0, 20.0, 25.0, 30.0)) -> list[tuple[float, float, float]]:
    """Reference-to-policy RMS ratio per sub-band: ``(lo, hi, ratio)``; > 1 means less noise than the reference."""
    return [(lo, hi, band_rms(f, asd_ref, lo, hi) / band_rms(f, asd, lo, hi))
            for lo, hi in zip(edges_hz[:-1], edges_hz[1:])]


def plot_asds(runs: dict[str, tuple[np.ndarray, np.ndarray]], sample_rate_hz: float, path: str | Path,
              title: str = "") -> Path:
    """Save a PNG of the control and pitch ASDs of several runs (name -> (pitch, control))."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(8, 7), dpi=100)
    ax_u, ax_p = fig.subplots(2, 1, sharex=True)
    for name, (pitch, control) in runs.items():
        f, a_u = welch_asd(control, sample_rate_hz)
        _, a_p = welch_asd(pitch, sample_rate_hz)
        ax_u.loglog(f[1:], a_u[1:], label=name)
        ax_p.loglog(f[1:], a_p[1:], label=name)
    for ax in (ax_u, ax_p):
        ax.axvspan(*IN_BAND_HZ, color="0.9", zorder=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower left")
    ax_u.set_ylabel("control torque ASD [N m/√Hz]")
    ax_p.set_ylabel("pitch ASD [rad/√Hz]")
    ax_p.set_xlabel("frequency [Hz]")
    ax_u.set_title(title or "control and pitch ASD (shaded: 10-30 Hz)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path
