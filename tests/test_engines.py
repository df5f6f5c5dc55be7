"""Every registered engine against the exact engine (the oracle), with stated tolerances.

Tolerances, per engine and why:

- ``exact``: ``==`` (integer arithmetic).
- ``fft``: absolute, ``Profile.abs_error_bound`` (the engine's own a-posteriori bound,
  `erftheory._fft`): FFT rounding is absolute, relative to the largest value.
- ``float``: relative ``FLOAT_RTOL = 1e-10`` on every value that is a normal float64, for
  nonnegative kernels (exponential tilting); kernels with negative weights fall back to
  the FFT and are held to its absolute bound. Beyond the sizes where the exact engine is
  cheap, single values are checked against `reference.cauchy_coefficient` (a Cauchy
  integral by mpmath quadrature, accurate to about 1e-35: its error does not count).
- ``arb``: the ball must contain the exact ratio and have radius at most
  ``10**-(dps - 5)`` of the value (or of the peak for values that are 0).
"""

from __future__ import annotations

import math
from fractions import Fraction

import flint
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import cauchy_coefficient

import erftheory
from erftheory import ERFTypeError, ERFValueError, Kernel, profile
from erftheory._engines import ENGINES

FLOAT_RTOL = 1e-10
TINY = np.finfo(float).tiny  # smallest normal float64


def _exact_normalized(kernel: Kernel, n: int) -> np.ndarray:
    return profile(kernel, n, method="exact").normalized()


def _check_engine(name: str, kernel: Kernel, n: int) -> None:
    ref = _exact_normalized(kernel, n)
    if name == "symbolic":
        p = profile(kernel, n, method="symbolic")
        exact = profile(kernel, n, method="exact").coefficients
        got = p.coefficients
        assert [int(x) for x in np.ravel(got)] == list(np.ravel(exact))
        return
    p = profile(kernel, n, method=name, dps=25 if name == "arb" else None)
    assert p.method == name
    got = p.normalized()
    assert got.shape == ref.shape
    if name == "exact":
        assert got.tolist() == ref.tolist()
    elif name == "fft" or (name == "float" and any(w < 0 for w in kernel.flat)):
        assert np.max(np.abs(got - ref)) <= p.abs_error_bound
    elif name == "float":
        normal = ref >= TINY
        rel = np.abs(got[normal] - ref[normal]) / ref[normal]
        assert rel.max(initial=0.0) <= FLOAT_RTOL
        assert np.all(got[ref == 0] == 0)
    elif name == "arb":
        balls = p.balls()
        flat = [b for row in balls for b in row] if kernel.ndim == 2 else balls
        exact = np.ravel(np.array(profile(kernel, n, method="exact").coefficients, dtype=object))
        total = kernel.total**n
        peak = float(np.max(np.abs(ref)))
        old = flint.ctx.prec
        flint.ctx.prec = 400  # the exact ratio enters as a much narrower ball
        try:
            for b, c in zip(flat, exact, strict=True):
                value = Fraction(c) / Fraction(total)
                assert b.contains(flint.fmpq(value.numerator, value.denominator))
                assert float(b.rad()) <= 10.0**-20 * max(abs(float(value)), peak)
        finally:
            flint.ctx.prec = old
    # Moments and measures are the same for every engine.
    pe = profile(kernel, n, method="exact")
    if sum(kernel.flat) != 0:
        assert p.mean == pe.mean and p.variance == pe.variance


weights = st.lists(st.integers(0, 9), min_size=1, max_size=7).filter(lambda w: sum(w) > 0)
signed = st.lists(st.integers(-4, 9), min_size=2, max_size=5).filter(lambda w: sum(w) > 0)


@pytest.mark.parametrize("name", sorted(ENGINES))
@settings(max_examples=30, deadline=None)
@given(w=weights, n=st.integers(0, 40))
def test_engine_matches_exact_1d(name, w, n):
    if name == "symbolic" and n > 8:
        n = n % 8
    _check_engine(name, Kernel(w), n)


@pytest.mark.parametrize("name", ["fft", "float", "arb"])
@settings(max_examples=20, deadline=None)
@given(w=signed, n=st.integers(1, 25))
def test_engine_with_negative_weights(name, w, n):
    _check_engine(name, Kernel(w), n)


