r"""The result of an empirical ERF measurement: `EmpiricalERF` and its accumulators.

`erftheory.torch.empirical.empirical_erf` measures; this module holds what it returns:
the per-pixel shifted sums of the per-sample maps (so that results `merge` and
`all_reduce` exactly), the map and its standard error, and the public measures, which
`erftheory.torch.map_measures` computes from the accumulated summary features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from .._errors import ERFTypeError, ERFValueError
from . import map_measures as _measures
from ._guard import one_line
from ._measure import per_axis
from .map_measures import GaussianFit, MassShare, Moments, RadialMass, _layout

__all__ = [
    "CHANNEL_REDUCTIONS",
    "ORIGIN_SOURCES",
    "STATISTICS",
    "ChannelReduce",
    "EmpiricalERF",
    "Statistic",
]

Statistic = Literal["mean", "mean_square", "mean_abs", "relu"]
STATISTICS: tuple[str, ...] = ("mean", "mean_square", "mean_abs", "relu")
ChannelReduce = Literal["sum", "sum_after"]
CHANNEL_REDUCTIONS: tuple[str, ...] = ("sum", "sum_after")


class What(NamedTuple):
    """What an `EmpiricalERF` measured; results merge only when this agrees (all but
    ``origin_source``, which says how ``origin`` was found)."""

    statistic: str
    channel_reduce: str
    centre: tuple[int, ...]
    origin: tuple[int, ...]
    origin_source: str = "estimate"


class _Sums(NamedTuple):
    """The shifted accumulators of an `EmpiricalERF` (see its documentation)."""

    shift: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    cross_sum: np.ndarray
    total_shift: float
    total_sum: float
    total_sum_sq: float
    feature_shift: np.ndarray | None = None
    feature_sum: np.ndarray | None = None
    feature_cross: np.ndarray | None = None


ORIGIN_SOURCES: tuple[str, ...] = ("network", "from_torch", "patch_embed", "estimate")
"""How `EmpiricalERF.origin` was found; all but ``"estimate"`` are exact."""


@dataclass(frozen=True, repr=False, eq=False)
class EmpiricalERF:
    r"""An ERF measured by back-propagation, with the sums that produced it.

    The accumulators are *shifted* sums, so that deterministic pixels (the gradient of a
    linear network with fixed weights) get a standard error of exactly 0 and nothing
    cancels catastrophically: with $q_k$ the per-sample maps and $S$ a per-pixel shift,

    $$\texttt{sum} = \sum_k (q_k - S), \qquad \texttt{sum\_sq} = \sum_k (q_k - S)^2,$$

    and likewise for the per-sample total $T_k = \sum_x q_k(x)$ (shift $S_T$), with the
    cross sums $\sum_k (q_k - S)(T_k - S_T)$ that give the standard error of the
    normalised map. The raw sums are ``count * shift + sum`` and so on; `merge` and
    `all_reduce` re-shift before adding, so results combine exactly as if all samples
    had been accumulated in one place.

    **Summary features.** For the standard errors of the measures (`moments`,
    `gaussian`, `radial_mass`, `mass_shares`) every sample also contributes a vector
    $f_k$ of linear functionals of its map about the origin $o$: the total $T_k$, the
    first moments $\sum_x (x_i - o_i) q_k(x)$, the second moments
    $\sum_x (x_i - o_i)(x_j - o_j) q_k(x)$ ($i \le j$), and, unless there would be more
    than `MAX_FEATURES` of them, the cumulative masses $\sum_{|x - o|_2 \le r} q_k(x)$
    for $r = 0, 1, \ldots$ and $\sum_{|x - o|_\infty \le i} q_k(x)$ for
    $i = 0, 1, \ldots$. Their shifted sum and cross-product matrix give the sample
    covariance $\Sigma_f$ of $f$, and every measure, a smooth function $h$ of the
    feature means $\bar f$, gets the delta-method standard error
    $\sqrt{\nabla h^\top \Sigma_f \nabla h / N}$. This is the per-sample spread
    (per network for a factory), not an assumption of independent pixels.

    Attributes:
        map: the ERF $\bar q(x)$, float64, the spatial shape of the input (NaN where
            ``count == 0``).
        stderr: standard error of the mean per pixel, $s(x)/\sqrt N$ with the sample
            standard deviation $s$ (NaN when ``count < 2``). For a factory of networks
            with several inputs per network the unit is the network (see
            `empirical_erf`).
        count: $N$, the number of samples aggregated.
        nonfinite: the number of samples whose gradient (or statistic) held a NaN or
            an infinity; they are counted here and left out of everything else.
        statistic: ``"mean"``, ``"mean_square"``, ``"mean_abs"`` or ``"relu"``.
        channel_reduce: ``"sum"`` or ``"sum_after"``.
        centre: the output unit whose gradient was propagated (index per output axis).
        origin: the input pixel under the centre of that unit's receptive field (index
            per axis), the ``origin`` that `erftheory.measures` takes; exact when the
            `Network` is known, an estimate otherwise (see `empirical_erf`).
        shift, sum, sum_sq: the per-pixel shift and shifted sums (float64 arrays).
        total_shift, total_sum, total_sum_sq: the same for the per-sample total $T_k$.
        cross_sum: $\sum_k (q_k - S)(T_k - S_T)$ per pixel.
        origin_source: how ``origin`` was found (`ORIGIN_SOURCES`): ``"network"`` (the
            given or attached `Network`), ``"from_torch"`` (traced by
            `erftheory.torch.trace.from_torch`), ``"patch_embed"`` (the centre token's
            patch of a vision transformer) are exact; ``"estimate"`` is the stretched
            grid of `empirical_erf`.
        feature_shift, feature_sum, feature_cross: the shifted sums of the summary
            features (see above), or None (then the measures have NaN standard errors).
    """

    map: np.ndarray
    stderr: np.ndarray
    count: int
    nonfinite: int
    statistic: str
    channel_reduce: str
    centre: tuple[int, ...]
    origin: tuple[int, ...]
    shift: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    total_shift: float
    total_sum: float
    total_sum_sq: float
    cross_sum: np.ndarray
    origin_source: str = "estimate"
    feature_shift: np.ndarray | None = None
    feature_sum: np.ndarray | None = None
    feature_cross: np.ndarray | None = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_sums(
        cls,
        *,
        count: int,
        nonfinite: int,
        statistic: str,
        channel_reduce: str,
        centre: Sequence[int],
        origin: Sequence[int],
        shift: np.ndarray,
        sum: np.ndarray,
        sum_sq: np.ndarray,
        total_shift: float,
        total_sum: float,
        total_sum_sq: float,
        cross_sum: np.ndarray,
        origin_source: str = "estimate",
        feature_shift: np.ndarray | None = None,
        feature_sum: np.ndarray | None = None,
        feature_cross: np.ndarray | None = None,
    ) -> EmpiricalERF:
        r"""Build a result from (shifted) accumulators; ``map`` and ``stderr`` follow.

        With $N$ samples, $\bar q = S + \texttt{sum}/N$ and the sample variance is
        $(\texttt{sum\_sq} - \texttt{sum}^2/N)/(N-1)$, clipped at 0. The summary
        features are optional (all three or none; their length is fixed by the shape and
        the origin, see `feature_names`).

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_sums(
            ...     count=4, nonfinite=0, statistic="mean", channel_reduce="sum",
            ...     centre=(0,), origin=(1,), shift=np.zeros(3), sum=np.array([0.0, 4.0, 2.0]),
            ...     sum_sq=np.array([0.0, 4.0, 2.0]), total_shift=0.0, total_sum=6.0,
            ...     total_sum_sq=10.0, cross_sum=np.array([0.0, 4.0, 2.0]))
            >>> erf.map, erf.stderr
            (array([0. , 1. , 0.5]), array([0.  , 0.  , 0.288...]))
        """
        what = What(statistic, channel_reduce, tuple(centre), tuple(origin), origin_source)
        sums = _Sums(
            shift,
            sum,
            sum_sq,
            cross_sum,
            total_shift,
            total_sum,
            total_sum_sq,
            feature_shift,
            feature_sum,
            feature_cross,
        )
        return cls._build(what, count, nonfinite, sums)

    @classmethod
    def from_samples(
        cls,
        maps: Any,
        *,
        origin: Sequence[int] | int | None = None,
        centre: Sequence[int] | int | None = None,
        statistic: Statistic = "mean",
        channel_reduce: ChannelReduce = "sum",
        origin_source: str = "estimate",
    ) -> EmpiricalERF:
        r"""An ERF from per-sample maps $q_k$ that were measured elsewhere.

        The maps go through the same float64 accumulation as `empirical_erf` (shifted
        sums, summary features), so the result has every standard error; samples with a
        NaN or an infinity are counted in ``nonfinite`` and left out.

        Args:
            maps: ``(N, *spatial)``, a numpy array or a tensor of real numbers.
            origin: the input pixel under the measured unit (default: the centre
                ``(n - 1) // 2`` of each axis).
            centre: the output unit recorded with the result (default: ``origin``).
            statistic, channel_reduce: recorded with the result (see `empirical_erf`).
            origin_source: recorded with the result (`ORIGIN_SOURCES`).

        Raises:
            ERFValueError: fewer than two axes (one sample axis, one spatial axis), no
                sample, an origin outside the map or of the wrong length, unknown names.
            ERFTypeError: maps that are not real numbers.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_samples(np.array([[0.0, 1.0, 0.0], [0.0, 3.0, 2.0]]))
            >>> erf.map, erf.count, erf.origin
            (array([0., 2., 1.]), 2, (1,))
        """
        try:
            # a copy: torch warns on (and must not write through) a read-only array
            t = torch.as_tensor(np.array(maps) if not isinstance(maps, torch.Tensor) else maps)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ERFTypeError(f"maps must be an array of real numbers: {one_line(e)}") from e
        if t.is_complex() or not (t.is_floating_point() or t.dtype in _INTS):
            raise ERFTypeError(f"maps have dtype {t.dtype}; they must be real numbers")
        if t.dim() < 2 or t.shape[0] == 0 or 0 in t.shape:
            raise ERFValueError(
                f"maps must be (N, *spatial) with N >= 1 and non-empty axes, got {tuple(t.shape)}"
            )
        q = t.detach().to(device="cpu", dtype=torch.float64)
        spatial = tuple(int(n) for n in q.shape[1:])
        o = tuple((n - 1) // 2 for n in spatial) if origin is None else per_axis(origin)
        if len(o) != len(spatial) or not all(0 <= v < n for v, n in zip(o, spatial, strict=True)):
            raise ERFValueError(f"origin {origin!r} is not a pixel of maps of shape {spatial}")
        c = o if centre is None else per_axis(centre)
        if origin_source not in ORIGIN_SOURCES:
            raise ERFValueError(
                f"origin_source must be one of {ORIGIN_SOURCES}, got {origin_source!r}"
            )
        acc = Accumulator(spatial, q.device, o)
        acc.add(q, torch.isfinite(q).reshape(q.shape[0], -1).all(1))
        return acc.result(What(statistic, channel_reduce, c, o, origin_source))

    @classmethod
    def _build(cls, what: What, count: int, nonfinite: int, sums: _Sums) -> EmpiricalERF:
        """The one construction site: checks, ``map`` and ``stderr`` (see `from_sums`)."""
        statistic, channel_reduce = what.statistic, what.channel_reduce
        if statistic not in STATISTICS:
            raise ERFValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if channel_reduce not in CHANNEL_REDUCTIONS:
            raise ERFValueError(
                f"channel_reduce must be one of {CHANNEL_REDUCTIONS}, got {channel_reduce!r}"
            )
        maps = (sums.shift, sums.sum, sums.sum_sq, sums.cross_sum)
        arrays = [np.array(a, dtype=np.float64) for a in maps]
        if len({a.shape for a in arrays}) != 1:
            raise ERFValueError(
                f"shift, sum, sum_sq and cross_sum must have one shape, got "
                f"{[a.shape for a in arrays]}"
            )
        shift_a, sum_a, sq_a, cross_a = arrays
        if what.origin_source not in ORIGIN_SOURCES:
            raise ERFValueError(
                f"origin_source must be one of {ORIGIN_SOURCES}, got {what.origin_source!r}"
            )
        feats = _check_features(sums, shift_a.shape, tuple(what.origin))
        n = int(count)
        if n < 0 or int(nonfinite) < 0:
            raise ERFValueError(f"count and nonfinite must be >= 0, got {count!r}, {nonfinite!r}")
        if n == 0:
            mean = np.full(shift_a.shape, np.nan)
        else:
            mean = shift_a + sum_a / n
        if n < 2:
            stderr = np.full(shift_a.shape, np.nan)
        else:
            var = np.maximum(sq_a - sum_a * sum_a / n, 0.0) / (n - 1)
            stderr = np.sqrt(var / n)
        for a in (mean, stderr, *arrays, *(f for f in feats if f is not None)):
            a.setflags(write=False)
        return cls(
            map=mean,
            stderr=stderr,
            count=n,
            nonfinite=int(nonfinite),
            statistic=statistic,
            channel_reduce=channel_reduce,
            centre=tuple(int(c) for c in what.centre),
            origin=tuple(int(o) for o in what.origin),
            shift=shift_a,
            sum=sum_a,
            sum_sq=sq_a,
            total_shift=float(sums.total_shift),
            total_sum=float(sums.total_sum),
            total_sum_sq=float(sums.total_sum_sq),
            cross_sum=cross_a,
            origin_source=str(what.origin_source),
            feature_shift=feats[0],
            feature_sum=feats[1],
            feature_cross=feats[2],
        )

    # ------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape of the map (the input's)."""
        return tuple(self.map.shape)

    @property
    def ndim(self) -> int:
        """The number of spatial axes."""
        return self.map.ndim

    def normalized(self) -> tuple[np.ndarray, np.ndarray]:
        r"""The map divided by its sum, and the standard error of that ratio.

        The total $M = \sum_x \bar q(x)$ is itself random, so the standard error of
        $p(x) = \bar q(x)/M$ comes from the delta method with the per-sample totals
        $T_k$:

        $$\operatorname{Var} p(x) \approx \frac{\operatorname{Var} q(x)
        - 2 p(x) \operatorname{Cov}(q(x), T) + p(x)^2 \operatorname{Var} T}{N M^2}.$$

        Returns:
            ``(p, stderr_p)``, float64 arrays of the map's shape.

        Raises:
            ERFValueError: nothing was aggregated or the map sums to 0.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_sums(
            ...     count=2, nonfinite=0, statistic="mean", channel_reduce="sum", centre=(0,),
            ...     origin=(0,), shift=np.array([1.0, 3.0]), sum=np.zeros(2), sum_sq=np.zeros(2),
            ...     total_shift=4.0, total_sum=0.0, total_sum_sq=0.0, cross_sum=np.zeros(2))
            >>> erf.normalized()
            (array([0.25, 0.75]), array([0., 0.]))
        """
        n = self.count
        if n == 0:
            raise ERFValueError("no sample was aggregated (count == 0); there is no map")
        total = float(self.map.sum())
        if total == 0 or not math.isfinite(total):
            raise ERFValueError(f"the map sums to {total!r}; it cannot be normalised")
        p = self.map / total
        if n < 2:
            return p, np.full(p.shape, np.nan)
        var_q = np.maximum(self.sum_sq - self.sum * self.sum / n, 0.0) / (n - 1)
        cov = (self.cross_sum - self.sum * self.total_sum / n) / (n - 1)
        var_t = max(self.total_sum_sq - self.total_sum**2 / n, 0.0) / (n - 1)
        var_p = np.maximum(var_q - 2.0 * p * cov + p * p * var_t, 0.0) / (n * total * total)
        return p, np.sqrt(var_p)

    # ------------------------------------------------------------ measures

    def moments(self) -> Moments:
        r"""Mean and covariance of the normalised map, with standard errors.

        With $p = \bar q / \sum_x \bar q(x)$, the mean is $\mu_i = \sum_x x_i p(x)$ and
        the covariance $C_{ij} = \sum_x (x_i - \mu_i)(x_j - \mu_j) p(x)$, in input
        pixels (axis order of the map: rows, then columns in 2-D). Both are ratios of
        sample means of the summary features, so their standard errors come from the
        delta method with the features' per-sample covariance (see the class
        documentation); NaN without features or with fewer than two samples.

        Raises:
            ERFValueError: nothing aggregated, or a map whose sum is not positive.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_samples(np.array([[1.0, 2.0, 1.0], [1.0, 4.0, 3.0]]))
            >>> mom = erf.moments()
            >>> mom.mean, mom.covariance
            ((1.1666666666666667,), array([[0.47222222]]))
        """
        return _measures.moments(self)

    def gaussian(self, method: Literal["moments", "least_squares"] = "moments") -> GaussianFit:
        r"""A Gaussian fitted to the normalised map: centre, principal widths, orientation.

        - ``"moments"`` (default): the Gaussian with the map's mean and covariance
          (`moments`), i.e. the one closest to the map in Kullback-Leibler divergence.
          Its principal widths $\sigma_1 \ge \sigma_2$ are the square roots of the
          covariance's eigenvalues and, in 2-D, the orientation is
          $\theta = \frac12 \operatorname{atan2}(2 C_{yx}, C_{xx} - C_{yy})$, the angle
          of the major axis from the column axis $x$ towards the row axis $y$, in
          $(-\pi/2, \pi/2]$. Standard errors: delta method on the moments' (see
          `moments`); the angle's is NaN for an isotropic map ($\sigma_1 = \sigma_2$).
        - ``"least_squares"``: $a \exp(-\frac12 (x-\mu)^\top \Sigma^{-1} (x-\mu))$
          fitted to the normalised map by least squares (scipy), started from the
          moments: what OpenERF's ``fit_gaussian`` does, with an orientation. Its
          standard errors are NaN: the per-sample spread of a least-squares fit is
          not a function of the accumulated features.

        ``sigma_axis`` are the widths along the map's axes, $\sqrt{C_{ii}}$ (in 2-D
        OpenERF's ``sigma_y``, ``sigma_x``), and ``r_squared`` is the share of the
        normalised map's variance over pixels that the Gaussian explains.

        Raises:
            ERFValueError: a map that is not 1-D or 2-D, a map without a positive sum,
                a covariance that is not positive definite, an unknown method.

        Example:
            >>> import numpy as np
            >>> y, x = np.mgrid[0:41, 0:41] - 20.0
            >>> g = np.exp(-0.5 * ((x / 4.0) ** 2 + (y / 2.0) ** 2))
            >>> fit = EmpiricalERF.from_samples(g[None]).gaussian()
            >>> [round(s, 9) for s in fit.sigma], round(fit.angle, 9)
            ([4.0, 2.0], 0.0)
        """
        return _measures.gaussian(self, method)

    def radial_mass(self, radii: Sequence[int] | None = None) -> RadialMass:
        r"""The share of the normalised map within distance $r$ of the origin.

        $M(r) = \sum_{|x - o|_2 \le r} p(x)$ for integer radii $r$ (default: every
        radius from 0 to the farthest pixel, where $M = 1$), with delta-method standard
        errors from the per-sample cumulative masses (NaN without features, for
        fewer than two samples, or when the map has more rings than `MAX_FEATURES`
        allows). OpenERF's ``radial_cumulative_mass`` is this curve about the centre
        pixel $(h/2, w/2)$ instead of the measured unit's origin.

        Raises:
            ERFValueError: radii that are not non-negative ints; a map without a
                positive sum.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_samples(np.array([[[0, 1, 0], [1, 4, 1], [0, 1, 0.0]]]))
            >>> erf.radial_mass().mass
            array([0.5, 1. , 1. ])
        """
        return _measures.radial_mass(self, radii)

    def mass_shares(self, shares: Sequence[float] = (0.2, 0.3, 0.5, 0.99)) -> tuple[MassShare, ...]:
        r"""The squares about the origin that hold given shares of the normalised map.

        For each share $s$: ``side`` $= 2i + 1$ for the smallest $i$ whose square
        $|x - o|_\infty \le i$ holds at least $s$ of the mass (the rule of RepLKNet's
        ``analyze_erf.py``, which reports shares 0.2, 0.3, 0.5 and 0.99, there of
        $\log_{10}(1 + \text{sum})$ about the map's middle pixel), ``pixels`` the
        pixels of that square inside the map and ``area_ratio`` their share of the
        map. ``width`` is the square's side interpolated linearly in the cumulative
        mass $Q(i)$ at the half-widths $i + \frac12$ (with $Q = 0$ at half-width 0),
        a continuous version of ``side`` with a delta-method standard error
        (``width_stderr``, NaN as for `radial_mass`).

        Raises:
            ERFValueError: a share outside $(0, 1]$; a map without a positive sum.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_samples(np.array([[0.0, 1.0, 2.0, 1.0, 0.0]]))
            >>> [(s.share, s.side, s.width) for s in erf.mass_shares((0.5, 1.0))]
            [(0.5, 1, 1.0), (1.0, 3, 3.0)]
        """
        return _measures.mass_shares(self, shares)

    def plot(
        self,
        ax: Any = None,
        *,
        log: bool = False,
        gaussian: bool = True,
        cmap: str = "plasma",
        title: str | None = None,
    ) -> Any:
        r"""Show the normalised map (2-D as an image, 1-D as a curve with its error band).

        The origin is marked with a cross and, with ``gaussian=True`` and a 2-D map,
        the 1σ and 2σ ellipses of the moment Gaussian (`gaussian`) are drawn.
        matplotlib is imported only here.

        Args:
            ax: the matplotlib ``Axes`` to draw into (default: a new figure's).
            log: show $\log_{10}$ of the normalised map (zeros masked).
            gaussian: draw the Gaussian's ellipses (2-D) when it can be fitted.
            cmap: the colormap of a 2-D map.
            title: the axes' title (default: statistic and count).

        Returns:
            The ``Axes``.

        Raises:
            MissingDependencyError: matplotlib is not installed.
            ERFValueError: a map with more than two axes or without a positive sum.

        Example:
            >>> import numpy as np
            >>> import matplotlib
            >>> matplotlib.use("Agg")
            >>> erf = EmpiricalERF.from_samples(np.ones((2, 5, 5)))
            >>> erf.plot().get_images()[0].get_array().shape
            (5, 5)
        """
        from .erf_plot import plot_erf

        return plot_erf(self, ax, log=log, gaussian=gaussian, cmap=cmap, title=title)

    # ------------------------------------------------------------ combination
    def _check_compatible(self, other: EmpiricalERF) -> None:
        if not isinstance(other, EmpiricalERF):
            raise ERFTypeError(f"can only merge an EmpiricalERF, got {type(other).__name__}")
        for name in ("statistic", "channel_reduce", "centre", "origin", "shape"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                raise ERFValueError(f"cannot merge ERFs with different {name}: {a!r} and {b!r}")

    @property
    def _what(self) -> What:
        return What(
            self.statistic, self.channel_reduce, self.centre, self.origin, self.origin_source
        )

    @property
    def origin_exact(self) -> bool:
        """Whether ``origin`` is exact (``origin_source`` other than ``"estimate"``)."""
        return self.origin_source != "estimate"

    def _shifted(
        self, shift: np.ndarray, total_shift: float, feature_shift: np.ndarray | None = None
    ) -> _Sums:
        """The accumulators re-expressed about another shift (exact algebra, float64)."""
        n = float(self.count)
        d = self.shift - shift
        e = self.total_shift - total_shift
        s = self.sum + n * d
        s2 = self.sum_sq + 2.0 * d * self.sum + n * d * d
        ts = self.total_sum + n * e
        ts2 = self.total_sum_sq + 2.0 * e * self.total_sum + n * e * e
        cross = self.cross_sum + e * self.sum + d * self.total_sum + n * d * e
        fs = fc = None
        if feature_shift is not None:
            assert self.feature_shift is not None and self.feature_sum is not None
            assert self.feature_cross is not None
            g = self.feature_shift - feature_shift
            fs = self.feature_sum + n * g
            fc = (
                self.feature_cross
                + np.outer(g, self.feature_sum)
                + np.outer(self.feature_sum, g)
                + n * np.outer(g, g)
            )
        return _Sums(shift, s, s2, cross, total_shift, ts, ts2, feature_shift, fs, fc)

    def _min_shift(self) -> tuple[np.ndarray, float]:
        """Shifts for the MIN reduction: $+\\infty$ where nothing was aggregated."""
        if self.count == 0:
            return np.full(self.shift.shape, np.inf), math.inf
        return self.shift, self.total_shift

    def _min_feature_shift(self) -> np.ndarray:
        assert self.feature_shift is not None
        if self.count == 0:
            return np.full(self.feature_shift.shape, np.inf)
        return self.feature_shift

    def merge(self, other: EmpiricalERF) -> EmpiricalERF:
        """The ERF of both sets of samples together (as if accumulated in one run).

        Both must share statistic, channel reduction, centre, origin and shape. The
        summary features are kept when both have them.

        Example:
            >>> import numpy as np
            >>> def one(v):
            ...     return EmpiricalERF.from_sums(
            ...         count=1, nonfinite=0, statistic="mean", channel_reduce="sum",
            ...         centre=(0,), origin=(0,), shift=np.array([v]), sum=np.zeros(1),
            ...         sum_sq=np.zeros(1), total_shift=v, total_sum=0.0, total_sum_sq=0.0,
            ...         cross_sum=np.zeros(1))
            >>> both = one(1.0).merge(one(3.0))
            >>> both.count, both.map, both.stderr
            (2, array([2.]), array([1.]))
        """
        self._check_compatible(other)
        sa, ta = self._min_shift()
        sb, tb = other._min_shift()
        shift = np.minimum(sa, sb)
        total_shift = min(ta, tb)
        fshift: np.ndarray | None = None
        if self.feature_shift is not None and other.feature_shift is not None:
            fshift = np.minimum(self._min_feature_shift(), other._min_feature_shift())
        if not math.isfinite(total_shift):  # neither has samples
            shift, total_shift = np.zeros(self.shift.shape), 0.0
            if fshift is not None:
                fshift = np.zeros(fshift.shape)
        a = self._shifted(shift, total_shift, fshift)
        b = other._shifted(shift, total_shift, fshift)
        sums = _Sums(
            shift,
            a.sum + b.sum,
            a.sum_sq + b.sum_sq,
            a.cross_sum + b.cross_sum,
            total_shift,
            a.total_sum + b.total_sum,
            a.total_sum_sq + b.total_sum_sq,
            fshift,
            None if fshift is None else a.feature_sum + b.feature_sum,  # type: ignore[operator]
            None if fshift is None else a.feature_cross + b.feature_cross,  # type: ignore[operator]
        )
        count, nonfinite = self.count + other.count, self.nonfinite + other.nonfinite
        return EmpiricalERF._build(self._what, count, nonfinite, sums)

    def all_reduce(self, group: Any = None) -> EmpiricalERF:
        """Combine the results of all processes of a ``torch.distributed`` group.

        Every rank of ``group`` must call it (it is a collective). The accumulators are
        added with ``all_reduce(SUM)`` after the ranks agree on a common shift
        (``all_reduce(MIN)``), so every rank gets the same result, equal to `merge`-ing
        the ranks' results in one process up to float rounding. Tensors travel on the
        CPU, or on the current CUDA device with the ``nccl`` backend. ``self`` is not
        changed; the combined result is returned.

        Raises:
            ERFValueError: ``torch.distributed`` is unavailable or not initialised, or
                the ranks measured different things (shape, statistic, centre, origin).

        Example:
            >>> import numpy as np
            >>> import torch.distributed as dist
            >>> erf = EmpiricalERF.from_sums(
            ...     count=1, nonfinite=0, statistic="mean", channel_reduce="sum", centre=(0,),
            ...     origin=(0,), shift=np.zeros(1), sum=np.zeros(1), sum_sq=np.zeros(1),
            ...     total_shift=0.0, total_sum=0.0, total_sum_sq=0.0, cross_sum=np.zeros(1))
            >>> if not dist.is_initialized():
            ...     try:
            ...         erf.all_reduce()
            ...     except Exception as e:
            ...         print(type(e).__name__)
            ERFValueError
        """
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise ERFValueError(
                "all_reduce needs an initialised torch.distributed process group "
                "(torch.distributed.init_process_group)"
            )
        backend = str(dist.get_backend(group))
        dev = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )

        def reduce(values: np.ndarray, op: Any) -> np.ndarray:
            t = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64), device=dev)
            dist.all_reduce(t, op=op, group=group)
            return np.asarray(t.cpu().numpy(), dtype=np.float64)

        # Same thing measured everywhere? (min == max of a fixed-length descriptor)
        desc = self._descriptor()
        lo = reduce(desc, dist.ReduceOp.MIN)
        hi = reduce(desc, dist.ReduceOp.MAX)
        if not np.array_equal(lo, hi):
            raise ERFValueError(
                "the ranks measured different ERFs (shape, statistic, channel reduction, "
                "centre or origin differ); all_reduce needs the same measurement everywhere"
            )
        counts = reduce(np.array([self.count, self.nonfinite], dtype=np.float64), dist.ReduceOp.SUM)
        shift_local, tshift_local = self._min_shift()
        has_f = self.feature_shift is not None
        fmin = [self._min_feature_shift().ravel()] if has_f else []
        shifts = reduce(
            np.concatenate([shift_local.ravel(), *fmin, [tshift_local]]), dist.ReduceOp.MIN
        )
        if not math.isfinite(shifts[-1]):  # no rank has samples
            shifts = np.zeros_like(shifts)
        size = self.shift.size
        shift = shifts[:size].reshape(self.shift.shape)
        fshift = shifts[size:-1].copy() if has_f else None
        total_shift = float(shifts[-1])
        local = self._shifted(shift, total_shift, fshift)
        maps = [local.sum, local.sum_sq, local.cross_sum]
        if has_f:
            maps += [local.feature_sum, local.feature_cross]  # type: ignore[list-item]
        totals = [local.total_sum, local.total_sum_sq]
        packed = reduce(np.concatenate([*(m.ravel() for m in maps), totals]), dist.ReduceOp.SUM)
        shape = self.shift.shape
        s, s2, cross = (packed[i * size : (i + 1) * size].reshape(shape) for i in range(3))
        at = 3 * size
        fs = fc = None
        if has_f:
            nf = int(self.feature_shift.size)  # type: ignore[union-attr]
            fs = packed[at : at + nf].copy()
            fc = packed[at + nf : at + nf + nf * nf].reshape(nf, nf)
            at += nf + nf * nf
        ts, ts2 = (float(t) for t in packed[at:])
        sums = _Sums(shift, s, s2, cross, total_shift, ts, ts2, fshift, fs, fc)
        return EmpiricalERF._build(self._what, int(counts[0]), int(counts[1]), sums)

    def _descriptor(self) -> np.ndarray:
        """A fixed-length numeric fingerprint of what was measured (for all_reduce)."""
        shape = self.shape
        weights = [1.0, 7919.0, 104729.0]

        def fold(v: Sequence[int]) -> float:
            return float(sum((x + 1) * w for x, w in zip(v, weights, strict=False)))

        return np.array(
            [
                len(shape),
                float(np.prod(shape)),
                fold(shape),
                STATISTICS.index(self.statistic),
                CHANNEL_REDUCTIONS.index(self.channel_reduce),
                len(self.centre),
                fold(self.centre),
                fold(self.origin),
                float(self.feature_shift is not None),
            ],
            dtype=np.float64,
        )

    def __repr__(self) -> str:
        return (
            f"EmpiricalERF(statistic={self.statistic!r}, shape={self.shape}, count={self.count}, "
            f"nonfinite={self.nonfinite}, centre={self.centre}, origin={self.origin})"
        )


_INTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_features(
    sums: _Sums, shape: tuple[int, ...], origin: tuple[int, ...]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    given = [sums.feature_shift, sums.feature_sum, sums.feature_cross]
    if all(g is None for g in given):
        return None, None, None
    if any(g is None for g in given):
        raise ERFValueError("feature_shift, feature_sum and feature_cross go together: all or none")
    fs, fsum, fc = (np.array(g, dtype=np.float64) for g in given)
    if len(origin) != len(shape):
        raise ERFValueError(f"origin {origin} does not have one index per axis of {shape}")
    size = _layout(shape, origin).size
    if fs.shape != (size,) or fsum.shape != (size,) or fc.shape != (size, size):
        raise ERFValueError(
            f"the summary features of a map of shape {shape} about origin {origin} have "
            f"length {size}; got feature_shift {fs.shape}, feature_sum {fsum.shape}, "
            f"feature_cross {fc.shape}"
        )
    return fs, fsum, fc


class Accumulator:
    """Shifted float64 sums on the measuring device, masked so that no batch syncs.

    The shift is the first finite sample (found with one host sync, on the first
    batch that has one); counts stay on the device until `result`.
    """

    def __init__(
        self, shape: tuple[int, ...], device: torch.device, origin: tuple[int, ...]
    ) -> None:
        z = torch.zeros(shape, dtype=torch.float64, device=device)
        self.layout = _layout(shape, origin)
        f = self.layout.size
        self.shift = z.clone()
        self.sum = z.clone()
        self.sum_sq = z.clone()
        self.cross = z.clone()
        self.tshift = torch.zeros((), dtype=torch.float64, device=device)
        self.tsum = self.tshift.clone()
        self.tsum_sq = self.tshift.clone()
        self.fshift = torch.zeros(f, dtype=torch.float64, device=device)
        self.fsum = self.fshift.clone()
        self.fcross = torch.zeros((f, f), dtype=torch.float64, device=device)
        self.n = torch.zeros((), dtype=torch.int64, device=device)
        self.bad = torch.zeros((), dtype=torch.int64, device=device)
        self.started = False

    def add(self, q: torch.Tensor, valid: torch.Tensor) -> None:
        """Add samples ``q`` ``(n, *spatial)`` (float64); only rows where ``valid``."""
        n = int(q.shape[0])
        if n == 0:
            return
        feats = self.layout.features(q)
        totals = feats[:, 0]
        if not self.started:
            first = torch.nonzero(valid)  # one host sync, until a finite sample came
            if first.numel() == 0:
                self.bad += n
                return
            i = int(first[0, 0])
            self.shift = q[i].clone()
            self.tshift = totals[i].clone()
            self.fshift = feats[i].clone()
            self.started = True
        view = (n,) + (1,) * (q.dim() - 1)
        d = torch.where(valid.reshape(view), q - self.shift, 0.0)
        e = torch.where(valid, totals - self.tshift, 0.0)
        g = torch.where(valid.reshape(n, 1), feats - self.fshift, 0.0)
        self.sum += d.sum(0)
        self.sum_sq += (d * d).sum(0)
        self.cross += (d * e.reshape(view)).sum(0)
        self.tsum += e.sum()
        self.tsum_sq += (e * e).sum()
        self.fsum += g.sum(0)
        self.fcross += g.T @ g
        good = valid.sum()
        self.n += good
        self.bad += n - good

    def result(self, what: What) -> EmpiricalERF:
        def host(t: torch.Tensor) -> np.ndarray:
            return np.array(t.detach().cpu().numpy(), dtype=np.float64)

        sums = _Sums(
            host(self.shift),
            host(self.sum),
            host(self.sum_sq),
            host(self.cross),
            float(self.tshift),
            float(self.tsum),
            float(self.tsum_sq),
            host(self.fshift),
            host(self.fsum),
            host(self.fcross),
        )
        return EmpiricalERF._build(what, int(self.n), int(self.bad), sums)
