"""`erftheory.trace.from_torch`: PyTorch models as networks, checked against torch.

The reference architectures below follow torchvision's definitions (torchvision itself
is not a dependency). Receptive fields are checked against the classic recurrence,
written here from scratch, and against published numbers; ERFs against torch's own
input gradients in float64.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from erftheory import ERFTypeError, ERFValueError
from erftheory.layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Graph,
    LeakyReLU,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
)
from erftheory.trace import from_torch

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


# ----------------------------------------------------------- torchvision-style models
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
VGG16_CFG += [512, 512, 512, "M"]


def vgg16_features() -> nn.Sequential:
    """torchvision ``vgg16().features`` (configuration D)."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


class AlexNet(nn.Module):
    """torchvision ``alexnet()``."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """ResNet v1.5: the stride sits on the 3×3 convolution."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """torchvision's ResNet; ``width`` scales the channels (64 in torchvision)."""

    def __init__(self, block, layers, width=64, num_classes=1000):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def resnet18(width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], width)


def resnet50(width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], width)


# ----------------------------------------------------------- the classic recurrence
def classic_rf(specs):
    """RF size, jump and offset of a chain of (kernel, stride, padding, dilation) layers.

    $r \\leftarrow r + (k-1) d j$, $c \\leftarrow c + ((k-1)d/2 - p) j$ (centre of unit 0),
    $j \\leftarrow j s$; the offset is the first pixel, $c - (r-1)/2$.
    """
    r, j, centre = 1, 1, Fraction(0)
    for k, s, p, d in specs:
        r += (k - 1) * d * j
        centre += (Fraction((k - 1) * d, 2) - p) * j
        j *= s
    offset = centre - Fraction(r - 1, 2)
    assert offset.denominator == 1
    return r, j, int(offset)


def vgg_specs(cfg):
    return [(2, 2, 0, 1) if v == "M" else (3, 1, 1, 1) for v in cfg]


ALEXNET_CONV5 = [(11, 4, 2, 1), (3, 2, 0, 1), (5, 1, 2, 1), (3, 2, 0, 1)] + [(3, 1, 1, 1)] * 3
ALEXNET_POOL5 = [*ALEXNET_CONV5, (3, 2, 0, 1)]


def resnet_specs(kind, blocks):
    """The main path (the longest) of a torchvision ResNet up to layer4."""
    specs = [(7, 2, 3, 1), (3, 2, 1, 1)]
    for stage, n in enumerate(blocks):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            if kind == "basic":
                specs += [(3, stride, 1, 1), (3, 1, 1, 1)]
            else:
                specs += [(1, 1, 0, 1), (3, stride, 1, 1), (1, 1, 0, 1)]
    return specs


def square(rf):
    return ((rf[0], rf[0]), (rf[1], rf[1]), (rf[2], rf[2]))


def as_tuple(field):
    return (field.size, field.jump, field.offset)


# ----------------------------------------------------------- published receptive fields
def test_classic_recurrence_reproduces_published_numbers():
    assert classic_rf(vgg_specs(VGG16_CFG[:-1])) == (196, 16, -90)  # VGG-16 conv5_3
    assert classic_rf(vgg_specs(VGG16_CFG)) == (212, 32, -90)  # VGG-16 pool5
    # torchvision AlexNet: conv5 is 163 (jump 16); 195 is pool5 (jump 32)
    assert classic_rf(ALEXNET_CONV5) == (163, 16, -66)
    assert classic_rf(ALEXNET_POOL5) == (195, 32, -66)
    assert classic_rf(resnet_specs("basic", [2, 2, 2, 2])) == (435, 32, -217)
    assert classic_rf(resnet_specs("bottleneck", [3, 4, 6, 3])) == (427, 32, -213)


def test_vgg16_receptive_fields():
    features = vgg16_features()
    pool5 = from_torch(features, (3, 224, 224))
    conv5_3 = from_torch(features[:-1], (3, 224, 224))
    assert as_tuple(pool5.receptive_field) == square((212, 32, -90))
    assert as_tuple(conv5_3.receptive_field) == square((196, 16, -90))
    assert as_tuple(pool5.receptive_field) == square(classic_rf(vgg_specs(VGG16_CFG)))
    assert len(pool5.layers) == 13 * 2 + 5
    assert pool5.output_size(224) == (7, 7)


