"""``astrogym train``: a few hundred steps per env, evaluation of the result, run folders, resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from astrogym.agents.checkpoints import TrainedPolicy, load_model
from astrogym.experiments.cli import main

# (env id, hyperparameter overrides that keep the rollout short, steps)
SMOKE = [
    ("astrogym/InterferometerLock-v0", ["n_steps=128", "batch_size=64", "n_epochs=1"], 256),
    ("astrogym/AdaptiveOpticsSmall-v0", ["n_steps=64", "batch_size=32", "n_epochs=1",
                                         "env_kwargs={episode_frames: 100}"], 128),
    ("astrogym/TelescopeScheduling-v0", ["n_steps=64", "batch_size=32", "n_epochs=1"], 128),
]


def _train(tmp_path: Path, env_id: str, hp: list[str], steps: int, *extra: str) -> Path:
    run = tmp_path / env_id.split("/")[-1]
    argv = ["train", env_id, "--timesteps", str(steps), "--n-envs", "1", "--run-dir", str(run), "--eval-freq",
            str(steps // 2), "--eval-episodes", "1", "--checkpoint-freq", str(steps // 2), "--no-progress", *extra]
    for h in hp:
        argv += ["--hp", h]
    assert main(argv) == 0
    return run


@pytest.mark.parametrize("env_id,hp,steps", SMOKE, ids=[s[0].split("/")[1] for s in SMOKE])
def test_train_default_algorithm_then_evaluate(tmp_path, capsys, env_id, hp, steps):
    run = _train(tmp_path, env_id, hp, steps)
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["env_id"] == env_id and config["total_timesteps"] == steps
    # model selection on validation seeds: in the training range, above every training env's seed
    assert config["training_seeds"][1] < config["validation_seeds"][0] <= config["validation_seeds"][-1] < 1_000_000
    assert (run / "command.txt").read_text().startswith(f"astrogym train {env_id} --timesteps {steps}")
    assert set(yaml.safe_load((run / "versions.yml").read_text())) >= {"astrogym", "stable_baselines3", "torch"}
    status = yaml.safe_load((run / "status.yml").read_text())
    assert status["state"] == "finished" and status["num_timesteps"] >= steps
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "best_model.zip").is_file() and (run / "model.zip").is_file()
    assert sorted((run / "checkpoints").glob("step_*.zip"))
    with np.load(run / "evaluations.npz") as ev:
        assert {"timesteps", "results", "ep_lengths"} <= set(ev.files)
        assert len(ev["timesteps"]) == 2 and ev["results"].shape == (2, 1)
    model, _ = load_model(run / "model.zip")
    assert model.num_timesteps == status["num_timesteps"]

    out = tmp_path / "results"
    capsys.readouterr()
    reference = {"astrogym/InterferometerLock-v0": "baseline", "astrogym/AdaptiveOpticsSmall-v0": "zero",
                 "astrogym/TelescopeScheduling-v0": "greedy"}[env_id]
    argv = ["evaluate", env_id, "--policy", str(run), "--policy", reference, "--episodes", "2", "--out", str(out)]
    if env_id.startswith("astrogym/AdaptiveOptics"):
        argv += ["--scenario", "default"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"| {run.name} |" in text and f"| {reference} |" in text and "+-" in text
    assert (out / env_id.split("/")[1] / "default.json").is_file()


def test_trained_policy_applies_its_vecnormalize_statistics(tmp_path):
    env_id, hp, steps = SMOKE[0]
    run = _train(tmp_path, env_id, hp, steps)
    import gymnasium as gym

    env = gym.make(env_id, episode_length_s=1.0)
    policy = TrainedPolicy.load(run, env=env)
    assert policy.vecnormalize is not None and policy.vecnormalize.training is False
    obs, _ = env.reset(seed=1_000_000)
    raw, _ = policy.model.predict(obs, deterministic=True)
    normalised, _ = policy.predict(obs)
    expected, _ = policy.model.predict(policy.vecnormalize.normalize_obs(obs), deterministic=True)
    assert np.array_equal(normalised, expected)


def _checkpoint_steps(run: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.zip"))


def test_resume_after_sigkill_continues_to_the_total(tmp_path):
    run = tmp_path / "killed"
    total = 8192
    cmd = [sys.executable, "-m", "astrogym.experiments.cli", "train", "astrogym/InterferometerLock-v0",
           "--timesteps", str(total), "--n-envs", "1", "--run-dir", str(run), "--checkpoint-freq", "512",
           "--eval-freq", "100000", "--hp", "n_steps=256", "--hp", "batch_size=128", "--hp", "n_epochs=1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if run.exists() and len(_checkpoint_steps(run)) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_steps(run)[-1]
    assert 0 < killed_at < total
    assert yaml.safe_load((run / "status.yml").read_text())["state"] == "running"

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    status = yaml.safe_load((run / "status.yml").read_text())
    assert status["state"] == "finished" and status["num_timesteps"] >= total
    assert status["resumed_from"] == f"checkpoints/step_{killed_at:010d}.zip"
    model, _ = load_model(run / "model.zip")
    assert model.num_timesteps == status["num_timesteps"]
    steps = _checkpoint_steps(run)
    assert steps[-1] <= model.num_timesteps and steps[-1] > killed_at
    assert len((run / "command.txt").read_text().splitlines()) == 2
    # resuming a finished run changes nothing
    before = (run / "model.zip").read_bytes()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert (run / "model.zip").read_bytes() == before


def test_off_policy_checkpoints_carry_the_replay_buffer_and_resume(tmp_path):
    run = _train(tmp_path, "astrogym/InterferometerLock-v0",
                 ["learning_starts=64", "buffer_size=2000", "env_kwargs={episode_length_s: 1.0}"], 256,
                 "--algo", "sac")
    steps = _checkpoint_steps(run)
    buffer = run / "checkpoints" / f"step_{steps[-1]:010d}.replay_buffer.pkl"
    assert buffer.is_file()
    status = yaml.safe_load((run / "status.yml").read_text())
    # pretend the run was killed after its first checkpoint, then resume it
    for late in steps[1:]:
        for f in (run / "checkpoints").glob(f"step_{late:010d}*"):
            f.unlink()
    (run / "status.yml").write_text(yaml.safe_dump({**status, "state": "running"}))
    config = yaml.safe_load((run / "config.yml").read_text())
    config["total_timesteps"] = 384
    (run / "config.yml").write_text(yaml.safe_dump(config))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    model, algorithm = load_model(run / "model.zip")
    assert algorithm.name == "sac" and model.num_timesteps >= 384


def test_recurrent_ppo_trains_and_evaluates(tmp_path, capsys):
    run = _train(tmp_path, "astrogym/InterferometerLock-v0",
                 ["n_steps=64", "batch_size=32", "n_epochs=1", "env_kwargs={episode_length_s: 1.0}"], 128,
                 "--algo", "recurrent_ppo")
    capsys.readouterr()
    assert main(["evaluate", "astrogym/InterferometerLock-v0", "--policy", str(run / "best_model.zip"),
                 "--episodes", "1", "--out", str(tmp_path / "r")]) == 0
    assert "| best_model.zip |" in capsys.readouterr().out


def test_plot_training_curves_of_two_seeds(tmp_path, capsys):
    env_id, hp, steps = SMOKE[0]
    runs = [_train(tmp_path / f"s{seed}", env_id, hp + ["env_kwargs={episode_length_s: 2.0}"], steps, "--seed",
                   str(seed)) for seed in (0, 1)]
    png = tmp_path / "curves.png"
    assert main(["plot", *map(str, runs), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path)]) == 2  # not a run folder
    assert "not a run folder" in capsys.readouterr().err


def test_subprocess_envs_train_masked_scheduling(tmp_path):
    """Two SubprocVecEnv workers (kernels compiled once in the parent first); masks cross the process boundary."""
    run = tmp_path / "sched2"
    assert main(["train", "astrogym/TelescopeScheduling-v0", "--timesteps", "128", "--n-envs", "2", "--seed", "7",
                 "--run-dir", str(run), "--hp", "n_steps=32", "--hp", "batch_size=32", "--hp", "n_epochs=1",
                 "--eval-freq", "1000", "--no-progress"]) == 0
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["training_seeds"] == [7, 8] and config["algo"] == "maskable_ppo"
    assert yaml.safe_load((run / "status.yml").read_text())["num_timesteps"] >= 128
