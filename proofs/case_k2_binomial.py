r"""Section 2.1, case $k = 2$: $o(t) = \binom{n}{t}$.

Symbolic part (general $n$, $t$): induction on $n$. The base case $n = 0$ is the
impulse $u = \delta$. One more layer of the kernel $[1, 1]$ maps $o_n$ to
$o_{n+1}(t) = o_n(t) + o_n(t-1)$, and Pascal's rule
$\binom{n}{t} + \binom{n}{t-1} = \binom{n+1}{t}$ holds for symbolic $n, t$.
The generating function $(1+z)^n$ has the binomial series as its Taylor expansion for
symbolic $n$ (checked term by term up to $z^6$).

Numeric spot checks: `erftheory.extended_binomial` and `erftheory.profile` against
`math.comb` for $n \le 200$.
"""

from __future__ import annotations

import math

import sympy

from erftheory import extended_binomial, profile

from ._util import pick, require, zero

NAME = "case_k2_binomial"
SECTION = "2.1"
STATEMENT = "For the kernel [1, 1] (k = 2), the ERF of n layers is the binomial row o(t) = C(n, t)."
LATEX = (
    r"k = 2:\quad (1 + e^{-j\omega})^n = \sum_{t=0}^{n} \binom{n}{t} e^{-j\omega t},"
    r"\qquad o(t) = \binom{n}{t}"
)
VARIANTS = {"wrong": "o(t) = C(n + 1, t) (an off-by-one in the exponent)"}


def verify(variant: str | None = None) -> None:
    """Prove $o(t) = \\binom{n}{t}$ by induction with sympy, then spot-check it exactly."""
    pick(variant, VARIANTS)
    shift = 1 if variant == "wrong" else 0
    n, t = sympy.symbols("n t", integer=True, nonnegative=True)

    def claim(nn: object, tt: object) -> sympy.Expr:
        return sympy.binomial(nn + shift, tt)

    # Base case: claim(0, t) is the impulse delta(t).
    for tt in range(4):
        require(claim(0, tt) == (1 if tt == 0 else 0), f"claim(0, {tt}) is not delta({tt})")
    # Induction step o_{n+1}(t) = o_n(t) + o_n(t - 1), for symbolic n and t.
    step = claim(n, t) + claim(n, t - 1) - claim(n + 1, t)
    zero(sympy.combsimp(sympy.expand_func(step)), "Pascal induction step")
    # The Taylor coefficients of (1 + z)^n for symbolic n.
    z = sympy.Symbol("z")
    nn = sympy.Symbol("n")
    series = sympy.series((1 + z) ** nn, z, 0, 7).removeO()
    for tt in range(7):
        zero(
            sympy.expand_func(series.coeff(z, tt) - claim(nn, tt)),
            f"coefficient of z^{tt} in (1 + z)^n",
        )

    # Numeric: the exact engine.
    for layers in (0, 1, 2, 7, 30, 200):
        row = extended_binomial(layers, 2)
        require(
            row == [int(claim(layers, tt)) for tt in range(layers + 1)],
            f"extended_binomial({layers}, 2) is not the binomial row",
        )
        p = profile([1, 1], layers=layers)
        mid = layers // 2
        require(p.coefficient(mid) == math.comb(layers, mid), f"profile([1, 1], {layers}) centre")
