r"""Eq. (6)–(8): random zero-mean weights give zero expected gradient and a variance image
equal to $C$ times the all-ones convolution of the variance image above.

Eq. (6) as printed indexes the upper gradient as $g(i+a, i+b, p)$; the second index must
be $j + b$. The printed form makes $g(i, j, p-1)$ independent of $j$, so the variance
image would not be a 2-D convolution at all (the ``"typo"`` variant shows it fails).

Symbolic part (general $k$, every layer): with $\mathbb E[w_{a,b}] = 0$,
$\mathbb E[w_{a,b} w_{c,d}] = C\,\delta_{ac}\delta_{bd}$ and the weights independent of the
upper gradients, the quadruple sum over $a, b, c, d \in \{0..k-1\}$ of
$\mathbb E[w_{a,b}w_{c,d}]\,\mathbb E[g_{a,b} g_{c,d}]$ reduces, for symbolic $k$, to
$C\sum_{a,b}\mathbb E[g_{a,b}^2]$, and $\mathbb E[g(\cdot, p-1)] = 0$ by linearity: Eq. (7)
and (8). By induction on layers the variance image is $C^n$ times the $n$-fold
convolution of the $k\times k$ ones kernel.

Numeric spot checks: an explicit backward pass through $n = 2$ layers of $3\times 3$
symbolic weights (shared across positions, independent across taps and layers); the
exact expectation of $g(\cdot,\cdot,0)$ and $g(\cdot,\cdot,0)^2$ over the weights
(moment table: $\mathbb E[w]=0$, $\mathbb E[w^2]=C$) is compared with
$C^n\cdot$ `erftheory.profile(Kernel.uniform((3, 3)), n)`.
"""

from __future__ import annotations

import sympy

from erftheory import Kernel, profile

from ._util import expect, pick, require, zero

NAME = "eq06_08_random_weights"
SECTION = "2.2"
STATEMENT = (
    "With i.i.d. zero-mean weights of variance C, E[g(i,j,p-1)] = 0 and Var[g(i,j,p-1)] = "
    "C * sum_{a,b} Var[g(i+a, j+b, p)], so the input variance image is C^n times the ERF of "
    "the all-ones kernel (Eq. 6 must read g(i+a, j+b, p), not g(i+a, i+b, p))."
)
LATEX = (
    r"g(i,j,p-1) = \sum_{a,b=0}^{k-1} w^p_{a,b}\, g(i+a, j+b, p),\quad "
    r"\mathbb E[g(i,j,p-1)] = 0,\quad \mathrm{Var}[g(i,j,p-1)] = "
    r"C\sum_{a,b=0}^{k-1}\mathrm{Var}[g(i+a,j+b,p)]"
)
ERRATUM = (
    "Eq. 6 (and 7, 8, 12) index the upper gradient as g(i+a, i+b, p); it must be g(i+a, j+b, p)."
)
VARIANTS = {
    "typo": "Eq. 6 as printed, with the second index i + b",
    "wrong": "variance image C^(n+1) instead of C^n times the ones-kernel ERF",
}

_K = 3
_LAYERS = 2


def _sum_over_taps(expr: sympy.Expr, idx: tuple[sympy.Symbol, ...], k: sympy.Symbol) -> sympy.Expr:
    """Evaluate a nested sum over tap indices in [0, k-1], dropping range-implied conditions."""
    out = sympy.Sum(expr, *[(i, 0, k - 1) for i in reversed(idx)]).doit()

    def drop(*pieces: tuple[sympy.Expr, sympy.Basic]) -> sympy.Expr:
        value, cond = pieces[0]
        for rel in sympy.And.make_args(cond):
            # Every condition left must be 'index <= k - 1' (or its rearrangement), which
            # the summation range guarantees.
            implied = any(
                sympy.simplify(rel.subs(i, k - 1)) is sympy.true
                and sympy.simplify(rel.subs(i, k)) is sympy.false
                for i in idx
            )
            require(implied, f"condition {rel} is not implied by the summation range")
        return value

    return out.replace(lambda e: isinstance(e, sympy.Piecewise), lambda e: drop(*e.args))


def _backprop(
    weights: list[list[list[sympy.Symbol]]], typo: bool
) -> dict[tuple[int, int], sympy.Expr]:
    """Explicit backward pass of Eq. 6 from the unit gradient at the output centre."""
    span = _LAYERS * (_K - 1)
    g: dict[tuple[int, int], sympy.Expr] = {(0, 0): sympy.Integer(1)}
    for p in range(_LAYERS, 0, -1):
        w = weights[p - 1]
        lower: dict[tuple[int, int], sympy.Expr] = {}
        for i in range(-span, 1):
            for j in range(-span, 1):
                total = sympy.Integer(0)
                for a in range(_K):
                    for b in range(_K):
                        src = (i + a, (i if typo else j) + b)
                        if src in g:
                            total += w[a][b] * g[src]
                if total != 0:
                    lower[(i, j)] = sympy.expand(total)
        g = lower
    return g


def verify(variant: str | None = None) -> None:
    """Derive Eq. (7)–(8) for symbolic k, then check an explicit 2-layer 3x3 network."""
    pick(variant, VARIANTS)
    extra = 1 if variant == "wrong" else 0
    C = sympy.Symbol("C", positive=True)
    k = sympy.Symbol("k", integer=True, positive=True)
    a, b, c, d = sympy.symbols("a b c d", integer=True, nonnegative=True)
    h = sympy.Function("h")  # h(a, b, c, d) = E[g(i+a, j+b) g(i+c, j+d)]
    Ew = sympy.Function("Ew")  # E[w_ab] = 0

    # Eq. 7: E[sum w_ab g_ab] = sum E[w_ab] E[g_ab] = 0 when E[w] = 0.
    mean = _sum_over_taps(Ew(a, b) * h(a, b, a, b), (a, b), k).replace(Ew, lambda *_: 0)
    zero(mean, "Eq. 7")
    # Eq. 8: sum_{abcd} E[w_ab w_cd] E[g_ab g_cd] with E[w_ab w_cd] = C delta delta.
    second = _sum_over_taps(
        C * sympy.KroneckerDelta(a, c) * sympy.KroneckerDelta(b, d) * h(a, b, c, d), (a, b, c, d), k
    )
    claim = C ** (1 + extra) * sympy.Sum(h(a, b, a, b), (b, 0, k - 1), (a, 0, k - 1))
    zero(second - claim, "Eq. 8 for symbolic k")

    # Numeric: explicit backward pass with symbolic weights, exact expectation.
    weights = [
        [[sympy.Symbol(f"w{p}_{aa}{bb}") for bb in range(_K)] for aa in range(_K)]
        for p in range(1, _LAYERS + 1)
    ]
    table = {}
    for layer in weights:
        for row in layer:
            for x in row:
                table[x] = lambda e: {0: 1, 1: 0, 2: C}.get(e, sympy.Symbol(f"mu{e}"))
    g0 = _backprop(weights, typo=variant == "typo")
    ones = profile(Kernel.uniform((_K, _K)), layers=_LAYERS).coefficients
    span = _LAYERS * (_K - 1)
    for i in range(-span, 1):
        for j in range(-span, 1):
            g = g0.get((i, j), sympy.Integer(0))
            require(expect(g, table) == 0, f"E[g({i},{j},0)] is not 0")
            var = expect(g**2, table)
            want = C ** (_LAYERS + extra) * ones[-i][-j]
            require(var == want, f"Var[g({i},{j},0)] = {var}, expected {want}")
