"""Exposure time calculator: how deep an exposure goes and what SNR a target reaches.

The 5-sigma depth is Rubin's ``m5_flat_sed`` form (reference ``scheduling.md``):

    m5 = Cm + 0.5 (mu_sky - 21) + 2.5 log10(0.7 / FWHM_eff) + 1.25 log10(t / 30 s) - k (X - 1) - 1.1 tau_cloud

with per-filter Cm, dark-sky brightness and extinction k from Ivezic et al. 2019 (ApJ 873, 111),
Table 2, for Rubin's 6.423 m effective aperture; another aperture D shifts Cm by
2.5 log10(D / 6.423) (depth goes as 1.25 log10 of collecting area times time). Seeing scales as
airmass^0.6 and (500 nm / lambda)^0.3, and FWHM_eff = 1.16 sqrt(sys^2 + 1.04 atm^2) (reference).
In the background-limited regime the SNR of a source of magnitude m is 5 * 10^(-0.4 (m - m5)),
so SNR grows as sqrt(t) and SNRs of repeated exposures add in quadrature.

:func:`point_source_snr` is the one exposure-SNR formula (seeing -> FWHM_eff -> m5 -> SNR) every
caller uses: the env's compiled step through its twin :func:`point_source_snr_nb`, the astroplan
baseline's exposure counts and the offline optimum's upper bound through the NumPy version.

Sky brightness: the dark sky per filter brightened with airmass and by the Moon following
Krisciunas & Schaefer (1991, PASP 103, 1033), computed in V and applied as the same flux ratio in
every filter (a documented simplification: real moonlight is bluer than that).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from astrogym.envs.scheduling.telescope import FILTERS

RUBIN_APERTURE_M = 6.423
# Ivezic et al. 2019, Table 2 (u, g, r, i, z, y).
CM_RUBIN = np.array([23.09, 24.42, 24.44, 24.32, 24.16, 23.73])
DARK_SKY_MAG = np.array([22.99, 22.26, 21.20, 20.48, 19.60, 18.61])  # mag / arcsec^2 at zenith
EXTINCTION = np.array([0.491, 0.213, 0.126, 0.096, 0.069, 0.170])  # mag per airmass
WAVELENGTH_NM = np.array([367.0, 482.0, 622.0, 755.0, 869.0, 971.0])
K_V = 0.172  # V-band extinction in Krisciunas & Schaefer's model
DARK_SKY_V = 21.7  # mag / arcsec^2, their dark-sky zenith brightness in V


def filter_index(name: str) -> int:
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; allowed {list(FILTERS)}")
    return FILTERS.index(name)


def cm_for_aperture(aperture_m: float) -> np.ndarray:
    """Per-filter Cm for a telescope of this effective aperture."""
    return CM_RUBIN + 2.5 * np.log10(aperture_m / RUBIN_APERTURE_M)


def fwhm_eff(seeing_500_arcsec, airmass, wavelength_nm, system_fwhm_arcsec):
    """Effective PSF FWHM (arcsec): atmosphere and system, both degraded with airmass."""
    atm = seeing_500_arcsec * airmass ** 0.6 * (500.0 / wavelength_nm) ** 0.3
    sys_ = system_fwhm_arcsec * airmass ** 0.6
    return 1.16 * np.sqrt(sys_ ** 2 + 1.04 * atm ** 2)


def m5_depth(cm, mu_sky, fwhm, exposure_s, airmass, extinction, cloud_tau):
    """5-sigma point-source depth (NumPy; broadcasts). The compiled twin is :func:`m5_depth_nb`."""
    return (cm + 0.5 * (mu_sky - 21.0) + 2.5 * np.log10(0.7 / fwhm) + 1.25 * np.log10(exposure_s / 30.0)
            - extinction * (airmass - 1.0) - 1.1 * cloud_tau)


def snr_from_m5(mag, m5):
    """Background-limited SNR of a point source of magnitude ``mag`` at depth ``m5``."""
    return 5.0 * 10.0 ** (-0.4 * (mag - m5))


def point_source_snr(mag, cm, mu_sky, seeing_500_arcsec, airmass, wavelength_nm, system_fwhm_arcsec, exposure_s,
                     extinction, cloud_tau):
    """SNR of one exposure of a point source in the given conditions (NumPy; broadcasts).

    :func:`fwhm_eff` of the seeing at this airmass and wavelength, :func:`m5_depth` of the exposure,
    :func:`snr_from_m5` of the magnitude. The compiled twin is :func:`point_source_snr_nb`.
    """
    fwhm = fwhm_eff(seeing_500_arcsec, airmass, wavelength_nm, system_fwhm_arcsec)
    return snr_from_m5(mag, m5_depth(cm, mu_sky, fwhm, exposure_s, airmass, extinction, cloud_tau))


def exposure_for_snr(snr, mag, cm, mu_sky, fwhm, airmass, extinction, cloud_tau=0.0):
    """Exposure (s) that reaches ``snr`` under the given conditions (inverts the two functions above)."""
    snr30 = snr_from_m5(mag, m5_depth(cm, mu_sky, fwhm, 30.0, airmass, extinction, cloud_tau))
    return 30.0 * (np.asarray(snr) / snr30) ** 2


# Compiled twins for the kernels: the same source compiled by numba (scalars only).
m5_depth_nb = njit(cache=True)(m5_depth)
snr_from_m5_nb = njit(cache=True, inline="always")(snr_from_m5)


@njit(cache=True)
def fwhm_eff_nb(seeing_500_arcsec, airmass, wavelength_nm, system_fwhm_arcsec):
    """:func:`fwhm_eff` compiled; it squares as ``1.04 * atm * atm`` (the NumPy one as ``1.04 * atm ** 2``), which
    the env's trajectories were generated with, so the two may differ in the last bit."""
    atm = seeing_500_arcsec * airmass ** 0.6 * (500.0 / wavelength_nm) ** 0.3
    sys_ = system_fwhm_arcsec * airmass ** 0.6
    return 1.16 * np.sqrt(sys_ * sys_ + 1.04 * atm * atm)


