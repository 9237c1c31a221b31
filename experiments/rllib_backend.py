"""``astrogym train --backend rllib``: RLlib PPO/SAC (new API stack) into the same run folders as SB3 runs.

A run folder ``runs/{Env}__rllib_{algo}__{seed}__{timestamp}/`` holds::

    config.yml          as an SB3 run's, with ``backend: rllib``, ``num_env_runners`` and the cluster address
    command.txt         the exact command lines (the first, then one per resume)
    versions.yml        astrogym, ray, torch, gymnasium, numpy, numba, Python
    status.yml          running / finished, environment steps done, best evaluation so far
    tb/                 TensorBoard: rollout/ep_rew_mean (RLlib's episode return mean), charts/SPS,
                        charts/sampling_sps and charts/learner_sps (env steps per second of sampling and of
                        the learner update), train/* (RLlib's learner stats), eval/*, the hyperparameters
    checkpoints/        step_{N}/: RLlib algorithm checkpoints (``Algorithm.save_to_path``), the last three
    best_model/         best mean return on the validation seeds (an algorithm checkpoint)
    model/              the final algorithm checkpoint
    evaluations.npz     as an SB3 run's

Checkpoints are folders: each is written to a dot-named temporary folder beside it and renamed,
so a reader sees a whole checkpoint or none (``best_model/`` is replaced by moving the old one
aside first; a reader that finds none falls back to ``model/`` or the newest checkpoint).
``astrogym evaluate ENV --policy RUN_DIR`` loads the module inside
(:mod:`astrogym.agents.rllib_policy`), so RLlib and SB3 policies share one table.

Seeds, validation and evaluation seeds follow :mod:`astrogym.experiments.training`: env runner
``w``'s ``i``-th env starts from ``seed + w * envs_per_runner + i`` (:class:`RLlibEnv`), inside the
scenario's training range. Without ``--address`` a local Ray starts with one CPU per env runner
(at least the machine's count); with it the driver joins that cluster, whose nodes must have
astrogym (and the same Ray) installed. numba kernels are compiled on the driver before any env
runner starts, and once per node under a lock (:func:`rllib_config.warm_kernels_once`).
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from astrogym.agents.checkpoints import RUN_CONFIG, atomic_write_bytes
from astrogym.agents.rllib_policy import (BEST_MODEL_DIR, CHECKPOINT_DIR, FINAL_MODEL_DIR, RLlibPolicy,
                                          checkpoints, import_rllib, is_rllib_run)
from astrogym.experiments import rllib_config
from astrogym.experiments.evaluation import mean_ci, run_episode
from astrogym.experiments.registry import get_domain
from astrogym.experiments.scenarios import get_scenario

EVALUATIONS = "evaluations.npz"
KEEP_CHECKPOINTS = 3
STEPS_FILE = "astrogym_steps.txt"  # inside each checkpoint: the environment steps it was taken at


def _training():
    from astrogym.experiments import training  # SB3's run-folder helpers (status, YAML, config reading)

    return training


def check_num_env_runners(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--num-env-runners {n!r}; allowed an integer >= 1 (RLlib's env runner actors)")
    return n


# -- run folders ------------------------------------------------------------------------------------------
def prepare_run(env_id: str, algo: str | None = None, *, config_file: str | None = None, timesteps: int | None = None,
                seed: int = 0, num_env_runners: int | None = None, run_dir: str | None = None,
                runs_root: str = "runs", eval_freq: int | None = None, eval_episodes: int | None = None,
                checkpoint_freq: int | None = None, device: str = "cpu", hp: list[str] = (),
                scenario: str = "default", command: str = "", address: str | None = None) -> Path:
    """Validate everything and write a new RLlib run folder's ``config.yml``; nothing is written on an error."""
    import_rllib()
    training = _training()
    get_domain(env_id)
    scen = get_scenario(env_id, scenario)
    if device != "cpu":
        raise ValueError(f"--device {device!r} with --backend rllib; allowed cpu (the learner runs in the driver)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"--seed must be an integer, got {seed!r}")
    probe_kwargs = dict(scen.played_env_kwargs)
    probe = gym.make(env_id, **probe_kwargs)
    name = rllib_config.check_algo(algo, probe.action_space)
    entry = rllib_config.resolve(env_id, name, config_file, list(hp))
    if num_env_runners is not None:
        entry["num_env_runners"] = check_num_env_runners(num_env_runners)
    env_kwargs = {**scen.played_env_kwargs, **entry.get("env_kwargs", {})}
    if entry.get("env_kwargs"):
        probe.close()
        probe = gym.make(env_id, **env_kwargs)  # a bad env_kwargs fails here, before any file exists
    scen.check_training_seeds(seed, rllib_config.seeds_used(seed, entry))
    total = int(timesteps or entry["n_timesteps"])
    if total < 1:
        raise ValueError(f"--timesteps {total}; allowed >= 1")
    episodes = int(eval_episodes or entry.get("eval_episodes", 5))
    scen.validation_seeds(episodes)  # in range
    try:
        rllib_config.build_config(env_id, name, entry, env_kwargs, seed, probe).validate()
    except (TypeError, KeyError) as exc:
        raise ValueError(f"rllib {name} hyperparameters: {exc}") from None
    probe.close()
    folder = Path(run_dir) if run_dir else training.default_run_dir(runs_root, env_id, f"rllib_{name}", seed)
    if (folder / RUN_CONFIG).exists():
        raise ValueError(f"--run-dir {str(folder)!r} already holds a run; continue it with --resume {folder}")
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"--run-dir {str(folder)!r} exists and is not empty")
    config = {"astrogym_run": training.RUN_FORMAT, "backend": "rllib", "env_id": env_id, "algo": name, "seed": seed,
              "scenario": scen.name, "scenario_version": scen.version, "total_timesteps": total,
              "training_seeds": [seed, seed + rllib_config.seeds_used(seed, entry) - 1],
              "validation_seeds": list(scen.validation_seeds(episodes)),
              "eval_freq": int(eval_freq or entry.get("eval_freq", max(total // 10, 1))),
              "checkpoint_freq": int(checkpoint_freq or entry.get("checkpoint_freq", max(total // 10, 1))),
              "device": device, "num_env_runners": entry["num_env_runners"], "address": address,
              "env_kwargs": env_kwargs, "hyperparameters": entry}
    folder.mkdir(parents=True, exist_ok=True)
    training.write_yaml(folder / RUN_CONFIG, config)
    training.write_yaml(folder / "versions.yml", training.versions(("ray",)))
    atomic_write_bytes(folder / "command.txt", (command + "\n").encode())
    training.update_status(folder, state="created", num_timesteps=0)
    return folder


def save_checkpoint(algo: Any, path: Path, steps: int) -> Path:
    """``algo.save_to_path`` into a dot-named temporary folder beside ``path``, then renamed to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    atomic_write_bytes(tmp / STEPS_FILE, f"{steps}\n".encode())
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    for stale in path.parent.glob(f".{path.name}.*"):  # left by a run killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    return path


def recover_checkpoints(run_dir: Path) -> None:
    """Finish or undo a save a kill interrupted: a complete temporary folder (its steps file is written last)
    or the moved-aside old one takes the missing name back; other leftovers are removed."""
    for folder in (run_dir, run_dir / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        leftovers = sorted(p for p in folder.glob(".*") if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name))
        for kind in (".tmp-", ".old-"):
            for p in leftovers:
                name = p.name[1:].split(kind)[0] if kind in p.name else None
                if name and p.exists() and not (folder / name).exists() and (p / STEPS_FILE).is_file():
                    os.rename(p, folder / name)
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)


def checkpoint_steps(path: Path) -> int | None:
    try:
        return int((path / STEPS_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def latest_checkpoint(run_dir: Path) -> tuple[Path | None, int]:
    """The newest complete checkpoint and its environment steps (one without its steps file is skipped)."""
    for path in reversed(checkpoints(run_dir)):
        steps = checkpoint_steps(path)
        if steps is not None:
            return path, steps
    return None, 0


# -- logging ----------------------------------------------------------------------------------------------
def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _scalars(result: dict, steps: int, seconds: float) -> dict[str, float]:
    """The TensorBoard scalars of one ``algo.train()`` result (RLlib's metric names of the new stack)."""
    from ray.rllib.utils.metrics import (ENV_RUNNER_RESULTS, ENV_RUNNER_SAMPLING_TIMER, EPISODE_RETURN_MEAN,
                                         EPISODE_LEN_MEAN, LEARNER_RESULTS, LEARNER_UPDATE_TIMER, TIMERS)

    out = {"charts/SPS": steps / max(seconds, 1e-9)}
    ret = _get(result, ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN)
    if ret is not None and np.isfinite(ret):
        out["rollout/ep_rew_mean"] = float(ret)
    length = _get(result, ENV_RUNNER_RESULTS, EPISODE_LEN_MEAN)
    if length is not None and np.isfinite(length):
        out["rollout/ep_len_mean"] = float(length)
    sampling = _get(result, TIMERS, ENV_RUNNER_SAMPLING_TIMER)
    if sampling:  # the driver's wall time of one parallel sample() round over all env runners
        out["charts/sampling_sps"] = steps / float(sampling)
    learner = _get(result, TIMERS, LEARNER_UPDATE_TIMER)
    if learner:
        out["charts/learner_sps"] = steps / float(learner)
    for key, value in (_get(result, LEARNER_RESULTS, "default_policy") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            out[f"train/{key}"] = float(value)
    return out


def _steps_sampled(result: dict) -> int:
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED

    return int(_get(result, ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED, default=0) or 0)


class Evaluator:
    """Validation episodes (deterministic, never evaluation seeds) of the live module; keeps ``best_model/``."""

    def __init__(self, run_dir: Path, config: dict, writer: Any):
        env_id = config["env_id"]
        self.run_dir, self.writer = run_dir, writer
        self.scenario, self.domain = get_scenario(env_id, config["scenario"]), get_domain(env_id)
        self.seeds = tuple(config["validation_seeds"])
        self.env = gym.make(env_id, **config["env_kwargs"])
        self.history: dict[str, list] = {"timesteps": [], "results": [], "ep_lengths": []}
        self.best, self.last = -np.inf, None
        previous = run_dir / EVALUATIONS
        if previous.is_file():  # a resumed run continues its curve
            try:
                with np.load(previous) as data:
                    self.history = {k: list(data[k]) for k in data.files}
                if self.history["results"]:
                    self.best = float(np.max(np.mean(self.history["results"], axis=1)))
            except (OSError, ValueError, KeyError):
                pass

    def evaluate(self, algo: Any, steps: int) -> float:
        policy = RLlibPolicy(algo.get_module(), self.env)
        rows = [run_episode(self.env, policy, s, self.domain.recorder(self.env), self.scenario.reset_options)
                for s in self.seeds]
        returns = np.array([r["return"] for r in rows])
        self.history["timesteps"].append(steps)
        self.history["results"].append(returns)
        self.history["ep_lengths"].append(np.array([r["length"] for r in rows]))
        self.writer.add_scalar("eval/mean_reward", float(returns.mean()), steps)
        self.writer.add_scalar("eval/mean_ep_length", float(np.mean([r["length"] for r in rows])), steps)
        for m in self.domain.metrics:
            values = np.array([r.get(m.key, np.nan) for r in rows], dtype=float)
            self.history.setdefault(f"metric_{m.key}", []).append(values)
            if np.isfinite(values).any():
                self.writer.add_scalar(f"eval/{m.key}", float(np.nanmean(values)), steps)
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in self.history.items()})
        atomic_write_bytes(self.run_dir / EVALUATIONS, buf.getvalue())
        self.last = float(returns.mean())
        if self.last > self.best:
            self.best = self.last
            save_checkpoint(algo, self.run_dir / BEST_MODEL_DIR, steps)
            _training().update_status(self.run_dir, best_mean_return=self.best, best_at=int(steps),
                                      best_ci95=mean_ci(returns)[1])
        return self.last


# -- Ray --------------------------------------------------------------------------------------------------
def start_ray(address: str | None, num_env_runners: int) -> bool:
    """Join ``address`` or start a local Ray (one CPU per env runner at least); True if started here."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address:
        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, RuntimeError) as exc:
            raise ValueError(f"--address {address!r}: cannot join the Ray cluster ({exc}); start it with "
                             "`ray start --head --port=PORT` and pass HEAD:PORT") from None
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, num_env_runners), include_dashboard=False)
    return True


# -- the command ------------------------------------------------------------------------------------------
def run(run_dir: str | Path, resume: bool = False, progress: bool = True, command: str = "",
        address: str | None = None) -> Path:
    """Train the RLlib run in ``run_dir`` (fresh, or from its newest checkpoint) to its total steps."""
    import_rllib()
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    training = _training()
    run_dir = Path(run_dir)
    config = training.read_run_config(run_dir)
    if not is_rllib_run(run_dir):
        raise ValueError(f"--resume {str(run_dir)!r}: not an RLlib run (its {RUN_CONFIG} has no backend: rllib)")
    env_id, name, entry = config["env_id"], config["algo"], config["hyperparameters"]
    rllib_config.validate(entry, name, source=str(run_dir / RUN_CONFIG))
    if resume and not training.resume_run(run_dir, command):
        return run_dir
    torch.set_num_threads(int(entry.get("torch_threads", 1)))
    rllib_config.warm_kernels_once(env_id, config["env_kwargs"])  # before any env runner starts
    address = address or config.get("address")  # a resume joins the run's cluster unless told otherwise
    address = None if address == "local" else address
    started = start_ray(address, entry["num_env_runners"])
    probe = gym.make(env_id, **config["env_kwargs"])
    algo = rllib_config.build_config(env_id, name, entry, config["env_kwargs"], config["seed"], probe).build_algo()
    probe.close()
    writer = SummaryWriter(str(run_dir / "tb"))
    try:
        steps, checkpoint = 0, None
        if resume:
            recover_checkpoints(run_dir)
            checkpoint, steps = latest_checkpoint(run_dir)
            if checkpoint is not None:
                algo.restore_from_path(str(checkpoint.resolve()))
        evaluator = Evaluator(run_dir, config, writer)
        rows = "\n".join(f"|{k}|{v}|" for k, v in training._flatten(config).items())
        writer.add_text("hyperparameters", f"|parameter|value|\n|-|-|\n{rows}", steps)
        total = config["total_timesteps"]
        next_eval = (steps // config["eval_freq"] + 1) * config["eval_freq"]
        next_ckpt = (steps // config["checkpoint_freq"] + 1) * config["checkpoint_freq"]
        training.update_status(run_dir, state="running", num_timesteps=steps,
                               resumed_from=str(checkpoint.relative_to(run_dir)) if checkpoint else None)
        bar = tqdm(total=total, initial=steps, unit="step", disable=not progress, desc="train (rllib)",
                   mininterval=0.5, dynamic_ncols=True)
        t0, n0 = time.perf_counter(), steps
        while steps < total:
            t = time.perf_counter()
            result = algo.train()
            seconds = time.perf_counter() - t
            new = _steps_sampled(result)
            if new <= 0:
                raise RuntimeError(f"RLlib sampled no environment steps in iteration {result.get('training_iteration')}")
            steps += new
            for tag, value in _scalars(result, new, seconds).items():
                writer.add_scalar(tag, value, steps)
            bar.update(new)
            post = {"sps": f"{(steps - n0) / max(time.perf_counter() - t0, 1e-9):.0f}"}
            if steps >= next_eval or steps >= total:
                evaluator.evaluate(algo, steps)
                next_eval = (steps // config["eval_freq"] + 1) * config["eval_freq"]
            if evaluator.last is not None:
                post["eval"] = f"{evaluator.last:.3g}"
            bar.set_postfix(post, refresh=False)
            if steps >= next_ckpt and steps < total:
                path = save_checkpoint(algo, run_dir / CHECKPOINT_DIR / f"step_{steps:010d}", steps)
                for old in checkpoints(run_dir)[:-KEEP_CHECKPOINTS]:
                    shutil.rmtree(old, ignore_errors=True)
                training.update_status(run_dir, state="running", num_timesteps=steps,
                                       last_checkpoint=str(path.relative_to(run_dir)))
                next_ckpt = (steps // config["checkpoint_freq"] + 1) * config["checkpoint_freq"]
            else:
                training.update_status(run_dir, state="running", num_timesteps=steps)
            writer.flush()
        bar.close()
        seconds = time.perf_counter() - t0
        save_checkpoint(algo, run_dir / FINAL_MODEL_DIR, steps)
        if not (run_dir / BEST_MODEL_DIR).is_dir():  # no evaluation ran: the final model is the best
            save_checkpoint(algo, run_dir / BEST_MODEL_DIR, steps)
        earlier = float(training.update_status(run_dir).get("wall_time_s") or 0.0)
        training.update_status(run_dir, state="finished", num_timesteps=int(steps),
                               training_sps=round((steps - n0) / max(seconds, 1e-9), 1),
                               wall_time_s=round(earlier + seconds, 1),
                               finished_at=datetime.datetime.now().isoformat(timespec="seconds"))
    finally:
        writer.close()
        algo.stop()
        if started:
            import ray

            ray.shutdown()
    return run_dir