def test_alexnet_receptive_fields():
    model = AlexNet()
    pool5 = from_torch(model.features, (3, 224, 224))
    conv5 = from_torch(model.features[:-1], (3, 224, 224))
    assert as_tuple(pool5.receptive_field) == square((195, 32, -66))
    assert as_tuple(conv5.receptive_field) == square((163, 16, -66))
    assert pool5.output_size((224, 224)) == (6, 6)
    # the whole model flattens a 6×6 map into its classifier: refused, with a hint
    with pytest.raises(ERFValueError, match=r"6×6 feature map.*model\.features"):
        from_torch(model, (3, 224, 224))


@pytest.mark.parametrize(
    ("build", "kind", "blocks", "expected"),
    [
        (resnet18, "basic", [2, 2, 2, 2], (435, 32, -217)),
        (resnet50, "bottleneck", [3, 4, 6, 3], (427, 32, -213)),
    ],
)
def test_resnet_receptive_fields(build, kind, blocks, expected):
    model = build(width=8).eval()
    net = from_torch(model, (3, 224, 224))
    assert as_tuple(net.receptive_field) == square(expected)
    assert as_tuple(net.receptive_field) == square(classic_rf(resnet_specs(kind, blocks)))
    assert net.output_size(224) == (7, 7)
    residuals = [x for x in net.layers if isinstance(x, Residual)]
    assert len(residuals) == sum(blocks)
    # torchvision's downsampling shortcut: a strided 1×1 convolution (and its batch norm)
    shortcuts = [r.shortcut for r in residuals if r.shortcut]
    strides = [s[0].stride(2) for s in shortcuts]
    if kind == "basic":  # layer1 keeps 64 channels: identity shortcuts only
        assert strides == [(2, 2)] * 3
    else:  # layer1 expands 64 to 256 channels: a 1×1 projection of stride 1
        assert strides == [(1, 1)] + [(2, 2)] * 3
    assert all(isinstance(s[0], Conv) and s[0].size(2) == (1, 1) for s in shortcuts)


def test_resnet_with_batch_dimension_and_weight_modes():
    model = resnet18(width=4).eval()
    a = from_torch(model, (2, 3, 64, 64))
    b = from_torch(model, (3, 64, 64), weights="variance")
    assert a.receptive_field == b.receptive_field
    assert as_tuple(a.receptive_field) == square((435, 32, -217))
    assert b.std("expected_square")[0] > 0


# ----------------------------------------------------------- exactness against torch
def integer_weights(model, seed, positive=False):
    """Small integer kernels, non-trivial batch-norm statistics, float64, eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                w = torch.randint(1 if positive else -2, 4, m.weight.shape, generator=g)
                w[w == 0] = 1
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return model.double().eval()


def torch_input_gradient(model, net, size):
    """torch's gradient of the centre output unit on an input of ``size`` (float64)."""
    shape = (size,) if isinstance(size, int) else tuple(size)
    x = torch.zeros((1, 1, *shape), dtype=torch.float64, requires_grad=True)
    y = model(x)
    out = net.output_size(size)
    assert tuple(y.shape[2:]) == ((out,) if isinstance(out, int) else out)
    centre = net.centre_output(size)
    centre = (centre,) if isinstance(centre, int) else centre
    y[(0, 0, *centre)].backward()
    return x.grad[0, 0].numpy(), centre


def expected_gradient(net, size, centre):
    """The exact transfer polynomial placed at the centre unit's RF, zeros elsewhere."""
    rf = net.receptive_field
    shape = (size,) if isinstance(size, int) else tuple(size)
    per = (lambda v: (v,)) if net.ndim == 1 else (lambda v: v)
    coeffs = np.array(net.transfer().weights, dtype=object).astype(float)
    out = np.zeros(shape)
    start = [o + j * c for o, j, c in zip(per(rf.offset), per(rf.jump), centre, strict=True)]
    assert all(s >= 0 for s in start)
    index = tuple(slice(s, s + n) for s, n in zip(start, per(rf.size), strict=True))
    out[index] = coeffs
    assert np.count_nonzero(coeffs) > 0
    return out


