"""The exact network ERF against PyTorch autograd (`erftheory.torch.to_torch`).

Routes that check `Network.transfer` / `Network.profile` / `Network.fits`:

1. linear networks with fixed integer kernels: one float64 backward pass from the centre
   output unit equals the exact coefficients at every input pixel and is exactly zero
   outside the RF (hand-written networks for every linear layer kind, then
   hypothesis-generated architectures);
2. the input size rule: `fits` against the gradient mass lost to padding;
3. ``kind="expected_square"`` exactly, by enumerating the signs of ±√v weights (an
   oracle independent of the algebra), with the known errors of the algebra as regression
   cases;
4. Monte Carlo over random weights, random inputs or dropout masks for the layers whose
   ERF is an expectation (random convolutions, MaxPool, activations, Dropout);
5. shapes and options of the torch model (`Network.output_size`, padding values,
   weight modes, channels, errors).

Input size rule: every exactness check runs at ``n = net.min_input_size()``, the
smallest input size at which the centre output unit's backward pass never reaches
padding (`Network.fits`), and at a larger size that fits; the RF of output unit ``c``
then starts at input pixel ``offset + jump * c`` and lies inside the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from erftheory import ERFTypeError, ERFValueError, Kernel, Network  # noqa: E402
from erftheory.layers import (  # noqa: E402
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Identity,
    Layer,
    LeakyReLU,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
)
from erftheory.torch import to_torch  # noqa: E402

F64 = torch.float64
# float64 tolerance relative to the peak |coefficient| (of the network with |weights|
# where cancellation could hide rounding): integer kernels are exact, 1/K pools round.
REL = 1e-12
# Monte Carlo acceptance: |sample mean - prediction| <= Z * standard error, per pixel,
# where the standard error is the sample standard deviation / sqrt(number of samples).
Z = 5.0


# --------------------------------------------------------------------------- helpers
def _axes(x: Any, ndim: int) -> tuple[int, ...]:
    return (x,) if ndim == 1 else tuple(x)


def rf_start(net: Network, n: Any) -> tuple[int, ...]:
    """First input pixel of the centre output unit's RF: ``offset + jump * c`` per axis."""
    nd = net.ndim
    rf = net.receptive_field
    c = _axes(net.centre_output(n), nd)
    return tuple(
        o + j * ci for o, j, ci in zip(_axes(rf.offset, nd), _axes(rf.jump, nd), c, strict=True)
    )


def exact_map(net: Network, n: Any, kind: str = "gradient") -> np.ndarray:
    """The exact ERF of the centre output unit placed on an input of size ``n``."""
    sizes = _axes(n, net.ndim)
    coeffs = np.array(net.transfer(kind).weights, dtype=object)
    values = np.vectorize(float, otypes=[float])(coeffs)
    start = rf_start(net, n)
    span = list(zip(start, values.shape, sizes, strict=True))
    assert all(s >= 0 for s, _, _ in span), "the RF starts in the padding"
    assert all(s + t <= m for s, t, m in span), "the RF leaves the input"
    out = np.zeros(sizes)
    out[tuple(slice(s, s + t) for s, t, _ in span)] = values
    return out


def rf_mask(net: Network, n: Any) -> np.ndarray:
    """True on the theoretical RF of the centre output unit."""
    size = _axes(net.receptive_field.size, net.ndim)
    mask = np.zeros(_axes(n, net.ndim), dtype=bool)
    mask[tuple(slice(s, s + t) for s, t in zip(rf_start(net, n), size, strict=True))] = True
    return mask


def backward(model: Any, x: Any, net: Network, n: Any) -> np.ndarray:
    """Input gradient of the centre output unit (channel 0 of every copy), per sample.

    Returns an array of shape ``(batch, copies * channels, *n)``; the copies never mix,
    so channel group ``g`` holds copy ``g``'s gradient.
    """
    x = x.detach().clone().requires_grad_(True)
    y = model(x)
    assert tuple(y.shape[2:]) == _axes(net.output_size(n), net.ndim)
    seed = torch.zeros_like(y)
    first = slice(None, None, model.channels)  # channel 0 of each copy
    seed[(slice(None), first, *_axes(net.centre_output(n), net.ndim))] = 1
    y.backward(seed)
    return x.grad.numpy()


def torch_gradient(net: Network, n: Any, channels: int = 1) -> np.ndarray:
    """Gradient of output unit (channel 0, centre) on a zero input, summed over channels."""
    model = to_torch(net, weights="kernel", channels=channels).eval()
    x = torch.zeros((1, channels, *_axes(n, net.ndim)), dtype=F64, requires_grad=True)
    y = model(x)
    y[(0, 0, *_axes(net.centre_output(n), net.ndim))].backward()
    return x.grad[0].sum(0).numpy()


def larger_fitting_size(net: Network, extra: int) -> Any:
    """The first size from ``min_input_size() + extra`` (every axis) on at which `fits` holds.

    `fits` is not monotone in the input size: with strides the centre output unit can
    move by a whole jump when the input grows by one pixel and its RF then leave the input.
    """
    start = _axes(net.min_input_size(), net.ndim)
    for step in range(extra, extra + 64):
        n = tuple(v + step for v in start)
        arg = n[0] if net.ndim == 1 else n
        if net.fits(arg):
            return arg
    raise AssertionError(f"no fitting size near {start} + {extra}")


