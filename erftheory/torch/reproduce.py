r"""``erftheory reproduce``: the paper's experiments, theory next to experiment.

Regenerates the experiments of Section 3 (and the initialisation of Section 4) as PNG
figures plus ``results.json`` and ``results.md``. Every figure shows the exact theory
(`erftheory.network.Network.profile`) beside the measurement (the gradient of the centre
output unit back-propagated to the input, Section 3, averaged over independently
initialised networks sampled in one pass as channel groups).

- ``fig1_depth.png``: Fig. 1 (left): uniform, random and random + ReLU 3×3 networks of
  several depths;
- ``fig1_activations.png``: Fig. 1 (right): 20-layer random networks with ReLU, tanh and
  sigmoid;
- ``fig2_size_ratio.png``: Fig. 2: ERF size and ERF/RF ratio against depth, log–log,
  with fitted slopes;
- ``fig_subsampling_dilation.png``: Section 3.1: 15 dense layers against 3 of them
  strided (2) or dilated (2, 4, 8);
- ``fig3_training.png``: Section 3.2 in small: a CNN trained on scikit-learn's digits,
  its ERF before and after training;
- ``fig_init.png``: Section 4: the centre-low initialisation against He initialisation.

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

from .. import measures
from .._errors import ERFTypeError, ERFValueError
from ..compare import compare
from ..initializations import variance_network
from ..kernel import Kernel
from ..layers import Layer, ReLU, Sigmoid, Tanh
from ..network import Network
from ..paper import REPLACED as REPLACED  # old names, importable from here as before
from ..paper import REPLACED_DILATIONS as REPLACED_DILATIONS
from ..paper import REPLACEMENTS, paper_network, replaced_network
from ._measure import centre_gradient, per_axis, sample_maps
from .build import to_torch

__all__ = ["Config", "reproduce"]

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
        train_epochs: epochs of the digits CNN.
        init_depth: depth of the Section 4 initialisation comparison.
    """

    depths: tuple[int, ...] = (5, 10, 20, 40)
    networks: int = 200
    channels: int = 8
    activation_depth: int = 20
    fig2_depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    fig2_networks: int = 100
    fig2_channels: int = 4
    dense_layers: int = 15
    train_epochs: int = 12
    init_depth: int = 10


