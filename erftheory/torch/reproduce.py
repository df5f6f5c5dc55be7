r"""``erftheory reproduce``: the paper's experiments, theory next to experiment.

Regenerates the experiments of Section 3 (and the initialisation of Section 4) as PNG
figures plus ``results.json`` and ``results.md``. Every figure shows the exact theory
(`erftheory.network.Network.profile`) beside the measurement (the gradient of the centre
output unit back-propagated to the input, Section 3, averaged over independently
initialised networks sampled in one pass as channel groups).

- ``fig1_depth.png``: Fig. 1 (left) as the paper's grid: rows uniform, random and
  random + ReLU 3×3 networks, columns the depths (`Config.depths`); each panel the
  measured map with the exact theory's contours over it;
- ``fig1_sections.png``: the same grid of cross-sections, the centre row of every map,
  theory against measurement with ±2 standard errors;
- ``fig1_activations.png``: Fig. 1 (right): 20-layer random networks with ReLU, tanh and
  sigmoid;
- ``fig2_size_ratio.png``: Fig. 2: ERF size and ERF/RF ratio against depth, log–log,
  with fitted slopes;
- ``fig_subsampling_dilation.png``: Section 3.1: 15 dense layers against 3 of them
  strided (2) or dilated (2, 4, 8);
- ``fig3_training.png``: Section 3.2: the paper's kind of ResNet (17 residual blocks,
  no pooling or downsampling, `erftheory.paper.resnet_network`) trained on
  scikit-learn's digits upscaled to 32×32, its ERF before and after training over
  several seeds;
- ``fig_init.png``: Section 4: the centre-low initialisation against He initialisation.

Every figure is at most `MAX_PIXELS` at `DPI` with text of at least `MIN_FONT` points:
readable at 100 % on a laptop screen.

Settings. The random networks have `Config.channels` channels per layer (the paper does
not state its widths; with one channel the squared gradient of a random network is so
heavy-tailed that thousands of networks leave a noisy map, while a few channels average
many paths per network). Random weights are zero-mean Gaussians with per-tap variance
$1/(9C)$ per pair of channels for linear networks and $2/(9C)$ (He) with ReLU, tanh or
sigmoid; inputs are iid standard normal. The ERF measured for random networks is the mean
over networks of the squared input gradient summed over input channels (Eq. 8; its
expectation is the ``"expected_square"`` profile exactly for linear networks), for the
uniform network (one channel) the gradient itself. "ERF size" is the paper's Fig. 2 measure
(pixels above $1 - 0.9545$ of the centre value, square root of their count); "std" is
the one-σ radius, the square root of the normalised map's variance per axis.

Needs the ``reproduce`` extra (torch, matplotlib, scikit-learn).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import measures
from .._errors import ERFTypeError, ERFValueError
from ..compare import compare
from ..initializations import variance_network
from ..kernel import Kernel
from ..layers import Layer, ReLU, Sigmoid, Tanh
from ..network import Network
from ..paper import (
    PAPER_RESNET_RF,
    REPLACEMENTS,
    RESNET_BLOCKS,
    paper_network,
    replaced_network,
    resnet_network,
)
from ..paper import REPLACED as REPLACED  # old names, importable from here as before
from ..paper import REPLACED_DILATIONS as REPLACED_DILATIONS
from ._measure import centre_gradient, per_axis, sample_maps
from .build import Scale, to_torch

__all__ = ["CPU_THREADS", "Config", "reproduce"]

CPU_THREADS = 1
"""Torch threads on the CPU. The tensors here are small (8 channels at 32×32 and less),
so a second thread mostly waits for its share of the work: measured at load average 6 on
a 2-core machine, ``quick=True`` took 8.8 s on one thread against 20.7 s on two, and the
default run 207 s of wall time for 87 s of CPU time on one thread (before the weights-alone
prediction was added: now about 100 s of CPU time). One thread also makes
the float32 reductions, and so the trained networks, the same on every machine."""

PAPER_SLOPES = {"size": 0.56, "ratio": -0.43}
"""The slopes the paper reports for Fig. 2 (Section 3.1)."""


@dataclass(frozen=True)
class Config:
    """Sizes of the experiments.

    Attributes:
        depths: network depths of Fig. 1.
        networks: random networks averaged per measurement.
        channels: channels per layer of the random networks.
        activation_depth: depth of the ReLU / tanh / sigmoid comparison.
        fig2_depths: depths of Fig. 2 (at least three, for the fitted slopes).
        fig2_networks, fig2_channels: networks and channels per depth of Fig. 2.
        dense_layers: depth of the subsampling / dilation comparison (the paper: 15).
        init_depth: depth of the Section 4 initialisation comparison.
        train_blocks: residual blocks of the Section 3.2 ResNet (the paper: 17).
        train_channels: its channels per layer.
        train_seeds: independently initialised networks trained (side by side).
        train_epochs: epochs over the training images.
        train_batch: images per training step.
        train_lr: Adam's learning rate.
        train_images: training images used (of 1500).
        calibration_images: training images that set the batch norms' statistics of
            the network before training.
        erf_images: test images the ERF is measured on (of 297).
    """

    depths: tuple[int, ...] = (5, 10, 20, 40)
    networks: int = 200
    channels: int = 8
    activation_depth: int = 20
    fig2_depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    fig2_networks: int = 100
    fig2_channels: int = 4
    dense_layers: int = 15
    init_depth: int = 10
    train_blocks: int = RESNET_BLOCKS
    train_channels: int = 8
    train_seeds: int = 4
    train_epochs: int = 3
    train_batch: int = 16
    train_lr: float = 0.003
    train_images: int = 1500
    calibration_images: int = 256
    erf_images: int = 128


QUICK = Config(
    depths=(3, 6),
    networks=24,
    channels=4,
    activation_depth=6,
    fig2_depths=(2, 4, 8),
    fig2_networks=24,
    fig2_channels=4,
    dense_layers=15,
    init_depth=4,
    train_blocks=4,
    train_channels=4,
    train_seeds=3,
    train_epochs=1,
    train_batch=16,
    train_lr=0.003,
    train_images=256,
    calibration_images=64,
    erf_images=32,
)
"""Every figure at reduced size (``--quick``): about 20 s on 2 CPU cores. Section 3.2 trains
a 4-block ResNet (RF 19) of 4 channels for one epoch on 256 images: a check of the
pipeline, not of the paper's claim."""


# --------------------------------------------------------------------------- networks
def _var(value: Fraction) -> Kernel:
    return Kernel([[value] * 3 for _ in range(3)])


LINEAR_VARIANCE = Fraction(1, 9)
HE_VARIANCE = Fraction(2, 9)


def _with_variance(network: Network, variance: Fraction) -> Network:
    """``network`` with every 3×3 kernel's taps the random weights' variance."""
    return variance_network(network, lambda size: _var(variance))


def dense(depth: int, variance: Fraction | None = None, activation: Layer | None = None) -> Network:
    """``depth`` 3×3 convolutions ('same' padding): all ones, or random with a variance.

    `erftheory.paper.paper_network` with its convolutions' kernels the variances.
    """
    act: Any = activation
    net = paper_network(depth, activation=act)
    return net if variance is None else _with_variance(net, variance)


def replaced(depth: int, how: str, variance: Fraction = LINEAR_VARIANCE) -> Network:
    """``depth`` 3×3 layers, three of which (`REPLACED`) are stride-2 or dilated 2, 4, 8.

    `erftheory.paper.replaced_network` (``how`` is ``"dense"``, ``"stride"`` or
    ``"dilation"``) with its convolutions' kernels the variance.
    """
    return _with_variance(replaced_network(depth, how), variance)


