"""Many random networks in one pass (`erftheory.torch.batched`) and the inits of Section 4.

1. ``init="ones"``: every network's input gradient is the exact profile (float64).
2. Batching changes nothing: channel ``c`` of the grouped model equals network ``c``
   built alone by ``to_torch`` with the same weights (outputs and input gradients).
3. ``init="he"``: the mean over networks of the squared input gradient matches the
   exact ``kind="expected_square"`` profile of the network with per-tap variances
   $2/K$, within ``Z`` standard errors per pixel.
4. ``init="centre_low"`` (Section 4): a larger ERF than He, predicted exactly and
   measured (the std ratio within ``Z`` jackknife standard errors of the prediction).
5. The init functions' per-tap variances, shapes, errors.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import erftheory  # noqa: E402
from erftheory import ERFTypeError, ERFValueError, Kernel, Network, SizeLimitError  # noqa: E402
from erftheory.layers import (  # noqa: E402
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Identity,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
    Tanh,
)
from erftheory.torch.batched import (  # noqa: E402
    BatchedNetworks,
    batched_input_gradients,
    paper_network,
)
from erftheory.torch.build import to_torch  # noqa: E402
from erftheory.torch.init import (  # noqa: E402
    centre_low_,
    centre_low_variances,
    he_,
    he_variances,
    ones_,
    variance_network,
    xavier_,
    xavier_variances,
)

F64 = torch.float64
REL = 1e-12  # float64 tolerance relative to the peak |value|
Z = 5.0  # Monte Carlo acceptance: standard errors per pixel


# --------------------------------------------------------------------------- helpers
def _axes(x: Any, ndim: int) -> tuple[int, ...]:
    return (x,) if ndim == 1 else tuple(x)


def exact_map(net: Network, n: Any, kind: str = "gradient") -> np.ndarray:
    """The exact ERF of the centre output unit placed on an input of size ``n``."""
    nd = net.ndim
    coeffs = np.array(net.transfer(kind).weights, dtype=object)
    values = np.vectorize(float, otypes=[float])(coeffs)
    rf = net.receptive_field
    c = _axes(net.centre_output(n), nd)
    start = [
        o + j * ci for o, j, ci in zip(_axes(rf.offset, nd), _axes(rf.jump, nd), c, strict=True)
    ]
    sizes = _axes(n, nd)
    assert all(s >= 0 for s in start) and all(
        s + t <= m for s, t, m in zip(start, values.shape, sizes, strict=True)
    ), "the RF leaves the input"
    out = np.zeros(sizes)
    out[tuple(slice(s, s + t) for s, t in zip(start, values.shape, strict=True))] = values
    return out


def z_max(samples: np.ndarray, want: np.ndarray) -> float:
    """Largest |sample mean - want| / standard error over pixels (0/0 counts as 0)."""
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    diff = np.abs(mean - want)
    exact = se == 0
    z = np.where(exact, np.where(diff <= 1e-12, 0.0, np.inf), diff / np.where(exact, 1, se))
    return float(z.max())


def map_std(m: np.ndarray) -> np.ndarray:
    """Per-axis standard deviation of a nonnegative 2-D map read as a distribution."""
    p = m / m.sum()
    out = []
    for axis in range(m.ndim):
        marginal = p.sum(axis=tuple(a for a in range(m.ndim) if a != axis))
        x = np.arange(marginal.size)
        mu = (marginal * x).sum()
        out.append(math.sqrt((marginal * (x - mu) ** 2).sum()))
    return np.array(out)


# Architectures covering every layer kind, all convolutions all-ones or integer kernels.
ARCHITECTURES = {
    "paper_2d": paper_network(6),
    "strided_dilated_2d": paper_network(6, stride_layers=[2], dilations={4: 2}),
    "mixed_1d": Network(
        [
            Conv(3),
            AvgPool(2, stride=1),
            Residual(Conv(3), BatchNorm(Fraction(1, 2)), Conv(3)),
            Conv(Kernel([1, 2, 1]), stride=2),
            Parallel(Conv(1), [Conv(3), Identity()], Conv(5, dilation=2)),
            Conv(2, padding=0),
        ]
    ),
    "mixed_2d": Network(
        [
            Conv((3, 2), stride=(1, 2)),
            Residual(Conv(3)),
            AvgPool(2),
            Conv(Kernel([[1, 2], [3, 1]])),
        ]
    ),
}


# --------------------------------------------------------------------------- 1. exact
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_ones_gives_the_exact_profile_for_every_network(name: str) -> None:
    net = ARCHITECTURES[name]
    init = "kernel" if name.startswith("mixed") else "ones"
    batched = BatchedNetworks(net, 5, init=init)
    want_net, kind = batched.prediction()
    assert kind == "gradient"
    n0 = net.min_input_size()
    for n in (n0, tuple(v + 3 for v in _axes(n0, net.ndim))):
        n = n[0] if net.ndim == 1 and isinstance(n, tuple) else n
        want = exact_map(want_net, n)
        g = batched_input_gradients(batched, torch.zeros(_axes(n, net.ndim), dtype=F64))
        assert g.shape == (5, *_axes(n, net.ndim))
        peak = np.abs(want).max()
        assert peak > 0
        for c in range(5):
            assert np.abs(g[c].numpy() - want).max() <= REL * peak, (name, n, c)


def test_ones_prediction_is_the_all_ones_network() -> None:
    net = Network([Conv(Kernel([1, -2, 1])), Conv(Kernel([2, 1]), stride=2)])
    pred, kind = BatchedNetworks(net, 2, init="ones").prediction()
    assert kind == "gradient"
    assert [c.kernel("gradient", 1) for c in pred.layers] == [Kernel([1, 1, 1]), Kernel([1, 1])]
    assert pred.layers[1].stride(1) == (2,)


# --------------------------------------------------------------------------- 2. batching
BATCHING = {
    "relu_2d": Network(
        [
            Conv(3),
            ReLU(),
            MaxPool(2),
            Conv(3, dilation=2),
            Tanh(),
            Residual(Conv(3), ReLU(), Conv(3), shortcut=[BatchNorm(2)]),
            AvgPool(3, stride=1, padding=1),
            Dropout(0.3),
            Conv(3, stride=2),
        ],
        ndim=2,
    ),
    "parallel_1d": Network(
        [
            Conv(5),
            ReLU(),
            Parallel(Conv(1), [Conv(3), ReLU(), Conv(3)], Conv(3, dilation=3)),
            MaxPool(3, stride=2),
            Conv(2, padding=0),
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(BATCHING))
@pytest.mark.parametrize("init", ["he", "centre_low"])
def test_batching_changes_nothing(name: str, init: str) -> None:
    net = BATCHING[name]
    count = 6
    gen = torch.Generator().manual_seed(3)
    batched = BatchedNetworks(net, count, init=init, generator=gen).eval()
    n = _axes(net.min_input_size(), net.ndim)
    n = tuple(v + 2 for v in n)
    x = torch.randn((count, *n), generator=gen, dtype=F64)
    grads = batched_input_gradients(batched, x)
    outs = batched(x.unsqueeze(0))[0].detach()
    centre = _axes(net.centre_output(n[0] if net.ndim == 1 else n), net.ndim)
    for c in range(count):
        # Network c alone, built independently, with the weights of group c loaded.
        alone = to_torch(net, weights="ones").eval()
        convs = [m for m in alone.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
        assert len(convs) == len(batched.convs)
        with torch.no_grad():
            for mine, grouped in zip(convs, batched.convs, strict=True):
                assert grouped.groups == count and grouped.in_channels == count
                mine.weight.copy_(grouped.weight[c : c + 1])
        xc = x[c].reshape(1, 1, *n).clone().requires_grad_(True)
        y = alone(xc)
        y[(0, 0, *centre)].backward()
        g = xc.grad[0, 0]
        peak = float(g.abs().max())
        assert peak > 0
        assert float((grads[c] - g).abs().max()) <= REL * peak, (name, c)
        y = y.detach()
        assert float((outs[c] - y[0, 0]).abs().max()) <= REL * float(y.abs().max())
        # The same through BatchedNetworks.single.
        single = batched.single(c)
        assert not single.training
        assert torch.equal(single(x[c].reshape(1, 1, *n)), y)
    # The networks differ from each other.
    assert len({tuple(w.flatten().tolist()) for w in batched.convs[0].weight}) == count


def test_batched_input_shapes() -> None:
    net = Network([Conv(3), ReLU(), Conv(3)], ndim=2)
    b = BatchedNetworks(net, 3, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn((2, 3, 6, 6), generator=gen, dtype=F64)
    both = batched_input_gradients(b, xs)
    assert both.shape == (2, 3, 6, 6)
    for s in range(2):
        assert torch.allclose(both[s], batched_input_gradients(b, xs[s]), rtol=0, atol=1e-14)
    shared = batched_input_gradients(b, xs[0, 0])
    assert torch.allclose(shared, batched_input_gradients(b, xs[0, :1].expand(3, 6, 6)))
    assert torch.allclose(shared, batched_input_gradients(b, xs[:1, :1])[0])
    # Random inputs: min input size by default, reproducible with a generator.
    r1 = batched_input_gradients(b, generator=torch.Generator().manual_seed(5))
    r2 = batched_input_gradients(b, generator=torch.Generator().manual_seed(5))
    assert r1.shape == (3, 5, 5) and torch.equal(r1, r2)
    assert batched_input_gradients(b, size=(7, 9)).shape == (3, 7, 9)
    torch.set_num_threads(2)
    again = batched_input_gradients(b, generator=torch.Generator().manual_seed(5), num_threads=1)
    assert torch.get_num_threads() == 2 and torch.equal(again, r1)
    with pytest.raises(ERFValueError, match="num_threads"):
        batched_input_gradients(b, num_threads=0)
    # Another output unit: the corner unit's RF is clipped by the padding.
    corner = batched_input_gradients(b, torch.zeros(6, 6, dtype=F64), output_unit=(0, 0))
    assert torch.all(corner[:, 3:, :] == 0) and torch.all(corner[:, :, 3:] == 0)
    # Weight gradients are neither computed nor accumulated.
    assert all(conv.weight.grad is None for conv in b.convs)


def test_float32_channels_last_matches_float64() -> None:
    net = paper_network(8, activation="relu")
    seed = 4
    g64 = BatchedNetworks(net, 10, generator=torch.Generator().manual_seed(seed))
    g32 = BatchedNetworks(
        net, 10, dtype=torch.float32, generator=torch.Generator().manual_seed(seed)
    )
    x = torch.randn((10, 20, 20), generator=torch.Generator().manual_seed(0), dtype=F64)
    a = batched_input_gradients(g64, x)
    for cl in (True, False):
        b = batched_input_gradients(g32, x.float(), channels_last=cl)
        assert b.dtype == torch.float32 and b.is_contiguous()
        assert float((a - b.double()).abs().max()) <= 1e-4 * float(a.abs().max())


def test_weights_do_not_depend_on_count_and_callables_work() -> None:
    net = paper_network(3, ndim=1)
    small = BatchedNetworks(net, 2, generator=torch.Generator().manual_seed(9))
    large = BatchedNetworks(net, 5, generator=torch.Generator().manual_seed(9))
    for c in range(2):
        assert all(
            torch.equal(a, b) for a, b in zip(small.weights(c), large.weights(c), strict=True)
        )
    assert not torch.equal(large.weights(0)[0], large.weights(1)[0])
    kaiming = BatchedNetworks(
        net,
        2,
        init=torch.nn.init.kaiming_normal_,
        generator=torch.Generator().manual_seed(9),
    )
    # kaiming_normal_ (fan_in, gain for leaky_relu with a=0: √2) is He init.
    assert all(
        torch.allclose(a, b) for a, b in zip(kaiming.weights(0), small.weights(0), strict=True)
    )
    with pytest.raises(ERFValueError, match="named init"):
        kaiming.prediction()


# --------------------------------------------------------------------------- 3. He
def test_he_mean_square_gradient_matches_expected_square() -> None:
    net = Network([Conv(3), Conv(3), Conv(3, stride=2), Conv(3)], ndim=2)
    count = 4000
    batched = BatchedNetworks(net, count, init="he", generator=torch.Generator().manual_seed(0))
    # The variance network by hand: 2/9 per tap of every 3×3 convolution.
    v = Kernel([[Fraction(2, 9)] * 3] * 3)
    by_hand = Network([Conv(v), Conv(v), Conv(v, stride=2), Conv(v)])
    pred, kind = batched.prediction()
    assert kind == "expected_square"
    assert pred.transfer(kind) == by_hand.transfer(kind)
    n = net.min_input_size()
    g = batched_input_gradients(batched, torch.zeros(n, dtype=F64)).numpy()
    sq = g**2
    want = exact_map(by_hand, n, "expected_square")
    assert z_max(sq, want) <= Z
    assert np.all(sq[:, want == 0] == 0)
    # Xavier's variance (1/9 per tap: the prediction / 2**4) is rejected.
    xavier = exact_map(variance_network(net, "xavier"), n, "expected_square")
    assert np.allclose(xavier, want / 16)
    assert z_max(sq, xavier) > 2 * Z


def test_xavier_and_random_match_expected_square() -> None:
    # Xavier on single-channel 3-tap kernels: total expected square 1 per layer (linear).
    net = paper_network(5, ndim=1)
    b = BatchedNetworks(net, 3000, init="xavier", generator=torch.Generator().manual_seed(2))
    pred, kind = b.prediction()
    assert sum(pred.transfer(kind).flat) == 1
    sq = batched_input_gradients(b, torch.zeros(11, dtype=F64)).numpy() ** 2
    assert z_max(sq, exact_map(pred, 11, kind)) <= Z
    # init="random": the network's own kernels are the per-tap variances.
    v = Network([Conv(Kernel([1, 2, 1])), Conv(Kernel([3, 1]), stride=2), Conv(Kernel([1, 1, 2]))])
    b = BatchedNetworks(v, 3000, init="random", generator=torch.Generator().manual_seed(4))
    pred, kind = b.prediction()
    assert (pred, kind) == (v, "expected_square")
    n = v.min_input_size()
    sq = batched_input_gradients(b, torch.zeros(n, dtype=F64)).numpy() ** 2
    assert z_max(sq, exact_map(v, n, kind)) <= Z


# --------------------------------------------------------------------------- 4. Section 4
def test_centre_low_gives_a_larger_erf_than_he() -> None:
    strength = 4
    net = paper_network(6)
    he_net = variance_network(net, "he")
    cl_net = variance_network(net, "centre_low", strength=strength)
    # Exact prediction: the same total, a larger variance on both axes.
    kind = "expected_square"
    he_total, _, he_cov = he_net.moments(kind)
    cl_total, _, cl_cov = cl_net.moments(kind)
    assert he_total == cl_total == 2**6
    ratio2 = Fraction(cl_cov[0][0]) / Fraction(he_cov[0][0])
    assert ratio2 == Fraction(26, 33) / Fraction(2, 3)  # per layer (6 + 5a)/(9 + 6a), a = 4
    assert ratio2 > 1 and cl_cov[1][1] == cl_cov[0][0]
    for default in (variance_network(net, "centre_low"),):  # strength 1: (11/15) / (2/3)
        assert Fraction(default.moments(kind)[2][0][0]) / Fraction(he_cov[0][0]) == Fraction(11, 10)
    predicted = math.sqrt(ratio2)

    # Measured: mean squared gradients of 4000 networks each, linear (exact in expectation).
    n = net.min_input_size()
    count, groups = 4000, 20
    maps = {}
    for init, seed in (("he", 10), ("centre_low", 11)):
        b = BatchedNetworks(
            net, count, init=init, strength=strength, generator=torch.Generator().manual_seed(seed)
        )
        maps[init] = batched_input_gradients(b, torch.zeros(n, dtype=F64)).numpy() ** 2

    def ratio(keep: np.ndarray) -> float:
        a = map_std(maps["centre_low"][keep].mean(0))
        b = map_std(maps["he"][keep].mean(0))
        return float(np.mean(a / b))

    everything = np.ones(count, bool)
    measured = ratio(everything)
    # Group jackknife standard error of the ratio of the two ERF standard deviations.
    leave_out = []
    for i in range(groups):
        keep = everything.copy()
        keep[i * count // groups : (i + 1) * count // groups] = False
        leave_out.append(ratio(keep))
    jack = np.array(leave_out)
    se = math.sqrt((groups - 1) / groups * float(((jack - jack.mean()) ** 2).sum()))
    print(f"std ratio centre_low/He: measured {measured:.4f} ± {se:.4f}, predicted {predicted:.4f}")
    assert abs(measured - predicted) <= Z * se, (measured, predicted, se)
    assert measured - Z * se > 1  # the larger ERF is measured, not only predicted
    # The predicted standard deviations themselves.
    got = map_std(maps["centre_low"].mean(0))
    assert np.allclose(got, cl_net.std(kind), rtol=0.02)


# --------------------------------------------------------------------------- 5. inits
def test_init_functions_have_their_per_tap_variances() -> None:
    gen = torch.Generator().manual_seed(0)
    samples = 20000
    for fill, kernel, opts in (
        (he_, he_variances((3, 3)), {}),
        (xavier_, xavier_variances((3, 3)), {}),
        (centre_low_, centre_low_variances((3, 3), 2), {"strength": 2}),
    ):
        w = torch.empty(samples, 1, 3, 3, dtype=F64)
        fill(w, generator=gen, **opts)
        # Each row is one single-channel 3×3 weight: fans are 9 (torch's rule on the
        # full tensor would give fan_out 9 * samples, so compare against the kernel).
        want = np.array([[float(v) for v in row] for row in kernel.weights])
        sq = w[:, 0].numpy() ** 2
        # fan_out of this tensor is samples·9, which changes Xavier: use the actual fans.
        if fill is xavier_:
            want = np.full((3, 3), 2 / (9 + samples * 9))
        assert z_max(sq, want) <= Z
        assert abs(float(w.mean())) <= Z * math.sqrt(want.mean() / w.numel())


def test_centre_low_is_scaled_he() -> None:
    he = he_(torch.empty(5, 2, 3, 3, dtype=F64), torch.Generator().manual_seed(7))
    low = centre_low_(torch.empty(5, 2, 3, 3, dtype=F64), torch.Generator().manual_seed(7))
    v = centre_low_variances((3, 3), fan_in=18)
    scale = torch.tensor([[math.sqrt(x * 9) for x in row] for row in v.weights], dtype=F64)
    assert torch.allclose(low, he * scale, rtol=1e-14, atol=0)


def test_variance_kernels() -> None:
    assert he_variances(3) == Kernel([Fraction(2, 3)] * 3)
    assert he_variances((1, 2), fan_in=4).weights == ((Fraction(1, 2), Fraction(1, 2)),)
    assert xavier_variances(2, fan_in=2, fan_out=6, gain="1/2") == Kernel(["1/16", "1/16"])
    # 1-D, 5 taps, a = 3: ρ² = (1, 1/4, 0, 1/4, 1) · 3 + 1 = (4, 7/4, 1, 7/4, 4), sum 25/2.
    k = centre_low_variances(5, strength=3)
    assert k.weights == tuple(
        Fraction(2) * p / Fraction(25, 2) for p in (4, Fraction(7, 4), 1, Fraction(7, 4), 4)
    )
    assert sum(k.flat) == 2
    assert centre_low_variances((1, 1)) == Kernel([[2]])
    assert centre_low_variances((1, 3), strength=Fraction(1, 2)).weights[0][1] < Fraction(2, 3)
    # Larger strength: more variance at the corners, never a smaller ERF (3×3).
    covs = [centre_low_variances((3, 3), a).covariance() for a in (0, 1, 4, 100)]
    assert all(a[0][0] < b[0][0] for a, b in itertools.pairwise(covs))
    assert covs[0][0][0] == Fraction(2, 3) and covs[1][0][0] == Fraction(11, 15)
    ones = ones_(torch.empty(2, 1, 3))
    assert torch.equal(ones, torch.ones(2, 1, 3))


def test_variance_network_keeps_geometry_and_blocks() -> None:
    net = Network(
        [
            Conv(Kernel([[1, 2], [3, 4]], anchor=(1, 1)), stride=(2, 1)),
            Residual(Conv(3, dilation=2), ReLU(), shortcut=[Conv(1)]),
            Parallel(Conv(1), []),
            MaxPool(2),
        ]
    )
    v = variance_network(net, "centre_low", strength=2)
    assert v.receptive_field == net.receptive_field
    assert v.min_input_size() == net.min_input_size()
    assert v.layers[0].kernel("gradient", 2).anchors == (1, 1)
    assert v.layers[0].kernel("gradient", 2) == Kernel(
        centre_low_variances((2, 2), 2), anchor=(1, 1)
    )
    assert isinstance(v.layers[1], Residual) and len(v.layers[1].shortcut) == 1
    custom = variance_network(net, Kernel.uniform)
    ones = Kernel([[1, 1], [1, 1]], anchor=(1, 1))
    same = Network([Conv(ones, stride=(2, 1)), *net.layers[1:]])
    assert custom.transfer("expected_square") == same.transfer("expected_square")
    with pytest.raises(ERFValueError, match="init must be"):
        variance_network(net, "kaiming")
    with pytest.raises(ERFValueError, match="shape"):
        variance_network(net, lambda size: Kernel([1]))


def test_paper_network() -> None:
    assert len(paper_network(20)) == 20
    relu = paper_network(4, activation="relu", dropout=0.5)
    assert [type(x).__name__ for x in relu] == ["Conv", "ReLU", "Dropout"] * 3 + ["Conv"]
    assert relu.receptive_field.size == (9, 9)
    sub = paper_network(15, stride_layers=(4, 8, 12))
    assert sub.receptive_field.jump == (8, 8)
    # Layers 0-4 on the input grid, 5-8 on a grid 2 coarser, 9-12 on 4, 13-14 on 8.
    assert sub.receptive_field.size == (1 + 2 * (5 + 4 * 2 + 4 * 4 + 2 * 8),) * 2
    dil = paper_network(15, dilations=[1, 1, 1, 1, 2, 1, 1, 1, 4, 1, 1, 1, 8, 1, 1])
    assert dil.receptive_field == paper_network(15, dilations={4: 2, 8: 4, 12: 8}).receptive_field
    res = paper_network(3, ndim=1, activation="tanh", residual=True, stride_layers=[0])
    assert [type(x).__name__ for x in res] == ["Conv", "Tanh", "Residual", "Residual"]
    custom = paper_network(2, activation=Activation("half", "1/2", "1/4"))
    assert custom.layers[1].factor("gradient") == Fraction(1, 2)
    # The three networks of Fig. 1: uniform, random, random + ReLU (20 layers).
    for init, act in (("ones", None), ("he", None), ("he", "relu")):
        b = BatchedNetworks(paper_network(20, activation=act), 2, init=init)
        assert len(b.convs) == 20


# --------------------------------------------------------------------------- errors
def test_errors() -> None:
    net = paper_network(2, ndim=1)
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(ERFValueError, match="count"):
            BatchedNetworks(net, bad)  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="init must be one of"):
        BatchedNetworks(net, 2, init="kaiming")
    with pytest.raises(ERFValueError, match="strength"):
        BatchedNetworks(net, 2, init="centre_low", strength=-1)
    with pytest.raises(ERFTypeError, match="generic Activation"):
        BatchedNetworks(Network([Conv(3), Activation("a", 1, 1)]), 2)
    b = BatchedNetworks(net, 2)
    with pytest.raises(ERFValueError, match="input must have shape"):
        batched_input_gradients(b, torch.zeros(3, 4, 5))
    with pytest.raises(ERFValueError, match="input must have shape"):
        batched_input_gradients(b, torch.zeros(2, 3, 5))
    with pytest.raises(ERFValueError, match="input must have shape"):
        b(torch.zeros(1, 3, 5, dtype=F64))
    with pytest.raises(ERFValueError, match="outside the output"):
        batched_input_gradients(b, torch.zeros(5), output_unit=5)
    with pytest.raises(ERFValueError, match="one int per axis"):
        batched_input_gradients(b, torch.zeros(5), output_unit=(1, 1))
    with pytest.raises(ERFValueError, match="either input or size"):
        batched_input_gradients(b, torch.zeros(5), size=5)
    with pytest.raises(ERFValueError, match="empty output"):
        batched_input_gradients(BatchedNetworks([Conv(3, padding=0)], 1), torch.zeros(2))
    with pytest.raises(ERFTypeError, match="BatchedNetworks"):
        batched_input_gradients(net, torch.zeros(5))  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="index"):
        b.weights(2)
    for bad_kw in (
        {"depth": 0},
        {"depth": 3, "activation": "elu"},
        {"depth": 3, "stride_layers": [3]},
        {"depth": 3, "dilations": [1, 2]},
        {"depth": 3, "dilations": {5: 2}},
        {"depth": 3, "dilations": {1: 0}},
        {"depth": 3, "dropout": 1},
        {"depth": 3, "ndim": 3},
        {"depth": 3, "kernel_size": 0},
    ):
        with pytest.raises(ERFValueError):
            paper_network(**bad_kw)
    with pytest.raises(ERFValueError, match="strength"):
        centre_low_variances(3, strength=-1)
    with pytest.raises(ERFTypeError, match="strength"):
        centre_low_variances(3, strength=None)
    with pytest.raises(ERFValueError, match="kernel_size"):
        he_variances((3, 0))
    with pytest.raises(ERFValueError, match="fan_in"):
        he_variances(3, fan_in=0)
    with pytest.raises(ERFValueError, match="convolution weight"):
        he_(torch.empty(3, 3))


# --------------------------------------------------------------------------- reliability
INITS_RANDOM = ("he", "xavier", "centre_low", "random")


def _weights(b: BatchedNetworks) -> list[torch.Tensor]:
    return [conv.weight.detach().clone() for conv in b.convs]


@pytest.mark.parametrize("init", INITS_RANDOM)
def test_same_seed_same_networks_and_gradients_bit_for_bit(init: str) -> None:
    net = paper_network(3, ndim=1, activation="relu", dropout=0.25)
    state = torch.get_rng_state()
    a = BatchedNetworks(net, 4, init=init, generator=3)
    b = BatchedNetworks(net, 4, init=init, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(_weights(a), _weights(b), strict=True))
    c = BatchedNetworks(net, 4, init=init, generator=4)
    assert not all(torch.equal(u, v) for u, v in zip(_weights(a), _weights(c), strict=True))
    # random inputs and (train mode) dropout masks come from the generator
    assert a.training
    ga = batched_input_gradients(a, generator=7)
    gb = batched_input_gradients(b, generator=torch.Generator().manual_seed(7))
    assert torch.equal(ga, gb)
    assert not torch.equal(ga, batched_input_gradients(a, generator=8))
    x = torch.randn(2, 4, 9, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.equal(
        batched_input_gradients(a, x, generator=1), batched_input_gradients(a, x, generator=1)
    )
    # a shared generator moves on: fresh masks every call
    g = torch.Generator().manual_seed(1)
    assert not torch.equal(
        batched_input_gradients(a, x, generator=g), batched_input_gradients(a, x, generator=g)
    )
    # torch's global generator was neither used nor changed
    assert torch.equal(torch.get_rng_state(), state)


def test_no_generator_is_seed_zero_never_the_global_one() -> None:
    net = paper_network(2, ndim=1)
    torch.manual_seed(1)
    a = BatchedNetworks(net, 3)
    torch.manual_seed(2)
    b = BatchedNetworks(net, 3)
    zero = BatchedNetworks(net, 3, generator=0)
    assert all(torch.equal(u, v) for u, v in zip(_weights(a), _weights(b), strict=True))
    assert all(torch.equal(u, v) for u, v in zip(_weights(a), _weights(zero), strict=True))
    state = torch.get_rng_state()
    model = to_torch(net, weights="random")
    assert torch.equal(torch.get_rng_state(), state)  # no default init of the modules
    again = to_torch(net, weights="random", generator=0)
    for u, v in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize("fill", [he_, xavier_, centre_low_, ones_])
def test_init_functions_are_reproducible(fill: Any) -> None:
    state = torch.get_rng_state()
    a = fill(torch.empty(4, 2, 3, 3, dtype=F64), 5)
    b = fill(torch.empty(4, 2, 3, 3, dtype=F64), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)  # a seed never touches the global one
    torch.manual_seed(3)  # None: torch's global generator, as torch.nn.init does
    c, d = fill(torch.empty(4, 2, 3, dtype=F64)), fill(torch.empty(4, 2, 3, dtype=F64))
    torch.manual_seed(3)
    assert torch.equal(c, fill(torch.empty(4, 2, 3, dtype=F64)))
    assert fill is ones_ or not torch.equal(c, d)  # successive layers differ
    with pytest.raises(ERFTypeError, match=r"torch\.Tensor"):
        fill([[1.0]])
    if fill is not ones_:
        with pytest.raises(ERFTypeError, match="floating"):
            fill(torch.zeros(2, 1, 3, dtype=torch.int64))
        for bad, cls in (
            (-1, ERFValueError),
            (2**64, ERFValueError),
            (1.5, ERFTypeError),
            ("1", ERFTypeError),
        ):
            with pytest.raises(cls, match="generator"):
                fill(torch.empty(1, 1, 3), bad)


def test_too_many_networks_are_refused_before_allocating() -> None:
    net = paper_network(3)
    with pytest.raises(SizeLimitError, match="convolution weights of 1000000000000 copies") as e:
        BatchedNetworks(net, 10**12)
    assert e.value.estimate > e.value.limit
    with pytest.raises(SizeLimitError, match="copies with 100000 channels"):
        to_torch(net, channels=10**5)
    b = BatchedNetworks(net, 2)
    with erftheory.memory_limit("1MiB"):
        with pytest.raises(SizeLimitError, match=r"input of shape \(1, 2, 1000, 1000\)"):
            batched_input_gradients(b, size=1000)
        with pytest.raises(SizeLimitError, match="input gradients"):
            batched_input_gradients(b, torch.zeros(400, 2, 20, 20))
    with pytest.raises(ERFTypeError, match="real numbers"):
        batched_input_gradients(b, torch.zeros(5, 5, dtype=torch.complex64))
    with pytest.raises(ERFTypeError, match="input must be a tensor"):
        batched_input_gradients(b, "zeros")  # type: ignore[arg-type]
