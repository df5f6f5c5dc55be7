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
from .kernel import Kernel, to_sympy

__all__ = ["Profile", "profile"]

Method = Literal["auto", "exact", "fft", "float", "arb", "symbolic"]
METHODS = METHOD_NAMES

_SYMBOLIC_MAX_TERMS = 200_000
# Above this many bytes of big-integer data, streaming exact normalisation would
# take minutes (measured ~0.4 s per GiB streamed with k = 3 on 2 cores): refuse.
_STREAM_MAX_BYTES = 64 * 1024**3


def check_layers(layers: Any, name: str = "layers") -> int:
    """Validate a layer count: a non-negative int (not a bool)."""
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral):
        raise ERFTypeError(f"{name} must be a non-negative integer (0, 1, 2, ...), got {layers!r}")
    if layers < 0:
        raise ERFValueError(f"{name} must be a non-negative integer (0, 1, 2, ...), got {layers!r}")
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
        if engine != "arb":
            raise ERFValueError(f"dps={dps!r} is only used by method='arb'; got method={method!r}")
        if isinstance(dps, bool) or not isinstance(dps, numbers.Integral) or dps <= 0:
            raise ERFValueError(f"dps must be a positive integer (decimal digits), got {dps!r}")
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

        Example:
            >>> from erftheory import Kernel, profile
            >>> profile(Kernel([1, 1]), layers=10).coefficient(5)   # C(10, 5)
            252
        """
        return self._data.coefficient(self._checked_index(index, "coefficient"))

    def _checked_index(self, index: tuple[int, ...], method: str) -> tuple[int, ...]:
        """``index`` as ints after checking its length and range (ERFValueError otherwise)."""
        if len(index) != self.ndim:
            raise ERFValueError(f"{method}() takes {self.ndim} index(es), got {index!r}")
        for i, s in zip(index, self.shape, strict=True):
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < s:
                raise ERFValueError(f"index {index!r} is outside the profile's shape {self.shape}")
        return tuple(int(i) for i in index)

    @property
    def total(self) -> Any:
        r"""$\sum_t o(t) = (\sum_m w(m))^n$, exact for exact kernels."""
        t = self.kernel.total
        if self.kernel.domain == "float":
            with np.errstate(over="ignore"):
                return float(np.float64(t) ** self.layers)
        if self.method == "symbolic":
            return to_sympy(t) ** self.layers
        if isinstance(t, Fraction):
            return Fraction(
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
        mean = tuple(n * x for x in raw[0])
        cov = tuple(tuple(n * x for x in r) for r in raw[1])
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
        out = []
        for x in values:
            fx = float(x)
            if fx < 0:
                raise ERFValueError(
                    f"the variance is negative ({x}): the kernel has negative weights, so the "
                    f"normalised profile is not a distribution and has no standard deviation"
                )
            out.append(math.sqrt(fx))
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

        ``-inf`` marks exact zeros. Exact profiles take the logarithm of each exact ratio;
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
        if self.method == "symbolic":
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
        (`erftheory._arb.cauchy_ball`: certified quadrature, 0.01-3 s per coefficient up
        to $n = 10^6$, $k = 101$), without the other coefficients; otherwise it is read
        from `balls`. Either way it certainly contains the true value.

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
        """The Gaussian with this profile's mean and (co)variance, and distances to it."""
        mean, cov = self._moments
        if self.method == "symbolic":
            raise ERFTypeError("gaussian() needs numbers; this profile is symbolic")
        m = mean[0] if self.ndim == 1 else mean
        c = cov[0][0] if self.ndim == 1 else cov
        return fit_gaussian(self.normalized(), self._origin_tuple, m, c)

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
        rf = math.prod(self.shape) ** (1 / self.ndim)
        if measure == "threshold":
            return self.threshold_size() / rf
        if measure == "mass":
            return self.mass_size(fraction) / rf
        if measure == "std":
            s = self.std
            return (s if self.ndim == 1 else math.sqrt(s[0] * s[1])) / rf
        raise ERFValueError(f"measure must be 'threshold', 'std' or 'mass', got {measure!r}")

    def summary(self, fractions: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)) -> dict[str, Any]:
        """Every number the CLI prints, as plain Python values (exact ones as strings)."""
        fit = self.gaussian()
        out: dict[str, Any] = {
            "kernel": _jsonable(self.kernel.weights),
            "anchor": self.kernel.anchor,
            "layers": self.layers,
            "method": self.method,
            "shape": list(self.shape),
            "origin": self.origin if self.ndim == 1 else list(self.origin),
            "mean": _jsonable(self.mean),
            "variance": _jsonable(self.variance),
            "std": self.std if self.ndim == 1 else list(self.std),
            "rf_size": self.rf_size if self.ndim == 1 else list(self.rf_size),
            "threshold_size": self.threshold_size(),
            "mass_size": {f"{f:g}": self.mass_size(f) for f in fractions},
            "erf_ratio": self.erf_ratio("threshold"),
            "erf_ratio_std": self.erf_ratio("std"),
            "gaussian": {
                "max_abs_diff": fit.max_abs_diff,
                "total_variation": fit.total_variation,
                "kolmogorov": fit.kolmogorov,
            },
        }
        if self.ndim == 2:
            out["covariance"] = _jsonable(self.covariance)
        return out

    def __repr__(self) -> str:
        return f"Profile({self.kernel!r}, layers={self.layers}, method={self.method!r})"


