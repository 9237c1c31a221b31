"""Training curves from run folders: held-out return and the domain's primary metric against environment steps.

Runs of the same env, algorithm and scenario form one curve: the mean over runs (seeds), with a
band that is the 95% interval over runs when there are several, or over the evaluation episodes
of a single run.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from astrogym.experiments.evaluation import mean_ci
from astrogym.experiments.registry import get_domain
from astrogym.experiments.training import EVALUATIONS, read_run_config


def _load(run_dir: Path) -> tuple[dict, dict]:
    config = read_run_config(run_dir)
    path = run_dir / EVALUATIONS
    if not path.is_file():
        raise ValueError(f"{run_dir}: no {EVALUATIONS} yet (no evaluation has run)")
    try:
        with np.load(path) as data:
            return config, {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def _curve(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean, lower, upper of ``key`` (per-episode arrays) over runs on their common steps."""
    steps = sorted(set.intersection(*(set(r["timesteps"].tolist()) for r in runs)))
    means, lo, hi = [], [], []
    for s in steps:
        per_run = [np.nanmean(r[key][list(r["timesteps"]).index(s)]) for r in runs]
        if len(runs) > 1:
            m, h = mean_ci(per_run)
        else:
            m, h = mean_ci(runs[0][key][list(runs[0]["timesteps"]).index(s)])
        h = 0.0 if not np.isfinite(h) else h
        means.append(m)
        lo.append(m - h)
        hi.append(m + h)
    return np.asarray(steps), np.asarray(means), np.asarray(lo), np.asarray(hi)


def plot_training_curves(run_dirs: list[str | Path], out: str | Path | None = None) -> Path:
    """Write a PNG of the curves of ``run_dirs``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for d in run_dirs:
        config, data = _load(Path(d))
        groups[(config["env_id"], config["algo"], config["scenario"])].append(data)
    env_ids = sorted({k[0] for k in groups})
    fig, axes = plt.subplots(len(env_ids), 2, figsize=(11, 3.6 * len(env_ids)), squeeze=False)
    for row, env_id in enumerate(env_ids):
        domain = get_domain(env_id)
        primary = domain.metrics[0] if domain.metrics else None
        for (e, algo, scenario), runs in groups.items():
            if e != env_id:
                continue
            label = f"{algo} ({scenario}, {len(runs)} seed{'s' if len(runs) > 1 else ''})"
            for col, (key, title) in enumerate((("results", "held-out return"),
                                                (f"metric_{primary.key}" if primary else None,
                                                 primary.label if primary else None))):
                ax = axes[row, col]
                if key is None or not all(key in r for r in runs):
                    ax.set_visible(col == 0)
                    continue
                steps, mean, lo, hi = _curve(runs, key)
                line, = ax.plot(steps, mean, marker="o", ms=3, label=label)
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.25)
                ax.set_title(f"{env_id}: {title}")
                ax.set_xlabel("environment steps")
                ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(out) if out else Path(run_dirs[0]).parent / "training_curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