# --------------------------------------------------------------------------- measurement
@dataclass
class Measured:
    """A measured ERF on the RF window of the centre output unit."""

    mean: np.ndarray
    stderr: np.ndarray
    count: int


def measure(
    network: Network,
    *,
    init: str,
    count: int,
    seed: int,
    device: str = "cpu",
    statistic: str = "mean_square",
    channels: int = 1,
) -> Measured:
    """Sample ``count`` networks in one pass and average their input gradients (Section 3).

    ``init="random"`` draws each network's weights from the per-tap variances of the
    network's kernels, divided by ``channels`` per pair of channels (float32; the
    networks are channel groups of one model, `erftheory.torch.to_torch` with
    ``copies``); ``"ones"`` is an all-ones network in float64 (its gradient reaches
    $9^{40}$ at depth 40). Inputs are iid standard normal. Each network's sample is the
    squared input gradient of its centre output unit (first output channel) summed over
    input channels, whose mean is the ``"expected_square"`` profile; it is cut to the RF.
    """
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if init == "ones" else torch.float32
    if init not in ("ones", "kernel", "random"):
        raise ERFValueError(f"init must be 'ones', 'kernel' or 'random', got {init!r}")
    mode: Any = init
    model = to_torch(
        network, weights=mode, dtype=dtype, generator=gen, channels=channels, copies=count
    ).to(device)
    model.eval()
    size = per_axis(network.min_input_size())
    x = torch.randn((1, count * channels, *size), generator=gen, dtype=dtype)
    fmt = torch.channels_last if len(size) == 2 and dtype == torch.float32 else None
    centre = per_axis(network.centre_output(size))
    first = slice(None, None, channels)  # the first output channel of every network
    g = centre_gradient(model, x.to(device), centre, channels=first, memory_format=fmt)
    return _measured(network, centre, g.reshape(count, channels, *size), statistic)


def _measured(network: Network, centre: tuple[int, ...], g: Any, statistic: str) -> Measured:
    """Mean and standard error over samples of gradients ``(samples, channels, *input)``.

    Each sample's map is cut to the RF of output unit ``centre`` and reduced over
    channels: the sum of the squared gradients (``"mean_square"``) or of the gradients.
    """
    rf = network.receptive_field
    window = tuple(
        slice(o + j * c, o + j * c + s)
        for o, j, c, s in zip(
            per_axis(rf.offset), per_axis(rf.jump), centre, per_axis(rf.size), strict=True
        )
    )
    cut = g[(slice(None), slice(None), *window)].double()
    stat = "mean_square" if statistic == "mean_square" else "mean"
    values = sample_maps(cut, stat, "sum_after")[0].cpu().numpy()
    count = int(values.shape[0])
    mean = values.mean(axis=0)
    stderr = values.std(axis=0, ddof=1) / math.sqrt(count) if count > 1 else np.zeros_like(mean)
    return Measured(mean, stderr, count)


def _normalised(a: np.ndarray) -> np.ndarray:
    total = float(a.sum())
    if not total > 0 or not math.isfinite(total):
        raise ERFValueError("the measured ERF has no positive mass (every gradient was zero)")
    return a / total


def spatial_std(p: np.ndarray) -> tuple[float, ...]:
    """One-σ radius per axis of a normalised nonnegative map."""
    out = []
    for axis in range(p.ndim):
        other = tuple(i for i in range(p.ndim) if i != axis)
        marg = p.sum(axis=other) if other else p
        x = np.arange(marg.shape[0])
        mu = float((marg * x).sum())
        out.append(math.sqrt(max(float((marg * (x - mu) ** 2).sum()), 0.0)))
    return tuple(out)


