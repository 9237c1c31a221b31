"""Action layouts of ``astrogym/AdaptiveOptics-v0`` and their conversions to and from the actuator grid.

The DM has (N+1) x (N+1) actuators, of which ``system.controlled`` marks those the loop drives.
``AOConfig.action_layout`` chooses how an action addresses them; all three move the same DM
through the same command, stroke clip and delay, and leave the observation unchanged:

* ``"grid"`` (the default; the baselines in ``astrogym.agents`` need it): ``Box(-1, 1, (N+1, N+1))``,
  one increment per actuator in units of ``action_scale_rad``; uncontrolled entries are ignored.
* ``"flat"``: ``Box(-1, 1, (n_controlled,))``, the controlled actuators only, in ``np.flatnonzero``
  order of the mask, same units: the flat action ``grid[controlled]`` steps the env exactly (to
  the bit) as the grid action ``grid`` does when ``grid`` is zero off the controlled actuators.
* ``"modal"``: ``Box(-1, 1, (n_modes,))``, coefficients on the Karhunen-Loeve modes of von Karman
  phase at the controlled actuators (:func:`kl_basis`). Mode ``m`` is a column of
  :attr:`ModalBasis.modes`, normalised so that its largest actuator moves by 1 (so a coefficient
  of 1 moves that actuator by ``action_scale_rad``); the actuator increment ``modes @ coeffs`` may
  then exceed 1 anywhere, so only the coefficients are range-checked (and clipped with
  ``action_out_of_range="clip"``), and the increment goes straight to the stroke clip.

Conversions (:meth:`ActionLayout.to_grid`, :meth:`ActionLayout.from_grid`) are linear maps and
neither range-check nor clip: ``to_grid`` gives the actuator increments an action asks for (in
action units, 0 off the controlled actuators); ``from_grid`` the action of this layout closest to
a grid of increments (the controlled entries for flat; least squares onto the modes for modal,
exact for a piston-free grid with all modes).
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

from astrogym.envs.adaptive_optics import kernels
from astrogym.envs.adaptive_optics.atmosphere import von_karman_covariance

LAYOUTS = ("grid", "flat", "modal")

# Consecutive KL variances closer than this (relative) belong to one degenerate subspace (tip and
# tilt, and every other pair the square actuator grid's symmetry makes equal). Symmetric pairs agree
# to ~1e-13; distinct modes of the 20x20 and 40x40 systems differ by 3e-6 or more.
_DEGENERATE_RTOL = 1e-9
# Monomials x^a y^b up to this degree fix the basis inside a degenerate subspace and every mode's sign.
_MONOMIAL_DEGREE = 12


class ModalBasis:
    """The Karhunen-Loeve modes of one system (read-only arrays, shared by every env that uses them).

    Attributes
    ----------
    modes: (n_controlled, n_available) float64. Column ``m`` is mode ``m`` at the controlled
        actuators (``np.flatnonzero`` order of the mask); the columns are orthogonal and free of
        piston (they sum to zero), each scaled so its largest ``|value|`` is 1.
    variances: (n_available,) float64, rad^2 at 500 nm: the variance of von Karman phase along each
        mode scaled to unit Euclidean norm, non-increasing (mode 0 and 1 are tip and tilt).
    """

    def __init__(self, modes: np.ndarray, variances: np.ndarray):
        self.modes = modes
        self.variances = variances
        for a in (modes, variances):
            a.setflags(write=False)

    @property
    def n_controlled(self) -> int:
        return self.modes.shape[0]

    @property
    def n_available(self) -> int:
        return self.modes.shape[1]


def _monomials(pos: np.ndarray) -> np.ndarray:
    """(n_monomials, n) unit-norm piston-free monomials x^a y^b of the actuator positions (row, column),
    by degree; x runs along the columns, as in the atmosphere and the pupil grid."""
    y, x = (pos / np.abs(pos).max()).T
    rows = []
    for degree in range(1, _MONOMIAL_DEGREE + 1):
        for b in range(degree + 1):
            p = x ** (degree - b) * y ** b
            p = p - p.mean()
            norm = np.linalg.norm(p)
            if norm > 0:
                rows.append(p / norm)
    return np.array(rows)


def _canonical(vectors: np.ndarray, monomials: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the span of ``vectors`` (n, k) that does not depend on LAPACK's choice.

    Gram-Schmidt on the projections of the monomials onto the span, in order: each new vector is
    the first monomial's component not yet covered, so within tip/tilt mode 0 leans on x and mode 1
    on y, and every vector overlaps its monomial positively (this fixes the signs). Directions no
    monomial reaches keep LAPACK's vectors, signed so that their first entry above 0.1 of their peak is
    positive.
    """
    k = vectors.shape[1]
    coef = monomials @ vectors  # (n_monomials, k): each monomial in the span's coordinates
    chosen: list[np.ndarray] = []
    for w in coef:
        for c in chosen:
            w = w - (c @ w) * c
        norm = np.linalg.norm(w)
        if norm > 1e-6:
            chosen.append(w / norm)
            if len(chosen) == k:
                break
    for e in np.eye(k):  # fallback: complete with the remaining original directions
        if len(chosen) == k:
            break
        for c in chosen:
            e = e - (c @ e) * c
        norm = np.linalg.norm(e)
        if norm > 1e-6:
            v = vectors @ e
            first = np.flatnonzero(np.abs(v) > 0.1 * np.abs(v).max())[0]  # its first large entry is positive
            chosen.append(np.copysign(1.0, v[first]) * e / norm)
    return vectors @ np.array(chosen).T


