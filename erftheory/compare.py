r"""Compare an exact ERF with a measured one, with a statistical verdict.

`compare` places the theory's coefficient grid (the receptive field of the measured
output unit) inside the measured map, scales both (divided by their sums by default),
and tests every pixel:

- pixels with a positive standard error $\sigma(x)$ get a z-score
  $z(x) = (e(x) - t(x))/\sigma(x)$ for the measurement $e$ and theory $t$. They pass
  when $|e(x) - t(x)| \le z^\ast \sigma(x) + \tau$, where the critical value $z^\ast$
  makes the *family* of $m$ tests hold at the requested confidence $1 - \alpha$:
  Šidák's per-pixel level $\alpha_1 = 1 - (1 - \alpha)^{1/m}$ (default; valid for
  correlated Gaussian z-scores by Šidák's inequality, since the two-sided events
  $|z| \le c$ of a centred multivariate normal are positively dependent) or
  Bonferroni's $\alpha_1 = \alpha / m$, and $z^\ast$ is the two-sided quantile of
  Student's $t$ with ``count - 1`` degrees of freedom (the normal distribution when the
  count is unknown);
- pixels with $\sigma(x) = 0$ (deterministic: outside the RF, or the gradient of fixed
  weights) must match within $\tau$;
- $\tau = \text{rtol} \cdot \max_x \max(|t(x)|, |e(x)|)$ absorbs float rounding
  ($10^{-9}$ of the peak by default, far below any Monte Carlo error).

**Two-sample mode.** When ``theory`` is itself a measurement (an `EmpiricalERF`, or a
``(map, stderr)`` pair such as another tool's map with its standard errors), both maps
are random: the z-scores use both variances,
$z(x) = (e(x) - t(x))/\sqrt{\sigma_e(x)^2 + \sigma_t(x)^2}$, the pixels with a positive
combined standard error are tested, and the critical value is Student's $t$ with
$\min(N_e, N_t) - 1$ degrees of freedom (the lower bound of Welch's; the normal
distribution when a count is unknown). The maps must have one shape and are compared
pixel by pixel. Treating a measured map as exact theory (its noise ignored) rejects two
measurements of the same model far more often than $\alpha$.

The verdict is *consistent* when every pixel passes. The z-scores and the normal
approximation are asymptotic (central limit theorem), so the stated confidence holds
for large counts. Squared gradients of deep one-channel random networks are products of
chi-squares with very heavy tails: at a few thousand networks their z-scores are still
skewed and the test rejects the true theory more often than $\alpha$ (measured: about
8 % at 2000 three-layer networks). Average more networks per sample (``copies`` or
``channels`` of `erftheory.torch.build.to_torch`) before trusting the verdict.
This module needs only numpy and scipy (not torch); `erftheory.torch.compare` re-exports it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from ._errors import ERFTypeError, ERFValueError
from .network import NetworkProfile
from .profile import Profile

if TYPE_CHECKING:  # pragma: no cover
    from .torch.empirical import EmpiricalERF

__all__ = ["Comparison", "Correction", "compare", "total_variation"]

Correction = Literal["sidak", "bonferroni"]
_CORRECTIONS: tuple[str, ...] = ("sidak", "bonferroni")


@dataclass(frozen=True, repr=False, eq=False)
class Comparison:
    r"""The result of `compare`.

    Attributes:
        consistent: whether every pixel passes (see the module documentation).
        confidence: the family-wise confidence level $1 - \alpha$.
        correction: ``"sidak"`` or ``"bonferroni"``.
        normalize: whether the maps were divided by their sums.
        critical_z: $z^\ast$, the per-pixel two-sided critical value.
        tested: $m$, the pixels with a positive standard error.
        failing: the pixels that do not pass (both kinds).
        max_abs_z: the largest $|z|$ over the tested pixels (0 when none).
        z: the z-scores (NaN where the standard error is 0).
        tv_distance: total variation distance $\frac12 \sum_x |p_e(x) - p_t(x)|$
            between the maps divided by their sums (whatever ``normalize``).
        variance_ratio: per axis, the spatial variance of the measured normalised map
            over the theory's (NaN where the theory's is 0); the ratio of squared ERF
            widths.
        start: the input index of the theory's first coefficient, per axis.
        atol: the float tolerance $\tau$.
        theory: the theory placed on the measured map's grid (scaled as compared).
        empirical: the measured map (scaled as compared).
        stderr: its standard error (scaled as compared).
        two_sample: whether ``theory`` was a measurement with its own standard error.
        theory_stderr: that standard error (scaled as compared; zeros for exact theory).
    """

    consistent: bool
    confidence: float
    correction: str
    normalize: bool
    critical_z: float
    tested: int
    failing: int
    max_abs_z: float
    z: np.ndarray
    tv_distance: float
    variance_ratio: tuple[float, ...]
    start: tuple[int, ...]
    atol: float
    theory: np.ndarray
    empirical: np.ndarray
    stderr: np.ndarray
    two_sample: bool = False
    theory_stderr: np.ndarray | None = None

    def __str__(self) -> str:
        scale = "normalised" if self.normalize else "raw"
        if self.two_sample:
            scale += ", two-sample"
        name = "Šidák" if self.correction == "sidak" else "Bonferroni"
        verdict = "consistent" if self.consistent else "INCONSISTENT"
        ratio = ", ".join(f"{r:.4g}" for r in self.variance_ratio)
        if self.tested:
            zline = f"max |z| = {self.max_abs_z:.3g} (critical {self.critical_z:.3g})"
        else:
            zline = f"no random pixel: all must match within {self.atol:.3g}"
        return (
            f"ERF comparison ({scale} maps, {self.confidence:.4g} confidence, {name} over "
            f"{self.tested} pixels): {verdict}\n"
            f"  {zline}; {self.failing} of {self.z.size} pixels fail\n"
            f"  total variation distance = {self.tv_distance:.4g}\n"
            f"  variance ratio (measured / {'reference' if self.two_sample else 'theory'}) "
            f"= {ratio}"
        )

    def __repr__(self) -> str:
        return (
            f"Comparison(consistent={self.consistent}, max_abs_z={self.max_abs_z:.4g}, "
            f"tv_distance={self.tv_distance:.4g}, failing={self.failing})"
        )


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    r"""Total variation distance $\frac12 \sum_x |p(x) - q(x)|$ of two maps divided by their sums.

    Lies in $[0, 1]$ for non-negative maps.

    Raises:
        ERFValueError: different shapes, or a map that sums to 0.

    Example:
        >>> import numpy as np
        >>> total_variation(np.array([1.0, 1.0, 0.0]), np.array([0.0, 2.0, 2.0]))
        0.5
    """
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    if a.shape != b.shape:
        raise ERFValueError(f"the maps have different shapes {a.shape} and {b.shape}")
    sa, sb = float(a.sum()), float(b.sum())
    if sa == 0 or sb == 0:
        raise ERFValueError("a map sums to 0; total variation needs normalisable maps")
    return float(0.5 * np.abs(a / sa - b / sb).sum())


def _axes(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _float_array(values: Any) -> np.ndarray:
    arr = np.array(values, dtype=object)
    return np.vectorize(float, otypes=[np.float64])(arr) if arr.size else arr.astype(np.float64)


def _theory(theory: Any, normalize: bool) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """The theory's array (normalised or raw floats) and its origin when it has one."""
    if isinstance(theory, Profile):
        arr = theory.normalized() if normalize else _float_array(theory.coefficients)
        return np.asarray(arr, dtype=np.float64), tuple(int(o) for o in _axes(theory.origin))
    if isinstance(theory, (np.ndarray, list, tuple)):
        arr = np.asarray(theory, dtype=np.float64)
        if arr.ndim < 1:
            raise ERFValueError("theory must be a 1-D or 2-D array or a Profile")
        return arr, None
    raise ERFTypeError(
        f"theory must be a Profile, a NetworkProfile or a numpy array, got {type(theory).__name__}"
    )


