"""Rollout lookahead over the env's own compiled step: greedy as the base policy, exact simulation.

:class:`RolloutLookahead` decides each step by simulating: it keeps a copy of the env
(``copy.deepcopy(env.unwrapped)``, made once per episode), puts it in the real env's state
(:meth:`~astrogym.envs.scheduling.env.TelescopeSchedulingEnv.snapshot` /
:meth:`~astrogym.envs.scheduling.env.TelescopeSchedulingEnv.restore`), and for each candidate action
(the ``n_candidates`` best targets by :class:`~astrogym.agents.scheduling.greedy.GreedyScheduler`'s
score, greedy's own choice among them, plus waiting) plays the candidate, then greedy until
``horizon_s`` past now (or the end of the episode), and takes the candidate whose simulated return is
highest (greedy's choice on ties, and unless another beats it by ``margin``). This is the rollout
algorithm of approximate dynamic programming (Bertsekas' "pilot" method) with a truncated horizon.
Steps where only waiting is allowed are not simulated.

What the simulation copy knows of the weather is the one difference between the two uses:

* ``weather="forecast"`` (the registered ``lookahead`` policy, non-clairvoyant): before each decision the
  copy's weather is replaced (:meth:`set_weather`) by a forecast made from the weather up to the grid
  point at or before now: by default the conditional expectation under the env's own stochastic
  weather model (:func:`expected_forecast`: seeing relaxing to the median, cloud extinction averaged
  over the cloud chain's transition probabilities), or persistence (:func:`persistence_forecast`: the
  conditions now held for the rest of the episode). It never reads a later grid point, so it is an
  online scheduler.
* ``weather="truth"`` (``lookahead-clairvoyant``): the copy keeps the episode's true weather, a
  clairvoyant reference that scales to hundreds of targets (the offline optimum starts its search from
  its action sequence).

Cost: one decision with a choice plays ``(n_candidates + 1) x`` the steps in ``horizon_s``
(about 150-250 us each); measured per night in ``experiments/evaluate_scheduling.py``'s table.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from astrogym.agents.base import Policy, one_observation
from astrogym.agents.scheduling.greedy import GreedyScheduler
from astrogym.envs.scheduling.weather import StochasticWeather, WeatherTrack

WEATHER_MODES = ("forecast", "truth")
FORECASTS = ("expected", "persistence")


def persistence_forecast(tracks: list[WeatherTrack], night: int, time_s: float, grid_s: float) -> list[WeatherTrack]:
    """The episode's weather known up to the grid point at or before ``time_s`` of ``night``, and that point's
    seeing and cloud state held from there to the end of the episode (earlier nights as they were)."""
    k0 = max(int(np.floor(time_s / grid_s)), 0)
    now = tracks[night]
    k0 = min(k0, now.seeing_arcsec.size - 1)
    seeing, state, tau = now.seeing_arcsec[k0], now.cloud_state[k0], now.cloud_tau[k0]
    out = list(tracks[:night])
    for j in range(night, len(tracks)):
        w = tracks[j]
        s, c, t = (np.full_like(w.seeing_arcsec, seeing), np.full_like(w.cloud_state, state),
                   np.full_like(w.cloud_tau, tau))
        if j == night:
            s[:k0 + 1], c[:k0 + 1], t[:k0 + 1] = w.seeing_arcsec[:k0 + 1], w.cloud_state[:k0 + 1], w.cloud_tau[:k0 + 1]
        out.append(WeatherTrack(seeing_arcsec=s, cloud_state=c, cloud_tau=t))
    return out


def expected_forecast(model, site, tracks: list[WeatherTrack], night: int, time_s: float, grid_s: float,
                      times_s: list[np.ndarray]) -> list[WeatherTrack]:
    """The conditional expectation of a :class:`~astrogym.envs.scheduling.weather.StochasticWeather` future given
    the weather at the grid point at or before ``time_s`` (earlier points as they were): log seeing relaxes to the
    median with the model's correlation time (the Ornstein-Uhlenbeck conditional mean), and the cloud
    extinction is the one whose SNR^2 factor ``10^(-0.88 tau)`` (the depth's ``-1.1 tau``) is the expected
    one under the chain's transition probabilities from the state now; the cloud state is the most likely one.
    ``times_s`` are the nights' grids."""
    k0 = min(max(int(np.floor(time_s / grid_s)), 0), tracks[night].seeing_arcsec.size - 1)
    now = tracks[night]
    median = site.median_seeing_arcsec if model.median_seeing_arcsec is None else model.median_seeing_arcsec
    log0 = np.log(now.seeing_arcsec[k0] / median)
    pi = model.stationary(site)
    rate = 1.0 / (model.cloud_mean_duration_s * max(pi[0], 1e-9))
    taus = np.array([0.0, model.thin_tau, model.thick_tau])
    state0 = int(now.cloud_state[k0])
    t_now = times_s[night][k0]
    offset = 0.0
    out = list(tracks[:night])
    for j in range(night, len(tracks)):
        w, times = tracks[j], times_s[j]
        dt = np.maximum(times - t_now + offset, 0.0) if j == night else times + offset
        seeing = median * np.exp(log0 * np.exp(-dt / model.seeing_tau_s))
        decay = np.exp(-rate * dt)[:, None]
        p = decay * np.eye(3)[state0][None, :] + (1.0 - decay) * pi[None, :]
        tau = -np.log10(p @ 10.0 ** (-0.88 * taus)) / 0.88
        state = np.argmax(p, axis=1).astype(np.int8)
        if j == night:
            seeing[:k0 + 1], state[:k0 + 1], tau[:k0 + 1] = (w.seeing_arcsec[:k0 + 1], w.cloud_state[:k0 + 1],
                                                             w.cloud_tau[:k0 + 1])
        out.append(WeatherTrack(seeing_arcsec=seeing, cloud_state=state, cloud_tau=np.maximum(tau, 0.0)))
        offset += 12 * 3600.0  # later nights: far enough that the expectation is the climatology
    return out


def greedy_candidates(greedy, observation, k: int) -> list[int]:
    """Greedy's choice first, then the next ``k - 1`` best-scored targets, then waiting (if not already in).

    ``greedy`` is any greedy with ``scores`` and ``wait_action`` (the network's read the whole observation);
    ``observation`` one observation dict (or, for the single-site greedy, its ``nodes``)."""
    if isinstance(observation, dict) and isinstance(greedy, GreedyScheduler):
        observation = np.asarray(observation["nodes"], np.float64)
    score = greedy.scores(observation)
    order = np.argsort(-score, kind="stable")
    out = [int(i) for i in order[:k] if np.isfinite(score[i])]
    if greedy.wait_action not in out:
        out.append(greedy.wait_action)
    return out


def greedy_rollout(sim, greedy: GreedyScheduler, obs: dict, until_s: tuple[int, float]) -> tuple[float, dict, bool]:
    """Play greedy in ``sim`` from ``obs`` until its (night, time) reaches ``until_s`` or the episode ends;
    returns (return, last observation, terminated)."""
    total = 0.0
    while True:
        st = sim.state
        if (st["night"], st["time_s"]) >= until_s:
            return total, obs, False
        a, _ = greedy.predict(obs)
        obs, r, terminated, _, _ = sim.step(int(a))
        total += r
        if terminated:
            return total, obs, True


def check_lookahead_options(n_candidates, horizon_s, weather: str, margin) -> float:
    """Validate a rollout lookahead's options (``ValueError`` naming the field); returns the margin (None: 0.05 on
    a forecast, 0 on the true weather)."""
    if not isinstance(n_candidates, (int, np.integer)) or n_candidates < 1:
        raise ValueError(f"n_candidates={n_candidates!r} must be an integer >= 1")
    if horizon_s is not None and not (np.isfinite(horizon_s) and horizon_s > 0):
        raise ValueError(f"horizon_s={horizon_s!r} must be a finite number > 0 (or None: to the end)")
    if weather not in WEATHER_MODES:
        raise ValueError(f"weather={weather!r} is not allowed; choose one of {', '.join(WEATHER_MODES)}")
    if margin is None:
        margin = 0.05 if weather == "forecast" else 0.0
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin={margin!r} must be a finite number >= 0")
    return float(margin)


class RolloutLookahead(Policy):
    """Simulate each candidate action with greedy rollouts in a copy of the env; act on the best (module docstring).

    Parameters
    ----------
    env: a ``TelescopeScheduling-v0`` env (wrapped or not); the policy reads ``env.unwrapped``.
    n_candidates: targets tried per decision (greedy's top ones), waiting besides.
    horizon_s: how far past now each rollout runs (None: to the end of the episode).
    weather: ``"forecast"`` (from the weather so far: online) or ``"truth"`` (clairvoyant).
    forecast: with ``weather="forecast"``: ``"expected"`` (the conditional expectation under the env's
        :class:`~astrogym.envs.scheduling.weather.StochasticWeather` model, :func:`expected_forecast`; persistence
        for other weather models) or ``"persistence"`` (:func:`persistence_forecast`).
    margin: another candidate replaces greedy's choice only if its simulated return is higher by more than this
        fraction, a hedge against the forecast's errors (None: 0.05 on a forecast, 0 on the true weather;
        measured on the default and oversubscribed nights, 0.05 beat 0 and 0.02 online).
    greedy_options: keyword arguments of the :class:`GreedyScheduler` used to rank and to roll out.

    Attributes
    ----------
    decisions, simulated: decisions taken this episode, and how many of them had a choice to simulate.

    Raises
    ------
    TypeError: ``env`` is not a TelescopeScheduling env.
    ValueError: a parameter out of range.
    """

    def __init__(self, env, n_candidates: int = 4, horizon_s: float | None = 7200.0, weather: str = "forecast",
                 greedy_options: dict | None = None, forecast: str = "expected", margin: float | None = None):
        u = getattr(env, "unwrapped", env)
        if not all(hasattr(u, a) for a in ("snapshot", "restore", "set_weather", "wait_action")):
            raise TypeError(f"env must be an astrogym/TelescopeScheduling-v0 env, got {type(u).__name__}")
        self.margin = check_lookahead_options(n_candidates, horizon_s, weather, margin)
        if forecast not in FORECASTS:
            raise ValueError(f"forecast={forecast!r} is not allowed; choose one of {', '.join(FORECASTS)}")
        self.forecast = forecast
        self.env = env
        self.n_candidates = int(n_candidates)
        self.horizon_s = None if horizon_s is None else float(horizon_s)
        self.weather = weather
        self.greedy = GreedyScheduler.for_env(env, **(greedy_options or {}))
        self._sim = None
        self._nights_ref = None
        self.decisions = self.simulated = 0

    def reset(self) -> None:
        """Forget the episode (the next :meth:`predict` copies the env again)."""
        self._sim = None
        self._nights_ref = None

    def _simulator(self, u):
        if self._sim is None or self._nights_ref is not u.nights:
            self._sim = copy.deepcopy(u)
            self._nights_ref = u.nights
            self.decisions = self.simulated = 0
        return self._sim

    def _forecast(self, u, st: dict) -> list[WeatherTrack]:
        if self.forecast == "expected" and isinstance(u.weather_model, StochasticWeather):
            return expected_forecast(u.weather_model, u.site, u.weather_tracks, st["night"], st["time_s"],
                                     u.config.grid_s, [night.table.times_s for night in u.nights])
        return persistence_forecast(u.weather_tracks, st["night"], st["time_s"], u.config.grid_s)

    def choose(self, u, nodes: np.ndarray) -> int:
        """The action for the env ``u`` (unwrapped) in its current state; ``nodes`` its observation's nodes."""
        self.decisions += 1
        mask = u.action_masks()
        cands = [a for a in greedy_candidates(self.greedy, nodes, self.n_candidates) if mask[a]]
        if len(cands) <= 1:
            return cands[0] if cands else u.wait_action
        self.simulated += 1
        sim = self._simulator(u)
        snap = u.snapshot()
        st = u.state
        if self.weather == "forecast":
            sim.set_weather(self._forecast(u, st))
        until = (st["night"], st["time_s"] + self.horizon_s) if self.horizon_s is not None else (10**9, 0.0)
        best, best_value, threshold = cands[0], -np.inf, np.inf
        for a in cands:
            sim.restore(snap)
            obs, r, terminated, _, _ = sim.step(int(a))
            value = r
            if not terminated:
                more, _, _ = greedy_rollout(sim, self.greedy, obs, until)
                value += more
            if a == cands[0]:  # greedy's choice: the others must beat it by the margin
                best_value, threshold = value, value + self.margin * abs(value) + 1e-12
            elif value > max(threshold, best_value + 1e-12):
                best, best_value = a, value
        return int(best)

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[Any, None]:
        """The next action for the env this policy was built with (``observation`` gives the nodes and the
        batch shape: one observation, or a batch of one).

        Raises
        ------
        ValueError: a batch of more than one observation (this policy simulates one env).
        """
        observation, batched = one_observation(observation, "RolloutLookahead")
        nodes = np.asarray(observation["nodes"])
        u = self.env.unwrapped
        self._simulator(u)
        a = self.choose(u, nodes.astype(np.float64))
        return (np.array([a]) if batched else a), None


__all__ = ["RolloutLookahead", "check_lookahead_options", "expected_forecast", "greedy_candidates", "greedy_rollout", "persistence_forecast"]