@pytest.mark.parametrize("name", ["exact", "fft", "float", "arb"])
@settings(max_examples=10, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 9), min_size=3, max_size=3), min_size=2, max_size=3),
    n=st.integers(1, 12),
)
def test_engine_matches_exact_2d(name, rows, n):
    _check_engine(name, Kernel(rows), n)


# ---------------------------------------------------------------- the accuracy goal
GOAL_CASES = [
    ([1, 1, 1], 20_000),
    ([1] * 11, 2_000),
    ([1] * 101, 150),
    ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], 1_500),
    ([1, 0, 0, 7, 2], 900),
    ([[1, 2, 1], [2, 5, 2], [1, 2, 2]], 60),
]


@pytest.mark.parametrize(("w", "n"), GOAL_CASES)
def test_float_engine_relative_accuracy_goal(w, n):
    """Every normal-range value within 1e-10 relative (full sizes: benchmarks/)."""
    k = Kernel(
        [float(x) for x in w] if isinstance(w[0], int) else [[float(x) for x in r] for r in w]
    )
    got = profile(k, n, method="float").normalized()
    ref = _exact_normalized(Kernel(w), n)
    normal = ref >= TINY
    rel = np.abs(got[normal] - ref[normal]) / ref[normal]
    assert rel.max() <= FLOAT_RTOL
    assert np.all(got[ref == 0] == 0)


REFERENCE_RTOL = 1e-30  # cauchy_coefficient at its default 40 digits (measured: about 1e-36)


@pytest.mark.parametrize(
    ("w", "n"),
    [([1, 1, 1], 10_000), ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], 1_500), ([0, 1, 0, 3, 0, 2, 0], 300)],
)
def test_cauchy_reference_matches_exact(w, n):
    """The reference itself, against exact integers: centre, both ends of the normal range,
    just outside them, and the extreme indices (values far below float64's range)."""
    p = profile(Kernel(w), n, method="exact")
    ref = p.normalized()
    idx = np.nonzero(ref >= TINY)[0]
    last = len(ref) - 1
    points = {int(np.argmax(ref)), int(idx[0]), int(idx[-1]), int(idx[0]) - 1, 0, 1, last, 2}
    with mpmath.workdps(50):
        scale = mpmath.mpf(sum(w)) ** n
        for t in sorted(points):
            exact = mpmath.mpf(p.coefficient(t)) / scale
            got = cauchy_coefficient(w, n, t)
            assert abs(got - exact) <= REFERENCE_RTOL * exact, (t, got, exact)


BEYOND_EXACT_CASES = [
    ([1.0] * 11, 100_000),
    ([float(x) for x in np.random.default_rng(6).uniform(0.05, 1.0, 101)], 100_000),
]


@pytest.mark.parametrize(("w", "n"), BEYOND_EXACT_CASES, ids=["uniform-11", "random-101"])
def test_float_engine_against_cauchy_reference(w, n):
    """The goal's 1e-10 (FLOAT_RTOL) at a size where the exact engine is not cheap.

    Points: the centre, the outermost normal values on each side (the hardest: largest
    tilt) and the indices just outside them. Every point whose true value is a normal
    float64 must be within FLOAT_RTOL; the outermost ones must be normal (so the tails
    are really tested) and the ones just outside not (so the engine drops none).
    """
    got = profile(Kernel(w), n, method="float").normalized()
    certified = profile(Kernel(w), n, method="arb", dps=30)  # Profile.ball: Cauchy integral
    idx = np.nonzero(got >= TINY)[0]
    lo, hi = int(idx[0]), int(idx[-1])
    old = flint.ctx.prec
    flint.ctx.prec = 300
    try:
        for t in (int(np.argmax(got)), lo, hi, lo - 1, hi + 1):
            ref = cauchy_coefficient(w, n, t)
            ball = certified.ball(t)
            # Two independent quadratures (mpmath tanh-sinh; arb's certified Gauss-Legendre).
            with mpmath.workdps(40):
                assert abs(mpmath.mpf(ball.mid().str(35, radius=False)) - ref) <= 1e-25 * ref
            if t in (lo - 1, hi + 1):
                assert ref < TINY and ball < TINY, t
                continue
            assert ref >= TINY and ball > TINY, t
            assert abs(got[t] - ref) <= FLOAT_RTOL * ref, (t, got[t], ref)
            assert abs(flint.arb(float(got[t])) - ball) / ball < FLOAT_RTOL  # certified
    finally:
        flint.ctx.prec = old