def assert_exact(net: Network, abs_net: Network | None = None, extra: int = 5) -> None:
    """torch's gradient equals the exact profile at every pixel, at two input sizes."""
    tol_net = abs_net if abs_net is not None else net
    peak = max(abs(float(w)) for w in tol_net.transfer("gradient").flat)
    n0 = net.min_input_size()
    assert net.fits(n0)
    for n in (n0, larger_fitting_size(net, extra)):
        got = torch_gradient(net, n)
        want = exact_map(net, n)
        assert np.all(np.abs(got - want) <= REL * peak), (net, n)
        assert np.all(got[~rf_mask(net, n)] == 0), (net, n)


def mc_stats(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel sample mean and standard error (sample std / sqrt(N)) over axis 0."""
    n = samples.shape[0]
    return samples.mean(0), samples.std(0, ddof=1) / math.sqrt(n)


def z_scores(mean: np.ndarray, se: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|mean - want| / se, with pixels of zero spread scored 0 if equal and inf if not."""
    diff = np.abs(mean - want)
    exact = se == 0
    out = np.where(exact, np.where(diff <= 1e-12, 0.0, np.inf), diff / np.where(exact, 1, se))
    return out


def assert_mc(samples: np.ndarray, want: np.ndarray, wrong: np.ndarray | None = None) -> None:
    """The mean of ``samples`` matches ``want`` within Z standard errors at every pixel.

    ``wrong``, a prediction that must fail, is rejected by the same rule with a margin
    (some pixel more than 2 Z standard errors away).
    """
    mean, se = mc_stats(samples)
    z = z_scores(mean, se, want)
    assert z.max() <= Z, (float(z.max()), np.unravel_index(z.argmax(), z.shape))
    if wrong is not None:
        assert not np.allclose(want, wrong)
        assert z_scores(mean, se, wrong).max() > 2 * Z


# --------------------------------------------------------------------------- exact, by hand
K3 = Kernel([1, 2, 3])
K4 = Kernel([1, -2, 3, 1])
K2D = Kernel([[1, 2, 0], [3, -1, 1]])  # non-separable, even rows
K2D_B = Kernel([[2, 1], [1, -1], [0, 3]])

EXACT_1D: dict[str, list[Layer]] = {
    "conv": [Conv(K3)],
    "conv_stack": [Conv(K3), Conv(K3), Conv(K3)],
    "stride": [Conv(K3, stride=2), Conv(K3, stride=3), Conv(K3)],
    "dilation": [Conv(K3, dilation=2), Conv(K4, dilation=3)],
    "even_same_stride": [Conv(K4, stride=2), Conv([1, 1], stride=2), Conv(K4)],
    "valid": [Conv(K4, padding="valid"), Conv(K3, stride=2, padding="valid")],
    "int_padding": [Conv(K3, padding=4), Conv(K4, stride=2, padding=1), Conv(K3, padding=0)],
    "anchor": [Conv(Kernel([1, 2, 3, 4], anchor=3), stride=2), Conv(Kernel([5, 1], anchor=0))],
    "ones": [Conv(5), Conv(2, dilation=2)],
    "avgpool": [AvgPool(2)],
    "avgpool_stack": [Conv(K3), AvgPool(3, stride=2), Conv(K4), AvgPool(2, stride=1)],
    "avgpool_padding": [AvgPool(3, stride=1, padding=1), AvgPool(2, padding=1)],
    "avgpool_big_padding": [Conv(K3), AvgPool(2, stride=1, padding=2)],  # explicit Pad
    "avgpool_same": [AvgPool(4, stride=2, padding="same"), Conv(K3)],
    "identity": [Conv(K3), Identity(), Conv(K4)],
    "batchnorm": [Conv(K3), BatchNorm(3), Conv(K4), BatchNorm(Fraction(-1, 2))],
    "dropout_eval": [Conv(K3), Dropout(0.5), Conv(K3)],
    "residual": [Conv(K3), Residual(Conv(K3), Conv(K4))],
    "residual_strided": [
        Residual(Conv(K3, stride=2), Conv(K4), shortcut=[Conv([3], stride=2)]),
        Conv(K3),
    ],
    "residual_conv_shortcut": [Residual(Conv(K4, dilation=2), shortcut=Conv([1, -1, 2]))],
    "parallel": [Parallel(Conv(1), [Conv(K3), Conv(K3)], Conv(5, dilation=2), [])],
    "parallel_strided": [Parallel(Conv(K3, stride=2), [AvgPool(2, padding="same"), Conv(K4)])],
    "mixed": [
        Conv(K3, stride=2),
        Residual(Conv(K4), AvgPool(3, stride=1, padding="same"), BatchNorm(2)),
        Parallel([], Conv(K3, dilation=3)),
        AvgPool(2),
        Conv(K4, stride=2, padding="valid"),
    ],
}

EXACT_2D: dict[str, list[Layer]] = {
    "conv": [Conv(K2D)],
    "per_axis": [Conv(K2D, stride=(2, 1), dilation=(1, 3)), Conv(K2D_B, stride=(1, 2))],
    "valid_int": [Conv(K2D, padding="valid"), Conv(K2D_B, padding=(2, 1), dilation=(2, 1))],
    "avgpool": [Conv(K2D), AvgPool((2, 3), stride=(1, 2)), Conv(K2D_B)],
    "avgpool_padding": [AvgPool((3, 2), stride=(2, 1), padding=(1, 0)), Conv(K2D)],
    "scalars": [Conv(K2D), BatchNorm(-2), Identity(), Dropout(0.2), Conv(K2D_B)],
    "residual": [
        Residual(Conv(K2D, stride=(2, 1)), Conv(K2D_B), shortcut=Conv([[2]], stride=(2, 1))),
    ],
    "parallel": [Parallel([], Conv(K2D, dilation=(2, 1)), [Conv(K2D_B), Conv((1, 3))])],
    "mixed": [
        Conv(K2D_B, stride=2),
        Residual(Conv(K2D), AvgPool((2, 2), stride=1, padding="same")),
        Conv(K2D, dilation=(1, 2), padding="valid"),
    ],
}


@pytest.mark.parametrize("name", sorted(EXACT_1D))
def test_exact_1d_matches_autograd(name: str) -> None:
    assert_exact(Network(EXACT_1D[name]))


@pytest.mark.parametrize("name", sorted(EXACT_2D))
def test_exact_2d_matches_autograd(name: str) -> None:
    assert_exact(Network(EXACT_2D[name]))


def test_exact_profile_is_also_the_profile_coefficients() -> None:
    # `profile()` is the same polynomial as `transfer()` (the map compared above).
    net = Network(EXACT_2D["per_axis"])
    coeffs = np.array(net.profile().coefficients, dtype=float)
    assert np.array_equal(coeffs, np.array(net.transfer().weights, dtype=float))


def test_exact_check_detects_a_wrong_profile() -> None:
    # The comparison can fail: the profile of a slightly different network is rejected.
    net = Network([Conv(K3, stride=2), Conv(K4)])
    other = Network([Conv(K3, stride=2), Conv(Kernel([1, -2, 3, 2]))])
    n = net.min_input_size()
    assert not np.allclose(torch_gradient(net, n), exact_map(other, n))


def test_channels_sum_to_the_one_channel_profile() -> None:
    # Kernel weights / C on every channel pair: the channel sum is the exact ERF.
    for layers in (EXACT_1D["mixed"], EXACT_2D["mixed"]):
        net = Network(layers)
        n = net.min_input_size()
        got = torch_gradient(net, n, channels=3)
        want = exact_map(net, n)
        assert np.allclose(got, want, rtol=0, atol=REL * np.abs(want).max())
        # Seeding all C output channels multiplies it by C.
        x = torch.zeros((1, 3, *_axes(n, net.ndim)), dtype=F64, requires_grad=True)
        y = to_torch(net, channels=3).eval()(x)
        y[(0, slice(None), *_axes(net.centre_output(n), net.ndim))].sum().backward()
        got = x.grad[0].sum(0).numpy()
        assert np.allclose(got, 3 * want, rtol=0, atol=REL * np.abs(want).max())


def test_channels_copy_the_one_channel_network() -> None:
    # On an input whose channels are equal, every channel is the one-channel network,
    # nonlinear layers included.
    net = Network([Conv(K3, stride=2), Tanh(), Residual(Conv(K4), ReLU()), AvgPool(2)])
    x = torch.randn((2, 1, 17), generator=torch.Generator().manual_seed(0), dtype=F64)
    one = to_torch(net)(x)
    three = to_torch(net, channels=3)(x.expand(2, 3, 17))
    assert torch.allclose(three, one.expand(2, 3, -1), rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------- exact, hypothesis
@dataclass(frozen=True)
class Space:
    """What `architectures` draws from.

    Attributes:
        low, high: kernel entries (integers).
        max_taps: taps per axis of a kernel.
        avgpool: whether AvgPool layers appear.
        depth: the most top-level layers, in 1-D and 2-D.
    """

    low: int = -2
    high: int = 3
    max_taps: int = 3
    avgpool: bool = True
    depth: tuple[int, int] = (5, 4)


def _kernel(draw: Any, ndim: int, space: Space) -> list[Any]:
    shape = [draw(st.integers(1, space.max_taps)) for _ in range(ndim)]
    size = math.prod(shape)
    flat = draw(st.lists(st.integers(space.low, space.high), min_size=size, max_size=size))
    if ndim == 1:
        return flat
    return [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]


def _per_axis(draw: Any, ndim: int, values: list[int]) -> Any:
    t = tuple(draw(st.sampled_from(values)) for _ in range(ndim))
    return t[0] if ndim == 1 else t


def _spec_layer(draw: Any, ndim: int, stride: Any, inside: bool, space: Space) -> tuple[Any, ...]:
    """One Conv or AvgPool; inside blocks it pads 'same' so branch lengths agree."""
    if space.avgpool and draw(st.integers(0, 3)) == 0:
        size = _per_axis(draw, ndim, [1, 2, 3])
        pad = "same" if inside else draw(st.integers(0, 2))
        return ("avg", size, stride, pad)
    dil = _per_axis(draw, ndim, [1, 2, 3])
    pad = "same" if inside else draw(st.sampled_from(["same", "valid", 0, 1, 2]))
    return ("conv", _kernel(draw, ndim, space), stride, dil, pad)


def _ones(ndim: int) -> Any:
    return 1 if ndim == 1 else (1, 1)


def _branch(
    draw: Any, ndim: int, stride: Any, space: Space, nest: bool = True
) -> list[tuple[Any, ...]]:
    """A chain of 1–2 'same' layers whose total stride is ``stride``.

    The second layer may be a nested identity-shortcut residual block.
    """
    first = _spec_layer(draw, ndim, stride, True, space)
    if not draw(st.booleans()):
        return [first]
    if nest and draw(st.booleans()):
        return [first, ("res", _branch(draw, ndim, _ones(ndim), space, nest=False), None)]
    return [first, _spec_layer(draw, ndim, _ones(ndim), True, space)]


@st.composite
def architectures(draw: Any, space: Space = Space()) -> tuple[Network, Network]:
    """A random chain and the same chain with |weights| (for the tolerance).

    Chains of Conv, AvgPool, BatchNorm, Residual and Parallel; the branches of a block
    pad 'same' and share their total stride (a strided residual body gets a strided 1×1
    convolution as its shortcut), so their outputs align for every input size.
    """
    ndim = draw(st.sampled_from([1, 2]))
    specs: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, space.depth[ndim - 1]))):
        what = draw(st.sampled_from(["layer", "layer", "residual", "parallel", "scalar"]))
        stride = _per_axis(draw, ndim, [1, 2])
        if what == "layer":
            specs.append(_spec_layer(draw, ndim, stride, False, space))
        elif what == "scalar":
            specs.append(("scalar", draw(st.sampled_from([-2, 1, 3]))))
        elif what == "residual":
            body = _branch(draw, ndim, stride, space)
            w = draw(st.sampled_from([v for v in range(space.low, space.high + 1) if v]))
            one = [w] if ndim == 1 else [[w]]
            strided = stride != _ones(ndim)
            short = ("conv", one, stride, 1, "same") if strided or draw(st.booleans()) else None
            specs.append(("res", body, short))
        else:
            count = draw(st.integers(2, 3))
            identity = stride == _ones(ndim) and draw(st.booleans())
            branches = [_branch(draw, ndim, stride, space) for _ in range(count)]
            specs.append(("par", [[], *branches] if identity else branches))
    return Network(_build(specs, False), ndim=ndim), Network(_build(specs, True), ndim=ndim)


SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much]
"""Health checks that time data generation: flaky on a loaded machine, not bugs."""


def _build(specs: list[tuple[Any, ...]], absolute: bool) -> list[Layer]:
    def kernel(k: list[Any]) -> Kernel:
        return Kernel(np.abs(np.array(k)) if absolute else np.array(k))

    def one(s: tuple[Any, ...]) -> Layer:
        if s[0] == "conv":
            return Conv(kernel(s[1]), stride=s[2], dilation=s[3], padding=s[4])
        if s[0] == "avg":
            return AvgPool(s[1], stride=s[2], padding=s[3])
        if s[0] == "scalar":
            return BatchNorm(abs(s[1]) if absolute else s[1])
        if s[0] == "res":
            short = None if s[2] is None else [one(s[2])]
            return Residual(*_build(s[1], absolute), shortcut=short)
        return Parallel(*(_build(b, absolute) for b in s[1]))

    return [one(s) for s in specs]


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW_OK)
@given(architectures())
def test_random_architectures_match_autograd(pair: tuple[Network, Network]) -> None:
    net, abs_net = pair
    assert_exact(net, abs_net, extra=3)


def reaches_only_input(model: Any, net: Network, sizes: tuple[int, ...], mass: float) -> bool:
    """Whether the centre unit's backward pass stays off the padding (positive weights).

    With every weight positive, each path from the output unit to a padded pixel carries
    positive gradient that never arrives at the input, so the input gradient's total
    equals the unclipped total ``mass`` exactly when no path reaches the padding.
    """
    arg = sizes[0] if net.ndim == 1 else sizes
    x = torch.zeros((1, 1, *sizes), dtype=F64, requires_grad=True)
    model(x)[(0, 0, *_axes(net.centre_output(arg), net.ndim))].backward()
    return abs(float(x.grad.sum()) - mass) <= 1e-9 * mass


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(architectures())
def test_fits_and_min_input_size_agree_with_autograd(pair: tuple[Network, Network]) -> None:
    # The input size rule, checked pixel-free: on the |weights| network with all-ones
    # convolutions, `fits(n)` holds iff no gradient is lost to padding, for every size
    # up to a few past `min_input_size()` (one axis at a time in 2-D).
    _, net = pair
    model = to_torch(net, weights="ones").eval()
    n0 = _axes(net.min_input_size(), net.ndim)
    x = torch.zeros((1, 1, *n0), dtype=F64, requires_grad=True)
    model(x)[(0, 0, *_axes(net.centre_output(net.min_input_size()), net.ndim))].backward()
    mass = float(x.grad.sum())
    assert mass > 0
    for axis in range(net.ndim):
        for m in range(1, n0[axis] + 6):
            sizes = tuple(m if a == axis else v for a, v in enumerate(n0))
            arg = sizes[0] if net.ndim == 1 else sizes
            if min(_axes(net.output_size(arg), net.ndim)) <= 0:
                assert not net.fits(arg)
                continue
            assert net.fits(arg) == reaches_only_input(model, net, sizes, mass), (net, sizes)
            if m < n0[axis]:
                assert not net.fits(arg)


