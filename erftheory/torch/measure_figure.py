"""The figure of ``erftheory measure`` (`plot_measurement`); matplotlib is imported here only."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import ERFValueError
from .measure import DPI, SHARES, Measurement

__all__ = ["plot_measurement"]


_SHARE_COLOURS = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3")
_MEASURED, _THEORY = "#4c72b0", "#dd8452"


def _fmt(v: Any, se: Any = None, digits: int = 4) -> str:
    if v is None:
        return "-"
    text = f"{v:.{digits}g}"
    if se is not None and isinstance(se, float) and math.isfinite(se):
        text += f" ± {se:.2g}"
    return text


def _squares(ax: Any, origin: Sequence[int], shares: Any) -> None:
    from matplotlib.patches import Rectangle

    oy, ox = origin
    for colour, s in zip(_SHARE_COLOURS, shares or [], strict=False):
        side = s["side"]
        ax.add_patch(
            Rectangle(
                (ox - side / 2, oy - side / 2),
                side,
                side,
                fill=False,
                color=colour,
                linewidth=1.2,
                label=f"{s['share'] * 100:g} %: {side}×{side}",
            )
        )


def plot_measurement(result: Measurement, path: str | os.PathLike[str] | None = None) -> Any:
    """The figure of a `Measurement` (saved to ``path`` when given); returns the Figure.

    Top row: the measured map (normalised, with the 1σ and 2σ ellipses of its moment
    Gaussian, the origin and the squares holding 20, 30, 50 and 99 % of its mass), the
    theory on the same grid (on its own grid, with the image's extent drawn, when it
    does not fit in the image; or the reason there is none), and the numbers: the
    Gaussian's σx, σy and orientation with standard errors, the theory's, the verdict.
    Bottom row: the radial mass curves (±2 standard errors), the sides of the
    mass-share squares, and the cross-sections through the origin.

    Raises:
        MissingDependencyError: matplotlib is not installed (extra ``plot``).
    """
    from ..plotting import require_matplotlib

    plt = require_matplotlib()
    from matplotlib.patches import Rectangle

    s = result.summary
    erf = result.erf
    rc = {"font.size": 10, "legend.fontsize": 9, "axes.titlesize": 10.5, "axes.labelsize": 10}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(2, 3, figsize=(15, 9), layout="constrained")
        (a_map, a_theory, a_text), (a_radial, a_shares, a_cut) = axes
        title = f"measured: {s['statistic']} over {s['count']} images"
        try:
            erf.plot(ax=a_map, title=title)
        except ERFValueError as e:
            a_map.text(0.5, 0.5, f"no map to show:\n{e}", ha="center", va="center", wrap=True)
            a_map.set_axis_off()
        else:
            _squares(a_map, erf.origin, s.get("mass_shares"))
            _limits(a_map, erf.shape)
            a_map.legend(loc="lower left", title="mass-share squares", framealpha=0.8)
        # ---- theory
        tdoc = s.get("theory")
        if result.theory_map is not None and tdoc is not None:
            tmap = result.theory_map
            if tdoc.get("fits"):
                vmax = max(float(np.nanmax(erf.map / erf.map.sum())), float(tmap.max()))
                im = a_theory.imshow(
                    tmap, cmap="plasma", vmin=0, vmax=vmax, interpolation="nearest"
                )
                a_theory.set_title(f"theory, same grid ({tdoc.get('weights')} weights)")
            else:
                im = a_theory.imshow(tmap, cmap="plasma", interpolation="nearest")
                oy, ox = result.theory_origin or (0, 0)
                h, w = erf.shape
                ey, ex = erf.origin
                a_theory.add_patch(
                    Rectangle(
                        (ox - ex - 0.5, oy - ey - 0.5),
                        w,
                        h,
                        fill=False,
                        color="w",
                        linestyle="--",
                        linewidth=1.2,
                        label="the image",
                    )
                )
                a_theory.legend(loc="lower left", framealpha=0.8)
                a_theory.set_title(
                    f"theory (RF {'×'.join(map(str, tdoc['rf_size']))} > image: no verdict)"
                )
            fig.colorbar(im, ax=a_theory, label="share")
            torg = result.theory_origin or (0, 0)
            a_theory.plot([torg[1]], [torg[0]], marker="+", color="w", markersize=10)
            _squares(a_theory, torg, tdoc.get("mass_shares"))
            _limits(a_theory, tmap.shape)
            a_theory.set_xlabel("x (column)")
            a_theory.set_ylabel("y (row)")
        else:
            why = "\n".join(_wrap(n, 60) for n in s.get("notes", [])[:3]) or "not computed"
            a_theory.text(
                0.5,
                0.5,
                f"no theory\n\n{why}",
                ha="center",
                va="center",
                fontsize=9,
                transform=a_theory.transAxes,
            )
            a_theory.set_axis_off()
        # ---- text
        a_text.set_axis_off()
        a_text.text(
            0.0,
            1.0,
            _text_panel(s),
            va="top",
            ha="left",
            family="monospace",
            fontsize=9,
            transform=a_text.transAxes,
        )
        # ---- radial mass
        rm = s.get("radial_mass")
        if rm is not None:
            r = np.array(rm["radius"], dtype=float)
            m = np.array(rm["mass"], dtype=float)
            se = np.array([np.nan if v is None else v for v in rm["stderr"]], dtype=float)
            a_radial.plot(r, m, color=_MEASURED, label="measured")
            if np.isfinite(se).any():
                a_radial.fill_between(
                    r,
                    m - 2 * np.nan_to_num(se),
                    m + 2 * np.nan_to_num(se),
                    color=_MEASURED,
                    alpha=0.25,
                    linewidth=0,
                    label="±2 SE",
                )
        if tdoc is not None and isinstance(tdoc.get("radial_mass"), dict):
            a_radial.plot(
                tdoc["radial_mass"]["radius"],
                tdoc["radial_mass"]["mass"],
                color=_THEORY,
                linestyle="--",
                label="theory",
            )
        for share, colour in zip(SHARES, _SHARE_COLOURS, strict=True):
            a_radial.axhline(share, color=colour, linewidth=0.8, linestyle=":")
        a_radial.set_xlabel("radius from the origin (pixels)")
        a_radial.set_ylabel("share of the map within the radius")
        a_radial.set_title("radial mass")
        a_radial.set_ylim(0, 1.02)
        a_radial.legend(loc="lower right")
        # ---- mass shares
        ms = s.get("mass_shares") or []
        x = np.arange(len(ms))
        if ms:
            widths = [d["width"] for d in ms]
            errs = [0.0 if d["width_stderr"] is None else 2 * d["width_stderr"] for d in ms]
            a_shares.bar(x - 0.2, widths, 0.4, yerr=errs, color=_MEASURED, label="measured (±2 SE)")
            for xi, d in zip(x, ms, strict=True):
                a_shares.text(
                    xi - 0.2,
                    d["width"],
                    f"{d['area_ratio'] * 100:.2g} %",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                )
        tms = (tdoc or {}).get("mass_shares") or []
        if tms:
            a_shares.bar(
                x[: len(tms)] + 0.2, [d["width"] for d in tms], 0.4, color=_THEORY, label="theory"
            )
        a_shares.set_xticks(x, [f"{d['share'] * 100:g} %" for d in ms])
        a_shares.set_xlabel("share of the map (label: the square's share of the image area)")
        a_shares.set_ylabel("side of the square about the origin (pixels)")
        a_shares.set_title("mass-share squares")
        a_shares.legend(loc="upper left")
        # ---- cross-sections
        try:
            p, pse = erf.normalized()
        except ERFValueError:
            p = None
        if p is not None:
            oy, ox = erf.origin
            for values, errors, label, style in (
                (p[oy, :], pse[oy, :], "row through the origin", "-"),
                (p[:, ox], pse[:, ox], "column through the origin", "-."),
            ):
                idx = np.arange(values.size) - (ox if "row" in label else oy)
                a_cut.plot(
                    idx, values, color=_MEASURED, linestyle=style, label=f"measured, {label}"
                )
                band = 2 * np.nan_to_num(errors)
                a_cut.fill_between(
                    idx, values - band, values + band, color=_MEASURED, alpha=0.2, linewidth=0
                )
            if tdoc is not None and tdoc.get("fits") and result.theory_map is not None:
                t = result.theory_map
                a_cut.plot(
                    np.arange(t.shape[1]) - ox,
                    t[oy, :],
                    color=_THEORY,
                    linestyle="--",
                    label="theory, row",
                )
                a_cut.plot(
                    np.arange(t.shape[0]) - oy,
                    t[:, ox],
                    color=_THEORY,
                    linestyle=":",
                    label="theory, column",
                )
        a_cut.set_xlabel("offset from the origin (pixels)")
        a_cut.set_ylabel("share")
        a_cut.set_title("cross-sections through the origin (±2 SE)")
        a_cut.legend(loc="upper right")
        fig.suptitle(
            f"ERF of {s['model']} on {s['count']} images ({s['transform']['name']} transform, "
            f"input {'×'.join(map(str, s['input_shape']))})",
            fontsize=12,
        )
        if path is not None:
            try:
                fig.savefig(path, dpi=DPI)
            finally:
                plt.close(fig)
    return fig


def _limits(ax: Any, shape: Sequence[int]) -> None:
    """Keep an image's axes on the image (squares may reach beyond it)."""
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _squares_text(shares: Any) -> str:
    """The squares' sides, two per line (the panel is narrow)."""
    parts = [f"{d['share'] * 100:g}%: {d['side']}" for d in shares or []]
    rows = ["  ".join(parts[i : i + 2]) for i in range(0, len(parts), 2)]
    return "\n           ".join(rows) or "-"


