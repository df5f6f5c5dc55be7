"""``from_torch(weights="model")`` on every real CNN family (issue 15): the collapsed
one-convolution network whose kernel is the model's mean input gradient.

    python benchmarks/model_weights.py [SPEC-SUBSTRING ...]

For each family of `erftheory.torch.models.FAMILIES` (random weights, the default
input; the feature extractor where the head is not a global pool): whether it is read,
the RF, the peak of the mean gradient and the time of ``from_torch`` plus the profile.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch

from erftheory.torch.models import FAMILIES, default_input_shape, load_model, read_model


def main() -> None:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    chosen = sys.argv[1:]
    read = 0
    families = [f for f in FAMILIES if not chosen or any(s in f[1] for s in chosen)]
    print("| model | spec | RF | peak of the mean gradient | s |")
    print("|---|---|---|---|---|")
    for label, spec in families:
        t = time.perf_counter()
        model = load_model(spec)
        shape = default_input_shape(model)
        try:
            net = read_model(model, shape, weights="model")[2]
            peak = float(np.abs(np.asarray(net.profile().coefficients, dtype=float)).max())
            read += 1
            rf = net.receptive_field.size
            print(f"| {label} | `{spec}` | {rf[0]} | {peak:.3g} | {time.perf_counter() - t:.1f} |")
        except Exception as e:  # a benchmark reports, never stops
            print(f"| {label} | `{spec}` | – | refused: {str(e)[:120]} | – |")
    print(f"\nread {read}/{len(families)}")


if __name__ == "__main__":
    main()
