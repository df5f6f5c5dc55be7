"""Overhead of erftheory's exact profiles over raw python-flint (issue 2).

Run: ``python benchmarks/issue2_overhead.py [--layers 30000] [--repeat 3]``

Prints, from one run on this machine, the best-of-``repeat`` wall time of each
operation and its ratio to the raw python-flint baseline next to it:

1. ``profile(Kernel([1, 1, 1]), layers=n)`` and reading ``.variance`` against
   ``fmpz_poly([1, 1, 1]) ** n`` (profiles are lazy: Eq. 10 needs no expansion);
2. the same plus reading one coefficient (forces the exact power) against the
   flint power plus reading that coefficient;
3. reading all ``.coefficients`` as Python ints against the flint power plus
   converting every coefficient to a Python int.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import flint

import erftheory
from erftheory import Kernel, profile


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, r = args.layers, args.repeat

    def flint_power() -> object:
        return flint.fmpz_poly([1, 1, 1]) ** n

    def flint_power_one() -> object:
        return int((flint.fmpz_poly([1, 1, 1]) ** n)[n])

    def flint_power_ints() -> object:
        return [int(c) for c in (flint.fmpz_poly([1, 1, 1]) ** n).coeffs()]

    rows = [
        (
            "profile + .variance",
            lambda: profile(Kernel([1, 1, 1]), layers=n).variance,
            "fmpz_poly power",
            flint_power,
        ),
        (
            "profile + .coefficient(n)",
            lambda: profile(Kernel([1, 1, 1]), layers=n).coefficient(n),
            "fmpz_poly power + [n]",
            flint_power_one,
        ),
        (
            "profile + .coefficients (ints)",
            lambda: profile(Kernel([1, 1, 1]), layers=n).coefficients,
            "fmpz_poly power + int() each",
            flint_power_ints,
        ),
    ]
    print(
        f"erftheory {erftheory.__version__}, python-flint {flint.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, n = {n}, best of {r}"
    )
    print("| operation | seconds | baseline | seconds | ratio |\n|---|---|---|---|---|")
    for name, fn, base_name, base in rows:
        t_base = best(base, r)
        t = best(fn, r)
        print(f"| {name} | {t:.4f} | {base_name} | {t_base:.4f} | {t / t_base:.3f} |")


if __name__ == "__main__":
    main()
