"""`batched_input_gradients` on the receptive-field window equals the whole-input pass."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from erftheory import Network  # noqa: E402
from erftheory.layers import AvgPool, Conv, Dropout, MaxPool, ReLU, Residual  # noqa: E402
from erftheory.paper import paper_network  # noqa: E402
from erftheory.torch.batched import (  # noqa: E402
    BatchedNetworks,
    _window,
    batched_input_gradients,
)

F64_TOL = 1e-13  # float64 convolutions of two input sizes (relative to the peak)


NETWORKS = {
    "plain": paper_network(6, activation="relu"),
    "strided-dilated-pooled": Network(
        [Conv(3, stride=2), ReLU(), Conv(3, dilation=2), Conv(2), MaxPool(2), Conv(3)]
    ),
    "residual-2d": Network(
        [
            Conv((3, 3), stride=2),
            ReLU(),
            Residual([Conv((3, 3)), ReLU(), Conv((3, 3))]),
            AvgPool((2, 2)),
            Conv((3, 3), stride=2),
        ]
    ),
    "even-kernel-2d": Network([Conv((2, 4)), ReLU(), Conv((3, 3), stride=(1, 2))]),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_window_equals_the_whole_input(name: str) -> None:
    net = NETWORKS[name]
    nd = net.ndim
    batched = BatchedNetworks(net, 3, init="he", generator=1)
    cropped = 0
    for n in (9, 16, 23, 40):
        shape = (n,) * nd
        out = net.output_size(shape if nd > 1 else n)
        outs = (out,) if isinstance(out, int) else tuple(out)
        if min(outs) < 1:
            continue
        x = torch.randn(
            (3, *shape), generator=torch.Generator().manual_seed(n), dtype=torch.float64
        )
        units = list(itertools.product(*[range(o) for o in outs]))
        for unit in units[:: max(1, len(units) // 7)]:
            whole = batched_input_gradients(batched, x, output_unit=unit, crop=False)
            window = batched_input_gradients(batched, x, output_unit=unit)
            peak = float(whole.abs().max())
            assert float((whole - window).abs().max()) <= F64_TOL * peak, (n, unit)
            cropped += _window(net, unit, shape) is not None
    assert cropped > 0  # some window was smaller than its input


def test_window_geometry() -> None:
    net = paper_network(20, activation="relu")  # RF 41: the window of 64 x 64 is 41 x 41
    box, inner = _window(net, (31, 31), (64, 64))  # type: ignore[misc]
    assert box == ((11, 52), (11, 52)) and inner == (20, 20)
    assert _window(net, (20, 20), (41, 41)) is None  # the whole input
    strided = Network([Conv(3, stride=2), Conv(3, stride=2)])  # jump 4, RF 7 from -3
    box, inner = _window(strided, (5,), (40,))  # type: ignore[misc]
    # the window 17 .. 23 starts at a multiple of the jump: 16, so unit 5 becomes unit 1
    assert box == ((16, 24),) and inner == (1,)


def test_dropout_in_train_mode_runs_the_whole_input() -> None:
    net = Network([Conv(3), Dropout(0.5), ReLU(), Conv(3)])
    batched = BatchedNetworks(net, 4, init="he", generator=2)
    batched.train()
    x = torch.randn(4, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = batched_input_gradients(batched, x, generator=5)
    b = batched_input_gradients(batched, x, generator=5, crop=False)
    assert torch.equal(a, b)  # the same masks: the whole input both times
