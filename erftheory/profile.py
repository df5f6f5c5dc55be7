r"""ERF profiles: the coefficients of $V(z)^n$ (Eq. 9).

The ERF of the centre output unit of $n$ stacked layers with kernel $w$ is the
impulse response $o = u * v * \dots * v$, i.e. the coefficient sequence of
$\left(\sum_m w(m) z^m\right)^n$ (Eq. 3, 4 and 9). `profile` builds a `Profile`;
nothing large is computed until a property that needs it is read, so

>>> from erftheory import Kernel, profile
>>> p = profile(Kernel([1, 1, 1]), layers=10**6)
>>> p.variance          # Eq. 10, from the kernel: n Var[X] = 10**6 * 2/3
Fraction(2000000, 3)

costs microseconds, while ``p.coefficients`` would be refused by the memory guard.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from functools import cached_property
from typing import Any, Literal

import gmpy2
import numpy as np

from . import _config, _exact, measures
from ._engines import (
    DEFAULT_DPS,
    METHOD_NAMES,
    _ArbData,
    _FFTData,
    _TiltData,
    require_nonzero_sum,
    select,
)
from ._engines import tilt_applicable as _tilt_applicable
from ._errors import ERFTypeError, ERFValueError
from .gaussian import GaussianFit, fit_gaussian
from .kernel import Kernel, coprime_fraction, format_value, reduced_fraction, to_sympy

__all__ = ["Profile", "profile"]

Method = Literal["auto", "exact", "fft", "float", "arb", "symbolic"]
METHODS = METHOD_NAMES

_SYMBOLIC_MAX_TERMS = 100_000  # sympy builds about 5000 terms per second: 20 s at most
MAX_DPS = 100_000
"""The most decimal digits ``method='arb'`` takes."""


def check_layers(layers: Any, name: str = "layers") -> int:
    """Validate a layer count: a non-negative int (not a bool)."""
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral):
        raise ERFTypeError(
            f"{name} must be a non-negative integer (0, 1, 2, ...), got "
            f"{format_value(layers, short=True)} of type {type(layers).__name__}"
        )
    if layers < 0:
        raise ERFValueError(
            f"{name} must be a non-negative integer (0, 1, 2, ...), got "
            f"{format_value(int(layers), short=True)}"
        )
    return int(layers)


def profile(
    kernel: Kernel | Any, layers: int, *, method: Method = "auto", dps: int | None = None
) -> Profile:
    r"""The ERF of ``layers`` stacked convolutions with ``kernel`` (Eq. 9).

    Args:
        kernel: a `Kernel`, or anything `Kernel` accepts (a list of weights or rows).
        layers: the number of layers $n \ge 0$ (0 gives the unit impulse).
        method: an engine of `erftheory._engines.ENGINES` (see ``docs/engines.md``):
            ``"exact"`` (python-flint integers), ``"fft"`` (plain float64 FFT, absolute
            error bound), ``"float"`` (tilted float64, $10^{-10}$ relative on every
            normal-range value), ``"arb"`` (rigorous balls at ``dps`` digits),
            ``"symbolic"`` (sympy), or ``"auto"``, which picks by the kernel's domain and
            signs; `Profile.method` tells which ran and `Profile.engine_reason` why.
        dps: decimal digits for ``method="arb"`` (default 30); only valid with ``"arb"``.

    Returns:
        A `Profile`. Coefficients are computed on first use and cached.

    Raises:
        ERFTypeError: ``layers`` is not an integer; the method cannot take the kernel.
        ERFValueError: ``layers`` is negative; the method is unknown; ``dps`` is not a
            positive integer or is given to another method.

    Example:
        >>> from erftheory import Kernel, profile
        >>> p = profile(Kernel([1, 1, 1]), layers=2)
        >>> p.coefficients, p.origin, p.mean, p.variance
        ([1, 2, 3, 2, 1], 2, Fraction(0, 1), Fraction(4, 3))
        >>> profile([[1, 1], [1, 1]], layers=1).coefficients
        [[1, 1], [1, 1]]
    """
    k = kernel if isinstance(kernel, Kernel) else Kernel(kernel)
    n = check_layers(layers)
    engine, reason = select(k, method, n)
    if engine == "exact" and k.domain == "float":
        # Floats are read as the dyadic rationals they are, so moments are exact too.
        exact = [Fraction(x) for x in k.flat]
        rows: Any = exact
        if k.ndim == 2:
            rows = [exact[i * k.shape[1] : (i + 1) * k.shape[1]] for i in range(k.shape[0])]
        k = Kernel(rows, anchor=k.anchors)
    if dps is not None:
        shown = format_value(dps, short=True)
        if engine != "arb":
            raise ERFValueError(f"dps={shown} is only used by method='arb'; got method={method!r}")
        if isinstance(dps, bool) or not isinstance(dps, numbers.Integral) or dps <= 0:
            raise ERFValueError(f"dps must be a positive integer (decimal digits), got {shown}")
        if dps > MAX_DPS:
            raise ERFValueError(
                f"dps must be at most {MAX_DPS} decimal digits, got {shown}; the arb engine's "
                f"cost grows with the precision"
            )
        dps = int(dps)
    elif engine == "arb":
        dps = DEFAULT_DPS
    return Profile(k, n, engine, dps=dps, reason=reason)


class Profile:
    r"""The ERF $o(t)$ of $n$ stacked layers with one kernel (Eq. 9), 1-D or 2-D.

    Indices: ``coefficients[t]`` is the input pixel at position ``t - origin`` from
    the pixel under the output unit (``origin = n * anchor`` per axis).

    Attributes:
        kernel: the `Kernel`.
        layers: $n$.
        method: the engine used: ``"exact"``, ``"fft"``, ``"float"``, ``"arb"`` or
            ``"symbolic"``.
        engine_reason: why that engine (and which algorithm inside it) was chosen.
        dps: the decimal digits of the ``arb`` engine (None for the others).
    """

    def __init__(
        self,
        kernel: Kernel,
        layers: int,
        method: str,
        *,
        dps: int | None = None,
        reason: str = "requested",
    ) -> None:
        self.kernel = kernel
        self.layers = layers
        self.method = method
        self.dps = dps
        self.engine_reason = reason
        self._data = _make_data(kernel, layers, method, dps)
        self._normalized: np.ndarray | None = None

    # ------------------------------------------------------------ geometry
    @property
    def ndim(self) -> int:
        """1 or 2."""
        return self.kernel.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """Length (1-D) or rows × columns (2-D) of the coefficient array: $n(k-1)+1$."""
        return measures.rf_size(self.kernel.shape, self.layers)

    @property
    def origin(self) -> Any:
        """Index of the input pixel under the output unit: ``n * anchor`` (tuple in 2-D)."""
        o = tuple(self.layers * a for a in self.kernel.anchors)
        return o[0] if self.ndim == 1 else o

    @property
    def _origin_tuple(self) -> tuple[int, ...]:
        return tuple(self.layers * a for a in self.kernel.anchors)

    # ------------------------------------------------------------ exact values
    @property
    def coefficients(self) -> list[Any]:
        """The coefficients $o(t)$, not normalised: a list (1-D) or list of rows (2-D).

        ints for integer kernels, Fractions for rational ones, floats for float
        kernels, sympy expressions for symbolic ones. Checked against the memory
        limit before anything is allocated.
        """
        return self._data.coefficients()

    def coefficient(self, *index: int) -> Any:
        """One coefficient by array index (one index in 1-D, two in 2-D).

        Exact 1-D profiles answer without the other coefficients where they can
        (`erftheory._exact.single_coefficient`: binomial powers such as $[1, 2, 1]$ by
        $\binom{2n}{t}$, equal taps by binary splitting, else Miller's recurrence up to
        $t$), after a memory and work estimate: $[1, 1, 1]$ at $n = 10^6$ (1.6 million
        bits) takes about 2 s; what would take minutes is a `SizeLimitError` up front.

        Raises:
            ERFTypeError: an index is not an integer.
            ERFValueError: wrong number of indices, or outside `shape`.
            SizeLimitError: the value would need more memory or work than the limits allow.

        Example:
            >>> from erftheory import Kernel, profile
            >>> profile(Kernel([1, 1]), layers=10).coefficient(5)   # C(10, 5)
            252
        """
        return self._data.coefficient(self._checked_index(index, "coefficient"))

    def _checked_index(self, index: tuple[int, ...], method: str) -> tuple[int, ...]:
        """``index`` as ints after checking its length, type and range.

        A wrong count or an index outside the shape is an `ERFValueError`; an index that is
        not an integer (a float, a bool, a string) an `ERFTypeError`.
        """
        shown = format_value(index, short=True)
        if len(index) != self.ndim:
            raise ERFValueError(f"{method}() takes {self.ndim} index(es), got {shown}")
        for i, s in zip(index, self.shape, strict=True):
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise ERFTypeError(
                    f"{method}() takes integer indices, got {shown} (a {type(i).__name__})"
                )
            if not 0 <= i < s:
                raise ERFValueError(
                    f"index {shown} is outside the profile's shape "
                    f"{format_value(self.shape, short=True)}"
                )
        return tuple(int(i) for i in index)

    @property
    def total(self) -> Any:
        r"""$\sum_t o(t) = (\sum_m w(m))^n$, exact for exact kernels."""
        t = self.kernel.total
        if self.kernel.domain == "float":
            with np.errstate(over="ignore"):
                return float(np.float64(t) ** self.layers)
        if self.method == "symbolic":
            import sympy

            if self.kernel.domain == "symbolic":
                # Unevaluated past small n: sqrt(2)**(10**12) would be built as 2**(5*10**11).
                base = to_sympy(t)
                return (
                    base**self.layers
                    if self.layers <= 64
                    else sympy.Pow(base, self.layers, evaluate=False)
                )
            return _sympy_number(_numeric_total(self.kernel, self.layers))
        if isinstance(t, Fraction):  # coprime stays coprime: no gcd of the huge powers
            return coprime_fraction(
                _checked_power(t.numerator, self.layers), _checked_power(t.denominator, self.layers)
            )
        return _checked_power(t, self.layers)

    # ------------------------------------------------------------ moments (Eq. 10)
    @cached_property
    def _moments(self) -> tuple[Any, Any]:
        raw = self.kernel._raw_moments()
        if self.kernel.domain == "float":
            raw = (
                tuple(float(x) for x in raw[0]),
                tuple(tuple(float(x) for x in r) for r in raw[1]),
            )
        n = self.layers

        def scaled(x: Any) -> Any:  # floats: inf past float64's range, not OverflowError
            return _exact.mul(n, x) if isinstance(x, float) else n * x

        mean = tuple(scaled(x) for x in raw[0])
        cov = tuple(tuple(scaled(x) for x in r) for r in raw[1])
        if self.method == "symbolic":
            import sympy

            mean = tuple(sympy.simplify(x) for x in mean)
            cov = tuple(tuple(sympy.simplify(x) for x in r) for r in cov)
        return mean, cov

    @property
    def mean(self) -> Any:
        r"""Mean position of the normalised profile from the origin: $n(\mathbb E[X] - a)$ (Eq. 10).

        A pair ``(rows, columns)`` in 2-D.
        """
        m = self._moments[0]
        return m[0] if self.ndim == 1 else m

    @property
    def variance(self) -> Any:
        r"""Variance of the normalised profile: $n\,\mathrm{Var}[X]$ (Eq. 10); a pair in 2-D."""
        c = self._moments[1]
        return c[0][0] if self.ndim == 1 else (c[0][0], c[1][1])

    @property
    def covariance(self) -> Any:
        """The 2×2 covariance matrix (nested tuples) of the normalised profile (2-D only)."""
        if self.ndim != 2:
            raise ERFValueError("covariance is defined for 2-D profiles; use variance in 1-D")
        return self._moments[1]

    @property
    def std(self) -> Any:
        """Standard deviation(s) as float: the paper's one-σ ERF radius (Section 2.3)."""
        v = self.variance
        values = (v,) if self.ndim == 1 else v
        if self.kernel.domain == "symbolic":
            raise ERFTypeError(
                f"std needs numbers; this profile's variance is symbolic "
                f"({format_value(v, short=True)}): use sympy.sqrt(profile.variance)"
            )
        out = []
        for x in values:
            if x < 0:
                raise ERFValueError(
                    f"the variance is negative ({format_value(x, short=True)}): the kernel has "
                    f"negative weights, so the normalised profile is not a distribution and has "
                    f"no standard deviation"
                )
            fx = _exact.fl(x)
            if math.isfinite(fx) or isinstance(x, float):
                out.append(math.sqrt(fx))
            else:  # beyond float64 (n = 10^400): the root is not; x = m 4^e exactly
                f = Fraction(x)
                e = (f.numerator.bit_length() - f.denominator.bit_length()) // 2
                root = math.sqrt(float(f / 4**e)) if e >= 0 else math.sqrt(float(f * 4**-e))
                try:
                    out.append(math.ldexp(root, e))
                except OverflowError:
                    out.append(math.inf)
        return out[0] if self.ndim == 1 else tuple(out)

    std_radius = std

    # ------------------------------------------------------------ floats
    def normalized(self) -> np.ndarray:
        r"""The profile divided by its sum, as a float64 array (1-D or 2-D).

        Exact profiles are converted coefficient by coefficient with correct
        rounding, so nothing overflows and every value float64 can represent
        (subnormals too) is kept. When the exact coefficients would not fit the
        memory limit, they are streamed (Miller's recurrence) and never held all
        at once, so $n = 100\,000$ with $k = 3$ works.

        Raises:
            ERFValueError: the weights sum to zero.

        Example:
            >>> from erftheory import Kernel, profile
            >>> profile(Kernel([1, 2, 1]), layers=1).normalized()
            array([0.25, 0.5 , 0.25])
        """
        if self._normalized is None:
            arr = self._data.normalized()
            arr.setflags(write=False)
            self._normalized = arr
        return self._normalized.copy()

    def log_normalized(self) -> np.ndarray:
        r"""Natural logarithms of `normalized` values, computed so that nothing underflows.

        ``-inf`` marks exact zeros. Exact profiles take the logarithm of each exact ratio
        (where streaming the exact coefficients would pass the work limit, as for
        $[1, 1, 1]$ at $n = 10^7$, nonnegative kernels take the ``float`` engine's tilted
        logs instead, absolute error about $10^{-10}$, in seconds);
        the ``float`` engine returns its tilted log-values over the whole range (values far
        below float64's smallest subnormal included) with absolute error about $10^{-10}$;
        ``fft`` takes logs of its floats (noise in the tails); ``arb`` the midpoints of the
        log-balls.

        Raises:
            ERFValueError: the kernel has negative weights (values may be negative) or sums
                to zero.

        Example:
            >>> from erftheory import Kernel, profile
            >>> lp = profile(Kernel([1, 1, 1]), layers=20_000).log_normalized()
            >>> round(float(lp[0]), 6) == round(-20_000 * math.log(3), 6)   # 3**-20000 underflows
            True
        """
        if self.kernel.domain == "symbolic":
            raise ERFTypeError("log_normalized() needs numbers; this profile is symbolic")
        if any(x < 0 for x in self.kernel.flat):
            raise ERFValueError(
                "log_normalized() needs nonnegative weights; this kernel has negative ones, so "
                "its profile has negative values — use normalized()"
            )
        return self._data.log_normalized()

    def compute(self) -> Profile:
        """Run the engine now, in its native form (fmpz, float64 or arb), and return ``self``.

        No Python ints or Fractions are built; `coefficients`, `coefficient` and
        `normalized` then read the stored result. Useful for timing an engine.

        Example:
            >>> from erftheory import Kernel, profile
            >>> profile(Kernel.uniform(2), layers=10).compute().coefficient(5)   # C(10, 5)
            252
        """
        self._data.compute()
        return self

    def balls(self) -> list[Any]:
        """The ``arb`` engine's balls for the normalised profile (a list, or rows in 2-D).

        Each `flint.arb` ball certainly contains the true normalised value.

        Example:
            >>> from erftheory import Kernel, profile
            >>> b = profile(Kernel([1, 1]), layers=3, method="arb", dps=20).balls()
            >>> [x.contains(1 / 8) for x in b[:1]], b[1].rad() < 1e-25
            ([True], True)
        """
        if self.method != "arb":
            raise ERFValueError(f"balls() needs method='arb'; this profile used {self.method!r}")
        b = self._data.balls()
        return b[0] if self.ndim == 1 else b

    def ball(self, *index: int) -> Any:
        r"""The ``arb`` engine's ball for one normalised coefficient, by array index.

        For a nonnegative 1-D kernel whose profile has at least
        `erftheory._arb.CAUCHY_MIN_LENGTH` entries, and while the whole power has not been
        computed, the ball comes from the Cauchy integral on the saddle-point circle
        (`erftheory._arb.cauchy_ball`: certified quadrature, 0.01-0.3 s per coefficient up
        to $n = 10^{15}$, $k = 101$, relative radius about $10^{-42}$ at ``dps=30``),
        without the other coefficients; otherwise it is read from `balls`. Either way it
        certainly contains the true value; a certificate that comes out wider than the
        requested precision is an `ERFValueError`, never a useless ball.

        Example:
            >>> from erftheory import Kernel, profile
            >>> p = profile(Kernel([1, 1, 1]), layers=10**4, method="arb", dps=30)
            >>> b = p.ball(10**4)          # the centre, without the other 20 000 values
            >>> exact = profile(Kernel([1, 1, 1]), layers=10**4).coefficient(10**4)
            >>> float(b.mid()) == exact / 3**10**4, b.rad() < 1e-35   # correctly rounded
            (True, True)
        """
        if self.method != "arb":
            raise ERFValueError(f"ball() needs method='arb'; this profile used {self.method!r}")
        return self._data.ball(self._checked_index(index, "ball"))

    @property
    def abs_error_bound(self) -> float | None:
        r"""A bound on $|\hat c_t - c_t|$ over all normalised values, or None.

        ``exact``: rounding only, $2^{-53}\max_t c_t$; ``fft``: the a-posteriori bound of
        `erftheory._fft`; ``arb``: the largest radius plus rounding; ``float``: None (its
        guarantee is relative, see ``docs/engines.md``) unless the kernel has negative
        weights and it fell back to the FFT, whose bound it then reports; ``symbolic``: None.
        """
        if self.method in ("fft", "arb", "float"):
            self.normalized()
            return self._data.abs_error_bound  # float: None unless it fell back to the FFT
        if self.method == "exact":
            return float(np.max(np.abs(self.normalized()))) * 2.0**-53
        return None

    def gaussian(self) -> GaussianFit:
        """The Gaussian with this profile's mean and (co)variance, and distances to it.

        Raises:
            ERFTypeError: the kernel is symbolic (a symbolic-method profile of a numeric
                kernel works).
            ERFValueError: the variance is not positive (one tap, or no layers): there is
                no Gaussian; `summary` reports None then.
        """
        if self.kernel.domain == "symbolic":
            raise ERFTypeError(
                "gaussian() needs numbers; this profile's kernel is symbolic: substitute "
                "values into its symbols first"
            )
        mean, cov = self._moments
        m = mean[0] if self.ndim == 1 else mean
        c = cov[0][0] if self.ndim == 1 else cov
        return fit_gaussian(self.normalized(), self._origin_tuple, m, c)

    def _has_gaussian(self) -> bool:
        """Whether the (co)variance is positive (definite): the Gaussian limit exists."""
        cov = self._moments[1]
        if self.ndim == 1:
            return float(cov[0][0]) > 0
        a, b, d = float(cov[0][0]), float(cov[0][1]), float(cov[1][1])
        return a > 0 and d > 0 and a * d - b * b > 0

    # ------------------------------------------------------------ ERF sizes
    @property
    def rf_size(self) -> Any:
        """Theoretical receptive field: $n(k-1)+1$ pixels (a pair in 2-D)."""
        s = self.shape
        return s[0] if self.ndim == 1 else s

    def threshold_size(self, level: float = measures.FIG2_LEVEL) -> float:
        """The paper's Fig. 2 ERF size (see `erftheory.measures.threshold_size`)."""
        return measures.threshold_size(self.normalized(), self._origin_tuple, level)

    def mass_size(self, fraction: float = 0.5) -> int:
        """Side of the smallest centred square holding ``fraction`` of the mass."""
        return measures.mass_size(self.normalized(), self._origin_tuple, fraction)

    def erf_ratio(
        self, measure: Literal["threshold", "std", "mass"] = "threshold", fraction: float = 0.5
    ) -> float:
        """ERF size over theoretical RF size.

        Args:
            measure: ``"threshold"`` (Fig. 2: ERF side over RF side), ``"std"`` (the
                one-σ radius over the RF side, Section 2.3; the geometric mean of the
                axes in 2-D), or ``"mass"`` (centred square holding ``fraction``).
        """
        if measure == "threshold":
            return self.threshold_size() / self._rf_side()
        if measure == "mass":
            return self.mass_size(fraction) / self._rf_side()
        if measure == "std":
            s = self.std
            if self.ndim == 1:
                side = s
            else:
                prod = s[0] * s[1]
                side = math.sqrt(prod) if math.isfinite(prod) else math.sqrt(s[0]) * math.sqrt(s[1])
            rf = self._rf_side()
            if side == 0 or math.isfinite(rf):
                return side / rf
            return math.exp(math.log(side) - self._log_rf_side())  # n = 10^400: no overflow
        raise ERFValueError(
            f"measure must be 'threshold', 'std' or 'mass', got {format_value(measure, short=True)}"
        )

    def _rf_side(self) -> float:
        """The RF's side: its length in 1-D, the geometric mean of the two in 2-D."""
        size = math.prod(self.shape)
        if size < 2**1000:
            return float(size ** (1 / self.ndim))
        log = self._log_rf_side()
        return math.exp(log) if log < 700 else math.inf

    def _log_rf_side(self) -> float:
        return sum(math.log(s) for s in self.shape) / self.ndim

    def summary(self, fractions: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)) -> dict[str, Any]:
        """Every number the CLI prints, as plain Python values (exact ones as strings).

        Parts that do not exist are None rather than an error: ``gaussian`` for a
        degenerate profile (zero variance: one tap, or no layers); ``std`` and
        ``erf_ratio_std`` where the variance is negative (negative weights);
        ``threshold_size`` and ``erf_ratio`` where the centre value is not positive; and
        every numeric part (``std``, sizes, ratios, ``gaussian``) for a symbolic kernel,
        whose ``mean`` and ``variance`` are sympy expressions (as text). A
        ``method='symbolic'`` profile of a numeric kernel has all of them.

        Raises:
            ERFValueError: the kernel's weights sum to zero (nothing to normalise by).
            SizeLimitError: the normalised profile is too large to compute.

        Example:
            >>> from erftheory import Kernel, profile
            >>> s = profile(Kernel([1]), layers=5).summary()
            >>> s["variance"], s["std"], s["gaussian"]
            ('0', 0.0, None)
        """
        out: dict[str, Any] = {
            "kernel": _jsonable(self.kernel.weights),
            "anchor": self.kernel.anchor,
            "layers": self.layers,
            "method": self.method,
            "shape": list(self.shape),
            "origin": self.origin if self.ndim == 1 else list(self.origin),
            "mean": _jsonable(self.mean),
            "variance": _jsonable(self.variance),
        }
        numeric = self.kernel.domain != "symbolic"
        variances = (self.variance,) if self.ndim == 1 else self.variance
        has_std = numeric and all(float(v) >= 0 for v in variances)
        std = self.std if has_std else None
        out["std"] = list(std) if isinstance(std, tuple) else std
        out["rf_size"] = self.rf_size if self.ndim == 1 else list(self.rf_size)
        if not numeric:
            out.update(
                threshold_size=None,
                mass_size={f"{f:g}": None for f in fractions},
                erf_ratio=None,
                erf_ratio_std=None,
                gaussian=None,
            )
        else:
            values = self.normalized()
            origin = self._origin_tuple
            rf = self._rf_side()
            threshold = measures.threshold_size(values, origin) if values[origin] > 0 else None
            out["threshold_size"] = threshold
            out["mass_size"] = {f"{f:g}": measures.mass_size(values, origin, f) for f in fractions}
            out["erf_ratio"] = None if threshold is None else threshold / rf
            out["erf_ratio_std"] = None if std is None else self.erf_ratio("std")
            if self._has_gaussian():
                fit = self.gaussian()
                out["gaussian"] = {
                    "max_abs_diff": fit.max_abs_diff,
                    "total_variation": fit.total_variation,
                    "kolmogorov": fit.kolmogorov,
                }
            else:
                out["gaussian"] = None
        if self.ndim == 2:
            out["covariance"] = _jsonable(self.covariance)
        return out

    def __repr__(self) -> str:
        return (
            f"Profile({self.kernel!r}, layers={format_value(self.layers)}, method={self.method!r})"
        )


