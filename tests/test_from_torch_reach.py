"""`from_torch` on the constructs of real CNN families (issue 14), against autograd.

Each construct is a small module written here: ceil-mode pooling, channel shuffles,
split/chunk along the channels, channels-last LayerNorm and ``nn.Linear`` (ConvNeXt),
squeeze-and-excitation gates, channel slices, and models without a local field
(transformers). The receptive field must equal the support of plain autograd's input
gradient (`erftheory.torch.models.autograd_rf`, a linearised float64 copy); where the
weights can be all ones, the exact profile must equal torch's input gradient. A few real
torchvision and timm models are checked the same way on small inputs (skipped, with the
reason, where those packages are absent).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from erftheory import ERFTypeError, ERFValueError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from erftheory.torch.models import autograd_rf, detach_gates, network_rf  # noqa: E402 (needs torch)
from erftheory.torch.trace import from_torch  # noqa: E402


# ---------------------------------------------------------------- helpers
def assert_rf_matches_autograd(
    model: nn.Module, shape: tuple[int, ...], sizes=(), fit: bool = True
) -> Any:
    """The RF box equals autograd's at ``min_input_size`` (``fit``) and at ``sizes``."""
    net = from_torch(model, shape)
    smallest = net.min_input_size()
    smallest = max(smallest) if isinstance(smallest, tuple) else smallest
    for n in ((smallest,) if fit else ()) + tuple(sizes):
        got = autograd_rf(detach_gates(model), (shape[0], n, n))
        want = network_rf(net, n)
        assert got == want, (n, got, want)
    return net


def ones_weights(model: nn.Module) -> nn.Module:
    model = model.double().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return model


def assert_profile_matches_torch(model: nn.Module, channels: int, side: int = 8) -> None:
    """All-ones weights, input of ones: the channel-summed gradient is the exact profile."""
    model = ones_weights(model)
    net = from_torch(model, (channels, side, side))
    size = net.min_input_size()
    x = torch.ones((1, channels, *size), dtype=torch.float64, requires_grad=True)
    y = model(x)
    centre = net.centre_output(size)
    y[(0, slice(None), *centre)].sum().backward()
    got = x.grad[0].sum(0).numpy()
    rf = net.receptive_field
    r0, c0 = (o + j * c for o, j, c in zip(rf.offset, rf.jump, centre, strict=True))
    want = np.zeros(size)
    want[r0 : r0 + rf.size[0], c0 : c0 + rf.size[1]] = net.profile().normalized()
    got = got / got.sum()
    assert np.abs(got - want).max() <= 1e-12 * want.max()


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, repr(message)
    return message


# ---------------------------------------------------------------- 1. ceil mode
def ceil_model(ceil: bool) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.MaxPool2d(3, 2, ceil_mode=ceil),
        nn.Conv2d(2, 2, 3, padding=1),
        nn.AvgPool2d(3, 2, padding=1, ceil_mode=ceil, count_include_pad=not ceil),
        nn.Conv2d(2, 1, 3),
    )


def test_ceil_mode_pooling_is_the_floor_mode_layer():
    ceil, floor = ceil_model(True), ceil_model(False)
    net = from_torch(ceil, (1, 32, 32))
    assert repr(net) == repr(from_torch(floor, (1, 32, 32)))
    assert_rf_matches_autograd(ceil, (1, 32, 32))
    # 24: ceil mode adds a partial window at the far border (one more output unit), which
    # the centre unit does not see
    got, want = autograd_rf(ceil, (1, 24, 24)), network_rf(net, 24)
    assert (got.unit, got.lo, got.hi) == (want.unit, want.lo, want.hi)
    assert got.output_size == (4, 4) and want.output_size == (3, 3)


def test_ceil_mode_average_pooling_profile_matches_torch():
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Conv2d(1, 1, 3),
        nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(1, 1, 2),
    )
    assert_profile_matches_torch(model, 1, side=32)


# ---------------------------------------------------------------- 2. channel-only ops
def channel_shuffle(x, groups: int):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, c, h, w)


