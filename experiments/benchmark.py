"""``astrogym benchmark``: every registered policy (shipped checkpoints included) on every scenario of every env.

Per env it writes ``results/{Env}/benchmark.md`` (one table per scenario, the domain's detailed
report with its PNGs, the throughput bench) and the per-scenario Markdown and JSON; the index
``results/benchmark.md`` gathers every scenario table and links the per-env files. A scenario
may leave a policy out of the main job (``skip_in_benchmark``, with the reason, printed under its
table); ``astrogym evaluate`` still runs it on request.
"""

from __future__ import annotations

import time
from pathlib import Path

import astrogym
from astrogym.agents.checkpoints import atomic_write_bytes
from astrogym.agents.registry import policies_for
from astrogym.experiments import registry
from astrogym.experiments.evaluation import evaluate, section, write_evaluation
from astrogym.experiments.scenarios import scenarios_for


def run_benchmark(out: Path, quick: bool = False, seed: int = 0, env_ids: list[str] | None = None,
                  throughput: bool = True) -> Path:
    out = Path(out)
    mode = "quick smoke run" if quick else "full run"
    index = [f"# astrogym benchmark (astrogym {astrogym.__version__}, {mode})\n",
             "Every registered policy on the held-out evaluation seeds of every scenario; mean +- 95% confidence "
             "half-width over episodes. Per-env details, plots and throughput: the linked files.\n"]
    benched: set[str] = set()
    for env_id in env_ids or registry.env_ids():
        domain = registry.get_domain(env_id)
        name = env_id.split("/")[-1]
        folder = out / name
        t0 = time.perf_counter()
        parts = [f"# {env_id}\n"]
        index.append(f"## {env_id} ([details]({name}/benchmark.md))\n")
        for scenario in scenarios_for(env_id).values():
            if not scenario.in_benchmark:
                continue
            policies = [p.name for p in policies_for(env_id, benchmark_only=True)
                        if p.name not in scenario.skip_in_benchmark]
            result = evaluate(env_id, scenario, policies, quick=quick)
            write_evaluation(result, out)
            text = section(result)
            if scenario.skip_in_benchmark:
                text += "\nLeft out of the main job: " + "; ".join(
                    f"{p} ({why})" for p, why in scenario.skip_in_benchmark.items()) + ".\n"
            timing = ", ".join(f"{p} {result.build_seconds[p] + result.play_seconds[p]:.1f} s" for p in policies)
            parts.append(text + f"\nWall time: {timing}.\n")
            index.append(text)
        if domain.report is not None:
            parts.append("## Detailed report\n\n" + domain.report(env_id, folder, quick, seed))
        if throughput and domain.throughput is not None and domain.name not in benched:
            benched.add(domain.name)
            parts.append("## Throughput\n\n" + domain.throughput(env_id, quick))
        parts.append(f"\n({time.perf_counter() - t0:.0f} s for {env_id})\n")
        text = "\n".join(parts)
        print(text, flush=True)
        atomic_write_bytes(folder / "benchmark.md", text.encode())
    path = out / "benchmark.md"
    atomic_write_bytes(path, "\n".join(index).encode())
    return path
