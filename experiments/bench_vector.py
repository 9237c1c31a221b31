"""``astrogym bench ENV --num-envs 1,64,1024``: the native vector env against Gymnasium's vector wrappers.

For each number of copies N the same env id is stepped three ways, measured in one run:

* ``native``: ``gym.make_vec(id, N, vectorization_mode="vector_entry_point")``, one compiled call per step,
  with the copies spread over numba's threads (``parallel=True``) and on one thread (``parallel=False``;
  threads wait for each other every step, so on a machine whose other cores are busy one thread wins);
* ``sync``: ``SyncVectorEnv`` of N single envs (a Python loop over copies);
* ``async``: ``AsyncVectorEnv`` of N single envs, one process each (only up to :data:`ASYNC_MAX` copies:
  on a 2-core machine more processes only queue).

Only ``step`` calls are timed: the actions (uniform in the action space; for the schedulers a random
allowed target drawn from the batched masks) are prepared outside the timed region. Each cell is the
median of ``repeats`` runs of about ``seconds`` each, and ratios are taken between medians of the same
run. All three use ``copy=False`` observations (Gymnasium's option), so none pays for a copy the others
skip.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import astrogym  # noqa: F401  (registers the ids)

ASYNC_MAX = 64
DEFAULT_SIZES = {"astrogym/AdaptiveOptics-v0": (1, 8), "astrogym/AdaptiveOpticsSmall-v0": (1, 64)}
SIZES = (1, 64, 1024)


def parse_sizes(text: str | None, env_id: str) -> tuple[int, ...]:
    """``"1,64,1024"`` as a tuple; ``None`` or ``"default"`` gives the env's default sizes.

    Raises
    ------
    ValueError: an entry that is not an integer >= 1.
    """
    if text is None or text == "default":
        return DEFAULT_SIZES.get(env_id, SIZES)
    sizes = []
    for part in str(text).split(","):
        try:
            n = int(part)
        except ValueError:
            raise ValueError(f"--num-envs {text!r}: {part!r} is not an integer; allowed a comma-separated list of "
                             "integers >= 1, e.g. 1,64,1024") from None
        if n < 1:
            raise ValueError(f"--num-envs {text!r}: {n} copies; allowed >= 1")
        sizes.append(n)
    return tuple(sizes)


def _masks(venv) -> np.ndarray | None:
    """The batched action masks of a scheduling vector env (native or Gymnasium's), None for other envs."""
    base = venv.unwrapped
    if hasattr(base, "action_masks"):
        return base.action_masks()
    if hasattr(base, "call") and hasattr(base.single_action_space, "n"):
        try:
            return np.stack(base.call("action_masks"))
        except AttributeError:
            return None
    return None


def _actions(venv, rng: np.random.Generator) -> np.ndarray:
    masks = _masks(venv)
    if masks is not None:  # a random allowed action per copy
        return np.argmax(rng.random(masks.shape) * masks, axis=1)
    space = venv.single_action_space
    return rng.uniform(-0.2, 0.2, (venv.num_envs, *space.shape)).astype(space.dtype)


def steps_per_second(venv, seconds: float, repeats: int, seed: int = 0) -> float:
    """Median copy-steps per second of ``venv.step`` (only the step calls timed)."""
    rng = np.random.default_rng(seed)
    venv.reset(seed=seed)
    venv.step(_actions(venv, rng))  # compile / warm up
    rates = []
    for _ in range(repeats):
        spent, steps = 0.0, 0
        while spent < seconds:
            actions = _actions(venv, rng)
            t0 = time.perf_counter()
            venv.step(actions)
            spent += time.perf_counter() - t0
            steps += 1
        rates.append(steps * venv.num_envs / spent)
    return float(np.median(rates))


def make(env_id: str, n: int, mode: str, env_kwargs: dict | None = None):
    kwargs = dict(env_kwargs or {})
    if mode.startswith("native"):
        return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", copy=False,
                            parallel=mode == "native", **kwargs)
    return gym.make_vec(env_id, num_envs=n, vectorization_mode=mode, vector_kwargs={"copy": False}, **kwargs)


def bench(env_id: str, sizes: tuple[int, ...] = SIZES, seconds: float = 2.0, repeats: int = 3,
          env_kwargs: dict | None = None, progress: bool = True) -> list[dict]:
    """One row per N: steps/s of native (threads), native_1 (one thread), sync and async (None where not
    measured)."""
    rows = []
    for n in sizes:
        row = {"num_envs": n}
        for mode in ("native", "native_1", "sync", "async"):
            if mode == "async" and n > ASYNC_MAX:
                row[mode] = None
                continue
            if progress:
                print(f"  {env_id} x{n} {mode} ...", flush=True)
            venv = make(env_id, n, mode, env_kwargs)
            try:
                row[mode] = steps_per_second(venv, seconds, repeats)
            finally:
                venv.close()
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: steps/s per variant, and the better native's ratios to sync and async."""
    def fmt(x):
        return "-" if x is None else f"{x:,.0f}"

    lines = ["| copies | native, threads [steps/s] | native, 1 thread | SyncVectorEnv | AsyncVectorEnv | "
             "native / sync | native / async |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        best = max(r["native"], r["native_1"])
        sync_ratio = f"{best / r['sync']:.1f}x" if r["sync"] else "-"
        async_ratio = f"{best / r['async']:.1f}x" if r["async"] else "-"
        lines.append(f"| {r['num_envs']} | {fmt(r['native'])} | {fmt(r['native_1'])} | {fmt(r['sync'])} | "
                     f"{fmt(r['async'])} | {sync_ratio} | {async_ratio} |")
    return "\n".join(lines)
