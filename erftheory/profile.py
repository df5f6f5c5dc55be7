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
from typing import Any, Literal

import numpy as np

# The old paths erftheory._engines and erftheory._exact stay attributes of the package.
from . import _engines, _exact, engines, measures  # noqa: F401
from ._errors import ERFTypeError, ERFValueError
from .engines import KernelPower, Result
from .engines.exact import fl as _fl
from .engines.source import jsonable, plain
from .gaussian import GaussianFit, fit_gaussian
from .kernel import Kernel, format_value

__all__ = ["Profile", "profile"]

Method = Literal["auto", "exact", "fft", "float", "arb", "symbolic"]
METHODS = engines.METHOD_NAMES
MAX_DPS = engines.MAX_DPS
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
        method: an engine of `erftheory.engines.ENGINES` (see ``docs/engines.md``):
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
    return Profile._of(engines.run(KernelPower(k, check_layers(layers)), method, dps))


def _public(values: tuple[Any, ...]) -> Any:
    """Per-axis values as the public surface gives them: the one entry in 1-D, else the tuple."""
    return values[0] if len(values) == 1 else values


class Profile:
    r"""The ERF $o(t)$ of $n$ stacked layers with one kernel (Eq. 9), 1-D or 2-D.

    A thin facade over an engine's result (`erftheory.engines.Result`): the values come
    from the engine, the moments from the source (`erftheory.engines.source`), and the
    measures (ERF sizes, the Gaussian fit, `summary`) read those.

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

    _result: Result

    def __init__(
        self,
        kernel: Kernel,
        layers: int,
        method: str,
        *,
        dps: int | None = None,
        reason: str = "requested",
    ) -> None:
        result = engines.build(KernelPower(kernel, layers), method, dps)
        result.reason = reason
        self._attach(result)

    @classmethod
    def _of(cls, result: Result) -> Profile:
        """The profile of an engine's result (what `profile` builds)."""
        p = cls.__new__(cls)
        p._attach(result)
        return p

    def _attach(self, result: Result) -> None:
        self._result = result
        self.method: str = result.method
        self.engine_reason: str = result.reason
        self.dps: int | None = result.dps

    # ------------------------------------------------------------ what was powered
    @property
    def kernel(self) -> Kernel:
        """The `Kernel` whose power this is."""
        return self._result.source.kernel

    @property
    def layers(self) -> int:
        """$n$."""
        return self._result.source.n

    # ------------------------------------------------------------ geometry
    @property
    def ndim(self) -> int:
        """1 or 2."""
        return len(self._result.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Length (1-D) or rows × columns (2-D) of the coefficient array: $n(k-1)+1$."""
        return self._result.shape

    @property
    def origin(self) -> Any:
        """Index of the input pixel under the output unit: ``n * anchor`` (tuple in 2-D)."""
        return _public(self._result.origin)

    @property
    def _origin_tuple(self) -> tuple[int, ...]:
        return self._result.origin

    # ------------------------------------------------------------ exact values
    @property
    def coefficients(self) -> list[Any]:
        """The coefficients $o(t)$, not normalised: a list (1-D) or list of rows (2-D).

        ints for integer kernels, Fractions for rational ones, floats for float
        kernels, sympy expressions for symbolic ones. Checked against the memory
        limit before anything is allocated.
        """
        return self._result.coefficients()

    def coefficient(self, *index: int) -> Any:
        """One coefficient by array index (one index in 1-D, two in 2-D).

        Exact 1-D profiles answer without the other coefficients where they can
        (`erftheory.engines.exact.single_coefficient`: binomial powers such as $[1, 2, 1]$ by
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
        return self._result.coefficient(self._result.check_index(index, "coefficient"))

    @property
    def total(self) -> Any:
        r"""$\sum_t o(t) = (\sum_m w(m))^n$, exact for exact kernels."""
        return self._result.total()

    # ------------------------------------------------------------ moments (Eq. 10)
    @property
    def mean(self) -> Any:
        r"""Mean position of the normalised profile from the origin: $n(\mathbb E[X] - a)$ (Eq. 10).

        A pair ``(rows, columns)`` in 2-D.
        """
        return _public(self._result.moments()[0])

    def _variances(self) -> tuple[Any, ...]:
        cov = self._result.moments()[1]
        return tuple(cov[a][a] for a in range(len(cov)))

    @property
    def variance(self) -> Any:
        r"""Variance of the normalised profile: $n\,\mathrm{Var}[X]$ (Eq. 10); a pair in 2-D."""
        return _public(self._variances())

    @property
    def covariance(self) -> Any:
        """The 2×2 covariance matrix (nested tuples) of the normalised profile (2-D only)."""
        if self.ndim != 2:
            raise ERFValueError("covariance is defined for 2-D profiles; use variance in 1-D")
        return self._result.moments()[1]

    @property
    def std(self) -> Any:
        """Standard deviation(s) as float: the paper's one-σ ERF radius (Section 2.3)."""
        return _public(self._stds())

    def _stds(self) -> tuple[float, ...]:
        if self._result.source.domain == "symbolic":
            raise ERFTypeError(
                f"std needs numbers; this profile's variance is symbolic "
                f"({format_value(self.variance, short=True)}): use sympy.sqrt(profile.variance)"
            )
        return tuple(_sqrt(x) for x in self._variances())

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
        return self._result.normalized()

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
        return self._result.log_normalized()

    def compute(self) -> Profile:
        """Run the engine now, in its native form (fmpz, float64 or arb), and return ``self``.

        No Python ints or Fractions are built; `coefficients`, `coefficient` and
        `normalized` then read the stored result. Useful for timing an engine.

        Example:
            >>> from erftheory import Kernel, profile
            >>> profile(Kernel.uniform(2), layers=10).compute().coefficient(5)   # C(10, 5)
            252
        """
        self._result.compute()
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
        rows = self._result.balls()
        return rows[0] if self.ndim == 1 else rows

    def ball(self, *index: int) -> Any:
        r"""The ``arb`` engine's ball for one normalised coefficient, by array index.

        For a nonnegative 1-D kernel whose profile has at least
        `erftheory.engines.arb.CAUCHY_MIN_LENGTH` entries, and while the whole power has
        not been computed, the ball comes from the Cauchy integral on the saddle-point
        circle (`erftheory.engines.arb.cauchy_ball`: certified quadrature, 0.01-0.3 s per
        coefficient up to $n = 10^{15}$, $k = 101$, relative radius about $10^{-42}$ at
        ``dps=30``), without the other coefficients; otherwise it is read from `balls`.
        Either way it certainly contains the true value; a certificate that comes out
        wider than the requested precision is an `ERFValueError`, never a useless ball.

        Example:
            >>> from erftheory import Kernel, profile
            >>> p = profile(Kernel([1, 1, 1]), layers=10**4, method="arb", dps=30)
            >>> b = p.ball(10**4)          # the centre, without the other 20 000 values
            >>> exact = profile(Kernel([1, 1, 1]), layers=10**4).coefficient(10**4)
            >>> float(b.mid()) == exact / 3**10**4, b.rad() < 1e-35   # correctly rounded
            (True, True)
        """
        return self._result.ball(index)

    @property
    def abs_error_bound(self) -> float | None:
        r"""A bound on $|\hat c_t - c_t|$ over all normalised values, or None.

        ``exact``: rounding only, $2^{-53}\max_t c_t$; ``fft``: the a-posteriori bound of
        `erftheory.engines.fft`; ``arb``: the largest radius plus rounding; ``float``: None
        (its guarantee is relative, see ``docs/engines.md``) unless the kernel has negative
        weights and it fell back to the FFT, whose bound it then reports; ``symbolic``:
        None.
        """
        return self._result.abs_error_bound

    def gaussian(self) -> GaussianFit:
        """The Gaussian with this profile's mean and (co)variance, and distances to it.

        Raises:
            ERFTypeError: the kernel is symbolic (a symbolic-method profile of a numeric
                kernel works).
            ERFValueError: the variance is not positive (one tap, or no layers): there is
                no Gaussian; `summary` reports None then.
        """
        if self._result.source.domain == "symbolic":
            raise ERFTypeError(
                "gaussian() needs numbers; this profile's kernel is symbolic: substitute "
                "values into its symbols first"
            )
        mean, cov = self._result.moments()
        # 1-D: the mean and variance as numbers; 2-D: the pair and the matrix.
        return fit_gaussian(
            self.normalized(), self._origin_tuple, _public(mean), _public(tuple(map(_public, cov)))
        )

    def _has_gaussian(self) -> bool:
        """Whether the (co)variance is positive (definite): the Gaussian limit exists."""
        cov = [[float(x) for x in row] for row in self._result.moments()[1]]
        if not all(cov[a][a] > 0 for a in range(len(cov))):
            return False
        return len(cov) == 1 or cov[0][0] * cov[1][1] - cov[0][1] * cov[0][1] > 0

    # ------------------------------------------------------------ ERF sizes
    @property
    def rf_size(self) -> Any:
        """Theoretical receptive field: $n(k-1)+1$ pixels (a pair in 2-D)."""
        return _public(self.shape)

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
            s = self._stds()
            if len(s) == 1:
                side = s[0]
            else:  # the geometric mean of the axes
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
            **self._result.source.describe(),
            "method": self.method,
            "shape": list(self.shape),
            "origin": plain(self.origin),
            "mean": jsonable(self.mean),
            "variance": jsonable(self.variance),
        }
        numeric = self._result.source.domain != "symbolic"
        has_std = numeric and all(float(v) >= 0 for v in self._variances())
        std = self.std if has_std else None
        out["std"] = plain(std)
        out["rf_size"] = plain(self.rf_size)
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
            out["covariance"] = jsonable(self.covariance)
        return out

    def __repr__(self) -> str:
        return (
            f"Profile({self.kernel!r}, layers={format_value(self.layers)}, method={self.method!r})"
        )


def _sqrt(x: Any) -> float:
    """The one-σ radius of a variance ``x``: a float, from exact values of any size."""
    if x < 0:
        raise ERFValueError(
            f"the variance is negative ({format_value(x, short=True)}): the kernel has "
            f"negative weights, so the normalised profile is not a distribution and has "
            f"no standard deviation"
        )
    fx = _fl(x)
    if math.isfinite(fx) or isinstance(x, float):
        return math.sqrt(fx)
    # beyond float64 (n = 10^400): the root is not; x = m 4^e exactly
    f = Fraction(x)
    e = (f.numerator.bit_length() - f.denominator.bit_length()) // 2
    root = math.sqrt(float(f / 4**e)) if e >= 0 else math.sqrt(float(f * 4**-e))
    try:
        return math.ldexp(root, e)
    except OverflowError:
        return math.inf
