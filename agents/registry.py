"""One registry of policies: a name (``baseline``, ``zero``, ``greedy``, ...) or a checkpoint path -> a :class:`Policy`.

Each entry names the env ids it acts in and a factory ``"module:callable"`` that is imported only
when the policy is built, so listing policies imports no solver. A factory receives a
:class:`PolicyContext` and returns an object with ``predict``::

    register_policy("baseline", f"{_HERE}:_integrator", env_ids=AO_IDS, summary="alias of 'integrator'",
                in_benchmark=False)
register_policy("integrator", "astrogym.agents.registry:_integrator", env_ids=AO_IDS,
                    summary="leaky integrator, gain tuned on a training seed")

Adding a policy is one such call; ``astrogym evaluate``/``benchmark`` pick it up with no other edit.
Shipped checkpoints register the same way with ``checkpoint=`` (a path relative to the package).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from astrogym.envs import ids_for
from astrogym.envs.common.imports import import_path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class PolicyContext:
    """What a policy factory may use.

    Attributes
    ----------
    env: the env the policy will act in.
    make_env: builds a fresh env of the same configuration; keyword arguments override fields
        (e.g. ``episode_frames=10**9`` for a long tuning run). In a scenario with an injected fault it
        builds the env without the fault: policies tune on normal operation.
    tuning_seed: a seed from the scenario's *training* range, for gain tuning or fitting; never an
        evaluation seed.
    options: per-policy keyword arguments (from the scenario file or the caller).
    """

    env: gym.Env
    make_env: Callable[..., gym.Env]
    tuning_seed: int = 0
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PolicySpec:
    """One registered policy."""

    name: str
    env_ids: tuple[str, ...]
    summary: str
    factory: str | Callable[[PolicyContext], Any] | None = None  # "module:callable" (lazy) or the callable
    checkpoint: str | None = None  # a shipped model, relative to the package root
    in_benchmark: bool = True  # False for policies too slow for the main job


# keyed by (name, env id): one name (``baseline``) may mean a different controller in each domain
_REGISTRY: dict[tuple[str, str], PolicySpec] = {}


def register_policy(name: str, factory: str | Callable[[PolicyContext], Any] | None = None, *, env_ids, summary: str, checkpoint: str | None = None,
                    in_benchmark: bool = True) -> PolicySpec:
    """Register (or replace) a policy for ``env_ids``; exactly one of ``factory`` and ``checkpoint``.

    ``in_benchmark=False`` keeps it out of ``astrogym benchmark`` (an alias, or too slow for the main job).
    """
    if (factory is None) == (checkpoint is None):
        raise ValueError(f"policy {name!r}: give exactly one of factory= and checkpoint=")
    if isinstance(env_ids, str):
        env_ids = (env_ids,)
    spec = PolicySpec(name, tuple(env_ids), summary, factory, checkpoint, in_benchmark)
    for env_id in spec.env_ids:
        _REGISTRY[(name, env_id)] = spec
    return spec


def unregister_policy(name: str) -> None:
    for key in [k for k in _REGISTRY if k[0] == name]:
        del _REGISTRY[key]


def policies_for(env_id: str, benchmark_only: bool = False) -> list[PolicySpec]:
    """Every registered policy that acts in ``env_id``, in registration order."""
    return [s for (name, e), s in _REGISTRY.items() if e == env_id and (s.in_benchmark or not benchmark_only)]


# policy files other than SB3's (.zip or a run folder): suffix -> "module:function(path, env)"
CHECKPOINT_LOADERS = {".pt": "astrogym.agents.adaptive_optics.model_based:load_policy_file"}
# RLlib run folders and checkpoint folders (agents/rllib_policy.py; Ray is imported only when one is loaded)
RLLIB_LOADER = "astrogym.agents.rllib_policy:load_policy_file"


def is_checkpoint_path(spec: str) -> bool:
    return spec.endswith(".zip") or Path(spec).suffix in CHECKPOINT_LOADERS or "/" in spec or Path(spec).is_dir()


def _own_format_run(spec: str):
    """The algorithm of a run folder whose policy files are not SB3's, else None."""
    from astrogym.agents.checkpoints import RUN_CONFIG, run_algorithm

    if not (Path(spec) / RUN_CONFIG).is_file():
        return None
    algo = run_algorithm(Path(spec) / RUN_CONFIG)  # reads the folder's config.yml; None if unreadable
    return algo if algo is not None and algo.loader is not None else None


