r"""Section 4: the variance (ERF size) is largest with the mass at the ends of the kernel.

Among distributions $p$ on $\{0, \dots, k-1\}$, $\mathrm{Var} \le (k-1)^2/4$ with equality
iff $p_0 = p_{k-1} = 1/2$. In 2-D, each marginal obeys the same bound and
$\det\Sigma \le \Sigma_{11}\Sigma_{22}$; the corners with equal mass $1/4$ are the unique
maximiser of $\det\Sigma$ (the area of the Gaussian ERF). Any corner distribution with
$p(0,0) = p(K,K) = a$, $p(0,K) = p(K,0) = 1/2 - a$ maximises both marginal variances, so
"equal mass at the 4 corners" is unique only for the determinant (for $a \ne 1/4$ the
ERF is a tilted ellipse, degenerate at $a \in \{0, 1/2\}$).

Symbolic part (general $k$): with $c = (k-1)/2$ and $\sum_m p_m = 1$,

$$\frac{(k-1)^2}{4} - \mathrm{Var} = \sum_{m=0}^{k-1} p_m\, m(k-1-m) + (\mathbb E X - c)^2,$$

an identity in the indexed $p_m$ for symbolic $k$. Both terms are $\ge 0$ since
$m(k-1-m) \ge 0$ on the support; equality forces the support into $\{0, k-1\}$ and
$\mathbb E X = c$, i.e. $p_0 = p_{k-1} = 1/2$ (solved). 2-D: $\det\Sigma(a) =
K^4/16 - K^4(a - 1/4)^2$ on the corner family, maximal only at $a = 1/4$.

Numeric spot checks: every distribution on a rational grid of the simplex ($k = 3$ with
denominator 12, $k = 4$ with denominator 8, and $3\times 3$ with denominator 4), with
exact `Kernel.moments` / `Kernel.covariance`; the corner kernel's exact profile
covariance after $n$ layers. That profile vanishes at odd offsets (the taps are 2 apart),
so the optimum is a Gaussian on every other pixel only, a checkerboard in 2-D.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import sympy

from erftheory import Kernel, profile

from ._util import pick, require, variance_from_coefficients, zero

NAME = "sec4_max_variance"
SECTION = "4"
STATEMENT = (
    "Among distributions on {0, ..., k-1} the variance is at most (k-1)^2/4, attained only with "
    "mass 1/2 at each end; in 2-D equal mass 1/4 at the 4 corners uniquely maximises the "
    "covariance determinant (both marginal variances are then (k-1)^2/4)."
)
LATEX = (
    r"\max_{p \in \Delta_{k}} \mathrm{Var}_p[X] = \frac{(k-1)^2}{4} \iff p_0 = p_{k-1} = "
    r"\tfrac12;\qquad \frac{(k-1)^2}{4} - \mathrm{Var} = \sum_m p_m\, m(k-1-m) + "
    r"\Big(\mathbb E X - \tfrac{k-1}{2}\Big)^2"
)
VARIANTS = {"wrong": "the maximum variance is (k-1)^2/8"}


def _simplex(k: int, den: int):
    for cut in itertools.combinations(range(den + k - 1), k - 1):
        parts = [b - a - 1 for a, b in zip((-1, *cut), (*cut, den + k - 1), strict=True)]
        yield [Fraction(x, den) for x in parts]


def verify(variant: str | None = None) -> None:
    """Prove the bound for symbolic k, then check grids of distributions exactly."""
    pick(variant, VARIANTS)
    q = 8 if variant == "wrong" else 4
    k = sympy.Symbol("k", integer=True, positive=True)
    m = sympy.Symbol("m", integer=True, nonnegative=True)
    p = sympy.IndexedBase("p")

    def S(f: sympy.Expr) -> sympy.Expr:
        return sympy.Sum(sympy.expand(f) * p[m], (m, 0, k - 1))

    def split(e: sympy.Expr) -> sympy.Expr:
        return e.replace(
            lambda x: isinstance(x, sympy.Sum),
            lambda s: sympy.Add(
                *[sympy.Sum(t, *s.limits) for t in sympy.Add.make_args(sympy.expand(s.function))]
            ),
        )

    c = (k - 1) / 2
    mean, second, total = S(m), S(m**2), S(1)
    var = second - mean**2  # with total = 1
    bound = (k - 1) ** 2 / q
    gap = split(S(m * (k - 1 - m)) + (mean - c * total) ** 2)
    zero(
        split(bound * total - var).subs(split(total), 1) - gap.subs(split(total), 1),
        "bound - Var = sum p_m m (k-1-m) + (E X - c)^2",
    )
    # m (k-1-m) >= 0 on the support, so Var <= bound; equality: support {0, k-1}, E X = c.
    mm = sympy.Symbol("mm", integer=True, nonnegative=True)
    require(sympy.factor(mm * (k - 1 - mm)) == mm * (k - 1 - mm), "the weight m(k-1-m)")
    p0, pk = sympy.symbols("p0 pk", nonnegative=True)
    sol = sympy.solve([p0 + pk - 1, (k - 1) * pk - c], [p0, pk], dict=True)
    require(sol == [{p0: sympy.Rational(1, 2), pk: sympy.Rational(1, 2)}], f"equality case {sol}")
    # 2-D corner family.
    a = sympy.Symbol("a", nonnegative=True)
    K = k - 1
    cov = K**2 * a - (K / 2) ** 2  # E[XY] - E[X] E[Y] with E[XY] = K^2 a
    det = (K**2 / q) ** 2 - cov**2
    zero(det - (K**4 / 16 - K**4 * (a - sympy.Rational(1, 4)) ** 2), "det on the corner family")
    crit = sympy.solve(sympy.diff(det, a), a)
    require(crit == [sympy.Rational(1, 4)], f"det maximiser {crit}")

    # Numeric: all grid distributions.
    for kk, den in ((3, 12), (4, 8), (5, 4)):
        top = Fraction((kk - 1) ** 2, q)
        best = []
        for probs in _simplex(kk, den):
            v = Kernel(probs).moments()[1]
            require(v <= top, f"Var {v} of {probs} exceeds {top}")
            if v == top:
                best.append(probs)
        ends = [Fraction(1, 2)] + [Fraction(0)] * (kk - 2) + [Fraction(1, 2)]
        require(best == [ends], f"k = {kk}: maximisers {best}")
    top2 = Fraction(4, q)  # k = 3: K^2/q with K = 2
    best2 = []
    for probs in _simplex(9, 4):
        kern = Kernel([probs[0:3], probs[3:6], probs[6:9]])
        (v0, v1) = kern.moments()[1]
        cv = kern.covariance()
        require(v0 <= top2 and v1 <= top2, f"2-D marginal variance of {probs}")
        if cv[0][0] * cv[1][1] - cv[0][1] ** 2 == top2**2:
            best2.append(probs)
    corners = [Fraction(1, 4), 0, Fraction(1, 4), 0, 0, 0, Fraction(1, 4), 0, Fraction(1, 4)]
    require(best2 == [corners], f"2-D determinant maximisers {best2}")
    n = 5
    prof = profile([[1, 0, 1], [0, 0, 0], [1, 0, 1]], layers=n)
    require(prof.covariance == ((n * top2, 0), (0, n * top2)), f"corner profile {prof.covariance}")
    rows = [sum(r) for r in prof.coefficients]
    require(variance_from_coefficients(rows)[1] == n * top2, "corner profile row variance")
    # The corner kernel's taps are 2 apart: its ERF lives on every other pixel only.
    require(all(c == 0 for t, c in enumerate(rows) if t % 2), "corner profile at odd offsets")
