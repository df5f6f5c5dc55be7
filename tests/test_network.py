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
