r"""Eq. (1)–(5): the ERF is the inverse DTFT of $V(\omega)^n$.

Symbolic part (general):

- Eq. (5) for symbolic integers $s, t$: $\frac{1}{2\pi}\int_{-\pi}^{\pi} e^{-j\omega s}
  e^{j\omega t}\,d\omega = [s = t]$.
- The convolution theorem for generic sequences $o, v$ (undefined functions) and symbolic
  indices: after the bijection $t = s + m$ of $\mathbb Z^2$ every summand of
  $\sum_t (o * v)(t) e^{-j\omega t}$ factors as $o(s)e^{-j\omega s}\cdot v(m)e^{-j\omega m}$.
  By induction on $n$ the DTFT of $u * v * \dots * v$ is $V(\omega)^n$ (Eq. 3), and with
  Eq. (5) and linearity the integral (4) picks the coefficient of $e^{-j\omega t}$.
- For generic symbolic weights $w_0, \dots, w_3$ the induction step
  $V(\omega)^{n+1} = V(\omega) V(\omega)^n$ matches one convolution, for $n \le 3$.

Numeric spot checks: Eq. (4) by mpmath quadrature (30 digits) against the exact
coefficients of `erftheory.profile` and of a direct convolution loop.
"""

from __future__ import annotations

import mpmath
import sympy

from erftheory import profile
from erftheory.symbolic import dtft

from ._util import convolve, pick, require, zero

NAME = "eq01_05_dtft"
SECTION = "2.1"
STATEMENT = (
    "The ERF o(t) of n stacked kernels is the coefficient of exp(-j w t) in V(w)^n, recovered "
    "by the inverse DTFT o(t) = (1/2pi) * integral of V(w)^n exp(j w t) over [-pi, pi] (Eq. 4), "
    "using the orthogonality relation Eq. 5."
)
LATEX = (
    r"o(t) = [e^{-j\omega t}]\,V(\omega)^n = \frac{1}{2\pi}\int_{-\pi}^{\pi} V(\omega)^n "
    r"e^{j\omega t}\,d\omega, \qquad \frac{1}{2\pi}\int_{-\pi}^{\pi} e^{-j\omega s}"
    r"e^{j\omega t}\,d\omega = [s = t]"
)
VARIANTS = {
    "wrong": "normalisation 1/pi instead of 1/(2 pi) in Eq. 4 and Eq. 5",
    "sign": "e^{-j w t} instead of e^{+j w t} in the inverse transform (gives o(-t))",
}

# Quadrature of a trigonometric polynomial at 30 digits: agreement to 1e-20 is far
# inside the error of mpmath's tanh-sinh rule and far outside any wrong value.
_DPS = 30
_QUAD_TOL = mpmath.mpf("1e-20")


def verify(variant: str | None = None) -> None:
    """Check Eq. (1)–(5) symbolically, then by quadrature against the exact engine."""
    pick(variant, VARIANTS)
    scale = sympy.Integer(1) if variant == "wrong" else sympy.Integer(2)  # 1/(scale*pi)
    sign = -1 if variant == "sign" else 1

    w = sympy.Symbol("omega", real=True)
    s, t, m = sympy.symbols("s t m", integer=True)
    # Eq. 5 for symbolic integers s and t. The integrand is exp(j w D), D = t - s.
    integrand = sympy.powsimp(sympy.exp(-sympy.I * w * s) * sympy.exp(sign * sympy.I * w * t))

    def eq5(diff: sympy.Expr) -> sympy.Expr:
        """(1/(2 pi)) times the integral of exp(j w diff), diff a symbolic integer."""
        f = integrand.subs(t, s + diff)
        return sympy.simplify(sympy.integrate(f, (w, -sympy.pi, sympy.pi)) / (scale * sympy.pi))

    at_0 = eq5(sympy.Integer(0))
    require(at_0 == 1, f"Eq. 5 at s = t gives {at_0}, not 1")
    d = sympy.Symbol("d", integer=True, nonzero=True)
    at_d = eq5(d)
    require(at_d == 0, f"Eq. 5 at t - s = d != 0 gives {at_d}, not 0")

    # Convolution theorem: summand of the DTFT of o * v at t = s + m factors.
    o, v = sympy.Function("o"), sympy.Function("v")
    lhs = o(s) * v(m) * sympy.exp(-sympy.I * w * (s + m))
    rhs = (o(s) * sympy.exp(-sympy.I * w * s)) * (v(m) * sympy.exp(-sympy.I * w * m))
    zero(sympy.powsimp(lhs - rhs), "convolution theorem summand")

    # Induction step V^{n+1} = V * V^n equals one convolution, generic weights.
    ws = sympy.symbols("w0:4")
    zz = sympy.Symbol("z")
    for n in range(4):
        o_n = [sympy.Integer(1)]
        for _ in range(n):
            o_n = convolve(o_n, list(ws))
        o_next = convolve(o_n, list(ws))
        V = dtft(list(ws), w).subs(sympy.exp(-sympy.I * w), zz)  # z = e^{-j w}
        require(not V.has(w), f"V(w) is not a polynomial in exp(-j w): {V}")
        poly = sympy.Poly(sympy.expand(V ** (n + 1)), zz)
        for tt, c in enumerate(o_next):
            zero(poly.coeff_monomial(zz**tt) - c, f"coefficient {tt} of V^{n + 1}")

    # Numeric: Eq. 4 by quadrature equals the exact coefficients.
    with mpmath.workdps(_DPS):
        for kernel, n in (([1, 2, 3], 3), ([1, 1, 1], 4), ([2, -1, 0, 1], 2)):
            exact = profile(kernel, layers=n).coefficients
            direct = [1]
            for _ in range(n):
                direct = convolve(direct, kernel)
            require(exact == direct, f"profile({kernel}, {n}) differs from direct convolution")
            for tt, c in enumerate(exact):

                def f(
                    x: mpmath.mpf, tt: int = tt, kernel: list[int] = kernel, n: int = n
                ) -> mpmath.mpf:
                    V = mpmath.fsum(wm * mpmath.expj(-x * mm) for mm, wm in enumerate(kernel))
                    return mpmath.re(V**n * mpmath.expj(sign * x * tt))

                value = mpmath.quad(f, [-mpmath.pi, 0, mpmath.pi]) / (int(scale) * mpmath.pi)
                require(
                    abs(value - c) <= _QUAD_TOL * max(1, abs(c)),
                    f"Eq. 4 by quadrature gives {mpmath.nstr(value, 12)} for t = {tt} "
                    f"of {kernel}^{n}, the exact coefficient is {c}",
                )