def test_float_engine_long_windows_regression():
    """k = 101, n = 10**6: the case where 4-sigma windows gave 7.7e-10 (window edges).

    The random kernel of benchmarks/run.py; t = 51410104 was the worst point, 51184355 and
    51417974 the ends of the range where the old layout disagreed with another one.
    """
    rng = np.random.default_rng(6)
    w = [rng.uniform(0.05, 1.0, k) for k in (3, 11, 101)][2].tolist()
    with erftheory.memory_limit("6GiB"):
        got = profile(Kernel(w), 10**6, method="float").normalized()
    for t in (51410104, 51184355, 51417974):
        ref = cauchy_coefficient(w, 10**6, t)
        assert abs(got[t] - ref) <= FLOAT_RTOL * ref, (t, got[t], ref)


def _random_square(k: int) -> list[list[int]]:
    return np.random.default_rng(7).integers(1, 10, (k, k)).tolist()


GOAL_CASES_2D = [
    (_random_square(15), 6),
    (_random_square(15), 20),
    (_random_square(9), 50),
    (_random_square(5), 120),
    ([[1, 0, 2], [0, 3, 0], [2, 0, 1]], 41),  # a lattice: zeros at odd i + j, |U| = 1 at (π, π)
    ([[9, 1, 9], [1, 1, 1], [9, 1, 9]], 50),  # near-periodic: |U| close to 1 away from 0
    ([[5, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 2]], 30),
]


@pytest.mark.parametrize(
    ("w", "n"), GOAL_CASES_2D, ids=[f"{len(w)}x{len(w[0])}-n{n}" for w, n in GOAL_CASES_2D]
)
def test_float_engine_2d_relative_accuracy_goal(w, n):
    """Non-separable 2-D tilting up to 15×15, every normal value within FLOAT_RTOL, zeros 0."""
    got = profile(Kernel(np.array(w, dtype=float)), n, method="float").normalized()
    ref = _exact_normalized(Kernel(w), n)
    normal = ref >= TINY
    assert (np.abs(got[normal] - ref[normal]) / ref[normal]).max() <= FLOAT_RTOL
    assert np.all(got[ref == 0] == 0)


def test_float_engine_2d_cheap_frequencies_change_nothing(monkeypatch):
    """2-D windows raise the kernel's transform to the n-th power as it is at most
    frequencies and sum the rest directly;
    summing every frequency directly (tolerance 0, the slow route) agrees to 1e-13."""
    import erftheory._float as fl

    w = np.array(_random_square(5), dtype=float)
    fast = profile(Kernel(w), 60, method="float").normalized()
    monkeypatch.setattr(fl, "SPECTRUM_TOLERANCE", 0.0)
    slow = profile(Kernel(w), 60, method="float").normalized()
    normal = slow >= TINY
    assert np.all(fast[~normal] == slow[~normal])
    assert (np.abs(fast[normal] - slow[normal]) / slow[normal]).max() <= 1e-13


def test_fft_tails_are_noise_but_within_bound():
    p = profile(Kernel([1.0, 1.0, 1.0]), 3000, method="fft")
    ref = _exact_normalized(Kernel([1, 1, 1]), 3000)
    got = p.normalized()
    assert np.max(np.abs(got - ref)) <= p.abs_error_bound
    tail = (ref > TINY) & (ref < 1e-20)
    assert np.any(np.abs(got[tail] - ref[tail]) > 0.01 * ref[tail])  # why 'float' exists


def test_log_normalized_float_matches_exact_everywhere():
    n = 5000
    lf = profile(Kernel([1.0, 2.0, 1.0]), n, method="float").log_normalized()
    le = profile(Kernel([1, 2, 1]), n, method="exact").log_normalized()
    assert np.max(np.abs(lf - le)) <= 1e-9  # absolute in log: relative 1e-9 on values
    assert le[0] == pytest.approx(-n * math.log(4), rel=1e-15)  # far below float64's range


