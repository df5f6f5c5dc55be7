"""`erftheory reproduce --quick`: every figure and the results table, checked for values."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

import torch

from erftheory import ERFTypeError, ERFValueError, Kernel, profile
from erftheory.cli import main
from erftheory.reproduce import QUICK, measure, reproduce

FIGURES = [
    "fig1_depth.png",
    "fig1_sections.png",
    "fig1_activations.png",
    "fig2_size_ratio.png",
    "fig_subsampling_dilation.png",
    "fig3_training.png",
    "fig_init.png",
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--quick", "--out", str(out), "--seed", "3"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_figure_and_table_is_written(quick: tuple[Path, dict[str, Any]]) -> None:
    from erftheory.torch.reproduce import MAX_PIXELS

    out, results = quick
    assert sorted(p.name for p in out.glob("*.png")) == sorted(FIGURES)
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert 500 <= width <= MAX_PIXELS[0] and 300 <= height <= MAX_PIXELS[1], name
    md = (out / "results.md").read_text()
    assert "| slope (log–log) | theory (exact) | experiment | paper | n → ∞ |" in md
    assert results["quick"] is True and results["seed"] == 3
    assert set(results["seconds"]) == {
        "fig1",
        "fig2",
        "subsampling_dilation",
        "training",
        "init",
        "total",
    }


def test_uniform_networks_measure_exactly_the_theory(quick: tuple[Path, dict[str, Any]]) -> None:
    _, results = quick
    uniform = [r for r in results["fig1"]["depth"] if r["label"].startswith("uniform")]
    assert uniform
    for r in uniform:
        # One all-ones network in float64: the gradient is the exact profile.
        assert r["total_variation"] < 1e-12
        assert r["experiment_std"] == r["theory_std"]


def test_theory_columns_match_the_exact_engine(quick: tuple[Path, dict[str, Any]]) -> None:
    _, results = quick
    fig2 = results["fig2"]
    for d, size, rf in zip(fig2["depths"], fig2["theory_erf_size"], fig2["rf_size"], strict=True):
        p = profile(Kernel.uniform((3, 3)), d)  # equal variances: the uniform kernel's shape
        assert size == round(p.threshold_size(), 3)
        assert rf == 2 * d + 1
    depths = fig2["depths"]
    sizes = fig2["theory_erf_size"]
    lx = [math.log(d) for d in depths]
    ly = [math.log(s) for s in sizes]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx
    )
    assert fig2["slopes"]["theory_size"] == round(slope, 3)
    std = {r["label"]: r["theory_std"] for r in results["subsampling_dilation"]}
    dense, strided, dilated = (std[k] for k in sorted(std, key=lambda k: ("dense" not in k, k)))
    assert dense == round(math.sqrt(15 * 2 / 3), 4)  # Eq. 10 per axis, 15 layers
    assert strided > dense and dilated > dense


def test_measurements_are_reported_as_numbers(quick: tuple[Path, dict[str, Any]]) -> None:
    _, results = quick
    rows = (
        results["fig1"]["depth"]
        + results["fig1"]["activations"]
        + results["subsampling_dilation"]
        + results["init"]
        + results["training"]["rows"]
    )
    for r in rows:
        assert 0 <= r["total_variation"] <= 1
        assert r["experiment_std"] > 0 and math.isfinite(r["experiment_std"])
    he, low = results["init"]
    assert low["theory_std"] > he["theory_std"]  # Section 4: centre-low widens the ERF
    accuracy = results["training"]["test_accuracy"]
    assert all(0 <= a <= 1 for a in accuracy["per_seed"])
    assert accuracy["mean"] == pytest.approx(np.mean(accuracy["per_seed"]), abs=1e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "--device", "tpu"], "--device 'tpu'"),
        (["reproduce", "--seed", "-1"], "argument --seed"),
        (["reproduce", "--out", "/nonexistent-dir/x"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str) -> None:
    r = subprocess.run(
        # timeout: a hang guard only (a loaded machine may take long to start Python)
        [sys.executable, "-m", "erftheory", *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) <= 2 and message in err[-1] and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("kwargs", "cls", "message"),
    [
        ({"device": "tpu"}, ERFValueError, "device 'tpu' is not supported"),
        ({"device": "cuda:x"}, ERFValueError, "device 'cuda:x' is not supported"),
        ({"device": 0}, ERFTypeError, "device must be a string"),
        ({"seed": -1}, ERFValueError, r"seed must be in 0\.\.2\*\*63-1, got -1"),
        ({"seed": 2**63}, ERFValueError, "seed must be in"),
        ({"seed": 1.5}, ERFTypeError, "seed must be an int"),
        ({"seed": True}, ERFTypeError, "seed must be an int"),
        ({"quick": "yes"}, ERFTypeError, "quick must be True or False"),
    ],
)
def test_reproduce_refuses_bad_arguments_before_any_work(
    tmp_path: Path, kwargs: dict[str, Any], cls: type, message: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(cls, match=message) as e:
        reproduce(out, **kwargs)
    assert "\n" not in str(e.value)
    assert not out.exists()  # nothing was created


def test_reproduce_checks_the_out_path(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    with pytest.raises(ERFValueError, match="exists and is not a directory"):
        reproduce(file, quick=True)
    with pytest.raises(ERFValueError, match="cannot be created or written"):
        reproduce(file / "sub", quick=True)  # a parent that is a file
    with pytest.raises(ERFTypeError, match="out must be a directory path"):
        reproduce(3, quick=True)  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="out must name a directory"):
        reproduce("", quick=True)


def test_measurements_are_reproducible_bit_for_bit() -> None:
    from erftheory.layers import ReLU
    from erftheory.reproduce import HE_VARIANCE, dense

    net = dense(3, HE_VARIANCE, ReLU())
    state = torch.get_rng_state()
    a = measure(net, init="random", count=6, seed=5, channels=2)
    b = measure(net, init="random", count=6, seed=5, channels=2)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.stderr, b.stderr)
    assert not np.array_equal(a.mean, measure(net, init="random", count=6, seed=6).mean)
    assert torch.equal(torch.get_rng_state(), state)


def test_section_3_2_is_the_papers_resnet_on_32x32(quick: tuple[Path, dict[str, Any]]) -> None:
    from erftheory.paper import resnet_network
    from erftheory.reproduce import Config

    _, results = quick
    t = results["training"]
    assert t["blocks"] == QUICK.train_blocks and t["input_size"] == [32, 32]
    assert t["rf_size"] == resnet_network(QUICK.train_blocks).receptive_field.size[0]
    assert Config().train_blocks == 17 and t["paper_rf_size"] == 74
    assert t["seeds"] == QUICK.train_seeds >= 2 and t["erf_images"] == QUICK.erf_images
    for key in ("init", "before", "after"):
        std = t["erf"][key]["std"]
        assert len(std["per_seed"]) == t["seeds"] and std["stderr"] > 0
    assert t["change"]["std"]["verdict"] in ("grows", "shrinks", "no significant change")
    assert t["gpu_seconds"] == "not measured"  # the fixture runs on the CPU
    for row in t["rows"]:  # the theory at initialisation, within 3 standard errors
        assert abs(row["std_z"]) < 3 and row["total_variation"] < 0.25, row["label"]
    md = (quick[0] / "results.md").read_text()
    assert "## Section 3.2: the ERF before and after training" in md and t["verdict"] in md


def test_the_experiments_networks_are_the_papers() -> None:
    from erftheory.paper import (
        REPLACED,
        REPLACED_DILATIONS,
        REPLACEMENTS,
        paper_network,
        replaced_network,
    )
    from erftheory.reproduce import LINEAR_VARIANCE, dense, replaced

    assert REPLACEMENTS == ("dense", "stride", "dilation")
    variants = {
        "dense": paper_network(15),
        "stride": paper_network(15, stride_layers=REPLACED),
        "dilation": paper_network(
            15, dilations=dict(zip(REPLACED, REPLACED_DILATIONS, strict=True))
        ),
    }
    for how, net in variants.items():
        assert repr(replaced_network(15, how)) == repr(net)
        ours = replaced(15, how)  # the same geometry, with variance kernels 1/9 per tap
        assert ours.receptive_field == net.receptive_field
        assert ours.profile("expected_square").normalized().tolist() == (
            net.profile("gradient").normalized().tolist()
        )
    assert [variants[h].receptive_field.size for h in REPLACEMENTS] == [
        (31, 31),
        (105, 105),
        (53, 53),
    ]
    assert repr(dense(4)) == repr(paper_network(4))
    assert dense(4, LINEAR_VARIANCE).std("expected_square") == paper_network(4).std("gradient")
    with pytest.raises(ERFValueError, match="how must be one of dense, stride, dilation"):
        replaced(15, "pool")
