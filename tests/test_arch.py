"""Architecture files (`erftheory.arch`) and ``erftheory profile --arch``.

Receptive fields are checked against the classic recurrence $r \\leftarrow r + (k-1)dj$,
$j \\leftarrow js$ and variances against $\\sum_l J_{l-1}^2 d_l^2 \\mathrm{Var}_l$, both
computed here without erftheory.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from erftheory import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    ERFTypeError,
    ERFValueError,
    Identity,
    Kernel,
    LeakyReLU,
    MaxPool,
    MissingDependencyError,
    Network,
    Parallel,
    ReLU,
    Residual,
    Sigmoid,
    SizeLimitError,
    Tanh,
    memory_limit,
)
from erftheory import arch as arch_module
from erftheory.arch import MAX_LAYERS, arch_to_dict, load_arch, parse_arch
from erftheory.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
VGG = EXAMPLES / "vgg16.json"
RESNET = EXAMPLES / "resnet18.json"
SEC25 = EXAMPLES / "paper_sec25.json"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erftheory", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def classic_rf(layers: list[tuple[int, int, int, int]]) -> tuple[int, int, int]:
    """RF size, jump and offset of a chain of (kernel, stride, dilation, padding) layers."""
    size, jump, offset = 1, 1, 0
    for k, s, d, p in layers:
        size += (k - 1) * d * jump
        offset -= p * jump
        jump *= s
    return size, jump, offset


def chain_variance(layers: list[tuple[Fraction, int, int]]) -> Fraction:
    """$\\sum_l J_{l-1}^2 d_l^2 \\mathrm{Var}_l$ for (Var_l, stride, dilation) layers."""
    total, jump = Fraction(0), 1
    for var, s, d in layers:
        total += var * (jump * d) ** 2
        jump *= s
    return total


UNIFORM3 = Fraction(2, 3)  # variance of the uniform distribution on {0, 1, 2}
UNIFORM2 = Fraction(1, 4)  # ... on {0, 1}


# --------------------------------------------------------------------------- every layer type
def test_every_layer_type_parses() -> None:
    net = parse_arch(
        {
            "ndim": 2,
            "name": "all",
            "description": "every layer type",
            "layers": [
                {"conv": {"kernel": "1,2,1;2,4,2;1,2,1"}},
                {"conv": {"size": 3, "stride": 2, "dilation": 1, "padding": "same"}},
                {"conv": {"kernel": [["1/4", 0], [0.5, 1]], "anchor": [1, 1], "padding": [1, 0]}},
                {"conv": {"size": [1, 3], "dilation": [1, 2], "padding": "valid"}},
                {"avgpool": {"size": 2, "stride": 2}},
                {"maxpool": {"size": 3, "stride": 2, "padding": 1}},
                "relu",
                {"leaky_relu": {"negative_slope": "1/100"}},
                "tanh",
                {"sigmoid": {"input_std": 2}},
                {"activation": {"name": "gelu", "gradient_factor": "1/2", "square_factor": 0.4}},
                {"dropout": {"p": 0.5}},
                {"batchnorm": {"scale": "1/2"}},
                "identity",
                {"relu": {}},
                {"identity": None},
                {
                    "residual": {
                        "layers": [{"conv": {"size": 3, "stride": 2}}],
                        "shortcut": [{"conv": {"size": 1, "stride": 2, "padding": 0}}],
                    }
                },
                {"parallel": {"branches": [[], [{"conv": {"size": 3}}, "relu"]]}},
                {"repeat": {"times": 3, "layers": [{"conv": {"size": 3}}, "relu"]}},
            ],
        }
    )
    layers = net.layers
    assert net.ndim == 2 and len(layers) == 18 + 6
    assert layers[0].kernel("gradient", 2) == Kernel.parse("1,2,1;2,4,2;1,2,1")
    assert repr(layers[1]) == "Conv(3, stride=2)"
    third = layers[2]
    assert isinstance(third, Conv)
    k = third.kernel("gradient", 2)
    assert k.weights == ((Fraction(1, 4), 0), (Fraction(1, 2), 1)) and k.anchor == (1, 1)
    assert third.padding(2) == (1, 0)
    assert repr(layers[3]) == "Conv((1, 3), dilation=(1, 2), padding='valid')"
    assert layers[3].extent(2) == (1, 5)
    assert isinstance(layers[4], AvgPool) and layers[4].stride(2) == (2, 2)
    assert isinstance(layers[5], MaxPool) and layers[5].padding(2) == (1, 1)
    assert isinstance(layers[6], ReLU)
    assert isinstance(layers[7], LeakyReLU) and layers[7].negative_slope == Fraction(1, 100)
    assert isinstance(layers[8], Tanh) and layers[8].input_std == 1
    assert isinstance(layers[9], Sigmoid) and layers[9].input_std == 2
    gelu = layers[10]
    assert isinstance(gelu, Activation) and gelu.name == "gelu"
    assert gelu.factor("gradient") == Fraction(1, 2)
    assert gelu.factor("expected_square") == Fraction(2, 5)  # 0.4 read exactly
    assert isinstance(layers[11], Dropout) and layers[11].p == Fraction(1, 2)
    assert isinstance(layers[12], BatchNorm) and layers[12].scale == Fraction(1, 2)
    assert isinstance(layers[13], Identity) and isinstance(layers[15], Identity)
    assert isinstance(layers[14], ReLU)
    res = layers[16]
    assert isinstance(res, Residual)
    assert repr(res) == "Residual(Conv(3, stride=2), shortcut=[Conv(1, stride=2, padding=0)])"
    par = layers[17]
    assert isinstance(par, Parallel) and par.branches[0] == ()
    assert [repr(x) for x in par.branches[1]] == ["Conv(3)", "ReLU()"]
    assert [repr(x) for x in layers[18:]] == ["Conv(3)", "ReLU()"] * 3
    # The RF by the classic recurrence along the longest path.
    size, jump, offset = classic_rf(
        [(3, 1, 1, 1), (3, 2, 1, 1), (2, 1, 1, 1), (1, 1, 1, 0), (2, 2, 1, 0), (3, 2, 1, 1)]
        + [(3, 2, 1, 1), (3, 1, 1, 1)]
        + [(3, 1, 1, 1)] * 3
    )
    rf = net.receptive_field
    assert rf.jump == (jump, jump) and rf.size[0] == size and rf.offset[0] == offset
    # Axis 1 of the (1, 3)-kernel dilated by 2 adds 4 pixels at jump 2.
    assert rf.size[1] == size + 4 * 2


def test_bare_list_and_dimension_inference() -> None:
    assert parse_arch(["relu"]).ndim == 1
    assert parse_arch([{"conv": {"size": [3, 3]}}]).ndim == 2
    assert parse_arch([{"conv": {"kernel": "1,1;1,1"}}, "relu"]).ndim == 2
    net = parse_arch({"ndim": 2, "layers": [{"conv": {"size": 3}}]})
    assert net.receptive_field.size == (3, 3)


def test_decimals_and_strings_are_exact() -> None:
    net = parse_arch(
        [
            {"conv": {"kernel": [0.25, "0.5", "1/4"]}},
            {"dropout": {"p": 0.1}},
            {"leaky_relu": {"negative_slope": 0.2}},
        ]
    )
    conv, drop, leaky = net.layers
    assert conv.kernel("gradient", 1).weights == (Fraction(1, 4), Fraction(1, 2), Fraction(1, 4))
    assert drop.p == Fraction(1, 10)
    assert leaky.factor("gradient") == Fraction(3, 5)
    assert leaky.factor("expected_square") == Fraction(13, 25)
    # The leaky ReLU's mean slope 3/5 scales the kernel: 3/5 * (1/4, 1/2, 1/4).
    assert net.profile().coefficients == [Fraction(3, 20), Fraction(3, 10), Fraction(3, 20)]


def test_repeat_expands_in_place() -> None:
    net = parse_arch(
        [{"repeat": {"times": 2, "layers": [{"repeat": {"times": 3, "layers": ["relu"]}}, "tanh"]}}]
    )
    assert [type(x).__name__ for x in net.layers] == ["ReLU"] * 3 + ["Tanh"] + ["ReLU"] * 3 + [
        "Tanh"
    ]


# --------------------------------------------------------------------------- examples
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_round_trip(path: Path) -> None:
    net = load_arch(path)
    doc = json.loads(json.dumps(arch_to_dict(net)))  # plain JSON, exact
    again = parse_arch(doc)
    assert repr(again) == repr(net)
    assert again.ndim == net.ndim and again.receptive_field == net.receptive_field
    for kind in ("gradient", "expected_square"):
        assert again.moments(kind) == net.moments(kind)
    assert arch_to_dict(again) == doc


def test_round_trip_keeps_every_option() -> None:
    net = Network(
        [
            Conv(Kernel([[1, 2], [3, 4]], anchor=(1, 0)), stride=(2, 1), padding=(1, 0)),
            Conv((3, 1), dilation=2, padding="valid"),
            AvgPool(3, stride=1, padding=1),
            MaxPool((2, 2)),
            LeakyReLU("1/3"),
            Tanh(input_std=0.5),
            Sigmoid(),
            Activation("x", "1/3", "1/7"),
            Dropout("1/3"),
            BatchNorm("2/3"),
            Identity(),
            Residual(Conv(3), ReLU(), shortcut=[BatchNorm(2)]),
            Parallel([], Conv(1), [Conv(3), Conv(3)]),
        ]
    )
    again = parse_arch(json.loads(json.dumps(arch_to_dict(net))))
    assert repr(again) == repr(net)
    assert again.receptive_field == net.receptive_field
    assert again.transfer("expected_square") == net.transfer("expected_square")


def test_arch_to_dict_rejects_foreign_objects() -> None:
    with pytest.raises(ERFTypeError, match="takes a Network"):
        arch_to_dict([Conv(3)])  # type: ignore[arg-type]


def test_vgg16_rf_212_at_pool5() -> None:
    net = load_arch(VGG)
    blocks = [2, 2, 3, 3, 3]
    chain: list[tuple[int, int, int, int]] = []
    pools = []
    for n in blocks:
        chain += [(3, 1, 1, 1)] * n + [(2, 2, 1, 0)]
        pools.append(classic_rf(chain))
    assert pools[-1] == (212, 32, -90)
    assert [p[0] for p in pools] == [6, 16, 44, 100, 212]
    assert net.receptive_field.size == (212, 212)
    assert net.receptive_field.jump == (32, 32) and net.receptive_field.offset == (-90, -90)
    convs = sum(isinstance(x, Conv) for x in net.layers)
    maxpools = sum(isinstance(x, MaxPool) for x in net.layers)
    assert (convs, maxpools, len(net)) == (13, 5, 31)
    rows = net.table()
    pool_rows = [r for r in rows if r.layer.startswith("MaxPool")]
    assert [(r.rf_size[0], r.jump[0]) for r in pool_rows] == [(p[0], p[1]) for p in pools]


def test_vgg16_variance_by_the_stride_rule() -> None:
    net = load_arch(VGG)
    layers: list[tuple[Fraction, int, int]] = []
    for n in (2, 2, 3, 3, 3):
        layers += [(UNIFORM3, 1, 1)] * n + [(UNIFORM2, 2, 1)]
    want = chain_variance(layers)
    assert want == Fraction(9167, 12)
    _, mean, cov = net.moments()
    assert cov[0][0] == cov[1][1] == want and cov[0][1] == 0
    assert mean == (Fraction(1, 2), Fraction(1, 2))  # the RF is even: its centre is 105.5


def test_resnet18_geometry() -> None:
    net = load_arch(RESNET)
    # The longest path: conv1, maxpool, then the residual branches (two 3x3 convs each).
    chain = [(7, 2, 1, 3), (3, 2, 1, 1)]
    for stage in range(4):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            chain += [(3, stride, 1, 1), (3, 1, 1, 1)]
    assert classic_rf(chain) == (435, 32, -217)
    rf = net.receptive_field
    assert (rf.size, rf.jump, rf.offset) == ((435, 435), (32, 32), (-217, -217))
    blocks = [x for x in net.layers if isinstance(x, Residual)]
    assert len(blocks) == 8
    shortcuts = [b.shortcut for b in blocks if b.shortcut]
    assert len(shortcuts) == 3
    for s in shortcuts:
        assert repr(s[0]) == "Conv(1, stride=2, padding=0)" and isinstance(s[1], BatchNorm)


@pytest.mark.parametrize(
    ("name", "size", "jump", "variance"),
    [
        ("paper_sec31_dense.json", 31, 1, chain_variance([(UNIFORM3, 1, 1)] * 15)),
        (
            "paper_sec31_subsample.json",
            105,
            8,
            chain_variance(
                ([(UNIFORM3, 1, 1)] * 3 + [(UNIFORM3, 2, 1)]) * 3 + [(UNIFORM3, 1, 1)] * 3
            ),
        ),
        (
            "paper_sec31_dilated.json",
            53,
            1,
            chain_variance(
                [
                    *[(UNIFORM3, 1, 1)] * 3,
                    (UNIFORM3, 1, 2),
                    *[(UNIFORM3, 1, 1)] * 3,
                    (UNIFORM3, 1, 4),
                    *[(UNIFORM3, 1, 1)] * 3,
                    (UNIFORM3, 1, 8),
                    *[(UNIFORM3, 1, 1)] * 3,
                ]
            ),
        ),
    ],
)
def test_section_31_networks(name: str, size: int, jump: int, variance: Fraction) -> None:
    net = load_arch(EXAMPLES / name)
    assert net.receptive_field.size == (size, size) and net.receptive_field.jump == (jump, jump)
    _, _, cov = net.moments()
    assert cov[0][0] == variance
    assert net.std() == pytest.approx((math.sqrt(variance),) * 2, rel=1e-15)


def test_section_31_values() -> None:
    assert chain_variance([(UNIFORM3, 1, 1)] * 15) == 10
    assert (
        chain_variance(([(UNIFORM3, 1, 1)] * 3 + [(UNIFORM3, 2, 1)]) * 3 + [(UNIFORM3, 1, 1)] * 3)
        == 184
    )


def test_paper_sec25_profile_against_brute_force() -> None:
    net = load_arch(SEC25)
    # Both kinds: every random layer is a convolution; ReLU gives 1/2 in both kinds, so only
    # the total differs (dropout: 1 vs 2). The variance by the stride rule plus the residual
    # formula of sec25_architectures: a block 1 + F with branch mass s = 1/2 (ReLU) and
    # centred branch variance v = 2 * 1/2 has rho = s/(1+s) and variance rho v.
    rho = Fraction(1, 2) / (1 + Fraction(1, 2))
    block = rho * 2 * Fraction(1, 2) * 2**2  # at jump 2
    want = chain_variance([(Fraction(1, 2), 1, 1), (Fraction(1, 2), 2, 1), (Fraction(1, 2), 1, 2)])
    want += 2 * block
    assert want == Fraction(35, 3)
    for kind in ("gradient", "expected_square"):
        p = net.profile(kind)
        assert p.variance == want and p.mean == 0 and p.shape == (29,)
    g, e = net.profile("gradient"), net.profile("expected_square")
    assert sum(e.coefficients) == 2 * sum(g.coefficients)  # dropout's 1/(1-p)
    # Brute force of the gradient kind: the explicit backward pass of an impulse.
    grad = {0: Fraction(1)}

    def conv(grad: dict[int, Fraction], w: list[Fraction], s: int, d: int) -> dict[int, Fraction]:
        out: dict[int, Fraction] = {}
        for i, g in grad.items():
            for m, x in enumerate(w):
                j = s * i + d * (m - 1)  # 'same' padding: tap 1 over the output unit
                out[j] = out.get(j, 0) + x * g
        return out

    w = [Fraction(1), Fraction(2), Fraction(1)]
    q = [Fraction(1, 4), Fraction(1, 2), Fraction(1, 4)]
    half = Fraction(1, 2)
    for _ in range(2):  # the two residual blocks, top first (ReLU after each block)
        grad = {i: g * half for i, g in grad.items()}
        body = conv({i: g * half for i, g in conv(grad, q, 1, 1).items()}, q, 1, 1)
        grad = {i: grad.get(i, 0) + body.get(i, 0) for i in set(grad) | set(body)}
    grad = conv({i: g * half for i, g in grad.items()}, w, 1, 2)
    grad = conv({i: g * half for i, g in grad.items()}, w, 2, 1)
    grad = conv({i: g * half for i, g in grad.items()}, w, 1, 1)
    lo = net.receptive_field.offset
    assert [grad.get(lo + t, 0) for t in range(29)] == g.coefficients


# --------------------------------------------------------------------------- errors
BAD_DOCS: list[tuple[Any, type[Exception], str]] = [
    ({"layers": [{"conv": {"size": 3, "stride": -2}}]}, ERFValueError, "layers[0].conv.stride:"),
    ({"layers": [{"conv": {"size": 3, "stride": 0}}]}, ERFValueError, "[1, 1024]"),
    ({"layers": [{"conv": {"size": 3, "stride": "2"}}]}, ERFTypeError, "layers[0].conv.stride:"),
    ({"layers": [{"conv": {"size": True}}]}, ERFTypeError, "layers[0].conv.size:"),
    ({"layers": [{"conv": {"size": [3, 3, 3]}}]}, ERFValueError, "1 or 2 entries"),
    ({"layers": [{"conv": {"size": [3, -1]}}]}, ERFValueError, "layers[0].conv.size:"),
    ({"layers": [{"conv": {"size": 2000}}]}, ERFValueError, "[1, 1024]"),
    ({"layers": [{"conv": {"size": 3, "padding": -1}}]}, ERFValueError, "[0, 1024]"),
    ({"layers": [{"conv": {"size": 3, "padding": "full"}}]}, ERFValueError, "'same', 'valid'"),
    ({"layers": [{"conv": {"size": 3, "dilation": 0}}]}, ERFValueError, "conv.dilation:"),
    ({"layers": [{"conv": {"size": 3, "stride": 2, "strides": 2}}]}, ERFValueError, "'strides'"),
    ({"layers": [{"conv": {}}]}, ERFValueError, "exactly one of 'kernel'"),
    ({"layers": ["conv"]}, ERFValueError, "layers[0].conv: give exactly one"),
    ({"layers": [{"conv": {"size": 3, "kernel": "1"}}]}, ERFValueError, "exactly one of"),
    ({"layers": [{"conv": {"size": 3, "anchor": 0}}]}, ERFValueError, "conv.anchor:"),
    ({"layers": [{"conv": {"kernel": "1,x"}}]}, ERFValueError, "layers[0].conv.kernel:"),
    ({"layers": [{"conv": {"kernel": "1,2;3"}}]}, ERFValueError, "ragged"),
    ({"layers": [{"conv": {"kernel": [1, [2]]}}]}, ERFValueError, "mixes weights and rows"),
    ({"layers": [{"conv": {"kernel": []}}]}, ERFValueError, "conv.kernel: is empty"),
    ({"layers": [{"conv": {"kernel": 3}}]}, ERFTypeError, "layers[0].conv.kernel:"),
    ({"layers": [{"conv": {"kernel": [1, None]}}]}, ERFTypeError, "conv.kernel[1]:"),
    ({"layers": [{"conv": {"kernel": [1, float("nan")]}}]}, ERFValueError, "conv.kernel[1]:"),
    ({"layers": [{"conv": {"kernel": "1,2", "anchor": 5}}]}, ERFValueError, "conv.kernel:"),
    ({"layers": [{"avgpool": {}}]}, ERFValueError, "layers[0].avgpool: needs 'size'"),
    ({"layers": [{"maxpool": {"size": 2, "dilation": 2}}]}, ERFValueError, "unknown option"),
    ({"layers": [{"frob": {}}]}, ERFValueError, "unknown layer type 'frob'"),
    ({"layers": ["rleu"]}, ERFValueError, "did you mean 'relu'?"),
    ({"layers": [{"relu": {"slope": 1}}]}, ERFValueError, "layers[0].relu: unknown option"),
    ({"layers": [{"relu": 3}]}, ERFTypeError, "layers[0].relu: the options must be an object"),
    ({"layers": [{"relu": {}, "tanh": {}}]}, ERFValueError, "exactly one key"),
    ({"layers": [3]}, ERFTypeError, "layers[0]: a layer is"),
    ({"layers": [{"dropout": {"p": 1}}]}, ERFValueError, "layers[0].dropout.p: must be in [0, 1)"),
    ({"layers": [{"dropout": {"p": "abc"}}]}, ERFValueError, "dropout.p: 'abc' is not a number"),
    ({"layers": [{"dropout": {"p": True}}]}, ERFTypeError, "dropout.p:"),
    (
        {"layers": [{"tanh": {"input_std": 0}}]},
        ERFValueError,
        "tanh.input_std: must be a positive number",
    ),
    ({"layers": [{"batchnorm": {"scale": float("inf")}}]}, ERFValueError, "batchnorm.scale:"),
    ({"layers": [{"activation": {"gradient_factor": 1}}]}, ERFValueError, "needs 'gradient_f"),
    (
        {"layers": [{"activation": {"gradient_factor": 1, "square_factor": -1}}]},
        ERFValueError,
        "activation.square_factor: must be ≥ 0",
    ),
    ({"layers": [{"residual": {}}]}, ERFValueError, "layers[0].residual: needs 'layers'"),
    ({"layers": [{"residual": {"layers": []}}]}, ERFValueError, "residual.layers: must hold"),
    (
        {"layers": [{"residual": {"layers": [{"conv": {"size": 3, "stride": 2}}]}}]},
        ERFValueError,
        "layers[0].residual: the branches of",
    ),
    ({"layers": [{"parallel": {"branches": []}}]}, ERFValueError, "parallel.branches: must hold"),
    ({"layers": [{"parallel": {"branches": "x"}}]}, ERFTypeError, "parallel.branches:"),
    ({"layers": [{"parallel": {"branches": [[3]]}}]}, ERFTypeError, "branches[0][0]:"),
    (
        {"layers": ["relu", {"residual": {"layers": [{"repeat": {"times": 2, "layers": [7]}}]}}]},
        ERFTypeError,
        "layers[1].residual.layers[0].repeat.layers[0]:",
    ),
    ({"layers": [{"repeat": {"times": 0, "layers": ["relu"]}}]}, ERFValueError, "[1, 10000]"),
    ({"layers": [{"repeat": {"times": 10**9, "layers": ["relu"]}}]}, ERFValueError, "repeat.times"),
    ({"layers": [{"repeat": {"times": 2.5, "layers": ["relu"]}}]}, ERFTypeError, "repeat.times"),
    ({"layers": [{"repeat": {"layers": ["relu"]}}]}, ERFValueError, "needs 'times'"),
    ({"layers": [{"repeat": {"times": 2}}]}, ERFValueError, "needs 'layers'"),
    (
        {"layers": [{"repeat": {"times": 10_000, "layers": ["relu", "relu"]}}]},
        ERFValueError,
        f"more than {MAX_LAYERS} layers",
    ),
    ({"layers": []}, ERFValueError, "layers: must hold at least one layer"),
    ({"layers": 3}, ERFTypeError, "layers: must be a list"),
    ({"layrs": []}, ERFValueError, "unknown key (did you mean 'layers'?)"),
    ({"ndim": 2}, ERFValueError, "layers: missing"),
    ({"ndim": 3, "layers": ["relu"]}, ERFValueError, "ndim: must be 1 or 2"),
    ({"ndim": "2", "layers": ["relu"]}, ERFTypeError, "ndim: must be 1 or 2"),
    ({"name": 3, "layers": ["relu"]}, ERFTypeError, "name: must be a string"),
    (
        {"ndim": 2, "layers": [{"conv": {"kernel": "1,2,1"}}]},
        ERFValueError,
        "layers[0].conv.kernel: is 1-D but ndim makes the network 2-D",
    ),
    (
        {"layers": [{"conv": {"kernel": "1,2,1"}}, {"conv": {"size": [3, 3]}}]},
        ERFValueError,
        "layers[1].conv.size: is 2-D but layers[0].conv.kernel makes the network 1-D",
    ),
    ("relu", ERFTypeError, "an architecture is an object"),
]


@pytest.mark.parametrize(("doc", "cls", "message"), BAD_DOCS)
def test_invalid_documents_name_the_path(doc: Any, cls: type[Exception], message: str) -> None:
    with pytest.raises(cls) as info:
        parse_arch(doc)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_nesting_depth_is_bounded() -> None:
    doc: Any = ["relu"]
    for _ in range(arch_module.MAX_DEPTH + 2):
        doc = [{"residual": {"layers": doc}}]
    with pytest.raises(ERFValueError, match=f"nested more than {arch_module.MAX_DEPTH} deep"):
        parse_arch(doc)


def test_quadratures_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert arch_module.MAX_INPUT_STDS == 64
    monkeypatch.setattr(arch_module, "MAX_INPUT_STDS", 3)
    ok = [{"tanh": {"input_std": 1 + i}} for i in range(3)]
    assert len(parse_arch([*ok, *ok, "sigmoid"])) == 7  # equal values count once
    with pytest.raises(ERFValueError, match=r"layers\[3\]\.sigmoid\.input_std: more than 3"):
        parse_arch([*ok, {"sigmoid": {"input_std": 1}}])


def _count_layer_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the layer entries the reader visits (the unit of its work)."""
    calls = [0]
    original = arch_module._Reader.layer

    def counted(self: Any, item: Any, path: str, depth: int) -> Any:
        calls[0] += 1
        return original(self, item, path, depth)

    monkeypatch.setattr(arch_module._Reader, "layer", counted)
    return calls