def test_log_normalized_exact_separable_and_2d():
    for k in (Kernel([[1, 2], [2, 4]]), Kernel([[1, 2], [3, 1]])):
        lg = profile(k, 5).log_normalized()
        with np.errstate(divide="ignore"):
            assert np.allclose(lg, np.log(profile(k, 5).normalized()), rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------- exact engine internals
@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 16), n=st.integers(0, 80))
def test_uniform_half_matches_flint_power(k, n):
    """The three-term recurrence (gmpy2) against flint's power, every coefficient."""
    from erftheory._exact import uniform_half

    ref = (flint.fmpz_poly([1] * k) ** n).coeffs() if n else [1]
    half = uniform_half(k, n)
    assert len(half) == n * (k - 1) // 2 + 1
    assert [int(c) for c in half] == [int(c) for c in ref[: len(half)]]


def test_uniform_recurrence_is_chosen_by_the_measured_threshold():
    from erftheory._exact import use_uniform_recurrence

    assert use_uniform_recurrence([1] * 7, 300) and not use_uniform_recurrence([1] * 7, 100)
    assert use_uniform_recurrence([2] * 11, 60) and not use_uniform_recurrence([1] * 3, 10**5)
    assert not use_uniform_recurrence([1, 1, 1, 2], 10**4)  # not uniform
    assert "three-term" in profile(Kernel([1] * 7), 300).engine_reason
    assert "three-term" not in profile(Kernel([1] * 7), 100).engine_reason


def test_uniform_recurrence_and_closed_form_match_flint():
    for k in (4, 7, 11):
        for n in (1, 2, 9, 40, 400):
            ref = flint.fmpz_poly([1] * k) ** n
            p = profile(Kernel([3] * k), n)
            assert ("three-term" in p.engine_reason) == (n * (k - 1) ** 3 >= 50_000)
            for t in (0, 1, n, n * (k - 1) // 2, n * (k - 1)):
                assert p.coefficient(t) == 3**n * int(ref[t])  # closed form (nothing computed)
            assert p.compute().coefficients == [3**n * int(c) for c in ref.coeffs()]


def test_nonseparable_2d_route_is_reported_and_lazy():
    p = profile(Kernel([[1, 2, 0], [0, 1, 3]]), 7)  # n < 2 k1 k2 = 12
    assert p.coefficient(3, 5) == p.coefficients[3][5]
    assert "Kronecker" in p.engine_reason
    q = profile(Kernel([[1, 2, 0], [0, 1, 3]]), 12)
    assert q.coefficient(3, 5) == q.coefficients[3][5]
    assert "fmpz_mpoly" in q.engine_reason


# ---------------------------------------------------------------- selection and errors
def test_auto_choice_and_reason():
    assert profile([1, 2, 1], 5).method == "exact"
    assert profile([1.0, 2.0, 1.0], 5).method == "float"
    p = profile([1.0, -0.5, 1.0], 5)
    assert p.method == "fft" and "negative" in p.engine_reason
    assert profile([[1.0, 2.0], [3.0, 1.0]], 5).method == "float"
    assert profile([[1.0, 0.0], [0.0, 1.0]], 5).method == "fft"  # corners not all positive


def test_bad_method_and_dps():
    with pytest.raises(ERFValueError, match="method must be one of auto, exact, fft, float, arb"):
        profile([1, 1], 2, method="quad")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ERFValueError, match="dps must be a positive integer"):
            profile([1, 1], 2, method="arb", dps=bad)
    with pytest.raises(ERFValueError, match="only used by method='arb'"):
        profile([1, 1], 2, method="float", dps=30)
    import sympy

    with pytest.raises(ERFTypeError, match="cannot take a symbolic kernel"):
        profile([sympy.Symbol("a"), 1], 2, method="fft")
    with pytest.raises(ERFValueError, match="balls"):
        profile([1, 1], 2).balls()
    with pytest.raises(ERFValueError, match="nonnegative"):
        profile([1, -1, 3], 2).log_normalized()


