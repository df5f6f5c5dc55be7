"""The `Graph` block: any DAG of chains (issue 14, "any DAG in from_torch").

Every value is checked against an independent route: the same network written with
`Residual`/`Parallel` (exact, equal), torch autograd on `to_torch` (the transfer is the
input gradient of the centre unit), brute force over the paths of the DAG, the support
of autograd's gradient in a linearised copy (`autograd_rf`) for the receptive field, and
Monte Carlo over random networks for ``kind="expected_square"``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from erftheory import ERFTypeError, ERFValueError, Kernel, Network
from erftheory.arch import arch_to_dict, parse_arch
from erftheory.graph import compact_dag
from erftheory.layers import (
    AvgPool,
    BatchNorm,
    Conv,
    Graph,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
)
from erftheory.layers.registry import map_nested, walk

# 0 -> 1 -> 2, 0 -> 2, 1 -> 3, 2 -> 3: node 1 feeds two joins (not series-parallel)
N_GRAPH = Graph([Conv(Kernel([1, 2])), [Conv(Kernel([1, 0, 3]))], []], [[0], [0, 1], [1, 2]])


def _dense(k: int, layer: Any) -> Graph:
    """A dense block of ``k`` nodes (each reads every earlier one) and an output sum."""
    return Graph([layer] * k + [[]], [list(range(j)) for j in range(1, k + 2)])


# --------------------------------------------------------------------------- the layer
def test_graph_validates_its_nodes() -> None:
    with pytest.raises(ERFValueError, match="non-empty list of node chains"):
        Graph([], [])
    with pytest.raises(ERFValueError, match="one list of inputs per node"):
        Graph([Conv(3)], [[0], [0]])
    with pytest.raises(ERFValueError, match=r"node 2 reads node 2.*\[0, 1\]"):
        Graph([Conv(3), Conv(3)], [[0], [2]])
    with pytest.raises(ERFValueError, match="node 1 needs a non-empty list"):
        Graph([Conv(3)], [[]])
    with pytest.raises(ERFTypeError, match="inputs must be ints"):
        Graph([Conv(3)], [["0"]])
    with pytest.raises(ERFValueError, match="node 1 is read by no later node"):
        Graph([Conv(3), Conv(3)], [[0], [0]])


def test_graph_options_rebuild_it_and_walk_it() -> None:
    g = N_GRAPH
    assert repr(Graph(**g.options())) == repr(g)
    assert [repr(x) for x in walk([g])][1:] == ["Conv(Kernel([1, 2]))", "Conv(Kernel([1, 0, 3]))"]
    ones = map_nested(g, lambda x: Conv(3) if isinstance(x, Conv) else x)
    assert repr(ones) == "Graph([[Conv(3)], [Conv(3)], []], inputs=[[0], [0, 1], [1, 2]])"


def test_graph_arch_round_trip_and_errors() -> None:
    net = Network([Conv(3), N_GRAPH, AvgPool(2)])
    doc = arch_to_dict(net)
    assert doc["layers"][1]["graph"]["inputs"] == [[0], [0, 1], [1, 2]]
    again = parse_arch(doc)
    assert repr(again.layers) == repr(net.layers)
    bad = {"layers": [{"graph": {"nodes": [["relu"]], "inputs": [[1]]}}]}
    with pytest.raises(ERFValueError, match="reads node 1"):
        parse_arch(bad)
    with pytest.raises(ERFTypeError, match=r"inputs\[0\]\[0\]: must be a node index"):
        parse_arch({"layers": [{"graph": {"nodes": [["relu"]], "inputs": [[-1]]}}]})
    with pytest.raises(ERFValueError, match="needs 'inputs'"):
        parse_arch({"layers": [{"graph": {"nodes": [["relu"]]}}]})


def test_compact_dag_merges_runs_of_single_input_nodes() -> None:
    chains, ins = compact_dag([["a"], ["b"], ["c"], [], ["e"]], [[0], [1], [0], [2, 3], [4]])
    assert (chains, ins) == ([["a", "b"], ["c"], ["e"]], [[0], [0], [1, 2]])
    # an identity node with one input is that input; the output node is kept
    chains, ins = compact_dag([["a"], [], ["b"], []], [[0], [1], [0, 2], [1, 3]])
    assert (chains, ins) == ([["a"], ["b"], []], [[0], [0, 1], [1, 2]])


# --------------------------------------------------------------------------- algebra
def _coeffs(net: Network, kind: str = "gradient") -> list[Any]:
    return list(net.profile(kind=kind).coefficients)


@pytest.mark.parametrize("kind", ["gradient", "expected_square"])
def test_series_parallel_graphs_equal_their_blocks(kind: str) -> None:
    # the same networks written as Residual/Parallel and as Graph: equal, exactly
    body = [Conv(3), ReLU(), AvgPool(3, stride=1, padding=1), Conv(Kernel([1, 2, 1]))]
    pairs = [
        (Residual(*body), Graph([body, []], [[0], [0, 1]])),
        (
            Parallel([], Conv(1), [Conv(3), MaxPool(3, stride=1, padding=1)]),
            Graph(
                [[], Conv(1), [Conv(3), MaxPool(3, stride=1, padding=1)], []],
                [[0], [0], [0], [1, 2, 3]],
            ),
        ),
    ]
    for block, graph in pairs:
        for stem in ([], [Conv(3), ReLU()]):
            a = Network([*stem, block, Conv(3, stride=2)])
            b = Network([*stem, graph, Conv(3, stride=2)])
            assert a.receptive_field == b.receptive_field
            assert a.min_input_size() == b.min_input_size()
            assert _coeffs(a, kind) == _coeffs(b, kind), (block, kind)


def _poly(kernel: Kernel) -> np.ndarray:
    return np.array([Fraction(w) for w in kernel.flat], dtype=object)


def test_gradient_is_the_sum_over_paths() -> None:
    # brute force: every path of a stride-1 DAG of fixed 1-D kernels is the product of
    # its chains' kernels; 'same' padding centres each, so the sum aligns on centres
    kernels = [Kernel([1, 2]), Kernel([3, 0, 1]), Kernel([1, 1, 1, 1, 2]), Kernel([2, 5, 1])]
    inputs = [[0], [0, 1], [1, 2], [0, 2, 3]]
    graph = Graph([Conv(k) for k in kernels], inputs)
    net = Network([graph])

    def paths(node: int) -> list[list[int]]:
        if node == 0:
            return [[]]
        return [[*p, node] for j in inputs[node - 1] for p in paths(j)]

    # position of tap e of a chain of 'same' kernels relative to the output unit: e - anchor
    total: dict[int, Fraction] = {}
    for path in paths(len(kernels)):
        poly, shift = np.array([Fraction(1)], dtype=object), 0
        for node in path:
            k = kernels[node - 1]
            poly = np.convolve(poly, _poly(k))
            shift += (k.shape[0] - 1) // 2
        for e, c in enumerate(poly):
            total[e - shift] = total.get(e - shift, Fraction(0)) + c
    lo = min(p for p, c in total.items() if c)
    hi = max(p for p, c in total.items() if c)
    want = [total.get(p, Fraction(0)) for p in range(lo, hi + 1)]
    assert _coeffs(net) == want
    assert net.receptive_field.size == hi - lo + 1
    assert net.receptive_field.offset == lo


def test_expected_square_assumption_at_a_shared_random_layer() -> None:
    # One random conv (variances V = 1 per tap) inside the graph feeds two fixed routes
    # that meet again: a direct one and one through a fixed factor s. The assumption
    # stated on Graph: the two routes' expected squares add, V (1 + s^2), while the
    # exact (coherent) value, which the Residual form gives, is V (1 + s)^2.
    s = Fraction(3)
    graph = Network([Graph([Conv(3), BatchNorm(s), []], [[0], [1], [1, 2]])])
    block = Network([Conv(3), Residual(BatchNorm(s))])
    assert _coeffs(graph, "expected_square") == [1 + s * s] * 3
    assert _coeffs(block, "expected_square") == [(1 + s) ** 2] * 3
    # a random layer before the graph reaches it through the graph's deterministic part,
    # which is summed coherently: exact
    outside = Network([Conv(3), Graph([BatchNorm(s), []], [[0], [0, 1]])])
    assert _coeffs(outside, "expected_square") == [(1 + s) ** 2] * 3
    # with a random layer on one route the routes are uncorrelated: exact, both agree
    graph = Network([Graph([Conv(3), Conv(1), []], [[0], [1], [1, 2]])])
    block = Network([Conv(3), Residual(Conv(1))])
    assert _coeffs(graph, "expected_square") == _coeffs(block, "expected_square")


@pytest.mark.parametrize("kind", ["gradient", "expected_square"])
def test_moments_without_expansion_equal_the_expanded_ones(kind: str) -> None:
    # the closed-form moments algebra, propagated through the graph, against the moments
    # of the exact coefficients
    net = Network(
        [Conv(3), N_GRAPH, Conv(3, stride=2), _dense(3, [Conv(Kernel([1, 3, 2])), ReLU()])]
    )
    total, mean, var = net.moments(kind)
    c = net.profile(kind=kind).coefficients
    origin = (len(c) - 1) // 2
    t = sum(c)
    m = sum(Fraction(ci) * (i - origin) for i, ci in enumerate(c)) / t
    v = sum(Fraction(ci) * (i - origin - m) ** 2 for i, ci in enumerate(c)) / t
    assert (total, mean, var) == (t, m, v)


def test_inputs_of_different_strides_are_refused() -> None:
    graph = Graph([Conv(3, stride=2), []], [[0], [0, 1]])
    with pytest.raises(ERFValueError, match="different grids"):
        Network([graph]).receptive_field  # noqa: B018


def test_float_route_equals_the_exact_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import erftheory.network.network as network_module

    net = Network([Conv((3, 3)), _dense(4, [Conv((3, 3)), ReLU(), AvgPool((2, 2), stride=1)])])
    for kind in ("gradient", "expected_square"):
        exact = net.profile(kind=kind).normalized()
        with monkeypatch.context() as m:
            m.setattr(network_module, "EXACT_AUTO_BYTES", 0)  # force the float route
            fl = net.profile(kind=kind)
        assert fl.abs_error_bound is not None
        # the float route's own bound on every normalised value
        assert np.abs(fl.normalized() - exact).max() <= fl.abs_error_bound, kind


# --------------------------------------------------------------------------- torch
torch = pytest.importorskip("torch")
nn = torch.nn

from erftheory.torch import to_torch  # noqa: E402 (needs torch)
from erftheory.torch.empirical import empirical_erf  # noqa: E402
from erftheory.torch.models import autograd_rf, network_rf  # noqa: E402
from erftheory.torch.trace import from_torch  # noqa: E402

torch.set_num_threads(1)


def _torch_transfer(net: Network) -> np.ndarray:
    """The input gradient of the centre output unit of ``to_torch(net)`` (float64)."""
    model = to_torch(net, dtype=torch.float64)
    per = (lambda v: (v,)) if net.ndim == 1 else tuple
    size = per(net.min_input_size())
    x = torch.zeros((1, 1, *size), dtype=torch.float64, requires_grad=True)
    y = model(x)
    c = per(net.centre_output(size if net.ndim > 1 else size[0]))
    y[(0, 0, *c)].backward()
    g = x.grad[0, 0].numpy()
    rf = net.receptive_field
    start = [o + j * i for o, j, i in zip(per(rf.offset), per(rf.jump), c, strict=True)]
    return g[tuple(slice(a, a + s) for a, s in zip(start, per(rf.size), strict=True))]


def test_torch_graph_block_gradient_equals_the_transfer() -> None:
    net = Network([Conv(3), N_GRAPH, Conv(Kernel([2, 1]), stride=2), N_GRAPH])
    got = _torch_transfer(net)
    want = np.array([float(c) for c in net.transfer().weights])
    assert np.array_equal(got, want)  # integers well below 2^53: exact in float64


def test_geometry_of_a_2d_dag_with_strides() -> None:
    graph = Graph(
        [
            [Conv((3, 3), stride=2)],
            [Conv((3, 1))],
            [Conv((1, 5), padding=(0, 2))],
            [],
        ],
        [[0], [1], [1, 2], [1, 2, 3]],
    )
    net = Network([Conv((3, 3)), graph, Conv((3, 3), stride=2)])
    rf = net.receptive_field
    assert rf.jump == (4, 4)
    # the widest route: 3x3, 3x3/2, 3x1 (at jump 2), 1x5 (at jump 2), 3x3/2 (at jump 2)
    assert rf.size == (3 + 2 + 2 * 2 + 2 * 2, 3 + 2 + 2 * 4 + 2 * 2)
    # torch: the support of the centre unit's input gradient (all-ones kernels) is the RF
    got = _torch_transfer(net)
    assert got.shape == rf.size
    nonzero = np.argwhere(got != 0)
    assert tuple(nonzero.min(0)) == (0, 0)
    assert tuple(nonzero.max(0)) == (rf.size[0] - 1, rf.size[1] - 1)
    want = np.array([[float(c) for c in row] for row in net.transfer().weights])
    assert np.array_equal(got, want)
    for side in (net.min_input_size()[0], 40):
        assert autograd_rf(to_torch(net), (1, side, side)) == network_rf(net, side)


def test_from_torch_round_trip_keeps_the_graph() -> None:
    # odd kernels: an even one's asymmetric 'same' padding is a pad that from_torch refuses
    odd = Graph([Conv(Kernel([1, 2, 1])), [Conv(Kernel([1, 0, 3]))], []], [[0], [0, 1], [1, 2]])
    net = Network([Conv(3), odd, AvgPool(2)])
    model = to_torch(net)
    again = from_torch(model, (1, net.min_input_size()), weights="model")
    assert [type(x).__name__ for x in again.layers] == ["Conv", "Graph", "AvgPool"]
    assert _coeffs(again) == _coeffs(net)
    # a series-parallel model still becomes Residual, as before
    res = from_torch(to_torch(Network([Conv(3), Residual(Conv(3))])), (1, 9))
    assert [type(x).__name__ for x in res.layers] == ["Conv", "Residual"]


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, feats: list[Any]) -> Any:
        return self.conv(torch.relu(self.bn(torch.cat(feats, 1))))


class _TinyDenseNet(nn.Module):
    """A stem, a dense block of three layers, a strided transition and a second block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
        self.block1 = nn.ModuleList([_DenseLayer(4 + 3 * i, 3) for i in range(3)])
        self.trans = nn.Sequential(nn.Conv2d(13, 4, 1, bias=False), nn.AvgPool2d(2))
        self.block2 = nn.ModuleList([_DenseLayer(4 + 3 * i, 3) for i in range(2)])
        self.head = nn.Linear(10, 5)

    def forward(self, x: Any) -> Any:
        feats = [self.stem(x)]
        for layer in self.block1:
            feats.append(layer(feats))
        feats = [self.trans(torch.cat(feats, 1))]
        for layer in self.block2:
            feats.append(layer(feats))
        y = torch.cat(feats, 1).mean((2, 3))
        return self.head(y)


