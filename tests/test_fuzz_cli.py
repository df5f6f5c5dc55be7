"""Fuzzing the command line: random argv and random architecture files, in process.

Every run of ``erftheory.cli.main(argv)`` must end with exit status 0 or 2, never a
traceback and never a hang; with status 2, stderr is one line (or a usage line and one
line); with status 0 and ``--json``, stdout is strict JSON. Each call runs under
``erftheory.memory_limit("64MiB")``, so nothing large is attempted, and the grammar
offers ``--memory-limit`` only values at or below that (or invalid ones).

The settings are deterministic (``derandomize=True``, no example database, a fixed
constant pool) with a bounded number of examples, so the file runs the same 2013 cases
every time, alone or in the full suite, in about 20-60 s on a shared 2-core machine.
`CASES` counts the cases tried; the last test checks and prints the total. Each
``--plot`` case that is valid draws a real figure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import erftheory
from erftheory import ERFTypeError, ERFValueError, parse_arch
from erftheory.cli import main

FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CASES: Counter[str] = Counter()
"""Cases tried per test (the adversarial-case count of the report)."""

OUTCOMES: Counter[str] = Counter()


pytestmark = pytest.mark.usefixtures("fixed_constant_pool")  # see tests/conftest.py


# --------------------------------------------------------------------------- running
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        erftheory.memory_limit("64MiB"),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str], counter: str) -> None:
    """Run one case and assert the command line's contract."""
    CASES[counter] += 1
    code, out, err = run_cli(argv)
    OUTCOMES[f"{counter}: exit {code}"] += 1
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    lines = err.strip().splitlines()
    if code == 2:
        assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("usage:")), (
            argv,
            err,
        )
        assert lines[-1].startswith("erftheory"), (argv, err)
        assert ": error: " in lines[-1] and len(lines[-1]) < 2100, (argv, err)
        return
    assert all(line.startswith("erftheory: note: ") for line in lines), (argv, err)
    if "--json" in argv and not out.startswith(("usage:", "erftheory ")):  # not help/version

        def refuse(name: str) -> Any:
            raise AssertionError(f"{name} is not JSON: {argv}")

        json.loads(out, parse_constant=refuse)


# --------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Architecture files and plot targets, valid and hostile, shared by the cases."""
    d = tmp_path_factory.mktemp("fuzz")
    texts = {
        "small.json": '{"layers": [{"conv": {"kernel": "1,2,1", "stride": 2}}, "relu"]}',
        "two_d.json": '{"ndim": 2, "layers": [{"conv": {"size": 3}}, {"maxpool": {"size": 2}}]}',
        "net.yaml": "layers:\n  - conv: {size: 3}\n  - dropout: {p: 1/4}\n  - avgpool: {size: 2}\n",
        "acts.json": '["relu", "tanh", {"leaky_relu": {"negative_slope": -3}}]',
        "neg.json": '{"layers": [{"conv": {"kernel": "1,-1,1"}}, {"conv": {"size": 2}}]}',
        "big.json": '{"layers": [{"conv": {"size": [1024, 1024]}}]}',
        "astro.json": '{"layers": [{"repeat": {"times": 300, "layers": '
        '[{"conv": {"size": 3, "stride": 1024}}]}}]}',
        "bomb.json": '{"layers": [{"repeat": {"times": 10000, "layers": '
        '[{"repeat": {"times": 10000, "layers": ["relu"]}}]}}]}',
        "digits.json": '{"layers": [{"dropout": {"p": ' + "1" * 5000 + "}}]}",
        "slope.json": '{"layers": [{"leaky_relu": {"negative_slope": ' + "9" * 4000 + "}}]}",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "nan.json": '{"layers": [{"dropout": {"p": NaN}}]}',
        "laughs.yaml": 'a: &a ["relu", "relu"]\nb: &b [*a, *a]\nlayers: [*b, *b]\n',
        "bad.yaml": "layers:\n  - conv: {size: 3\n",
        "empty.json": "",
        "bom.json": "\ufeff[]",
        "unicode_名前.json": '["relu"]',
    }
    for name, text in texts.items():
        (d / name).write_text(text, encoding="utf-8")
    (d / "latin1.json").write_bytes(b'["r\xe9lu"]')
    os.mkfifo(d / "fifo.json")
    (d / "adir").mkdir()
    (d / "afile").write_text("x")
    (d / "dir.png").mkdir()
    paths = {name: str(d / name) for name in [*texts, "latin1.json", "fifo.json", "adir"]}
    paths.update(
        missing=str(d / "missing.json"),
        nul=str(d / "a\0b.json"),
        empty="",
        plot_ok=str(d / "out.png"),
        plot_svg=str(d / "out.svg"),
        plot_dir=str(d / "dir.png"),
        plot_under_file=str(d / "afile" / "x.png"),
        plot_long=str(d / ("a" * 300 + ".png")),
        plot_txt=str(d / "x.txt"),
        plot_slash=str(d) + "/",
        plot_missing_dir=str(d / "no" / "x.png"),
        plot_nul=str(d / "x\0.png"),
        dir=str(d),
    )
    return paths


