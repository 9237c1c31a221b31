"""Custom RLlib RLModules (new API stack) for the envs RLlib's default encoders cannot take.

* :class:`MaskedNodeScheduler` (TelescopeScheduling, PPO): a per-node network over the padded
  target table with one logit per target plus a wait logit, masked the way RLlib's
  ``ActionMaskingTorchRLModule`` example does it (``logits + clamp(log(mask), FLOAT_MIN)``).
  RLlib has no default encoder for ``Dict`` observations, and flattening the graph would make
  the policy depend on the order and number of targets; a shared per-node head is
  permutation-equivariant like the SB3 GNN policy. It is a deep set: node features, a masked
  mean over real nodes and the globals. The edge arrays are not used: the node features already
  carry the overhead from the current pointing, which is the edge the next action takes, and
  message passing over padded edges would need torch_geometric inside every env runner.
* :class:`ConvAOModule` (AdaptiveOptics, PPO): a fully convolutional policy on the channel-first
  (C, N, N) wavefront-sensor frames, one Gaussian mean per actuator and a learned log-std per
  actuator. RLlib's default CNN expects channel-last images of a few fixed sizes (84x84, 64x64,
  42x42, 10x10) and a 21x21 actuator grid is none of them.

Both implement :class:`~ray.rllib.core.rl_module.apis.ValueFunctionAPI` (PPO's value loss).
Hyperparameters come from the ``model`` entry of the hyperparameter file (``hidden``, ``channels``).
This module imports Ray and torch: import it only where the RLlib backend is in use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.torch_utils import FLOAT_MIN

from astrogym.agents.rllib_adapters import MASK_KEY


def _mlp(sizes: list[int], activation=nn.Tanh, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MaskedNodeScheduler(TorchRLModule, ValueFunctionAPI):
    """Per-node logits, a wait logit and a value from a masked deep set over the targets (see the module docstring).

    Observation: ``{nodes (N, F), globals (G,), node_mask (N,), action_mask (N + 1,)}`` (the
    adapter's); action: ``Discrete(N + 1)``, the last one waits.
    """

    def setup(self):
        spaces = self.observation_space.spaces
        n_nodes, n_features = spaces["nodes"].shape
        n_globals = spaces["globals"].shape[0]
        if self.action_space.n != n_nodes + 1:
            raise ValueError(f"MaskedNodeScheduler: action space {self.action_space} must be Discrete(nodes + 1) "
                             f"= Discrete({n_nodes + 1})")
        hidden = int(self.model_config.get("hidden", 64))
        self._node = _mlp([n_features, hidden, hidden])
        self._context = _mlp([hidden + n_globals, hidden])
        self._node_logit = _mlp([2 * hidden, hidden, 1], last_activation=False)
        self._wait_logit = nn.Linear(hidden, 1)
        self._value_context = _mlp([hidden + n_globals, hidden])
        self._value = nn.Linear(hidden, 1)

    def _encode(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-node embeddings (B, N, h) and the pooled embedding with the globals (B, h + G)."""
        phi = self._node(obs["nodes"])
        mask = obs["node_mask"].unsqueeze(-1)
        pooled = (phi * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return phi, torch.cat([pooled, obs["globals"]], dim=-1)

    def _logits(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        phi, pooled = self._encode(obs)
        ctx = self._context(pooled)
        per_node = self._node_logit(torch.cat([phi, ctx.unsqueeze(1).expand(-1, phi.shape[1], -1)], -1)).squeeze(-1)
        logits = torch.cat([per_node, self._wait_logit(ctx)], dim=-1)
        return logits + torch.clamp(torch.log(obs[MASK_KEY]), min=FLOAT_MIN), pooled

    def _forward(self, batch: dict, **kwargs) -> dict:
        logits, _ = self._logits(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _forward_train(self, batch: dict, **kwargs) -> dict:
        logits, pooled = self._logits(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: pooled}

    def compute_values(self, batch: dict, embeddings: Any = None) -> torch.Tensor:
        if embeddings is None:
            _, embeddings = self._encode(batch[Columns.OBS])
        return self._value(self._value_context(embeddings)).squeeze(-1)


class ConvAOModule(TorchRLModule, ValueFunctionAPI):
    """A fully convolutional Gaussian policy over (C, N, N) frames, with a pooled value head.

    Action: the flat (N * N,) ``Box`` of the adapter; the mean map's pixel ``(i, j)`` is actuator
    ``(i, j)``. The log-std is a free parameter per actuator (``log_std_init``, default -1).
    """

    def setup(self):
        channels_in, n, m = self.observation_space.shape
        if self.action_space.shape != (n * m,):
            raise ValueError(f"ConvAOModule: action space {self.action_space} must be flat over the {n}x{m} frame "
                             f"({n * m},)")
        channels = int(self.model_config.get("channels", 32))
        self._features = nn.Sequential(nn.Conv2d(channels_in, channels, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self._mean = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self._mean.bias)
        self._mean.weight.data.mul_(0.01)  # start near zero correction
        self._log_std = nn.Parameter(torch.full((n * m,), float(self.model_config.get("log_std_init", -1.0))))
        self._value = nn.Sequential(nn.Linear(channels, 64), nn.Tanh(), nn.Linear(64, 1))

    def _forward(self, batch: dict, **kwargs) -> dict:
        out, _ = self._heads(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: out}

    def _forward_train(self, batch: dict, **kwargs) -> dict:
        out, pooled = self._heads(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: out, Columns.EMBEDDINGS: pooled}

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self._features(obs)
        mean = self._mean(features).flatten(1)
        return torch.cat([mean, self._log_std.expand_as(mean)], dim=-1), features.mean(dim=(2, 3))

    def compute_values(self, batch: dict, embeddings: Any = None) -> torch.Tensor:
        if embeddings is None:
            embeddings = self._features(batch[Columns.OBS]).mean(dim=(2, 3))
        return self._value(embeddings).squeeze(-1)
