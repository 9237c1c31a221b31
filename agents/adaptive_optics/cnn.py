"""A fully convolutional wavefront controller: actuator image in, actuator image out.

The AO observation is channel-first ``(2H, N+1, N+1)`` on the DM's actuator grid (the PO4AO
layout): H reconstructed measurements and H past commands. The control law of every classical
controller on it (integrator, modal gains, the linear predictor) is, away from the pupil edge,
the same local operation at every actuator. So the actor here is a stack of ``same``-padded
convolutions whose output *is* the action image: no flatten, no dense layer. That makes it

* translation equivariant (shift the wavefront, the command shifts with it);
* small (a few thousand weights instead of a 441x441 dense head's 194k, so PPO's policy-gradient
  estimate over 441 action dimensions is shared by every actuator instead of learned per pixel);
* independent of the grid size: the same weights run on the 20x20 and the 40x40 presets.

The exploration noise is one standard deviation shared by every actuator (equivariant too).
The critic convolves, then pools means and mean squares over the grid (the return is minus a
residual variance, i.e. a mean square) into a small linear head.

The last actor layer starts at zero, so with a residual wrapper (``residual: {policy: integrator}``
in the hyperparameters; :mod:`astrogym.agents.residual`) training starts exactly at the tuned
integrator's stable loop.

With SAC or TD3, whose actors SB3 builds as dense heads, use :class:`ConvFeaturesExtractor`
through ``policy_kwargs={"features_extractor_class": ..., "normalize_images": False}``: the
encoder is convolutional, the heads are SB3's.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def _activation(name: str) -> type[nn.Module]:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation={name!r}; allowed {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _check_image_space(space: gym.spaces.Space) -> tuple[int, int, int]:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise ValueError(f"the convolutional AO policy needs a (channels, H, W) Box observation, got {space}")
    return space.shape  # type: ignore[return-value]


def conv_stack(in_channels: int, channels: tuple[int, ...], kernel_size: int, activation: str) -> nn.Sequential:
    """``same``-padded convolutions with an activation after each: translation equivariant."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size={kernel_size}; allowed an odd integer >= 1 (same padding)")
    layers: list[nn.Module] = []
    c = in_channels
    for width in channels:
        if int(width) < 1:
            raise ValueError(f"channels={channels}; every width must be >= 1")
        layers += [nn.Conv2d(c, int(width), kernel_size, padding=kernel_size // 2), _activation(activation)()]
        c = int(width)
    return nn.Sequential(*layers)


class ImageIdentity(BaseFeaturesExtractor):
    """Passes the image observation through unchanged (SB3's default would flatten it)."""

    def __init__(self, observation_space: gym.spaces.Box):
        super().__init__(observation_space, features_dim=int(np.prod(observation_space.shape)))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations


class ConvActorCritic(nn.Module):
    """The actor's action image and the critic's pooled features from one image observation.

    Parameters
    ----------
    observation_space: ``Box((C, H, W))``.
    channels: widths of the hidden convolutions (actor and critic each have their own).
    kernel_size: odd kernel size of every convolution.
    activation: ``tanh``, ``relu``, ``elu`` or ``gelu``.
    """

    def __init__(self, observation_space: gym.spaces.Box, channels=(16, 16), kernel_size: int = 3,
                 activation: str = "tanh"):
        super().__init__()
        c, _, _ = _check_image_space(observation_space)
        channels = tuple(int(w) for w in channels)
        if not channels:
            raise ValueError("channels must name at least one hidden width")
        self.actor_body = conv_stack(c, channels, kernel_size, activation)
        self.actor_out = nn.Conv2d(channels[-1], 1, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.actor_out.weight)  # starts at "no correction"
        nn.init.zeros_(self.actor_out.bias)
        self.critic_body = conv_stack(c, channels, kernel_size, activation)
        self.latent_dim_pi = int(np.prod(observation_space.shape[1:]))
        self.latent_dim_vf = 2 * channels[-1]

    def forward_actor(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor_out(self.actor_body(obs)).flatten(1)

    def forward_critic(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.critic_body(obs)
        return torch.cat([h.mean(dim=(2, 3)), (h * h).mean(dim=(2, 3))], dim=1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(obs), self.forward_critic(obs)


class ConvActorCriticPolicy(ActorCriticPolicy):
    """PPO/A2C policy for the AO envs: the fully convolutional actor and critic of :class:`ConvActorCritic`.

    Use it by class path: ``policy: "astrogym.agents.adaptive_optics.cnn:ConvActorCriticPolicy"``.

    Parameters
    ----------
    observation_space, action_space, lr_schedule: as SB3 passes them; the action space must be
        the observation's grid ``Box((H, W))``.
    channels, kernel_size, activation: the convolutional stacks (:class:`ConvActorCritic`).
    log_std_init: the initial log standard deviation of the exploration noise, one shared by all
        actuators.
    **kwargs: the rest of :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s keywords
        (``optimizer_class``, ``optimizer_kwargs``...); ``use_sde`` is not supported.
    """

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, lr_schedule,
                 channels=(16, 16), kernel_size: int = 3, activation: str = "tanh", log_std_init: float = -1.0,
                 **kwargs: Any):
        shape = _check_image_space(observation_space)
        if not isinstance(action_space, gym.spaces.Box) or tuple(action_space.shape) != tuple(shape[1:]):
            raise ValueError(f"action space {action_space} must be a Box on the observation's grid {shape[1:]}")
        if kwargs.get("use_sde"):
            raise ValueError("use_sde is not supported by ConvActorCriticPolicy (its noise is one shared std)")
        self._conv = {"channels": tuple(int(w) for w in channels), "kernel_size": int(kernel_size),
                      "activation": str(activation)}
        kwargs.setdefault("features_extractor_class", ImageIdentity)
        kwargs["normalize_images"] = False
        kwargs["ortho_init"] = False  # the actor's output layer starts at zero instead
        super().__init__(observation_space, action_space, lr_schedule, log_std_init=log_std_init, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = ConvActorCritic(self.observation_space, **self._conv)

    def _build(self, lr_schedule) -> None:
        self._build_mlp_extractor()
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ValueError(f"ConvActorCriticPolicy needs a Gaussian action distribution, got {self.action_dist}")
        self.action_net = nn.Identity()  # the actor's last convolution already is the mean action image
        self.log_std = nn.Parameter(torch.full((1,), float(self.log_std_init)))
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._conv)
        return data


class ConvFeaturesExtractor(BaseFeaturesExtractor):
    """A convolutional encoder for SB3's dense heads (SAC, TD3): convolutions, then mean and max pooling.

    Parameters
    ----------
    observation_space: ``Box((C, H, W))``.
    channels, kernel_size, activation: as :class:`ConvActorCritic`.
    features_dim: width of the linear layer after pooling.
    """

    def __init__(self, observation_space: gym.spaces.Box, channels=(16, 16), kernel_size: int = 3,
                 activation: str = "tanh", features_dim: int = 64):
        c, _, _ = _check_image_space(observation_space)
        super().__init__(observation_space, features_dim=int(features_dim))
        channels = tuple(int(w) for w in channels)
        self.body = conv_stack(c, channels, kernel_size, activation)
        self.head = nn.Sequential(nn.Linear(2 * channels[-1], int(features_dim)), _activation(activation)())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        h = self.body(observations)
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))
