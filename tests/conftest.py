"""Shared fixtures: every registered astrogym id joins the harness tests automatically."""

from __future__ import annotations

import pytest

import astrogym  # noqa: F401
from astrogym.envs import ENV_SPECS

ALL_IDS = [spec.id for spec in ENV_SPECS]


@pytest.fixture(params=ALL_IDS)
def env_id(request) -> str:
    return request.param


# Property-based tests (hypothesis): a fixed, derandomised "ci" profile keeps the suite at a few
# minutes and every run identical; HYPOTHESIS_PROFILE=thorough explores far more inputs locally.
from hypothesis import HealthCheck, settings  # noqa: E402
import os  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, suppress_health_check=_SLOW_OK,
                          print_blob=True)
settings.register_profile("thorough", max_examples=600, deadline=None, suppress_health_check=_SLOW_OK,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
