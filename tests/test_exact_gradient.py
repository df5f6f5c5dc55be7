"""Exact multi-channel gradients (issue 15) against torch's float64 autograd."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("flint")

from torch import nn  # noqa: E402

from erftheory import ERFValueError  # noqa: E402
from erftheory.torch.exact_gradient import exact_expected_square, exact_gradient  # noqa: E402

AUTOGRAD_TOL = 1e-12  # float64 autograd's rounding, relative to the peak (issue 15's bound)


def autograd(model: nn.Module, shape, index=None, channels=None) -> np.ndarray:
    """Plain float64 autograd of the seeded output unit (the independent route)."""
    m = model.double().eval()
    x = torch.zeros((1, *shape), dtype=torch.float64, requires_grad=True)
    y = m(x)
    o = tuple((n - 1) // 2 for n in y.shape[2:]) if index is None else index
    chans = range(y.shape[1]) if channels is None else channels
    sum(y[(0, c, *o)] for c in chans).backward()
    return x.grad[0].numpy()


class Block(nn.Module):
    """A residual block and a concatenation, strided, dilated and grouped."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), nn.Conv2d(4, 4, 1)
        )
        self.down = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.side = nn.Conv2d(4, 2, 5, stride=2, padding=2)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.head = nn.Conv2d(8, 5, (3, 2), padding=(1, 0))

    def forward(self, x):
        h = self.bn(self.stem(x))
        h = h + self.body(h)
        a = self.down(h)
        b = self.side(self.pool(h))
        return self.head(torch.cat([a, b], dim=1))


def randomised(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.double().eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_multichannel_model_equals_autograd(seed: int) -> None:
    model = randomised(Block(), seed)
    shape = (3, 13, 12)
    exact = exact_gradient(model, shape)
    ref = autograd(model, shape)
    got = exact.to_float(summed=False)
    peak = np.abs(ref).max()
    assert peak > 0
    assert np.abs(got - ref).max() <= AUTOGRAD_TOL * peak
    assert np.array_equal(exact.to_float(), np.vectorize(float)(exact.summed))
    # the exact zeros are exactly where autograd's are (the RF)
    assert np.array_equal(exact.per_channel != 0, ref != 0)


def test_one_output_channel_and_off_centre_unit() -> None:
    model = randomised(Block(), 5)
    shape = (3, 11, 11)
    exact = exact_gradient(model, shape, output_index=(0, 4), output_channels=[2])
    ref = autograd(model, shape, index=(0, 4), channels=[2])
    assert np.abs(exact.to_float(summed=False) - ref).max() <= AUTOGRAD_TOL * np.abs(ref).max()


def test_integer_weights_are_exact() -> None:
    """Small integers: float64 autograd is itself exact, so the two are equal (==)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(2, 3, 3, bias=False), nn.Conv1d(3, 2, 3, stride=2, bias=False)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randint(-3, 4, p.shape, dtype=torch.float64))
    exact = exact_gradient(model, (2, 12))
    ref = autograd(model, (2, 12))
    assert [[Fraction(v) for v in row] for row in ref] == exact.per_channel.tolist()


def test_relu_as_constant_factor() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Conv1d(2, 1, 3)).double()
    half = exact_gradient(model, (1, 9), activation_factors={nn.ReLU: Fraction(1, 2)})
    linear = exact_gradient(nn.Sequential(model[0], nn.Identity(), model[2]), (1, 9))
    assert (half.per_channel * 2).tolist() == linear.per_channel.tolist()


def test_model_is_not_changed() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3)).float().train()
    exact_gradient(model, (1, 5, 5))
    assert model[0].weight.dtype == torch.float32 and model.training


@pytest.mark.parametrize(
    "model, message",
    [
        (nn.Sequential(nn.Conv1d(1, 1, 3), nn.Tanh()), "Tanh"),
        (nn.Sequential(nn.Conv1d(1, 1, 3), nn.MaxPool1d(2)), "MaxPool1d"),
    ],
)
def test_unsupported_layers_are_named(model: nn.Module, message: str) -> None:
    with pytest.raises(ERFValueError, match=message):
        exact_gradient(model, (1, 9))


def test_bad_arguments() -> None:
    m = nn.Conv1d(1, 2, 3)
    with pytest.raises(ERFValueError, match="input_shape"):
        exact_gradient(m, (1,))
    with pytest.raises(ERFValueError, match="output_channels"):
        exact_gradient(m, (1, 5), output_channels=[2])
    with pytest.raises(ERFValueError, match="output_index"):
        exact_gradient(m, (1, 5), output_index=7)


# --------------------------------------------------------------------------- Eq. 8 by channel
MC_SIGMAS = 5.0  # Monte Carlo agreement within this many standard errors (issue 15)
MC_NETWORKS = 1500  # independently drawn networks (fixed seed)


class Differ(nn.Module):
    """Channels that differ: wide or centre-only kernels, variances 100x apart."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.res = nn.Conv2d(4, 4, 1, bias=False)
        self.conv2 = nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=False)
        self.side = nn.Conv2d(1, 2, 5, stride=2, padding=2, bias=False)
        self.head = nn.Conv2d(5, 2, 3, padding=1, bias=False)

    def forward(self, x):
        h = self.conv1(x)
        h = h + self.res(h)
        return self.head(torch.cat([self.conv2(h), self.side(x)], dim=1))


