"""Exact multi-channel gradients (issue 15) against torch's float64 autograd."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("flint")

from torch import nn  # noqa: E402

from erftheory import ERFValueError  # noqa: E402
from erftheory.torch.exact_gradient import exact_gradient  # noqa: E402

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