def test_float_engine_guard_and_zero_sum():
    with pytest.raises(erftheory.SizeLimitError, match="fewer layers"):
        profile([1.0, 1.0], 10**12, method="float").normalized()
    with pytest.raises(ERFValueError, match="sum to zero"):
        profile([1.0, -1.0], 3, method="fft").normalized()


def test_arb_dps_controls_radius():
    lo = profile([1, 2, 1], 200, method="arb", dps=15).balls()
    hi = profile([1, 2, 1], 200, method="arb", dps=60).balls()
    assert float(hi[100].rad()) < 1e-40 * float(lo[100].rad()) + 1e-70


# ---------------------------------------------------------------- arb: one coefficient
def _exact_ratio(w: list, n: int, t: int) -> flint.fmpq:
    c = profile(Kernel(w), n).coefficient(t)
    total = Fraction(sum(Fraction(x) for x in w)) ** n
    value = Fraction(c) / total
    return flint.fmpq(value.numerator, value.denominator)


def _assert_ball(b, value: flint.fmpq, dps: int) -> None:
    """``b`` contains the exact value and is narrow: radius <= 10**-(dps-5) relative."""
    old = flint.ctx.prec
    flint.ctx.prec = 4 * dps + 200  # the exact value enters as a much narrower ball
    try:
        assert b.contains(value), (b, value)
        if value == 0:
            assert b == 0
        else:
            assert b.rad() <= flint.arb(10) ** (5 - dps) * abs(flint.arb(value))
    finally:
        flint.ctx.prec = old


@settings(max_examples=60, deadline=None)
@given(
    w=st.lists(st.integers(0, 9), min_size=1, max_size=7).filter(lambda w: sum(w) > 0),
    n=st.integers(0, 120),
    frac=st.floats(0, 1),
)
def test_cauchy_ball_contains_the_exact_value(w, n, frac):
    """Certified quadrature against the exact engine: zeros, gcd-periodic and
    near-periodic kernels, tails and both ends included."""
    from erftheory._arb import cauchy_ball

    t = round(frac * n * (len(w) - 1))
    _assert_ball(cauchy_ball(w, n, t, 30), _exact_ratio(w, n, t), 30)


def _sumset(support: list[int], n: int) -> set[int]:
    """$nA$ by brute force: every sum of n elements of A."""
    sums = {0}
    for _ in range(n):
        sums = {s + a for s in sums for a in support}
    return sums


@settings(max_examples=150, deadline=None)
@given(
    inner=st.lists(st.sampled_from([0, 0, 1, 3]), min_size=0, max_size=9),
    n=st.integers(0, 40),
)
def test_in_power_support_is_the_n_fold_sumset(inner, n):
    """The support of $U^n$ (shortest paths on residues plus a small DP) against brute force."""
    from erftheory._exact import in_power_support, reduce_support

    _, _, core = reduce_support([2, *inner, 1])
    support = [m for m, w in enumerate(core) if w]
    truth = _sumset(support, n)
    last = n * (len(core) - 1)
    assert [t for t in range(-2, last + 3) if in_power_support(core, n, t)] == sorted(truth)


def test_in_power_support_is_conservative_past_its_work_bound(monkeypatch):
    """Past SUPPORT_WORK steps the answer is True ("possibly non-zero"), never a wrong 0."""
    import erftheory._exact as ex

    assert not ex.in_power_support([1, 0, 1, 1], 5, 1)
    monkeypatch.setattr(ex, "SUPPORT_WORK", 2)
    assert ex.in_power_support([1, 0, 1, 1], 5, 1)


