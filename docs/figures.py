r"""The figures of the theory pages (``docs/theory/``), computed with erftheory.

One command makes every figure::

    python docs/figures.py                # into docs/figures/
    python docs/figures.py --out /tmp/figs

The mkdocs build calls `main` with the output folder. The figures are generated, never
committed. Each figure is one function between snippet markers (``# --8<-- [start:NAME]``),
so the theory pages include the exact code that drew them. Only erftheory, numpy and
matplotlib (imported on first use, with the Agg backend) are needed: no torch.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from erftheory import (
    Activation,
    Conv,
    Kernel,
    Network,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
    profile,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "figures"
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")


# --8<-- [start:helpers]
def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend (imported on first use)."""
    from erftheory.plotting import require_matplotlib

    return require_matplotlib()


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG and close it."""
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def normal_pdf(x: np.ndarray, mean: float, var: float) -> np.ndarray:
    """The Gaussian density of Section 2.3 with the ERF's mean and variance (Eq. 10)."""
    return np.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


def heatmap(fig: Any, ax: Any, values: np.ndarray, origin: tuple[int, int], label: str) -> None:
    """A 2-D ERF with axes in input pixels from the output unit, and a colour bar."""
    extent = (
        -origin[1] - 0.5,
        values.shape[1] - origin[1] - 0.5,
        values.shape[0] - origin[0] - 0.5,
        -origin[0] - 0.5,
    )
    im = ax.imshow(values, extent=extent, cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    ax.set_xlabel("column offset j (pixels)")
    ax.set_ylabel("row offset i (pixels)")


# --8<-- [end:helpers]


# --8<-- [start:sec21]
def sec21_profiles(out: Path) -> Path:
    """Eq. (4)–(5): o(t) = coefficients of (1 + z)^n and (1 + z + z²)^n, against Gaussians."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    titles = {
        2: r"$k = 2$: binomial $\binom{n}{t} / 2^n$",
        3: r"$k = 3$: extended binomial / $3^n$",
    }
    for ax, k in zip(axes, (2, 3), strict=True):
        for n, colour in zip((2, 4, 8, 32), COLOURS, strict=False):
            p = profile(Kernel.uniform(k), layers=n)  # coefficients = extended_binomial(n, k)
            x = np.arange(p.rf_size) - p.origin - float(p.mean)  # t - E[S_n]
            ax.plot(x, p.normalized(), "o", ms=4, color=colour, label=f"n = {n}: exact")
            xs = np.linspace(x[0], x[-1], 400)
            ax.plot(xs, normal_pdf(xs, 0.0, float(p.variance)), "-", lw=1.2, color=colour)
        ax.plot([], [], "-", color="grey", label=r"Gaussian $\mathcal{N}(0, n\,\mathrm{Var}[X])$")
        ax.set_title(titles[k])
        ax.set_xlabel(r"input position relative to the mean, $t - \mathbb{E}[S_n]$ (pixels)")
        ax.set_ylabel(r"normalised ERF $o(t) / k^n$")
        ax.set_xlim(-16, 16)
        ax.legend(fontsize=8)
    fig.suptitle("Section 2.1: the ERF of n all-ones layers is Gaussian-shaped")
    return save(fig, out / "sec21_profiles.png")


def sec21_erf2d(out: Path) -> Path:
    """The 2-D ERF of 20 layers of 3×3 ones: the product of two 1-D extended binomials."""
    plt = pyplot()
    p = profile(Kernel.uniform((3, 3)), layers=20)
    values = p.normalized()
    i0, j0 = p.origin
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    heatmap(fig, left, values, p.origin, r"$o(i, j) / 9^{20}$")
    left.set_title(f"20 layers of 3×3 ones: RF {p.rf_size[0]}×{p.rf_size[1]}")
    cols = np.arange(values.shape[1]) - j0
    right.bar(cols, values[i0], width=1.0, color=COLOURS[0], alpha=0.7, label="exact, row i = 0")
    right.plot(
        cols, p.gaussian().values[i0], color=COLOURS[1], lw=2, label="2-D Gaussian, row i = 0"
    )
    right.set_title(f"the centre row; std per axis = {p.std[0]:.3f} pixels")
    right.set_xlabel("column offset j (pixels)")
    right.set_ylabel("normalised ERF")
    right.legend(fontsize=8)
    return save(fig, out / "sec21_erf2d.png")


# --8<-- [end:sec21]


# --8<-- [start:sec22]
def backward(weights: np.ndarray) -> np.ndarray:
    """Eq. (6), for a batch of random networks: g(i, j, p-1) = Σ_ab w_ab g(i+a, j+b, p).

    ``weights`` has shape (draws, layers, k) in 1-D or (draws, layers, k, k) in 2-D, with
    odd k; taps are counted from the centre tap, as ``Kernel`` does. Starts from the impulse
    of Eq. (1) at the output unit and returns g(·, 0) on the RF, (draws, n(k-1)+1, ...).
    """
    draws, layers, *taps = weights.shape
    centre = (taps[0] - 1) // 2
    size = layers * (taps[0] - 1) + 1
    axes = tuple(range(1, len(taps) + 1))
    g = np.zeros((draws,) + (size,) * len(taps))
    g[(slice(None),) + (size // 2,) * len(taps)] = 1.0  # u = δ (Eq. 1)
    for p in reversed(range(layers)):  # from layer n down to layer 1
        below = np.zeros_like(g)
        for tap in np.ndindex(*taps):
            w = weights[(slice(None), p, *tap)].reshape((draws,) + (1,) * len(taps))
            shift = tuple(centre - m for m in tap)  # rolled[i] = g[i + m - centre]
            below += w * np.roll(g, shift, axis=axes)
        g = below
    return g


def sec22_random(out: Path) -> Path:
    """Eq. (8): E[g²] of random zero-mean weights = C^n × the all-ones ERF (Monte Carlo check)."""
    plt = pyplot()
    rng = np.random.default_rng(2016)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")

    # 1-D: 10 layers of 3 taps with variance C = 1/3 (so C^n 3^n = 1): random signs ±√C.
    n, C, draws = 10, Fraction(1, 3), 100_000
    exact = Network([Conv(Kernel([C] * 3))] * n).profile("expected_square")
    t = np.arange(exact.rf_size) - exact.origin
    signs = rng.choice([-1.0, 1.0], size=(draws, n, 3))
    g2 = backward(signs * math.sqrt(C)) ** 2
    mean, se = g2.mean(axis=0), g2.std(axis=0) / math.sqrt(draws)
    one = backward(rng.normal(0.0, math.sqrt(C), size=(1, n, 3)))[0] ** 2
    one /= one.sum()  # one network's ERF, rescaled to unit mass
    ax = axes[0]
    ax.bar(t, exact.normalized(), width=1.0, color=COLOURS[0], alpha=0.6, label=r"exact $C^n o(t)$")
    ax.errorbar(
        t, mean, yerr=2 * se, fmt="o", ms=3, color=COLOURS[3], label="mean of 10⁵ nets ±2 s.e."
    )
    ax.plot(t, one, "-", color="black", lw=1, label=r"one net (Gaussian weights): $g^2 / \sum g^2$")
    ax.set_title("1-D, 10 layers, C = 1/3")
    ax.set_xlabel("input position t (pixels)")
    ax.set_ylabel(r"$\mathbb{E}[g(t, 0)^2]$")
    ax.set_ylim(0, 1.5 * max(one.max(), mean.max()))  # room for the legend
    ax.legend(fontsize=7, loc="upper left")

    # 2-D: 20 layers of 3×3 taps, C = 1/9: two single networks against the expectation.
    n, C = 20, Fraction(1, 9)
    exact = Network([Conv(Kernel([[C] * 3] * 3))] * n).profile("expected_square")
    nets = backward(rng.normal(0.0, math.sqrt(C), size=(2, n, 3, 3))) ** 2
    panels = [
        (nets[0], "one random network: $g^2$"),
        (nets[1], "another random network: $g^2$"),
        (exact.normalized(), r"expectation $C^n\,o(i,j)$ (Eq. 8)"),
    ]
    for col, (values, title) in enumerate(panels, start=1):
        ax = axes[col]
        heatmap(fig, ax, values / values.max(), exact.origin, "relative to the peak")
        ax.set_ylabel("row offset i (pixels)" if col == 1 else "")
        ax.set_title(f"2-D, 20 layers of 3×3: {title}", fontsize=10)
    fig.suptitle("Section 2.2: random weights — the expected squared gradient is the uniform ERF")
    return save(fig, out / "sec22_random.png")


# --8<-- [end:sec22]


# --8<-- [start:sec23]
def sec23_nonuniform(out: Path) -> Path:
    """Eq. (9)–(10): a skewed kernel [1, 2, 3] approaches its Gaussian, and how fast."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    w = Kernel([1, 2, 3])
    for n, colour in zip((3, 10, 30), COLOURS, strict=False):
        p = profile(w, layers=n)
        t = np.arange(p.rf_size) - p.origin
        left.plot(t, p.normalized(), "o", ms=4, color=colour, label=f"n = {n}: P(S_n = t)")
        ts = np.linspace(t[0], t[-1], 400)
        left.plot(ts, normal_pdf(ts, float(p.mean), float(p.variance)), "-", color=colour)
    left.plot([], [], "-", color="grey", label=r"Gaussian, Eq. (10)")
    left.set_title("kernel w = [1, 2, 3]/6 (anchor at the middle tap)")
    left.set_xlabel("input position t (pixels)")
    left.set_ylabel("normalised ERF o(t)")
    left.legend(fontsize=8)

    ns = np.array([4, 8, 16, 32, 64, 128, 256, 512, 1024])
    for weights, colour in (([1, 1, 1], COLOURS[0]), ([1, 2, 3], COLOURS[3])):
        fits = [profile(Kernel(weights), layers=int(n)).gaussian() for n in ns]
        name = str(weights)
        kolmogorov = [f.kolmogorov for f in fits]
        pointwise = [f.max_abs_diff for f in fits]
        right.loglog(ns, kolmogorov, "s-", color=colour, label=f"{name}: sup |F - Φ|")
        right.loglog(ns, pointwise, "o--", color=colour, label=f"{name}: max |o(t) - φ(t)|")
    for slope, c0, style in ((-0.5, 0.5, ":"), (-1.0, 0.2, "-."), (-1.5, 0.05, "--")):
        right.loglog(ns, c0 * ns**slope, style, color="black", lw=0.8, label=f"slope {slope:g}")
    right.set_title("distance to the Gaussian shrinks with depth (Remark 2)")
    right.set_xlabel("number of layers n")
    right.set_ylabel("distance")
    right.legend(fontsize=7, ncol=2)
    return save(fig, out / "sec23_nonuniform.png")


def sec23_ratio(out: Path) -> Path:
    """Section 2.3 and Fig. 2: ERF size grows like √n, the ERF/RF ratio shrinks like 1/√n."""
    plt = pyplot()
    ns = np.array([2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128])
    profiles = [profile(Kernel.uniform((3, 3)), layers=int(n)) for n in ns]
    rf = np.array([p.rf_size[0] for p in profiles], dtype=float)
    std = np.array([p.std[0] for p in profiles])
    fig2 = np.array([p.threshold_size() for p in profiles])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    left.loglog(ns, rf, "s-", color=COLOURS[2], label="theoretical RF: 2n + 1")
    left.loglog(ns, fig2, "o-", color=COLOURS[0], label="Fig. 2 size: √(pixels > 0.0455 × centre)")
    left.loglog(ns, 2 * 2.486 * std, "--", color=COLOURS[1], label=r"$2 \times 2.486\,\sigma$")
    left.loglog(ns, std, "^-", color=COLOURS[3], label=r"$\sigma = \sqrt{n \cdot 2/3}$ (Eq. 11)")
    left.set_title("20-fold deeper: RF ×20, ERF only ×√20")
    left.set_xlabel("number of 3×3 all-ones layers n")
    left.set_ylabel("size (pixels)")
    left.legend(fontsize=8)
    for values, marker, colour, name in (
        (fig2 / rf, "o-", COLOURS[0], "Fig. 2 size / RF"),
        (std / rf, "^-", COLOURS[3], "σ / RF"),
    ):
        slope = np.polyfit(np.log(ns), np.log(values), 1)[0]
        right.loglog(ns, values, marker, color=colour, label=f"{name} (fitted slope {slope:.2f})")
    right.loglog(ns, 1.2 * ns**-0.5, ":", color="black", label=r"$\propto n^{-1/2}$")
    right.set_title(r"the ERF/RF ratio shrinks like $1/\sqrt{n}$")
    right.set_xlabel("number of 3×3 all-ones layers n")
    right.set_ylabel("ERF size / RF size")
    right.legend(fontsize=8)
    return save(fig, out / "sec23_ratio.png")


def sec23_mass_share(out: Path) -> Path:
    """The share of the RF that holds 95 % of the ERF's mass, against depth (1-D and 2-D)."""
    plt = pyplot()
    ns = np.array([2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for weights, colour in (([1, 1, 1], COLOURS[0]), ([1, 2, 1], COLOURS[1])):
        profiles = [profile(Kernel(weights), layers=int(n)) for n in ns]
        share = [p.mass_size(0.95) / p.rf_size for p in profiles]
        gauss = [(2 * 1.96 * p.std + 1) / p.rf_size for p in profiles]
        left.loglog(ns, share, "o-", color=colour, label=f"{weights}: 95 % window / RF")
        left.loglog(ns, gauss, "--", color=colour, label=f"{weights}: (2·1.96 σ_n + 1) / RF")
    left.set_title("1-D: side of the 95 % window over the RF")
    left.set_ylabel("share of the RF (side)")
    profiles = [profile(Kernel.uniform((3, 3)), layers=int(n)) for n in ns]
    area = [p.mass_size(0.95) ** 2 / p.rf_size[0] ** 2 for p in profiles]
    right.loglog(ns, area, "s-", color=COLOURS[2], label="3×3 ones: 95 % square / RF area")
    half = NormalDist().inv_cdf((1 + math.sqrt(0.95)) / 2)  # each axis holds √0.95: 2.236 σ
    predicted = [((2 * half * p.std[0] + 1) / p.rf_size[0]) ** 2 for p in profiles]
    right.loglog(ns, predicted, "--", color=COLOURS[2], label="((2·2.236 σ_n + 1) / RF)²")
    right.loglog(ns, 1.5 / ns, ":", color="black", label=r"$\propto n^{-1}$")
    right.set_title("2-D: area of the 95 % square over the RF's area")
    right.set_ylabel("share of the RF (area)")
    for ax in (left, right):
        ax.set_xlabel("number of layers n")
        ax.legend(fontsize=8)
    fig.suptitle("95 % of the ERF sits in a shrinking part of the RF")
    return save(fig, out / "sec23_mass_share.png")


# --8<-- [end:sec23]


# --8<-- [start:sec24]
def sec24_relu(out: Path) -> Path:
    """Section 2.4: an activation multiplies E[g²] by E[σ'²] per layer; the shape is unchanged."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
    n, he = 10, Kernel([Fraction(2, 3)] * 3)  # He initialisation: C = 2 / k per tap
    paper = Activation("paper's 1/4", Fraction(1, 2), Fraction(1, 4))
    cases = [
        ("no activation", Network([Conv(he)] * n)),
        (r"ReLU: $\mathbb{E}[\sigma'^2] = 1/2$", Network([ReLU(), Conv(he)] * n)),
        (r"paper's factor $1/4$", Network([paper, Conv(he)] * n)),
    ]
    for (name, net), colour, marker in zip(cases, COLOURS, "os^", strict=False):
        p = net.profile("expected_square")
        t = np.arange(p.rf_size) - p.origin
        coefficients = np.array([float(c) for c in p.coefficients])
        axes[0].semilogy(t, coefficients, marker + "-", ms=4, color=colour, label=name)
        axes[1].plot(
            t, p.normalized(), marker, ms=9 - 2 * COLOURS.index(colour), color=colour, label=name
        )
    axes[0].set_title(f"{n} random layers (C = 2/3): E[g²], log scale")
    axes[0].set_ylabel(r"$\mathbb{E}[g(t, 0)^2]$")
    axes[1].set_title("normalised: the same Gaussian shape")
    axes[1].set_ylabel(r"normalised $\mathbb{E}[g(t, 0)^2]$ (sum 1)")
    for ax in axes[:2]:
        ax.set_xlabel("input position t (pixels)")
        ax.legend(fontsize=8)

    ax = axes[2]
    stds = np.geomspace(0.05, 5.0, 12)
    for cls, slope0, colour in ((Tanh, 1.0, COLOURS[0]), (Sigmoid, 0.25, COLOURS[1])):
        acts = [cls(input_std=s) for s in stds]  # each computes both factors by quadrature
        square = [float(a.factor("expected_square")) for a in acts]
        mean = [float(a.factor("gradient")) for a in acts]
        name = cls.__name__.lower()
        ax.semilogx(
            stds,
            np.array(square) / slope0**2,
            "o-",
            color=colour,
            label=rf"{name}: $\mathbb{{E}}[\sigma'^2] / \sigma'(0)^2$",
        )
        ax.semilogx(
            stds,
            (np.array(mean) / slope0) ** 2,
            "--",
            color=colour,
            label=rf"{name}: $\mathbb{{E}}[\sigma']^2 / \sigma'(0)^2$",
        )
    ax.axhline(0.5, color=COLOURS[2], label=r"ReLU: $\mathbb{E}[\sigma'^2] = 1/2$")
    ax.axhline(0.25, color=COLOURS[2], ls=":", label=r"ReLU: $\mathbb{E}[\sigma']^2 = 1/4$")
    ax.set_title("activation factors for inputs $x \\sim \\mathcal{N}(0, s^2)$")
    ax.set_xlabel("input standard deviation s")
    ax.set_ylabel("factor per layer (relative to the linear regime)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    return save(fig, out / "sec24_relu.png")


# --8<-- [end:sec24]


# --8<-- [start:sec25]
def sec25_architectures(out: Path) -> Path:
    """Section 2.5 and 3.1: dense, subsampled, dilated and residual stacks (expected E[g²])."""
    plt = pyplot()
    ninth = Kernel([[Fraction(1, 9)] * 3] * 3)  # random 3×3 weights, variance 1/9 per tap
    nets = {
        "dense: 15 conv": Network([Conv(ninth)] * 15),
        "subsample: stride 2 at 4, 8, 12": Network(
            ([Conv(ninth)] * 3 + [Conv(ninth, stride=2)]) * 3 + [Conv(ninth)] * 3
        ),
        "dilation: 2, 4, 8 at 4, 8, 12": Network(
            [Conv(ninth)] * 3
            + [Conv(ninth, dilation=2)]
            + [Conv(ninth)] * 3
            + [Conv(ninth, dilation=4)]
            + [Conv(ninth)] * 3
            + [Conv(ninth, dilation=8)]
            + [Conv(ninth)] * 3
        ),
        "residual: 15 × (x + conv x)": Network([Residual(Conv(ninth))] * 15),
    }
    fig = plt.figure(figsize=(18, 8), layout="constrained")
    grid = fig.add_gridspec(2, 4, height_ratios=(1.25, 1))
    bottom = fig.add_subplot(grid[1, :])
    half = 52  # the subsampled RF is 105 pixels wide: show every net on ±52 pixels
    for col, ((name, net), colour) in enumerate(zip(nets.items(), COLOURS, strict=False)):
        p = net.profile("expected_square")
        values = p.normalized() / p.normalized().max()
        ax = fig.add_subplot(grid[0, col])
        heatmap(fig, ax, values, p.origin, "E[g²] / peak")
        ax.set_ylabel("row offset i (pixels)" if col == 0 else "")
        ax.set_xlim(-half - 0.5, half + 0.5)
        ax.set_ylim(half + 0.5, -half - 0.5)
        ax.set_facecolor(plt.get_cmap("viridis")(0.0))  # outside the RF the ERF is 0
        ax.set_title(f"{name}\nRF {p.rf_size[0]}, std {p.std[0]:.2f} px", fontsize=10)
        cols = np.arange(values.shape[1]) - p.origin[1]
        bottom.plot(
            cols,
            values[p.origin[0]],
            "-",
            drawstyle="steps-mid",
            color=colour,
            label=f"{name} (std {p.std[0]:.2f})",
        )
    bottom.set_xlim(-half, half)
    bottom.set_title("the centre row of each ERF")
    bottom.set_xlabel("column offset j (pixels)")
    bottom.set_ylabel("E[g²] / peak")
    bottom.legend(fontsize=9)
    fig.suptitle("Section 2.5: subsampling and dilation widen the ERF, skip connections narrow it")
    return save(fig, out / "sec25_architectures.png")


def sec25_residual_mixture(out: Path) -> Path:
    """A residual ERF, (1 + V)^n = Σ_i C(n, i) V^i, split into its binomial-mixture components."""
    plt = pyplot()
    n, third = 15, Kernel([Fraction(1, 3)] * 3)  # random 3 taps, variance 1/3: V(1) = 1
    total = Network([Residual(Conv(third))] * n).profile("expected_square")
    plain = Network([Conv(third)] * n).profile("expected_square")
    t = np.arange(total.rf_size) - total.origin
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    cmap = plt.get_cmap("viridis")
    rho = 0.5  # the branch's share V(1) / (1 + V(1))
    for i in range(n + 1):
        weight = math.comb(n, i) * rho**i * (1 - rho) ** (n - i)  # P(I = i)
        component = np.zeros(len(t))
        if i == 0:
            component[total.origin] = 1.0  # no convolution: the skip's spike at 0
        else:
            part = profile(Kernel.uniform(3), layers=i)  # i plain layers, normalised
            lo = total.origin - part.origin
            component[lo : lo + part.rf_size] = part.normalized()
        left.plot(t, weight * component, "-", color=cmap(i / n), lw=1)
    left.plot(t, total.normalized(), "k-", lw=2, label="sum: the residual ERF")
    left.plot([], [], "-", color=cmap(0.5), label="component i: P(I = i) · plain ERF of i layers")
    left.set_title(f"{n} residual blocks, ρ = 1/2: the components")
    left.set_xlim(-12, 12)
    left.legend(fontsize=8)
    right.bar(range(n + 1), [math.comb(n, i) / 2**n for i in range(n + 1)], color=COLOURS[0])
    right.set_title("P(I = i): Binomial(15, 1/2) convolutions met by a path")
    right.set_xlabel("number i of branch convolutions on the path")
    right.set_ylabel("probability")
    left.plot(t, plain.normalized(), "--", color=COLOURS[3], label="plain stack of 15 layers")
    left.legend(fontsize=8)
    left.set_xlabel("input position t (pixels)")
    left.set_ylabel("normalised E[g²]")
    return save(fig, out / "sec25_residual_mixture.png")


def sec25_offcentre(out: Path) -> Path:
    """An off-centre branch: the skip sits at the anchor, the branch leans right (ρμ² > Var)."""
    plt = pyplot()
    n = 8
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained", sharey=True)
    cases = (
        (Kernel([0, 1, 2]), "off-centre branch [0, 1, 2]"),
        (Kernel([1, 1, 1]), "centred [1, 1, 1]"),
    )
    for ax, (kernel, name) in zip(axes, cases, strict=True):
        for net, colour, label in (
            (Network([Conv(kernel)] * n), COLOURS[3], f"{n} plain layers"),
            (Network([Residual(Conv(kernel))] * n), COLOURS[0], f"{n} residual blocks"),
        ):
            p = net.profile()
            t = np.arange(p.rf_size) - p.origin
            ax.plot(
                t,
                p.normalized(),
                "o-",
                ms=4,
                color=colour,
                label=f"{label}: mean {float(p.mean):.2f}, var {float(p.variance):.2f}",
            )
            ax.axvline(float(p.mean), color=colour, ls=":", lw=1)
        ax.set_title(name)
        ax.set_xlabel("input position t (pixels from the anchor)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("normalised ERF")
    fig.suptitle("Skip connections: wider for an off-centre branch, narrower for a centred one")
    return save(fig, out / "sec25_offcentre.png")


# --8<-- [end:sec25]


FIGURES = (
    sec21_profiles,
    sec21_erf2d,
    sec22_random,
    sec23_nonuniform,
    sec23_ratio,
    sec23_mass_share,
    sec24_relu,
    sec25_architectures,
    sec25_residual_mixture,
    sec25_offcentre,
)
"""Every figure function, in the order of the pages; each writes ``<name>.png``."""


def main(out_dir: Path) -> list[Path]:
    """Draw every figure of the theory pages into ``out_dir`` and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [make(out) for make in FIGURES]


def cli(argv: list[str] | None = None) -> int:
    """``python docs/figures.py [--out DIR]``."""
    parser = argparse.ArgumentParser(description="Draw the figures of docs/theory/.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for path in main(args.out):
        print(path)
    print(f"{len(FIGURES)} figures in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
