r"""The Gaussian limit, quantified (Remark 2 of Section 2.3).

The paper notes that convergence is in distribution. For the ERF $o(t) = P(S_n = t)$:

- **CDF (Kolmogorov distance).** The Berry–Esseen theorem gives
  $\sup_x |F_n(x) - \Phi(x)| \le C_{\mathrm{BE}}\,\beta_3/(\sigma_X^3\sqrt n)$ with
  $\beta_3 = \mathbb E|X-\mathbb E[X]|^3$, $\sigma_X^2 = \mathrm{Var}[X]$ and
  $C_{\mathrm{BE}} \le 0.4748$ (Shevtsova 2011). The theorem itself is quoted, not proved
  here: the bound is *verified* on exact profiles. For a lattice distribution the rate $n^{-1/2}$
  is the truth, not an artefact of the bound: the CDF jumps by $o(t)$ at each pixel.
  For the symmetric kernel $[1, 1, 1]$ the supremum is exactly half the central jump,
  $o(\text{centre})/2 \sim 1/(2\sigma_X\sqrt{2\pi n})$ (so $\sqrt n\,K_n \to 0.2443$).
  With a continuity correction (comparing at half-integers) the symmetric kernel's
  distance drops to $O(1/n)$, the skewed kernel's stays $O(n^{-1/2})$.
- **Local (pointwise) distance.** By the local Edgeworth expansion

    $$o(t) = \frac{\varphi(x)}{\sigma_n}\Big[1 + \frac{\gamma_1}{6\sqrt n}He_3(x) +
    \frac1n\Big(\frac{\gamma_2}{24}He_4(x) + \frac{\gamma_1^2}{72}He_6(x)\Big)\Big] +
    O(n^{-2}),$$

  with $x = (t - n\,\mathbb E[X])/\sigma_n$, $\sigma_n = \sigma_X\sqrt n$,
  $\gamma_1 = \kappa_3/\kappa_2^{3/2}$,
  $\gamma_2 = \kappa_4/\kappa_2^2$. The max absolute difference to the Gaussian is
  $O(n^{-1})$ for a skewed kernel and $O(n^{-3/2})$ for a symmetric one ($\gamma_1 = 0$):
  relative to the peak $1/\sigma_n$ these are $n^{-1/2}$ and $n^{-1}$. The skewness term
  reduces the skewed error to $O(n^{-3/2})$, the kurtosis terms to $O(n^{-2})$
  (and the symmetric one to $O(n^{-5/2})$, odd cumulants vanishing).

Symbolic part (general cumulants): the expansion of the characteristic function of the
standardised sum, $\exp\big(\sum_r \kappa_r (iu)^r/(r!\,\sigma_X^r n^{r/2-1})\big)$, in
powers of $n^{-1/2}$ to second order, for symbolic $\kappa_2, \kappa_3, \kappa_4$, gives
the bracket above; $(-d/dx)^r\varphi = He_r\,\varphi$ ($r = 3, 4, 6$) is the Fourier
pairing of each term. The cumulants of the kernels come from `erftheory.symbolic.cumulants`
and are checked against central moments computed directly.

Numeric part (exact engine, `Profile.normalized()` and `Profile.gaussian()`), kernels
$[1,1,1]$ and $[1,2,3]$, $n = 125 \dots 8000$: fitted log-log slopes within
`SLOPE_TOL` = 0.05 of the predicted exponents (the next-order terms move a fitted slope
over this range by less than 0.02); the Berry–Esseen bound for $n = 1..40$ and the range.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import sympy
from scipy import special

from erftheory import profile
from erftheory.symbolic import cumulants, edgeworth_density

from ._util import close, loglog_slope, pick, require, zero

NAME = "gaussian_limit_rates"
SECTION = "2.3"
STATEMENT = (
    "The ERF's Gaussian limit has Kolmogorov distance of order n^-1/2 within the "
    "Berry-Esseen bound C_BE beta_3/(sigma_X^3 sqrt(n)) (verified numerically with "
    "C_BE = 0.4748, not proved) and pointwise distance of order n^-3/2 for k = 3 (n^-1 for "
    "skewed kernels); the first Edgeworth correction (skewness and kurtosis terms) reduces "
    "the pointwise error."
)
LATEX = (
    r"\sup_x|F_n - \Phi| \le \frac{0.4748\,\beta_3}{\sigma_X^3\sqrt n},\quad "
    r"o(t) = \frac{\varphi(x)}{\sigma_X\sqrt n}\Big[1 + \frac{\gamma_1 He_3(x)}{6\sqrt n} + "
    r"\frac{1}{n}\Big(\frac{\gamma_2 He_4(x)}{24} + \frac{\gamma_1^2 He_6(x)}{72}\Big)\Big] "
    r"+ O(n^{-2})"
)
VARIANTS = {
    "wrong": "the Kolmogorov distance decays like n^-1 (the local rate) instead of n^-1/2",
    "kurtosis": "kurtosis term gamma_2 He_4/12 instead of gamma_2 He_4/24",
}

SLOPE_TOL = 0.05
"""Tolerance on fitted log-log slopes (see the module docstring)."""
BERRY_ESSEEN_C = 0.4748
"""Shevtsova's (2011) constant in the Berry–Esseen bound for i.i.d. sums."""
_NS = [125, 250, 500, 1000, 2000, 4000, 8000]


def _edgeworth(k: list[float], n: int, length: int, order: int, kurt: int) -> np.ndarray:
    """Local Edgeworth approximation on the pixels 0..length-1 (float64)."""
    k1, k2, k3, k4 = k
    s = math.sqrt(n * k2)
    x = (np.arange(length) - n * k1) / s
    g1, g2 = k3 / k2**1.5, k4 / k2**2
    b = np.ones_like(x)
    if order >= 1:
        b = b + g1 / (6 * math.sqrt(n)) * (x**3 - 3 * x)
    if order >= 2:
        he4 = x**4 - 6 * x**2 + 3
        he6 = x**6 - 15 * x**4 + 45 * x**2 - 15
        b = b + (g2 / kurt * he4 + g1**2 / 72 * he6) / n
    return np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi) / s * b


