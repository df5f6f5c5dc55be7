r"""An independent high-precision reference for single coefficients of $V(z)^n / V(1)^n$.

Used by ``tests/test_engines.py`` and ``benchmarks/run.py`` to check the ``float``
engine at sizes where the exact engine needs too much memory and ``arb_poly`` powers
take many minutes. The algorithm (a Cauchy integral evaluated by adaptive quadrature in
mpmath) shares nothing with the engine's windowed FFT tilting except the idea of a
saddle point: no FFT, no windows, no float64 anywhere in the value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mpmath

__all__ = ["QuadratureError", "cauchy_coefficient", "saddle_tilt"]


class QuadratureError(ArithmeticError):
    """The quadrature did not reach the requested accuracy."""


def _reduce(weights: Sequence[float]) -> tuple[list[float], int, int]:
    r"""Write $V(z) = z^{m_0} U(z^g)$ with $U(0) \ne 0$, $U$'s last tap nonzero, gcd 1."""
    w = [float(x) for x in weights]
    if any(x < 0 or not math.isfinite(x) for x in w) or not any(x > 0 for x in w):
        raise ValueError("weights must be finite, nonnegative and not all zero")
    nz = [m for m, x in enumerate(w) if x > 0]
    m0 = nz[0]
    g = 0
    for m in nz:
        g = math.gcd(g, m - m0)
    g = max(g, 1)
    return w[m0 : nz[-1] + 1 : g], m0, g


def saddle_tilt(u: Sequence[float], target: float) -> float:
    r"""The $s$ with $\mu(s) = \sum_m m\,u_m e^{sm} / \sum_m u_m e^{sm} = $ ``target``.

    ``target`` must lie strictly inside $(0, \mathrm{len}(u) - 1)$. Safeguarded Newton
    (bisection fallback) in float64 with log-sum-exp scaling. The result need not be
    accurate: the Cauchy integral is exact on every circle, the saddle point only makes
    the integrand non-oscillating and concentrated near $\theta = 0$.
    """
    logs = [math.log(x) if x > 0 else -math.inf for x in u]

    def moments(s: float) -> tuple[float, float]:
        a = [lw + s * m for m, lw in enumerate(logs)]
        top = max(a)
        e = [math.exp(x - top) for x in a]
        tot = math.fsum(e)
        mu = math.fsum(m * x for m, x in enumerate(e)) / tot
        var = math.fsum((m - mu) ** 2 * x for m, x in enumerate(e)) / tot
        return mu, var

    lo, hi = -1.0, 1.0
    while moments(lo)[0] > target:
        lo *= 2.0
    while moments(hi)[0] < target:
        hi *= 2.0
    s = 0.5 * (lo + hi)
    for _ in range(200):
        mu, var = moments(s)
        if mu > target:
            hi = s
        else:
            lo = s
        step = (target - mu) / var if var > 0 else math.inf
        nxt = s + step
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - s) <= 1e-15 * max(1.0, abs(s)):
            return nxt
        s = nxt
    return s