def _centre(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((s - 1) // 2 for s in shape)


def _row(label: str, network: Network, kind: str, m: Measured) -> dict[str, Any]:
    """One table row: the theory against the measurement (`erftheory.compare.compare`)."""
    theory = network.profile(kind).normalized()
    _normalised(m.mean)  # refuse a map without positive mass
    c = compare(theory, (m.mean, m.stderr), start=(0,) * theory.ndim)
    emp = c.empirical
    return {
        "label": label,
        "rf_size": per_axis(network.receptive_field.size)[0],
        "networks": m.count,
        "theory_std": round(float(network.std(kind)[0]), 4),
        "experiment_std": round(spatial_std(emp)[0], 4),
        "theory_erf_size": round(measures.threshold_size(theory, _centre(theory.shape)), 3),
        "experiment_erf_size": round(measures.threshold_size(emp, _centre(emp.shape)), 3),
        "total_variation": round(c.tv_distance, 4),
        "max_abs_z": round(c.max_abs_z, 2),
        "_theory": theory,
        "_experiment": emp,
        "_stderr": c.stderr,
    }


class _Sampling(NamedTuple):
    """How an experiment samples random networks: how many, how wide, where."""

    networks: int
    channels: int
    device: str


def _experiment(
    label: str, network: Network, sampling: _Sampling, seed: int, init: str = "random"
) -> dict[str, Any]:
    """`measure` a network and compare it with its theory: one table row.

    ``init="ones"``: one all-ones network, its signed gradient against
    ``kind="gradient"``; ``"random"``: ``sampling.networks`` random networks of
    ``sampling.channels`` channels, the mean squared gradient against
    ``kind="expected_square"``.
    """
    ones = init == "ones"
    m = measure(
        network,
        init=init,
        count=1 if ones else sampling.networks,
        seed=seed,
        device=sampling.device,
        statistic="mean" if ones else "mean_square",
        channels=1 if ones else sampling.channels,
    )
    return _row(label, network, "gradient" if ones else "expected_square", m)


# --------------------------------------------------------------------------- figures
DPI = 100
"""The resolution every figure is saved at."""

MAX_PIXELS = (1600, 1000)
"""The largest figure, width × height in pixels at `DPI`: readable at 100 % on a laptop."""

MIN_FONT = 9
"""The smallest font size (points) of any text in a figure."""

_LEVELS = (math.exp(-4.5), math.exp(-2.0), math.exp(-0.5))
"""Theory contours, as fractions of its centre value: 3σ, 2σ and 1σ of a Gaussian."""

_CONTOURS = "white lines: the exact theory's 1σ, 2σ, 3σ contours (e^(-k²/2) of its centre)"
_THEORY, _MEASURED = "#dd8452", "#4c72b0"


def _pyplot() -> Any:
    """matplotlib's pyplot (Agg), or `erftheory.MissingDependencyError`."""
    from ..plotting import require_matplotlib

    return require_matplotlib()


def _figure(plt: Any, ncols: int, nrows: int, size: tuple[float, float], **kw: Any) -> Any:
    """A figure with a grid of axes, text at least `MIN_FONT` points, constrained layout."""
    with plt.rc_context({"font.size": 10, "legend.fontsize": 9, "axes.titlesize": 10}):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=size, squeeze=False, layout="constrained", **kw
        )
    return fig, axes


def _save(plt: Any, fig: Any, path: Path) -> None:
    """Save at `DPI` and close."""
    try:
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def _window(r: dict[str, Any]) -> tuple[int, tuple[slice, ...]]:
    """Half-width and slices of the window shown for a row: ±(4 std + 1), within the RF."""
    c = _centre(r["_theory"].shape)
    h = min(c[0], math.ceil(4 * max(r["theory_std"], 1.0)) + 1)
    return h, (slice(c[0] - h, c[0] + h + 1), slice(c[1] - h, c[1] + h + 1))


def _map(ax: Any, r: dict[str, Any], vmax: float) -> Any:
    """The measured map (over the theory's centre value) with the theory's contours."""
    th, ex = r["_theory"], r["_experiment"]
    h, win = _window(r)
    peak = float(th[_centre(th.shape)])
    ext = (-h - 0.5, h + 0.5, h + 0.5, -h - 0.5)
    im = ax.imshow(ex[win] / peak, extent=ext, cmap="viridis", vmin=0, vmax=vmax)
    x = np.arange(-h, h + 1)
    ax.contour(x, x, th[win] / peak, levels=_LEVELS, colors="white", linewidths=1.1)
    return im


def _vmax(rows: list[dict[str, Any]]) -> float:
    """The shared top of the colour scale: the largest measured value over the centres."""
    top = 1.0
    for r in rows:
        th = r["_theory"]
        _, win = _window(r)
        top = max(top, float(r["_experiment"][win].max() / th[_centre(th.shape)]))
    return top


def _section(ax: Any, r: dict[str, Any], legend: bool) -> None:
    """The centre row: the theory against the measurement ±2 SE, over the theory's centre."""
    th, ex, se = r["_theory"], r["_experiment"], r["_stderr"]
    c = _centre(th.shape)
    h, win = _window(r)
    peak = float(th[c])
    x = np.arange(-h, h + 1)
    ax.plot(x, th[c[0], win[1]] / peak, color=_THEORY, lw=2, label="theory (exact)")
    ax.errorbar(
        x,
        ex[c[0], win[1]] / peak,
        yerr=2 * se[c[0], win[1]] / peak,
        fmt="o",
        ms=3,
        color=_MEASURED,
        label="measured ±2 SE",
    )
    if legend:
        ax.legend(loc="upper right")


def _std_title(r: dict[str, Any]) -> str:
    return f"std {r['theory_std']:.2f} theory, {r['experiment_std']:.2f} measured (px)"


def _grid_figures(
    rows: list[dict[str, Any]], names: list[str], depths: list[int]
) -> tuple[Any, Any]:
    """Fig. 1 as the paper's grid, and its cross-sections: one row per setting, one
    column per depth (``rows`` in that order, row-major).

    The first figure shows every measured map with the exact theory's contours over it,
    on one colour scale (values over the theory's centre value); the second, the
    centre row of each, theory against measurement with ±2 standard errors.
    """
    plt = _pyplot()
    n = len(depths)
    if len(rows) != len(names) * n:
        raise ERFValueError(f"{len(rows)} rows for {len(names)} settings × {n} depths")
    size = (min(3.3 * n + 1.4, 15.5), min(3.0 * len(names) + 0.7, 9.6))
    maps, axes = _figure(plt, n, len(names), size)
    vmax = _vmax(rows)
    im = None
    for i, name in enumerate(names):
        for j, d in enumerate(depths):
            ax, r = axes[i][j], rows[i * n + j]
            im = _map(ax, r, vmax)
            ax.set_title(f"{name}, {d} layers\n{_std_title(r)}", fontsize=9)
            if i == len(names) - 1:
                ax.set_xlabel("column offset (px)")
            if j == 0:
                ax.set_ylabel("row offset (px)")
    maps.colorbar(im, ax=axes, shrink=0.7, label="measured ERF / theory's centre value")
    maps.suptitle(
        f"Fig. 1: 3×3 networks of several depths\ncolour: measured; {_CONTOURS}", fontsize=10
    )
    sections, axes = _figure(plt, n, len(names), size, sharey=True)
    for i, name in enumerate(names):
        for j, d in enumerate(depths):
            ax, r = axes[i][j], rows[i * n + j]
            _section(ax, r, legend=i == 0 and j == 0)
            ax.set_title(f"{name}, {d} layers: TV {r['total_variation']:.3f}", fontsize=9)
            if i == len(names) - 1:
                ax.set_xlabel("column offset (px)")
            if j == 0:
                ax.set_ylabel("ERF / theory's centre")
    sections.suptitle(
        "Fig. 1, cross-sections: the centre row through the output unit\n"
        "theory (line) against measurement (±2 standard errors)",
        fontsize=10,
    )
    return maps, sections


def _panels_figure(rows: list[dict[str, Any]], title: str) -> Any:
    """One column per experiment: the measured map with the theory's contours (top), the
    centre row, theory against measurement ±2 SE (bottom)."""
    plt = _pyplot()
    n = len(rows)
    fig, axes = _figure(plt, n, 2, (min(4.1 * n + 1.2, 15.5), 7.6))
    vmax = _vmax(rows)
    im = None
    for j, r in enumerate(rows):
        im = _map(axes[0][j], r, vmax)
        axes[0][j].set_title(f"{r['label']}\n{_std_title(r)}", fontsize=9)
        axes[0][j].set_xlabel("column offset (px)")
        _section(axes[1][j], r, legend=j == 0)
        axes[1][j].set_title(f"centre row; TV distance {r['total_variation']:.3f}", fontsize=9)
        axes[1][j].set_xlabel("column offset (px)")
    axes[0][0].set_ylabel("row offset (px)")
    axes[1][0].set_ylabel("ERF / theory's centre")
    fig.colorbar(im, ax=axes[0], shrink=0.85, label="measured / theory's centre")
    fig.suptitle(f"{title}\ncolour: measured; {_CONTOURS}", fontsize=10)
    return fig


def _panels(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """`_panels_figure`, saved to ``path``."""
    _save(_pyplot(), _panels_figure(rows, title), path)


def _slope(x: list[int], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# --------------------------------------------------------------------------- experiments
def _fig1(cfg: Config, out: Path, seed: int, device: str) -> dict[str, Any]:
    settings: list[tuple[str, Callable[[int], Network], str]] = [
        ("uniform", lambda d: dense(d), "ones"),
        ("random", lambda d: dense(d, LINEAR_VARIANCE), "random"),
        ("random + ReLU", lambda d: dense(d, HE_VARIANCE, ReLU()), "random"),
    ]
    sampling = _Sampling(cfg.networks, cfg.channels, device)
    rows = [
        _experiment(f"{name}, {d} layers", build(d), sampling, seed + d, init)
        for name, build, init in settings
        for d in cfg.depths
    ]
    plt = _pyplot()
    maps, sections = _grid_figures(rows, [name for name, _, _ in settings], list(cfg.depths))
    _save(plt, maps, out / "fig1_depth.png")
    _save(plt, sections, out / "fig1_sections.png")
    depth = cfg.activation_depth
    act_rows = [
        _experiment(f"{name}, {depth} layers", dense(depth, HE_VARIANCE, act), sampling, seed + 101)
        for name, act in (("ReLU", ReLU()), ("tanh", Tanh()), ("sigmoid", Sigmoid()))
    ]
    _panels(
        act_rows,
        out / "fig1_activations.png",
        "Fig. 1: random networks with ReLU, tanh and sigmoid (theory: independence assumption)",
    )
    return {"depth": rows, "activations": act_rows}


def _fig2(cfg: Config, out: Path, seed: int, device: str) -> dict[str, Any]:
    depths = list(cfg.fig2_depths)
    th_size, ex_size, th_ratio, ex_ratio, rf = [], [], [], [], []
    sampling = _Sampling(cfg.fig2_networks, cfg.fig2_channels, device)
    for d in depths:
        r = _experiment(f"{d} layers", dense(d, LINEAR_VARIANCE), sampling, seed + 7 * d)
        th_size.append(r["theory_erf_size"])
        ex_size.append(r["experiment_erf_size"])
        rf.append(r["rf_size"])
        th_ratio.append(r["theory_erf_size"] / r["rf_size"])
        ex_ratio.append(r["experiment_erf_size"] / r["rf_size"])
    slopes = {
        "theory_size": round(_slope(depths, th_size), 3),
        "experiment_size": round(_slope(depths, ex_size), 3),
        "theory_ratio": round(_slope(depths, th_ratio), 3),
        "experiment_ratio": round(_slope(depths, ex_ratio), 3),
        "paper_size": PAPER_SLOPES["size"],
        "paper_ratio": PAPER_SLOPES["ratio"],
        "limit_size": 0.5,
        "limit_ratio": -0.5,
    }
    plt = _pyplot()
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig, grid = _figure(plt, 2, 1, (10.5, 4.4))
    axes = grid[0]
    try:
        for ax, th, ex, what in (
            (axes[0], th_size, ex_size, "size"),
            (axes[1], th_ratio, ex_ratio, "ratio"),
        ):
            ax.loglog(
                depths,
                th,
                "-",
                color="#dd8452",
                lw=2,
                label=f"theory, slope {slopes['theory_' + what]}",
            )
            ax.loglog(
                depths,
                ex,
                "o",
                color="#4c72b0",
                label=f"experiment, slope {slopes['experiment_' + what]}",
            )
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_locator(
                LogLocator(base=10, subs=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0))
            )
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("number of layers n (log scale)")
            ax.set_ylabel(
                "ERF size (px, log scale)" if what == "size" else "ERF size / RF size (log scale)"
            )
            ax.set_title(
                f"ERF {what}: paper's slope {PAPER_SLOPES[what]}, limit {slopes['limit_' + what]}",
                fontsize=10,
            )
            ax.legend(fontsize=9)
        fig.suptitle(
            f"Fig. 2: random linear 3×3 networks ({cfg.fig2_channels} channels), "
            f"{cfg.fig2_networks} networks per depth",
            fontsize=11,
        )
    except BaseException:
        plt.close(fig)
        raise
    _save(plt, fig, out / "fig2_size_ratio.png")
    return {
        "depths": depths,
        "rf_size": rf,
        "theory_erf_size": th_size,
        "experiment_erf_size": ex_size,
        "theory_ratio": [round(x, 4) for x in th_ratio],
        "experiment_ratio": [round(x, 4) for x in ex_ratio],
        "slopes": slopes,
    }


def _subsampling(cfg: Config, out: Path, seed: int, device: str) -> list[dict[str, Any]]:
    labels = {"dense": "dense", "stride": "3 stride-2", "dilation": "dilations 2, 4, 8"}
    sampling = _Sampling(cfg.networks, cfg.channels, device)
    rows = [
        _experiment(
            f"{cfg.dense_layers} layers, {labels[how]}",
            replaced(cfg.dense_layers, how),
            sampling,
            seed + 13,
        )
        for how in REPLACEMENTS
    ]
    _panels(
        rows,
        out / "fig_subsampling_dilation.png",
        "Section 3.1: subsampling and dilation enlarge the ERF (random linear networks)",
    )
    return rows


# --------------------------------------------------------------------------- Section 3.2
_IMAGE = 32
"""Side of the Section 3.2 images (CIFAR-10's 32×32; the digits are upscaled to it)."""


class _Copies(nn.Module):
    """``(batch, copies, *spatial)`` → ``(batch, copies * channels, *spatial)``: copy $g$'s
    image on its ``channels`` input channels (so the image gradient of copy $g$ is the
    gradient of input channel $g$, summed over its channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.channels, dim=1)


class _Head(nn.Module):
    """Batch norm, ReLU, global average pooling and one linear classifier per copy."""

    def __init__(self, copies: int, channels: int, classes: int, gen: torch.Generator) -> None:
        super().__init__()
        self.copies, self.classes = copies, classes
        self.norm = nn.BatchNorm2d(copies * channels)
        # skip_init: the default initialisation would draw from torch's global generator
        self.linear = nn.utils.skip_init(
            nn.Conv2d, copies * channels, copies * classes, 1, groups=copies
        )
        bound = 1 / math.sqrt(channels)  # torch's default init of nn.Linear, from ``gen``
        with torch.no_grad():
            nn.init.uniform_(self.linear.weight, -bound, bound, generator=gen)
            nn.init.uniform_(self.linear.bias, -bound, bound, generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm(x)).mean((2, 3), keepdim=True)
        out: torch.Tensor = self.linear(y).reshape(x.shape[0], self.copies, self.classes)
        return out


def _resnet_model(
    cfg: Config, gen: torch.Generator
) -> tuple[nn.Module, nn.Module, list[nn.BatchNorm2d]]:
    """`erftheory.paper.resnet_network` with He weights, ``cfg.train_seeds`` copies side by
    side (channel groups), its `BatchNorm` layers real ``nn.BatchNorm2d``, and a head.

    Returns the model (``(batch, copies, 32, 32)`` → ``(batch, copies, 10)``), its
    features (to the last residual block; the ERF is measured there) and the body's batch
    norms in network order.
    """
    net = variance_network(resnet_network(cfg.train_blocks), "he")
    copies, width = cfg.train_seeds, cfg.train_channels
    body = to_torch(
        net, weights="random", channels=width, copies=copies, generator=gen, dtype=torch.float32
    )
    norms: list[nn.BatchNorm2d] = []

    def swap(module: nn.Module) -> None:
        # to_torch makes a BatchNorm the fixed factor of evaluation mode (`Scale`); training
        # needs the real layer. Fresh, in evaluation mode it is that factor, 1/sqrt(1 + eps).
        for name, child in module.named_children():
            if isinstance(child, Scale):
                bn = nn.BatchNorm2d(copies * width)
                norms.append(bn)
                setattr(module, name, bn)
            else:
                swap(child)

    swap(body)
    features = nn.Sequential(_Copies(width), body)
    model = nn.Sequential(features, _Head(copies, width, 10, gen))
    # channels-last weights: the fast layout of these narrow convolutions on the CPU
    # (Module.to takes memory_format; its type stubs do not say so)
    to: Any = model.to
    to(memory_format=torch.channels_last)
    return model, features, norms


def _digits(seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits upscaled (bilinear) to ``size``², standardised; a seeded split.

    Returns the images ``(1797, 1, size, size)``, the labels, the training indices
    (1500) and the test indices (297).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.tensor(digits.target)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = perm[:1500], perm[1500:]
    mean, std = images[train].mean(), images[train].std()
    return (images - mean) / std, labels, train, test


def _calibrate(model: nn.Module, norms: list[nn.BatchNorm2d], x: torch.Tensor) -> None:
    """Set every batch norm's running statistics to the averages over ``x`` (no training)."""
    everything = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in everything:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), _BATCH):
            model(x[i : i + _BATCH])
    for m in everything:
        m.momentum = 0.1
    model.eval()


