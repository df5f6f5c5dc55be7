r"""The engine registry: every way erftheory computes $V(z)^n$, in one table.

| name | kernels | result | error |
|---|---|---|---|
| ``exact`` | integer, rational (floats read as dyadic rationals) | ints, Fractions | none |
| ``fft`` | numeric | float64 | absolute, see `erftheory._fft` |
| ``float`` | numeric | float64 | $10^{-10}$ relative on normal values (weights $\ge 0$) |
| ``arb`` | numeric | float64 and balls | rigorous balls at ``dps`` digits |
| ``symbolic`` | any | sympy | none |

``auto`` picks by the kernel's domain and signs (`select`); `Profile.method` says which
engine ran and `Profile.engine_reason` why. Tests are parametrised over `ENGINES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from . import _exact, measures
from ._errors import ERFTypeError, ERFValueError
from .kernel import Kernel, format_value

__all__ = ["DEFAULT_DPS", "ENGINES", "Engine", "select"]

DEFAULT_DPS = 30
"""Decimal digits of the ``arb`` engine when ``dps`` is not given."""
CAUCHY_SECONDS = 0.007
r"""`erftheory._arb.cauchy_ball` takes about this many seconds per tap at ``dps=30``, times
$(\mathrm{prec}/132)^{1.8}$ (measured: k = 3, n = 10^5 at dps 30, 100, 300, 1000: 0.02,
0.07, 0.19, 4.4 s); `Profile.ball` refuses past the work limit from that estimate."""
ARB_WORK = 340.0
"""Work (`erftheory._exact.check_work` units) of the arb power per coefficient, per log2 of
the length and per bit of precision: 58 s for $k = 3$, $n = 10^5$ at 132 bits."""


@dataclass(frozen=True)
class Engine:
    """One registered engine: its name, the kernel domains it takes, and a summary."""

    name: str
    domains: tuple[str, ...]
    summary: str


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            "exact",
            ("integer", "rational", "float"),
            "python-flint integers: fmpz_poly power, the uniform three-term recurrence, "
            "fmpz_mpoly or Kronecker substitution in 2-D; no error",
        ),
        Engine(
            "fft",
            ("integer", "rational", "float"),
            "plain DTFT sampling, n-th power, inverse FFT; absolute error bound",
        ),
        Engine(
            "float",
            ("integer", "rational", "float"),
            "exponential tilting with small per-window FFTs; 1e-10 relative on normal floats",
        ),
        Engine(
            "arb",
            ("integer", "rational", "float"),
            "python-flint arb balls at dps digits; rigorous enclosures",
        ),
        Engine(
            "symbolic",
            ("integer", "rational", "float", "symbolic"),
            "sympy expressions: python-flint's fmpq_mpoly power for rational polynomial "
            "weights, the exact engine for numeric kernels, sympy's own power otherwise",
        ),
    )
}
METHOD_NAMES = ("auto", *ENGINES)


def _float_rows(kernel: Kernel) -> np.ndarray:
    """The weights as float64, scaled so that the largest is near 1 (1-D or 2-D array).

    Exact kernels in integer form (exact in float64 below 2**53; divided by the largest
    weight past 2**1000), float kernels as they are unless the largest magnitude is beyond
    2**±500, when they are multiplied by a power of two (exact). Normalised profiles do
    not depend on the scale, and nothing overflows: ``Kernel([1e308, 1e308])`` works.
    """
    if kernel.is_exact:
        ints, _den = _exact.integer_form(list(kernel.flat))
        big = max(abs(x) for x in ints)
        arr = (
            np.array([float(x) for x in ints])
            if big < 2**1000
            else np.array([_exact.fl(Fraction(x, big)) for x in ints])
        )
    else:
        arr = np.array([float(x) for x in kernel.flat])
        top = float(np.max(np.abs(arr))) if arr.size else 0.0
        if top > 0 and not 2.0**-500 < top < 2.0**500:
            arr = np.ldexp(arr, -math.frexp(top)[1])
    return arr.reshape(kernel.shape)


def tilt_applicable(kernel: Kernel) -> bool:
    """True when the ``float`` engine can tilt this kernel (nonnegative, positive sum, ...)."""
    from ._float import tilt_2d_applicable

    if kernel.domain == "symbolic":
        return False
    w = _float_rows(kernel)
    if np.any(w < 0) or not np.any(w > 0):
        return False
    if w.ndim == 1:
        return True
    return _exact_outer(w) is not None or tilt_2d_applicable(w)


def _exact_outer(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(u, v)`` with ``outer(u, v) == w`` exactly in float64, or None."""
    i, j = np.unravel_index(int(np.argmax(np.abs(w))), w.shape)
    u = w[:, j] / w[i, j]
    v = w[i, :].copy()
    return (u, v) if np.array_equal(np.outer(u, v), w) else None


