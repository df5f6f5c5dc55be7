r"""The protocol every engine's result follows, and the parts all results share.

An engine turns a `erftheory.engines.source.Source` (a base polynomial and a power $n$,
Eq. 9) into a `Result`: its coefficients in the engine's own number type, the normalised
values as float64, their logarithms, and the moments of Eq. 10. `erftheory.Profile` is
a thin facade over one. Indices are tuples, one entry per axis, in 1-D too; only the
public surface (`erftheory.Profile`) turns one-entry tuples into ints.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._errors import ERFTypeError, ERFValueError
from ..kernel import format_value

if TYPE_CHECKING:
    from .source import Source

__all__ = ["BaseResult", "Result", "require_nonzero_sum"]


class Result(Protocol):
    """What `erftheory.Profile` reads from an engine.

    Attributes:
        method: the engine asked for (``"float"`` also when it ran the ``fft``
            algorithm because tilting does not apply).
        reason: why that engine (and which algorithm inside it) was chosen.
        dps: the ``dps`` it was built with (``arb`` only; None otherwise).
        source: the `erftheory.engines.source.Source` it powers.
        shape: the coefficient array's shape, one entry per axis.
        origin: the index of the pixel under the output unit, one entry per axis.
    """

    method: str
    reason: str
    dps: int | None
    source: Source
    shape: tuple[int, ...]
    origin: tuple[int, ...]

    def coefficients(self) -> list[Any]:
        """All coefficients, not normalised: a list (1-D) or a list of rows (2-D)."""

    def coefficient(self, index: tuple[int, ...]) -> Any:
        """One coefficient by its (checked) index."""

    def check_index(self, index: tuple[int, ...], what: str) -> tuple[int, ...]:
        """``index`` as ints after checking its length, type and range."""

    def total(self) -> Any:
        r"""$(\sum_m b(m))^n$, the sum of the coefficients."""

    def moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        """``(mean, covariance)`` of the normalised profile (Eq. 10), per axis."""

    def normalized(self) -> np.ndarray:
        """The coefficients divided by their sum, float64 (a fresh copy)."""

    def log_normalized(self) -> np.ndarray:
        """Natural logarithms of the normalised values, without underflow."""

    @property
    def abs_error_bound(self) -> float | None:
        """A bound on the absolute error of every normalised value, or None."""

    def balls(self) -> list[list[Any]]:
        """Certified balls for the normalised values, as rows (``arb`` only)."""

    def ball(self, index: tuple[int, ...]) -> Any:
        """One certified ball by index (``arb`` only)."""

    def compute(self) -> None:
        """Run the engine now, in its native number type."""


def require_nonzero_sum(total: Any, weights: Any = None) -> None:
    """Raise the one error for normalising a kernel whose weights sum to zero."""
    if total == 0:
        shown = f" ({format_value(list(weights), short=True)})" if weights is not None else ""
        raise ERFValueError(
            f"the kernel's weights sum to zero{shown}; the profile cannot be normalised"
        )


class BaseResult:
    """The parts of `Result` every engine shares: geometry, index checks, the total and
    the moments (from the source), the cached normalised array, the checks before
    log-values, and the refusals of `balls` and `ball` outside the ``arb`` engine.

    Engines define `coefficients`, `coefficient`, `compute`, ``_normalized`` and
    ``_log_normalized``.
    """

    method = ""
    reason = "requested"
    dps: int | None = None

    def __init__(self, source: Source) -> None:
        self.source = source
        self.shape: tuple[int, ...] = source.out_shape
        self.origin: tuple[int, ...] = source.origin
        self._normalized_values: np.ndarray | None = None
        self._moments: tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]] | None = None

    @property
    def ndim(self) -> int:
        """1 or 2."""
        return len(self.shape)

    # ------------------------------------------------------------ indices
    def check_index(self, index: tuple[int, ...], what: str) -> tuple[int, ...]:
        """``index`` as ints after checking its length, type and range.

        A wrong count or an index outside the shape is an `ERFValueError`; an index that is
        not an integer (a float, a bool, a string) an `ERFTypeError`.
        """
        shown = format_value(index, short=True)
        if len(index) != self.ndim:
            raise ERFValueError(f"{what}() takes {self.ndim} index(es), got {shown}")
        for i, s in zip(index, self.shape, strict=True):
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise ERFTypeError(
                    f"{what}() takes integer indices, got {shown} (a {type(i).__name__})"
                )
            if not 0 <= i < s:
                raise ERFValueError(
                    f"index {shown} is outside the profile's shape "
                    f"{format_value(self.shape, short=True)}"
                )
        return tuple(int(i) for i in index)

    # ------------------------------------------------------------ what needs no engine
    def total(self) -> Any:
        r"""$(\sum_m b(m))^n$ (`erftheory.engines.source.Source.total_power`)."""
        return self.source.total_power()

    def moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        """``(mean, covariance)`` (`erftheory.engines.source.Source.moments`), computed once."""
        if self._moments is None:
            self._moments = self.source.moments()
        return self._moments

    # ------------------------------------------------------------ floats
    def normalized(self) -> np.ndarray:
        """The normalised values (computed once, by ``_normalized``), a fresh copy."""
        if self._normalized_values is None:
            arr = self._normalized()
            arr.setflags(write=False)
            self._normalized_values = arr
        return self._normalized_values.copy()

    def log_normalized(self) -> np.ndarray:
        """The logarithms of the normalised values (by ``_log_normalized``), after checking
        that they exist: numbers, no negative weights."""
        if self.source.domain == "symbolic":
            raise ERFTypeError("log_normalized() needs numbers; this profile is symbolic")
        if self.source.has_negative:
            raise ERFValueError(
                "log_normalized() needs nonnegative weights; this kernel has negative ones, so "
                "its profile has negative values — use normalized()"
            )
        return self._log_normalized()

    def _normalized(self) -> np.ndarray:  # pragma: no cover - every engine defines it
        raise NotImplementedError

    def _log_normalized(self) -> np.ndarray:  # pragma: no cover - every engine defines it
        raise NotImplementedError

    @property
    def abs_error_bound(self) -> float | None:
        """None: no absolute bound (engines with one override this)."""
        return None

    # ------------------------------------------------------------ balls
    def balls(self) -> list[list[Any]]:
        """Refused: only the ``arb`` engine has balls."""
        raise ERFValueError(f"balls() needs method='arb'; this profile used {self.method!r}")

    def ball(self, index: tuple[int, ...]) -> Any:
        """Refused: only the ``arb`` engine has balls."""
        raise ERFValueError(f"ball() needs method='arb'; this profile used {self.method!r}")