def kl_basis(controlled: np.ndarray, pitch_m: float, r0_m: float, outer_scale_m: float) -> ModalBasis:
    """Karhunen-Loeve modes of von Karman phase at the controlled actuators (computed, not cached).

    Actuator ``(i, j)`` of the mask sits at ``(i, j) * pitch_m``; the phase covariance between two
    actuators is :func:`~astrogym.envs.adaptive_optics.atmosphere.von_karman_covariance` of their
    distance. Piston is projected out first (the reward is piston-removed, so piston is not
    controllable): the covariance is diagonalised on the orthogonal complement of the constant
    vector, giving ``n_controlled - 1`` modes, ordered by decreasing variance. Inside subspaces of
    equal variance (symmetric pairs) the basis is fixed by low-order monomials (:func:`_canonical`),
    so it is the same whatever LAPACK returns; each mode's sign makes its overlap with the first
    monomial it overlaps positive. Finally each mode is scaled to a peak ``|value|`` of 1.
    """
    idx = np.argwhere(controlled)
    n = idx.shape[0]
    if n < 2:
        raise ValueError(f"a modal basis needs at least 2 controlled actuators, got {n}")
    # The covariance depends on the integer offset between two actuators only: evaluate it once per offset.
    span = np.asarray(controlled.shape)
    di, dj = np.meshgrid(np.arange(span[0]), np.arange(span[1]), indexing="ij")
    table = von_karman_covariance(pitch_m * np.hypot(di, dj), r0_m, outer_scale_m)
    cov = table[np.abs(idx[:, None, 0] - idx[None, :, 0]), np.abs(idx[:, None, 1] - idx[None, :, 1])]
    # Householder reflector H = I - 2 u u^T / u^T u maps e_0 to the unit piston vector; its other
    # columns are an orthonormal basis Q of the piston-free subspace. Q^T C Q without forming H:
    u = np.full(n, -1.0 / np.sqrt(n))
    u[0] += 1.0
    beta = 2.0 / (u @ u)
    cu = cov @ u
    hch = cov - beta * np.outer(u, cu) - beta * np.outer(cu, u) + beta**2 * (u @ cu) * np.outer(u, u)
    reduced = hch[1:, 1:]
    reduced = 0.5 * (reduced + reduced.T)
    lam, vec = np.linalg.eigh(reduced)
    lam, vec = lam[::-1], vec[:, ::-1]
    padded = np.vstack([np.zeros((1, n - 1)), vec])  # Q vec = H [0; vec]
    modes = padded - beta * np.outer(u, u @ padded)
    modes -= modes.mean(axis=0)  # piston leaves at roundoff already; remove the rest
    monomials = _monomials(idx.astype(np.float64) - (span - 1) / 2.0)
    start = 0
    while start < n - 1:  # degenerate runs of the (non-increasing) variances
        stop = start + 1
        while stop < n - 1 and lam[stop - 1] - lam[stop] <= _DEGENERATE_RTOL * abs(lam[start]):
            stop += 1
        modes[:, start:stop] = _canonical(modes[:, start:stop], monomials)
        start = stop
    variances = np.einsum("im,im->m", modes, cov @ modes)  # unit-norm columns: their KL variance
    peak = np.abs(modes).max(axis=0)
    return ModalBasis(np.ascontiguousarray(modes / peak), variances)


@functools.lru_cache(maxsize=8)
def _cached_basis(mask: bytes, shape: tuple[int, int], pitch_m: float, r0_m: float,
                  outer_scale_m: float) -> ModalBasis:
    controlled = np.frombuffer(mask, dtype=bool).reshape(shape)
    return kl_basis(controlled, pitch_m, r0_m, outer_scale_m)


def modal_basis(cfg, controlled: np.ndarray) -> ModalBasis:
    """:func:`kl_basis` for a configuration and its controlled mask, cached in memory per
    (mask, actuator pitch, ``r0_m``, ``outer_scale_m``): a few envs of one system share one basis."""
    mask = np.ascontiguousarray(controlled, dtype=bool)
    return _cached_basis(mask.tobytes(), mask.shape, float(cfg.subaperture_m), float(cfg.r0_m),
                         float(cfg.outer_scale_m))


def clear_memory_cache() -> None:
    """Forget the bases computed in this process."""
    _cached_basis.cache_clear()