def _text_panel(s: dict[str, Any]) -> str:
    """The numbers of the figure, at most about 48 characters a line."""
    indent = "\n" + " " * 11
    g = s.get("gaussian")
    lines = [
        f"model      {_wrap(str(s['model']), 32)}".replace("\n", indent),
        f"measured   {_wrap(s['measured'], 32)}".replace("\n", indent),
        f"images     {s['count']}, {s['statistic']} ({s['nonfinite']} non-finite)",
        f"transform  {s['transform']['source']}",
        f"origin     {tuple(s['origin'])} ({s['origin_source']})",
        "",
    ]
    if g is not None:
        lines += [
            f"measured Gaussian (moments), R² {_fmt(g['r_squared'], None, 3)}",
            f"  σx, σy   {_fmt(g['sigma_x'], g['sigma_x_stderr'])}, "
            f"{_fmt(g['sigma_y'], g['sigma_y_stderr'])} px",
            f"  angle    {_fmt(g['orientation_deg'], g['orientation_deg_stderr'], 3)}° "
            f"(σ1, σ2 {_fmt(g['sigma'][0], None, 3)}, {_fmt(g['sigma'][1], None, 3)})",
        ]
    else:
        lines.append("measured Gaussian: none")
    lines.append(f"  squares  {_squares_text(s.get('mass_shares'))}")
    t = s.get("theory")
    if t is not None:
        tg = t.get("gaussian")
        lines += ["", f"theory: expected_square, {t.get('weights')} weights"]
        rf = "×".join(map(str, t["rf_size"]))
        lines.append(f"  RF       {rf}")
        if tg is not None:
            lines += [
                f"  σx, σy   {_fmt(tg['sigma_x'])}, {_fmt(tg['sigma_y'])} px",
                f"  angle    {_fmt(tg['orientation_deg'], None, 3)}° "
                f"(σ1, σ2 {_fmt(tg['sigma'][0], None, 3)}, {_fmt(tg['sigma'][1], None, 3)})",
            ]
        lines.append(f"  squares  {_squares_text(t.get('mass_shares'))}")
    c = s.get("comparison")
    if c is not None:
        lines += [
            "",
            f"verdict    {c['verdict'].upper()} at {c['confidence']:g}",
            f"  max |z| {_fmt(c['max_abs_z'], None, 3)} (critical "
            f"{_fmt(c['critical_z'], None, 3)})",
            f"  {c['failing']} of {c['pixels']} pixels fail",
            f"  TV {_fmt(c['tv_distance'], None, 3)}; variance ratio "
            + ", ".join(_fmt(v, None, 3) for v in c["variance_ratio"]),
        ]
    elif t is not None and not t.get("fits"):
        size = "×".join(map(str, t.get("min_input_size") or []))
        lines += [
            "",
            "verdict    none: the theory's RF is larger",
            "           than the image",
            f"           (it fits from {size})",
        ]
    elif t is not None:
        lines += ["", "verdict    none (see the notes in summary.json)"]
    return "\n".join(lines)