def assert_matches_torch(model, net, tight):
    size = net.min_input_size()
    assert net.fits(size)
    got, centre = torch_input_gradient(model, net, size)
    want = expected_gradient(net, size, centre)
    peak = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-12 * peak
    if tight:  # positive weights: the field's first and last rows/columns are reached
        support = np.nonzero(got)
        rf = net.receptive_field
        sizes = (rf.size,) if net.ndim == 1 else rf.size
        for axis, n in enumerate(sizes):
            assert support[axis].max() - support[axis].min() + 1 == n


class TorchvisionBlock1d(nn.Module):
    """A BasicBlock written the torchvision way, single-channel, 1-D, with dilation."""

    def __init__(self, stride, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 1, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(1)
        self.conv2 = nn.Conv1d(1, 1, 3, padding=2, dilation=2)
        self.bn2 = nn.BatchNorm1d(1)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return out


class Branches1d(nn.Module):
    """``a(x) + b(x)``, then a concatenation summed over channels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(1, 1, 5, padding=2)
        self.b = nn.Sequential(nn.Conv1d(1, 1, 3, padding=1), nn.Conv1d(1, 1, 3, padding=1))
        self.c = nn.Conv1d(1, 1, 2, padding="same")

    def forward(self, x):
        y = self.a(x) + self.b(x)
        z = torch.cat([self.c(y), F.avg_pool1d(y, 3, 1, 1), y], 1)
        return z.sum(1, keepdim=True)


def model_1d():
    return nn.Sequential(
        nn.Conv1d(1, 1, 3, stride=2, padding=1),
        TorchvisionBlock1d(2, nn.Sequential(nn.Conv1d(1, 1, 1, stride=2), nn.BatchNorm1d(1))),
        TorchvisionBlock1d(1),
        Branches1d(),
        nn.AvgPool1d(2),
        nn.Conv1d(1, 1, 4, dilation=3, padding=0),
    )


class TorchvisionBlock2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3, stride=(2, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(1)
        self.conv2 = nn.Conv2d(1, 1, 3, padding=(1, 2), dilation=(1, 2), bias=False)
        self.downsample = nn.Sequential(
            nn.Conv2d(1, 1, 1, stride=(2, 1), bias=False), nn.BatchNorm2d(1)
        )

    def forward(self, x):
        identity = self.downsample(x)
        out = self.conv2(self.bn1(self.conv1(x)))
        return torch.add(out, identity)


class Model2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 1, 3, stride=2, padding=1)
        self.block = TorchvisionBlock2d()
        self.left = nn.Conv2d(1, 1, (1, 3), padding="same")
        self.right = nn.Conv2d(1, 1, (3, 1), padding="same")
        self.pool = nn.AvgPool2d((2, 3), stride=(1, 2), padding=(0, 1))
        self.head = nn.Conv2d(1, 1, (2, 2), dilation=(2, 1))

    def forward(self, x):
        x = self.stem(x)
        x = self.block(x)
        x = x + self.left(x) + self.right(x)
        x = torch.cat([self.pool(x), F.avg_pool2d(x, (2, 3), (1, 2), (0, 1))], dim=1)
        x = x.sum(dim=1, keepdim=True) * 0.5
        return self.head(x)


@pytest.mark.parametrize("positive", [False, True])
def test_exact_1d_against_torch(positive):
    model = integer_weights(model_1d(), seed=1, positive=positive)
    net = from_torch(model, (1, 256), weights="model")
    assert net.ndim == 1
    kinds = [type(x) for x in net.layers]
    assert kinds == [Conv, Residual, Residual, Parallel, Parallel, AvgPool, Conv]
    assert net.layers[1].shortcut and isinstance(net.layers[1].shortcut[1], BatchNorm)
    assert net.layers[2].shortcut == ()
    assert_matches_torch(model, net, tight=positive)


@pytest.mark.parametrize("positive", [False, True])
def test_exact_2d_against_torch(positive):
    model = integer_weights(Model2d(), seed=2, positive=positive)
    net = from_torch(model, (1, 40, 40), weights="model")
    assert net.ndim == 2
    block = net.layers[1]
    assert isinstance(block, Residual) and [type(x) for x in block.shortcut] == [Conv, BatchNorm]
    # x + left(x) + right(x) is two nested additions
    assert isinstance(net.layers[2], Parallel)
    assert isinstance(net.layers[2].branches[0][0], Residual)
    assert_matches_torch(model, net, tight=positive)


def test_input_size_rule_is_tight_for_torch():
    """At the rule's input size torch sees the whole ERF; one pixel less and it loses mass."""
    model = integer_weights(Model2d(), seed=3, positive=True)
    net = from_torch(model, (1, 1, 40, 40), weights="model")
    rows, cols = net.min_input_size()
    total = float(net.moments()[0])
    assert_matches_torch(model, net, tight=True)
    for size in [(rows - 1, cols), (rows, cols - 1)]:
        assert not net.fits(size)
        got, _ = torch_input_gradient(model, net, size)
        assert got.sum() < total * (1 - 1e-9)


def test_model_weights_are_exact_fractions():
    conv = nn.Conv1d(1, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[0.1, -0.25, 1 / 3]]]))
    bn = nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        bn.running_var.fill_(3.0)
        bn.weight.fill_(2.0)
    net = from_torch(nn.Sequential(conv, bn), (1, 8), weights="model")
    weights = net.layers[0].kernel("gradient", 1).weights
    assert weights == tuple(Fraction(float(torch.tensor(v))) for v in (0.1, -0.25, 1 / 3))
    assert net.layers[1].scale == Fraction(2.0 / math.sqrt(3.0 + 1e-5))


