"""The old path of `erftheory.torch.trace` (`from_torch`), kept for existing imports.

``from erftheory.trace import from_torch`` still works; the module moved under
`erftheory.torch` with the rest of the torch-dependent code. Importing this module
imports torch.
"""

from __future__ import annotations

from typing import Any

from .torch import trace as _impl
from .torch.trace import *  # noqa: F403
from .torch.trace import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    """The moved module's other names (its helpers), as they were here."""
    return getattr(_impl, name)