_BATCH = 64
"""Images per forward pass when measuring or calibrating (not a training setting)."""


def _image_erfs(
    features: nn.Module, x: torch.Tensor, channels: int, centre: tuple[int, ...], device: str
) -> tuple[np.ndarray, np.ndarray]:
    """Every copy's ERF over the images ``x`` ``(n, copies, *image)``, in evaluation mode.

    The sample of an image is its squared image gradient of the centre unit of the copy's
    first output channel. Returns the mean and its standard error over the images, both
    ``(copies, *image)``.
    """
    features.eval()
    total: Any = 0.0
    square: Any = 0.0
    for i in range(0, len(x), _BATCH):
        g = centre_gradient(
            features,
            x[i : i + _BATCH].to(device),
            centre,
            channels=slice(None, None, channels),
            memory_format=torch.channels_last,
        )
        q = g.double().square().cpu()
        total = total + q.sum(0)
        square = square + q.square().sum(0)
    n = len(x)
    mean = (total / n).numpy()
    var = np.maximum((square / n).numpy() - mean**2, 0.0) * n / max(n - 1, 1)
    return mean, np.sqrt(var / n)


def _radius(p: np.ndarray) -> float:
    """The one-σ radius of a normalised 2-D map: the root mean of its two axes' variances."""
    a, b = spatial_std(p)
    return math.sqrt((a * a + b * b) / 2)


