"""The shipped OOD shields: fit each detector on normal operation, and measure it under the injected faults.

A :class:`ShieldSetup` per shielded policy says which learned policy, which classical fallback,
which features and which scenarios. Two commands::

    python -m astrogym.experiments.shield fit temporal     # -> agents/shipped/temporal.shield.pt
    python -m astrogym.experiments.shield report temporal  # false alarms and detection, Markdown

``fit`` plays the learned policy *and* the fallback on the normal scenario's *training* seeds: the
features of the first ``fit_episodes`` seeds fit the flow, those of the next ``fit_episodes`` (other
seeds) calibrate its threshold to ``rate``. Both controllers, because the shield asks whether the
*plant* is in normal conditions, and normal conditions occur under either: a detector fitted on the
learned policy alone flags the fallback's own signature (h2 commands far less 10-30 Hz torque than
loop shaping), so once in control the fallback would never hand back. Observations are taken at
the shield's ``check_every`` cadence from ``arm_after`` decisions on: what the shield scores. ``report`` plays on the
*evaluation* seeds: the false-alarm rate per check in normal operation under each of the two
controllers alone (calibrated to ``rate``), then the shielded policy in normal operation and in each
fault scenario: the alarm rate before the fault, inside its window and after it, the share of
decisions the fallback made, and how many decisions after the fault's start the fallback was in
control (0 when it already was). What the shield does for the loop itself is in ``astrogym
benchmark``: the ``*-shielded`` rows of the fault scenarios.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from astrogym.agents.registry import PACKAGE_ROOT
from astrogym.experiments.evaluation import scenario_policy
from astrogym.experiments.scenarios import Scenario, get_scenario

LOCK = "astrogym/InterferometerLock-v0"
AO_SMALL = "astrogym/AdaptiveOpticsSmall-v0"


@dataclass(frozen=True)
class ShieldSetup:
    """One shielded policy: what it shields, with what, and on which scenarios it is fitted and measured."""

    name: str  # registered as f"{name}-shielded"
    env_id: str
    scenario: str  # normal operation: fitted on its training seeds
    learned: str
    fallback: str
    features: str  # a name in astrogym.surrogates.shield.FEATURES
    fault_scenarios: tuple[str, ...]
    shield_options: dict = field(default_factory=dict)  # ShieldedPolicy's enter_after, release_after, check_every
    flow_kwargs: dict = field(default_factory=lambda: {"transforms": 2, "hidden": (32, 32)})
    fit_episodes: int = 6
    rate: float = 0.01

    @property
    def detector_file(self):
        return PACKAGE_ROOT / "agents" / "shipped" / f"{self.name}.shield.pt"

    @property
    def check_every(self) -> int:
        return int(self.shield_options.get("check_every", 1))

    @property
    def arm_after(self) -> int:
        return int(self.shield_options.get("arm_after", 0))

    def armed(self, observations: list, steps: np.ndarray) -> list:
        """The observations the shield scores: from ``arm_after`` decisions into each episode on."""
        return [o for o, k in zip(observations, steps) if k >= self.arm_after]


SETUPS = {
    # h2 keeps lock through seismic bursts that loop shaping (the temporal policy's base) loses it in
    # (measured on training seeds): the fallback is the classical controller that is robust to them
    "temporal": ShieldSetup("temporal", LOCK, "power-seismic-range", "temporal", "h2", "lock",
                            ("power-seismic-range-burst", "power-seismic-range-glitch"),
                            {"enter_after": 2, "release_after": 64, "check_every": 8, "arm_after": 512},
                            # arm power and seismic level are drawn per episode: many episodes, not many
                            # observations per episode, make the threshold hold on new seeds
                            fit_episodes=24),
    "cnn": ShieldSetup("cnn", AO_SMALL, "servo-lag-noise", "cnn", "integrator", "ao",
                       ("servo-lag-noise-wind-burst", "servo-lag-noise-stuck-actuator",
                        "servo-lag-noise-dead-subapertures"),
                       {"enter_after": 2, "release_after": 50, "check_every": 4, "arm_after": 50}, fit_episodes=8),
}


def _policy(name: str, env: gym.Env, scenario: Scenario):
    return scenario_policy(name, scenario, env, scenario.policy_options.get(name))


def play(scenario: Scenario, policy, env: gym.Env, seeds, every: int = 1):
    """Observations of ``policy`` every ``every`` decisions over episodes of ``seeds``, with each one's step
    index, whether the env's fault acted on it and whether a shield's fallback was in control after it.
    Returns ``(observations, steps, faulted, shielded)``."""
    observations, steps, faulted, shielded = [], [], [], []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed), options=dict(scenario.reset_options) or None)
        if hasattr(policy, "reset"):
            policy.reset()
        k, done = 0, False
        while not done:
            active = bool(env.unwrapped.fault_active)
            action, _ = policy.predict(obs, episode_start=np.array([k == 0]), deterministic=True)
            if k % every == 0:
                observations.append(obs)
                steps.append(k)
                faulted.append(active)
                shielded.append(bool(getattr(policy, "shielded", False)))
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            k += 1
    return observations, np.asarray(steps), np.asarray(faulted), np.asarray(shielded)


def fit(setup: ShieldSetup, seed: int = 0):
    """Fit and calibrate the setup's detector on normal operation (training seeds); write its file."""
    from astrogym.surrogates.shield import OODDetector

    scenario = get_scenario(setup.env_id, setup.scenario)
    env = scenario.make_env()
    first = scenario.train_seeds[0] + 1000  # clear of the tuning seed; far below the validation seeds
    fit_seeds = range(first, first + setup.fit_episodes)
    cal_seeds = range(first + setup.fit_episodes, first + 2 * setup.fit_episodes)
    fit_obs, cal_obs = [], []
    for name in (setup.learned, setup.fallback):
        policy = _policy(name, env, scenario)
        fit_obs += setup.armed(*play(scenario, policy, env, fit_seeds, setup.check_every)[:2])
        cal_obs += setup.armed(*play(scenario, policy, env, cal_seeds, setup.check_every)[:2])
    detector = OODDetector(setup.features, **setup.flow_kwargs).fit(fit_obs, epochs=60, seed=seed)
    detector.calibrate(cal_obs, setup.rate)
    command = f"python -m astrogym.experiments.shield fit {setup.name}"
    # the file carries what the registry needs to rebuild the shielded policy (agents/registry.py: _shielded)
    path = detector.save(setup.detector_file, command=command, env_id=setup.env_id, scenario=scenario.label,
                         learned=setup.learned, fallback=setup.fallback, shield_options=setup.shield_options,
                         fit_seeds=[fit_seeds[0], fit_seeds[-1]],
                         calibration_seeds=[cal_seeds[0], cal_seeds[-1]], observations=[len(fit_obs), len(cal_obs)])
    print(f"{path}: threshold {detector.threshold:.3f} at a {setup.rate:.0%} false-alarm rate "
          f"({len(fit_obs)} fitting and {len(cal_obs)} calibration observations)")
    return detector