def make_policy(spec: str, context: PolicyContext, env_id: str | None = None) -> Any:
    """Build the policy named ``spec`` (a registered name, a ``.zip`` or a run folder) for ``context.env``.

    Raises ``ValueError`` naming the policy and the names allowed for the env.
    """
    env_id = env_id or context.env.spec.id
    entry = _REGISTRY.get((spec, env_id))
    if entry is None:
        if is_checkpoint_path(spec):
            if Path(spec).suffix in CHECKPOINT_LOADERS:
                return import_path(CHECKPOINT_LOADERS[Path(spec).suffix])(spec, context.env)
            from astrogym.agents.rllib_policy import is_rllib_path

            if is_rllib_path(spec):  # a run folder or checkpoint of `astrogym train --backend rllib`
                return import_path(RLLIB_LOADER)(spec, context.env)
            own = _own_format_run(spec)
            if own is not None:  # a run folder of an algorithm with its own policy files (po4ao)
                return import_path(own.loader)(Path(spec) / f"best_model{own.suffix}", context.env)
            from astrogym.agents.checkpoints import TrainedPolicy

            return TrainedPolicy.load(spec, env=context.env)
        allowed = ", ".join(s.name for s in policies_for(env_id))
        raise ValueError(f"unknown policy {spec!r} for {env_id}; allowed: {allowed}, a .zip or .pt file or a run folder")
    if entry.checkpoint is not None:
        from astrogym.agents.checkpoints import TrainedPolicy

        return TrainedPolicy.load(PACKAGE_ROOT / entry.checkpoint, env=context.env)
    factory = import_path(entry.factory) if isinstance(entry.factory, str) else entry.factory
    return factory(context)


LOCK_IDS = ids_for("astrogym.envs.interferometer.env:InterferometerLockEnv")
AO_IDS = ids_for("astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv")
SCHEDULING_IDS = ids_for("astrogym.envs.scheduling.env:TelescopeSchedulingEnv")
NETWORK_IDS = ids_for("astrogym.envs.network.env:TelescopeNetworkEnv")


# -- factories of the built-in policies ----------------------------------------------------------------
def _zero(ctx: PolicyContext):
    from astrogym.agents.base import ZeroPolicy

    return ZeroPolicy(ctx.env.observation_space, ctx.env.action_space)


def _loop_shaping(ctx: PolicyContext):
    from astrogym.agents.interferometer.loop_shaping import LoopShapingController

    return LoopShapingController(ctx.env, **ctx.options)


def _h2(ctx: PolicyContext):
    from astrogym.agents.interferometer.h2 import H2Controller

    return H2Controller(ctx.env, **ctx.options)


# The band-gain structure of the learned lock policy with its gain fixed at -1 (no learning): the
# ablation that says how much of the learned policy's result the structure alone gives.
BAND_CUT_HZ = (6.0, 50.0)


def _band_cut(ctx: PolicyContext):
    from astrogym.agents.residual import ConstantCorrection, ResidualPolicy, ResidualSpec, build_base

    spec = ResidualSpec("baseline", 1.0, band_hz=BAND_CUT_HZ)
    return ResidualPolicy(ConstantCorrection(-1.0, ctx.env), build_base(spec, ctx.env), spec, ctx.env)


# the gains the integrator baseline is tuned over (the evaluation reports tune over the same); fine
# steps at low gain, where noisy, lagged loops (servo-lag-noise: 0.3) have their optimum
INTEGRATOR_GAINS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5)


def tuned_integrator_gain(make_env: Callable[..., gym.Env], seed: int) -> float:
    """The leaky integrator's best gain on 400 frames of a long episode of ``make_env`` with ``seed``."""
    from astrogym.agents.adaptive_optics.integrator import tune_integrator_gain

    gain, _ = tune_integrator_gain(lambda: make_env(episode_frames=10**9), gains=INTEGRATOR_GAINS, frames=400,
                                   seed=seed)
    return gain


def _tuned_gain(ctx: PolicyContext) -> float:
    if "gain" in ctx.options:
        return float(ctx.options["gain"])
    return tuned_integrator_gain(ctx.make_env, ctx.tuning_seed)


def _integrator(ctx: PolicyContext):
    from astrogym.agents.adaptive_optics.integrator import LeakyIntegrator

    return LeakyIntegrator(ctx.env, gain=_tuned_gain(ctx), leak=float(ctx.options.get("leak", 0.99)))


def _predictive(ctx: PolicyContext):
    from astrogym.agents.adaptive_optics.predictive import LinearPredictiveController

    return LinearPredictiveController(ctx.env).fit(ctx.make_env(episode_frames=10**9), seed=ctx.tuning_seed)


def _random_scheduler(ctx: PolicyContext):
    from astrogym.agents.scheduling.random import RandomValidScheduler

    return RandomValidScheduler(ctx.env, seed=int(ctx.options.get("seed", ctx.tuning_seed)))


