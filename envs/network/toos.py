"""Targets of opportunity: alerts that arrive during the night, each with a deadline and a required SNR.

Arrivals are a Poisson process over the network's combined night (``too_rate_per_day``), at most
``max_toos`` per episode. Each ToO takes a sky position from a fixed pool (``too_pool`` positions
drawn once from ``catalogue_seed``, so their night tables are computed and cached like the
catalogue's), needs one visit of ``too_snr`` within ``too_deadline_h`` of its arrival, and has a
magnitude that one exposure of ``too_exposure_s`` reaches that SNR with in reference conditions
(airmass 1.2, 0.8" seeing, grey sky, clear), give or take half a magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrogym.envs.scheduling.catalogue import Catalogue, reference_m5
from astrogym.envs.scheduling.telescope import Telescope


@dataclass(frozen=True)
class TargetOfOpportunity:
    """One alert; times in seconds since the network's first evening twilight.

    Attributes
    ----------
    arrival_s: when it becomes known (and observable).
    deadline_s: its visit must end by then to count.
    pool_index: which position of the env's ToO pool it is at.
    priority, snr, exposure_s, mag: as catalogue targets' (one visit).
    """

    arrival_s: float
    deadline_s: float
    pool_index: int
    priority: float
    snr: float
    exposure_s: float
    mag: float

    def check(self, pool_size: int) -> None:
        """Raise ``ValueError`` naming the field when a hand-made ToO is out of range."""
        if not (np.isfinite(self.arrival_s) and self.arrival_s >= 0.0):
            raise ValueError(f"ToO arrival_s={self.arrival_s} must be finite and >= 0")
        if not (np.isfinite(self.deadline_s) and self.deadline_s > self.arrival_s):
            raise ValueError(f"ToO deadline_s={self.deadline_s} must be finite and after arrival_s={self.arrival_s}")
        if not (isinstance(self.pool_index, (int, np.integer)) and 0 <= self.pool_index < pool_size):
            raise ValueError(f"ToO pool_index={self.pool_index!r} must be an integer in [0, {pool_size - 1}]")
        for name, low, high in (("priority", 0.0, 100.0), ("snr", 1.0, 1000.0), ("exposure_s", 1.0, 3600.0),
                                ("mag", -5.0, 35.0)):
            value = getattr(self, name)
            if not (np.isfinite(value) and low <= value <= high):
                raise ValueError(f"ToO {name}={value} is out of range; allowed [{low:g}, {high:g}]")


def draw_toos(rng: np.random.Generator, cfg, combined_length_s: float, pool: Catalogue,
              telescope: Telescope) -> list[TargetOfOpportunity]:
    """This episode's ToOs, in order of arrival (the env's config ``cfg`` gives rate, limits and attributes)."""
    expected = cfg.too_rate_per_day * combined_length_s / 86400.0
    count = min(int(rng.poisson(expected)), cfg.max_toos, len(pool))
    arrivals = np.sort(rng.uniform(0.0, combined_length_s, count))
    where = rng.choice(len(pool), size=count, replace=False)
    m5 = reference_m5(pool.filter[where], np.full(count, cfg.too_exposure_s), telescope)
    mags = m5 + 2.5 * np.log10(5.0 / cfg.too_snr) + rng.uniform(-0.5, 0.5, count)
    deadline = cfg.too_deadline_h * 3600.0
    return [TargetOfOpportunity(float(a), float(a + deadline), int(p), float(cfg.too_priority), float(cfg.too_snr),
                                float(cfg.too_exposure_s), float(m)) for a, p, m in zip(arrivals, where, mags)]
