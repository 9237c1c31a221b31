"""Property-based fuzzing of the files astrogym reads: cache entries and target catalogues.

Caches: an AO calibration or a night table damaged in any way (truncated, bit-flipped, random
bytes, empty, NaN-filled or wrong-shaped arrays with a valid checksum, a folder in its place, an
older release's file) is detected before use, recomputed to the same values and replaced by a
good file. Catalogues: CSV and ECSV files with blank, malformed and extreme cells and with ECSV
units either load with exactly the meaning the documentation gives (units converted, blanks
per column) or raise ``ValueError`` naming the column.
"""

from __future__ import annotations

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from hypothesis import given, settings, strategies as st

from astrogym.envs.adaptive_optics import optics
from astrogym.envs.adaptive_optics.config import AOConfig
from astrogym.envs.common import cache
from astrogym.envs.scheduling import night as night_mod
from astrogym.envs.scheduling.catalogue import UNITS, load_catalogue, random_catalogue
from astrogym.envs.scheduling.sites import get_site

# -- caches ------------------------------------------------------------------------------------------

AO_CFG = AOConfig(n_subapertures=8)
SITE, CATALOGUE, DATE = get_site("la_palma"), random_catalogue(6, seed=4), "2026-03-01"


def _build(kind: str):
    """(the cached object's arrays as a dict, the folder of its cache files)."""
    if kind == "ao":
        optics.clear_memory_cache()
        s = optics.build_system(AO_CFG)
        return {"reconstructor": s.reconstructor, "interaction": s.interaction, "controlled": s.controlled}, "ao"
    night_mod.clear_memory_cache()
    t = night_mod.night_table(SITE, DATE, CATALOGUE)
    return {"alt": t.alt, "sky_mag": t.sky_mag, "times_s": t.times_s}, "nights"