def _numeric_total(kernel: Kernel, n: int) -> Any:
    r"""$(\sum_m w(m))^n$ of a numeric kernel: exact (checked) or float."""
    t = kernel.total
    if isinstance(t, float):
        with np.errstate(over="ignore"):
            return float(np.float64(t) ** n)
    if isinstance(t, Fraction):
        return coprime_fraction(_checked_power(t.numerator, n), _checked_power(t.denominator, n))
    return _checked_power(t, n)


def _checked_power(base: int, n: int, what: str = "the exact total") -> int:
    """``base ** n`` (with gmpy2) after checking its memory and its work."""
    if abs(base) > 1:
        bits = _exact.mul(n, math.log2(abs(base)))
        _exact.guard(2 * bits / 8 + 64, what, _HINT)
        _exact.check_work(_exact.fft_work(bits), what, _HINT)
        return int(gmpy2.mpz(base) ** n)
    return base**n  # -1, 0 or 1: cheap at any n


def _exact_value(c: Any, den: int, scale: int) -> Any:
    """A coefficient ``c / scale`` of an integer-form kernel with denominator ``den``."""
    if den == 1:
        return int(c)
    c = int(c)
    _exact.check_work(
        _exact.fft_work(max(c.bit_length(), scale.bit_length())),
        "reducing the exact coefficient",
        _HINT,
    )
    return reduced_fraction(c, scale)


