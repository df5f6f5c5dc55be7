"""Shared fixtures: hypothesis profiles and a clean memory limit per test."""

from __future__ import annotations

import os
from typing import Any

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


@pytest.fixture
def fixed_constant_pool() -> Any:
    """Make the generated cases independent of the modules earlier tests loaded (fuzz suites).

    Hypothesis mixes constants found in the project's loaded modules into what it
    draws, so the same derandomized test would draw other cases after other tests ran.
    The pool is held empty here (Hypothesis' own constants remain), so the cases are
    the same alone and in the full suite. Private API: skipped if it changes.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover
        yield
        return
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if not hasattr(providers, "_get_local_constants") or cache is None:  # pragma: no cover
        yield
        return
    saved = providers._get_local_constants
    providers._get_local_constants = providers.Constants  # an empty pool
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = saved
        cache.clear()


@pytest.fixture
def one_torch_thread() -> Any:
    """Small tensors: one torch thread, so that no op waits for a busy machine's second core.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; torch is
    imported only here, so the core-only run never needs it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