# --------------------------------------------------------------------------- argv grammar
HUGE = "9" * 5000
WEIRD = [
    "",
    " ",
    "-",
    "--",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "1e-400",
    "0x10",
    "１",
    "½",
    "٣",
    "\u202e",
    "x\0y",
    "\udcff",
    "None",
    "True",
    "__import__('os')",
    HUGE,
    "-" + HUGE,
]
WEIGHTS = st.one_of(
    st.integers(-3, 5).map(str),
    st.sampled_from(["1/4", "-1/3", "1/0", "0.25", "1e3", "1e-3", "2.5e-1", "0", "1e99"]),
    st.sampled_from(WEIRD),
)
ROW = st.lists(WEIGHTS, min_size=0, max_size=4).map(",".join)
VALID_KERNELS = st.one_of(
    st.lists(st.integers(0, 3).map(str), min_size=1, max_size=4).map(",".join),
    st.sampled_from(
        [
            "1,1",
            "1,2,1",
            "1,1;1,1",
            "1,1,1;1,1,1;1,1,1",
            "1",
            "1,-1",
            "1,-3,1",
            "1/4,1/2,1/4",
            "0.1,0.2",
            "2",
            "1,2;3,4",
            "1e3,1",
        ]
    ),
)
KERNELS = st.one_of(
    VALID_KERNELS,
    VALID_KERNELS,
    ROW,
    st.lists(ROW, min_size=1, max_size=3).map(";".join),
    st.text(max_size=12),
)
LAYERS = st.one_of(
    st.integers(0, 40).map(str),
    st.integers(0, 40).map(str),
    st.sampled_from(["300", "2000", "-1", "1.5", "1e3", "999999999999999999", "9" * 30, "007"]),
    st.sampled_from(WEIRD),
)
ANCHORS = st.sampled_from(["0", "1", "2", "1,1", "0,0", "5", "-1", "a", "99999999999", "0,0,0", ""])
LIMITS = st.sampled_from(
    [
        "64MiB",
        "1MiB",
        "64KiB",
        "1KiB",
        "1",
        "1.5MiB",
        "lots",
        "1e400",
        "0",
        "-1",
        "nan",
        "9" * 400,
        "2EiB",
        "99999999999999999999GiB",
        "",
        "4 GiBs",
        "²",
    ]
)
METHODS = st.sampled_from(["auto", "exact", "fft", "float", "arb", "symbolic", "magic", ""])
DPS = st.sampled_from(["10", "30", "50", "5", "0", "-1", "999999", "abc", "1e3"])
KINDS = st.sampled_from(["gradient", "expected_square", "square", ""])
ARCH_KEYS = [
    "small.json",
    "two_d.json",
    "net.yaml",
    "acts.json",
    "neg.json",
    "big.json",
    "astro.json",
    "bomb.json",
    "digits.json",
    "slope.json",
    "deep.json",
    "nan.json",
    "laughs.yaml",
    "bad.yaml",
    "empty.json",
    "bom.json",
    "unicode_名前.json",
    "latin1.json",
    "fifo.json",
    "adir",
    "missing",
    "nul",
    "empty",
    "dir",
]
PLOT_KEYS = [
    "plot_ok",
    "plot_svg",
    "plot_dir",
    "plot_under_file",
    "plot_long",
    "plot_txt",
    "plot_slash",
    "plot_missing_dir",
    "plot_nul",
    "empty",
]
JUNK = st.one_of(
    st.sampled_from(
        [
            "--bogus",
            "-x",
            "--",
            "-",
            "--kernel",
            "--layers",
            "--json",
            "--log",
            "-h",
            "--version",
            "--memory-limit",
            "--mem",
            "--j",
        ]
    ),
    st.sampled_from(WEIRD),
    st.text(max_size=6),
)