def _jsonable(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, float):
        return x
    return format_value(x)  # exact text, free of Python's 4300-digit limit


# ---------------------------------------------------------------- engines' data
def _make_data(kernel: Kernel, n: int, method: str, dps: int | None = None) -> Any:
    if method == "float":
        return _TiltData(kernel, n) if _tilt_applicable(kernel) else _FFTData(kernel, n)
    if method == "fft":
        return _FFTData(kernel, n)
    if method == "arb":
        return _ArbData(kernel, n, dps or DEFAULT_DPS)
    if method == "symbolic":
        return _SymbolicData(kernel, n)
    flat = [Fraction(x) if isinstance(x, float) else x for x in kernel.flat]
    if kernel.ndim == 1:
        return _Exact1D(flat, n)
    factors = kernel.axis_kernels() if kernel.domain != "float" else None
    if factors is not None:
        u, v = factors
        return _ExactSeparable(_Exact1D(list(u.flat), n), _Exact1D(list(v.flat), n))
    return _Exact2D(flat, kernel.shape, n)


_HINT = "use profile(..., method='float') or raise erftheory.set_memory_limit()"
# A full power below this many bytes is computed (and kept) to answer coefficient(t):
# it costs about as much as one coefficient by the recurrence, and later reads are free.
_SMALL_POWER = 64 * 1024**2


