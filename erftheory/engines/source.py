r"""What an engine powers: a base polynomial $B$ on a grid, taken to the power $n$.

The ERF of $n$ layers of one kernel is the coefficient sequence of $V(z)^n$ (Eq. 9); the
ERF of a network is the coefficient sequence of its transfer polynomial $T$ (Sections
2.4–2.5), which is the same computation with $B = T$ and $n = 1$. A `Source` is that
pair, with the anchor $a$ of $B$ (the tap over the output unit), so that the pixel under
the output unit is ``origin = n * a`` per axis:

- `KernelPower`: a `Kernel` and a layer count (`erftheory.profile`);
- `TransferPolynomial`: a network's exact transfer polynomial (python-flint's
  ``fmpq_mpoly``) on the receptive-field grid, anchored at its centre pixel
  (`erftheory.Network.profile`); no `Kernel` is built unless one is asked for.

Everything an engine reads comes from here, and so do the quantities that need no
engine: the total $(\sum_m b(m))^n$ and the moments $n\,\mathbb E[X - a]$ and
$n\,\mathrm{Cov}[X]$ of one tap drawn with probability $b(m) / \sum b$ (Eq. 10), which
`moments` computes once for both kinds of source, exactly in integer form.

Example:
    >>> from erftheory import Kernel
    >>> s = KernelPower(Kernel([1, 2, 1]), 3)
    >>> s.shape, s.out_shape, s.origin, s.moments()
    ((3,), (7,), (3,), ((Fraction(0, 1),), ((Fraction(3, 2),),)))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from .. import measures
from .._errors import ERFValueError
from ..kernel import (
    Kernel,
    _ratio,
    coprime_fraction,
    format_value,
    reduced_fraction,
    symbolic_tap_moments,
    tap_moments,
)
from . import exact

__all__ = ["FloatTransfer", "KernelPower", "Source", "TransferPolynomial", "jsonable", "plain"]


class Source:
    """A base polynomial on a grid to the power ``n`` (see the module docstring).

    Subclasses give `shape`, `anchor`, `n`, `domain`, `flat`, `total`, `kernel`,
    `describe` and, for exact domains, `integer_form`.

    Attributes:
        shape: the base's grid, ``(k,)`` or ``(k1, k2)``.
        anchor: the base's tap over the output unit, one entry per axis.
        n: the power.
        domain: ``"integer"``, ``"rational"``, ``"float"`` or ``"symbolic"``.
    """

    shape: tuple[int, ...]
    anchor: tuple[int, ...]
    n: int
    domain: str

    # ------------------------------------------------------------ what subclasses give
    @property
    def flat(self) -> tuple[Any, ...]:  # pragma: no cover - every source defines it
        """The base's coefficients in row-major order."""
        raise NotImplementedError

    @property
    def total(self) -> Any:  # pragma: no cover - every source defines it
        r"""$\sum_m b(m)$, exact for exact sources."""
        raise NotImplementedError

    @property
    def kernel(self) -> Kernel:  # pragma: no cover - every source defines it
        """The base as a `Kernel` (built on first use where the source is not one)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - every source defines it
        """The first entries of `erftheory.Profile.summary`: what was powered."""
        raise NotImplementedError

    def _integer_form(self) -> tuple[list[int], int]:
        exact_values = [Fraction(x) if isinstance(x, float) else x for x in self.flat]
        return exact.integer_form(exact_values)

    # ------------------------------------------------------------ derived
    @property
    def ndim(self) -> int:
        """1 or 2."""
        return len(self.shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of the coefficient array: $n(k - 1) + 1$ per axis."""
        return measures.rf_size(self.shape, self.n)

    @property
    def origin(self) -> tuple[int, ...]:
        """The index of the pixel under the output unit: ``n * anchor`` per axis."""
        return tuple(self.n * a for a in self.anchor)

    @property
    def is_exact(self) -> bool:
        """True for integer and rational sources."""
        return self.domain in ("integer", "rational")

    @cached_property
    def has_negative(self) -> bool:
        """Whether a coefficient of the base is negative (numeric sources)."""
        return any(x < 0 for x in self.flat)

    @property
    def weights(self) -> Any:
        """The base's coefficients as `Kernel.weights` gives them (rows in 2-D)."""
        flat = self.flat
        if len(self.shape) == 1:
            return flat
        k2 = self.shape[1]
        return tuple(flat[i * k2 : (i + 1) * k2] for i in range(self.shape[0]))

    def exact(self) -> Source:
        """The source the ``exact`` engine reads: float weights as the dyadic rationals
        they are (`KernelPower` overrides this), so that the moments are exact too."""
        return self

    @cached_property
    def _integer(self) -> tuple[list[int], int]:
        return self._integer_form()

    def integer_form(self) -> tuple[list[int], int]:
        """``(W, D)``: the base as integers ``W`` (row-major) over one denominator ``D``.

        Float coefficients are read exactly (dyadic rationals). Computed once.
        """
        return self._integer

    @cached_property
    def _factors(self) -> tuple[tuple[list[int], int], tuple[list[int], int]] | None:
        ints, den = self.integer_form()
        k1, k2 = self.shape
        pivot = next((m for m, w in enumerate(ints) if w != 0), None)
        if pivot is None:
            return ([0] * k1, 1), ([0] * k2, 1)
        i0, j0 = divmod(pivot, k2)
        p = ints[pivot]
        if any(
            ints[i * k2 + j] * p != ints[i * k2 + j0] * ints[i0 * k2 + j]
            for i in range(k1)
            for j in range(k2)
        ):
            return None
        # The factors as `Kernel.axis_kernels` gives them: the pivot's column as it is,
        # its row divided by the pivot.
        col = [reduced_fraction(ints[i * k2 + j0], den) for i in range(k1)]
        row = [reduced_fraction(ints[i0 * k2 + j], p) for j in range(k2)]
        return exact.integer_form(col), exact.integer_form(row)

    def axis_factors(self) -> tuple[tuple[list[int], int], tuple[list[int], int]] | None:
        r"""For a separable exact 2-D base $b(a, c) = u(a)\,v(c)$, ``(u, v)`` in integer form.

        The factors are those of `erftheory.Kernel.axis_kernels` (the first non-zero
        coefficient's column, and its row divided by it); None when the base is not
        separable.
        """
        return self._factors

    @cached_property
    def tiltable(self) -> bool:
        """Whether the ``float`` engine can tilt this source (nonnegative, positive sum; in
        2-D also separable or with positive corners), see `erftheory.engines.tilted`."""
        from . import tilted

        return tilted.applicable(self)

    def float_rows(self) -> np.ndarray:
        """The base as float64, scaled so that the largest magnitude is near 1.

        Exact sources in integer form (exact in float64 below 2**53; divided by the largest
        weight past 2**1000), float sources as they are unless the largest magnitude is
        beyond 2**±500, when they are multiplied by a power of two (exact). Normalised
        profiles do not depend on the scale, and nothing overflows:
        ``Kernel([1e308, 1e308])`` works. A 1-D or 2-D array of `shape`.
        """
        if self.is_exact:
            ints, _den = self.integer_form()
            big = max(abs(x) for x in ints)
            arr = (
                np.array([float(x) for x in ints])
                if big < 2**1000
                else np.array([exact.fl(Fraction(x, big)) for x in ints])
            )
        else:
            arr = np.array([float(x) for x in self.flat])
            top = float(np.max(np.abs(arr))) if arr.size else 0.0
            if top > 0 and not 2.0**-500 < top < 2.0**500:
                arr = np.ldexp(arr, -math.frexp(top)[1])
        return arr.reshape(self.shape)

    # ------------------------------------------------------------ total and moments
    def total_power(self) -> Any:
        r"""$(\sum_m b(m))^n$: exact (after a memory and work estimate) or float64.

        Floats are inf past float64's range, not an OverflowError; a Fraction stays
        coprime without a gcd of the huge powers.
        """
        t = self.total
        n = self.n
        if isinstance(t, float):
            with np.errstate(over="ignore"):
                return float(np.float64(t) ** n)
        if isinstance(t, Fraction):
            return coprime_fraction(
                exact.checked_power(t.numerator, n), exact.checked_power(t.denominator, n)
            )
        return exact.checked_power(t, n)

    def moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        r"""``(mean, covariance)`` of the normalised profile: $n$ times those of one tap.

        Eq. 10: the mean $n(\mathbb E[X] - a)$ from the origin and the covariance
        $n\,\mathrm{Cov}[X]$, per axis (a tuple and a tuple of row tuples). Exact Fractions
        for exact sources and correctly rounded floats for float ones (both from the
        integer form, so nothing overflows whatever the magnitude of the weights); sympy
        expressions, simplified, for symbolic ones.

        Raises:
            ERFValueError: the coefficients sum to zero (nothing to normalise by).
        """
        mean, cov = self._symbolic_moments() if self.domain == "symbolic" else self._moments()
        n = self.n

        def scaled(x: Any) -> Any:  # floats: inf past float64's range, not OverflowError
            return exact.mul(n, x) if isinstance(x, float) else n * x

        return tuple(scaled(x) for x in mean), tuple(tuple(scaled(x) for x in r) for r in cov)

    def _zero_sum(self) -> ERFValueError:
        return ERFValueError(
            f"the kernel's weights sum to zero ({format_value(self.weights, short=True)}); "
            f"normalised quantities (mean, variance, normalized profile) need a non-zero sum"
        )

    def _moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        ints, _den = self.integer_form()  # moments do not depend on the scale
        if sum(ints) == 0:
            raise self._zero_sum()
        return tap_moments(ints, self.shape, self.anchor, as_float=self.domain == "float")

    def _symbolic_moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        import sympy

        total = self.total
        if bool(sympy.simplify(total) == 0):
            raise self._zero_sum()
        return symbolic_tap_moments(self.flat, self.shape, self.anchor, total)