# ----------------------------------------------------------- weights="ones", multi-channel
def test_ones_weights_multichannel_chain_matches_torch():
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 3, (3, 5), padding=(1, 2), dilation=(2, 1), groups=1),
        nn.Conv2d(3, 6, 3, groups=3, padding=2, dilation=2),
    ).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    model.eval()
    net = from_torch(model, (2, 48, 48))
    assert all(
        isinstance(x, (Conv, ReLU, AvgPool)) for x in net.layers
    )  # batch norm is the identity
    assert net.layers[0].kernel("gradient", 2).weights == ((1, 1, 1),) * 3
    size = net.min_input_size()
    x = torch.ones((1, 2, *size), dtype=torch.float64, requires_grad=True)
    y = model(x)  # positive everywhere: ReLU passes every gradient
    centre = net.centre_output(size)
    y[0, 0, centre[0], centre[1]].backward()
    grad = x.grad[0].numpy()
    assert np.array_equal(grad[0], grad[1])  # channels only scale a plain chain
    got = grad[0] / grad[0].sum()
    rf = net.receptive_field
    r0, c0 = (o + j * c for o, j, c in zip(rf.offset, rf.jump, centre, strict=True))
    want = np.zeros(size)
    want[r0 : r0 + rf.size[0], c0 : c0 + rf.size[1]] = net.profile().normalized()
    assert np.abs(got - want).max() <= 1e-12 * want.max()


# ----------------------------------------------------------- what each module becomes
def test_module_mapping():
    model = nn.Sequential(
        nn.Conv1d(2, 3, 4, stride=2, dilation=3, padding="valid", groups=1),
        nn.LeakyReLU(0.2),
        nn.Tanh(),
        nn.Sigmoid(),
        nn.ReLU6(),
        nn.Dropout(0.25),
        nn.Dropout1d(0.1).eval(),
        nn.Identity(),
        nn.MaxPool1d(3, 2, 1),
        nn.AvgPool1d(4, 2, 1),
        nn.AdaptiveAvgPool1d(6),
        nn.AdaptiveMaxPool1d(3),
        nn.BatchNorm1d(3),
    )
    net = from_torch(model, (2, 109))
    assert [repr(x) for x in net.layers] == [
        "Conv(4, stride=2, dilation=3, padding='valid')",
        "LeakyReLU(1/5)",
        "Tanh()",
        "Sigmoid()",
        "ReLU()",
        "Dropout(0.25)",
        "MaxPool(3, stride=2, padding=1)",
        "AvgPool(4, stride=2, padding=1)",
        "AvgPool(2)",
        "MaxPool(2)",
    ]
    assert isinstance(net.layers[1], LeakyReLU) and isinstance(net.layers[2], Tanh)
    assert isinstance(net.layers[3], Sigmoid) and isinstance(net.layers[5], Dropout)
    assert isinstance(net.layers[6], MaxPool)
    # 109 → conv 50 → max pool 25 → average pool 12 → adaptive 6 → adaptive 3
    assert net.output_size(109) == 3


