"""Rollout lookahead for a telescope network: coordinated greedy as the base policy, the env's own step as the model.

:class:`NetworkLookahead` is :class:`~astrogym.agents.scheduling.lookahead.RolloutLookahead`'s algorithm on
``TelescopeNetwork-v0``: at each decision with a choice, the deciding telescope's ``n_candidates``
best targets by :class:`~astrogym.agents.network.greedy.CoordinatedGreedy`'s score (its own choice
first) and waiting are each played in a copy of the env (:meth:`snapshot`/:meth:`restore`), followed
by coordinated greedy at *every* telescope to the end of the night (or ``horizon_s`` of network time); the
candidate with the highest simulated network return is taken (the base choice unless another beats
it by ``margin``). Simulating the whole network is what makes it coordinate beyond the base rule:
a target left for a better-placed site, or a ToO a later site can reach, shows in the return.

The copy's weather:

* ``weather="forecast"`` (``lookahead``, online): each site's weather is known up to its grid point
  at or before now; later points are the conditional expectation under the site's
  :class:`~astrogym.envs.scheduling.weather.StochasticWeather` model
  (:func:`~astrogym.agents.scheduling.lookahead.expected_forecast`), and a site whose night has not
  begun gets the climatology (median seeing, the stationary cloud mix). ToOs that have not arrived
  are not known either: the copy's future ToOs are removed (their slots never open), so a rollout
  cannot plan around an alert it could not know of.
* ``weather="truth"`` (``lookahead-clairvoyant``): the episode's true weather and ToOs.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from astrogym.agents.base import Policy, one_observation
from astrogym.agents.network.greedy import CoordinatedGreedy
from astrogym.agents.scheduling.lookahead import check_lookahead_options, expected_forecast
from astrogym.envs.network.env import TelescopeNetworkEnv
from astrogym.envs.scheduling.weather import StochasticWeather, WeatherTrack


def climatology_track(model: StochasticWeather, site, n: int) -> WeatherTrack:
    """What the model expects with nothing observed yet: median seeing, the stationary cloud mix (its SNR^2-equivalent
    extinction), the most likely cloud state."""
    median = site.median_seeing_arcsec if model.median_seeing_arcsec is None else model.median_seeing_arcsec
    pi = model.stationary(site)
    taus = np.array([0.0, model.thin_tau, model.thick_tau])
    tau = max(-np.log10(pi @ 10.0 ** (-0.88 * taus)) / 0.88, 0.0)
    return WeatherTrack(np.full(n, float(median)), np.full(n, int(np.argmax(pi)), np.int8), np.full(n, tau))


def network_forecast(env: TelescopeNetworkEnv) -> list[WeatherTrack]:
    """Each site's weather as known at the network's clock (see the module docstring)."""
    out = []
    grid_s = env.config.grid_s
    for night, track, model in zip(env.site_nights, env.weather_tracks, env.weather_models):
        local = env.network_clock_s - night.offset_s
        times = night.table.times_s
        if not isinstance(model, StochasticWeather):  # clear skies are known in advance
            out.append(track)
        elif local < 0.0:
            out.append(climatology_track(model, night.site, times.size))
        else:
            out.append(expected_forecast(model, night.site, [track], 0, local, grid_s, [times])[0])
    return out


class NetworkLookahead(Policy):
    """Rollouts of coordinated greedy over the whole network for each candidate; acts on the best (module docstring).

    Parameters
    ----------
    env: a ``TelescopeNetwork-v0`` env (wrapped or not).
    n_candidates: targets tried per decision, waiting besides.
    horizon_s: network seconds past now each rollout runs (None, the default: to the end of the episode, where the
        rollout algorithm's cost-improvement property holds: with the true weather it is never below its base
        policy; on training seeds 10-14 of the small scenario, 1 h horizons fell below coordinated greedy on 2 of
        5 nights, full ones on none).
    weather: ``"forecast"`` (online) or ``"truth"`` (clairvoyant).
    margin: fraction by which another candidate must beat the base choice (None: 0.05 on a forecast, 0 on the
        truth, as the single-site lookahead).
    greedy_options: keyword arguments of :class:`CoordinatedGreedy`.
    """

    def __init__(self, env, n_candidates: int = 4, horizon_s: float | None = None, weather: str = "forecast",
                 margin: float | None = None, greedy_options: dict | None = None):
        u = getattr(env, "unwrapped", env)
        if not isinstance(u, TelescopeNetworkEnv):
            raise TypeError(f"NetworkLookahead needs an astrogym/TelescopeNetwork-v0 env, got {type(u).__name__}")
        self.margin = check_lookahead_options(n_candidates, horizon_s, weather, margin)
        self.env, self.n_candidates, self.weather = u, int(n_candidates), weather
        self.horizon_s = None if horizon_s is None else float(horizon_s)
        self.greedy = CoordinatedGreedy.for_env(u, **(greedy_options or {}))
        self._sim = None
        self._episode = None
        self.decisions = self.simulated = 0

    def reset(self) -> None:
        self._sim = self._episode = None

    def _simulator(self) -> TelescopeNetworkEnv:
        u = self.env
        if self._sim is None or self._episode is not u.site_nights:
            self._sim = copy.deepcopy(u)
            self._episode = u.site_nights
            self.decisions = self.simulated = 0
        return self._sim

    def _rollout(self, sim: TelescopeNetworkEnv, obs: dict, until_s: float) -> float:
        total = 0.0
        while sim.network_clock_s < until_s:
            obs, r, terminated, _, _ = sim.step(int(self.greedy.predict(obs)[0]))
            total += r
            if terminated:
                break
        return total

    def choose(self, obs: dict) -> int:
        """The action for the env in its current state, ``obs`` its observation."""
        u = self.env
        self.decisions += 1
        mask = u.action_masks()
        score = self.greedy.scores(obs)
        order = np.argsort(-score, kind="stable")
        cands = [int(i) for i in order[:self.n_candidates] if np.isfinite(score[i]) and mask[i]]
        cands.append(u.wait_action)
        if len(cands) <= 1:
            return u.wait_action
        self.simulated += 1
        sim = self._simulator()
        snap = u.snapshot()
        if self.weather == "forecast":
            sim.restore(snap)
            sim.set_weather(network_forecast(u))
            sim.hide_toos_after(u.network_clock_s)
            snap = sim.snapshot()
        until = u.network_clock_s + self.horizon_s if self.horizon_s is not None else np.inf
        best, best_value, threshold = cands[0], -np.inf, np.inf
        for a in cands:
            sim.restore(snap)
            o, r, terminated, _, _ = sim.step(a)
            value = r + (0.0 if terminated else self._rollout(sim, o, until))
            if a == cands[0]:
                best_value, threshold = value, value + self.margin * abs(value) + 1e-12
            elif value > max(threshold, best_value + 1e-12):
                best, best_value = a, value
        return int(best)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True):
        observation, batched = one_observation(observation, "NetworkLookahead")
        self._simulator()
        a = self.choose(observation)
        return (np.array([a]) if batched else a), state
