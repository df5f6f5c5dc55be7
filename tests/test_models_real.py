"""Real CNNs (`erftheory.torch.models`): specs, the torchvision import, RFs against autograd.

The spec parsing, the import workaround and the autograd route need only torch (they
run on small models written here); the real torchvision and timm models skip, with the
reason, where those are not installed (``pip install 'erftheory[models]'``). For every
real model `from_torch` accepts, the receptive field's size and position must equal the
support of plain autograd's input gradient of the centre unit in a linearised float64
copy (`autograd_rf`), on an input where the whole field fits (`min_input_size`) and on
the model's default input, where the field is clipped.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from erftheory import ERFTypeError, ERFValueError, MissingDependencyError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from erftheory.torch import models  # noqa: E402 (needs torch)
from erftheory.torch.models import (  # noqa: E402
    RFBox,
    autograd_rf,
    default_input_shape,
    feature_extractor,
    linearised_copy,
    linearised_functions,
    load_model,
    network_rf,
    parse_spec,
)
from erftheory.torch.trace import from_torch  # noqa: E402


def _need(package: str) -> Any:
    """The module through `erftheory.torch.models`, or skip the test saying why."""
    try:
        return getattr(models, f"import_{package}")()
    except MissingDependencyError as e:
        pytest.skip(f"{package} is not installed: {e}")


def _write(tmp_path: Path, source: str, name: str = "nets.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("torchvision:resnet18", ("torchvision", "", "resnet18")),
        ("timm:resnet50d.a1_in1k", ("timm", "", "resnet50d.a1_in1k")),
        ("nets/my.py:build", ("file", "nets/my.py", "build")),
        ("C:/nets/my.py:build", ("file", "C:/nets/my.py", "build")),
    ],
)
def test_parse_spec(spec: str, parsed: tuple[str, str, str]) -> None:
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("resnet18", "is malformed"),
        ("", "is malformed"),
        ("torchvision:", "is not a name"),
        ("timm:a b", "is not a name"),
        (":build", "is malformed"),
        ("nets.py:", "is malformed"),
        ("nets.txt:build", "'nets.txt' is not a .py file"),
        ("nets.py:2build", "'2build' is not a Python name"),
    ],
)
def test_malformed_specs_name_the_valid_forms(spec: str, names: str) -> None:
    with pytest.raises(ERFValueError, match=names) as info:
        load_model(spec)
    assert "'torchvision:NAME', 'timm:NAME' or 'path/to/file.py:FACTORY'" in str(info.value)
    assert repr(spec) in str(info.value)


def test_a_spec_is_a_string() -> None:
    with pytest.raises(ERFTypeError, match="got int"):
        load_model(3)  # type: ignore[arg-type]


def test_file_spec_imports_the_file_and_calls_the_factory(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        import torch.nn as nn

        def build(num_classes=1, width=2):
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.Flatten(), nn.LazyLinear(num_classes))
        """,
    )
    model = load_model(f"{path}:build", num_classes=5, width=4)
    assert isinstance(model, nn.Sequential) and not model.training
    assert model[0].out_channels == 4 and model[2].out_features == 5


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(ERFValueError, match=f"no such file '{missing}'"):
        load_model(f"{missing}:build")


def test_missing_factory_names_the_callables(tmp_path: Path) -> None:
    path = _write(tmp_path, "def build():\n    pass\n")
    with pytest.raises(ERFValueError, match=r"has no factory 'make' \(its callables: build\)"):
        load_model(f"{path}:make")


def test_factory_must_return_a_module(tmp_path: Path) -> None:
    path = _write(tmp_path, "def build():\n    return [1, 2]\nNOT_CALLABLE = 3\n")
    with pytest.raises(ERFTypeError, match=r"build\(\) returned a list, not a torch.nn.Module"):
        load_model(f"{path}:build")
    with pytest.raises(ERFTypeError, match="'NOT_CALLABLE' is a int, not a callable"):
        load_model(f"{path}:NOT_CALLABLE")


def test_a_file_that_fails_is_not_left_half_imported(tmp_path: Path) -> None:
    path = _write(tmp_path, "raise ZeroDivisionError('in the file')\n", name="broken.py")
    before = set(sys.modules)
    with pytest.raises(ZeroDivisionError, match="in the file"):
        load_model(f"{path}:build")
    assert set(sys.modules) == before


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "10"])
def test_num_classes_is_checked(bad: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, "import torch.nn as nn\ndef build(**kw):\n    return nn.ReLU()\n")
    with pytest.raises(ERFValueError, match="num_classes must be a positive int"):
        load_model(f"{path}:build", num_classes=bad)


def test_default_input_shape() -> None:
    assert default_input_shape("torchvision:resnet18") == (3, 224, 224)
    assert default_input_shape("torchvision:inception_v3") == (3, 299, 299)
    assert default_input_shape("any/file.py:build") == (3, 224, 224)
    assert default_input_shape(nn.Conv2d(3, 3, 3)) == (3, 224, 224)
    timm_like = nn.Conv2d(3, 3, 3)
    timm_like.pretrained_cfg = {"input_size": (3, 288, 288)}
    assert default_input_shape(timm_like) == (3, 288, 288)
    with pytest.raises(ERFTypeError, match="got int"):
        default_input_shape(3)  # type: ignore[arg-type]


