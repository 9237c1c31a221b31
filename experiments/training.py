"""``astrogym train``: one run folder per run, validation during training, atomic checkpoints, resume.

A run folder ``runs/{Env}__{algo}__{seed}__{timestamp}/`` holds::

    config.yml          everything needed to rebuild the run (env, algorithm, scenario, seeds, hyperparameters)
    command.txt         the exact command lines (the first, then one per resume)
    versions.yml        astrogym, stable-baselines3, sb3-contrib, torch, gymnasium, numpy, numba, Python
    status.yml          running / finished, environment steps done, best evaluation so far
    tb/                 TensorBoard events: SB3's scalars, charts/SPS, the domain metrics, eval/*, the
                        hyperparameters as a text table
    checkpoints/        step_{N}.zip (+ .vecnormalize.pkl, + .replay_buffer.pkl off-policy), the last three
    best_model.zip      best mean return on the validation seeds (+ its VecNormalize statistics)
    model.zip           the final model (+ statistics)
    evaluations.npz     timesteps, results (returns per episode), ep_lengths and one array per domain metric

Training envs are seeded ``seed .. seed + n_envs - 1`` (inside the scenario's training range);
the periodic evaluation that picks ``best_model.zip`` plays ``eval_episodes`` *validation* seeds,
the top of the training range (:meth:`Scenario.validation_seeds`), which training envs never get.
The evaluation seeds stay untouched until ``astrogym evaluate``: selecting a checkpoint on them
and then reporting on them would be tuning on the test set. Everything is written atomically, so a run killed at any moment resumes from its newest
checkpoint with ``--resume RUN_DIR`` to its total steps.
"""

from __future__ import annotations

import datetime
import functools
import io
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

import astrogym
from astrogym.agents.algorithms import Algorithm, get_algorithm
from astrogym.agents.checkpoints import (BEST_MODEL, CHECKPOINT_DIR, FINAL_MODEL, REPLAY_BUFFER_SUFFIX, RUN_CONFIG,
                                         VECNORMALIZE_SUFFIX, TrainedPolicy, atomic_write_bytes, companion,
                                         load_model, save_model_atomic)
from astrogym.agents.residual import RESIDUAL_SUFFIX, ResidualActionWrapper, ResidualSpec, resolve_spec
from astrogym.experiments import hyperparams
from astrogym.experiments.hyperparams import yaml_problem
from astrogym.experiments.evaluation import mean_ci, run_episode
from astrogym.experiments.registry import Domain, get_domain
from astrogym.experiments.scenarios import Scenario, get_scenario
from astrogym.envs.common.imports import import_path

STATUS = "status.yml"
EVALUATIONS = "evaluations.npz"
KEEP_CHECKPOINTS = 3
RUN_FORMAT = 1


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())


def versions(libraries: tuple[str, ...] = ("stable_baselines3", "sb3_contrib")) -> dict[str, str]:
    """The versions a run folder records: astrogym, the learning ``libraries`` of its backend, torch,
    gymnasium, numpy, numba and Python."""
    import importlib

    import numba
    import torch

    found = {"astrogym": astrogym.__version__,
             **{name: importlib.import_module(name).__version__ for name in libraries},
             "torch": torch.__version__, "gymnasium": gym.__version__, "numpy": np.__version__,
             "numba": numba.__version__, "python": platform.python_version()}
    return {k: str(v) for k, v in found.items()}  # torch's is a str subclass YAML cannot represent


# -- envs -------------------------------------------------------------------------------------------------
def _make_single(env_id: str, **kwargs) -> gym.Env:
    import astrogym  # noqa: F401  (a fresh worker process registers the ids)

    return gym.make(env_id, **kwargs)


def warm_kernels(env_id: str, env_kwargs: dict) -> None:
    """Compile (or load) the env's numba kernels once here, before worker processes start.

    With ``cache=True`` the first process to compile writes the cache; K workers starting cold at
    once would each compile and race to write it. After this they all load the same files.
    """
    env = gym.make(env_id, **env_kwargs)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()