class KernelPower(Source):
    r"""$V(z)^n$ for a `Kernel` $V$ and $n$ layers (Eq. 9): origin ``n * anchor``.

    Example:
        >>> from erftheory import Kernel
        >>> s = KernelPower(Kernel([[1, 2], [2, 4]]), 2)
        >>> s.out_shape, s.axis_factors()
        ((3, 3), (([1, 2], 1), ([1, 2], 1)))
    """

    def __init__(self, kernel: Kernel, n: int) -> None:
        self._kernel = kernel
        self.shape = kernel.shape
        self.anchor = kernel.anchors
        self.n = n
        self.domain = kernel.domain

    @property
    def kernel(self) -> Kernel:
        """The `Kernel`."""
        return self._kernel

    @property
    def flat(self) -> tuple[Any, ...]:
        """The kernel's weights in row-major order."""
        return self._kernel.flat

    @property
    def total(self) -> Any:
        r"""$\sum_m w(m)$ (`Kernel.total`)."""
        return self._kernel.total

    @property
    def weights(self) -> Any:
        """`Kernel.weights`."""
        return self._kernel.weights

    def exact(self) -> Source:
        """A float kernel as the Fractions its weights are (other kernels unchanged)."""
        if self.domain != "float":
            return self
        values = [Fraction(x) for x in self.flat]
        rows: Any = values
        if len(self.shape) == 2:
            k2 = self.shape[1]
            rows = [values[i * k2 : (i + 1) * k2] for i in range(self.shape[0])]
        return KernelPower(Kernel(rows, anchor=self.anchor), self.n)

    def describe(self) -> dict[str, Any]:
        """``kernel`` (weights, exact ones as text), ``anchor`` and ``layers``."""
        return {
            "kernel": jsonable(self._kernel.weights),
            "anchor": self._kernel.anchor,
            "layers": self.n,
        }


