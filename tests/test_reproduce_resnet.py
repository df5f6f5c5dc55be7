"""Section 3.2 of ``erftheory reproduce``: the paper's ResNet, trained, its ERF before and after.

The network and its theory need no torch; the training, the measurement and the
statistics do (the quick configuration, and smaller still for the reproducibility test).
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from erftheory import ERFValueError
from erftheory.initializations import variance_network
from erftheory.layers import BatchNorm, Conv, ReLU, Residual
from erftheory.paper import PAPER_RESNET_RF, RESNET_BLOCKS, resnet_network


# --------------------------------------------------------------------------- the network
def test_the_resnet_is_the_papers_kind() -> None:
    net = resnet_network()
    assert RESNET_BLOCKS == 17 and PAPER_RESNET_RF == 74
    assert net.layers[0] == Conv(3) or repr(net.layers[0]) == "Conv(3)"
    blocks = net.layers[1:]
    assert len(blocks) == 17 and all(isinstance(b, Residual) for b in blocks)
    assert repr(blocks[0]) == repr(
        Residual(BatchNorm(), ReLU(), Conv(3), BatchNorm(), ReLU(), Conv(3))
    )
    assert all(not b.shortcut for b in blocks)  # identity shortcuts: no downsampling
    rf = net.receptive_field
    # 35 stride-1 3×3 convolutions: 2·35 + 1; the paper's 74 is even, out of reach
    assert rf.size == (71, 71) and rf.jump == (1, 1)
    assert [resnet_network(b).receptive_field.size[0] for b in (1, 2, 5)] == [7, 11, 23]
    assert resnet_network(2, kernel_size=5).receptive_field.size == (21, 21)


def test_the_resnet_theory_is_the_binomial_mixture_of_its_blocks() -> None:
    """He variances: every block passes the skip or two convolutions with weight 1/2 each.

    Per axis a 3×3 He convolution adds variance 2/3 and a block half of 2 · 2/3, so 17
    blocks and the stem give 2/3 + 17 · 2/3 = 12. The stem's He variances sum to 2 and
    a block's transfer to 1 + 1 (the branch: ReLU 1/2, He 2, twice), a total of 2^18.
    """
    prof = variance_network(resnet_network()).profile("expected_square")
    assert prof.variance == (Fraction(12), Fraction(12))
    total = variance_network(resnet_network()).moments("expected_square")[0]
    assert total == 2**18
    # BatchNorm factors s weigh the branch s² against the skip's 1 (both of a block's)
    half = variance_network(resnet_network(1, batchnorm=[Fraction(1, 2), 1]))
    assert (
        half.profile("expected_square").variance
        == (Fraction(2, 3) + Fraction(1, 4) / (1 + Fraction(1, 4)) * Fraction(4, 3),) * 2
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blocks": 0}, "blocks must be a positive int, got 0"),
        ({"blocks": True}, "blocks must be a positive int"),
        ({"blocks": 2.0}, "blocks must be a positive int"),
        ({"kernel_size": 4}, "kernel_size must be a positive odd int, got 4"),
        ({"kernel_size": "3"}, "kernel_size must be a positive odd int"),
        ({"blocks": 2, "batchnorm": [1, 1, 1]}, "batchnorm must give 4 scales"),
    ],
)
def test_the_resnet_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ERFValueError, match=message):
        resnet_network(**kwargs)


# --------------------------------------------------------------------------- torch side
torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from erftheory.network import Network  # noqa: E402
from erftheory.torch.build import to_torch  # noqa: E402
from erftheory.torch.reproduce import (  # noqa: E402
    QUICK,
    _change,
    _Copies,
    _cut,
    _group_average,
    _image_erfs,
    _public,
    _resnet_model,
    _training,
)

TINY = dataclasses.replace(
    QUICK, train_blocks=2, train_seeds=2, train_images=48, calibration_images=32, erf_images=8
)


def test_the_measurement_is_each_copys_exact_gradient() -> None:
    """Fixed all-ones weights: every image's gradient is the profile, for every copy."""
    net = Network([Conv(3), Conv(3)], ndim=2)
    features = torch.nn.Sequential(
        _Copies(2), to_torch(net, weights="ones", channels=2, copies=3, dtype=torch.float32)
    )
    x = torch.randn(5, 3, 9, 9)
    mean, se = _image_erfs(features, x, 2, (4, 4), "cpu")
    exact = np.zeros((9, 9))
    exact[2:7, 2:7] = np.outer([1, 2, 3, 2, 1], [1, 2, 3, 2, 1]) ** 2  # (1+z+z²)², squared
    assert mean.shape == (3, 9, 9)
    for copy in mean:
        assert np.allclose(copy, exact, rtol=1e-6)
    assert np.allclose(se, 0, atol=1e-4)


def test_the_theory_is_placed_on_the_image() -> None:
    net = variance_network(resnet_network(1))  # RF 7 inside a 12×12 image
    small = _cut(net, (12, 12), (5, 5))
    p = net.profile("expected_square").normalized()
    assert small.sum() == pytest.approx(1)
    assert np.allclose(small[2:9, 2:9], p) and small[:2].sum() == 0 and small[9:].sum() == 0
    big = _cut(variance_network(resnet_network()), (32, 32), (15, 15))  # RF 71, cut
    q = variance_network(resnet_network()).profile("expected_square").normalized()
    window = q[20:52, 20:52]
    assert np.allclose(big, window / window.sum())