def test_fits_is_not_monotone_in_the_input_size() -> None:
    # Found by hypothesis: at n = 9 the centre unit moves one jump (4) to the right and
    # its RF (6 pixels from 4) leaves the input; n = 6, 7, 8 and 10 fit.
    net = Network(
        [
            Conv(Kernel([1, 1])),
            AvgPool(1, stride=2),
            Residual(
                AvgPool(1, stride=2, padding="same"),
                AvgPool(2, stride=1, padding="same"),
                shortcut=[Conv(Kernel([1]), stride=2)],
            ),
        ]
    )
    assert net.min_input_size() == 6
    assert [net.fits(n) for n in range(6, 11)] == [True, True, True, False, True]
    assert larger_fitting_size(net, 3) == 10
    assert_exact(net, extra=3)


# --------------------------------------------------------------------------- Monte Carlo
def random_square_gradients(
    net: Network, n: Any, samples: int, seed: int, *, train: bool = False, channels: int = 1
) -> np.ndarray:
    """Squared input gradients of ``samples`` independent random-weight networks.

    All networks run at once as channel groups (``copies``); the result has shape
    ``(samples, *n)`` (summed over each network's channels).
    """
    gen = torch.Generator().manual_seed(seed)
    model = to_torch(net, weights="random", generator=gen, channels=channels, copies=samples)
    model.train(train)
    x = torch.zeros((1, samples * channels, *_axes(n, net.ndim)), dtype=F64)
    with torch.random.fork_rng():  # dropout masks use the global generator
        torch.manual_seed(seed)
        g = backward(model, x, net, n)[0]
    g = g.reshape(samples, channels, *g.shape[1:])
    return (g**2).sum(1)


