"""Closed-loop system identification: a plant's frequency response from recorded loop data, and a
parametric model fitted to it.

In closed loop the controller's input is correlated with the noise (the controller reacts to the
noisy reading), so regressing the output on the input is biased. A known excitation ``r`` added to
the controller's command is not: with ``u = r + C(y)``, the cross-spectra with ``r`` give the plant
``P = S_ry / S_ru`` (the indirect, or joint input-output, method; Ljung, *System Identification*,
ch. 13). :func:`frequency_response` computes it with Welch averaging per recorded episode (segments
never straddle a reset), with the coherence of ``r`` and ``y`` that says where the estimate is good.

:func:`fit_parametric` then fits any parametric response ``model(params, f)`` to the estimate by
weighted least squares on the complex log ratio (magnitude in dB and phase in radians weigh alike),
with SciPy's trust-region solver. Domain physics supplies the model: for the interferometer the
suspension is known and the optical stiffness and actuator gain are learned
(:mod:`astrogym.experiments.plant_id`). :func:`disturbance_spectrum` estimates what the loop
fought (the output disturbance ``y - P u``), which sets the noise model a controller is synthesised for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.optimize
import scipy.signal


@dataclass(frozen=True)
class FrequencyResponse:
    """A non-parametric response estimate: ``response[i]`` at ``f_hz[i]``, with ``coherence`` of excitation
    and output (0-1) and the number of averaged ``segments``."""

    f_hz: np.ndarray
    response: np.ndarray
    coherence: np.ndarray
    segments: int

    def band(self, low_hz: float, high_hz: float) -> "FrequencyResponse":
        keep = (self.f_hz >= low_hz) & (self.f_hz <= high_hz)
        return FrequencyResponse(self.f_hz[keep], self.response[keep], self.coherence[keep], self.segments)


def _episodes(n: int, episode) -> list[slice]:
    if episode is None:
        return [slice(0, n)]
    episode = np.asarray(episode)
    edges = np.flatnonzero(np.diff(episode)) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, n]
    return [slice(a, b) for a, b in zip(starts, stops)]


def frequency_response(u, y, r, sample_rate_hz: float, nperseg: int = 4096, episode=None) -> FrequencyResponse:
    """Indirect closed-loop estimate ``P = S_ry / S_ru`` of the plant from input ``u`` to output ``y``.

    Parameters
    ----------
    u, y, r: 1-D arrays of equal length: applied input, measured output *caused* by that input
        (align them so ``y[k]`` is the first reading ``u[k]`` can move), and the excitation in ``u``.
    sample_rate_hz: sampling rate.
    nperseg: Welch segment length (frequency resolution ``fs / nperseg``); Hann window, half overlap.
    episode: optional episode index per sample: spectra are averaged over episodes' own segments.
    """
    u, y, r = (np.asarray(x, dtype=float).reshape(-1) for x in (u, y, r))
    if not (u.size == y.size == r.size):
        raise ValueError(f"u, y and r must have the same length, got {u.size}, {y.size}, {r.size}")
    if not np.any(r):
        raise ValueError("the excitation r is zero: record with exploration noise (the identification needs it)")
    s_ry = s_ru = s_rr = s_yy = 0.0
    f, segments = None, 0
    for part in _episodes(u.size, episode):
        n = part.stop - part.start
        if n < nperseg:
            continue
        k = 1 + (n - nperseg) // (nperseg // 2)
        kw = dict(fs=sample_rate_hz, nperseg=nperseg, window="hann", detrend="constant")
        f, ry = scipy.signal.csd(r[part], y[part], **kw)
        _, ru = scipy.signal.csd(r[part], u[part], **kw)
        _, rr = scipy.signal.welch(r[part], **kw)
        _, yy = scipy.signal.welch(y[part], **kw)
        s_ry, s_ru, s_rr, s_yy = s_ry + k * ry, s_ru + k * ru, s_rr + k * rr, s_yy + k * yy
        segments += k
    if segments == 0:
        raise ValueError(f"no episode holds nperseg={nperseg} samples; record longer episodes or lower nperseg")
    coherence = np.abs(s_ry) ** 2 / np.maximum(s_rr * s_yy, 1e-300)
    return FrequencyResponse(f, s_ry / s_ru, coherence, segments)


def disturbance_spectrum(u, y, simulate: Callable[[np.ndarray], np.ndarray], sample_rate_hz: float,
                         nperseg: int = 4096, episode=None, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-sided PSD of the output disturbance ``d = y - P u`` (what the loop saw besides its own input).

    ``simulate(u)`` runs a fitted model from rest on one episode's input and returns its output aligned
    with ``y``; it runs in the time domain, because FFT filtering wraps a lightly damped resonance's
    ringing around the record. The first ``skip`` samples of each episode (the model's start-up
    transient) are left out.
    """
    u, y = np.asarray(u, dtype=float).reshape(-1), np.asarray(y, dtype=float).reshape(-1)
    total, f, count = 0.0, None, 0
    for part in _episodes(u.size, episode):
        n = part.stop - part.start - skip
        if n < nperseg:
            continue
        d = (y[part] - np.asarray(simulate(u[part]), dtype=float).reshape(-1))[skip:]
        f, psd = scipy.signal.welch(d, fs=sample_rate_hz, nperseg=nperseg)
        total, count = total + psd * n, count + n
    if count == 0:
        raise ValueError(f"no episode holds skip + nperseg = {skip + nperseg} samples")
    return f, total / count


