"""Target catalogues: generated from a seed, or loaded from CSV/ECSV with validation.

One row per target. Columns (``COLUMNS``, with units and allowed ranges):

=============  =========  ==============================================================
name           str        unique identifier
ra, dec        deg        ICRS coordinates, ra in [0, 360), dec in [-90, 90]
mag            mag        brightness in the requested filter, [-5, 30]
priority       -          weight of the target in the reward, (0, 100]
snr            -          SNR each visit must reach, [1, 10000]
filter         str        one of u g r i z y
exposure_s     s          length of one exposure, [1, 3600]; optional in files: when absent it
                          is the exposure reaching ``snr`` in the reference conditions (below)
n_visits       -          visits requested, [1, 100]
min_gap_s      s          minimum time from the end of one visit to the start of the next, >= 0
window_start   MJD (UTC)  optional time window (both or neither; blank = none); a window that
window_end     MJD (UTC)  opens mid-night stands in for a target of opportunity; [0, 100000]
=============  =========  ==============================================================

Blank cells (an empty CSV cell, a masked ECSV value; NaN counts as blank in the optional
columns) mean, per column: ``exposure_s`` is computed from ``snr`` as above, ``min_gap_s`` is 0,
``window_start``/``window_end`` is no window. A blank cell in any other column is an error
naming the column and row: it is never read as 0.

Units: CSV values are in the units above. In ECSV a column may declare a unit (``ra`` in rad,
``exposure_s`` in min, windows in d, ...); it is converted through ``astropy.units``, and a unit
that does not convert (or one on a unitless column) is an error. Windows may also be ECSV
``Time`` columns (converted to UTC MJD).

Columns: a column whose name is close to one of ``COLUMNS`` but not equal (``exposure``,
``Dec``, ``window-start``) is an error suggesting the right name; other extra columns are
ignored with a ``UserWarning`` listing them.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrogym.envs.scheduling import photometry
from astrogym.envs.scheduling.telescope import FILTERS, Telescope

COLUMNS = ("name", "ra", "dec", "mag", "priority", "snr", "filter", "exposure_s", "n_visits", "min_gap_s",
           "window_start", "window_end")
_RANGES = {"ra": (0.0, 360.0), "dec": (-90.0, 90.0), "mag": (-5.0, 30.0), "priority": (1e-9, 100.0),
           "snr": (1.0, 1e4), "exposure_s": (1.0, 3600.0), "n_visits": (1, 100), "min_gap_s": (0.0, 1e8),
           "window_start": (0.0, 1e5), "window_end": (0.0, 1e5)}
# blank (or NaN) is allowed in these columns and has the meaning the module docstring gives
_OPTIONAL = ("exposure_s", "min_gap_s", "window_start", "window_end")
_NUMERIC = ("ra", "dec", "mag", "priority", "snr", "n_visits", "exposure_s", "min_gap_s", "window_start",
            "window_end")
# the unit each numeric column is stored in (None: dimensionless)
UNITS = {"ra": "deg", "dec": "deg", "mag": "mag", "priority": None, "snr": None, "exposure_s": "s",
         "n_visits": None, "min_gap_s": "s", "window_start": "d", "window_end": "d"}
# Typical conditions an exposure is sized for (when a file leaves exposure_s out, and in random catalogues):
# airmass 1.2, 0.8" seeing, a grey sky 0.5 mag brighter than dark, no cloud. Worse conditions (Moon,
# low altitude, clouds) give less SNR, so a visit may take several exposures.
REFERENCE_SEEING_ARCSEC = 0.8
REFERENCE_AIRMASS = 1.2
REFERENCE_SKY_OFFSET_MAG = 0.5


def reference_m5(filt: np.ndarray, exposure_s, telescope: Telescope | None) -> np.ndarray:
    """Depth of an exposure in the reference conditions above."""
    cm = photometry.cm_for_aperture(telescope.aperture_m if telescope else 1.93)
    sys_fwhm = telescope.system_fwhm_arcsec if telescope else 0.6
    fw = photometry.fwhm_eff(REFERENCE_SEEING_ARCSEC, REFERENCE_AIRMASS, photometry.WAVELENGTH_NM[filt], sys_fwhm)
    return photometry.m5_depth(cm[filt], photometry.DARK_SKY_MAG[filt] - REFERENCE_SKY_OFFSET_MAG, fw, exposure_s,
                               REFERENCE_AIRMASS, photometry.EXTINCTION[filt], 0.0)


def _cells(raw) -> list:
    """The cells of a column as Python objects, masked entries as None."""
    return list(np.ma.filled(np.ma.asarray(raw, dtype=object), None))


def _is_blank(value) -> bool:
    if value is None or value is np.ma.masked:
        return True
    if isinstance(value, (str, bytes)):
        return value.strip() == ""
    return False


def _real(value) -> float:
    """A cell as a float; complex numbers and booleans are refused, not reinterpreted."""
    if isinstance(value, (bool, np.bool_, complex, np.complexfloating)):
        raise TypeError(f"{value!r} is not a real number")
    return float(value)


def _check_column_names(columns, source: str) -> None:
    """Refuse a column that looks like a misspelt catalogue column; warn about other extra columns."""
    extra = [c for c in columns if c not in COLUMNS]
    ignored = []
    for col in extra:
        close = difflib.get_close_matches(str(col).lower().replace("-", "_").replace(" ", "_"), COLUMNS, n=1,
                                          cutoff=0.75)
        if close:
            raise ValueError(f"{source}: column {col!r} is not a catalogue column; did you mean {close[0]!r}? "
                             f"columns: {list(COLUMNS)}")
        ignored.append(col)
    if ignored:
        warnings.warn(f"{source}: ignoring column(s) {ignored} (catalogue columns: {list(COLUMNS)})",
                      UserWarning, stacklevel=3)


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Targets as parallel NumPy arrays (read-only); build with :func:`random_catalogue`, :func:`load_catalogue`
    or :meth:`from_columns`, which validate."""

    name: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    priority: np.ndarray
    snr: np.ndarray
    filter: np.ndarray  # int index into FILTERS
    exposure_s: np.ndarray
    n_visits: np.ndarray
    min_gap_s: np.ndarray
    window_start: np.ndarray  # MJD, NaN = none
    window_end: np.ndarray

    def __len__(self) -> int:
        return int(self.ra.shape[0])

    @classmethod
    def from_columns(cls, columns: dict, telescope: Telescope | None = None, source: str = "catalogue") -> "Catalogue":
        """Validate columns (a mapping of arrays or lists) and build a catalogue.

        Raises
        ------
        ValueError: a required column is missing, a value is out of range or not finite (the message names
            the column, the first bad row and the allowed range), names repeat, or a window ends before it starts.
        """
        required = ("ra", "dec", "mag", "priority", "snr", "filter", "n_visits")
        _check_column_names(columns, source)
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"{source}: missing column(s) {missing}; required {list(required)}, optional "
                             "['name', 'exposure_s', 'min_gap_s', 'window_start', 'window_end']")
        n = len(columns["ra"])
        if n == 0:
            raise ValueError(f"{source}: the catalogue has no targets")
        for col in columns:
            if len(columns[col]) != n:
                raise ValueError(f"{source}: column {col!r} has {len(columns[col])} rows; column 'ra' has {n}")
        out = {}
        for col in _NUMERIC:
            raw = columns.get(col)
            if raw is None:
                out[col] = np.full(n, np.nan)
                continue
            cells = _cells(raw)
            blank = np.array([_is_blank(v) for v in cells], dtype=bool)
            if blank.any() and col not in _OPTIONAL:
                row = int(np.argmax(blank))
                lo, hi = _RANGES[col]
                raise ValueError(f"{source}: column {col!r} row {row} is blank; the column is required (allowed "
                                 f"range [{lo:g}, {hi:g}])")
            try:
                values = np.array([np.nan if b else _real(v) for v, b in zip(cells, blank)], dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: column {col!r} must be numeric ({exc})") from None
            out[col] = values
        for col, (lo, hi) in _RANGES.items():
            values = out[col]
            optional = col in _OPTIONAL
            bad = ~np.isfinite(values) if not optional else np.isinf(values)
            bad |= np.isfinite(values) & ((values < lo) | (values > hi))
            if col == "ra":
                bad |= values >= 360.0
            if bad.any():
                row = int(np.argmax(bad))
                raise ValueError(f"{source}: column {col!r} row {row} has {float(values[row])!r}; allowed range "
                                 f"[{lo:g}, {hi:g}]" + (" (or blank)" if optional else ""))
        if np.any(out["n_visits"] != np.round(out["n_visits"])):
            row = int(np.argmax(out["n_visits"] != np.round(out["n_visits"])))
            raise ValueError(f"{source}: column 'n_visits' row {row} must be an integer, got {out['n_visits'][row]}")
        out["min_gap_s"] = np.where(np.isnan(out["min_gap_s"]), 0.0, out["min_gap_s"])
        ws, we = out["window_start"], out["window_end"]
        if np.any(np.isnan(ws) != np.isnan(we)) or np.any(we < ws):
            row = int(np.argmax((np.isnan(ws) != np.isnan(we)) | (we < ws)))
            raise ValueError(f"{source}: row {row}: window_start/window_end must both be blank or both set with "
                             f"window_end >= window_start (got {ws[row]}, {we[row]})")
        for col in ("filter", "name"):
            if col in columns:
                blank = [_is_blank(v) for v in _cells(columns[col])]
                if any(blank):
                    raise ValueError(f"{source}: column {col!r} row {blank.index(True)} is blank" +
                                     (f"; allowed {list(FILTERS)}" if col == "filter" else "; names are required "
                                      "when the column is given"))
        filters = np.asarray(columns["filter"]).astype(str)
        bad = ~np.isin(filters, FILTERS)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{source}: column 'filter' row {row} has {str(filters[row])!r}; allowed {list(FILTERS)}")
        filt = np.array([FILTERS.index(f) for f in filters], dtype=np.int64)
        names = np.asarray(columns["name"]).astype(str) if "name" in columns else np.array(
            [f"T{i:04d}" for i in range(n)])
        if len(set(names.tolist())) != n:
            raise ValueError(f"{source}: column 'name' has repeated names")
        exposure = out["exposure_s"]
        if np.isnan(exposure).any():
            # SNR grows as sqrt(t): scale a 30 s exposure's SNR in the reference conditions
            snr30 = photometry.snr_from_m5(out["mag"], reference_m5(filt, 30.0, telescope))
            default = 30.0 * (out["snr"] / snr30) ** 2
            exposure = np.where(np.isnan(exposure), np.clip(np.round(default), 1.0, 3600.0), exposure)
        arrays = dict(name=names, ra=out["ra"], dec=out["dec"], mag=out["mag"], priority=out["priority"],
                      snr=out["snr"], filter=filt, exposure_s=exposure, n_visits=out["n_visits"].astype(np.int64),
                      min_gap_s=out["min_gap_s"], window_start=ws, window_end=we)
        for a in arrays.values():
            a.setflags(write=False)
        return cls(**arrays)

    def digest(self) -> str:
        """A short hash of the contents: keys the night-table cache (computed once; the arrays are read-only)."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        h = hashlib.sha256()
        for col in COLUMNS:
            h.update(col.encode())
            h.update(np.ascontiguousarray(getattr(self, col)).tobytes() if col != "name"
                     else "\x00".join(self.name.tolist()).encode())
        return h.hexdigest()[:16]

    def subset(self, index) -> "Catalogue":
        """The targets at ``index`` (an index array or boolean mask), as a new catalogue."""
        return Catalogue(**{c: np.asarray(getattr(self, c))[index].copy() for c in COLUMNS})

    def to_table(self):
        """The catalogue as an ``astropy.table.Table`` with units (what :func:`load_catalogue` reads back)."""
        import astropy.units as u
        from astropy.table import Table

        t = Table()
        t["name"] = self.name
        t["ra"] = self.ra * u.deg
        t["dec"] = self.dec * u.deg
        t["mag"] = self.mag * u.mag
        t["priority"] = self.priority
        t["snr"] = self.snr
        t["filter"] = np.array([FILTERS[i] for i in self.filter])
        t["exposure_s"] = self.exposure_s * u.s
        t["n_visits"] = self.n_visits
        t["min_gap_s"] = self.min_gap_s * u.s
        t["window_start"] = self.window_start
        t["window_end"] = self.window_end
        return t

    def save(self, path: str | Path) -> None:
        """Write as ECSV (keeps units) or CSV, by the file's suffix."""
        path = Path(path)
        fmt = "ascii.ecsv" if path.suffix == ".ecsv" else "ascii.csv"
        self.to_table().write(path, format=fmt, overwrite=True)


def _table_column(col, name: str, source: str) -> np.ndarray:
    """One table column as an object array in the catalogue's units, masked cells as None.

    Raises
    ------
    ValueError: a unit that does not convert to the column's (or a unit on a unitless column).
    """
    import astropy.units as u
    from astropy.time import Time

    if isinstance(col, Time):
        if name not in ("window_start", "window_end"):
            raise ValueError(f"{source}: column {name!r} holds times; only window_start/window_end may")
        mask = np.ma.getmaskarray(np.ma.asarray(col.mjd)) if col.masked else np.zeros(len(col), bool)
        values = np.asarray(col.utc.mjd, dtype=object)
        values[mask] = None
        return values
    mask = np.ma.getmaskarray(col) if getattr(col, "mask", None) is not None else np.zeros(len(col), bool)
    data = np.ma.getdata(col)
    unit = getattr(col, "unit", None)
    if name in UNITS and unit is not None and unit != u.dimensionless_unscaled:
        target = UNITS[name]
        if target is None:
            raise ValueError(f"{source}: column {name!r} is unitless, but the file declares unit {str(unit)!r}")
        if data.dtype.kind not in "fiu":
            raise ValueError(f"{source}: column {name!r} must be numeric, got {data.dtype}")
        try:
            data = (np.asarray(data, dtype=float) * unit).to_value(target)
        except u.UnitsError:
            raise ValueError(f"{source}: column {name!r} has unit {str(unit)!r}, which does not convert to "
                             f"{target!r}") from None
    values = np.asarray(data, dtype=object)
    values[mask] = None
    return values


def load_catalogue(path: str | Path, telescope: Telescope | None = None) -> Catalogue:
    """Read a CSV or ECSV catalogue (columns in the module docstring) and validate it.

    Raises
    ------
    FileNotFoundError: no such file.
    ValueError: unreadable file, or any column failing validation (the message names column and row).
    """
    from astropy.table import Table

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalogue file {str(path)!r} does not exist")
    fmt = "ascii.ecsv" if path.suffix == ".ecsv" else "ascii.csv"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:  # astropy raises several types for malformed text
        raise ValueError(f"{path}: cannot be read as {fmt} ({type(exc).__name__}: {exc})") from None
    columns = {c: _table_column(table[c], c, str(path)) for c in table.colnames}
    return Catalogue.from_columns(columns, telescope, source=str(path))


def random_catalogue(n_targets: int, seed: int, telescope: Telescope | None = None, *,
                     dec_range_deg: tuple[float, float] = (-30.0, 80.0), filters: str = "griz",
                     max_visits: int = 3, window_fraction: float = 0.0,
                     window_night_mjd: tuple[float, float] | None = None) -> Catalogue:
    """A reproducible random catalogue of ``n_targets`` (20 - 2,000 is the tested range).

    Positions are uniform on the sphere within ``dec_range_deg``; priorities 1-10 (log-uniform, so
    a few targets matter most); requested SNR 10-100; exposures 60-600 s (log-uniform) with the
    magnitude that reaches the SNR in that time in the reference conditions (airmass 1.2, 0.8"
    seeing, grey sky, clear); 1 to
    ``max_visits`` visits (multi-visit targets need 1-3 h between visits).

    Time windows: with ``window_fraction`` > 0, that fraction of the targets (chosen at random)
    may only be observed inside a 1-4 h window that opens uniformly within the night
    ``window_night_mjd`` = (evening, morning) MJD: time-critical observations, the way targets of
    opportunity constrain a night. Their priority is doubled (a window is usually asked for
    because the science needs it). Without windows the draws are those of earlier releases.
    """
    if not 1 <= n_targets <= 100_000:
        raise ValueError(f"n_targets={n_targets} is out of range; allowed [1, 100000]")
    rng = np.random.default_rng(seed)
    lo, hi = np.sin(np.radians(dec_range_deg))
    dec = np.degrees(np.arcsin(rng.uniform(lo, hi, n_targets)))
    ra = rng.uniform(0.0, 360.0, n_targets)
    priority = np.round(np.exp(rng.uniform(0.0, np.log(10.0), n_targets)), 2)
    snr = np.round(np.exp(rng.uniform(np.log(10.0), np.log(100.0), n_targets)), 1)
    exposure = np.round(np.exp(rng.uniform(np.log(60.0), np.log(600.0), n_targets)))
    filt = np.array([FILTERS.index(f) for f in rng.choice(list(filters), n_targets)])
    m5 = reference_m5(filt, exposure, telescope)
    mag = np.round(m5 + 2.5 * np.log10(5.0 / snr), 3)  # inverts snr_from_m5
    n_visits = rng.integers(1, max_visits + 1, n_targets)
    gap = np.where(n_visits > 1, np.round(rng.uniform(3600.0, 3 * 3600.0, n_targets)), 0.0)
    window_start, window_end = np.full(n_targets, np.nan), np.full(n_targets, np.nan)
    if window_fraction > 0.0:
        if not 0.0 < window_fraction <= 1.0 or window_night_mjd is None:
            raise ValueError(f"window_fraction={window_fraction} needs 0 < fraction <= 1 and window_night_mjd")
        evening, morning = window_night_mjd
        chosen = rng.random(n_targets) < window_fraction
        length_d = rng.uniform(1.0, 4.0, n_targets) / 24.0
        opens = evening + rng.uniform(0.0, 1.0, n_targets) * max(morning - evening - 1.0 / 24.0, 0.0)
        window_start = np.where(chosen, opens, np.nan)
        window_end = np.where(chosen, np.minimum(opens + length_d, morning), np.nan)
        priority = np.where(chosen, np.minimum(2.0 * priority, 100.0), priority)
    return Catalogue.from_columns(
        {"name": [f"T{i:04d}" for i in range(n_targets)], "ra": ra, "dec": dec, "mag": mag, "priority": priority,
         "snr": snr, "filter": np.array([FILTERS[i] for i in filt]), "exposure_s": exposure, "n_visits": n_visits,
         "min_gap_s": gap, "window_start": window_start, "window_end": window_end}, telescope,
        source="random catalogue")
