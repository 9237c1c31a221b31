"""Greedy baselines of a telescope network: each free telescope takes its own best target, with or without regard
for the others.

Both read only the observation, so they run on single observations and on vector batches:
``nodes`` (the deciding telescope's view, the single-site layout) scores targets exactly as
:class:`~astrogym.agents.scheduling.greedy.GreedyScheduler` does (priority per second needed to
complete the visit now), with the deciding telescope's readout time from ``telescopes``.

* :class:`NetworkGreedy` is that single-site greedy at every telescope: it ignores what the others
  are doing, so two telescopes may expose the same target at once, and the second exposure to end
  is a duplicate.
* :class:`CoordinatedGreedy` skips targets another telescope has in flight (``site_nodes``'s
  in-flight column), and defers a target whose visibility another telescope's site has now at a
  clearly better altitude *and* that telescope is about to be free (within ``handover_s``): it is
  left to the better-placed site instead of being observed at high airmass here.
"""

from __future__ import annotations

import numpy as np

from astrogym.agents.base import Policy
from astrogym.agents.scheduling.greedy import GreedyScheduler
from astrogym.envs.network import kernels as NK
from astrogym.envs.scheduling.features import N_NODE_FEATURES, NF_ALT, OVERHEAD_SCALE_S


class NetworkGreedy(Policy):
    """Each free telescope takes the target the single-site greedy scores best from its own view.

    Parameters
    ----------
    wait_action: the env's wait action (``env.unwrapped.wait_action``).
    readout_s: per telescope, its readout time (``for_env`` takes them from the env).
    max_exposures: as :class:`GreedyScheduler`'s.
    """

    def __init__(self, wait_action: int, readout_s, max_exposures: int = 20):
        self.readout_s = np.asarray(readout_s, dtype=np.float64)
        if self.readout_s.ndim != 1 or self.readout_s.size < 1 or not np.all((self.readout_s >= 0)
                                                                               & (self.readout_s <= 3600)):
            raise ValueError(f"readout_s must be one readout time in [0, 3600] s per telescope, got {readout_s!r}")
        self._greedy = [GreedyScheduler(wait_action, readout_s=float(r), max_exposures=max_exposures)
                        for r in self.readout_s]
        self.wait_action = int(wait_action)

    @classmethod
    def for_env(cls, env, **kwargs):
        un = env.unwrapped
        return cls(un.wait_action, [t.readout_s for t in un.telescopes], **kwargs)

    def _check(self, observation) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(observation, dict) or "nodes" not in observation or "telescopes" not in observation:
            raise TypeError(f"{type(self).__name__} needs TelescopeNetwork's Dict observation (with 'nodes' and "
                            "'telescopes')")
        nodes = np.asarray(observation["nodes"], dtype=np.float64)
        tel = np.asarray(observation["telescopes"], dtype=np.float64)
        if nodes.ndim not in (2, 3) or nodes.shape[-1] != N_NODE_FEATURES or nodes.shape[-2] != self.wait_action:
            raise ValueError(f"observation['nodes'] must be ({self.wait_action}, {N_NODE_FEATURES}) or a batch of "
                             f"them, got {nodes.shape}")
        if tel.shape[-2] != self.readout_s.size:
            raise ValueError(f"observation has {tel.shape[-2]} telescopes, this policy {self.readout_s.size}")
        return nodes, tel

    def scores(self, observation) -> np.ndarray:
        """Greedy score per target for the deciding telescope (``-inf`` where not allowed), (..., max_targets)."""
        nodes, tel = self._check(observation)
        decider = np.argmax(tel[..., NK.TF_DECIDING], axis=-1)
        out = np.empty(nodes.shape[:-1])
        for k, greedy in enumerate(self._greedy):  # each telescope's own readout
            which = decider == k
            if np.any(which):
                out[which] = greedy.scores(nodes[which]) if nodes.ndim == 3 else greedy.scores(nodes)
        return out

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        score = self.scores(observation)
        best = np.argmax(score, axis=-1)
        none = ~np.isfinite(np.take_along_axis(score, best[..., None], axis=-1)[..., 0])
        return np.where(none, self.wait_action, best).astype(np.int64), state


class CoordinatedGreedy(NetworkGreedy):
    """Network greedy that avoids chasing what another telescope has, or will soon have, in hand.

    Parameters
    ----------
    handover_s: defer a target to another telescope that is free within this many seconds and sees it
        at least ``altitude_margin_deg`` higher now.
    altitude_margin_deg: see ``handover_s``.
    """

    def __init__(self, wait_action: int, readout_s, max_exposures: int = 20, handover_s: float = 300.0,
                 altitude_margin_deg: float = 15.0):
        super().__init__(wait_action, readout_s, max_exposures)
        if not 0.0 <= handover_s <= 86400.0:
            raise ValueError(f"handover_s={handover_s} is out of range; allowed [0, 86400]")
        if not 0.0 <= altitude_margin_deg <= 90.0:
            raise ValueError(f"altitude_margin_deg={altitude_margin_deg} is out of range; allowed [0, 90]")
        self.handover_s = float(handover_s)
        self.altitude_margin_deg = float(altitude_margin_deg)

    def scores(self, observation) -> np.ndarray:
        score = super().scores(observation)
        site = np.asarray(observation["site_nodes"], dtype=np.float64)  # (..., targets, telescopes, features)
        tel = np.asarray(observation["telescopes"], dtype=np.float64)  # (..., telescopes, features)
        in_flight = site[..., NK.SN_IN_FLIGHT].max(axis=-1) > 0.5
        here = np.asarray(observation["nodes"], dtype=np.float64)[..., NF_ALT] * 90.0
        others = tel[..., NK.TF_DECIDING] < 0.5  # (..., telescopes)
        soon = others & (tel[..., NK.TF_RUNNING] > 0.5) & (tel[..., NK.TF_BUSY] * OVERHEAD_SCALE_S <= self.handover_s)
        better = (site[..., NK.SN_VISIBLE] > 0.5) & (site[..., NK.SN_ALT] * 90.0 >= here[..., None]
                                                       + self.altitude_margin_deg)
        defer = np.any(better & soon[..., None, :], axis=-1)
        # defer only when it leaves this telescope something else to do
        blocked = in_flight | defer
        keep = np.where(blocked, -np.inf, score)
        fallback = np.all(~np.isfinite(keep), axis=-1, keepdims=True)
        return np.where(fallback & ~in_flight, score, keep)
