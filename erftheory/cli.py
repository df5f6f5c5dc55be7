"""The ``erftheory`` command line.

Every failure that is the user's (a malformed kernel, a bad layer count, a size
the memory guard refuses, an output path that cannot be written, an invalid
architecture file) exits with status 2 and a short message on stderr: one line, or
argparse's usage line and one line; tracebacks are reserved for bugs. ``--plot`` is
checked (and probed) before any work; ``--memory-limit`` holds for the one command,
so `main` can run in-process. Exact values print in full, whatever their number of
digits, and ``--json`` is strict JSON (exact values as strings; an infinite or NaN
float as null). Where a profile has no Gaussian limit (zero variance: one tap, no
layers, only activations) the summary says so (``gaussian`` null and a ``note``)
instead of failing. ``docs/refusals.md`` lists every refusal.

``erftheory profile --arch FILE`` profiles a whole network described in JSON or YAML
(`erftheory.arch`). When its exact profile is above the memory limit, it still prints
the receptive field, the moments-based ERF standard deviation and the per-layer
table, writes one ``erftheory: note: ...`` line on stderr and exits with status 0;
with ``--plot`` the figure cannot be drawn, so that case exits with status 2 (after
the same output) and one ``erftheory: error: ...`` line.

``erftheory measure --torch SPEC --images DIR --out DIR`` measures a model's ERF on a
folder of images (`erftheory.torch.measure.measure`) and writes ``erf.npy``,
``erf_stderr.npy``, ``summary.json`` and ``erf.png``; every check that needs no
computation (the folders, the images' headers, the output folder, matplotlib) runs
before the model is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from ._config import memory_limit
from ._errors import ERFError, ERFValueError, SizeLimitError
from .arch import load_arch
from .kernel import Kernel, format_value
from .network import Network
from .profile import METHODS, Profile, profile

__all__ = ["main"]

_EPILOG_COEFFICIENTS = """examples:
  erftheory coefficients --kernel 1,1 --layers 6           # binomial row C(6, t)
  erftheory coefficients --kernel 1,2,1 --layers 5 --json
  erftheory coefficients --kernel "1,1,1;1,1,1;1,1,1" --layers 2
  erftheory coefficients --kernel 1/4,1/2,1/4 --layers 3
"""

_EPILOG_PROFILE = """examples:
  erftheory profile --kernel 1,1,1 --layers 20
  erftheory profile --kernel "1,1,1;1,1,1;1,1,1" --layers 20 --plot erf.png
  erftheory profile --kernel 1,2,1 --layers 100 --json
  erftheory profile --kernel "1,1,1;1,1,1;1,1,1" --layers 10 --plot erf.png --log
  erftheory profile --arch docs/examples/vgg16.json               # a network (JSON or YAML)
  erftheory profile --arch net.yaml --kind expected_square --json
  erftheory profile --torch torchvision:resnet18 --input 3,224,224   # a real model
  erftheory profile --torch timm:mobilenetv2_100 --weights variance --kind expected_square
  erftheory profile --torch my_model.py:build --json

architecture files (see docs/architectures.md):
  {"ndim": 2, "layers": [{"conv": {"size": 3, "stride": 2}}, "relu",
                         {"maxpool": {"size": 2}}, {"repeat": {"times": 3, "layers": [...]}}]}
  --arch prints the summary, then the RF size, jump and ERF std after each layer. When the
  exact profile is above the memory limit it prints the RF, the moments and the table, with
  a note on stderr, and exits 0 (2 with --plot, which needs the profile).
"""


_EPILOG_MEASURE = """examples:
  erftheory measure --torch torchvision:resnet50 --images photos/ --out erf-resnet50
  erftheory measure --torch timm:resnet18 --images photos/ --out out --device cuda --limit 500
  erftheory measure --torch my_model.py:build --images photos/ --transform none --out out --json
  erftheory measure --torch torchvision:resnet18 --images photos/ --input 3,449,449 --out out

writes into --out: erf.npy (the measured map, float64 H x W), erf_stderr.npy (its standard
error), summary.json (moments, Gaussian sigma_x, sigma_y and orientation with standard
errors, radial mass, the 20/30/50/99 % mass-share squares, the theory and the verdict) and
erf.png. Models have random weights (nothing is downloaded).