# Variance kernels (small integers) for random convolutions.
V3 = Kernel([1, 2, 1])
V2 = Kernel([3, 1])
V2D = Kernel([[1, 2], [2, 0], [1, 1]])

EXPECTED_SQUARE = {
    "stack_1d": (Network([Conv(V3), Conv(V2, stride=2), Conv(V3, dilation=2)]), 6000),
    "avgpool_1d": (
        Network([Conv(V3), AvgPool(2, stride=1), AvgPool(2, stride=1), Conv(V2)]),
        6000,
    ),
    "residual_1d": (Network([Conv(V2), Residual(Conv(V3), Conv(V2)), Conv(V3)]), 6000),
    "stack_2d": (Network([Conv(V2D, stride=(1, 2)), AvgPool((2, 2), stride=1), Conv(V2D)]), 3000),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SQUARE))
def test_expected_square_matches_random_weights(name: str) -> None:
    net, samples = EXPECTED_SQUARE[name]
    n = net.min_input_size()
    sq = random_square_gradients(net, n, samples, seed=1234)
    assert_mc(sq, exact_map(net, n, "expected_square"))
    assert np.all(sq[:, ~rf_mask(net, n)] == 0)


# ------------------------------------------------------------------- expected square, exactly
def _convs(model: Any) -> list[Any]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)]


def sign_enumeration(net: Network, n: Any) -> tuple[np.ndarray, int]:
    r"""The expected squared gradient, exactly, by enumerating weight signs.

    The input gradient of a linear network is multilinear in the weights (a path uses
    one tap of each convolution it crosses), so $\mathbb E[g^2]$ depends only on the
    weights' variances: weights $\pm\sqrt{v}$ with independent fair signs give the same
    $\mathbb E[g^2]$ as Gaussian ones, and the mean of $g^2$ over all $2^T$ sign patterns
    of the $T$ taps of nonzero variance is exact. An oracle independent of the algebra.

    Returns:
        The map and $T$.
    """
    taps = sum(int((c.weight != 0).sum()) for c in _convs(to_torch(net, weights="kernel")))
    copies = 2**taps
    model = to_torch(net, weights="kernel", copies=copies).eval()
    bits = (torch.arange(copies)[:, None] >> torch.arange(taps)) & 1
    signs = (2 * bits - 1).to(F64)
    t = 0
    with torch.no_grad():
        for conv in _convs(model):
            flat = conv.weight.view(copies, -1)
            for j in range(flat.shape[1]):
                v = float(flat[0, j])
                if v != 0:
                    flat[:, j] = math.sqrt(v) * signs[:, t]
                    t += 1
    assert t == taps
    g = backward(model, torch.zeros((1, copies, *_axes(n, net.ndim)), dtype=F64), net, n)[0]
    return (g**2).mean(0), taps


