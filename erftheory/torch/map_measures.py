r"""Measures of a measured ERF map, with delta-method standard errors.

The functions here take an `erftheory.torch.result.EmpiricalERF` and read only its
public fields (``map``, ``count``, ``origin`` and the summary-feature sums); the
methods of the same names on `EmpiricalERF` call them and document them. A sample's
summary features (`_Layout`) are linear functionals of its map about the origin: the
total, the first and second moments and, unless there are more than `MAX_FEATURES`,
the cumulative masses of discs and squares; every measure is a smooth function of their
means, so its standard error follows from their per-sample covariance (delta method).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .._errors import ERFValueError

if TYPE_CHECKING:
    from .result import EmpiricalERF

__all__ = [
    "MAX_FEATURES",
    "GaussianFit",
    "MassShare",
    "Moments",
    "RadialMass",
    "gaussian",
    "mass_shares",
    "moments",
    "positive_total",
    "radial_mass",
]

MAX_FEATURES = 2048
"""The most summary features per sample (their cross-product matrix is this squared).

Maps whose rings (see `EmpiricalERF`) would need more keep only the total and the
moments; `EmpiricalERF.radial_mass` and `EmpiricalERF.mass_shares` then have NaN
standard errors."""


def _ceil_sqrt(v: np.ndarray) -> np.ndarray:
    """$\\lceil\\sqrt v\\rceil$ of non-negative int64 values, exactly."""
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > v, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return np.where(r * r == v, r, r + 1)


class _Layout:
    """The summary features of maps of one shape about one origin (see `EmpiricalERF`).

    Features: ``[T, X_0 .. X_{d-1}, XX_(i<=j) .., E_0 .. E_Re, Q_0 .. Q_Rc]`` with
    ``E_r`` the mass within Euclidean distance ``r`` of the origin and ``Q_i`` the mass
    within Chebyshev distance ``i`` (the square of side ``2i + 1``); the rings are
    left out when there would be more than `MAX_FEATURES` features.
    """

    def __init__(self, shape: tuple[int, ...], origin: tuple[int, ...]) -> None:
        self.shape = shape
        self.origin = origin
        d = len(shape)
        self.ndim = d
        self.pairs = [(i, j) for i in range(d) for j in range(i, d)]
        self.n_moments = 1 + d + len(self.pairs)
        axes = [np.arange(n, dtype=np.int64) - o for n, o in zip(shape, origin, strict=True)]
        grids = np.meshgrid(*axes, indexing="ij")
        self.coords = [g.reshape(-1) for g in grids]
        r2 = sum(c * c for c in self.coords)
        self.ring_e = _ceil_sqrt(np.asarray(r2))
        self.ring_c = np.max(np.abs(np.stack(self.coords)), axis=0)
        self.r_e = int(self.ring_e.max())
        self.r_c = int(self.ring_c.max())
        self.rings = self.n_moments + self.r_e + self.r_c + 2 <= MAX_FEATURES
        self.size = self.n_moments + (self.r_e + self.r_c + 2 if self.rings else 0)
        self.e_start = self.n_moments
        self.c_start = self.n_moments + self.r_e + 1
        self._torch: dict[Any, tuple[torch.Tensor, ...]] = {}

    def moment_matrix(self) -> np.ndarray:
        cols = [np.ones(self.coords[0].shape, dtype=np.float64)]
        cols += [c.astype(np.float64) for c in self.coords]
        cols += [(self.coords[i] * self.coords[j]).astype(np.float64) for i, j in self.pairs]
        return np.stack(cols, axis=1)

    @staticmethod
    def _order(ring: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
        perm = np.argsort(ring, kind="stable")
        bounds = np.searchsorted(ring[perm], np.arange(top + 1), side="right")
        return perm, bounds

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = str(device)
        if key not in self._torch:
            out = [torch.as_tensor(self.moment_matrix(), device=device)]
            if self.rings:
                for ring, top in ((self.ring_e, self.r_e), (self.ring_c, self.r_c)):
                    perm, bounds = self._order(ring, top)
                    out += [torch.as_tensor(perm, device=device)]
                    out += [torch.as_tensor(bounds, device=device)]
            self._torch[key] = tuple(out)
        return self._torch[key]

    def features(self, q: torch.Tensor) -> torch.Tensor:
        """``(n, size)`` features of maps ``q`` ``(n, *shape)`` (float64)."""
        n = int(q.shape[0])
        flat = q.reshape(n, -1)
        parts = self.tensors(q.device)
        out = [flat @ parts[0]]
        if self.rings:
            zero = flat.new_zeros((n, 1))
            for perm, bounds in (parts[1:3], parts[3:5]):
                cum = torch.cat([zero, torch.cumsum(flat[:, perm], dim=1)], dim=1)
                out.append(cum[:, bounds])
        return torch.cat(out, dim=1)

    def features_np(self, m: np.ndarray) -> np.ndarray:
        """The features of one map (numpy, float64): the point estimates of the measures."""
        flat = np.asarray(m, dtype=np.float64).reshape(-1)
        out = [flat @ self.moment_matrix()]
        for ring, top in ((self.ring_e, self.r_e), (self.ring_c, self.r_c)):
            out.append(np.cumsum(np.bincount(ring, weights=flat, minlength=top + 1)))
        return np.concatenate(out)


_LAYOUTS: dict[tuple[tuple[int, ...], tuple[int, ...]], _Layout] = {}


def _layout(shape: Sequence[int], origin: Sequence[int]) -> _Layout:
    key = (tuple(int(s) for s in shape), tuple(int(o) for o in origin))
    if key not in _LAYOUTS:
        if len(_LAYOUTS) > 32:
            _LAYOUTS.clear()
        _LAYOUTS[key] = _Layout(*key)
    return _LAYOUTS[key]


@dataclass(frozen=True, eq=False)
class Moments:
    """The mean and covariance of a normalised ERF map (`EmpiricalERF.moments`).

    Attributes:
        mean: the mean position per axis, in input pixels.
        mean_stderr: its standard error per axis (NaN when unavailable).
        covariance: the ``(d, d)`` covariance; its diagonal is the variance per axis.
        covariance_stderr: the standard error of every entry.
        count: the number of samples $N$ behind the standard errors.
    """

    mean: tuple[float, ...]
    mean_stderr: tuple[float, ...]
    covariance: np.ndarray
    covariance_stderr: np.ndarray
    count: int

    @property
    def variance(self) -> tuple[float, ...]:
        """The variance per axis (the covariance's diagonal)."""
        return tuple(float(v) for v in np.diag(self.covariance))

    @property
    def variance_stderr(self) -> tuple[float, ...]:
        """The standard error of the variance per axis."""
        return tuple(float(v) for v in np.diag(self.covariance_stderr))


@dataclass(frozen=True, eq=False)
class GaussianFit:
    r"""A Gaussian fitted to a normalised ERF map (`EmpiricalERF.gaussian`).

    Attributes:
        method: ``"moments"`` or ``"least_squares"``.
        centre, centre_stderr: the centre per axis (input pixels).
        sigma, sigma_stderr: the principal widths, largest first ($\sigma_1 \ge
            \sigma_2$; one value in 1-D).
        angle, angle_stderr: the major axis' angle in radians from the column axis
            towards the row axis (0 in 1-D).
        sigma_axis, sigma_axis_stderr: the widths along the map's axes,
            $\sqrt{C_{ii}}$ (rows, then columns).
        covariance: the Gaussian's covariance matrix.
        amplitude: its peak value on the normalised map's scale.
        r_squared: the share of the normalised map's variance it explains.
    """

    method: str
    centre: tuple[float, ...]
    centre_stderr: tuple[float, ...]
    sigma: tuple[float, ...]
    sigma_stderr: tuple[float, ...]
    angle: float
    angle_stderr: float
    sigma_axis: tuple[float, ...]
    sigma_axis_stderr: tuple[float, ...]
    covariance: np.ndarray
    amplitude: float
    r_squared: float

    @property
    def sigma_x(self) -> float:
        """The width along the column axis (the last axis)."""
        return self.sigma_axis[-1]

    @property
    def sigma_y(self) -> float:
        """The width along the row axis (the first axis of a 2-D map)."""
        return self.sigma_axis[0]


@dataclass(frozen=True, eq=False)
class RadialMass:
    """The cumulative mass of a normalised map within integer radii of its origin.

    Attributes:
        radius: the radii (ints).
        mass: the share of the map within each radius.
        stderr: its standard error.
    """

    radius: np.ndarray
    mass: np.ndarray
    stderr: np.ndarray


@dataclass(frozen=True)
class MassShare:
    """The square about the origin holding a share of a normalised map.

    Attributes:
        share: the share $s$.
        side: ``2 i + 1`` for the smallest square holding at least $s$.
        pixels: that square's pixels inside the map.
        area_ratio: ``pixels`` over the map's pixels.
        width: the side interpolated in the cumulative mass (continuous).
        width_stderr: its standard error.
    """

    share: float
    side: int
    pixels: int
    area_ratio: float
    width: float
    width_stderr: float


def _gaussian_grid(
    shape: tuple[int, ...], centre: Sequence[float], cov: np.ndarray, amp: float
) -> np.ndarray:
    """``amp * exp(-(x - centre)^T cov^{-1} (x - centre) / 2)`` on the pixel grid."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    diff = np.stack([g - c for g, c in zip(grids, centre, strict=True)], axis=-1)
    inv = np.linalg.inv(np.asarray(cov, dtype=np.float64))
    quad = np.einsum("...i,ij,...j->...", diff, inv, diff)
    return np.asarray(amp * np.exp(-0.5 * quad))


def feature_stats(erf: EmpiricalERF) -> tuple[np.ndarray, np.ndarray] | None:
    """Feature means and their sample covariance (None without features or N < 2)."""
    n = erf.count
    if erf.feature_sum is None or n < 2:
        return None
    assert erf.feature_shift is not None and erf.feature_cross is not None
    mean = erf.feature_shift + erf.feature_sum / n
    cov = (erf.feature_cross - np.outer(erf.feature_sum, erf.feature_sum) / n) / (n - 1)
    return mean, cov


def _delta(erf: EmpiricalERF, grads: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Delta-method standard errors $\\sqrt{g^\\top \\Sigma_f g / N}$ for rows ``g``."""
    var = np.einsum("...i,ij,...j->...", grads, cov, grads) / erf.count
    return np.sqrt(np.maximum(var, 0.0))


def positive_total(erf: EmpiricalERF) -> float:
    if erf.count == 0:
        raise ERFValueError("no sample was aggregated (count == 0); there is no map")
    total = float(erf.map.sum())
    if not total > 0 or not math.isfinite(total):
        raise ERFValueError(
            f"the map sums to {total!r}; the measures need a map with a positive sum "
            f"(a non-negative statistic such as 'mean_square', 'mean_abs' or 'relu')"
        )
    return total


def _moment_parts(erf: EmpiricalERF) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean offset from the origin, covariance, and their feature gradients."""
    total = positive_total(erf)
    lay = _layout(erf.shape, erf.origin)
    f = lay.features_np(erf.map)
    d = lay.ndim
    m = f[1 : 1 + d] / total
    cov = np.zeros((d, d))
    for p, (i, j) in enumerate(lay.pairs):
        cov[i, j] = cov[j, i] = f[1 + d + p] / total - m[i] * m[j]
    stats = feature_stats(erf)
    if stats is None:
        return m, cov, None
    fm, _ = stats
    t = fm[0]
    size = lay.size
    grad_m = np.zeros((d, size))
    mm = fm[1 : 1 + d] / t
    for i in range(d):
        grad_m[i, 1 + i] = 1.0 / t
        grad_m[i, 0] = -mm[i] / t
    grad_c = np.zeros((d, d, size))
    for p, (i, j) in enumerate(lay.pairs):
        g = np.zeros(size)
        g[1 + d + p] = 1.0 / t
        g[0] = -fm[1 + d + p] / (t * t)
        g = g - mm[j] * grad_m[i] - mm[i] * grad_m[j]
        grad_c[i, j] = grad_c[j, i] = g
    grads = np.concatenate([grad_m, grad_c.reshape(d * d, size)])
    return m, cov, grads


def moments(erf: EmpiricalERF) -> Moments:
    """`EmpiricalERF.moments` of ``erf`` (see there)."""
    m, cov, grads = _moment_parts(erf)
    d = len(m)
    stats = feature_stats(erf)
    if grads is None or stats is None:
        se = np.full(d + d * d, np.nan)
    else:
        se = _delta(erf, grads, stats[1])
    mean = tuple(float(o + v) for o, v in zip(erf.origin, m, strict=True))
    cov_se = se[d:].reshape(d, d)
    for a in (cov, cov_se):
        a.setflags(write=False)
    return Moments(
        mean=mean,
        mean_stderr=tuple(float(v) for v in se[:d]),
        covariance=cov,
        covariance_stderr=cov_se,
        count=erf.count,
    )


def gaussian(
    erf: EmpiricalERF, method: Literal["moments", "least_squares"] = "moments"
) -> GaussianFit:
    """`EmpiricalERF.gaussian` of ``erf`` (see there)."""
    if method not in ("moments", "least_squares"):
        raise ERFValueError(f"method must be 'moments' or 'least_squares', got {method!r}")
    if erf.ndim not in (1, 2):
        raise ERFValueError(f"gaussian() fits 1-D and 2-D maps, this one is {erf.shape}")
    m, cov, grads = _moment_parts(erf)
    d = erf.ndim
    stats = feature_stats(erf)
    centre = tuple(float(o + v) for o, v in zip(erf.origin, m, strict=True))
    if d == 1:
        lam = np.array([cov[0, 0]])
        angle = 0.0
    else:
        a, c, b = cov[0, 0], cov[1, 1], cov[0, 1]
        u = (c - a) / 2.0
        r = math.hypot(u, b)
        lam = np.array([(a + c) / 2.0 + r, (a + c) / 2.0 - r])
        angle = 0.5 * math.atan2(b, u) if r > 0 else 0.0
    if not (lam > 0).all():
        raise ERFValueError(
            f"the map's covariance {cov.tolist()} is not positive definite; no Gaussian fits"
        )
    nan = float("nan")
    c_se = (nan,) * d
    s_se = (nan,) * d
    a_se = nan
    ax_se = (nan,) * d
    if method == "least_squares":
        centre, lam, angle, cov, amp = _least_squares(erf, centre, lam, angle)
    else:
        amp = 1.0 / math.sqrt((2 * math.pi) ** d * float(np.prod(lam)))
        if grads is not None and stats is not None:
            cov_f = stats[1]
            gm, gc = grads[:d], grads[d:].reshape(d, d, -1)
            c_se = tuple(float(v) for v in _delta(erf, gm, cov_f))
            ax = np.stack([gc[i, i] / (2.0 * math.sqrt(cov[i, i])) for i in range(d)])
            ax_se = tuple(float(v) for v in _delta(erf, ax, cov_f))
            if d == 1:
                s_se = ax_se
            else:
                ga, gcc, gb = gc[0, 0], gc[1, 1], gc[0, 1]
                u = (cov[1, 1] - cov[0, 0]) / 2.0
                b = cov[0, 1]
                r = math.hypot(u, b)
                if r > 0:
                    dl1 = (0.5 - u / (2 * r)) * ga + (0.5 + u / (2 * r)) * gcc + (b / r) * gb
                    dl2 = (0.5 + u / (2 * r)) * ga + (0.5 - u / (2 * r)) * gcc - (b / r) * gb
                    dth = (b / (4 * r * r)) * (ga - gcc) + (u / (2 * r * r)) * gb
                    rows = np.stack(
                        [dl1 / (2 * math.sqrt(lam[0])), dl2 / (2 * math.sqrt(lam[1])), dth]
                    )
                    se = _delta(erf, rows, cov_f)
                    s_se = (float(se[0]), float(se[1]))
                    a_se = float(se[2])
                else:
                    iso = (ga + gcc) / 2.0 / (2 * math.sqrt(lam[0]))
                    v = float(_delta(erf, iso[None], cov_f)[0])
                    s_se = (v, v)
    model = _gaussian_grid(erf.shape, centre, cov, amp)
    p = erf.map / positive_total(erf)
    ss_tot = float(((p - p.mean()) ** 2).sum())
    r2 = 1.0 - float(((p - model) ** 2).sum()) / ss_tot if ss_tot > 0 else nan
    cov = np.array(cov, dtype=np.float64)
    cov.setflags(write=False)
    return GaussianFit(
        method=method,
        centre=centre,
        centre_stderr=c_se,
        sigma=tuple(float(math.sqrt(v)) for v in lam),
        sigma_stderr=s_se,
        angle=float(angle),
        angle_stderr=a_se,
        sigma_axis=tuple(float(math.sqrt(cov[i, i])) for i in range(d)),
        sigma_axis_stderr=ax_se,
        covariance=cov,
        amplitude=float(amp),
        r_squared=r2,
    )


def _least_squares(
    erf: EmpiricalERF, centre: tuple[float, ...], lam: np.ndarray, angle: float
) -> tuple[tuple[float, ...], np.ndarray, float, np.ndarray, float]:
    from scipy.optimize import least_squares

    p = erf.map / positive_total(erf)
    d = erf.ndim
    amp0 = float(p.max())

    def cov_of(v: np.ndarray) -> np.ndarray:
        if d == 1:
            return np.array([[math.exp(2 * v[2])]])
        s1, s2, th = math.exp(v[3]), math.exp(v[4]), v[5]
        ux = np.array([math.sin(th), math.cos(th)])  # major axis in (row, col)
        uy = np.array([math.cos(th), -math.sin(th)])
        return s1 * s1 * np.outer(ux, ux) + s2 * s2 * np.outer(uy, uy)

    def resid(v: np.ndarray) -> np.ndarray:
        return (_gaussian_grid(erf.shape, tuple(v[1 : 1 + d]), cov_of(v), v[0]) - p).ravel()

    x0 = [amp0, *centre, *(0.5 * np.log(lam)), *([angle] if d == 2 else [])]
    sol = least_squares(resid, np.array(x0, dtype=np.float64), xtol=1e-14, ftol=1e-14)
    v = sol.x
    cov = cov_of(v)
    w, _ = np.linalg.eigh(cov)
    lam_f = np.sort(w)[::-1]
    if d == 2:
        a, c, b = cov[0, 0], cov[1, 1], cov[0, 1]
        ang = 0.5 * math.atan2(b, (c - a) / 2.0) if math.hypot(c - a, b) > 0 else 0.0
    else:
        ang = 0.0
    return tuple(float(c) for c in v[1 : 1 + d]), lam_f, ang, cov, float(v[0])


def radial_mass(erf: EmpiricalERF, radii: Sequence[int] | None = None) -> RadialMass:
    """`EmpiricalERF.radial_mass` of ``erf`` (see there)."""
    total = positive_total(erf)
    lay = _layout(erf.shape, erf.origin)
    f = lay.features_np(erf.map)
    curve = f[lay.e_start : lay.e_start + lay.r_e + 1] / total
    if radii is None:
        idx = np.arange(lay.r_e + 1)
    else:
        vals = list(radii)
        if not all(
            isinstance(r, numbers.Integral) and not isinstance(r, bool) and r >= 0 for r in vals
        ):
            raise ERFValueError(f"radii must be non-negative ints, got {radii!r}")
        idx = np.minimum(np.array(vals, dtype=np.int64), lay.r_e)
    se = _ring_stderr(erf, lay, lay.e_start + idx, len(idx))
    radius = np.array(idx if radii is None else list(radii), dtype=np.int64)
    mass = curve[idx]
    for a in (radius, mass, se):
        a.setflags(write=False)
    return RadialMass(radius=radius, mass=mass, stderr=se)


def _ring_stderr(erf: EmpiricalERF, lay: _Layout, columns: np.ndarray, k: int) -> np.ndarray:
    stats = feature_stats(erf)
    if stats is None or not lay.rings:
        return np.full(k, np.nan)
    fm, cov = stats
    t = fm[0]
    g = np.zeros((k, lay.size))
    g[np.arange(k), columns] = 1.0 / t
    g[:, 0] -= fm[columns] / (t * t)
    return _delta(erf, g, cov)


def mass_shares(
    erf: EmpiricalERF, shares: Sequence[float] = (0.2, 0.3, 0.5, 0.99)
) -> tuple[MassShare, ...]:
    """`EmpiricalERF.mass_shares` of ``erf`` (see there)."""
    vals = list(shares)
    if not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 < float(v) <= 1 for v in vals
    ):
        raise ERFValueError(f"shares must be numbers in (0, 1], got {shares!r}")
    total = positive_total(erf)
    lay = _layout(erf.shape, erf.origin)
    f = lay.features_np(erf.map)
    cum = f[lay.c_start : lay.c_start + lay.r_c + 1] / total
    counts = np.cumsum(np.bincount(lay.ring_c, minlength=lay.r_c + 1))
    stats = feature_stats(erf)
    out = []
    for v in vals:
        s = float(v)
        hits = np.nonzero(cum >= s * (1 - 1e-12))[0]
        i = int(hits[0]) if hits.size else lay.r_c
        lo_c = float(cum[i - 1]) if i > 0 else 0.0
        hi_c = float(cum[i])
        lo_r, hi_r = (i - 0.5 if i > 0 else 0.0), i + 0.5
        span = hi_c - lo_c
        rho = hi_r if span <= 0 else lo_r + (s - lo_c) / span * (hi_r - lo_r)
        width_se = float("nan")
        if stats is not None and lay.rings and span > 0:
            fm, cov = stats
            t = fm[0]
            g = np.zeros(lay.size)
            d_hi = -(hi_r - lo_r) * (s - lo_c) / (span * span)
            d_lo = (hi_r - lo_r) * (s - hi_c) / (span * span)
            for col, w in ((lay.c_start + i, d_hi), (lay.c_start + i - 1, d_lo)):
                if col >= lay.c_start:
                    g[col] += w / t
                    g[0] -= w * fm[col] / (t * t)
            width_se = float(2.0 * _delta(erf, g[None], cov)[0])
        out.append(
            MassShare(
                share=s,
                side=2 * i + 1,
                pixels=int(counts[i]),
                area_ratio=float(counts[i]) / float(np.prod(erf.shape)),
                width=float(2.0 * rho),
                width_stderr=width_se,
            )
        )
    return tuple(out)