class _Exact1D:
    """Exact coefficients of (W / D)^n for one integer kernel W."""

    def __init__(self, weights: list[Any], n: int) -> None:
        self.ints, self.den = _exact.integer_form(weights)
        self.n = n
        self.length = n * (len(self.ints) - 1) + 1
        self._poly: Any = None
        self._bits: tuple[float, int] | None = None

    @property
    def bits(self) -> float:
        if self._bits is None:
            _exact.guard(
                _exact.bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT
            )
            self._bits = _exact.coefficient_bits_bound(self.ints, self.n)
        return self._bits[0]

    @property
    def poly_bytes(self) -> float:
        return _exact.poly_bytes(self.bits, self.length)

    def poly(self) -> Any:
        if self._poly is None:
            _exact.guard(
                _exact.bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT
            )
            if _exact.POW_PEAK_FACTOR * self._crude_bytes() > _config.get_memory_limit():
                # Only then is the refined (rigorous, tighter, ~5 ms) estimate worth its cost.
                _exact.guard(
                    _exact.POW_PEAK_FACTOR * self.poly_bytes, "the exact coefficients", _HINT
                )
            if self.uniform:
                self._poly = _exact.UniformPower(len(self.ints), self.n, self.ints[0])
            else:
                self._poly = _exact.power_1d(self.ints, self.n)
        return self._poly

    def _crude_bytes(self) -> float:
        r"""$L\,(n \log_2 \sum|w| + 2)/8 + 48L$: an upper bound above `poly_bytes`, in O(k)."""
        l1 = sum(abs(w) for w in self.ints)
        bits = _exact.mul(self.n, math.log2(l1)) + 2 if l1 > 1 else 2.0
        return _exact.mul(self.length, bits / 8 + 48)

    @property
    def uniform(self) -> bool:
        """Equal taps, k >= 4: the three-term recurrence beats flint's power."""
        return _exact.use_uniform_recurrence(self.ints, self.n)

    def compute(self) -> None:
        self.poly()

    def _power_fits(self) -> bool:
        """Whether the whole power is within the memory limit (refined estimate)."""
        limit = _config.get_memory_limit()
        if _exact.bytes_lower_bound(len(self.ints), self.n) > limit:
            return False
        if _exact.POW_PEAK_FACTOR * self._crude_bytes() <= limit:
            return True
        return _exact.POW_PEAK_FACTOR * self.poly_bytes <= limit

    def _core(self) -> tuple[int, int, list[int]]:
        return _exact.reduce_support(self.ints)

    def _stream_work(self) -> float:
        """Work of streaming every coefficient (`erftheory._exact.check_work` units)."""
        _, _, core = self._core()
        return _exact.stream_work(core, self.n, self.bits, self.length)

    def log_normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(self.ints))
        _exact.guard(_exact.mul(self.length, 8.0), "the log-profile", "use fewer layers")
        if self._poly is not None or self._power_fits():
            p = self.poly()
            values: Any = (p[t] for t in range(self.length))
        else:
            work = self._stream_work()
            try:
                _exact.check_work(work, "the exact log-profile", _HINT)
            except _config.SizeLimitError:
                tilted = self._tilted_log()
                if tilted is None:
                    raise
                return tilted
            values = _exact.stream_power_1d(self.ints, self.n)
        log_total = _exact.log_abs(self.total_int())
        out = np.empty(self.length)
        for t, c in enumerate(values):
            out[t] = _exact.log_abs(c) - log_total if c != 0 else -math.inf
        return out

    def _tilted_log(self) -> np.ndarray | None:
        """The ``float`` engine's tilted logs (absolute error about 1e-10), where the weights
        are nonnegative and float64 holds their ratios; else None."""
        from ._float import tilted_power_1d

        if any(w < 0 for w in self.ints):
            return None
        big = max(self.ints)
        if any(0 < w and w.bit_length() < big.bit_length() - 1000 for w in self.ints):
            return None  # a ratio below 2**-1000: float64 would drop or blur it
        shift = max(0, big.bit_length() - 1000)
        weights = np.array([float(w >> shift) if shift else float(w) for w in self.ints])
        return tilted_power_1d(weights, self.n, log=True)

    @cached_property
    def scale(self) -> int:
        """$D^n$: the common denominator of the coefficients."""
        return _checked_power(self.den, self.n, "the common denominator D**n")

    def _value(self, c: Any) -> Any:
        return _exact_value(c, self.den, self.scale if self.den != 1 else 1)

    def coefficients(self) -> list[Any]:
        _exact.guard(
            _exact.bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT
        )
        bits = self.bits
        den_bits = _exact.mul(self.length, _exact.mul(self.n, math.log2(self.den)))
        _exact.guard(
            _exact.POW_PEAK_FACTOR * self.poly_bytes
            + _exact.python_bytes(bits + den_bits, self.length),
            "the exact coefficients",
            _HINT,
        )
        if self.den != 1:  # one gcd of D**n with every coefficient
            _exact.check_work(
                _exact.mul(self.length, _exact.fft_work(_exact.mul(self.n, math.log2(self.den)))),
                "reducing the exact coefficients",
                _HINT,
            )
        p = self.poly()
        if self.den == 1:  # integer kernels: the coefficients as they are
            return [int(c) for c in p.coeffs()] + [0] * (self.length - p.degree() - 1)
        deg = p.degree()
        return [self._value(p[t]) if t <= deg else 0 for t in range(self.length)]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        (t,) = index
        if self._poly is not None:
            p = self._poly
            return self._value(p[t]) if t <= p.degree() else 0
        small = min(_SMALL_POWER, _config.get_memory_limit())
        if (
            self.n > 0
            and not self._closed_form()
            and (
                _exact.bytes_lower_bound(len(self.ints), self.n) <= small
                and _exact.POW_PEAK_FACTOR * self._crude_bytes() <= small
            )
        ):
            p = self.poly()
            return self._value(p[t]) if t <= p.degree() else 0
        # One coefficient: a closed form (binomial powers, equal taps) or Miller's
        # recurrence up to t, each after its own memory and work estimate.
        return self._value(_exact.single_coefficient(self.ints, self.n, t))

    def _closed_form(self) -> bool:
        _, _, core = self._core() if any(self.ints) else (0, 1, [0])
        return _exact.is_uniform(core) or _exact.binomial_power(core) is not None

    def total_int(self) -> int:
        return _checked_power(sum(self.ints), self.n)

    def normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(self.ints), self.ints)
        _exact.guard(_exact.mul(self.length, 8.0), "the normalised profile", "use fewer layers")
        if self._poly is None and not self._power_fits():
            _exact.check_work(
                self._stream_work(),
                "exact normalisation",
                "use profile(..., method='float') or raise erftheory.memory_limit(...)",
            )
            conv = _exact.ratio_to_float(self.total_int())
            out = np.empty(self.length)
            for t, c in enumerate(_exact.stream_power_1d(self.ints, self.n)):
                out[t] = conv(c)
            return out
        conv = _exact.ratio_to_float(self.total_int())
        p = self.poly()
        deg = p.degree()
        out = np.empty(self.length)
        for t in range(self.length):
            out[t] = conv(p[t]) if t <= deg else 0.0
        return out


