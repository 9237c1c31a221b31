"""Von Karman turbulence: statistics, FFT screens with subharmonics, and infinite screens.

Phase is in radians at ``wavelength_ref`` (500 nm, where r0 is quoted); it scales as
1 / wavelength. Statistics (Roddier 1981; Sasiela; Assemat et al. 2006, Opt. Express 14, 988):

* PSD: ``Phi(f) = 0.0229 r0^(-5/3) (f^2 + 1/L0^2)^(-11/6)`` (rad^2 m^2, f in cycles/m);
* covariance: ``C(r) = (L0/r0)^(5/3) c1 (2 pi r / L0)^(5/6) K_5/6(2 pi r / L0)`` with
  ``c1 = 2^(-5/6) Gamma(11/6) / pi^(8/3) [24/5 Gamma(6/5)]^(5/6)``;
* structure function ``D(r) = 2 (C(0) - C(r))``, which tends to ``6.88 (r/r0)^(5/3)`` for r << L0.

An :class:`InfiniteScreen` never wraps: it keeps a window of the layer in a ring buffer and
extrudes new columns along the wind with the Assemat conditional-Gaussian recursion, so a
screen can move for any number of frames.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg
import scipy.special

from astrogym.envs.adaptive_optics import kernels

_C_PSD = 0.0229  # Phi = 0.0229 r0^-5/3 f^-11/3 with f in cycles/m (Kolmogorov limit)
_C_COV = (2 ** (-5 / 6) * scipy.special.gamma(11 / 6) / np.pi ** (8 / 3)
          * (24 / 5 * scipy.special.gamma(6 / 5)) ** (5 / 6))


def von_karman_psd(f, r0: float, L0: float):
    """Phase PSD in rad^2 m^2 at spatial frequency ``f`` (cycles/m)."""
    return _C_PSD * r0 ** (-5 / 3) * (np.asarray(f, dtype=float) ** 2 + 1.0 / L0**2) ** (-11 / 6)


def von_karman_covariance(r, r0: float, L0: float):
    """Phase covariance C(r) in rad^2 at separation ``r`` (m)."""
    r = np.asarray(r, dtype=float)
    x = 2 * np.pi * np.maximum(r, 1e-12 * L0) / L0
    cov = (L0 / r0) ** (5 / 3) * _C_COV * x ** (5 / 6) * scipy.special.kv(5 / 6, x)
    return np.where(r <= 1e-12 * L0, von_karman_variance(r0, L0), cov)


def von_karman_variance(r0: float, L0: float) -> float:
    """C(0): the (finite, L0-limited) phase variance in rad^2."""
    return float((L0 / r0) ** (5 / 3) * _C_COV * 2 ** (-1 / 6) * scipy.special.gamma(5 / 6))


def von_karman_structure_function(r, r0: float, L0: float):
    """D(r) = 2 (C(0) - C(r)) in rad^2."""
    return 2.0 * (von_karman_variance(r0, L0) - von_karman_covariance(r, r0, L0))


def kolmogorov_structure_function(r, r0: float):
    """6.88 (r / r0)^(5/3): the infinite-outer-scale limit."""
    return 6.88 * (np.asarray(r, dtype=float) / r0) ** (5 / 3)


def fft_phase_screen(n: int, pixel_scale: float, r0: float, L0: float, rng: np.random.Generator,
                     subharmonics: int = 3) -> np.ndarray:
    """An n x n von Karman phase screen (rad) by the FFT method plus low-frequency subharmonics.

    The FFT grid lacks power below 1 / (n pixel_scale); ``subharmonics`` levels of 3x3
    sub-grids (Johansson & Gavel 1994) put it back, so the structure function holds out to
    scales comparable to the screen.
    """
    size = n * pixel_scale
    df = 1.0 / size
    fx = np.fft.fftfreq(n, d=pixel_scale)
    fxx, fyy = np.meshgrid(fx, fx, indexing="ij")
    amp = np.sqrt(von_karman_psd(np.hypot(fxx, fyy), r0, L0)) * df
    amp[0, 0] = 0.0  # no piston
    noise = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    screen = np.fft.ifft2(amp * noise).real * n * n
    if subharmonics:
        x = (np.arange(n) - n / 2) * pixel_scale
        xx, yy = np.meshgrid(x, x, indexing="ij")
        low = np.zeros((n, n))
        for level in range(1, subharmonics + 1):
            dfl = df / 3**level
            for i in (-1, 0, 1):
                for j in (-1, 0, 1):
                    if i == 0 and j == 0:
                        continue
                    fxl, fyl = i * dfl, j * dfl
                    a = np.sqrt(von_karman_psd(np.hypot(fxl, fyl), r0, L0)) * dfl
                    c = a * (rng.standard_normal() + 1j * rng.standard_normal())
                    low += (c * np.exp(2j * np.pi * (fxl * xx + fyl * yy))).real
        screen += low - low.mean()
    return screen


@functools.lru_cache(maxsize=16)
def _extrusion_operators(n: int, pixel_scale: float, r0: float, L0: float, stencil_columns: tuple[int, ...]):
    """Assemat operators for a new column at x = +1 given stencil columns at x = -k (k in stencil_columns).

    new = A @ z + B @ w, w ~ N(0, I); A = C_xz C_zz^-1, B B^T = C_xx - A C_zx.
    The stencil takes every pixel of the nearest two columns and every fourth of farther ones.
    Returns (A, B, stencil_rows, stencil_cols) with the stencil positions as column offsets.
    """
    rows, cols = [], []
    for k in stencil_columns:
        step = 1 if k <= 2 else 4
        idx = np.arange(0, n, step)
        if idx[-1] != n - 1:
            idx = np.append(idx, n - 1)
        rows.append(idx)
        cols.append(np.full(idx.size, k))
    z_rows, z_cols = np.concatenate(rows), np.concatenate(cols)
    y = np.arange(n) * pixel_scale
    zx, zy = -z_cols * pixel_scale, z_rows * pixel_scale  # new column at x = 0, stencil at x = -k
    xx, xy = np.zeros(n), y

    def cov(ax, ay, bx, by):
        return von_karman_covariance(np.hypot(ax[:, None] - bx[None, :], ay[:, None] - by[None, :]), r0, L0)

    czz = cov(zx, zy, zx, zy)
    cxz = cov(xx, xy, zx, zy)
    cxx = cov(xx, xy, xx, xy)
    a = scipy.linalg.solve(czz, cxz.T, assume_a="pos").T
    bbt = cxx - a @ cxz.T
    w, v = np.linalg.eigh(0.5 * (bbt + bbt.T))
    b = v * np.sqrt(np.clip(w, 0.0, None))
    return (np.ascontiguousarray(a), np.ascontiguousarray(b), z_rows.astype(np.int64), z_cols.astype(np.int64))


DEFAULT_STENCIL = (1, 2, 4, 8, 16, 32, 64)


class InfiniteScreen:
    """A von Karman layer that moves along +x forever without repeating.

    The layer is held as ``n`` rows by ``length`` columns in a ring buffer; ``advance(dx)``
    moves it by ``dx`` metres, extruding whole columns as the offset passes pixel boundaries,
    and :meth:`sample` reads the phase at arbitrary points (bilinear, in the layer frame:
    x along the wind, y across it, origin at the window's oldest column).

    Parameters
    ----------
    n: pixels across the wind (must cover the rotated pupil).
    length: columns kept along the wind (must cover the rotated pupil plus one).
    pixel_scale: metres per pixel.
    r0, L0: Fried parameter at the reference wavelength and outer scale (m).
    rng: source of every random draw (the initial screen and each extruded column).
    """

    def __init__(self, n: int, length: int, pixel_scale: float, r0: float, L0: float, rng: np.random.Generator,
                 stencil: tuple[int, ...] = DEFAULT_STENCIL):
        if length <= max(stencil):
            raise ValueError(f"length={length} must exceed the farthest stencil column {max(stencil)}")
        self.n, self.length, self.pixel_scale, self.r0, self.L0 = n, length, pixel_scale, r0, L0
        self.rng = rng
        self._a, self._b, self._z_rows, self._z_cols = _extrusion_operators(n, pixel_scale, r0, L0, tuple(stencil))
        big = max(n, length)
        # Start from an FFT screen twice the window (subharmonics keep its large scales right).
        start = fft_phase_screen(2 * big, pixel_scale, r0, L0, rng)[:n, :length]
        self.buffer = np.ascontiguousarray(start)  # buffer[y, x]; column `head` is the oldest
        self.head = 0
        self.offset = 0.0  # sub-pixel position of the window, in pixels, in [0, 1)

    def advance(self, dx_m: float) -> None:
        """Move the layer by ``dx_m`` metres along +x (the window slides forward)."""
        if dx_m < 0:
            raise ValueError("screens only move forward; rotate the layer for other directions")
        self.offset += dx_m / self.pixel_scale
        steps = int(self.offset)
        if steps:
            self.offset -= steps
            noise = self.rng.standard_normal((steps, self._b.shape[1]))
            self.head = kernels.extrude_columns(self.buffer, self.head, self._a, self._b, self._z_rows,
                                                self._z_cols, noise)

    def window(self) -> np.ndarray:
        """The current window as a plain (n, length) array, oldest column first."""
        return np.roll(self.buffer, -self.head, axis=1)

    def sample(self, x_px: np.ndarray, y_px: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Bilinear phase at points given in pixels of the window (x from the oldest column)."""
        out = np.empty(x_px.shape) if out is None else out
        kernels.sample_ring(self.buffer, self.head, self.offset, x_px.ravel(), y_px.ravel(), out.reshape(-1))
        return out


class Atmosphere:
    """Frozen-flow von Karman layers over a square pupil grid.

    Each layer is an :class:`InfiniteScreen` in its own wind frame; the pupil grid is rotated
    into that frame and sampled bilinearly (sub-pixel shifts without wrap). Layer ``i`` has
    ``r0_i = r0 w_i^(-3/5)`` for Cn2 weights ``w`` summing to 1, so the layers add up to ``r0``.

    Parameters
    ----------
    n_pixels, pixel_scale: the pupil grid (metres per pixel).
    r0, L0: at the reference wavelength; ``weights``, ``speeds`` (m/s), ``directions_deg`` per layer.
    rng: every random draw of every layer comes from it.
    """

    def __init__(self, n_pixels: int, pixel_scale: float, r0: float, L0: float, weights, speeds, directions_deg,
                 rng: np.random.Generator):
        w = np.asarray(weights, dtype=float)
        w = w / w.sum()
        self.speeds = np.asarray(speeds, dtype=float)
        self.pixel_scale = pixel_scale
        span = int(np.ceil(n_pixels * np.sqrt(2))) + 4  # the rotated pupil's diagonal, with margin
        length = max(span + 2, max(DEFAULT_STENCIL) + 2)
        coords = (np.arange(n_pixels) - n_pixels / 2 + 0.5)
        yy, xx = np.meshgrid(coords, coords, indexing="ij")  # pupil rows are y, columns x (pixels)
        self.layers, self._x, self._y, self._aligned = [], [], [], []
        for wi, direction in zip(w, directions_deg):
            if wi == 0.0:
                continue
            self.layers.append(InfiniteScreen(span, length, pixel_scale, r0 * wi ** (-3 / 5), L0, rng))
            t = np.deg2rad(direction)
            along = xx * np.cos(t) + yy * np.sin(t)
            across = -xx * np.sin(t) + yy * np.cos(t)
            # The window slides towards +x of its frame, so features drift to smaller window x:
            # sampling at -along makes them move along +direction over the pupil.
            self._x.append(np.ascontiguousarray(length / 2 - along).ravel())
            self._y.append(np.ascontiguousarray(span / 2 + across).ravel())
            # Wind along +x: every pixel shares one set of bilinear weights (the fast path).
            self._aligned.append(float(direction) % 360.0 == 0.0)
        self.speeds = self.speeds[w > 0]
        self.n_pixels = n_pixels

    def advance(self, dt: float) -> None:
        for layer, v in zip(self.layers, self.speeds):
            if v > 0:
                layer.advance(v * dt)

    def phase(self, out: np.ndarray | None = None) -> np.ndarray:
        """The summed phase (rad at the reference wavelength) on the pupil grid."""
        n = self.n_pixels
        out = np.empty((n, n)) if out is None else out
        flat = out.reshape(-1)
        for i, (layer, x, y, aligned) in enumerate(zip(self.layers, self._x, self._y, self._aligned)):
            if aligned:
                kernels.sample_ring_grid(layer.buffer, layer.head, layer.offset, x[0], y[0], n, out, i > 0)
            else:
                kernels.sample_ring(layer.buffer, layer.head, layer.offset, x, y, flat, i > 0)
        return out
