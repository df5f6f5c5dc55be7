r"""The accurate ``float`` engine: exponential tilting with small per-window transforms.

A plain FFT power has an *absolute* error of about $10^{-16}$ of the peak, so tail values
lose all relative accuracy (see `erftheory.engines.fft`). Here every window of the index
range is transformed around its own saddle point, where the tilted profile is near its
peak, so every value that is a normal float64 comes out with a small *relative* error; see
`tilted_power_1d` and ``docs/engines.md``.

`TiltResult` is the engine's result; `build` falls back to the plain FFT
(`erftheory.engines.fft.FFTResult`) where tilting does not apply (`applicable`: negative
weights, a zero sum, a 2-D support without positive corners).

Example:
    >>> import numpy as np
    >>> from erftheory import Kernel
    >>> from erftheory.engines.source import KernelPower
    >>> r = build(KernelPower(Kernel([1.0, 2.0, 1.0]), 2))
    >>> type(r).__name__, bool(np.allclose(r.normalized(), [1, 4, 6, 4, 1] / np.float64(16)))
    ('TiltResult', True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import flint
import numpy as np
from scipy import fft as _sfft

from .._errors import ERFValueError
from .base import BaseResult, require_nonzero_sum
from .exact import reduce_support
from .fft import FFTResult, scaled_weights
from .floats import ArrayResult, FloatTransferResult, exact_outer
from .source import FloatTransfer

if TYPE_CHECKING:
    from .source import Source

__all__ = [
    "TiltResult",
    "applicable",
    "build",
    "tilt_2d_applicable",
    "tilted_power_1d",
    "tilted_power_2d",
]

WINDOW_HALF_WIDTH = 3.0
"""Half-width of a tilted window, in tilted standard deviations (1-D).

Inside a window the tilted distribution is at least about $e^{-3^2/2} = 1.1\\cdot 10^{-2}$
of its peak, so an absolute transform error $\\eta$ of the peak becomes a relative error
of at most $90\\,\\eta$. $\\eta$ is a few ulps for short windows and grows with the
window's length $M$ (FFT rounding spreads over all $M$ outputs while the signal sits in a
few dozen frequencies); at $k = 101$, $n = 10^6$ it reached $2.5\\cdot 10^{-13}$, which
4σ windows (amplification $e^{8} \\approx 3000$) turned into $7.7\\cdot 10^{-10}$ for a
random kernel; 3σ windows measure $1.1\\cdot 10^{-11}$ there, at about 20 % more
transform work.
"""
ZERO_FLOOR = 1e-11
"""Tilted values below this fraction of their window's peak are returned as 0.

Within a window every non-zero coefficient is far above it; only true zeros (kernels
with interior zero taps) and rounding noise fall below.
"""
SPECTRUM_TOLERANCE = 1e-16
r"""2-D windows: the error budget of the frequencies whose $n$-th power is taken as it is.