def select(kernel: Kernel, method: str, n: int = 0) -> tuple[str, str]:
    """Resolve ``method`` (``"auto"`` or an engine name) to ``(engine, reason)``.

    ``auto``: symbolic kernels → ``symbolic``; integer and rational kernels → ``exact``
    (whose own choice of algorithm depends on the size, see `erftheory.profile`); float
    kernels → ``float`` when tilting applies (nonnegative weights; in 2-D also separable
    or with positive corners), else ``fft``.
    """
    if method not in METHOD_NAMES:
        raise ERFValueError(f"method must be one of {', '.join(METHOD_NAMES)}; got {method!r}")
    d = kernel.domain
    if method == "auto":
        if d == "symbolic":
            return "symbolic", "auto: the kernel has symbols, only sympy can expand it"
        if kernel.is_exact:
            return (
                "exact",
                f"auto: {d} kernel, so exact integer arithmetic ({_exact_plan(kernel, n)})",
            )
        if tilt_applicable(kernel):
            return "float", "auto: float kernel with nonnegative weights: tilted float64 engine"
        return "fft", (
            "auto: float kernel with negative weights (or a zero sum, or a 2-D support "
            "without positive corners): tilting needs positivity, so the plain FFT "
            "with its absolute error bound"
        )
    if d == "symbolic" and method != "symbolic":
        raise ERFTypeError(
            f"method={method!r} cannot take a symbolic kernel; use method='symbolic' or "
            f"substitute numbers for its symbols first"
        )
    if method == "exact":
        return "exact", f"requested ({_exact_plan(kernel, n)})"
    if method == "float" and not tilt_applicable(kernel):
        return "float", (
            "requested; the kernel has negative weights (or a zero sum, or a 2-D "
            "support without positive corners), so tilting does not apply and the "
            "plain FFT with its absolute error bound is used"
        )
    return method, "requested"


def _exact_plan(kernel: Kernel, n: int) -> str:
    if kernel.ndim == 2:
        if kernel.domain != "float" and kernel.axis_kernels() is not None:
            return "separable 2-D: outer product of two 1-D powers"
        k1, k2 = kernel.shape
        if n < _exact.KRONECKER_DEPTH_FACTOR * k1 * k2:
            return "non-separable 2-D: Kronecker substitution into one fmpz_poly power"
        return "non-separable 2-D: fmpz_mpoly power"
    ints, _ = _exact.integer_form(
        [x for x in kernel.flat]
        if kernel.domain != "float"
        else [__import__("fractions").Fraction(x) for x in kernel.flat]
    )
    if _exact.use_uniform_recurrence(ints, n):
        return "uniform taps: three-term recurrence on half the coefficients"
    return "fmpz_poly power; Miller's streaming recurrence if the power exceeds the memory limit"