class Shuffle(nn.Module):
    """ShuffleNetV2's unit: chunk, a branch on one half, concat, channel shuffle."""

    def __init__(self, shuffle: bool = True) -> None:
        super().__init__()
        self.shuffle = shuffle
        self.stem = nn.Conv2d(2, 2, 3, stride=2)
        self.branch = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 3))
        self.head = nn.Conv2d(2, 1, 3)

    def forward(self, x):
        x = self.stem(x)
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1[:, :, 1:-1, 1:-1] if False else x1, self.branch(x2)), dim=1)
        out = channel_shuffle(out, 2) if self.shuffle else out
        return self.head(out.reshape(out.shape[0], 2, *out.shape[2:]))


class ShuffleSame(nn.Module):
    """A shuffle unit whose two halves keep the map size (a padded branch)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Conv2d(1, 1, 3, padding=1)
        self.head = nn.Conv2d(2, 1, 3, stride=2)

    def forward(self, x):
        x1, x2 = torch.chunk(x, 2, 1)
        out = channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2)
        return self.head(out.permute(0, 1, 3, 2).transpose(2, 3))


def test_channel_shuffle_is_the_identity_on_the_map():
    net = from_torch(ShuffleSame(), (2, 16, 16))
    assert "Parallel" in repr(net)
    assert_rf_matches_autograd(ShuffleSame(), (2, 16, 16), sizes=(12,))
    assert_profile_matches_torch(ShuffleSame(), 2)


class MixConv(nn.Module):
    """MixNet's mixed depthwise convolution: split, a kernel size per piece, concat."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(2, 2, 5, padding=2, groups=2)]
        )
        self.head = nn.Conv2d(3, 1, 3, stride=2)

    def forward(self, x):
        pieces = torch.split(x, [1, 2], 1)
        return self.head(torch.cat([self.convs[0](pieces[0]), self.convs[1](pieces[1])], 1))


class CrossStage(nn.Module):
    """CSPNet: split in two halves, blocks on one, concat, a transition convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())
        self.transition = nn.Conv2d(2, 1, 1)

    def forward(self, x):
        x = self.down(x)
        xs, xb = x.split(1, dim=1)
        return self.transition(torch.cat([xs, self.blocks(xb).contiguous()], dim=1))


def test_split_pieces_are_branches_of_the_block():
    net = from_torch(MixConv(), (3, 16, 16))
    assert repr(net).startswith("Network([Parallel(")
    assert_rf_matches_autograd(MixConv(), (3, 16, 16), sizes=(13,))
    net = assert_rf_matches_autograd(CrossStage(), (1, 16, 16), sizes=(11,))
    assert "Parallel" in repr(net) or "Residual" in repr(net)


def test_split_pieces_profile_matches_torch():
    class Pieces(nn.Module):  # one channel a piece: the block is the sum of the branches
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 5, padding=2)

        def forward(self, x):
            p, q = torch.split(x, 1, dim=1)
            return torch.cat([self.a(p), self.b(q)], 1)

    assert_profile_matches_torch(Pieces(), 2)


class ConvNeXtBlock(nn.Module):
    """torchvision's CNBlock: depthwise 7x7, channels last, LayerNorm, two Linear layers."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d: permute inside its forward."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def convnext() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 2, stride=2),
        LayerNorm2d(4),
        ConvNeXtBlock(),
        nn.Conv2d(4, 4, 2, stride=2),
        ConvNeXtBlock(),
    )


def test_channels_last_linear_and_layer_norm_are_pointwise():
    net = from_torch(convnext(), (3, 32, 32))
    block = (
        "Residual(Conv(7, padding=3), Conv(1, padding=0), Elementwise('gelu'), Conv(1, padding=0))"
    )
    stem = "Conv(2, stride=2, padding=0)"
    assert repr(net) == f"Network([{stem}, {block}, {stem}, {block}])"
    assert_rf_matches_autograd(convnext(), (3, 32, 32), sizes=(20,))