class _ExactSeparable:
    """A separable 2-D kernel u ⊗ v: the profile is the outer product of 1-D profiles."""

    def __init__(self, rows: _Exact1D, cols: _Exact1D) -> None:
        self.rows, self.cols = rows, cols

    def coefficients(self) -> list[list[Any]]:
        count = self.rows.length * self.cols.length
        _exact.guard(_exact.mul(count, 56.0), "the exact coefficients", _HINT)
        bits = _exact.mul(self.cols.length, self.rows.bits) + _exact.mul(
            self.rows.length, self.cols.bits
        )
        den_bits = _exact.mul(
            count, _exact.mul(self.rows.n, math.log2(self.rows.den * self.cols.den))
        )
        _exact.guard(
            _exact.python_bytes(bits + den_bits, count) + _exact.mul(count, 8.0),
            "the exact coefficients",
            _HINT,
        )
        r = self.rows.coefficients()
        c = self.cols.coefficients()
        return [[a * b for b in c] for a in r]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        return self.rows.coefficient(index[:1]) * self.cols.coefficient(index[1:])

    def compute(self) -> None:
        self.rows.compute()
        self.cols.compute()

    def log_normalized(self) -> np.ndarray:
        _exact.guard(
            _exact.mul(self.rows.length * self.cols.length, 8.0),
            "the log-profile",
            "use fewer layers",
        )
        with np.errstate(invalid="ignore"):
            return np.add.outer(self.rows.log_normalized(), self.cols.log_normalized())

    def normalized(self) -> np.ndarray:
        _exact.guard(
            _exact.mul(self.rows.length * self.cols.length, 8.0),
            "the normalised profile",
            "use fewer layers",
        )
        return np.outer(self.rows.normalized(), self.cols.normalized())