def test_from_torch_reads_a_dense_block_as_a_graph() -> None:
    model = _TinyDenseNet().eval()
    net = from_torch(model, (2, 32, 32))
    graphs = [x for x in net.layers if isinstance(x, Graph)]
    assert [len(g.nodes) for g in graphs] == [4, 3]  # the dense layers and the output sum
    n = max(net.min_input_size())
    for side in (n, n + 5, 24):
        assert autograd_rf(model, (2, side, side)) == network_rf(net, side), side


class _PlainDense(nn.Module):
    """A dense block without normalisation: node k = conv_k(cat of all earlier nodes).

    One channel in, one out per convolution (growth 1): with all-ones weights every path
    gets the weight of its kernels alone, so torch's channel-summed input gradient is
    the network's exact transfer.
    """

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(i + 1, 1, 3, padding=1, bias=False) for i in range(k)]
        )
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: Any) -> Any:
        feats = [x]
        for conv in self.convs:
            feats.append(conv(torch.cat(feats, 1)))
        return self.pool(torch.cat(feats, 1))


def test_dense_block_profile_equals_torch_with_ones_weights() -> None:
    model = _PlainDense().double().eval()
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.fill_(1.0)
    net = from_torch(model, (1, 16, 16))
    assert [type(x).__name__ for x in net.layers] == ["Graph", "AvgPool"]
    n = net.min_input_size()
    x = torch.ones((1, 1, *n), dtype=torch.float64, requires_grad=True)
    out = model(x)
    c = net.centre_output(n)
    out[(0, slice(None), *c)].sum().backward()
    got = x.grad[0].sum(0).numpy()
    rf = net.receptive_field
    r0, c0 = (o + j * i for o, j, i in zip(rf.offset, rf.jump, c, strict=True))
    want = np.zeros(n)
    want[r0 : r0 + rf.size[0], c0 : c0 + rf.size[1]] = np.array(
        [[float(v) for v in row] for row in net.transfer().weights]
    )
    assert np.array_equal(got, want)  # small integers times 1/4: exact in float64