def _greedy(ctx: PolicyContext):
    from astrogym.agents.scheduling.greedy import GreedyScheduler

    return GreedyScheduler.for_env(ctx.env, **ctx.options)


def _network_greedy(ctx: PolicyContext):
    from astrogym.agents.network.greedy import NetworkGreedy

    return NetworkGreedy.for_env(ctx.env, **ctx.options)


def _coordinated_greedy(ctx: PolicyContext):
    from astrogym.agents.network.greedy import CoordinatedGreedy

    return CoordinatedGreedy.for_env(ctx.env, **ctx.options)


def _network_lookahead(weather: str) -> Callable[[PolicyContext], Any]:
    def factory(ctx: PolicyContext):
        from astrogym.agents.network.lookahead import NetworkLookahead

        return NetworkLookahead(ctx.env, **{"weather": weather, **ctx.options})
    return factory


_network_lookahead_online = _network_lookahead("forecast")
_network_lookahead_clairvoyant = _network_lookahead("truth")


def _astroplan_per_site(ctx: PolicyContext):
    from astrogym.agents.network.astroplan import AstroplanPerSite

    return AstroplanPerSite(ctx.env, **ctx.options)


def _astroplan(kind: str) -> Callable[[PolicyContext], Any]:
    def factory(ctx: PolicyContext):
        from astrogym.agents.scheduling.astroplan import AstroplanScheduler

        return AstroplanScheduler(ctx.env, kind=kind, **ctx.options)
    return factory


_astroplan_priority = _astroplan("priority")
_astroplan_sequential = _astroplan("sequential")


def _optimum(ctx: PolicyContext):
    from astrogym.agents.scheduling.optimum import OfflineOptimum

    return OfflineOptimum(ctx.env, **{"time_limit_s": 10.0, **ctx.options})


def _lookahead(weather: str) -> Callable[[PolicyContext], Any]:
    def factory(ctx: PolicyContext):
        from astrogym.agents.scheduling.lookahead import RolloutLookahead

        return RolloutLookahead(ctx.env, **{"weather": weather, **ctx.options})
    return factory


_lookahead_online = _lookahead("forecast")
_lookahead_clairvoyant = _lookahead("truth")


def _h2_identified(ctx: PolicyContext):
    from astrogym.agents.interferometer.identified import identified_h2, identify, record

    data = record(ctx.make_env, seed=ctx.tuning_seed, **ctx.options)
    return identified_h2(ctx.env, identify(data, ctx.env.unwrapped.config))


def _po4ao(ctx: PolicyContext):
    from astrogym.agents.adaptive_optics.model_based import ModelBasedPolicy

    return ModelBasedPolicy.load(PACKAGE_ROOT / "agents/shipped/po4ao.pt", ctx.env)


def _shielded(detector: str) -> Callable[[PolicyContext], Any]:
    """A factory of the shielded policy a detector file describes (its metadata names the learned policy, the
    classical fallback and the hand-over options; ``python -m astrogym.experiments.shield fit`` writes it)."""
    def factory(ctx: PolicyContext):
        import dataclasses

        from astrogym.surrogates.shield import OODDetector, ShieldedPolicy

        det = OODDetector.load(PACKAGE_ROOT / detector)
        meta = det.metadata
        inner = dataclasses.replace(ctx, options={})  # the options given are the shield's, not its policies'
        return ShieldedPolicy(make_policy(meta["learned"], inner), make_policy(meta["fallback"], inner), det,
                              **{**meta.get("shield_options", {}), **ctx.options})
    return factory


