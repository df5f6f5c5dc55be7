r"""The ``exact`` engine: powers of integer and rational kernels with python-flint.

The algorithms work on *integer* kernels; a rational kernel $w$ is written as
$w = W / D$ with $W$ integer and $D$ the least common denominator, so that
$V_w^n = V_W^n / D^n$ (Eq. 9). Memory is estimated before anything large is allocated:
python-flint aborts the process when an allocation fails.

The results at the end of the module (`build`) read a
`erftheory.engines.source.Source` in that integer form: `Exact1D` (flint's power, the
uniform three-term recurrence, Miller's streaming recurrence where the power would not
fit), `ExactSeparable` (the outer product of two 1-D powers) and `Exact2D`
(`Power2D`: Kronecker substitution or ``fmpz_mpoly``).

Example:
    >>> from erftheory import Kernel
    >>> from erftheory.engines.source import KernelPower
    >>> r = build(KernelPower(Kernel([1, 1, 1]), 2))
    >>> r.coefficients(), r.coefficient((2,)), plan(KernelPower(Kernel([1] * 7), 3000))
    ([1, 2, 3, 2, 1], 3, 'uniform taps: three-term recurrence on half the coefficients')
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any

import flint
import gmpy2
import numpy as np

from .. import _config
from .._errors import SizeLimitError
from ..kernel import reduced_fraction
from .base import BaseResult, require_nonzero_sum

if TYPE_CHECKING:
    from .source import Source

__all__ = [
    "SUPPORT_WORK",
    "WORK_FLOOR",
    "WORK_PER_LIMIT_BYTE",
    "Exact1D",
    "Exact2D",
    "ExactSeparable",
    "Power2D",
    "UniformPower",
    "binomial_power",
    "build",
    "check_work",
    "checked_power",
    "guard",
    "in_power_support",
    "integer_form",
    "is_uniform",
    "log_abs",
    "plan",
    "poly_bytes",
    "power_1d",
    "python_bytes",
    "ratio_to_float",
    "reduce_support",
    "single_coefficient",
    "stream_power_1d",
    "uniform_coefficient",
    "uniform_half",
    "use_uniform_recurrence",
]

# Bytes per fmpz coefficient on top of its limbs: the fmpz slot (8), the mpz
# struct (16), malloc's header and rounding (16), one spare limb (8).
_FMPZ_OVERHEAD = 48
# Bytes per Python int on top of its digits (header, list slot, rounding).
_PYINT_OVERHEAD = 48
# fmpz_poly_pow keeps the result and the operands of its last squaring alive;
# measured peak RSS was ~1.0x the result for [1,1,1]^100000, 1.5x leaves margin.
POW_PEAK_FACTOR = 1.5
_CHUNKS = 2048


def integer_form(weights: Sequence[int | Fraction]) -> tuple[list[int], int]:
    """Return ``(W, D)`` with integer ``W`` and ``weights == W / D`` exactly."""
    den = 1
    for w in weights:
        if isinstance(w, Fraction):
            den = math.lcm(den, w.denominator)
    return [int(w * den) for w in weights], den


def _log2_abs_poly(absw: np.ndarray, s: np.ndarray) -> np.ndarray:
    """log2 of sum_m |w_m| r^m at r = 2**s, for many s (stable)."""
    m = np.nonzero(absw)[0]
    logs = np.log2(absw[m].astype(float))[None, :] + s[:, None] * m[None, :]
    top = logs.max(axis=1)
    return top + np.log2(np.exp2(logs - top[:, None]).sum(axis=1))


def reduce_support(weights: Sequence[Any]) -> tuple[int, int, list[Any]]:
    r"""Write $V(z) = z^a U(z^g)$ with $U(0) \ne 0$ and $U$ aperiodic; return ``(a, g, U)``.

    $a$ is the first non-zero tap, $g$ the gcd of the non-zero taps' offsets from it
    (1 when there is only one), and ``U`` lists every $g$-th weight from $a$ to the last
    non-zero one. Only every $g$-th coefficient of $V^n$, from $na$ on, can be non-zero.

    Example:
        >>> reduce_support([0, 2, 0, 0, 5, 0, 0, 1])
        (1, 3, [2, 5, 1])
    """
    nonzero = [m for m, w in enumerate(weights) if w != 0]
    if not nonzero:
        raise ValueError("reduce_support needs a non-zero weight")
    lead = nonzero[0]
    step = 0
    for m in nonzero:
        step = math.gcd(step, m - lead)
    step = step or 1
    return lead, step, [weights[m] for m in range(lead, nonzero[-1] + 1, step)]


SUPPORT_WORK = 1_000_000
"""Steps (edges relaxed, or table entries times parts) `in_power_support` may take."""


def in_power_support(core: Sequence[Any], n: int, t: int) -> bool:
    r"""Whether $t \in nA$, the $n$-fold sumset of $A = \{m : u_m \ne 0\}$.

    For a *nonnegative* kernel ``core`` (as `reduce_support` returns it: $0 \in A$,
    $\gcd A = 1$) this is exactly whether $[z^t]\,U(z)^n \ne 0$: a coefficient is the
    sum of $\prod_i u_{m_i}$ over all $(m_1, \dots, m_n) \in A^n$ with $\sum_i m_i = t$.
    Interior zeros of ``core`` leave gaps near both ends (e.g. $t = 1$ for
    $A = \{0, 2, 3\}$ at every $n$).

    Decided exactly by the fewest non-zero parts $f(t)$ from $A' = A \setminus \{0\}$
    that sum to $t$ ($t \in nA \iff f(t) \le n$, padding with zeros), from the nearer
    end ($t \in nA \iff nL - t \in n(L - A)$, $L = \max A$). A representation with
    $q$ parts equal to $L$ and the multiset $S$ of the others has
    $(t + \sum_{a \in S}(L - a))/L$ parts, so $f(t) = (t + W_r)/L$ where $W_r$ is the
    least $\sum_{a\in S}(L-a)$ over $S$ with $\sum S \equiv t \pmod L$: a shortest path
    on the residues mod $L$ (Dijkstra), valid once $t$ is at least the optimal
    path's $\sum S$ (at most $(L-1)^2$); below that, a direct dynamic programme on
    $[0, t]$. Cost $O(L\,|A| \log L + L^2 |A|)$ at most, independent of $n$; where
    either term would pass `SUPPORT_WORK` (kernels of thousands of taps with interior
    zeros) the answer is a conservative True ("possibly non-zero").

    Example:
        >>> [t for t in range(7) if in_power_support([1, 0, 1, 1], 2, t)]
        [0, 2, 3, 4, 5, 6]
    """
    last = len(core) - 1
    if t < 0 or t > n * last:
        return False
    support = [m for m, w in enumerate(core) if w != 0]
    if len(support) == last + 1:
        return True
    if 2 * t > n * last:  # the nearer end: reverse the kernel
        support = sorted(last - m for m in support)
        t = n * last - t
    parts = [m for m in support if m > 0]
    if last * len(parts) > SUPPORT_WORK:
        return True
    # Dijkstra on residues mod L, lexicographic in (sum of L - a, sum of a).
    inf = (math.inf, math.inf)
    dist: list[tuple[float, float]] = [inf] * last
    dist[0] = (0, 0)
    heap: list[tuple[float, float, int]] = [(0, 0, 0)]
    while heap:
        w, s, r = heapq.heappop(heap)
        if (w, s) > dist[r]:
            continue
        for a in parts:
            if a == last:
                continue
            q = (r + a) % last
            cand = (w + last - a, s + a)
            if cand < dist[q]:
                dist[q] = cand
                heapq.heappush(heap, (cand[0], cand[1], q))
    weight, total = dist[t % last]
    if weight == math.inf:
        return False
    if t >= total:
        return (t + weight) // last <= n
    if t * len(parts) > SUPPORT_WORK:
        return True
    fewest = [0] + [n + 1] * t  # f(0..t), capped at n + 1
    for x in range(1, t + 1):
        fewest[x] = min((fewest[x - a] + 1 for a in parts if a <= x), default=n + 1)
    return fewest[t] <= n


def coefficient_bits_bound(ints: Sequence[int], n: int) -> tuple[float, int]:
    """Upper bound on the total bits of all coefficients of ``V^n``, and the length.

    Uses the Cauchy bound $|[z^t] V^n| \\le V_{|w|}(r)^n / r^t$ for every $r > 0$
    on chunks of $t$ (a linear function of $t$ for fixed $r$), clipped at 0 since a
    coefficient below 1 in absolute value is 0. Zero taps are factored out first
    ($V(z) = z^a U(z^g)$, so only every $g$-th coefficient can be non-zero). The
    bound is rigorous and within a few percent of the truth.
    """
    k = len(ints)
    length = n * (k - 1) + 1
    if n == 0:
        return 1.0, 1
    if not any(ints):
        return fl(length), length
    _, _, core = reduce_support(ints)
    core_length = n * (len(core) - 1) + 1
    crude_bits = mul(n, math.log2(sum(abs(w) for w in core))) + 2
    if core_length > 2**52:  # beyond any memory: the crude bound is enough
        return mul(core_length, crude_bits), length
    absw = np.array([float(abs(w)) if abs(w) < 2**1000 else math.inf for w in core])
    points = min(1025, 2_000_000 // len(core))
    if not np.all(np.isfinite(absw)) or points < 33 or len(core) == 1:
        return core_length * crude_bits, length
    s = np.linspace(-64.0, 64.0, points)
    lv = _log2_abs_poly(absw, s) * n  # log2 V(r)^n
    edges = np.linspace(0, core_length, min(_CHUNKS, core_length) + 1).astype(np.int64)
    t0 = edges[:-1].astype(float)
    t1 = (edges[1:] - 1).astype(float)
    mid = 0.5 * (t0 + t1)
    best = np.empty(len(mid), dtype=np.int64)
    for lo in range(0, len(mid), 128):  # blocks: at most ~1 MiB of temporaries
        block = mid[lo : lo + 128]
        best[lo : lo + 128] = np.argmin(lv[None, :] - block[:, None] * s[None, :], axis=1)
    f0 = lv[best] - t0 * s[best]
    f1 = lv[best] - t1 * s[best]
    per = np.maximum(np.maximum(f0, f1), 0.0) + 2.0  # +1 rounding, +1 sign margin
    counts = (edges[1:] - edges[:-1]).astype(float)
    refined = float(np.dot(np.minimum(per, crude_bits), counts))
    return min(refined, core_length * crude_bits), length


def bytes_lower_bound(kernel_size: int, n: int) -> float:
    """A cheap lower bound on the bytes of ``V^n``: one fmpz slot per coefficient."""
    return mul(n * (kernel_size - 1) + 1, 8.0)


def poly_bytes(bits: float, length: int) -> float:
    """Upper bound on the bytes of an fmpz_poly of ``length`` coefficients, ``bits`` in all."""
    return bits / 8 + mul(length, _FMPZ_OVERHEAD)


def python_bytes(bits: float, count: int) -> float:
    """Upper bound on the bytes of ``count`` Python ints holding ``bits`` bits in all."""
    return bits / 8 * 1.07 + mul(count, _PYINT_OVERHEAD)  # 30-bit digits in 32-bit words


def power_1d(ints: Sequence[int], n: int) -> flint.fmpz_poly:
    """``fmpz_poly(ints) ** n`` (the caller checks the size first)."""
    return flint.fmpz_poly(list(ints)) ** n


def stream_power_1d(ints: Sequence[int], n: int) -> Iterator[int]:
    r"""Yield the coefficients of $V(z)^n$ one by one, in O(k) big integers of memory.

    J. C. P. Miller's recurrence for powers of a power series: with $V = \sum_m w_m z^m$
    and $w_0 \ne 0$, the coefficients $a_t$ of $V^n$ satisfy
    $t\,w_0\,a_t = \sum_{m=1}^{\min(t,k-1)} ((n+1)m - t)\,w_m\,a_{t-m}$, and the division
    is exact. Leading and trailing zero taps are stripped first and their zeros emitted.
    """
    k = len(ints)
    lead = next((i for i, w in enumerate(ints) if w != 0), None)
    if lead is None:
        if n == 0:
            yield 1
            return
        yield from (0 for _ in range(n * (k - 1) + 1))
        return
    trail = max(i for i, w in enumerate(ints) if w != 0)
    core = [int(w) for w in ints[lead : trail + 1]]
    kc = len(core)
    for _ in range(n * lead):
        yield 0
    w0 = core[0]
    a0 = w0**n
    yield a0
    window: deque[int] = deque([a0], maxlen=max(kc - 1, 1))
    for t in range(1, n * (kc - 1) + 1):
        acc = 0
        for m in range(1, min(t, kc - 1) + 1):
            wm = core[m]
            if wm:
                acc += ((n + 1) * m - t) * wm * window[-m]
        a = acc // (t * w0)
        window.append(a)
        yield a
    for _ in range(n * (k - 1 - trail)):
        yield 0


class ratio_to_float:
    """Correctly rounded ``c / total`` for huge ints, as float64 (subnormals kept).

    Both operands are shifted right together so that the division sees at most a
    few thousand bits; ``c / total`` below 2**-1100 is 0 in float64 anyway, and
    the truncation error (< 2**-120 relative) is far below float64 rounding.
    """

    __slots__ = ("den", "shift")

    def __init__(self, total: int) -> None:
        if total == 0:
            raise ZeroDivisionError("total is zero")
        self.shift = max(0, abs(total).bit_length() - 1300)
        self.den = total >> self.shift if total > 0 else -((-total) >> self.shift)

    def __call__(self, c: Any) -> float:
        if self.shift:
            c = int(c >> self.shift) if c >= 0 else -int((-c) >> self.shift)
        else:
            c = int(c)
        try:
            return c / self.den
        except OverflowError:
            from .._errors import ERFValueError

            raise ERFValueError(
                f"a normalised value is beyond float64 (about 2^"
                f"{c.bit_length() - self.den.bit_length()}): with negative weights the profile "
                f"divided by its small sum can pass 1.8e308; read the exact coefficients instead"
            ) from None


# ---------------------------------------------------------------- uniform kernels
UNIFORM_MIN_TAPS = 4
"""Uniform kernels with at least this many taps may use the three-term recurrence.