def make_eval_env(env_id: str, env_kwargs: dict, residual: dict | None = None) -> gym.Env:
    """One env as the learner sees it: with the residual's base controller in the loop when there is one."""
    env = gym.make(env_id, **env_kwargs)
    return ResidualActionWrapper(env, residual) if residual else env


def make_training_env(env_id: str, env_kwargs: dict, n_envs: int, seed: int, normalize: bool | dict,
                      stats_file: Path | None = None, residual: dict | None = None, vec_env: str | None = None):
    """Monitor-wrapped envs in a ``SubprocVecEnv`` (``DummyVecEnv`` for one), optionally under ``VecNormalize``.

    With ``residual`` (a :class:`~astrogym.agents.residual.ResidualSpec` dict with frozen options)
    each env runs its base controller and the learner's action is the bounded correction.
    ``vec_env="dummy"`` keeps all envs in this process (for envs far faster than the policy);
    ``vec_env="native"`` steps them in the env's own vector env (:mod:`astrogym.agents.vec_env`, one
    compiled call for all copies; the same episodes as ``dummy``), under SB3's ``VecMonitor``.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize

    if vec_env == "native":
        from astrogym.agents.vec_env import make_native_vec_env

        if residual:
            raise ValueError("residual: the native vector env has no per-copy base controller; train a residual "
                             "policy without --vectorised (vec_env subproc or dummy)")
        venv = VecMonitor(make_native_vec_env(env_id, n_envs, seed, env_kwargs))
    else:
        subproc = n_envs > 1 and (vec_env or "subproc") == "subproc"
        if subproc:
            warm_kernels(env_id, env_kwargs)
        venv = make_vec_env(functools.partial(_make_single, env_id), n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                            vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
                            wrapper_class=ResidualActionWrapper if residual else None,
                            wrapper_kwargs={"spec": residual} if residual else None)
    if stats_file is not None and stats_file.is_file():
        venv = VecNormalize.load(str(stats_file), venv)
        venv.training = True
    elif normalize:
        venv = VecNormalize(venv, **(normalize if isinstance(normalize, dict) else {}))
    return venv


def _vecnormalize(venv) -> Any:
    from stable_baselines3.common.vec_env import VecNormalize

    return venv if isinstance(venv, VecNormalize) else None


# -- callbacks --------------------------------------------------------------------------------------------
class PeriodicCallback(BaseCallback):
    """Calls :meth:`on_period` each time the environment steps cross a multiple of ``freq``.

    Counted in environment steps (all envs together), so a resumed run keeps the same schedule.
    """

    def __init__(self, freq: int):
        super().__init__()
        self.freq = freq
        self._next = None

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.freq + 1) * self.freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.freq + 1) * self.freq
            self.on_period()
        return True

    def on_period(self) -> None:
        raise NotImplementedError


class AtomicCheckpointCallback(PeriodicCallback):
    """Every ``freq`` environment steps: ``checkpoints/step_N.zip`` with its statistics (and replay buffer)."""

    def __init__(self, run_dir: Path, freq: int, replay_buffer: bool, keep: int = KEEP_CHECKPOINTS,
                 residual: dict | None = None):
        super().__init__(freq)
        self.run_dir, self.replay_buffer, self.keep, self.residual = run_dir, replay_buffer, keep, residual

    def on_period(self) -> None:
        self.save()

    def save(self) -> Path:
        folder = self.run_dir / CHECKPOINT_DIR
        path = folder / f"step_{self.num_timesteps:010d}.zip"
        save_model_atomic(self.model, path, _vecnormalize(self.model.get_env()), self.replay_buffer, self.residual)
        update_status(self.run_dir, state="running", num_timesteps=int(self.num_timesteps),
                      last_checkpoint=str(path.relative_to(self.run_dir)))
        for old in sorted(folder.glob("step_*.zip"))[:-self.keep]:
            for f in (old, *(companion(old, x) for x in (VECNORMALIZE_SUFFIX, REPLAY_BUFFER_SUFFIX, RESIDUAL_SUFFIX))):
                f.unlink(missing_ok=True)
        return path


class HeldOutEvalCallback(PeriodicCallback):
    """Every ``freq`` steps, play ``episodes`` validation seeds deterministically (never evaluation seeds).

    Logs ``eval/mean_reward``, ``eval/mean_ep_length`` and ``eval/{metric}`` for the domain's
    metrics, appends to ``evaluations.npz`` and keeps ``best_model.zip`` (highest mean return).
    """

    def __init__(self, run_dir: Path, env_id: str, scenario: Scenario, domain: Domain, algorithm: Algorithm,
                 env_kwargs: dict, freq: int, episodes: int, residual: dict | None = None):
        super().__init__(freq)
        self.run_dir, self.env_id, self.scenario, self.domain = run_dir, env_id, scenario, domain
        self.algorithm, self.seeds = algorithm, scenario.validation_seeds(episodes)
        self.residual = residual
        self.env = make_eval_env(env_id, env_kwargs, residual)
        self.history: dict[str, list] = {"timesteps": [], "results": [], "ep_lengths": []}
        self.best = -np.inf
        self.last: float | None = None
        previous = run_dir / EVALUATIONS
        if previous.is_file():  # a resumed run continues its curve
            try:
                with np.load(previous) as data:
                    self.history = {k: list(data[k]) for k in data.files}
                self.best = float(np.max(np.mean(self.history["results"], axis=1))) if self.history["results"] \
                    else -np.inf
            except (OSError, ValueError, KeyError):
                warnings.warn(f"{previous} is unreadable; the evaluation curve restarts")

    def on_period(self) -> None:
        self.evaluate()

    def evaluate(self) -> dict:
        policy = TrainedPolicy(self.model, self.algorithm, env=self.env,
                               vecnormalize=_vecnormalize(self.model.get_env()))
        rows = [run_episode(self.env, policy, s, self.domain.recorder(self.env), self.scenario.reset_options)
                for s in self.seeds]
        returns = np.array([r["return"] for r in rows])
        self.history["timesteps"].append(self.num_timesteps)
        self.history["results"].append(returns)
        self.history["ep_lengths"].append(np.array([r["length"] for r in rows]))
        self.logger.record("eval/mean_reward", float(returns.mean()))
        self.logger.record("eval/mean_ep_length", float(np.mean([r["length"] for r in rows])))
        summary = {"mean_return": float(returns.mean()), "ci95": mean_ci(returns)[1]}
        for m in self.domain.metrics:
            values = np.array([r.get(m.key, np.nan) for r in rows], dtype=float)
            self.history.setdefault(f"metric_{m.key}", []).append(values)
            if np.isfinite(values).any():
                self.logger.record(f"eval/{m.key}", float(np.nanmean(values)))
                summary[m.key] = float(np.nanmean(values))
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in self.history.items()})
        atomic_write_bytes(self.run_dir / EVALUATIONS, buf.getvalue())
        self.last = summary["mean_return"]
        if self.last > self.best:
            self.best = self.last
            save_model_atomic(self.model, self.run_dir / BEST_MODEL, _vecnormalize(self.model.get_env()),
                              residual=self.residual)
            update_status(self.run_dir, best_mean_return=self.best, best_at=int(self.num_timesteps))
        self.logger.dump(self.num_timesteps)
        return summary

    def _on_training_end(self) -> None:
        self.env.close()


class ProgressCallback(BaseCallback):
    """A tqdm bar over environment steps with steps/s and the latest evaluation; ``charts/SPS`` to TensorBoard."""

    def __init__(self, total: int, evaluation: HeldOutEvalCallback | None, enabled: bool = True):
        super().__init__()
        self.total, self.evaluation, self.enabled = total, evaluation, enabled
        self.bar = None

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self._t0, self._n0 = time.perf_counter(), self.num_timesteps
        self._last_log = self._t0
        self.bar = tqdm(total=self.total, initial=self.num_timesteps, unit="step", disable=not self.enabled,
                        desc="train", mininterval=0.5, dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.n)
        now = time.perf_counter()
        if now - self._last_log > 2.0:
            sps = (self.num_timesteps - self._n0) / max(now - self._t0, 1e-9)
            self.logger.record("charts/SPS", sps)
            self._last_log = now
            post = {"sps": f"{sps:.0f}"}
            if self.evaluation is not None and self.evaluation.last is not None:
                post["eval"] = f"{self.evaluation.last:.3g}"
            self.bar.set_postfix(post, refresh=False)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class HyperparameterTextCallback(BaseCallback):
    """Write the resolved configuration to TensorBoard as a Markdown table (the Text tab)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config

    def _on_training_start(self) -> None:
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        rows = "\n".join(f"|{k}|{v}|" for k, v in _flatten(self.config).items())
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_text("hyperparameters", f"|parameter|value|\n|-|-|\n{rows}", self.num_timesteps)

    def _on_step(self) -> bool:
        return True


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# -- run folders ------------------------------------------------------------------------------------------
def update_status(run_dir: Path, **fields) -> dict:
    path = run_dir / STATUS
    status = {}
    if path.is_file():
        try:
            status = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            status = {}
    status.update(fields, updated=datetime.datetime.now().isoformat(timespec="seconds"))
    write_yaml(path, status)
    return status