def differ_variances(conv: nn.Module) -> torch.Tensor:
    """Per-(output, input, tap) variances: even output channels of conv1 wide and strong,
    odd ones centre-only and weak; conv2 listens mostly to the weak ones; the residual
    and side branches are weak (0.002), the head 0.05."""
    shape = tuple(conv.weight.shape)
    v = torch.full(shape, 0.05 if shape == (2, 5, 3, 3) else 0.002, dtype=torch.float64)
    if shape == (4, 1, 3, 3):  # conv1
        v[0::2] = 1.0
        v[1::2] = 0.0
        v[1::2, :, 1, 1] = 0.01 * 9
    elif shape == (3, 4, 3, 3):  # conv2
        v[:, 0::2] = 0.01
        v[:, 1::2] = 1.0
    return v


def differ_factory(i: int, g: torch.Generator) -> nn.Module:
    m = Differ().double()
    with torch.no_grad():
        for mod in (m.conv1, m.res, m.conv2, m.side, m.head):
            v = differ_variances(mod)
            mod.weight.copy_(v.sqrt() * torch.randn(v.shape, generator=g, dtype=torch.float64))
    return m


def test_expected_square_by_channel_matches_monte_carlo_and_the_average_does_not() -> None:
    from erftheory.compare import compare
    from erftheory.torch import empirical_erf
    from erftheory.torch.trace import from_torch

    shape = (1, 13, 13)
    exact = exact_expected_square(Differ().double(), shape, variances=differ_variances)
    assert exact.kind == "expected_square"
    theory = exact.to_float()
    measured = empirical_erf(
        differ_factory, shape, runs=MC_NETWORKS, statistic="mean_square", seed=7
    )
    raw = compare(theory, measured, start=(0, 0), normalize=False)
    assert raw.max_abs_z < MC_SIGMAS, raw
    # the channel average (from_torch's weights="variance") on the same variances
    mean_model = Differ().double()
    with torch.no_grad():
        for mod in (
            mean_model.conv1,
            mean_model.res,
            mean_model.conv2,
            mean_model.side,
            mean_model.head,
        ):
            mod.weight.copy_(differ_variances(mod).sqrt())
    averaged = from_torch(mean_model, shape, weights="variance").profile(kind="expected_square")
    by_channel = compare(theory, measured, start=(0, 0))
    by_average = compare(averaged, measured)
    assert by_channel.max_abs_z < MC_SIGMAS
    assert by_average.max_abs_z > 2 * MC_SIGMAS  # the averaging error is far above the noise
    assert by_average.tv_distance > 3 * by_channel.tv_distance


def test_expected_square_equals_brute_force_on_a_two_layer_chain() -> None:
    """Eq. 8 by hand: sum over the middle channel of the convolved variance kernels."""
    m = nn.Sequential(
        nn.Conv1d(2, 3, 3, bias=False), nn.Conv1d(3, 1, 2, dilation=2, bias=False)
    ).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randint(-4, 5, p.shape, generator=g).double())
    exact = exact_expected_square(m, (2, 9))
    w1 = m[0].weight.detach().numpy().astype(int)  # (3, 2, 3)
    w2 = m[1].weight.detach().numpy().astype(int)  # (1, 3, 2)
    # output length 9 - 2 - 2 = 5, centre unit 2; input pixel v = 2 + 2 a + b for taps a, b
    want = [[0] * 9 for _ in range(2)]
    for c in range(2):
        for mid in range(3):
            for a in range(2):
                for b in range(3):
                    want[c][2 + 2 * a + b] += w2[0, mid, a] ** 2 * w1[mid, c, b] ** 2
    assert exact.per_channel.tolist() == [[Fraction(v) for v in row] for row in want]


def test_expected_square_rules_for_batch_norm_pooling_and_factors() -> None:
    bn = nn.BatchNorm1d(1).double().eval()
    with torch.no_grad():
        bn.running_var.fill_(3.0)
        bn.weight.fill_(2.0)
    bn.eps = 1.0  # scale 2 / sqrt(3 + 1) = 1: exactly representable
    m = nn.Sequential(nn.Conv1d(1, 1, 1, bias=False), bn, nn.ReLU(), nn.AvgPool1d(2))
    with torch.no_grad():
        m[0].weight.fill_(3.0)
    got = exact_expected_square(m, (1, 4), activation_factors={nn.ReLU: Fraction(1, 2)})
    # avg pool 1/2 per tap squared = 1/4; ReLU 1/2; batch norm 1^2; conv 3^2 = 9
    assert got.per_channel.tolist() == [[Fraction(9, 8), Fraction(9, 8), 0, 0]]


def test_bad_variances() -> None:
    m = nn.Conv1d(1, 1, 3)
    with pytest.raises(ERFValueError, match="variances"):
        exact_expected_square(m, (1, 5), variances="init")
    with pytest.raises(ERFValueError, match="variances must be finite"):
        exact_expected_square(m, (1, 5), variances=lambda c: -torch.ones(1, 1, 3))


def test_exact_and_float_channel_routes_agree() -> None:
    """Two implementations of Eq. 8 by channel: rationals over the traced graph, and
    `predicted_erf`'s float64 variance pass through the model; the float route's
    own rounding bound holds against the exact values."""
    from erftheory.torch.channels import predicted_erf

    shape = (1, 13, 13)
    model = Differ().double()
    exact = exact_expected_square(model, shape, variances=differ_variances)
    fast = predicted_erf(model, shape, variances=lambda name, mod, w: differ_variances(mod))
    want = exact.to_float(summed=False)
    assert np.abs(fast.per_channel - want).max() <= fast.rounding_bound * np.abs(want).max()
    assert fast.output_channels == len(exact.output_channels)