def test_cauchy_ball_is_exactly_zero_in_support_gaps():
    """$A = \\{0, 2, 3\\}$ never reaches $t = 1$: the ball is the exact 0, not a narrow ball
    around it, at every depth (n = 1 is the regression from a CI run)."""
    from erftheory._arb import cauchy_ball
    from erftheory._exact import in_power_support

    assert cauchy_ball([1, 0, 1, 1], 1, 1, 30) == 0
    assert cauchy_ball([1, 0, 1, 1], 10**5, 1, 30) == 0
    assert cauchy_ball([0, 1, 0, 0, 1, 1], 7, 8, 30) == 0  # z^7 (1 + z^3 + z^4)^7 at t = 7 + 1
    assert cauchy_ball([1, 0, 1, 1], 10**5, 2, 30) > 0
    # A = {0, 1, 6}: 4A has the top gap 20..23 (23 = 6 + 6 + 6 + 5 ones needs 8 parts).
    assert [t for t in range(18, 25) if in_power_support([1, 1, 0, 0, 0, 0, 1], 4, t)] == [
        18,
        19,
        24,
    ]


def test_cauchy_ball_float_weights_and_far_tails():
    from erftheory._arb import cauchy_ball

    w = [0.25, 0.5, 0.125]  # exact dyadic floats
    for n, t in [(300, 1), (300, 5), (300, 299), (300, 598), (2000, 1000), (2000, 3999)]:
        exact = [Fraction(x) for x in w]
        _assert_ball(cauchy_ball(w, n, t, 40), _exact_ratio(exact, n, t), 40)
    # A kernel whose |V(r e^{iθ})| has a second maximum near θ = π: that part of the
    # circle is integrated, not bounded away.
    _assert_ball(cauchy_ball([5, 1, 1, 3], 200, 123, 30), _exact_ratio([5, 1, 1, 3], 200, 123), 30)
    _assert_ball(cauchy_ball([9, 1, 9], 400, 399, 30), _exact_ratio([9, 1, 9], 400, 399), 30)


def test_profile_ball_routes():
    n = 10**4  # length 20 001 = CAUCHY_MIN_LENGTH: the Cauchy integral, nothing else built
    p = profile(Kernel([1, 1, 1]), n, method="arb", dps=30)
    for t in (0, 17, n - 1, n, 2 * n):
        _assert_ball(p.ball(t), _exact_ratio([1, 1, 1], n, t), 30)
    assert p._result._balls is None
    small = profile(Kernel([1, 2, 1]), 40, method="arb", dps=30)  # read from balls()
    assert small.ball(7) is small.balls()[7]
    two = profile(Kernel([[1, 2], [3, 4]]), 5, method="arb", dps=20)
    assert two.ball(2, 3) is two.balls()[2][3]
    signed = profile(Kernel([2, -1, 2]), n, method="arb", dps=20)  # not nonnegative: balls
    _assert_ball(signed.ball(n), _exact_ratio([2, -1, 2], n, n), 20)
    assert signed._result._balls is not None
    with pytest.raises(ERFValueError, match="needs method='arb'"):
        profile([1, 1], 3).ball(1)
    with pytest.raises(ERFValueError, match="outside the profile's shape"):
        p.ball(2 * n + 1)
    with pytest.raises(ERFValueError, match="index"):
        two.ball(1)


def test_float_engine_does_not_depend_on_the_global_arb_precision():
    """The scalar n log(V(e^s)/V(1)) - s c cancels to digits well below its terms; it must
    be formed at the engine's own precision, not at whatever ``flint.ctx.prec`` is (the
    default 53 bits cost up to 1.6e-11 relative at k = 101, n = 10^6 before this was fixed)."""
    rng = np.random.default_rng(3)
    for w, n in (([1.0] * 11, 10**5), (list(rng.uniform(0.05, 1.0, 7)), 3 * 10**4)):
        old = flint.ctx.prec
        try:
            flint.ctx.prec = 53
            low = profile(Kernel(w), n, method="float").normalized()
            flint.ctx.prec = 400
            high = profile(Kernel(w), n, method="float").normalized()
        finally:
            flint.ctx.prec = old
        assert np.array_equal(low, high)
    two = Kernel([[1.0, 2.0, 1.0], [2.0, 5.0, 1.0]])  # non-separable 2-D tilting
    old = flint.ctx.prec
    try:
        flint.ctx.prec = 53
        low = profile(two, 300, method="float").normalized()
        flint.ctx.prec = 400
        high = profile(two, 300, method="float").normalized()
    finally:
        flint.ctx.prec = old
    assert np.array_equal(low, high)