QUICK = Config(
    depths=(3, 6),
    networks=24,
    channels=4,
    activation_depth=6,
    fig2_depths=(2, 4, 8),
    fig2_networks=24,
    fig2_channels=4,
    dense_layers=15,
    train_epochs=3,
    init_depth=4,
)
"""Every figure at reduced size (``--quick``): under 30 s on 2 CPU cores."""


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
def _panels(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """One row per experiment: theory image | experiment image | centre-row cross-section."""
    from ..plotting import require_matplotlib

    plt = require_matplotlib()
    fig, axes = plt.subplots(len(rows), 3, figsize=(11.5, 3.3 * len(rows)), squeeze=False)
    try:
        for ax_row, r in zip(axes, rows, strict=True):
            th, ex, se = r["_theory"], r["_experiment"], r["_stderr"]
            c = _centre(th.shape)
            sd = max(r["theory_std"], 1.0)
            h = min(c[0], math.ceil(4 * sd) + 1)
            win = (slice(c[0] - h, c[0] + h + 1), slice(c[1] - h, c[1] + h + 1))
            vmax = float(max(th[win].max(), ex[win].max()))
            ext = (-h - 0.5, h + 0.5, h + 0.5, -h - 0.5)
            for ax, data, name in ((ax_row[0], th, "theory"), (ax_row[1], ex, "experiment")):
                im = ax.imshow(data[win], extent=ext, cmap="viridis", vmin=0, vmax=vmax)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
                std = r["theory_std"] if name == "theory" else r["experiment_std"]
                ax.set_title(f"{r['label']}: {name}\nstd {std:.2f} px", fontsize=9)
                ax.set_xlabel("column offset (px)", fontsize=8)
                ax.set_ylabel("row offset (px)", fontsize=8)
            x = np.arange(-h, h + 1)
            ax = ax_row[2]
            ax.plot(x, th[c[0], win[1]], color="#dd8452", lw=2, label="theory (exact)")
            ax.errorbar(
                x,
                ex[c[0], win[1]],
                yerr=2 * se[c[0], win[1]],
                fmt="o",
                ms=3,
                color="#4c72b0",
                label="experiment ±2 SE",
            )
            ax.set_title(f"centre row; TV distance {r['total_variation']:.3f}", fontsize=9)
            ax.set_xlabel("column offset (px)", fontsize=8)
            ax.set_ylabel("normalised ERF", fontsize=8)
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


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
    _panels(
        rows,
        out / "fig1_depth.png",
        "Fig. 1: 3×3 networks of several depths (theory vs experiment)",
    )
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
    from ..plotting import require_matplotlib

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
    plt = require_matplotlib()
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
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
            ax.legend(fontsize=8)
        fig.suptitle(
            f"Fig. 2: random linear 3×3 networks ({cfg.fig2_channels} channels), "
            f"{cfg.fig2_networks} networks per depth",
            fontsize=11,
        )
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
        fig.savefig(out / "fig2_size_ratio.png", dpi=110)
    finally:
        plt.close(fig)
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


def _training(cfg: Config, out: Path, seed: int, device: str) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = torch.nn.functional.interpolate(
        images, size=(16, 16), mode="bilinear", align_corners=False
    )
    labels = torch.tensor(digits.target)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = perm[:1500], perm[1500:]
    width, depth = 16, 5
    theory_net = dense(depth, HE_VARIANCE, ReLU())
    gen = torch.Generator().manual_seed(seed)
    features = to_torch(
        theory_net, weights="random", channels=width, generator=gen, dtype=torch.float32
    )
    # skip_init: the default initialisations would draw from torch's global generator
    stem = torch.nn.utils.skip_init(torch.nn.Conv2d, 1, width, 1, bias=False)
    linear = torch.nn.utils.skip_init(torch.nn.Linear, width, 10)
    bound = 1 / math.sqrt(width)  # torch's default init of nn.Linear, from our generator
    with torch.no_grad():
        stem.weight.fill_(1.0)
        torch.nn.init.uniform_(linear.weight, -bound, bound, generator=gen)
        torch.nn.init.uniform_(linear.bias, -bound, bound, generator=gen)
    head = torch.nn.Sequential(
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        linear,
    )
    model = torch.nn.Sequential(stem, features, head).to(device)

    probe = torch.nn.Sequential(stem, features)
    centre = per_axis(theory_net.centre_output(tuple(images.shape[2:])))

    def erf() -> Measured:
        """The squared input gradient over the test images (one sample each)."""
        g = centre_gradient(probe, images[test].to(device), centre)
        return _measured(theory_net, centre, g, "mean_square")

    before = erf()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(cfg.train_epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(images[idx].to(device)), labels[idx].to(device)
            )
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(images[test].to(device)).argmax(1).cpu() == labels[test]).float().mean())
    after = erf()
    rows = [
        _row(f"digits CNN, {label}", theory_net, "expected_square", m)
        for label, m in (("before training", before), ("after training", after))
    ]
    _panels(
        rows,
        out / "fig3_training.png",
        f"Section 3.2 in small: {depth}-layer CNN on digits (test accuracy {acc:.1%}); "
        f"theory = He initialisation",
    )
    return {"test_accuracy": round(acc, 4), "epochs": cfg.train_epochs, "rows": rows}


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
        "## Training on digits (`fig3_training.png`)",
        "",
        f"Test accuracy {r['training']['test_accuracy']:.1%} after {r['training']['epochs']} "
        "epoch(s); the theory column is the He-initialised network.",
        "",
        _table(r["training"]["rows"]),
        "",
        "## Section 4 initialisation (`fig_init.png`)",
        "",
        _table(r["init"]),
        "",
    ]
    return "\n".join(parts)
