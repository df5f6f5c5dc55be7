"""How long the profile guards take to refuse, and the single-value routes to answer.

    python benchmarks/guards_profile.py          # about 20 s

``tests/test_profile.py::test_guard_refuses_huge_before_any_large_work`` asserts the
property instead of a time (flint, gmpy2 and the streaming loops are trip wires, and the
Python peak is a few MiB), because machines are shared; this script shows the times that
property buys, and the times of the routes that replaced refusals or hangs: before them,
``profile(Kernel([1, 1, 1, 1]), 10**10).coefficient(15 * 10**9)`` ran 30 s and GMP aborted
the process, ``coefficient(10**6)`` of ``[1, 1, 1]`` at ``n = 10**6`` ran for minutes and
``Profile.ball`` at ``n = 10**15`` returned a ball of width 10^3470313691. Not part of the
test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import erftheory
from erftheory import SizeLimitError, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _timing import best_time


def _time(label: str, fn: Any, runs: int = 3) -> None:
    best, outcome = best_time(fn, runs, refused=SizeLimitError)
    if isinstance(outcome, SizeLimitError):
        shown = f"refused: {str(outcome)[:70]}…"
    else:
        shown = f"computed ({type(outcome).__name__})"
    print(f"{best * 1e3:10.2f} ms  {label:58s} {shown}")


def main() -> None:
    from test_profile import _REFUSED  # the cases the property test covers

    print("refusals (best of 3):")
    for i, (make, case) in enumerate(_REFUSED):
        kernel = make()
        _time(f"case {i}", lambda kernel=kernel, case=case: case(kernel))
    print("single values that used to hang or abort:")
    n = 10**6
    _time("[1, 2, 1], n = 10^6, coefficient(10^6)", lambda: profile([1, 2, 1], n).coefficient(n))
    _time("[1, 1, 1], n = 10^6, coefficient(10^6)", lambda: profile([1, 1, 1], n).coefficient(n), 1)
    _time(
        "extended_binomial_coefficient(10^6, 3, 10^6)",
        lambda: erftheory.extended_binomial_coefficient(n, 3, n),
        1,
    )
    _time(
        "[1, 1, 1], n = 10^7, log_normalized()",
        lambda: profile([1, 1, 1], 10**7).log_normalized(),
        1,
    )
    for depth in (10**6, 10**9, 10**12, 10**15):
        _time(
            f"[1, 1, 1], n = 10^{len(str(depth)) - 1}, ball(n) at dps 30",
            lambda depth=depth: profile([1, 1, 1], depth, method="arb").ball(depth),
        )


if __name__ == "__main__":
    main()