def cauchy_coefficient(
    weights: Sequence[float], n: int, t: int, dps: int = 40, *, tilt_offset: float = 0.0
) -> mpmath.mpf:
    r"""The normalised coefficient $[z^t]\,V(z)^n / V(1)^n$ of a nonnegative 1-D kernel.

    **Method.** Cauchy's formula on the circle $|z| = r$,

    $$\frac{[z^t]V^n}{V(1)^n} = \frac{(V(r)/V(1))^n}{r^t}\cdot\frac1\pi\int_0^\pi
      \mathrm{Re}\Big[\Big(\frac{V(re^{i\theta})}{V(r)}\Big)^n e^{-it\theta}\Big]d\theta,$$

    (the integrand over $[-\pi, 0]$ is the complex conjugate, the weights being real),
    with $r = e^s$ the saddle point $rV'(r)/V(r) = t/n$ found by `saddle_tilt` (after the
    reduction $V(z) = z^{m_0}U(z^g)$, so that $U$ is aperiodic and $|U(re^{i\theta})| <
    U(r)$ for $\theta \ne 0$). On that circle the integrand is a bump of width
    $w = 1/\sqrt{n\sigma_r^2}$ at $\theta = 0$ ($\sigma_r^2$ the variance of $p_m \propto
    u_m r^m$) with no fast oscillation, since the phase is stationary there.
    ``mpmath.quad`` (tanh-sinh) integrates it on $[0, w, 10w, 100w, \pi]$ (points beyond
    $\pi$ dropped) at ``dps`` decimal digits; $\log r = s$ is an exact binary number, so
    the prefactor $\exp(n(\log V(r) - \log V(1)) - ts)$ is evaluated in mpmath with no
    cancellation error beyond $n\cdot 10^{-\mathrm{dps}}$ absolute in the exponent.

    **Branch.** The integrand is computed as $\exp(n\,\mathrm{Log}(V(re^{i\theta})/V(r))
    - it\theta)$ with the principal logarithm. Since $n$ is an integer,
    $\exp(n\,\mathrm{Log}\,x) = x^n$ for *every* branch, so no continuous argument is
    needed; near $\theta = 0$, where the value comes from, the ratio is close to 1 and far
    from the cut. The phase $n\arg(\cdot) - t\theta$ is at most about $n\pi + t\pi \le
    10^9$ here, so ``dps`` digits leave ``dps - 9`` correct digits in it.

    **Error control.** Working precision is ``dps`` digits; mpmath raises the tanh-sinh
    degree until two successive degrees agree to $10^{-\mathrm{dps}}$ absolute (the
    integral is $O(w)$) and returns that difference as its error estimate; this function
    raises `QuadratureError` if the estimate exceeds $10^{-(\mathrm{dps}-10)}$ of the
    integral. Callers certify a value further by comparing two values of ``dps``
    (different precision *and* different quadrature nodes), as ``benchmarks/run.py`` does.
    Not covered: kernels with negative weights (the saddle point need not exist).

    Args:
        weights: the taps $w_0, \dots, w_{k-1}$ (nonnegative floats, read exactly).
        n: the number of layers ($\ge 0$).
        t: the index, $0 \le t \le n(k-1)$ (others give 0).
        dps: decimal digits of the computation.
        tilt_offset: added to $s = \log r$; a circle off the saddle point gives the same
            value by a differently shaped (oscillating, shifted) integrand, an independent
            check of the quadrature (keep ``|offset|`` well below $1/\sqrt{n\sigma_r^2}$
            times a few, or the prefactor and the integral cancel catastrophically).

    Returns:
        The normalised coefficient as an ``mpmath.mpf`` (at precision ``dps``).
    """
    u, m0, g = _reduce(weights)
    with mpmath.workdps(dps):
        total = mpmath.fsum(mpmath.mpf(x) for x in u)
        shift = t - n * m0
        if n == 0:
            return mpmath.mpf(1 if t == 0 else 0)
        if shift < 0 or shift % g:
            return mpmath.mpf(0)
        t = shift // g
        last = n * (len(u) - 1)
        if t > last:
            return mpmath.mpf(0)
        if t in (0, last):  # a single product: u_0^n or u_last^n
            return (mpmath.mpf(u[0 if t == 0 else -1]) / total) ** n
        s_float = saddle_tilt(u, t / n) + tilt_offset
        s = mpmath.mpf(s_float)
        r = mpmath.exp(s)
        terms = [mpmath.mpf(x) * r**m for m, x in enumerate(u)]
        v_r = mpmath.fsum(terms)
        c = [x / v_r for x in terms]  # p_m: V(r e^{iθ})/V(r) = Σ c_m e^{imθ}
        mean = mpmath.fsum(m * x for m, x in enumerate(c))
        var = mpmath.fsum((m - mean) ** 2 * x for m, x in enumerate(c))
        width = 1 / mpmath.sqrt(n * var)
        pts = [mpmath.mpf(0)] + [f * width for f in (1, 10, 100) if f * width < mpmath.pi]
        pts.append(+mpmath.pi)
        rev = c[::-1]

        def integrand(theta: mpmath.mpf) -> mpmath.mpf:
            e = mpmath.expj(theta)
            acc = mpmath.mpc(0)
            for x in rev:
                acc = acc * e + x
            if acc == 0:
                return mpmath.mpf(0)
            return mpmath.re(mpmath.exp(n * mpmath.log(acc) - 1j * t * theta))

        integral, err = mpmath.quad(integrand, pts, error=True)
        if not integral > 0 or err > mpmath.mpf(10) ** (10 - dps) * integral:
            raise QuadratureError(
                f"quadrature not converged: n={n}, t={t}, integral={integral}, error={err}"
            )
        log_prefactor = n * (mpmath.log(v_r) - mpmath.log(total)) - t * s
        return mpmath.exp(log_prefactor) * integral / mpmath.pi