def test_feature_extractor() -> None:
    class WithFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Conv2d(1, 1, 3)

    class WithForwardFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward_features(self, x: Any) -> Any:
            return self.conv(x)

    model = WithFeatures()
    assert feature_extractor(model) is model.features
    other = WithForwardFeatures()
    x = torch.ones(1, 1, 5, 5)
    assert torch.equal(feature_extractor(other)(x), other.conv(x))
    assert feature_extractor(nn.ReLU()) is None


# ------------------------------------------------------------------- the import
def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    for name in ("torchvision", "timm"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("torchvision", "timm") else real(name, *a),
    )
    for name in ("torchvision", "timm"):
        with pytest.raises(MissingDependencyError, match=r"pip install 'erftheory\[models\]'"):
            getattr(models, f"import_{name}")()


def _fake_package(tmp_path: Path, name: str, body: str) -> None:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import extension\nfrom . import _meta\n")
    (pkg / "extension.py").write_text("LOADED = True\n")
    (pkg / "_meta.py").write_text(textwrap.dedent(body))


def test_import_skips_fake_kernels_of_missing_operators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What torchvision 0.28 does when its C++ extension cannot load.
    _fake_package(
        tmp_path,
        "erf_fakevision",
        """
        import torch

        @torch.library.register_fake("erf_fakevision::nms")
        def meta_nms(dets, scores, iou_threshold):
            return dets

        KEPT = meta_nms
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register = torch.library.register_fake
    try:
        with pytest.raises(RuntimeError, match="erf_fakevision::nms does not exist"):
            __import__("erf_fakevision")  # the plain import fails, half done
        assert "erf_fakevision.extension" in sys.modules
        module = models._import_tolerant("erf_fakevision", "test")
        assert module._meta.KEPT.__name__ == "meta_nms" and module.extension.LOADED
        assert "erf_fakevision::nms" in models.skipped_fake_kernels()
        assert torch.library.register_fake is register  # restored
    finally:
        for m in [m for m in sys.modules if m.startswith("erf_fakevision")]:
            del sys.modules[m]
        models._SKIPPED[:] = [s for s in models._SKIPPED if not s.startswith("erf_fakevision")]


def test_import_passes_other_errors_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(tmp_path, "erf_brokenvision", "raise RuntimeError('something else')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(RuntimeError, match="something else"):
            models._import_tolerant("erf_brokenvision", "test")
    finally:
        for m in [m for m in sys.modules if m.startswith("erf_brokenvision")]:
            del sys.modules[m]


def test_tolerant_registration_still_registers_existing_operators() -> None:
    lib = torch.library.Library("erf_models_test", "DEF")
    torch.library.define("erf_models_test::twice", "(Tensor x) -> Tensor", lib=lib)
    with models._tolerate_missing_ops():

        @torch.library.register_fake("erf_models_test::twice", lib=lib)
        def _(x: Any) -> Any:
            return torch.empty_like(x)

        skipped = torch.library.register_fake("erf_models_test::absent")(len)
    assert skipped is len
    out = torch.ops.erf_models_test.twice(torch.empty(3, device="meta"))
    assert out.shape == (3,) and out.device.type == "meta"


# ------------------------------------------------------------------ linearisation
def test_linearised_copy_leaves_the_model_alone() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.GELU(),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        nn.Sequential(nn.Conv2d(4, 4, 1), nn.SiLU()),
    )
    before = [p.clone() for p in model.parameters()]
    lin = linearised_copy(model)
    assert [type(m).__name__ for m in lin.modules()] == [
        "Sequential", "Conv2d", "BatchNorm2d", "Identity", "AvgPool2d", "Sequential",
        "Conv2d", "Identity",
    ]  # fmt: skip
    pool = lin[3]
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 1, True)
    assert all(p.dtype == torch.float64 and bool((p >= 0).all()) for p in lin.parameters())
    assert torch.allclose(lin[0].weight.sum(dim=(1, 2, 3)), torch.ones(4, dtype=torch.float64))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert model[2].__class__ is nn.GELU and not lin.training


def test_linearised_functions() -> None:
    x = torch.tensor([[[-2.0, 1.0, 3.0, -1.0]]])
    with linearised_functions():
        assert torch.equal(F.relu(x), x) and torch.equal(x.sigmoid(), x)
        assert torch.equal(F.gelu(x), x) and torch.equal(nn.SiLU()(x), x)
        assert F.max_pool1d(x, 2).tolist() == [[[-0.5, 1.0]]]
        assert F.adaptive_max_pool1d(x, 1).tolist() == [[[0.25]]]
        with pytest.raises(ERFValueError, match="dilated max pool"):
            F.max_pool1d(x, 2, dilation=2)
    assert F.relu(x).tolist() == [[[0.0, 1.0, 3.0, 0.0]]]


class _Functional(nn.Module):
    """Functional activations and max pooling, a residual block and a global-pool head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 5, stride=2, padding=2)
        self.body = nn.Conv2d(4, 4, 3, padding=1)
        self.gate = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Any) -> Any:
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2, 1)
        x = x + F.leaky_relu(self.body(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def test_autograd_rf_matches_from_torch_on_a_small_model() -> None:
    model = _Functional().eval()
    net = from_torch(model, (3, 32, 32))
    n = net.min_input_size()[0]
    for size in (n, 16):  # the whole field, then clipped
        got = autograd_rf(model, (3, size, size))
        assert got == network_rf(net, size)
    assert got.size == (13, 13) != net.receptive_field.size  # clipped at 16
    assert autograd_rf(model, (3, n, n)).size == net.receptive_field.size == (17, 17)


def test_autograd_rf_needs_the_linearisation() -> None:
    # Max pooling becomes average pooling of the same geometry: the whole window counts.
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(3), nn.Conv2d(1, 1, 3))
    lin = autograd_rf(model, (1, 14, 14))
    assert (lin.output_size, lin.unit, lin.lo, lin.hi) == ((2, 2), (0, 0), (0, 0), (10, 10))
    # A ReLU that is never active cuts every path off; the linearised copy keeps them.
    dead = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    with torch.no_grad():
        dead[0].weight.fill_(1.0)
        dead[0].bias.fill_(-100.0)
    assert autograd_rf(dead, (1, 9, 9)).size == (5, 5)
    with pytest.raises(ERFValueError, match="zero everywhere"):
        autograd_rf(dead, (1, 9, 9), linearise=False)


class _Pair(nn.Module):
    def forward(self, x: Any) -> Any:
        return x, x


def test_autograd_rf_feature_map_and_errors() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    assert autograd_rf(model, (1, 9, 9)).size == (5, 5)
    assert autograd_rf(model, (1, 9, 9), feature_map="0") == RFBox(
        (9, 9), (7, 7), (3, 3), (3, 3), (5, 5)
    )
    assert autograd_rf(nn.Conv1d(1, 1, 3), (1, 8)) == RFBox((8,), (6,), (2,), (2,), (4,))
    with pytest.raises(ERFValueError, match="'9' is not a module of Sequential"):
        autograd_rf(model, (1, 9, 9), feature_map="9")
    with pytest.raises(ERFTypeError, match="'1' returned tuple, not a tensor"):
        autograd_rf(nn.Sequential(nn.Conv2d(1, 1, 1), _Pair()), (1, 4, 4), feature_map="1")
    with pytest.raises(ERFValueError, match="no feature map larger than one pixel"):
        autograd_rf(nn.Conv2d(1, 1, 3), (1, 3, 3))
    with pytest.raises(ERFValueError, match="input_shape must be"):
        autograd_rf(model, (1, 0, 9))
    with pytest.raises(ERFTypeError, match="got str"):
        autograd_rf("model", (1, 9, 9))  # type: ignore[arg-type]


# ------------------------------------------------------------------ real models
# Models from_torch accepts today, the module it reads (the whole model or its feature
# extractor), and the RF size it must find (the classic numbers).
REAL = [
    ("torchvision:resnet18", "whole", 435),
    ("torchvision:alexnet", "features", 195),
    ("torchvision:vgg11", "features", 150),
    ("torchvision:mobilenet_v2", "whole", 491),
]


@pytest.mark.parametrize(("spec", "part", "rf"), REAL)
def test_real_model_rf_equals_the_autograd_support(spec: str, part: str, rf: int) -> None:
    _need("torchvision")
    model = load_model(spec)
    module = model if part == "whole" else feature_extractor(model)
    assert module is not None
    net = from_torch(module, default_input_shape(model))
    assert net.receptive_field.size == (rf, rf)
    n = net.min_input_size()[0]
    got = autograd_rf(module, (3, n, n))
    assert got == network_rf(net, n) and got.size == (rf, rf)


def test_real_model_clipped_at_the_default_input() -> None:
    _need("torchvision")
    model = load_model("torchvision:resnet18")
    net = from_torch(model, (3, 224, 224))
    got = autograd_rf(model, (3, 224, 224))
    assert got == network_rf(net, 224)
    assert (got.lo, got.hi, got.output_size) == ((0, 0), (223, 223), (7, 7))


def test_real_timm_model() -> None:
    _need("timm")
    model = load_model("timm:resnet18", num_classes=3)
    assert default_input_shape(model) == (3, 224, 224) and not model.training
    assert default_input_shape("timm:inception_v3") == (3, 299, 299)
    with pytest.raises(ERFValueError, match="timm has no model 'resnet51d'"):
        default_input_shape("timm:resnet51d")
    net = from_torch(model, (3, 224, 224))
    n = net.min_input_size()[0]
    assert autograd_rf(model, (3, n, n)) == network_rf(net, n)


def test_unknown_real_model_names_close_matches() -> None:
    _need("torchvision")
    with pytest.raises(ERFValueError, match=r"no model 'resnet19' \(did you mean resnet1"):
        load_model("torchvision:resnet19")
