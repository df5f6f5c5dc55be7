"""The old path of `erftheory.torch.reproduce` (``erftheory reproduce``), kept for imports.

``from erftheory.reproduce import reproduce`` still works; the module moved under
`erftheory.torch` with the rest of the torch-dependent code. Importing this module
imports torch.
"""

from __future__ import annotations

from typing import Any

from .torch import reproduce as _impl
from .torch.reproduce import *  # noqa: F403
from .torch.reproduce import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    """The moved module's other names (its helpers), as they were here."""
    return getattr(_impl, name)
