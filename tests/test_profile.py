"""The exact engine: profiles against independent routes (Eq. 1–11)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import example, given
from hypothesis import strategies as st
from oracles import (
    enumerate_paths,
    exact_moments,
    power2d_by_convolution,
    power_by_convolution,
)

import erftheory
from erftheory import ERFTypeError, ERFValueError, Kernel, SizeLimitError, profile
from erftheory._exact import ratio_to_float, stream_power_1d
from erftheory.strategies import kernels, layer_counts

# float64 tolerance for values computed by correctly rounded conversion of exact
# coefficients: at most 1 ulp from the division, so 2**-52 relative.
ROUNDED = 2.0**-52


# ---------------------------------------------------------------- properties
@given(kernels(domain="integer", nonnegative=False), layer_counts(12))
def test_sum_of_coefficients_is_total_power(kernel, n):
    assert sum(profile(kernel, n).coefficients) == kernel.total**n


@given(kernels(domain="rational", nonnegative=False), layer_counts(8))
def test_rational_sum(kernel, n):
    assert sum(profile(kernel, n).coefficients) == kernel.total**n


@given(kernels(nonnegative=False), layer_counts(8), layer_counts(8))
def test_semigroup_profile_n_plus_m_is_convolution(kernel, n, m):
    a = profile(kernel, n).coefficients
    b = profile(kernel, m).coefficients
    from oracles import convolve

    assert profile(kernel, n + m).coefficients == convolve(a, b)


@given(kernels(domain="rational", nonnegative=False, max_size=4), layer_counts(7))
def test_matches_brute_force_convolution(kernel, n):
    assert profile(kernel, n).coefficients == power_by_convolution(list(kernel.weights), n)


@given(kernels(max_size=3), st.integers(0, 6))
def test_matches_path_enumeration(kernel, n):
    # o(t) sums the products of weights over all k^n paths through the layers (Section 1).
    assert profile(kernel, n).coefficients == enumerate_paths(list(kernel.weights), n)


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=3).map(lambda h: h + h[-2::-1]),
    layer_counts(15),
)
def test_symmetric_kernels_give_symmetric_profiles(half, n):
    c = profile(Kernel(half), n).coefficients
    assert c == c[::-1]


@given(layer_counts(60))
def test_k2_is_binomial_row(n):
    assert profile(Kernel([1, 1]), n).coefficients == [math.comb(n, t) for t in range(n + 1)]
    assert erftheory.extended_binomial(n, 2) == [math.comb(n, t) for t in range(n + 1)]


@given(layer_counts(60))
def test_121_power_is_binomial_row_of_2n(n):
    assert profile(Kernel([1, 2, 1]), n).coefficients == [
        math.comb(2 * n, t) for t in range(2 * n + 1)
    ]


@given(kernels(domain="rational", max_size=5, random_anchor=True), layer_counts(15))
@example(Kernel([1, 1, 1, 1]), 3)
def test_moments_eq10_equal_moments_of_coefficients(kernel, n):
    p = profile(kernel, n)
    mean, var = exact_moments(p.coefficients, p.origin)
    assert (p.mean, p.variance) == (mean, var)
    mu1, var1 = kernel.moments()
    assert (p.mean, p.variance) == (n * mu1, n * var1)


@given(st.integers(1, 9), st.integers(0, 25))
def test_closed_form_uniform(k, n):
    c = profile(Kernel([1] * k), n).coefficients
    for t in range(len(c)):
        closed = (
            sum(
                (-1) ** j * math.comb(n, j) * math.comb(t - j * k + n - 1, n - 1)
                for j in range(0, t // k + 1)
            )
            if n
            else int(t == 0)
        )
        assert c[t] == closed
        assert erftheory.extended_binomial_coefficient(n, k, t) == c[t]


def _central_trinomial(n: int) -> int:
    # OEIS A002426: a(n) = sum_k C(n, 2k) C(2k, k) (trinomial paths with equal up/down steps).
    return sum(math.comb(n, 2 * k) * math.comb(2 * k, k) for k in range(n // 2 + 1))


def test_central_trinomial_oeis_a002426():
    first = [1, 1, 3, 7, 19, 51, 141, 393, 1107, 3139, 8953, 25653, 73789, 212941, 616227]
    assert [profile(Kernel([1, 1, 1]), n).coefficient(n) for n in range(15)] == first
    for n in range(101):
        assert profile(Kernel([1, 1, 1]), n).coefficients[n] == _central_trinomial(n)


# ---------------------------------------------------------------- 2-D
@given(kernels(ndim=1, max_size=3), kernels(ndim=1, max_size=3), layer_counts(6))
def test_separable_2d_is_outer_product(u, v, n):
    w = [[a * b for b in v.weights] for a in u.weights]
    p = profile(Kernel(w), n)
    cu, cv = profile(u, n).coefficients, profile(v, n).coefficients
    assert p.coefficients == [[a * b for b in cv] for a in cu]
    assert p.origin == (profile(u, n).origin, profile(v, n).origin)


@given(kernels(ndim=2, max_size=3, nonnegative=False), layer_counts(4))
def test_2d_matches_brute_force(kernel, n):
    assert profile(kernel, n).coefficients == power2d_by_convolution(
        [list(r) for r in kernel.weights], n
    )


def test_2d_large_kernel_uses_kronecker_and_agrees():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 5, size=(9, 9)).tolist()
    w[0][0] += 1  # not separable
    assert Kernel(w).axis_kernels() is None
    assert profile(Kernel(w), 2).coefficients == power2d_by_convolution(w, 2)


@pytest.mark.parametrize(
    ("w", "n"),
    [
        ([[1, 2], [3, 5]], 12),
        ([[2, 0, 1], [1, 3, 0]], 14),
        ([[1, 2], [3, 5]], 3),
        ([[2, 0, 1], [1, 3, 0]], 5),
    ],
)
def test_2d_both_flint_routes_match_brute_force(w, n):
    from erftheory._exact import Power2D

    power = Power2D(w, n)
    assert power.method == ("kronecker" if n < 2 * len(w) * len(w[0]) else "mpoly")
    expected = power2d_by_convolution(w, n)
    assert profile(Kernel(w), n).coefficients == expected
    got = {ij: int(c) for ij, c in power.terms()}
    assert got == {(i, j): v for i, r in enumerate(expected) for j, v in enumerate(r) if v}
    assert profile(Kernel(w), n).coefficient(1, 2) == expected[1][2]


def test_2d_moments_match_coefficients():
    k = Kernel([[1, 2, 0], [3, 1, 1]], anchor=(1, 0))
    p = profile(k, 3)
    c = p.coefficients
    tot = Fraction(sum(map(sum, c)))
    o = p.origin
    mr = sum(Fraction(v) * (i - o[0]) for i, r in enumerate(c) for v in r) / tot
    mc = sum(Fraction(v) * (j - o[1]) for r in c for j, v in enumerate(r)) / tot
    crc = sum(
        Fraction(v) * (i - o[0]) * (j - o[1]) for i, r in enumerate(c) for j, v in enumerate(r)
    )
    assert p.mean == (mr, mc)
    assert p.covariance[0][1] == crc / tot - mr * mc
    assert np.isclose(p.normalized().sum(), 1.0, rtol=0, atol=1e-14)


# ---------------------------------------------------------------- normalised floats
@given(kernels(domain="rational", max_size=4), layer_counts(20))
def test_normalized_is_correctly_rounded(kernel, n):
    p = profile(kernel, n)
    expected = [float(Fraction(c) / p.total) for c in p.coefficients]
    assert p.normalized().tolist() == expected  # Fraction.__float__ rounds correctly


def test_ratio_to_float_keeps_subnormals():
    total = 3**5000
    conv = ratio_to_float(total)
    for c in [1, 7, 3**4000, 3**4355 + 12345, 2**7000, 3**5000 - 1, -(3**4500)]:
        assert conv(c) == float(Fraction(c, total))
    tiny = conv(3 ** (5000 - 675))  # 3**-675 ~ 1.1e-322, a subnormal
    assert 0 < tiny < 2.3e-308


def test_streaming_matches_flint_elementwise():
    for w, n in [([1, 1, 1], 700), ([2, 0, 3, 1], 300), ([0, 1, 5, 0], 200), ([3, -2, 4], 150)]:
        a = [int(x) for x in erftheory.profile(Kernel(w), n)._data.poly().coeffs()]
        b = list(stream_power_1d(w, n))
        assert b[: len(a)] == a and all(x == 0 for x in b[len(a) :])
        length = n * (len(w) - 1) + 1
        with erftheory.memory_limit(8 * length + 4096):  # room for floats, not for the power
            streamed = erftheory.profile(Kernel(w), n).normalized() if sum(w) else None
        if streamed is not None:
            assert streamed.tolist() == erftheory.profile(Kernel(w), n).normalized().tolist()


def test_normalized_n_100000_k3_no_overflow_no_flush():
    p = profile(Kernel([1, 1, 1]), layers=100_000)
    a = p.normalized()
    assert a.shape == (200_001,) and a.dtype == np.float64
    assert abs(a.sum() - 1.0) < 1e-12
    assert np.array_equal(a, a[::-1])
    # local CLT: the peak is 1/sqrt(2 pi n Var X) (1 + O(1/n)) with Var X = 2/3.
    assert abs(a[100_000] * math.sqrt(2 * math.pi * 100_000 * 2 / 3) - 1) < 1e-4
    nz = a[a > 0]
    assert nz.min() < 2.2250738585072014e-308  # subnormal values are kept, not flushed
    first = int(np.argmax(a > 0))
    # The first non-zero value is c_t / 3**n with c_t the first coefficient above 2**-1075 3**n;
    # its neighbour below must round to zero, i.e. be < 2**-1075 (checked exactly by streaming).
    coeffs = stream_power_1d([1, 1, 1], 100_000)
    total = 3**100_000
    for t, c in enumerate(coeffs):
        if t == first - 1:
            assert Fraction(c, total) < Fraction(1, 2**1074) / 2 + Fraction(1, 2**1100)
        if t == first:
            assert a[t] == float(Fraction(c, total))
            break


def test_normalized_zero_sum_is_an_error():
    with pytest.raises(ERFValueError, match="sum to zero"):
        profile(Kernel([1, -1]), 3).normalized()
    with pytest.raises(ERFValueError, match="sum to zero"):
        _ = profile(Kernel([1, -1]), 3).variance
    assert profile(Kernel([1, -1]), 3).coefficients == [-1, 3, -3, 1][::-1]


# ---------------------------------------------------------------- Gaussian and sizes
def test_gaussian_distances_shrink_with_depth():
    d = [profile(Kernel([1, 1, 1]), n).gaussian() for n in (10, 40, 160)]
    assert d[0].total_variation > d[1].total_variation > d[2].total_variation
    assert d[0].max_abs_diff > d[1].max_abs_diff > d[2].max_abs_diff
    assert d[0].kolmogorov > d[1].kolmogorov > d[2].kolmogorov


def test_gaussian_values_by_hand():
    p = profile(Kernel([1, 2, 1]), 4)  # binomial(8, 1/2) centred: variance 2
    fit = p.gaussian()
    x = np.arange(9) - 4
    g = np.exp(-(x**2) / 4) / math.sqrt(4 * math.pi)
    assert np.allclose(fit.values, g, rtol=1e-15, atol=0)
    pn = np.array([math.comb(8, t) for t in range(9)]) / 256
    assert fit.max_abs_diff == pytest.approx(float(np.max(np.abs(pn - g))), rel=1e-12)
    assert fit.total_variation == pytest.approx(0.5 * float(np.sum(np.abs(pn - g))), rel=1e-12)


def test_gaussian_2d_and_degenerate():
    fit = profile(Kernel([[1, 1, 1]] * 3), 5).gaussian()
    assert fit.kolmogorov is None and fit.values.shape == (11, 11)
    assert fit.total_variation < 0.05
    with pytest.raises(ERFValueError, match="positive variance"):
        profile(Kernel([1]), 5).gaussian()
    with pytest.raises(ERFValueError, match="positive definite"):
        profile(Kernel([[1, 1, 1]]), 5).gaussian()


def test_erf_sizes_by_hand():
    p = profile(Kernel([1, 1]), 4)  # [1, 4, 6, 4, 1] / 16, anchor 0 -> origin 0
    assert p.rf_size == 5
    assert p.std == pytest.approx(1.0, rel=0, abs=ROUNDED)
    assert p.threshold_size() == 5.0  # the centre (origin 0) is 1/16: all five exceed 0.0455/16
    assert profile(Kernel([1, 1], anchor=0), 4).threshold_size(level=0.5) == 5.0
    assert profile(Kernel([1, 2, 1]), 2).threshold_size(level=0.5) == 3.0  # [1,4,6,4,1]/16
    q = profile(Kernel([1, 1, 1]), 1)
    assert q.mass_size(0.34) == 3 and q.mass_size(0.33) == 1
    assert q.erf_ratio("mass", 0.5) == 1.0


def test_fig2_threshold_is_2_49_sigma_not_2_sigma():
    # A deep uniform 1-D stack is nearly Gaussian: the Fig. 2 size ~ 2 * 2.49 * sigma.
    p = profile(Kernel([1, 1, 1]), 2000)
    radius = math.sqrt(2 * math.log(1 / 0.0455))
    assert abs(p.threshold_size() - 2 * radius * p.std) <= 2.0


def test_erf_ratio_shrinks_like_inverse_sqrt_n():
    r = [profile(Kernel([1, 1, 1]), n).erf_ratio("std") for n in (100, 400, 1600)]
    assert r[0] / r[1] == pytest.approx(2.0, rel=0.01)
    assert r[1] / r[2] == pytest.approx(2.0, rel=0.01)


# ---------------------------------------------------------------- other engines
def test_float_engine_close_to_exact():
    pe = profile(Kernel([1, 2, 1]), 30)
    pf = profile(Kernel([1.0, 2.0, 1.0]), 30)
    assert pf.method == "float"
    # FFT/direct convolutions: absolute error ~ 1e-16 of the peak per squaring.
    assert np.allclose(pf.normalized(), pe.normalized(), rtol=0, atol=1e-14)
    assert pf.variance == pytest.approx(15.0, rel=1e-15)


def test_exact_method_reads_floats_as_dyadic_rationals():
    p = profile(Kernel([0.25, 0.5, 0.25]), 3, method="exact")
    assert p.variance == Fraction(3, 2) and p.coefficients[3] == Fraction(5, 16)
    q = profile(Kernel([[0.5, 0.25], [0.25, 0.5]]), 2, method="exact")
    assert q.covariance[0][1] == Fraction(1, 6) and isinstance(q.coefficients[0][0], Fraction)


def test_symbolic_engine():
    a, b = sympy.symbols("a b", positive=True)
    p = profile(Kernel([a, b, a]), 2)
    assert p.method == "symbolic"
    assert [sympy.expand(c) for c in p.coefficients] == [
        a**2,
        2 * a * b,
        2 * a**2 + b**2,
        2 * a * b,
        a**2,
    ]
    assert sympy.simplify(p.variance - 4 * a / (2 * a + b)) == 0
    with pytest.raises(ERFTypeError, match="symbolic"):
        p.normalized()
    with pytest.raises(SizeLimitError, match="symbolic expansion"):
        _ = profile(Kernel(list(sympy.symbols("w0:9"))), 200).coefficients


def test_methods_and_bad_layers():
    with pytest.raises(ERFValueError, match="method must be one of"):
        profile(Kernel([1]), 1, method="magic")
    for bad, exc in [
        (-1, ERFValueError),
        (2.5, ERFTypeError),
        (True, ERFTypeError),
        ("3", ERFTypeError),
        (None, ERFTypeError),
        (2.0, ERFTypeError),
    ]:
        with pytest.raises(exc, match=r"layers must be a non-negative integer \(0, 1, 2, \.\.\.\)"):
            profile(Kernel([1, 1]), bad)
    assert profile(Kernel([1, 1]), np.int64(3)).coefficients == [1, 3, 3, 1]
    assert profile(Kernel([2, 3]), 0).coefficients == [1]


# ---------------------------------------------------------------- memory guard
def test_guard_refuses_huge_within_a_second():
    import time

    cases = [
        lambda: profile(Kernel([1, 1, 1]), 10**12).coefficients,
        lambda: profile(Kernel([1, 1, 1]), 10**12).normalized(),
        lambda: profile(Kernel([1, 1, 1]), 10**12).total,
        lambda: profile(Kernel([1, 1, 1]), 10**12).coefficient(7),
        lambda: profile(Kernel([[1, 2], [3, 4]]), 10**9).coefficients,
        lambda: profile(Kernel([[1, 2], [3, 5]]), 10**5).normalized(),
        lambda: profile(Kernel([1.5, 2.0]), 10**12).normalized(),
        lambda: erftheory.extended_binomial(10**12, 3),
        lambda: profile(Kernel([1] * 10**5), 10**4).coefficients,
        lambda: profile(Kernel([[1] * 500] * 500), 40).coefficients,
        lambda: profile(Kernel([1, 1, 1]), 10**7).normalized(),
    ]
    for case in cases:
        start = time.perf_counter()
        with pytest.raises(SizeLimitError, match=r"memory limit|stream about") as info:
            case()
        assert time.perf_counter() - start < 1.0, info.value
        assert "method='float'" in str(info.value) or "fewer layers" in str(info.value)


def test_guard_estimate_is_an_upper_bound_and_tight():
    from erftheory._exact import coefficient_bits_bound

    for w, n in [([1, 1, 1], 3000), ([5, 1, 7, 2], 800), ([0, 3, 0, 1], 500), ([9] * 11, 300)]:
        bits, length = coefficient_bits_bound(w, n)
        c = profile(Kernel(w), n).coefficients
        actual = sum(abs(x).bit_length() for x in c)
        assert length == len(c)
        assert actual <= bits <= 1.2 * actual + 2 * length


def test_memory_limit_is_configurable():
    p = profile(Kernel([1, 1, 1]), 2000)
    with erftheory.memory_limit("64KiB"), pytest.raises(SizeLimitError, match=r"64\.0 KiB"):
        _ = p.coefficients
    assert len(p.coefficients) == 4001
    with pytest.raises(ERFValueError, match="memory limit"):
        erftheory.set_memory_limit(-5)
    with pytest.raises(ERFValueError, match="not a size"):
        erftheory.set_memory_limit("lots")


def test_lazy_profile_reads_moments_without_expanding():
    p = profile(Kernel([1, 1, 1]), 10**9)
    assert p.variance == Fraction(2 * 10**9, 3) and p.mean == 0 and p.origin == 10**9
    assert p.rf_size == 2 * 10**9 + 1
