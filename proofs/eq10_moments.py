r"""Eq. (10): mean and variance of the ERF of $n$ layers, for a general kernel of size $k$.

Symbolic part (general $k$ and $n$): with $G(z) = (V(z)/V(1))^n$ and
$V(z) = \sum_{m=0}^{k-1} w_m z^m$ (symbolic size $k$, indexed weights $w_m$, symbolic $n$),
sympy differentiates $G$ and gives $\mathbb E[S_n] = G'(1)$ and
$\mathrm{Var}[S_n] = G''(1) + G'(1) - G'(1)^2$, which reduce to
$n\sum_m m\,w(m)$ and $n\big(\sum_m m^2 w(m) - (\sum_m m\,w(m))^2\big)$ when
$\sum_m w(m) = 1$: Eq. (10). The same is checked for explicit symbolic weights
$w_0, w_1, w_2$ without normalisation, and against `erftheory.symbolic.moments`.

Numeric spot checks: the formula at numeric weights against the mean and variance
computed from the definition over the exact coefficients of `erftheory.profile`, and
against `Profile.mean` / `Profile.variance` (positions from the anchor).
"""

from __future__ import annotations

from fractions import Fraction

import sympy

from erftheory import Kernel, profile
from erftheory.symbolic import general_kernel, moments

from ._util import pick, require, variance_from_coefficients, zero

NAME = "eq10_moments"
SECTION = "2.3"
STATEMENT = (
    "For normalised weights w(m), E[S_n] = n sum_m m w(m) and Var[S_n] = n (sum_m m^2 w(m) - "
    "(sum_m m w(m))^2), from G = V^n: mean G'(1), variance G''(1) + G'(1) - G'(1)^2 (Eq. 10)."
)
LATEX = (
    r"\mathbb E[S_n] = G'(1) = n\sum_{m=0}^{k-1} m\,w(m),\quad \mathrm{Var}[S_n] = "
    r"G''(1) + G'(1) - G'(1)^2 = n\Big(\sum_{m=0}^{k-1} m^2 w(m) - \Big(\sum_{m=0}^{k-1} "
    r"m\,w(m)\Big)^2\Big),\quad G = V^n"
)
VARIANTS = {"wrong": "variance G''(1) - G'(1)^2, without the + G'(1) term"}


def _derive(V: sympy.Expr, z: sympy.Symbol, n: sympy.Expr, c: int) -> tuple[sympy.Expr, sympy.Expr]:
    """Mean and variance of (V/V(1))^n from derivatives at z = 1 (c = 1 is correct)."""
    G = (V / V.subs(z, 1)) ** n
    g1 = sympy.diff(G, z).subs(z, 1)
    g2 = sympy.diff(G, z, 2).subs(z, 1)
    return g1, g2 + c * g1 - g1**2


def _linear_sums(expr: sympy.Expr) -> sympy.Expr:
    def split(s: sympy.Sum) -> sympy.Expr:
        return sympy.Add(
            *[sympy.Sum(a, *s.limits) for a in sympy.Add.make_args(sympy.expand(s.function))]
        )

    return expr.replace(lambda e: isinstance(e, sympy.Sum), split)


def _frac(e: sympy.Expr) -> Fraction:
    r = sympy.simplify(e)
    require(r.is_Rational, f"{e} is not a rational number")
    return Fraction(int(r.p), int(r.q))


def verify(variant: str | None = None) -> None:
    """Derive Eq. (10) for symbolic k and n, then check it on exact profiles."""
    pick(variant, VARIANTS)
    c = 0 if variant == "wrong" else 1
    z = sympy.Symbol("z", positive=True)
    n = sympy.Symbol("n", positive=True)
    m = sympy.Symbol("m", integer=True, nonnegative=True)
    w, k = general_kernel()
    V = sympy.Sum(w[m] * z**m, (m, 0, k - 1))
    mean, var = (_linear_sums(x) for x in _derive(V, z, n, c))
    S0, S1, S2 = (sympy.Sum(m**j * w[m], (m, 0, k - 1)) for j in range(3))
    # Eq. 10 as printed assumes sum_m w(m) = 1: substitute S0 = 1.
    zero(mean.subs(S0, 1) - n * S1, "E[S_n], general k")
    zero(var.subs(S0, 1) - n * (S2 - S1**2), "Var[S_n], general k")
    # Without normalisation: the same with w / S0.
    zero(var - n * (S2 / S0 - (S1 / S0) ** 2), "Var[S_n], unnormalised")
    lib_mean, lib_var = moments(w, n, size=k)
    zero(lib_mean - mean, "erftheory.symbolic.moments mean")
    zero(lib_var - var, "erftheory.symbolic.moments variance")

    # Explicit symbolic weights, k = 3.
    ws = sympy.symbols("w0:3", positive=True)
    Vz = sum(x * z**j for j, x in enumerate(ws))
    mean3, var3 = _derive(Vz, z, n, c)
    tot = sum(ws)
    mu = sum(j * x for j, x in enumerate(ws)) / tot
    zero(mean3 - n * mu, "E[S_n], k = 3")
    zero(var3 - n * (sum(j * j * x for j, x in enumerate(ws)) / tot - mu**2), "Var[S_n], k = 3")

    # Numeric spot checks on exact profiles (positions from the anchor).
    kernels = ([1, 2, 3], [Fraction(1, 4), Fraction(1, 2), Fraction(1, 4)], [3, 0, 0, 1, 5], [2, 7])
    for weights in kernels:
        kern = Kernel(weights)
        Vn = sum(sympy.Rational(Fraction(x)) * z**j for j, x in enumerate(weights))
        for layers in (1, 2, 5, 13):
            p = profile(kern, layers=layers)
            fm, fv = _derive(Vn, z, sympy.Integer(layers), c)
            fm = _frac(fm) - layers * kern.anchor
            fv = _frac(fv)
            dm, dv = variance_from_coefficients(p.coefficients, p.origin)
            require(
                (fm, fv) == (dm, dv),
                f"{weights}, n = {layers}: formula {fm, fv}, definition {dm, dv}",
            )
            require((p.mean, p.variance) == (dm, dv), f"{weights}, n = {layers}: Profile moments")
