"""Every bad input to ``astrogym train``/``evaluate`` is one line naming the thing, exit 2, no file touched."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import yaml

from astrogym.experiments import hyperparams
from astrogym.agents.algorithms import get_algorithm
from astrogym.experiments.cli import main

LOCK = "astrogym/InterferometerLock-v0"


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    (tmp_path / "bad.yml").write_text(yaml.safe_dump({LOCK: {"n_stepz": 128}}))
    (tmp_path / "wrongtype.yml").write_text(yaml.safe_dump({LOCK: {"n_steps": "many"}}))
    (tmp_path / "notyaml.yml").write_text("a: [unclosed\n")
    (tmp_path / "notarun").mkdir()
    (tmp_path / "truncated.zip").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with zipfile.ZipFile(tmp_path / "foreign.zip", "w") as z:
        z.writestr("hello.txt", "not a model")
    return tmp_path


CASES = [
    (["train", "nope/Env-v0"], "unknown environment 'nope/Env-v0'"),
    (["train", LOCK, "--algo", "dqnn"], "unknown algorithm 'dqnn'; allowed: ppo"),
    (["train", LOCK, "--scenario", "windy"], "unknown scenario 'windy' for astrogym/InterferometerLock-v0; allowed"),
    (["train", LOCK, "--config", "{ws}/bad.yml"], "unknown hyperparameter(s) ['n_stepz'] for ppo"),
    (["train", LOCK, "--config", "{ws}/wrongtype.yml"], "n_steps='many' has the wrong type; ppo expects int"),
    (["train", LOCK, "--config", "{ws}/notyaml.yml"], "not valid YAML"),
    (["train", LOCK, "--config", "{ws}/missing.yml"], "no such file"),
    (["train", LOCK, "--hp", "gamma"], "--hp 'gamma': expected key=value"),
    (["train", LOCK, "--hp", "env_kwargs={arm_power_w: -5}"], "arm_power_w=-5 is out of range"),
    (["train", LOCK, "--algo", "sac", "--hp", "clip_range=0.2"], "unknown hyperparameter(s) ['clip_range'] for sac"),
    (["train", "astrogym/TelescopeScheduling-v0", "--algo", "sac"], "sac does not support"),
    (["train", LOCK, "--seed", "999999", "--n-envs", "2"], "outside scenario 'default''s training range"),
    (["train", "--resume", "{ws}/notarun"], "not a run folder (no config.yml)"),
    (["train", "--resume", "{ws}/nothere"], "no such folder"),
    (["evaluate", LOCK, "--policy", "nope"], "unknown policy 'nope' for astrogym/InterferometerLock-v0; allowed: "
                                             "baseline, h2, h2-identified, baseline-bandcut, zero, temporal"),
    (["evaluate", LOCK, "--policy", "{ws}/truncated.zip"], "truncated.zip': not a stable-baselines3 model (not a zip archive"),
    (["evaluate", LOCK, "--policy", "{ws}/foreign.zip"], "foreign.zip': not a loadable stable-baselines3"),
    (["evaluate", LOCK, "--policy", "{ws}/nothere.zip"], "no such file or run folder"),
    (["evaluate", LOCK, "--policy", "{ws}/notarun"], "a folder but not a run folder"),
    (["evaluate", LOCK, "--scenario", "windy"], "unknown scenario 'windy'"),
    (["evaluate", LOCK, "--episodes", "500"], "episodes=500 is out of range"),
    (["bench", "nope"], "unknown environment 'nope'"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(CASES)])
def test_cli_error_is_one_line_and_touches_nothing(workspace, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("ASTROGYM_TRACEBACK", raising=False)
    before = _tree(workspace)
    argv = [a.replace("{ws}", str(workspace)) for a in argv]
    assert main(argv + (["--out", str(workspace / "results")] if argv[0] == "evaluate" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert _tree(workspace) == before  # nothing written, nothing changed (no runs/ or results/ either)


def test_run_dir_holding_a_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yml").write_text("astrogym_run: 1\n")
    assert main(["train", LOCK, "--run-dir", str(run)]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err


def test_hyperparameters_round_trip_through_the_run_config(tmp_path):
    algorithm = get_algorithm("ppo")
    user = tmp_path / "user.yml"
    user.write_text(yaml.safe_dump({"default": {"ent_coef": 0.01}, LOCK: {"policy_kwargs": {"net_arch": [32, 32],
                                                                             "activation_fn": "torch.nn.Tanh"}}}))
    entry = hyperparams.resolve(LOCK, algorithm, user, ["gamma=0.99", "learning_rate=lin_3e-4"])
    assert entry["gamma"] == 0.99 and entry["ent_coef"] == 0.01 and entry["n_steps"] == 1024  # shipped file
    assert entry["policy_kwargs"] == {"net_arch": [32, 32], "activation_fn": "torch.nn.Tanh"}
    again = yaml.safe_load(yaml.safe_dump(entry))
    hyperparams.validate(again, algorithm)
    assert again == entry
    import torch

    assert hyperparams.policy_kwargs(again)["activation_fn"] is torch.nn.Tanh
    assert hyperparams.algorithm_kwargs(again)["learning_rate"](0.5) == pytest.approx(1.5e-4)


def test_every_shipped_hyperparameter_file_validates():
    from astrogym.agents.algorithms import ALGORITHMS

    for name, algorithm in ALGORITHMS.items():
        data = yaml.safe_load(hyperparams.shipped_file(name).read_text())
        assert "default" in data
        for env_id in data:
            hyperparams.resolve(env_id, algorithm)
