r"""Symbolic derivations of the paper, with sympy, for use in a notebook.

Everything here takes and returns sympy objects: weights are sympy expressions,
Python ints or `fractions.Fraction` values (never strings), and the number of layers
may be a symbol. The proofs in ``erftheory.proofs`` are built from these functions.

- `generating_function` and `dtft`: the kernel polynomial $V(z) = \sum_m w(m) z^m$ and
  its DTFT $V(\omega) = \sum_m w(m) e^{-j\omega m}$ (Eq. 2 and 9).
- `inverse_dtft`: $o(t) = \frac{1}{2\pi}\int_{-\pi}^{\pi} F(\omega) e^{j\omega t}\,d\omega$ (Eq. 4).
- `gf_moments` and `moments`: mean $G'(1)$ and variance $G''(1) + G'(1) - G'(1)^2$ of a
  normalised generating function $G$, for explicit or general (size-$k$) kernels and
  symbolic $n$ (Eq. 10).
- `cumulants`: the cumulants of $S_n$ from the log of the moment generating function.
- `uniform_variance`: Eq. (11), derived by summation for symbolic $n$ and $k$.
- `edgeworth_density`: the local Edgeworth expansion of $o(t) = P(S_n = t)$.
- `fig2_radius`: the radius, in units of $\sigma$, at which a Gaussian falls to a given
  fraction of its centre value (Fig. 2 uses the fraction $1 - 0.9545$).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy

from ._errors import ERFTypeError, ERFValueError

__all__ = [
    "cumulants",
    "dtft",
    "edgeworth_density",
    "fig2_radius",
    "general_kernel",
    "generating_function",
    "gf_moments",
    "inverse_dtft",
    "moments",
    "uniform_variance",
]


def _weight(x: Any) -> sympy.Expr:
    """One weight as a sympy expression; strings are refused (nothing is parsed)."""
    if isinstance(x, bool):
        raise ERFTypeError(f"weight {x!r} is a bool; use 0 or 1")
    if isinstance(x, sympy.Basic):
        return x  # type: ignore[return-value]
    if isinstance(x, numbers.Integral):
        return sympy.Integer(int(x))
    if isinstance(x, Fraction):
        return sympy.Rational(x.numerator, x.denominator)
    raise ERFTypeError(
        f"weight {x!r} of type {type(x).__name__} is not supported here; pass ints, "
        f"Fractions or sympy expressions (strings are never parsed)"
    )


def _weights(weights: Any) -> list[sympy.Expr]:
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise ERFTypeError(
            f"weights must be a sequence of ints, Fractions or sympy expressions, "
            f"got {type(weights).__name__}"
        )
    if len(weights) == 0:
        raise ERFValueError("weights is empty; give at least one weight")
    return [_weight(x) for x in weights]


def general_kernel(size: Any = None, name: str = "w") -> tuple[sympy.IndexedBase, sympy.Symbol]:
    r"""A kernel of general size: the indexed weights $w_m$ and the size symbol $k$.

    Pass the pair to `moments` (``moments(w, n, size=k)``) to derive statements for
    every kernel size at once.

    Example:
        >>> w, k = general_kernel()
        >>> generating_function(w, sympy.Symbol("z"), size=k)
        Sum(z**m*w[m], (m, 0, k - 1))
    """
    k = sympy.Symbol("k", integer=True, positive=True) if size is None else size
    return sympy.IndexedBase(name), k


def generating_function(weights: Any, z: sympy.Symbol, *, size: Any = None) -> sympy.Expr:
    r"""The kernel polynomial $V(z) = \sum_{m=0}^{k-1} w(m) z^m$ (Eq. 9 with $z = e^{-j\omega}$).

    Args:
        weights: a sequence of weights, or a `sympy.IndexedBase` together with ``size``.
        z: the formal variable.
        size: the number of taps $k$ (a symbol or int) when ``weights`` is indexed.

    Example:
        >>> z = sympy.Symbol("z")
        >>> generating_function([1, 2, 1], z)
        z**2 + 2*z + 1
    """
    if isinstance(weights, sympy.IndexedBase):
        if size is None:
            raise ERFValueError("size is required when weights is a sympy IndexedBase")
        m = sympy.Symbol("m", integer=True, nonnegative=True)
        return sympy.Sum(weights[m] * z**m, (m, 0, size - 1))
    return sympy.Add(*[w * z**m for m, w in enumerate(_weights(weights))])


def dtft(weights: Any, omega: sympy.Symbol) -> sympy.Expr:
    r"""The DTFT $V(\omega) = \sum_{m=0}^{k-1} w(m) e^{-j\omega m}$ of a kernel (Eq. 2).

    Example:
        >>> w = sympy.Symbol("omega", real=True)
        >>> dtft([1, 1], w)
        1 + exp(-I*omega)
    """
    return sympy.Add(
        *[w * sympy.exp(-sympy.I * omega * m) for m, w in enumerate(_weights(weights))]
    )


def inverse_dtft(spectrum: sympy.Expr, omega: sympy.Symbol, t: Any) -> sympy.Expr:
    r"""$o(t) = \frac{1}{2\pi}\int_{-\pi}^{\pi} F(\omega)\, e^{j\omega t}\, d\omega$ (Eq. 4).

    Evaluated by sympy's integrator (exact for trigonometric polynomials and integer ``t``).

    Example:
        >>> w = sympy.Symbol("omega", real=True)
        >>> inverse_dtft(dtft([1, 1], w) ** 3, w, 1)       # C(3, 1)
        3
    """
    integral = sympy.integrate(
        sympy.expand(spectrum * sympy.exp(sympy.I * omega * t)), (omega, -sympy.pi, sympy.pi)
    )
    return sympy.simplify(integral / (2 * sympy.pi))


def _split_sums(expr: sympy.Expr) -> sympy.Expr:
    """Distribute every `Sum` over the terms of its expanded summand (linearity)."""

    def split(s: sympy.Sum) -> sympy.Expr:
        terms = sympy.Add.make_args(sympy.expand(s.function))
        return sympy.Add(*[sympy.Sum(a, *s.limits) for a in terms])

    return expr.replace(lambda e: isinstance(e, sympy.Sum), split)


def gf_moments(G: sympy.Expr, z: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr]:
    r"""Mean and variance of the distribution with generating function $G / G(1)$.

    With $g = G / G(1)$: mean $g'(1)$ and variance $g''(1) + g'(1) - g'(1)^2$ (the
    factorial moments of Eq. 10). ``G`` may hold undefined functions (``f(z**J)``) and
    symbolic exponents.

    Example:
        >>> z, n = sympy.symbols("z n", positive=True)
        >>> gf_moments((1 + z) ** n, z)
        (n/2, n/4)
    """
    g0 = G.subs(z, 1)
    g1 = sympy.diff(G, z).subs(z, 1) / g0
    g2 = sympy.diff(G, z, 2).subs(z, 1) / g0
    mean = sympy.simplify(_split_sums(g1))
    return mean, sympy.simplify(_split_sums(g2 + g1 - g1**2))


def moments(weights: Any, n: Any = 1, *, size: Any = None) -> tuple[sympy.Expr, sympy.Expr]:
    r"""$\mathbb E[S_n]$ and $\mathrm{Var}[S_n]$ of the ERF of $n$ layers (Eq. 10).

    Derived from the generating function $G(z) = (V(z)/V(1))^n$, for symbolic weights,
    general kernel sizes (pass ``general_kernel()``) and symbolic $n$.

    Example:
        >>> n = sympy.Symbol("n", positive=True)
        >>> moments([1, 1, 1], n)
        (n, 2*n/3)
        >>> w, k = general_kernel()
        >>> moments(w, 1, size=k)[0]
        Sum(m*w[m], (m, 0, k - 1))/Sum(w[m], (m, 0, k - 1))
    """
    z = sympy.Dummy("z", positive=True)
    V = generating_function(weights, z, size=size)
    return gf_moments((V / V.subs(z, 1)) ** n, z)


def cumulants(weights: Any, order: int, n: Any = 1) -> list[sympy.Expr]:
    r"""The cumulants $\kappa_1, \dots, \kappa_r$ of $S_n$: derivatives at 0 of
    $K(s) = n \log\big(V(e^s)/V(1)\big)$.

    Cumulants add over layers, so those of $S_n$ are $n$ times those of one tap.

    Example:
        >>> cumulants([1, 1, 1], 4)     # one tap uniform on {0, 1, 2}
        [1, 2/3, 0, -2/3]
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ERFValueError(f"order must be a positive int, got {order!r}")
    s = sympy.Dummy("s")
    w = _weights(weights)
    V = sympy.Add(*[c * sympy.exp(s * m) for m, c in enumerate(w)])
    K = n * sympy.log(V / V.subs(s, 0))
    out = []
    d = K
    for _ in range(order):
        d = sympy.diff(d, s)
        out.append(sympy.simplify(d.subs(s, 0)))
    return out