@dataclass
class ParametricFit:
    """Result of :func:`fit_parametric`: ``params`` (dict), the fit's RMS log error and the solver's report."""

    params: dict
    rms_log_error: float
    success: bool
    message: str


def fit_parametric(model: Callable[[dict, np.ndarray], np.ndarray], initial: dict, estimate: FrequencyResponse,
                   log_params: tuple[str, ...] = (), weights: np.ndarray | None = None) -> ParametricFit:
    """Fit ``model(params, f) -> complex response`` to ``estimate`` by least squares on ``log(model / estimate)``.

    Parameters
    ----------
    model: the parametric response.
    initial: starting values (a dict of floats); the fit changes all of them.
    estimate: the non-parametric response (band-limit it first with :meth:`FrequencyResponse.band`).
    log_params: parameters fitted on a log scale (positive quantities spanning decades).
    weights: per-frequency weights; default ``coherence / (1 - coherence)``, the inverse variance of
        the estimate's log (Bendat and Piersol), capped at 100.
    """
    names = list(initial)
    if weights is None:
        c = np.clip(estimate.coherence, 1e-6, 1 - 1e-6)
        weights = np.minimum(c / (1.0 - c), 100.0)
    w = np.sqrt(np.asarray(weights, dtype=float))

    def unpack(x):
        return {n: (float(np.exp(v)) if n in log_params else float(v)) for n, v in zip(names, x)}

    def residual(x):
        # log|ratio| + i angle(ratio), the principal phase: no unwrapping across frequencies
        logr = np.log((model(unpack(x), estimate.f_hz) / estimate.response).astype(complex))
        return np.concatenate([w * logr.real, w * logr.imag])

    x0 = np.array([np.log(initial[n]) if n in log_params else initial[n] for n in names], dtype=float)
    sol = scipy.optimize.least_squares(residual, x0, method="trf", x_scale="jac")
    res = residual(sol.x)
    rms = float(np.sqrt(np.mean((res / np.concatenate([w, w])) ** 2)))
    return ParametricFit(unpack(sol.x), rms, bool(sol.success), str(sol.message))


def response_errors(model_response: np.ndarray, true_response: np.ndarray) -> dict[str, float]:
    """Magnitude error (dB) and phase error (degrees) of a model against the truth: max and RMS."""
    ratio = np.asarray(model_response) / np.asarray(true_response)
    db = 20.0 * np.log10(np.abs(ratio))
    deg = np.degrees(np.angle(ratio))
    return {"max_abs_db": float(np.max(np.abs(db))), "rms_db": float(np.sqrt(np.mean(db**2))),
            "max_abs_deg": float(np.max(np.abs(deg))), "rms_deg": float(np.sqrt(np.mean(deg**2)))}


__all__ = ["FrequencyResponse", "ParametricFit", "disturbance_spectrum", "fit_parametric", "frequency_response",
           "response_errors"]
