"""Training curves from run folders: validation return and the domain's bar metric against environment steps.

Runs of the same env, algorithm and scenario form one curve: the mean over runs (seeds), with a
band that is the 95% interval over runs when there are several, or over the evaluation episodes
of a single run. The domain's reference policy (loop shaping, integrator, greedy), played on the
same validation seeds, is drawn as a dashed line, so a curve says whether training beat it.
The legend gives each group's mean wall time per run.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from astrogym.experiments.evaluation import mean_ci
from astrogym.experiments.registry import get_domain
from astrogym.experiments.training import EVALUATIONS, read_run_config


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure as a PNG atomically (a reader never sees half an image) and close it."""
    import io

    import matplotlib.pyplot as plt

    from astrogym.envs.common.files import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _reference(config: dict, metric_key: str | None) -> dict[str, float]:
    """The domain's reference policy on a run's validation seeds: mean return and mean metric."""
    import gymnasium as gym

    from astrogym.agents.registry import PolicyContext, make_policy
    from astrogym.experiments.evaluation import run_episode
    from astrogym.experiments.scenarios import get_scenario

    env_id, kwargs = config["env_id"], config["env_kwargs"]
    domain, scenario = get_domain(env_id), get_scenario(env_id, config["scenario"])
    env = gym.make(env_id, **kwargs)
    ctx = PolicyContext(env, lambda **kw: gym.make(env_id, **{**kwargs, **kw}), tuning_seed=scenario.tuning_seed,
                        options=scenario.policy_options.get(domain.reference_policy, {}))
    policy = make_policy(domain.reference_policy, ctx, env_id)
    rows = [run_episode(env, policy, s, domain.recorder(env), scenario.reset_options)
            for s in config["validation_seeds"]]
    out = {"results": float(np.mean([r["return"] for r in rows]))}
    if metric_key is not None:
        out[f"metric_{metric_key}"] = float(np.nanmean([r.get(metric_key, np.nan) for r in rows]))
    return out


def _wall_minutes(run_dir: Path) -> float | None:
    import yaml

    try:
        status = yaml.safe_load((run_dir / "status.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    return status["wall_time_s"] / 60.0 if status.get("wall_time_s") else None


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


def plot_training_curves(run_dirs: list[str | Path], out: str | Path | None = None, reference: bool = True) -> Path:
    """Write a PNG of the curves of ``run_dirs`` (with the reference policy's level unless ``reference=False``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[dict]] = defaultdict(list)
    configs: dict[tuple, dict] = {}
    walls: dict[tuple, list[float]] = defaultdict(list)
    for d in run_dirs:
        config, data = _load(Path(d))
        key = (config["env_id"], config["algo"], config["scenario"])
        groups[key].append(data)
        configs.setdefault(key, config)
        minutes = _wall_minutes(Path(d))
        if minutes is not None:
            walls[key].append(minutes)
    env_ids = sorted({k[0] for k in groups})
    fig, axes = plt.subplots(len(env_ids), 2, figsize=(11, 3.6 * len(env_ids)), squeeze=False)
    for row, env_id in enumerate(env_ids):
        domain = get_domain(env_id)
        paired = [m for m in domain.metrics if m.paired]
        primary = paired[0] if paired else (domain.metrics[0] if domain.metrics else None)
        for (e, algo, scenario), runs in groups.items():
            if e != env_id:
                continue
            label = f"{algo} ({scenario}, {len(runs)} seed{'s' if len(runs) > 1 else ''})"
            if walls[(e, algo, scenario)]:
                label += f", {np.mean(walls[(e, algo, scenario)]):.0f} min/run on 2 cores"
            ref = _reference(configs[(e, algo, scenario)], primary.key if primary else None) if reference else {}
            for col, (key, title) in enumerate((("results", "validation return"),
                                                (f"metric_{primary.key}" if primary else None,
                                                 primary.label if primary else None))):
                ax = axes[row, col]
                if key is None or not all(key in r for r in runs):
                    ax.set_visible(col == 0)
                    continue
                steps, mean, lo, hi = _curve(runs, key)
                line, = ax.plot(steps, mean, marker="o", ms=3, label=label)
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.25)
                if key in ref:
                    ax.axhline(ref[key], color=line.get_color(), ls="--", lw=1,
                               label=f"{domain.reference_policy} (same validation seeds)")
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