@st.composite
def argvs(draw: Any, files: dict[str, str]) -> list[str]:
    command = draw(st.sampled_from(["coefficients"] * 3 + ["profile"] * 6 + ["", "frobnicate"]))
    if command == "" and draw(st.booleans()):
        return draw(st.lists(JUNK, max_size=3))
    if draw(st.integers(0, 19)) == 0:  # reproduce and verify, only with invalid options
        return draw(
            st.sampled_from(
                [
                    ["reproduce", "--seed", "-1"],
                    ["reproduce", "--seed", HUGE],
                    ["reproduce", "--bogus"],
                    ["verify", "--bogus"],
                    ["verify", "--json", "extra"],
                ]
            )
        )
    argv = [command] if command else []
    use_arch = command == "profile" and draw(st.integers(0, 2)) == 0
    options: list[list[str]] = []
    if use_arch:
        options.append(["--arch", files[draw(st.sampled_from(ARCH_KEYS))]])
        if draw(st.booleans()):
            options.append(["--kind", draw(KINDS)])
    if not use_arch or draw(st.integers(0, 4)) == 0:  # sometimes both: a usage error
        if draw(st.integers(0, 9)):
            options.append(["--kernel", draw(KERNELS)])
        if draw(st.integers(0, 9)):
            options.append(["--layers", draw(LAYERS)])
        if draw(st.integers(0, 3)) == 0:
            options.append(["--anchor", draw(ANCHORS)])
    if draw(st.integers(0, 3)) == 0:
        options.append(["--memory-limit", draw(LIMITS)])
    if command == "profile":
        dps = draw(st.integers(0, 5)) == 0
        if dps and draw(st.integers(0, 3)):
            options.append(["--method", "arb"])
        elif draw(st.integers(0, 2)) == 0:
            options.append(["--method", draw(METHODS)])
        if dps:
            options.append(["--dps", draw(DPS)])
        if draw(st.integers(0, 5)) == 0:
            options.append(["--plot", files[draw(st.sampled_from(PLOT_KEYS))]])
        if draw(st.integers(0, 5)) == 0:
            options.append(["--log"])
    if draw(st.booleans()):
        options.append(["--json"])
    if draw(st.integers(0, 5)) == 0:
        options.append([draw(JUNK)])
    order = draw(st.permutations(range(len(options)))) if options else []
    for i in order:
        argv.extend(options[i])
    return argv


def test_fuzz_argv(files: dict[str, str]) -> None:
    @FUZZ
    @given(argvs(files))
    def inner(argv: list[str]) -> None:
        check(argv, "argv")

    inner()


VALID_ARCH = [
    "small.json",
    "two_d.json",
    "net.yaml",
    "acts.json",
    "neg.json",
    "big.json",
    "slope.json",
    "unicode_名前.json",
]


@st.composite
def valid_argvs(draw: Any, files: dict[str, str]) -> list[str]:
    """Mostly valid command lines (to reach the output paths), then maybe one token
    replaced by a hostile one."""
    command = draw(st.sampled_from(["coefficients", "profile", "profile"]))
    argv = [command]
    if command == "profile" and draw(st.integers(0, 2)) == 0:
        argv += ["--arch", files[draw(st.sampled_from(VALID_ARCH))]]
        if draw(st.booleans()):
            argv += ["--kind", draw(st.sampled_from(["gradient", "expected_square"]))]
    else:
        kernel = draw(VALID_KERNELS)
        argv += ["--kernel", kernel, "--layers", str(draw(st.integers(0, 30)))]
        if draw(st.integers(0, 4)) == 0 and ";" not in kernel:
            argv += ["--anchor", str(draw(st.integers(0, 3)))]
    if command == "profile":
        method = draw(st.sampled_from(["auto", "exact", "fft", "float", "arb", "symbolic"]))
        argv += ["--method", method]
        if method == "arb" and draw(st.booleans()):
            argv += ["--dps", str(draw(st.integers(1, 60)))]
        if draw(st.integers(0, 9)) == 0:
            argv += ["--plot", files[draw(st.sampled_from(["plot_ok", "plot_svg"]))]]
            if draw(st.booleans()):
                argv.append("--log")
    if draw(st.integers(0, 3)) == 0:
        argv += ["--memory-limit", draw(st.sampled_from(["64MiB", "1MiB", "64KiB", "200KiB"]))]
    if draw(st.integers(0, 3)):
        argv.append("--json")
    if draw(st.integers(0, 3)) == 0:  # one hostile token in place of a good one
        i = draw(st.integers(1, len(argv) - 1))
        argv[i] = draw(st.one_of(st.sampled_from(WEIRD), JUNK, LAYERS, LIMITS))
    return argv


