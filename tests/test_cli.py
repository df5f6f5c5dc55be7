"""The command line: output, JSON, plots, and exit status 2 for bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import pytest

from erftheory.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erftheory", *args], capture_output=True, text=True, timeout=120
    )


def test_coefficients_plain(capsys):
    assert main(["coefficients", "--kernel", "1,1", "--layers", "6"]) == 0
    out = capsys.readouterr().out.split()
    assert [int(x) for x in out] == [math.comb(6, t) for t in range(7)]


def test_coefficients_json(capsys):
    assert main(["coefficients", "--kernel", "1,2,1", "--layers", "5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["coefficients"] == [str(math.comb(10, t)) for t in range(11)]
    assert doc["origin"] == 5 and doc["mean"] == "0" and doc["variance"] == "5/2"


def test_coefficients_json_2d_and_rational(capsys):
    assert main(["coefficients", "--kernel", "1,1;1,1", "--layers", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["coefficients"] == [["1", "2", "1"], ["2", "4", "2"], ["1", "2", "1"]]
    assert doc["origin"] == [0, 0] and doc["variance"] == ["1/2", "1/2"]
    assert main(["coefficients", "--kernel", "1/4,1/2,1/4", "--layers", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [Fraction(x) for x in doc["coefficients"]] == [
        Fraction(math.comb(4, t), 16) for t in range(5)
    ]


def test_profile_summary_text_and_json(capsys):
    assert main(["profile", "--kernel", "1,1,1", "--layers", "20"]) == 0
    text = capsys.readouterr().out
    assert "variance          40/3" in text and "RF size           41" in text
    assert main(["profile", "--kernel", "1,1,1", "--layers", "20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["variance"] == "40/3" and doc["rf_size"] == 41
    assert doc["std"] == pytest.approx(math.sqrt(40 / 3), rel=1e-15)
    assert set(doc["mass_size"]) == {"0.2", "0.3", "0.5", "0.99"}
    assert 0 < doc["gaussian"]["kolmogorov"] < 0.1


def test_profile_plot_1d_and_2d(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    one = tmp_path / "one.png"
    two = tmp_path / "two.png"
    assert main(["profile", "--kernel", "1,2,1", "--layers", "8", "--plot", str(one), "--log"]) == 0
    assert (
        main(["profile", "--kernel", "1,1,1;1,1,1;1,1,1", "--layers", "8", "--plot", str(two)]) == 0
    )
    for f in (one, two):
        data = f.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


BAD = [
    (["coefficients", "--kernel", "1,nan", "--layers", "2"], "weight 'nan' is not a finite number"),
    (["coefficients", "--kernel", "1,inf", "--layers", "2"], "not a finite number"),
    (["coefficients", "--kernel", "1,2;3", "--layers", "2"], "ragged"),
    (["coefficients", "--kernel", "", "--layers", "2"], "empty"),
    (["coefficients", "--kernel", "1,2", "--layers", "-1"], "non-negative integer"),
    (["coefficients", "--kernel", "1,2", "--layers", "2.5"], "non-negative integer"),
    (["coefficients", "--kernel", "1,2", "--layers", "True"], "non-negative integer"),
    (["coefficients", "--kernel", "1,1,1", "--layers", "1000000000000"], "memory limit"),
    (["profile", "--kernel", "1,1,1", "--layers", "1000000000000"], "memory limit"),
    (["profile", "--kernel", "1,-1", "--layers", "3"], "sum to zero"),
    (
        ["profile", "--kernel", "1,2", "--layers", "3", "--plot", "/nonexistent/dir/x.png"],
        "does not exist",
    ),
    (["profile", "--kernel", "1,2", "--layers", "3", "--plot", "x.txt"], ".png, .pdf or .svg"),
    (["profile", "--kernel", "1,2", "--layers", "3", "--anchor", "5"], "outside the kernel"),
    (["profile", "--kernel", "1,2", "--layers", "3", "--memory-limit", "lots"], "not a size"),
    (["frobnicate"], "invalid choice"),
    (["coefficients", "--layers", "3"], "required"),
    (
        ["coefficients", "--kernel", "__import__('os').system('echo hi')", "--layers", "1"],
        "not a finite",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_arguments_exit_2_with_short_message(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert message in err
    assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("usage:"))
    assert "Traceback" not in err


def test_subprocess_errors_have_no_traceback():
    for args, message in BAD[:3] + BAD[7:8] + BAD[14:15]:
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2


def test_unwritable_plot_paths(tmp_path):
    pytest.importorskip("matplotlib")
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = run("profile", "--kernel", "1,2", "--layers", "2", "--plot", str(afile / "x.png"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    # /proc refuses new files even for root: the write itself fails.
    r = run("profile", "--kernel", "1,2", "--layers", "2", "--plot", "/proc/erftheory-test.png")
    assert r.returncode == 2 and "cannot be written" in r.stderr and "Traceback" not in r.stderr


def test_help_everywhere():
    for args in (["--help"], ["coefficients", "--help"], ["profile", "--help"]):
        r = run(*args)
        assert r.returncode == 0 and "usage:" in r.stdout
    assert "examples:" in run("profile", "--help").stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("erftheory ")
