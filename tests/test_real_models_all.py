"""Every CNN family of issue 14, from the real torchvision and timm definitions.

For each representative in `erftheory.torch.models.FAMILIES` (random weights, its
default input): `from_torch` reads the model (or, where its head is not a global pool,
its feature extractor), and the RF box of the centre unit equals the support of plain
autograd's input gradient in a linearised float64 copy (positive weights, identity
activations, average instead of max pooling, squeeze-and-excitation gates held
constant: the local field). The check runs at `Network.min_input_size` where that is
at most `FIT_LIMIT` pixels (the whole RF inside the input: size and position), else at
the default input (the RF clipped to it: position and clipping).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from erftheory import MissingDependencyError  # noqa: E402
from erftheory.torch import models  # noqa: E402
from erftheory.torch.trace import from_torch  # noqa: E402

FIT_LIMIT = 480
MEAN_GRADIENT_TOL = 1e-10
"""Two float64 routes to one signed gradient (relative to the peak): the sums over the
model's many paths cancel, so more than a few ulps of rounding separate them."""
"""Largest input side at which the whole RF is checked (above it the check is clipped)."""


def _load(spec: str) -> Any:
    try:
        return models.load_model(spec)
    except MissingDependencyError as e:
        pytest.skip(f"{spec.split(':')[0]} is not installed: {e}")


@pytest.mark.parametrize(("label", "spec"), models.FAMILIES, ids=[s for _, s in models.FAMILIES])
def test_family_is_read_and_its_rf_equals_autograds(label: str, spec: str) -> None:
    model = _load(spec)
    shape = models.default_input_shape(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. timm's zero_init_last warning
        _, part, net = models.read_model(model, shape)
    fit = net.min_input_size()
    fit = max(fit) if isinstance(fit, tuple) else fit
    n = fit if fit <= FIT_LIMIT else shape[1]
    got = models.autograd_rf(models.detach_gates(part, input_shape=(3, n, n)), (3, n, n))
    assert got == models.network_rf(net, n), label
    if n == fit:  # the whole field is inside the input: its size is the theory's
        size = net.receptive_field.size
        assert got.hi[0] - got.lo[0] + 1 == (size[0] if isinstance(size, tuple) else size)


def test_model_weights_of_a_real_resnet_are_its_mean_gradient() -> None:
    """torchvision's ResNet-18 with its own (random) weights: the collapsed network of
    ``weights="model"`` is plain autograd of the model with every ReLU as $x/2$ (its mean
    slope) and max pooling as the average over its in-bounds taps, to rounding."""
    import copy

    import numpy as np
    from torch import nn

    model = _load("torchvision:resnet18").double().eval()
    net = from_torch(model, (3, 224, 224), weights="model")
    assert len(net.layers) == 1
    assert net.receptive_field == from_torch(model, (3, 224, 224)).receptive_field

    class Half(nn.Module):
        def forward(self, x):
            return x * 0.5

    def linear(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, Half())
            elif isinstance(child, nn.MaxPool2d):
                pool = nn.AvgPool2d(child.kernel_size, child.stride, child.padding)
                pool.count_include_pad = False
                setattr(module, name, pool)
            else:
                linear(child)

    trunk = copy.deepcopy(nn.Sequential(*list(model.children())[:-2]))
    linear(trunk)
    n = net.min_input_size()
    x = torch.zeros(1, 3, *n, dtype=torch.float64, requires_grad=True)
    unit = net.centre_output(n)
    trunk(x)[(0, slice(None), *unit)].sum().backward()
    window = net.receptive_field.window(unit)
    want = x.grad[0].sum(0).numpy()[tuple(slice(r.start, r.stop) for r in window)]
    got = np.asarray(net.profile().coefficients, dtype=float)
    assert np.abs(got - want).max() <= MEAN_GRADIENT_TOL * np.abs(want).max()