def test_functional_forms():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 5)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)
            x = torch.relu(x).tanh()
            x = F.leaky_relu(x, 0.1)
            x = F.dropout(x, 0.5, self.training)
            x = F.avg_pool2d(x, 3, stride=1) / 4 - 1
            x = torch.sigmoid(-x)
            return x.mean((2, 3))

    model = Functional()
    train = from_torch(model.train(), (3, 32, 32))
    evaluation = from_torch(model.eval(), (3, 32, 32))
    names = [x.name for x in train.layers]
    assert names == [
        "conv",
        "relu",
        "maxpool",
        "relu",
        "tanh",
        "leaky_relu",
        "dropout",
        "avgpool",
        "scale",
        "negate",
        "sigmoid",
    ]
    assert "dropout" not in [x.name for x in evaluation.layers]
    scale = train.layers[8]
    assert isinstance(scale, Activation) and scale.factor("gradient") == Fraction(1, 4)
    assert train.receptive_field.size == (5 + 1 + 2 * 2, 5 + 1 + 2 * 2)


def test_variance_weights():
    conv1 = nn.Conv2d(3, 5, 3, padding=1)
    conv2 = nn.Conv2d(5, 2, (1, 3), groups=1)
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
    model = nn.Sequential(conv1, bn, nn.ReLU(), conv2).eval()
    net = from_torch(model, (3, 16, 16), weights="variance")
    w = conv1.weight.detach().double()
    v = ((w**2).sum(dim=(0, 1)) / 5).tolist()
    assert net.layers[0].kernel("expected_square", 2).weights == tuple(
        tuple(Fraction(x) for x in row) for row in v
    )
    scales = [
        g / math.sqrt(v + bn.eps)
        for g, v in zip(bn.weight.tolist(), bn.running_var.tolist(), strict=True)
    ]
    s2 = sum(Fraction(s) ** 2 for s in scales) / 5
    assert net.layers[1].factor("expected_square") == s2
    assert net.layers[1].factor("gradient") == sum(Fraction(s) for s in scales) / 5
    total = net.moments("expected_square")[0]
    w2 = conv2.weight.detach().double()
    # the last layer sums over the 2 output channels (the seed of empirical_erf)
    assert net.layers[-1].factor("expected_square") == 2
    expected = float((w**2).sum() / 5) * float(s2) * 0.5 * float((w2**2).sum() / 2) * 2
    assert float(total) == pytest.approx(expected, rel=1e-12)


def test_training_mode_dropout_and_batch_norm():
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1), nn.Dropout2d(0.5)).train()
    before = model[1].running_mean.clone(), int(model[1].num_batches_tracked)
    net = from_torch(model, (1, 9, 9), weights="model")
    assert [type(x) for x in net.layers] == [Conv, BatchNorm, Dropout]
    assert net.layers[2].factor("expected_square") == 2
    # the shape pass leaves the model untouched
    assert torch.equal(model[1].running_mean, before[0])
    assert int(model[1].num_batches_tracked) == before[1]


def test_non_series_parallel_graph_becomes_a_graph_block():
    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.f1 = nn.Conv2d(1, 1, 3, padding=1)
            self.f2 = nn.Conv2d(2, 1, 3, padding=1)

        def forward(self, x):
            x1 = self.f1(x)
            x2 = self.f2(torch.cat([x, x1], 1))
            return torch.cat([x, x1, x2], 1)

    net = from_torch(Dense(), (1, 16, 16))
    (block,) = net.layers
    assert isinstance(block, Graph)
    assert block.inputs == ((0,), (0, 1), (0, 1, 2))
    # the path sum: x + f1 + f2(x + f1), f2 reading the concatenation as a sum
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    lin = Dense().double()
    with torch.no_grad():
        for p in lin.parameters():
            p.fill_(1.0)
    y = lin(x)
    y[0, :, 7, 7].sum().backward()
    grad = x.grad[0, 0].numpy()
    prof = np.asarray(net.profile().coefficients, dtype=float)
    lo = 7 - prof.shape[0] // 2
    assert np.array_equal(grad[lo : lo + prof.shape[0], lo : lo + prof.shape[1]], prof)


# ----------------------------------------------------------- errors
def test_unsupported_module_is_named():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.up = nn.Upsample(scale_factor=2)

        def forward(self, x):
            return self.up(self.conv(x))

    model = nn.Sequential(nn.Conv2d(3, 3, 3), nn.Sequential(nn.ReLU(), Block()))
    with pytest.raises(ERFTypeError, match=r"module '1\.1\.up' of type Upsample .*supported: Conv"):
        from_torch(model, (3, 16, 16))


