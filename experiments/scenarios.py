"""Named, versioned evaluation scenarios, shipped as YAML in ``experiments/data/scenarios/``.

A scenario fixes everything an evaluation depends on: the env's configuration, reset options, the
seeds training may use and the held-out seeds evaluation uses. Layout of a file (one per domain)::

    astrogym/InterferometerLock-v0:        # env id
      default:                             # scenario name
        version: 1                         # bump when anything below changes the numbers
        summary: one line for `astrogym list --scenarios`
        env_kwargs: {episode_length_s: 20.0}
        fault: {}                          # env fields of an injected fault (below), e.g. {fault: seismic_burst}
        reset_options: {}                  # passed to every reset
        train_seeds: [0, 999999]           # inclusive range: training and tuning seeds
        eval_seeds: {first: 1000000, count: 20}
        quick_episodes: 3                  # episodes under --quick
        policy_options: {optimum: {time_limit_s: 20}}
        skip_in_benchmark: {astroplan-priority: "55 s per night at 200 targets"}   # policy: why
        in_benchmark: true                 # false: robustness/stress scenarios, `astrogym evaluate` only

A fault is not known in advance: ``fault`` is merged into ``env_kwargs`` for the episodes that are
scored, but the env builder policies are given for tuning (``PolicyContext.make_env``: the integrator's
gain, the predictor's fit) leaves it out, so no baseline is tuned on faulted data.

The split is the same everywhere unless a file says otherwise: training draws from
``[0, 999999]``, evaluation uses ``1000000, 1000001, ...``, so no evaluation episode is ever
trained or tuned on. Baselines that tune (integrator gain, predictor fit) use the first training seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from astrogym.experiments.hyperparams import yaml_problem

TRAIN_SEEDS = (0, 999_999)
FIRST_EVAL_SEED = 1_000_000
VALIDATION_SEEDS = 100  # the top of each training range: model selection during training, never trained on
_KEYS = {"version", "summary", "env_kwargs", "fault", "reset_options", "train_seeds", "eval_seeds", "quick_episodes",
         "policy_options", "skip_in_benchmark", "in_benchmark"}


@dataclass(frozen=True)
class Scenario:
    """One evaluation scenario of one env (see the module docstring for the fields)."""

    env_id: str
    name: str
    version: int
    summary: str
    env_kwargs: dict = field(default_factory=dict)
    fault: dict = field(default_factory=dict)  # merged into env_kwargs for scored episodes only (not for tuning)
    reset_options: dict = field(default_factory=dict)
    train_seeds: tuple[int, int] = TRAIN_SEEDS
    eval_seeds: tuple[int, ...] = tuple(range(FIRST_EVAL_SEED, FIRST_EVAL_SEED + 10))
    quick_episodes: int = 2
    policy_options: dict = field(default_factory=dict)
    skip_in_benchmark: dict = field(default_factory=dict)  # policy name -> why the main job leaves it out
    in_benchmark: bool = True  # False: a stress or robustness scenario, run by `astrogym evaluate --scenario` only

    @property
    def played_env_kwargs(self) -> dict:
        """What the scored episodes' env is built with: ``env_kwargs`` with the fault, if any."""
        return {**self.env_kwargs, **self.fault}

    def make_env(self, **overrides):
        """The env scored episodes run in (with the fault, if any); ``overrides`` replace fields."""
        import gymnasium as gym

        return gym.make(self.env_id, **{**self.played_env_kwargs, **overrides})

    def make_tuning_env(self, **overrides):
        """The env policies tune in (``PolicyContext.make_env``): the scenario without its fault."""
        import gymnasium as gym

        return gym.make(self.env_id, **{**self.env_kwargs, **overrides})

    @property
    def tuning_seed(self) -> int:
        return self.train_seeds[0]

    @property
    def label(self) -> str:
        return f"{self.name} (v{self.version})"

    def seeds(self, episodes: int | None = None, quick: bool = False) -> tuple[int, ...]:
        n = self.quick_episodes if quick and episodes is None else episodes
        if n is None:
            return self.eval_seeds
        if not 1 <= n <= len(self.eval_seeds):
            raise ValueError(f"episodes={n} is out of range for scenario {self.name!r}; allowed [1, "
                             f"{len(self.eval_seeds)}] (its evaluation seeds)")
        return self.eval_seeds[:n]

    def validation_seeds(self, episodes: int) -> tuple[int, ...]:
        """Seeds for model selection during training: the top of the training range, never trained on.

        Picking ``best_model.zip`` on the evaluation seeds and then reporting on them would tune on
        the evaluation seeds; these come from the training range instead (the last
        ``VALIDATION_SEEDS`` of it, which :meth:`check_training_seeds` keeps training envs off).
        """
        lo, hi = self.train_seeds
        if not 1 <= episodes <= min(VALIDATION_SEEDS, hi - lo + 1):
            raise ValueError(f"eval episodes={episodes} is out of range; allowed [1, "
                             f"{min(VALIDATION_SEEDS, hi - lo + 1)}] (validation seeds of scenario {self.name!r})")
        return tuple(range(hi - episodes + 1, hi + 1))

    def check_training_seeds(self, seed: int, n_envs: int) -> None:
        """Training envs get ``seed .. seed + n_envs - 1``: all must lie in the training range, below its validation seeds."""
        lo, hi = self.train_seeds
        if hi - lo + 1 > 2 * VALIDATION_SEEDS:
            hi -= VALIDATION_SEEDS
        if not (lo <= seed and seed + n_envs - 1 <= hi):
            raise ValueError(f"--seed {seed} with {n_envs} envs uses seeds {seed}-{seed + n_envs - 1}, outside "
                             f"scenario {self.name!r}'s training range [{lo}, {hi}] (its evaluation seeds start at "
                             f"{self.eval_seeds[0]})")


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where} must be an integer, got {value!r}")
    return value