At ``k = 3`` flint's power (its C implementation of Miller's recurrence, three
multiplications per coefficient) stays faster than the recurrence at every depth
measured (0.5-0.85x up to $n = 3000$).
"""


UNIFORM_MIN_WORK = 50_000
"""The recurrence is used when $n (k-1)^3$ reaches this (and $k \\ge$ `UNIFORM_MIN_TAPS`).

flint's power does about $k$ multiplications per coefficient on all $n(k-1)+1$
coefficients, the recurrence three on half of them plus the interpreter's overhead per
coefficient, so the crossover moves to smaller $n$ as $k$ grows. Measured on 2 cores
(best of 15, `benchmarks/run.py` style, gmpy2 2.3): $k = 4$ crosses over between
$n = 1000$ (0.88x) and $3000$ (1.66x), $k = 5$ between 300 and 1000, $k = 7$ between
100 (0.99x) and 300 (1.19x), $k = 11$ near 30, $k = 15$ between 10 and 30: all close to
$n (k-1)^3 \\approx 5\\cdot 10^4$.
"""


def use_uniform_recurrence(ints: Sequence[int], n: int) -> bool:
    """True when the three-term recurrence beats flint's power for this kernel and depth."""
    k = len(ints)
    return is_uniform(ints) and k >= UNIFORM_MIN_TAPS and n * (k - 1) ** 3 >= UNIFORM_MIN_WORK


