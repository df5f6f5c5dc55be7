"""The memory limit that guards every large allocation."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
from collections.abc import Iterator
from fractions import Fraction

from ._errors import ERFValueError, SizeLimitError

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "ENV_VAR",
    "MAX_MEMORY_LIMIT",
    "check_size",
    "format_bytes",
    "get_memory_limit",
    "memory_limit",
    "set_memory_limit",
]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3
"""2 GiB: the default ceiling on the estimated memory of one result."""

MAX_MEMORY_LIMIT = 1024**6
"""1 EiB: the largest memory limit accepted (no machine has more)."""

ENV_VAR = "ERFTHEORY_MEMORY_LIMIT"
"""The environment variable read at import for the initial memory limit."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
    "p": 1024**5,
    "pb": 1024**5,
    "pib": 1024**5,
    "e": 1024**6,
    "eb": 1024**6,
    "eib": 1024**6,
}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-z]*)", re.ASCII)
_FORMS = (
    "write bytes or a number with a unit, such as '512MiB' or '4GiB' (units B, K or KiB, "
    "M or MiB, G or GiB, T or TiB, P or PiB, E or EiB)"
)


def _show(value: object) -> str:
    """A short repr for messages: never a huge one, never a huge int converted to text."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an int of {value.bit_length()} bits"
    text = repr(value[:41] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:39] + "…"


def _parse_bytes(value: object) -> int:
    """Bytes from an int or a string such as ``"512MiB"``; `ERFValueError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise ERFValueError(
            f"memory limit must be an int (bytes) or a string such as '4GiB', got "
            f"{type(value).__name__} {_show(value)}"
        )
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        m = _SIZE.fullmatch(text) if len(text) <= 40 else None
        if m is None or m.group(2) not in _UNITS:
            raise ERFValueError(f"memory limit {_show(value)} is not a size; {_FORMS}")
        nbytes = int(Fraction(m.group(1)) * _UNITS[m.group(2)])  # exact: no float overflow
    else:
        nbytes = int(value)
    if not 1 <= nbytes <= MAX_MEMORY_LIMIT:
        raise ERFValueError(
            f"memory limit {_show(value)} is outside the valid range, 1 B to 1 EiB (2**60 bytes)"
        )
    return nbytes


def _from_env() -> tuple[int, ERFValueError | None]:
    """The initial limit, and the error to raise at first use when the variable is invalid.

    An invalid ``ERFTHEORY_MEMORY_LIMIT`` never breaks ``import erftheory``: the first
    call that needs the limit raises an `ERFValueError` naming the variable, until
    `set_memory_limit` (or `memory_limit`) sets one explicitly.
    """
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "":
        return DEFAULT_MEMORY_LIMIT, None
    try:
        return _parse_bytes(raw), None
    except ERFValueError as exc:
        return DEFAULT_MEMORY_LIMIT, ERFValueError(
            f"the environment variable {ENV_VAR}={_show(raw)} is invalid: {exc}; fix or "
            f"unset it, or call erftheory.set_memory_limit()"
        )


_limit, _env_error = _from_env()


def _current() -> int:
    if _env_error is not None:
        raise _env_error
    return _limit


def get_memory_limit() -> int:
    """Return the current memory limit in bytes (default 2 GiB).

    The environment variable ``ERFTHEORY_MEMORY_LIMIT`` (for example ``8GiB``) sets the
    initial value. When it holds something that is not a size, importing erftheory still
    works, and this function (like every guarded computation) raises `ERFValueError`
    naming the variable, until `set_memory_limit` sets a limit explicitly.
    """
    return _current()


def set_memory_limit(limit: int | str) -> int:
    """Set the memory limit; return the previous one.

    Args:
        limit: bytes (an int from 1 to 2**60), or a string with a unit such as
            ``"512MiB"`` or ``"8GiB"`` (B, KiB, MiB, GiB, TiB, PiB; K/KB and so on mean
            the same binary units).

    Returns:
        The previous limit in bytes (the 2 GiB default when ``ERFTHEORY_MEMORY_LIMIT``
        was invalid: setting a limit explicitly replaces the variable's value).

    Raises:
        ERFValueError: not a size, or outside 1 B to 1 EiB.

    Example:
        >>> import erftheory
        >>> old = erftheory.set_memory_limit("8GiB")
        >>> erftheory.get_memory_limit() == 8 * 1024**3
        True
        >>> _ = erftheory.set_memory_limit(old)
        >>> erftheory.set_memory_limit("1e400")
        Traceback (most recent call last):
        ...
        erftheory.ERFValueError: memory limit '1e400' is not a size; write bytes or ...
    """
    global _limit, _env_error
    new = _parse_bytes(limit)
    previous = _limit
    _limit, _env_error = new, None
    return previous


@contextlib.contextmanager
def memory_limit(limit: int | str) -> Iterator[int]:
    """Temporarily set the memory limit inside a ``with`` block.

    The previous state comes back on exit, an invalid ``ERFTHEORY_MEMORY_LIMIT``
    included.

    Example:
        >>> import erftheory
        >>> with erftheory.memory_limit("1MiB"):
        ...     erftheory.profile(erftheory.Kernel([1, 1, 1]), layers=10**5).coefficients
        Traceback (most recent call last):
        ...
        erftheory.SizeLimitError: the exact coefficients would need about ...
    """
    global _limit, _env_error
    saved = (_limit, _env_error)
    set_memory_limit(limit)
    try:
        yield _limit
    finally:
        _limit, _env_error = saved


_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(n: float) -> str:
    """Render a byte count with a binary unit (``"3.2 GiB"``); any int or float.

    Counts of 1024 EiB and more are written as a power of two.

    Example:
        >>> format_bytes(3 * 2**29), format_bytes(2**2000 + 5), format_bytes(float("inf"))
        ('1.5 GiB', 'about 2^2000 B', 'an unbounded amount')
    """
    if isinstance(n, float) and not math.isfinite(n):
        return "an unbounded amount"
    if abs(n) >= 1024**7:
        return f"about 2^{math.log2(abs(n)):.0f} B"  # log2 takes ints of any size
    x = float(n)
    for unit in _BINARY:
        if abs(x) < 1024 or unit == "EiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    raise AssertionError("unreachable")


def check_size(estimate: float, what: str, hint: str = "") -> None:
    """Raise `SizeLimitError` when ``estimate`` bytes exceed the limit.

    ``estimate`` is an int (any size: exact products of sizes need no float) or a float;
    a NaN estimate is refused as unbounded.
    """
    limit = _current()
    if isinstance(estimate, float) and math.isnan(estimate):
        estimate = math.inf
    if estimate > limit:
        est = int(min(estimate, 2**200))
        message = (
            f"{what} would need about {format_bytes(estimate)}, above the memory limit of "
            f"{format_bytes(limit)}"
        ).replace("about about", "about")
        if hint:
            message += f"; {hint}"
        raise SizeLimitError(message, est, limit)