def _checked_power(base: int, n: int) -> int:
    """``base ** n`` after checking that the result fits the memory limit."""
    if abs(base) > 1:
        _config.check_size(n * math.log2(abs(base)) / 8 + 64, "the exact total", _HINT)
    return base**n


def _exact_value(c: Any, den: int, scale: int) -> Any:
    """A coefficient ``c / scale`` of an integer-form kernel with denominator ``den``."""
    if den == 1:
        return int(c)
    f = Fraction(int(c), scale)
    return int(f) if f.denominator == 1 else f


def _jsonable(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, float):
        return x
    return str(x)


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
            _config.check_size(
                _exact.bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT
            )
            self._bits = _exact.coefficient_bits_bound(self.ints, self.n)
        return self._bits[0]

    @property
    def poly_bytes(self) -> float:
        return _exact.poly_bytes(self.bits, self.length)

    def poly(self) -> Any:
        if self._poly is None:
            if _exact.POW_PEAK_FACTOR * self._crude_bytes() > _config.get_memory_limit():
                # Only then is the refined (rigorous, tighter, ~5 ms) estimate worth its cost.
                _config.check_size(
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
        bits = self.n * math.log2(l1) + 2 if l1 > 1 else 2.0
        return self.length * (bits / 8 + 48)

    @property
    def uniform(self) -> bool:
        """Equal taps, k >= 4: the three-term recurrence beats flint's power."""
        return _exact.use_uniform_recurrence(self.ints, self.n)

    def _uniform_value(self, t: int) -> int:
        return self.ints[0] ** self.n * _exact.uniform_coefficient(len(self.ints), self.n, t)

    def compute(self) -> None:
        self.poly()

    def log_normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(self.ints))
        total = self.total_int()
        _config.check_size(8.0 * self.length, "the log-profile", "use fewer layers")
        out = np.empty(self.length)
        try:
            p = self.poly()
            values: Any = (p[t] for t in range(self.length))
        except _config.SizeLimitError:
            values = _exact.stream_power_1d(self.ints, self.n)
        log_total = _exact.log_abs(total)
        for t, c in enumerate(values):
            out[t] = _exact.log_abs(c) - log_total if c != 0 else -math.inf
        return out

    @cached_property
    def scale(self) -> int:
        """$D^n$: the common denominator of the coefficients."""
        return _checked_power(self.den, self.n)

    def _value(self, c: Any) -> Any:
        return _exact_value(c, self.den, self.scale if self.den != 1 else 1)

    def coefficients(self) -> list[Any]:
        _config.check_size(
            _exact.POW_PEAK_FACTOR * self.poly_bytes + _exact.python_bytes(self.bits, self.length),
            "the exact coefficients",
            _HINT,
        )
        p = self.poly()
        deg = p.degree()
        return [self._value(p[t]) if t <= deg else 0 for t in range(self.length)]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        (t,) = index
        if self._poly is None and self.uniform and self.n > 0:
            # Closed form: a few percent of the full power, and nothing else is built.
            return self._value(self._uniform_value(t))
        try:
            p = self.poly()
        except _config.SizeLimitError:
            l1 = max(sum(abs(w) for w in self.ints), 2)
            work = len(self.ints) * (self.n * math.log2(l1) / 8 + 64)
            _config.check_size(work, "streaming one exact coefficient", _HINT)
            for i, c in enumerate(_exact.stream_power_1d(self.ints, self.n)):
                if i == t:
                    return self._value(c)
            raise AssertionError("unreachable") from None
        return self._value(p[t]) if t <= p.degree() else 0

    def total_int(self) -> int:
        return _checked_power(sum(self.ints), self.n)

    def normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(self.ints), self.ints)
        _config.check_size(8.0 * self.length, "the normalised profile", "use fewer layers")
        out = np.empty(self.length)
        limit = _config.get_memory_limit()
        if self._poly is None and _exact.POW_PEAK_FACTOR * self.poly_bytes > limit:
            streamed = self.bits / 8 * len(self.ints)
            if streamed > _STREAM_MAX_BYTES:
                raise _config.SizeLimitError(
                    f"exact normalisation would stream about {_config.format_bytes(streamed)} of "
                    f"big integers (many minutes); use profile(..., method='float')",
                    int(streamed),
                    _STREAM_MAX_BYTES,
                )
            conv = _exact.ratio_to_float(self.total_int())
            for t, c in enumerate(_exact.stream_power_1d(self.ints, self.n)):
                out[t] = conv(c)
            return out
        conv = _exact.ratio_to_float(self.total_int())
        p = self.poly()
        deg = p.degree()
        for t in range(self.length):
            out[t] = conv(p[t]) if t <= deg else 0.0
        return out


