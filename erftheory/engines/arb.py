r"""The ``arb`` engine: ball arithmetic at a chosen precision (python-flint's `arb`).

The kernel's weights enter exactly (integers, or floats, which are dyadic rationals)
and $V(z)^n$ is computed with ``arb_poly`` powering at $\lceil \mathrm{dps}\cdot
\log_2 10\rceil + 32$ bits. Every result is a ball $[m \pm r]$ that is guaranteed to
contain the true normalised coefficient; flint's block multiplication scales blocks
of coefficients separately, so tail coefficients keep a small *relative* radius too.
2-D kernels are packed into one polynomial (Kronecker substitution $x \mapsto z^{L_2}$,
exact for polynomials). Cost grows roughly like the exact engine's times the working
precision; it is meant for references and certified values, not for speed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import flint
import numpy as np
import scipy.optimize

from .._errors import ERFValueError
from ..kernel import format_value
from . import exact
from .base import require_nonzero_sum
from .exact import in_power_support, reduce_support
from .floats import ArrayResult

if TYPE_CHECKING:
    from .source import Source

__all__ = [
    "ARB_GUARD_BITS",
    "ARB_WORK",
    "CAUCHY_MIN_LENGTH",
    "CAUCHY_SECONDS",
    "ArbResult",
    "arb_power",
    "build",
    "cauchy_ball",
    "prec_for_dps",
]

CAUCHY_SECONDS = 0.007
r"""`cauchy_ball` takes about this many seconds per tap at ``dps=30``, times
$(\mathrm{prec}/132)^{1.8}$ (measured: k = 3, n = 10^5 at dps 30, 100, 300, 1000: 0.02,
0.07, 0.19, 4.4 s); `erftheory.Profile.ball` refuses past the work limit from that
estimate."""
ARB_WORK = 340.0
"""Work (`erftheory.engines.exact.check_work` units) of the arb power per coefficient, per
log2 of the length and per bit of precision: 58 s for $k = 3$, $n = 10^5$ at 132 bits."""

ARB_GUARD_BITS = 32
"""Extra bits on top of the requested decimal digits."""


def prec_for_dps(dps: int) -> int:
    """Working precision in bits for ``dps`` decimal digits."""
    return math.ceil(dps * math.log2(10)) + ARB_GUARD_BITS


def arb_power(rows: Sequence[Sequence[Any]], n: int, dps: int) -> list[list[Any]]:
    """Balls for the normalised coefficients of $V^n / V(1)^n$ (a grid; one row in 1-D).

    ``rows`` holds exact weights (ints or floats; a rational kernel is passed in its
    integer form). Returns a list of rows of ``flint.arb``.
    """
    prec = prec_for_dps(dps)
    old = flint.ctx.prec
    flint.ctx.prec = prec
    try:
        k1, k2 = len(rows), len(rows[0])
        l1, l2 = n * (k1 - 1) + 1, n * (k2 - 1) + 1
        packed = [flint.arb(0)] * ((k1 - 1) * l2 + k2)
        total = flint.arb(0)
        for i in range(k1):
            for j in range(k2):
                v = flint.arb(rows[i][j])
                packed[i * l2 + j] = v
                total += v
        power = flint.arb_poly(packed) ** n
        scale = 1 / total**n
        deg = power.degree()
        zero = flint.arb(0)
        return [
            [power[i * l2 + j] * scale if i * l2 + j <= deg else zero for j in range(l2)]
            for i in range(l1)
        ]
    finally:
        flint.ctx.prec = old


# ---------------------------------------------------------------- one coefficient
CAUCHY_MIN_LENGTH = 20_001
"""`Profile.ball` of a nonnegative 1-D kernel uses `cauchy_ball` from this profile length on.