Their summed error is at most this fraction of $\sum_\omega |U_s(\omega)|^n$, the scale
of the window's peak value; 2-D window corners are at least $e^{-4.5} \approx 1/90$ of
the peak, so this adds at most about $10^{-14}$ relative error there.
"""
_LOG_TINY = -750.0  # exp(-750) < 2**-1075: rounds to 0 in float64
_BAND = -800.0  # frequencies where n log|U_s(ω)| is below this contribute nothing
_SCALE = 2.0**24  # tilts are multiples of 2**-24, so s * (t - c) is exact
_GRID = 4001


class _TiltTable:
    """Tilted means, variances and log-values of a nonnegative 1-D kernel on an s grid."""

    def __init__(self, u: np.ndarray, n: int) -> None:
        k = len(u)
        pos = u[u > 0]
        spread = math.log(float(pos.max())) - math.log(float(pos.min()))  # no overflow
        big = math.log(n + 1) + spread + 12.0
        self.s = np.linspace(-big, big, _GRID)
        m = np.arange(k, dtype=float)
        with np.errstate(divide="ignore"):
            logu = np.log(u)
        a = logu[None, :] + self.s[:, None] * m[None, :]
        top = a.max(axis=1)
        e = np.exp(a - top[:, None])
        tot = e.sum(axis=1)
        p = e / tot[:, None]
        self.logv = top + np.log(tot)  # log U(e^s)
        self.mu = p @ m
        self.var = np.einsum("ij,ij->i", p, (m[None, :] - self.mu[:, None]) ** 2)
        self.n = n
        self.t = n * self.mu
        self.sigma = np.sqrt(n * self.var)
        logv0 = float(np.log(u.sum()))
        self.chernoff = n * (self.logv - logv0) - self.s * self.t

    def s_at(self, t: float) -> float:
        return float(np.interp(t, self.t, self.s))

    def sigma_at(self, t: float) -> float:
        return float(np.interp(t, self.t, self.sigma))

    def normal_range(self, last: int) -> tuple[int, int]:
        """Indices outside ``[lo, hi]`` are below $e^{-750}$ (Chernoff bound), so 0."""
        below = self.chernoff < _LOG_TINY
        lo, hi = 0, last
        left = np.nonzero(below & (self.s < 0))[0]
        if left.size:
            lo = max(0, math.floor(self.t[left[-1]]) + 1)
        right = np.nonzero(below & (self.s > 0))[0]
        if right.size:
            hi = min(last, math.ceil(self.t[right[0]]) - 1)
        return lo, hi


def _windows(table: _TiltTable, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """Tile ``[lo, hi]`` with windows ``(start, stop, centre)`` of about 9 tilted σ."""
    out = []
    start = lo
    h2 = 2 * WINDOW_HALF_WIDTH
    while start <= hi:
        s0 = table.sigma_at(start)
        width = max(1, int(h2 * s0))
        s1 = min(s0, table.sigma_at(start + width // 2), table.sigma_at(start + width - 1))
        width = max(1, min(width, int(h2 * s1)))
        stop = min(hi + 1, start + width)
        out.append((start, stop, (start + stop - 1) // 2))
        start = stop
    return out


def _arb_log_poly(u: np.ndarray, s: float, prec: int) -> Any:
    """$\\log U(e^s)$ as an arb ball at ``prec`` bits (the weights are exact floats)."""
    old = flint.ctx.prec
    flint.ctx.prec = prec
    try:
        x = flint.arb(s).exp()
        return flint.arb_poly([flint.arb(float(c)) for c in u])(x).log()
    finally:
        flint.ctx.prec = old


def _log1p_complex(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of $\\log(1 + a + jb)$, accurate when $|a + jb|$ is small."""
    with np.errstate(divide="ignore"):  # 1 + S = 0 exactly: log is -inf, exp gives 0
        re = 0.5 * np.log1p(2.0 * a + a * a + b * b)
    im = np.arctan2(b, 1.0 + a)
    return re, im


_SIN_SERIES = [(-1.0) ** (i + 1) / math.factorial(2 * i + 3) for i in range(8)]


def _sin_minus_id(x: np.ndarray) -> np.ndarray:
    r"""$\sin x - x$ with a small relative error (a series for $|x| < 1/2$).

    Splitting $\sin\theta = \theta + (\sin\theta - \theta)$ lets the linear part be
    summed once per window (where it is the tilted mean, close to 0), so no rounding
    noise proportional to $\omega$ reaches $n \log(1 + S)$.
    """
    x2 = x * x
    acc = np.full_like(x, _SIN_SERIES[-1])
    for c in reversed(_SIN_SERIES[:-1]):
        acc = acc * x2 + c
    series = acc * x2 * x
    return np.where(np.abs(x) < 0.5, series, np.sin(x) - x)


