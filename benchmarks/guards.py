"""How long the input guards take to refuse hostile inputs (the numbers behind the tests).

    python benchmarks/guards.py          # a few seconds

The tests assert properties instead of times (work counted, kernels never built, peak
memory small), because machines are shared; this script shows the times those
properties buy. Before the guards estimated from sizes, the 1024 x 1024 convolution
spent 222 s inside the memory guard. Not part of the test suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from _timing import best_time

import erftheory
from erftheory import SizeLimitError, parse_arch


def _time(label: str, fn: Any, runs: int = 3) -> None:
    best, outcome = best_time(fn, runs, refused=erftheory.ERFError)
    if isinstance(outcome, erftheory.ERFError):
        shown = f"{type(outcome).__name__}: {str(outcome)[:60]}…"
    else:
        shown = "ok"
    print(f"| {label} | {best * 1e3:.1f} | {shown} |")


def main() -> None:
    d = Path(tempfile.mkdtemp())
    print("| input | best ms | outcome |")
    print("|---|---|---|")
    bomb: Any = ["relu"]
    for _ in range(6):
        bomb = [{"repeat": {"times": 10_000, "layers": bomb}}]
    _time("nested repeat bomb (10^24 layers)", lambda: parse_arch(bomb))
    shared: Any = ["relu"] * 10
    for _ in range(12):
        shared = [{"residual": {"layers": shared}}] * 10
    _time("shared sub-lists (10^13 layers)", lambda: parse_arch(shared))
    laughs = d / "laughs.yaml"
    laughs.write_text(
        'a: &a ["relu", "relu", "relu", "relu", "relu", "relu", "relu", "relu", "relu"]\n'
        + "".join(
            f"{x}: &{x} [{', '.join([f'*{y}'] * 9)}]\n"
            for y, x in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "layers: [*i, *i, *i, *i, *i, *i, *i, *i, *i]\n"
    )
    _time("YAML billion laughs (9^10 layers)", lambda: erftheory.load_arch(laughs))
    if hasattr(os, "mkfifo"):
        fifo = d / "fifo.json"
        os.mkfifo(fifo)
        _time("--arch naming a FIFO", lambda: erftheory.load_arch(fifo))
    big = parse_arch({"layers": [{"conv": {"size": [1024, 1024]}}]})

    def guard() -> None:
        with erftheory.memory_limit("64MiB"):
            try:
                big.profile()
            except SizeLimitError:
                pass

    _time("1024x1024 conv: memory guard", guard)
    _time("1024x1024 conv: moments + table", lambda: (big.moments(), big.table()))
    astro = {
        "layers": [{"repeat": {"times": 10_000, "layers": [{"conv": {"size": 3, "stride": 1024}}]}}]
    }
    net = parse_arch(astro)
    _time("RF of 2^100000 pixels: receptive_field", lambda: net.receptive_field, runs=1)
    _time("RF of 2^100000 pixels: profile (refused)", net.profile, runs=1)
    _time("RF of 2^100000 pixels: moments (refused)", net.moments, runs=1)
    f = d / "astro.json"
    f.write_text(json.dumps(astro))
    from erftheory.cli import main as cli

    def run_cli() -> None:
        try:
            cli(["profile", "--arch", str(f), "--json"])
        except SystemExit:
            pass

    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        _time("CLI, RF of 2^100000 pixels (exit 2)", run_cli, runs=1)


if __name__ == "__main__":
    main()