def test_lstm_is_named():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.LSTM(8, 4))
    with pytest.raises(ERFTypeError, match=r"module '1' of type LSTM is not supported"):
        from_torch(model, (1, 10))


def test_unsupported_function_and_gate_are_refused():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            y = self.conv(x)
            return y * F.adaptive_avg_pool2d(y, 1)

    # a squeeze-and-excitation gate is a per-channel factor of the map (test_from_torch_reach)
    assert repr(from_torch(Gate(), (3, 16, 16))) == "Network([Conv(3, padding=0)])"
    with pytest.warns(UserWarning, match=r"function mul \(node 'mul'\)\): with weights"):
        gated = from_torch(Gate(), (3, 16, 16), weights="variance")  # the gate taken as 1
    assert [type(layer).__name__ for layer in gated.layers] == ["Conv", "Activation"]

    class Mul(nn.Module):
        def forward(self, x):
            return x * torch.exp(x)

    with pytest.raises(ERFTypeError, match=r"function torch\.exp \(node 'exp'\) is not supp"):
        from_torch(Mul(), (3, 16, 16))


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (nn.MaxPool2d(2, dilation=2), "dilated max pooling"),
        (nn.AdaptiveAvgPool2d(5), "windows of unequal size"),
    ],
)
def test_unsupported_options(layer, match):
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), layer)
    with pytest.raises(ERFValueError, match=rf"module '1' of type {type(layer).__name__}.*{match}"):
        from_torch(model, (3, 16, 16))


def test_model_weights_of_multichannel_layers_are_collapsed():
    """Multi-channel layers under weights="model": one convolution, the gradient of the
    channel-summed input (here a plain sum of the weights over input channels)."""
    conv = nn.Conv2d(3, 1, 3, bias=False)
    net = from_torch(nn.Sequential(conv), (3, 8, 8), weights="model")
    assert len(net.layers) == 1
    want = conv.weight.detach().double().sum(1)[0].numpy()
    got = np.asarray(net.profile().coefficients, dtype=float)
    assert np.array_equal(got, want)
    bn = nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, 3.0]))
    one = from_torch(nn.Sequential(bn), (2, 8, 8), weights="model")
    assert float(one.profile().coefficients[0][0]) == pytest.approx(5 / math.sqrt(1 + bn.eps))
    # the same models with the other weights
    assert len(from_torch(nn.Sequential(nn.Conv2d(3, 1, 3)), (3, 8, 8), weights="variance")) == 1


def test_bad_arguments():
    with pytest.raises(ERFTypeError, match=r"torch\.nn\.Module"):
        from_torch([nn.Conv2d(1, 1, 3)], (1, 8, 8))
    conv = nn.Sequential(nn.Conv2d(1, 1, 3))
    for bad in [(8, 8, 8, 8, 8), (1,), (1, 0, 8), (1, 8.0, 8), "1,8,8", 8]:
        with pytest.raises(ERFValueError, match="input_shape"):
            from_torch(conv, bad)
    with pytest.raises(ERFValueError, match="weights"):
        from_torch(conv, (1, 8, 8), weights="random")
    with pytest.raises(ERFValueError, match="does not run on an input of shape"):
        from_torch(conv, (3, 8, 8))  # three channels into a one-channel convolution
    with pytest.raises(ERFValueError, match=r"reshapes a 6×6 feature map"):
        from_torch(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten()), (1, 8, 8))


def test_flatten_after_global_pooling_is_the_end():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(2, 1), nn.Tanh()
    )
    net = from_torch(model, (1, 10, 10))
    assert repr(net) == "Network([Conv(3, padding=0)])"
    # and a 1×1 map may be flattened without pooling
    small = from_torch(nn.Sequential(nn.Conv2d(1, 2, 5), nn.Flatten()), (1, 5, 5))
    assert small.receptive_field.size == (5, 5)


# ---------------------------------------------------------------- reliability
def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, repr(message)
    return message


class SliceChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(x)[:, :1]


class SliceInput(nn.Module):
    def forward(self, x):
        return x[:, :1, ::2] * 2


class Index(nn.Module):
    def forward(self, x):
        return x[0]