class _ExactSeparable:
    """A separable 2-D kernel u ⊗ v: the profile is the outer product of 1-D profiles."""

    def __init__(self, rows: _Exact1D, cols: _Exact1D) -> None:
        self.rows, self.cols = rows, cols

    def coefficients(self) -> list[list[Any]]:
        count = self.rows.length * self.cols.length
        bits = self.rows.bits * self.cols.length + self.cols.bits * self.rows.length
        _config.check_size(
            _exact.python_bytes(bits, count) + 8.0 * count, "the exact coefficients", _HINT
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
        _config.check_size(
            8.0 * self.rows.length * self.cols.length, "the log-profile", "use fewer layers"
        )
        with np.errstate(invalid="ignore"):
            return np.add.outer(self.rows.log_normalized(), self.cols.log_normalized())

    def normalized(self) -> np.ndarray:
        _config.check_size(
            8.0 * self.rows.length * self.cols.length, "the normalised profile", "use fewer layers"
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
            _config.check_size(
                _exact.POW_PEAK_FACTOR * self._bytes(), "the exact coefficients", _HINT
            )
            self._power = _exact.Power2D(self.rows, self.n)
        return self._power

    def compute(self) -> None:
        self.power()

    def log_normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(sum(r) for r in self.rows))
        lt = _exact.log_abs(self.total_int())
        out = np.full(self.shape, -math.inf)
        for (i, j), c in self.power().terms():
            out[i, j] = _exact.log_abs(c) - lt
        return out

    def _bytes(self) -> float:
        total_abs = sum(abs(x) for r in self.rows for x in r)
        bits = self.n * math.log2(total_abs) + 2 if total_abs else 1.0
        count = self.shape[0] * self.shape[1]
        return count * (bits / 8 + 48 + 16)

    def grid(self) -> list[list[Any]]:
        if self._grid is None:
            _config.check_size(
                _exact.POW_PEAK_FACTOR * self._bytes(), "the exact coefficients", _HINT
            )
            grid: list[list[Any]] = [[0] * self.shape[1] for _ in range(self.shape[0])]
            for (i, j), c in self.power().terms():
                grid[i][j] = c
            self._grid = grid
        return self._grid

    @cached_property
    def scale(self) -> int:
        """$D^n$: the common denominator of the coefficients."""
        return _checked_power(self.den, self.n)

    def _value(self, c: Any) -> Any:
        return _exact_value(c, self.den, self.scale if self.den != 1 else 1)

    def coefficients(self) -> list[list[Any]]:
        _config.check_size(
            (_exact.POW_PEAK_FACTOR + 1) * self._bytes(), "the exact coefficients", _HINT
        )
        return [[self._value(c) for c in row] for row in self.grid()]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        if self._grid is None:
            return self._value(self.power()[(index[0], index[1])])
        return self._value(self._grid[index[0]][index[1]])

    def normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(sum(r) for r in self.rows))
        grid = self.grid()
        conv = _exact.ratio_to_float(self.total_int())
        return np.array([[conv(c) for c in row] for row in grid], dtype=float)

    def total_int(self) -> int:
        return _checked_power(sum(sum(r) for r in self.rows), self.n)