def _start(
    theory: Any,
    t_origin: tuple[int, ...] | None,
    t_shape: tuple[int, ...],
    e_shape: tuple[int, ...],
    centre: tuple[int, ...] | None,
    e_origin: tuple[int, ...] | None,
    start: Any,
) -> tuple[int, ...]:
    nd = len(e_shape)
    if start is not None:
        s = _axes(start)
        if len(s) != nd or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in s
        ):
            raise ERFValueError(f"start must be {nd} int(s), one per axis, got {start!r}")
        return tuple(int(v) for v in s)
    if isinstance(theory, NetworkProfile):
        net = theory.network
        if centre is None:
            centre = tuple(
                int(c) for c in _axes(net.centre_output(e_shape if nd > 1 else e_shape[0]))
            )
        rf = net.receptive_field
        return tuple(
            int(o + j * c) for o, j, c in zip(_axes(rf.offset), _axes(rf.jump), centre, strict=True)
        )
    if t_shape == e_shape:
        return (0,) * nd
    if e_origin is not None:
        anchor = t_origin if t_origin is not None else tuple((s - 1) // 2 for s in t_shape)
        return tuple(e - a for e, a in zip(e_origin, anchor, strict=True))
    raise ERFValueError(
        f"cannot place a theory of shape {t_shape} in a map of shape {e_shape}: give start= "
        f"(the input index of the theory's first coefficient per axis)"
    )


def _measured(
    obj: Any, stderr: Any, normalize: bool, what: str, prefix: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None, Any]:
    """``(map, stderr, raw map, count, the EmpiricalERF or None)`` of a measurement.

    ``what`` names the argument (``"empirical"``, ``"theory"``); ``prefix`` starts the
    messages about its values (``""`` for the one measurement of `compare`).
    """
    if hasattr(obj, "map") and hasattr(obj, "stderr"):
        if stderr is not None:
            raise ERFValueError(f"stderr= is only for an array {what}; an EmpiricalERF has its own")
        count = int(obj.count)
        if count == 0:
            raise ERFValueError(f"the {prefix}measurement aggregated no samples (count == 0)")
        if normalize:
            m, se = obj.normalized()
        else:
            m, se = obj.map, obj.stderr
        raw = np.asarray(obj.map, dtype=np.float64)
        return np.asarray(m, dtype=np.float64), np.asarray(se, dtype=np.float64), raw, count, obj
    if isinstance(obj, tuple) and len(obj) == 2 and stderr is None:
        obj, stderr = obj
    if not isinstance(obj, (np.ndarray, list)):
        raise ERFTypeError(
            f"{what} must be an EmpiricalERF, an array or a (map, stderr) pair, got "
            f"{type(obj).__name__}"
        )
    if stderr is None:
        raise ERFValueError(f"an array {what} needs its standard error: stderr=")
    raw = np.asarray(obj, dtype=np.float64)
    se = np.broadcast_to(np.asarray(stderr, dtype=np.float64), raw.shape)
    if normalize:
        total = float(raw.sum())
        if total == 0 or not math.isfinite(total):
            raise ERFValueError(
                f"the {prefix or 'measured '}map sums to {total!r}; it cannot be normalised"
            )
        return raw / total, se / abs(total), raw, None, None
    return raw, np.asarray(se, dtype=np.float64), raw, None, None


def _check_values(values: np.ndarray, se: np.ndarray, prefix: str) -> None:
    """A measured map must be finite with standard errors that are >= 0 and not NaN."""
    if np.isnan(se).any():
        raise ERFValueError(
            f"the {prefix}standard error has NaNs (fewer than 2 samples?); measure more samples"
        )
    if (se < 0).any() or not np.isfinite(values).all():
        raise ERFValueError(
            f"the {prefix or 'measured '}map must be finite and its standard error >= 0"
        )


def _is_measurement(theory: Any) -> bool:
    if isinstance(theory, (Profile, NetworkProfile, np.ndarray, list)):
        return False
    if hasattr(theory, "map") and hasattr(theory, "stderr") and hasattr(theory, "normalized"):
        return True
    return (
        isinstance(theory, tuple)
        and len(theory) == 2
        and all(isinstance(a, np.ndarray) and a.ndim >= 1 for a in theory)
    )


def compare(
    theory: Profile | np.ndarray | EmpiricalERF | tuple[np.ndarray, np.ndarray],
    empirical: EmpiricalERF | np.ndarray | tuple[np.ndarray, np.ndarray],
    *,
    stderr: np.ndarray | None = None,
    start: int | Sequence[int] | None = None,
    normalize: bool = True,
    confidence: float = 0.99,
    correction: Correction = "sidak",
    rtol: float = 1e-9,
) -> Comparison:
    r"""Test a measured ERF against a theoretical one, pixel by pixel.

    Args:
        theory: a `erftheory.Profile` / `erftheory.NetworkProfile`, or an array (any
            scale). Its first coefficient sits at input index ``start`` per axis. Or a
            second measurement, an `erftheory.torch.empirical.EmpiricalERF` or a
            ``(map, stderr)`` pair of the measured map's shape: the two-sample mode
            (see the module documentation).
        empirical: an `erftheory.torch.empirical.EmpiricalERF`, an array with
            ``stderr=``, or a pair ``(map, stderr)``.
        stderr: the standard error of an array ``empirical``.
        start: where the theory's grid begins in the measured map, per axis. By
            default: for a `NetworkProfile`, the RF of the measured output unit,
            ``offset + jump * centre`` (the centre recorded in the `EmpiricalERF`, or the
            network's centre rule for an array); for an array of the map's shape, 0; for
            a `Profile` or any other array, so that its origin (a `Profile`'s ``origin``,
            an array's centre ``(size - 1) // 2``) lies on the measurement's ``origin``.
        normalize: compare the maps divided by their sums (default; the standard error
            of the measured ratio comes from `EmpiricalERF.normalized`, or is the
            standard error over the sum for arrays), or as they are (``False``: an
            exact-scale check, e.g. ``"mean_square"`` against ``kind="expected_square"``
            with `erftheory.torch.build.to_torch` random weights).
        confidence: the family-wise confidence level, in $(0, 1)$.
        correction: ``"sidak"`` (default) or ``"bonferroni"`` (see the module
            documentation).
        rtol: the float tolerance relative to the peak of the compared maps.

    Returns:
        A `Comparison`; ``str()`` of it is a short report.

    Raises:
        ERFValueError: the theory does not fit in the map (use a larger input, e.g.
            `erftheory.Network.min_input_size`), shapes or dimensions disagree, a
            standard error is missing, negative or NaN (fewer than 2 samples), a map
            sums to 0 when normalising, or a bad ``confidence``/``correction``.
        ERFTypeError: an unsupported ``theory`` or ``empirical``.

    Example:
        >>> import numpy as np
        >>> from erftheory import Kernel, profile
        >>> theory = profile(Kernel([1, 1, 1]), layers=2)      # 1 2 3 2 1 (/ 9)
        >>> measured = np.array([0.0, 1.1, 1.9, 3.0, 2.0, 1.0, 0.0])
        >>> result = compare(theory, measured, stderr=np.full(7, 0.1), start=1)
        >>> result.consistent, round(result.tv_distance, 4)
        (True, 0.0111)
        >>> print(result)
        ERF comparison (normalised maps, 0.99 confidence, Šidák over 7 pixels): consistent
          max |z| = 1 (critical 3.19); 0 of 7 pixels fail
          total variation distance = 0.01111
          variance ratio (measured / theory) = 1.025
    """
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ERFValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not 0 < float(confidence) < 1:
        raise ERFValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if correction not in _CORRECTIONS:
        raise ERFValueError(f"correction must be 'sidak' or 'bonferroni', got {correction!r}")
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not rtol >= 0:
        raise ERFValueError(f"rtol must be a non-negative number, got {rtol!r}")
    if _is_measurement(theory):
        return _two_sample(
            theory, empirical, stderr, start, normalize, float(confidence), correction, rtol
        )

    # ---- the measurement
    e_map, e_se, e_raw, count, emp_obj = _measured(empirical, stderr, normalize, "empirical", "")
    centre: tuple[int, ...] | None = None
    e_origin: tuple[int, ...] | None = None
    if emp_obj is not None:
        centre = tuple(int(c) for c in emp_obj.centre)
        e_origin = tuple(int(o) for o in emp_obj.origin)
    _check_values(e_map, e_se, "")

    # ---- the theory on the measured grid
    t_arr, t_origin = _theory(theory, normalize)
    e_shape = tuple(e_map.shape)
    if t_arr.ndim != e_map.ndim:
        raise ERFValueError(
            f"the theory is {t_arr.ndim}-D ({t_arr.shape}) but the measurement is "
            f"{e_map.ndim}-D ({e_shape})"
        )
    begin = _start(theory, t_origin, tuple(t_arr.shape), e_shape, centre, e_origin, start)
    end = tuple(b + s for b, s in zip(begin, t_arr.shape, strict=True))
    if any(b < 0 for b in begin) or any(e > n for e, n in zip(end, e_shape, strict=True)):
        raise ERFValueError(
            f"the theory covers input indices {begin} to {tuple(e - 1 for e in end)} (its "
            f"shape {t_arr.shape}), which leave the measured map of shape {e_shape}: the "
            f"measured unit's RF reaches the padding; use a larger input "
            f"(Network.min_input_size())"
        )
    t_map = np.zeros(e_shape)
    t_map[tuple(slice(b, e) for b, e in zip(begin, end, strict=True))] = t_arr
    if normalize:
        t_total = float(t_map.sum())
        if t_total == 0 or not math.isfinite(t_total):
            raise ERFValueError(f"the theory sums to {t_total!r}; it cannot be normalised")
        t_map = t_map / t_total

    return _verdict(
        e_map,
        t_map,
        e_se,
        e_raw,
        t_map,
        count=count,
        confidence=float(confidence),
        correction=correction,
        rtol=rtol,
        normalize=normalize,
        start=begin,
        stderr=e_se,
    )


def _verdict(
    e_map: np.ndarray,
    t_map: np.ndarray,
    se: np.ndarray,
    e_raw: np.ndarray,
    t_raw: np.ndarray,
    *,
    count: int | None,
    confidence: float,
    correction: str,
    rtol: float,
    normalize: bool,
    start: tuple[int, ...],
    stderr: np.ndarray,
    theory_stderr: np.ndarray | None = None,
) -> Comparison:
    """The per-pixel test of ``e_map`` against ``t_map`` with standard error ``se``.

    ``count`` sets Student's $t$ degrees of freedom (``count - 1``; normal when None or
    below 2); the distances compare the raw maps ``e_raw`` and ``t_raw``.
    """
    shape = tuple(e_map.shape)
    diff = e_map - t_map
    peak = float(max(np.abs(t_map).max(initial=0.0), np.abs(e_map).max(initial=0.0)))
    atol = float(rtol) * peak
    tested_mask = se > 0
    m = int(tested_mask.sum())
    alpha = 1.0 - confidence
    if m:
        per = alpha / m if correction == "bonferroni" else -math.expm1(math.log1p(-alpha) / m)
        if count is not None and count > 1:
            crit = float(stats.t.isf(per / 2, df=count - 1))
        else:
            crit = float(stats.norm.isf(per / 2))
    else:
        crit = float("nan")
    z = np.full(shape, np.nan)
    z[tested_mask] = diff[tested_mask] / se[tested_mask]
    band = np.where(tested_mask, crit * se, 0.0) if m else np.zeros(shape)
    fail = np.abs(diff) > band + atol
    failing = int(fail.sum())
    max_abs_z = float(np.abs(z[tested_mask]).max()) if m else 0.0
    try:
        tv = total_variation(e_raw, t_raw)
    except ERFValueError:
        tv = float("nan")
    ratios = _variance_ratio(e_raw, t_raw)
    t_map, e_map, stderr = (np.array(x, dtype=np.float64) for x in (t_map, e_map, stderr))
    arrays = [z, t_map, e_map, stderr]
    if theory_stderr is not None:
        theory_stderr = np.array(theory_stderr, dtype=np.float64)
        arrays.append(theory_stderr)
    for x in arrays:
        x.setflags(write=False)
    return Comparison(
        consistent=failing == 0,
        confidence=confidence,
        correction=str(correction),
        normalize=bool(normalize),
        critical_z=crit,
        tested=m,
        failing=failing,
        max_abs_z=max_abs_z,
        z=z,
        tv_distance=tv,
        variance_ratio=ratios,
        start=start,
        atol=atol,
        theory=t_map,
        empirical=e_map,
        stderr=stderr,
        two_sample=theory_stderr is not None,
        theory_stderr=theory_stderr,
    )


def _two_sample(
    reference: Any,
    empirical: Any,
    stderr: Any,
    start: Any,
    normalize: bool,
    confidence: float,
    correction: str,
    rtol: float,
) -> Comparison:
    """`compare` of two measurements, each with its own standard error."""
    e_map, e_se, e_raw, n_e, _ = _measured(empirical, stderr, normalize, "empirical", "empirical ")
    t_map, t_se, t_raw, n_t, _ = _measured(reference, None, normalize, "theory", "theory ")
    if e_map.shape != t_map.shape:
        raise ERFValueError(
            f"two measured maps must have one shape to be compared pixel by pixel, got "
            f"{t_map.shape} (theory) and {e_map.shape} (empirical)"
        )
    if start is not None and any(int(v) != 0 for v in _axes(start)):
        raise ERFValueError("start= places a theory grid; two measured maps share one grid")
    _check_values(e_map, e_se, "empirical ")
    _check_values(t_map, t_se, "theory ")
    counts = [c for c in (n_e, n_t) if c is not None]
    return _verdict(
        e_map,
        t_map,
        np.sqrt(e_se * e_se + t_se * t_se),
        e_raw,
        t_raw,
        count=min(counts) if len(counts) == 2 else None,
        confidence=confidence,
        correction=correction,
        rtol=rtol,
        normalize=normalize,
        start=(0,) * e_map.ndim,
        stderr=e_se,
        theory_stderr=t_se,
    )


def _axis_variance(p: np.ndarray, axis: int) -> float:
    """Variance along ``axis`` of the marginal of a map divided by its sum."""
    total = float(p.sum())
    if total == 0:
        return float("nan")
    others = tuple(a for a in range(p.ndim) if a != axis)
    w = p.sum(axis=others) / total if others else p / total
    x = np.arange(w.size, dtype=np.float64)
    mean = float((w * x).sum())
    return float((w * (x - mean) ** 2).sum())


def _variance_ratio(emp: np.ndarray, theory: np.ndarray) -> tuple[float, ...]:
    out = []
    for a in range(emp.ndim):
        ve, vt = _axis_variance(emp, a), _axis_variance(theory, a)
        out.append(ve / vt if vt > 0 else float("nan"))
    return tuple(out)
