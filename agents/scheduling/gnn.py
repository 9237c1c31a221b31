"""A graph neural network scheduling policy for ``astrogym/TelescopeScheduling-v0`` (sb3-contrib MaskablePPO).

Targets are the nodes of the env's padded graph observation, edges join each target to its nearest
neighbours on the sky with the slew overhead between them as an edge feature (the setting of Cao et
al. 2025 and GRRIS, ``shared/reference/scheduling.md``). The network:

1. **Inputs.** Every node reads its 16 features, the 16 global features broadcast to it (seeing,
   cloud state, filter, time left are what make one target better than another *now*), and two
   features of the greedy heuristic (below). Everything passes through ``symlog`` (sign x log1p|x|):
   the features span very different ranges (priority 1-20, overheads 0-100 in 5-minute units,
   flags 0/1) and a fixed, parameter-free squashing keeps the network independent of the
   catalogue, where running statistics (VecNormalize) would tie it to the training distribution.
2. **Message passing with edge features**: GINE layers (Hu et al. 2020, torch-geometric's
   ``GINEConv``), ``m_ij = relu(h_j + W_e e_ij)``, ``h_i <- h_i + MLP(h_i + mean_j m_ij)``,
   written directly over the padded arrays (gather, ``index_add_``) on the real nodes only.
   Why GINE: it was the fastest edge-aware layer measured on this machine (83 ms per minibatch of
   64 x 200-node graphs against 185 ms for TransformerConv and 600 ms for GATv2Conv), and PPO on
   two cores is bound by the minibatch updates. Why the direct formulation: it skips building a
   ``torch_geometric`` ``Batch`` (8 ms per minibatch, as much as a layer) and works on the rollout
   buffer's padded float tensors as they come; it computes exactly ``GINEConv`` with a mean
   aggregation (``tests/test_gnn_policy.py`` checks it against torch-geometric). Why mean, not
   sum: the in-degree is k for ``edges="knn"`` but n - 1 for ``edges="full"``; the mean keeps the
   scale of a message independent of the number of targets. Residual connections keep the greedy
   prior's inputs visible to the heads.
3. **Heads.** One logit per target from one shared MLP over ``[h_i, pooled]`` (the same weights for
   every node, so the policy is permutation-equivariant and takes any number of targets), one
   "wait" logit from the pooled embedding and the globals, the value from the pooled embedding
   (masked mean and max over real nodes) and the globals. Padding nodes get a logit of -1e8 (no
   probability whatever the env's mask says); masked actions get none through sb3-contrib's
   ``MaskableCategorical``.

**The greedy prior (a strong prior, on purpose).** The logits are ``beta * g_i + c_i`` where ``g_i`` is
the log of :meth:`GreedyScheduler.scores` relative to the best allowed target (0 for greedy's choice,
negative for the others, -8 for targets greedy would not take; the wait logit's ``g`` is -3 when
greedy would observe and 0 when it would wait), ``beta`` a learned scale (initially 3) and ``c_i``
the network's correction, whose last layers start at zero. So the untrained policy's deterministic
action *is* greedy's, its sampling explores greedy's near-ties, and PPO learns only corrections
(which target to take first among similar scores: one that sets soon, one that finishes a
multi-visit sequence, one near the next). The greedy score is computed from the node features in
the network (float64, as the heuristic does), so nothing outside the observation is needed.

**Sizing.** Width 32 and two layers: on this 2-core machine (one torch thread, as training runs) one
minibatch of 64 graphs of 200 targets takes ~144 ms forward + backward (width 64: ~195 ms on the
training mix) against ~11 ms for SB3's ``MultiInputPolicy``; MaskablePPO trains at ~43 steps/s
against ~220 (``astrogym bench astrogym/TelescopeScheduling-v0 --networks``). Rollouts (one
observation per forward pass) cost about as much as the updates.

:func:`shipped_policy` loads the shipped model (``agents/shipped/gnn.zip``) behind an adapter that acts
on an env of any catalogue size (the registry's ``gnn``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from astrogym.agents.base import Policy
from astrogym.envs.scheduling.features import (
    N_EDGE_FEATURES,
    N_NODE_FEATURES,
    NF_EXPOSURE,
    NF_OVERHEAD,
    NF_PRIORITY,
    NF_PROGRESS,
    NF_SNR_LEFT,
    NF_VALID,
    OVERHEAD_SCALE_S,
)

PADDING_LOGIT = -1e8  # as sb3-contrib's masking: exp() of it is exactly 0 in float32
PRIOR_FLOOR = 8.0  # relative log-score of targets greedy would not take (score e^-8 of the best)
PRIOR_WAIT = 3.0  # relative log-score of 'wait' when greedy would observe (1/20 of the best score)


def symlog(x: th.Tensor) -> th.Tensor:
    return th.sign(x) * th.log1p(th.abs(x))


def greedy_prior(nodes: th.Tensor, node_mask: th.Tensor, readout_s: float = 8.0,
                 max_exposures: int = 20) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """Greedy's log-score relative to its best target: ``(rel (B, N), allowed (B, N), any_allowed (B,))``.

    The same arithmetic as :meth:`astrogym.agents.scheduling.greedy.GreedyScheduler.scores`, in float64
    so that the argmax ties the same way; ``rel`` is 0 for greedy's choice, in ``[-PRIOR_FLOOR, 0]``.
    """
    log_score, allowed = greedy_log_score(nodes, node_mask, readout_s, max_exposures)
    return relative_prior(log_score, allowed, nodes.dtype)


def greedy_log_score(nodes: th.Tensor, node_mask: th.Tensor, readout_s: float | th.Tensor = 8.0,
                     max_exposures: int = 20) -> tuple[th.Tensor, th.Tensor]:
    """Greedy's log-score per target in float64 (``-inf`` where greedy would not take it) and its ``allowed`` mask.

    ``readout_s`` may be a tensor that broadcasts against ``(B, N)`` (one readout per graph: the network env).
    """
    x = nodes.to(th.float64)
    gain, left = x[..., NF_PROGRESS], x[..., NF_SNR_LEFT]
    positive = gain > 0
    needed = th.where(positive, th.ceil(left / gain.clamp_min(1e-12) - 1e-9), th.full_like(gain, float("inf")))
    seconds = OVERHEAD_SCALE_S * x[..., NF_OVERHEAD] + needed * (OVERHEAD_SCALE_S * x[..., NF_EXPOSURE] + readout_s)
    allowed = (x[..., NF_VALID] > 0.5) & positive & (needed <= max_exposures) & node_mask
    log_score = th.log(x[..., NF_PRIORITY].clamp_min(1e-12)) - th.log(seconds.clamp_min(1.0))
    return th.where(allowed, log_score, th.full_like(log_score, -float("inf"))), allowed


def relative_prior(log_score: th.Tensor, allowed: th.Tensor,
                   dtype: th.dtype = th.float32) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """``(rel, allowed, any_allowed)`` of :func:`greedy_prior` from a float64 log-score (``-inf`` where not allowed)."""
    best = log_score.max(dim=-1, keepdim=True).values
    any_allowed = th.isfinite(best[..., 0])
    rel = th.where(allowed, log_score - th.where(th.isfinite(best), best, th.zeros_like(best)),
                   th.full_like(log_score, -PRIOR_FLOOR)).clamp_min(-PRIOR_FLOOR)
    return rel.to(dtype), allowed, any_allowed


def _mlp(n_in: int, hidden: int, n_out: int, zero_last: bool = False) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    if zero_last:  # the correction starts at zero: the untrained policy acts as its prior
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
    return net


class GINELayer(nn.Module):
    """``h_i <- h_i + MLP(h_i + mean_{j -> i} relu(h_j + W_e e_ji))`` on compact (real-only) nodes and edges."""

    def __init__(self, hidden: int, edge_dim: int = N_EDGE_FEATURES):
        super().__init__()
        self.edge = nn.Linear(edge_dim, hidden)
        self.update = _mlp(hidden, hidden, hidden)

    def forward(self, h: th.Tensor, src: th.Tensor, dst: th.Tensor, e: th.Tensor, inv_deg: th.Tensor) -> th.Tensor:
        msg = th.relu(h[src] + self.edge(e))
        agg = th.zeros_like(h).index_add_(0, dst, msg) * inv_deg[:, None]
        return h + self.update(h + agg)


class GraphEncoder(BaseFeaturesExtractor):
    """The message-passing trunk: per-node embeddings of the padded graph observation (see the module docstring).

    :meth:`encode` returns everything the heads need; ``forward`` (SB3's features-extractor API) returns
    the pooled embedding only.
    """

    n_extra_inputs = 0  # per-node inputs a subclass adds (:meth:`prior_and_inputs`); none here

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, n_layers: int = 2, readout_s: float = 8.0,
                 max_exposures: int = 20):
        super().__init__(observation_space, features_dim=2 * hidden)
        self.hidden, self.readout_s, self.max_exposures = hidden, float(readout_s), int(max_exposures)
        # the env's globals, plus its forecast when it has a forecaster: sized from the space, not a constant
        n_in = N_NODE_FEATURES + observation_space["globals"].shape[0] + 2 + self.n_extra_inputs
        self.encoder = _mlp(n_in, hidden, hidden)
        self.layers = nn.ModuleList(GINELayer(hidden) for _ in range(n_layers))

    def encode(self, obs: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        nodes = obs["nodes"].float()
        if nodes.dim() == 2:  # one observation
            obs = {k: v[None] for k, v in obs.items()}
            nodes = nodes[None]
        b, n, _ = nodes.shape
        node_mask = obs["node_mask"] > 0.5
        glob = obs["globals"].float()
        rel, allowed, any_allowed, extra = self.prior_and_inputs(obs, nodes, node_mask)
        flat_mask = node_mask.reshape(-1)
        real = flat_mask.nonzero(as_tuple=True)[0]  # padded position b * n + i of each real node
        graph = real // n  # which graph each real node belongs to
        # everything per node runs on the real nodes only: the cost follows the catalogue, not the padding
        parts = [symlog(nodes.reshape(b * n, -1)[real]), symlog(glob)[graph],
                 (rel.reshape(-1)[real] / PRIOR_FLOOR)[:, None], allowed.reshape(-1)[real, None].float()]
        if extra is not None:
            parts.append(extra.reshape(b * n, -1)[real].to(nodes.dtype))
        x = th.cat(parts, dim=-1)
        h = self.encoder(x)
        compact = th.full((b * n,), -1, dtype=th.long, device=nodes.device)
        compact[real] = th.arange(real.numel(), device=nodes.device)
        # edges: flat padded positions -> compact indices; an edge is real if its mask says so and both ends are
        ei = obs["edge_index"].long()
        offset = (th.arange(b, device=nodes.device) * n)[:, None]
        src_p, dst_p = (ei[:, 0] + offset).reshape(-1), (ei[:, 1] + offset).reshape(-1)
        keep = (obs["edge_mask"] > 0.5).reshape(-1)
        keep &= (ei[:, 0] < n).reshape(-1) & (ei[:, 1] < n).reshape(-1)
        src_p, dst_p = src_p.clamp(max=b * n - 1), dst_p.clamp(max=b * n - 1)
        keep &= flat_mask[src_p] & flat_mask[dst_p]
        src, dst = compact[src_p[keep]], compact[dst_p[keep]]
        e = symlog(obs["edges"].float().reshape(-1, obs["edges"].shape[-1])[keep])
        deg = th.zeros(real.numel(), device=nodes.device).index_add_(0, dst, th.ones_like(dst, dtype=th.float32))
        inv_deg = 1.0 / deg.clamp_min(1.0)
        for layer in self.layers:
            h = layer(h, src, dst, e, inv_deg)
        count = th.zeros(b, device=nodes.device).index_add_(0, graph, th.ones_like(graph, dtype=th.float32))
        mean = th.zeros(b, self.hidden, device=nodes.device).index_add_(0, graph, h) / count.clamp_min(1.0)[:, None]
        mx = th.zeros(b, self.hidden, device=nodes.device).scatter_reduce(
            0, graph[:, None].expand(-1, self.hidden), h, "amax", include_self=False)
        pooled = th.cat([mean, mx], dim=-1)
        return {"h": h, "real": real, "graph": graph, "shape": (b, n), "pooled": pooled, "globals": symlog(glob),
                "node_mask": node_mask, "rel": rel, "any_allowed": any_allowed}

    def prior_and_inputs(self, obs: dict[str, th.Tensor], nodes: th.Tensor, node_mask: th.Tensor):
        """``(rel, allowed, any_allowed, extra)``: the prior (:func:`greedy_prior`) and extra per-node inputs.

        A hook for subclasses (the network env's :mod:`astrogym.agents.network.gnn`): ``extra`` is
        ``(B, N, n_extra_inputs)`` or None (here).
        """
        return (*greedy_prior(nodes, node_mask, self.readout_s, self.max_exposures), None)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        return self.encode(observations)["pooled"]


class GNNSchedulingPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy: :class:`GraphEncoder` trunk, per-node action head, pooled value head, greedy prior.

    Parameters (``policy_kwargs``)
    ------------------------------
    hidden: embedding width; n_layers: message-passing layers.
    prior: add ``beta * greedy log-score`` to the logits (see the module docstring); beta_init its start.
    readout_s, max_exposures: the greedy score's constants (the env's telescope readout; GreedyScheduler's).
    """

    encoder_class = GraphEncoder  # the trunk (a subclass may use a GraphEncoder subclass, see _encoder_kwargs)

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Discrete, lr_schedule, hidden: int = 64,
                 n_layers: int = 2, prior: bool = True, beta_init: float = 3.0, readout_s: float = 8.0,
                 max_exposures: int = 20, **kwargs: Any):
        self.hidden, self.n_layers, self.prior, self.beta_init = int(hidden), int(n_layers), bool(prior), beta_init
        self.readout_s, self.max_exposures = float(readout_s), int(max_exposures)
        for key in ("features_extractor_class", "features_extractor_kwargs", "net_arch", "ortho_init"):
            kwargs.pop(key, None)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False,
                         features_extractor_class=self.encoder_class,
                         features_extractor_kwargs=self._encoder_kwargs(), **kwargs)

    def _encoder_kwargs(self) -> dict[str, Any]:
        return dict(hidden=self.hidden, n_layers=self.n_layers, readout_s=self.readout_s,
                    max_exposures=self.max_exposures)

    def _build(self, lr_schedule) -> None:
        d = self.hidden
        self.node_head = _mlp(3 * d, d, 1, zero_last=True)  # [h_i, mean, max] -> the target's correction
        n_globals = self.observation_space["globals"].shape[0]
        self.wait_head = _mlp(2 * d + n_globals, d, 1, zero_last=True)
        self.value_head = _mlp(2 * d + n_globals, d, 1)
        self.log_beta = nn.Parameter(th.tensor(float(np.log(self.beta_init))), requires_grad=self.prior)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(hidden=self.hidden, n_layers=self.n_layers, prior=self.prior, beta_init=self.beta_init,
                    readout_s=self.readout_s, max_exposures=self.max_exposures)
        return data

    # -- the network -------------------------------------------------------------------------------------
    def logits_and_value(self, obs: dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
        """``(logits (B, N + 1), value (B, 1))`` for observations of any N (the last logit is 'wait')."""
        z = self.features_extractor.encode(obs)
        h, pooled, glob, real, graph = z["h"], z["pooled"], z["globals"], z["real"], z["graph"]
        b, n = z["shape"]
        context = th.cat([pooled, glob], dim=-1)
        correction = self.node_head(th.cat([h, pooled[graph]], dim=-1))[:, 0]
        node_logit = th.zeros(b * n, dtype=correction.dtype, device=correction.device).index_copy(
            0, real, correction).reshape(b, n)
        wait_logit = self.wait_head(context)
        if self.prior:
            beta = self.log_beta.exp()
            node_logit = node_logit + beta * z["rel"]
            wait_prior = th.where(z["any_allowed"], -PRIOR_WAIT, 0.0).to(wait_logit.dtype)[:, None]
            wait_logit = wait_logit + beta * wait_prior
        node_logit = node_logit.masked_fill(~z["node_mask"], PADDING_LOGIT)
        return th.cat([node_logit, wait_logit], dim=-1), self.value_head(context)

    def _distribution(self, logits: th.Tensor, action_masks=None):
        dist = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            dist.apply_masking(action_masks)
        return dist

    def forward(self, obs, deterministic: bool = False, action_masks=None):
        logits, values = self.logits_and_value(obs)
        dist = self._distribution(logits, action_masks)
        actions = dist.get_actions(deterministic=deterministic)
        return actions.reshape((-1, *self.action_space.shape)), values, dist.log_prob(actions)

    def evaluate_actions(self, obs, actions, action_masks=None):
        logits, values = self.logits_and_value(obs)
        dist = self._distribution(logits, action_masks)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs, action_masks=None):
        return self._distribution(self.logits_and_value(obs)[0], action_masks)

    def predict_values(self, obs) -> th.Tensor:
        return self.logits_and_value(obs)[1]