def test_fuzz_valid_argv(files: dict[str, str]) -> None:
    @FUZZ
    @given(valid_argvs(files))
    def inner(argv: list[str]) -> None:
        check(argv, "valid argv")

    inner()


# --------------------------------------------------------------------------- arch documents
INTS = st.one_of(
    st.integers(-3, 1100),
    st.sampled_from([0, 1, 2, 3, 1024, 1025, -1, 2**63, 10**400, -(10**4000)]),
)
NUMBERS = st.one_of(
    INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1/4", "1/0", "0.5", "1e400", "-1e-400", "nan", "x", "", "9" * 5000]),
)
SCALARS = st.one_of(NUMBERS, st.booleans(), st.none(), st.text(max_size=8))
AXES = st.one_of(INTS, st.lists(INTS, min_size=0, max_size=3), SCALARS)
OPTIONS = {
    "conv": {
        "kernel": st.one_of(
            st.sampled_from(["1,2,1", "1,1;1,1", "1,-1", "", "1,,2"]),
            st.lists(NUMBERS, max_size=4),
            st.lists(st.lists(NUMBERS, max_size=3), max_size=3),
        ),
        "size": AXES,
        "anchor": AXES,
        "stride": AXES,
        "dilation": AXES,
        "padding": st.one_of(AXES, st.sampled_from(["same", "valid", "full"])),
    },
    "avgpool": {"size": AXES, "stride": AXES, "padding": AXES},
    "maxpool": {"size": AXES, "stride": AXES, "padding": AXES},
    "relu": {},
    "identity": {},
    "leaky_relu": {"negative_slope": NUMBERS},
    "tanh": {"input_std": NUMBERS},
    "sigmoid": {"input_std": NUMBERS},
    "activation": {"name": SCALARS, "gradient_factor": NUMBERS, "square_factor": NUMBERS},
    "dropout": {"p": NUMBERS},
    "batchnorm": {"scale": NUMBERS},
    "bogus": {"x": SCALARS},
}


def layer_docs(depth: int) -> Any:
    def one(name: str) -> Any:
        opts = OPTIONS[name]
        if not opts:
            return st.sampled_from([name, {name: {}}, {name: None}, {name: []}])
        return st.fixed_dictionaries({}, optional=opts).map(lambda o: {name: o})

    leaf = st.one_of(*(one(n) for n in OPTIONS), SCALARS)
    if depth == 0:
        return leaf
    sub = st.lists(layer_docs(depth - 1), max_size=3)
    blocks = st.one_of(
        st.fixed_dictionaries({"layers": sub}, optional={"shortcut": sub}).map(
            lambda o: {"residual": o}
        ),
        st.fixed_dictionaries({"branches": st.lists(sub, max_size=3)}).map(
            lambda o: {"parallel": o}
        ),
        st.fixed_dictionaries(
            {"layers": sub}, optional={"times": st.one_of(INTS, st.sampled_from([10**4, 10**9]))}
        ).map(lambda o: {"repeat": o}),
    )
    return st.one_of(leaf, leaf, blocks)


SMALL = st.integers(1, 4)
VALID_LAYERS = st.one_of(
    st.builds(
        lambda k, s: {"conv": {"kernel": k, "stride": s}},
        st.sampled_from(["1,2,1", "1,1", "2,1,1", "1/2,1/2"]),
        st.integers(1, 2),
    ),
    st.builds(lambda n, d: {"conv": {"size": n, "dilation": d}}, SMALL, st.integers(1, 3)),
    st.builds(lambda n: {"avgpool": {"size": n}}, st.integers(1, 3)),
    st.builds(lambda n: {"maxpool": {"size": n}}, st.integers(1, 3)),
    st.sampled_from(
        [
            "relu",
            "tanh",
            "sigmoid",
            "identity",
            "batchnorm",
            {"dropout": {"p": "1/3"}},
            {"leaky_relu": {"negative_slope": 0.1}},
            {"batchnorm": {"scale": -2}},
        ]
    ),
    st.builds(lambda n: {"residual": {"layers": [{"conv": {"size": n}}, "relu"]}}, SMALL),
    st.builds(
        lambda t: {"repeat": {"times": t, "layers": [{"conv": {"size": 3}}]}},
        st.sampled_from([1, 2, 50, 10_000]),
    ),
)
DOCS = st.one_of(
    st.fixed_dictionaries(
        {"layers": st.lists(layer_docs(2), max_size=5)},
        optional={"ndim": st.one_of(INTS, SCALARS), "name": SCALARS, "extra": SCALARS},
    ),
    st.lists(layer_docs(2), max_size=5),
    st.lists(
        st.one_of(VALID_LAYERS, VALID_LAYERS, VALID_LAYERS, layer_docs(1)), min_size=1, max_size=6
    ),
    st.lists(VALID_LAYERS, min_size=1, max_size=6),
    SCALARS,
)


