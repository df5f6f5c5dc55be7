"""``erftheory measure`` and `erftheory.torch.measure.measure`: a model on a folder of images.

The images are scikit-learn's two sample photographs (china.jpg, flower.jpg) and small
PNGs the tests write; the models are small convolutional networks in a file the tests
write (``file.py:build``), and torchvision's ResNet-18 at a small input. What is
checked: the map, the summary and the verdict equal a direct `empirical_erf` call on
the same preprocessed tensors, `EmpiricalERF`'s own measures and `compare`'s result;
every bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from erftheory.cli import main

torch = pytest.importorskip("torch", reason="measure needs the torch extra")
Image = pytest.importorskip("PIL.Image", reason="measure reads images with Pillow")

from torch import nn  # noqa: E402

from erftheory import ERFValueError, MissingDependencyError  # noqa: E402
from erftheory.torch import compare, empirical_erf  # noqa: E402
from erftheory.torch.images import load_images  # noqa: E402
from erftheory.torch.measure import FILES, MAX_PIXELS, measure, spatial_part  # noqa: E402
from erftheory.torch.models import load_model  # noqa: E402
from erftheory.torch.trace import from_torch  # noqa: E402

MODEL = """
import torch.nn as nn


def build():
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2),
    )


def grey():
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
"""

SIZE = 32  # the crop: the model's RF (11 pixels) fits, so there is a verdict
FLOAT_TOL = 1e-12  # relative: the same float64 sums, summarised by the same code


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "small_model.py"
    path.write_text(textwrap.dedent(MODEL))
    return str(path)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """scikit-learn's sample photographs and one small PNG, in their own folder."""
    datasets = pytest.importorskip("sklearn.datasets", reason="natural images need scikit-learn")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, array in zip(("china", "flower"), datasets.load_sample_images().images, strict=True):
        Image.fromarray(array).save(folder / f"{name}.jpg", quality=95)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / "noise.png")
    return folder