def require_nonzero_sum(total: Any, weights: Any = None) -> None:
    """Raise the one error for normalising a kernel whose weights sum to zero."""
    if total == 0:
        shown = f" ({format_value(list(weights), short=True)})" if weights is not None else ""
        raise ERFValueError(
            f"the kernel's weights sum to zero{shown}; the profile cannot be normalised"
        )


# ---------------------------------------------------------------- float-valued engines
class _ArrayData:
    """Shared parts of the float-valued engines (normalised values first)."""

    abs_error_bound: float | None = None

    def __init__(self, kernel: Kernel, n: int) -> None:
        self.kernel, self.n = kernel, n
        self.shape = measures.rf_size(kernel.shape, n)
        self._values: np.ndarray | None = None

    def normalized(self) -> np.ndarray:  # pragma: no cover - every engine defines it
        raise NotImplementedError

    def _check(self, factor: float = 3.0) -> None:
        _exact.guard(
            _exact.mul(math.prod(self.shape), factor * 8.0), "the float profile", "use fewer layers"
        )

    def coefficients(self) -> list[Any]:
        return self.coefficients_array().tolist()

    def coefficients_array(self) -> np.ndarray:
        total = self.kernel.total  # exact for exact kernels; correctly rounded floats
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
        logmax = _exact.mul(self.n, log10)
        if abs(logmax) > 300:
            shown = f"1e{logmax:.0f}" if math.isfinite(logmax) else "1e±inf"
            raise ERFValueError(
                f"the unnormalised coefficients reach about {shown}, beyond float64; "
                f"use normalized() or log_normalized()"
            )
        return self.normalized() * (_exact.fl(total) ** self.n)

    def coefficient(self, index: tuple[int, ...]) -> Any:
        return float(self.coefficients_array()[index])

    def compute(self) -> None:
        self.normalized()


class _TiltData(_ArrayData):
    """The accurate ``float`` engine (exponential tilting, `erftheory._float`)."""

    def _run(self, log: bool) -> np.ndarray:
        from ._float import tilted_power_1d, tilted_power_2d

        self._check(3.0)
        w = _float_rows(self.kernel)
        require_nonzero_sum(w.sum())
        if w.ndim == 1:
            return tilted_power_1d(w, self.n, log=log)
        pair = _exact_outer(w)
        if pair is not None:
            a = tilted_power_1d(pair[0], self.n, log=log)
            b = tilted_power_1d(pair[1], self.n, log=log)
            with np.errstate(under="ignore", invalid="ignore"):
                return np.add.outer(a, b) if log else np.outer(a, b)
        return tilted_power_2d(w, self.n, log=log)

    def normalized(self) -> np.ndarray:
        if self._values is None:
            self._values = self._run(False)
        return self._values.copy()

    def log_normalized(self) -> np.ndarray:
        rows = _float_rows(self.kernel).ravel()
        exact = list(self.kernel.flat)
        if any(
            x != 0 and not abs(r) >= np.finfo(float).tiny for x, r in zip(exact, rows, strict=True)
        ):
            raise ERFValueError(
                "log_normalized() with the float engine needs every non-zero weight within "
                "float64's range of the largest (a ratio above 2**-1022); this kernel's "
                "smallest would be dropped or rounded: use method='exact' or method='arb'"
            )
        return self._run(True)


class _FFTData(_ArrayData):
    """The plain ``fft`` engine (`erftheory._fft`)."""

    def normalized(self) -> np.ndarray:
        if self._values is None:
            from ._fft import fft_power

            self._check(5.0)
            w = _float_rows(self.kernel)
            require_nonzero_sum(self.kernel.total)
            if w.sum() == 0:
                raise ERFValueError(
                    "the kernel's weights cancel to zero in float64 (their exact sum is "
                    f"{format_value(self.kernel.total, short=True)}); use method='exact' or "
                    "method='arb'"
                )
            values, bound = fft_power(w, self.n)
            if not (math.isfinite(bound) and np.all(np.isfinite(values))):
                raise ERFValueError(
                    "the plain FFT cannot represent this profile: with weights of mixed signs "
                    "its error bound grows like (sum |w| / |sum w|)**n, here beyond float64; "
                    "use method='exact' or method='arb'"
                )
            self._values, self.abs_error_bound = values, bound
        return self._values.copy()

    def log_normalized(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(self.normalized(), 0.0))


