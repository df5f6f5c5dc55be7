"""The exact engine: profiles against independent routes (Eq. 1–11)."""

from __future__ import annotations

import math
from fractions import Fraction

import gmpy2
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
        a = [int(x) for x in erftheory.profile(Kernel(w), n)._result.power.poly().coeffs()]
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
class _Tripwire:
    """Stands in for flint or gmpy2: any use means the guard let the work start."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        raise AssertionError(f"{self._name}.{attr} was reached before the guard refused")


@pytest.fixture
def no_big_work(monkeypatch):
    """Every route to flint and GMP and every streaming loop fails if it is reached."""
    import erftheory._arb as arb_mod
    import erftheory._exact as ex  # the exact engine: its powers and the checked totals
    import erftheory._float as float_mod

    for module, name in [
        (ex, "flint"),
        (ex, "gmpy2"),
        (arb_mod, "flint"),
        (float_mod, "flint"),
    ]:
        monkeypatch.setattr(module, name, _Tripwire(name))

    def tripped(*args, **kwargs):
        raise AssertionError("a computation started before the guard refused")

    for name in ("power_1d", "stream_power_1d", "uniform_half", "Power2D", "UniformPower"):
        monkeypatch.setattr(ex, name, tripped)
    monkeypatch.setattr(float_mod, "tilted_power_1d", tripped)


_REFUSED = [
    (lambda: Kernel([1, 1, 1]), lambda k: profile(k, 10**12).coefficients),
    (lambda: Kernel([1, 1, 1]), lambda k: profile(k, 10**12).normalized()),
    (lambda: Kernel([1, 1, 1]), lambda k: profile(k, 10**12).total),
    (lambda: Kernel([1, 1, 1]), lambda k: profile(k, 10**12).coefficient(10**12)),
    (lambda: Kernel([1, 1, 1, 1]), lambda k: profile(k, 10**10).coefficient(15 * 10**9)),
    (lambda: Kernel([1, 2, 3]), lambda k: profile(k, 10**6).coefficient(10**6)),
    (lambda: Kernel([7, 7, 7, 7]), lambda k: profile(k, 10**10).coefficient(5)),
    (lambda: Kernel(["1e-400", "1"]), lambda k: profile(k, 10**4).normalized()),
    (lambda: Kernel(["1e-400", "1"]), lambda k: profile(k, 10**4).coefficients),
    (lambda: Kernel([Fraction(1, 10**400), 1]), lambda k: profile(k, 10**6).total),
    (lambda: Kernel([[1, 2], [3, 4]]), lambda k: profile(k, 10**9).coefficients),
    (lambda: Kernel([[1, 2], [3, 5]]), lambda k: profile(k, 10**5).normalized()),
    (lambda: Kernel([1.5, 2.0]), lambda k: profile(k, 10**12).normalized()),
    (lambda: None, lambda k: erftheory.extended_binomial(10**12, 3)),
    (lambda: None, lambda k: erftheory.extended_binomial_coefficient(10**10, 4, 15 * 10**9)),
    (lambda: Kernel([1] * 10**5), lambda k: profile(k, 10**4).coefficients),
    (lambda: Kernel([[1] * 500] * 500), lambda k: profile(k, 40).coefficients),
    (lambda: Kernel([1, 1, 1]), lambda k: profile(k, 10**7).normalized()),
    (lambda: Kernel([1, 1, 1]), lambda k: profile(k, 10**400).coefficients),
    (lambda: Kernel([2, 3]), lambda k: profile(k, 10**400).coefficient(10**399)),
]


@pytest.mark.parametrize(("make", "case"), _REFUSED)
def test_guard_refuses_huge_before_any_large_work(make, case, no_big_work):
    """Refused before anything large is allocated or computed: flint, gmpy2 and the
    streaming loops are trip wires, and Python allocates at most a few hundred KiB."""
    import tracemalloc

    kernel = make()  # the kernel itself is the caller's (1e5 taps, 500 x 500)
    tracemalloc.start()
    try:
        with pytest.raises(SizeLimitError, match=r"memory limit|stream about") as info:
            case(kernel)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert peak < 4 * 1024**2, (peak, message)
    assert "\n" not in message and info.value.estimate > info.value.limit
    assert any(h in message for h in ("method='float'", "fewer layers", "memory_limit", "ball"))


def test_cheap_single_coefficients_of_deep_profiles_are_computed():
    """Where the value is small, depth does not matter: closed forms, not refusals."""
    n = 10**12
    expected = sum(
        (-1) ** j * math.comb(n, j) * math.comb(7 - 3 * j + n - 1, n - 1) for j in range(3)
    )
    assert profile(Kernel([1, 1, 1]), n).coefficient(7) == expected
    assert profile(Kernel([1, 2, 1]), n).coefficient(3) == math.comb(2 * n, 3)
    assert profile(Kernel([1, 3]), 10**400).coefficient(1) == 3 * 10**400  # n w0^(n-1) w1
    assert profile(Kernel([1, 1]), 10**400).coefficient(2) == math.comb(10**400, 2)
    assert profile(Kernel([1, 0, 1]), 10**9).coefficient(1) == 0  # odd: outside the support


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


# ---------------------------------------------------------------- reliability
def test_single_coefficients_by_closed_forms_match_independent_routes():
    n = 10**5
    assert profile(Kernel([1, 2, 1]), n).coefficient(n) == math.comb(2 * n, n)  # C(2n, t)
    assert profile(Kernel([1, 2, 1]), n).coefficient(n // 3) == math.comb(2 * n, n // 3)
    assert profile(Kernel([3, 1]), 5000).coefficient(77) == math.comb(5000, 77) * 3 ** (5000 - 77)
    assert profile(Kernel([1, -3, 3, -1]), 300).coefficient(450) == (
        (-1) ** 450 * math.comb(900, 450)  # (1 - z)^3
    )
    m = 3000  # equal taps: binary splitting against the central trinomial numbers
    assert profile(Kernel([1, 1, 1]), m).coefficient(m) == _central_trinomial(m)
    assert profile(Kernel([5, 5, 5]), m).coefficient(m) == 5**m * _central_trinomial(m)
    assert erftheory.extended_binomial_coefficient(m, 3, m) == _central_trinomial(m)
    for w, n, t in [([1, 1, 1, 1], 900, 1000), ([0, 2, 0, 2], 400, 601), ([1, 0, 1], 50, 31)]:
        full = [int(c) for c in flint_power(w, n)]
        assert profile(Kernel(w), n).coefficient(t) == (full[t] if t < len(full) else 0)


def flint_power(w: list[int], n: int) -> list[int]:
    import flint

    p = flint.fmpz_poly(w) ** n
    return [int(c) for c in p.coeffs()] + [0] * (n * (len(w) - 1) + 1 - p.degree() - 1)


def test_deep_single_coefficient_million_digits_by_binary_splitting():
    # [1, 1, 1] at n = 10^6: one number of 1.6 million bits, by binary splitting (seconds);
    # checked modulo primes against Miller's recurrence mod p (an independent route).
    n = 10**6
    c = profile(Kernel([1, 1, 1]), n).coefficient(n)
    assert c.bit_length() == 1584952
    for p in (1_000_003, 998_244_353):
        # a(t) of (1 + z + z^2)^n mod p by Miller's recurrence up to t = n
        inv = [0, 1] + [0] * n
        for i in range(2, n + 1):
            inv[i] = (p - (p // i) * inv[p % i] % p) % p
        prev2, prev1 = 0, 1
        for t in range(1, n + 1):
            acc = ((n + 1) - t) * prev1 + (2 * (n + 1) - t) * prev2
            prev2, prev1 = prev1, acc % p * inv[t] % p
        assert c % p == prev1


def test_rational_weights_count_their_denominators():
    k = Kernel(["1e-400", "1"])
    p = profile(k, 10**4)
    with pytest.raises(SizeLimitError) as info:
        _ = p.coefficients
    assert info.value.estimate > 17 * 10**9  # numerators and the 10^(400 n) denominators
    with pytest.raises(SizeLimitError, match="stream about"):
        p.normalized()
    q = profile(k, 2000)
    c = q.coefficient(1000)  # C(n, t) 10^(-400 (n - t)): gmpy2 gcd, no quadratic Fraction
    assert c.numerator * 10 ** (400 * 1000) == math.comb(2000, 1000) * c.denominator
    assert gmpy2.gcd(c.numerator, c.denominator) == 1  # in lowest terms
    assert q.total == Fraction(10**400 + 1, 10**400) ** 2000
    assert profile(Kernel([Fraction(1, 10**400), 1]), 3).coefficients[1] == Fraction(3, 10**800)


def test_log_normalized_beyond_the_exact_budget_uses_tilted_logs():
    n = 10**5
    with erftheory.memory_limit("64MiB"):  # the exact streaming work is over its budget
        lp = profile(Kernel([1, 1, 1]), n).log_normalized()
    assert lp[0] == pytest.approx(-n * math.log(3), rel=1e-13)
    ref = profile(Kernel([1, 1, 1]), 2000).log_normalized()  # exact logs, small n
    got = profile(Kernel([1.0, 1.0, 1.0]), 2000, method="float").log_normalized()
    assert np.max(np.abs(got - ref)) < 1e-9
    centre = -0.5 * math.log(2 * math.pi * n * 2 / 3)  # local CLT, O(1/n)
    assert lp[n] == pytest.approx(centre, abs=1e-4)


def test_float_kernels_of_extreme_magnitude_profiles():
    expected = np.array([1, 3, 3, 1]) / 8
    for w in ([1e308, 1e308], [1e-320, 1e-320], [2.0**-1070, 2.0**-1070]):
        for method in ("auto", "fft", "float", "arb", "exact"):
            got = profile(Kernel(w), 3, method=method).normalized()
            assert np.allclose(got, expected, rtol=1e-14, atol=0), (w, method, got)
    assert profile(Kernel([1e308, 1e308]), 3).total == math.inf
    with pytest.raises(ERFValueError, match="beyond float64"):
        profile(Kernel([1e308, 1e308]), 3).coefficients  # noqa: B018


def test_summary_of_degenerate_and_symbolic_profiles():
    s = profile(Kernel([1]), 5).summary()
    assert s["gaussian"] is None and s["std"] == 0.0 and s["threshold_size"] == 1.0
    s0 = profile(Kernel([1, 2, 1]), 0).summary()
    assert s0["gaussian"] is None and s0["variance"] == "0" and s0["erf_ratio_std"] == 0.0
    assert profile(Kernel([[1, 2, 1]]), 4).summary()["gaussian"] is None  # one row: singular
    neg = profile(Kernel([1, -3, 1]), 3).summary()
    assert neg["variance"] == "-6" and neg["std"] is None and neg["erf_ratio_std"] is None
    a = sympy.Symbol("a", positive=True)
    sym = profile(Kernel([a, 1, a]), 3).summary()
    assert sym["variance"] == "6*a/(2*a + 1)" and sym["gaussian"] is None and sym["std"] is None
    assert set(sym["mass_size"].values()) == {None}
    num = profile(Kernel([1, 2, 1]), 3, method="symbolic").summary()
    ref = profile(Kernel([1, 2, 1]), 3).summary()
    assert num == {**ref, "method": "symbolic"}
    with pytest.raises(ERFValueError, match="sum to zero"):
        profile(Kernel([1, -1]), 3).summary()


def test_symbolic_profiles_use_flint_and_refuse_by_estimate():
    a, b = sympy.symbols("a b")
    deep = profile(Kernel([a, 1]), 20_000)
    assert deep.coefficient(3) == math.comb(20_000, 3) * a**19_997
    assert deep._result.route == "mpoly"
    for w, n in [([a, b, a], 5), ([a, sympy.Rational(1, 3), 2], 4), ([sympy.sqrt(a), a, 1], 3)]:
        z = sympy.Symbol("z")
        poly = sympy.Poly(sum(x * z**m for m, x in enumerate(w)), z) ** n
        expected = [sympy.expand(poly.coeff_monomial(z**t)) for t in range(n * (len(w) - 1) + 1)]
        assert profile(Kernel(w), n).coefficients == expected  # structurally equal
    with pytest.raises(SizeLimitError, match="sympy would take minutes"):
        _ = profile(Kernel([a, 0.5]), 2000).coefficients  # float weights: sympy's own power
    with pytest.raises(SizeLimitError, match="symbolic expansion"):
        _ = profile(Kernel([a, b, 1, 1]), 20_000).coefficients
    assert profile(Kernel([sympy.sqrt(2), 0]), 10**12).total == sympy.Pow(
        sympy.sqrt(2), 10**12, evaluate=False
    )
    assert profile(Kernel([1, 2, 1]), 10**4, method="symbolic").total == sympy.Integer(4) ** 10**4
    with pytest.raises(SizeLimitError):
        _ = profile(Kernel([1, 2, 1]), 10**12, method="symbolic").total


def test_hostile_layers_and_indices_are_clear_errors():
    p = profile(Kernel([1, 1]), 4)
    for bad in (1.0, True, "1", None):
        with pytest.raises(ERFTypeError, match="integer indices"):
            p.coefficient(bad)
    for bad in (-1, 5, 10**5000, -(10**5000)):
        with pytest.raises(ERFValueError, match="outside the profile's shape") as info:
            p.coefficient(bad)
        assert len(str(info.value)) < 200
    with pytest.raises(ERFValueError, match="non-negative integer") as info:
        profile(Kernel([1, 1]), -(10**5000))
    assert "(5001 digits)" in str(info.value)
    huge = profile(Kernel([1, 1, 1]), 10**400)
    assert repr(huge) == f"Profile(Kernel([1, 1, 1]), layers=1{'0' * 400}, method='exact')"
    assert huge.variance == Fraction(2 * 10**400, 3)
    assert huge.std == pytest.approx(math.sqrt(2 / 3) * 1e200, rel=1e-14)  # float64 holds it
    assert huge.erf_ratio("std") == pytest.approx(math.sqrt(2 / 3) / 2e200, rel=1e-12)
    with pytest.raises(SizeLimitError):
        huge.coefficient(10**400)
    assert huge.coefficient(1) == 10**400  # n * 1^(n-1) * 1
    with pytest.raises(SizeLimitError):
        huge.normalized()
    with pytest.raises(ERFValueError, match="dps must be at most"):
        profile(Kernel([1, 1]), 3, method="arb", dps=10**9)
