"""Shared fixtures: every registered astrogym id joins the harness tests automatically."""

from __future__ import annotations

import pytest

import astrogym  # noqa: F401
from astrogym.envs import ENV_SPECS

ALL_IDS = [spec.id for spec in ENV_SPECS]


@pytest.fixture(params=ALL_IDS)
def env_id(request) -> str:
    return request.param