ENUMERATED = {
    **{name: net for name, (net, _) in EXPECTED_SQUARE.items()},
    "strided_shortcut": Network(
        [Residual(Conv(V2, stride=2), Conv(V2), shortcut=Conv([2], stride=2)), Conv(V3)]
    ),
    "parallel": Network([Parallel([], [Conv(V2), Conv([1, 1])], Conv(V3, dilation=2))]),
    "scalars": Network([Conv(V2), BatchNorm(-3), AvgPool(3, stride=2), Conv(V2)]),
    "2d_residual": Network([Conv(Kernel([[1, 2]])), Residual(Conv(Kernel([[1], [1]])))]),
}

# Known errors of the expected-square algebra (erftheory/network.py): it squares each
# run of fixed layers separately, but paths through the same random taps add coherently
# across a random layer, and a branch's deterministic (shortcut) part adds coherently to
# sibling fixed branches. Exact values: [AvgPool, w, AvgPool] gives w·(1, 2, 1)/4, so
# E[g²] = (1, 4, 1)/16, not (1, 2, 1)/16; Residual(Residual(w)) gives 2 + w, E[g²] = 5, not 3.
COHERENT = {
    "avgpool_both_sides": Network([AvgPool(2, stride=1), Conv([1]), AvgPool(2, stride=1)]),
    "avgpool_around_residual": Network(
        [AvgPool(2, stride=1), Residual(Conv([1])), AvgPool(2, stride=1)]
    ),
    "nested_residual": Network([Residual(Residual(Conv([1])))]),
    "identity_beside_residual": Network([Parallel([], Residual(Conv([1])))]),
}


def _check_enumeration(net: Network) -> None:
    n = net.min_input_size()
    got, taps = sign_enumeration(net, n)
    assert 2**taps >= 2
    want = exact_map(net, n, "expected_square")
    assert np.all(np.abs(got - want) <= REL * np.abs(want).max()), (net, got, want)


@pytest.mark.parametrize("name", sorted(ENUMERATED))
def test_expected_square_equals_sign_enumeration(name: str) -> None:
    _check_enumeration(ENUMERATED[name])


@pytest.mark.parametrize("name", sorted(COHERENT))
def test_expected_square_fixed_layers_on_both_sides(name: str) -> None:
    # Once wrong (fixed runs squared one by one); the family algebra gets them right.
    _check_enumeration(COHERENT[name])


def test_sign_enumeration_values() -> None:
    # The oracle itself, by hand: E[g²] of [AvgPool, w, AvgPool] is (1, 4, 1)/16.
    got, taps = sign_enumeration(COHERENT["avgpool_both_sides"], 3)
    assert taps == 1
    assert np.allclose(got, [1 / 16, 4 / 16, 1 / 16], rtol=0, atol=1e-15)
    got, _ = sign_enumeration(COHERENT["nested_residual"], 1)
    assert got.tolist() == [5.0]