def _sizes(p: np.ndarray, centre: tuple[int, ...]) -> dict[str, float]:
    """The ERF sizes of one normalised map (see `_SIZES`)."""
    return {
        "std": _radius(p),
        "mass_size_50": float(measures.mass_size(p, centre, 0.5)),
        "threshold_size": measures.threshold_size(p, centre),
    }


_SIZES = {
    "std": "one-σ radius (px): √ of the mean of the two axes' variances of the normalised map",
    "mass_size_50": "side (px) of the smallest centred square holding half the mass",
    "threshold_size": "the paper's Fig. 2 size: √ of the pixels above 1 − 0.9545 of the centre",
}


def _mean_se(values: list[float], digits: int = 4) -> dict[str, Any]:
    """Mean, standard error over seeds and the values."""
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0
    return {
        "mean": round(float(a.mean()), digits),
        "stderr": round(se, digits),
        "per_seed": [round(float(v), digits) for v in a],
    }


def _change(before: list[float], after: list[float]) -> dict[str, Any]:
    """The paired change after − before over seeds: mean, standard error, z and verdict.

    The verdict compares z with the two-sided 95 % quantile of Student's t with
    seeds − 1 degrees of freedom.
    """
    from scipy import stats

    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    n = len(d)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    z = mean / se if se > 0 else None
    critical = float(stats.t.ppf(0.975, n - 1)) if n > 1 else None
    if z is None or critical is None:
        verdict = "undetermined (one seed or no spread)"
    elif z > critical:
        verdict = "grows"
    elif z < -critical:
        verdict = "shrinks"
    else:
        verdict = "no significant change"
    return {
        "mean": round(mean, 4),
        "stderr": round(se, 4),
        "z": None if z is None else round(z, 2),
        "critical_z": None if critical is None else round(critical, 3),
        "verdict": verdict,
    }


def _cut(network: Network, shape: tuple[int, ...], centre: tuple[int, ...]) -> np.ndarray:
    """The theory (``kind="expected_square"``) on the image, normalised: its RF placed
    around the output unit ``centre`` ('same' padding puts that pixel under the RF's
    centre), zero outside the RF, cut to ``shape`` where the RF is larger. Paths through
    the padding are the theory's, not the network's: a negligible share for an ERF far
    inside the image."""
    p = network.profile("expected_square").normalized()
    o = _centre(p.shape)
    out = np.zeros(shape)
    src, dst = [], []
    for oc, c, n, s in zip(o, centre, p.shape, shape, strict=True):
        lo, hi = max(0, c - oc), min(s, c - oc + n)  # image pixels the RF covers
        dst.append(slice(lo, hi))
        src.append(slice(lo - c + oc, hi - c + oc))
    out[tuple(dst)] = np.asarray(p, dtype=float)[tuple(src)]
    return out / out.sum()


def _scale(norms: list[nn.BatchNorm2d]) -> list[Fraction]:
    """Each batch norm's evaluation-mode factor, as the theory takes it: the root mean
    square over its channels (all copies) of $\\gamma/\\sqrt{\\sigma^2 + \\epsilon}$, to
    four decimals."""
    out = []
    for bn in norms:
        assert bn.running_var is not None
        s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        out.append(Fraction(round(math.sqrt(float(s.square().mean())), 4)).limit_denominator(10**4))
    return out


def _theory_row(
    label: str,
    theory: np.ndarray,
    mean: np.ndarray,
    stderr: np.ndarray,
    count: int,
    per_seed: list[float],
) -> dict[str, Any]:
    """A measured map (normalised, averaged over seeds) against the theory on the image."""
    c = compare(theory, (mean, stderr))
    centre = _centre(theory.shape)
    se = _mean_se(per_seed)["stderr"]
    th_std = _radius(theory)
    return {
        "label": label,
        "seeds": count,
        "theory_std": round(th_std, 4),
        "experiment_std": round(_radius(c.empirical), 4),
        "std_z": round((float(np.mean(per_seed)) - th_std) / se, 2) if se > 0 else None,
        "theory_erf_size": round(measures.threshold_size(theory, centre), 3),
        "experiment_erf_size": round(measures.threshold_size(c.empirical, centre), 3),
        "total_variation": round(c.tv_distance, 4),
        "_theory": theory,
        "_experiment": c.empirical,
        "_stderr": c.stderr,
    }


