"""The old path of `erftheory.torch.reproduce` (``erftheory reproduce``), kept for imports.

``from erftheory.reproduce import reproduce`` still works; the module moved under
`erftheory.torch` with the rest of the torch-dependent code. With torch installed this
module re-exports it (importing torch); without torch, ``reproduce`` is a stand-in that
raises `erftheory.MissingDependencyError` when called.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ._errors import MissingDependencyError

if importlib.util.find_spec("torch") is not None:
    from .torch import reproduce as _impl
    from .torch.reproduce import *  # noqa: F403
    from .torch.reproduce import __all__

    def __getattr__(name: str) -> Any:
        """The moved module's other names (its helpers), as they were here."""
        return getattr(_impl, name)

else:
    __all__ = ["reproduce"]

    def reproduce(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        """`erftheory.torch.reproduce.reproduce`, which needs torch (not installed)."""
        raise MissingDependencyError("torch", "reproduce", "reproduce")
