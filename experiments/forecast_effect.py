"""The seeing forecast's effect on the GNN scheduler: the same training seeds with and without it.

Each training seed S gives two runs of the same command and config, one on ``oversubscribed`` and
one on ``oversubscribed-forecast`` (its observation adds the learned weather generator's hour-ahead
forecast to the globals; a seed draws the same catalogue and weather in both)::

    astrogym train astrogym/TelescopeScheduling-v0 --algo maskable_ppo --scenario oversubscribed \\
        --config experiments/data/configs/scheduling_gnn.yml --seed S --run-dir runs/gnn_sS --no-progress
    astrogym train ... --scenario oversubscribed-forecast ... --run-dir runs/gnnf_sS

``python -m astrogym.experiments.forecast_effect --without runs/gnn_s1 ... --with runs/gnnf_s1 ...``
plays each run's final ``model.zip`` (as shipped, not ``best_model.zip``) on the held-out evaluation
seeds and prints, per training seed and pooled, the return with the forecast minus without, paired
by evaluation seed (same night, same weather), with 95% confidence intervals, and the greedy
scheduler's return for scale.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

ENV_ID = "astrogym/TelescopeScheduling-v0"
WITHOUT, WITH = "oversubscribed", "oversubscribed-forecast"


def _returns(scenario_name: str, policy: str, episodes: int | None, model: str | None = None) -> np.ndarray:
    """Per-episode returns of a registered policy; with ``model``, of the ``gnn`` policy loading that file (it
    plays any catalogue size, whatever padding it was trained with)."""
    from astrogym.experiments.evaluation import evaluate
    from astrogym.experiments.scenarios import get_scenario

    options = {policy: {"path": model}} if model else None
    result = evaluate(ENV_ID, get_scenario(ENV_ID, scenario_name), [policy], episodes=episodes, progress=False,
                      policy_options=options)
    (rows,) = result.episodes.values()
    return np.array([r["return"] for r in rows])


def _ci(x: np.ndarray) -> str:
    from astrogym.experiments.evaluation import mean_ci

    mean, half = mean_ci(x)
    return f"{mean:+.4f}" if not np.isfinite(half) else f"{mean:+.4f} +- {half:.4f}"


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m astrogym.experiments.forecast_effect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--without", nargs="+", required=True, help="run folders trained on oversubscribed")
    p.add_argument("--with", dest="with_", nargs="+", required=True,
                   help="run folders trained on oversubscribed-forecast, same seeds in the same order")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: all of the scenario's)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if len(args.without) != len(args.with_):
        p.error("--without and --with need one run folder per training seed each, in the same order")
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    greedy = _returns(WITHOUT, "greedy", args.episodes)
    lines = ["| training seed | GNN without forecast | GNN with forecast | with - without (paired) | "
             "without - greedy | with - greedy |", "|---|---|---|---|---|---|"]
    diffs, out = [], {"greedy": greedy.tolist(), "runs": []}
    for plain, forecast in zip(args.without, args.with_):
        a = _returns(WITHOUT, "gnn", args.episodes, str(Path(plain) / "model.zip"))
        b = _returns(WITH, "gnn", args.episodes, str(Path(forecast) / "model.zip"))
        diffs.append(b - a)
        lines.append(f"| {Path(plain).name} / {Path(forecast).name} | {_ci(a)} | {_ci(b)} | {_ci(b - a)} | "
                     f"{_ci(a - greedy)} | {_ci(b - greedy)} |")
        out["runs"].append({"without": plain, "with": forecast, "return_without": a.tolist(),
                            "return_with": b.tolist()})
    per_seed = np.array([d.mean() for d in diffs])
    pooled = np.concatenate(diffs)
    lines.append(f"\nWith - without, mean over training seeds (t interval over {per_seed.size} seeds): "
                 f"{_ci(per_seed)}; pooled over all {pooled.size} episode pairs: {_ci(pooled)}. "
                 f"Greedy's return: {_ci(greedy)} over {greedy.size} evaluation nights.")
    text = "\n".join(lines)
    print(text)
    if args.json:
        from astrogym.agents.checkpoints import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(out, indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
