"""Observing sites: where a telescope stands and what its sky is like.

Muztagh-ata's numbers come from ``shared/reference/scheduling.md`` (lat 38.33 N, lon 74.90 E,
4526 m, median DIMM seeing 0.78-0.89 arcsec, ~64% of night time usable). The other sites carry
approximate, commonly quoted values (median seeing, usable fraction) so that networks of sites
can be built; treat them as plausible defaults, not site-testing results.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    """A site; frozen and hashable, so it can key caches and be shared between envs.

    Attributes
    ----------
    key: short identifier used in configs (``site="muztagh_ata"``).
    name: human-readable name.
    latitude_deg, longitude_deg, elevation_m: geodetic position (WGS84), longitude east-positive.
    median_seeing_arcsec: median zenith seeing FWHM at 500 nm.
    usable_fraction: long-run fraction of night time clear enough to observe.
    """

    key: str
    name: str
    latitude_deg: float
    longitude_deg: float
    elevation_m: float
    median_seeing_arcsec: float
    usable_fraction: float

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude_deg <= 90.0:
            raise ValueError(f"Site.latitude_deg={self.latitude_deg} is out of range; allowed [-90, 90]")
        if not -180.0 <= self.longitude_deg <= 360.0:
            raise ValueError(f"Site.longitude_deg={self.longitude_deg} is out of range; allowed [-180, 360]")
        if not 0.05 <= self.median_seeing_arcsec <= 10.0:
            raise ValueError(f"Site.median_seeing_arcsec={self.median_seeing_arcsec} is out of range; "
                             "allowed [0.05, 10]")
        if not 0.0 < self.usable_fraction <= 1.0:
            raise ValueError(f"Site.usable_fraction={self.usable_fraction} is out of range; allowed (0, 1]")

    def location(self):
        """The site as an ``astropy.coordinates.EarthLocation``."""
        return _location(self.longitude_deg, self.latitude_deg, self.elevation_m)

    def observer(self):
        """The site as an ``astroplan.Observer`` (zero pressure: no refraction, astroplan's default)."""
        from astroplan import Observer

        return Observer(location=self.location(), name=self.name)


@functools.lru_cache(maxsize=32)
def _location(lon: float, lat: float, height: float):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, height * u.m)


SITES: dict[str, Site] = {s.key: s for s in (
    Site("muztagh_ata", "Muztagh-ata", 38.33, 74.90, 4526.0, 0.83, 0.64),
    Site("cerro_pachon", "Cerro Pachon (Rubin)", -30.2446, -70.7494, 2663.0, 0.70, 0.80),
    Site("palomar", "Palomar (ZTF)", 33.3563, -116.8650, 1712.0, 1.10, 0.70),
    Site("la_palma", "Roque de los Muchachos", 28.7606, -17.8816, 2326.0, 0.80, 0.75),
    Site("mauna_kea", "Maunakea", 19.8207, -155.4681, 4205.0, 0.60, 0.75),
    Site("siding_spring", "Siding Spring", -31.2733, 149.0617, 1165.0, 1.20, 0.60),
)}


def get_site(site: "str | Site") -> Site:
    """A site by key (or the site itself); unknown keys raise ``ValueError`` listing the known ones."""
    if isinstance(site, Site):
        return site
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; known sites: {sorted(SITES)}")
    return SITES[site]