@pytest.mark.parametrize(
    ("model", "text"),
    [(SliceInput(), "x[:, :1, ::2]"), (Index(), "x[0]")],
)
def test_tensor_slicing_is_a_clear_error_naming_the_op(model, text):
    with pytest.raises(ERFValueError, match=r"node 'getitem'.*indexing or slicing") as e:
        from_torch(model, (1, 8, 8))
    assert f"({text})" in _one_line(e.value)
    # a slice of the channels is the identity on the map
    assert repr(from_torch(SliceChannels(), (1, 8, 8))) == "Network([Conv(3, padding=0)])"


def test_a_bare_layer_is_accepted_as_the_model():
    for layer, shape in (
        (nn.Conv2d(1, 1, 3, stride=2, padding=1), (1, 9, 9)),
        (nn.Conv1d(2, 3, 5, dilation=2), (2, 20)),
        (nn.MaxPool2d(2), (1, 8, 8)),
        (nn.BatchNorm2d(3), (3, 8, 8)),
    ):
        assert repr(from_torch(layer, shape)) == repr(from_torch(nn.Sequential(layer), shape))
    assert repr(from_torch(nn.Conv2d(1, 1, 3), (1, 8, 8))) == "Network([Conv(3, padding=0)])"
    with pytest.raises(ERFTypeError, match="the model itself, a module of type ConvTranspose2d"):
        from_torch(nn.ConvTranspose2d(1, 1, 3), (1, 8, 8))
    with pytest.raises(ERFTypeError, match="ModuleList has no forward"):
        from_torch(nn.ModuleList([nn.Conv2d(1, 1, 3)]), (1, 8, 8))


def test_unknown_modules_name_their_path_and_type():
    # (GELU was the example until it became an Elementwise activation)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Softmax2d()))
    with pytest.raises(ERFTypeError, match=r"^module '1\.1' of type Softmax2d is not supp") as e:
        from_torch(model, (1, 8, 8))
    _one_line(e.value)


def test_non_finite_weights_and_statistics_are_clear_errors():
    conv = nn.Sequential(nn.Conv2d(1, 1, 3))
    with torch.no_grad():
        conv[0].weight[0, 0, 1, 1] = math.nan
    for weights in ("model", "variance"):
        with pytest.raises(ERFValueError, match=r"module '0' of type Conv2d: .*nan") as e:
            from_torch(conv, (1, 8, 8), weights=weights)
        _one_line(e.value)
    assert len(from_torch(conv, (1, 8, 8))) == 1  # "ones" ignores the values
    bn = nn.Sequential(nn.BatchNorm2d(2))
    with torch.no_grad():
        bn[0].running_var.fill_(-1.0)
    with pytest.raises(ERFValueError, match="module '0' of type BatchNorm2d has running variances"):
        from_torch(bn, (2, 8, 8), weights="variance")


def numpy_roundtrip(x):
    """A leaf function of the fx graph that has no meta kernel (it goes through numpy)."""
    return torch.from_numpy(x.detach().cpu().numpy())


torch.fx.wrap("numpy_roundtrip")