def test_channels_last_linear_profile_matches_torch():
    class Pointwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    assert_profile_matches_torch(Pointwise(), 1)


def test_norms_are_factor_one_with_a_warning_and_read_over_channels():
    # weights="model": the norm's input-dependent scale is taken as 1 (an approximation)
    with pytest.warns(UserWarning, match=r"taken as 1, an approximation"):
        from_torch(ConvNeXtBlock(1), (1, 8, 8), weights="model")
    # weights="variance": the norm's scale is taken as 1, with a warning (shape only)
    with pytest.warns(UserWarning, match=r"1 factor\(s\) depend on the input"):
        net = from_torch(ConvNeXtBlock(1), (1, 8, 8), weights="variance")
    assert not any("LayerNorm" in repr(layer) for layer in net.layers)
    with pytest.raises(ERFValueError, match=r"normalises over the spatial axes of a 6×6") as e:
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.LayerNorm([2, 6, 6])), (1, 8, 8))
    one_line(e.value)
    with pytest.raises(ERFValueError, match=r"type LayerNorm normalises over the spatial axes"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.LayerNorm(6)), (1, 8, 8))


def test_a_linear_layer_on_a_spatial_axis_still_ends_the_map():
    with pytest.raises(ERFValueError, match=r"type Linear reshapes a 6×6 feature map") as e:
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(6, 3)), (1, 8, 8))
    assert "every pixel" in one_line(e.value)


# ---------------------------------------------------------------- 3. SE gates
class SqueezeExcitation(nn.Module):
    """torchvision's SE: the gate first, from AdaptiveAvgPool2d."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, 2, 1), nn.Conv2d(2, c, 1)

    def forward(self, x):
        return F.hardsigmoid(self.fc2(F.relu(self.fc1(self.pool(x))))) * x


class EffectiveSE(nn.Module):
    """timm's eSE: a mean over the spatial axes, one 1x1 convolution, the map first."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x * self.fc(x.mean((2, 3), keepdim=True)).sigmoid()


class SEResidual(nn.Module):
    """RegNetY's block: conv, SE, conv, plus the input."""

    def __init__(self, se: nn.Module, gate: bool = True) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
        self.se = se if gate else nn.Identity()

    def forward(self, x):
        return x + self.b(self.se(F.relu(self.a(x))))


def se_model(se: nn.Module, gate: bool = True) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, stride=2), SEResidual(se, gate), nn.Conv2d(3, 3, 3, stride=2)
    )


@pytest.mark.parametrize("se", [SqueezeExcitation, EffectiveSE])
def test_squeeze_excitation_gate_is_a_per_channel_factor(se):
    net = from_torch(se_model(se(3)), (3, 32, 32))
    assert repr(net) == repr(from_torch(se_model(se(3), gate=False), (3, 32, 32)))
    assert_rf_matches_autograd(se_model(se(3)), (3, 32, 32), sizes=(24,))
    # the full gradient (through the pooling) reaches every pixel: not the local field
    whole = autograd_rf(se_model(se(3)), (3, 24, 24))
    assert whole.size[0] > network_rf(net, 24).size[0]


def test_squeeze_excitation_with_model_weights_is_factor_one_with_a_warning():
    class OneChannelSE(nn.Module):
        def __init__(self, gate: bool = True) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 1)
            self.gate = gate

        def forward(self, x):
            y = self.conv(x)
            if not self.gate:
                return y
            return y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True)))

    model = OneChannelSE()
    with pytest.warns(UserWarning, match=r"taken as 1, an approximation"):
        gated = from_torch(model, (1, 16, 16), weights="model")
    plain = OneChannelSE(gate=False)
    plain.load_state_dict(model.state_dict())
    ungated = from_torch(plain, (1, 16, 16), weights="model")
    assert gated.profile().coefficients == ungated.profile().coefficients