class _ArbData(_ArrayData):
    """The ``arb`` engine: balls at ``dps`` digits (`erftheory._arb`)."""

    def __init__(self, kernel: Kernel, n: int, dps: int) -> None:
        super().__init__(kernel, n)
        self.dps = dps
        self._balls: list[list[Any]] | None = None

    def balls(self) -> list[list[Any]]:
        if self._balls is None:
            from ._arb import arb_power, prec_for_dps

            flat, total = self._exact_weights()
            require_nonzero_sum(total)
            count = math.prod(self.shape)
            _exact.guard(
                _exact.mul(count, 4.0 * (prec_for_dps(self.dps) / 4 + 96)),
                "the arb balls",
                "use fewer layers or a smaller dps",
            )
            prec = prec_for_dps(self.dps)
            _exact.check_work(
                ARB_WORK * _exact.mul(count, math.log2(count + 2) * prec),
                "the arb power",
                "use Profile.ball(t) for single values (nonnegative 1-D kernels), fewer "
                "layers or a smaller dps",
            )
            k2 = self.kernel.shape[-1]
            rows = [flat[i * k2 : (i + 1) * k2] for i in range(len(flat) // k2)]
            self._balls = arb_power(rows, self.n, self.dps)
        return self._balls

    def _exact_weights(self) -> tuple[list[Any], Any]:
        """The weights as the arb engine reads them (integer form or exact floats)."""
        if self.kernel.is_exact:
            ints, _ = _exact.integer_form(list(self.kernel.flat))
            return list(ints), sum(ints)
        flat = [float(x) for x in self.kernel.flat]
        return flat, float(self.kernel.total)

    def ball(self, index: tuple[int, ...]) -> Any:
        from ._arb import CAUCHY_MIN_LENGTH, cauchy_ball

        flat, total = self._exact_weights()
        if (
            self._balls is None
            and self.kernel.ndim == 1
            and self.shape[0] >= CAUCHY_MIN_LENGTH
            and all(x >= 0 for x in flat)
        ):
            require_nonzero_sum(total)
            from ._arb import prec_for_dps

            seconds = CAUCHY_SECONDS * len(flat) * (prec_for_dps(self.dps) / 132) ** 1.8
            _exact.check_work(
                seconds * _exact.WORK_RATE,
                f"the certified ball at dps={self.dps}",
                "use a smaller dps or method='float'",
            )
            return cauchy_ball(flat, self.n, index[0], self.dps)
        row = self.balls()[index[0] if self.kernel.ndim == 2 else 0]
        return row[index[-1]]

    def normalized(self) -> np.ndarray:
        if self._values is None:
            b = self.balls()
            vals = np.array([[float(x.mid()) for x in row] for row in b])
            rad = max((float(x.rad()) for row in b for x in row), default=0.0)
            if not (np.all(np.isfinite(vals)) and math.isfinite(rad)):
                raise ERFValueError(
                    f"the arb engine's normalised values at dps={self.dps} are beyond float64 "
                    f"(weights of opposite signs far larger than their sum); balls() has them "
                    f"as balls, or use method='exact'"
                )
            self.abs_error_bound = rad + float(np.max(np.abs(vals))) * 2.0**-53
            self._values = vals[0] if self.kernel.ndim == 1 else vals
        return self._values.copy()

    def log_normalized(self) -> np.ndarray:
        b = self.balls()
        out = np.array([[float(x.log().mid()) if x > 0 else -math.inf for x in row] for row in b])
        return out[0] if self.kernel.ndim == 1 else out
