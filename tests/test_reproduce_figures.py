"""`erftheory reproduce`'s figures: Fig. 1 as the paper's grid, every figure readable at 100 %.

The grid is checked on the matplotlib figure objects (axes, images, contours, fonts),
the sizes on the figures and on the saved PNG headers, never on pixels.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from erftheory.layers import ReLU
from erftheory.torch.reproduce import (
    DPI,
    HE_VARIANCE,
    LINEAR_VARIANCE,
    MAX_PIXELS,
    MIN_FONT,
    Config,
    _experiment,
    _grid_figures,
    _panels_figure,
    _pyplot,
    _Sampling,
    _save,
    dense,
)

NAMES = ["uniform", "random", "random + ReLU"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def fig1_rows(depths: list[int]) -> list[dict[str, Any]]:
    """Fig. 1's rows at the smallest sampling (the layout, not the statistics, is tested)."""
    sampling = _Sampling(networks=3, channels=4, device="cpu")
    builds = [
        (lambda d: dense(d), "ones"),
        (lambda d: dense(d, LINEAR_VARIANCE), "random"),
        (lambda d: dense(d, HE_VARIANCE, ReLU()), "random"),
    ]
    return [
        _experiment(f"{name}, {d} layers", build(d), sampling, d, init)
        for name, (build, init) in zip(NAMES, builds, strict=True)
        for d in depths
    ]


def check_readable(fig: Any) -> None:
    """At most `MAX_PIXELS` at `DPI`; every visible text at least `MIN_FONT` points and
    inside the figure (a title cut off at the edge is not readable)."""
    width, height = fig.get_size_inches() * DPI
    assert width <= MAX_PIXELS[0] and height <= MAX_PIXELS[1]
    fig.set_dpi(DPI)
    fig.canvas.draw()  # ticks and their labels exist once drawn
    import matplotlib.text

    unused = set()  # labels of ticks outside the view, which matplotlib keeps but never draws
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    unused.update({id(tick.label1), id(tick.label2)})
    texts = [
        t
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text() and id(t) not in unused
    ]
    assert texts
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < MIN_FONT]
    assert not small
    renderer = fig.canvas.get_renderer()
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= -1 and box.y0 >= -1, t.get_text()
        assert box.x1 <= width + 1 and box.y1 <= height + 1, t.get_text()


def test_fig1_is_the_papers_grid(tmp_path: Path) -> None:
    """The default depths (5, 10, 20, 40: the paper's); the quick ones are in the quick run."""
    depths = list(Config().depths)
    assert depths == [5, 10, 20, 40]
    rows = fig1_rows(depths)
    plt = _pyplot()
    maps, sections = _grid_figures(rows, NAMES, depths)
    try:
        n = len(depths)
        panels = [ax for ax in maps.axes if ax.images]  # the colour bar has none
        assert len(panels) == 3 * n and len(maps.axes) == 3 * n + 1  # + one colour bar
        geometry = {ax.get_subplotspec().get_geometry()[:2] for ax in panels}
        assert geometry == {(3, n)}
        for i, name in enumerate(NAMES):  # rows: settings; columns: depths in order
            for j, d in enumerate(depths):
                ax = panels[i * n + j]
                spec = ax.get_subplotspec()
                assert (spec.rowspan.start, spec.colspan.start) == (i, j)
                assert ax.get_title().startswith(f"{name}, {d} layers")
                assert len(ax.images) == 1
                assert ax.collections  # the theory's contours over the measured map
        assert len(sections.axes) == 3 * n
        for ax in sections.axes:
            assert ax.lines  # theory line and the measured points
        for fig in (maps, sections):
            check_readable(fig)
    except BaseException:
        plt.close(maps)
        plt.close(sections)
        raise
    _save(plt, maps, tmp_path / "maps.png")  # and as saved
    _save(plt, sections, tmp_path / "sections.png")
    for name in ("maps.png", "sections.png"):
        width, height = png_size(tmp_path / name)
        assert 600 <= width <= MAX_PIXELS[0] and 400 <= height <= MAX_PIXELS[1]


def test_the_grid_refuses_rows_that_do_not_fill_it() -> None:
    from erftheory import ERFValueError

    with pytest.raises(ERFValueError, match="5 rows for 3 settings × 2 depths"):
        _grid_figures(fig1_rows([2, 3])[:5], NAMES, [2, 3])


def test_the_panel_figures_are_readable() -> None:
    rows = fig1_rows([2, 3])[:3]
    plt = _pyplot()
    fig = _panels_figure(rows, "three experiments")
    try:
        assert len([ax for ax in fig.axes if ax.images]) == 3
        assert len(fig.axes) == 2 * 3 + 1
        check_readable(fig)
    finally:
        plt.close(fig)


def test_the_maps_are_drawn_as_measured() -> None:
    """The image is the measured map over the theory's centre value, the window centred."""
    (r,) = fig1_rows([2])[:1]
    plt = _pyplot()
    maps, sections = _grid_figures(fig1_rows([2]), NAMES, [2])
    try:
        shown = np.asarray(maps.axes[0].images[0].get_array())
        th, ex = r["_theory"], r["_experiment"]
        assert shown.shape == th.shape  # depth 2: the whole 5×5 RF fits the window
        assert np.allclose(shown, ex / th[2, 2])
        line = sections.axes[0].lines[0]
        assert np.allclose(line.get_ydata(), th[2] / th[2, 2])
    finally:
        plt.close(maps)
        plt.close(sections)