class _Exact2D:
    """A non-separable 2-D exact kernel (`erftheory._exact.Power2D`: Kronecker or mpoly)."""

    def __init__(self, flat: list[Any], shape: tuple[int, ...], n: int) -> None:
        ints, self.den = _exact.integer_form(flat)
        k1, k2 = shape
        self.rows = [ints[i * k2 : (i + 1) * k2] for i in range(k1)]
        self.n = n
        self.shape = measures.rf_size(shape, n)
        self._grid: list[list[Any]] | None = None
        self._power: Any = None

    def power(self) -> Any:
        """The power as an `erftheory._exact.Power2D` (computed once; no dense grid yet)."""
        if self._power is None:
            _exact.guard(_exact.POW_PEAK_FACTOR * self._bytes(), "the exact coefficients", _HINT)
            self._power = _exact.Power2D(self.rows, self.n)
        return self._power

    def compute(self) -> None:
        self.power()

    def log_normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(sum(r) for r in self.rows))
        _exact.guard(_exact.mul(self.shape[0] * self.shape[1], 8.0), "the log-profile", _HINT)
        power = self.power()
        lt = _exact.log_abs(self.total_int())
        out = np.full(self.shape, -math.inf)
        for (i, j), c in power.terms():
            out[i, j] = _exact.log_abs(c) - lt
        return out

    def _bytes(self, den: bool = False) -> float:
        total_abs = sum(abs(x) for r in self.rows for x in r)
        bits = _exact.mul(self.n, math.log2(total_abs)) + 2 if total_abs else 1.0
        if den:  # the reduced Fractions' denominators, up to D**n each
            bits += _exact.mul(self.n, math.log2(self.den))
        count = self.shape[0] * self.shape[1]
        return _exact.mul(count, bits / 8 + 48 + 16)

    def grid(self) -> list[list[Any]]:
        if self._grid is None:
            _exact.guard(_exact.POW_PEAK_FACTOR * self._bytes(), "the exact coefficients", _HINT)
            grid: list[list[Any]] = [[0] * self.shape[1] for _ in range(self.shape[0])]
            for (i, j), c in self.power().terms():
                grid[i][j] = c
            self._grid = grid
        return self._grid

    @cached_property
    def scale(self) -> int:
        """$D^n$: the common denominator of the coefficients."""
        return _checked_power(self.den, self.n, "the common denominator D**n")

    def _value(self, c: Any) -> Any:
        return _exact_value(c, self.den, self.scale if self.den != 1 else 1)

    def coefficients(self) -> list[list[Any]]:
        _exact.guard(
            _exact.POW_PEAK_FACTOR * self._bytes() + self._bytes(den=True),
            "the exact coefficients",
            _HINT,
        )
        return [[self._value(c) for c in row] for row in self.grid()]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        if self._grid is None:
            return self._value(self.power()[(index[0], index[1])])
        return self._value(self._grid[index[0]][index[1]])

    def normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(sum(r) for r in self.rows))
        _exact.guard(
            _exact.mul(self.shape[0] * self.shape[1], 8.0), "the normalised profile", _HINT
        )
        grid = self.grid()
        conv = _exact.ratio_to_float(self.total_int())
        return np.array([[conv(c) for c in row] for row in grid], dtype=float)

    def total_int(self) -> int:
        return _checked_power(sum(sum(r) for r in self.rows), self.n)


