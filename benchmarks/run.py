"""Benchmarks for the engines of issue 6: one command, ratios from one run.

    python benchmarks/run.py            # full sizes (about 13 minutes on 2 cores)
    python benchmarks/run.py --quick    # small sizes (about a minute)

Prints Markdown tables; ``--write`` also replaces the results section of
``benchmarks/README.md``. Not part of the test suite (no timing assertions anywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from fractions import Fraction

import flint
import gmpy2
import numpy as np
from _machine import describe
from scipy import fft as sfft

import erftheory
from erftheory import Kernel, _exact, profile

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = np.finfo(float).tiny


def best(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def pair(fa, fb, repeat: int = 2) -> tuple[float, float]:
    """Best-of-``repeat`` times of two functions, interleaved (a, b, a, b, ...).

    Interleaving cancels the page-fault cost that the first of two large allocations pays.
    """
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(best(fa))
        tb.append(best(fb))
    return min(ta), min(tb)


def pure_python_power(w: list[int], n: int) -> list[int]:
    out = [1]
    for _ in range(n):
        new = [0] * (len(out) + len(w) - 1)
        for i, a in enumerate(out):
            for j, b in enumerate(w):
                new[i + j] += a * b
        out = new
    return out


SYMPY_SNIPPET = """
import sys, time, sympy
k, n = int(sys.argv[1]), int(sys.argv[2])
z = sympy.Symbol('z')
p = sympy.Poly([1] * k, z)
t = time.perf_counter(); q = p ** n; dt = time.perf_counter() - t
print(sympy.polys.domains.ZZ.__class__.__name__, dt)
"""


def sympy_time(k: int, n: int, ground: str) -> tuple[str, float]:
    env = dict(os.environ, SYMPY_GROUND_TYPES=ground)
    out = subprocess.run(
        [sys.executable, "-c", SYMPY_SNIPPET, str(k), str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], float(out[1])


def flint_power(w: list) -> object:
    """flint's polynomial for ``w``: ``fmpz_poly`` for integers, ``fmpq_poly`` for rationals."""
    if all(isinstance(x, int) for x in w):
        return flint.fmpz_poly(w)
    return flint.fmpq_poly([flint.fmpq(x.numerator, x.denominator) for x in w])


