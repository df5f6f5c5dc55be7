"""Shared fixtures: hypothesis profiles, a clean memory limit and one torch thread per test."""

from __future__ import annotations

import os
import sys
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


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """One torch thread per test, when a test module has imported torch.

    The tests' tensors are small: on a busy 2-core machine torch's second thread waits
    for a time slice on every operation, which made single tests up to 20x slower (a
    Monte Carlo test of 1500 tiny networks: 126 s with 2 threads at load average 7,
    6.7 s with one). Tests that need more threads set them; the count is restored
    after each test. torch is never imported here (the core-only run lacks it).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread() -> Any:
    """The same as the automatic `_one_torch_thread` (kept for modules that name it)."""
    yield
