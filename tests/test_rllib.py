"""``astrogym train --backend rllib``: one RLlib iteration per env on a local Ray, evaluation of the checkpoint
through ``astrogym evaluate``'s machinery, resume, and a real two-node Ray cluster on this machine.

Skipped as a whole where Ray RLlib is not installed (the main CI venv; ``.ci/ray`` runs this file in a
second venv with ``pip install ".[dev,ray]"``). About 4-5 minutes on 2 cores: each algorithm build
starts its env runner actors (~15-20 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import astrogym  # noqa: F401
from astrogym.experiments.cli import main

HAVE_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.rllib") is not None
requires_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray RLlib is not installed (pip install 'astrogym[ray]'); "
                                                        ".ci/ray runs these tests in a venv that has it")

# (env id, algo, overrides that keep one iteration short, steps)
ONE_ITERATION = [
    ("astrogym/InterferometerLock-v0", "ppo", ["train_batch_size_per_learner=512", "minibatch_size=128",
                                               "num_epochs=1"], 512),
    ("astrogym/AdaptiveOpticsSmall-v0", "ppo", ["train_batch_size_per_learner=128", "minibatch_size=64",
                                                "num_epochs=1", "env_kwargs={episode_frames: 100}"], 128),
    ("astrogym/TelescopeScheduling-v0", "ppo", ["train_batch_size_per_learner=256", "minibatch_size=64",
                                                "num_epochs=1"], 256),
    ("astrogym/InterferometerLock-v0", "sac", ["num_steps_sampled_before_learning_starts=128",
                                               "rollout_fragment_length=64", "train_batch_size_per_learner=64"],
     256),
]


def _train(run: Path, env_id: str, algo: str, hp: list[str], steps: int, *extra: str) -> int:
    argv = ["train", env_id, "--backend", "rllib", "--algo", algo, "--timesteps", str(steps), "--run-dir", str(run),
            "--eval-episodes", "1", "--no-progress", *extra]
    for h in hp:
        argv += ["--hp", h]
    return main(argv)


# -- without Ray (these run in the main CI venv too) ---------------------------------------------------------
@pytest.mark.skipif(HAVE_RAY, reason="Ray is installed: the install hint is not shown")
def test_backend_rllib_without_ray_says_how_to_install(tmp_path, capsys):
    assert _train(tmp_path / "run", "astrogym/InterferometerLock-v0", "ppo", [], 256) == 2
    assert "pip install 'astrogym[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_rllib_options_name_the_field(tmp_path, capsys):
    env = "astrogym/InterferometerLock-v0"
    assert _train(tmp_path / "a", env, "ppo", [], 256, "--num-env-runners", "0") == 2
    assert "--num-env-runners 0" in capsys.readouterr().err
    assert main(["train", env, "--num-env-runners", "2", "--run-dir", str(tmp_path / "b")]) == 2
    assert "need --backend rllib" in capsys.readouterr().err


@pytest.mark.parametrize("env_id", ["astrogym/InterferometerLock-v0", "astrogym/AdaptiveOpticsSmall-v0",
                                    "astrogym/TelescopeScheduling-v0"])
def test_adapter_presents_each_env_to_rllib(env_id):
    """What RLlib's env runners see (no Ray needed: this runs on the main venv's gymnasium too)."""
    from astrogym.agents.rllib_adapters import MASK_KEY, Adapter, RLlibEnv

    base = gym.make(env_id)
    adapter = Adapter(base.observation_space, base.action_space)
    env = RLlibEnv(gym.make(env_id), adapter, first_seed=7)
    obs, _ = env.reset(seed=123)  # RLlib's seed is replaced by the env's own first seed
    reference, _ = base.reset(seed=7)
    assert adapter.observation_space.contains(obs)
    if isinstance(obs, dict):
        assert np.array_equal(obs[MASK_KEY], base.unwrapped.action_masks().astype(np.float32))
        assert np.array_equal(obs["nodes"], reference["nodes"])
        assert adapter.action_space == base.action_space
    else:
        assert len(adapter.observation_space.shape) in (1, 3) and len(adapter.action_space.shape) == 1
        assert np.array_equal(obs.reshape(reference.shape), reference)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert adapter.observation_space.contains(obs) and np.isfinite(reward)
    env.close()
    base.close()


def test_interrupted_checkpoint_saves_are_recovered(tmp_path):
    """A kill between the two renames of a save leaves the new folder complete: it takes the name back."""
    from astrogym.experiments.rllib_backend import STEPS_FILE, latest_checkpoint, recover_checkpoints

    for name, steps in ((".best_model.tmp-11", "512"), (".best_model.old-11", "256"),
                        ("checkpoints/step_0000000256", "256"), ("checkpoints/.step_0000000512.tmp-11", None)):
        (tmp_path / name).mkdir(parents=True)
        if steps:  # the steps file is written last: a folder without it is torn
            (tmp_path / name / STEPS_FILE).write_text(steps)
    recover_checkpoints(tmp_path)
    assert (tmp_path / "best_model" / STEPS_FILE).read_text() == "512"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_dir()) == ["best_model", "checkpoints",
                                                                       "step_0000000256"]
    assert latest_checkpoint(tmp_path) == (tmp_path / "checkpoints/step_0000000256", 256)


@requires_ray
@pytest.mark.parametrize("env_id,algo,hp,expect", [
    ("astrogym/TelescopeScheduling-v0", "maskable_ppo", [], "allowed: ppo, sac"),
    ("astrogym/TelescopeScheduling-v0", "sac", [], "needs a Box action space"),
    ("astrogym/InterferometerLock-v0", "ppo", ["n_steps=128"], "unknown hyperparameter(s) ['n_steps']"),
    ("astrogym/InterferometerLock-v0", "ppo", ["lr=fast"], "lr='fast' has the wrong type"),
])
def test_bad_rllib_config_raises_before_writing(tmp_path, capsys, env_id, algo, hp, expect):
    assert _train(tmp_path / "run", env_id, algo, hp, 256) == 2
    assert expect in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- a local Ray with two env runners ------------------------------------------------------------------------
@pytest.fixture(scope="class")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)  # the backend reuses it and leaves it running
    yield
    ray.shutdown()


@requires_ray
@pytest.mark.usefixtures("local_ray")
class TestLocalRay:
    @pytest.mark.parametrize("env_id,algo,hp,steps", ONE_ITERATION,
                             ids=[f"{e.split('/')[1]}-{a}" for e, a, _, _ in ONE_ITERATION])
    def test_one_iteration_then_policy_acts(self, tmp_path, env_id, algo, hp, steps):
        from astrogym.agents.registry import PolicyContext, make_policy
        from astrogym.agents.rllib_policy import RLlibPolicy
        from astrogym.experiments.evaluation import run_episode
        from astrogym.experiments.registry import get_domain
        from astrogym.experiments.scenarios import get_scenario

        run = tmp_path / "run"
        assert _train(run, env_id, algo, hp, steps, "--num-env-runners", "2") == 0
        config = yaml.safe_load((run / "config.yml").read_text())
        status = yaml.safe_load((run / "status.yml").read_text())
        assert config["backend"] == "rllib" and config["algo"] == algo and config["num_env_runners"] == 2
        assert config["training_seeds"] == [0, 2]  # (2 runners + the local one) x 1 env
        assert status["state"] == "finished" and status["num_timesteps"] >= steps
        assert (run / "command.txt").read_text().startswith("astrogym train")
        assert list((run / "tb").glob("events.out.tfevents.*"))
        for folder in ("model", "best_model"):
            assert (run / folder / "learner_group/learner/rl_module/default_policy").is_dir()
        assert not list(run.glob(".*"))  # no temporary checkpoint folders left

        scenario = get_scenario(env_id, "default")
        env = gym.make(env_id, **config["env_kwargs"])
        for path in (run, run / "model"):  # a run folder and an algorithm checkpoint
            policy = make_policy(str(path), PolicyContext(env, scenario.make_tuning_env))
            assert isinstance(policy, RLlibPolicy)
            obs, _ = env.reset(seed=scenario.eval_seeds[0])
            action, _ = policy.predict(obs)
            assert env.action_space.contains(action)
            if hasattr(env.unwrapped, "action_masks"):  # the mask is respected
                assert env.unwrapped.action_masks()[action]
        row = run_episode(env, policy, scenario.eval_seeds[0], get_domain(env_id).recorder(env), max_steps=100)
        assert np.isfinite(row["return"])

    def test_evaluate_table_and_resume(self, tmp_path, capsys):
        """SB3-style evaluation of an RLlib run beside a baseline, then ``--resume`` from its newest checkpoint."""
        env = "astrogym/InterferometerLock-v0"
        run = tmp_path / "run"
        hp = ["train_batch_size_per_learner=256", "minibatch_size=128", "num_epochs=1"]
        assert _train(run, env, "ppo", hp, 512, "--num-env-runners", "1", "--checkpoint-freq", "256") == 0
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000000256"]
        out = tmp_path / "results"
        assert main(["evaluate", env, "--policy", str(run), "--policy", "zero", "--episodes", "1",
                     "--out", str(out), "--json", str(out / "eval.json")]) == 0
        table = capsys.readouterr().out
        assert "| run |" in table and "| zero |" in table
        assert set(json.loads((out / "eval.json").read_text())["episodes"]) >= {"run", "zero"}

        # as if killed after the first checkpoint, with more steps to go
        config = yaml.safe_load((run / "config.yml").read_text())
        config["total_timesteps"] = 768
        (run / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        status = yaml.safe_load((run / "status.yml").read_text())
        (run / "status.yml").write_text(yaml.safe_dump({**status, "state": "running"}))
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        status = yaml.safe_load((run / "status.yml").read_text())
        assert status["state"] == "finished" and status["num_timesteps"] == 768
        assert status["resumed_from"] == "checkpoints/step_0000000256"
        assert (run / "command.txt").read_text().count("astrogym train") == 2


# -- a two-node cluster on this machine ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End a ``ray start --block`` and everything it started: its own process group (it was started in one)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # GCS and raylet children may outlive the leader
    except ProcessLookupError:
        pass
    proc.wait()


_ALIVE = "import ray; ray.init(address={!r}, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"


def _alive_nodes(address: str, env: dict) -> int:
    """Alive nodes of the cluster, asked by a fresh driver process (0 if it cannot connect)."""
    out = subprocess.run([sys.executable, "-c", _ALIVE.format(address)], env=env, capture_output=True, text=True,
                         timeout=60)
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if out.returncode == 0 and lines and lines[-1].isdigit() else 0


def _wait_for_nodes(address: str, n: int, procs: list, env: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        if _alive_nodes(address, env) >= n:
            return True
        time.sleep(1.0)
    return False


@pytest.fixture
def two_node_cluster():
    """A head (1 CPU) and a worker node (1 CPU) started with ``ray start``; yields ``(address, env)``.

    Each ``ray start --block`` runs in its own process group, which teardown ends (rather than
    ``ray stop --force``, which would end every Ray on the machine). Token authentication is off:
    both nodes and the driver are local. Drivers run as subprocesses, so a Ray session this test
    process opened before (the local-Ray tests) cannot leak into them.
    """
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    temp = tempfile.mkdtemp(prefix="rg", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--block", "--disable-usage-stats"]
    procs = []
    try:
        with open(Path(temp) / "head.log", "w") as log:
            procs.append(subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
                                           f"--temp-dir={temp}", *common], stdout=log, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True))
        if not _wait_for_nodes(address, 1, procs, env, 90):
            pytest.skip(f"Ray head did not start: {(Path(temp) / 'head.log').read_text()[-2000:]}")
        with open(Path(temp) / "worker.log", "w") as log:
            procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], stdout=log,
                                          stderr=subprocess.STDOUT, env=env, start_new_session=True))
        if not _wait_for_nodes(address, 2, procs, env, 90):
            pytest.skip(f"Ray worker node did not join: {(Path(temp) / 'worker.log').read_text()[-2000:]}")
        yield address, env
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


@requires_ray
def test_train_on_a_two_node_cluster(tmp_path, two_node_cluster):
    address, env = two_node_cluster
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "astrogym.experiments.cli", "train", "astrogym/InterferometerLock-v0", "--backend",
            "rllib", "--timesteps", "256", "--num-env-runners", "2", "--address", address, "--run-dir", str(run),
            "--eval-episodes", "1", "--no-progress", "--hp", "train_batch_size_per_learner=256", "--hp",
            "minibatch_size=128", "--hp", "num_epochs=1"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Connected to Ray cluster" in out.stderr  # joined, did not start its own
    status = yaml.safe_load((run / "status.yml").read_text())
    config = yaml.safe_load((run / "config.yml").read_text())
    assert status["state"] == "finished" and config["address"] == address
    assert _alive_nodes(address, env) == 2  # both nodes (one env runner on each 1-CPU node) survived
