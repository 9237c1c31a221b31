"""Adaptive-optics metrics: Strehl (Marechal and from the PSF), PSFs, coronagraphic contrast, plots.

Shared by the env's ``info``, evaluations and benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def residual_variance(phase: np.ndarray, pupil: np.ndarray) -> float:
    """Piston-removed variance of ``phase`` over the lit pupil (rad^2)."""
    from astrogym.envs.adaptive_optics.kernels import masked_variance

    return float(masked_variance(phase, pupil))


def marechal_strehl(variance_rad2: float) -> float:
    """Strehl ~ exp(-sigma^2) (extended Marechal approximation)."""
    return float(np.exp(-variance_rad2))


def episode_strehl(residuals_rad2, settle_frames: int = 50) -> dict[str, float]:
    """Mean Marechal Strehl and mean residual of an episode's per-frame residual variances.

    The first ``settle_frames`` frames (at most half the episode) are left out while the loop
    converges. Empty for an empty episode.
    """
    v = np.asarray(residuals_rad2, dtype=float)
    v = v[min(settle_frames, len(v) // 2):]
    if v.size == 0:
        return {}
    return {"strehl": float(np.mean(np.exp(-v))), "residual_rad2": float(np.mean(v))}


def psf(phase: np.ndarray, pupil: np.ndarray, padding: int = 4, coronagraph: bool = False) -> np.ndarray:
    """Focal-plane intensity of ``pupil * exp(i phase)`` (phase at the imaging wavelength).

    Normalised so the unaberrated, non-coronagraphic PSF peaks at 1; ``padding`` pixels per
    lambda/D. ``coronagraph=True`` applies a perfect coronagraph: it removes the field of the
    ideal aperture, ``E - <E> pupil`` (Cavarroc et al. 2006).
    """
    n = pupil.shape[0]
    field = np.zeros((n * padding, n * padding), dtype=complex)
    e = pupil * np.exp(1j * phase)
    if coronagraph:
        lit = pupil > 0
        e = e - pupil * e[lit].mean()
    field[:n, :n] = e
    image = np.abs(np.fft.fftshift(np.fft.fft2(field))) ** 2
    return image / float(pupil.sum()) ** 2


def strehl_from_psf(image: np.ndarray) -> float:
    """Peak of a PSF normalised by :func:`psf` (the unaberrated peak is 1)."""
    return float(image.max())


def annulus_mean(image: np.ndarray, padding: int, inner_ld: float = 3.0, outer_ld: float = 10.0) -> float:
    """Mean of ``image`` between ``inner_ld`` and ``outer_ld`` lambda/D from the centre."""
    n = image.shape[0]
    c = np.arange(n) - n // 2
    r = np.hypot(*np.meshgrid(c, c, indexing="ij")) / padding
    return float(image[(r >= inner_ld) & (r <= outer_ld)].mean())


def plot_psf_and_phase(image: np.ndarray, phase: np.ndarray, pupil: np.ndarray, padding: int,
                       path: str | Path | None = None, title: str = ""):
    """Log-scale PSF (central 40 lambda/D) beside the residual phase; saves a PNG or returns the figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), dpi=80)
    ax1, ax2 = fig.subplots(1, 2)
    n = image.shape[0]
    half = min(n // 2, 20 * padding)
    crop = image[n // 2 - half:n // 2 + half, n // 2 - half:n // 2 + half]
    ext = (-half / padding, half / padding, -half / padding, half / padding)
    ax1.imshow(np.log10(np.maximum(crop, 1e-8)), vmin=-6, vmax=0, cmap="inferno", extent=ext, origin="lower")
    ax1.set_title("PSF (log10)")
    ax1.set_xlabel("λ/D")
    masked = np.where(pupil > 0, phase, np.nan)
    masked = masked - np.nanmean(masked)  # piston is invisible to the image
    im = ax2.imshow(masked, cmap="RdBu_r", origin="lower")
    ax2.set_title("residual phase [rad]")
    ax2.set_xticks([]), ax2.set_yticks([])
    fig.colorbar(im, ax=ax2, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is None:
        return fig
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path