def test_squeeze_excitation_with_variance_weights_is_the_gateless_shape():
    """The gate is taken as 1 (warned): the normalised ERF of the model without it."""
    model = se_model(EffectiveSE(3))
    with pytest.warns(UserWarning, match=r"taken as 1"):
        gated = from_torch(model, (3, 32, 32), weights="variance")
    plain = se_model(EffectiveSE(3), gate=False)
    plain.load_state_dict(model.state_dict(), strict=False)
    ungated = from_torch(plain, (3, 32, 32), weights="variance")
    a = np.asarray(gated.profile("expected_square").normalized(), dtype=float)
    b = np.asarray(ungated.profile("expected_square").normalized(), dtype=float)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- 4. slicing
class TransformInput(nn.Module):
    """GoogLeNet's transform_input: channels sliced, scaled, shifted and concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, stride=2)

    def forward(self, x):
        ch0 = torch.unsqueeze(x[:, 0], 1) * 0.5 + 0.1
        ch1 = x[:, 1:2] * 0.25 - 0.1
        ch2 = x[..., :, :][:, 2:] * 2.0
        return self.conv(torch.cat((ch0, ch1, ch2), 1))[:, :1, :, :]


def test_channel_slices_are_the_identity_on_the_map():
    net = assert_rf_matches_autograd(TransformInput(), (3, 16, 16), sizes=(9, 10), fit=False)
    assert net.receptive_field.size == (3, 3)


class SliceRows(nn.Module):
    def forward(self, x):
        return x[:, :, 1:]


class SliceColumns(nn.Module):
    def forward(self, x):
        return x[..., ::2]


class NewAxis(nn.Module):
    def forward(self, x):
        return x[:, None]


@pytest.mark.parametrize(
    ("model", "text"),
    [(SliceRows(), "x[:, :, 1:]"), (SliceColumns(), "x[..., ::2]"), (NewAxis(), "x[:, None]")],
)
def test_spatial_slicing_is_a_one_line_error(model, text):
    with pytest.raises(ERFValueError, match=r"node 'getitem'.*indexing or slicing") as e:
        from_torch(model, (1, 8, 8))
    assert f"({text})" in one_line(e.value)


# ---------------------------------------------------------------- 5. no local field
class TinyViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.encoder = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.encoder(tokens).mean(1)


def test_a_transformer_is_a_one_line_error_saying_there_is_no_local_field():
    with pytest.raises(ERFValueError, match=r"reshapes a 4×4 feature map into shape") as e:
        from_torch(TinyViT(), (3, 16, 16))
    message = one_line(e.value)
    assert "every pixel" in message and "transformer" in message


def test_a_bare_convolution_is_the_model():
    for shape in ((3, 32, 32), (1, 3, 32, 32)):
        net = from_torch(nn.Conv2d(3, 8, 3, stride=2, padding=1), shape)
        assert repr(net) == "Network([Conv(3, stride=2, padding=1)])"
    with pytest.raises(ERFTypeError, match="the model itself"):
        from_torch(nn.ConvTranspose2d(3, 8, 3), (3, 8, 8))


# ---------------------------------------------------------------- real models
def _real(spec: str) -> nn.Module:
    from erftheory.torch.models import load_model

    package = spec.partition(":")[0]
    try:
        if package == "timm":
            from erftheory.torch.models import import_timm

            import_timm()
        else:
            from erftheory.torch.models import import_torchvision

            import_torchvision()
    except Exception as e:  # any failed import: skip with the reason
        pytest.skip(f"{package} is not usable here: {type(e).__name__}: {e}")
    return load_model(spec)


@pytest.mark.parametrize(
    ("spec", "size"),
    [
        ("torchvision:squeezenet1_0", 67),  # ceil mode adds no window at 67
        ("torchvision:shufflenet_v2_x0_5", 64),
        ("torchvision:mobilenet_v3_small", 64),
    ],
)
def test_real_models_match_autograd(spec, size):
    model = _real(spec)
    net = from_torch(model, (3, 224, 224))
    got = autograd_rf(detach_gates(model), (3, size, size))
    assert got == network_rf(net, size)
