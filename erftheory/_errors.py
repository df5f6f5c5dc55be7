"""The exceptions erftheory raises.

Each refines the builtin it subclasses, so ``except ValueError`` keeps working; the
messages name the offending argument, its value and the valid range.
"""

from __future__ import annotations

__all__ = ["ERFTypeError", "ERFValueError", "SizeLimitError"]


class ERFValueError(ValueError):
    """An argument has the right type but a value outside its valid range."""


class ERFTypeError(TypeError):
    """An argument has a type erftheory cannot work with."""


class SizeLimitError(ERFValueError):
    """A computation would need more memory than the configured limit allows.

    Raised *before* anything large is allocated: python-flint aborts the whole
    process when an allocation fails, so the estimate is an upper bound.
    """

    def __init__(self, message: str, estimate: int, limit: int) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


for _cls in (ERFValueError, ERFTypeError, SizeLimitError):
    _cls.__module__ = "erftheory"