def exact_rows(quick: bool) -> list[str]:
    rows = [
        "| kernel | k | n | erftheory s | flint `fmpz_poly**n` / `fmpq_poly**n` s "
        "| flint / erftheory |",
        "|---|---|---|---|---|---|",
    ]
    ns = [1000, 3000] if quick else [1000, 3000, 10000, 30000]
    rng = random.Random(1)
    for k in (3, 7, 11):
        kernels = [
            ("uniform", [1] * k),
            ("random 1..9", [rng.randint(1, 9) for _ in range(k)]),
            (
                "random p/q, p, q in 1..9",
                [Fraction(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(k)],
            ),
        ]
        for name, w in kernels:
            for n in ns:
                if name != "uniform" and n == 30000 and k == 11:
                    continue  # ~20 GB of flint temporaries at this size; too big for 24 GiB
                if name.startswith("random p/q") and n > 10000:
                    continue  # as the integer kernel (same flint call); keeps the run short
                base = flint_power(w)
                te, tf = pair(
                    lambda w=w, n=n: profile(Kernel(w), n, method="exact").compute(),
                    lambda base=base, n=n: base**n,
                    7 if n <= 3000 else 3 if n <= 10000 else 2,
                )
                rows.append(f"| {name} | {k} | {n} | {te:.3f} | {tf:.3f} | {tf / te:.2f} |")
    return rows


def slow_baseline_rows(quick: bool) -> list[str]:
    rows = [
        "| k | n | flint s | erftheory s | sympy (python ints) s | sympy (gmpy2) s | "
        "pure-Python loop s | sympy-gmpy2 / erftheory | loop / erftheory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in (3, 7, 11):
        for n in [100] if quick else [100, 1000]:
            te, tf = pair(
                lambda k=k, n=n: profile(Kernel([1] * k), n, method="exact").compute(),
                lambda k=k, n=n: flint.fmpz_poly([1] * k) ** n,
                7,
            )
            _, ts_py = sympy_time(k, n, "python")
            try:
                _ground, ts_gm = sympy_time(k, n, "gmpy")
            except subprocess.CalledProcessError:
                ts_gm = float("nan")
            tl = best(lambda k=k, n=n: pure_python_power([1] * k, n)) if n <= 1000 else float("nan")
            rows.append(
                f"| {k} | {n} | {tf:.4f} | {te:.4f} | {ts_py:.3f} | {ts_gm:.3f} | {tl:.3f} "
                f"| {ts_gm / te:.0f} | {tl / te:.0f} |"
            )
    return rows


def mpoly_rows(quick: bool) -> list[str]:
    rows = [
        "| kernel | n | erftheory route | erftheory s | `fmpz_mpoly**n` s | mpoly / erftheory |",
        "|---|---|---|---|---|---|",
    ]
    rng = random.Random(2)
    cases = (
        [(3, 100), (5, 30)]
        if quick
        else [(3, 50), (3, 200), (3, 400), (5, 40), (5, 100), (9, 30), (9, 120), (15, 40)]
    )
    ctx = flint.fmpz_mpoly_ctx.get(("x", "y"), "lex")
    for k, n in cases:
        w = [[rng.randint(1, 9) for _ in range(k)] for _ in range(k)]
        base = ctx.from_dict({(i, j): w[i][j] for i in range(k) for j in range(k)})
        te, tm = pair(
            lambda w=w, n=n: profile(Kernel(w), n, method="exact").compute(),
            lambda base=base, n=n: base**n,
            3,
        )
        route = "kronecker" if n < _exact.KRONECKER_DEPTH_FACTOR * k * k else "mpoly"
        rows.append(
            f"| {k}×{k} random 1..9 | {n} | {route} | {te:.3f} | {tm:.3f} | {tm / te:.2f} |"
        )
    return rows


def plain_fft(w: np.ndarray, n: int) -> np.ndarray:
    length = n * (len(w) - 1) + 1
    size = sfft.next_fast_len(length, real=True)
    with np.errstate(under="ignore"):
        spec = sfft.rfft(w / w.sum(), size) ** n
        return sfft.irfft(spec, size)[:length]


def reference(k: int, n: int) -> tuple[str, np.ndarray | None]:
    bits = n * np.log2(k) * n * (k - 1)
    if bits / 8 < 4e9:
        with erftheory.memory_limit("16GiB"):
            return "exact", profile(Kernel([1] * k), n, method="exact").normalized()
    if k == 3 and n <= 100_000:
        return "arb", profile(Kernel([1] * k), n, method="arb", dps=20).normalized()
    return "none", None


def max_rel(got: np.ndarray, ref: np.ndarray) -> float:
    normal = ref >= TINY
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.max(np.abs(got[normal] - ref[normal]) / ref[normal]))


def float_rows(quick: bool) -> list[str]:
    rows = [
        "| k | n | plain FFT s | `float` s | float / FFT | plain max rel err | `float` max rel err"
        " | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ns = [1000, 10_000] if quick else [1000, 10_000, 100_000, 1_000_000]
    for k in (3, 11, 101):
        for n in ns:
            w = np.ones(k)
            rep = 3 if n * k < 1e7 else 1
            with erftheory.memory_limit("16GiB"):
                tp, tf = pair(
                    lambda w=w, n=n: plain_fft(w, n),
                    lambda k=k, n=n: profile(Kernel([1.0] * k), n, method="float").normalized(),
                    rep + 1,
                )
                got_p = plain_fft(w, n)
                got_f = profile(Kernel([1.0] * k), n, method="float").normalized()
            kind, ref = reference(k, n)
            ep = f"{max_rel(got_p, ref):.1e}" if ref is not None else "–"
            ef = f"{max_rel(got_f, ref):.1e}" if ref is not None else "–"
            rows.append(
                f"| {k} | {n} | {tp:.4f} | {tf:.4f} | {tf / tp:.2f} | {ep} | {ef} | {kind} |"
            )
    return rows


def plain_fft_2d(w: np.ndarray, n: int) -> np.ndarray:
    shape = tuple(n * (s - 1) + 1 for s in w.shape)
    size = [sfft.next_fast_len(shape[0]), sfft.next_fast_len(shape[1], real=True)]
    with np.errstate(under="ignore"):
        spec = sfft.rfftn(w / w.sum(), size) ** n
        return sfft.irfftn(spec, size)[: shape[0], : shape[1]]


def float2d_rows(quick: bool) -> list[str]:
    """Non-separable 2-D kernels: the `float` engine against the plain 2-D FFT power, with
    the largest relative error of both over every normal-range value. The reference is the
    exact engine where its coefficients fit in memory; beyond, the `float` engine with
    every frequency summed directly (``SPECTRUM_TOLERANCE = 0``, the slow route) stands in
    and the column gives the largest relative difference to it."""
    from erftheory import _float

    rows = [
        "| kernel | n | grid | plain FFT s | `float` s | float / FFT | reference | reference s "
        "| plain max rel err | `float` max rel err |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cases = (
        [(3, 100), (15, 6)]
        if quick
        else [
            (3, 200),
            (3, 600),
            (5, 100),
            (5, 300),
            (9, 50),
            (9, 100),
            (15, 20),
            (15, 40),
            (3, 1500),
            (3, 3000),
        ]
    )
    rng = np.random.default_rng(5)
    for k, n in cases:
        ints = rng.integers(1, 10, (k, k))
        w = ints.astype(float)
        tp, tf = pair(
            lambda w=w, n=n: plain_fft_2d(w, n),
            lambda w=w, n=n: profile(Kernel(w), n, method="float").normalized(),
            2,
        )
        got = profile(Kernel(w), n, method="float").normalized()
        start = time.perf_counter()
        if n <= 600:
            kind = "exact"
            ref = profile(Kernel(ints.tolist()), n, method="exact").normalized()
        else:
            kind = "all direct"
            default = _float.SPECTRUM_TOLERANCE
            _float.SPECTRUM_TOLERANCE = 0.0
            try:
                ref = profile(Kernel(w), n, method="float").normalized()
            finally:
                _float.SPECTRUM_TOLERANCE = default
        tr = time.perf_counter() - start
        ep, ef = max_rel(plain_fft_2d(w, n), ref), max_rel(got, ref)
        rows.append(
            f"| {k}×{k} random 1..9 | {n} | {ref.shape[0]}² | {tp:.3f} | {tf:.3f} "
            f"| {tf / tp:.1f} | {kind} | {tr:.2f} | {ep:.1e} | {ef:.1e} |"
        )
        del got, ref
    return rows


REFERENCE_CASES = [
    (3, 1_000_000),
    (11, 100_000),
    (11, 1_000_000),
    (101, 10_000),
    (101, 100_000),
    (101, 1_000_000),
]
REFERENCE_LEVELS = (1e-300, 1e-200, 1e-100, 1e-20)
REFERENCE_RANDOM = 8
ALT_HALF_WIDTH = 2.0  # the second window layout (the engine's default is 3.0)
REFERENCE_RTOL = 1e-10  # the `float` engine's guarantee (issue 6)
REFERENCE_DPS = 40  # digits of the arb balls and of the mpmath cross-check


def reference_points(
    got: np.ndarray, alt: np.ndarray, seed: int
) -> tuple[list[int], list[int], float]:
    """About 22 indices over the engine's normal range, the two just outside it, and the
    largest relative difference of the two layouts over the whole normal range.

    The centre (largest value), the two outermost normal values on each side, on each side
    the outermost index whose value is at least each of `REFERENCE_LEVELS`, the index
    where ``got`` and ``alt`` (the engine with another window layout) differ most
    relative to the value (where one of them has its largest error), and
    `REFERENCE_RANDOM` random normal-range indices.
    """
    idx = np.nonzero(got >= TINY)[0]
    lo, hi = int(idx[0]), int(idx[-1])
    pts = {int(np.argmax(got)), lo, lo + 1, hi - 1, hi}
    for level in REFERENCE_LEVELS:
        above = np.nonzero(got >= level)[0]
        pts.update((int(above[0]), int(above[-1])))
    part = got[lo : hi + 1]
    diff = np.abs(alt[lo : hi + 1] - part) / part
    pts.add(lo + int(np.argmax(diff)))
    pts.update(int(t) for t in np.random.default_rng(seed).integers(lo, hi + 1, REFERENCE_RANDOM))
    outside = [t for t in (lo - 1, hi + 1) if 0 <= t < len(got)]
    return sorted(pts), outside, float(diff.max())


def reference_rows(quick: bool) -> list[str]:
    """The `float` engine against certified `arb` balls at the largest sizes.

    The reference is ``profile(..., method="arb", dps=40).ball(t)``: for these lengths the
    Cauchy integral on the saddle-point circle with certified quadrature
    (`erftheory._arb.cauchy_ball`), so each relative error is an upper bound computed in
    ball arithmetic. Each ball is also compared with `tests/reference.py`'s
    `cauchy_coefficient` (mpmath tanh-sinh quadrature, a second implementation).
    """
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    import mpmath
    from reference import cauchy_coefficient

    from erftheory import _float

    rows = [
        "| kernel | k | n | points | `float` max rel err (certified bound) | at t "
        "| arb max rel radius | mpmath vs arb | outside the normal range "
        f"| layouts {_float.WINDOW_HALF_WIDTH:g}σ vs {ALT_HALF_WIDTH:g}σ, all normal t | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    failures = []
    cases = [(11, 100_000), (101, 10_000)] if quick else REFERENCE_CASES
    rng = np.random.default_rng(6)
    random_kernels = {k: [float(x) for x in rng.uniform(0.05, 1.0, k)] for k in (3, 11, 101)}
    old_prec = flint.ctx.prec
    flint.ctx.prec = 300
    try:
        for k, n in cases:
            for name, w in (("uniform", [1.0] * k), ("random 0.05..1", random_kernels[k])):
                start = time.perf_counter()
                with erftheory.memory_limit("8GiB"):
                    got = profile(Kernel(w), n, method="float").normalized()
                    default = _float.WINDOW_HALF_WIDTH
                    _float.WINDOW_HALF_WIDTH = ALT_HALF_WIDTH
                    try:
                        alt = profile(Kernel(w), n, method="float").normalized()
                    finally:
                        _float.WINDOW_HALF_WIDTH = default
                pts, outside, layouts = reference_points(got, alt, seed=k + n)
                del alt
                ref = profile(Kernel(w), n, method="arb", dps=REFERENCE_DPS)
                worst, worst_t, radius, cross, edge, checked = 0.0, pts[0], 0.0, 0.0, [], 0
                for t in pts + outside:
                    ball = ref.ball(t)
                    radius = max(radius, float((ball.rad() / abs(ball)).upper()))
                    alt_value = cauchy_coefficient(w, n, t, dps=REFERENCE_DPS)
                    with mpmath.workdps(REFERENCE_DPS):
                        mid = mpmath.mpf(ball.mid().str(REFERENCE_DPS + 5, radius=False))
                        cross = max(cross, float(abs(alt_value - mid) / mid))
                    if not ball > TINY:  # not certainly a normal float64: outside the goal
                        note = "" if t in outside else " (engine gave a normal value)"
                        edge.append(f"t={t}: {ball.mid().str(3, radius=False)}{note}")
                        continue
                    checked += 1
                    if t in outside:
                        failures.append(f"{name} k={k} n={n} t={t}: normal value missed")
                    rel = float((abs(flint.arb(float(got[t])) - ball) / ball).upper())
                    if rel > worst:
                        worst, worst_t = rel, t
                    if rel > REFERENCE_RTOL:
                        failures.append(
                            f"{name} k={k} n={n} t={t}: float {float(got[t])!r} vs arb "
                            f"{ball.str(20)} (rel {rel:.2e})"
                        )
                del got
                rows.append(
                    f"| {name} | {k} | {n} | {checked} | {worst:.1e} | {worst_t} "
                    f"| {radius:.0e} | {cross:.0e} | {'; '.join(edge) or '–'} | {layouts:.1e} "
                    f"| {time.perf_counter() - start:.0f} |"
                )
    finally:
        flint.ctx.prec = old_prec
    rows += ["", *(f"**above {REFERENCE_RTOL:g}**: {f}" for f in failures)] if failures else []
    return rows


PEAK_SNIPPET = """
import sys, erftheory
from erftheory import Kernel, profile
erftheory.set_memory_limit("20GiB")
what, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if what == "exact":
    profile(Kernel([1] * k), n, method="exact").compute()
elif what == "float":
    profile(Kernel([1.0] * k), n, method="float").normalized()
else:
    profile(Kernel([1.0] * k), n, method="fft").normalized()
# ru_maxrss survives exec (it would report the parent's peak): read this process's VmHWM.
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024)
"""


def peak_rows(quick: bool) -> list[str]:
    rows = ["| engine | k | n | peak RSS MiB |", "|---|---|---|---|"]
    cases = (
        [("exact", 11, 3000), ("float", 101, 10_000)]
        if quick
        else [
            ("exact", 11, 30_000),
            ("exact", 3, 30_000),
            ("float", 101, 1_000_000),
            ("fft", 101, 1_000_000),
            ("float", 3, 1_000_000),
        ]
    )
    for what, k, n in cases:
        out = subprocess.run(
            [sys.executable, "-c", PEAK_SNIPPET, what, str(k), str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows.append(f"| {what} | {k} | {n} | {float(out):.0f} |")
    return rows


def machine() -> str:
    return (
        f"{describe()}, "
        f"python-flint {flint.__version__}, gmpy2 {gmpy2.version()}, numpy {np.__version__}, "
        f"erftheory "
        f"{erftheory.__version__}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true", help="write benchmarks/README.md")
    ap.add_argument(
        "--only",
        choices=["exact", "slow", "mpoly", "float", "float2d", "reference", "peak"],
        default=None,
    )
    args = ap.parse_args()
    erftheory.set_memory_limit("16GiB")
    sections = [
        ("Exact 1-D: erftheory vs flint's power (uniform kernels use the recurrence)", exact_rows),
        ("Exact 1-D: sympy and a pure-Python loop (small n only)", slow_baseline_rows),
        ("Exact 2-D non-separable: erftheory vs `fmpz_mpoly`", mpoly_rows),
        ("Float: `float` engine vs the plain `scipy.fft` power (uniform kernels)", float_rows),
        ("Float 2-D non-separable: `float` engine vs the plain 2-D FFT power", float2d_rows),
        ("Float accuracy at the largest sizes: Cauchy-integral reference", reference_rows),
        ("Peak memory (largest cases, one process each)", peak_rows),
    ]
    text = [f"Machine: {machine()}", f"Mode: {'quick' if args.quick else 'full'}", ""]
    keys = ["exact", "slow", "mpoly", "float", "float2d", "reference", "peak"]
    if args.only:
        sections = [sections[keys.index(args.only)]]
    for title, fn in sections:
        t = time.perf_counter()
        rows = fn(args.quick)
        text += [f"### {title}", "", *rows, "", f"({time.perf_counter() - t:.0f} s)", ""]
        print("\n".join(text[-len(rows) - 4 :]), flush=True)
    if args.write:
        path = os.path.join(HERE, "README.md")
        head = open(path).read().split("<!-- results -->")[0] if os.path.exists(path) else ""
        with open(path, "w") as f:
            f.write(head + "<!-- results -->\n\n" + "\n".join(text))
    json.dumps(text)


if __name__ == "__main__":
    main()
