"""The float route for ``kind="expected_square"`` (`erftheory.network.float_square`).

Its fixed parts are float64 arrays instead of exact polynomials, and negligible families
of paths are dropped with their bound added to the error. On networks small enough for
the exact route, every normalised value must lie within the route's own error bound of
the exact one (and the bound must be small), the moments must agree, and families of
average pools between random layers (the case the exact route refuses at full size,
Inception-v3) are among the cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from erftheory import Network
from erftheory.layers import AvgPool, Conv, Dropout, Graph, MaxPool, Parallel, ReLU, Residual
from erftheory.network import float_square
from erftheory.network.float_square import float_square_profile, square_transfer

# The moments of the float route are read from float64 values: relative rounding of sums
# over at most a few thousand terms.
MOMENT_RTOL = 1e-12
# The error bound must be useful, not only valid: below this relative to the peak.
BOUND_REL = 1e-10


def _inception_like(d: int) -> list:
    branch = lambda *layers: list(layers)  # noqa: E731
    mix = Parallel(
        [
            branch(Conv(1)),
            branch(Conv(1), ReLU(), Conv(3, padding=1)),
            branch(AvgPool(3, stride=1, padding=1), Conv(1)),
            branch(Conv(1), ReLU(), Conv(3, padding=1), ReLU(), Conv(3, padding=1)),
        ]
    )
    return [
        Conv(3, stride=2),
        ReLU(),
        MaxPool(3, stride=2),
        mix,
        ReLU(),
        mix,
        ReLU(),
        AvgPool(3, stride=2),
        mix,
        ReLU(),
    ]


NETWORKS = {
    "chain-1d": Network([Conv(3), AvgPool(2), Conv(3), ReLU(), Conv(5, dilation=2)], ndim=1),
    "pools-between-random-1d": Network(
        [
            Conv(3),
            ReLU(),
            AvgPool(3, stride=1, padding=1),
            Conv(3, stride=2),
            ReLU(),
            AvgPool(2),
            Dropout(0.25),
            Conv(3),
        ],
        ndim=1,
    ),
    "residual-2d": Network(
        [
            Conv(3),
            ReLU(),
            Residual([Conv(3, padding=1), ReLU(), Conv(3, padding=1)]),
            AvgPool(2),
            Residual([AvgPool(3, stride=1, padding=1), Conv(1)]),
            Conv(3),
        ],
        ndim=2,
    ),
    "inception-like-2d": Network(_inception_like(2), ndim=2),
    "graph-2d": Network(
        [
            Conv(3),
            ReLU(),
            Graph(
                [[Conv(3, padding=1)], [AvgPool(3, stride=1, padding=1), Conv(1)], [ReLU()]],
                inputs=[[0], [0, 1], [0, 1, 2]],
            ),
            Conv(3),
        ],
        ndim=2,
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_float_route_matches_exact_within_its_bound(name):
    net = NETWORKS[name]
    exact = net.profile("expected_square", method="exact")
    fl = float_square_profile(net)
    assert fl.method == "float"
    a = np.asarray(exact.normalized(), dtype=float)
    b = np.asarray(fl.normalized(), dtype=float)
    assert a.shape == b.shape
    bound = fl.abs_error_bound
    assert np.abs(a - b).max() <= bound
    assert bound < BOUND_REL * a.max()
    for x, y in ((exact.mean, fl.mean), (exact.variance, fl.variance)):
        x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
        scale = max(np.atleast_1d(net.receptive_field.size)) ** 2  # pixels squared
        assert np.allclose(x, y, rtol=MOMENT_RTOL, atol=MOMENT_RTOL * scale)


def test_square_transfer_of_a_chain_by_hand():
    """Two random 3-taps around an average pool: sq(pool) between the variance kernels."""
    values, err, t = square_transfer([Conv(3), AvgPool(2), Conv(3)], 1)
    # E[g^2] = v * (1/4 [1 1]) * inflate(v, 2) with v = [1 1 1] (ones variances)
    v = np.ones(3)
    want = np.convolve(np.convolve(v, [0.25, 0.25]), np.kron(v, [1, 0])[:-1])
    assert t.size == (8,)
    assert np.allclose(values, want, rtol=0, atol=err) and err < 1e-14


def test_pruning_keeps_the_profile_within_the_bound(monkeypatch):
    """A coarse threshold drops families: the values move, but stay within the bound."""
    net = NETWORKS["inception-like-2d"]
    exact = np.asarray(net.profile("expected_square", method="exact").normalized(), float)
    monkeypatch.setattr(float_square, "PRUNE", 1e-3)
    fl = float_square_profile(net)
    moved = np.abs(exact - np.asarray(fl.normalized(), float)).max()
    assert 0 < moved <= fl.abs_error_bound


def test_real_resnet18_against_the_exact_fixed_parts_route():
    """torchvision's ResNet-18 at initialisation: both routes within both bounds."""
    torch = pytest.importorskip("torch")
    from erftheory import MissingDependencyError
    from erftheory.torch import models
    from erftheory.torch.trace import from_torch

    try:
        models.import_torchvision()
    except (MissingDependencyError, ImportError) as e:
        pytest.skip(f"torchvision is not usable here: {e}")
    torch.manual_seed(0)
    net = from_torch(models.load_model("torchvision:resnet18"), (3, 224, 224), weights="variance")
    auto = net.profile("expected_square")  # exact fixed parts, exact moments
    fl = float_square_profile(net)
    a = np.asarray(auto.normalized(), dtype=float)
    b = np.asarray(fl.normalized(), dtype=float)
    assert np.abs(a - b).max() <= auto.abs_error_bound + fl.abs_error_bound
    scale = max(net.receptive_field.size) ** 2
    x = np.asarray(auto.variance, dtype=float)
    y = np.asarray(fl.variance, dtype=float)
    assert np.allclose(x, y, rtol=MOMENT_RTOL, atol=MOMENT_RTOL * scale)