class _SymbolicData:
    r"""The ``symbolic`` engine: coefficients as sympy expressions, by the cheapest exact route.

    - Integer and rational kernels: the exact engine (flint, with its memory guard), its
      values returned as sympy numbers; `normalized` and the other numeric reads work.
    - Weights that are polynomials with rational coefficients in their symbols (or in
      other atoms: ``sqrt(a)``, ``pi``): python-flint's ``fmpq_mpoly`` power in those
      generators and $z$ (or $x, y$), after a memory and work estimate; only the
      coefficients asked for are turned into sympy expressions (about 0.2 ms per term,
      so `coefficients` is refused past `_SYMBOLIC_MAX_TERMS` terms). $[a, 1]$ at
      $n = 20\,000$ takes seconds.
    - Anything else (float weights, ...): sympy's own polynomial power, refused up front
      past `_SYMPY_MAX_WORK` (about 10 s).
    """

    def __init__(self, kernel: Kernel, n: int) -> None:
        self.kernel = kernel
        self.n = n
        self.weights = [to_sympy(x) for x in kernel.flat]
        self._coeffs: list[Any] | None = None
        self._numeric: Any = None
        if kernel.domain in ("integer", "rational"):
            self._numeric = _make_data(kernel, n, "exact")
        elif kernel.domain == "float":
            self._numeric = _make_data(kernel, n, "float")
        self._mpoly: tuple[Any, list[Any], dict[tuple[int, ...], list[Any]]] | None = None
        self._route: str | None = None

    # ---------------------------------------------------------------- routes
    @property
    def route(self) -> str:
        """``"exact"``, ``"mpoly"`` or ``"sympy"``."""
        if self._route is None:
            if self.kernel.domain in ("integer", "rational"):
                self._route = "exact"
            else:
                self._route = "mpoly" if self._polys() is not None else "sympy"
        return self._route

    def _polys(self) -> tuple[list[Any], list[Any]] | None:
        """The weights as sympy Polys over QQ in common generators, or None."""
        import sympy

        if self.kernel.domain == "float" or any(w.has(sympy.Float) for w in self.weights):
            return None
        try:
            polys, opt = sympy.parallel_poly_from_expr(self.weights, domain="QQ")
        except (sympy.PolynomialError, sympy.polys.polyerrors.OptionError, ValueError):
            return None
        return polys, list(opt.gens)

    def _index_shape(self) -> tuple[int, ...]:
        return measures.rf_size(self.kernel.shape, self.n)

    def _terms_bound(self, polys: list[Any], gens: list[Any]) -> int:
        """An upper bound on the terms of $V^n$ in the generators and $z$ (or $x, y$)."""
        nonzero = sum(1 for p in polys if not p.is_zero)
        multinomial = math.comb(self.n + nonzero - 1, nonzero - 1) if nonzero else 1
        dense = math.prod(self._index_shape())
        for g in range(len(gens)):
            dense *= self.n * max((p.degree(g) if not p.is_zero else 0) for p in polys) + 1
        return min(multinomial, dense)

    def _power(self) -> tuple[Any, list[Any], dict[tuple[int, ...], list[Any]]]:
        """``(mpoly power, generators, {index: [(exponents, coefficient), ...]})``."""
        if self._mpoly is None:
            import flint

            found = self._polys()
            assert found is not None
            polys, gens = found
            terms = self._terms_bound(polys, gens)
            num, den = 0, 1
            for p in polys:
                for c in p.coeffs():
                    q = Fraction(int(c.numerator), int(c.denominator))
                    num += abs(q.numerator)
                    den = math.lcm(den, q.denominator)
            bits = _exact.mul(self.n, math.log2(max(num, 2)) + math.log2(den)) + 2
            nvars = len(gens) + self.kernel.ndim
            what = "the symbolic expansion (python-flint's fmpq_mpoly power)"
            hint = "substitute numbers for some symbols or use fewer layers"
            _exact.guard(_exact.mul(terms, 2 * bits / 8 + 8 * nvars + 64), what, hint)
            _exact.check_work(_exact.mul(terms, len(polys) * (bits / 8 + 8 * nvars)), what, hint)
            names = [f"g{i}" for i in range(len(gens))] + ["_x", "_y"][: self.kernel.ndim]
            ctx = flint.fmpq_mpoly_ctx.get(tuple(names), "lex")
            k2 = self.kernel.shape[-1]
            base: dict[tuple[int, ...], Any] = {}
            for m, p in enumerate(polys):
                pos = (m,) if self.kernel.ndim == 1 else divmod(m, k2)
                for monom, c in p.terms():
                    key = (*monom, *pos)
                    base[key] = base.get(key, 0) + flint.fmpq(int(c.numerator), int(c.denominator))
            power = ctx.from_dict(base) ** self.n if base else ctx.from_dict({}) ** self.n
            groups: dict[tuple[int, ...], list[Any]] = {}
            ng = len(gens)
            for monom, c in zip(power.monoms(), power.coeffs(), strict=True):
                groups.setdefault(tuple(monom[ng:]), []).append((monom[:ng], c))
            self._mpoly = (power, gens, groups)
        return self._mpoly

    def _expr(self, index: tuple[int, ...]) -> Any:
        """One coefficient of the mpoly power as a sympy expression (canonical, expanded)."""
        import sympy

        _, gens, groups = self._power()
        terms = [_sympy_term(c, gens, e) for e, c in groups.get(index, [])]
        return _sympy_sum(terms) if terms else sympy.Integer(0)

    # ---------------------------------------------------------------- reads
    def coefficients(self) -> list[Any]:
        if self._coeffs is None:
            route = self.route
            if route == "exact":
                values = self._numeric.coefficients()
                self._coeffs = _nested_map(values, _sympy_number)
            elif route == "mpoly":
                power = self._power()[0]
                if len(power) > _SYMBOLIC_MAX_TERMS:
                    raise _config.SizeLimitError(
                        f"the symbolic expansion has {len(power)} terms, above the limit of "
                        f"{_SYMBOLIC_MAX_TERMS} that sympy turns into expressions in seconds; "
                        f"read single coefficients with coefficient(t), substitute numbers for "
                        f"some symbols, or use fewer layers",
                        len(power),
                        _SYMBOLIC_MAX_TERMS,
                    )
                shape = self._index_shape()
                if self.kernel.ndim == 1:
                    self._coeffs = [self._expr((t,)) for t in range(shape[0])]
                else:
                    self._coeffs = [
                        [self._expr((i, j)) for j in range(shape[1])] for i in range(shape[0])
                    ]
            else:
                self._coeffs = self._sympy_coefficients()
        return self._coeffs

    def _sympy_coefficients(self) -> list[Any]:
        import sympy

        k = self.kernel.size
        terms = math.comb(self.n + k - 1, k - 1)
        length = math.prod(self._index_shape())
        work = _exact.mul(terms, _exact.fl(length))
        if terms > _SYMBOLIC_MAX_TERMS or work > _SYMPY_MAX_WORK:
            raise _config.SizeLimitError(
                f"the symbolic expansion has up to {format_value(terms, short=True)} terms "
                f"over {format_value(length, short=True)} coefficients (work about "
                f"{work:.3g}, limit {_SYMPY_MAX_WORK:.3g}: sympy would take minutes); write "
                f"float weights as exact rationals, substitute numbers for some symbols, or "
                f"use fewer layers",
                int(min(work, 2.0**200)),
                int(_SYMPY_MAX_WORK),
            )
        if self.kernel.ndim == 1:
            z = sympy.Symbol("z")
            poly = sympy.Poly(sum(w * z**m for m, w in enumerate(self.weights)), z) ** self.n
            return [sympy.expand(poly.coeff_monomial(z**t)) for t in range(length)]
        x, y = sympy.symbols("x y")
        k1, k2 = self.kernel.shape
        base = sum(self.weights[i * k2 + j] * x**i * y**j for i in range(k1) for j in range(k2))
        poly = sympy.Poly(base, x, y) ** self.n
        L1, L2 = self._index_shape()
        return [
            [sympy.expand(poly.coeff_monomial(x**i * y**j)) for j in range(L2)] for i in range(L1)
        ]

    def compute(self) -> None:
        self.coefficients()

    def coefficient(self, index: tuple[int, ...]) -> Any:
        if self._coeffs is None and self.route == "exact":
            return _sympy_number(self._numeric.coefficient(index))
        if self._coeffs is None and self.route == "mpoly":
            return self._expr(index)
        c: Any = self.coefficients()
        for i in index:
            c = c[i]
        return c

    def normalized(self) -> np.ndarray:
        if self._numeric is None:
            raise ERFTypeError(
                "normalized() needs numbers; this profile is symbolic: substitute values into "
                "the kernel's symbols and build a numeric Kernel"
            )
        return np.asarray(self._numeric.normalized())

    def log_normalized(self) -> np.ndarray:
        if self._numeric is None:
            raise ERFTypeError("log_normalized() needs numbers; this profile is symbolic")
        return np.asarray(self._numeric.log_normalized())


