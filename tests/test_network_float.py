"""The float algebra of networks against the exact one: every coefficient within its bound."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from erftheory import Kernel
from erftheory.layers import AvgPool, Conv, Dropout, MaxPool, ReLU, Residual
from erftheory.network import Network, _chain, _Exact
from erftheory.network.algebra import _Float


def _exact_array(net: Network, kind: str) -> np.ndarray:
    size = net._geometry().size
    out = np.zeros(size)
    for m, c in _chain(net.layers, kind, _Exact(net.ndim)).rep.terms():
        out[tuple(int(e) for e in m)] = float(c)
    return out


def _kernel(rng: random.Random, shape: tuple[int, ...], signed: bool) -> Kernel:
    lo = -5 if signed else 0
    if len(shape) == 1:
        return Kernel([Fraction(rng.randint(lo, 5), rng.randint(1, 7)) for _ in range(shape[0])])
    return Kernel(
        [
            [Fraction(rng.randint(lo, 5), rng.randint(1, 7)) for _ in range(shape[1])]
            for _ in range(shape[0])
        ]
    )


def _networks() -> list[Network]:
    rng = random.Random(1234)
    nets = [
        Network([Conv(Kernel([1, 2, 1])), AvgPool(2, stride=2), Conv(3, dilation=2)]),
        Network(
            [Conv((7, 7), stride=2, padding=3), MaxPool((3, 3), stride=2, padding=1)]
            + [Residual(Conv((3, 3), padding=1), ReLU(), Conv((3, 3), padding=1))] * 3
        ),
    ]
    for signed in (False, True):
        for _ in range(3):
            k1 = _kernel(rng, (3, 3), signed)
            k2 = _kernel(rng, (2, 3), signed)
            nets.append(
                Network(
                    [
                        Conv(k1, stride=2),
                        Dropout(Fraction(1, 4)),
                        Residual(Conv(k2), shortcut=[Conv(_kernel(rng, (2, 3), signed))]),
                        AvgPool((2, 2), stride=(2, 2)),
                        # 17x17 taps: the FFT route of the product
                        Conv(_kernel(rng, (17, 17), signed), dilation=(1, 2)),
                    ]
                )
            )
    return nets


# networks 5-7 have signed kernels: no per-tap variances, so gradient only
CASES = [(i, "gradient") for i in range(8)] + [(i, "expected_square") for i in range(5)]


@pytest.mark.parametrize(("index", "kind"), CASES)
def test_float_transfer_within_its_bound(index: int, kind: str) -> None:
    net = _networks()[index]
    exact = _exact_array(net, kind)
    alg = _Float(net.ndim)
    rep = _chain(net.layers, kind, alg).rep
    values = alg.padded(rep, net._geometry().size)
    error = float(np.abs(values - exact).max())
    assert error <= rep.err
    # and the bound is not vacuous: far below the peak
    assert rep.err <= 1e-9 * float(np.abs(exact).max())


@pytest.mark.parametrize(
    ("index", "kind"), [(1, "gradient"), (2, "expected_square"), (6, "gradient")]
)
def test_auto_takes_the_float_route_above_the_exact_estimate(
    index: int, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import erftheory.network.network as network_module

    net = _networks()[index]
    exact = net.profile(kind, method="exact")
    monkeypatch.setattr(network_module, "EXACT_AUTO_BYTES", 0)
    fast = net.profile(kind)
    assert fast.method == "float" and "float64 product" in fast.engine_reason
    assert fast.origin == exact.origin and fast.shape == exact.shape
    bound = fast.abs_error_bound
    assert bound is not None and 0 < bound < 1e-12
    assert float(np.abs(fast.normalized() - exact.normalized()).max()) <= bound
    # the moments are the exact ones (the moment algebra), not float estimates
    assert fast.mean == exact.mean and fast.variance == exact.variance
    assert fast.summary()["rf_size"] == exact.summary()["rf_size"]


def test_small_networks_stay_exact() -> None:
    net = _networks()[1]
    assert net.profile().method == "exact"
