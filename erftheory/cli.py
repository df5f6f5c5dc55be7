"""The ``erftheory`` command line.

Every failure that is the user's (a malformed kernel, a bad layer count, a size
the memory guard refuses, an output path that cannot be written) exits with
status 2 and a short message on stderr; tracebacks are reserved for bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from ._config import set_memory_limit
from ._errors import ERFTypeError, ERFValueError
from .kernel import Kernel
from .profile import Profile, profile

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
            f"{self.prog}: error: {message}\n",
        )


def _layers(text: str) -> int:
    if not re.fullmatch(r"\s*\d{1,18}\s*", text):
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer (0, 1, 2, ...), got {text!r}"
        )
    return int(text)


def _anchor(text: str) -> Any:
    parts = [p.strip() for p in text.split(",")]
    if not (1 <= len(parts) <= 2) or not all(re.fullmatch(r"\d{1,9}", p) for p in parts):
        raise argparse.ArgumentTypeError(f"must be an int or 'row,col', got {text!r}")
    values = [int(p) for p in parts]
    return values[0] if len(values) == 1 else tuple(values)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kernel",
        required=True,
        metavar="W",
        help="weights separated by commas; rows of a 2-D kernel separated by ';' "
        "(ints, fractions such as 1/4, decimals such as 0.25)",
    )
    p.add_argument(
        "--layers", required=True, type=_layers, metavar="N", help="number of layers n ≥ 0"
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
        usage="erftheory [-h] [--version] {coefficients,profile,verify} ...",
    )
    parser.add_argument("--version", action="version", version=f"erftheory {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="{coefficients,profile,verify}", parser_class=_Parser
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
        description="Summarise the ERF of n stacked layers: mean and variance (Eq. 10), the "
        "one-sigma radius, the Fig. 2 size, centred-mass sizes, the theoretical RF, "
        "the ERF/RF ratio and the distance to the Gaussian limit.",
        epilog=_EPILOG_PROFILE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="erftheory profile --kernel W --layers N [--anchor A] [--json] [--plot FILE] [--log]",
    )
    _common(p)
    p.add_argument("--plot", metavar="FILE", help="save a figure (.png, .pdf or .svg)")
    p.add_argument("--log", action="store_true", help="logarithmic scale in the plot")
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
    return parser


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"erftheory: error: {message}\n")
    raise SystemExit(2)


def _check_output(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        _fail(f"--plot {path!r}: the file name must end in .png, .pdf or .svg")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"--plot {path!r}: the directory {str(parent)!r} does not exist")
    if (out.exists() and not os.access(out, os.W_OK)) or not os.access(parent, os.W_OK):
        _fail(f"--plot {path!r}: the file cannot be written (permission denied)")
    if out.is_dir():
        _fail(f"--plot {path!r} is a directory")
    return out


def _text(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


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
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    out = sys.stdout
    if prof.ndim == 1:
        for c in coeffs:
            out.write(f"{_text(c)}\n")
    else:
        for row in coeffs:
            out.write(" ".join(_text(c) for c in row) + "\n")


def _profile(args: argparse.Namespace, prof: Profile) -> None:
    plot_path = _check_output(args.plot) if args.plot else None
    if plot_path is not None:
        from .plotting import require_matplotlib

        require_matplotlib()
    summary = prof.summary()
    if plot_path is not None:
        from .plotting import plot_profile

        try:
            plot_profile(prof, plot_path, log=args.log)
        except OSError as exc:
            _fail(f"--plot {args.plot!r}: the file cannot be written ({exc.strerror or exc})")
        summary["plot"] = str(plot_path)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    g = summary["gaussian"]
    std = summary["std"]
    mass = ", ".join(f"{float(f) * 100:g}%: {v}" for f, v in summary["mass_size"].items())
    lines = [
        f"kernel            {prof.kernel!r} ({prof.kernel.domain}, anchor {prof.kernel.anchor})",
        f"layers            {prof.layers}   (engine: {prof.method})",
        f"mean              {_show(summary['mean'])}   (pixels from the output unit, Eq. 10)",
        f"variance          {_show(summary['variance'])}",
        f"std (1σ radius)   {_show(std)}   (the paper's ERF size, Section 2.3)",
        f"RF size           {_show(summary['rf_size'])}   (theoretical: n(k-1)+1)",
        f"ERF size, Fig. 2  {summary['threshold_size']:.6g}   (pixels above 0.0455 × centre"
        f"{'; square root of the count' if prof.ndim == 2 else ''})",
        f"ERF size, mass    {mass}   (centred square side)",
        f"ERF/RF ratio      {summary['erf_ratio']:.6g} (Fig. 2 size)   "
        f"{summary['erf_ratio_std']:.6g} (1σ radius)",
        f"Gaussian distance max |Δ| {g['max_abs_diff']:.3g}, total variation "
        f"{g['total_variation']:.3g}"
        + (f", Kolmogorov {g['kolmogorov']:.3g}" if g["kolmogorov"] is not None else ""),
    ]
    if plot_path is not None:
        lines.append(f"plot              {plot_path}")
    sys.stdout.write("\n".join(lines) + "\n")


def _show(x: Any) -> str:
    if isinstance(x, list):
        return "(" + ", ".join(_show(v) for v in x) + ")"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


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
    try:
        if args.memory_limit is not None:
            set_memory_limit(args.memory_limit)
        try:
            kernel = Kernel.parse(args.kernel, anchor=args.anchor)
        except (ERFValueError, ERFTypeError) as exc:
            _fail(f"--kernel {args.kernel!r}: {exc}")
        prof = profile(kernel, layers=args.layers)
        if args.command == "coefficients":
            _coefficients(args, prof)
        else:
            _profile(args, prof)
    except (ERFValueError, ERFTypeError) as exc:
        _fail(str(exc))
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("erftheory: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
