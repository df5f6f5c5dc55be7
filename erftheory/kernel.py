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

Refused, with an `ERFTypeError` naming the type: bools (write 0 or 1), complex numbers
(Python, numpy or sympy: the ERF is of real weights), dicts and sets (their order is not
the taps' order), numpy arrays of complex, structured or datetime dtype. Non-finite
weights are an `ERFValueError`. Iterators and generators are read once, into a list.
Integers of any size work; `format_value` prints them without Python's 4300-digit
limit on ``int`` ↔ ``str`` conversion.
"""

from __future__ import annotations

import contextlib
import decimal
import math
import numbers
import operator
import re
import sys
from collections.abc import Iterator, Mapping, Sequence, Set
from fractions import Fraction
from typing import Any, Literal

import gmpy2

from ._errors import ERFTypeError, ERFValueError

__all__ = ["Kernel", "format_value", "parse_weight"]

Domain = Literal["integer", "rational", "float", "symbolic"]
_DOMAIN_ORDER: dict[str, int] = {"integer": 0, "rational": 1, "float": 2, "symbolic": 3}

_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$", re.ASCII)
_RATIO = re.compile(r"^([+-]?)(\d+)/(\d+)$", re.ASCII)
MAX_DIGITS = 100_000
"""The most decimal digits the numerator or the denominator of a weight written as text may
have (``"1e-400"`` has a denominator of 401 digits); more is refused before anything is built."""
_MAX_TEXT = 2 * MAX_DIGITS + 32
_SHORT_DIGITS = 40


# ---------------------------------------------------------------- text of huge numbers
@contextlib.contextmanager
def unlimited_int_digits() -> Iterator[None]:
    """Lift Python's limit on ``int`` ↔ ``str`` conversion (4300 digits) inside the block.

    Used around sympy's printer, which converts its integers with ``str``. Ints and
    Fractions are formatted by `format_value` through gmpy2 instead, which has no limit
    and is subquadratic.
    """
    get = getattr(sys, "get_int_max_str_digits", None)
    if get is None:  # pragma: no cover - Python < 3.11 has no limit
        yield
        return
    old = get()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(old)


def _int_text(x: int, short: bool) -> str:
    text = gmpy2.mpz(x).digits(10)
    if short:
        digits = len(text) - (text[0] == "-")
        if digits > _SHORT_DIGITS:
            sign = "-" if text[0] == "-" else ""
            body = text.lstrip("-")
            return f"{sign}{body[:8]}…{body[-4:]} ({digits} digits)"
    return text


def format_value(x: Any, short: bool = False) -> str:
    """Text of a weight or a value (int, Fraction, float, sympy, or tuples/lists of them).

    Works for integers of any size (Python refuses ``str`` of ints above 4300 digits).
    With ``short=True`` ints of more than 40 digits are abbreviated, as in error
    messages, and long sympy expressions are cut.

    Example:
        >>> format_value(Fraction(-3, 4)), format_value((1, 2.5))
        ('-3/4', '(1, 2.5)')
        >>> format_value(10**5000, short=True)
        '10000000…0000 (5001 digits)'
    """
    if isinstance(x, bool) or x is None:
        return repr(x)
    if isinstance(x, int):
        return _int_text(x, short)
    if isinstance(x, Fraction):
        num = _int_text(x.numerator, short)
        return num if x.denominator == 1 else f"{num}/{_int_text(x.denominator, short)}"
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, tuple):
        inner = ", ".join(format_value(v, short) for v in x)
        return f"({inner},)" if len(x) == 1 else f"({inner})"
    if isinstance(x, list):
        return "[" + ", ".join(format_value(v, short) for v in x) + "]"
    if isinstance(x, str):
        if short and len(x) > 60:
            return repr(x[:40]) + f"… ({len(x)} characters)"
        return repr(x)
    try:
        with unlimited_int_digits():
            text = str(x)
    except Exception:  # an object that cannot print itself
        text = f"<{type(x).__name__}>"
    text = " ".join(text.split())  # one line
    if short and len(text) > 80:
        text = text[:60] + f"… ({len(text)} characters)"
    return text


def parse_weight(text: str) -> int | Fraction:
    """Parse one weight written as text, exactly and without evaluating it.

    Accepted forms are integers (``"3"``), fractions (``"1/4"``) and decimals with an
    optional exponent (``"0.25"``, ``"1e-3"``), in ASCII digits; the result is an `int` or
    a `Fraction`. Integers of any length up to `MAX_DIGITS` digits work (Python's own
    ``int(str)`` stops at 4300).

    Example:
        >>> parse_weight("1/4"), parse_weight("0.25"), parse_weight("-2")
        (Fraction(1, 4), Fraction(1, 4), -2)
        >>> parse_weight("nan")
        Traceback (most recent call last):
        ...
        erftheory.ERFValueError: weight 'nan' is not a finite number; write an integer, ...
    """
    if not isinstance(text, str):
        raise ERFTypeError(f"parse_weight takes a string, got {type(text).__name__}")
    s = text.strip()
    shown = format_value(text, short=True)
    if len(s) > _MAX_TEXT:
        raise ERFValueError(
            f"weight {shown} has too many digits, more than {MAX_DIGITS}; rescale the kernel"
        )
    ratio = _RATIO.match(s)
    dec = None if ratio else _DECIMAL.match(s)
    if ratio is None and (dec is None or not (dec.group(2) or dec.group(3))):
        raise ERFValueError(
            f"weight {shown} is not a finite number; write an integer, a fraction such as "
            f"'1/4' or a decimal such as '0.25'"
        )
    if ratio is not None:
        sign, num_digits, den_digits = ratio.groups()
        if len(num_digits) > MAX_DIGITS or len(den_digits) > MAX_DIGITS:
            raise ERFValueError(
                f"weight {shown} has too many digits, more than {MAX_DIGITS}; rescale the kernel"
            )
        num, den = int(gmpy2.mpz(num_digits)), int(gmpy2.mpz(den_digits))
        if den == 0:
            raise ERFValueError(f"weight {shown} has a zero denominator")
    else:
        assert dec is not None
        sign, whole, frac, exp = dec.groups()
        frac = frac or ""
        if exp is not None and len(exp.lstrip("+-").lstrip("0")) > 12:
            raise ERFValueError(
                f"weight {shown} has too many digits, more than {MAX_DIGITS}; rescale the kernel"
            )
        shift = (int(exp) if exp else 0) - len(frac)
        mantissa = (whole + frac).lstrip("0")
        num_len = len(mantissa) + max(shift, 0) if mantissa else 1
        if num_len > MAX_DIGITS or (mantissa and -shift > MAX_DIGITS):
            raise ERFValueError(
                f"weight {shown} has about {max(num_len, -shift)} digits, more than "
                f"{MAX_DIGITS}; rescale the kernel"
            )
        num = int(gmpy2.mpz(mantissa)) if mantissa else 0
        den = 1
        if num and shift >= 0:
            num *= 10**shift
        elif num:
            den = 10**-shift
    if sign == "-":
        num = -num
    return reduced_fraction(num, den)


def reduced_fraction(num: int, den: int) -> int | Fraction:
    """``num / den`` in lowest terms as an int or a Fraction (gmpy2's subquadratic gcd).

    ``Fraction(num, den)`` reduces with Python's gcd, which is quadratic in the digits:
    minutes for numbers of millions of digits.
    """
    if den < 0:
        num, den = -num, -den
    if den == 0:
        raise ZeroDivisionError("zero denominator")
    g = gmpy2.gcd(num, den)
    if g != 1:  # gmpy2: Python's own division is quadratic in the digits too
        num, den = int(gmpy2.divexact(num, g)), int(gmpy2.divexact(den, g))
    if den == 1:
        return num
    return coprime_fraction(num, den)


def coprime_fraction(num: int, den: int) -> Fraction:
    """The Fraction ``num / den`` for coprime ``num`` and ``den > 0``, built without a gcd."""
    make = getattr(Fraction, "_from_coprime_ints", None)
    if make is not None:  # Python >= 3.12
        return make(num, den)  # type: ignore[no-any-return]
    return Fraction(num, den, _normalize=False)  # type: ignore[call-overload]  # Python 3.11


def _sympy_weight(x: Any) -> tuple[Any, str]:
    import sympy

    if not isinstance(x, sympy.Expr):
        raise ERFTypeError(
            f"weight {format_value(x, short=True)} of type {type(x).__name__} is not a sympy "
            f"expression"
        )
    if x.is_Integer:
        return int(x), "integer"
    if x.is_Rational:
        return reduced_fraction(int(x.p), int(x.q)), "rational"
    if x.is_Float:
        return _float_weight(float(x), x), "float"
    if x.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        raise ERFValueError(f"weight {format_value(x, short=True)} is not finite")
    if x.has(sympy.I) or x.is_extended_real is False:
        # Complex: the ERF is of real weights. A number that is real after all
        # ((1 + I)*(1 - I)) is read as its real part.
        if x.is_number and sympy.im(x) == 0:
            return _sympy_weight(sympy.re(x))
        raise ERFTypeError(
            f"weight {format_value(x, short=True)} is complex (it holds I), which is not "
            f"supported: the ERF is defined for real weights"
        )
    return x, "symbolic"


def _is_sympy(x: Any) -> bool:
    """A sympy object (without importing sympy: if it is not loaded, ``x`` is not one)."""
    sympy = sys.modules.get("sympy")
    return sympy is not None and isinstance(x, sympy.Basic)


def _float_weight(x: float, original: Any = None) -> float:
    if not math.isfinite(x):
        shown = format_value(x if original is None else original, short=True)
        raise ERFValueError(
            f"weight {shown} is not finite in float64; weights must be finite numbers"
        )
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
        f = reduced_fraction(int(x.numerator), int(x.denominator))
        return (f, "integer") if isinstance(f, int) else (f, "rational")
    if isinstance(x, decimal.Decimal):
        if not x.is_finite():
            raise ERFValueError(f"weight {x!r} is not finite; weights must be finite numbers")
        v = parse_weight(str(x))
        return v, "integer" if isinstance(v, int) else "rational"
    if isinstance(x, float) or (isinstance(x, numbers.Real) and type(x).__module__ == "numpy"):
        return _float_weight(float(x), x), "float"
    if _is_sympy(x):
        return _sympy_weight(x)
    if isinstance(x, numbers.Real):
        return _float_weight(float(x), x), "float"
    if isinstance(x, numbers.Complex):
        raise ERFTypeError(
            f"weight {format_value(x, short=True)} of type {type(x).__name__} is complex, "
            f"which is not supported: the ERF is defined for real weights"
        )
    if hasattr(x, "__index__") and not isinstance(x, (bytes, bytearray)):
        return operator.index(x), "integer"  # python-flint's fmpz and the like
    raise ERFTypeError(
        f"weight {format_value(x, short=True)} of type {type(x).__name__} is not supported; "
        f"use int, Fraction, a string such as '1/4', float, or a sympy expression"
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
    raise ERFTypeError(
        f"{format_value(value, short=True)} of type {type(value).__name__} is not a weight"
    )


def _cast(values: list[Any], domain: str) -> list[Any]:
    if domain == "float":
        out = []
        for v in values:
            f = _to_float(Fraction(v)) if not isinstance(v, float) else v
            if not math.isfinite(f) or (f == 0 and v != 0):
                raise ERFValueError(
                    f"weight {format_value(v, short=True)} is beyond float64's range, and the "
                    f"kernel is read as float because it has float weights; write every weight "
                    f"exactly (ints, Fractions or strings such as '1e-400') or rescale the kernel"
                )
            out.append(f)
        return out
    if domain == "symbolic":
        return [to_sympy(v) for v in values]
    return values


def _is_scalar(x: Any) -> bool:
    """A weight rather than a row: numbers, strings, sympy expressions, 0-d arrays.

    Anything else that can be iterated (lists, tuples, ranges, generators, 1-D arrays) is
    a row; `_unordered` refuses dicts and sets first.
    """
    if isinstance(x, (str, bytes, bytearray, numbers.Number)):
        return True
    if getattr(x, "ndim", None) == 0:
        return True
    if _is_sympy(x) and not hasattr(x, "__len__"):
        return True
    return not hasattr(x, "__iter__")


def _unordered(x: Any, what: str) -> None:
    """Refuse dicts and sets: their iteration order is not an order of taps."""
    if isinstance(x, (Mapping, Set)):
        raise ERFTypeError(
            f"{what} must be an ordered sequence (list, tuple or array), got a "
            f"{type(x).__name__}: its order is not the order of the taps"
        )


def _array_items(weights: Any) -> Any:
    """A numpy (or torch) array as nested lists, after checking its shape and dtype."""
    if weights.ndim not in (1, 2):
        raise ERFValueError(f"a kernel must be 1-D or 2-D, got an array with ndim={weights.ndim}")
    dtype = getattr(weights, "dtype", None)
    kind = getattr(dtype, "kind", None)
    if getattr(dtype, "fields", None) is not None or kind in ("c", "M", "m", "V"):
        what = {"c": "complex", "M": "datetime", "m": "timedelta"}.get(str(kind), "structured")
        raise ERFTypeError(
            f"a kernel cannot be read from an array of {what} dtype {dtype}; the ERF is of "
            f"real weights: pass an array of ints or floats"
        )
    if getattr(dtype, "is_complex", False):  # torch
        raise ERFTypeError(f"a kernel cannot be read from a complex tensor ({dtype})")
    return weights.tolist()


def _scalar_value(x: Any) -> Any:
    """A 0-d array as the number it holds."""
    if getattr(x, "ndim", None) == 0 and hasattr(x, "item") and not isinstance(x, numbers.Number):
        return x.item()
    return x


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
        if isinstance(weights, (str, bytes, bytearray)):
            shown = format_value(weights, short=True) if isinstance(weights, str) else "bytes"
            raise ERFTypeError(
                f"weights must be a sequence, not the string {shown}; "
                f"use Kernel.parse({shown}) to read '1,2,1' or '1,1;1,1'"
            )
        _unordered(weights, "weights")
        if hasattr(weights, "tolist") and hasattr(weights, "ndim"):  # numpy array
            weights = _array_items(weights)
        try:
            items = list(weights)  # an iterator is read once, here
        except TypeError:
            raise ERFTypeError(
                f"weights must be a sequence of numbers or of rows, got {type(weights).__name__}"
            ) from None
        if not items:
            raise ERFValueError("kernel is empty; give at least one weight")
        for i, x in enumerate(items):
            _unordered(x, f"kernel row {i}")
        if all(_is_scalar(x) for x in items):
            rows = [[_scalar_value(x) for x in items]]
            ndim = 1
        elif not any(_is_scalar(x) for x in items):
            rows = []
            for r in items:
                if hasattr(r, "tolist") and hasattr(r, "ndim"):
                    r = _array_items(r)
                rows.append(list(r))
            ndim = 2
            width = len(rows[0])
            if width == 0:
                raise ERFValueError("kernel row 0 is empty; every row needs at least one weight")
            for i, r in enumerate(rows):
                if len(r) != width:
                    raise ERFValueError(
                        f"kernel rows are ragged: row 0 has {width} weights, row {i} has {len(r)}"
                    )
                for x in r:
                    _unordered(x, f"a weight of kernel row {i}")
                if not all(_is_scalar(x) for x in r):
                    raise ERFValueError(
                        f"kernel row {i} holds a nested sequence; kernels are 1-D or 2-D only"
                    )
                rows[i] = [_scalar_value(x) for x in r]
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
                raise ERFValueError(
                    f"kernel row {i} ({format_value(r, short=True)}) has an empty weight; "
                    f"write '1,2,1'"
                )
            parsed.append([parse_weight(c) for c in cells])
        return cls(parsed[0] if len(parsed) == 1 else parsed, anchor=anchor)

    @classmethod
    def uniform(cls, size: int | Sequence[int]) -> Kernel:
        """The all-ones kernel of Section 2.1 (``size`` taps, or a ``(k1, k2)`` grid).

        Example:
            >>> Kernel.uniform(3).weights, Kernel.uniform((2, 2)).shape
            ((1, 1, 1), (2, 2))
        """
        from . import _config

        bad = f"size must be a positive int or a pair of them, got {format_value(size, short=True)}"
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            _check_positive(size, "size")
            _config.check_size(64.0 * min(int(size), 2**80), "the uniform kernel", "use fewer taps")
            return cls([1] * int(size))
        if isinstance(size, (bool, str, bytes)) or not hasattr(size, "__iter__"):
            raise ERFValueError(bad)
        dims = tuple(size)  # type: ignore[arg-type]  # an iterable, checked above
        if len(dims) != 2:
            raise ERFValueError(bad)
        for d in dims:
            _check_positive(d, "size")
        _config.check_size(
            64.0 * min(int(dims[0]) * int(dims[1]), 2**80), "the uniform kernel", "use fewer taps"
        )
        return cls([[1] * int(dims[1]) for _ in range(int(dims[0]))])

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
                    f"anchor must be an int or a tuple of ints, got "
                    f"{format_value(anchor, short=True)}"
                ) from None
            if len(values) != len(self._shape) or not all(
                isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in values
            ):
                raise ERFValueError(
                    f"anchor {format_value(anchor, short=True)} must give one int per axis "
                    f"({len(self._shape)} here)"
                )
            values = tuple(int(a) for a in values)
        for a, k in zip(values, self._shape, strict=True):
            if not 0 <= a < k:
                raise ERFValueError(
                    f"anchor {format_value(anchor, short=True)} is outside the kernel: valid taps "
                    f"are 0..{k - 1}"
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
            try:
                return math.fsum(self._flat)
            except OverflowError:  # an intermediate sum passed 1.8e308: add exactly
                return _to_float(sum((Fraction(x) for x in self._flat), Fraction(0)))
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
            scale = max(abs(x) for x in self._flat)  # > 0: the pivot is non-zero
            s = [[x / scale for x in r] for r in w]  # products of weights near 1e308 overflow
            ok = all(
                abs(s[i][j] * s[i0][j0] - s[i][j0] * s[i0][j]) <= 1e-12
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
        if self._domain == "symbolic":
            return self._symbolic_moments()
        # Exactly, in integer form (floats are dyadic rationals): moments are invariant
        # under scaling the weights, so nothing overflows whatever their magnitude, and
        # float kernels get correctly rounded moments.
        exact = [Fraction(x) for x in self._flat]
        den = 1
        for x in exact:
            den = math.lcm(den, x.denominator)
        ints = [int(x * den) for x in exact]
        total = sum(ints)
        if total == 0:
            raise ERFValueError(
                f"the kernel's weights sum to zero ({format_value(self.weights, short=True)}); "
                f"normalised quantities (mean, variance, normalized profile) need a non-zero sum"
            )
        return tap_moments(ints, self._shape, self._anchor, as_float=self._domain == "float")

    def _symbolic_moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:

        total = self.total
        if _is_zero(total, self._domain):
            raise ERFValueError(
                f"the kernel's weights sum to zero ({format_value(self.weights, short=True)}); "
                f"normalised quantities (mean, variance, normalized profile) need a non-zero sum"
            )
        return symbolic_tap_moments(self._flat, self._shape, self._anchor, total)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kernel):
            return NotImplemented
        return (self._shape, self._anchor, self._flat) == (other._shape, other._anchor, other._flat)

    def __hash__(self) -> int:
        return hash((self._shape, self._anchor, self._flat))

    def __repr__(self) -> str:
        w = self.weights
        if self.ndim == 1:
            show = "[" + ", ".join(format_value(x) for x in w) + "]"
        else:
            show = "[" + ", ".join("[" + ", ".join(format_value(x) for x in r) + "]" for r in w)
            show += "]"
        default = tuple((k - 1) // 2 for k in self._shape)
        anchor = "" if self._anchor == default else f", anchor={self.anchor!r}"
        return f"Kernel({show}{anchor})"


def _ratio(a: int, b: int) -> Fraction:
    """``Fraction(a, b)`` reduced with gmpy2 (fast for numbers of any size)."""
    r = reduced_fraction(a, b)
    return r if isinstance(r, Fraction) else Fraction(r)


def _to_float(x: Fraction) -> float:
    """``float(x)``, correctly rounded, with ±inf where it is beyond float64's range."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _check_positive(value: Any, name: str) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ERFValueError(
            f"{name} must be a positive integer, got {format_value(value, short=True)}"
        )


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


def _tap_positions(shape: tuple[int, ...], anchor: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Each tap's position from the anchor, in row-major order."""
    size = math.prod(shape)
    if len(shape) == 1:
        return [(i - anchor[0],) for i in range(size)]
    return [(i // shape[1] - anchor[0], i % shape[1] - anchor[1]) for i in range(size)]


def tap_moments(
    ints: Sequence[int], shape: tuple[int, ...], anchor: tuple[int, ...], *, as_float: bool
) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
    r"""Mean (from the anchor) and covariance of one tap drawn with probability
    $w(m) / \sum w$ (Eq. 10), exactly, from integer weights ``ints`` in row-major order.

    The one implementation behind `Kernel.moments` and the engines' sources
    (`erftheory.engines.source.Source.moments`). The weights' sum must not be zero.
    With ``as_float`` the results are correctly rounded floats (±inf beyond float64).

    Example:
        >>> tap_moments([1, 2, 1], (3,), (1,), as_float=False)
        ((Fraction(0, 1),), ((Fraction(1, 2),),))
    """
    total = sum(ints)
    d = len(shape)
    pos = _tap_positions(shape, anchor)
    first = [_ratio(sum(w * p[a] for w, p in zip(ints, pos, strict=True)), total) for a in range(d)]
    second = [
        [
            _ratio(sum(w * p[a] * p[b] for w, p in zip(ints, pos, strict=True)), total)
            - first[a] * first[b]
            for b in range(d)
        ]
        for a in range(d)
    ]
    if as_float:
        return tuple(_to_float(x) for x in first), tuple(
            tuple(_to_float(x) for x in r) for r in second
        )
    return tuple(first), tuple(tuple(r) for r in second)


def symbolic_tap_moments(
    flat: Sequence[Any], shape: tuple[int, ...], anchor: tuple[int, ...], total: Any
) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
    """`tap_moments` for sympy weights (``total`` their non-zero sum), simplified."""
    import sympy

    d = len(shape)
    pos = _tap_positions(shape, anchor)
    first = [
        sympy.Add(*[w * p[a] for w, p in zip(flat, pos, strict=True)]) / total for a in range(d)
    ]
    second = [
        [
            sympy.Add(*[w * p[a] * p[b] for w, p in zip(flat, pos, strict=True)]) / total
            - first[a] * first[b]
            for b in range(d)
        ]
        for a in range(d)
    ]
    return tuple(sympy.simplify(x) for x in first), tuple(
        tuple(sympy.simplify(x) for x in r) for r in second
    )