def test_fuzz_parse_arch() -> None:
    """parse_arch: a Network or an ERFValueError/ERFTypeError, nothing else."""

    @FUZZ
    @given(DOCS)
    def inner(doc: Any) -> None:
        _parse_one(doc)

    inner()


def _parse_one(doc: Any) -> None:
    CASES["parse_arch"] += 1
    try:
        net = parse_arch(doc)
    except (ERFValueError, ERFTypeError) as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 2000
        return
    with erftheory.memory_limit("64MiB"):
        for kind in ("gradient", "expected_square"):
            try:
                net.moments(kind)
                net.table(kind)
            except (ERFValueError, ERFTypeError):
                pass


def _serialise(doc: Any, form: str) -> bytes:
    """A document as JSON or YAML text, or damaged: truncated, with aliases, or bytes."""
    import yaml

    if form == "json":
        return json.dumps(doc, default=str).encode()  # NaN / Infinity tokens included
    if form == "yaml":
        return yaml.safe_dump(doc, allow_unicode=True).encode()
    if form == "truncated":
        text = json.dumps(doc, default=str).encode()
        return text[: len(text) // 2]
    if form == "alias":
        return b"x: &x " + json.dumps(doc, default=str).encode() + b"\nlayers: [*x, *x]\n"
    return json.dumps(doc, default=str).encode("utf-16")  # not UTF-8


SERIALISED = st.tuples(DOCS, st.sampled_from(["json", "json", "yaml", "truncated", "alias", "u16"]))


def test_fuzz_arch_files(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("docs")
    count = [0]

    @FUZZ
    @given(SERIALISED, st.sampled_from([[], ["--json"], ["--kind", "expected_square", "--json"]]))
    def inner(case: tuple[Any, str], extra: list[str]) -> None:
        doc, form = case
        count[0] += 1
        suffix = ".yaml" if form in ("yaml", "alias") else ".json"
        path = d / f"doc{count[0]}{suffix}"
        path.write_bytes(_serialise(doc, form))
        check(["profile", "--arch", str(path), *extra], "arch files")

    inner()


# --------------------------------------------------------------------------- pinned cases
PINNED = [
    ["coefficients", "--kernel", "1,1", "--layers", "20000", "--json"],
    ["coefficients", "--kernel", "2", "--layers", "20000"],
    ["profile", "--kernel", "1", "--layers", "5", "--json"],
    ["profile", "--kernel", "1,1", "--layers", "0"],
    ["profile", "--kernel", "1,1", "--layers", "3", "--method", "symbolic", "--json"],
    ["profile", "--kernel", "1,1", "--layers", "3", "--memory-limit", "1e400"],
    ["profile", "--kernel", "1,1", "--layers", "3", "--memory-limit", "9" * 400 + "GiB"],
    ["profile", "--kernel", "1,1", "--layers", "3", "--plot", ""],
    ["profile", "--kernel", "1," + "9" * 200_000, "--layers", "2"],
    ["profile", "--kernel", "1,1", "--layers", "3", "--anchor", "9" * 5000],
    # found by this fuzz, fixed in _fft.py and _engines.py: float overflows
    ["profile", "--kernel", "1,-1,1", "--layers", "30000", "--method", "float"],
    ["profile", "--kernel", "1," + "9" * 400, "--layers", "1", "--method", "arb"],
    ["profile", "--arch", "{slope.json}", "--kind", "expected_square", "--method", "arb"],
]


@pytest.mark.parametrize("argv", PINNED, ids=lambda a: " ".join(a)[:60])
def test_pinned_cases(argv: list[str], files: dict[str, str]) -> None:
    check([files[a[1:-1]] if a.startswith("{") else a for a in argv], "pinned")


def test_zz_case_count(capsys: pytest.CaptureFixture[str]) -> None:
    """Report how many adversarial cases ran (the tests above run first, in file order)."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nfuzz cases: {dict(CASES)}, total {total}; outcomes {dict(OUTCOMES)}")
    if all(CASES[k] for k in ("argv", "valid argv", "arch files", "parse_arch")):  # all ran
        assert total >= 4 * FUZZ.max_examples