def _damage(path, how: str, position: float, rng: np.random.Generator) -> None:
    raw = path.read_bytes()
    k = min(int(position * len(raw)), len(raw) - 1)
    if how == "truncate":
        path.write_bytes(raw[:k])
    elif how == "flip":
        path.write_bytes(raw[:k] + bytes([raw[k] ^ (1 << int(rng.integers(8)))]) + raw[k + 1:])
    elif how == "random":
        path.write_bytes(rng.bytes(max(k, 1)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how in ("nan", "wrong_shape", "no_checksum"):
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files if name != "__sha256__"}
        name = next(n for n in sorted(arrays) if arrays[n].dtype.kind == "f" and arrays[n].size > 1)
        if how == "nan":  # well formed, valid checksum, meaningless contents
            arrays[name] = np.full_like(arrays[name], np.nan)
        elif how == "wrong_shape":
            arrays[name] = arrays[name].ravel()[:-1]
        if how == "no_checksum":
            np.savez(path, **arrays)
        else:
            path.unlink()
            assert cache.atomic_save_npz(path, **arrays)
    elif how == "directory":
        path.unlink()
        (path / "inner").mkdir(parents=True)
    else:
        raise AssertionError(how)


DAMAGE = ["truncate", "flip", "random", "empty", "nan", "wrong_shape", "no_checksum", "directory"]


@pytest.mark.parametrize("kind", ["ao", "night"])
@settings(max_examples=12)
@given(how=st.sampled_from(DAMAGE), position=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_a_damaged_cache_is_detected_recomputed_and_replaced(kind, how, position, seed, tmp_path_factory,
                                                             monkeypatch):
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("ASTROGYM_CACHE_DIR", str(folder))
    want, sub = _build(kind)
    (path,) = list((folder / sub).glob("*.npz"))
    _damage(path, how, position, np.random.default_rng(seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, _ = _build(kind)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    if how == "flip" and path.is_file() and cache.load_npz(path, ()) is not None:
        pass  # the flipped bit landed in zip padding that no reader looks at: the entry was still good
    elif how != "no_checksum":
        assert any(issubclass(w.category, cache.CacheWarning) for w in caught), f"{how}: damage not reported"
    assert path.is_file(), "the damaged entry was not replaced"
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        assert cache.load_npz(path, ()) is not None, "the replacement is not a good cache entry"
        _build(kind)  # and it is used as it is: no warning, no recomputation


# -- catalogues --------------------------------------------------------------------------------------

GOOD = {"name": "T", "ra": 150.0, "dec": 20.0, "mag": 15.0, "priority": 2.0, "snr": 50.0, "filter": "g",
        "exposure_s": 60.0, "n_visits": 1, "min_gap_s": 0.0, "window_start": 61000.0, "window_end": 61000.5}
REQUIRED = ("ra", "dec", "mag", "priority", "snr", "filter", "n_visits")
RANGES = {"ra": (0.0, 360.0), "dec": (-90.0, 90.0), "mag": (-5.0, 30.0), "priority": (1e-9, 100.0),
          "snr": (1.0, 1e4), "exposure_s": (1.0, 3600.0), "n_visits": (1.0, 100.0), "min_gap_s": (0.0, 1e8),
          "window_start": (0.0, 1e5), "window_end": (0.0, 1e5)}
# units an ECSV file may declare per column, the convertible ones first
UNIT_CHOICES = {"ra": ["deg", "rad", "arcmin", "hourangle", "m"], "dec": ["deg", "rad", "arcsec", "s"],
                "exposure_s": ["s", "min", "h", "ms", "deg"], "min_gap_s": ["s", "min", "kg"],
                "window_start": ["d", "h"], "window_end": ["d", "h"], "priority": ["m"], "mag": ["mag"]}
CELL = st.one_of(st.just(""), st.sampled_from(["abc", "1.2.3", "nan", "inf", "-inf", "1e999", "0", "-1", "360",
                                               "1e-12", "101", "0.5"]),
                 st.floats(-1e4, 1e5, allow_nan=False).map(repr))


def _expected(rows: list[dict], units: dict) -> set | dict:
    """The documented outcome: the columns that must be refused (any may be named first), or the values."""
    values = {c: [r[c] for r in rows] for c in GOOD}
    bad, loaded = set(), {}
    for col in ("ra", "dec", "mag", "priority", "snr", "n_visits", "exposure_s", "min_gap_s", "window_start",
                "window_end"):
        unit = units.get(col)
        if unit is not None and (UNITS[col] is None or not u.Unit(unit).is_equivalent(UNITS[col])):
            bad.add(col)
            continue
        out = []
        for cell in values[col]:
            text = str(cell).strip()
            if text == "" or text == "nan" and col not in REQUIRED:
                out.append(math.nan)
                continue
            try:
                v = float(text)
            except ValueError:
                bad.add(col)
                break
            if unit is not None:
                v = (v * u.Unit(unit)).to_value(UNITS[col])
            lo, hi = RANGES[col]
            if not math.isfinite(v) or not lo <= v <= hi or col == "ra" and v >= 360.0:
                bad.add(col)
            out.append(v)
        if col in bad:
            continue
        if col in REQUIRED and any(math.isnan(v) for v in out) or col == "n_visits" and any(
                not math.isnan(v) and v != round(v) for v in out):
            bad.add(col)
        loaded[col] = np.array(out)
    if any(str(f).strip() not in tuple("ugrizy") for f in values["filter"]):
        bad.add("filter")
    if not bad:
        ws, we = loaded["window_start"], loaded["window_end"]
        if np.any(np.isnan(ws) != np.isnan(we)) or np.any(we < ws):
            bad.add("window")
    return bad or loaded


def _write(path, rows: list[dict], units: dict, fmt: str) -> None:
    if fmt == "csv":
        lines = [",".join(GOOD)] + [",".join(str(r[c]) for c in GOOD) for r in rows]
        path.write_text("\n".join(lines) + "\n")
        return
    t = Table()
    for col in GOOD:
        cells = [str(r[col]).strip() for r in rows]
        if col in ("name", "filter"):
            t[col] = MaskedColumn([c or "x" for c in cells], mask=[c == "" for c in cells])
            continue
        try:
            data = [float(c) if c else 0.0 for c in cells]
        except ValueError:  # a malformed cell: the column is text in the file
            t[col] = MaskedColumn([c or "x" for c in cells], mask=[c == "" for c in cells])
            continue
        t[col] = MaskedColumn(data, mask=[c == "" for c in cells], unit=units.get(col))
    t.write(path, format="ascii.ecsv", overwrite=True)


@st.composite
def _catalogue_files(draw):
    n = draw(st.integers(1, 4))
    rows = [dict(GOOD, name=f"T{i}") for i in range(n)]
    for _ in range(draw(st.integers(0, 3))):
        row, col = draw(st.integers(0, n - 1)), draw(st.sampled_from([c for c in GOOD if c != "name"]))
        rows[row][col] = draw(CELL) if col != "filter" else draw(st.sampled_from(["", "g", "r", "q", "gg"]))
    fmt = draw(st.sampled_from(["csv", "ecsv"]))
    units = {}
    if fmt == "ecsv":
        for col in draw(st.lists(st.sampled_from(sorted(UNIT_CHOICES)), max_size=3, unique=True)):
            units[col] = draw(st.sampled_from(UNIT_CHOICES[col]))
    return rows, units, fmt


@given(case=_catalogue_files())
def test_catalogue_cells_load_with_their_documented_meaning_or_name_the_column(case, tmp_path_factory):
    rows, units, fmt = case
    path = tmp_path_factory.mktemp("cat") / f"targets.{fmt}"
    _write(path, rows, units, fmt)
    expected = _expected(rows, units)
    if isinstance(expected, set):
        with pytest.raises(ValueError) as info:
            load_catalogue(path)
        assert any(f"'{col}'" in str(info.value) or col == "window" and "window" in str(info.value)
                   for col in expected), f"expected an error naming one of {sorted(expected)}: {info.value}"
        return
    cat = load_catalogue(path)
    for col in ("ra", "dec", "mag", "priority", "snr", "n_visits", "window_start", "window_end"):
        np.testing.assert_allclose(getattr(cat, col), expected[col], rtol=1e-12, equal_nan=True, err_msg=col)
    given_exposure = ~np.isnan(expected["exposure_s"])
    np.testing.assert_allclose(cat.exposure_s[given_exposure], expected["exposure_s"][given_exposure], rtol=1e-12)
    assert np.all((cat.exposure_s >= 1.0) & (cat.exposure_s <= 3600.0))  # blank: sized from snr
    np.testing.assert_allclose(cat.min_gap_s, np.nan_to_num(expected["min_gap_s"], nan=0.0), rtol=1e-12)


def test_blank_window_cells_mean_no_window_not_mjd_zero(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,ra,dec,mag,priority,snr,filter,exposure_s,n_visits,min_gap_s,window_start,window_end\n"
                    "A,10,20,15,1,50,g,60,1,0,,\nB,30,10,15,1,50,g,,1,,,\n")
    cat = load_catalogue(path)
    assert np.isnan(cat.window_start).all() and np.isnan(cat.window_end).all()
    assert cat.min_gap_s[1] == 0.0 and 1.0 <= cat.exposure_s[1] <= 3600.0


def test_ecsv_units_are_converted(tmp_path):
    t = random_catalogue(3, seed=1).to_table()
    t["ra"] = t["ra"].to(u.rad)
    t["exposure_s"] = t["exposure_s"].to(u.min)
    t.write(tmp_path / "t.ecsv", format="ascii.ecsv")
    back, ref = load_catalogue(tmp_path / "t.ecsv"), random_catalogue(3, seed=1)
    np.testing.assert_allclose(back.ra, ref.ra, rtol=1e-12)
    np.testing.assert_allclose(back.exposure_s, ref.exposure_s, rtol=1e-12)


def test_a_misspelt_column_is_refused_with_a_suggestion_and_extra_columns_warn(tmp_path):
    t = random_catalogue(3, seed=1).to_table()
    t.rename_column("exposure_s", "exposure")
    t.write(tmp_path / "t.ecsv", format="ascii.ecsv")
    with pytest.raises(ValueError, match=r"column 'exposure' is not a catalogue column; did you mean 'exposure_s'"):
        load_catalogue(tmp_path / "t.ecsv")
    t.rename_column("exposure", "proposal_id")
    t.write(tmp_path / "u.ecsv", format="ascii.ecsv")
    with pytest.warns(UserWarning, match=r"ignoring column\(s\) \['proposal_id'\]"):
        load_catalogue(tmp_path / "u.ecsv")


def test_an_empty_catalogue_path_is_an_error_not_a_random_catalogue():
    import gymnasium as gym

    with pytest.raises(ValueError, match="catalogue_path is empty"):
        gym.make("astrogym/TelescopeScheduling-v0", catalogue_path="")
