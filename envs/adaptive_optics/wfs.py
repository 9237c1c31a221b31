"""Shack-Hartmann wavefront sensors: geometric (mean gradient) and diffractive (lenslet FFT + centroid).

Both return slopes in rad of phase (at the 500 nm reference) across one subaperture, x slopes
first, so the reconstructor and the observation do not care which one runs.

The diffractive sensor forms each lenslet's spot as ``|DFT(pupil exp(i phase))|^2`` with 2x
zero padding (Nyquist-sampled pixels of lambda / 2d, a field of view of p lambda / d for p
samples per subaperture) and takes its centroid. It shows what the geometric one cannot: the
spot truncation and wrap of large tilts, and photon and read noise on real pixels.
"""

from __future__ import annotations

import numpy as np

from astrogym.envs.adaptive_optics import kernels
from astrogym.envs.adaptive_optics.config import REFERENCE_WAVELENGTH_UM, AOConfig


class GeometricSH:
    """Mean phase gradient over each valid subaperture's lit pixels.

    It has no pixels, so with ``photons`` > 0 it adds the analytic centroid error of a
    diffraction-limited spot (Rousset 1999), ``sigma^2 = pi^2 / (2 N_ph) + (pi^2 / 3)
    (sigma_e / N_ph)^2 N_s^4 / N_D^2`` with 6 x 6 detector pixels and a 2-pixel spot, at the WFS
    wavelength.
    """

    def __init__(self, cfg: AOConfig, pupil: np.ndarray, valid: np.ndarray):
        self.pupil, self.valid, self.p = pupil, valid, cfg.pixels_per_subaperture
        self.to_ref = cfg.wfs_wavelength_um / REFERENCE_WAVELENGTH_UM  # phase at the WFS -> at 500 nm
        self.out = np.empty(2 * valid.shape[0])

    def noise_sigma(self, photons: float, read_noise: float) -> float:
        """Slope noise in rad at 500 nm across a subaperture."""
        if photons <= 0.0:
            return 0.0
        n_s, n_d = 6.0, 2.0
        var = np.pi**2 / (2 * photons) + np.pi**2 / 3 * (read_noise / photons) ** 2 * n_s**4 / n_d**2
        return float(np.sqrt(var) * self.to_ref)

    def measure(self, phase_ref: np.ndarray, photons: float = 0.0, read_noise: float = 0.0, rng=None) -> np.ndarray:
        out = kernels.sh_geometric_slopes(phase_ref, self.pupil, self.valid, self.p, self.out)
        if photons > 0.0:
            out += self.noise_sigma(photons, read_noise) * rng.standard_normal(out.shape)
        return out


class DiffractiveSH:
    """Lenslet spots (2x zero-padded DFTs) and centroids; photon and read noise on the detector pixels when ``photons`` > 0."""

    def __init__(self, cfg: AOConfig, pupil: np.ndarray, valid: np.ndarray):
        self.pupil, self.valid, self.p = pupil, valid, cfg.pixels_per_subaperture
        self.to_wfs = REFERENCE_WAVELENGTH_UM / cfg.wfs_wavelength_um  # phase at 500 nm -> at the WFS
        self._wr, self._wi = kernels.dft_matrix(self.p)
        self.out = np.empty(2 * valid.shape[0])
        self._noise = np.zeros((1, 1, 1, 2))

    def measure(self, phase_ref: np.ndarray, photons: float = 0.0, read_noise: float = 0.0, rng=None) -> np.ndarray:
        noise = self._noise
        if photons > 0.0:
            m = 2 * self.p
            noise = rng.standard_normal((self.valid.shape[0], m, m, 2))
        kernels.sh_diffractive_slopes(phase_ref, self.to_wfs, self.pupil, self.valid, self.p, self._wr, self._wi,
                                      photons, read_noise, noise, self.out)
        self.out /= self.to_wfs  # back to phase at the 500 nm reference
        return self.out