# -- the shipped model as a registry policy ----------------------------------------------------------------
SHIPPED = Path(__file__).resolve().parent.parent / "shipped" / "gnn.zip"


def obs_to_torch(observation: dict) -> dict[str, th.Tensor]:
    """One env observation (or a batch) as float tensors, whatever its number of target slots."""
    return {k: th.as_tensor(np.asarray(v)) for k, v in observation.items()}


class GNNScheduler(Policy):
    """A trained :class:`GNNSchedulingPolicy` acting in a scheduling env of any catalogue size.

    The network reads the number of targets from the arrays, so an observation with fewer slots than
    the model was trained with needs no padding and one with more needs no cropping (padding is
    exactly neutral: ``tests/test_gnn_policy.py``); only the action layout is the env's own:
    targets ``0 .. max_targets - 1``, wait ``max_targets``, masked by ``env.unwrapped.action_masks()``.
    Deterministic: the most probable allowed action.
    """

    def __init__(self, policy: GNNSchedulingPolicy, env):
        self.policy, self.env = policy, env
        self.policy.set_training_mode(False)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = obs_to_torch(observation)
        single = obs["nodes"].dim() == 2
        with th.no_grad():
            logits, _ = self.policy.logits_and_value(obs)
        mask = th.as_tensor(np.asarray(self.env.unwrapped.action_masks(), bool))
        if mask.dim() == 1:
            mask = mask[None]
        logits = logits.masked_fill(~mask, -float("inf"))
        if deterministic:
            action = logits.argmax(dim=-1)
        else:
            action = th.distributions.Categorical(logits=logits).sample()
        action = action.numpy().astype(np.int64)
        return (action[0] if single else action), state


def load_gnn(path: str | Path = SHIPPED) -> GNNSchedulingPolicy:
    from astrogym.agents.checkpoints import load_model

    model, _ = load_model(path, algo="maskable_ppo")
    if not isinstance(model.policy, GNNSchedulingPolicy):
        raise ValueError(f"{path}: not a GNNSchedulingPolicy model")
    return model.policy


def shipped_policy(ctx) -> GNNScheduler:
    """The registry's ``gnn``: the shipped checkpoint (``ctx.options['path']`` overrides it) in ``ctx.env``."""
    return GNNScheduler(load_gnn(ctx.options.get("path", SHIPPED)), ctx.env)