class TransferPolynomial(Source):
    r"""A network's exact transfer polynomial $T$ (an ``fmpq_mpoly``), taken once.

    The grid is the receptive field (``size`` per axis, exponent ``e`` at entry ``e``),
    the anchor its centre pixel ``(size - 1) // 2``. The exact engine reads `T` in
    integer form straight from the polynomial's terms; the Fractions of `flat` and the
    `Kernel` of `kernel` are built only where something asks for them.

    Args:
        rep: the polynomial (``terms()`` gives ``(exponents, fmpq)``).
        size: the receptive field per axis.
        describe: returns the first entries of the profile's summary (what the
            network is); by default, none.

    Example:
        >>> import flint
        >>> ctx = flint.fmpq_mpoly_ctx.get(("x",), "lex")
        >>> t = TransferPolynomial(ctx.from_dict({(0,): 1, (1,): flint.fmpq(1, 2)}), (2,))
        >>> t.domain, t.integer_form(), t.flat, t.origin
        ('rational', ([2, 1], 2), (1, Fraction(1, 2)), (0,))
    """

    def __init__(
        self,
        rep: Any,
        size: tuple[int, ...],
        *,
        describe: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.rep = rep
        self.shape = tuple(size)
        self.anchor = tuple((s - 1) // 2 for s in self.shape)
        self.n = 1
        self._describe = describe
        terms = [(tuple(e), int(c.p), int(c.q)) for e, c in rep.terms()]
        self._terms = terms
        self.domain = "rational" if any(q != 1 for _, _, q in terms) else "integer"

    @cached_property
    def _strides(self) -> tuple[int, ...]:
        return tuple(math.prod(self.shape[a + 1 :]) for a in range(len(self.shape)))

    def _index(self, e: tuple[int, ...]) -> int:
        """The row-major position of the exponents ``e``."""
        return sum(x * s for x, s in zip(e, self._strides, strict=True))

    def _integer_form(self) -> tuple[list[int], int]:
        den = 1
        for _, _, q in self._terms:
            den = math.lcm(den, q)
        ints = [0] * math.prod(self.shape)
        for e, p, q in self._terms:
            ints[self._index(e)] = p * (den // q)
        return ints, den

    @cached_property
    def flat(self) -> tuple[Any, ...]:
        """The coefficients in row-major order (ints, and Fractions where not integral)."""
        values: list[Any] = [0] * math.prod(self.shape)
        for e, p, q in self._terms:
            values[self._index(e)] = p if q == 1 else Fraction(p, q)
        return tuple(values)

    @cached_property
    def total(self) -> Any:
        r"""$T(1)$, the sum of the coefficients: an int, or a Fraction for rational ones."""
        ints, den = self.integer_form()
        s = sum(ints)
        return s if den == 1 else _ratio(s, den)

    @cached_property
    def kernel(self) -> Kernel:
        """The coefficients as a `Kernel` on the RF grid, anchored at its centre."""
        rows: Any = list(self.flat)
        if len(self.shape) == 2:
            k2 = self.shape[1]
            rows = [rows[i * k2 : (i + 1) * k2] for i in range(self.shape[0])]
        return Kernel(rows, anchor=self.anchor)

    def describe(self) -> dict[str, Any]:
        """What the caller said the polynomial is (`erftheory.Network.profile`: the network,
        its kind, its RF's jump and offset)."""
        return self._describe() if self._describe is not None else {}


class FloatTransfer(Source):
    r"""A network's transfer polynomial in float64, with a bound on its error.

    The float route of `erftheory.Network.profile` (`erftheory.network.algebra._Float`:
    the product of the layers' transfer functions, formed in float64), for networks whose
    exact polynomial is too large to expand. The grid and anchor are those of
    `TransferPolynomial`; the moments are the network's exact ones (its moment algebra,
    Eq. 10, needs no expansion), so only the values carry the float error ``error``.

    Args:
        values: the coefficients on the receptive-field grid.
        error: a bound on the absolute error of every coefficient.
        moments: ``(mean, covariance)`` from the anchor, per axis (exact).
        describe: the first entries of the profile's summary, as for `TransferPolynomial`.

    Example:
        >>> import numpy as np
        >>> from fractions import Fraction
        >>> t = FloatTransfer(np.array([1.0, 2.0, 1.0]), 1e-16,
        ...                   ((Fraction(0),), ((Fraction(1, 2),),)))
        >>> t.domain, t.origin, t.total, t.moments()
        ('float', (1,), 4.0, ((Fraction(0, 1),), ((Fraction(1, 2),),)))
    """

    def __init__(
        self,
        values: np.ndarray,
        error: float,
        moments: tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]],
        *,
        describe: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.error = float(error)
        self.shape = tuple(self.values.shape)
        self.anchor = tuple((s - 1) // 2 for s in self.shape)
        self.n = 1
        self.domain = "float"
        self._exact_moments = moments
        self._describe = describe

    @cached_property
    def flat(self) -> tuple[Any, ...]:
        """The coefficients in row-major order (floats)."""
        return tuple(self.values.ravel().tolist())

    @cached_property
    def total(self) -> Any:
        """The sum of the coefficients (float64)."""
        return float(self.values.sum())

    @cached_property
    def has_negative(self) -> bool:
        """Whether a coefficient is negative (rounding can make a tiny zero one so)."""
        return bool((self.values < 0).any())

    def float_rows(self) -> np.ndarray:
        """The coefficients as float64 (a copy)."""
        return self.values.copy()

    @cached_property
    def kernel(self) -> Kernel:
        """The coefficients as a `Kernel` of floats on the RF grid, anchored at its centre."""
        return Kernel(self.values.tolist(), anchor=self.anchor)

    def moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        """The network's exact mean and covariance (from its moment algebra)."""
        return self._exact_moments

    def describe(self) -> dict[str, Any]:
        """What the caller said the polynomial is."""
        return self._describe() if self._describe is not None else {}


def jsonable(x: Any) -> Any:
    """``x`` for a JSON document: tuples as lists, exact numbers as exact text."""
    if isinstance(x, (tuple, list)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, float):
        return x
    return format_value(x)  # exact text, free of Python's 4300-digit limit


def plain(x: Any) -> Any:
    """Per-axis values for a JSON document: a tuple as a list, anything else as it is."""
    return [plain(v) for v in x] if isinstance(x, tuple) else x