# ---------------------------------------------------------------- reliability
def _saddle_point_value(w: list[int], n: int, t: int) -> mpmath.mpf:
    """Daniels' saddle-point approximation of [z^t] V^n / V(1)^n, relative error O(1/n):
    an independent check of certified balls at depths no exact route reaches."""
    mpmath.mp.dps = 50
    ws = [mpmath.mpf(x) for x in w]

    def logv(s):
        return mpmath.log(sum(x * mpmath.e ** (s * m) for m, x in enumerate(ws)))

    s = mpmath.findroot(lambda s: mpmath.diff(logv, s) - mpmath.mpf(t) / n, 0)
    k2 = mpmath.diff(logv, s, 2)
    log_value = n * (logv(s) - mpmath.log(sum(ws))) - s * t
    return mpmath.e**log_value / mpmath.sqrt(2 * mpmath.pi * n * k2)


@pytest.mark.parametrize("n", [10**9, 10**12, 10**15])
def test_ball_at_extreme_depth_is_tight(n):
    """n = 10^15 used to return [+/- 10^3470313691]; now a narrow certified ball."""
    p = profile(Kernel([1, 1, 1]), n, method="arb", dps=30)
    for t in (n, n // 3, 7 * n // 4):
        b = p.ball(t)
        assert b.rad() <= flint.arb(10) ** -35 * abs(b.mid())
        approx = _saddle_point_value([1, 1, 1], n, t)
        assert abs(mpmath.mpf(b.mid().str(40, radius=False)) / approx - 1) < 10 / n


def test_cauchy_ball_refuses_a_wide_certificate(monkeypatch):
    """A certificate wider than the requested precision is an error, never returned."""
    import erftheory._arb as arb_mod

    monkeypatch.setattr(arb_mod, "_tail", lambda *args: flint.arb(0, 1e-3))
    with pytest.raises(ERFValueError, match="certificate failed at this size"):
        arb_mod.cauchy_ball([1, 1, 1], 10**5, 10**5 // 3, 30)


def test_certified_balls_cost_is_checked_first():
    with erftheory.memory_limit("64MiB"):  # work limit 2 GiB: about a second
        with pytest.raises(erftheory.SizeLimitError, match="certified ball at dps=2000"):
            profile(Kernel([1, 1, 1]), 10**4, method="arb", dps=2000).ball(5)
        with pytest.raises(erftheory.SizeLimitError, match="the arb power"):
            profile(Kernel([2, -1, 2]), 10**4, method="arb", dps=200).ball(5)


def test_fft_refuses_what_float64_cannot_hold():
    # Mixed signs: the error bound grows like (sum|w| / |sum w|)^n = 1999^2000.
    with pytest.raises(ERFValueError, match="plain FFT cannot represent"):
        profile(Kernel([1.0, -0.999]), 2000, method="fft").normalized()
    with pytest.raises(ERFValueError, match="beyond float64"):
        profile(Kernel([1, -2]), 10_000).normalized()  # |c_t / (-1)^n| up to 2^10000


def test_float_log_refuses_weights_float64_cannot_hold():
    with pytest.raises(ERFValueError, match="within float64's range"):
        profile(Kernel(["1e-400", "1"]), 10, method="float").log_normalized()
    exact = profile(Kernel(["1e-400", "1"]), 10).log_normalized()
    assert exact[0] == pytest.approx(-10 * 400 * math.log(10), rel=1e-15)  # not -inf


def test_engines_are_deterministic():
    """No engine draws random numbers: the same call gives the same bits."""
    rng_free = [
        profile(Kernel([0.3, 1.0, 0.2]), 3000, method=m).normalized() for m in ("float", "fft")
    ]
    again = [
        profile(Kernel([0.3, 1.0, 0.2]), 3000, method=m).normalized() for m in ("float", "fft")
    ]
    assert all(np.array_equal(a, b) for a, b in zip(rng_free, again, strict=True))
    b1 = profile(Kernel([1, 2, 3]), 10**6, method="arb").ball(10**6)
    b2 = profile(Kernel([1, 2, 3]), 10**6, method="arb").ball(10**6)
    assert b1.mid() == b2.mid() and b1.rad() == b2.rad()
