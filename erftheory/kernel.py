r"""Convolution kernels: the per-tap weights $w(m)$ of Section 2.3.

A `Kernel` is a 1-D sequence of weights $w(0), \dots, w(k-1)$ or a 2-D grid of
them. The same object holds per-tap weight *variances* for random-weight networks
(Section 2.2, Eq. 8): the algebra of the ERF is identical, only the reading of the
result changes (expected squared gradient instead of gradient).

Weights keep their exact type. The *domain* of a kernel is the narrowest of

- ``"integer"``: Python or numpy ints;
- ``"rational"``: `fractions.Fraction`, `decimal.Decimal`, or strings such as ``"1/4"``
  or ``"0.25"`` (parsed exactly, never evaluated);
- ``"float"``: Python or numpy floats (finite);
- ``"symbolic"``: sympy expressions.
"""

from __future__ import annotations

import decimal
import math
import numbers
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

from ._errors import ERFTypeError, ERFValueError

__all__ = ["Kernel", "parse_weight"]

Domain = Literal["integer", "rational", "float", "symbolic"]
_DOMAIN_ORDER: dict[str, int] = {"integer": 0, "rational": 1, "float": 2, "symbolic": 3}

_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE]([+-]?\d+))?$")
_RATIO = re.compile(r"^[+-]?\d+/\d+$")
_MAX_TEXT = 4000
_MAX_EXPONENT = 400


def parse_weight(text: str) -> int | Fraction:
    """Parse one weight written as text, exactly and without evaluating it.

    Accepted forms are integers (``"3"``), fractions (``"1/4"``) and decimals with an
    optional exponent (``"0.25"``, ``"1e-3"``); the result is an `int` or a `Fraction`.

    Example:
        >>> parse_weight("1/4"), parse_weight("0.25"), parse_weight("-2")
        (Fraction(1, 4), Fraction(1, 4), -2)
        >>> parse_weight("nan")
        Traceback (most recent call last):
        ...
        erftheory.ERFValueError: weight 'nan' is not a finite number; write an integer, ...
    """
    s = text.strip()
    good = len(s) <= _MAX_TEXT and (_RATIO.match(s) or _DECIMAL.match(s))
    if good and _DECIMAL.match(s):
        m = _DECIMAL.match(s)
        assert m is not None
        if m.group(4) is not None and abs(int(m.group(4))) > _MAX_EXPONENT:
            raise ERFValueError(
                f"weight {text!r} has an exponent outside ±{_MAX_EXPONENT}; rescale the kernel"
            )
    if not good:
        raise ERFValueError(
            f"weight {text!r} is not a finite number; write an integer, a fraction such as "
            f"'1/4' or a decimal such as '0.25'"
        )
    if _RATIO.match(s) and int(s.split("/")[1]) == 0:
        raise ERFValueError(f"weight {text!r} has a zero denominator")
    value = Fraction(s)
    return int(value) if value.denominator == 1 else value


def _sympy_weight(x: Any) -> tuple[Any, str]:
    import sympy

    if not isinstance(x, sympy.Expr):
        raise ERFTypeError(f"weight {x!r} of type {type(x).__name__} is not a sympy expression")
    if x.is_Integer:
        return int(x), "integer"
    if x.is_Rational:
        return Fraction(int(x.p), int(x.q)), "rational"
    if x.is_Float:
        return _float_weight(float(x)), "float"
    if x.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        raise ERFValueError(f"weight {x} is not finite")
    return x, "symbolic"


def _float_weight(x: float) -> float:
    if not math.isfinite(x):
        raise ERFValueError(f"weight {x!r} is not finite; weights must be finite numbers")
    return float(x)


