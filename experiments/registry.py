"""One registry of experiment domains, keyed by env id: what the ``astrogym`` command knows about an env.

A :class:`Domain` bundles, for the env ids it covers: the episode metrics of an evaluation (and
which one is primary), how to record them from ``info``, the default training algorithm and the
TensorBoard callbacks, the throughput bench, and the detailed report with its plots. The CLI only
ever asks the registry, so adding an env is one ``register_domain(Domain(...))`` (plus its
scenarios and policies, see ``experiments/scenarios.py`` and ``agents/registry.py``).

The built-in domains live in ``experiments/domains/`` and register on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import gymnasium as gym


@dataclass(frozen=True)
class Metric:
    """One episode metric of an evaluation table."""

    key: str
    label: str
    higher_is_better: bool = True
    fmt: str = ".3g"
    paired: bool = False  # tables also give the paired per-seed difference to the reference policy (the bar's metric)


class EpisodeRecorder(Protocol):
    """Collects one episode's signals from ``info`` and turns them into metrics."""

    def reset(self, env: gym.Env, info: dict) -> None: ...

    def step(self, reward: float, info: dict) -> None: ...

    def finish(self, env: gym.Env, info: dict, terminated: bool) -> dict[str, float]: ...


class NullRecorder:
    """For envs without domain metrics: the return and length are recorded by the runner."""

    def reset(self, env, info):
        pass

    def step(self, reward, info):
        pass

    def finish(self, env, info, terminated):
        return {}


@dataclass(frozen=True)
class Domain:
    """What the experiment layer knows about a family of env ids.

    Attributes
    ----------
    name: short label (``interferometer``).
    env_ids: the ids it covers.
    metrics: evaluation metrics beside the return; the first is the primary one (training curves,
        best-model selection uses the return).
    recorder: builds an :class:`EpisodeRecorder` for one env.
    default_algo: the algorithm ``astrogym train`` uses without ``--algo``.
    reference_policy: the policy others are compared with, paired per seed, in evaluation tables.
    training_callbacks: ``(env) -> [BaseCallback]`` that log the domain metrics to TensorBoard.
    throughput: ``(env_id, quick) -> Markdown`` of the env's speed against a peer, measured in one run.
    report: ``(env_id, out_dir, quick, seed) -> Markdown`` of the detailed domain evaluation with its PNGs
        (ASDs and margins, PSFs and error budget, schedule plots), or None.
    """

    name: str
    env_ids: tuple[str, ...]
    metrics: tuple[Metric, ...] = ()
    recorder: Callable[[gym.Env], Any] = lambda env: NullRecorder()
    default_algo: str = "ppo"
    reference_policy: str | None = None
    training_callbacks: Callable[[gym.Env], list] = lambda env: []
    throughput: Callable[[str, bool], str] | None = None
    report: Callable[[str, Path, bool, int], str] | None = None
    extra: dict = field(default_factory=dict)


_BUILTIN = ("astrogym.experiments.domains.interferometer", "astrogym.experiments.domains.adaptive_optics",
            "astrogym.experiments.domains.scheduling", "astrogym.experiments.domains.network")
_DOMAINS: dict[str, Domain] = {}
_loaded = False


def register_domain(domain: Domain) -> Domain:
    """Register (or replace) a domain for each of its env ids."""
    for env_id in domain.env_ids:
        _DOMAINS[env_id] = domain
    return domain


def unregister_domain(domain: Domain) -> None:
    for env_id in domain.env_ids:
        if _DOMAINS.get(env_id) is domain:
            del _DOMAINS[env_id]


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN:
            importlib.import_module(module)


def env_ids() -> list[str]:
    """Every env id with a registered domain, in registration order."""
    _load_builtin()
    return list(_DOMAINS)


def domains() -> list[Domain]:
    _load_builtin()
    seen: list[Domain] = []
    for d in _DOMAINS.values():
        if all(d is not s for s in seen):
            seen.append(d)
    return seen


def get_domain(env_id: str) -> Domain:
    """The domain of ``env_id``; ``ValueError`` naming the known ids otherwise."""
    _load_builtin()
    if env_id not in _DOMAINS:
        raise ValueError(f"unknown environment {env_id!r}; known: {', '.join(_DOMAINS)}")
    return _DOMAINS[env_id]