def report(setup: ShieldSetup, episodes: int | None = None) -> str:
    """Markdown: the shielded policy's alarms and hand-overs on the evaluation seeds, normal and faulted."""
    from astrogym.surrogates.shield import OODDetector

    detector = OODDetector.load(setup.detector_file)
    normal = get_scenario(setup.env_id, setup.scenario)
    env = normal.make_env()
    alone = []
    for name in (setup.learned, setup.fallback):
        obs = setup.armed(*play(normal, _policy(name, env, normal), env, normal.seeds(episodes), setup.check_every)[:2])
        alone.append(f"{name} {np.mean(detector.score(obs) < detector.threshold):.1%}")
    lines = [f"Shield `{setup.name}-shielded` ({setup.learned} -> {setup.fallback}, features `{setup.features}`, "
             f"checks every {setup.check_every} decisions, threshold calibrated to {setup.rate:.0%} on training "
             f"seeds); held-out evaluation seeds. False alarms in normal operation ({normal.label}) under each "
             f"controller alone: {', '.join(alone)}.\n",
             "| scenario | episodes | alarms before the fault | in its window | after it | decisions by the fallback | "
             "fallback in control after the fault starts [decisions] |", "|---|---|---|---|---|---|---|"]
    for name in (setup.scenario,) + setup.fault_scenarios:
        scenario = get_scenario(setup.env_id, name)
        seeds = scenario.seeds(episodes)
        env = scenario.make_env()
        shield = _policy(f"{setup.name}-shielded", env, scenario)
        obs, steps, faulted, shielded = play(scenario, shield, env, seeds, setup.check_every)
        alarm = detector.score(obs) < detector.threshold
        episode = np.cumsum(steps == 0) - 1
        first = np.full(len(seeds), -1)  # each episode's first faulted check (-1: the fault never acted)
        for i in np.flatnonzero(faulted)[::-1]:
            first[episode[i]] = i
        start = np.where(first >= 0, steps[first], -1)  # its step
        delays = []
        for e in np.flatnonzero(first >= 0):  # the first check from the fault's start with the fallback in control
            late = np.flatnonzero((episode == e) & (np.arange(steps.size) >= first[e]) & shielded)
            delays.append(steps[late[0]] - start[e] if late.size else np.nan)
        armed = steps >= setup.arm_after
        before = armed & ~faulted & ((start[episode] < 0) | (steps < start[episode]))
        after = armed & ~faulted & (start[episode] >= 0) & (steps > start[episode])
        rate = lambda m: f"{alarm[m].mean():.1%}" if m.any() else "-"  # noqa: E731
        delay = "-" if not delays else (f"median {np.nanmedian(delays):.0f}, in {np.sum(np.isfinite(delays))}/"
                                        f"{len(delays)} episodes" if np.isfinite(delays).any() else "never")
        lines.append(f"| {scenario.label} | {len(seeds)} | {rate(before)} | {rate(faulted)} | {rate(after)} | "
                     f"{shield.fallback_steps / max(shield.steps, 1):.1%} | {delay} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m astrogym.experiments.shield", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("fit", "report"))
    p.add_argument("setups", nargs="*", default=list(SETUPS), help=f"any of {', '.join(SETUPS)} (default: all)")
    p.add_argument("--episodes", type=int, default=None, help="report: evaluation episodes per scenario")
    p.add_argument("--json", default=None, help="report: also write the tables to this JSON file")
    args = p.parse_args(argv)
    unknown = [s for s in args.setups if s not in SETUPS]
    if unknown:
        p.error(f"unknown shield(s) {unknown}; allowed: {', '.join(SETUPS)}")
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    tables = {}
    for name in args.setups:
        if args.command == "fit":
            fit(SETUPS[name])
        else:
            tables[name] = report(SETUPS[name], args.episodes)
            print(tables[name], flush=True)
    if args.json and tables:
        from astrogym.agents.checkpoints import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(tables, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