class _SymbolicData:
    """Symbolic kernels: sympy polynomial powers (small n)."""

    def __init__(self, kernel: Kernel, n: int) -> None:

        self.kernel = kernel
        self.n = n
        self.weights = [to_sympy(x) for x in kernel.flat]
        self._coeffs: list[Any] | None = None

    def coefficients(self) -> list[Any]:
        if self._coeffs is None:
            import sympy

            k = self.kernel.size
            terms = math.comb(self.n + k - 1, k - 1)
            if terms > _SYMBOLIC_MAX_TERMS:
                raise _config.SizeLimitError(
                    f"the symbolic expansion has up to {terms} terms "
                    f"(limit {_SYMBOLIC_MAX_TERMS}); substitute numbers for some symbols or use "
                    f"fewer layers",
                    terms,
                    _SYMBOLIC_MAX_TERMS,
                )
            if self.kernel.ndim == 1:
                z = sympy.Symbol("z")
                poly = sympy.Poly(sum(w * z**m for m, w in enumerate(self.weights)), z) ** self.n
                length = self.n * (k - 1) + 1
                coeffs = [sympy.expand(poly.coeff_monomial(z**t)) for t in range(length)]
                self._coeffs = coeffs
            else:
                x, y = sympy.symbols("x y")
                k1, k2 = self.kernel.shape
                base = sum(
                    self.weights[i * k2 + j] * x**i * y**j for i in range(k1) for j in range(k2)
                )
                poly = sympy.Poly(base, x, y) ** self.n
                L1, L2 = self.n * (k1 - 1) + 1, self.n * (k2 - 1) + 1
                self._coeffs = [
                    [sympy.expand(poly.coeff_monomial(x**i * y**j)) for j in range(L2)]
                    for i in range(L1)
                ]
        return self._coeffs

    def compute(self) -> None:
        self.coefficients()

    def coefficient(self, index: tuple[int, ...]) -> Any:
        c: Any = self.coefficients()
        for i in index:
            c = c[i]
        return c

    def normalized(self) -> np.ndarray:
        raise ERFTypeError(
            "normalized() needs numbers; this profile is symbolic: substitute values into the "
            "kernel's symbols and build a numeric Kernel"
        )