transforms (the model's own preprocessing):
  timm         timm.data.create_transform(**resolve_data_config({}, model=model))
  torchvision  the transforms() of a torchvision model's default weights; otherwise the
               standard ImageNet eval transform (resize 256, centre crop 224, normalise)
  none         to [0, 1] only (all images must have one size)
  auto         timm for timm models, torchvision otherwise (default)
The theory (from_torch with the model's weight variances, kind expected_square) needs its
receptive field inside the image for a verdict: ResNets need --input 3,449,449 or so.
"""


_EPILOG_VERIFY = """examples:
  erftheory verify            # one line per proof: verdict, time, name, statement
  erftheory verify --json     # a JSON list of {name, statement, passed, seconds}
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage and a one-line error, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            2,
            f"usage: {self.format_usage().split(':', 1)[1].strip()}\n"
            f"{self.prog}: error: {_printable(_one_line(message))}\n",
        )


def _layers(text: str) -> int:
    if not re.fullmatch(r"\s*\d{1,18}\s*", text):
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer (0, 1, 2, ...), got {text!r}"
        )
    return int(text)


def _positive(text: str) -> int:
    if not re.fullmatch(r"\s*\d{1,6}\s*", text) or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _anchor(text: str) -> Any:
    parts = [p.strip() for p in text.split(",")]
    if not (1 <= len(parts) <= 2) or not all(re.fullmatch(r"\d{1,9}", p) for p in parts):
        raise argparse.ArgumentTypeError(f"must be an int or 'row,col', got {text!r}")
    values = [int(p) for p in parts]
    return values[0] if len(values) == 1 else tuple(values)


def _common(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--kernel",
        required=required,
        metavar="W",
        help="weights separated by commas; rows of a 2-D kernel separated by ';' "
        "(ints, fractions such as 1/4, decimals such as 0.25)",
    )
    p.add_argument(
        "--layers", required=required, type=_layers, metavar="N", help="number of layers n ≥ 0"
    )
    p.add_argument(
        "--anchor",
        type=_anchor,
        metavar="A",
        help="tap over the output unit ('a' or 'row,col'); default (k-1)//2 per axis",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="refuse results estimated above SIZE (default 2GiB; e.g. 512MiB, 8GiB)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = _Parser(
        prog="erftheory",
        description="Exact effective receptive fields of deep CNNs (Luo et al., NIPS 2016).",
        usage="erftheory [-h] [--version] {coefficients,profile,verify,reproduce,measure} ...",
    )
    parser.add_argument("--version", action="version", version=f"erftheory {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        metavar="{coefficients,profile,verify,reproduce,measure}",
        parser_class=_Parser,
    )
    c = sub.add_parser(
        "coefficients",
        prog="erftheory coefficients",
        help="print the exact ERF coefficients o(t) of n stacked layers (Eq. 9)",
        description="Print the exact coefficients of (sum_m w(m) z^m)^n, the ERF of n stacked "
        "layers (Eq. 9), one per line (rows of a 2-D profile on one line each).",
        epilog=_EPILOG_COEFFICIENTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="erftheory coefficients --kernel W --layers N [--anchor A] [--json]",
    )
    _common(c)
    p = sub.add_parser(
        "profile",
        prog="erftheory profile",
        help="summarise an ERF: moments, ERF sizes, RF size, distance to the Gaussian",
        description="Summarise the ERF of n stacked layers (--kernel, --layers) or of a network "
        "described in a file (--arch): mean and variance (Eq. 10), the one-sigma radius, the "
        "Fig. 2 size, centred-mass sizes, the theoretical RF, the ERF/RF ratio and the "
        "distance to the Gaussian limit; for a network also the RF, jump and ERF std after "
        "each layer.",
        epilog=_EPILOG_PROFILE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="erftheory profile (--kernel W --layers N [--anchor A] | --arch FILE | --torch "
        "SPEC [--input C,H,W]) [--kind K] [--method M] [--json] [--plot FILE] [--log]",
    )
    _common(p, required=False)
    p.add_argument(
        "--arch",
        metavar="FILE",
        help="a network described in JSON (or YAML: .yaml/.yml) instead of --kernel/--layers; "
        "see docs/architectures.md",
    )
    p.add_argument(
        "--torch",
        metavar="SPEC",
        help="a PyTorch model instead of --kernel/--layers: torchvision:NAME, timm:NAME or "
        "path/to/file.py:FACTORY (random weights; needs the 'models' extra for torchvision "
        "and timm)",
    )
    p.add_argument(
        "--input",
        type=_input_shape,
        metavar="C,H,W",
        help="with --torch: the input shape (default: the model's, usually 3,224,224)",
    )
    p.add_argument(
        "--weights",
        choices=("ones", "variance", "model"),
        help="with --torch: what a convolution becomes (see from_torch; default ones)",
    )
    p.add_argument(
        "--kind",
        choices=("gradient", "expected_square"),
        help="with --arch or --torch: 'gradient' (fixed weights, the default) or 'expected_square' "
        "(zero-mean random weights whose per-tap variances are the kernels)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="engine for the profile (default auto; see docs/engines.md)",
    )
    p.add_argument(
        "--dps", type=_positive, metavar="D", help="decimal digits of --method arb (default 30)"
    )
    p.add_argument("--plot", metavar="FILE", help="save a figure (.png, .pdf or .svg)")
    p.add_argument("--log", action="store_true", help="logarithmic scale in the plot")
    p.set_defaults(subparser=p)
    v = sub.add_parser(
        "verify",
        prog="erftheory verify",
        help="run the proof of every equation and claim of the paper",
        description="Run every proof in erftheory.proofs (symbolic derivation, then exact "
        "spot checks) and print one line each; exit 1 if any fails.",
        epilog=_EPILOG_VERIFY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="erftheory verify [--json]",
    )
    v.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {name, statement, passed, seconds}",
    )
    r = sub.add_parser(
        "reproduce",
        prog="erftheory reproduce",
        help="rerun the paper's experiments (Sections 3 and 4): figures and a results table",
        description="Regenerate the paper's Section 3.1 and 3.2 experiments and the Section 4 "
        "initialisation as PNG figures, results.json and results.md in --out, each figure "
        "showing the exact theory next to the measurement. Needs the 'reproduce' extra "
        "(torch, matplotlib, scikit-learn). About 100 s of CPU time on one thread; --quick "
        "makes every figure at reduced size in about 10 s.",
        usage="erftheory reproduce [--out DIR] [--quick] [--device DEV] [--seed N]",
    )
    r.add_argument("--out", default="erf-results", metavar="DIR", help="output directory")
    r.add_argument("--quick", action="store_true", help="every figure at reduced size")
    r.add_argument("--device", default="cpu", metavar="DEV", help="'cpu' (default) or 'cuda'")
    r.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default 0)")
    _measure_parser(sub)
    return parser