def test_layer_bombs_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bounded work instead of wall-clock time (machines are shared): the reader visits
    # at most MAX_LAYERS entries and allocates little before it refuses.
    import tracemalloc

    calls = _count_layer_reads(monkeypatch)
    # Each level multiplies by 10 000: the count is checked before anything is expanded.
    doc: Any = ["relu"]
    for _ in range(6):
        doc = [{"repeat": {"times": 10_000, "layers": doc}}]
    tracemalloc.start()
    try:
        with pytest.raises(ERFValueError, match="more than 10000 layers"):
            parse_arch(doc)
        assert calls[0] <= 7  # one visit per level: nothing is expanded
        # Shared sub-lists (as YAML aliases make) are re-read, but the running count
        # stops them after MAX_LAYERS visits.
        shared: Any = ["relu"] * 10
        for _ in range(12):
            shared = [{"residual": {"layers": shared}}] * 10
        calls[0] = 0
        with pytest.raises(ERFValueError, match="more than 10000 layers"):
            parse_arch(shared)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert calls[0] <= arch_module.MAX_LAYERS + 2 * arch_module.MAX_DEPTH
    assert peak < 64 * 2**20, peak  # megabytes, not the 10**13 layers described


def test_messages_never_build_the_whole_value() -> None:
    # A value shared 10**12 times (what aliases make) is named by a clipped repr built
    # piece by piece, never by repr() of the whole.
    shared: Any = [1.5] * 10
    for _ in range(12):
        shared = [shared] * 10
    with pytest.raises(ERFValueError) as info:
        parse_arch({"layers": [{"conv": {"size": shared}}]})
    message = str(info.value)
    assert message.startswith("layers[0].conv.size: a per-axis list has 1 or 2 entries")
    with pytest.raises(ERFTypeError) as info:
        parse_arch({"layers": [{"relu": shared}]})
    assert "got a list [[[[[[[[[" in str(info.value) and len(str(info.value)) < 300
    assert arch_module._short(10**5000) == "<an int of 16610 bits>"
    assert arch_module._short({"a": [1, "x" * 10**6]}, 20) == "{'a': [1, 'xxxxxxxx…"