def _run(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    code = main(["measure", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _model(spec: str, seed: int = 0) -> Any:
    """The model ``measure`` builds from ``spec`` (its weights drawn from ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load_model(spec)


def _close(a: Any, b: Any) -> bool:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return bool(np.allclose(a, b, rtol=FLOAT_TOL, atol=0.0, equal_nan=True))


# ------------------------------------------------------------------ the command
def test_measure_equals_empirical_erf_on_the_same_tensors(
    model_file: str, photos: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out"
    spec = f"{model_file}:build"
    argv = ["--torch", spec, "--images", str(photos), "--out", str(out)]
    code, stdout, err = _run([*argv, "--input", f"3,{SIZE},{SIZE}", "--batch-size", "2"], capsys)
    assert code == 0, err
    assert set(os.listdir(out)) == set(FILES.values())
    summary = json.loads((out / "summary.json").read_text())

    # the same preprocessed tensors through the same part of the same model
    x = load_images(photos, spec, input_shape=(3, SIZE, SIZE))
    assert tuple(x.shape) == (3, 3, SIZE, SIZE)
    part, name = spatial_part(_model(spec), (3, SIZE, SIZE))
    assert name == summary["measured"] == "children 0 ... 4 of the model (head 5, 6, 7 left out)"
    direct = empirical_erf(part, inputs=x, batch_size=2, dtype=torch.float32)
    erf_map = np.load(out / "erf.npy")
    assert erf_map.shape == (SIZE, SIZE) and erf_map.dtype == np.float64
    np.testing.assert_array_equal(erf_map, direct.map)
    np.testing.assert_array_equal(np.load(out / "erf_stderr.npy"), direct.stderr)

    # the summary is EmpiricalERF's measures
    assert summary["count"] == direct.count == 3 and summary["shape"] == [SIZE, SIZE]
    assert summary["origin"] == list(direct.origin) == [14, 14]
    assert summary["origin_source"] == direct.origin_source == "from_torch"
    assert summary["centre"] == list(direct.centre)
    mom = direct.moments()
    assert _close(summary["moments"]["mean"], mom.mean)
    assert _close(summary["moments"]["covariance"], mom.covariance)
    assert _close(summary["moments"]["covariance_stderr"], mom.covariance_stderr)
    g, fit = summary["gaussian"], direct.gaussian()
    assert _close(
        [g["sigma_x"], g["sigma_y"], g["sigma_x_stderr"], g["sigma_y_stderr"]],
        [fit.sigma_x, fit.sigma_y, fit.sigma_axis_stderr[1], fit.sigma_axis_stderr[0]],
    )
    assert _close([g["orientation_deg"]], [math.degrees(fit.angle)])
    assert _close([g["orientation_deg_stderr"]], [math.degrees(fit.angle_stderr)])
    assert _close(g["sigma"], fit.sigma) and _close(g["sigma_stderr"], fit.sigma_stderr)
    rm = direct.radial_mass()
    assert summary["radial_mass"]["radius"] == rm.radius.tolist()
    assert _close(summary["radial_mass"]["mass"], rm.mass)
    shares = direct.mass_shares((0.2, 0.3, 0.5, 0.99))
    assert [s["share"] for s in summary["mass_shares"]] == [0.2, 0.3, 0.5, 0.99]
    assert [s["side"] for s in summary["mass_shares"]] == [s.side for s in shares]
    assert _close([s["width"] for s in summary["mass_shares"]], [s.width for s in shares])

    # the theory and the verdict are compare's
    net = from_torch(part, (3, SIZE, SIZE), weights="variance")
    result = compare(net.profile("expected_square"), direct, confidence=0.99)
    c = summary["comparison"]
    assert c["consistent"] is result.consistent
    assert c["verdict"] == ("consistent" if result.consistent else "inconsistent")
    assert _close([c["max_abs_z"], c["tv_distance"]], [result.max_abs_z, result.tv_distance])
    assert c["failing"] == result.failing and c["tested"] == result.tested
    t = summary["theory"]
    assert t["weights"] == "variance" and t["fits"] is True
    assert t["rf_size"] == [11, 11] and t["start"] == list(result.start)

    # what it was run with, and the text report
    assert summary["transform"]["source"] == "imagenet"
    assert "resized to 36" in summary["transform"]["description"]  # floor(32 / 0.875)
    assert summary["dtype"] == "float32" and summary["device"] == "cpu"
    assert summary["batch_size"] == 2 and summary["statistic"] == "mean_square"
    assert summary["images"]["count"] == 3 and summary["images"]["first"] == "china.jpg"
    assert summary["seconds"]["total"] > 0
    assert stdout.splitlines()[0].startswith("model             ")
    assert f"verdict           {c['verdict']}" in stdout
    assert "wrote" in stdout and "Traceback" not in err

    # the figure: a PNG of at most MAX_PIXELS
    with Image.open(out / "erf.png") as png:
        assert png.format == "PNG"
        assert png.size[0] <= MAX_PIXELS[0] and png.size[1] <= MAX_PIXELS[1]


def test_json_prints_the_summary(model_file: str, photos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    argv = ["--torch", f"{model_file}:build", "--images", str(photos), "--out", str(out)]
    code, stdout, _ = _run([*argv, "--input", "3,24,24", "--limit", "2", "--json"], capsys)
    assert code == 0
    doc = json.loads(stdout)
    assert doc == json.loads((out / "summary.json").read_text())
    assert doc["count"] == 2 and doc["images"]["limit"] == 2 and doc["input_shape"] == [3, 24, 24]
    assert doc["files"] == FILES


def test_options_without_theory(model_file: str, photos: Path, tmp_path: Path, capsys) -> None:
    argv = ["--torch", f"{model_file}:build", "--images", str(photos), "--input", "3,24,24"]
    code, stdout, _ = _run([*argv, "--out", str(tmp_path / "a"), "--no-theory", "--json"], capsys)
    doc = json.loads(stdout)
    assert code == 0 and doc["theory"] is None and doc["comparison"] is None
    code, stdout, _ = _run(
        [*argv, "--out", str(tmp_path / "b"), "--statistic", "mean_abs", "--json"], capsys
    )
    doc = json.loads(stdout)
    assert doc["theory"] is None and doc["statistic"] == "mean_abs"
    assert any("no theory for statistic 'mean_abs'" in n for n in doc["notes"])
    # one image: no standard errors, so no verdict, but the theory is still placed
    code, stdout, _ = _run([*argv, "--out", str(tmp_path / "c"), "--limit", "1", "--json"], capsys)
    doc = json.loads(stdout)
    assert doc["count"] == 1 and doc["comparison"] is None and doc["theory"]["fits"] is True
    assert doc["gaussian"]["sigma_x_stderr"] is None  # NaN in JSON is null
    assert any(n.startswith("no verdict: the standard error has NaNs") for n in doc["notes"])


def test_transform_none_and_grey_images(model_file: str, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8), mode="L").save(
            folder / f"{i}.png"
        )
    out = tmp_path / "out"
    argv = ["--torch", f"{model_file}:grey", "--images", str(folder), "--out", str(out)]
    code, stdout, _ = _run([*argv, "--transform", "none", "--json"], capsys)
    doc = json.loads(stdout)
    assert code == 0 and doc["input_shape"] == [1, 9, 11] and doc["transform"]["name"] == "none"
    x = load_images(folder, transform="none", input_shape=(1, 9, 11))
    assert doc["batch_size"] == 3  # auto: at most the number of images
    direct = empirical_erf(
        _model(f"{model_file}:grey"), inputs=x, batch_size=3, dtype=torch.float32
    )
    np.testing.assert_array_equal(np.load(out / "erf.npy"), direct.map)


def test_python_measure_writes_nothing_without_out(model_file: str, photos: Path) -> None:
    result = measure(
        f"{model_file}:build", photos, input_shape=(3, 24, 24), progress=False, batch_size=3
    )
    assert result.files == {} and result.erf.count == 3 and result.comparison is not None
    assert result.summary["comparison"]["verdict"] in ("consistent", "inconsistent")
    assert result.theory_map is not None and result.theory_map.shape == (24, 24)
    np.testing.assert_allclose(result.theory_map, result.comparison.theory, rtol=1e-12)
    # the same seed, the same weights, the same map; another seed, other weights
    again = measure(
        f"{model_file}:build", photos, input_shape=(3, 24, 24), progress=False, batch_size=3
    )
    np.testing.assert_array_equal(again.erf.map, result.erf.map)
    other = measure(
        f"{model_file}:build", photos, input_shape=(3, 24, 24), progress=False, batch_size=3, seed=1
    )
    assert not np.array_equal(other.erf.map, result.erf.map)


# ------------------------------------------------------------------ what is measured
def test_spatial_part() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    assert spatial_part(conv, (3, 8, 8)) == (conv, "the model")

    class WithFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.classifier = nn.Linear(4, 2)

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x).mean((2, 3)))

    m = WithFeatures()
    assert spatial_part(m, (3, 8, 8)) == (m.features, "model.features")

    class NotAChain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Any) -> Any:
            return self.fc((x + self.conv(x)).mean((2, 3)))  # the residual is not a child

    with pytest.raises(ERFValueError, match=r"gives \(1, 2\) .* not a spatial map"):
        spatial_part(NotAChain(), (3, 8, 8))
    pooled = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1))
    part, name = spatial_part(pooled, (3, 8, 8))
    assert name == "child 0 of the model (head 1 left out)" and part[0] is pooled[0]


# ------------------------------------------------------------------ a real model
def test_torchvision_resnet18(photos: Path, tmp_path: Path, capsys) -> None:
    from erftheory.torch.models import import_torchvision

    try:
        import_torchvision()
    except ImportError as e:
        pytest.skip(f"torchvision is not installed ({e}); install the 'models' extra")
    argv = ["--torch", "torchvision:resnet18", "--images", str(photos), "--out", str(tmp_path)]
    code, stdout, _ = _run([*argv, "--input", "3,64,64", "--limit", "2", "--json"], capsys)
    doc = json.loads(stdout)
    assert code == 0
    assert doc["measured"] == "children conv1 ... layer4 of the model (head avgpool, fc left out)"
    assert doc["transform"]["source"] == "torchvision-weights"
    assert "ResNet18_Weights.IMAGENET1K_V1" in doc["transform"]["description"]
    assert doc["origin_source"] == "from_torch" and doc["centre"] == [0, 0]
    assert doc["theory"]["rf_size"] == [435, 435] and doc["theory"]["fits"] is False
    assert doc["comparison"] is None
    assert any("it fits from an input of 449x449" in n for n in doc["notes"])
    assert doc["gaussian"]["sigma_x"] > 0 and len(doc["mass_shares"]) == 4


# ------------------------------------------------------------------ refusals
BAD = [
    (["--images", "{tmp}/missing"], "does not exist"),
    (["--images", "{model}"], "is not a folder"),
    (["--images", "{tmp}/empty"], "no images in the folder"),
    (["--images", "{broken}"], "zz_broken.png' cannot be read"),
    (["--images", "{truncated}"], "truncated.jpg' cannot be read"),
    (["--transform", "bogus"], "invalid choice: 'bogus'"),
    (["--out", "{model}"], "exists and is not a folder"),
    (["--out", "{tmp}/no/such"], "cannot be made"),
    (["--torch", "nonsense"], "torchvision:NAME"),
    (["--torch", "{tmp}/missing.py:build"], "no such file"),
    (["--input", "3,x,4"], "C,H,W"),
    (["--input", "2,8,8"], "images give 1 (grey) or 3 (RGB)"),
    (["--input", "3,8"], "input_shape must be (C, H, W)"),
    (["--batch-size", "0"], "positive integer"),
    (["--limit", "0"], "positive integer"),
    (["--dtype", "float16"], "invalid choice"),
    (["--device", "tpu"], "use 'cpu', 'cuda' or 'cuda:N'"),
    (["--transform", "none"], "needs images of one size"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_inputs_exit_2_with_one_line(
    argv: list[str], message: str, model_file: str, photos: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "empty").mkdir()
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (photos / "china.jpg").read_bytes()
    (truncated / "truncated.jpg").write_bytes(data[: len(data) // 3])
    if "{broken}" in argv:
        (photos / "zz_broken.png").write_bytes(b"\x89PNG not really")
    fill = {"{tmp}": str(tmp_path), "{model}": model_file, "{truncated}": str(truncated)}
    fill["{broken}"] = str(photos)
    given = [_fill(a, fill) for a in argv]
    base = {
        "--torch": f"{model_file}:build",
        "--images": str(photos),
        "--out": str(tmp_path / "out"),
    }
    for flag, value in base.items():
        if flag not in given:
            given += [flag, value]
    with pytest.raises(SystemExit) as info:
        main(["measure", *given])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # one line; argparse's own refusals (a choice, a type) add its usage line first
    assert len(err) == (2 if err[0].startswith("usage:") else 1), err
    assert err[-1].startswith("erftheory") and message in err[-1], err
    assert "Traceback" not in "\n".join(err)


def _fill(text: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        text = text.replace(key, value)
    return text


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable(model_file: str, photos: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["measure", "--torch", f"{model_file}:build", "--images", str(photos),
              "--out", str(tmp_path), "--device", "cuda"])  # fmt: skip
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "erftheory: error: device 'cuda': CUDA is not available on this machine"
    )


def _missing(monkeypatch: Any, target: str, package: str, extra: str) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise MissingDependencyError(package, extra, "this")

    monkeypatch.setattr(target, refuse)


@pytest.mark.parametrize(
    ("target", "package", "extra", "spec"),
    [
        (
            "erftheory.torch.models.import_torchvision",
            "torchvision",
            "models",
            "torchvision:resnet18",
        ),
        ("erftheory.torch.models.import_timm", "timm", "models", "timm:resnet18"),
        ("erftheory.torch.images._pil", "Pillow", "torch", None),
        ("erftheory.plotting.require_matplotlib", "matplotlib", "plot", None),
    ],
)
def test_missing_extras_are_named(
    monkeypatch: Any, target: str, package: str, extra: str, spec: str | None,
    model_file: str, photos: Path, tmp_path: Path, capsys: Any,
) -> None:  # fmt: skip
    _missing(monkeypatch, target, package, extra)
    with pytest.raises(SystemExit) as info:
        main(["measure", "--torch", spec or f"{model_file}:build", "--images", str(photos),
              "--out", str(tmp_path / "out")])  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install 'erftheory[{extra}]'" in err[0], err
    assert package in err[0]


def test_missing_torch_is_named(monkeypatch: Any, tmp_path: Path, capsys: Any) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(SystemExit) as info:
        main(["measure", "--torch", "x.py:f", "--images", str(tmp_path), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "erftheory: error: measure needs torch, which is not installed: pip install "
        "'erftheory[torch]'"
    )
