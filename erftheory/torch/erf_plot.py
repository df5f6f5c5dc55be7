"""The figure of a measured ERF map (`EmpiricalERF.plot`); matplotlib is imported here only."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import ERFValueError, MissingDependencyError
from . import map_measures as _measures

if TYPE_CHECKING:
    from .result import EmpiricalERF

__all__ = ["plot_erf"]


def plot_erf(
    erf: EmpiricalERF,
    ax: Any = None,
    *,
    log: bool = False,
    gaussian: bool = True,
    cmap: str = "plasma",
    title: str | None = None,
) -> Any:
    """`EmpiricalERF.plot` of ``erf`` (see there)."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Ellipse
    except ImportError as e:  # pragma: no cover - matplotlib is in the plot extra
        raise MissingDependencyError("matplotlib", "plot", "EmpiricalERF.plot") from e
    if erf.ndim > 2:
        raise ERFValueError(f"plot() shows 1-D and 2-D maps, this one is {erf.shape}")
    total = _measures.positive_total(erf)
    p = erf.map / total
    if ax is None:
        _, ax = plt.subplots()
    label = title if title is not None else f"{erf.statistic}, N = {erf.count}"
    if erf.ndim == 1:
        x = np.arange(p.size)
        se = np.nan_to_num(erf.normalized()[1])
        ax.plot(x, p, color="C0")
        ax.fill_between(x, p - se, p + se, color="C0", alpha=0.3, linewidth=0)
        ax.axvline(erf.origin[0], color="k", linestyle=":", linewidth=1)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("input pixel")
    else:
        shown = np.ma.masked_less_equal(p, 0.0) if log else p
        img = np.ma.log10(shown) if log else shown
        im = ax.imshow(img, cmap=cmap, origin="upper", interpolation="nearest")
        ax.figure.colorbar(im, ax=ax, label="log10 share" if log else "share")
        oy, ox = erf.origin
        ax.plot([ox], [oy], marker="+", color="w", markersize=10)
        if gaussian:
            try:
                fit = erf.gaussian()
            except ERFValueError:
                fit = None
            if fit is not None:
                for k in (1, 2):
                    ax.add_patch(
                        Ellipse(
                            (fit.centre[1], fit.centre[0]),
                            2 * k * fit.sigma[0],
                            2 * k * fit.sigma[1],
                            angle=math.degrees(fit.angle),
                            fill=False,
                            color="w",
                            linestyle="-" if k == 1 else "--",
                            linewidth=1,
                        )
                    )
        ax.set_xlabel("x (column)")
        ax.set_ylabel("y (row)")
    ax.set_title(label)
    return ax
