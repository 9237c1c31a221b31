"""Independent cross-check against HCIPy (a dev dependency): same aberration, same Strehl and SH slopes."""

from __future__ import annotations

import numpy as np
import pytest

from astrogym.envs.adaptive_optics import metrics, optics
from astrogym.envs.adaptive_optics.atmosphere import fft_phase_screen
from astrogym.envs.adaptive_optics.config import AOConfig
from astrogym.envs.adaptive_optics.wfs import DiffractiveSH, GeometricSH

hp = pytest.importorskip("hcipy")


def _setup(n_sub=20, p=6):
    cfg = AOConfig(n_subapertures=n_sub, pixels_per_subaperture=p, wfs="diffractive")
    pupil = optics.make_pupil(cfg)
    grid = hp.make_pupil_grid(cfg.pupil_pixels, cfg.telescope_diameter_m)
    return cfg, pupil, grid


def test_same_pupil_sampling():
    cfg, pupil, grid = _setup()
    aperture = hp.make_obstructed_circular_aperture(cfg.telescope_diameter_m, cfg.central_obstruction)(grid)
    mismatch = np.mean(np.asarray(aperture).reshape(pupil.shape) != pupil)
    assert mismatch < 0.002  # at most a few edge pixels exactly on the boundary differ


@pytest.mark.parametrize("variance", [0.05, 0.2, 0.5])
def test_strehl_of_a_static_aberration_agrees_with_hcipy(variance):
    cfg, pupil, grid = _setup()
    lit = pupil > 0
    phase = fft_phase_screen(cfg.pupil_pixels, cfg.pixel_scale_m, 0.16, 25.0, np.random.default_rng(3))
    phase -= phase[lit].mean()
    phase *= np.sqrt(variance / np.var(phase[lit]))
    ours = metrics.strehl_from_psf(metrics.psf(phase, pupil, padding=4))

    wavelength = 1.65e-6
    focal = hp.make_focal_grid(4, 16, spatial_resolution=wavelength / cfg.telescope_diameter_m)
    prop = hp.FraunhoferPropagator(grid, focal)
    amplitude = hp.Field(pupil.ravel(), grid)
    aberrated = hp.Wavefront(amplitude * np.exp(1j * hp.Field(phase.ravel(), grid)), wavelength)
    reference = hp.Wavefront(amplitude, wavelength)
    theirs = prop(aberrated).power.max() / prop(reference).power.max()
    assert ours == pytest.approx(theirs, rel=0.01)


def test_shack_hartmann_slopes_agree_with_hcipy_up_to_the_documented_scale():
    """HCIPy returns centroids in metres on its detector; ours are radians across a subaperture.

    HCIPy images the lenslet spots on the pupil-plane pixels; its F-number is chosen here so a
    pixel is lambda / 2d, the Nyquist sampling of ours. Then the two are related by
    F lambda / (2 pi) (lambda the WFS wavelength) times each sensor's centroid gain against the
    true mean gradient: measured 0.76 for HCIPy, whose lenslet sees only its own 6 pixels
    (a 3 lambda/d field that truncates the spot wings), and 0.93 for ours (a 6 lambda/d field).
    """
    cfg, pupil, grid = _setup()
    n_sub, d = cfg.n_subapertures, cfg.subaperture_m
    wavelength = cfg.wfs_wavelength_um * 1e-6
    lit = pupil > 0
    phase = fft_phase_screen(cfg.pupil_pixels, cfg.pixel_scale_m, 0.16, 25.0, np.random.default_rng(5))
    phase = 0.08 * (phase - phase[lit].mean())  # a small aberration, in rad at 500 nm

    sh_diameter = 5e-3
    mag = sh_diameter / cfg.telescope_diameter_m
    f_number = 2 * (sh_diameter / cfg.pupil_pixels) / wavelength  # lambda F = 2 detector pixels
    # HCIPy's square helper centres lenslets on a grid through the optical axis; ours tile the
    # pupil from its edge (Fried geometry). Build the same tiling in HCIPy explicitly.
    lenslet = sh_diameter / n_sub
    centres_1d = (np.arange(n_sub) + 0.5) * lenslet - sh_diameter / 2
    mla_grid = hp.CartesianGrid(hp.SeparatedCoords((centres_1d, centres_1d)))
    mla = hp.MicroLensArray(grid.scaled(mag), mla_grid, f_number * lenslet)
    shwfs = hp.ShackHartmannWavefrontSensorOptics(grid.scaled(mag), mla)
    estimator = hp.ShackHartmannWavefrontSensorEstimator(shwfs.mla_grid, shwfs.micro_lens_array.mla_index)
    camera = hp.NoiselessDetector(grid.scaled(mag))
    amplitude = hp.Field(pupil.ravel(), grid)
    phase_wfs = phase * 0.5 / cfg.wfs_wavelength_um

    def centroids(ph):
        wf = hp.Wavefront(amplitude * np.exp(1j * hp.Field(ph.ravel(), grid)), wavelength)
        camera.integrate(shwfs(hp.Magnifier(mag)(wf)), 1)
        return np.asarray(estimator.estimate([camera.read_out()]))

    theirs = centroids(phase_wfs) - centroids(np.zeros_like(phase_wfs))  # (2, n_subapertures_total)
    centres = np.asarray(shwfs.mla_grid.points[estimator.estimation_subapertures]) / mag  # pupil metres

    valid = optics.valid_subapertures(cfg, pupil)
    p = cfg.pixels_per_subaperture
    fully_lit = pupil.reshape(n_sub, p, n_sub, p).mean(axis=(1, 3))[valid[:, 0], valid[:, 1]] > 0.99
    ours_geo = GeometricSH(cfg, pupil, valid).measure(phase_wfs).copy()  # phase at the WFS wavelength
    ours_dif = DiffractiveSH(cfg, pupil, valid).measure(phase).copy() * 0.5 / cfg.wfs_wavelength_um
    our_centres = np.stack([(valid[:, 1] + 0.5) * d - cfg.telescope_diameter_m / 2,
                            (valid[:, 0] + 0.5) * d - cfg.telescope_diameter_m / 2], axis=1)
    match = [np.argmin(np.hypot(*(centres - c).T)) for c in our_centres]
    assert np.max(np.hypot(*(centres[match] - our_centres).T)) < 1e-6 * d + 1e-9
    n = len(valid)
    scale = f_number * wavelength / (2 * np.pi)
    for axis, sl in ((0, slice(0, n)), (1, slice(n, 2 * n))):
        h = theirs[axis][match][fully_lit]
        ours = ours_dif[sl][fully_lit]
        g = ours_geo[sl][fully_lit]
        assert np.corrcoef(h, ours)[0, 1] > 0.98
        hcipy_gain = np.dot(h, g) / np.dot(g, g) / scale
        our_gain = np.dot(ours, g) / np.dot(g, g)
        assert 0.70 < hcipy_gain < 0.85
        assert 0.85 < our_gain < 1.0
