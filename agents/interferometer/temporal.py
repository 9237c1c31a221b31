"""A temporal policy for the interferometer lock: dilated causal 1-D convolutions over the history window.

The lock observation is ``(2, history)``: the sensor readings and the applied actions, oldest
first. A controller is a causal filter of that history, so the encoder is one too, in the
WaveNet / Deep Loop Shaping form: kernel-2 convolutions with dilations 1, 2, 4, ... padded on the
left only, so the output at time t sees samples up to t and never after; with ``L`` layers the
receptive field is ``2^L`` samples (6 layers: 64 samples, the whole default window = 0.25 s at
256 Hz, a cycle of the 4 Hz unity-gain frequency). Residual connections keep deep stacks
trainable. The features are the last time step's channels: what the filter says *now*.

Compared with flattening the window into an MLP (SB3's default, which loses lock here), the
convolution shares its weights over time, so a filter learned on one sample is the same filter
on every other, and its input scaling is fixed (no per-sample statistics to learn).

Use it with PPO, SAC or TD3 through ``policy_kwargs``::

    policy_kwargs: {features_extractor_class: astrogym.agents.interferometer.temporal:DilatedCausalConvExtractor,
                    features_extractor_kwargs: {channels: 16, layers: 6}, net_arch: [32]}

and with ``residual: {policy: baseline, scale: ...}`` it learns a bounded correction to the
loop-shaping controller (:mod:`astrogym.agents.residual`); the correction starts near zero
(SB3 initialises the action layer with gain 0.01), i.e. at the classical loop.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.nn import functional as F

_ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "elu": F.elu, "gelu": F.gelu}


class CausalConv1d(nn.Module):
    """A kernel-``k`` dilated convolution padded on the left: output t depends on inputs <= t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, 0)))


class DilatedCausalConvExtractor(BaseFeaturesExtractor):
    """Dilated causal convolutions over ``(channels, time)`` observations; features = the newest step.

    Parameters
    ----------
    observation_space: ``Box((C, T))`` (the lock env's ``(2, history_length)``).
    channels: width of every layer.
    layers: number of dilated layers (dilations 1, 2, ..., 2^(layers-1); receptive field 2^layers).
    kernel_size: taps per layer (2 in WaveNet).
    activation: ``tanh``, ``relu``, ``elu`` or ``gelu``.
    """

    def __init__(self, observation_space: gym.spaces.Box, channels: int = 16, layers: int = 6,
                 kernel_size: int = 2, activation: str = "tanh"):
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 2:
            raise ValueError(f"DilatedCausalConvExtractor needs a (channels, time) Box observation, got "
                             f"{observation_space}")
        if int(channels) < 1 or int(layers) < 1 or int(kernel_size) < 2:
            raise ValueError(f"channels={channels}, layers={layers}, kernel_size={kernel_size}; allowed channels >= 1, "
                             "layers >= 1, kernel_size >= 2")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; allowed {', '.join(_ACTIVATIONS)}")
        super().__init__(observation_space, features_dim=int(channels))
        c_in = observation_space.shape[0]
        self.inp = nn.Conv1d(c_in, int(channels), 1)
        self.blocks = nn.ModuleList(CausalConv1d(int(channels), int(channels), int(kernel_size), 2 ** i)
                                    for i in range(int(layers)))
        self.act = _ACTIVATIONS[activation]
        self.kernel_size = int(kernel_size)
        self.receptive_field = 1 + (int(kernel_size) - 1) * (2 ** int(layers) - 1)

    def sequence(self, observations: torch.Tensor) -> torch.Tensor:
        """The causal feature sequence ``(batch, channels, time)``: step t depends on inputs <= t only."""
        h = self.inp(observations)
        for block in self.blocks:
            h = h + self.act(block(h))  # residual: each layer refines, none has to carry the signal alone
        return h

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """The newest step of :meth:`sequence`, computed on the samples it depends on only.

        With kernel 2 and dilations doubling, the newest output is a binary tree over the last
        ``2^layers`` samples: layer i needs only every ``2^i``-th position. Evaluating the same
        weights as stride-2 convolutions on those positions gives the identical result with
        ``2^layers - 1`` instead of ``layers * time`` positions (6x less work at 6 layers, 64 samples).
        """
        n = 2 ** len(self.blocks)
        if self.kernel_size != 2 or observations.shape[-1] < n:  # (shorter windows: every layer's padding counts)
            return self.sequence(observations)[:, :, -1]
        h = self.inp(observations[:, :, -n:])
        for block in self.blocks:
            conv = block.conv
            h = h[:, :, 1::2] + self.act(F.conv1d(h, conv.weight, conv.bias, stride=2))
        return h[:, :, -1]
