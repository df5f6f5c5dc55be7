"""Gates and heads in the autograd route (`erftheory.torch.models`, issue 14).

`gate_mul` and `detach_gates` hold a squeeze-and-excitation gate constant (the local ERF
`from_torch` reads) or keep its pooled path, rescaled to mean one; without the rescaling
a deep linearised copy overflows (EfficientNet-B0's autograd check was NaN everywhere).
`autograd_rf` must skip a head that permutes a pooled vector to channels-last (ConvNeXt).
Every RF is checked against `from_torch` (`network_rf`), every gradient against torch's
autograd of the same product written out by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from erftheory import ERFValueError

torch = pytest.importorskip("torch")
nn = torch.nn

from erftheory.torch.models import (  # noqa: E402 (needs torch)
    autograd_rf,
    detach_gates,
    gate_mul,
    linearised_copy,
    linearised_functions,
    network_rf,
    pooled_share,
)
from erftheory.torch.trace import from_torch  # noqa: E402

# float64 sums of a few hundred terms of order one: rounding far below this
TOL = 1e-12



class SE(nn.Module):
    """``x + x * pool(x)``: a gated residual block whose gate is the map's own mean."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x: Any) -> Any:
        y = self.conv(x)
        return x + y * torch.sigmoid(self.fc(self.pool(y)))


def deep_gated(blocks: int = 12) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 2, 3), *[SE(2) for _ in range(blocks)], nn.AdaptiveAvgPool2d(1)
    )


def _plain_detach(a: Any, b: Any) -> Any:
    """The old comparison: the gate detached but not rescaled."""
    if b.shape[2:] == (1, 1):
        b = b.detach()
    elif a.shape[2:] == (1, 1):
        a = a.detach()
    return a * b


def test_gate_mul_values_and_gradients_against_the_written_out_product():
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    for gates in ("local", "pooled"):
        g = 2 * x.mean(dim=(2, 3), keepdim=True) ** 2
        got = gate_mul(x, g, gates)
        gate = g if gates == "pooled" else g.detach()
        want = x * gate / g.detach().mean()
        assert torch.allclose(got, want, rtol=0, atol=TOL)
        (ga,) = torch.autograd.grad(got[0, :, 1, 2].sum(), x)
        x2 = x.detach().clone().requires_grad_()
        g2 = 2 * x2.mean(dim=(2, 3), keepdim=True) ** 2
        gate2 = g2 if gates == "pooled" else g2.detach()
        (gb,) = torch.autograd.grad((x2 * gate2 / g2.detach().mean())[0, :, 1, 2].sum(), x2)
        assert torch.allclose(ga, gb, rtol=0, atol=TOL)
        # local: only the unit's own pixel; pooled: every pixel (the path through the pool)
        nonzero = int((ga.abs().sum(dim=1) != 0).sum())
        assert nonzero == (16 if gates == "pooled" else 1)
    # the gate on the left, and products that are no gate, are plain products
    g = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(gate_mul(g, x), gate_mul(x, g), rtol=0, atol=0)
    assert torch.equal(gate_mul(x, x), x * x)
    assert torch.equal(gate_mul(x, 3.0), x * 3.0)


def test_gates_option_is_checked():
    x = torch.ones(1, 1, 2, 2)
    with pytest.raises(ERFValueError, match=r"gates must be one of \('local', 'pooled'\)"):
        gate_mul(x, x.mean(dim=(2, 3), keepdim=True), "global")
    with pytest.raises(ERFValueError, match="gates must be one of"):
        detach_gates(nn.Conv2d(1, 1, 3), "both")


def test_unscaled_gates_overflow_the_linearised_copy():
    """Why `gate_mul` rescales: each gated block squares the values (v -> v + v^2)."""
    import operator

    from erftheory.torch.trace import _trace

    model = deep_gated()
    gm = _trace(model, "model")
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is operator.mul:
            node.target = _plain_detach
    gm.recompile()
    copy = linearised_copy(gm)
    x = torch.rand(1, 2, 40, 40, dtype=torch.float64) + 0.5
    with linearised_functions():
        y = copy(x)
    assert not bool(torch.isfinite(y).all())


@pytest.mark.parametrize("n", [None, 40])
def test_deep_gated_model_matches_from_torch(n):
    model = deep_gated()
    net = from_torch(model, (2, 32, 32))
    assert net.receptive_field.size == (27, 27)  # 3 + 12 * 2
    size = n or max(net.min_input_size())
    got = autograd_rf(detach_gates(model), (2, size, size))
    assert got == network_rf(net, size)


def test_pooled_gates_reach_the_whole_input():
    model = deep_gated(2)
    got = autograd_rf(detach_gates(model, "pooled"), (2, 20, 20))
    assert (got.lo, got.hi) == ((0, 0), (19, 19))
    local = autograd_rf(detach_gates(model), (2, 20, 20))
    assert local == network_rf(from_torch(model, (2, 20, 20)), 20)
    assert local.size == (7, 7)


class ChannelsLastHead(nn.Module):
    """ConvNeXt's head: global pool, then a LayerNorm over channels-last and a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: Any) -> Any:
        x = self.pool(self.conv2(self.conv1(x)))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.fc(x.flatten(1))


def test_autograd_rf_skips_a_channels_last_head():
    model = ChannelsLastHead()
    net = from_torch(model, (3, 16, 16))
    got = autograd_rf(model, (3, 16, 16))
    assert got.output_size == (8, 8)  # conv2's map, not the (1, 8) permuted vector
    assert got == network_rf(net, 16)


class MeanGate(nn.Module):
    """``x * mean(x)**p``: one gate whose pooled path is known by hand."""

    def __init__(self, p: int) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Any) -> Any:
        return x * x.mean(dim=(2, 3), keepdim=True) ** self.p


@pytest.mark.parametrize("p", [1, 2, 3])
def test_pooled_share_by_hand(p):
    """y_u = x_u g^p / g^p (rescaled; g = mean x): d y_u / d x_v = delta_uv + p x_u / (N g).

    Summed over the N pixels v: local mass 1, total 1 + p x_u / g, so the pooled share is
    p x_u / (g + p x_u), with x the input `autograd_rf` draws (seed 0).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((1, 1, 5, 5), generator=gen, dtype=torch.float64) + 0.5
    xu, g = float(x[0, 0, 2, 2]), float(x.mean())
    want = p * xu / (g + p * xu)
    assert abs(pooled_share(MeanGate(p), (1, 5, 5), linearise=False) - want) < TOL


def test_pooled_share_without_gates_is_zero_and_grows_with_the_gates():
    plain = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    assert pooled_share(plain, (2, 12, 12)) == 0.0
    shares = [pooled_share(deep_gated(k), (2, 16, 16)) for k in (1, 3)]
    assert 0 < shares[0] < shares[1] < 1
