r"""The Gaussian limit of Section 2.3 and distances to it.

By the central limit theorem the normalised ERF $o(t) = P(S_n = t)$ approaches the
density of $\mathcal N(n\,\mathbb E[X],\, n\,\mathrm{Var}[X])$ (Eq. 10). `GaussianFit`
samples that density on the profile's own grid and reports how far the profile is
from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import ERFValueError

__all__ = ["GaussianFit", "fit_gaussian"]


@dataclass(frozen=True)
class GaussianFit:
    r"""The Gaussian with a profile's mean and (co)variance, on the profile's grid.

    Attributes:
        mean: the mean position(s), measured from the origin.
        covariance: the variance (1-D) or the 2×2 covariance matrix (2-D).
        values: the Gaussian density sampled at every pixel of the grid.
        max_abs_diff: $\max_t |o(t) - \varphi(t)|$.
        total_variation: $\tfrac12 \sum_t |o(t) - \varphi(t)|$.
        kolmogorov: 1-D only: $\sup_x |F(x) - \Phi(x)|$ between the profile's CDF
            (a step function) and the Gaussian CDF, without continuity correction
            (the Berry–Esseen convention); ``None`` in 2-D.
    """

    mean: Any
    covariance: Any
    values: np.ndarray
    max_abs_diff: float
    total_variation: float
    kolmogorov: float | None


def fit_gaussian(
    normalized: np.ndarray, origin: tuple[int, ...], mean: Any, covariance: Any
) -> GaussianFit:
    """Compare a normalised profile with the Gaussian of given mean and covariance."""
    p = np.asarray(normalized, dtype=float)
    if p.ndim == 1:
        mu = float(mean)
        var = float(covariance)
        if not var > 0:
            raise ERFValueError(
                f"the variance is {var}; a Gaussian needs a positive variance (more than one tap "
                f"with non-zero weight, at least one layer)"
            )
        x = np.arange(p.shape[0]) - origin[0] - mu
        with np.errstate(over="ignore", under="ignore"):  # tiny variances: exp(-inf) = 0
            g = np.exp(-0.5 * x * x / var) / math.sqrt(2 * math.pi * var)
        cdf = np.cumsum(p)
        with np.errstate(over="ignore"):
            z = x / math.sqrt(var)
        from scipy import special  # lazily: importing scipy.special costs ~0.3 s

        phi = special.ndtr(z)
        prev = np.concatenate([[0.0], cdf[:-1]])
        ks = float(max(np.max(np.abs(cdf - phi)), np.max(np.abs(prev - phi))))
        ks = max(ks, abs(1.0 - cdf[-1]) if cdf.size else 0.0)
        return GaussianFit(
            mu, var, g, float(np.max(np.abs(p - g))), 0.5 * float(np.sum(np.abs(p - g))), ks
        )
    mu2 = np.array([float(m) for m in mean])
    cov = np.array([[float(c) for c in row] for row in covariance])
    det = float(np.linalg.det(cov))
    if not (cov[0, 0] > 0 and cov[1, 1] > 0 and det > 0):
        raise ERFValueError(
            f"the covariance {cov.tolist()} is not positive definite; a 2-D Gaussian needs "
            f"spread along both axes"
        )
    inv = np.linalg.inv(cov)
    a = np.arange(p.shape[0])[:, None] - origin[0] - mu2[0]
    b = np.arange(p.shape[1])[None, :] - origin[1] - mu2[1]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        q = inv[0, 0] * a * a + 2 * inv[0, 1] * a * b + inv[1, 1] * b * b
        g = np.exp(-0.5 * q) / (2 * math.pi * math.sqrt(det))
    if not np.all(np.isfinite(g)):
        raise ERFValueError(
            f"the covariance {cov.tolist()} is too close to singular for a float64 Gaussian"
        )
    return GaussianFit(
        (float(mu2[0]), float(mu2[1])),
        cov,
        g,
        float(np.max(np.abs(p - g))),
        0.5 * float(np.sum(np.abs(p - g))),
        None,
    )