def is_uniform(ints: Sequence[int]) -> bool:
    """True when every tap has the same non-zero integer weight."""
    return len(ints) > 1 and ints[0] != 0 and all(w == ints[0] for w in ints)


def uniform_half(k: int, n: int) -> list[Any]:
    r"""The first half, $a(0), \dots, a(\lfloor n(k-1)/2 \rfloor)$, of $(1 + \dots + z^{k-1})^n$.

    The values are ``gmpy2.mpz``.

    The three-term recurrence (with $a(t) = 0$ for $t < 0$)
    $(t+1)\,a(t+1) = (t+n)\,a(t) + (t-k+1-nk)\,a(t-k+1) + (n(k-1)-t+k)\,a(t-k)$
    follows from differentiating $P = ((1-z^k)/(1-z))^n$:
    $(1-z)(1-z^k)P' = n\,(1 - k z^{k-1} + (k-1) z^k)\,P$; compare coefficients.
    Each step costs three big-by-small multiplications and one exact division by a
    small integer, whatever $k$ is: about 0.4 µs per step at $n \approx 10^3$ with GMP's
    `divexact` and gmpy2's small-integer fast paths, most of it the per-operation
    overhead (object allocation, dispatch) rather than the limb arithmetic.

    Example:
        >>> [int(c) for c in uniform_half(3, 4)]
        [1, 4, 10, 16, 19]
    """
    last = n * (k - 1)
    half = last // 2
    a: list[Any] = [gmpy2.mpz(1)]
    append = a.append
    divexact = gmpy2.divexact
    x = a[0]
    # t < k - 1: only the a(t) term; t = k - 1: a(t - k + 1) = a(0) joins.
    for t in range(min(half, k - 1)):
        x = divexact((t + n) * x, t + 1)
        append(x)
    if half >= k:
        x = divexact((k - 1 + n) * x - n * k * a[0], k)
        append(x)
    if half > k:
        # Steady state: a(d) from a(d-1), a(d-k), a(d-k-1) for d = k+1 .. half. The
        # lagged terms are read by iterators over the growing list and the multipliers
        # t + n, t - k + 1 - nk, n(k-1) - t + k (t = d - 1) by ranges, all zipped: the
        # loop body is then one expression (about 5 % faster than stepping counters).
        steps = half - k
        for d, cur, prev, c1, c2, c3 in zip(
            range(k + 1, half + 1),
            itertools.islice(a, 1, None),
            iter(a),
            range(k + n, k + n + steps),
            range(1 - n * k, 1 - n * k + steps),
            range(last, last - steps, -1),
            strict=False,  # the list iterators run on; the first range ends the loop
        ):
            append(x := divexact(c1 * x + c2 * cur + c3 * prev, d))
    return a