def test_the_paired_change_and_its_verdict() -> None:
    c = _change([1.0, 2.0, 3.0], [2.0, 3.5, 4.0])  # differences 1, 1.5, 1
    assert c["mean"] == pytest.approx(7 / 6, abs=1e-4)
    assert c["stderr"] == pytest.approx(math.sqrt(1 / 12) / math.sqrt(3), abs=1e-4)
    assert c["z"] == 7.0 and c["critical_z"] == 4.303 and c["verdict"] == "grows"
    assert _change([2.0, 3.5, 4.0], [1.0, 2.0, 3.0])["verdict"] == "shrinks"
    assert _change([1.0, 2.0], [1.5, 1.9])["verdict"] == "no significant change"
    assert _change([1.0, 2.0], [2.0, 3.0])["z"] is None  # no spread


def test_the_copies_are_independent_networks() -> None:
    """Each copy's logits and gradients depend on its own weights and image only."""
    model, _, norms = _resnet_model(TINY, torch.Generator().manual_seed(1))
    assert len(norms) == 2 * TINY.train_blocks
    model.eval()
    x = torch.randn(2, TINY.train_seeds, 32, 32)
    y = model(x)
    assert y.shape == (2, TINY.train_seeds, 10)
    x2 = x.clone()
    x2[:, 1] += 1  # change copy 1's image only
    y2 = model(x2)
    assert torch.equal(y[:, 0], y2[:, 0]) and not torch.equal(y[:, 1], y2[:, 1])


def test_section_3_2_results_are_reproducible_and_consistent(tmp_path: Path) -> None:
    state = torch.get_rng_state()
    torch.manual_seed(123)  # whatever the global state, the results are the seed's
    first = _training(TINY, tmp_path, 4, "cpu")
    torch.manual_seed(456)
    second = _training(TINY, tmp_path, 4, "cpu", plot=False)
    torch.set_rng_state(state)
    assert json.dumps(_public(first), sort_keys=True) == json.dumps(_public(second), sort_keys=True)
    for key in ("init", "before", "after"):  # the maps, bit for bit
        assert np.array_equal(first["_maps"][key], second["_maps"][key])
    generator_state = torch.get_rng_state()
    _training(TINY, tmp_path, 5, "cpu", plot=False)
    assert torch.equal(torch.get_rng_state(), generator_state)
    r = _public(first)
    assert r["rf_size"] == resnet_network(TINY.train_blocks).receptive_field.size[0] == 11
    assert r["paper_rf_size"] == 74 and r["input_size"] == [32, 32]
    assert r["conv_layers"] == 2 * TINY.train_blocks + 1
    assert r["gpu_seconds"] == "not measured"
    for key in ("init", "before", "after"):
        for name, stat in r["erf"][key].items():
            values = stat["per_seed"]
            assert len(values) == TINY.train_seeds
            assert stat["mean"] == pytest.approx(np.mean(values), abs=1e-4), name
    for name, change in r["change"].items():
        d = np.subtract(r["erf"]["after"][name]["per_seed"], r["erf"]["before"][name]["per_seed"])
        assert change["mean"] == pytest.approx(d.mean(), abs=2e-4)
        if change["z"] is not None:
            assert change["z"] == pytest.approx(
                change["mean"] / change["stderr"], rel=0.01, abs=0.01
            )
    assert r["grows"] == (r["change"]["std"]["verdict"] == "grows")
    assert 0 <= r["test_accuracy"]["mean"] <= 1
    init = r["rows"][0]
    he = variance_network(resnet_network(TINY.train_blocks))
    assert init["theory_std"] == round(
        math.sqrt(sum(float(v) for v in he.profile("expected_square").variance) / 2), 4
    )  # the RF (11) lies inside the image: the cut theory is the whole profile
    assert (tmp_path / "fig3_training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("before", "after"):  # what the weights alone predict
        rows = r["weights_prediction"][stage]
        assert [row["prediction"] for row in rows] == [
            "squared weights, paper factors",
            "squared weights, calibrated factors",
            "channel-averaged variances, paper factors",
        ]
        for row in rows:
            assert len(row["tv"]["per_seed"]) == TINY.train_seeds
            assert all(0 < v < 1 for v in row["tv"]["per_seed"])
            assert all(v > 0 for v in row["variance_ratio"]["per_seed"])
        assert 0 < r["weights_prediction_noise_tv"][stage]["mean"] < 1


def test_the_channel_averaged_prediction_is_from_torchs_one_channel_theory() -> None:
    """`_group_average` fed to `predicted_erf` gives what `from_torch(weights="variance")`
    predicts (its convolutions' variances summed over inputs, averaged over outputs)."""
    from torch import nn

    from erftheory.torch.channels import predicted_erf
    from erftheory.torch.trace import from_torch

    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=False), nn.ReLU(), nn.Conv2d(4, 3, 3, stride=2, bias=False)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    shape = (2, 9, 9)
    averaged = predicted_erf(model, shape, variances=_group_average)
    theory = from_torch(model, shape, weights="variance").profile("expected_square")
    want = np.asarray(theory.normalized(), dtype=float)
    got = averaged.map / averaged.map.sum()
    lo = [(n - k) // 2 for n, k in zip(got.shape, want.shape, strict=True)]
    inner = got[lo[0] : lo[0] + want.shape[0], lo[1] : lo[1] + want.shape[1]]
    assert np.abs(inner - want).max() <= 1e-12 and inner.sum() == pytest.approx(1, abs=1e-12)