def parse_scenario(env_id: str, name: str, raw: dict, source: str = "scenario file") -> Scenario:
    """Validate one scenario entry; errors name the file, the scenario and the field."""
    where = f"{source}: {env_id} scenario {name!r}"
    if not isinstance(raw, dict):
        raise TypeError(f"{where} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed {sorted(_KEYS)}")
    for key in ("env_kwargs", "fault", "reset_options", "policy_options", "skip_in_benchmark"):
        if not isinstance(raw.get(key, {}), dict):
            raise TypeError(f"{where}: {key} must be a mapping, got {raw[key]!r}")
    train = raw.get("train_seeds", list(TRAIN_SEEDS))
    if not (isinstance(train, list) and len(train) == 2):
        raise TypeError(f"{where}: train_seeds must be [first, last], got {train!r}")
    train = (_int(train[0], f"{where}: train_seeds[0]"), _int(train[1], f"{where}: train_seeds[1]"))
    ev = raw.get("eval_seeds", {"first": FIRST_EVAL_SEED, "count": 10})
    if isinstance(ev, dict):
        if set(ev) != {"first", "count"}:
            raise ValueError(f"{where}: eval_seeds needs exactly 'first' and 'count', got {sorted(ev)}")
        first, count = _int(ev["first"], f"{where}: eval_seeds.first"), _int(ev["count"], f"{where}: eval_seeds.count")
        if count < 1:
            raise ValueError(f"{where}: eval_seeds.count={count}; allowed >= 1")
        eval_seeds = tuple(range(first, first + count))
    elif isinstance(ev, list) and ev:
        eval_seeds = tuple(_int(s, f"{where}: eval_seeds[]") for s in ev)
    else:
        raise TypeError(f"{where}: eval_seeds must be {{first, count}} or a list of seeds, got {ev!r}")
    overlap = [s for s in eval_seeds if train[0] <= s <= train[1]]
    if overlap:
        raise ValueError(f"{where}: evaluation seeds {overlap[:3]} lie inside the training range {list(train)}")
    return Scenario(env_id=env_id, name=name, version=_int(raw.get("version", 1), f"{where}: version"),
                    summary=str(raw.get("summary", "")), env_kwargs=dict(raw.get("env_kwargs", {})),
                    fault=dict(raw.get("fault", {})),
                    reset_options=dict(raw.get("reset_options", {})), train_seeds=train, eval_seeds=eval_seeds,
                    quick_episodes=_int(raw.get("quick_episodes", 2), f"{where}: quick_episodes"),
                    policy_options=dict(raw.get("policy_options", {})),
                    skip_in_benchmark={str(k): str(v) for k, v in raw.get("skip_in_benchmark", {}).items()},
                    in_benchmark=_bool(raw.get("in_benchmark", True), f"{where}: in_benchmark"))


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{where} must be true or false, got {value!r}")
    return value


def load_scenario_file(path: str | Path) -> dict[str, dict[str, Scenario]]:
    """``{env_id: {name: Scenario}}`` from one YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"scenario file {path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"scenario file {path}: must map env ids to scenarios")
    return {env_id: {name: parse_scenario(env_id, name, raw, str(path)) for name, raw in entries.items()}
            for env_id, entries in data.items()}


_EXTRA: dict[str, dict[str, Scenario]] = {}


@functools.lru_cache(maxsize=1)
def _shipped() -> dict[str, dict[str, Scenario]]:
    out: dict[str, dict[str, Scenario]] = {}
    folder = resources.files("astrogym.experiments") / "data" / "scenarios"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yml"):
            for env_id, entries in load_scenario_file(Path(str(item))).items():
                out.setdefault(env_id, {}).update(entries)
    return out


def register_scenario(scenario: Scenario) -> None:
    """Add a scenario at run time (an env registered outside the package, a test)."""
    _EXTRA.setdefault(scenario.env_id, {})[scenario.name] = scenario


def scenarios_for(env_id: str) -> dict[str, Scenario]:
    """Every scenario of ``env_id``; an env without any gets ``default`` (its own defaults, 10 episodes)."""
    found = {**_shipped().get(env_id, {}), **_EXTRA.get(env_id, {})}
    return found or {"default": Scenario(env_id, "default", 1, "the env's defaults")}


def get_scenario(env_id: str, name: str) -> Scenario:
    known = scenarios_for(env_id)
    if name not in known:
        raise ValueError(f"unknown scenario {name!r} for {env_id}; allowed: {', '.join(known)}")
    return known[name]
