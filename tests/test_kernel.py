"""Kernel: parsing, domains, anchors, moments, separability, bad input."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy

from erftheory import ERFTypeError, ERFValueError, Kernel
from erftheory.kernel import parse_weight


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-2", -2),
        ("1/4", Fraction(1, 4)),
        ("0.25", Fraction(1, 4)),
        ("1e-3", Fraction(1, 1000)),
        (" 2.50 ", Fraction(5, 2)),
        ("6/3", 2),
        (".5", Fraction(1, 2)),
    ],
)
def test_parse_weight_is_exact(text, value):
    got = parse_weight(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "nan",
        "inf",
        "-inf",
        "",
        "1/0",
        "2**3",
        "__import__('os')",
        "1e999999",
        "1,2",
        "0x10",
        "1/2/3",
    ],
)
def test_parse_weight_rejects(text):
    with pytest.raises(ERFValueError, match="weight"):
        parse_weight(text)


def test_domains():
    assert Kernel([1, 2, 1]).domain == "integer"
    assert Kernel([1, Fraction(1, 2)]).domain == "rational"
    assert Kernel(["1/4", "1/2", "1/4"]).weights == (Fraction(1, 4), Fraction(1, 2), Fraction(1, 4))
    assert Kernel([Fraction(4, 2), 1]).weights == (2, 1)
    assert Kernel([0.5, 1]).domain == "float"
    assert Kernel([Decimal("0.25"), Decimal("2")]).weights == (Fraction(1, 4), 2)
    assert Kernel([Decimal("2"), 3]).domain == "integer"
    assert Kernel(np.array([1, 2, 3])).weights == (1, 2, 3)
    assert Kernel(np.array([0.5, 0.25])).domain == "float"
    a = sympy.Symbol("a")
    k = Kernel([a, 1, a])
    assert k.domain == "symbolic" and k.weights[1] == sympy.Integer(1)
    assert Kernel([sympy.Rational(1, 3), sympy.Integer(2)]).weights == (Fraction(1, 3), 2)


def test_anchor_default_matches_torch_same_padding():
    assert Kernel([1] * 3).anchor == 1
    assert Kernel([1] * 4).anchor == 1  # torch pads (k-1)//2 on the left
    assert Kernel([[1] * 4] * 5).anchor == (2, 1)
    assert Kernel([1, 2, 3], anchor=0).anchor == 0
    assert Kernel([[1, 2], [3, 4]], anchor=1).anchor == (1, 1)


@pytest.mark.parametrize(
    ("weights", "anchor", "match"),
    [
        ([1, 2], 2, "outside the kernel"),
        ([1, 2], -1, "outside the kernel"),
        ([[1, 2]], (0,), "one int per axis"),
        ([1, 2], True, "anchor"),
    ],
)
def test_bad_anchor(weights, anchor, match):
    with pytest.raises((ERFValueError, ERFTypeError), match=match):
        Kernel(weights, anchor=anchor)


@pytest.mark.parametrize(
    ("weights", "exc", "match"),
    [
        ([], ERFValueError, "empty"),
        ([[1, 2], [3]], ERFValueError, "ragged"),
        ([float("nan"), 1.0], ERFValueError, "not finite"),
        ([1, float("inf")], ERFValueError, "not finite"),
        ([True, 1], ERFTypeError, "bool"),
        ("1,2,1", ERFTypeError, "Kernel.parse"),
        ([1 + 2j], ERFTypeError, "not supported"),
        ([[1, [2]]], ERFValueError, "nested"),
        ([1, [2]], ERFValueError, "mixes"),
        ([[]], ERFValueError, "empty"),
        (5, ERFTypeError, "sequence"),
        ([sympy.oo, 1], ERFValueError, "not finite"),
    ],
)
def test_bad_kernels(weights, exc, match):
    with pytest.raises(exc, match=match):
        Kernel(weights)


def test_parse_text():
    assert Kernel.parse("1,2,1").weights == (1, 2, 1)
    assert Kernel.parse("1/4, 0.5, 1/4").weights == (Fraction(1, 4), Fraction(1, 2), Fraction(1, 4))
    assert Kernel.parse("1,1,1;1,1,1").shape == (2, 3)
    with pytest.raises(ERFValueError, match="empty weight"):
        Kernel.parse("1,,2")
    with pytest.raises(ERFValueError, match="ragged"):
        Kernel.parse("1,2;3")
    with pytest.raises(ERFValueError, match="not a finite number"):
        Kernel.parse("1,abc")


def test_moments_exact_from_definition():
    # X with P(X=m) = w(m)/sum(w), position measured from the anchor (Eq. 10).
    k = Kernel([1, 2, 3, 4], anchor=0)
    mean, var = k.moments()
    assert mean == Fraction(0 * 1 + 1 * 2 + 2 * 3 + 3 * 4, 10)
    assert var == Fraction(0 + 2 + 4 * 3 + 9 * 4, 10) - mean**2
    assert Kernel([1] * 5).moments() == (0, Fraction(5**2 - 1, 12))  # Eq. 11 with k = 5
    with pytest.raises(ERFValueError, match="sum to zero"):
        Kernel([1, -1]).moments()


def test_2d_moments_and_covariance():
    k = Kernel([[1, 0], [0, 1]], anchor=(0, 0))
    (mr, mc), (vr, vc) = k.moments()
    assert (mr, mc, vr, vc) == (Fraction(1, 2), Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))
    assert k.covariance()[0][1] == Fraction(1, 4)  # perfectly correlated axes


def test_separability():
    u, v = Kernel([[2, 3], [4, 6]]).axis_kernels()
    assert u.weights == (2, 4) and v.weights == (1, Fraction(3, 2))
    assert Kernel([[1, 2], [3, 5]]).axis_kernels() is None
    assert Kernel([[0.5, 1.0], [1.0, 2.0]]).axis_kernels() is not None


def test_symmetry_and_equality():
    assert Kernel([1, 2, 1]).is_symmetric
    assert not Kernel([1, 2, 3]).is_symmetric
    assert not Kernel([1, 1]).is_symmetric  # anchor 0: not centred
    assert Kernel([1, 2]) == Kernel(["1", "2"])
    assert len({Kernel([1, 2]), Kernel([1, 2])}) == 1
    assert repr(Kernel([1, 2, 1])) == "Kernel([1, 2, 1])"
    assert repr(Kernel([1, 2, 1], anchor=0)) == "Kernel([1, 2, 1], anchor=0)"


# ---------------------------------------------------------------- reliability
def test_huge_integers_print_and_parse():
    """Python refuses int <-> str past 4300 digits; kernels and profiles do not."""
    from erftheory import profile
    from erftheory.kernel import MAX_DIGITS, format_value

    big = 10**5000
    k = Kernel([big, 1])
    assert repr(k) == "Kernel([1" + "0" * 5000 + ", 1])"
    assert str(k) == repr(k)
    threes = (10**4400 - 1) // 3  # 4400 threes
    assert Kernel(["1" + "0" * 5000, "1/" + "3" * 4400]).weights == (big, Fraction(1, threes))
    assert parse_weight("-" + "7" * 6000) == -7 * (10**6000 - 1) // 9
    assert repr(profile(k, 3)).startswith("Profile(Kernel([1000")
    assert format_value(-big, short=True) == "-10000000…0000 (5001 digits)"
    assert format_value(Fraction(1, 3 * big), short=True) == "1/30000000…0000 (5001 digits)"
    assert profile(k, 2).summary()["variance"] == format_value(Kernel([big, 1]).moments()[1] * 2)
    with pytest.raises(ERFValueError, match=f"digits.*more than {MAX_DIGITS}") as info:
        parse_weight("1" * (MAX_DIGITS + 1))
    assert len(str(info.value)) < 200  # the text is abbreviated, not echoed
    with pytest.raises(ERFValueError, match="digits"):
        parse_weight("1e-100001")
    with pytest.raises(ERFValueError, match="sum to zero") as info:
        Kernel([big, -big]).moments()
    assert "(5001 digits)" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["١٢٣", "１２", "\u00bd", "1_000", "1e", ".", "+", "5/", "/5"])
def test_parse_weight_reads_ascii_digits_only(text):
    with pytest.raises(ERFValueError, match="not a finite number"):
        parse_weight(text)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({0: 1, 1: 2}, "got a dict"),
        ({1, 2}, "got a set"),
        (frozenset({1}), "got a frozenset"),
        ({1: 2}.keys(), "got a dict_keys"),
        ([{1, 2}, {3, 4}], "kernel row 0 .* set"),
        ([[1, 2], {3: 4}], "kernel row 1 .* dict"),
        ([sympy.I, 1], "complex"),
        ([sympy.I * sympy.Symbol("a"), 1], "complex"),
        ([sympy.Symbol("c", imaginary=True), 1], "complex"),
        ([1 + 0j, 1], "complex"),
        ([np.complex64(1), 1], "complex"),
        (np.array([1, 2], dtype=complex), "complex dtype"),
        (np.array([(1, 2)], dtype=[("a", int), ("b", int)]), "structured dtype"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "datetime dtype"),
        ([np.bool_(True), 1], "bool"),
        (np.array([True, False]), "bool"),
    ],
)
def test_unordered_and_complex_weights_are_type_errors(weights, match):
    with pytest.raises(ERFTypeError, match=match) as info:
        Kernel(weights)
    assert "\n" not in str(info.value)


def test_iterators_are_read_once_and_real_numbers_are_kept():
    assert Kernel(x for x in [1, 2, 1]).weights == (1, 2, 1)
    assert Kernel(iter([(1, 2), iter([3, 4])])).weights == ((1, 2), (3, 4))
    assert Kernel([np.array(2), np.float32(0.5)]).weights == (2.0, 0.5)
    assert Kernel([(1 + sympy.I) * (1 - sympy.I), 1]).weights == (2, 1)  # real after all
    assert Kernel([range(2), range(2)]).weights == ((0, 1), (0, 1))
    assert Kernel(np.array([[1, 2], [3, 4]], dtype=np.uint8)).weights == ((1, 2), (3, 4))


def test_float_kernels_of_extreme_magnitude():
    """Moments are exact (floats are dyadic rationals), so nothing overflows."""
    assert Kernel([1e308, 1e308]).moments() == (0.5, 0.25)
    assert Kernel([1e308, 1e308]).total == math.inf  # the correctly rounded sum
    assert Kernel([5e-324, 5e-324, 5e-324]).moments() == (0.0, 2 / 3)
    assert Kernel([[1e308, 1e308], [1e308, 1e308]]).axis_kernels() is not None
    tiny = Kernel([1e-300, 2e-300, 1e-300]).moments()
    assert tiny == (0.0, 0.5)
    with pytest.raises(ERFValueError, match="beyond float64's range"):
        Kernel([10**400, 0.5])  # the int would become inf
    with pytest.raises(ERFValueError, match="beyond float64's range"):
        Kernel([Fraction(1, 10**400), 0.5])  # ... or 0
    with pytest.raises(ERFValueError, match="not finite in float64"):
        Kernel([np.longdouble("1e400"), 1.0])
