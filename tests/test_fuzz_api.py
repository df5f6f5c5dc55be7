"""Fuzzing the public API: hostile kernels, layer counts, methods and indices.

Every call runs under ``erftheory.memory_limit("64MiB")`` (so the work limit is 2 GiB of
big-integer data, about a second) and must end in one of two ways:

- a correct result: checked against an independent route where that is cheap
  (brute-force convolution of small exact kernels, exact conversion of small weights),
  and never a NaN;
- an `ERFValueError` or `ERFTypeError` (`SizeLimitError` is one) with a one-line message.

Any other exception fails the test. The settings are deterministic (``derandomize=True``,
no example database) with a bounded number of examples; `CASES` counts the calls tried
and the last test checks and prints the total.
"""

from __future__ import annotations

import decimal
import math
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import power2d_by_convolution, power_by_convolution

import erftheory
from erftheory import ERFTypeError, ERFValueError, Kernel, profile

pytestmark = pytest.mark.usefixtures("fixed_constant_pool")  # see tests/conftest.py

CASES: Counter[str] = Counter()


def fuzz(examples: int) -> settings:
    """Deterministic settings: the same ``examples`` cases on every run."""
    return settings(
        derandomize=True,
        deadline=None,
        database=None,
        max_examples=examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


_OK = object()


def _call(kind: str, fn: Any) -> Any:
    """``fn()`` under a 64 MiB limit: its result, or `_OK` after an allowed refusal."""
    CASES[kind] += 1
    with erftheory.memory_limit("64MiB"):
        try:
            result = fn()
        except (ERFValueError, ERFTypeError) as exc:
            message = str(exc)
            assert message and "\n" not in message, repr(message)
            assert len(message) < 2000, message[:200]
            return _OK
    _no_nan(result)
    return result


def _no_nan(x: Any) -> None:
    if isinstance(x, float):
        assert not math.isnan(x)
    elif isinstance(x, np.ndarray) and x.dtype.kind == "f":
        assert not np.isnan(x).any()
    elif isinstance(x, (list, tuple)):
        for v in x:
            _no_nan(v)
    elif isinstance(x, dict):
        for v in x.values():
            _no_nan(v)


# ---------------------------------------------------------------- hostile weights
_STRINGS = [
    "1e400",
    "1e-400",
    "-1e-400",
    "nan",
    "NaN",
    "inf",
    "",
    " ",
    "1/0",
    "0/5",
    "-3/6",
    "١٢٣",  # Arabic-Indic digits
    "１２",  # full-width digits
    " 3 ",
    "1_000",
    "0x10",
    "1e",
    ".",
    "-",
    "+.5",
    "5.",
    "1/3",
    "1" + "0" * 5000,
    "1e-100001",
    "1e99999999999999",
    "--1",
    "1e+5",
    "2**3",
    "1,2",
    "\u00bd",
]
_HUGE = [10**5000, -(10**5000), 2**20000, 10**400]
_ODD = [
    True,
    False,
    None,
    1 + 2j,
    complex(1, 0),
    np.complex64(1),
    np.bool_(True),
    np.float32(1.5),
    np.float16(0.25),
    np.int8(-3),
    np.uint64(2**63),
    np.longdouble(2.5),
    np.array(3.0),
    decimal.Decimal("NaN"),
    decimal.Decimal("1e-400"),
    decimal.Decimal("2.50"),
    decimal.Decimal("1e999999"),
    sympy.I,
    sympy.Symbol("a"),
    sympy.Symbol("b", positive=True),
    sympy.oo,
    sympy.nan,
    sympy.zoo,
    sympy.Rational(1, 3),
    sympy.Float(1e308),
    sympy.sqrt(2),
    (1 + sympy.I) * (1 - sympy.I),
    sympy.I * sympy.Symbol("a"),
    sympy.Function("f")(sympy.Symbol("a")),  # its class has no __module__
    sympy.true,
    sympy.Matrix([1, 2]),
    1e308,
    -1e308,
    5e-324,
    float("inf"),
    float("nan"),
    b"1",
    object(),
    [1],
    {1: 2},
    {1},
]
weights_st = st.one_of(
    st.integers(-5, 5),
    st.integers(-(10**60), 10**60),
    st.sampled_from(_HUGE),
    st.builds(Fraction, st.integers(-5, 5), st.sampled_from([1, 3, 7, 10**400, 2**3000 + 1])),
    st.sampled_from(_STRINGS),
    st.text(max_size=6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-4, 4),
    st.sampled_from(_ODD),
)


def _array_cases() -> st.SearchStrategy[Any]:
    dtypes = ["int8", "uint64", "float16", "float32", "float64", "complex128", "bool", "object"]
    arrays = st.builds(
        lambda d, xs: np.array(xs, dtype=d),
        st.sampled_from(dtypes),
        st.lists(st.integers(0, 3), min_size=1, max_size=4),
    )
    fixed = st.sampled_from(
        [
            np.array(["1", "2", "1"]),
            np.array(["2020-01-01"], dtype="datetime64[D]"),
            np.array([(1, 2)], dtype=[("a", int), ("b", int)]),
            np.array(5),
            np.zeros((2, 2, 2)),
            np.ones((2, 3)),
            np.array([1.0, np.nan]),
            np.array([], dtype=float),
        ]
    )
    return st.one_of(arrays, fixed)


def _kernel_inputs() -> st.SearchStrategy[Any]:
    flat = st.lists(weights_st, min_size=0, max_size=4)
    rows = st.lists(st.lists(weights_st, min_size=0, max_size=3), min_size=1, max_size=3)
    return st.one_of(
        flat,
        rows,
        flat.map(tuple),
        flat.map(lambda w: (x for x in w)),  # a generator, read once
        flat.map(lambda w: dict(enumerate(w))),
        st.sets(st.integers(0, 5), max_size=4),
        st.sampled_from([range(3), "1,2,1", b"12", 7, None, [[1, [2]]], [1, [2]], [[]]]),
        _array_cases(),
    )


def _expected_weight(x: Any) -> Any:
    """An independent reading of a simple weight, or None when it is not simple."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, Fraction):
        return x
    return None


@fuzz(1500)
@given(_kernel_inputs(), st.one_of(st.none(), st.integers(-2, 4), st.sampled_from([(0, 0), "a"])))
def test_kernel_constructor(weights, anchor):
    k = _call("Kernel()", lambda: Kernel(weights, anchor=anchor))
    if k is _OK:
        return
    assert k.domain in ("integer", "rational", "float", "symbolic")
    text = _call("repr(Kernel)", lambda: repr(k))
    assert isinstance(text, str) and text.startswith("Kernel(")
    if isinstance(weights, list) and all(_expected_weight(x) is not None for x in weights):
        assert list(k.flat) == [_expected_weight(x) for x in weights]
    total = _call("Kernel.total", lambda: k.total)
    if k.domain != "symbolic":
        _call("Kernel.moments", k.moments)
        if k.domain != "float":
            assert total == sum(Fraction(x) for x in k.flat)


# ---------------------------------------------------------------- hostile profiles
_LAYERS = st.one_of(
    st.integers(0, 12),
    st.integers(-3, -1),
    st.sampled_from([10**4, 10**6, 10**12, 10**400, -(10**400)]),
    st.sampled_from([np.int64(3), np.uint8(2), np.int32(0)]),
    st.sampled_from([2.0, 2.5, float("nan"), True, False, "3", None, Fraction(3), 1j]),
)
_METHODS = st.sampled_from(
    ["auto", "auto", "exact", "fft", "float", "arb", "symbolic", "magic", None, 3, "EXACT"]
)
_DPS = st.one_of(st.none(), st.sampled_from([0, -1, 15, 40, 2.5, True, 10**9, "30"]))
_INDEX = st.one_of(
    st.integers(-2, 40),
    st.sampled_from([10**12, 10**400, -(10**400)]),
    st.sampled_from([1.0, True, "1", None, np.int64(1), (1,)]),
)
_small = st.lists(st.integers(-3, 5), min_size=1, max_size=4)
_kernels = st.one_of(
    _small,
    st.lists(st.integers(0, 5), min_size=1, max_size=4),
    st.lists(st.builds(Fraction, st.integers(-3, 5), st.integers(1, 4)), min_size=1, max_size=3),
    st.lists(st.floats(-3, 3), min_size=1, max_size=3),
    st.lists(st.sampled_from([1e308, 1e-308, 5e-324, 1.0, 0.5]), min_size=1, max_size=3),
    st.lists(st.sampled_from([*_HUGE, 1, 2]), min_size=1, max_size=3),
    st.lists(st.sampled_from(["1e-400", "1/3", "1e400", "1"]), min_size=1, max_size=3),
    st.lists(st.lists(st.integers(-2, 4), min_size=2, max_size=2), min_size=1, max_size=2),
    st.sampled_from(
        [
            [sympy.Symbol("a"), 1],
            [sympy.Symbol("a"), sympy.Symbol("b"), sympy.Symbol("a")],
            [sympy.sqrt(2), 1],
            [sympy.Function("f")(sympy.Symbol("a")), sympy.exp(sympy.Symbol("a")), 1],
            [sympy.Symbol("a"), 0.5],
            [1, 1, 1, 1],
            [1, 2, 1],
            [7, 7, 7],
            [[1, 1], [1, 1]],
        ]
    ),
)
_READS = st.sampled_from(
    [
        "coefficients",
        "normalized",
        "log_normalized",
        "total",
        "mean",
        "variance",
        "std",
        "summary",
        "coefficient",
        "ball",
        "balls",
        "gaussian",
        "threshold_size",
        "abs_error_bound",
        "repr",
    ]
)


def _read(p: Any, what: str, index: tuple[Any, ...]) -> Any:
    if what in ("coefficient", "ball"):
        return getattr(p, what)(*index)
    if what == "repr":
        return repr(p)
    value = getattr(p, what)
    return value() if callable(value) else value


def _oracle(kernel: Kernel, n: int) -> Any:
    """Brute-force coefficients of small exact kernels, else None."""
    if not kernel.is_exact or n > 8 or kernel.size > 6:
        return None
    if any(
        abs(Fraction(x).numerator) > 10**6 or Fraction(x).denominator > 10**6 for x in kernel.flat
    ):
        return None
    if kernel.ndim == 1:
        return power_by_convolution(list(kernel.flat), n)
    return power2d_by_convolution([list(r) for r in kernel.weights], n)


def _check_against_oracle(p: Any, what: str, index: tuple[Any, ...], value: Any) -> None:
    expected = _oracle(p.kernel, p.layers)
    if expected is None or value is _OK:
        return
    flat = np.ravel(np.array(expected, dtype=object)).tolist()
    if what == "coefficients":
        got = np.ravel(np.array(value, dtype=object)).tolist()
        if p.method in ("exact", "symbolic"):
            assert [Fraction(str(x)) for x in got] == [Fraction(x) for x in flat]
    elif what == "coefficient" and p.method in ("exact", "symbolic"):
        c = np.array(expected, dtype=object)[tuple(int(i) for i in index)]
        assert Fraction(str(value)) == Fraction(c)
    elif what == "normalized":
        total = sum(Fraction(x) for x in flat)
        ref = np.array([float(Fraction(x) / total) for x in flat])
        got = np.ravel(value)
        if p.method in ("exact", "symbolic"):
            assert got.tolist() == ref.tolist()
        elif p.method == "fft" or (p.method == "arb"):
            assert np.max(np.abs(got - ref)) <= p.abs_error_bound + 1e-15
        elif p.method == "float" and all(Fraction(x) >= 0 for x in flat):
            normal = np.abs(ref) >= np.finfo(float).tiny
            assert np.allclose(got[normal], ref[normal], rtol=1e-9, atol=0)
    elif what == "total" and p.method != "symbolic":
        assert Fraction(value) == sum(Fraction(x) for x in flat) or isinstance(value, float)


@fuzz(800)
@given(_kernels, _LAYERS, _METHODS, _DPS)
def test_profile_constructor(weights, layers, method, dps):
    """Hostile layer counts (negative, float, bool, huge, numpy ints), methods and dps."""
    p = _call("profile()", lambda: profile(weights, layers, method=method, dps=dps))
    if p is _OK:
        return
    assert p.layers == layers and p.method in ("exact", "fft", "float", "arb", "symbolic")
    assert isinstance(_call("repr(Profile)", lambda: repr(p)), str)


@fuzz(2500)
@given(
    _kernels,
    st.one_of(st.integers(0, 10), st.sampled_from([10**4, 10**6, 10**12])),
    st.sampled_from(["auto", "exact", "fft", "float", "arb", "symbolic"]),
    _READS,
    st.lists(_INDEX, min_size=0, max_size=3),
)
def test_profile_reads(weights, layers, method, what, index):
    """Every read of valid profiles, with hostile indices; small exact cases against
    brute-force convolution."""
    p = _call("profile()", lambda: profile(weights, layers, method=method))
    if p is _OK:
        return
    value = _call(f"Profile.{what}", lambda: _read(p, what, tuple(index)))
    _check_against_oracle(p, what, tuple(index), value)


@fuzz(300)
@given(
    st.sampled_from([[1, 1, 1], [1, 2, 1], [1, 1, 1, 1], [2, 3], [1, 0, 1], [3, 1, 2], [1.0, 2.0]]),
    st.sampled_from([0, 1, 5, 10**3, 10**6, 10**12, 10**400]),
    st.one_of(st.integers(0, 30), st.sampled_from([10**6, 10**12, 2 * 10**12, 10**400])),
    st.sampled_from(["auto", "arb", "float"]),
)
def test_single_values_of_deep_profiles(weights, n, t, method):
    """One coefficient or one ball of a deep profile: computed (checked where an
    independent closed form exists) or refused up front, never a hang or a wide ball."""
    p = profile(weights, n, method=method)
    what = "ball" if method == "arb" else "coefficient"
    value = _call(f"deep Profile.{what}", lambda: getattr(p, what)(t))
    if value is _OK or method == "float":
        return
    last = n * (len(weights) - 1)
    if n == 0:
        assert value == (1 if t == 0 else 0)
        return
    if method == "arb":
        assert 0 <= float(value.mid()) <= 1 and float(value.rad()) <= 1e-25 * max(
            float(value.mid()), 1e-300
        )
        return
    if weights == [1, 2, 1]:
        assert value == (math.comb(2 * n, t) if t <= last else 0)
    elif weights == [2, 3] and n <= 10**3:
        assert value == (math.comb(n, t) * 2 ** (n - t) * 3**t if t <= n else 0)
    elif weights == [1, 1, 1] and t <= 30 and n > 0:
        assert value == sum(
            (-1) ** j * math.comb(n, j) * math.comb(t - 3 * j + n - 1, n - 1)
            for j in range(t // 3 + 1)
        )


@fuzz(300)
@given(
    st.one_of(st.integers(-2, 12), st.sampled_from([10**6, 10**12, 10**400, 2.0, True, None])),
    st.one_of(st.integers(-1, 6), st.sampled_from([10**9, 2.5, False, "3"])),
    st.one_of(st.integers(-2, 40), st.sampled_from([10**6, 10**12, 1.5, None])),
)
def test_extended_binomials(n, k, t):
    value = _call(
        "extended_binomial_coefficient", lambda: erftheory.extended_binomial_coefficient(n, k, t)
    )
    row = _call("extended_binomial", lambda: erftheory.extended_binomial(n, k))
    if value is not _OK and row is not _OK and isinstance(t, int):
        assert value == (row[t] if 0 <= t < len(row) else 0)
        if k == 2:
            assert row == [math.comb(n, i) for i in range(n + 1)]


def test_zz_case_count(capsys):
    """The number of adversarial calls tried (printed with ``-s``)."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nfuzz API cases: {total} ({dict(CASES)})")
    assert total >= 9000