def _measure_parser(sub: Any) -> None:
    """The ``measure`` subcommand's arguments."""
    m = sub.add_parser(
        "measure",
        prog="erftheory measure",
        help="measure a model's ERF on a folder of images: map, summary, figure, verdict",
        description="Measure the ERF of a PyTorch model (random weights) on the images of a "
        "folder, preprocessed the model's own way, by back-propagating from the centre unit "
        "of its last feature map (Section 3); write the map, a JSON summary and a figure, "
        "with the theory (from_torch) beside it and compare's verdict where the model is "
        "accepted. Needs the 'torch' extra and Pillow ('models' for torchvision and timm "
        "models, 'plot' for the figure).",
        epilog=_EPILOG_MEASURE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="erftheory measure --torch SPEC --images DIR --out DIR [--transform T] "
        "[--input C,H,W] [--batch-size B] [--device DEV] [--dtype D] [--limit N] "
        "[--recursive] [--statistic S] [--seed N] [--no-theory] [--no-progress] [--json]",
    )
    m.add_argument(
        "--torch",
        required=True,
        metavar="SPEC",
        help="torchvision:NAME, timm:NAME or path/to/file.py:FACTORY (random weights)",
    )
    m.add_argument("--images", required=True, metavar="DIR", help="the folder of images")
    m.add_argument("--out", required=True, metavar="DIR", help="the output folder (created)")
    m.add_argument(
        "--transform",
        choices=("auto", "timm", "torchvision", "none"),
        default="auto",
        help="the preprocessing (default auto; see below)",
    )
    m.add_argument(
        "--input",
        type=_input_shape,
        metavar="C,H,W",
        help="crop the images to H x W (C: 3 for RGB, 1 for grey; default: the transform's)",
    )
    m.add_argument(
        "--batch-size",
        type=_batch_size,
        default="auto",
        metavar="B",
        help="images per backward pass (default auto: from the memory one image needs)",
    )
    m.add_argument("--device", default="cpu", metavar="DEV", help="'cpu' (default), 'cuda:N'")
    m.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="the model's precision (default float32; sums are float64)",
    )
    m.add_argument("--limit", type=_positive, metavar="N", help="at most N images (sorted)")
    m.add_argument("--recursive", action="store_true", help="also read sub-folders")
    m.add_argument(
        "--statistic",
        choices=("mean_square", "mean_abs", "relu", "mean"),
        default="mean_square",
        help="of the input gradient (default mean_square, the one with a theory)",
    )
    m.add_argument(
        "--seed", type=_seed, default=0, metavar="N", help="seed of the random weights (default 0)"
    )
    m.add_argument("--no-theory", action="store_true", help="skip the theory and the verdict")
    m.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    m.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _batch_size(text: str) -> int | str:
    if text.strip() == "auto":
        return "auto"
    return _positive(text)


