"""Ship a trained run as a named policy inside the package: ``agents/shipped/NAME.*`` plus its provenance.

``python -m astrogym.experiments.shipping RUN_DIR NAME`` copies the run's selected model (its
``best_model.zip``, chosen on validation seeds, never on evaluation seeds; for an algorithm with its
own policy files, ``best_model{suffix}``, e.g. PO4AO's ``.pt``) with its companions
(VecNormalize statistics, the residual spec) to ``agents/shipped/NAME.zip`` etc., and writes
``NAME.yml``: the exact ``astrogym train`` command, seed, algorithm, env, scenario, steps, wall
time, training steps/s, library versions and the git commit. The registry then loads it by name
(``register_policy(NAME, checkpoint="agents/shipped/NAME.zip", ...)``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import yaml

from astrogym.agents.checkpoints import (BEST_MODEL, VECNORMALIZE_SUFFIX, atomic_write_bytes, companion,
                                         resolve_model_file)
from astrogym.agents.algorithms import get_algorithm
from astrogym.agents.registry import PACKAGE_ROOT
from astrogym.agents.residual import RESIDUAL_SUFFIX
from astrogym.experiments.training import read_run_config

SHIPPED_DIR = PACKAGE_ROOT / "agents" / "shipped"


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _tensorboard_wall_time(run_dir: Path) -> float | None:
    """Seconds between the first and the last TensorBoard event of a run (for runs without ``wall_time_s``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    times = []
    for f in sorted((run_dir / "tb").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            events = acc.Scalars(tag)
            times += [events[0].wall_time, events[-1].wall_time]
    return round(max(times) - min(times), 1) if times else None


def ship(run_dir: str | Path, name: str, *, also_trained: list[str | Path] = (), notes: str = "") -> Path:
    """Copy ``run_dir``'s best model to ``agents/shipped/{name}.zip`` with companions and ``{name}.yml``."""
    run_dir = Path(run_dir)
    if not name.isidentifier():
        raise ValueError(f"name {name!r} must be an identifier (it becomes a file name and a policy name)")
    config = read_run_config(run_dir)
    status = yaml.safe_load((run_dir / "status.yml").read_text()) or {}
    if status.get("state") != "finished":
        raise ValueError(f"{run_dir}: the run is {status.get('state')!r}, not finished")
    algorithm = get_algorithm(config["algo"])
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    if algorithm.loader is not None:  # its own policy file (po4ao): best_model.pt, no SB3 companions
        model = run_dir / f"best_model{algorithm.suffix}"
        if not model.is_file():
            raise ValueError(f"{run_dir}: no {model.name}")
    else:
        model = resolve_model_file(run_dir)
    target = SHIPPED_DIR / f"{name}{algorithm.suffix}"
    for suffix in (VECNORMALIZE_SUFFIX, RESIDUAL_SUFFIX) if algorithm.loader is None else ():
        src, dst = companion(model, suffix), companion(target, suffix)
        if src.is_file():
            shutil.copyfile(src, dst)
        else:
            dst.unlink(missing_ok=True)
    shutil.copyfile(model, target)
    commands = (run_dir / "command.txt").read_text().strip().splitlines()
    record = {
        "policy": name,
        "env_id": config["env_id"],
        "algo": config["algo"],
        "scenario": config["scenario"],
        "seed": config["seed"],
        "command": commands[0] if commands else "",
        "resumed": commands[1:],
        "model": model.name + (" (best on validation seeds "
                               f"{config['validation_seeds'][0]}-{config['validation_seeds'][-1]}, at step "
                               f"{status.get('best_at')})" if model.name == BEST_MODEL else
                               " (the last policy accepted on its own real training episodes; no seed-based "
                               "selection)" if algorithm.loader is not None else ""),
        "total_timesteps": config["total_timesteps"],
        "training_steps_per_s": status.get("training_sps"),
        "wall_time_s": status.get("wall_time_s") or _tensorboard_wall_time(run_dir),
        "machine": "2-core CPU, torch_threads=%d" % int(config["hyperparameters"].get("torch_threads", 1)),
        "git_commit": _git_commit(),
        "versions": yaml.safe_load((run_dir / "versions.yml").read_text()),
        "other_seeds": [str(p) for p in also_trained],
        "notes": notes,
    }
    atomic_write_bytes(SHIPPED_DIR / f"{name}.yml", yaml.safe_dump(record, sort_keys=False).encode())
    for f in SHIPPED_DIR.glob(f"{name}.*"):
        f.chmod(0o644)  # package data: readable by every user of an installed copy
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("name")
    parser.add_argument("--also-trained", nargs="*", default=[], help="the other seeds' run folders (recorded)")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    print(ship(args.run_dir, args.name, also_trained=args.also_trained, notes=args.notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