def _symbolic(kurt: int) -> None:
    eps, t = sympy.symbols("epsilon t")
    k2 = sympy.Symbol("kappa2", positive=True)
    k3, k4 = sympy.symbols("kappa3 kappa4", real=True)
    g1, g2 = k3 / k2 ** sympy.Rational(3, 2), k4 / k2**2
    # Cumulant series of the standardised sum, t = i u, eps = n^(-1/2):
    # n kappa_r (t / (sigma sqrt n))^r / r! = kappa_r t^r / (r! sigma^r) eps^(r-2).
    log_char = t**2 / 2 + sum(
        k * t**r / (sympy.factorial(r) * k2 ** sympy.Rational(r, 2)) * eps ** (r - 2)
        for r, k in ((3, k3), (4, k4))
    )
    series = sympy.series(sympy.exp(log_char - t**2 / 2), eps, 0, 3).removeO()
    bracket = 1 + eps * g1 * t**3 / 6 + eps**2 * (g2 * t**4 / kurt + g1**2 * t**6 / 72)
    zero(series - bracket, "Edgeworth bracket from the cumulant series")
    x = sympy.Symbol("x", real=True)
    phi = sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)
    for r in (3, 4, 6):
        zero((-1) ** r * sympy.diff(phi, x, r) - sympy.hermite_prob(r, x) * phi, f"He_{r} pairing")


def verify(variant: str | None = None) -> None:
    """Derive the Edgeworth correction, then measure the rates on exact profiles."""
    pick(variant, VARIANTS)
    kurt = 12 if variant == "kurtosis" else 24
    _symbolic(kurt)

    predicted = {  # kernel: (Kolmogorov, local order 0, order 1, order 2)
        (1, 1, 1): (-0.5, -1.5, -1.5, -2.5),
        (1, 2, 3): (-0.5, -1.0, -1.5, -2.0),
    }
    if variant == "wrong":
        predicted = {k: (-1.0, *v[1:]) for k, v in predicted.items()}
    for kernel, slopes in predicted.items():
        w = list(kernel)
        total = sum(w)
        # Cumulants: library (log MGF) against central moments computed directly.
        kap = cumulants(w, 4)
        mu = Fraction(sum(m * x for m, x in enumerate(w)), total)
        c = [sum(Fraction(x, total) * (m - mu) ** r for m, x in enumerate(w)) for r in range(5)]
        direct = [mu, c[2], c[3], c[4] - 3 * c[2] ** 2]
        require([Fraction(int(v.p), int(v.q)) for v in kap] == direct, f"cumulants of {w}")
        kf = [float(v) for v in kap]
        sigma = math.sqrt(kf[1])
        rho = float(sum(Fraction(x, total) * abs(m - mu) ** 3 for m, x in enumerate(w)))
        be = BERRY_ESSEEN_C * rho / sigma**3

        rows = []
        for n in [*range(1, 41), *_NS]:
            p = profile(w, layers=n)
            a = p.normalized()
            fit = p.gaussian()
            ks = fit.kolmogorov
            require(ks * math.sqrt(n) <= be, f"{w}, n = {n}: Berry-Esseen bound violated")
            if n not in _NS:
                continue
            local = [
                float(np.max(np.abs(a - _edgeworth(kf, n, a.size, o, kurt)))) for o in (0, 1, 2)
            ]
            close(local[0], fit.max_abs_diff, 1e-9, f"{w}, n = {n}: local distance vs GaussianFit")
            tt = np.arange(a.size)
            cc = float(
                np.max(
                    np.abs(
                        np.cumsum(a) - special.ndtr((tt + 0.5 - n * kf[0]) / (sigma * math.sqrt(n)))
                    )
                )
            )
            rows.append((ks, *local, cc, local[0] * sigma * math.sqrt(n)))
            if kernel == (1, 1, 1):
                # Symmetric: the supremum is half the central jump o(centre)/2.
                close(ks, a[n] / 2, 1e-12, f"n = {n}: Kolmogorov vs half the central atom")
                if n >= 1000:
                    close(
                        ks * math.sqrt(n),
                        1 / (2 * sigma * math.sqrt(2 * math.pi)),
                        1e-3,
                        f"n = {n}: sqrt(n) K_n vs 1/(2 sigma sqrt(2 pi))",
                    )
            require(local[2] < local[0], f"{w}, n = {n}: Edgeworth does not reduce the error")
        r = np.array(rows)
        fitted = [loglog_slope(_NS, r[:, j]) for j in range(6)]
        cc_slope = -1.0 if kernel == (1, 1, 1) else -0.5
        names = (
            "Kolmogorov",
            "local",
            "Edgeworth-1",
            "Edgeworth-2",
            "continuity-corrected",
            "local relative to the peak",
        )
        wanted = (*slopes, cc_slope, slopes[1] + 0.5)
        for name, got, want in zip(names, fitted, wanted, strict=True):
            require(abs(got - want) <= SLOPE_TOL, f"{w}: {name} slope {got:.3f}, expected {want}")

    # The library's symbolic density matches the one measured above.
    kf = [float(v) for v in cumulants([1, 2, 3], 4)]
    for t in (500, 667, 800):
        sym = float(edgeworth_density([1, 2, 3], 500, t, order=2))
        num = _edgeworth(kf, 500, 1001, 2, 24)[t]
        close(sym, num, 1e-10, f"edgeworth_density at t = {t}")