def _group_average(name: str, module: nn.Module, w: torch.Tensor) -> torch.Tensor:
    """Per-tap variances averaged over the channels of each copy (channel group): what
    a one-channel theory sees, as `erftheory.torch.trace.from_torch` with
    ``weights="variance"`` (sum over input channels, mean over output channels)."""
    groups = int(getattr(module, "groups", 1))
    sq = w.detach().double() ** 2
    c_out, c_in = sq.shape[0], sq.shape[1]
    per = sq.reshape(groups, c_out // groups, c_in, *sq.shape[2:])
    v = per.sum(2, keepdim=True).mean(1, keepdim=True) / c_in
    return v.expand_as(per).reshape(sq.shape)


def _split_half_tv(
    features: nn.Module, probe: torch.Tensor, width: int, centre: tuple[int, ...], device: str
) -> dict[str, Any]:
    """The noise floor of a TV distance to a measured map: the TV between the maps of the
    two halves of the probe images, mean ± SE over copies (the noise of half the images,
    so about √2 times that of the whole)."""
    from ..compare import total_variation

    half = len(probe) // 2
    a, _ = _image_erfs(features, probe[:half], width, centre, device)
    b, _ = _image_erfs(features, probe[half:], width, centre, device)
    return _mean_se([total_variation(x, y) for x, y in zip(a, b, strict=True)])


def _weights_prediction(
    body: nn.Module,
    probe: torch.Tensor,
    width: int,
    measured: np.ndarray,
    centre: tuple[int, ...],
) -> list[dict[str, Any]]:
    """What the weights alone predict (`erftheory.torch.channels.predicted_erf`) against
    the measured ERF of every copy: TV distance and variance ratio, mean ± SE over copies.

    Three predictions: the squared weights channel by channel with the paper's factors
    (1/2 per ReLU), the same with the factors calibrated on the probe images, and the
    convolution variances averaged over channels (the one-channel theory of
    ``from_torch(weights="variance")``). ``probe`` is ``(n, copies, *image)``; the copies
    are channel groups of ``body`` (``width`` channels each).
    """
    from ..compare import total_variation
    from .channels import predicted_erf

    copies = probe.shape[1]
    shape = (copies * width, *probe.shape[2:])
    inputs = probe.repeat_interleave(width, dim=1)
    kinds: dict[str, dict[str, Any]] = {
        "squared weights, paper factors": {"variances": "model"},
        "squared weights, calibrated factors": {
            "variances": "model",
            "activation": "calibrated",
            "inputs": inputs,
        },
        "channel-averaged variances, paper factors": {"variances": _group_average},
    }
    rows = []
    for label, options in kinds.items():
        tvs, ratios = [], []
        for g in range(copies):
            pred = predicted_erf(
                body, shape, output_index=centre, output_channel=g * width, **options
            )
            p = pred.per_channel[g * width : (g + 1) * width].sum(0)
            p = p / p.sum()
            m = measured[g] / measured[g].sum()
            tvs.append(total_variation(m, p))
            ratios.append((_radius(m) / _radius(p)) ** 2)
        rows.append({"prediction": label, "tv": _mean_se(tvs), "variance_ratio": _mean_se(ratios)})
    return rows


def _training(
    cfg: Config, out: Path, seed: int, device: str, *, plot: bool = True
) -> dict[str, Any]:
    """Section 3.2: the ERF of `erftheory.paper.resnet_network` before and after training.

    ``cfg.train_seeds`` networks (copies side by side, each its own He weights) are
    trained together on scikit-learn's digits upscaled to 32×32 (each copy's loss and
    Adam's per-weight steps are its own; the copies share the batches). Each copy's ERF
    is measured on ``cfg.erf_images`` test images three times: at initialisation with
    its batch norms as initialised (``"init"``; then it is the network of the theory,
    He variances and factor-1 batch norms), at initialisation with the batch norms'
    statistics set from ``cfg.calibration_images`` training images (``"before"``), and
    after training with the statistics set again from the same images (``"after"``; the
    same kind of network as ``"before"``, in evaluation mode, and more accurate than the
    running averages of training, which lag behind the weights).
    """
    t0 = time.perf_counter()
    images, labels, train, test = _digits(seed, _IMAGE)
    train = train[: cfg.train_images]
    copies, width = cfg.train_seeds, cfg.train_channels
    gen = torch.Generator().manual_seed(seed)
    model, features, norms = _resnet_model(cfg, gen)
    model.to(device)
    net = resnet_network(cfg.train_blocks)
    shape = (_IMAGE, _IMAGE)
    centre = per_axis(net.centre_output(shape))

    def batch(idx: torch.Tensor) -> torch.Tensor:
        x = images[idx].expand(-1, copies, -1, -1)
        return x.contiguous(memory_format=torch.channels_last).to(device)

    probe = batch(test[: cfg.erf_images])
    maps = {"init": _image_erfs(features, probe, width, centre, device)}
    calibration = batch(train[: cfg.calibration_images])
    _calibrate(model, norms, calibration)
    maps["before"] = _image_erfs(features, probe, width, centre, device)
    scales = _scale(norms)
    body = list(features.children())[1]  # the network without the input copies
    predicted = {"before": _weights_prediction(body, probe, width, maps["before"][0], centre)}
    noise = {"before": _split_half_tv(features, probe, width, centre, device)}

    opt = torch.optim.Adam(model.parameters(), lr=cfg.train_lr)
    for _ in range(cfg.train_epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), cfg.train_batch):
            idx = order[i : i + cfg.train_batch]
            opt.zero_grad()
            logits = model(batch(idx))
            target = labels[idx].repeat_interleave(copies).to(device)
            # the sum over copies of each copy's mean loss: every copy trains on its own loss
            loss = F.cross_entropy(logits.flatten(0, 1), target, reduction="sum") / len(idx)
            loss.backward()
            opt.step()
    # the statistics of evaluation mode as before training, not the lagging running averages
    _calibrate(model, norms, calibration)
    with torch.no_grad():
        hits = torch.cat(
            [
                model(batch(test[i : i + _BATCH])).argmax(2).cpu()
                == labels[test[i : i + _BATCH], None]
                for i in range(0, len(test), _BATCH)
            ]
        )
    accuracy = hits.double().mean(0).tolist()
    maps["after"] = _image_erfs(features, probe, width, centre, device)
    predicted["after"] = _weights_prediction(body, probe, width, maps["after"][0], centre)
    noise["after"] = _split_half_tv(features, probe, width, centre, device)

    # per copy: the normalised map and its sizes; over copies: mean ± SE
    normed = {k: [_normalised(m) for m in mean] for k, (mean, _) in maps.items()}
    sizes = {k: [_sizes(p, centre) for p in ps] for k, ps in normed.items()}
    erf = {k: {name: _mean_se([s[name] for s in sizes[k]]) for name in _SIZES} for k in maps}
    change = {
        name: _change([s[name] for s in sizes["before"]], [s[name] for s in sizes["after"]])
        for name in _SIZES
    }
    change_init = {
        name: _change([s[name] for s in sizes["init"]], [s[name] for s in sizes["after"]])
        for name in _SIZES
    }
    pooled = {k: np.mean(ps, axis=0) for k, ps in normed.items()}
    spread = {
        k: np.std(ps, axis=0, ddof=1) / math.sqrt(copies) if copies > 1 else np.zeros(shape)
        for k, ps in normed.items()
    }
    he = variance_network(net, "he")
    calibrated = variance_network(resnet_network(cfg.train_blocks, batchnorm=scales), "he")
    rows = [
        _theory_row(
            "init: batch norms as initialised; theory He, BN factor 1",
            _cut(he, shape, centre),
            pooled["init"],
            spread["init"],
            copies,
            erf["init"]["std"]["per_seed"],
        ),
        _theory_row(
            "before training: BN statistics of the training images; theory He, measured BN factors",
            _cut(calibrated, shape, centre),
            pooled["before"],
            spread["before"],
            copies,
            erf["before"]["std"]["per_seed"],
        ),
    ]
    std = change["std"]
    seconds = round(time.perf_counter() - t0, 2)
    result: dict[str, Any] = {
        "network": (
            f"pre-activation ResNet (erftheory.paper.resnet_network): a 3×3 stem convolution, "
            f"{cfg.train_blocks} residual blocks x + Conv(ReLU(BN(Conv(ReLU(BN(x)))))), "
            f"stride 1 and 'same' padding throughout (no pooling, no downsampling); head: "
            f"BN, ReLU, global average pooling, linear"
        ),
        "blocks": cfg.train_blocks,
        "conv_layers": 2 * cfg.train_blocks + 1,
        "channels": width,
        "input_size": list(shape),
        "rf_size": per_axis(net.receptive_field.size)[0],
        "paper_rf_size": PAPER_RESNET_RF,
        "paper_blocks": RESNET_BLOCKS,
        "seeds": copies,
        "epochs": cfg.train_epochs,
        "batch": cfg.train_batch,
        "learning_rate": cfg.train_lr,
        "train_images": len(train),
        "test_images": len(test),
        "erf_images": len(probe),
        "calibration_images": len(calibration),
        "test_accuracy": _mean_se(accuracy),
        "sizes": _SIZES,
        "erf": erf,
        "change": change,
        "change_from_init": change_init,
        "batchnorm_factors_before": [str(s) for s in scales],
        "verdict": (
            f"ERF std {erf['before']['std']['mean']:.2f} ± {erf['before']['std']['stderr']:.2f} px "
            f"before, {erf['after']['std']['mean']:.2f} ± {erf['after']['std']['stderr']:.2f} px "
            f"after training (change {std['mean']:+.2f} ± {std['stderr']:.2f}, z = {std['z']}, "
            f"{copies} seeds): {std['verdict']}"
        ),
        "grows": std["verdict"] == "grows",
        "weights_prediction": predicted,
        "weights_prediction_noise_tv": noise,
        "rows": rows,
        "gpu_seconds": seconds if device.startswith("cuda") else "not measured",
        "_maps": {k: pooled[k] for k in pooled},
        "_stderr": spread,
        "_marginal_stderr": {
            k: np.std([p.sum(0) for p in ps], axis=0, ddof=1) / math.sqrt(copies)
            if copies > 1
            else np.zeros(shape[1])
            for k, ps in normed.items()
        },
        "_per_seed_std": {k: erf[k]["std"]["per_seed"] for k in erf},
    }
    if plot:
        _training_figure(result, rows, out / "fig3_training.png", centre)
    return result


