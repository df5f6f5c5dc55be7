r"""ERF size measures on a normalised profile or any measured ERF map.

All functions take a float array (1-D or 2-D) and the index of the *origin*, the
input pixel under the output unit, so that they apply equally to exact profiles
and to empirical maps measured with torch.

- `threshold_size`: the paper's Fig. 2 measure. Pixels whose value exceeds
  $(1 - 0.9545)$ of the centre value are "in the ERF"; the size is the square root
  of their count in 2-D and their count in 1-D. For a Gaussian this threshold is a
  radius of $\sqrt{2\ln(1/0.0455)}\,\sigma \approx 2.49\sigma$, not $2\sigma$.
- `mass_size`: the side of the smallest square (interval in 1-D) centred on the
  origin that holds a given fraction of the total mass, as large-kernel CNN papers
  report at 20/30/50/99 %.
- `rf_size`: the theoretical receptive field, $n(k-1)+1$ per axis for $n$ layers
  of $k$ taps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._errors import ERFValueError

__all__ = ["FIG2_LEVEL", "mass_size", "rf_size", "threshold_size"]

FIG2_LEVEL = 1 - 0.9545
"""The relative threshold of the paper's Fig. 2: $1 - 0.9545 = 0.0455$."""

MASS_RTOL = 1e-12
"""Relative slack when comparing float partial sums with a mass fraction."""


def _origin(values: np.ndarray, origin: int | Sequence[int]) -> tuple[int, ...]:
    idx = (origin,) if isinstance(origin, (int, np.integer)) else tuple(origin)
    if len(idx) != values.ndim or not all(
        0 <= i < s for i, s in zip(idx, values.shape, strict=True)
    ):
        raise ERFValueError(f"origin {origin!r} is outside an array of shape {values.shape}")
    return tuple(int(i) for i in idx)


def threshold_size(
    values: np.ndarray, origin: int | Sequence[int], level: float = FIG2_LEVEL
) -> float:
    """The paper's Fig. 2 ERF size: count pixels above ``level`` × the centre value.

    Returns the count in 1-D and its square root in 2-D (the side of a square of
    the same area).

    Example:
        >>> import numpy as np
        >>> threshold_size(np.array([0.01, 0.2, 1.0, 0.2, 0.01]), 2)
        3.0
        >>> threshold_size(np.ones((3, 3)), (1, 1), level=0.5)
        3.0
    """
    arr = np.asarray(values, dtype=float)
    if not 0 < level < 1:
        raise ERFValueError(f"level must be in (0, 1), got {level!r}")
    centre = arr[_origin(arr, origin)]
    if not centre > 0:
        raise ERFValueError(
            f"the centre value is {centre!r}; the threshold measure needs a positive centre"
        )
    count = int(np.count_nonzero(arr > level * centre))
    return float(count) if arr.ndim == 1 else math.sqrt(count)


def mass_size(values: np.ndarray, origin: int | Sequence[int], fraction: float = 0.5) -> int:
    """Side of the smallest centred square (interval in 1-D) holding ``fraction`` of the mass.

    Mass is measured in absolute values. The window grows by one pixel on every
    side at a time and is clipped at the array's edge; float sums are compared with
    a relative slack of `MASS_RTOL`.

    Example:
        >>> import numpy as np
        >>> mass_size(np.array([1, 2, 4, 2, 1]) / 10, 2, fraction=0.8)
        3
        >>> mass_size(np.array([1, 2, 4, 2, 1]) / 10, 2, fraction=1.0)
        5
    """
    arr = np.abs(np.asarray(values, dtype=float))
    if not 0 < fraction <= 1:
        raise ERFValueError(f"fraction must be in (0, 1], got {fraction!r}")
    idx = _origin(arr, origin)
    total = float(arr.sum())
    if total == 0:
        raise ERFValueError("the map is all zeros; it has no mass to measure")
    target = fraction * total * (1 - MASS_RTOL)
    radius_max = max(max(i, s - 1 - i) for i, s in zip(idx, arr.shape, strict=True))
    if arr.ndim == 1:
        c = np.concatenate([[0.0], np.cumsum(arr)])
        for r in range(radius_max + 1):
            lo, hi = max(idx[0] - r, 0), min(idx[0] + r + 1, arr.shape[0])
            if c[hi] - c[lo] >= target:
                return 2 * r + 1
    else:
        s = np.zeros((arr.shape[0] + 1, arr.shape[1] + 1))
        s[1:, 1:] = arr.cumsum(0).cumsum(1)
        for r in range(radius_max + 1):
            a0, a1 = max(idx[0] - r, 0), min(idx[0] + r + 1, arr.shape[0])
            b0, b1 = max(idx[1] - r, 0), min(idx[1] + r + 1, arr.shape[1])
            if s[a1, b1] - s[a0, b1] - s[a1, b0] + s[a0, b0] >= target:
                return 2 * r + 1
    return 2 * radius_max + 1


def rf_size(kernel_shape: Sequence[int], layers: int) -> tuple[int, ...]:
    """Theoretical receptive field per axis: $n(k-1)+1$ for $n$ layers of $k$ taps.

    Example:
        >>> rf_size((3, 3), 20)
        (41, 41)
    """
    return tuple(layers * (k - 1) + 1 for k in kernel_shape)