def tilted_power_1d(weights: np.ndarray, n: int, *, log: bool = False) -> np.ndarray:
    r"""Normalised coefficients of $V(z)^n / V(1)^n$ for a nonnegative 1-D kernel.

    Exponential tilting (shifted saddle points): for a tilt $s$ the sequence
    $q_t = c_t e^{st} / (V(e^s)/V(1))^n$ is the distribution of a sum of $n$ draws
    from $p_m \propto w_m e^{sm}$; near its mean $t \approx n\mu(s)$ it is at its peak,
    where a discrete Fourier transform has a *relative* error of a few ulps. The
    range of $t$ is tiled with windows of $\pm 3$ tilted standard deviations; each
    window takes its own $s$ (the saddle point of its centre $c$) and a small
    transform of $M \approx 21\sigma$ points (aliasing from farther than $M$ is below
    $10^{-30}$ of the window's values). On each window:

    - $1 + S(\omega) = \sum_m p_m e^{-j\omega(m - c/n)}$ is evaluated as
      $S = \sum_m p_m\,(e^{-j\omega(m-c/n)} - 1)$, with $e^{j\theta}-1$ written as
      $-2\sin^2(\theta/2) + j\sin\theta$, so $S$ has a small *relative* error and
      $n\log(1+S)$ an absolute error of about $\sqrt n\,u$ instead of $n u$;
      frequencies where $n\log|1+S| < -800$ are skipped (they add nothing);
    - an inverse real FFT gives $q$ at offsets $t - c$ (the phase $e^{-j\omega c}$ is a
      circular shift);
    - $\log c_t = \log q_t + [n\log V(e^s) - n\log V(1) - sc] - s(t - c)$, where the
      bracket is evaluated with python-flint's `arb` at high precision and $s$ is a
      multiple of $2^{-24}$ so that $s(t-c)$ is exact in float64.

    Windows of the same size are transformed together (one batched FFT per size).
    Indices whose Chernoff bound $\min_s n\log(V(e^s)/V(1)) - st$ is below $-750$ are
    0 in float64 and are not computed (unless ``log=True``, which covers every index).
    The support is first reduced, $V(z) = z^{m_0} U(z^g)$, so that $U$ is aperiodic.

    Args:
        weights: nonnegative float64 weights with a positive sum.
        n: the number of layers.
        log: return natural logarithms ($-\infty$ for exact zeros) over the whole range.

    Returns:
        A float64 array of length $n(k-1)+1$.
    """
    w = scaled_weights(weights)
    k = len(w)
    length = n * (k - 1) + 1
    fill = -np.inf if log else 0.0
    out = np.full(length, fill)
    m0, g, taps = reduce_support(w.tolist())  # V(z) = z^m0 U(z^g)
    u = np.array(taps, dtype=float)
    ku = len(u)
    if n == 0 or ku == 1:
        out[n * m0] = 0.0 if log else 1.0
        return out
    core = _tilted_core(u, n, log)
    out[n * m0 : n * m0 + g * (len(core) - 1) + 1 : g] = core
    return out


def _tilted_core(u: np.ndarray, n: int, log: bool) -> np.ndarray:
    ku = len(u)
    last = n * (ku - 1)
    table = _TiltTable(u, n)
    lo, hi = (0, last) if log else table.normal_range(last)
    out = np.full(last + 1, -np.inf if log else 0.0)
    if lo > hi:
        return out
    wins = _windows(table, lo, hi)
    m = np.arange(ku, dtype=float)
    with np.errstate(divide="ignore"):
        logu = np.log(u)
    logv1 = math.log(math.fsum(u.tolist()))
    prec = 80 + max(0, int(math.log2(n * (abs(logv1) + 60.0) + 1.0)))
    logv1_ball = _arb_log_poly(u, 0.0, prec)  # n log U(1) needs more than float64's digits
    cap = _sfft.next_fast_len(last + 1, real=True)
    # Group windows by transform size.
    groups: dict[int, list[tuple[int, int, int, float]]] = {}
    for start, stop, c in wins:
        sig = min(table.sigma_at(c), table.sigma_at(start), table.sigma_at(stop - 1))
        sig = max(sig, table.sigma_at(c))
        need = (stop - start) + 11.0 * sig + 48
        # At least ku points, so that the cheap spectrum sees every tap.
        size = min(cap, _sfft.next_fast_len(max(64, ku, math.ceil(need)), real=True))
        s = round(table.s_at(c) * _SCALE) / _SCALE
        groups.setdefault(size, []).append((start, stop, c, s))
    for size, items in groups.items():
        _tilted_group(u, logu, m, n, size, items, prec, logv1_ball, out, log)
    return out


