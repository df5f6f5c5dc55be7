"""The old path of `erftheory.torch.trace` (`from_torch`), kept for existing imports.

``from erftheory.trace import from_torch`` still works; the module moved under
`erftheory.torch` with the rest of the torch-dependent code. With torch installed this
module re-exports it (importing torch); without torch, ``from_torch`` is a stand-in
that raises `erftheory.MissingDependencyError` when called, as before the move.
"""

from __future__ import annotations

import importlib.util
from typing import Any

if importlib.util.find_spec("torch") is not None:
    from .torch import trace as _impl
    from .torch.trace import *  # noqa: F403
    from .torch.trace import __all__

    def __getattr__(name: str) -> Any:
        """The moved module's other names (its helpers), as they were here."""
        return getattr(_impl, name)

else:
    from . import _from_torch_without_torch as from_torch

    __all__ = ["from_torch"]
