"""The uniform-kernel recurrence against flint's power at small n, best of many runs.

    python benchmarks/uniform_small_n.py          # about 10 s

At n ~ 10^3 both take milliseconds and single runs on a shared machine scatter by ±30 %;
the best of 30 runs, interleaved, in a fresh process is the steadiest ratio. Not part of
the test suite.
"""

from __future__ import annotations

import flint
from run import best

from erftheory._exact import uniform_half


def main() -> None:
    print("| k | n | flint ms | recurrence ms | flint / recurrence |")
    print("|---|---|---|---|---|")
    for k in (7, 11):
        base = flint.fmpz_poly([1] * k)
        for n in (300, 1000, 3000):
            tf, tu = [], []
            for _ in range(3):  # interleaved rounds, each a best of 30 / 3
                tf.append(best(lambda b=base, n=n: b**n, 10))
                tu.append(best(lambda k=k, n=n: uniform_half(k, n), 10))
            f, u = min(tf), min(tu)
            print(f"| {k} | {n} | {f * 1e3:.3f} | {u * 1e3:.3f} | {f / u:.2f} |")


if __name__ == "__main__":
    main()