@njit(cache=True, inline="always")
def point_source_snr_nb(mag, cm, mu_sky, seeing_500_arcsec, airmass, wavelength_nm, system_fwhm_arcsec, exposure_s,
                        extinction, cloud_tau):
    """:func:`point_source_snr` for the compiled kernels (scalars)."""
    fwhm = fwhm_eff_nb(seeing_500_arcsec, airmass, wavelength_nm, system_fwhm_arcsec)
    return snr_from_m5_nb(mag, m5_depth_nb(cm, mu_sky, fwhm, exposure_s, airmass, extinction, cloud_tau))


def _ks_airmass(zenith_rad):
    """Krisciunas & Schaefer's airmass for scattering, finite at the horizon."""
    return 1.0 / np.sqrt(1.0 - 0.96 * np.sin(zenith_rad) ** 2)


def _nanolambert(mag_arcsec2):
    return 34.08 * np.exp(20.7233 - 0.92104 * mag_arcsec2)


def sky_brightness(filter_idx, target_alt_deg, moon_alt_deg, moon_separation_deg, moon_phase_angle_deg):
    """Sky surface brightness (mag/arcsec^2) at a target; all arguments broadcast.

    Dark sky: the filter's zenith value, brightened along the line of sight as X 10^(-0.4 k (X-1)).
    Moon: Krisciunas & Schaefer (1991) eq. 15-21 in V, added as a flux ratio to the dark sky.
    """
    filter_idx = np.asarray(filter_idx)
    z = np.radians(90.0 - np.clip(target_alt_deg, 0.0, 90.0))
    x = _ks_airmass(z)
    dark_v = _nanolambert(DARK_SKY_V) * x * 10.0 ** (-0.4 * K_V * (x - 1.0))
    alpha = np.abs(moon_phase_angle_deg)
    moon_mag = -12.73 + 0.026 * alpha + 4e-9 * alpha ** 4
    illuminance = 10.0 ** (-0.4 * (moon_mag + 16.57))
    rho = np.clip(moon_separation_deg, 0.5, 180.0)
    scatter = 10.0 ** 5.36 * (1.06 + np.cos(np.radians(rho)) ** 2) + 10.0 ** (6.15 - rho / 40.0)
    z_moon = np.radians(90.0 - np.clip(moon_alt_deg, 0.0, 90.0))
    moon_nl = scatter * illuminance * 10.0 ** (-0.4 * K_V * _ks_airmass(z_moon)) * (1.0 - 10.0 ** (-0.4 * K_V * x))
    moon_nl = np.where(np.asarray(moon_alt_deg) > 0.0, moon_nl, 0.0)
    dark = DARK_SKY_MAG[filter_idx] - 2.5 * np.log10(x * 10.0 ** (-0.4 * EXTINCTION[filter_idx] * (x - 1.0)))
    return dark - 2.5 * np.log10(1.0 + moon_nl / dark_v)