_SYMPY_MAX_WORK = 4e6
"""sympy's own power costs about 1.5 µs × (terms) × (coefficients) (measured: [a, 1] at
n = 800, [a, b, a] at n = 80, [a, 1, 1, 1] at n = 60: 1-3 s); past this, refuse."""


def _sympy_number(x: Any) -> Any:
    import sympy

    if isinstance(x, Fraction):
        return sympy.Rational(x.numerator, x.denominator)
    if isinstance(x, float):
        return sympy.Float(x)
    return sympy.Integer(int(x))


def _nested_map(values: Any, f: Any) -> Any:
    if isinstance(values, list):
        return [_nested_map(v, f) for v in values]
    return f(values)


def _sympy_term(c: Any, gens: list[Any], exps: tuple[int, ...]) -> Any:
    """``c * prod(g**e)`` as sympy builds it, without Mul's flattening where that is safe."""
    import sympy
    from sympy.core.basic import Basic

    q = Fraction(int(c.p), int(c.q))
    coeff = sympy.Rational(q.numerator, q.denominator)
    factors = [g**e if e != 1 else g for g, e in zip(gens, exps, strict=True) if e]
    if not factors:
        return coeff
    if not all(isinstance(g, sympy.Symbol) for g, e in zip(gens, exps, strict=True) if e):
        return sympy.Mul(coeff, *factors)  # atoms such as sqrt(a) may combine: evaluate
    import functools

    factors.sort(key=functools.cmp_to_key(Basic.compare))
    args = factors if coeff == 1 else [coeff, *factors]
    return args[0] if len(args) == 1 else sympy.Mul._from_args(args)


def _sympy_sum(terms: list[Any]) -> Any:
    import sympy

    if len(terms) == 1:
        return terms[0]
    return sympy.Add(*terms)