Below it the whole ``arb_poly`` power is cheap (under about a second) and is kept for
later reads; above it one certified coefficient by the Cauchy integral costs 0.01-0.3 s
(measured up to $n = 10^{15}$, $k = 101$) while the full power costs minutes (58 s for
$k = 3$, $n = 10^5$).
"""


def _tilt_moments(logu: np.ndarray, s: float) -> tuple[float, float]:
    """Mean and variance of $p_m \\propto u_m e^{sm}$ (log-sum-exp scaled)."""
    a = logu + s * np.arange(len(logu))
    e = np.exp(a - a.max())
    p = e / e.sum()
    m = np.arange(len(logu), dtype=float)
    mean = float(p @ m)
    return mean, float(p @ (m - mean) ** 2)


def _log(x: Any) -> float:
    """Natural log of a nonnegative weight of any size (huge ints, Fractions, floats); -inf at 0."""
    if x == 0:
        return -math.inf
    if isinstance(x, float):
        return math.log(x)
    f = Fraction(x)
    return math.log(f.numerator) - math.log(f.denominator)


def _saddle(logu: Sequence[float], target: float) -> float:
    r"""A float $s$ with $\sum_m m\,u_m e^{sm} / \sum_m u_m e^{sm} =$ ``target`` (Brent's method).

    Any $s$ gives a valid Cauchy circle; the saddle point only makes the integrand a
    narrow non-oscillating bump.
    """
    logs = np.asarray(logu, dtype=float)
    logs = logs - logs.max()  # the scale does not matter; nothing overflows

    def excess(s: float) -> float:
        return _tilt_moments(logs, s)[0] - target

    lo, hi = -1.0, 1.0
    while excess(lo) > 0:
        lo *= 2.0
    while excess(hi) < 0:
        hi *= 2.0
    return float(scipy.optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-15))


def cauchy_ball(weights: Sequence[Any], n: int, t: int, dps: int) -> Any:
    r"""A certified ball for one normalised coefficient $[z^t]\,V(z)^n / V(1)^n$.

    For a nonnegative 1-D kernel, without the other coefficients. Cauchy's formula on the
    circle $|z| = r = e^s$, with $p_m = w_m r^m / V(r)$ and $\mu = t/n$,

    $$\frac{[z^t]V^n}{V(1)^n} = \frac{(V(r)/V(1))^n}{r^t}\cdot\frac1\pi\int_0^\pi
      \mathrm{Re}\,h(\theta)^n\,d\theta,\qquad h(\theta) = \sum_m p_m e^{i(m-\mu)\theta}$$

    (the integrand on $[-\pi, 0]$ is the conjugate, the weights being real; $h^n =
    (V(re^{i\theta})/V(r))^n e^{-it\theta}$ because $n\mu = t$). $r$ is the saddle point
    $\sum_m m\,p_m = \mu$, where $h^n$ is a bump $\approx e^{-n\sigma^2\theta^2/2}$ of
    width $w = 1/(\sigma\sqrt n)$ with a stationary phase. $V(z) = z^{m_0}U(z^g)$ is
    reduced first, so that $U$ is aperiodic and the bump is the only peak.

    **Rigour.** On $[0, \theta_c]$, where $\theta_c$ is where the bump falls below
    $2^{-\mathrm{prec}-29}$, python-flint's ``acb.integral`` (Petras' adaptive
    Gauss-Legendre, with error bounds from the size of the integrand on complex ellipses;
    the integrand is entire) returns a ball containing the integral. $h$ uses the centred
    exponents $m - \mu$, and on a ball $\theta_0 \pm \delta$ its mean-value form
    $h(\theta_0) + h'(\theta_0)(\theta - \theta_0) \pm \tfrac12\delta^2
    \sum_m p_m (m-\mu)^2 e^{|m-\mu| Y}$ ($Y$ bounding the imaginary parts), so the ball
    of $h^n$ stays narrow on pieces of a few bump widths at any $n$: a term-by-term sum
    has a radius $\approx \mathbb E|m-\mu|\,\delta$ that $h^n$ magnifies $n$ times, and
    the integrator gave up (balls of width $10^{30000}$) past $n \approx 10^{10}$.
    The working precision is the requested one plus $\log_2 n + 16$ bits.
    On $[\theta_c, \pi]$ the integral is bounded where it is negligible: on a piece with
    midpoint $\theta_0$ and half-length $\rho$, Taylor's theorem gives $|h| \le
    |h(\theta_0)| + |h'(\theta_0)|\rho + \tfrac12\rho^2\sum_m p_m(m-\mu)^2$, and a piece
    whose length times that bound to the $n$-th power is below its share of
    $2^{-\mathrm{prec}}w$ adds it to the radius. Other pieces are halved, and once shorter
    than $8w$ (or after $\max(16, \log_2(\pi/w) + 4)$ halvings) integrated by
    ``acb.integral`` too: that is where
    $|h|^n$ is not negligible away from $\theta = 0$ (small $n$, or kernels close to
    periodic, whose $|h|$ has other maxima near 1). The prefactor is evaluated in ball
    arithmetic. So the ball contains the true value whatever $r$ is; the saddle point
    only makes it narrow. It is intersected with $[0, 1]$, and a ball whose relative
    radius is still above $2^{16-\mathrm{prec}}$ is refused (`ERFValueError`) rather than
    returned: a certificate that wide says nothing.

    Args:
        weights: nonnegative exact numbers (ints or floats; floats are read exactly).
        n: the number of layers ($\ge 0$).
        t: the index; where no $n$ taps of non-zero weight sum to $t$ (outside
            $0 \le t \le n(k-1)$, or in a gap left by zero taps: `in_power_support`)
            the result is the exact ball 0.
        dps: decimal digits of the working precision.

    Returns:
        A ``flint.arb`` ball.

    Raises:
        ERFValueError: the ball came out wider than the requested precision.

    Example:
        >>> b = cauchy_ball([1, 2, 1], 50, 50, dps=30)   # C(100, 50) / 4^50
        >>> b.overlaps(flint.arb(100891344545564193334812497256) / 4**50), b.rad() < 1e-30
        (True, True)
    """
    if n >= 2**600:
        raise ERFValueError(
            f"cauchy_ball works up to 2**600 layers (its bump widths are floats), got "
            f"{format_value(n, short=True)}; use method='float' or fewer layers"
        )
    m0, g, u = reduce_support(weights)
    target = prec_for_dps(dps)
    # n-fold products magnify every rounding n times: n.bit_length() extra bits keep the
    # ball at the requested relative width at any depth (n = 10^15 included).
    prec = target + n.bit_length() + 16
    old = flint.ctx.prec
    flint.ctx.prec = prec
    try:
        arb, acb = flint.arb, flint.acb
        w = [arb(x) for x in weights]
        total = sum(w[1:], w[0])
        shift = t - n * m0
        if n == 0:
            return arb(1 if t == 0 else 0)
        if shift < 0 or shift % g or not in_power_support(u, n, shift // g):
            return arb(0)  # exactly: no path of n nonnegative taps reaches t
        t = shift // g
        if t in (0, n * (len(u) - 1)):  # one product: u_0^n or u_last^n
            return (arb(u[0] if t == 0 else u[-1]) / total) ** n
        s = arb(_saddle([_log(x) for x in u], t / n))  # an exact dyadic number
        r = s.exp()
        terms = [arb(x) * r**m for m, x in enumerate(u)]
        v_r = sum(terms[1:], terms[0])
        p = [x / v_r for x in terms]
        mu = arb(flint.fmpq(t, n))
        centred = [arb(m) - mu for m in range(len(u))]
        second = sum((c * c * x for c, x in zip(centred, p, strict=True)), arb(0))
        sigma = float(second.sqrt().mid())
        width = 1.0 / (sigma * math.sqrt(n))
        coeffs = [(acb(x), acb(0, c)) for x, c in zip(p, centred, strict=True)]

        weights2 = [(x, c * c, abs(c)) for x, c in zip(p, centred, strict=True)]

        def integrand(theta: Any, _analytic: bool) -> Any:  # entire: the flag needs no check
            # Mean-value form on a ball theta = mid + d: h(mid) + h'(mid) d + E, with
            # |E| <= |d|^2 / 2 * sum_m p_m c_m^2 e^{|c_m| Y} (Y bounds |Im| on the ball).
            # Summing e^{i c theta} term by term instead gives a radius ~ E|c| |d|, which
            # h^n magnifies n times: the integrator then needs ~sqrt(n) pieces per bump
            # width and gives up past n ~ 10^10.
            r = theta.rad()
            if r == 0:
                h = acb(0)
                for x, c in coeffs:
                    h += x * (c * theta).exp()
                return h**n
            mid = acb(theta.mid())
            h0, h1 = acb(0), acb(0)
            for x, c in coeffs:
                e = x * (c * mid).exp()
                h0 += e
                h1 += c * e
            y = abs(mid.imag) + r
            bound = sum((x * c2 * (a * y).exp() for x, c2, a in weights2), arb(0))
            err = (bound * r * r / 2).upper()
            h = h0 + h1 * (theta - mid) + acb(arb(0, err), arb(0, err))
            return h**n

        log_eps = -(target + 29) * math.log(2)
        theta_c = width * math.sqrt(-2.0 * log_eps)
        # Pieces of at most two bump widths: on longer ones the integrand's growth on
        # acb.integral's complex ellipses (|h|^n ~ exp(y^2 / 2w^2)) exhausts its evaluation
        # budget and the ball comes back as wide as 10^30000 (n = 10^9).
        edges = [0.0, width]
        while edges[-1] < min(theta_c, 3.0):
            edges.append(min(edges[-1] + 2 * width, theta_c))
        cuts = [c for c in edges if c < 3.0]
        bounds = [arb(c) for c in cuts] + ([arb.pi()] if theta_c >= 3.0 else [])
        tol = arb(2) ** (-target)
        integral = acb(0)
        for a, b in itertools.pairwise(bounds):
            integral += acb.integral(integrand, a, b, rel_tol=tol, abs_tol=tol * arb(width))
        value = integral.real
        if theta_c < 3.0:
            value += _tail(p, centred, second, n, theta_c, width, integrand, tol)
        log_prefactor = n * (v_r.log() - total.log()) - t * s
        ball = log_prefactor.exp() * value / arb.pi()
        # A normalised coefficient of a nonnegative kernel lies in [0, 1].
        ball = ball.intersection(arb(0.5, 0.5)) if ball.overlaps(arb(0.5, 0.5)) else ball
        if not ball.rad() <= arb(2) ** (ARB_GUARD_BITS // 2 - target) * abs(ball.mid()):
            raise ERFValueError(
                f"the certified ball for index {format_value(t, short=True)} at "
                f"{format_value(n, short=True)} layers came out too wide ({ball.str(5)}): the "
                f"Cauchy-integral certificate failed at this size; use method='float' for a "
                f"value with 1e-10 relative error, a larger dps, or fewer layers"
            )
        return ball
    finally:
        flint.ctx.prec = old


def _tail(
    p: Sequence[Any],
    centred: Sequence[Any],
    second: Any,
    n: int,
    start: float,
    width: float,
    integrand: Any,
    tol: Any,
) -> Any:
    r"""A ball containing $\mathrm{Re}\int_{\mathrm{start}}^{\pi} h(\theta)^n d\theta$.

    See `cauchy_ball` ("Rigour"): Taylor bounds on pieces where $|h|^n$ is negligible,
    ``acb.integral`` on the others.
    """
    arb, acb = flint.arb, flint.acb
    # On the real line |h(θ)| = |poly(e^{iθ})| and |h'(θ)| = |dpoly(e^{iθ})|.
    poly = flint.acb_poly([acb(x) for x in p])
    dpoly = flint.acb_poly([acb(x) * c for x, c in zip(p, centred, strict=True)])
    pi = arb.pi()
    budget = tol * arb(width) / (pi - arb(start))  # per unit length
    radius = arb(0)
    value = arb(0)
    # Halve until pieces are a few bump widths long: deep profiles (n = 10^15, w ~ 1e-8)
    # need about log2(pi / w) halvings before the Taylor bound takes over.
    max_depth = max(16, math.ceil(math.log2(math.pi / width)) + 4)
    stack = [(arb(start), pi, 0)]
    while stack:
        a, b, depth = stack.pop()
        mid = (a + b) / 2
        rho = (b - a) / 2
        e = (acb(0, 1) * mid).exp()
        bound = arb(poly(e).abs_upper()) + arb(dpoly(e).abs_upper()) * rho + second * rho**2 / 2
        if bound < 1 and (b - a) * bound**n < budget * (b - a):
            radius += ((b - a) * bound**n).upper()
        elif depth >= max_depth or b - a < 8 * width:
            value += acb.integral(integrand, a, b, rel_tol=tol, abs_tol=budget * (b - a)).real
        else:
            stack.append((a, mid, depth + 1))
            stack.append((mid, b, depth + 1))
    return value + arb(0, radius.upper())


# ---------------------------------------------------------------- the engine's result
class ArbResult(ArrayResult):
    """The ``arb`` engine's result: balls at ``dps`` digits, their midpoints as floats."""

    def __init__(self, source: Source, dps: int) -> None:
        super().__init__(source)
        self.digits = dps
        self._balls: list[list[Any]] | None = None

    def balls(self) -> list[list[Any]]:
        if self._balls is None:
            flat, total = self._exact_weights()
            require_nonzero_sum(total)
            count = math.prod(self.shape)
            exact.guard(
                exact.mul(count, 4.0 * (prec_for_dps(self.digits) / 4 + 96)),
                "the arb balls",
                "use fewer layers or a smaller dps",
            )
            prec = prec_for_dps(self.digits)
            exact.check_work(
                ARB_WORK * exact.mul(count, math.log2(count + 2) * prec),
                "the arb power",
                "use Profile.ball(t) for single values (nonnegative 1-D kernels), fewer "
                "layers or a smaller dps",
            )
            k2 = self.source.shape[-1]
            rows = [flat[i * k2 : (i + 1) * k2] for i in range(len(flat) // k2)]
            self._balls = arb_power(rows, self.source.n, self.digits)
        return self._balls

    def _exact_weights(self) -> tuple[list[Any], Any]:
        """The weights as the arb engine reads them (integer form or exact floats)."""
        if self.source.is_exact:
            ints, _ = self.source.integer_form()
            return list(ints), sum(ints)
        flat = [float(x) for x in self.source.flat]
        return flat, float(self.source.total)

    def ball(self, index: tuple[int, ...]) -> Any:
        index = self.check_index(index, "ball")
        flat, total = self._exact_weights()
        if (
            self._balls is None
            and self.source.ndim == 1
            and self.shape[0] >= CAUCHY_MIN_LENGTH
            and all(x >= 0 for x in flat)
        ):
            require_nonzero_sum(total)
            seconds = CAUCHY_SECONDS * len(flat) * (prec_for_dps(self.digits) / 132) ** 1.8
            exact.check_work(
                seconds * exact.WORK_RATE,
                f"the certified ball at dps={self.digits}",
                "use a smaller dps or method='float'",
            )
            return cauchy_ball(flat, self.source.n, index[0], self.digits)
        row, column = (0, *index)[-2:]  # a 1-D profile is one row of balls
        return self.balls()[row][column]

    def _normalized(self) -> np.ndarray:
        b = self.balls()
        vals = np.array([[float(x.mid()) for x in row] for row in b])
        rad = max((float(x.rad()) for row in b for x in row), default=0.0)
        if not (np.all(np.isfinite(vals)) and math.isfinite(rad)):
            raise ERFValueError(
                f"the arb engine's normalised values at dps={self.digits} are beyond float64 "
                f"(weights of opposite signs far larger than their sum); balls() has them "
                f"as balls, or use method='exact'"
            )
        self._bound = rad + float(np.max(np.abs(vals))) * 2.0**-53
        return vals.reshape(self.shape)

    def _log_normalized(self) -> np.ndarray:
        b = self.balls()
        out = np.array([[float(x.log().mid()) if x > 0 else -math.inf for x in row] for row in b])
        return out.reshape(self.shape)


def build(source: Source, dps: int | None = None) -> ArbResult:
    """The ``arb`` result at ``dps`` decimal digits (`erftheory.engines.DEFAULT_DPS` when None)."""
    from . import DEFAULT_DPS

    return ArbResult(source, dps or DEFAULT_DPS)