def _training_figure(
    result: dict[str, Any], rows: list[dict[str, Any]], path: Path, centre: tuple[int, ...]
) -> None:
    """Section 3.2's figure: the ERF on the 32×32 image before and after training.

    Panels: the map before training (mean over seeds, over its maximum) with the theory's
    contours; after training with the before map's contours; their centre rows with the
    theory; each seed's ERF std before and after.
    """
    _save(_pyplot(), _training_plot(result, rows, centre), path)


def _training_plot(
    result: dict[str, Any], rows: list[dict[str, Any]], centre: tuple[int, ...]
) -> Any:
    plt = _pyplot()
    fig, grid = _figure(plt, 4, 1, (15.5, 4.6))
    axes = grid[0]
    before, after = result["_maps"]["before"], result["_maps"]["after"]
    theory = rows[1]["_theory"]
    h, w = before.shape
    ext = (-centre[1] - 0.5, w - centre[1] - 0.5, h - centre[0] - 0.5, -centre[0] - 0.5)
    ys, xs = np.arange(h) - centre[0], np.arange(w) - centre[1]
    im = None
    for ax, m, lines, name, what in (
        (axes[0], before, theory, "before training", "theory"),
        (axes[1], after, before, "after training", "before training"),
    ):
        im = ax.imshow(m / m.max(), extent=ext, cmap="viridis", vmin=0, vmax=1)
        ax.contour(xs, ys, lines / lines.max(), levels=_LEVELS, colors="white", linewidths=1.1)
        e = result["erf"]["before" if m is before else "after"]["std"]
        ax.set_title(
            f"{name}: std {e['mean']:.2f} ± {e['stderr']:.2f} px\nwhite: {what}, 1σ–3σ contours",
            fontsize=9,
        )
        ax.set_xlabel("column offset (px)")
    axes[0].set_ylabel("row offset (px)")
    fig.colorbar(im, ax=axes[:2], shrink=0.85, label="ERF / its maximum")
    ax = axes[2]
    ax.plot(xs, theory.sum(0), color=_THEORY, lw=2, label="theory (before)")
    for key, colour, name in (("before", _MEASURED, "before"), ("after", "#55a868", "after")):
        m, se = result["_maps"][key], result["_marginal_stderr"][key]
        ax.errorbar(
            xs, m.sum(0), yerr=2 * se, fmt="o-", ms=3, lw=1, color=colour, label=f"{name} ±2 SE"
        )
    ax.set_title("mass per column (the map summed over rows)", fontsize=9)
    ax.set_xlabel("column offset (px)")
    ax.set_ylabel("share of the ERF")
    ax.legend(loc="upper right")
    ax = axes[3]
    per = result["_per_seed_std"]
    for b, a in zip(per["before"], per["after"], strict=True):
        ax.plot([0, 1], [b, a], "o-", color="#999999", lw=1)
    for x, key in ((0, "before"), (1, "after")):
        e = result["erf"][key]["std"]
        ax.errorbar(
            [x], [e["mean"]], yerr=[2 * e["stderr"]], fmt="s", ms=7, color="black", capsize=4
        )
    ax.set_xticks([0, 1], ["before", "after"])
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel("ERF std (px)")
    c = result["change"]["std"]
    ax.set_title(
        f"each seed; mean ±2 SE\nchange {c['mean']:+.2f} ± {c['stderr']:.2f} px, z = {c['z']}",
        fontsize=9,
    )
    acc = result["test_accuracy"]
    fig.suptitle(
        f"Section 3.2: {result['blocks']}-block ResNet (RF {result['rf_size']}, the paper's "
        f"{result['paper_rf_size']}) on digits at 32×32, {result['seeds']} seeds, "
        f"{result['epochs']} epoch(s), test accuracy {acc['mean']:.1%} ± {acc['stderr']:.1%}",
        fontsize=11,
    )
    return fig


def _init(cfg: Config, out: Path, seed: int, device: str) -> list[dict[str, Any]]:
    sampling = _Sampling(cfg.networks, cfg.channels, device)
    relu = paper_network(cfg.init_depth, activation="relu")
    rows = [
        _experiment(
            f"{label} init, {cfg.init_depth} layers",
            variance_network(relu, init),
            sampling,
            seed + 29,
        )
        for label, init in (("He", "he"), ("centre-low", "centre_low"))
    ]
    _panels(
        rows, out / "fig_init.png", "Section 4: centre-low initialisation vs He, at initialisation"
    )
    return rows


# --------------------------------------------------------------------------- driver
def _public(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _public(v) for k, v in x.items() if not k.startswith("_")}
    if isinstance(x, list):
        return [_public(v) for v in x]
    return x


def reproduce(
    out: str | Path, *, quick: bool = False, device: str = "cpu", seed: int = 0
) -> dict[str, Any]:
    """Run every experiment and write the figures, ``results.json`` and ``results.md``.

    Args:
        out: the output directory (created if missing, with its parents).
        quick: every figure at reduced size (`QUICK`).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: the seed of every random draw, an int in ``0 .. 2**63 - 1``.

    Returns:
        The results (as written to ``results.json``).

    Raises:
        ERFValueError: ``out`` exists and is not a directory, or cannot be created or
            written; an unknown device, or CUDA asked for but unavailable; a seed out
            of range.
        ERFTypeError: arguments of the wrong type.

    Reproducibility: every random draw (weights, inputs, the digits split and the
    training order) comes from CPU generators seeded from ``seed``; torch's global
    generator is neither used nor changed. On the CPU two runs with the same seed give
    the same numbers (everything in ``results.json`` but the ``seconds`` and
    ``machine`` entries). On a GPU the random numbers are the same (drawn on the CPU),
    but CUDA kernels (cuDNN convolutions, atomic adds in backward passes) may round
    differently from run to run, so trained and measured values agree only up to
    rounding unless ``torch.use_deterministic_algorithms(True)`` is set.

    On the CPU the experiments run on `CPU_THREADS` torch thread (restored afterwards),
    so the numbers do not depend on the machine's core count either.

    Time: about 100 s of CPU time (Section 3.2, the training, about 80 s of it),
    ``quick=True`` about 9 s; on a busy machine the wall time is longer.
    ``results["training"]["gpu_seconds"]`` is the Section 3.2 time on a CUDA device and
    ``"not measured"`` on the CPU.
    """
    path = _check_out(out)
    if not isinstance(quick, bool):
        raise ERFTypeError(f"quick must be True or False, got {quick!r}")
    if not isinstance(device, str):
        raise ERFTypeError(f"device must be a string ('cpu', 'cuda' or 'cuda:N'), got {device!r}")
    if device != "cpu" and device != "cuda" and not _is_cuda_index(device):
        raise ERFValueError(f"device {device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ERFTypeError(f"seed must be an int in 0..2**63-1, got {seed!r}")
    if not 0 <= int(seed) < 2**63:
        raise ERFValueError(f"seed must be in 0..2**63-1, got {seed!r}")
    seed = int(seed)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ERFValueError(f"device {device!r} was requested but CUDA is not available")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ERFValueError(
            f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    cfg = QUICK if quick else Config()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".erftheory-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ERFValueError(
            f"out {str(out)!r} cannot be created or written ({type(e).__name__}: {e.strerror or e})"
        ) from e
    start = time.perf_counter()
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "quick": quick,
        "device": device,
        "seed": seed,
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    timings = {}
    threads = torch.get_num_threads()
    if device == "cpu":  # small tensors: see CPU_THREADS
        torch.set_num_threads(CPU_THREADS)
    results["threads"] = torch.get_num_threads()
    try:
        for name, fn in (
            ("fig1", _fig1),
            ("fig2", _fig2),
            ("subsampling_dilation", _subsampling),
            ("training", _training),
            ("init", _init),
        ):
            t0 = time.perf_counter()
            results[name] = fn(cfg, path, seed, device)
            timings[name] = round(time.perf_counter() - t0, 2)
    finally:
        torch.set_num_threads(threads)
    results["seconds"] = {**timings, "total": round(time.perf_counter() - start, 2)}
    public = _public(results)
    (path / "results.json").write_text(json.dumps(public, indent=2) + "\n")
    (path / "results.md").write_text(_markdown(public))
    return public


def _check_out(out: Any) -> Path:
    if isinstance(out, bytes) or not isinstance(out, (str, os.PathLike)):
        raise ERFTypeError(
            f"out must be a directory path (a str or a pathlib.Path), got {type(out).__name__}"
        )
    path = Path(out)
    if str(out) == "":
        raise ERFValueError("out must name a directory, got ''")
    if path.exists() and not path.is_dir():
        raise ERFValueError(f"out {str(out)!r} exists and is not a directory")
    return path


def _is_cuda_index(device: str) -> bool:
    return device.startswith("cuda:") and device[5:].isdigit()


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("label", "network"),
        ("rf_size", "RF"),
        ("theory_std", "std theory"),
        ("experiment_std", "std exp."),
        ("theory_erf_size", "ERF size theory"),
        ("experiment_erf_size", "ERF size exp."),
        ("total_variation", "TV distance"),
        ("networks", "samples"),
    ]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c[0]]) for c in cols) + " |")
    return "\n".join(lines)