class UniformPower:
    r"""The coefficients of $(1 + z + \dots + z^{k-1})^n$, the extended binomials.

    Only the first half is computed, by `uniform_half`; the rest is its mirror image
    $a(t) = a(n(k-1) - t)$. Behaves like the slice of ``flint.fmpz_poly`` the engine
    needs: ``degree()`` and ``p[t]`` (0 outside the support), for the kernel with every
    tap equal to ``weight`` (the values are multiplied by ``weight**n`` when read).
    The values are ``gmpy2.mpz``; Python ints are built by the caller only when asked for.
    """

    __slots__ = ("_half", "_last", "_scale", "k", "n")

    def __init__(self, k: int, n: int, weight: int = 1) -> None:
        self.k, self.n = k, n
        self._scale = gmpy2.mpz(weight) ** n if weight != 1 else None
        self._last = n * (k - 1)
        self._half = uniform_half(k, n)

    def degree(self) -> int:
        return self._last

    def __getitem__(self, t: int) -> Any:
        if t < 0 or t > self._last:
            return gmpy2.mpz(0)
        c = self._half[min(t, self._last - t)]
        return c if self._scale is None else c * self._scale

    def coeffs(self) -> list[Any]:
        """All coefficients (like ``fmpz_poly.coeffs()``): the half, then its mirror."""
        half = list(self._half[: self._last // 2 + 1])
        if self._scale is not None:
            half = [c * self._scale for c in half]
        return half + half[: self._last + 1 - len(half)][::-1]


def uniform_coefficient(k: int, n: int, t: int) -> int:
    r"""One coefficient $[z^t](1 + \dots + z^{k-1})^n$ from the closed form.

    $a(t) = \sum_{j \ge 0} (-1)^j \binom{n}{j} \binom{t - jk + n - 1}{n - 1}$ (the
    inclusion-exclusion count of compositions), a hypergeometric sum: consecutive terms
    differ by the ratio $p(j)/q(j) = -\frac{n-j}{j+1}\prod_{i=0}^{k-1}\frac{m-i-n+1}{m-i}$
    with $m = t - jk + n - 1$. The $J + 1 \le \min(t, n(k-1) - t)/k + 1$ terms are summed
    by binary splitting (products of the $p$ and $q$ in a balanced tree, so GMP's fast
    multiplication does the work): $n = 10^6$, $k = 3$ at the centre (a number of 1.6
    million bits) takes about 2 s. The memory and the work are checked first
    (`guard`, `check_work`).

    Example:
        >>> uniform_coefficient(3, 3, 3)
        7
    """
    last = n * (k - 1)
    if t < 0 or t > last:
        return 0
    if n == 0 or k == 1:
        return 1 if t == 0 else 0
    t = min(t, last - t)
    jmax = min(n, t // k)
    base = t + n - 1
    memory, work = _uniform_cost(k, n, t)
    what = f"the extended binomial coefficient [z^{_fmt(t)}](1 + ... + z^{k - 1})^{_fmt(n)}"
    hint = _COEFFICIENT_HINT
    guard(memory, what, hint)
    check_work(work, what, hint)
    first = _binom(base, t)
    if jmax == 0:
        return int(first)

    def pq(j: int) -> tuple[Any, Any]:
        p = gmpy2.mpz(-(n - j))
        q = gmpy2.mpz(j + 1)
        top = t - j * k
        m = base - j * k
        for i in range(k):
            p *= top - i
            q *= m - i
        return p, q

    def split(a: int, b: int) -> tuple[Any, Any, Any]:
        # sum_{j=a+1}^{b} prod_{i=a}^{j-1} p(i)/q(i) = R / Q, and P = prod_{i=a}^{b-1} p(i).
        if b - a == 1:
            p, q = pq(a)
            return p, q, p
        c = (a + b) // 2
        p1, q1, r1 = split(a, c)
        p2, q2, r2 = split(c, b)
        return p1 * p2, q1 * q2, r1 * q2 + p1 * r2

    _, q, r = split(0, jmax)  # q(j) > 0 for j < jmax: m - i >= k + n - 1 - i > 0
    return int(gmpy2.divexact(first * (q + r), q))


def _uniform_cost(k: int, n: int, t: int) -> tuple[float, float]:
    """``(memory bytes, work)`` of `uniform_coefficient` (see `check_work` for the unit)."""
    jmax = min(n, t // k)
    base = t + n - 1
    result_bits = binom_bits(base, t)
    # bits of Q = prod q(j): log2(j + 1) + k log2(m) per term; R is as large plus the sum.
    q_bits = mul(jmax, math.log2(jmax + 2) + k * math.log2(base + 2))
    memory = (4 * q_bits + 3 * result_bits) / 8 + 4096
    qb = q_bits / 8
    if not math.isfinite(qb):
        return memory, math.inf
    work = (
        BS_WORK_FACTOR * qb * math.log2(qb + 2) * math.log2(jmax + 2)
        + fft_work(result_bits)
        + LEAF_WORK * mul(jmax + 1, k + 1.0)
    )
    return memory, work


KRONECKER_DEPTH_FACTOR = 2
"""Non-separable 2-D powers use Kronecker substitution when $n < 2 k_1 k_2$, else fmpz_mpoly.

Measured on 2 cores (best of 3; time of Kronecker ÷ time of ``fmpz_mpoly``): 3×3 at
n = 100, 200, 400: 2.1, 4.9, 9.2; 5×5 at n = 40, 60, 100: 0.55, 0.91, 1.5; 7×7 at n = 50, 80:
0.82, 0.97; 9×9 at n = 20, 60, 120: 0.12, 0.43, 0.83; 15×15 at n = 10, 40, 80: 0.04, 0.11,
0.22. The sparse power costs about (terms of the result) × (terms of the kernel), the packed
one about a squaring of $n^2 k^2$ coefficients of $n$-fold size, so the crossover sits near
$n \\approx 2 k_1 k_2$.
"""


class Power2D:
    r"""$V(x, y)^n$ for a non-separable integer 2-D kernel, by the faster flint route.

    Either python-flint's sparse ``fmpz_mpoly`` power, or Kronecker substitution
    $x \\mapsto z^{L_2}$ ($L_2 = n(k_2 - 1) + 1$, so no two monomials collide) into one
    ``fmpz_poly`` power; see `KRONECKER_DEPTH_FACTOR`. The caller checks the size first.

    Attributes:
        method: ``"kronecker"`` or ``"mpoly"``.
    """

    __slots__ = ("_mpoly", "_poly", "_width", "method")

    def __init__(self, rows: Sequence[Sequence[int]], n: int) -> None:
        k1, k2 = len(rows), len(rows[0])
        self._width = n * (k2 - 1) + 1
        self._poly: Any = None
        self._mpoly: Any = None
        if n < KRONECKER_DEPTH_FACTOR * k1 * k2:
            self.method = "kronecker"
            packed = [0] * ((k1 - 1) * self._width + k2)
            for i in range(k1):
                for j in range(k2):
                    packed[i * self._width + j] = rows[i][j]
            self._poly = flint.fmpz_poly(packed) ** n
        else:
            self.method = "mpoly"
            ctx = flint.fmpz_mpoly_ctx.get(("x", "y"), "lex")
            base = ctx.from_dict(
                {(i, j): rows[i][j] for i in range(k1) for j in range(k2) if rows[i][j]}
            )
            self._mpoly = base**n

    def terms(self) -> Iterator[tuple[tuple[int, int], Any]]:
        """The non-zero coefficients as ``((row, column), fmpz)``."""
        if self._mpoly is not None:
            yield from zip(self._mpoly.monoms(), self._mpoly.coeffs(), strict=True)
            return
        p, width = self._poly, self._width
        for idx in range(p.degree() + 1):
            c = p[idx]
            if c != 0:
                yield divmod(idx, width), c

    def __getitem__(self, index: tuple[int, int]) -> Any:
        if self._mpoly is not None:
            return self._mpoly[index]
        return self._poly[index[0] * self._width + index[1]]


def log_abs(c: Any) -> float:
    """$\\log |c|$ for a huge integer (fmpz or int) without overflow."""
    c = abs(int(c))
    bits = c.bit_length()
    if bits <= 1000:
        return math.log(c)
    shift = bits - 64
    return math.log(c >> shift) + shift * math.log(2)


# ---------------------------------------------------------------- guards and single values
WORK_PER_LIMIT_BYTE = 32
"""Big-integer work allowed per byte of the memory limit (see `check_work`)."""
WORK_FLOOR = 1024**3
"""Work below this (about half a second) is always allowed, whatever the memory limit."""
WORK_RATE = 2.5 * 1024**3
"""Work units per second, measured on 2 cores: Miller's recurrence streams about 2.5 GiB
of big integers per second with small weights (0.4 s per GiB, k = 3)."""
BS_WORK_FACTOR = 5.0
"""Binary splitting: work per byte of the product tree per level and per log2 of its size
(calibrated: `uniform_coefficient` at k = 3, n = 10^6, centre, 2.3 s)."""
FFT_WORK_FACTOR = 32.0
"""One GMP operation on B bytes of result (binomials, powers, gcds): work
``FFT_WORK_FACTOR * B * log2(B)`` (gmpy2.comb(10^8, 5·10^7) took 3.4 s)."""
LEAF_WORK = 256.0
"""Work of one multiplication by a small integer at Python speed (about 0.1 µs)."""
_COEFFICIENT_HINT = (
    "use profile(..., method='arb').ball(t) for a certified value or method='float', or "
    "raise the limit with erftheory.memory_limit(...)"
)


def _fmt(x: int) -> str:
    from ..kernel import format_value

    return format_value(x, short=True)


def fl(x: Any) -> float:
    """``float(x)``, or inf where ``x`` is an int beyond float64's range."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def mul(n: Any, x: float) -> float:
    """``n * x`` in float without OverflowError for huge ints (and ``0 * huge = 0``)."""
    if x == 0 or n == 0:
        return 0.0
    return fl(n) * x


def _bytes_text(estimate: float) -> str:
    if estimate < 2.0**70:
        return f"about {_config.format_bytes(float(estimate))}"
    if not math.isfinite(estimate):
        return "more than 10^300 bytes"
    return f"about 10^{math.log10(estimate):.0f} bytes"


def guard(estimate: Any, what: str, hint: str = "") -> None:
    """`erftheory._config.check_size` for estimates of any size (ints, floats, inf).

    Raises `SizeLimitError` when ``estimate`` bytes exceed the memory limit, before
    anything is allocated; huge estimates are printed as powers of ten.
    """
    est = fl(estimate)
    if math.isnan(est):
        est = math.inf
    limit = _config.get_memory_limit()
    if est <= limit:
        return
    if est < 2.0**70:
        _config.check_size(est, what, hint)
    message = (
        f"{what} would need {_bytes_text(est)}, above the memory limit of "
        f"{_config.format_bytes(limit)}"
    )
    if hint:
        message += f"; {hint}"
    raise SizeLimitError(message, int(min(est, 2.0**200)), limit)


def work_budget() -> int:
    """The work `check_work` allows: `WORK_PER_LIMIT_BYTE` × the memory limit (at least
    `WORK_FLOOR`), so that raising the memory limit also lets longer computations run."""
    return max(WORK_FLOOR, WORK_PER_LIMIT_BYTE * _config.get_memory_limit())


def check_work(work: Any, what: str, hint: str = "") -> None:
    """Refuse, up front, exact work that would take minutes.

    ``work`` is in bytes of big-integer data streamed through the CPU (the cost of Miller's
    recurrence, about `WORK_RATE` per second; other algorithms are converted to it by the
    factors above). The limit is `work_budget`: 64 GiB, about 25 s, at the default 2 GiB
    memory limit.
    """
    w = fl(work)
    if math.isnan(w):
        w = math.inf
    budget = work_budget()
    if w <= budget:
        return
    seconds = w / WORK_RATE
    when = f"about {seconds:.0f} s" if seconds < 1e7 else "far longer than a day"
    message = (
        f"{what} would stream {_bytes_text(w)} of big-integer data ({when} on 2 cores), "
        f"above the work limit of {_config.format_bytes(budget)} (32 x the memory limit)"
    )
    if hint:
        message += f"; {hint}"
    raise SizeLimitError(message, int(min(w, 2.0**200)), budget)


def fft_work(bits: float) -> float:
    """Work of one GMP operation with a result of ``bits`` bits (see `FFT_WORK_FACTOR`)."""
    b = max(fl(bits), 0.0) / 8
    return FFT_WORK_FACTOR * b * math.log2(b + 2)


def binom_bits(big: int, small: int) -> float:
    r"""An upper bound on $\log_2 \binom{N}{K}$: $K \log_2(eN/K)$ with $K = \min(K, N-K)$."""
    small = min(small, big - small)
    if small <= 0:
        return 1.0
    return mul(small, math.log2(math.e) + math.log2(big) - math.log2(small)) + 1.0


def _binom(big: int, small: int) -> Any:
    """$\binom{N}{K}$ as ``gmpy2.mpz`` (the caller checks the size)."""
    small = min(small, big - small)
    if small < 0:
        return gmpy2.mpz(0)
    return gmpy2.comb(big, small)


def _log2_abs(x: int) -> float:
    return math.log2(abs(x)) if x else -math.inf


def binomial_power(core: Sequence[int]) -> Fraction | None:
    r"""$\rho$ with ``core`` $= u_0 (1 + \rho z)^m$ exactly ($m = $ ``len(core) - 1``), or None.

    Such kernels ($[1, 2, 1] = (1 + z)^2$, any two taps, $[1, -3, 3, -1]$) have the
    single coefficients $[z^s]\,(u_0 (1+\rho z)^m)^n = u_0^n \binom{mn}{s} \rho^s$.

    Example:
        >>> binomial_power([1, 2, 1]), binomial_power([4, 2]), binomial_power([1, 1, 1])
        (Fraction(1, 1), Fraction(1, 2), None)
    """
    m = len(core) - 1
    if m < 1 or core[0] == 0:
        return None
    rho = Fraction(core[1], m * core[0])
    power = Fraction(1)
    for j in range(m + 1):
        if core[j] != core[0] * math.comb(m, j) * power:
            return None
        power *= rho
    return rho


def prefix_bits_bound(core: Sequence[int], n: int, t: int) -> float:
    r"""An upper bound on the bits of each of $a_0, \dots, a_t$ of $U(z)^n$.

    Cauchy's bound $|a_s| \le V_{|u|}(r)^n / r^s$ is increasing in $s$ for $r \le 1$, so
    $\min_{r \le 1} (n \log_2 V_{|u|}(r) - t \log_2 r)$ bounds them all (+2 for rounding and
    the sign).
    """
    logs = np.array([_log2_abs(int(w)) for w in core], dtype=float)
    m = np.nonzero(np.isfinite(logs))[0]
    s = np.linspace(-64.0, 0.0, 257)
    a = logs[m][None, :] + s[:, None] * m[None, :]
    top = a.max(axis=1)
    lv = top + np.log2(np.exp2(a - top[:, None]).sum(axis=1))
    nf, tf = fl(n), fl(t)
    with np.errstate(invalid="ignore", over="ignore"):
        bound = np.where(lv == 0, 0.0, nf * lv) - tf * s
    best = float(np.nanmin(bound))
    return max(best, 0.0) + 2.0


def stream_work(core: Sequence[int], n: int, bits: float, last: int) -> float:
    """Work of Miller's recurrence on ``core`` streaming coefficients of ``bits`` bits in all.

    Each step multiplies the previous ``len(core) - 1`` values by ``((n+1)m - t) w_m``
    and divides by ``t w_0``: work proportional to the bits times the limbs of those
    small factors.
    """
    extra = math.log2(fl(n) * len(core) + 2) + math.log2(fl(last) + 2)
    limbs = sum(math.ceil((_log2_abs(int(w)) + extra) / 64) for w in core[1:] if w != 0)
    limbs += math.ceil((_log2_abs(int(core[0])) + extra) / 64)
    return max(fl(bits), 0.0) / 8 * limbs


def single_coefficient(ints: Sequence[int], n: int, t: int) -> int:
    r"""$[z^t]\,V(z)^n$ for an integer kernel, without the other coefficients where possible.

    $V(z) = z^a U(z^g)$ is reduced first (`reduce_support`); the nearer end is used
    ($[z^s]U^n = [z^{nm-s}]\tilde U^n$ for the reversed $\tilde U$). Then

    - binomial powers $U = u_0(1+\rho z)^m$ (`binomial_power`: every 2-tap kernel,
      $[1, 2, 1]$, ...): $u_0^n \binom{mn}{s}\rho^s$ with gmpy2;
    - equal taps: $u_0^n$ times `uniform_coefficient` (binary splitting);
    - otherwise Miller's recurrence (`stream_power_1d`) up to $s$.

    Memory and work are checked up front (`guard`, `check_work`): the result needs up to
    $n \log_2 \sum|w|$ bits, so $n = 10^{10}$ is refused in microseconds instead of GMP
    aborting the process after minutes.

    Example:
        >>> single_coefficient([1, 2, 1], 10**5, 10**5) == math.comb(2 * 10**5, 10**5)
        True
    """
    if n == 0:
        return 1 if t == 0 else 0
    if not any(ints):
        return 0
    lead, step, core = reduce_support(list(ints))
    shift = t - n * lead
    if shift < 0 or shift % step:
        return 0
    s = shift // step
    m = len(core) - 1
    last = n * m
    if s > last:
        return 0
    if m == 0:
        guard(mul(n, _log2_abs(core[0])) / 8 + 64, "the exact coefficient", _COEFFICIENT_HINT)
        return int(gmpy2.mpz(core[0]) ** n)
    if 2 * s > last:
        core, s = core[::-1], last - s
    what = f"the exact coefficient at {_fmt(t)} of {_fmt(n)} layers"
    u0 = int(core[0])
    scale_bits = mul(n, _log2_abs(u0))
    rho = binomial_power(core)
    if rho is not None:
        bits = (
            scale_bits
            + binom_bits(last, s)
            + mul(s, abs(_log2_abs(rho.numerator)) + math.log2(rho.denominator))
        )
        guard(3 * bits / 8 + 4096, what, _COEFFICIENT_HINT)
        check_work(4 * fft_work(bits), what, _COEFFICIENT_HINT)
        value = _binom(last, s) * gmpy2.mpz(u0) ** n * gmpy2.mpz(rho.numerator) ** s
        return int(gmpy2.divexact(value, gmpy2.mpz(rho.denominator) ** s))
    if is_uniform(core):
        guard(2 * scale_bits / 8 + 64, what, _COEFFICIENT_HINT)
        check_work(fft_work(scale_bits), what, _COEFFICIENT_HINT)
        value = uniform_coefficient(len(core), n, s)
        return value if u0 == 1 else int(gmpy2.mpz(u0) ** n * value)
    per = prefix_bits_bound(core, n, s)
    guard(len(core) * (per / 8 + 64) + 4096, what, _COEFFICIENT_HINT)
    check_work(stream_work(core, n, mul(s + 1, per), s), what, _COEFFICIENT_HINT)
    for i, c in enumerate(stream_power_1d(core, n)):
        if i == s:
            return c
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------- the engine's results
_HINT = "use profile(..., method='float') or raise erftheory.set_memory_limit()"
# A full power below this many bytes is computed (and kept) to answer coefficient(t):
# it costs about as much as one coefficient by the recurrence, and later reads are free.
_SMALL_POWER = 64 * 1024**2


def checked_power(base: int, n: int, what: str = "the exact total") -> int:
    """``base ** n`` (with gmpy2) after checking its memory and its work."""
    if abs(base) > 1:
        bits = mul(n, math.log2(abs(base)))
        guard(2 * bits / 8 + 64, what, _HINT)
        check_work(fft_work(bits), what, _HINT)
        return int(gmpy2.mpz(base) ** n)
    return base**n  # -1, 0 or 1: cheap at any n


def _exact_value(c: Any, den: int, scale: int) -> Any:
    """A coefficient ``c / scale`` of an integer-form kernel with denominator ``den``."""
    if den == 1:
        return int(c)
    c = int(c)
    check_work(
        fft_work(max(c.bit_length(), scale.bit_length())),
        "reducing the exact coefficient",
        _HINT,
    )
    return reduced_fraction(c, scale)


def plan(source: Source) -> str:
    """Which algorithm `build` runs for ``source`` (`erftheory.Profile.engine_reason`)."""
    n = source.n
    if source.ndim == 2:
        if source.domain != "float" and source.axis_factors() is not None:
            return "separable 2-D: outer product of two 1-D powers"
        k1, k2 = source.shape
        if n < KRONECKER_DEPTH_FACTOR * k1 * k2:
            return "non-separable 2-D: Kronecker substitution into one fmpz_poly power"
        return "non-separable 2-D: fmpz_mpoly power"
    ints, _ = source.integer_form()
    if use_uniform_recurrence(ints, n):
        return "uniform taps: three-term recurrence on half the coefficients"
    return "fmpz_poly power; Miller's streaming recurrence if the power exceeds the memory limit"


def build(source: Source, dps: int | None = None) -> BaseResult:
    """The exact result for ``source`` (integer, rational or float weights; ``dps`` unused)."""
    ints, den = source.integer_form()
    n = source.n
    if source.ndim == 1:
        return Exact1D(source, Power1D(ints, den, n))
    factors = source.axis_factors() if source.domain != "float" else None
    if factors is not None:
        (u, du), (v, dv) = factors
        return ExactSeparable(source, Power1D(u, du, n), Power1D(v, dv, n))
    return Exact2D(source, ints, den)


class Power1D:
    """Exact coefficients of $(W / D)^n$ for one integer kernel $W$ (indices are ints).

    The power is flint's (or the uniform recurrence's), after a memory estimate; where it
    would not fit, values are streamed by Miller's recurrence after a work estimate.
    """

    def __init__(self, ints: list[int], den: int, n: int) -> None:
        self.ints, self.den = ints, den
        self.n = n
        self.length = n * (len(self.ints) - 1) + 1
        self._poly: Any = None
        self._bits: tuple[float, int] | None = None

    @property
    def bits(self) -> float:
        if self._bits is None:
            guard(bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT)
            self._bits = coefficient_bits_bound(self.ints, self.n)
        return self._bits[0]

    @property
    def poly_bytes(self) -> float:
        return poly_bytes(self.bits, self.length)

    def poly(self) -> Any:
        if self._poly is None:
            guard(bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT)
            if POW_PEAK_FACTOR * self._crude_bytes() > _config.get_memory_limit():
                # Only then is the refined (rigorous, tighter, ~5 ms) estimate worth its cost.
                guard(POW_PEAK_FACTOR * self.poly_bytes, "the exact coefficients", _HINT)
            if self.uniform:
                self._poly = UniformPower(len(self.ints), self.n, self.ints[0])
            else:
                self._poly = power_1d(self.ints, self.n)
        return self._poly

    def _crude_bytes(self) -> float:
        r"""$L\,(n \log_2 \sum|w| + 2)/8 + 48L$: an upper bound above `poly_bytes`, in O(k)."""
        l1 = sum(abs(w) for w in self.ints)
        bits = mul(self.n, math.log2(l1)) + 2 if l1 > 1 else 2.0
        return mul(self.length, bits / 8 + 48)

    @property
    def uniform(self) -> bool:
        """Equal taps, k >= 4: the three-term recurrence beats flint's power."""
        return use_uniform_recurrence(self.ints, self.n)

    def compute(self) -> None:
        self.poly()

    def _power_fits(self) -> bool:
        """Whether the whole power is within the memory limit (refined estimate)."""
        limit = _config.get_memory_limit()
        if bytes_lower_bound(len(self.ints), self.n) > limit:
            return False
        if POW_PEAK_FACTOR * self._crude_bytes() <= limit:
            return True
        return POW_PEAK_FACTOR * self.poly_bytes <= limit

    def _core(self) -> tuple[int, int, list[int]]:
        return reduce_support(self.ints)

    def _stream_work(self) -> float:
        """Work of streaming every coefficient (`check_work` units)."""
        _, _, core = self._core()
        return stream_work(core, self.n, self.bits, self.length)

    def log_normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(self.ints))
        guard(mul(self.length, 8.0), "the log-profile", "use fewer layers")
        if self._poly is not None or self._power_fits():
            p = self.poly()
            values: Any = (p[t] for t in range(self.length))
        else:
            work = self._stream_work()
            try:
                check_work(work, "the exact log-profile", _HINT)
            except SizeLimitError:
                tilted = self._tilted_log()
                if tilted is None:
                    raise
                return tilted
            values = stream_power_1d(self.ints, self.n)
        log_total = log_abs(self.total_int())
        out = np.empty(self.length)
        for t, c in enumerate(values):
            out[t] = log_abs(c) - log_total if c != 0 else -math.inf
        return out

    def _tilted_log(self) -> np.ndarray | None:
        """The ``float`` engine's tilted logs (absolute error about 1e-10), where the weights
        are nonnegative and float64 holds their ratios; else None."""
        from .tilted import tilted_power_1d

        if any(w < 0 for w in self.ints):
            return None
        big = max(self.ints)
        if any(0 < w and w.bit_length() < big.bit_length() - 1000 for w in self.ints):
            return None  # a ratio below 2**-1000: float64 would drop or blur it
        shift = max(0, big.bit_length() - 1000)
        weights = np.array([float(w >> shift) if shift else float(w) for w in self.ints])
        return tilted_power_1d(weights, self.n, log=True)

    @cached_property
    def scale(self) -> int:
        """$D^n$: the common denominator of the coefficients."""
        return checked_power(self.den, self.n, "the common denominator D**n")

    def _value(self, c: Any) -> Any:
        return _exact_value(c, self.den, self.scale if self.den != 1 else 1)

    def coefficients(self) -> list[Any]:
        guard(bytes_lower_bound(len(self.ints), self.n), "the exact coefficients", _HINT)
        bits = self.bits
        den_bits = mul(self.length, mul(self.n, math.log2(self.den)))
        guard(
            POW_PEAK_FACTOR * self.poly_bytes + python_bytes(bits + den_bits, self.length),
            "the exact coefficients",
            _HINT,
        )
        if self.den != 1:  # one gcd of D**n with every coefficient
            check_work(
                mul(self.length, fft_work(mul(self.n, math.log2(self.den)))),
                "reducing the exact coefficients",
                _HINT,
            )
        p = self.poly()
        if self.den == 1:  # integer kernels: the coefficients as they are
            return [int(c) for c in p.coeffs()] + [0] * (self.length - p.degree() - 1)
        deg = p.degree()
        return [self._value(p[t]) if t <= deg else 0 for t in range(self.length)]

    def coefficient(self, t: int) -> Any:
        if self._poly is not None:
            p = self._poly
            return self._value(p[t]) if t <= p.degree() else 0
        small = min(_SMALL_POWER, _config.get_memory_limit())
        if (
            self.n > 0
            and not self._closed_form()
            and (
                bytes_lower_bound(len(self.ints), self.n) <= small
                and POW_PEAK_FACTOR * self._crude_bytes() <= small
            )
        ):
            p = self.poly()
            return self._value(p[t]) if t <= p.degree() else 0
        # One coefficient: a closed form (binomial powers, equal taps) or Miller's
        # recurrence up to t, each after its own memory and work estimate.
        return self._value(single_coefficient(self.ints, self.n, t))

    def _closed_form(self) -> bool:
        _, _, core = self._core() if any(self.ints) else (0, 1, [0])
        return is_uniform(core) or binomial_power(core) is not None

    def total_int(self) -> int:
        return checked_power(sum(self.ints), self.n)

    def normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(self.ints), self.ints)
        guard(mul(self.length, 8.0), "the normalised profile", "use fewer layers")
        if self._poly is None and not self._power_fits():
            check_work(
                self._stream_work(),
                "exact normalisation",
                "use profile(..., method='float') or raise erftheory.memory_limit(...)",
            )
            conv = ratio_to_float(self.total_int())
            out = np.empty(self.length)
            for t, c in enumerate(stream_power_1d(self.ints, self.n)):
                out[t] = conv(c)
            return out
        conv = ratio_to_float(self.total_int())
        p = self.poly()
        deg = p.degree()
        out = np.empty(self.length)
        for t in range(self.length):
            out[t] = conv(p[t]) if t <= deg else 0.0
        return out


class _ExactResult(BaseResult):
    """The exact engine's error bound: rounding only, $2^{-53}\\max_t c_t$."""

    @property
    def abs_error_bound(self) -> float | None:
        return float(np.max(np.abs(self.normalized()))) * 2.0**-53


class Exact1D(_ExactResult):
    """A 1-D exact profile: one `Power1D`."""

    def __init__(self, source: Source, power: Power1D) -> None:
        super().__init__(source)
        self.power = power

    def coefficients(self) -> list[Any]:
        return self.power.coefficients()

    def coefficient(self, index: tuple[int, ...]) -> Any:
        return self.power.coefficient(index[0])

    def compute(self) -> None:
        self.power.compute()

    def _normalized(self) -> np.ndarray:
        return self.power.normalized()

    def _log_normalized(self) -> np.ndarray:
        return self.power.log_normalized()


class ExactSeparable(_ExactResult):
    """A separable 2-D kernel u ⊗ v: the profile is the outer product of 1-D profiles."""

    def __init__(self, source: Source, rows: Power1D, cols: Power1D) -> None:
        super().__init__(source)
        self.rows, self.cols = rows, cols

    def coefficients(self) -> list[list[Any]]:
        count = self.rows.length * self.cols.length
        guard(mul(count, 56.0), "the exact coefficients", _HINT)
        bits = mul(self.cols.length, self.rows.bits) + mul(self.rows.length, self.cols.bits)
        den_bits = mul(count, mul(self.rows.n, math.log2(self.rows.den * self.cols.den)))
        guard(
            python_bytes(bits + den_bits, count) + mul(count, 8.0),
            "the exact coefficients",
            _HINT,
        )
        r = self.rows.coefficients()
        c = self.cols.coefficients()
        return [[a * b for b in c] for a in r]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        return self.rows.coefficient(index[0]) * self.cols.coefficient(index[1])

    def compute(self) -> None:
        self.rows.compute()
        self.cols.compute()

    def _log_normalized(self) -> np.ndarray:
        guard(mul(self.rows.length * self.cols.length, 8.0), "the log-profile", "use fewer layers")
        with np.errstate(invalid="ignore"):
            return np.add.outer(self.rows.log_normalized(), self.cols.log_normalized())

    def _normalized(self) -> np.ndarray:
        guard(
            mul(self.rows.length * self.cols.length, 8.0),
            "the normalised profile",
            "use fewer layers",
        )
        return np.outer(self.rows.normalized(), self.cols.normalized())


class Exact2D(_ExactResult):
    """A non-separable 2-D exact kernel (`Power2D`: Kronecker or mpoly)."""

    def __init__(self, source: Source, ints: list[int], den: int) -> None:
        super().__init__(source)
        self.den = den
        k2 = source.shape[1]
        self.rows = [ints[i * k2 : (i + 1) * k2] for i in range(source.shape[0])]
        self.n = source.n
        self._grid: list[list[Any]] | None = None
        self._power: Any = None

    def power(self) -> Any:
        """The power as a `Power2D` (computed once; no dense grid yet)."""
        if self._power is None:
            guard(POW_PEAK_FACTOR * self._bytes(), "the exact coefficients", _HINT)
            self._power = Power2D(self.rows, self.n)
        return self._power

    def compute(self) -> None:
        self.power()

    def _log_normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(sum(r) for r in self.rows))
        guard(mul(self.shape[0] * self.shape[1], 8.0), "the log-profile", _HINT)
        power = self.power()
        lt = log_abs(self.total_int())
        out = np.full(self.shape, -math.inf)
        for (i, j), c in power.terms():
            out[i, j] = log_abs(c) - lt
        return out

    def _bytes(self, den: bool = False) -> float:
        total_abs = sum(abs(x) for r in self.rows for x in r)
        bits = mul(self.n, math.log2(total_abs)) + 2 if total_abs else 1.0
        if den:  # the reduced Fractions' denominators, up to D**n each
            bits += mul(self.n, math.log2(self.den))
        count = self.shape[0] * self.shape[1]
        return mul(count, bits / 8 + 48 + 16)

    def grid(self) -> list[list[Any]]:
        if self._grid is None:
            guard(POW_PEAK_FACTOR * self._bytes(), "the exact coefficients", _HINT)
            grid: list[list[Any]] = [[0] * self.shape[1] for _ in range(self.shape[0])]
            for (i, j), c in self.power().terms():
                grid[i][j] = c
            self._grid = grid
        return self._grid

    @cached_property
    def scale(self) -> int:
        """$D^n$: the common denominator of the coefficients."""
        return checked_power(self.den, self.n, "the common denominator D**n")

    def _value(self, c: Any) -> Any:
        return _exact_value(c, self.den, self.scale if self.den != 1 else 1)

    def coefficients(self) -> list[list[Any]]:
        guard(
            POW_PEAK_FACTOR * self._bytes() + self._bytes(den=True),
            "the exact coefficients",
            _HINT,
        )
        return [[self._value(c) for c in row] for row in self.grid()]

    def coefficient(self, index: tuple[int, ...]) -> Any:
        if self._grid is None:
            return self._value(self.power()[(index[0], index[1])])
        return self._value(self._grid[index[0]][index[1]])

    def _normalized(self) -> np.ndarray:
        require_nonzero_sum(sum(sum(r) for r in self.rows))
        guard(mul(self.shape[0] * self.shape[1], 8.0), "the normalised profile", _HINT)
        grid = self.grid()
        conv = ratio_to_float(self.total_int())
        return np.array([[conv(c) for c in row] for row in grid], dtype=float)

    def total_int(self) -> int:
        return checked_power(sum(sum(r) for r in self.rows), self.n)