def _convert(x: Any) -> tuple[Any, str]:
    """Return ``(value, domain)`` for one weight."""
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        raise ERFTypeError(f"weight {x!r} is a bool; use 0 or 1")
    if isinstance(x, str):
        v = parse_weight(x)
        return v, "integer" if isinstance(v, int) else "rational"
    if isinstance(x, numbers.Integral):
        return int(x), "integer"
    if isinstance(x, Fraction):
        return (int(x), "integer") if x.denominator == 1 else (x, "rational")
    if isinstance(x, numbers.Rational):
        f = Fraction(int(x.numerator), int(x.denominator))
        return (int(f), "integer") if f.denominator == 1 else (f, "rational")
    if isinstance(x, decimal.Decimal):
        if not x.is_finite():
            raise ERFValueError(f"weight {x!r} is not finite; weights must be finite numbers")
        return parse_weight(str(x)), "rational"
    if isinstance(x, float) or (isinstance(x, numbers.Real) and type(x).__module__ == "numpy"):
        return _float_weight(float(x)), "float"
    if type(x).__module__.startswith("sympy"):
        return _sympy_weight(x)
    if isinstance(x, numbers.Real):
        return _float_weight(float(x)), "float"
    raise ERFTypeError(
        f"weight {x!r} of type {type(x).__name__} is not supported; use int, Fraction, "
        f"a string such as '1/4', float, or a sympy expression"
    )


def to_sympy(value: Any) -> Any:
    """One weight (int, Fraction, float or sympy expression) as a sympy number, never parsed."""
    import sympy

    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, int):
        return sympy.Integer(value)
    if isinstance(value, float):
        return sympy.Float(value)
    raise ERFTypeError(f"{value!r} of type {type(value).__name__} is not a weight")


def _cast(values: list[Any], domain: str) -> list[Any]:
    if domain == "float":
        return [float(v) for v in values]
    if domain == "symbolic":
        return [to_sympy(v) for v in values]
    return values


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (str, numbers.Number)) or not hasattr(x, "__len__")


