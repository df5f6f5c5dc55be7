"""Shared guards of the torch bridge: seeds and generators, memory, one-line errors.

- `as_generator` turns ``None``, an int seed or a ``torch.Generator`` into a generator
  (``None`` is seed 0: erftheory never draws from torch's global generator).
- `seeded_global_rng` runs a block with torch's global generator forked and seeded from
  a generator, so code that does draw from it (dropout masks, a model's own noise) is
  reproducible too and the caller's global state is left as it was.
- `is_out_of_memory`, `out_of_memory_as`, `one_line`, `describe_model`: turning raw
  torch failures into the one-line `erftheory.ERFValueError` / `erftheory.ERFTypeError`
  messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .._errors import ERFError, ERFTypeError, ERFValueError

__all__ = [
    "MAX_SEED",
    "as_generator",
    "check_seed",
    "derived_seed",
    "describe_model",
    "is_out_of_memory",
    "one_line",
    "out_of_memory_as",
    "seeded_global_rng",
    "wrap_exception",
]

MAX_SEED = 2**64 - 1
"""The largest seed a ``torch.Generator`` takes."""

_OOM_MARKERS = (
    "out of memory",
    "not enough memory",
    "defaultcpuallocator",
    "can't allocate memory",
    "cannot allocate memory",
    "tried to allocate",
    "bad_alloc",
)


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int in ``0 .. 2**64 - 1`` (the range of ``torch.Generator``)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ERFTypeError(
            f"{name} must be an int in 0..2**64-1 or a torch.Generator, got {seed!r} of type "
            f"{type(seed).__name__}"
        )
    if not 0 <= int(seed) <= MAX_SEED:
        raise ERFValueError(f"{name} must be in 0..2**64-1, got {seed!r}")
    return int(seed)


def as_generator(value: Any, name: str = "generator", *, cpu: bool = False) -> torch.Generator:
    """A ``torch.Generator`` from ``None`` (seed 0), an int seed, or a generator (as is).

    Args:
        value: the argument.
        name: its name, for the message.
        cpu: refuse a generator that is not on the CPU.
    """
    if value is None:
        return torch.Generator().manual_seed(0)
    if isinstance(value, torch.Generator):
        if cpu and value.device.type != "cpu":
            raise ERFValueError(
                f"{name} must be a CPU torch.Generator (random numbers are drawn on the CPU "
                f"so that every device sees the same ones), got one on {value.device}"
            )
        return value
    return torch.Generator().manual_seed(check_seed(value, name))


def derived_seed(generator: torch.Generator, salt: bytes) -> int:
    """A seed computed from the generator's state and ``salt``; the state is not advanced."""
    state = generator.get_state().numpy().tobytes()
    digest = hashlib.sha256(salt + state).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Fork torch's global generator (CPU and ``device``) and seed it with ``seed``."""
    cuda = device is not None and device.type == "cuda"
    devices = [device.index if device.index is not None else 0] if cuda else []  # type: ignore[union-attr]
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator failure (CPU or GPU)."""
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(m in text for m in _OOM_MARKERS)
    return False


@contextlib.contextmanager
def out_of_memory_as(message: Callable[[str], str]) -> Iterator[None]:
    """Turn an allocator failure inside the block into an `ERFValueError`.

    Its message is ``message(one_line(failure))``, and the failure is chained as
    ``__cause__``; erftheory's own errors and every other exception pass unchanged.

    Example:
        >>> with out_of_memory_as(lambda e: f"the batch ran out of memory ({e})"):
        ...     raise MemoryError("no room")
        Traceback (most recent call last):
        erftheory.ERFValueError: the batch ran out of memory (MemoryError: no room)
    """
    try:
        yield
    except ERFError:
        raise
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        raise ERFValueError(message(one_line(e))) from e


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``Type: first line of the message`` of an exception, at most ``limit`` characters."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else "(no message)"
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return f"{type(exc).__name__}: {text}"


def describe_model(model: Any) -> str:
    """``'the model Foo'`` with the class's qualified name."""
    cls = type(model)
    return f"the model {cls.__qualname__}"


def wrap_exception(exc: Exception, message: str) -> ERFError:
    """An `ERFTypeError` (for a ``TypeError``) or `ERFValueError` with ``message``."""
    if isinstance(exc, TypeError):
        return ERFTypeError(message)
    return ERFValueError(message)
