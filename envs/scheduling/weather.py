"""Weather for a night: seeing and cloud cover on the night table's time grid.

Environments only see :class:`WeatherModel`: anything with ``sample_night(rng, times_s, site)``
returning a :class:`WeatherTrack` can replace the stochastic model here (a learned generator
from :mod:`astrogym.surrogates`, or replayed site records).

:class:`StochasticWeather` (the default) follows the reference: seeing is log-normal and
autocorrelated (an Ornstein-Uhlenbeck process in log seeing with a correlation time of tens of
minutes, median matched to the site), and cloud cover switches between clear, thin and thick
as a continuous-time Markov chain whose stationary clear fraction equals the site's usable
fraction of night time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numba import njit

from astrogym.envs.scheduling.sites import Site

CLEAR, THIN, THICK = 0, 1, 2
CLOUD_STATES = ("clear", "thin", "thick")


@dataclass(frozen=True, eq=False)
class WeatherTrack:
    """One night's conditions on a time grid.

    Attributes
    ----------
    seeing_arcsec: (T,) zenith seeing FWHM at 500 nm.
    cloud_state: (T,) int8, 0 clear, 1 thin, 2 thick.
    cloud_tau: (T,) cloud extinction entering the depth as ``-1.1 tau`` (see :mod:`photometry`).
    """

    seeing_arcsec: np.ndarray
    cloud_state: np.ndarray
    cloud_tau: np.ndarray

    def __post_init__(self) -> None:
        n = self.seeing_arcsec.shape
        if self.cloud_state.shape != n or self.cloud_tau.shape != n or len(n) != 1:
            raise ValueError("WeatherTrack arrays must be 1-D and of equal length, got "
                             f"{self.seeing_arcsec.shape}, {self.cloud_state.shape}, {self.cloud_tau.shape}")
        if not np.all(np.isfinite(self.seeing_arcsec)) or np.any(self.seeing_arcsec <= 0):
            raise ValueError("WeatherTrack.seeing_arcsec must be finite and > 0")
        if not np.all(np.isfinite(self.cloud_tau)) or np.any(self.cloud_tau < 0):
            raise ValueError("WeatherTrack.cloud_tau must be finite and >= 0")


class WeatherModel(Protocol):
    """What an environment needs from a weather generator."""

    def sample_night(self, rng: np.random.Generator, times_s: np.ndarray, site: Site) -> WeatherTrack:
        """Conditions at ``times_s`` (seconds from the start of the night) for ``site``.

        A model may also accept a keyword ``start_mjd`` (the night's evening twilight, UTC MJD): the
        env then passes it, so the model can depend on the season (the learned generator does).
        """


@dataclass(frozen=True)
class StochasticWeather:
    """Log-normal autocorrelated seeing and a three-state Markov cloud cover.

    Attributes
    ----------
    median_seeing_arcsec: None takes the site's median.
    seeing_sigma_log: standard deviation of ln(seeing) (0.3 gives a 16-84% range of 0.74x-1.35x).
    seeing_tau_s: correlation time of the seeing.
    clear_fraction: long-run fraction of clear time; None takes the site's usable fraction.
    thin_share: of the cloudy time, the share that is thin.
    cloud_mean_duration_s: mean length of a clear spell's complement (a cloudy spell).
    thin_tau, thick_tau: cloud extinction of the two cloudy states.
    """

    median_seeing_arcsec: float | None = None
    seeing_sigma_log: float = 0.3
    seeing_tau_s: float = 1800.0
    clear_fraction: float | None = None
    thin_share: float = 0.5
    cloud_mean_duration_s: float = 3600.0
    thin_tau: float = 0.3
    thick_tau: float = 2.0

    def stationary(self, site: Site) -> np.ndarray:
        clear = site.usable_fraction if self.clear_fraction is None else self.clear_fraction
        return np.array([clear, (1 - clear) * self.thin_share, (1 - clear) * (1 - self.thin_share)])

    def generator(self, site: Site) -> np.ndarray:
        """Rate matrix Q (1/s) of the cloud chain.

        A state i is left at rate c (1 - pi_i) for state j with probability pi_j / (1 - pi_i): the flow
        i -> j is c pi_i pi_j, symmetric, so ``pi`` (:meth:`stationary`) is stationary. Leaving the cloudy
        states for clear happens at rate c pi_clear from either of them, so cloudy spells last
        1 / (c pi_clear) on average: c is set so that this equals ``cloud_mean_duration_s``.
        """
        pi = self.stationary(site)
        c = 1.0 / (self.cloud_mean_duration_s * max(pi[CLEAR], 1e-9))
        q = c * np.outer(np.ones(3), pi)
        np.fill_diagonal(q, 0.0)
        np.fill_diagonal(q, -q.sum(axis=1))
        return q

    def transition(self, site: Site, dt_s: float) -> np.ndarray:
        """exp(Q dt) in closed form: Q = c (1 pi^T - I) and 1 pi^T is a projector, so
        exp(Q dt) = e^(-c dt) I + (1 - e^(-c dt)) 1 pi^T (checked against scipy's expm in the tests)."""
        pi = self.stationary(site)
        decay = np.exp(-dt_s / (self.cloud_mean_duration_s * max(pi[CLEAR], 1e-9)))
        return decay * np.eye(3) + (1.0 - decay) * np.outer(np.ones(3), pi)

    def sample_night(self, rng: np.random.Generator, times_s: np.ndarray, site: Site) -> WeatherTrack:
        n = times_s.shape[0]
        # steps rounded to 1 ms so that a regular grid has one step value (one matrix exponential)
        dt = np.round(np.diff(times_s, prepend=times_s[0]), 3)
        median = site.median_seeing_arcsec if self.median_seeing_arcsec is None else self.median_seeing_arcsec
        # Ornstein-Uhlenbeck in ln(seeing): exact AR(1) discretisation on the grid, started stationary.
        phi = np.exp(-dt / self.seeing_tau_s)
        drive = self.seeing_sigma_log * np.sqrt(1.0 - phi ** 2) * rng.standard_normal(n)
        drive[0] = self.seeing_sigma_log * rng.standard_normal()
        x = _ar1(phi, drive)
        seeing = median * np.exp(x)
        # Cloud chain started stationary, with exact transition matrices per distinct step.
        pi = self.stationary(site)
        u = rng.random(n)
        steps = np.unique(dt[1:]) if n > 1 else np.zeros(1)
        cumulative = np.cumsum(np.stack([self.transition(site, step) for step in steps]), axis=2)
        which = np.searchsorted(steps, dt)
        state = _cloud_chain(np.cumsum(pi), cumulative, which, u)
        tau = np.array([0.0, self.thin_tau, self.thick_tau])[state]
        return WeatherTrack(seeing_arcsec=seeing, cloud_state=state, cloud_tau=tau)


@njit(cache=True)
def _ar1(phi, drive):
    x = np.empty(drive.shape[0])
    x[0] = drive[0]
    for k in range(1, drive.shape[0]):
        x[k] = phi[k] * x[k - 1] + drive[k]
    return x


@njit(cache=True)
def _cloud_chain(initial_cdf, cumulative, which, u):
    """Markov chain: state 0 from ``initial_cdf``, then row ``state`` of ``cumulative[which[k]]``."""
    n = u.shape[0]
    state = np.empty(n, np.int8)
    s = 0
    while s < 2 and u[0] * initial_cdf[2] >= initial_cdf[s]:
        s += 1
    state[0] = s
    for k in range(1, n):
        row = cumulative[which[k], state[k - 1]]
        s = 0
        while s < 2 and u[k] * row[2] >= row[s]:
            s += 1
        state[k] = s
    return state


@dataclass(frozen=True)
class ClearWeather:
    """Clear skies and constant seeing: for hand-checked tests and upper-bound studies."""

    seeing_arcsec: float | None = None

    def sample_night(self, rng: np.random.Generator, times_s: np.ndarray, site: Site) -> WeatherTrack:
        seeing = site.median_seeing_arcsec if self.seeing_arcsec is None else self.seeing_arcsec
        n = times_s.shape[0]
        return WeatherTrack(seeing_arcsec=np.full(n, float(seeing)), cloud_state=np.zeros(n, dtype=np.int8),
                            cloud_tau=np.zeros(n))


class Forecaster(Protocol):
    """What an environment needs from a forecaster (its ``forecaster=`` argument)."""

    def forecast_night(self, weather: WeatherTrack, times_s: np.ndarray, start_mjd: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Expected seeing (arcsec) and clear probability at each of ``times_s``, from the weather up to each point."""


# Forecasters a config can name (YAML cannot hold an object): name -> "module:callable" returning one, imported
# only when asked for, so the env never imports torch unless a learned forecaster is used.
FORECASTERS = {"weather-flow": "astrogym.surrogates.forecast:shipped_forecaster"}


def make_forecaster(name: str) -> Forecaster:
    """The forecaster registered as ``name`` (:data:`FORECASTERS`).

    Raises
    ------
    ValueError: an unknown name (the message lists the allowed ones).
    """
    from astrogym.envs.common.imports import import_path

    if name not in FORECASTERS:
        raise ValueError(f"forecaster={name!r} is not a registered forecaster; allowed: {', '.join(FORECASTERS)} "
                         "or an object with forecast_night(weather, times_s, start_mjd, rng)")
    return import_path(FORECASTERS[name])()
