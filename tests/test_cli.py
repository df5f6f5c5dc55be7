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


# --------------------------------------------------------------------------- reliability
def _exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main(args)``; assert exit status 2 and a short stderr; return stderr."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2, args
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("usage:")), lines
    assert "Traceback" not in captured.err and len(lines[-1]) < 2100
    return captured.err


def _env_run(env_value: str, code: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "ERFTHEORY_MEMORY_LIMIT": env_value}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_memory_limit_environment_variable_at_import():
    code = "import erftheory; print(erftheory.get_memory_limit())"
    for value, expected in (("4GiB", 4 * 2**30), ("512 MiB", 2**29), ("1536", 1536)):
        r = _env_run(value, code)
        assert r.returncode == 0 and r.stdout.strip() == str(expected), (value, r.stderr)
    # A bad value never breaks the import; the first use names the variable.
    code = (
        "import erftheory\n"
        "try:\n"
        "    erftheory.get_memory_limit()\n"
        "except erftheory.ERFValueError as e:\n"
        "    print('refused:', e)\n"
        "with erftheory.memory_limit('1MiB'):\n"
        "    print(erftheory.get_memory_limit())\n"
        "try:\n"
        "    erftheory.profile([1, 1], 3).coefficients\n"
        "except erftheory.ERFValueError as e:\n"
        "    print('restored:', type(e).__name__)\n"
        "erftheory.set_memory_limit('1GiB')\n"
        "print(erftheory.get_memory_limit())\n"
    )
    for bad in ("lots", "9" * 500 + "GiB"):  # the other values are covered in-process
        r = _env_run(bad, code)
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        assert out[0].startswith("refused: the environment variable ERFTHEORY_MEMORY_LIMIT=")
        assert "is invalid" in out[0] and "set_memory_limit" in out[0]
        assert out[1:] == ["1048576", "restored: ERFValueError", str(2**30)]
    # The command line says the same in one line, and --memory-limit overrides it.
    r = _env_run(
        "lots",
        "from erftheory.cli import main; main(['coefficients', '--kernel', "
        "'1,1', '--layers', '3'])",
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "ERFTHEORY_MEMORY_LIMIT='lots' is invalid" in r.stderr
    r = _env_run(
        "lots",
        "from erftheory.cli import main; main(['coefficients', '--kernel', "
        "'1,1', '--layers', '3', '--memory-limit', '1GiB'])",
    )
    assert r.returncode == 0 and r.stdout.split() == ["1", "3", "3", "1"], r.stderr


BAD_LIMITS = [
    ("lots", "is not a size"),
    ("1e400", "is not a size"),
    ("nan", "is not a size"),
    ("inf", "is not a size"),
    ("9" * 400 + "GiB", "is not a size"),
    ("99999999999999999999GiB", "outside the valid range, 1 B to 1 EiB"),
    ("2EiB", "outside the valid range"),
    ("0", "outside the valid range"),
    ("0.5", "outside the valid range"),
    ("-1", "is not a size"),
    ("²", "is not a size"),
    ("١٢MiB", "is not a size"),  # Arabic-Indic digits: ASCII only
    ("1.5.5GiB", "is not a size"),
    ("4 GiBs", "is not a size"),
    ("", "is not a size"),
]


@pytest.mark.parametrize(("value", "message"), BAD_LIMITS)
def test_bad_memory_limits_are_clear_errors(value, message, capsys):
    import erftheory

    before = erftheory.get_memory_limit()
    with pytest.raises(erftheory.ERFValueError, match=message):
        erftheory.set_memory_limit(value)
    assert erftheory.get_memory_limit() == before
    err = _exit_2(["profile", "--kernel", "1,1", "--layers", "2", "--memory-limit", value], capsys)
    assert err.startswith("erftheory: error: --memory-limit ") and message in err


def test_memory_limit_forms_and_scope(capsys):
    import erftheory

    for value, nbytes in (
        ("1.5KiB", 1536),
        (" 8 gb ", 8 * 2**30),
        ("1EiB", 2**60),
        ("1024PiB", 2**60),
        (".5k", 512),
        (2**60, 2**60),
    ):
        with erftheory.memory_limit(value) as got:
            assert got == nbytes == erftheory.get_memory_limit()
    for value in (2**60 + 1, 10**5000, True, 3.0, None, b"4GiB"):
        with pytest.raises(erftheory.ERFValueError, match="memory limit"):
            erftheory.set_memory_limit(value)  # type: ignore[arg-type]
    # --memory-limit holds for one command only: main() can run in-process.
    before = erftheory.get_memory_limit()
    assert main(["coefficients", "--kernel", "1,1", "--layers", "2", "--memory-limit", "1MiB"]) == 0
    assert erftheory.get_memory_limit() == before
    capsys.readouterr()


def test_sizes_above_any_float_are_refused_with_the_estimate():
    from erftheory._config import check_size, format_bytes

    assert format_bytes(2**2000 + 1) == "about 2^2000 B"
    assert format_bytes(float("inf")) == "an unbounded amount"
    assert format_bytes(3 * 2**29) == "1.5 GiB"
    import erftheory

    with pytest.raises(erftheory.SizeLimitError, match=r"about 2\^3000 B, above") as info:
        check_size(2**3000, "a test")
    assert info.value.estimate == 2**200 and info.value.limit == erftheory.get_memory_limit()
    with pytest.raises(erftheory.SizeLimitError, match="an unbounded amount"):
        check_size(float("nan"), "a test")


def _big(text: str) -> int:
    import gmpy2

    return int(gmpy2.mpz(text))  # no 4300-digit limit, unlike int()


def test_exact_output_has_no_digit_limit(capsys):
    # 2**20000 has 6021 digits, above Python's 4300-digit int -> str limit.
    assert main(["coefficients", "--kernel", "2", "--layers", "20000"]) == 0
    assert _big(capsys.readouterr().out.strip()) == 2**20000
    assert main(["coefficients", "--kernel", "2", "--layers", "20000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert _big(doc["coefficients"][0]) == 2**20000 and doc["variance"] == "0"
    # A 5000-digit weight: its square (10 000 digits) is the last coefficient.
    w = _big("7" * 5000)
    assert main(["coefficients", "--kernel", f"1,{'7' * 5000}", "--layers", "2"]) == 0
    assert _big(capsys.readouterr().out.split()[-1]) == w * w
    assert main(["profile", "--kernel", f"1/{'7' * 5000},1", "--layers", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    num, den = doc["kernel"][0].split("/")
    assert (num, _big(den)) == ("1", w) and doc["rf_size"] == 3


def test_binomial_row_of_20000_layers_prints_as_valid_json(capsys):
    assert main(["coefficients", "--kernel", "1,1", "--layers", "15000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = doc["coefficients"]
    assert len(row) == 15001 and len(row[7500]) > 4300
    assert _big(row[7500]) == math.comb(15000, 7500) and row[0] == row[-1] == "1"


def test_huge_kernel_text_is_refused_in_one_line(capsys):
    err = _exit_2(["coefficients", "--kernel", "1," * 70_000 + "1", "--layers", "2"], capsys)
    assert "more than 131072" in err
    err = _exit_2(["coefficients", "--kernel", "1," + "9" * 100_001, "--layers", "2"], capsys)
    assert "--kernel '1,999" in err and "digits" in err


def _refuse_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any computation fail loudly: a refusal must come before it."""
    import erftheory.cli as cli

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed before checking --plot")

    monkeypatch.setattr(cli, "profile", boom)
    monkeypatch.setattr(cli, "load_arch", boom)


def test_plot_names_are_checked_before_any_work(tmp_path, monkeypatch, capsys):
    import os

    pytest.importorskip("matplotlib")
    _refuse_work(monkeypatch)
    afile = tmp_path / "afile.png"
    afile.write_text("x")
    adir = tmp_path / "adir.png"
    adir.mkdir()
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    cases = [
        ("", "the file name is empty"),
        ("   ", "the file name is empty"),
        (f"{tmp_path}/", "name a file, not a directory"),
        (f"{afile}/", "name a file, not a directory"),
        (str(adir), "is a directory"),
        (str(afile / "x.png"), "does not exist (it is a file)"),
        (str(tmp_path / "no" / "x.png"), "does not exist"),
        (str(tmp_path / ("a" * 300 + ".png")), "cannot be written (File name too long)"),
        (str(tmp_path / "x\0.png"), "NUL byte"),
        (str(fifo), "not a regular file"),
        ("x.txt", ".png, .pdf or .svg"),
    ]
    for name, message in cases:
        for args in (
            ["profile", "--kernel", "1,2,1", "--layers", "3", "--plot", name],
            ["profile", "--arch", "net.json", "--plot", name],
        ):
            err = _exit_2(args, capsys)
            assert f"--plot {name[:30]!r}"[:12] in err and message in err, (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.png", "afile.png", "fifo.png"]
    assert afile.read_text() == "x"  # an existing file is never opened by the check


def test_zero_variance_profiles_print_without_the_gaussian(tmp_path, capsys):
    for args in (["--kernel", "1", "--layers", "5"], ["--kernel", "1,1", "--layers", "0"]):
        assert main(["profile", *args]) == 0
        text = capsys.readouterr().out
        assert "variance          0" in text and "std (1σ radius)   0" in text
        assert "Gaussian distance none   (the variance is 0" in text
        assert main(["profile", *args, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["gaussian"] is None and doc["variance"] == "0" and doc["std"] == 0
        assert "the variance is 0" in doc["note"] and doc["rf_size"] == 1
    arch = tmp_path / "act.json"
    arch.write_text('{"layers": ["relu", {"dropout": {"p": "1/4"}}, "tanh"]}')
    assert main(["profile", "--arch", str(arch), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gaussian"] is None and "the variance is 0" in doc["note"]
    assert doc["rf_size"] == 1 and len(doc["table"]) == 3
    assert main(["profile", "--arch", str(arch)]) == 0
    assert "Gaussian distance none" in capsys.readouterr().out


def test_negative_variance_prints_without_std(capsys):
    assert main(["profile", "--kernel", "1,-3,1", "--layers", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["variance"] == "-6" and doc["std"] is None and doc["gaussian"] is None
    assert "negative" in doc["note"]


@pytest.mark.parametrize("method", ["auto", "exact", "fft", "float", "arb", "symbolic"])
def test_every_offered_method_works(method, capsys):
    from erftheory.profile import METHODS

    assert method in METHODS
    assert main(["profile", "--kernel", "1,2,1", "--layers", "4", "--method", method]) == 0
    assert "variance          2" in capsys.readouterr().out
    assert (
        main(["profile", "--kernel", "1,2,1", "--layers", "4", "--method", method, "--json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == method or method == "auto"
    assert doc["variance"] == "2" and doc["std"] == pytest.approx(math.sqrt(2))
    from erftheory import Kernel, profile

    exact = profile(Kernel([1, 2, 1]), 4).gaussian().total_variation
    assert doc["gaussian"]["total_variation"] == pytest.approx(exact, rel=1e-9)


def test_json_is_strict_json_for_non_finite_floats():
    from erftheory.cli import _json

    text = _json({"a": float("inf"), "b": [float("nan"), 1.5], "c": 10**5000})
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert doc["a"] is None and doc["b"] == [None, 1.5] and _big(doc["c"]) == 10**5000


def test_messages_are_one_line_and_clipped(capsys):
    err = _exit_2(
        ["profile", "--kernel", "1,2", "--layers", "2", "--method", "x\ny" * 5000], capsys
    )
    assert "invalid choice" in err and len(err) < 2200


def test_exact_values_beyond_float_range_print_as_text():
    from erftheory.cli import _approx, _exact

    assert _approx(Fraction(10**400)) == "1e+400"
    assert _approx(Fraction(-3 * 10**500, 7)) == "-4.28571e+499"
    assert _approx(Fraction(1, 10**400)) == "1e-400"
    assert _approx(Fraction(2**300 + 1, 3)) == pytest.approx(2**300 / 3)
    assert _exact([Fraction(3, 2), None, 0.5, 10**5000]) == ["3/2", None, 0.5, "1e+5000"]


def test_a_table_above_the_memory_limit_leaves_the_rest(capsys, tmp_path, monkeypatch):
    """Where the profile took the float route but the exact per-layer table is refused
    (Inception-v3 at init: fixed parts of 31.8 GiB), the summary still prints."""
    from erftheory import SizeLimitError
    from erftheory.network import Network

    def refused(self, kind="gradient"):
        raise SizeLimitError("the exact fixed parts would need about 31.8 GiB", 2**35, 2**31)

    monkeypatch.setattr(Network, "table", refused)
    arch = tmp_path / "net.json"
    arch.write_text('{"layers": [{"conv": {"size": 3}}, {"conv": {"size": 3}}]}')
    assert main(["profile", "--arch", str(arch)]) == 0
    text = capsys.readouterr().out
    assert "RF size           5" in text
    assert "per-layer table: not computed (the exact fixed parts would need about 31.8 GiB)" in text
    assert main(["profile", "--arch", str(arch), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["table"] is None and "31.8 GiB" in doc["table_note"] and doc["rf_size"] == 5