def _tilted_group(
    u: np.ndarray,
    logu: np.ndarray,
    m: np.ndarray,
    n: int,
    size: int,
    items: list[tuple[int, int, int, float]],
    prec: int,
    logv1: Any,
    out: np.ndarray,
    log: bool,
) -> None:
    count = len(items)
    svec = np.array([it[3] for it in items])
    cvec = np.array([it[2] for it in items], dtype=float)
    a = logu[None, :] + svec[:, None] * m[None, :]
    top = a.max(axis=1)
    e = np.exp(a - top[:, None])
    p = e / e.sum(axis=1)[:, None]  # tilted probabilities, one row per window
    offsets = m[None, :] - cvec[:, None] / n  # m - c/n per window
    drift = np.einsum("ij,ij->i", p, offsets)  # tilted mean minus c/n (close to 0)
    half = size // 2 + 1
    with np.errstate(divide="ignore"):
        cheap = n * np.log(np.abs(_sfft.rfft(p, size, axis=1)))
    band = cheap > _BAND
    band[:, 0] = True
    rows, cols = np.nonzero(band)
    omega = (2.0 * np.pi / size) * cols.astype(float)
    spec = np.zeros((count, half), dtype=complex)
    chunk = max(1, 4_000_000 // len(m))
    for lo in range(0, len(rows), chunk):
        r, om = rows[lo : lo + chunk], omega[lo : lo + chunk]
        theta = -om[:, None] * offsets[r]
        sin_half = np.sin(0.5 * theta)
        re_s = np.einsum("ij,ij->i", p[r], -2.0 * sin_half * sin_half)
        im_s = np.einsum("ij,ij->i", p[r], _sin_minus_id(theta)) - om * drift[r]
        lre, lim = _log1p_complex(re_s, im_s)
        with np.errstate(under="ignore"):
            spec[r, cols[lo : lo + chunk]] = np.exp(n * lre) * np.exp(1j * (n * lim))
    q = _sfft.irfft(spec, size, axis=1)
    for j, (start, stop, c, s) in enumerate(items):
        with flint.ctx.workprec(prec):  # n (log U(e^s) - log U(1)) - s c cancels: keep the bits
            bracket = n * (_arb_log_poly(u, s, prec) - logv1) - flint.arb(s) * c
        b = float(bracket.mid())
        t = np.arange(start, stop)
        vals = q[j, (t - c) % size]
        peak = q[j].max()
        with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
            vals = np.where(vals > ZERO_FLOOR * peak, vals, 0.0)
            logs = np.log(vals) + (b - s * (t - c))
            out[start:stop] = logs if log else np.exp(logs)


# ---------------------------------------------------------------- 2-D tilting
MAHALANOBIS_RADIUS_2D = 3.0
"""A 2-D window is used once all its corners lie within this tilted Mahalanobis radius."""


def tilt_2d_applicable(w: np.ndarray) -> bool:
    """2-D tilting needs nonnegative weights and positive corners (after trimming zero borders).

    Positive corners make the support's convex hull the full rectangle, so every
    window centre has a finite saddle point.
    """
    if np.any(w < 0) or not np.any(w > 0):
        return False
    r = np.nonzero(w.any(axis=1))[0]
    c = np.nonzero(w.any(axis=0))[0]
    core = w[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
    return bool(core[0, 0] > 0 and core[0, -1] > 0 and core[-1, 0] > 0 and core[-1, -1] > 0)


def _centred_phases(j: np.ndarray, n: int, taps: int, c: int, size: int) -> np.ndarray:
    r"""$e^{-i\omega_j (a - c/n)}$ for $\omega_j = 2\pi j/M$ and taps $a = 0, \dots$, as a matrix.

    The phase $2\pi\, j(na - c)/(nM)$ is reduced modulo $2\pi$ in integers before the one
    rounding, so it is accurate to an ulp of $2\pi$ however large $j\,c$ is.
    """
    turns = (j[:, None] * (n * np.arange(taps)[None, :] - c)) % (n * size)
    return np.exp(-2j * np.pi * turns / (n * size))


class _Tilt2D:
    def __init__(self, u: np.ndarray, n: int, log: bool) -> None:
        self.u, self.n, self.log = u, n, log
        k1, k2 = u.shape
        self.last = (n * (k1 - 1), n * (k2 - 1))
        g0, g1 = np.meshgrid(np.arange(k1, dtype=float), np.arange(k2, dtype=float), indexing="ij")
        keep = u.ravel() > 0
        self.m = np.stack([g0.ravel()[keep], g1.ravel()[keep]], axis=1)  # taps × 2
        self.logw = np.log(u.ravel()[keep])
        self.logv1 = math.log(math.fsum(u.ravel().tolist()))
        self.prec = 80 + max(0, int(math.log2(n * (abs(self.logv1) + 60.0) + 1.0)))
        self.logv1_ball = self._arb_log(np.zeros(2))
        self.out = np.full((self.last[0] + 1, self.last[1] + 1), -np.inf if log else 0.0)

    def stats(self, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        a = self.logw + self.m @ s
        top = float(a.max())
        e = np.exp(a - top)
        tot = float(e.sum())
        p = e / tot
        mu = p @ self.m
        d = self.m - mu
        cov = (d * p[:, None]).T @ d
        return top + math.log(tot), mu, cov, p

    def saddle(self, target: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Minimise the convex $\\log U(e^s) - s\\cdot$target by damped Newton."""
        for _ in range(60):
            f, mu, cov, _p = self.stats(s)
            grad = mu - target
            if np.max(np.abs(grad)) < 1e-12 * (1 + np.max(np.abs(target))):
                break
            step = np.linalg.solve(cov + 1e-300 * np.eye(2), -grad)
            if np.max(np.abs(step)) < 2.0**-30:
                # Newton's last step, far below the 2**-24 grid `_leaf` rounds s to: taken
                # as it is (a line search there only sees rounding noise in f).
                return s + step
            g0 = f - s @ target
            lam = 1.0
            while lam > 1e-12:
                trial = s + lam * step
                if self.stats(trial)[0] - trial @ target <= g0:
                    s = trial
                    break
                lam *= 0.5
            else:
                break
        return s

    def run(self) -> np.ndarray:
        self._rect((0, self.last[0] + 1), (0, self.last[1] + 1), np.zeros(2))
        return self.out

    def _rect(self, r0: tuple[int, int], r1: tuple[int, int], s_guess: np.ndarray) -> None:
        n = self.n
        c = np.array([(r0[0] + r0[1] - 1) // 2, (r1[0] + r1[1] - 1) // 2], dtype=float)
        target = np.clip(c / n, 0.3 / n, np.array(self.last, float) / n - 0.3 / n)
        s = self.saddle(target, s_guess.copy())
        f, _mu, cov, _p = self.stats(s)
        if not self.log:
            corners = np.array(
                [[r0[0], r1[0]], [r0[0], r1[1] - 1], [r0[1] - 1, r1[0]], [r0[1] - 1, r1[1] - 1]],
                dtype=float,
            )
            if n * (f - self.logv1) - float(np.min(corners @ s)) < _LOG_TINY:
                return
        ncov = n * cov
        half = np.array([(r0[1] - r0[0]) / 2, (r1[1] - r1[0]) / 2])
        try:
            inv = np.linalg.inv(ncov)
        except np.linalg.LinAlgError:
            inv = None
        radius2 = 0.0
        if inv is not None:
            for sgn in ((1, 1), (1, -1)):
                x = half * np.array(sgn)
                radius2 = max(radius2, float(x @ inv @ x))
        big = (r0[1] - r0[0]) * (r1[1] - r1[0]) > 1
        if big and (inv is None or radius2 > MAHALANOBIS_RADIUS_2D**2):
            sig = np.sqrt(np.maximum(np.diag(ncov), 1e-300))
            axis = (
                int(np.argmax(half / sig))
                if half[0] >= 1 and half[1] >= 1
                else int(half[1] > half[0])
            )
            if (r0, r1)[axis][1] - (r0, r1)[axis][0] < 2:
                axis = 1 - axis
            lo, hi = (r0, r1)[axis]
            mid = (lo + hi) // 2
            for part in ((lo, mid), (mid, hi)):
                self._rect(part if axis == 0 else r0, part if axis == 1 else r1, s)
            return
        self._leaf(r0, r1, c, s, ncov)

    def _leaf(
        self,
        r0: tuple[int, int],
        r1: tuple[int, int],
        c: np.ndarray,
        s: np.ndarray,
        ncov: np.ndarray,
    ) -> None:
        n = self.n
        s = np.round(s * _SCALE) / _SCALE
        _f, _mu, _cov, p = self.stats(s)
        sig = np.sqrt(np.maximum(np.diag(ncov), 0.0))
        sizes = []
        for axis, (lo, hi) in enumerate((r0, r1)):
            need = (hi - lo) + 11.0 * sig[axis] + 48
            cap = _sfft.next_fast_len(self.last[axis] + 1, real=axis == 1)
            least = max(64, self.u.shape[axis], math.ceil(need))
            sizes.append(min(cap, _sfft.next_fast_len(least, real=axis == 1)))
        M0, M1 = sizes
        dense = np.zeros(self.u.shape)
        idx = self.m.astype(int)
        dense[idx[:, 0], idx[:, 1]] = p
        j0 = np.arange(M0)
        j0 = np.where(j0 > M0 // 2, j0 - M0, j0)  # signed frequencies, as the direct sums
        j1 = np.arange(M1 // 2 + 1)
        # The tilted kernel's transform, centred on c/n per layer so that arg U is small
        # where |U|^n matters (U^n then loses no more than about n u relative there) and
        # n layers shift the profile by exactly c: U(ω) = Σ p_ab e^{-iω·((a, b) - c/n)},
        # as two small matrix products (k1 and k2 terms, cheaper than an FFT of the
        # zero-padded kernel) whose phases are reduced exactly modulo 2π first.
        k1, k2 = self.u.shape
        e0 = _centred_phases(j0, n, k1, int(c[0]), M0)
        e1 = _centred_phases(j1, n, k2, int(c[1]), M1)
        fourier = e0 @ dense @ e1.T  # absolute error ≲ (k1 + k2) u ≤ δ
        with np.errstate(divide="ignore"):
            logabs = np.log(np.abs(fourier))
        band = n * logabs > _BAND  # elsewhere |U|^n < e^-800: the spectrum is 0 there
        band[0, 0] = True
        b0, b1 = np.nonzero(band)
        flat = b0 * fourier.shape[1] + b1
        la = logabs.ravel()[flat]
        centred = fourier.ravel()[flat]
        with np.errstate(under="ignore"):
            magnitude = np.exp(n * la)
        # Where the transform's absolute error δ cannot matter, the n-th power of this
        # stands as it is (an error of at most n δ |U|^(n-1) per frequency, below
        # SPECTRUM_TOLERANCE of the spectrum's mass in all); elsewhere U is summed
        # directly with centred phases and log1p, accurate to a few ulps *relative* to
        # 1 - U. The cheapest errors are kept as they are: binned by powers of 2 (an upper
        # bound per bin, and O(band) work, unlike a sort), the largest bin whose
        # cumulative bound fits the budget sets the cut.
        delta = 4.0 * np.finfo(float).eps * math.log2(M0 * M1)
        budget = SPECTRUM_TOLERANCE * float(magnitude.sum())
        log2_error = ((n - 1) * la + math.log(n * delta)) / math.log(2.0)
        bins = np.clip(np.floor(log2_error), -1100, 0).astype(np.int64) + 1100
        bound = np.bincount(bins, minlength=1101) * 2.0 ** (np.arange(1101) - 1099.0)
        fits = np.nonzero(np.cumsum(bound) <= budget)[0]
        cut = int(fits[-1]) if len(fits) else -1
        direct = bins > cut
        direct[flat == 0] = True
        spec = np.zeros(fourier.shape, dtype=complex)
        with np.errstate(under="ignore"):
            spec.ravel()[flat] = magnitude * np.exp(1j * (n * np.angle(centred)))
        i0, i1 = b0[direct], b1[direct]
        w0 = 2.0 * np.pi / M0 * j0[i0].astype(float)
        w1 = 2.0 * np.pi / M1 * i1.astype(float)
        offsets = self.m - c[None, :] / n
        drift = p @ offsets
        chunk = max(1, 4_000_000 // len(p))
        for lo in range(0, len(i0), chunk):
            a0, a1 = w0[lo : lo + chunk], w1[lo : lo + chunk]
            theta = -(a0[:, None] * offsets[None, :, 0] + a1[:, None] * offsets[None, :, 1])
            sh = np.sin(0.5 * theta)
            re_s = (-2.0 * sh * sh) @ p
            im_s = _sin_minus_id(theta) @ p - (a0 * drift[0] + a1 * drift[1])
            lre, lim = _log1p_complex(re_s, im_s)
            with np.errstate(under="ignore"):
                spec[i0[lo : lo + chunk], i1[lo : lo + chunk]] = np.exp(n * lre) * np.exp(
                    1j * (n * lim)
                )
        t0 = np.arange(r0[0], r0[1])
        t1 = np.arange(r1[0], r1[1])
        # The inverse transform on the window's rows only (the second pass is the
        # window's share of the work); values at (t - c) mod M, the profile centred on c.
        rows = _sfft.ifft(spec, axis=0)[(t0 - int(c[0])) % M0]
        vals = _sfft.irfft(rows, M1, axis=1)[:, (t1 - int(c[1])) % M1]
        with flint.ctx.workprec(self.prec):  # the terms cancel: keep the bits
            bracket = (
                n * (self._arb_log(s) - self.logv1_ball)
                - flint.arb(s[0]) * int(c[0])
                - flint.arb(s[1]) * int(c[1])
            )
        b = float(bracket.mid())
        peak = vals.max()  # the window holds the tilted mean, so its peak too
        lin = (b - s[0] * (t0 - c[0]))[:, None] - (s[1] * (t1 - c[1]))[None, :]
        with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
            vals = np.where(vals > ZERO_FLOOR * peak, vals, 0.0)
            logs = np.log(vals) + lin
            self.out[r0[0] : r0[1], r1[0] : r1[1]] = logs if self.log else np.exp(logs)

    def _arb_log(self, s: np.ndarray) -> Any:
        old = flint.ctx.prec
        flint.ctx.prec = self.prec
        try:
            x, y = flint.arb(float(s[0])).exp(), flint.arb(float(s[1])).exp()
            acc = flint.arb(0)
            for row in self.u[::-1]:
                acc = acc * x + flint.arb_poly([flint.arb(float(v)) for v in row])(y)
            return acc.log()
        finally:
            flint.ctx.prec = old


def tilted_power_2d(weights: np.ndarray, n: int, *, log: bool = False) -> np.ndarray:
    r"""Normalised coefficients of $V(x, y)^n / V(1, 1)^n$ for a nonnegative 2-D kernel.

    The 2-D analogue of `tilted_power_1d` (see there for the per-window algebra): the
    index rectangle is split recursively until each piece's corners are within
    tilted Mahalanobis radius `MAHALANOBIS_RADIUS_2D` of its centre; each piece gets its
    own saddle point $(s_1, s_2)$ (damped Newton on the convex
    $\log V(e^{s_1}, e^{s_2}) - s\cdot c/n$) and a small 2-D transform, whose
    spectrum is the $n$-th power of the tilted kernel's transform (two small matrix
    products) where its error cannot matter (`SPECTRUM_TOLERANCE`) and comes from direct,
    centred sums with ``log1p`` elsewhere. Pieces whose
    Chernoff bound is below $e^{-750}$ are 0. Needs `tilt_2d_applicable` (nonnegative
    weights, positive corners).
    """
    w = scaled_weights(weights)
    shape = tuple(n * (s - 1) + 1 for s in w.shape)
    out = np.full(shape, -np.inf if log else 0.0)
    rows = np.nonzero(w.any(axis=1))[0]
    cols = np.nonzero(w.any(axis=0))[0]
    u = w[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    r, c = n * int(rows[0]), n * int(cols[0])
    if n == 0 or u.size == 1:
        out[r, c] = 0.0 if log else 1.0
        return out
    if u.shape[0] == 1 or u.shape[1] == 1:
        core = tilted_power_1d(u.ravel(), n, log=log)
        if u.shape[0] == 1:
            out[r, c : c + len(core)] = core
        else:
            out[r : r + len(core), c] = core
        return out
    core2 = _Tilt2D(u, n, log).run()
    out[r : r + core2.shape[0], c : c + core2.shape[1]] = core2
    return out


# ---------------------------------------------------------------- the engine's result
def applicable(source: Source) -> bool:
    """True when tilting applies to ``source``: nonnegative weights with a positive sum; in
    2-D also an exact outer product in float64, or positive corners (`tilt_2d_applicable`)."""
    if source.domain == "symbolic":
        return False
    w = source.float_rows()
    if np.any(w < 0) or not np.any(w > 0):
        return False
    if w.ndim == 1:
        return True
    return exact_outer(w) is not None or tilt_2d_applicable(w)


class TiltResult(ArrayResult):
    """The accurate ``float`` engine's result (exponential tilting)."""

    def _run(self, log: bool) -> np.ndarray:
        self._check(3.0)
        w = self.source.float_rows()
        require_nonzero_sum(w.sum())
        n = self.source.n
        if w.ndim == 1:
            return tilted_power_1d(w, n, log=log)
        pair = exact_outer(w)
        if pair is not None:
            a = tilted_power_1d(pair[0], n, log=log)
            b = tilted_power_1d(pair[1], n, log=log)
            with np.errstate(under="ignore", invalid="ignore"):
                return np.add.outer(a, b) if log else np.outer(a, b)
        return tilted_power_2d(w, n, log=log)

    def _normalized(self) -> np.ndarray:
        return self._run(False)

    def _log_normalized(self) -> np.ndarray:
        rows = self.source.float_rows().ravel()
        if any(
            x != 0 and not abs(r) >= np.finfo(float).tiny
            for x, r in zip(self.source.flat, rows, strict=True)
        ):
            raise ERFValueError(
                "log_normalized() with the float engine needs every non-zero weight within "
                "float64's range of the largest (a ratio above 2**-1022); this kernel's "
                "smallest would be dropped or rounded: use method='exact' or method='arb'"
            )
        return self._run(True)


def build(source: Source, dps: int | None = None) -> BaseResult:
    """The ``float`` result: tilting where it applies, else the plain FFT (``dps`` unused);
    a network's float64 transfer (`FloatTransfer`, power 1) is normalised as it is."""
    if isinstance(source, FloatTransfer):
        return FloatTransferResult(source)
    return TiltResult(source) if source.tiltable else FFTResult(source)
