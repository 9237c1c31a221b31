"""The ``astrogym`` command, end to end on small sizes."""

from __future__ import annotations

import subprocess
import sys


from astrogym.experiments.cli import main


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "astrogym.experiments.cli", "list"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "astrogym/InterferometerLock-v0" in out.stdout
    assert "observation: Box(2, 64) float32, values in [-10, 10] (per element)" in out.stdout
    assert "action:      Box(1,) float32, values in [-1, 1]" in out.stdout


def test_list_with_config(capsys):
    assert main(["list", "--config"]) == 0
    text = capsys.readouterr().out
    assert "arm_power_w = 400000.0" in text and "[0, 2e+06]" in text
    assert "-inf" not in text and "inf]" not in text  # open ends read ">= 0", "any finite number", never "[-inf, inf]"
    # each id shows its own defaults: the 20x20 preset says 20, not AOConfig's 40
    small = text.split("astrogym/AdaptiveOpticsSmall-v0", 1)[1].split("\nastrogym/", 1)[0]
    standard = text.split("astrogym/AdaptiveOptics-v0", 1)[1].split("\nastrogym/", 1)[0]
    assert "n_subapertures = 20  [4, 100]" in small and "n_subapertures = 40  [4, 100]" in standard
    assert "wind_speeds_mps = (20.0,)  tuple of numbers, each [0, 200]" in standard


def test_bench_prints_three_rates_and_ratio(capsys):
    assert main(["bench", "astrogym/InterferometerLock-v0", "--quick"]) == 0
    text = capsys.readouterr().out
    for key in ("env through gym.make", "raw numba kernel", "SciPy per-sample reference", "env / SciPy reference"):
        assert key in text


def test_unknown_env_is_a_clear_error(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err


def test_evaluate_writes_table_and_plot(tmp_path, capsys):
    assert main(["evaluate", "astrogym/InterferometerLock-v0", "--episodes", "2", "--report", "--quick",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| baseline |" in text and "| zero |" in text and "closed-loop stable" in text
    folder = tmp_path / "InterferometerLock-v0"
    png = folder / "interferometer_asd.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| baseline |" in (folder / "default.md").read_text()
    # another env's or scenario's evaluation does not overwrite this one
    assert main(["evaluate", "astrogym/InterferometerLock-v0", "--scenario", "power-seismic-range", "--episodes", "2",
                 "--out", str(tmp_path)]) == 0
    assert (folder / "default.md").is_file() and (folder / "power-seismic-range.md").is_file()


def test_evaluate_rejects_missing_policy_file(tmp_path, capsys):
    assert main(["evaluate", "astrogym/InterferometerLock-v0", "--policy", "nope.zip", "--out", str(tmp_path)]) == 2
    assert "policy 'nope.zip': no such file or run folder" in capsys.readouterr().err


def test_evaluate_adaptive_optics_writes_budget_table_and_psf(tmp_path, capsys):
    assert main(["evaluate", "astrogym/AdaptiveOpticsSmall-v0", "--episodes", "1", "--report", "--quick",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "long-exposure Strehl" in text and "budget Strehl" in text and "(20x20)" in text
    assert "| integrator |" in text and "| predictive |" in text and "| zero |" in text
    png = tmp_path / "AdaptiveOpticsSmall-v0" / "adaptiveopticssmall-v0_psf.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ao_benchmark_rows_and_table():
    from astrogym.experiments.bench_ao import ao_bench_table, bench_adaptive_optics

    rows = bench_adaptive_optics(frames=20, hcipy_frames=2, repeats=1, presets=("small",))
    assert rows[0]["geometric_fps"] > 0 and rows[0]["diffractive_fps"] > 0
    table = ao_bench_table(rows)
    assert "| small (20x20) |" in table


def test_list_describes_the_scheduling_graph_observation(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "nodes: Box(100, 16) float32" in text and "action:      Discrete(101)" in text


def test_evaluate_scheduling_writes_table_and_schedule_plot(tmp_path, capsys):
    assert main(["evaluate", "astrogym/TelescopeScheduling-v0", "--episodes", "1", "--policy", "greedy",
                 "--policy", "random", "--report", "--quick", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| greedy |" in text and "| random |" in text and "priority-weighted completion" in text
    png = tmp_path / "TelescopeScheduling-v0" / "schedule_greedy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scheduling_bench_table_parts():
    from astrogym.experiments.bench_scheduling import (env_steps_per_s, greedy_decisions_per_s, precompute_times,
                                                       scheduling_bench_table)

    result = {"precompute": [precompute_times(20, repeats=1)], "env_steps_per_s": env_steps_per_s(20, 500, 1)}
    rate, n = greedy_decisions_per_s({"n_targets": 20}, repeats=1)
    result["greedy"] = {"n_targets": 20, "decisions_per_s": rate, "decisions": n}
    table = scheduling_bench_table(result)
    assert "night precompute, 20 targets" in table and "env steps/s" in table and rate > 0 and n > 10