class Kernel:
    r"""A 1-D or 2-D convolution kernel of per-tap weights $w(m)$ (Section 2.3).

    Args:
        weights: a sequence of weights (1-D) or a sequence of equal-length rows (2-D).
            Each weight is an int, a `Fraction`, a string such as ``"1/4"`` or
            ``"0.25"`` (parsed exactly), a float, or a sympy expression.
        anchor: the tap that sits over the output unit: an int (1-D) or a pair of
            ints (2-D; a single int is used for both axes). The default is
            $(k-1)/\!/2$ per axis, as PyTorch's ``padding='same'`` does.

    Raises:
        ERFValueError: empty kernels, ragged rows, non-finite weights, bad anchors.
        ERFTypeError: weights of an unsupported type.

    Example:
        >>> k = Kernel([1, 2, 1])
        >>> k.domain, k.shape, k.anchor, k.total
        ('integer', (3,), 1, 4)
        >>> Kernel(["1/4", "1/2", "1/4"]).weights
        (Fraction(1, 4), Fraction(1, 2), Fraction(1, 4))
        >>> Kernel([[1, 1], [1, 1]]).anchor
        (0, 0)
    """

    __slots__ = ("_anchor", "_domain", "_flat", "_shape")
    _anchor: tuple[int, ...]
    _domain: str
    _flat: tuple[Any, ...]
    _shape: tuple[int, ...]

    def __init__(self, weights: Any, anchor: int | Sequence[int] | None = None) -> None:
        if isinstance(weights, Kernel):
            self._flat, self._shape, self._domain = weights._flat, weights._shape, weights._domain
            self._anchor = weights._anchor if anchor is None else self._check_anchor(anchor)
            return
        if isinstance(weights, (str, bytes)):
            raise ERFTypeError(
                f"weights must be a sequence, not the string {weights!r}; "
                f"use Kernel.parse({weights!r}) to read '1,2,1' or '1,1;1,1'"
            )
        if hasattr(weights, "tolist") and hasattr(weights, "ndim"):  # numpy array
            if weights.ndim not in (1, 2):
                raise ERFValueError(
                    f"a kernel must be 1-D or 2-D, got an array with ndim={weights.ndim}"
                )
            weights = weights.tolist()
        try:
            items = list(weights)
        except TypeError:
            raise ERFTypeError(
                f"weights must be a sequence of numbers or of rows, got {type(weights).__name__}"
            ) from None
        if not items:
            raise ERFValueError("kernel is empty; give at least one weight")
        if all(_is_scalar(x) for x in items):
            rows = [items]
            ndim = 1
        elif not any(_is_scalar(x) for x in items):
            if any(isinstance(r, (str, bytes)) for r in items):
                raise ERFTypeError("a 2-D kernel's rows must be sequences of weights")
            rows = [list(r) for r in items]
            ndim = 2
            width = len(rows[0])  # type: ignore[arg-type]
            if width == 0:
                raise ERFValueError("kernel row 0 is empty; every row needs at least one weight")
            for i, r in enumerate(rows):
                assert r is not None
                if len(r) != width:
                    raise ERFValueError(
                        f"kernel rows are ragged: row 0 has {width} weights, row {i} has {len(r)}"
                    )
                if not all(_is_scalar(x) for x in r):
                    raise ERFValueError(
                        f"kernel row {i} holds a nested sequence; kernels are 1-D or 2-D only"
                    )
        else:
            raise ERFValueError("kernel mixes numbers and rows; give a flat list or a list of rows")
        flat: list[Any] = []
        domain = "integer"
        for r in rows:
            assert r is not None
            for x in r:
                v, d = _convert(x)
                if isinstance(v, int) and d == "rational":
                    d = "integer"
                flat.append(v)
                if _DOMAIN_ORDER[d] > _DOMAIN_ORDER[domain]:
                    domain = d
        self._flat = tuple(_cast(flat, domain))
        self._domain = domain
        self._shape = (len(flat),) if ndim == 1 else (len(rows), len(rows[0]))  # type: ignore[arg-type]
        self._anchor = self._check_anchor(anchor)

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, text: str, anchor: int | Sequence[int] | None = None) -> Kernel:
        """Read a kernel written as text: ``"1,2,1"`` or, in 2-D, ``"1,1;1,1"``.

        Weights are separated by commas, rows by semicolons; each weight is parsed
        exactly by `parse_weight` (never evaluated).

        Example:
            >>> Kernel.parse("1, 2, 1").weights
            (1, 2, 1)
            >>> Kernel.parse("1,1;1,1").shape
            (2, 2)
            >>> Kernel.parse("1,2;3")
            Traceback (most recent call last):
            ...
            erftheory.ERFValueError: kernel rows are ragged: row 0 has 2 weights, row 1 has 1
        """
        if not isinstance(text, str):
            raise ERFTypeError(f"Kernel.parse takes a string, got {type(text).__name__}")
        if not text.strip():
            raise ERFValueError("kernel is empty; write weights such as '1,2,1' or '1,1;1,1'")
        rows = [r.strip() for r in text.strip().strip(";").split(";")]
        parsed = []
        for i, r in enumerate(rows):
            cells = [c for c in r.split(",")]
            if any(not c.strip() for c in cells):
                raise ERFValueError(f"kernel row {i} ({r!r}) has an empty weight; write '1,2,1'")
            parsed.append([parse_weight(c) for c in cells])
        return cls(parsed[0] if len(parsed) == 1 else parsed, anchor=anchor)

    @classmethod
    def uniform(cls, size: int | Sequence[int]) -> Kernel:
        """The all-ones kernel of Section 2.1 (``size`` taps, or a ``(k1, k2)`` grid).

        Example:
            >>> Kernel.uniform(3).weights, Kernel.uniform((2, 2)).shape
            ((1, 1, 1), (2, 2))
        """
        if isinstance(size, int) and not isinstance(size, bool):
            _check_positive(size, "size")
            return cls([1] * size)
        if isinstance(size, bool):
            raise ERFValueError(f"size must be an int or a pair, got {size!r}")
        dims = tuple(size)
        if len(dims) != 2:
            raise ERFValueError(f"size must be an int or a pair, got {size!r}")
        for d in dims:
            _check_positive(d, "size")
        return cls([[1] * dims[1] for _ in range(dims[0])])

    def _check_anchor(self, anchor: Any) -> tuple[int, ...]:
        if anchor is None:
            return tuple((k - 1) // 2 for k in self._shape)
        if isinstance(anchor, numbers.Integral) and not isinstance(anchor, bool):
            values = (int(anchor),) * len(self._shape)
        else:
            try:
                values = tuple(anchor)
            except TypeError:
                raise ERFTypeError(
                    f"anchor must be an int or a tuple of ints, got {anchor!r}"
                ) from None
            if len(values) != len(self._shape) or not all(
                isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in values
            ):
                raise ERFValueError(
                    f"anchor {anchor!r} must give one int per axis ({len(self._shape)} here)"
                )
            values = tuple(int(a) for a in values)
        for a, k in zip(values, self._shape, strict=True):
            if not 0 <= a < k:
                raise ERFValueError(
                    f"anchor {anchor!r} is outside the kernel: valid taps are 0..{k - 1}"
                )
        return values

    # ------------------------------------------------------------------ properties
    @property
    def ndim(self) -> int:
        """1 or 2."""
        return len(self._shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(k,)`` or ``(k1, k2)``."""
        return self._shape

    @property
    def size(self) -> int:
        """The number of taps."""
        return len(self._flat)

    @property
    def domain(self) -> Domain:
        """``"integer"``, ``"rational"``, ``"float"`` or ``"symbolic"``."""
        return self._domain  # type: ignore[return-value]

    @property
    def is_exact(self) -> bool:
        """True for integer and rational kernels."""
        return self._domain in ("integer", "rational")

    @property
    def anchor(self) -> Any:
        """The tap over the output unit: an int in 1-D, a pair in 2-D."""
        return self._anchor[0] if len(self._shape) == 1 else self._anchor

    @property
    def anchors(self) -> tuple[int, ...]:
        """The anchor as a tuple, one entry per axis."""
        return self._anchor

    @property
    def weights(self) -> Any:
        """The weights: a tuple (1-D) or a tuple of row tuples (2-D)."""
        if len(self._shape) == 1:
            return self._flat
        k2 = self._shape[1]
        return tuple(self._flat[i * k2 : (i + 1) * k2] for i in range(self._shape[0]))

    @property
    def flat(self) -> tuple[Any, ...]:
        """The weights in row-major order."""
        return self._flat

    @property
    def total(self) -> Any:
        r"""$\sum_m w(m)$, exact for exact kernels."""
        if self._domain == "symbolic":
            import sympy

            return sympy.Add(*self._flat)
        if self._domain == "float":
            return math.fsum(self._flat)
        return sum(self._flat, 0)

    @property
    def is_symmetric(self) -> bool:
        """True when the kernel equals its mirror image about the anchor (every axis)."""
        w = self.weights
        if self.ndim == 1:
            return self._anchor[0] * 2 == self._shape[0] - 1 and tuple(reversed(w)) == w
        mirrored = tuple(tuple(reversed(r)) for r in reversed(w))
        return all(2 * a == k - 1 for a, k in zip(self._anchor, self._shape, strict=True)) and (
            mirrored == w
        )

    def axis_kernels(self) -> tuple[Kernel, Kernel] | None:
        r"""Split a separable 2-D kernel $w(a, b) = u(a)\,v(b)$ into ``(u, v)``.

        Returns ``None`` when the kernel is not separable (exactly, for exact and
        symbolic kernels; to 1e-12 relative for float kernels). The row factor ``u``
        carries the scale; the anchors are kept per axis.

        Example:
            >>> u, v = Kernel([[1, 2, 1], [2, 4, 2]]).axis_kernels()
            >>> u.weights, v.weights
            ((1, 2), (1, 2, 1))
            >>> Kernel([[1, 0], [0, 1]]).axis_kernels() is None
            True
        """
        if self.ndim != 2:
            raise ERFValueError("axis_kernels() needs a 2-D kernel")
        k1, k2 = self._shape
        w = self.weights
        pivot = next(((i, j) for i in range(k1) for j in range(k2) if w[i][j] != 0), None)
        if pivot is None:
            return Kernel([0] * k1, self._anchor[0]), Kernel([0] * k2, self._anchor[1])
        i0, j0 = pivot
        col = [w[i][j0] for i in range(k1)]
        if self._domain == "float":
            scale = max(abs(x) for x in self._flat)
            ok = all(
                abs(w[i][j] * w[i0][j0] - w[i][j0] * w[i0][j]) <= 1e-12 * scale * scale
                for i in range(k1)
                for j in range(k2)
            )
            row = [w[i0][j] / w[i0][j0] for j in range(k2)]
        else:
            ok = all(
                _is_zero(w[i][j] * w[i0][j0] - w[i][j0] * w[i0][j], self._domain)
                for i in range(k1)
                for j in range(k2)
            )
            row = [_exact_div(w[i0][j], w[i0][j0], self._domain) for j in range(k2)]
        if not ok:
            return None
        return Kernel(col, self._anchor[0]), Kernel(row, self._anchor[1])

    # ------------------------------------------------------------------ moments (Eq. 10)
    def moments(self) -> tuple[Any, Any]:
        r"""Mean and variance of one tap drawn with probability $w(m)/\sum w$ (Eq. 10).

        Positions are measured from the anchor. In 2-D the result is a pair of pairs
        ``((mean_row, mean_col), (var_row, var_col))``; see `covariance` for the
        cross term. Exact kernels give exact `Fraction` values.

        Raises:
            ERFValueError: when $\sum_m w(m) = 0$ (nothing to normalise by).

        Example:
            >>> Kernel([1, 2, 1]).moments()
            (Fraction(0, 1), Fraction(1, 2))
            >>> Kernel([1, 1, 1, 1]).moments()   # anchor 1: the mean sits right of it
            (Fraction(1, 2), Fraction(5, 4))
        """
        m = self._raw_moments()
        if self.ndim == 1:
            (mu,), cov = m
            return mu, cov[0][0]
        mu, cov = m
        return mu, (cov[0][0], cov[1][1])

    def covariance(self) -> Any:
        """The 2×2 covariance matrix of one normalised tap (2-D) as nested tuples."""
        return self._raw_moments()[1]

    def _raw_moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        total = self.total
        if _is_zero(total, self._domain):
            raise ERFValueError(
                f"the kernel's weights sum to zero ({self.weights}); normalised quantities "
                f"(mean, variance, normalized profile) need a non-zero sum"
            )
        k = self._shape
        idx = [divmod(i, k[1]) if len(k) == 2 else (i,) for i in range(len(self._flat))]
        d = len(k)
        div = _divider(self._domain, total)
        first = [
            div(
                sum((w * (p[a] - self._anchor[a]) for w, p in zip(self._flat, idx, strict=True)), 0)
            )
            for a in range(d)
        ]
        second = [
            [
                div(
                    sum(
                        (
                            w * (p[a] - self._anchor[a]) * (p[b] - self._anchor[b])
                            for w, p in zip(self._flat, idx, strict=True)
                        ),
                        0,
                    )
                )
                - first[a] * first[b]
                for b in range(d)
            ]
            for a in range(d)
        ]
        if self._domain == "symbolic":
            import sympy

            first = [sympy.simplify(x) for x in first]
            second = [[sympy.simplify(x) for x in r] for r in second]
        return tuple(first), tuple(tuple(r) for r in second)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kernel):
            return NotImplemented
        return (self._shape, self._anchor, self._flat) == (other._shape, other._anchor, other._flat)

    def __hash__(self) -> int:
        return hash((self._shape, self._anchor, self._flat))

    def __repr__(self) -> str:
        w = self.weights
        show = [_show(x) for x in w] if self.ndim == 1 else [[_show(x) for x in r] for r in w]
        default = tuple((k - 1) // 2 for k in self._shape)
        anchor = "" if self._anchor == default else f", anchor={self.anchor!r}"
        return f"Kernel({show!r}{anchor})".replace("'", "")


def _show(x: Any) -> str:
    return str(x) if not isinstance(x, float) else repr(x)


def _check_positive(value: Any, name: str) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ERFValueError(f"{name} must be a positive integer, got {value!r}")


def _is_zero(x: Any, domain: str) -> bool:
    if domain == "symbolic":
        import sympy

        return bool(sympy.simplify(x) == 0)
    return x == 0


def _exact_div(a: Any, b: Any, domain: str) -> Any:
    if domain == "symbolic":
        import sympy

        return sympy.simplify(a / b)
    q = Fraction(a) / Fraction(b)
    return int(q) if q.denominator == 1 else q


def _divider(domain: str, total: Any) -> Any:
    if domain == "float":
        return lambda x: x / total
    if domain == "symbolic":
        return lambda x: x / total
    return lambda x: Fraction(x) / Fraction(total)
