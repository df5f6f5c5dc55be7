"""The memory limit that guards every large allocation."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ._errors import ERFValueError, SizeLimitError

__all__ = ["check_size", "format_bytes", "get_memory_limit", "memory_limit", "set_memory_limit"]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3
"""2 GiB: the default ceiling on the estimated memory of one result."""


def _from_env() -> int:
    raw = os.environ.get("ERFTHEORY_MEMORY_LIMIT")
    if raw is None or raw.strip() == "":
        return DEFAULT_MEMORY_LIMIT
    try:
        return _parse_bytes(raw)
    except ERFValueError:
        return DEFAULT_MEMORY_LIMIT


_limit: int = _from_env()

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
}


def _parse_bytes(value: int | str) -> int:
    if isinstance(value, bool):
        raise ERFValueError(f"memory limit must be a positive number of bytes, got {value!r}")
    if isinstance(value, int):
        nbytes = value
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("kmgtib")
        unit = text[len(number) :]
        if unit not in _UNITS or not number.replace(".", "", 1).isdigit():
            raise ERFValueError(
                f"memory limit {value!r} is not a size; "
                f"use bytes or a unit such as '512MiB', '4GiB'"
            )
        nbytes = int(float(number) * _UNITS[unit])
    else:
        raise ERFValueError(
            f"memory limit must be an int or a string such as '4GiB', got {value!r}"
        )
    if nbytes <= 0:
        raise ERFValueError(f"memory limit must be positive, got {value!r}")
    return nbytes


def get_memory_limit() -> int:
    """Return the current memory limit in bytes (default 2 GiB).

    The environment variable ``ERFTHEORY_MEMORY_LIMIT`` (for example ``8GiB``)
    sets the initial value.
    """
    return _limit


def set_memory_limit(limit: int | str) -> int:
    """Set the memory limit; return the previous one.

    Args:
        limit: bytes, or a string with a unit such as ``"512MiB"`` or ``"8GiB"``.

    Example:
        >>> import erftheory
        >>> old = erftheory.set_memory_limit("8GiB")
        >>> erftheory.get_memory_limit() == 8 * 1024**3
        True
        >>> _ = erftheory.set_memory_limit(old)
    """
    global _limit
    previous = _limit
    _limit = _parse_bytes(limit)
    return previous


@contextlib.contextmanager
def memory_limit(limit: int | str) -> Iterator[int]:
    """Temporarily set the memory limit inside a ``with`` block.

    Example:
        >>> import erftheory
        >>> with erftheory.memory_limit("1MiB"):
        ...     erftheory.profile(erftheory.Kernel([1, 1, 1]), layers=10**5).coefficients
        Traceback (most recent call last):
        ...
        erftheory.SizeLimitError: the exact coefficients would need about ...
    """
    previous = set_memory_limit(limit)
    try:
        yield _limit
    finally:
        set_memory_limit(previous)


def format_bytes(n: float) -> str:
    """Render a byte count with a binary unit (``"3.2 GiB"``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_size(estimate: float, what: str, hint: str = "") -> None:
    """Raise `SizeLimitError` when ``estimate`` bytes exceed the limit."""
    if estimate > _limit:
        est = int(min(estimate, 2**200))
        message = (
            f"{what} would need about {format_bytes(estimate)}, above the memory limit of "
            f"{format_bytes(_limit)}"
        )
        if hint:
            message += f"; {hint}"
        raise SizeLimitError(message, est, _limit)