def read_run_config(run_dir: str | Path) -> dict:
    """The config of a run folder; ``ValueError`` if the folder is not one."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG
    if not run_dir.is_dir():
        raise ValueError(f"--resume {str(run_dir)!r}: no such folder")
    if not path.is_file():
        raise ValueError(f"--resume {str(run_dir)!r}: not a run folder (no {RUN_CONFIG})")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"--resume {str(run_dir)!r}: {RUN_CONFIG} is not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(config, dict) or config.get("astrogym_run") != RUN_FORMAT:
        raise ValueError(f"--resume {str(run_dir)!r}: {RUN_CONFIG} is not an astrogym run configuration")
    missing = [k for k in ("env_id", "algo", "seed", "total_timesteps", "hyperparameters", "scenario")
               if k not in config]
    if missing:
        raise ValueError(f"--resume {str(run_dir)!r}: {RUN_CONFIG} lacks {missing}")
    return config


def default_run_dir(root: str | Path, env_id: str, algo: str, seed: int) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{env_id.split('/')[-1]}__{algo}__{seed}__{stamp}"


def latest_checkpoint(run_dir: Path, algo: str, device: str = "cpu") -> tuple[Path | None, Any]:
    """The newest checkpoint that loads, and its model (a torn or corrupt one is skipped with a warning).

    The model is loaded without an env; the caller attaches the training envs with ``set_env``.
    """
    for path in sorted((run_dir / CHECKPOINT_DIR).glob("step_*.zip"), reverse=True):
        try:
            return path, load_model(path, algo=algo, device=device)[0]
        except ValueError as exc:
            warnings.warn(f"skipping checkpoint {path.name}: {exc}")
    return None, None


def new_model(algorithm: Algorithm, entry: dict, venv, seed: int, device: str = "cpu") -> Any:
    """A fresh SB3 model of ``algorithm`` on ``venv`` with a validated hyperparameter entry."""
    return algorithm.load_class()(hyperparams.policy_class(entry), venv, seed=seed, device=device, verbose=0,
                                  policy_kwargs=hyperparams.policy_kwargs(entry) or None,
                                  **hyperparams.algorithm_kwargs(entry))


# -- the command ------------------------------------------------------------------------------------------
def prepare_run(env_id: str, algo: str | None = None, *, config_file: str | None = None, timesteps: int | None = None,
                seed: int = 0, n_envs: int | None = None, run_dir: str | None = None, runs_root: str = "runs",
                eval_freq: int | None = None, eval_episodes: int | None = None, checkpoint_freq: int | None = None,
                device: str = "cpu", hp: list[str] = (), scenario: str = "default", command: str = "",
                vectorised: bool = False) -> Path:
    """Validate everything and write a new run folder's ``config.yml``; nothing is written on an error.

    ``vectorised``: step the training envs in the env's native vector env (``vec_env: native``).
    """
    domain = get_domain(env_id)
    algorithm = get_algorithm(algo or domain.default_algo)
    scen = get_scenario(env_id, scenario)
    entry = hyperparams.resolve(env_id, algorithm, config_file, list(hp))
    if vectorised:
        if gym.spec(env_id).vector_entry_point is None:
            native = [i for i, spec in gym.registry.items() if i.startswith("astrogym/") and spec.vector_entry_point]
            raise ValueError(f"--vectorised: {env_id} has no native vector env; allowed for {', '.join(native)}")
        if algorithm.trainer is not None:
            raise ValueError(f"--vectorised: {algorithm.name} runs its own loop on single envs; allowed with the "
                             "stable-baselines3 algorithms")
        entry["vec_env"] = "native"
    if entry.get("vec_env") == "native" and entry.get("residual") is not None:
        raise ValueError("--vectorised (vec_env: native) cannot run a residual policy (the base controller acts "
                         "per single env); drop one of them")
    n_envs = int(n_envs or entry["n_envs"])
    if n_envs < 1:
        raise ValueError(f"--n-envs {n_envs}; allowed >= 1")
    entry["n_envs"] = n_envs
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"--seed must be an integer, got {seed!r}")
    scen.check_training_seeds(seed, n_envs)
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"--device {device!r}; allowed cpu, cuda, auto")
    total = int(timesteps or entry["n_timesteps"])
    if total < 1:
        raise ValueError(f"--timesteps {total}; allowed >= 1")
    episodes = int(eval_episodes or entry.get("eval_episodes", 5))
    scen.validation_seeds(episodes)  # in range
    env_kwargs = {**scen.played_env_kwargs, **entry.get("env_kwargs", {})}
    probe = gym.make(env_id, **env_kwargs)  # a bad env_kwargs fails here, before any file exists
    if not algorithm.supports(probe.action_space):
        raise ValueError(f"{algorithm.name} does not support {env_id}'s action space {probe.action_space}; "
                         f"it takes {', '.join(algorithm.action_spaces)}")
    if entry.get("residual") is not None:  # freeze the base controller's tuning (on a training seed) into the run
        spec = ResidualSpec.from_dict(entry["residual"], where="residual")
        if not isinstance(probe.action_space, gym.spaces.Box):
            raise ValueError(f"residual: {env_id}'s action space {probe.action_space} is not a Box")
        entry["residual"] = resolve_spec(spec, probe, lambda **over: gym.make(env_id, **{**env_kwargs, **over}),
                                         scen.tuning_seed).to_dict()
    probe.close()
    hyperparams.policy_kwargs(entry)  # class paths import
    folder = Path(run_dir) if run_dir else default_run_dir(runs_root, env_id, algorithm.name, seed)
    if (folder / RUN_CONFIG).exists():
        raise ValueError(f"--run-dir {str(folder)!r} already holds a run; continue it with --resume {folder}")
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"--run-dir {str(folder)!r} exists and is not empty")
    config = {"astrogym_run": RUN_FORMAT, "env_id": env_id, "algo": algorithm.name, "seed": seed,
              "scenario": scen.name, "scenario_version": scen.version, "total_timesteps": total,
              "training_seeds": [seed, seed + n_envs - 1], "validation_seeds": list(scen.validation_seeds(episodes)),
              "eval_freq": int(eval_freq or entry.get("eval_freq", max(total // 10, 1))),
              "checkpoint_freq": int(checkpoint_freq or entry.get("checkpoint_freq", max(total // 10, 1))),
              "device": device, "env_kwargs": env_kwargs, "hyperparameters": entry}
    folder.mkdir(parents=True, exist_ok=True)
    write_yaml(folder / RUN_CONFIG, config)
    write_yaml(folder / "versions.yml", versions())
    atomic_write_bytes(folder / "command.txt", (command + "\n").encode())
    update_status(folder, state="created", num_timesteps=0)
    return folder


def resume_run(run_dir: Path, command: str = "") -> bool:
    """Whether a run asked to resume has steps left (it says so when not); appends the resume's command line.

    Shared by every backend's ``--resume``.
    """
    status = update_status(run_dir)
    if status.get("state") == "finished":
        print(f"{run_dir}: already finished at {status.get('num_timesteps')} steps")
        return False
    if command:
        with open(run_dir / "command.txt", "a") as f:
            f.write(command + "\n")
    return True


def run(run_dir: str | Path, resume: bool = False, progress: bool = True, command: str = "") -> Path:
    """Train the run in ``run_dir`` (fresh, or from its newest checkpoint) to its total steps."""
    import torch
    from stable_baselines3.common.logger import configure

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    env_id, algorithm = config["env_id"], get_algorithm(config["algo"])
    domain, scen = get_domain(env_id), get_scenario(env_id, config["scenario"])
    entry = config["hyperparameters"]
    hyperparams.validate(entry, algorithm, source=str(run_dir / RUN_CONFIG))
    if resume and not resume_run(run_dir, command):
        return run_dir
    if algorithm.trainer is not None:  # a model-based algorithm with its own loop (agents/algorithms.py)
        torch.set_num_threads(int(entry.get("torch_threads", 1)))
        import_path(algorithm.trainer)(run_dir, config, resume=resume, progress=progress)
        return run_dir
    torch.set_num_threads(int(entry.get("torch_threads", 1)))
    checkpoint, model = latest_checkpoint(run_dir, algorithm.name, config["device"]) if resume else (None, None)
    stats = companion(checkpoint, VECNORMALIZE_SUFFIX) if checkpoint else None
    residual = entry.get("residual")
    venv = make_training_env(env_id, config["env_kwargs"], entry["n_envs"], config["seed"], entry["normalize"],
                             stats, residual, entry.get("vec_env"))
    if model is not None:
        model.set_env(venv)
        buffer = companion(checkpoint, REPLAY_BUFFER_SUFFIX)
        if algorithm.off_policy and buffer.is_file():
            model.load_replay_buffer(buffer)
    else:
        model = new_model(algorithm, entry, venv, config["seed"], config["device"])
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
    evaluation = HeldOutEvalCallback(run_dir, env_id, scen, domain, algorithm, config["env_kwargs"],
                                     config["eval_freq"], len(config["validation_seeds"]), residual)
    checkpoints = AtomicCheckpointCallback(run_dir, config["checkpoint_freq"], algorithm.off_policy,
                                           residual=residual)
    callbacks = [checkpoints, evaluation, *domain.training_callbacks(evaluation.env),
                 HyperparameterTextCallback(config), ProgressCallback(config["total_timesteps"], evaluation, progress)]
    remaining = config["total_timesteps"] - model.num_timesteps
    update_status(run_dir, state="running", num_timesteps=int(model.num_timesteps),
                  resumed_from=str(checkpoint.relative_to(run_dir)) if checkpoint else None)
    t0, n0 = time.perf_counter(), model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False,
                    tb_log_name=algorithm.name)
    else:
        evaluation.env.close()
    seconds = time.perf_counter() - t0
    save_model_atomic(model, run_dir / FINAL_MODEL, _vecnormalize(venv), residual=residual)
    if not (run_dir / BEST_MODEL).is_file():  # no evaluation ran (a very short run): the final model is the best
        save_model_atomic(model, run_dir / BEST_MODEL, _vecnormalize(venv), residual=residual)
    venv.close()
    earlier = float(update_status(run_dir).get("wall_time_s") or 0.0)  # resumed runs add up their sessions
    update_status(run_dir, state="finished", num_timesteps=int(model.num_timesteps),
                  training_sps=round((model.num_timesteps - n0) / max(seconds, 1e-9), 1),
                  wall_time_s=round(earlier + seconds, 1))
    return run_dir