class NotOnMeta(nn.Module):
    """A model that only runs on real tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return numpy_roundtrip(self.conv(x))


def test_the_real_fallback_run_is_size_checked():
    from erftheory import SizeLimitError

    with pytest.raises(SizeLimitError, match=r"real zeros of shape \(2, 1, 100000, 100000\)") as e:
        from_torch(NotOnMeta(), (1, 10**5, 10**5))
    _one_line(e.value)


def test_variance_weights_sum_over_the_output_channels():
    """One scale convention (issue 15): the seed is 1 at every output channel, as for
    empirical_erf, so the raw maps agree (before, measured / theory was 7.90 here)."""
    from erftheory.compare import compare
    from erftheory.torch import empirical_erf

    std = 0.3

    def chain() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(2, 4, 3, bias=False), nn.Conv2d(4, 8, 3, stride=2, bias=False)
        ).double()

    def factory(run: int, gen: torch.Generator) -> nn.Module:
        m = chain()
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(std * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        return m

    fixed = chain()
    with torch.no_grad():
        for p in fixed.parameters():
            p.fill_(std)  # squared weights: exactly the random weights' variance
    shape = (2, 9, 9)
    net = from_torch(fixed, shape, weights="variance")
    assert net.layers[-1].factor("expected_square") == 8
    erf = empirical_erf(factory, shape, runs=1500, statistic="mean_square", seed=3)
    raw = compare(net.profile("expected_square"), erf, normalize=False)
    assert raw.max_abs_z < 5, raw
    total = float(np.sum(raw.theory))
    assert abs(float(np.sum(raw.empirical)) / total - 1) < 0.1


# ----------------------------------------------------------- weights="model", many channels
class _MultiChannel(nn.Module):
    """Batch norm, ReLU, a stride, a max pool, a residual block and a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Conv2d(4, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 3, 3, stride=2, padding=1)
        self.side = nn.Conv2d(4, 2, 1, stride=2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        h = torch.relu(self.bn(self.stem(x)))
        h = h + self.body(h)
        return self.pool(torch.cat([self.down(h), self.side(h)], 1))


def _random_multichannel(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    m = _MultiChannel().double().eval()
    with torch.no_grad():
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.weight.uniform_(0.5, 1.5)
    return m


def test_model_weights_of_a_multichannel_model_are_its_mean_gradient():
    """One convolution whose kernel is the mean input gradient (ReLU as its mean slope
    1/2, max pooling as the uniform choice of a tap): against plain autograd of the
    same model with ReLU as x / 2 and max pooling as average pooling, to rounding."""
    model = _random_multichannel(0)
    net = from_torch(model, (3, 24, 24), weights="model")
    ones = from_torch(model, (3, 24, 24))
    assert len(net.layers) == 1 and net.receptive_field == ones.receptive_field
    kernel = np.asarray(net.profile().coefficients, dtype=float)

    class Linear(nn.Module):  # the same model, ReLU as 1/2 and max pool as the average
        def __init__(self, m: nn.Module) -> None:
            super().__init__()
            self.m = m
            self.mid = nn.Identity()
            self.avg = nn.AvgPool2d(2)

        def forward(self, x):
            m = self.m
            h = self.mid(m.bn(m.stem(x))) * 0.5
            h = h + m.body(h)
            return self.avg(torch.cat([m.down(h), m.side(h)], 1))

    n = net.min_input_size()
    ref = Linear(model).double().eval()
    x = torch.zeros(1, 3, *n, dtype=torch.float64, requires_grad=True)
    y = ref(x)
    unit = net.centre_output(n)
    y[(0, slice(None), *unit)].sum().backward()
    grad = x.grad[0].sum(0).numpy()
    window = net.receptive_field.window(unit)
    want = grad[tuple(slice(r.start, r.stop) for r in window)]
    assert np.abs(kernel - want).max() <= 1e-12 * np.abs(want).max()


def test_model_weights_take_gates_as_one_with_a_warning():
    class Gated(nn.Module):
        def __init__(self, gate: bool) -> None:
            super().__init__()
            self.conv, self.fc, self.out = (
                nn.Conv2d(2, 3, 3),
                nn.Conv2d(3, 3, 1),
                nn.Conv2d(3, 2, 3),
            )
            self.gate = gate

        def forward(self, x):
            y = self.conv(x)
            if self.gate:
                y = y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True)))
            return self.out(y)

    torch.manual_seed(1)
    gated = Gated(True).double()
    plain = Gated(False).double()
    plain.load_state_dict(gated.state_dict())
    with pytest.warns(UserWarning, match=r"taken as 1, an approximation"):
        a = from_torch(gated, (2, 12, 12), weights="model")
    b = from_torch(plain, (2, 12, 12), weights="model")
    assert a.profile().coefficients == b.profile().coefficients


def test_model_weights_clip_a_field_larger_than_the_limit(monkeypatch):
    import erftheory.torch.trace as trace_module

    model = nn.Sequential(
        nn.Conv1d(2, 3, 5, padding=2, bias=False), nn.Conv1d(3, 1, 5, padding=2, bias=False)
    ).double()
    monkeypatch.setattr(trace_module, "COLLAPSE_MAX_SIDE", 4)
    with pytest.warns(UserWarning, match=r"is 0 where the field leaves it"):
        net = from_torch(model, (2, 6), weights="model")
    assert net.receptive_field.size == 9
    got = [float(c) for c in net.profile().coefficients]
    x = torch.zeros(1, 2, 6, dtype=torch.float64, requires_grad=True)
    model(x)[0, 0, 2].backward()  # the centre unit of 6 outputs reads pixels -2 .. 6
    want = [0.0, 0.0, *x.grad[0].sum(0).tolist(), 0.0]
    assert got == pytest.approx(want, rel=1e-12, abs=0)
