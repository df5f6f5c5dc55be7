"""``erftheory profile --torch SPEC``: real models from the command line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from erftheory.cli import main

torch = pytest.importorskip("torch", reason="--torch needs the torch extra")

from erftheory.torch.models import load_model  # noqa: E402
from erftheory.torch.trace import from_torch  # noqa: E402

MODEL = """
import torch.nn as nn


def build():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1),
    )


def not_a_model():
    return 3
"""


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "small_model.py"
    path.write_text(textwrap.dedent(MODEL))
    return str(path)


def test_file_factory_profile_equals_from_torch(model_file: str, capsys) -> None:
    assert main(["profile", "--torch", f"{model_file}:build", "--input", "3,16,16", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    net = from_torch(load_model(f"{model_file}:build"), (3, 16, 16))
    rf = net.receptive_field
    assert doc["rf_size"] == list(rf.size) == [7, 7]
    assert doc["jump"] == list(rf.jump) == [2, 2]
    assert doc["offset"] == list(rf.offset)
    assert doc["torch"] == f"{model_file}:build"
    assert doc["input"] == [3, 16, 16] and doc["weights"] == "ones"
    assert [r["rf_size"] for r in doc["table"]] == [list(r.rf_size) for r in net.table()]
    # the exact profile equals Network.profile's, coefficient for coefficient
    prof = net.profile()
    assert doc["variance"] == [str(v) for v in prof.variance]


def test_file_factory_text_and_kind(model_file: str, capsys) -> None:
    argv = ["profile", "--torch", f"{model_file}:build", "--input", "3,16,16"]
    assert main([*argv, "--weights", "variance", "--kind", "expected_square"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model             ")
    assert "kind              expected_square" in out
    assert "RF size           (7, 7)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--torch", "nonsense"], "torchvision:NAME"),
        (["--torch", "MISSING.py:build"], "MISSING.py"),
        (["--torch", "{file}:not_a_model"], "nn.Module"),
        (["--torch", "{file}:absent"], "absent"),
        (["--torch", "{file}:build", "--input", "3,x,4"], "C,H,W"),
        (["--torch", "{file}:build", "--input", "0,4,4"], "at least 1"),
        (["--torch", "{file}:build", "--arch", "net.json"], "--arch"),
        (["--input", "3,16,16", "--kernel", "1,1", "--layers", "2"], "only with --torch"),
        (["--weights", "ones", "--kernel", "1,1", "--layers", "2"], "only with --torch"),
        (["--torch", "{file}:build", "--kernel", "1,1"], "not allowed with --kernel"),
    ],
)
def test_bad_torch_arguments_exit_2_with_one_line(
    model_file: str, argv: list[str], message: str, capsys
) -> None:
    argv = [a.replace("{file}", model_file) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(["profile", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 1 <= len(err) <= 2 and err[-1].startswith("erftheory")
    assert message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_torchvision_resnet18_rf(capsys) -> None:
    from erftheory.torch.models import import_torchvision

    try:
        import_torchvision()
    except ImportError as exc:
        pytest.skip(f"torchvision is not installed ({exc}); install the 'models' extra")
    assert main(["profile", "--torch", "torchvision:resnet18", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rf_size"] == [435, 435] and doc["jump"] == [32, 32]
    assert doc["input"] == [3, 224, 224]