def uniform_variance(n: Any, k: Any) -> sympy.Expr:
    r"""$\mathrm{Var}[S_n]$ for the uniform kernel $w(m) = 1/k$, by summation (Eq. 11):

    $$n\Big(\sum_{m=0}^{k-1} \frac{m^2}{k} - \Big(\sum_{m=0}^{k-1}\frac{m}{k}\Big)^2\Big)
      = \frac{n(k^2-1)}{12}.$$

    Example:
        >>> n, k = sympy.symbols("n k", positive=True, integer=True)
        >>> uniform_variance(n, k)
        n*(k - 1)*(k + 1)/12
        >>> uniform_variance(1, 3)
        2/3
    """
    m = sympy.Symbol("m", integer=True, nonnegative=True)
    s1 = sympy.summation(m / k, (m, 0, k - 1))
    s2 = sympy.summation(m**2 / k, (m, 0, k - 1))
    return sympy.factor(sympy.simplify(n * (s2 - s1**2)))


def edgeworth_density(weights: Any, n: Any, t: Any, order: int = 2) -> sympy.Expr:
    r"""The local Edgeworth expansion of $o(t) = P(S_n = t)$ for a normalised kernel.

    With $\mu = n\kappa_1$, $\sigma^2 = n\kappa_2$, $x = (t - \mu)/\sigma$ and the
    standardised cumulants $\gamma_1 = \kappa_3/\kappa_2^{3/2}$,
    $\gamma_2 = \kappa_4/\kappa_2^2$ of one tap (see `cumulants`):

    $$P(S_n = t) \approx \frac{\varphi(x)}{\sigma}\Big[1
      + \frac{\gamma_1}{6\sqrt n} He_3(x)
      + \frac{1}{n}\Big(\frac{\gamma_2}{24} He_4(x) + \frac{\gamma_1^2}{72} He_6(x)\Big)\Big]$$

    where $He_r$ are the probabilists' Hermite polynomials. ``order`` 0 keeps only the
    Gaussian of Eq. (10), 1 adds the skewness term, 2 the kurtosis and squared-skewness
    terms. For a kernel whose taps have greatest common step 1 the error is
    $o(n^{-(order+1)/2})$ uniformly in $t$ (Petrov, *Sums of Independent Random
    Variables*, Ch. VII).

    Example:
        >>> from erftheory import profile
        >>> exact = profile([1, 1, 1], 100).normalized()[100]      # centre of 100 layers
        >>> [round(float(edgeworth_density([1, 1, 1], 100, 100, order=r)), 8) for r in (0, 2)]
        [0.04886025, 0.04876864]
        >>> round(float(exact), 8)
        0.04876865
    """
    if order not in (0, 1, 2):
        raise ERFValueError(f"order must be 0, 1 or 2, got {order!r}")
    k1, k2, k3, k4 = cumulants(weights, 4)
    sigma = sympy.sqrt(n * k2)
    x = (t - n * k1) / sigma
    g1 = k3 / k2 ** sympy.Rational(3, 2)
    g2 = k4 / k2**2
    bracket = sympy.Integer(1)
    if order >= 1:
        bracket += g1 / (6 * sympy.sqrt(n)) * sympy.hermite_prob(3, x)
    if order >= 2:
        bracket += (g2 / 24 * sympy.hermite_prob(4, x) + g1**2 / 72 * sympy.hermite_prob(6, x)) / n
    phi = sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)
    return phi / sigma * bracket


def fig2_radius(level: Any) -> sympy.Expr:
    r"""Radius, in units of $\sigma$, where a Gaussian falls to ``level`` of its centre.

    Solves $e^{-r^2/2} = \text{level}$: $r = \sqrt{2\ln(1/\text{level})}$. The paper's
    Fig. 2 threshold $1 - 0.9545$ gives $r \approx 2.49$, not the 2 standard
    deviations the text states (0.9545 is the *mass* within $2\sigma$).

    Example:
        >>> r = fig2_radius(sympy.Rational(455, 10000))
        >>> r
        sqrt(2)*sqrt(log(2000/91))
        >>> round(float(r), 4)
        2.486
    """
    lv = _weight(level)
    if lv.is_number and not (0 < lv < 1):
        raise ERFValueError(f"level must be in (0, 1), got {level!r}")
    r = sympy.Symbol("r", positive=True)
    (sol,) = sympy.solve(sympy.Eq(sympy.exp(-(r**2) / 2), lv), r)
    return sol
