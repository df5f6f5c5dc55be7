r"""Eq. (9) and Section 2.3: for normalised nonnegative weights, $o(t) = P(S_n = t)$.

$S_n = X_1 + \dots + X_n$ with $X_i$ i.i.d., $P(X_i = m) = w(m)$.

Symbolic part: for generic symbolic weights $w_0, \dots, w_{k-1}$ constrained only by
$\sum_m w_m = 1$ ($k \le 4$, $n \le 4$), the probability of each sum, obtained by
enumerating all $k^n$ compositions $(x_1, \dots, x_n)$ with probability
$\prod_i w_{x_i}$, equals the coefficient of $z^t$ in $V(z)^n$ as a polynomial identity
in the weights. For every $n$ the two sides obey the same recursion: the law of total
probability $P(S_{n+1} = t) = \sum_m w(m) P(S_n = t - m)$ is the convolution
$o_{n+1} = o_n * v$, with the same start $S_0 = 0$, $o_0 = \delta$ (checked symbolically
as an identity between generating functions for generic weights).

Numeric spot checks: exact `Fraction` kernels, enumeration of all compositions
($3^7$ and $4^5$ of them) against `erftheory.profile(...).coefficients`.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import sympy

from erftheory import profile

from ._util import pick, require, zero

NAME = "eq09_probability"
SECTION = "2.3"
STATEMENT = (
    "For normalised nonnegative weights w(m), the ERF coefficient o(t) of (sum_m w(m) z^m)^n "
    "equals P(S_n = t), where S_n is a sum of n i.i.d. variables with P(X = m) = w(m) (Eq. 9)."
)
LATEX = (
    r"\Big(\sum_{m=0}^{k-1} w(m) z^m\Big)^n = \sum_t P(S_n = t)\, z^t,\quad "
    r"S_n = \sum_{i=1}^n X_i,\ P(X_i = m) = w(m),\ \sum_m w(m) = 1"
)
VARIANTS = {"wrong": "o(t) = P(S_{n+1} = t): one variable too many"}


def _enumerate(weights: list, n: int) -> dict[int, object]:
    """P(S_n = t) by brute force over all compositions."""
    out: dict[int, object] = {}
    for xs in itertools.product(range(len(weights)), repeat=n):
        out[sum(xs)] = out.get(sum(xs), 0) + math.prod((weights[x] for x in xs), start=1)
    return out


def verify(variant: str | None = None) -> None:
    """Compare enumerated probabilities with generating-function coefficients."""
    pick(variant, VARIANTS)
    extra = 1 if variant == "wrong" else 0
    z = sympy.Symbol("z")
    for k in (2, 3, 4):
        free = sympy.symbols(f"w0:{k - 1}")
        ws = [*free, 1 - sum(free)]  # the only constraint: sum to 1
        V = sum(w * z**m for m, w in enumerate(ws))
        # Law of total probability P(S_{n+1} = t) = sum_m w(m) P(S_n = t - m) is one
        # convolution: the generating function of the right side is V(z) G_n(z), for a
        # generic distribution P(S_n = j), j = 0..5, of unknowns.
        P = sympy.Function("P")
        G_n = sum(P(j) * z**j for j in range(6))
        G_next = sympy.Poly(sympy.expand(V * G_n), z)
        for t in range(6 + k - 1):
            total_prob = sum(ws[m] * P(t - m) for m in range(k) if 0 <= t - m < 6)
            zero(G_next.coeff_monomial(z**t) - total_prob, f"total probability at t = {t}")
        for n in range(1, 5 if k < 4 else 4):
            probs = _enumerate(ws, n + extra)
            poly = sympy.Poly(sympy.expand(V**n), z)
            for t in range(n * (k - 1) + 1):
                zero(poly.coeff_monomial(z**t) - probs.get(t, 0), f"P(S_{n} = {t}), k = {k}")

    for kernel, n in (
        ([Fraction(1, 6), Fraction(1, 3), Fraction(1, 2)], 7),
        ([Fraction(1, 10), Fraction(0), Fraction(2, 5), Fraction(1, 2)], 5),
    ):
        coeffs = profile(kernel, layers=n).coefficients
        probs = _enumerate(kernel, n + extra)
        require(sum(probs.values()) == 1, "the enumerated probabilities do not sum to 1")
        for t, c in enumerate(coeffs):
            require(c == probs.get(t, 0), f"o({t}) = {c} but P(S_{n} = {t}) = {probs.get(t, 0)}")
