"""The channel-aware expected-square ERF (`erftheory.torch.channels.predicted_erf`).

Independent routes: the exact single-channel theory (`Network.profile`, `from_torch`),
Monte Carlo over random networks (`empirical_erf` with a factory) within a stated
number of standard errors at fixed seeds, a direct forward pass for the calibrated
activation factors, and closed forms for single layers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from erftheory._errors import ERFTypeError, ERFValueError  # noqa: E402
from erftheory.torch import compare, empirical_erf  # noqa: E402
from erftheory.torch.channels import activation_factors, predicted_erf  # noqa: E402
from erftheory.trace import from_torch  # noqa: E402

EXACT_RTOL = 1e-12
"""Agreement with the exact (rational) single-channel theory: both sides are float64
sums of a few dozen non-negative terms (relative rounding below 1e-14), so 1e-12 of
the peak leaves a margin of 100."""

Z_MAX = 5.0
"""Monte Carlo: every pixel that matters within 5 standard errors (with a few hundred
pixels tested the chance of a false failure is below 1e-4 under normal errors)."""

MATTERS = 1e-3
"""A pixel matters where the prediction is above this fraction of its peak."""


# ------------------------------------------------------------------- closed forms
def test_single_layer_closed_forms():
    conv = nn.Conv1d(2, 3, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(18.0).reshape(3, 2, 3) / 10)
    erf = predicted_erf(conv, (2, 3))
    w2 = conv.weight.detach().double() ** 2
    np.testing.assert_allclose(erf.per_channel, w2.sum(0).numpy(), rtol=EXACT_RTOL)
    np.testing.assert_allclose(erf.map, w2.sum((0, 1)).numpy(), rtol=EXACT_RTOL)
    assert erf.output_channels == 3 and erf.centre == (0,)
    one = predicted_erf(conv, (2, 3), output_channel=1)
    np.testing.assert_allclose(one.map, w2[1].sum(0).numpy(), rtol=EXACT_RTOL)
    init = predicted_erf(conv, (2, 3), variances="init")
    np.testing.assert_allclose(init.map, np.full(3, 6 * float(w2.mean())), rtol=EXACT_RTOL)
    he = predicted_erf(conv, (2, 3), variances=lambda name, m, w: 2.0 / 6)
    np.testing.assert_allclose(he.map, np.full(3, 3 * 2 * 2 / 6), rtol=EXACT_RTOL)
    assert 0 < erf.rounding_bound < 1e-14


def test_pools_batch_norm_dropout_and_signs():
    # average pool: squared weights 1/K^2; max pool: 1/n over in-bounds taps
    assert predicted_erf(nn.AvgPool1d(4), (1, 4)).map.tolist() == [1 / 16] * 4
    assert predicted_erf(nn.AvgPool1d(3, 1, padding=1), (1, 3)).map.tolist() == [1 / 9] * 3
    no_pad = nn.AvgPool1d(3, 1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(
        predicted_erf(no_pad, (1, 2), output_index=0).map, [1 / 4, 1 / 4], rtol=EXACT_RTOL
    )
    np.testing.assert_allclose(
        predicted_erf(nn.MaxPool2d(3, 1, padding=1), (1, 2, 2), output_index=0).map,
        np.full((2, 2), 1 / 4),
        rtol=EXACT_RTOL,
    )
    np.testing.assert_allclose(
        predicted_erf(nn.AdaptiveAvgPool1d(2), (1, 5), output_index=1).map,
        [0, 0, 1 / 9, 1 / 9, 1 / 9],
        rtol=EXACT_RTOL,
    )
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, 3.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.5]))
        bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
    erf = predicted_erf(bn, (2, 1))
    np.testing.assert_allclose(
        erf.per_channel[:, 0], [4 / (4 + bn.eps), 9 / (0.5 + bn.eps)], rtol=EXACT_RTOL
    )
    drop = nn.Dropout(0.25).train()
    assert predicted_erf(drop, (1, 1)).map.tolist() == [1.0]  # run in eval mode
    assert drop.training  # mode restored

    class Signs(nn.Module):
        def forward(self, x):
            return 3 * x - x / 2 + torch.add(x, x, alpha=-2)

    np.testing.assert_allclose(
        predicted_erf(Signs(), (1, 1)).map, [9 + 1 / 4 + 1 + 4], rtol=EXACT_RTOL
    )


def test_paper_activation_factors():
    for act, factor in (
        (nn.ReLU(), 0.5),
        (nn.ReLU6(), 0.5),
        (nn.LeakyReLU(0.2), (1 + 0.04) / 2),
        (nn.SiLU(), 0.3795),
        (nn.Tanh(), 0.4644),
    ):
        erf = predicted_erf(act, (1, 1))
        assert erf.map[0] == pytest.approx(factor, abs=5e-5), act


def test_bad_arguments_and_unsupported_operations():
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(ERFValueError, match="variances"):
        predicted_erf(conv, (1, 5, 5), variances="ones")
    with pytest.raises(ERFValueError, match="activation"):
        predicted_erf(conv, (1, 5, 5), activation="none")
    with pytest.raises(ERFValueError, match="needs inputs"):
        predicted_erf(conv, (1, 5, 5), activation="calibrated")
    with pytest.raises(ERFValueError, match="input_shape"):
        predicted_erf(conv, (1,))
    with pytest.raises(ERFValueError, match="output_channel"):
        predicted_erf(conv, (1, 5, 5), output_channel=1)
    with pytest.raises(ERFValueError, match="output_index"):
        predicted_erf(conv, (1, 5, 5), output_index=3)
    with pytest.raises(ERFTypeError, match=r"nn\.Module"):
        predicted_erf(lambda x: x, (1, 5, 5))  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ERFValueError, match="not available"):
            predicted_erf(conv, (1, 5, 5), device="cuda")
    with pytest.raises(ERFValueError, match="spatial map"):
        predicted_erf(nn.Sequential(conv, nn.Flatten()), (1, 5, 5))

    class Gate(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    with pytest.raises(ERFValueError, match="product of two maps"):
        predicted_erf(Gate(), (1, 5, 5))

    class Pooled(nn.Module):
        def forward(self, x):
            return x.mean((2, 3), keepdim=True)

    with pytest.raises(ERFValueError, match=r"Tensor\.mean is not supported"):
        predicted_erf(Pooled(), (1, 5, 5))
    with pytest.raises(ERFValueError, match="not supported"):
        predicted_erf(nn.Sequential(conv, nn.GroupNorm(1, 1)), (1, 5, 5))


# ------------------------------------------------- (a) the single-channel theory
class _Res(nn.Module):
    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x):
        return x + self.branch(x)


def _random_single_channel(nd: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    conv = nn.Conv1d if nd == 1 else nn.Conv2d
    bn = nn.BatchNorm1d if nd == 1 else nn.BatchNorm2d
    pool = nn.MaxPool1d if nd == 1 else nn.MaxPool2d
    avg = nn.AvgPool1d if nd == 1 else nn.AvgPool2d
    model = nn.Sequential(
        conv(1, 1, 3),
        bn(1),
        nn.ReLU(),
        conv(1, 1, 3, stride=2),
        pool(2),
        _Res(nn.Sequential(conv(1, 1, 3, padding=2, dilation=2), nn.LeakyReLU(0.1))),
        conv(1, 1, 2),
        avg(2),  # the first fixed mixing met from the output: exact (module docstring)
    )
    with torch.no_grad():
        model[1].running_var.fill_(0.7)
        model[1].weight.fill_(1.3)
    return model.double().eval()


@pytest.mark.parametrize("nd", [1, 2])
def test_equals_exact_single_channel_theory(nd):
    model = _random_single_channel(nd, seed=nd)
    net = from_torch(model, (1,) + (48,) * nd, weights="variance")
    size = net.min_input_size()
    sizes = (size,) * nd if isinstance(size, int) else tuple(size)
    profile = net.profile("expected_square")
    exact = np.array(profile.coefficients, dtype=float)
    for extra in (0, 5):
        shape = tuple(s + extra for s in sizes)
        erf = predicted_erf(model, (1, *shape))
        cmp = compare(profile, (erf.map, np.zeros(shape)), normalize=False)
        assert cmp.theory.shape == shape
        np.testing.assert_allclose(cmp.empirical, cmp.theory, rtol=0, atol=EXACT_RTOL * exact.max())
        # all the mass lies in the theory's RF, and no pixel is spared: the totals agree
        assert erf.total == pytest.approx(float(exact.sum()), rel=EXACT_RTOL)


# ---------------------------------------- (b) Monte Carlo on channels that differ
_OUT_SCALE_A = torch.tensor([1.0, 10.0, 0.1, 3.0])  # per-output-channel variance scales
_IN_SCALE_B = torch.tensor([0.1, 0.3, 10.0, 1.0])  # conv_b's per-input-channel scales


def _variances() -> dict[str, torch.Tensor]:
    """Per-(out, in, tap) variances of the model below, whose channels differ by 10x."""
    taps = torch.stack(
        [
            torch.tensor([[0.1, 0.1, 0.1], [0.1, 4.0, 0.1], [0.1, 0.1, 0.1]]),  # centre
            torch.tensor([[2.0, 0.1, 2.0], [0.1, 0.1, 0.1], [2.0, 0.1, 2.0]]),  # corners
            torch.tensor([[0.1, 3.0, 0.1], [0.1, 0.1, 0.1], [0.1, 3.0, 0.1]]),  # vertical
            torch.tensor([[0.1, 0.1, 0.1], [3.0, 0.1, 3.0], [0.1, 0.1, 0.1]]),  # horizontal
        ]
    )
    va = (taps * _OUT_SCALE_A[:, None, None])[:, None].expand(4, 3, 3, 3) / 27
    tb = torch.tensor([[3.0, 0.2, 0.2], [0.2, 0.2, 0.2], [0.2, 0.2, 3.0]])  # a diagonal
    vb = _IN_SCALE_B[None, :, None, None] * tb * torch.linspace(0.5, 2.0, 6)[:, None, None, None]
    return {
        "a": va.double(),
        "b": (vb / 36).double(),
        "c": torch.full((6, 6, 3, 3), 0.5 / 54, dtype=torch.float64),
        "d": torch.linspace(0.2, 2.0, 12, dtype=torch.float64).reshape(2, 6, 1, 1) / 6,
        "e": torch.full((3, 6, 3, 3), 1 / 54, dtype=torch.float64),
    }


class _Concat(nn.Module):
    def __init__(self, nets: int) -> None:
        super().__init__()
        self.d = nn.Conv2d(6 * nets, 2 * nets, 1, bias=False, groups=nets)
        self.e = nn.Conv2d(6 * nets, 3 * nets, 3, padding=1, bias=False, groups=nets)

    def forward(self, x):
        return torch.cat([self.d(x), self.e(x)], dim=1)


def _model(weights: dict[str, torch.Tensor], nets: int = 1) -> nn.Module:
    """maxpool -> conv(3->4) -> BN -> ReLU -> strided conv(4->6) -> residual -> concat.

    With ``nets`` > 1, that many independent copies side by side as channel groups
    (``weights`` then have a leading axis of ``nets``): the channel-summed squared
    input gradient of the whole is the sum of theirs, so one backward pass measures
    ``nets`` networks.
    """
    bn = nn.BatchNorm2d(4 * nets)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 2.0, 1.0, 0.3]).repeat(nets))
        bn.running_var.copy_(torch.tensor([1.0, 0.25, 4.0, 1.0]).repeat(nets))
    model = nn.Sequential(
        nn.MaxPool2d(2),
        nn.Conv2d(3 * nets, 4 * nets, 3, padding=1, bias=False, groups=nets),
        bn,
        nn.ReLU(),
        nn.Conv2d(4 * nets, 6 * nets, 3, stride=2, padding=1, bias=False, groups=nets),
        _Res(nn.Conv2d(6 * nets, 6 * nets, 3, padding=1, bias=False, groups=nets)),
        _Concat(nets),
    ).double()
    flat = {k: w.reshape(-1, *w.shape[-3:]) for k, w in weights.items()}
    with torch.no_grad():
        model[1].weight.copy_(flat["a"])
        model[4].weight.copy_(flat["b"])
        model[5].branch.weight.copy_(flat["c"])
        model[6].d.weight.copy_(flat["d"])
        model[6].e.weight.copy_(flat["e"])
    return model.eval()


SHAPE = (3, 32, 32)
GROUP = 40  # networks per backward pass (channel groups)
RUNS = 50  # passes (the sampling unit of the standard errors): 2000 networks


def _grouped_mc(build, shape, group, runs, seed):
    """`empirical_erf` over ``runs`` factories of ``group`` networks each, per network.

    ``channel_reduce="sum_after"`` sums the squared gradients over the input channels
    of all the networks of a group, i.e. ``group`` times the per-network mean square
    (whose expectation equals that of the channel-summed gradient: the cross terms of
    independent zero-mean weights vanish); the map and standard errors are divided by
    ``group``, the shape-only comparisons use the measurement as it is.
    """
    erf = empirical_erf(
        lambda i, g: build(g),
        (shape[0] * group, *shape[1:]),
        runs=runs,
        seed=seed,
        channel_reduce="sum_after",
        trace=False,
    )
    n = erf.count
    total_se = math.sqrt((erf.total_sum_sq - erf.total_sum**2 / n) / (n - 1) / n) / group
    return erf, erf.map / group, erf.stderr / group, total_se


@pytest.fixture(scope="module")
def monte_carlo():
    v = _variances()
    std = {k: t.sqrt() for k, t in v.items()}

    def build(gen):
        draws = {
            k: s * torch.randn((GROUP, *s.shape), generator=gen, dtype=s.dtype)
            for k, s in std.items()
        }
        return _model(draws, GROUP)

    return v, _grouped_mc(build, SHAPE, GROUP, RUNS, seed=2024)


def test_matches_monte_carlo_where_channels_differ(monte_carlo):
    v, (emp, mean, stderr, total_se) = monte_carlo
    # "model" variances of a model whose weights are the standard deviations: w^2 = v
    template = _model({k: t.sqrt() for k, t in v.items()})
    pred = predicted_erf(template, SHAPE)
    also = predicted_erf(template, SHAPE, variances=lambda name, m, w: w.detach() ** 2)
    np.testing.assert_array_equal(pred.map, also.map)
    matters = pred.map > MATTERS * pred.map.max()
    z = (mean - pred.map)[matters] / stderr[matters]
    assert matters.sum() > 300
    print(f"{matters.sum()} pixels: mean z {z.mean():.3f}, rms z {np.sqrt((z**2).mean()):.3f}")
    assert np.abs(z).max() < Z_MAX, f"max |z| {np.abs(z).max():.2f}"
    assert not mean[~matters].any() or mean[~matters].max() < 2 * MATTERS * pred.map.max()
    # the total on the exact scale (no normalisation): within 5 standard errors
    assert abs(float(mean.sum()) - pred.total) < Z_MAX * total_se
    # normalised shapes through compare (delta-method standard errors)
    assert np.abs(compare(pred.map, emp).z[matters]).max() < Z_MAX


def test_channel_average_is_detected_wrong(monte_carlo):
    v, (emp, *_) = monte_carlo
    template = _model({k: t.sqrt() for k, t in v.items()})
    averaged = from_torch(template, SHAPE, weights="variance").profile("expected_square")
    theirs = compare(averaged, emp)  # normalised shapes, the RF of the centre unit placed
    pred = predicted_erf(template, SHAPE)
    ours = compare(pred.map, emp)
    matters = pred.map > MATTERS * pred.map.max()
    z_ours, z_theirs = np.abs(ours.z[matters]).max(), np.abs(theirs.z[matters]).max()
    print(f"channel-aware: max|z| {z_ours:.2f}, TV {ours.tv_distance:.4f}")
    print(f"channel-averaged: max|z| {z_theirs:.2f}, TV {theirs.tv_distance:.4f}")
    assert z_ours < Z_MAX < 4 * Z_MAX < z_theirs
    assert theirs.tv_distance > 3 * ours.tv_distance


# ------------------------------------------------------- calibrated activations
class _ResReLU(nn.Module):
    """conv -> ReLU -> (x + conv(x)) -> ReLU -> conv: the second ReLU sees a positive mean."""

    def __init__(self, width: int = 16, nets: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3 * nets, width * nets, 3, padding=1, bias=False, groups=nets)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width * nets, width * nets, 3, padding=1, bias=False, groups=nets)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width * nets, 4 * nets, 3, padding=1, bias=False, groups=nets)

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        return self.conv3(self.relu2(h + self.conv2(h)))


def _he(model: nn.Module, gen: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(
                    torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)
                    * math.sqrt(2 / fan_in)
                )
    return model.double().eval()


def _he_variance(name, module, weight):
    return 2.0 / weight[0].numel()


def test_calibrated_fractions_equal_a_direct_forward_pass():
    model = _he(_ResReLU(), torch.Generator().manual_seed(1))
    x = torch.randn((6, 3, 12, 12), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    seen = []
    hooks = [
        r.register_forward_pre_hook(lambda m, i: seen.append((i[0] > 0).double().mean((0, 2, 3))))
        for r in (model.relu1, model.relu2)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    factors = activation_factors(model, x)
    assert len(factors) == 2
    for got, want in zip(factors, seen, strict=True):
        np.testing.assert_array_equal(got, want.numpy())
    assert 0.4 < factors[0].mean() < 0.6 < factors[1].mean()  # the residual sum: > 1/2
    erf = predicted_erf(model, (3, 12, 12), activation="calibrated", inputs=x)
    np.testing.assert_array_equal(erf.factors[1], factors[1])
    # random inputs: the same seed, the same factors
    a = predicted_erf(model, (3, 12, 12), activation="calibrated", inputs="random", seed=3)
    b = activation_factors(model, "random", (3, 12, 12), seed=3)
    np.testing.assert_array_equal(a.factors[0], b[0])


def test_calibrated_is_closer_to_monte_carlo_after_a_residual_relu():
    shape = (3, 12, 12)
    group, runs = 50, 100  # 5000 networks
    emp, mean, _, se = _grouped_mc(lambda g: _he(_ResReLU(nets=group), g), shape, group, runs, 7)
    total = float(mean.sum())
    template = _he(_ResReLU(), torch.Generator().manual_seed(11))
    paper = predicted_erf(template, shape, variances=_he_variance)
    calibrated = predicted_erf(
        template,
        shape,
        variances=_he_variance,
        activation="calibrated",
        inputs="random",
        calibration_batch=32,
    )
    assert (total - paper.total) > Z_MAX * se  # the paper factor is too small
    assert abs(total - calibrated.total) < abs(total - paper.total) / 2
    print(
        f"total: measured {total:.4g} +/- {se:.2g}, paper {paper.total:.4g}, calibrated "
        f"{calibrated.total:.4g}; TV paper {compare(paper.map, emp).tv_distance:.4f}, "
        f"calibrated {compare(calibrated.map, emp).tv_distance:.4f}"
    )
    # the shape: with 5000 networks both are detectably off (max |z| about 8 on the
    # normalised map: the independence assumption fails beyond the factors' mean);
    # the per-channel factors must not make it worse
    tv_paper, tv_cal = compare(paper.map, emp).tv_distance, compare(calibrated.map, emp).tv_distance
    assert tv_cal <= tv_paper * 1.05
