"""Shared test configuration: hypothesis profiles, devices, warnings as errors (pyproject)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# "dev": random, moderate; "ci": derandomized so CI is reproducible; "fast": smoke runs;
# "thorough": long sweeps by hand (HYPOTHESIS_PROFILE=thorough make test).
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fast", max_examples=15, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Every available device: the CPU always, a CUDA GPU when present."""
    return request.param