# name, factory in this module, env ids, summary, in the benchmark
_BUILTIN = (
    ("baseline", "_loop_shaping", LOCK_IDS, "loop-shaping linear controller (boosts, leads, elliptic low-passes)", True),
    ("h2", "_h2", LOCK_IDS, "frequency-weighted H2 (LQG) controller: penalises <3 Hz pitch and 10-30 Hz control", True),
    ("h2-identified", "_h2_identified", LOCK_IDS,
     "H2 synthesised on a plant identified from loop shaping's closed-loop data (training seed), not the truth",
     True),
    ("baseline-bandcut", "_band_cut", LOCK_IDS,
     "ablation: loop shaping with its 6-50 Hz command cut (the temporal policy's band gain fixed at -1)", True),
    ("zero", "_zero", LOCK_IDS + AO_IDS, "open loop: always commands zero", True),
    ("baseline", "_integrator", AO_IDS, "alias of 'integrator'", False),
    ("integrator", "_integrator", AO_IDS, "leaky integrator, gain tuned on a training seed", True),
    ("predictive", "_predictive", AO_IDS, "ridge least-squares spatio-temporal predictor, fitted on a training seed",
     True),
    ("random", "_random_scheduler", SCHEDULING_IDS, "uniform over the allowed actions (waiting included)", True),
    ("baseline", "_greedy", SCHEDULING_IDS, "alias of 'greedy'", False),
    ("greedy", "_greedy", SCHEDULING_IDS, "priority per second needed to complete a visit now", True),
    ("astroplan-priority", "_astroplan_priority", SCHEDULING_IDS, "astroplan PriorityScheduler plan, replayed", True),
    ("astroplan-sequential", "_astroplan_sequential", SCHEDULING_IDS,
     "astroplan SequentialScheduler plan, replayed (~2 s per decision)", False),
    ("lookahead", "_lookahead_online", SCHEDULING_IDS,
     "greedy rollouts of the top candidates in a copy of the env on a forecast from the weather so far", True),
    ("lookahead-clairvoyant", "_lookahead_clairvoyant", SCHEDULING_IDS,
     "the same rollouts with the night's true weather (a clairvoyant reference)", True),
    ("optimum", "_optimum", SCHEDULING_IDS,
     "offline search over action sequences with the night's weather known (warm starts, LNS), replayed", True),
)
_BUILTIN += (
    ("random", "_random_scheduler", NETWORK_IDS, "uniform over the deciding telescope's allowed actions", True),
    ("baseline", "_coordinated_greedy", NETWORK_IDS, "alias of 'coordinated-greedy'", False),
    ("greedy", "_network_greedy", NETWORK_IDS, "each free telescope takes its own greedy-best target, blind to the "
     "others", True),
    ("coordinated-greedy", "_coordinated_greedy", NETWORK_IDS, "greedy that skips targets in flight elsewhere and "
     "defers to a better-placed telescope about to be free", True),
    ("lookahead", "_network_lookahead_online", NETWORK_IDS, "coordinated-greedy rollouts of the whole network for "
     "the top candidates, weather and ToOs known only so far (expected-weather forecast; `evaluate` only: ~50 s "
     "per small night)", False),
    ("lookahead-clairvoyant", "_network_lookahead_clairvoyant", NETWORK_IDS, "the same rollouts with the true "
     "weather and ToOs (a clairvoyant reference; `evaluate` only: the optimum covers it in the main job)", False),
    ("optimum", "_optimum", NETWORK_IDS, "offline search over action sequences with every site's weather and the "
     "ToOs known (warm starts from the greedies and lookaheads, then LNS), replayed", True),
    ("astroplan-per-site", "_astroplan_per_site", NETWORK_IDS, "each telescope replays its own site's astroplan "
     "PriorityScheduler plan (sites unaware of each other), interrupted for ToOs", True),
)
for _name, _factory, _ids, _summary, _bench in _BUILTIN:
    register_policy(_name, f"{__name__}:{_factory}", env_ids=_ids, summary=_summary, in_benchmark=_bench)
register_policy("gnn", "astrogym.agents.scheduling.gnn:shipped_policy", env_ids=SCHEDULING_IDS,
                summary="GNN (GINE, greedy prior) trained with MaskablePPO, shipped (agents/shipped/gnn.zip)")
register_policy("gnn", "astrogym.agents.network.gnn:shipped_policy", env_ids=NETWORK_IDS,
                summary="network GNN (GINE, coordinated-greedy prior) trained with MaskablePPO, shipped "
                        "(agents/shipped/network_gnn.zip)")

# Shipped trained policies (agents/shipped/NAME.yml records the `astrogym train` command behind each).
register_policy("cnn", checkpoint="agents/shipped/cnn.zip", env_ids=("astrogym/AdaptiveOpticsSmall-v0",),
                summary="fully convolutional PPO correction over the tuned integrator, trained on servo-lag-noise")
register_policy("temporal", checkpoint="agents/shipped/temporal.zip", env_ids=LOCK_IDS,
                summary="dilated causal conv PPO policy: state-dependent gain on loop shaping's 6-50 Hz command")
register_policy("po4ao", f"{__name__}:_po4ao", env_ids=("astrogym/AdaptiveOpticsSmall-v0",),
                summary="model-based (PO4AO-style): CNN correction over the integrator trained through a learned "
                        "ensemble, 10k real frames of servo-lag-noise (agents/shipped/po4ao.pt)")
# Shields (agents/shipped/NAME.shield.pt: a flow fitted on normal operation, `python -m astrogym.experiments.shield`)
register_policy("temporal-shielded", _shielded("agents/shipped/temporal.shield.pt"), env_ids=LOCK_IDS,
                summary="temporal, handing control to h2 while a flow flags the state out of distribution")
register_policy("cnn-shielded", _shielded("agents/shipped/cnn.shield.pt"), env_ids=("astrogym/AdaptiveOpticsSmall-v0",),
                summary="cnn, handing control to the integrator while a flow flags the state out of distribution")