class ActionLayout:
    """How an action addresses the DM: its space, how ``step`` applies it, conversions to and from the grid.

    ``apply`` takes an action already of :attr:`space`'s shape and of a dtype the kernels take
    (native float32 or float64, C-contiguous); the conversions take float64 arrays of the right
    shape and return float64.
    """

    name = "grid"

    def __init__(self, controlled: np.ndarray):
        self.controlled = controlled
        self.index = np.flatnonzero(controlled)
        self._controlled_f = controlled.astype(np.float64)
        self.space = gym.spaces.Box(-1.0, 1.0, shape=self._shape(), dtype=np.float32)

    def _shape(self) -> tuple[int, ...]:
        return self.controlled.shape

    @property
    def basis(self) -> np.ndarray | None:
        """(n_controlled, n_modes) read-only modes for ``"modal"``; None for the other layouts."""
        return None

    def apply(self, action: np.ndarray, command: np.ndarray, scale: float, stroke: float,
              clip: bool) -> tuple[int, float]:
        """``command`` += the action's increments (times ``scale``), clipped to ``+-stroke``, in place.

        Returns ``(status, peak)`` as :func:`~astrogym.envs.adaptive_optics.kernels.apply_action`:
        1 = non-finite entries, 2 = entries beyond [-1, 1] without ``clip`` (``command`` untouched).
        """
        return kernels.apply_action(action, command, self._controlled_f, scale, stroke, clip)

    def applied_increments(self, action: np.ndarray) -> np.ndarray:
        """The increments (action units) on the grid that the last :meth:`apply` of ``action`` made,
        for the action penalty. The grid layout keeps its historical definition: the clipped action,
        uncontrolled entries included."""
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)

    def to_grid(self, action: np.ndarray) -> np.ndarray:
        return action * self._controlled_f

    def _scatter(self, values: np.ndarray) -> np.ndarray:
        """A float64 grid holding ``values`` on the controlled actuators and 0 elsewhere."""
        grid = np.zeros(self.controlled.shape)
        grid.flat[self.index] = values
        return grid

    def from_grid(self, grid: np.ndarray) -> np.ndarray:
        return grid * self._controlled_f


class FlatLayout(ActionLayout):
    name = "flat"

    def _shape(self) -> tuple[int, ...]:
        return (int(self.controlled.sum()),)

    def apply(self, action, command, scale, stroke, clip):
        return kernels.apply_flat_action(action, command, self.index, scale, stroke, clip)

    def applied_increments(self, action):
        return self._scatter(np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0))

    def to_grid(self, action):
        return self._scatter(action)

    def from_grid(self, grid):
        return grid.reshape(-1)[self.index].copy()


class ModalLayout(ActionLayout):
    name = "modal"

    def __init__(self, controlled: np.ndarray, basis: ModalBasis, n_modes: int):
        self.n_modes = n_modes
        modes = basis.modes[:, :n_modes]
        self._modes = modes
        self._derive()
        super().__init__(controlled)

    def _derive(self) -> None:
        """The arrays derived from the modes: the kernel's transposed copy, the projector, work buffers."""
        self._modes.setflags(write=False)
        self._modes_t = np.ascontiguousarray(self._modes.T)  # (n_modes, n_controlled): the kernel's row-major pass
        # Orthogonal columns: least squares onto them is one product with modes^T / |mode|^2.
        self._pinv = self._modes_t / np.einsum("ij,ij->i", self._modes_t, self._modes_t)[:, None]
        self._clipped = np.empty(self.n_modes)
        self._increment = np.empty(self._modes.shape[0])

    def _shape(self) -> tuple[int, ...]:
        return (self.n_modes,)

    @property
    def basis(self) -> np.ndarray:
        return self._modes

    def apply(self, action, command, scale, stroke, clip):
        return kernels.apply_modal_action(action, self._modes_t, command, self.index, scale, stroke, clip,
                                          self._clipped, self._increment)

    def applied_increments(self, action):
        return self._scatter(self._increment)

    def to_grid(self, action):
        return self._scatter(self._modes @ action)

    def from_grid(self, grid):
        return self._pinv @ grid.reshape(-1)[self.index]

    def __getstate__(self):
        # the transposed copy and the work buffers are rebuilt; the modes travel once
        state = dict(self.__dict__)
        for name in ("_modes_t", "_pinv", "_clipped", "_increment"):
            state.pop(name)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._derive()


def make_layout(cfg, controlled: np.ndarray) -> ActionLayout:
    """The layout ``cfg.action_layout`` on the system's controlled mask.

    Raises
    ------
    ValueError: ``cfg.n_modes`` exceeds the modes this geometry has (the message gives the allowed range).
    """
    if cfg.action_layout == "grid":
        return ActionLayout(controlled)
    if cfg.action_layout == "flat":
        return FlatLayout(controlled)
    n_controlled = int(controlled.sum())
    available = n_controlled - 1
    if not 0 <= cfg.n_modes <= available:
        raise ValueError(f"AOConfig.n_modes={cfg.n_modes} is out of range; allowed [0, {available}] for this "
                         f"geometry (its {n_controlled} controlled actuators have {available} piston-free modes; "
                         "0 = all)")
    basis = modal_basis(cfg, controlled)
    return ModalLayout(controlled, basis, cfg.n_modes or available)
