"""Parameters of ``astrogym/TelescopeScheduling-v0`` with their defaults, ranges and meaning."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from astrogym.envs.common.config import EnvConfig, param
from astrogym.envs.scheduling.sites import SITES
from astrogym.envs.scheduling.telescope import TELESCOPES


def _text(default, doc: str):
    """A free-text field (validated in ``validate``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class SchedulingConfig(EnvConfig):
    """Everything ``gym.make("astrogym/TelescopeScheduling-v0", **kwargs)`` accepts.

    Defaults follow ``shared/reference/scheduling.md``: Muztagh-ata with the MOST 1.93 m telescope
    (ZTF's slew and overhead numbers), astronomical twilight, a 60 s ephemeris grid, and a
    100-target random catalogue.
    """

    # -- where and when ----------------------------------------------------------------------------
    site: str = param("muztagh_ata", "observing site (envs/scheduling/sites.py)", choices=tuple(SITES))
    telescope: str = param("most", "telescope kinematics and aperture (envs/scheduling/telescope.py)",
                           choices=tuple(TELESCOPES))
    date: str = _text("2026-12-15", "local calendar date of the first evening, YYYY-MM-DD")
    date_range_days: int = param(0, "if > 0, each reset starts on a date drawn uniformly from "
                                 "[date, date + date_range_days)", low=0, high=3660, kind="int")
    n_nights: int = param(1, "consecutive nights per episode (progress carries over)", low=1, high=30, kind="int")
    grid_s: float = param(60.0, "time step of the precomputed night tables, s", low=10.0, high=600.0)
    twilight_deg: float = param(-18.0, "Sun altitude that starts and ends the night (astronomical -18)",
                                low=-18.0, high=-6.0)
    # -- targets -------------------------------------------------------------------------------------
    n_targets: int = param(100, "size of the random catalogue (ignored with catalogue_path)", low=1,
                           high=20000, kind="int")
    catalogue_seed: int = param(0, "seed of the random catalogue (fixed across episodes)", low=0, high=2**31 - 1,
                                kind="int")
    catalogue_path: str | None = _text(None, "CSV or ECSV catalogue to load instead of a random one")
    catalogue_window_fraction: float = param(0.0, "fraction of the random catalogue's targets that may only be "
                                             "observed in a 1-4 h window within the night of `date` (priority "
                                             "doubled)", low=0.0, high=1.0)
    n_targets_range: tuple | None = param(None, "if set, (low, high): each reset draws the random catalogue (size "
                                          "uniform in [low, high], fresh seed) from a pool of catalogue_pool; needs "
                                          "max_targets >= high; ignored with catalogue_path", low=1, high=20000,
                                          kind="range")
    catalogue_pool: int = param(64, "with n_targets_range: how many distinct (size, seed) catalogues the resets "
                                "draw from; their night tables stay in memory, never on disk", low=1, high=4096,
                                kind="int")
    max_targets: int | None = param(None, "pad node arrays and actions to this many targets (None: the "
                                    "catalogue size); lets reset(options={'catalogue': ...}) vary the set",
                                    low=1, high=20000, kind="optional")
    # -- constraints (as astroplan's AltitudeConstraint, AirmassConstraint, MoonSeparationConstraint) --
    min_altitude_deg: float = param(30.0, "lowest altitude at which a target may be observed", low=0.0, high=89.0)
    max_airmass: float = param(2.0, "highest airmass at which a target may be observed", low=1.0, high=10.0)
    min_moon_separation_deg: float = param(30.0, "closest approach to the Moon", low=0.0, high=180.0)
    # -- decisions and reward ------------------------------------------------------------------------
    wait_s: float = param(300.0, "length of the 'wait' action, s", low=1.0, high=7200.0)
    sequence_bonus: float = param(0.5, "extra reward (x priority) for completing all visits of a multi-visit "
                                  "target", low=0.0, high=100.0)
    invalid_action: str = param("wait", "a masked action: treated as 'wait' (info['invalid_action'] is True) "
                                "or 'raise' a ValueError", choices=("wait", "raise"))
    # -- graph -----------------------------------------------------------------------------------------
    edges: str = param("knn", "graph edges: each target's k nearest on the sky ('knn') or all pairs ('full')",
                       choices=("knn", "full"))
    k_neighbors: int = param(8, "neighbours per target for edges='knn'", low=1, high=256, kind="int")
    # -- weather ----------------------------------------------------------------------------------------
    weather: str = param("stochastic", "'stochastic' (log-normal seeing, Markov clouds) or 'clear' (median "
                         "seeing, no clouds)", choices=("stochastic", "clear"))
    seeing_median_arcsec: float | None = param(None, "median zenith seeing at 500 nm (None: the site's)",
                                               low=0.1, high=10.0, kind="optional")
    seeing_sigma_log: float = param(0.3, "standard deviation of ln(seeing)", low=0.0, high=2.0)
    seeing_tau_s: float = param(1800.0, "seeing correlation time, s", low=1.0, high=1e6)
    clear_fraction: float | None = param(None, "long-run clear fraction (None: the site's usable fraction)",
                                         low=0.01, high=1.0, kind="optional")
    cloud_mean_duration_s: float = param(3600.0, "mean length of a cloudy spell, s", low=60.0, high=1e6)
    park_altitude_deg: float = param(60.0, "where the telescope waits at the start of a night (on the meridian)",
                                     low=0.0, high=90.0)

    def validate(self) -> None:
        try:
            datetime.date.fromisoformat(self.date)
        except (TypeError, ValueError):
            raise ValueError(f"SchedulingConfig.date={self.date!r} is not an ISO date YYYY-MM-DD") from None
        if self.catalogue_path is not None and not isinstance(self.catalogue_path, str):
            raise TypeError(f"SchedulingConfig.catalogue_path must be a path string or None, got "
                            f"{type(self.catalogue_path).__name__}")
        if self.catalogue_path is not None and not self.catalogue_path.strip():
            raise ValueError("SchedulingConfig.catalogue_path is empty; give a CSV/ECSV file path, or None for a "
                             "random catalogue of n_targets")
        if self.max_targets is not None:
            object.__setattr__(self, "max_targets", int(self.max_targets))
        if self.n_targets_range is not None:
            lo, hi = self.n_targets_range
            if lo != int(lo) or hi != int(hi):
                raise ValueError(f"SchedulingConfig.n_targets_range={self.n_targets_range!r} must be integers")
            object.__setattr__(self, "n_targets_range", (int(lo), int(hi)))
            if self.max_targets is None or self.max_targets < hi:
                raise ValueError(f"SchedulingConfig.n_targets_range={self.n_targets_range!r} needs max_targets >= "
                                 f"{int(hi)} (the observation space must not change between resets), got "
                                 f"max_targets={self.max_targets}")
