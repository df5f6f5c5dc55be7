"""The old path of the engine table, now `erftheory.engines` (``ENGINES``, ``select``).

Kept for callers: the names below are those of `erftheory.engines`, and `select` and
`tilt_applicable` still take a `Kernel`.
"""

from __future__ import annotations

from typing import Any

from .engines import DEFAULT_DPS, ENGINES, METHOD_NAMES, Engine, KernelPower, require_nonzero_sum
from .engines import select as _select
from .kernel import Kernel

__all__ = [
    "DEFAULT_DPS",
    "ENGINES",
    "METHOD_NAMES",
    "Engine",
    "require_nonzero_sum",
    "select",
    "tilt_applicable",
]


def select(kernel: Kernel, method: str, n: int = 0) -> tuple[str, str]:
    """`erftheory.engines.select` for ``n`` layers of ``kernel``: ``(engine, reason)``."""
    return _select(KernelPower(kernel, n), method)


def tilt_applicable(kernel: Kernel) -> bool:
    """True when the ``float`` engine can tilt this kernel (nonnegative, positive sum, ...)."""
    return KernelPower(kernel, 0).tiltable


def __getattr__(name: str) -> Any:  # the arb engine's constants, imported when asked for
    if name in ("CAUCHY_SECONDS", "ARB_WORK"):
        from .engines import arb

        return getattr(arb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
