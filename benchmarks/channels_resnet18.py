"""The channel-aware theory against measurement on a He-initialised torchvision ResNet-18.

    python benchmarks/channels_resnet18.py             # 449x449, 32 networks, ~3 min, 2 cores
    python benchmarks/channels_resnet18.py --size 225 --networks 64
    python benchmarks/channels_resnet18.py --resnet50         # also time ResNet-50 at 224

The feature extractor of ``torchvision.models.resnet18`` (everything before the global
pool) is re-initialised per network from a seeded generator exactly as torchvision does
it (``kaiming_normal_(mode="fan_out", nonlinearity="relu")``: $\\mathcal N(0, 2/n_\\text{out})$
per tap, batch norms $\\gamma = 1$, $\\beta = 0$, running statistics 0 and 1), and its
empirical ERF is measured by `erftheory.torch.empirical_erf` (``mean_square``, the
channel-summed gradient of the centre unit of every output channel, one standard
normal input per network, float32) over ``--networks`` networks, in two halves of
independent networks whose normalised maps give the noise floor (the TV distance
between the halves).

Predictions, all by `erftheory.torch.channels.predicted_erf` in float64 with the exact
He variances $2/n_\\text{out}$ of every tap:

- ``paper``: the activation factor 1/2 of Section 2.4 for every ReLU;
- ``calibrated``: the factors measured per ReLU call and per channel on one forward
  pass of ``--calibration`` random inputs through one more He network (seed 999).

For each: the variance ratio (measured over predicted spatial variance of the
normalised maps, the mean of the two axes, with the standard error of the measured
variance), the TV distance of the normalised maps, and the total ratio (measured total
over predicted total, with its standard error). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from erftheory.torch import compare, empirical_erf, total_variation
from erftheory.torch.channels import predicted_erf
from erftheory.torch.models import import_torchvision


def features(tv: Any) -> nn.Module:
    model = tv.models.resnet18(weights=None)
    return nn.Sequential(*list(model.children())[:-2]).eval()


def he_fan_out_(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """torchvision's ResNet initialisation, drawn from ``gen``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
                std = math.sqrt(2.0 / fan_out)
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return model


def he_variance(name: str, module: nn.Module, weight: torch.Tensor) -> float:
    return 2.0 / (weight.shape[0] * weight[0, 0].numel())


def measure(tv: Any, size: int, networks: int, seed: int) -> tuple[Any, Any]:
    """Two independent halves of the empirical ERF over ``networks`` networks."""
    skeleton = features(tv)
    halves = []
    for half in range(2):
        halves.append(
            empirical_erf(
                lambda i, g: he_fan_out_(skeleton, g),
                (3, size, size),
                runs=networks // 2,
                seed=seed + half,
                dtype=torch.float32,
                trace=False,
            )
        )
    return halves


def _total(erf: Any) -> tuple[float, float]:
    n = erf.count
    se = math.sqrt((erf.total_sum_sq - erf.total_sum**2 / n) / (n - 1) / n)
    return float(erf.map.sum()), se


def row(name: str, pred: np.ndarray, emp: Any) -> str:
    cmp = compare(pred, emp)
    ratio = float(np.mean(cmp.variance_ratio))
    mom = emp.moments()
    rel = float(np.mean(np.asarray(mom.variance_stderr) / np.asarray(mom.variance)))
    total, total_se = _total(emp)
    t = float(pred.sum())
    return (
        f"| {name} | {ratio:.3f} ± {ratio * rel:.3f} | {cmp.tv_distance:.3f} | "
        f"{total / t:.2f} ± {total_se / t:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=449)
    parser.add_argument("--networks", type=int, default=32)
    parser.add_argument("--calibration", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resnet50", action="store_true", help="also time ResNet-50 at 224")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tv = import_torchvision()
    shape = (3, args.size, args.size)

    t0 = time.perf_counter()
    a, b = measure(tv, args.size, args.networks, args.seed)
    t_emp = time.perf_counter() - t0
    emp = a.merge(b)
    noise = total_variation(a.normalized()[0], b.normalized()[0])

    template = he_fan_out_(features(tv), torch.Generator().manual_seed(999))
    t0 = time.perf_counter()
    paper = predicted_erf(template, shape, variances=he_variance)
    t_paper = time.perf_counter() - t0
    t0 = time.perf_counter()
    calibrated = predicted_erf(
        template,
        shape,
        variances=he_variance,
        activation="calibrated",
        inputs="random",
        calibration_batch=args.calibration,
        seed=args.seed + 7,
    )
    t_cal = time.perf_counter() - t0
    per_call = [float(np.mean(f)) for f in calibrated.factors]

    print(
        f"He-initialised torchvision ResNet-18 features at {args.size}x{args.size}, "
        f"{emp.count} networks ({args.threads} CPU threads; measurement {t_emp:.0f} s, "
        f"paper prediction {t_paper:.1f} s, calibrated {t_cal:.1f} s incl. the "
        f"calibration pass on {args.calibration} inputs)\n"
    )
    print(
        "| prediction | variance ratio (measured/predicted) | TV "
        "| total ratio (measured/predicted) |"
    )
    print("|---|---|---|---|")
    print(row("paper factors (1/2)", paper.map, emp))
    print(row("calibrated factors", calibrated.map, emp))
    print(
        f"\nnoise floor (TV between the two halves of {a.count} + {b.count} networks): {noise:.3f}"
    )
    print(
        "calibrated ReLU factors per call (channel means): "
        + ", ".join(f"{f:.2f}" for f in per_call)
    )
    print(f"rounding bound (relative, float64): {calibrated.rounding_bound:.1e}")
    if args.resnet50:
        model = tv.models.resnet50(weights=None).eval()
        feats = nn.Sequential(*list(model.children())[:-2])
        t0 = time.perf_counter()
        r50 = predicted_erf(feats, (3, 224, 224))
        print(
            f"\nResNet-50 features at 224x224, variances='model', paper factors: "
            f"{time.perf_counter() - t0:.1f} s on {args.threads} threads "
            f"(rounding bound {r50.rounding_bound:.1e})"
        )


if __name__ == "__main__":
    main()