# --------------------------------------------------------------------------- Monte Carlo
MC_NETWORKS = 1500  # random networks averaged (one map each)
MC_CHANNELS = 6  # channels per layer: sums of paths keep the tails light (CLT)
MC_Z = 5.0  # every pixel within 5 standard errors


def _z_scores(net: Network, erf: Any, kind: str, channels: int) -> tuple[float, float]:
    """Max |z| of the normalised maps, and of the raw map against ``channels`` times the
    theory (seeding every output channel multiplies the expected square by them)."""
    n = erf.map.shape[0]
    rf = net.receptive_field
    start = rf.offset + rf.jump * net.centre_output(n)
    want = np.zeros(n)
    want[start : start + rf.size] = [float(c) for c in net.profile(kind=kind).coefficients]
    m = erf.stderr > 0
    total = erf.map.sum()
    z_norm = (erf.map / total - want / want.sum())[m] / (erf.stderr / total)[m]
    z_raw = (erf.map - channels * want)[m] / erf.stderr[m]
    assert np.all(erf.map[want == 0] == 0)  # nothing outside the RF
    return float(np.abs(z_norm).max()), float(np.abs(z_raw).max())


def test_expected_square_of_a_dense_block_matches_monte_carlo() -> None:
    # A dense-connected 1-D model where every route that leaves a node and meets another
    # again crosses a different random convolution: the Graph algebra's assumption
    # holds exactly, so the theory must match the mean over random networks. The fixed
    # average pool in each node makes the expected square differ from the fixed-weight
    # profile (sq(F) instead of F), which the same measurement must reject.
    node = [Conv(3), AvgPool(3, stride=1, padding=1)]
    net = Network([Conv(3), _dense(3, node), Conv(Kernel([1, 1]), stride=2)])
    n = net.min_input_size()

    def factory(run: int, gen: torch.Generator) -> nn.Module:
        return to_torch(net, weights="random", generator=gen, channels=MC_CHANNELS)

    erf = empirical_erf(factory, (MC_CHANNELS, n), runs=MC_NETWORKS, seed=14)
    assert erf.count == MC_NETWORKS
    z_norm, z_raw = _z_scores(net, erf, "expected_square", MC_CHANNELS)
    assert z_norm <= MC_Z and z_raw <= MC_Z, (z_norm, z_raw)
    wrong = _z_scores(net, erf, "gradient", MC_CHANNELS)
    assert min(wrong) > 10 * MC_Z, wrong


