"""Parameters of ``astrogym/TelescopeNetwork-v0`` with their defaults, ranges and meaning."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from astrogym.envs.common.config import EnvConfig, param
from astrogym.envs.scheduling.sites import SITES
from astrogym.envs.scheduling.telescope import TELESCOPES

DEFAULT_SITES = "muztagh_ata,la_palma,cerro_pachon,siding_spring"
MAX_TELESCOPES = 8


def _text(default, doc: str):
    """A free-text field (validated in ``validate``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def _keys(value, field: str, known: dict) -> tuple[str, ...]:
    """A comma-separated list of keys (or a sequence of them), each one of ``known``."""
    if isinstance(value, str):
        items = tuple(v.strip() for v in value.split(","))
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = tuple(v.strip() for v in value)
    else:
        raise TypeError(f"NetworkConfig.{field} must be a comma-separated string of keys, got {type(value).__name__}")
    unknown = [v for v in items if v not in known]
    if not items or unknown:
        raise ValueError(f"NetworkConfig.{field}={value!r} has unknown or empty entries {unknown}; allowed "
                         f"{sorted(known)}")
    return items


@dataclass(frozen=True)
class NetworkConfig(EnvConfig):
    """Everything ``gym.make("astrogym/TelescopeNetwork-v0", **kwargs)`` accepts.

    The target, constraint, decision and weather fields mean what they mean in
    :class:`~astrogym.envs.scheduling.config.SchedulingConfig`; each site draws its own weather with its
    own median seeing and clear fraction (``envs/scheduling/sites.py``).
    """

    # -- the network -----------------------------------------------------------------------------------
    sites: str = _text(DEFAULT_SITES, f"comma-separated site keys, one telescope each (1-{MAX_TELESCOPES}; a "
                       f"site may repeat); known: {', '.join(SITES)}")
    telescopes: str = _text("most", "one telescope key for every site, or one per site, comma-separated; known: "
                            f"{', '.join(TELESCOPES)}")
    date: str = _text("2026-12-15", "local calendar date of every site's evening, YYYY-MM-DD")
    date_range_days: int = param(0, "if > 0, each reset starts on a date drawn uniformly from "
                                 "[date, date + date_range_days)", low=0, high=3660, kind="int")
    grid_s: float = param(60.0, "time step of the precomputed night tables, s", low=10.0, high=600.0)
    twilight_deg: float = param(-18.0, "Sun altitude that starts and ends each site's night", low=-18.0, high=-6.0)
    # -- the shared target pool -------------------------------------------------------------------------
    n_targets: int = param(200, "size of the random shared catalogue", low=1, high=5000, kind="int")
    catalogue_seed: int = param(0, "seed of the random catalogue and of the ToO sky positions (fixed across "
                                "episodes)", low=0, high=2**31 - 1, kind="int")
    dec_min_deg: float = param(-75.0, "southern limit of the random catalogue's declinations", low=-90.0, high=89.0)
    dec_max_deg: float = param(75.0, "northern limit of the random catalogue's declinations", low=-89.0, high=90.0)
    # -- targets of opportunity ---------------------------------------------------------------------------
    too_rate_per_day: float = param(6.0, "mean ToO arrivals per 24 h (a Poisson process over the combined "
                                    "night)", low=0.0, high=200.0)
    max_toos: int = param(16, "ToO slots (action indices n_targets .. n_targets + max_toos - 1); arrivals "
                          "beyond it are not drawn", low=0, high=256, kind="int")
    too_deadline_h: float = param(3.0, "a ToO counts only if its visit completes within this many hours of its "
                                  "arrival", low=0.1, high=48.0)
    too_priority: float = param(10.0, "priority of every ToO (the catalogue's are 1-10)", low=0.01, high=100.0)
    too_snr: float = param(20.0, "SNR a ToO's single visit needs", low=1.0, high=1000.0)
    too_exposure_s: float = param(120.0, "exposure length of a ToO, s", low=10.0, high=3600.0)
    too_pool: int = param(256, "sky positions ToOs are drawn from (fixed by catalogue_seed; their night tables "
                          "are precomputed with the catalogue's)", low=1, high=4096, kind="int")
    # -- constraints, decisions, reward (as SchedulingConfig) ---------------------------------------------
    min_altitude_deg: float = param(30.0, "lowest altitude at which a target may be observed", low=0.0, high=89.0)
    max_airmass: float = param(2.0, "highest airmass at which a target may be observed", low=1.0, high=10.0)
    min_moon_separation_deg: float = param(30.0, "closest approach to the Moon", low=0.0, high=180.0)
    wait_s: float = param(300.0, "length of the 'wait' action, s", low=1.0, high=7200.0)
    sequence_bonus: float = param(0.5, "extra reward (x priority) for completing all visits of a multi-visit "
                                  "target", low=0.0, high=100.0)
    invalid_action: str = param("wait", "a masked action: treated as 'wait' (info['invalid_action'] is True) "
                                "or 'raise' a ValueError", choices=("wait", "raise"))
    edges: str = param("knn", "graph edges: k nearest on the sky ('knn') or all pairs ('full')",
                       choices=("knn", "full"))
    k_neighbors: int = param(8, "neighbours per target for edges='knn'", low=1, high=256, kind="int")
    # -- weather (per site) ------------------------------------------------------------------------------
    weather: str = param("stochastic", "'stochastic' (log-normal seeing, Markov clouds per site) or 'clear'",
                         choices=("stochastic", "clear"))
    seeing_sigma_log: float = param(0.3, "standard deviation of ln(seeing)", low=0.0, high=2.0)
    seeing_tau_s: float = param(1800.0, "seeing correlation time, s", low=1.0, high=1e6)
    cloud_mean_duration_s: float = param(3600.0, "mean length of a cloudy spell, s", low=60.0, high=1e6)
    park_altitude_deg: float = param(60.0, "where each telescope waits at the start of its night (on the "
                                     "meridian)", low=0.0, high=90.0)

    @property
    def site_keys(self) -> tuple[str, ...]:
        return _keys(self.sites, "sites", SITES)

    @property
    def telescope_keys(self) -> tuple[str, ...]:
        keys = _keys(self.telescopes, "telescopes", TELESCOPES)
        return keys * len(self.site_keys) if len(keys) == 1 else keys

    def validate(self) -> None:
        try:
            datetime.date.fromisoformat(self.date)
        except (TypeError, ValueError):
            raise ValueError(f"NetworkConfig.date={self.date!r} is not an ISO date YYYY-MM-DD") from None
        sites = self.site_keys
        if len(sites) > MAX_TELESCOPES:
            raise ValueError(f"NetworkConfig.sites has {len(sites)} entries; allowed 1-{MAX_TELESCOPES}")
        tels = _keys(self.telescopes, "telescopes", TELESCOPES)
        if len(tels) not in (1, len(sites)):
            raise ValueError(f"NetworkConfig.telescopes={self.telescopes!r} must name one telescope or one per site "
                             f"({len(sites)})")
        if self.dec_min_deg >= self.dec_max_deg:
            raise ValueError(f"NetworkConfig.dec_min_deg={self.dec_min_deg} must be below dec_max_deg="
                             f"{self.dec_max_deg}")
