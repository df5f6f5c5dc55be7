"""The layer algebra of `erftheory.network`, checked against independent routes.

- A direct forward pass written from the layers' definitions (lists of Fractions, or
  sympy symbols for random weights), whose response to each unit impulse is the ERF.
- `erftheory.profile` for stacks of one kernel (Eq. 9).
- The closed-form variance of a plain stack: $\\sum_l J_{l-1}^2 d_l^2\\,\\mathrm{Var}_l$.
- Exact expectations over random weights (sympy), for ``kind="expected_square"``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erftheory import (
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    ERFTypeError,
    ERFValueError,
    Identity,
    Kernel,
    LeakyReLU,
    MaxPool,
    Network,
    Parallel,
    ReLU,
    Residual,
    SizeLimitError,
    memory_limit,
    profile,
)
from erftheory.layers import Layer, _Scalar, _Spatial


# ----------------------------------------------------------------- direct forward pass
def _pads(layer: _Spatial) -> tuple[int, int]:
    left = layer.padding(1)[0]
    if layer._padding == "same":
        return left, layer.extent(1)[0] - 1 - left
    return left, left


def forward(layers: Any, x: list[Any], weights: dict[int, list[Any]] | None = None) -> list[Any]:
    """The 1-D forward pass of single-channel linear layers, from their definitions."""
    for layer in layers:
        if isinstance(layer, _Spatial):
            lo, hi = _pads(layer)
            xp = [0] * lo + list(x) + [0] * hi
            s, d, k = layer.stride(1)[0], layer.dilation(1)[0], layer.size(1)[0]
            w = list(layer.kernel("gradient", 1).flat)
            if weights is not None and id(layer) in weights:
                w = weights[id(layer)]
            n_out = (len(xp) - (d * (k - 1) + 1)) // s + 1
            x = [sum(w[m] * xp[s * i + d * m] for m in range(k)) for i in range(n_out)]
        elif isinstance(layer, _Scalar):
            f = layer.factor("gradient")
            x = [f * v for v in x]
        elif isinstance(layer, Residual | Parallel):
            outs = [forward(b, x, weights) for b in layer.branches]
            assert len({len(o) for o in outs}) == 1
            x = [sum(vals) for vals in zip(*outs, strict=True)]
        else:
            raise AssertionError(layer)
    return x


def brute_erf(net: Network, weights: dict[int, list[Any]] | None = None) -> list[Any]:
    """Response of the centre output unit to each input impulse, over its RF."""
    n = net.min_input_size()
    c = net.centre_output(n)
    rf = net.receptive_field
    start = rf.offset + rf.jump * c
    out = []
    for t in range(n):
        e = [0] * n
        e[t] = 1
        out.append(forward(net.layers, e, weights)[c])
    assert all(v == 0 for i, v in enumerate(out) if not start <= i < start + rf.size)
    return out[start : start + rf.size]


# ----------------------------------------------------------------- strategies
small_int_kernels = st.lists(st.integers(-2, 3), min_size=1, max_size=4).filter(any)


@st.composite
def conv_layers(draw: Any, top: bool) -> Layer:
    w = draw(small_int_kernels)
    stride = draw(st.sampled_from([1, 1, 2]))
    dil = draw(st.sampled_from([1, 1, 2, 3]))
    # Inside blocks only 'same' padding keeps the branches' output lengths equal.
    pad = draw(st.sampled_from(["same", "valid", 0, 1, 2] if top else ["same"]))
    return Conv(Kernel(w), stride=stride, dilation=dil, padding=pad)


@st.composite
def layers_1d(draw: Any, depth: int = 2) -> Layer:
    top = depth == 2
    choice = draw(st.integers(0, 9 if depth > 0 else 6))
    if choice <= 3 or (choice == 4 and not top):
        return draw(conv_layers(top))
    if choice == 4:
        return AvgPool(draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)))
    if choice == 5:
        return BatchNorm(draw(st.sampled_from([1, 2, Fraction(1, 3), -1])))
    if choice == 6:
        return Identity()
    body = draw(st.lists(layers_1d(depth - 1), min_size=1, max_size=3))
    stride = math.prod(_stride(x) for x in body)
    if choice <= 8:
        shortcut = None if stride == 1 else [Conv(1, stride=stride, padding=0)]
        return Residual(*body, shortcut=shortcut)
    other = [Conv(Kernel(draw(small_int_kernels)), stride=stride)]
    return Parallel(body, other)


def _stride(layer: Layer) -> int:
    if isinstance(layer, _Spatial):
        return layer.stride(1)[0]
    if isinstance(layer, Residual | Parallel):
        return math.prod(_stride(x) for x in layer.branches[-1])
    return 1


networks_1d = st.lists(layers_1d(), min_size=1, max_size=5).map(Network)


# ----------------------------------------------------------------- gradient kind
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks_1d)
def test_profile_equals_direct_forward_pass(net: Network) -> None:
    assert net.transfer().flat == tuple(brute_erf(net))


@settings(max_examples=60, deadline=None)
@given(networks_1d)
def test_moments_without_expansion_equal_those_of_the_profile(net: Network) -> None:
    total, mean, var = net.moments()
    coeffs = net.transfer().flat
    assert total == sum(coeffs)
    if total != 0:
        p = net.profile()
        assert (mean, var) == (p.mean, p.variance)
        rows = net.table()
        assert rows[-1].rf_size == net.receptive_field.size == len(coeffs)


def test_stack_of_one_kernel_is_eq9() -> None:
    for w in ([1, 1, 1], [1, 2, 1], [3, 0, 1, 2], ["1/2", "1/3"]):
        k = Kernel(w)
        net = Network([Conv(k)] * 6)
        p, q = net.profile(), profile(k, 6)
        assert p.coefficients == q.coefficients
        assert p.variance == q.variance
        if k.size % 2:
            assert p.origin == q.origin and p.mean == q.mean


def test_2d_stacks_match_profile_and_outer_products() -> None:
    k = Kernel([[1, 2, 0], [0, 1, 1], [1, 0, 3]])  # not separable
    assert Network([Conv(k)] * 3).profile().coefficients == profile(k, 3).coefficients
    net2 = Network(
        [Conv((3, 2), stride=(2, 1), dilation=(1, 3)), Conv(Kernel([[1, 2], [3, 6]]))]
    )  # [1,3] x [1,2]
    rows = Network([Conv(3, stride=2), Conv(Kernel([1, 3]))]).transfer().flat
    cols = Network([Conv(2, dilation=3), Conv(Kernel([1, 2]))]).transfer().flat
    grid = net2.transfer().weights
    assert [list(r) for r in grid] == [[a * b for b in cols] for a in rows]
    assert net2.receptive_field.size == (len(rows), len(cols))


def test_variance_of_a_plain_stack_has_the_closed_form() -> None:
    """Var = sum_l J_{l-1}^2 d_l^2 Var_l: strides scale the layers above, dilations their taps."""
    specs = [
        ([1, 2, 1], 1, 1),
        ([1, 1, 1], 2, 1),
        ([1, 3], 1, 2),
        ([2, 1, 1, 1], 3, 3),
        ([1, 1], 1, 1),
    ]
    net = Network([Conv(Kernel(w), stride=s, dilation=d) for w, s, d in specs])
    expected, jump = Fraction(0), 1
    for w, s, d in specs:
        expected += jump**2 * d**2 * Kernel(w).moments()[1]
        jump *= s
    assert net.moments()[2] == expected == net.profile().variance
    assert net.receptive_field.jump == 6


def test_section_25_subsampling_and_dilation_widen_the_erf() -> None:
    dense = Network([Conv(3)] * 15)
    strided = Network([Conv(3)] * 12 + [Conv(3, stride=2)] * 3)
    dilated = Network([Conv(3)] * 12 + [Conv(3, dilation=d) for d in (2, 4, 8)])
    s = [n.std() for n in (dense, strided, dilated)]
    assert s[0] < s[1] and s[0] < s[2]
    assert dense.moments()[2] == 15 * Fraction(2, 3)
    assert dilated.moments()[2] == Fraction(2, 3) * (12 + 4 + 16 + 64)


def test_residual_blocks_shrink_the_erf_relative_to_the_rf() -> None:
    plain = Network([Conv(3)] * 8)
    res = Network([Residual(Conv(3), Conv(3))] * 4)
    assert plain.receptive_field == res.receptive_field
    assert res.std() < plain.std()


def test_receptive_field_offset_and_centre() -> None:
    net = Network([Conv(7, stride=2, padding=3), MaxPool(3, stride=2, padding=1), Conv(3)])
    rf = net.receptive_field
    assert (rf.size, rf.jump, rf.offset) == (7 + 2 * 2 + 4 * 2, 4, -3 - 2 * 1 - 4 * 1)
    assert rf.center == 0.0
    valid = Network([Conv(3, padding="valid")] * 2)
    assert valid.receptive_field.offset == 0 and valid.receptive_field.center == 2.0


def test_activation_dropout_and_batchnorm_factors() -> None:
    base = Network([Conv(3), Conv(3)])
    net = Network([Conv(3), ReLU(), Dropout(0.25), BatchNorm(3), Conv(3)])
    g = [Fraction(c) for c in base.transfer().flat]
    assert list(net.transfer("gradient").flat) == [c * Fraction(1, 2) * 3 for c in g]
    sq = net.transfer("expected_square").flat
    assert list(sq) == [c * Fraction(1, 2) * Fraction(4, 3) * 9 for c in g]
    leaky = Network([Conv(3), LeakyReLU("1/10"), Conv(3)])
    assert leaky.moments("expected_square")[0] == 9 * Fraction(101, 200)  # sum of variances 3 * 3


# ----------------------------------------------------------------- expected_square kind
def expected_square_brute(net: Network) -> list[Any]:
    """E[g(t)^2] over independent zero-mean weights with the kernels' variances, exactly.

    The gradient is multilinear in each random layer's weights, so E[w(m) w(m')] =
    v(m) [m = m'] is all that is needed: expand g^2 with sympy and take expectations.
    """
    symbols: dict[int, list[Any]] = {}
    variances: dict[Any, Any] = {}

    def collect(layers: Any) -> None:
        for layer in layers:
            if isinstance(layer, Conv):
                names = sympy.symbols(f"w{len(symbols)}_0:{layer.size(1)[0]}")
                symbols[id(layer)] = list(names)
                for s, v in zip(names, layer.kernel("expected_square", 1).flat, strict=True):
                    variances[s] = sympy.Rational(str(Fraction(v)))
            elif isinstance(layer, Residual | Parallel):
                for b in layer.branches:
                    collect(b)

    collect(net.layers)
    out = []
    for g in brute_erf(net, symbols):
        poly = sympy.Poly(sympy.expand(g * g), *variances) if variances else None
        if poly is None:
            out.append(Fraction(str(sympy.nsimplify(g * g))))
            continue
        total = sympy.Integer(0)
        for monom, coeff in poly.terms():
            if all(e in (0, 2) for e in monom):
                term = coeff
                for s, e in zip(poly.gens, monom, strict=True):
                    if e == 2:
                        term *= variances[s]
                total += term
        out.append(Fraction(str(total)))
    return out


@pytest.mark.parametrize(
    "layers",
    [
        [Conv(Kernel([1, 2])), Conv(Kernel([3, 1, 1]), stride=2)],
        [Conv(2), AvgPool(2, stride=1), AvgPool(2, stride=1), Conv(Kernel([1, 2]))],
        [Conv(Kernel([1, 2, 1])), Residual(Conv(Kernel([2, 1]))), Conv(2)],
        [Residual(AvgPool(3, stride=1, padding=1), Conv(2)), Conv(Kernel([1, 3]))],
        [
            Parallel([AvgPool(3, stride=1, padding=1)], [], [Conv(Kernel([1, 1]))]),
            Conv(2, dilation=2),
        ],
        [Conv(2), BatchNorm(2), Residual(Identity(), AvgPool(3, stride=1, padding=1)), Conv(2)],
    ],
)
def test_expected_square_equals_exact_expectation(layers: list[Layer]) -> None:
    net = Network(layers)
    assert list(net.transfer("expected_square").flat) == expected_square_brute(net)
    total, _, var = net.moments("expected_square")
    assert total == sum(expected_square_brute(net))
    assert var == net.profile("expected_square").variance


def test_maxpool_expected_square_is_one_over_k_per_tap() -> None:
    net = Network([Conv(2), MaxPool(2), Conv(2)])
    # (1 + z) · ½(1 + z) · (1 + z²): one tap of the pool carries the whole gradient
    assert [str(c) for c in net.transfer("expected_square").flat] == ["1/2", "1", "1", "1", "1/2"]
    avg = Network([Conv(2), AvgPool(2), Conv(2)])  # (1 + z) · ¼(1 + z) · (1 + z²)
    assert [str(c) for c in avg.transfer("expected_square").flat] == [
        "1/4",
        "1/2",
        "1/2",
        "1/2",
        "1/4",
    ]


# ----------------------------------------------------------------- input sizes
def test_min_input_size_is_the_smallest_that_fits() -> None:
    nets = [
        Network([Conv(3, padding="valid")] * 3),
        Network([Conv(3, stride=2), Conv(5, dilation=2), AvgPool(2)]),
        Network([Residual(Conv(3), Conv(3, stride=2), shortcut=[Conv(1, stride=2, padding=0)])]),
    ]
    for net in nets:
        n = net.min_input_size()
        assert net.fits(n) and not net.fits(n - 1)
        assert n >= net.receptive_field.size


# ----------------------------------------------------------------- errors and limits
def test_bad_layers_and_networks_raise_clear_errors() -> None:
    with pytest.raises(ERFValueError, match="different grids"):
        Network([Residual(Conv(3, stride=2))])
    with pytest.raises(ERFValueError, match="mix 1-D and 2-D"):
        Network([Conv((3, 3)), Conv(Kernel([1, 1]))])
    with pytest.raises(ERFValueError, match="stride must be at least 1"):
        Conv(3, stride=0)
    with pytest.raises(ERFTypeError, match="stride must be an int"):
        Conv(3, stride=1.5)  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="padding must be"):
        Conv(3, padding="full")  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match=r"p must be in \[0, 1\)"):
        Dropout(1)
    with pytest.raises(ERFTypeError, match="list of layers"):
        Network(Conv(3))  # type: ignore[arg-type]
    with pytest.raises(ERFTypeError, match=r"must be a layer"):
        Network([Conv(3), "relu"])
    with pytest.raises(ERFValueError, match="variances, which cannot be negative"):
        Network([Conv(Kernel([1, -1]))]).profile(kind="expected_square")
    with pytest.raises(ERFValueError, match="kind must be"):
        Network([Conv(3)]).profile(kind="square")


def test_huge_network_is_refused_before_allocating() -> None:
    net = Network([Conv((9, 9), dilation=5)] * 400)
    with memory_limit(50 * 2**20), pytest.raises(SizeLimitError, match="transfer polynomial"):
        net.profile()
    assert net.std() == pytest.approx((math.sqrt(400 * 25 * 20 / 3),) * 2, rel=1e-15)


# ----------------------------------------------------------------- reliability
@st.composite
def nonneg_layers(draw: Any, depth: int = 1) -> Layer:
    choice = draw(st.integers(0, 8 if depth > 0 else 6))
    if choice <= 2:
        w = draw(st.lists(st.sampled_from([0, 1, 2, Fraction(1, 3)]), min_size=1, max_size=3))
        return Conv(Kernel(w if any(w) else [1]), stride=draw(st.sampled_from([1, 2])))
    if choice == 3:
        return AvgPool(draw(st.integers(1, 3)), stride=1, padding=0)
    if choice == 4:
        return MaxPool(draw(st.integers(1, 2)))
    if choice == 5:
        return draw(st.sampled_from([ReLU(), Dropout(Fraction(1, 3)), BatchNorm(-2), Identity()]))
    if choice == 6:
        return LeakyReLU(draw(st.sampled_from([Fraction(1, 10), -3])))
    body = draw(st.lists(nonneg_layers(depth - 1), min_size=1, max_size=2))
    return Residual(*body, shortcut=[Conv(1, stride=math.prod(_stride(x) for x in body))])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nonneg_layers(), min_size=1, max_size=4).map(Network))
def test_memory_bounds_hold_for_both_kinds(net: Network) -> None:
    # The guard's bounds come from the layers' sums alone; they must bound the truth.
    from erftheory.network import _Bound, _chain, _sq_bound

    for kind, (l1, den) in (
        ("gradient", _chain(net.layers, "gradient", _Bound(1)).rep),
        ("expected_square", _sq_bound(net.layers, 1)),
    ):
        coeffs = [Fraction(c) for c in net.transfer(kind).flat]
        assert sum(abs(c) for c in coeffs) <= 2**l1 * (1 + 1e-12), kind
        assert math.lcm(*(c.denominator for c in coeffs)) <= 2**den * (1 + 1e-12), kind


@pytest.mark.parametrize("size", [(1,), (5,), (7, 1), (3, 4), (6, 6)])
@pytest.mark.parametrize("dilation", [1, 3])
def test_closed_form_sums_equal_the_taps(size: tuple[int, ...], dilation: int) -> None:
    from erftheory.layers import KernelStats
    from erftheory.network import _Moments

    for layer in (Conv(size, dilation=dilation), AvgPool(size), MaxPool(size, stride=1)):
        nd = len(size)
        alg = _Moments(nd)
        built = alg.kernel(layer.kernel("gradient", nd), layer.dilation(nd))
        assert alg.spatial(layer, "gradient") == built
        assert alg.spatial(layer, "expected_square") == alg.kernel(
            layer.kernel("expected_square", nd), layer.dilation(nd)
        )
        uniform = layer.stats("gradient", nd)
        explicit = KernelStats.of(layer.kernel("gradient", nd))
        for attr in ("m0", "m1", "m2", "l1", "den"):
            assert getattr(uniform, attr) == getattr(explicit, attr), (layer, attr)


def test_explicit_kernel_sums_are_read_once() -> None:
    calls = [0]
    k = Kernel([[1, -2, Fraction(1, 3)], [4, 0, 6]])
    conv = Conv(k, dilation=(1, 2))
    original = type(k).flat

    class Counting(Kernel):
        @property
        def flat(self) -> Any:
            calls[0] += 1
            return original.fget(self)  # type: ignore[attr-defined]

    conv._kernel = Counting([[1, -2, Fraction(1, 3)], [4, 0, 6]])
    net = Network([conv, ReLU(), conv])
    net.moments()
    net.std()
    net.table()
    with memory_limit(1024), pytest.raises(SizeLimitError):
        net.profile()
    assert calls[0] == 1
    with pytest.raises(ERFValueError, match="variances, which cannot be negative"):
        net.moments("expected_square")


def test_std_of_huge_variances_is_a_float_or_inf() -> None:
    from erftheory.network import _sqrt, _std

    assert _sqrt(Fraction(10**400)) == pytest.approx(1e200)
    assert _sqrt(Fraction(10**1000)) == math.inf
    assert _std(Fraction(4, 10**5000), 1) == 0.0
    # Taps that almost cancel: the weights sum to 1e-400, the variance is 2e400.
    eps = Fraction(1, 10**400)
    net = Network([Conv(Kernel([1, -2 + eps, 1])), ReLU()])
    total, mean, var = net.moments()
    assert (total, mean, var) == (eps / 2, 0, 2 / eps)
    assert net.std() == pytest.approx(math.sqrt(2) * 1e200, rel=1e-12)
    assert net.table()[-1].std == net.std()


def test_degenerate_network_profiles_summarise_without_a_gaussian() -> None:
    for net in (Network([ReLU(), Dropout(Fraction(1, 4))]), Network([Conv(1), BatchNorm(3)])):
        for kind in ("gradient", "expected_square"):
            s = net.profile(kind).summary()
            assert s["gaussian"] is None and s["variance"] == "0" and s["std"] == 0.0
            assert s["rf_size"] == 1 and s["kind"] == kind


def test_moments_of_astronomical_fields_are_refused_not_attempted() -> None:
    from erftheory.network import MAX_RF_BITS

    ok = Network([Conv(3, stride=2**200), Conv(3)])
    assert ok.std() == pytest.approx(math.sqrt(2 / 3) * 2**200, rel=1e-12)
    bad = Network([Conv(3, stride=2**MAX_RF_BITS), Conv(3)])
    assert bad.receptive_field.size == 2 * 2**MAX_RF_BITS + 3  # closed form, exact
    with pytest.raises(ERFValueError, match=r"about 2\^257 pixels on axis 0.* 2\^256"):
        bad.moments()
    with pytest.raises(SizeLimitError) as info:
        bad.profile()
    assert info.value.estimate > info.value.limit
    assert Network([Conv(2**40)]).min_input_size() == 2**40  # the search starts at the RF
    # A search of ~2**40 sizes is refused after a bounded number of steps.
    calls = [0]
    import erftheory.network.geometry as network_module  # the input-size rule's module

    original = network_module._fits

    def counted(*args: Any) -> bool:
        calls[0] += 1
        return original(*args)

    network_module._fits = counted  # type: ignore[assignment]
    try:
        with pytest.raises(ERFValueError, match=r"trying more than 33333 sizes .* is refused"):
            Network([Conv(3, stride=2**40), Conv(3)]).min_input_size()
    finally:
        network_module._fits = original  # type: ignore[assignment]
    assert calls[0] == 33333