# --------------------------------------------------------------------------- real models
def test_densenet121_and_dla34_are_read() -> None:
    from erftheory.torch.models import import_timm, import_torchvision

    try:
        tv = import_torchvision()
        timm = import_timm()
    except ImportError as exc:  # pragma: no cover - the torch extra without them
        pytest.skip(f"torchvision or timm missing: {exc}")
    # torchvision's DenseNet class, small enough for an unclipped field: the RF box
    # equals autograd's support at the smallest input that holds it, and beyond
    small = tv.models.DenseNet(growth_rate=4, block_config=(2, 3), num_init_features=8, bn_size=2)
    net = from_torch(small.eval(), (3, 64, 64))
    assert [len(x.nodes) for x in net.layers if isinstance(x, Graph)] == [3, 4]
    n = max(net.min_input_size())
    for side in (n, n + 7):
        assert autograd_rf(small, (3, side, side)) == network_rf(net, side), side
    # the real ones at 224 (their fields are larger than the input: the box is clipped)
    dense = tv.models.densenet121(weights=None).eval()
    dla = timm.create_model("dla34", pretrained=False).eval()
    for model, rf_size, blocks in ((dense, 2071, 4), (dla, 623, 3)):
        net = from_torch(model, (3, 224, 224))
        assert sum(isinstance(x, Graph) for x in net.layers) == blocks
        assert net.receptive_field.size == (rf_size, rf_size)
        assert autograd_rf(model, (3, 224, 224)) == network_rf(net, 224)


def test_product_of_a_dense_block_is_unchanged_by_compaction() -> None:
    # a dense block of single-layer nodes written with identity nodes in between reads
    # the same as the compact one
    loose = Graph(
        [[Conv(3)], [], [Conv(3)], [], []],
        [[0], [1], [0, 2], [3], [2, 4]],
    )
    chains, ins = compact_dag(list(loose.nodes), [list(i) for i in loose.inputs])
    tight = Graph(chains, ins)
    assert len(tight.nodes) < len(loose.nodes)
    for kind in ("gradient", "expected_square"):
        assert _coeffs(Network([loose]), kind) == _coeffs(Network([tight]), kind)
