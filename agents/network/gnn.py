"""The GNN scheduling policy extended to ``astrogym/TelescopeNetwork-v0``: the coordinated greedy as its prior.

The single-site GNN (:mod:`astrogym.agents.scheduling.gnn`) runs on the network env unchanged
(its first six observation keys are the single-site layout, from the deciding telescope's view;
``astrogym train astrogym/TelescopeNetwork-v0 --algo maskable_ppo`` with
``policy: astrogym.agents.scheduling.gnn:GNNSchedulingPolicy`` trains), but it reads neither
``telescopes`` nor ``site_nodes``: it cannot see what the other telescopes have in flight, so
its prior is the *uncoordinated* greedy (:class:`~astrogym.agents.network.greedy.NetworkGreedy`),
duplicates included. :class:`NetworkGNNPolicy` is the same network (GINE trunk, shared per-node
head, wait and value heads, ``logits = beta x prior + correction`` with the correction starting at
zero) with two changes, both through the hooks of
:class:`~astrogym.agents.scheduling.gnn.GraphEncoder` (``prior_and_inputs``, ``n_extra_inputs``):

1. **The prior is the coordinated greedy** (:class:`~astrogym.agents.network.greedy.CoordinatedGreedy`,
   the domain's reference policy): the single-site greedy log-score with the deciding telescope's
   readout, where targets in flight at any telescope get the floor, and targets deferred to a
   better-placed telescope (visible there ``altitude_margin_deg`` higher, that telescope free within
   ``handover_s``) too, unless deferring would leave nothing. The same float64 arithmetic and the same
   tie order, so the untrained policy's most probable action *is* ``CoordinatedGreedy``'s
   (``tests/test_network_gnn.py``); training learns corrections to it.
2. **Network inputs per node that do not depend on the number of telescopes** (so one model acts
   in networks of any size; every input goes through ``symlog`` as the single-site ones do):

   ========================  =============================================================================
   ``in_flight``             being exposed at some telescope (a duplicate if started here)
   ``deferred``              the coordinated rule would leave it to a better-placed telescope about to be free
   ``n_visible_elsewhere``   number of *other* telescopes whose site sees it now
   ``best_alt_elsewhere``    highest altitude / 90 at another telescope's site now (-1: none in its night)
   ``alt_advantage``         ``best_alt_elsewhere`` - altitude here (/ 90); 0 where no other site sees it
   ``soonest_free_visible``  the soonest another telescope that sees it now is free (``busy`` units of 300 s;
                             ``NO_TELESCOPE_BUSY`` where none)
   decider row (9)           the deciding telescope's ``telescopes`` row (``TF_*``), broadcast
   ``n_other_running``       other telescopes whose night is running, broadcast
   ``soonest_other_free``    the soonest any other running telescope is free (``busy``), broadcast
   ========================  =============================================================================

The readout of the deciding telescope is not in the observation: ``readout_s`` is one value for
every telescope or one per telescope (the default network's MOSTs all read out in 8 s);
:func:`shipped_policy` sets it from the env it acts in.

:func:`shipped_policy` loads ``agents/shipped/network_gnn.zip`` behind the single-site adapter
(:class:`~astrogym.agents.scheduling.gnn.GNNScheduler`: most probable allowed action), the
registry's ``gnn`` for the network env.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch as th
from gymnasium import spaces

from astrogym.agents.scheduling.gnn import (GNNScheduler, GNNSchedulingPolicy, GraphEncoder, greedy_log_score,
                                            relative_prior, symlog)
from astrogym.envs.network import kernels as NK
from astrogym.envs.scheduling.features import NF_ALT, OVERHEAD_SCALE_S

NO_TELESCOPE_BUSY = 100.0  # 'soonest free' where no other telescope qualifies (TELESCOPE_HIGH's busy bound)
N_NETWORK_INPUTS = 6 + NK.N_TELESCOPE_FEATURES + 2


def _readouts(readout_s: float | Sequence[float]) -> tuple[float, ...]:
    values = (readout_s,) if isinstance(readout_s, (int, float)) else tuple(readout_s)
    if not values or not all(0.0 <= float(r) <= 3600.0 for r in values):
        raise ValueError(f"readout_s must be one readout time in [0, 3600] s or one per telescope, got {readout_s!r}")
    return tuple(float(r) for r in values)


def coordinated_prior(obs: dict[str, th.Tensor], nodes: th.Tensor, node_mask: th.Tensor,
                      readout_s: Sequence[float] = (8.0,), max_exposures: int = 20, handover_s: float = 300.0,
                      altitude_margin_deg: float = 15.0):
    """The coordinated greedy's prior and the network inputs: ``(rel, allowed, any_allowed, extra (B, N, k))``.

    ``rel``/``allowed``/``any_allowed`` as :func:`~astrogym.agents.scheduling.gnn.greedy_prior` returns them, for
    :meth:`CoordinatedGreedy.scores <astrogym.agents.network.greedy.CoordinatedGreedy.scores>` instead of the
    single-site greedy's (same float64 arithmetic); ``extra`` the inputs of the module docstring's table.
    """
    tel = obs["telescopes"].to(th.float64)  # (B, T, F)
    site = obs["site_nodes"].to(th.float64)  # (B, N, T, 3)
    deciding = tel[..., NK.TF_DECIDING]
    readouts = th.as_tensor(readout_s, dtype=th.float64, device=nodes.device)
    if readouts.numel() == 1:
        readout = readouts.reshape(1, 1)
    elif readouts.numel() == tel.shape[-2]:
        readout = readouts[deciding.argmax(dim=-1)][:, None]  # the deciding telescope's
    else:
        raise ValueError(f"{readouts.numel()} readout times for a network of {tel.shape[-2]} telescopes")
    log_score, allowed = greedy_log_score(nodes, node_mask, readout, max_exposures)
    # CoordinatedGreedy.scores, in torch
    in_flight = site[..., NK.SN_IN_FLIGHT].max(dim=-1).values > 0.5
    here = nodes.to(th.float64)[..., NF_ALT] * 90.0
    others = deciding < 0.5
    running = tel[..., NK.TF_RUNNING] > 0.5
    busy = tel[..., NK.TF_BUSY]
    soon = others & running & (busy * OVERHEAD_SCALE_S <= handover_s)
    visible = site[..., NK.SN_VISIBLE] > 0.5
    better = visible & (site[..., NK.SN_ALT] * 90.0 >= here[..., None] + altitude_margin_deg)
    deferred = (better & soon[:, None, :]).any(dim=-1)
    keep = allowed & ~(in_flight | deferred)
    fallback = ~keep.any(dim=-1, keepdim=True)  # deferring would leave nothing: the deferred ones come back
    coordinated = th.where(fallback, allowed & ~in_flight, keep)
    rel, coordinated, any_allowed = relative_prior(th.where(coordinated, log_score, -float("inf")), coordinated,
                                                   nodes.dtype)
    # network inputs, independent of the number of telescopes
    elsewhere = visible & others[:, None, :]
    n_visible = elsewhere.sum(dim=-1).to(th.float64)
    alt_others = th.where(others[:, None, :], site[..., NK.SN_ALT], th.full_like(site[..., NK.SN_ALT], -1.0))
    best_alt = alt_others.max(dim=-1).values if alt_others.shape[-1] else th.full_like(here, -1.0)
    advantage = th.where(n_visible > 0, best_alt - here / 90.0, th.zeros_like(here))
    no_busy = th.full_like(site[..., NK.SN_ALT], NO_TELESCOPE_BUSY)
    soonest_visible = th.where(elsewhere, busy[:, None, :].expand_as(no_busy), no_busy).min(dim=-1).values
    decider_row = (tel * (deciding / deciding.sum(dim=-1, keepdim=True).clamp_min(1.0))[..., None]).sum(dim=-2)
    other_running = others & running
    n_other = other_running.sum(dim=-1, keepdim=True).to(th.float64)
    soonest_other = th.where(other_running, busy, th.full_like(busy, NO_TELESCOPE_BUSY)).min(dim=-1, keepdim=True).values
    b, n = nodes.shape[:2]
    per_node = th.stack([in_flight.to(th.float64), deferred.to(th.float64), n_visible, best_alt, advantage,
                         soonest_visible], dim=-1)
    per_graph = th.cat([decider_row, n_other, soonest_other], dim=-1)[:, None, :].expand(b, n, -1)
    extra = symlog(th.cat([per_node, per_graph], dim=-1)).to(nodes.dtype)
    return rel, coordinated, any_allowed, extra


class NetworkGraphEncoder(GraphEncoder):
    """:class:`~astrogym.agents.scheduling.gnn.GraphEncoder` with the coordinated prior and the network inputs."""

    n_extra_inputs = N_NETWORK_INPUTS

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, n_layers: int = 2,
                 readout_s: float | Sequence[float] = 8.0, max_exposures: int = 20, handover_s: float = 300.0,
                 altitude_margin_deg: float = 15.0):
        for key in ("telescopes", "site_nodes"):
            if key not in observation_space.spaces:
                raise ValueError(f"NetworkGNNPolicy needs TelescopeNetwork's observation (no {key!r} in it)")
        self.readouts = _readouts(readout_s)
        super().__init__(observation_space, hidden=hidden, n_layers=n_layers, readout_s=self.readouts[0],
                         max_exposures=max_exposures)
        self.handover_s, self.altitude_margin_deg = float(handover_s), float(altitude_margin_deg)

    def prior_and_inputs(self, obs, nodes, node_mask):
        if obs["telescopes"].dim() == 2:  # an unbatched observation (encode adds the batch dimension first)
            obs = {k: v[None] for k, v in obs.items()}
        return coordinated_prior(obs, nodes, node_mask, self.readouts, self.max_exposures, self.handover_s,
                                 self.altitude_margin_deg)


class NetworkGNNPolicy(GNNSchedulingPolicy):
    """MaskablePPO policy for ``TelescopeNetwork-v0``: the single-site GNN with the coordinated-greedy prior.

    Parameters (``policy_kwargs``): those of :class:`~astrogym.agents.scheduling.gnn.GNNSchedulingPolicy`, with
    ``readout_s`` one value or one per telescope, plus ``handover_s`` and ``altitude_margin_deg``
    (:class:`~astrogym.agents.network.greedy.CoordinatedGreedy`'s, for the prior).
    """

    encoder_class = NetworkGraphEncoder

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Discrete, lr_schedule,
                 readout_s: float | Sequence[float] = 8.0, handover_s: float = 300.0,
                 altitude_margin_deg: float = 15.0, **kwargs: Any):
        self.readouts = _readouts(readout_s)
        self.handover_s, self.altitude_margin_deg = float(handover_s), float(altitude_margin_deg)
        super().__init__(observation_space, action_space, lr_schedule, readout_s=self.readouts[0], **kwargs)

    def _encoder_kwargs(self) -> dict[str, Any]:
        return {**super()._encoder_kwargs(), "readout_s": self.readouts, "handover_s": self.handover_s,
                "altitude_margin_deg": self.altitude_margin_deg}

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(readout_s=self.readouts[0] if len(self.readouts) == 1 else list(self.readouts),
                    handover_s=self.handover_s, altitude_margin_deg=self.altitude_margin_deg)
        return data

    def set_readouts(self, readout_s: float | Sequence[float]) -> None:
        """The readout time(s) of the network it acts in (not in the observation; the prior needs them)."""
        self.readouts = self.features_extractor.readouts = _readouts(readout_s)


# -- the shipped model as a registry policy ----------------------------------------------------------------
SHIPPED = Path(__file__).resolve().parent.parent / "shipped" / "network_gnn.zip"


def load_network_gnn(path: str | Path = SHIPPED) -> NetworkGNNPolicy:
    from astrogym.agents.checkpoints import load_model, resolve_model_file

    model, _ = load_model(resolve_model_file(path), algo="maskable_ppo")
    if not isinstance(model.policy, NetworkGNNPolicy):
        raise ValueError(f"{path}: not a NetworkGNNPolicy model")
    return model.policy


def for_env(policy: NetworkGNNPolicy, env) -> GNNScheduler:
    """``policy`` acting in ``env`` (any number of telescopes and targets), with ``env``'s readout times."""
    policy.set_readouts([t.readout_s for t in env.unwrapped.telescopes])
    return GNNScheduler(policy, env)


def shipped_policy(ctx) -> GNNScheduler:
    """The registry's ``gnn`` for the network env: the shipped checkpoint (``ctx.options['path']`` overrides it)."""
    return for_env(load_network_gnn(ctx.options.get("path", SHIPPED)), ctx.env)
