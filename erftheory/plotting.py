"""Figures of ERF profiles (needs the ``plot`` extra: matplotlib).

matplotlib is imported only when a function here is called, with the
non-interactive Agg backend, so scripts and servers need no display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import ERFValueError, MissingDependencyError

if TYPE_CHECKING:
    from .profile import Profile

__all__ = ["plot_profile", "require_matplotlib"]

_MAX_BARS = 2000
"""Above this many pixels a 1-D profile is drawn as a step curve, not as bars."""


def require_matplotlib() -> Any:
    """Import matplotlib with the Agg backend, or raise a clear error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "plotting") from None
    return plt


def plot_profile(
    prof: Profile, path: str | Path, *, log: bool = False, title: str | None = None
) -> Path:
    """Draw a profile and save it to ``path`` (PNG, PDF or SVG by extension).

    1-D: the normalised profile as bars over its Gaussian (Section 2.3), within
    ±6σ of the mean (clipped to the RF). 2-D: a heatmap with a colour bar;
    ``log=True`` uses a logarithmic colour scale.
    """
    plt = require_matplotlib()
    from matplotlib.colors import LogNorm

    values = prof.normalized()
    origin = prof._origin_tuple
    fig, ax = plt.subplots(figsize=(7, 4.5) if prof.ndim == 1 else (6, 5))
    network = getattr(prof, "network", None)
    if title:
        heading = title
    elif network is not None:
        kind = getattr(prof, "kind", "gradient")
        heading = f"ERF ({kind}) of a network of {len(network)} layers, RF {prof.shape}"
    else:
        heading = f"ERF of {prof.layers} layers, kernel {prof.kernel!r}"
    if len(heading) > 100:  # a kernel of many taps: keep the title one readable line
        heading = heading[:99] + "…"
    try:
        if prof.ndim == 1:
            x = np.arange(values.shape[0]) - origin[0]
            mu = float(prof.mean)
            try:
                sd = prof.std
            except ERFValueError:
                sd = 0.0
            if sd > 0:
                lo = max(x[0], math.floor(mu - 6 * sd))
                hi = min(x[-1], math.ceil(mu + 6 * sd))
            else:
                lo, hi = x[0], x[-1]
            keep = (x >= lo) & (x <= hi)
            if np.count_nonzero(keep) <= _MAX_BARS:
                ax.bar(
                    x[keep],
                    values[keep],
                    width=1.0,
                    color="#4c72b0",
                    alpha=0.7,
                    label="exact profile",
                )
            else:  # one patch per bar would take minutes: one filled step curve instead
                ax.fill_between(
                    x[keep],
                    values[keep],
                    step="mid",
                    color="#4c72b0",
                    alpha=0.7,
                    label="exact profile",
                )
            if sd > 0:
                fit = prof.gaussian()
                ax.plot(x[keep], fit.values[keep], color="#dd8452", lw=2, label="Gaussian (Eq. 10)")
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("input position t relative to the output unit (pixels)")
            ax.set_ylabel("normalised ERF o(t)")
            ax.legend()
        else:
            extent = (
                -origin[1] - 0.5,
                values.shape[1] - origin[1] - 0.5,
                values.shape[0] - origin[0] - 0.5,
                -origin[0] - 0.5,
            )
            positive = values[values > 0]
            norm = (
                LogNorm(vmin=max(positive.min(), values.max() * 1e-12), vmax=values.max())
                if (log and positive.size)
                else None
            )
            im = ax.imshow(
                values, extent=extent, cmap="viridis", norm=norm, interpolation="nearest"
            )
            fig.colorbar(im, ax=ax, label="normalised ERF" + (" (log scale)" if log else ""))
            ax.set_xlabel("column offset (pixels)")
            ax.set_ylabel("row offset (pixels)")
        ax.set_title(heading, fontsize=10)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=120)
    finally:
        plt.close(fig)
    return out
