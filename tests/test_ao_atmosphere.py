"""Von Karman turbulence against theory; the atmosphere kernels against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from astrogym.envs.adaptive_optics import kernels
from astrogym.envs.adaptive_optics.atmosphere import (
    InfiniteScreen,
    _extrusion_operators,
    fft_phase_screen,
    kolmogorov_structure_function,
    von_karman_covariance,
    von_karman_structure_function,
    von_karman_variance,
)

R0, L0 = 0.16, 25.0  # reference defaults (COMPASS, Deo 2021)


def _structure_function(screens: np.ndarray, lags: list[int]) -> np.ndarray:
    """Mean squared phase difference at pixel lags along both axes, over a stack of screens."""
    out = []
    for lag in lags:
        dx = screens[:, lag:, :] - screens[:, :-lag, :]
        dy = screens[:, :, lag:] - screens[:, :, :-lag]
        out.append(0.5 * (np.mean(dx**2) + np.mean(dy**2)))
    return np.array(out)


def _pupil_pairs(diameter: float, count: int, rng) -> np.ndarray:
    """Distances between random point pairs uniform in a disc."""
    def points():
        r = diameter / 2 * np.sqrt(rng.uniform(size=count))
        t = rng.uniform(0, 2 * np.pi, size=count)
        return r * np.cos(t), r * np.sin(t)

    (x1, y1), (x2, y2) = points(), points()
    return np.hypot(x1 - x2, y1 - y2)


@pytest.mark.parametrize("outer", [1e4, 25.0])
def test_von_karman_follows_kolmogorov_with_outer_scale_correction(outer):
    """D_vK / D_K = 1 - 1.485 (r/L0)^(1/3) + 5.383 (r/L0)^2 for r << L0 (Voitsekhovich 1995)."""
    r = np.array([0.01, 0.1, 1.0])
    ratio = von_karman_structure_function(r, R0, outer) / kolmogorov_structure_function(r, R0)
    x = r / outer
    np.testing.assert_allclose(ratio, 1 - 1.485 * x ** (1 / 3) + 5.383 * x**2, atol=0.01)
    assert von_karman_covariance(0.0, R0, L0) == pytest.approx(von_karman_variance(R0, L0))


def test_noll_piston_removed_variance_from_the_structure_function():
    """Half the mean D over pupil point pairs is the piston-removed variance: 1.03 (D/r0)^(5/3) for Kolmogorov."""
    rho = _pupil_pairs(8.0, 400_000, np.random.default_rng(0))
    kolmogorov = 0.5 * np.mean(kolmogorov_structure_function(rho, R0))
    assert kolmogorov == pytest.approx(1.0299 * (8.0 / R0) ** (5 / 3), rel=0.01)
    von_karman = 0.5 * np.mean(von_karman_structure_function(rho, R0, L0))
    # Tip-tilt is 87% of the Kolmogorov variance and L0 = 25 m (~3 D) removes most of it.
    assert 0.15 < von_karman / kolmogorov < 0.5


@pytest.fixture(scope="module")
def fft_screens():
    rng = np.random.default_rng(1)
    return np.stack([fft_phase_screen(256, 0.04, R0, L0, rng) for _ in range(60)])


def test_fft_screen_structure_function_matches_von_karman(fft_screens):
    lags = [1, 2, 4, 8, 16, 32, 64]
    measured = _structure_function(fft_screens, lags)
    theory = von_karman_structure_function(np.array(lags) * 0.04, R0, L0)
    # 1-pixel lags lose a little to the grid's missing high frequencies; larger lags within 10%.
    np.testing.assert_allclose(measured[1:] / theory[1:], 1.0, atol=0.10)
    assert measured[0] / theory[0] == pytest.approx(1.0, abs=0.15)


def test_fft_screen_pupil_variance_matches_theory(fft_screens):
    n, scale = 256, 0.04
    x = (np.arange(n) - n / 2 + 0.5) * scale
    pupil = np.hypot(*np.meshgrid(x, x, indexing="ij")) <= 4.0  # 8 m aperture
    var = np.mean([np.var(s[pupil]) for s in fft_screens])
    rho = _pupil_pairs(8.0, 400_000, np.random.default_rng(2))
    theory = 0.5 * np.mean(von_karman_structure_function(rho, R0, L0))
    assert var / theory == pytest.approx(1.0, abs=0.15)  # 60 screens: large-scale power scatters


def test_infinite_screen_keeps_statistics_after_long_extrusion():
    """After extruding eight windows' worth of columns, the window still has von Karman statistics."""
    rng = np.random.default_rng(3)
    windows = []
    for _ in range(12):
        screen = InfiniteScreen(64, 96, 0.08, R0, L0, rng)
        screen.advance(8 * 96 * 0.08)
        windows.append(screen.window())
    windows = np.stack(windows)
    lags = [1, 2, 4, 8, 16]
    measured = _structure_function(windows, lags)
    theory = von_karman_structure_function(np.array(lags) * 0.08, R0, L0)
    np.testing.assert_allclose(measured / theory, 1.0, atol=0.15)


def test_infinite_screen_does_not_repeat():
    rng = np.random.default_rng(4)
    screen = InfiniteScreen(48, 80, 0.1, R0, L0, rng)
    first = screen.window().copy()
    screen.advance(80 * 0.1)  # exactly one window length later: a periodic screen would be back
    later = screen.window()
    corr = np.corrcoef(first.ravel(), later.ravel())[0, 1]
    assert abs(corr) < 0.3


def test_extrusion_kernel_equals_numpy_reference():
    n, length = 24, 70
    a, b, z_rows, z_cols = _extrusion_operators(n, 0.1, R0, L0, (1, 2, 4, 8, 16, 32, 64))
    rng = np.random.default_rng(5)
    buffer = rng.standard_normal((n, length))
    noise = rng.standard_normal((3, b.shape[1]))
    ref = buffer.copy()
    head = 10
    ref_head = head
    for w in noise:
        newest = (ref_head - 1) % length
        z = ref[z_rows, (newest - (z_cols - 1)) % length]
        ref[:, ref_head] = a @ z + b @ w
        ref_head = (ref_head + 1) % length
    got_head = kernels.extrude_columns(buffer, head, a, b, z_rows, z_cols, noise)
    assert got_head == ref_head
    np.testing.assert_allclose(buffer, ref, rtol=1e-12, atol=1e-12)


def test_bilinear_sampling_equals_scipy_map_coordinates():
    rng = np.random.default_rng(6)
    buffer = rng.standard_normal((20, 30))
    head, offset = 7, 0.3
    x = rng.uniform(0, 27, 500)
    y = rng.uniform(0, 18, 500)
    out = np.empty(500)
    kernels.sample_ring(buffer, head, offset, x, y, out)
    window = np.roll(buffer, -head, axis=1)
    ref = scipy.ndimage.map_coordinates(window, [y, x + offset], order=1)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_aligned_fast_path_equals_general_sampling():
    from astrogym.envs.adaptive_optics.atmosphere import Atmosphere

    atm = Atmosphere(40, 0.1, R0, L0, (1.0,), (15.0,), (0.0,), np.random.default_rng(8))
    for _ in range(7):
        atm.advance(1.3e-3)
    fast = atm.phase().copy()
    layer = atm.layers[0]
    general = np.empty(40 * 40)
    kernels.sample_ring(layer.buffer, layer.head, layer.offset, atm._x[0], atm._y[0], general)
    np.testing.assert_allclose(fast.ravel(), general, rtol=1e-12, atol=1e-12)