def _markdown(r: dict[str, Any]) -> str:
    s = r["fig2"]["slopes"]
    parts = [
        "# erftheory reproduce: results",
        "",
        f"Device {r['device']}, torch {r['torch']}, seed {r['seed']}, quick={r['quick']}, "
        f"{r['seconds']['total']} s.",
        "",
        "## Fig. 1: depth, random weights and ReLU (`fig1_depth.png`)",
        "",
        _table(r["fig1"]["depth"]),
        "",
        "## Fig. 1: activations (`fig1_activations.png`)",
        "",
        "The theory is the independence assumption of Section 2.4: the activation only",
        "rescales the expected squared gradient, so its shape is that of the linear network.",
        "",
        _table(r["fig1"]["activations"]),
        "",
        "## Fig. 2: ERF size and ERF/RF ratio against depth (`fig2_size_ratio.png`)",
        "",
        "| slope (log–log) | theory (exact) | experiment | paper | n → ∞ |",
        "|---|---|---|---|---|",
        f"| ERF size | {s['theory_size']} | {s['experiment_size']} | {s['paper_size']} | 0.5 |",
        f"| ERF / RF | {s['theory_ratio']} | {s['experiment_ratio']} | {s['paper_ratio']} | −0.5 |",
        "",
        "## Subsampling and dilation (`fig_subsampling_dilation.png`)",
        "",
        _table(r["subsampling_dilation"]),
        "",
        "## Section 3.2: the ERF before and after training (`fig3_training.png`)",
        "",
        *_training_markdown(r["training"]),
        "",
        "## Section 4 initialisation (`fig_init.png`)",
        "",
        _table(r["init"]),
        "",
    ]
    return "\n".join(parts)


def _training_markdown(t: dict[str, Any]) -> list[str]:
    """The Section 3.2 block of ``results.md``."""
    acc = t["test_accuracy"]
    lines = [
        f"Network: {t['network']}. {t['conv_layers']} convolutions of 3×3: RF "
        f"{t['rf_size']}×{t['rf_size']} (the paper's {t['paper_blocks']}-block ResNet: "
        f"{t['paper_rf_size']}×{t['paper_rf_size']}; a stack of odd stride-1 kernels has "
        f"an odd RF, so 74 is not reachable), on scikit-learn's digits upscaled to "
        f"{t['input_size'][0]}×{t['input_size'][1]}.",
        "",
        f"{t['seeds']} seeds, {t['channels']} channels, {t['epochs']} epoch(s) of "
        f"{t['train_images']} images (batch {t['batch']}, Adam {t['learning_rate']}); test "
        f"accuracy {acc['mean']:.1%} ± {acc['stderr']:.1%}. ERF measured on "
        f"{t['erf_images']} test images per seed: the squared image gradient of the centre "
        f"unit of the last block, in evaluation mode; before and after training the batch "
        f"norms' statistics are those of {t['calibration_images']} training images, at init "
        f"they are as initialised (factor 1, the theory's network). ± is the standard error "
        f"over seeds, z the paired change over its standard error, against Student's t with "
        f"seeds − 1 degrees of freedom at 95 %.",
        "",
        f"**{t['verdict']}.**",
        "",
        "| ERF size | init (BN as initialised) | before training | after training "
        "| change after − before (z) | change after − init (z) |",
        "|---|---|---|---|---|---|",
    ]
    for name in t["sizes"]:
        cells = [
            f"{t['erf'][k][name]['mean']} ± {t['erf'][k][name]['stderr']}"
            for k in ("init", "before", "after")
        ]
        for change in (t["change"][name], t["change_from_init"][name]):
            cells.append(
                f"{change['mean']:+} ± {change['stderr']} ({change['z']}, {change['verdict']})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        *(f"- {name}: {what}" for name, what in t["sizes"].items()),
        "",
        "The theory at initialisation (exact `expected_square` profile of the network with He "
        "variances, cut to the image):",
        "",
        "| network | std theory | std exp. (z) | ERF size theory | ERF size exp. | TV distance |",
        "|---|---|---|---|---|---|",
    ]
    for row in t["rows"]:
        lines.append(
            f"| {row['label']} | {row['theory_std']} | {row['experiment_std']} ({row['std_z']}) "
            f"| {row['theory_erf_size']} | {row['experiment_erf_size']} "
            f"| {row['total_variation']} |"
        )
    lines += [
        "",
        "What the weights alone predict (`erftheory.torch.predicted_erf`: Eq. 8 channel by "
        "channel with the squared weights as per-tap variances, no data but the calibrated "
        "factors' forward pass), against the measured ERF of each seed; mean ± SE over seeds:",
        "",
        "| stage | prediction | TV distance | variance ratio (measured / predicted) |",
        "|---|---|---|---|",
    ]
    for stage, rows in t["weights_prediction"].items():
        floor = t["weights_prediction_noise_tv"][stage]
        lines.append(
            f"| {stage} | noise floor: two halves of the images | "
            f"{floor['mean']} ± {floor['stderr']} | |"
        )
        for row in rows:
            tv, vr = row["tv"], row["variance_ratio"]
            lines.append(
                f"| {stage} | {row['prediction']} | {tv['mean']} ± {tv['stderr']} "
                f"| {vr['mean']} ± {vr['stderr']} |"
            )
    lines += ["", f"GPU time: {t['gpu_seconds']}."]
    return lines