RANDOM_ONLY = Space(low=0, high=2, max_taps=2, avgpool=False, depth=(4, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(architectures(RANDOM_ONLY))
def test_random_weight_architectures_expected_square(pair: tuple[Network, Network]) -> None:
    # Convolutions, BatchNorm and blocks (no fixed multi-tap layers): exact.
    net, _ = pair
    convs = [x for x in _all_layers(net.layers) if isinstance(x, Conv)]
    taps = sum(sum(1 for w in c.kernel("gradient", net.ndim).flat if w) for c in convs)
    assume(1 <= taps <= 12)
    _check_enumeration(net)


WITH_POOLS = Space(low=0, high=2, max_taps=2, avgpool=True, depth=(4, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(architectures(WITH_POOLS))
def test_random_weight_architectures_with_fixed_pools_expected_square(
    pair: tuple[Network, Network],
) -> None:
    # Fixed average pools between, around and inside blocks: paths through the same
    # random taps add coherently across them (the family algebra of erftheory.network).
    net, _ = pair
    convs = [x for x in _all_layers(net.layers) if isinstance(x, Conv)]
    taps = sum(sum(1 for w in c.kernel("gradient", net.ndim).flat if w) for c in convs)
    assume(1 <= taps <= 12)
    _check_enumeration(net)


def _all_layers(layers: Any) -> list[Layer]:
    out: list[Layer] = []
    for x in layers:
        out.append(x)
        if isinstance(x, (Residual, Parallel)):
            for b in x.branches:
                out.extend(_all_layers(b))
    return out


def _pools_as_maxpools(layers: list[Layer]) -> list[Layer]:
    return [MaxPool(2, stride=1) if isinstance(x, AvgPool) else x for x in layers]


def test_expected_square_rejects_tap_by_tap_and_gradient_predictions() -> None:
    # Two AvgPools between random convolutions: they must be combined coherently
    # ((1 + 2z + z²)/4, then squared: (1, 4, 1)/16), not squared tap by tap
    # ((1, 2, 1)/16, the MaxPool rule) nor left unsquared (the gradient kind).
    layers: list[Layer] = [Conv(V3), AvgPool(2, stride=1), AvgPool(2, stride=1), Conv(V2)]
    net = Network(layers)
    n = net.min_input_size()
    sq = random_square_gradients(net, n, 6000, seed=99)
    want = exact_map(net, n, "expected_square")
    tap_by_tap = exact_map(Network(_pools_as_maxpools(layers)), n, "expected_square")
    assert_mc(sq, want, wrong=tap_by_tap)
    assert_mc(sq, want, wrong=exact_map(net, n, "gradient"))


def test_expected_square_with_channels() -> None:
    # Variance v/C per channel pair: the channel sum of g² has expectation the profile.
    net = Network([Conv(V3), Conv(V2, stride=2), Residual(Conv(V3)), Conv(V2)])
    n = net.min_input_size()
    sq = random_square_gradients(net, n, 3000, seed=7, channels=2)
    assert_mc(sq, exact_map(net, n, "expected_square"))


def test_dropout_train_mode_expected_square() -> None:
    layers: list[Layer] = [Conv(V3), Dropout(0.5), Conv(V2), Dropout(0.2), Conv(V3)]
    net = Network(layers)
    n = net.min_input_size()
    sq = random_square_gradients(net, n, 8000, seed=5, train=True)
    no_dropout = Network([x for x in layers if not isinstance(x, Dropout)])
    # Factor 1/(1-p) per dropout layer: 2 * 5/4; ignoring dropout is rejected.
    assert_mc(sq, exact_map(net, n, "expected_square"), wrong=exact_map(no_dropout, n, "gradient"))


DROPOUT_BETWEEN_FIXED = [
    Conv([1]),
    AvgPool(2, stride=1),
    Dropout(0.5),
    AvgPool(2, stride=1),
    Conv([1]),
]
# Paths through the same random taps but different dropout pixels have correlated masks
# (E[m_a m_b] = 1 for a ≠ b), so 1/(1-p) applies only to the part of the coherent sum
# through one pixel: E[g²] = (1, 6, 1)/16, not 2 · (1, 4, 1)/16.
DROPOUT_TRUE = [1 / 8, 3 / 8, 1 / 8]


def test_dropout_between_fixed_layers_monte_carlo() -> None:
    net = Network(DROPOUT_BETWEEN_FIXED)
    n = net.min_input_size()
    sq = random_square_gradients(net, n, 20000, seed=2, train=True)
    assert_mc(sq, np.array(DROPOUT_TRUE), wrong=np.array([1 / 8, 1 / 2, 1 / 8]))


def test_dropout_between_fixed_layers() -> None:
    # Masks of different pixels are uncorrelated (E[m_a m_b] = 1), of one pixel 1/(1-p).
    net = Network(DROPOUT_BETWEEN_FIXED)
    assert np.allclose(exact_map(net, net.min_input_size(), "expected_square"), DROPOUT_TRUE)


def input_gradients(net: Network, n: Any, samples: int, seed: int) -> np.ndarray:
    """Input gradients of the fixed-weight network on iid N(0, 1) inputs."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((samples, 1, *_axes(n, net.ndim)), generator=gen, dtype=F64)
    return backward(to_torch(net).eval(), x, net, n)[:, 0]


MAXPOOL = {
    # Non-overlapping windows on iid inputs: each tap is the argmax w.p. 1/K.
    "input_1d": Network([MaxPool(3), Conv(Kernel([1, 2, -1]))]),
    "input_2d": Network([MaxPool((2, 3)), Conv(Kernel([[1, 2], [0, -1]]))]),
    # Windows of 2 after a conv: the pair is a stationary Gaussian vector, exchangeable.
    "after_conv_1d": Network([Conv(Kernel([1, 2, 1])), MaxPool(2), Conv(Kernel([2, 1, 1]))]),
}


@pytest.mark.parametrize("name", sorted(MAXPOOL))
def test_maxpool_expected_gradient(name: str) -> None:
    net = MAXPOOL[name]
    n = net.min_input_size()
    g = input_gradients(net, n, 6000, seed=11)
    want = exact_map(net, n)
    as_avg = Network([AvgPool(x.size(net.ndim)) if isinstance(x, MaxPool) else x for x in net])
    assert np.allclose(exact_map(as_avg, n), want)  # 1/K per tap, as average pooling
    assert_mc(g, want, wrong=2 * want)
    assert np.all(g[:, ~rf_mask(net, n)] == 0)


ACTIVATIONS = {
    # Pre-activations are N(0, 6) (weights 1, 2, 1 on unit inputs): symmetric about 0.
    "relu": ReLU(),
    "leaky_relu": LeakyReLU(Fraction(1, 5)),
    "tanh": Tanh(input_std=math.sqrt(6)),
    "sigmoid": Sigmoid(input_std=math.sqrt(6)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_expected_gradient(name: str) -> None:
    # One activation between fixed convolutions: E[grad] = E[σ'] × the linear ERF exactly.
    act = ACTIVATIONS[name]
    net = Network([Conv(Kernel([1, 2, 1])), act, Conv(Kernel([1, -1, 2]))])
    n = net.min_input_size()
    g = input_gradients(net, n, 8000, seed=3)
    linear = exact_map(Network([Conv(Kernel([1, 2, 1])), Conv(Kernel([1, -1, 2]))]), n)
    want = exact_map(net, n)
    assert np.allclose(want, float(act.factor("gradient")) * linear)
    assert_mc(g, want, wrong=linear)


def test_relu_expected_gradient_2d() -> None:
    k = Kernel([[1, 0], [2, 1]])
    net = Network([Conv(k, stride=(1, 2)), ReLU(), Conv(Kernel([[1, -1, 1]]))])
    n = net.min_input_size()
    g = input_gradients(net, n, 6000, seed=8)
    want = exact_map(net, n)
    assert_mc(g, want, wrong=2 * want)


# --------------------------------------------------------------------------- shapes, API
SHAPES: list[list[Layer]] = [
    *EXACT_1D.values(),
    *EXACT_2D.values(),
    [MaxPool(3, stride=2, padding=1), Conv(3, stride=2)],
    [MaxPool(2, padding="same"), MaxPool(3, stride=1, padding=2)],  # explicit -inf Pad
    [Conv((2, 3), stride=(2, 1)), MaxPool((2, 1)), ReLU(), Tanh(), Sigmoid()],
]


@pytest.mark.parametrize("index", range(len(SHAPES)))
def test_output_shape_is_network_output_size(index: int) -> None:
    net = Network(SHAPES[index])
    model = to_torch(net).eval()
    checked = 0
    for n in range(1, 24):
        sizes = (n,) if net.ndim == 1 else (n, n + 3)
        arg = n if net.ndim == 1 else sizes
        out = _axes(net.output_size(arg), net.ndim)
        if min(out) <= 0:
            continue
        y = model(torch.zeros((2, 1, *sizes), dtype=F64))
        assert tuple(y.shape) == (2, 1, *out), (net, sizes)
        checked += 1
    assert checked > 5


def test_pool_padding_values() -> None:
    x = -torch.ones((1, 1, 4), dtype=F64)
    # MaxPool pads with -inf: zeros in the padding would give 0 at the ends.
    # Native padding, and an explicit Pad beyond half the window (padding=2).
    for pad, length in (("same", 4), (1, 4), (2, 6)):
        y = to_torch(Network([MaxPool(3, stride=1, padding=pad)]))(x)
        assert y.tolist() == [[[-1.0] * length]], pad
    # AvgPool counts the zeros of the padding (count_include_pad=True), natively or not.
    y = to_torch(Network([AvgPool(2, stride=1, padding=1)]))(x)
    assert y.tolist() == [[[-0.5, -1.0, -1.0, -1.0, -0.5]]]
    y = to_torch(Network([AvgPool(2, stride=1, padding=2)]))(x)
    assert y.tolist() == [[[0.0, -0.5, -1.0, -1.0, -1.0, -0.5, 0.0]]]
    y = to_torch(Network([AvgPool(4, stride=1, padding="same")]))(x)  # 1 zero before, 2 after
    assert y.tolist() == [[[-0.75, -1.0, -0.75, -0.5]]]


def _weight(model: Any, index: int) -> Any:
    return model[index].weight


def test_weight_modes() -> None:
    net = Network([Conv(Kernel([1, 2, 3])), Conv(Kernel([2, 0]), stride=2)])
    kernel = _weight(to_torch(net), 0)
    assert kernel.dtype == F64
    assert kernel.flatten().tolist() == [1.0, 2.0, 3.0]
    ones = _weight(to_torch(net, weights="ones", dtype=torch.float32), 0)
    assert ones.dtype == torch.float32
    assert ones.flatten().tolist() == [1.0, 1.0, 1.0]
    a = to_torch(net, weights="random", generator=torch.Generator().manual_seed(0), copies=4)
    b = to_torch(net, weights="random", generator=torch.Generator().manual_seed(0), copies=4)
    assert torch.equal(_weight(a, 0), _weight(b, 0))
    assert _weight(a, 0).shape == (4, 1, 3)
    assert len({tuple(w.flatten().tolist()) for w in _weight(a, 0)}) == 4  # copies differ
    assert torch.all(_weight(a, -1)[..., 1] == 0)  # variance 0: the weight is 0
    assert (a.network, a.ndim, a.copies, a.channels) == (net, 1, 4, 1)


def test_dropout_and_batchnorm_modules() -> None:
    net = Network([Dropout(0.5), BatchNorm(Fraction(3, 2))])
    model = to_torch(net)
    x = torch.ones((1, 1, 1000), dtype=F64)
    assert torch.equal(model.eval()(x), 1.5 * x)
    y = model.train()(x)
    assert set(y.flatten().tolist()) == {0.0, 3.0}  # kept pixels are scaled by 1/(1-p)


def test_errors() -> None:
    net = Network([Conv(3)])
    with pytest.raises(ERFValueError, match="weights"):
        to_torch(net, weights="zeros")  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="channels"):
        to_torch(net, channels=0)
    with pytest.raises(ERFValueError, match="copies"):
        to_torch(net, copies=True)
    with pytest.raises(ERFTypeError, match="generic Activation"):
        to_torch(Network([Conv(3), Activation("gelu", 0.5, 0.4)]))
    with pytest.raises(ERFValueError, match="variances"):
        to_torch(Network([Conv(Kernel([1, -1]))]), weights="random")


def test_layer_list_is_accepted() -> None:
    # (That `import erftheory` does not import torch is checked in test_package.py.)
    model = to_torch([Conv(3), ReLU()])
    assert model.network.ndim == 1 and len(model) == 2
    assert isinstance(model[1], torch.nn.ReLU)
