"""Shared fixtures: hypothesis profiles and a clean memory limit per test."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import erftheory

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def _reset_memory_limit():
    """No test leaks a changed memory limit into another."""
    before = erftheory.get_memory_limit()
    yield
    erftheory.set_memory_limit(before)