def _input_shape(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not 2 <= len(parts) <= 3 or not all(re.fullmatch(r"[0-9]{1,6}", s.strip()) for s in parts):
        raise argparse.ArgumentTypeError(
            f"expected C,L or C,H,W (positive integers), got {_clip(text)!r}"
        )
    shape = tuple(int(s) for s in parts)
    if min(shape) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1, got {_clip(text)!r}")
    return shape


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**63), got {text!r}")
    return value


def _reproduce(args: argparse.Namespace) -> int:
    missing = [m for m in ("torch", "matplotlib", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        _fail(
            f"reproduce needs {', '.join(missing)}: pip install 'erftheory[reproduce]' "
            f"torch==2.13.0"
        )
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        _fail(f"--device {args.device!r}: use 'cpu', 'cuda' or 'cuda:N'")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        _fail(f"--out {args.out!r} exists and is not a directory")
    if not out.parent.is_dir() and str(out.parent):
        _fail(f"--out {args.out!r}: the directory {str(out.parent)!r} does not exist")
    from .torch.reproduce import reproduce

    results = reproduce(out, quick=args.quick, device=args.device, seed=args.seed)
    s = results["fig2"]["slopes"]
    sys.stdout.write(
        f"wrote the figures, results.json and results.md to {out} in "
        f"{results['seconds']['total']} s\n"
        f"Fig. 2 slopes (log-log): ERF size theory {s['theory_size']}, experiment "
        f"{s['experiment_size']} (paper 0.56); ERF/RF theory {s['theory_ratio']}, experiment "
        f"{s['experiment_ratio']} (paper -0.43)\n"
    )
    return 0


def _measure(args: argparse.Namespace) -> int:
    """``erftheory measure``: `erftheory.torch.measure.measure`, then a short report."""
    if importlib.util.find_spec("torch") is None:
        _fail("measure needs torch, which is not installed: pip install 'erftheory[torch]'")
    from .torch.measure import measure

    result = measure(
        args.torch,
        args.images,
        out=args.out,
        transform=args.transform,
        input_shape=args.input,
        statistic=args.statistic,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        limit=args.limit,
        recursive=args.recursive,
        progress=False if args.no_progress else sys.stderr.isatty(),
        theory=not args.no_theory,
        seed=args.seed,
    )
    s = result.summary
    if args.json:
        sys.stdout.write(_json(s) + "\n")
        return 0
    g = s["gaussian"]
    shares = ", ".join(f"{d['share'] * 100:g}%: {d['side']}" for d in s["mass_shares"] or [])
    lines = [
        f"model             {_printable(s['model'])}   (measured: {s['measured']})",
        f"images            {s['count']} from {_printable(str(args.images))}   (transform "
        f"{s['transform']['name']}: {s['transform']['source']}, input "
        f"{'×'.join(map(str, s['input_shape']))})",
        f"statistic         {s['statistic']}   (origin {tuple(s['origin'])}, "
        f"{s['origin_source']}; {s['nonfinite']} non-finite)",
    ]
    if g is not None:
        lines.append(
            f"Gaussian          σx {_pm(g['sigma_x'], g['sigma_x_stderr'])}, σy "
            f"{_pm(g['sigma_y'], g['sigma_y_stderr'])} px, orientation "
            f"{_pm(g['orientation_deg'], g['orientation_deg_stderr'])}°   (R² "
            f"{_num(g['r_squared'], '.3g')})"
        )
    lines.append(f"mass shares       {shares or '-'}   (side of the square about the origin, px)")
    t, c = s["theory"], s["comparison"]
    if t is not None:
        tg = t.get("gaussian") or {}
        lines.append(
            f"theory            expected_square, {t['weights']} weights: RF "
            f"{'×'.join(map(str, t['rf_size']))}, σx {_num(tg.get('sigma_x'), '.4g')}, σy "
            f"{_num(tg.get('sigma_y'), '.4g')} px"
        )
    if c is not None:
        lines.append(
            f"verdict           {c['verdict']} at {c['confidence']:g}   (max |z| "
            f"{c['max_abs_z']:.3g}, critical {_num(c['critical_z'], '.3g')}; total variation "
            f"{_num(c['tv_distance'], '.3g')})"
        )
    for note in s["notes"]:
        lines.append(f"note              {_one_line(note)}")
    written = ", ".join(str(p) for p in result.files.values())
    lines.append(f"wrote             {_printable(written)}   ({s['seconds']['total']:.3g} s)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _pm(value: Any, stderr: Any) -> str:
    """``value ± stderr`` (4 and 2 significant digits; ``-`` for a missing value)."""
    if value is None:
        return "-"
    return f"{value:.4g}" + ("" if stderr is None else f" ± {stderr:.2g}")


_MAX_MESSAGE = 2000


def _one_line(message: str) -> str:
    """A message on one line, clipped (values quoted in it may be megabytes long)."""
    text = " ".join(message.splitlines())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"erftheory: error: {_printable(_one_line(message))}\n")
    raise SystemExit(2)


def _check_output(path: str) -> Path:
    """Check that ``--plot`` names a new or writable regular file, before any work.

    The parent directory must exist, and the file is probed: created (exclusively)
    and removed again when it does not exist yet, so every reason the system would
    give later (a name too long, a read-only or special file system, a missing
    permission) is reported now, with nothing computed and nothing left behind.
    """
    shown = _clip(path)
    if path.strip() == "":
        _fail(f"--plot {shown}: the file name is empty; give a name ending in .png, .pdf or .svg")
    if "\0" in path:
        _fail(f"--plot {shown}: not a valid file name (it holds a NUL byte)")
    if path.endswith(("/", os.sep)):
        _fail(f"--plot {shown} ends in {path[-1]!r}: name a file, not a directory")
    out = Path(path)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        _fail(f"--plot {shown}: the file name must end in .png, .pdf or .svg")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        if parent.exists() and not parent.is_dir():
            _fail(
                f"--plot {shown}: the directory {_clip(str(parent))} does not exist (it is a file)"
            )
        if not parent.is_dir():
            _fail(f"--plot {shown}: the directory {_clip(str(parent))} does not exist")
        try:
            st = os.stat(out)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                _fail(f"--plot {shown} is a directory")
            if not stat.S_ISREG(st.st_mode):
                _fail(f"--plot {shown} exists and is not a regular file (a FIFO or a device)")
            if not os.access(out, os.W_OK):
                _fail(f"--plot {shown}: the file cannot be written (permission denied)")
        else:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            os.unlink(out)
    except OSError as exc:
        _fail(f"--plot {shown}: the file cannot be written ({exc.strerror or exc})")
    return out


def _clip(text: str, width: int = 80) -> str:
    """``repr(text)`` clipped for a message (arguments can be megabytes long)."""
    r = repr(text[: width + 1])
    return r if len(r) <= width else r[: width - 2] + "…'"


_MAX_ARG = 131072
"""The longest ``--kernel`` text: Linux's limit on one argument (MAX_ARG_STRLEN)."""


def _text(x: Any) -> str:
    """A value as text: floats to 6 digits, exact numbers in full (any number of digits)."""
    if isinstance(x, float):
        return f"{x:.6g}"
    return format_value(x)


def _json(doc: Any) -> str:
    """``json.dumps`` that always writes valid JSON.

    Non-finite floats (which ``json.dumps`` would write as ``Infinity`` or ``NaN``,
    which are not JSON) become null; ints too long for Python's ``int`` ↔ ``str`` limit
    become strings of their digits, like the other exact values.
    """

    def clean(x: Any) -> Any:
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > 14_000:
            return format_value(x)
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(doc), allow_nan=False)


def _coefficients(args: argparse.Namespace, prof: Profile) -> None:
    coeffs = prof.coefficients
    if args.json:
        doc = {
            "coefficients": [_text(c) for c in coeffs]
            if prof.ndim == 1
            else [[_text(c) for c in row] for row in coeffs],
            "origin": prof.origin if prof.ndim == 1 else list(prof.origin),
            "mean": _text(prof.mean) if prof.ndim == 1 else [_text(m) for m in prof.mean],
            "variance": _text(prof.variance)
            if prof.ndim == 1
            else [_text(v) for v in prof.variance],
        }
        if prof.ndim == 2:
            doc["covariance"] = [[_text(c) for c in row] for row in prof.covariance]
        sys.stdout.write(_json(doc) + "\n")
        return
    out = sys.stdout
    if prof.ndim == 1:
        for c in coeffs:
            out.write(f"{_text(c)}\n")
    else:
        for row in coeffs:
            out.write(" ".join(_text(c) for c in row) + "\n")


def _plot_target(args: argparse.Namespace) -> Path | None:
    """Check ``--plot`` (path and matplotlib) before any work is done."""
    if args.plot is None:
        return None
    plot_path = _check_output(args.plot)
    from .plotting import require_matplotlib

    require_matplotlib()
    return plot_path


def _summary(args: argparse.Namespace, prof: Profile, plot_path: Path | None) -> dict[str, Any]:
    """`Profile.summary`, after drawing the figure when ``--plot`` asks for one.

    Where the profile has no Gaussian limit (``gaussian`` is None) a ``note`` says why.
    """
    summary = prof.summary()
    if summary.get("gaussian") is None and "note" not in summary:
        summary["note"] = _no_gaussian_note(prof)
    if plot_path is not None:
        from .plotting import plot_profile

        try:
            plot_profile(prof, plot_path, log=args.log)
        except OSError as exc:
            _fail(f"--plot {args.plot!r}: the file cannot be written ({exc.strerror or exc})")
        summary["plot"] = str(plot_path)
    return summary


def _no_gaussian_note(prof: Profile) -> str:
    """Why a profile has no Gaussian limit (its summary's ``gaussian`` is None)."""
    if prof.kernel.domain == "symbolic":
        return "the kernel is symbolic: the ERF sizes and the Gaussian distance need numbers"
    variances = (prof.variance,) if prof.ndim == 1 else prof.variance
    if any(v < 0 for v in variances):
        return (
            "the variance is negative (negative weights): the normalised profile is not a "
            "distribution, so it has no standard deviation and no Gaussian limit"
        )
    if any(v == 0 for v in variances):
        return (
            "the variance is 0 (a single tap, or no layers): the ERF is one pixel and has no "
            "Gaussian limit"
        )
    if any(float(v) == 0 for v in variances):
        return (
            "the variance is below the smallest float (about 1e-308): the ERF is one pixel "
            "up to rounding and no Gaussian can be drawn"
        )
    return "the covariance is singular (the ERF lies on a line): there is no 2-D Gaussian limit"


def _num(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _summary_lines(
    prof: Profile,
    summary: dict[str, Any],
    mean_note: str = "pixels from the output unit, Eq. 10",
    rf_note: str = "theoretical: n(k-1)+1",
) -> list[str]:
    """The lines of the text summary from ``mean`` to the Gaussian distance.

    Parts the profile does not have (None in the summary) print as ``-``; the
    Gaussian line then says why there is none.
    """
    g = summary["gaussian"]
    std = summary["std"]
    mass = ", ".join(
        f"{float(f) * 100:g}%: {_show(v)}" for f, v in (summary["mass_size"] or {}).items()
    )
    if g is None:
        gauss = f"none   ({summary.get('note') or _no_gaussian_note(prof)})"
    else:
        gauss = f"max |Δ| {g['max_abs_diff']:.3g}, total variation {g['total_variation']:.3g}" + (
            f", Kolmogorov {g['kolmogorov']:.3g}" if g["kolmogorov"] is not None else ""
        )
    lines = [
        f"mean              {_show(summary['mean'])}   ({mean_note})",
        f"variance          {_show(summary['variance'])}",
        f"std (1σ radius)   {_show(std)}   (the paper's ERF size, Section 2.3)",
        f"RF size           {_show(summary['rf_size'])}   ({rf_note})",
        f"ERF size, Fig. 2  {_num(summary['threshold_size'], '.6g')}   (pixels above 0.0455 × "
        f"centre{'; square root of the count' if prof.ndim == 2 else ''})",
        f"ERF size, mass    {mass or '-'}   (centred square side)",
        f"ERF/RF ratio      {_num(summary['erf_ratio'], '.6g')} (Fig. 2 size)   "
        f"{_num(summary['erf_ratio_std'], '.6g')} (1σ radius)",
        f"Gaussian distance {gauss}",
    ]
    if "plot" in summary:
        lines.append(f"plot              {summary['plot']}")
    return lines


def _profile(args: argparse.Namespace, prof: Profile, plot_path: Path | None) -> None:
    summary = _summary(args, prof, plot_path)
    if args.json:
        sys.stdout.write(_json(summary) + "\n")
        return
    lines = [
        f"kernel            {prof.kernel!r} ({prof.kernel.domain}, anchor {prof.kernel.anchor})",
        f"layers            {prof.layers}   (engine: {prof.method})",
        *_summary_lines(prof, summary),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------ --arch
def _table(net: Network, kind: str) -> tuple[list[dict[str, Any]], str]:
    """The per-layer rows (as JSON values) and their text."""
    rows = [
        {
            "index": r.index,
            "layer": r.layer,
            "rf_size": _listed(r.rf_size),
            "jump": _listed(r.jump),
            "std": _listed(r.std),
        }
        for r in net.table(kind)
    ]
    return rows, net.format_table(kind)


def _listed(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


def _exact(x: Any) -> Any:
    """An exact value as JSON text ('3/2'), or a float when its digits would be too many."""
    if isinstance(x, (list, tuple)):
        return [_exact(v) for v in x]
    if x is None or isinstance(x, float):
        return x
    f = Fraction(x)
    if max(abs(f.numerator), f.denominator).bit_length() > 256:
        return _approx(f)
    return format_value(f)


def _approx(f: Fraction) -> float | str:
    """``f`` as a float, or as text such as ``'1.23457e+400'`` beyond float range."""
    try:
        x = f.numerator / f.denominator  # correctly rounded; OverflowError past 1.8e308
        if x != 0 or f == 0:
            return x
    except OverflowError:
        pass
    a = abs(f)
    e = int((math.log2(a.numerator) - math.log2(a.denominator)) * math.log10(2))
    m = float(a / Fraction(10) ** e)  # within a factor 10 of [1, 10): a float
    while m >= 10:
        m, e = m / 10, e + 1
    while m < 1:
        m, e = m * 10, e - 1
    return f"{'-' if f < 0 else ''}{m:.6g}e{e:+d}"


def _arch(args: argparse.Namespace, kind: str) -> int:
    plot_path = _plot_target(args)
    net = load_arch(args.arch)
    head = f"architecture      {_printable(args.arch)}   ({len(net)} layers, {net.ndim}-D)"
    return _network(args, net, kind, head, plot_path, {"arch": args.arch})


def _torch(args: argparse.Namespace, kind: str) -> int:
    """``--torch SPEC``: load the model, trace it with `from_torch`, print as ``--arch``."""
    plot_path = _plot_target(args)
    from .torch.models import default_input_shape, load_model
    from .torch.trace import from_torch

    model = load_model(args.torch)
    shape = args.input or default_input_shape(model)
    net = from_torch(model, shape, weights=args.weights or "ones")
    head = (
        f"model             {_printable(args.torch)}   (input {'×'.join(map(str, shape))}; "
        f"{len(net)} layers, {net.ndim}-D)"
    )
    source = {"torch": args.torch, "input": list(shape), "weights": args.weights or "ones"}
    return _network(args, net, kind, head, plot_path, source)


def _network(
    args: argparse.Namespace,
    net: Network,
    kind: str,
    head: str,
    plot_path: Path | None,
    source: dict[str, Any],
) -> int:
    """Print (or ``--json``) a network's summary and per-layer table."""
    rf = net.receptive_field
    try:
        prof = net.profile(kind, method=args.method, dps=args.dps)
        summary = _summary(args, prof, plot_path)
    except SizeLimitError as exc:
        return _arch_too_large(args, net, kind, head, exc, source)
    try:
        rows, table = _table(net, kind)
    except SizeLimitError as exc:  # the profile took the float route; the table is exact
        rows, table = None, f"per-layer table: not computed ({exc})"
    if args.json:
        doc = {**source, **summary, "table": rows}
        if rows is None:
            doc["table_note"] = table
        sys.stdout.write(_json(doc) + "\n")
        return 0
    lines = [
        head,
        f"kind              {kind}   (engine: {prof.method})",
        *_summary_lines(
            prof,
            summary,
            mean_note="pixels from the RF's centre, Eq. 10",
            rf_note=f"theoretical; jump {_show(_listed(rf.jump))}, "
            f"offset {_show(_listed(rf.offset))}",
        ),
        "",
        table,
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _arch_too_large(
    args: argparse.Namespace,
    net: Network,
    kind: str,
    head: str,
    exc: SizeLimitError,
    source: dict[str, Any],
) -> int:
    """RF, moments and table of a network whose exact profile is above the memory limit."""
    rf = net.receptive_field
    _, mean, cov = net.moments(kind)
    std = net.std(kind)
    variance = None if cov is None else (cov if net.ndim == 1 else [cov[0][0], cov[1][1]])
    rows, table = _table(net, kind)
    if args.json:
        doc: dict[str, Any] = {
            **source,
            "network": repr(net),
            "kind": kind,
            "profile": None,
            "note": f"the exact profile is too large: {exc}",
            "rf_size": _listed(rf.size),
            "jump": _listed(rf.jump),
            "offset": _listed(rf.offset),
            "mean": _exact(mean),
            "variance": _exact(variance),
            "std": _listed(std),
            "table": rows,
        }
        if net.ndim == 2 and cov is not None:
            doc["covariance"] = _exact(cov)
        sys.stdout.write(_json(doc) + "\n")
    else:
        lines = [
            head,
            f"kind              {kind}   (exact profile skipped: above the memory limit)",
            f"mean              {_show(_exact(mean))}   (pixels from the RF's centre; moments "
            f"of the transfer polynomial, exact)",
            f"variance          {_show(_exact(variance))}",
            f"std (1σ radius)   {_show(_listed(std))}   (the paper's ERF size, Section 2.3)",
            f"RF size           {_show(_listed(rf.size))}   (theoretical; jump "
            f"{_show(_listed(rf.jump))}, offset {_show(_listed(rf.offset))})",
            "",
            table,
        ]
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    if args.plot:
        _fail(f"--plot {args.plot!r}: the exact profile is too large to plot ({exc})")
    sys.stderr.write(
        f"erftheory: note: the exact profile is too large ({exc}); printed the RF, the "
        f"moments-based std and the per-layer table instead\n"
    )
    return 0


def _show(x: Any) -> str:
    if isinstance(x, list):
        return "(" + ", ".join(_show(v) for v in x) + ")"
    if x is None:
        return "-"
    if isinstance(x, (float, str)):
        return f"{x:.6g}" if isinstance(x, float) else x
    return format_value(x)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "verify":
        from .verify import run_all

        return run_all(json=args.json)
    if args.command == "reproduce":
        try:
            return _reproduce(args)
        except ERFValueError as exc:
            _fail(str(exc))
    if args.command == "measure":
        try:
            return _measure(args)
        except ERFError as exc:  # every refusal: folders, images, model, dependencies
            _fail(str(exc))
        except BrokenPipeError:
            sys.stderr.close()
            return 0
        except KeyboardInterrupt:
            sys.stderr.write("erftheory: interrupted\n")
            return 130
    arch = getattr(args, "arch", None)
    model = getattr(args, "torch", None)
    if args.command == "profile":
        sub: argparse.ArgumentParser = args.subparser
        if arch is not None and model is not None:
            sub.error("argument --torch: not allowed with --arch; give one network")
        for name, value in (("--input", args.input), ("--weights", args.weights)):
            if value is not None and model is None:
                sub.error(f"argument {name}: only with --torch")
        if model is not None:
            arch, network_flag = model, "--torch"
        else:
            network_flag = "--arch"
        given = [
            name
            for name, value in (
                ("--kernel", args.kernel),
                ("--layers", args.layers),
                ("--anchor", args.anchor),
            )
            if value is not None
        ]
        if arch is not None and given:
            sub.error(
                f"argument {network_flag}: not allowed with {'/'.join(given)}; give either a "
                f"kernel and a layer count or a network ({network_flag})"
            )
        if arch is None:
            missing = [
                n for n, v in (("--kernel", args.kernel), ("--layers", args.layers)) if v is None
            ]
            if missing:
                sub.error(
                    f"the following arguments are required: {', '.join(missing)} "
                    f"(or give --arch FILE or --torch SPEC)"
                )
            if args.kind is not None:
                sub.error(
                    "argument --kind: only with --arch or --torch (a single kernel's profile "
                    "is the same for both kinds)"
                )
        if args.dps is not None and args.method != "arb":
            sub.error(f"argument --dps: only with --method arb, not --method {args.method}")
    try:
        with _scoped_limit(args.memory_limit):
            if model is not None:
                return _torch(args, args.kind or "gradient")
            if arch is not None:
                return _arch(args, args.kind or "gradient")
            return _kernel_command(args)
    except ERFError as exc:  # every refusal: value, type, size, missing dependency
        _fail(str(exc))
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except MemoryError:
        _fail(
            "out of memory: the result does not fit this machine; lower --memory-limit so "
            "that erftheory refuses it before allocating"
        )
    except UnicodeEncodeError as exc:
        _fail(
            f"the output cannot be written in the terminal's encoding ({exc.encoding}); set "
            f"PYTHONIOENCODING=utf-8"
        )
    except KeyboardInterrupt:
        sys.stderr.write("erftheory: interrupted\n")
        return 130


@contextlib.contextmanager
def _scoped_limit(limit: str | None) -> Iterator[None]:
    """``--memory-limit`` for this command only (``main`` may run in-process)."""
    with contextlib.ExitStack() as stack:
        if limit is not None:
            try:
                stack.enter_context(memory_limit(limit))
            except ERFValueError as exc:  # "memory limit '1e400' is not a size; ..."
                _fail(f"--{exc}".replace("--memory limit", "--memory-limit", 1))
        yield


def _kernel_command(args: argparse.Namespace) -> int:
    """``coefficients`` or ``profile`` with ``--kernel`` and ``--layers``."""
    if len(args.kernel) > _MAX_ARG:
        _fail(
            f"--kernel: the text has {len(args.kernel)} characters, more than {_MAX_ARG} (the "
            f"longest argument Linux passes); write the weights in an --arch file"
        )
    plot_path = None
    if args.command == "profile":
        plot_path = _plot_target(args)  # before any work
    try:
        kernel = Kernel.parse(args.kernel, anchor=args.anchor)
    except ERFError as exc:
        _fail(f"--kernel {_clip(args.kernel)}: {exc}")
    if args.command == "coefficients":
        _coefficients(args, profile(kernel, layers=args.layers))
    else:
        prof = profile(kernel, layers=args.layers, method=args.method, dps=args.dps)
        _profile(args, prof, plot_path)
    return 0


def _printable(text: str) -> str:
    """A path as given, with what the terminal cannot show (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
