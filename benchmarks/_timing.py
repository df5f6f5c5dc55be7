"""The best-of-``runs`` timer shared by the guard benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(
    fn: Callable[[], Any], runs: int = 3, refused: type[BaseException] = Exception
) -> tuple[float, Any]:
    """The fastest of ``runs`` calls of ``fn``, in seconds, with its outcome.

    The outcome is what ``fn`` returned, or the ``refused`` exception it raised (any
    other exception propagates).
    """
    best = float("inf")
    outcome: Any = None
    for _ in range(runs):
        start = time.perf_counter()
        try:
            outcome = fn()
        except refused as exc:
            outcome = exc
        best = min(best, time.perf_counter() - start)
    return best, outcome
