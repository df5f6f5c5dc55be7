"""What the float-valued engines (``fft``, ``float``, ``arb``) share: normalised values first.

Their results hold the normalised profile as float64; the unnormalised coefficients are
those values times $(\\sum_m w(m))^n$, where float64 holds that.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .._errors import ERFValueError
from . import exact
from .base import BaseResult, require_nonzero_sum

__all__ = ["ArrayResult", "FloatTransferResult", "exact_outer"]


def exact_outer(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(u, v)`` with ``outer(u, v) == w`` exactly in float64, or None."""
    i, j = np.unravel_index(int(np.argmax(np.abs(w))), w.shape)
    u = w[:, j] / w[i, j]
    v = w[i, :].copy()
    return (u, v) if np.array_equal(np.outer(u, v), w) else None


class ArrayResult(BaseResult):
    """Shared parts of the float-valued engines (normalised values first)."""

    _bound: float | None = None

    def _check(self, factor: float = 3.0) -> None:
        exact.guard(
            exact.mul(math.prod(self.shape), factor * 8.0), "the float profile", "use fewer layers"
        )

    @property
    def abs_error_bound(self) -> float | None:
        """The engine's bound, known once the values are (None for the tilted engine)."""
        self.normalized()
        return self._bound

    def coefficients(self) -> list[Any]:
        return self.coefficients_array().tolist()  # type: ignore[no-any-return]

    def coefficients_array(self) -> np.ndarray:
        total = self.source.total  # exact for exact kernels; correctly rounded floats
        if total == 0:
            raise ERFValueError(
                "the kernel's weights sum to zero; use method='exact' for its "
                "unnormalised coefficients"
            )
        if isinstance(total, float) and not math.isfinite(total):
            raise ERFValueError(
                "the kernel's weights sum to more than float64 holds (1.8e308), so the "
                "unnormalised coefficients are beyond float64; use normalized() or "
                "log_normalized()"
            )
        log10 = (
            math.log10(abs(total))
            if not isinstance(total, Fraction)
            else math.log10(abs(total.numerator)) - math.log10(total.denominator)
        )
        logmax = exact.mul(self.source.n, log10)
        if abs(logmax) > 300:
            shown = f"1e{logmax:.0f}" if math.isfinite(logmax) else "1e±inf"
            raise ERFValueError(
                f"the unnormalised coefficients reach about {shown}, beyond float64; "
                f"use normalized() or log_normalized()"
            )
        return self.normalized() * (exact.fl(total) ** self.source.n)

    def coefficient(self, index: tuple[int, ...]) -> Any:
        return float(self.coefficients_array()[index])

    def compute(self) -> None:
        self.normalized()


class FloatTransferResult(ArrayResult):
    r"""The ``float`` result of a network's float64 transfer polynomial (power 1).

    The normalised values are the coefficients over their sum; `abs_error_bound` is the
    transfer's error bound over $|T(1)|$ plus the rounding of that division.
    """

    def _normalized(self) -> np.ndarray:
        total = float(self.source.total)
        require_nonzero_sum(total)
        values = self.source.float_rows() / total
        err = getattr(self.source, "error", 0.0)
        self._bound = err / abs(total) + 2.0**-52 * float(np.abs(values).max(initial=0.0))
        return values

    def _log_normalized(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(self.normalized(), 0.0))
