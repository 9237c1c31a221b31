"""Catalogues, night-table cache, weather statistics, graph structure and the greedy baseline."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.linalg import expm

import astrogym  # noqa: F401
from astrogym.envs.common.cache import CacheWarning
from astrogym.agents import GreedyScheduler
from astrogym.envs.scheduling import night as night_mod
from astrogym.envs.scheduling.catalogue import Catalogue, load_catalogue, random_catalogue
from astrogym.envs.scheduling.graph import angular_separation_deg, build_edges
from astrogym.envs.scheduling.sites import get_site
from astrogym.envs.scheduling.weather import ClearWeather, StochasticWeather, WeatherTrack

ENV_ID = "astrogym/TelescopeScheduling-v0"


@pytest.mark.parametrize("n", [20, 2000])
def test_random_catalogues_are_reproducible_and_sane(n):
    a, b = random_catalogue(n, seed=1), random_catalogue(n, seed=1)
    assert a.digest() == b.digest() and len(a) == n
    assert random_catalogue(n, seed=2).digest() != a.digest()
    assert np.all((a.dec >= -30.5) & (a.dec <= 80.5)) and np.all((a.exposure_s >= 60) & (a.exposure_s <= 600))
    assert set(np.unique(a.n_visits)) <= {1, 2, 3} and np.all(a.min_gap_s[a.n_visits > 1] >= 3600)


@pytest.mark.parametrize("suffix", [".csv", ".ecsv"])
def test_catalogue_file_round_trip(tmp_path, suffix):
    cat = random_catalogue(25, seed=3)
    path = tmp_path / f"targets{suffix}"
    cat.save(path)
    back = load_catalogue(path)
    assert back.digest() == cat.digest()
    env = gym.make(ENV_ID, catalogue_path=str(path), weather="clear")
    obs, _ = env.reset(seed=0)
    assert obs["nodes"].shape == (25, 16)


def _columns(**changes):
    cols = {"name": ["a", "b"], "ra": [10.0, 20.0], "dec": [5.0, 6.0], "mag": [18.0, 19.0], "priority": [1.0, 2.0],
            "snr": [20.0, 30.0], "filter": ["r", "g"], "n_visits": [1, 2], "min_gap_s": [0.0, 3600.0]}
    cols.update(changes)
    return cols


def test_catalogue_validation_names_column_and_row(tmp_path):
    cat = Catalogue.from_columns(_columns())
    assert np.all(cat.exposure_s > 0)  # filled in from the exposure time calculator
    cases = [({"dec": [5.0, 95.0]}, r"'dec' row 1 has 95.0; allowed range \[-90, 90\]"),
             ({"ra": [360.0, 1.0]}, "'ra' row 0"),
             ({"filter": ["r", "H"]}, r"'filter' row 1 has 'H'"),
             ({"priority": [1.0, float("nan")]}, "'priority' row 1"),
             ({"n_visits": [1, 1.5]}, "'n_visits' row 1 must be an integer"),
             ({"name": ["a", "a"]}, "repeated names"),
             ({"window_start": [61000.0, None], "window_end": [None, None]}, "window_start/window_end"),
             ({"snr": ["x", 3]}, "'snr' must be numeric")]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            Catalogue.from_columns(_columns(**change))
    cols = _columns()
    del cols["mag"]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['mag'\]"):
        Catalogue.from_columns(cols)
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec,mag,priority,snr,filter,n_visits\n10,5,18,1,20,r,1\n10,99,18,1,20,r,1\n")
    with pytest.raises(ValueError, match=r"bad.csv: column 'dec' row 1"):
        load_catalogue(bad)
    with pytest.raises(FileNotFoundError):
        load_catalogue(tmp_path / "missing.csv")


def test_time_windows_restrict_visibility():
    site = get_site("muztagh_ata")
    base = random_catalogue(30, seed=5)
    table = night_mod.night_table(site, "2026-12-15", base)
    start = table.mjd_start + 2 / 24
    cols = {c: getattr(base, c) for c in ("name", "ra", "dec", "mag", "priority", "snr", "exposure_s", "n_visits",
                                          "min_gap_s")}
    cols["filter"] = np.array(["ugrizy"[i] for i in base.filter])
    cols["window_start"] = np.full(30, start)
    cols["window_end"] = np.full(30, start + 1 / 24)
    env = gym.make(ENV_ID, catalogue=Catalogue.from_columns(cols), weather="clear")
    env.reset(seed=0)
    vis = env.unwrapped.nights[0].vis
    mjd = env.unwrapped.nights[0].table.mjd_start + env.unwrapped.nights[0].table.times_s / 86400
    assert not vis[(mjd < start) | (mjd > start + 1 / 24)].any() and vis.any()


def test_night_tables_are_cached_on_disk_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROGYM_CACHE_DIR", str(tmp_path))
    site, cat = get_site("la_palma"), random_catalogue(20, seed=9)
    night_mod.clear_memory_cache()
    first = night_mod.night_table(site, "2026-03-01", cat)
    files = list((tmp_path / "nights").glob("*.npz"))
    assert len(files) == 1 and not list((tmp_path / "nights").glob("*.tmp*"))
    night_mod.clear_memory_cache()
    second = night_mod.night_table(site, "2026-03-01", cat)
    for key in ("alt", "az", "sky_mag", "moon_sep", "sun_alt"):
        assert np.array_equal(getattr(first, key), getattr(second, key))
    files[0].write_bytes(b"not an npz file")  # a corrupt cache is recomputed, not trusted
    night_mod.clear_memory_cache()
    with pytest.warns(CacheWarning, match="unreadable"):
        third = night_mod.night_table(site, "2026-03-01", cat)
    assert np.array_equal(first.alt, third.alt)
    # another catalogue or date is another entry
    night_mod.night_table(site, "2026-03-02", cat)
    assert len(list((tmp_path / "nights").glob("*.npz"))) == 2
    night_mod.clear_memory_cache()


def test_cloud_transition_closed_form_equals_expm():
    model, site = StochasticWeather(), get_site("muztagh_ata")
    for dt in (1.0, 60.0, 3600.0, 1e5):
        assert np.allclose(model.transition(site, dt), expm(model.generator(site) * dt), atol=1e-12)
    pi = model.stationary(site)
    assert np.allclose(pi @ model.generator(site), 0.0, atol=1e-15) and pi[0] == pytest.approx(0.64)


def test_weather_statistics_match_the_site():
    site, model = get_site("muztagh_ata"), StochasticWeather()
    rng = np.random.default_rng(0)
    times = np.arange(0.0, 11 * 3600.0, 60.0)
    tracks = [model.sample_night(rng, times, site) for _ in range(400)]
    seeing = np.concatenate([t.seeing_arcsec for t in tracks])
    clouds = np.concatenate([t.cloud_state for t in tracks])
    assert np.median(seeing) == pytest.approx(site.median_seeing_arcsec, rel=0.03)
    assert np.std(np.log(seeing)) == pytest.approx(0.3, rel=0.05)
    assert np.mean(clouds == 0) == pytest.approx(site.usable_fraction, abs=0.03)
    # log-seeing autocorrelation at the correlation time is 1/e
    x = np.stack([np.log(t.seeing_arcsec) for t in tracks])
    x -= x.mean()
    lag = 30
    rho = np.mean(x[:, :-lag] * x[:, lag:]) / np.mean(x * x)
    assert rho == pytest.approx(np.exp(-1.0), abs=0.05)
    # cloudy spells last cloud_mean_duration_s on average
    cloudy = np.stack([t.cloud_state > 0 for t in tracks])
    starts = np.sum(cloudy[:, 1:] & ~cloudy[:, :-1])
    assert cloudy.sum() * 60.0 / starts == pytest.approx(3600.0, rel=0.15)
    with pytest.raises(ValueError, match="equal length"):
        WeatherTrack(np.ones(3), np.zeros(2, np.int8), np.zeros(3))


def test_weather_option_and_custom_model():
    class Overcast:
        def sample_night(self, rng, times_s, site):
            n = times_s.size
            return WeatherTrack(np.full(n, 1.0), np.full(n, 2, np.int8), np.full(n, 2.0))

    env = gym.make(ENV_ID, n_targets=30, weather_model=Overcast())
    obs, _ = env.reset(seed=0)
    assert obs["globals"][6] == 1.0  # thick cloud
    clear = ClearWeather(0.7).sample_night(None, env.unwrapped.nights[0].table.times_s, env.unwrapped.site)
    obs, _ = env.reset(seed=0, options={"weather": [clear]})
    assert obs["globals"][4] == 1.0 and obs["globals"][3] == pytest.approx(0.35)
    with pytest.raises(TypeError, match="sample_night"):
        gym.make(ENV_ID, weather_model=object())


def test_knn_and_full_edges():
    cat = random_catalogue(40, seed=2)
    src, dst, sep = build_edges(cat.ra, cat.dec, "knn", 5)
    assert src.size == 200 and np.all(np.bincount(dst, minlength=40) == 5) and not np.any(src == dst)
    d = angular_separation_deg(cat.ra[:, None], cat.dec[:, None], cat.ra[None, :], cat.dec[None, :])
    np.fill_diagonal(d, np.inf)
    for i in range(40):
        assert set(src[dst == i]) == set(np.argsort(d[i])[:5])
    src, dst, _ = build_edges(cat.ra, cat.dec, "full", 5)
    assert src.size == 40 * 39
    env = gym.make(ENV_ID, n_targets=30, edges="full", weather="clear")
    obs, _ = env.reset(seed=0)
    assert obs["edge_index"].shape == (2, 870) and obs["edge_mask"].all()


def test_pyg_batch_drops_padding_and_keeps_indices():
    pytest.importorskip("torch_geometric")
    from astrogym.agents.scheduling.graph import to_pyg_batch

    envs = gym.make_vec(ENV_ID, num_envs=2, n_targets=30, max_targets=36, weather="clear")
    obs, _ = envs.reset(seed=[0, 1])
    batch = to_pyg_batch(obs)
    assert batch.num_graphs == 2 and batch.x.shape == (60, 16) and batch.u.shape == (2, 16)
    assert batch.edge_index.max() < 60 and batch.edge_attr.shape[0] == 2 * 30 * 8
    one = to_pyg_batch({k: v[0] for k, v in obs.items()})
    assert np.allclose(one.x.numpy(), obs["nodes"][0, :30])
    with pytest.raises(KeyError, match="edge_mask"):
        to_pyg_batch({k: v for k, v in obs.items() if k != "edge_mask"})


def test_greedy_picks_the_best_valid_target_and_waits_otherwise():
    nodes = np.zeros((4, 16), np.float32)
    nodes[:, 5] = [5.0, 1.0, 9.0, 2.0]  # priority
    nodes[:, 7] = [1.0, 1.0, 1.0, 0.5]  # SNR^2 left on the visit
    nodes[:, 13] = [0.25, 1.0, 1.0, 0.5]  # progress of one exposure now
    nodes[:, 11] = [0.1, 0.1, 0.1, 0.0]  # overhead / 300 s
    nodes[:, 12] = [1.0, 1.0, 1.0, 2.0]  # exposure / 300 s
    nodes[:, 14] = [1, 1, 0, 1]  # target 2 is not allowed
    policy = GreedyScheduler(wait_action=4, readout_s=10.0)
    # scores: 5 / (30 + 4 * 310) = 0.0039, 1 / (30 + 310) = 0.0029, (masked), 2 / (0 + 610) = 0.0033
    assert np.allclose(policy.scores(nodes)[[0, 1, 3]], [5 / 1270, 1 / 340, 2 / 610])
    assert policy.predict({"nodes": nodes})[0] == 0
    nodes[0, 13] = 0.01  # 100 exposures needed: beyond max_exposures, skipped
    assert policy.predict({"nodes": nodes})[0] == 3
    nodes[:, 14] = 0
    assert policy.predict({"nodes": nodes})[0] == 4
    batch = np.stack([nodes, nodes])
    batch[0, 1, 14] = 1
    assert list(policy.predict({"nodes": batch})[0]) == [1, 4]
    with pytest.raises(ValueError, match="target slots"):
        GreedyScheduler(wait_action=5).predict({"nodes": nodes})
    with pytest.raises(TypeError, match="Dict observation"):
        policy.predict(nodes)
    with pytest.raises(ValueError, match="readout_s"):
        GreedyScheduler(wait_action=4, readout_s=-1.0)


def test_random_catalogue_windows_are_optional_and_leave_other_draws_alone():
    plain = random_catalogue(50, 3)
    windowed = random_catalogue(50, 3, window_fraction=0.5, window_night_mjd=(61000.5, 61001.0))
    assert np.all(np.isnan(plain.window_start))
    for col in ("ra", "dec", "mag", "exposure_s", "n_visits", "min_gap_s"):
        assert np.array_equal(getattr(plain, col), getattr(windowed, col))
    chosen = np.isfinite(windowed.window_start)
    assert 10 < chosen.sum() < 40
    assert np.all(windowed.priority[chosen] == np.minimum(2 * plain.priority[chosen], 100))
    assert np.all((windowed.window_start[chosen] >= 61000.5) & (windowed.window_end[chosen] <= 61001.0))
    with pytest.raises(ValueError, match="window_fraction"):
        random_catalogue(5, 0, window_fraction=0.5)
