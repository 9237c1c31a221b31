"""Shared test helpers: running external checkers with the warnings astrogym expects from them."""

from __future__ import annotations

import warnings

import numpy as np


def sb3_check_env(env) -> None:
    """stable-baselines3's ``check_env`` with every warning an error, except two expected hints.

    SB3 only recommends flat observations and uint8 [0, 255] images; astrogym keeps channel-first
    float histories and images (MLP policies flatten them; CNN policies take normalize_images=False),
    and NatureCNN's 36x36 minimum does not fit the 21x21 AO preset (it has its own CNN).
    """
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        warnings.filterwarnings("ignore", message=".*is an image but its `dtype`.*")
        warnings.filterwarnings("ignore", message=".*is an image but the upper and lower bounds.*")
        warnings.filterwarnings("ignore", message=".*minimal resolution for an image.*")
        check_env(env, warn=True)


def assert_finite_inside(env, obs, reward=0.0) -> None:
    """Every leaf of ``obs`` finite and ``obs`` inside ``env.observation_space``; ``reward`` finite."""
    leaves = obs.values() if isinstance(obs, dict) else [obs]
    assert all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in leaves), "non-finite observation"
    assert env.observation_space.contains(obs), "observation outside the observation space"
    assert np.isfinite(reward), f"non-finite reward {reward!r}"
