"""The exceptions erftheory raises.

Every one derives from `ERFError`, so ``except erftheory.ERFError`` catches all of them,
and each also refines the builtin it subclasses, so ``except ValueError`` (or
``TypeError``, ``ImportError``) keeps working. The messages name the offending
argument, its value and the valid range.

- `ERFValueError` (a `ValueError`): right type, value outside the valid range.
- `SizeLimitError` (an `ERFValueError`): the work or memory a call would need is over
  the configured limit; raised before anything large is allocated.
- `ERFTypeError` (a `TypeError`): a type erftheory cannot work with.
- `MissingDependencyError` (an `ImportError`): an optional dependency is missing; the
  message names the extra to install.

`with_context` adds context (a file path, a layer) to an error's message without
changing its type or its attributes.
"""

from __future__ import annotations

import copy

__all__ = [
    "ERFError",
    "ERFTypeError",
    "ERFValueError",
    "MissingDependencyError",
    "SizeLimitError",
    "with_context",
]


class ERFError(Exception):
    """The base class of every error erftheory raises on purpose."""


class ERFValueError(ERFError, ValueError):
    """An argument has the right type but a value outside its valid range."""


class ERFTypeError(ERFError, TypeError):
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

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.estimate, self.limit))


class MissingDependencyError(ERFError, ImportError):
    """An optional dependency is not installed.

    Attributes:
        package: the missing import name (``"torch"``, ``"matplotlib"``).
        extra: the erftheory extra that installs it (``"torch"``, ``"plot"``).
    """

    def __init__(self, package: str, extra: str, what: str = "this") -> None:
        super().__init__(
            f"{what} needs {package}, which is not installed: pip install 'erftheory[{extra}]'",
            name=package,
        )
        self.package = package
        self.extra = extra
        self.what = what

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.package, self.extra, self.what))


def with_context(exc: ERFError, context: str) -> ERFError:
    """A copy of ``exc`` whose message starts with ``context: ``, same type and attributes.

    The message is left alone where it already starts with ``context``. Use as
    ``raise with_context(exc, path) from None``.

    Example:
        >>> e = with_context(SizeLimitError("too big", estimate=10, limit=5), "net.json")
        >>> type(e).__name__, str(e), e.estimate
        ('SizeLimitError', 'net.json: too big', 10)
    """
    message = str(exc)
    if message.startswith(context):
        return exc
    new = copy.copy(exc)
    new.args = (f"{context}: {message}", *exc.args[1:])
    if isinstance(new, ImportError):  # ImportError prints its msg attribute, not args
        new.msg = new.args[0]
    return new


for _cls in (ERFError, ERFValueError, ERFTypeError, SizeLimitError, MissingDependencyError):
    _cls.__module__ = "erftheory"
