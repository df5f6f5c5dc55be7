r"""Eq. (11): uniform weights $w(m) = 1/k$ give $\mathrm{Var}[S_n] = n(k^2-1)/12$.

The typeset Eq. (11) closes the first square root too early: it reads
$\sqrt n\sqrt{\sum_m m^2/k} - (\sum_m m/k)^2$, which is a different number (for $k = 2$,
$n = 1$ it is $\sqrt{1/2} - 1/4 \approx 0.457$, not $\sqrt{1/4} = 0.5$). The correct form
is $\sqrt{\mathrm{Var}[S_n]} = \sqrt{n\big(\sum_m m^2/k - (\sum_m m/k)^2\big)}
= \sqrt{n(k^2-1)/12}$.

Symbolic part (general $n$, $k$): the power sums $\sum_{m<k} m = k(k-1)/2$ and
$\sum_{m<k} m^2 = (k-1)k(2k-1)/6$ by induction on $k$; substituted into Eq. (10) they
give $n(k^2-1)/12$, and `erftheory.symbolic.uniform_variance` (sympy summation) agrees.
$\sqrt{n(k^2-1)/12}/(k\sqrt n) \to 1/\sqrt{12}$ as $k \to \infty$: the size is $O(k\sqrt n)$.
The printed form is shown to differ from the correct one.

Numeric spot checks: exact variances of `erftheory.profile(Kernel.uniform(k), n)` and of
`extended_binomial(n, k)` computed from the coefficients, $k \le 9$, $n \le 6$ and
$n = 1000$.
"""

from __future__ import annotations

import sympy

from erftheory import Kernel, extended_binomial, profile
from erftheory.symbolic import uniform_variance

from ._util import pick, require, variance_from_coefficients, zero

NAME = "eq11_uniform_variance"
SECTION = "2.3"
STATEMENT = (
    "For uniform weights w(m) = 1/k, Var[S_n] = n (k^2 - 1)/12, so the ERF size "
    "sqrt(n (k^2 - 1)/12) is O(k sqrt(n)) (Eq. 11, with the square root over the whole "
    "variance, not closed after the first sum as typeset)."
)
LATEX = (
    r"\sqrt{\mathrm{Var}[S_n]} = \sqrt{n\Big(\sum_{m=0}^{k-1}\frac{m^2}{k} - "
    r"\Big(\sum_{m=0}^{k-1}\frac{m}{k}\Big)^2\Big)} = \sqrt{\frac{n(k^2-1)}{12}} = O(k\sqrt n)"
)
ERRATUM = (
    "Eq. 11 closes the square root after the first sum: sqrt(n) sqrt(sum m^2/k) - (sum m/k)^2. "
    "The square root must cover the whole variance."
)
VARIANTS = {"wrong": "Var[S_n] = n (k^2 - 1)/6"}


def verify(variant: str | None = None) -> None:
    """Prove Eq. (11) for symbolic n and k, then check exact uniform profiles."""
    pick(variant, VARIANTS)
    den = 6 if variant == "wrong" else 12
    n = sympy.Symbol("n", positive=True, integer=True)
    k = sympy.Symbol("k", positive=True, integer=True)

    def claim(nn: object, kk: object) -> sympy.Expr:
        return nn * (kk**2 - 1) / sympy.Integer(den)

    # Power sums by induction on k: base k = 1, step k -> k + 1 adds the term m = k.
    s1 = k * (k - 1) / 2
    s2 = (k - 1) * k * (2 * k - 1) / 6
    require(s1.subs(k, 1) == 0 and s2.subs(k, 1) == 0, "power sums at k = 1")
    zero(s1.subs(k, k + 1) - s1 - k, "induction step for sum of m")
    zero(s2.subs(k, k + 1) - s2 - k**2, "induction step for sum of m^2")
    variance = n * (s2 / k - (s1 / k) ** 2)  # Eq. 10 with w(m) = 1/k
    zero(variance - claim(n, k), "Eq. 11 from Eq. 10")
    zero(uniform_variance(n, k) - claim(n, k), "erftheory.symbolic.uniform_variance")
    ratio = sympy.limit(sympy.sqrt(claim(n, k)) / (k * sympy.sqrt(n)), k, sympy.oo)
    require(ratio.is_positive and ratio.is_finite, f"size / (k sqrt n) tends to {ratio}")
    # The typeset form is a different quantity.
    typeset = sympy.sqrt(n) * sympy.sqrt(s2 / k) - (s1 / k) ** 2
    require(
        sympy.simplify((typeset - sympy.sqrt(claim(n, k))).subs({n: 1, k: 2})) != 0,
        "the typeset Eq. 11 unexpectedly agrees with the correct form",
    )

    for kk in range(1, 10):
        for layers in range(1, 7):
            want = claim(layers, kk)
            p = profile(Kernel.uniform(kk), layers=layers)
            _, var = variance_from_coefficients(extended_binomial(layers, kk))
            require(
                p.variance == want == var, f"k = {kk}, n = {layers}: {p.variance}, {var}, {want}"
            )
    _, var = variance_from_coefficients(extended_binomial(1000, 3))
    require(var == claim(1000, 3), f"k = 3, n = 1000: variance {var}")