# --------------------------------------------------------------------------- files
def test_load_json_yaml_and_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = {"ndim": 1, "layers": [{"conv": {"kernel": "1,2,1", "stride": 2}}, "relu"]}
    f = tmp_path / "net.json"
    f.write_text(json.dumps(good), encoding="utf-8")
    assert repr(load_arch(f)) == "Network([Conv(Kernel([1, 2, 1]), stride=2), ReLU()])"
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(good).encode())
    assert len(load_arch(bom)) == 2

    pytest.importorskip("yaml")
    y = tmp_path / "net.yaml"
    y.write_text(
        "ndim: 1\nlayers:\n  - conv: {kernel: '1,2,1', stride: 2}\n  - relu\n"
        "  - dropout: {p: 1/4}\n  - leaky_relu: {negative_slope: 0.1}\n",
        encoding="utf-8",
    )
    net = load_arch(y)
    assert net.layers[2].p == Fraction(1, 4) and net.layers[3].negative_slope == Fraction(1, 10)
    yml = tmp_path / "net.YML"
    yml.write_text("- relu\n- conv: {size: 3}\n", encoding="utf-8")
    assert len(load_arch(yml)) == 2
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("layers:\n  - conv: {size: 3\n", encoding="utf-8")
    with pytest.raises(ERFValueError, match=r"bad.yaml: invalid YAML at line \d+, column \d+"):
        load_arch(bad_yaml)
    huge = tmp_path / "huge.yaml"
    huge.write_text("layers:\n  - conv: {size: " + "9" * 5000 + "}\n", encoding="utf-8")
    with pytest.raises(ERFValueError, match=r"huge\.yaml: invalid YAML: Exceeds"):
        load_arch(huge)
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(MissingDependencyError, match=r"reading YAML .*needs PyYAML"):
        load_arch(y)
    assert len(load_arch(f)) == 2  # JSON never needs it


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"layers": [\n  "relu",\n  }', "invalid JSON at line 3, column 3"),
        (b"", "invalid JSON at line 1, column 1"),
        (b'{"layers": ["relu"], "layers": ["tanh"]}', "duplicate key 'layers'"),
        (b'{"layers": [{"dropout": {"p": NaN}}]}', "NaN is not a number"),
        (b'{"layers": [{"dropout": {"p": 1e999}}]}', "layers[0].dropout.p: must be a finite"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0xff at offset 0)"),
        (b'{"layers": [{"conv": {"size": 3, "stride": -1}}]}', "layers[0].conv.stride:"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"layers": [{"conv": {"size": ' + b"9" * 5000 + b"}}]}", "invalid JSON: Exceeds"),
    ],
)
def test_bad_json_files(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    with pytest.raises(ERFValueError) as info:
        load_arch(f)
    assert str(info.value).startswith(str(f) + ": ")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_directory_and_oversized_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ERFValueError, match=r"nope\.json: no such file"):
        load_arch(tmp_path / "nope.json")
    with pytest.raises(ERFValueError, match="is a directory"):
        load_arch(tmp_path)
    f = tmp_path / "big.json"
    f.write_text(json.dumps(["relu"] * 100), encoding="utf-8")
    monkeypatch.setattr(arch_module, "MAX_FILE_BYTES", 64)
    with pytest.raises(ERFValueError, match=r"big\.json: larger than"):
        load_arch(f)


# --------------------------------------------------------------------------- CLI
def test_cli_vgg16_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--arch", str(VGG)]) == 0
    out = capsys.readouterr().out
    assert f"architecture      {VGG}   (31 layers, 2-D)" in out
    assert "kind              gradient   (engine: exact)" in out
    assert "variance          (9167/12, 9167/12)" in out
    assert "RF size           (212, 212)   (theoretical; jump (32, 32), offset (-90, -90))" in out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split() == ["#", "layer", "RF", "size", "jump", "ERF", "std"]
    assert len(table) == 32
    assert table[-1].split()[:4] == ["30", "MaxPool(2)", "212×212", "32×32"]
    std = math.sqrt(9167 / 12)
    assert f"std (1σ radius)   ({std:.6g}, {std:.6g})" in out


def test_cli_json_keys_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--arch", str(SEC25), "--kind", "expected_square", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"arch", "network", "kind", "jump", "offset", "table"} <= set(doc)
    assert {"method", "shape", "origin", "mean", "variance", "std", "rf_size"} <= set(doc)
    assert {"threshold_size", "mass_size", "erf_ratio", "erf_ratio_std", "gaussian"} <= set(doc)
    assert "kernel" not in doc and "layers" not in doc
    assert doc["arch"] == str(SEC25) and doc["kind"] == "expected_square"
    assert doc["network"] == repr(load_arch(SEC25))
    assert (doc["rf_size"], doc["jump"], doc["offset"], doc["shape"]) == (29, 2, -14, [29])
    assert doc["variance"] == "35/3" and doc["mean"] == "0" and doc["method"] == "exact"
    assert doc["std"] == pytest.approx(math.sqrt(35 / 3), rel=1e-15)
    assert doc["erf_ratio_std"] == pytest.approx(math.sqrt(35 / 3) / 29, rel=1e-15)
    rows = doc["table"]
    assert [r["rf_size"] for r in rows] == [3, 3, 3, 5, 5, 13, 13, 21, 21, 29, 29]
    assert [r["jump"] for r in rows] == [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert rows[0]["std"] == pytest.approx(math.sqrt(1 / 2)) and rows[0]["index"] == 0
    assert rows[-1]["std"] == pytest.approx(doc["std"], rel=1e-15)


def test_cli_method_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--arch", str(SEC25), "--method", "fft", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "fft" and doc["std"] == pytest.approx(math.sqrt(35 / 3))
    assert main(["profile", "--kernel", "1,1,1", "--layers", "4", "--method", "arb", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "arb"


def test_cli_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "erf.png"
    r = run("profile", "--arch", str(SEC25), "--plot", str(out), "--log")
    assert r.returncode == 0, r.stderr
    assert f"plot              {out}" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_too_large_profile_still_reports(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["profile", "--arch", str(RESNET), "--memory-limit", "64KiB"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "RF size           (435, 435)   (theoretical; jump (32, 32), offset (-217, -217))" in (
        captured.out
    )
    assert "variance          (719644/249, 719644/249)" in captured.out
    assert len(captured.out.split("\n\n")[1].splitlines()) == 21  # header + 20 layers
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("erftheory: note: the exact profile is too large")
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["profile"] is None and "memory limit" in doc["note"]
    assert (doc["rf_size"], doc["jump"], doc["offset"]) == ([435, 435], [32, 32], [-217, -217])
    assert doc["variance"] == ["719644/249"] * 2 and doc["mean"] == ["0", "0"]
    assert doc["std"] == pytest.approx([math.sqrt(719644 / 249)] * 2, rel=1e-15)
    assert doc["covariance"] == [["719644/249", "0"], ["0", "719644/249"]]
    assert len(doc["table"]) == 20 and doc["table"][-1]["rf_size"] == [435, 435]


def test_cli_too_large_with_plot_exits_2(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "x.png"
    r = run("profile", "--arch", str(RESNET), "--memory-limit", "64KiB", "--plot", str(plot))
    assert r.returncode == 2 and not plot.exists()
    assert "RF size           (435, 435)" in r.stdout
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "too large to plot" in err[0] and "Traceback" not in r.stderr


def _bad_files(tmp_path: Path) -> list[tuple[list[str], str]]:
    files = {
        "invalid.json": '{"layers": [\n',
        "unknown.json": '{"layers": [{"frobnicate": {}}]}',
        "negative.json": '{"layers": [{"conv": {"size": 3, "stride": -1}}]}',
        "huge.json": '{"layers": [{"repeat": {"times": 1000000000, "layers": ["relu"]}}]}',
        "bomb.json": '{"layers": [{"repeat": {"times": 10000, "layers": '
        '[{"repeat": {"times": 10000, "layers": ["relu"]}}]}}]}',
        "zero.json": '{"layers": [{"conv": {"kernel": "1,-1"}}]}',
        "negvar.json": '{"layers": [{"conv": {"kernel": "1,-1,1"}}]}',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    d = str(tmp_path)
    return [
        (["profile", "--arch", f"{d}/missing.json"], "missing.json: no such file"),
        (["profile", "--arch", f"{d}/invalid.json"], "invalid JSON at line 2, column 1"),
        (["profile", "--arch", f"{d}/unknown.json"], "unknown layer type 'frobnicate'"),
        (["profile", "--arch", f"{d}/negative.json"], "layers[0].conv.stride: must be an int"),
        (["profile", "--arch", f"{d}/huge.json"], "layers[0].repeat.times: must be an int in"),
        (["profile", "--arch", f"{d}/bomb.json"], "more than 10000 layers"),
        (["profile", "--arch", f"{d}/zero.json"], "sum to zero"),
        (
            ["profile", "--arch", f"{d}/negvar.json", "--kind", "expected_square"],
            "variances, which cannot be negative",
        ),
        (["profile", "--arch", d], "is a directory"),
        (["profile", "--arch", str(SEC25), "--kernel", "1,1"], "not allowed with --kernel"),
        (["profile", "--arch", str(SEC25), "--layers", "2"], "not allowed with --layers"),
        (["profile", "--kernel", "1,1", "--layers", "2", "--kind", "gradient"], "only with --arch"),
        (
            ["profile", "--kernel", "1,1"],
            "required: --layers (or give --arch FILE or --torch SPEC)",
        ),
        (["profile"], "required: --kernel, --layers"),
        (["profile", "--arch", str(SEC25), "--kind", "square"], "invalid choice"),
        (["profile", "--arch", str(SEC25), "--dps", "20"], "--dps: only with --method arb"),
        (["profile", "--arch", str(SEC25), "--method", "magic"], "invalid choice"),
        (["profile", "--arch", str(SEC25), "--plot", "x.txt"], ".png, .pdf or .svg"),
    ]


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    for args, message in _bad_files(tmp_path):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2, args
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert message in captured.err, (args, captured.err)
        assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("usage:")), lines
        assert "Traceback" not in captured.err and captured.out == ""


def test_subprocess_arch(tmp_path: Path) -> None:
    r = run("profile", "--arch", str(VGG), "--json")
    assert r.returncode == 0 and r.stderr == ""
    doc = json.loads(r.stdout)
    assert (doc["rf_size"], doc["jump"], doc["offset"]) == ([212, 212], [32, 32], [-90, -90])
    assert doc["variance"] == ["9167/12", "9167/12"] and len(doc["table"]) == 31
    for args, message in _bad_files(tmp_path)[:6]:
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run("profile", "--arch", str(VGG), "--kernel", "1,1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 2
    assert r.stderr.startswith("usage: erftheory profile (--kernel W --layers N")


def test_help_mentions_arch() -> None:
    r = run("profile", "--help")
    assert r.returncode == 0 and "--arch FILE" in r.stdout and "--kind" in r.stdout
    assert "architecture files" in r.stdout


# --------------------------------------------------------------------------- reliability
LAUGHS = (
    'a: &a ["relu", "relu", "relu", "relu", "relu", "relu", "relu", "relu", "relu"]\n'
    + "".join(
        f"{x}: &{x} [{', '.join([f'*{y}'] * 9)}]\n"
        for y, x in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "layers: [*i, *i, *i, *i, *i, *i, *i, *i, *i]\n"
)


def test_yaml_aliases_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    import tracemalloc

    pytest.importorskip("yaml")
    f = tmp_path / "laughs.yaml"
    f.write_text(LAUGHS, encoding="utf-8")  # 9**9 layers from 700 bytes
    tracemalloc.start()
    try:
        with pytest.raises(ERFValueError) as info:
            load_arch(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"{f}: YAML aliases (*a) are not allowed in architecture files, at line 2, column 8; "
        f"write the layers out or use 'repeat'"
    )
    assert peak < 8 * 2**20
    merge = tmp_path / "merge.yaml"
    merge.write_text("base: &b {size: 3}\nlayers:\n  - conv: {<<: *b, stride: 2}\n")
    with pytest.raises(ERFValueError, match="aliases"):
        load_arch(merge)
    loop = tmp_path / "loop.yaml"
    loop.write_text("layers: &l [*l]\n")
    with pytest.raises(ERFValueError, match=r"aliases|invalid YAML"):
        load_arch(loop)


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "net.json"
    os.mkfifo(fifo)
    # In a subprocess with a timeout: a regression would block on the FIFO forever.
    code = (
        "import sys, erftheory\n"
        "try:\n"
        f"    erftheory.load_arch({str(fifo)!r})\n"
        "except erftheory.ERFValueError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == (
        f"{fifo}: not a regular file (a FIFO, socket or device); an architecture file is a "
        f".json or .yaml file"
    ), r.stderr
    r = run("profile", "--arch", str(fifo))
    assert r.returncode == 2 and "not a regular file" in r.stderr and r.stderr.count("\n") == 1
    if Path("/dev/zero").exists():
        with pytest.raises(ERFValueError, match="/dev/zero: not a regular file"):
            load_arch("/dev/zero")
    with pytest.raises(ERFValueError, match="NUL byte"):
        load_arch(str(tmp_path / "a\0b.json"))
    with pytest.raises(ERFValueError, match="file name is empty"):
        load_arch("")


def _no_big_kernels(monkeypatch: pytest.MonkeyPatch, taps: int = 4096) -> None:
    """Fail if anything builds a uniform kernel of more than ``taps`` taps."""
    import erftheory.layers as layers_module

    original = layers_module._uniform

    def guarded(size: tuple[int, ...], value: Any) -> Kernel:
        assert math.prod(size) <= taps, f"built a kernel of {math.prod(size)} taps"
        return original(size, value)

    monkeypatch.setattr(layers_module, "_uniform", guarded)


@pytest.mark.parametrize("kind", ["gradient", "expected_square"])
def test_memory_guard_estimates_from_sizes(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    # The 1024 x 1024 convolution of an arch file took 222 s inside the guard, which
    # rebuilt the million-tap kernel: now no kernel is built before the refusal.
    _no_big_kernels(monkeypatch)
    net = parse_arch(
        {"layers": [{"conv": {"size": [1024, 1024]}}, {"avgpool": {"size": [64, 64]}}]}
    )
    with memory_limit("64MiB"), pytest.raises(SizeLimitError, match="transfer polynomial"):
        net.profile(kind)
    assert net.receptive_field.size == (1087, 1087)
    std = math.sqrt((1024**2 - 1) / 12 + (64**2 - 1) / 12)
    assert net.std(kind) == pytest.approx((std, std), rel=1e-12)
    assert len(net.table(kind)) == 2
    n = net.min_input_size()
    assert n[0] >= 1087 and net.fits(n) and not net.fits((n[0] - 1, n[1]))


def test_cli_refuses_a_million_tap_kernel_without_building_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_big_kernels(monkeypatch)
    f = tmp_path / "big.json"
    f.write_text('{"layers": [{"conv": {"size": [1024, 1024]}}]}')
    assert main(["profile", "--arch", str(f), "--memory-limit", "64MiB", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["profile"] is None and doc["rf_size"] == [1024, 1024]
    assert doc["variance"] == [str(Fraction(1024**2 - 1, 12))] * 2 and "138.0 MiB" in doc["note"]


def _strided(times: int) -> dict[str, Any]:
    return {
        "layers": [{"repeat": {"times": times, "layers": [{"conv": {"size": 3, "stride": 1024}}]}}]
    }


def test_astronomical_fields_are_refused_with_the_estimate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    net = parse_arch(_strided(300))
    size = 1 + 2 * (1024**300 - 1) // 1023  # r <- r + (k - 1) j, j <- j s
    assert net.receptive_field.size == size and net.receptive_field.jump == 1024**300
    with pytest.raises(SizeLimitError, match=r"about 2\^\d{4} B, above the memory limit") as info:
        net.profile()
    assert info.value.estimate == 2**200 and info.value.limit == 2 * 2**30
    with pytest.raises(SizeLimitError, match=r"about 2\^\d{4} B"):
        net.profile("expected_square")
    for call in (net.moments, net.std, net.table, net.min_input_size):
        with pytest.raises(ERFValueError, match=r"receptive field is about 2\^2991 pixels"):
            call()
    with pytest.raises(ERFValueError, match=r"receptive field is about 2\^2991 pixels on axis 0"):
        net.moments()
    f = tmp_path / "astro.json"
    f.write_text(json.dumps(_strided(10_000)))
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--arch", str(f), "--json"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "receptive field is about 2^99991 pixels on axis 0, above the limit of 2^256" in err
    # Up to the limit the moments are exact closed forms.
    small = parse_arch(_strided(25))
    assert small.moments()[2] == sum(Fraction(2, 3) * 1024 ** (2 * i) for i in range(25))


def test_huge_numbers_stay_exact_and_never_overflow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    big = 10**4000  # below the 4300 digits JSON reads
    doc = {"layers": [{"leaky_relu": {"negative_slope": big}}, {"conv": {"size": 3}}]}
    net = parse_arch(doc)
    assert net.layers[0].negative_slope == big
    assert net.profile().summary()["variance"] == "2/3"
    assert net.profile("expected_square").variance == Fraction(2, 3)
    f = tmp_path / "slope.json"
    f.write_text(json.dumps(doc))
    assert main(["profile", "--arch", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variance"] == "2/3" and out["network"].startswith("Network([LeakyReLU(1000")
    for layer in ("activation", "batchnorm"):
        opts = (
            {"gradient_factor": -big, "square_factor": big * big}
            if layer == "activation"
            else {"scale": f"1/{'3' * 4000}"}
        )
        net = parse_arch([{layer: opts}, {"conv": {"size": 3}}])
        assert net.profile().variance == Fraction(2, 3) and len(repr(net)) > 4000
    for std, shown in ((big, "<an int of 13288 bits>"), ("1e-300", "'1e-300'"), (0, "0")):
        with pytest.raises(ERFValueError) as info:
            parse_arch([{"tanh": {"input_std": std}}])
        assert str(info.value) == (
            f"layers[0].tanh.input_std: must be a positive number in [1e-6, 1e6]; got {shown}"
        )
    with pytest.raises(ERFValueError, match=r"layers\[0\].conv.stride: .*got <an int of"):
        parse_arch([{"conv": {"size": 3, "stride": big}}])
    g = tmp_path / "digits.json"
    g.write_text('{"layers": [{"dropout": {"p": ' + "1" * 5000 + "}}]}")
    with pytest.raises(ERFValueError) as info:
        load_arch(g)
    assert str(info.value) == (
        f"{g}: invalid JSON: Exceeds the limit (4300 digits) for integer string conversion: "
        f"value has 5000 digits"
    )
