"""Benchmark: `empirical_erf` against OpenERF 0.6.1 on a timm ResNet-18, per image.

    python benchmarks/openerf.py              # 100 images, float32 and float64, best of 2
    python benchmarks/openerf.py --quick      # 20 images, best of 1
    python benchmarks/openerf.py --device cuda
    python benchmarks/openerf.py --threads 1 --ablation   # steadier on a busy machine

Needs ``pip install openerf timm`` (OpenERF is an optional benchmark dependency, not an
erftheory requirement). Nothing is downloaded: the model is timm's ``resnet18`` with
random weights (``torch.manual_seed(0)``), and the images are ``--images`` synthetic
RGB JPEGs (smooth random colour fields of 256-400 pixels a side, numpy seed 0) written
to a temporary folder.

The same quantity on both sides: OpenERF back-propagates, one image at a time, the mean
over channels of ``forward_features`` at the centre unit ``(h // 2, w // 2)`` and
accumulates ``max(mean_c g, 0)`` of the input gradient; erftheory's
``statistic="relu"`` with ``channel_reduce="sum"`` at the same output unit is the
same map up to a positive factor, so both are compared after normalising (largest
difference over the peak).

What is timed (each the best of ``--repeat`` runs, the methods interleaved, after a
warm-up of each on four images; wall time, and in one column the ratio of process CPU
times, which a busy machine disturbs less):

- **OpenERF, end to end** (float32 only; its data loader yields float32): its own
  ``openerf.compute_erf(model, image_dir=...)``: reading, decoding and transforming
  every image (timm's eval transform) and the gradient loop;
- **reading + transforming**: the same images through OpenERF's own dataset and
  transform into one tensor, timed alone;
- **OpenERF, gradient loop**: OpenERF's per-image routine
  (``_compute_positive_input_gradients_from_forward_features``) over those tensors,
  as its ``compute_erf`` calls it (the model's parameters require gradients, batch 1);
- **erftheory**: ``empirical_erf(forward_features, inputs=tensors, statistic="relu",
  output_index=centre, dtype=...)`` with its defaults: ``batch_size="auto"``
  (from memory), the input only differentiated, channels-last inputs in float32,
  batch norm folded into the convolutions, sums kept on the device, and the exact
  origin traced by ``from_torch`` (included in the time).

And where erftheory's time goes (``--ablation``, float32): the same call at batch 1
with none of the settings, then with the batch size from memory, then channels-last,
then batch-norm folding.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _machine import describe  # noqa: E402

from erftheory import __version__  # noqa: E402

# This file is called openerf.py: the real package must not resolve to it.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != HERE]


def load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def write_images(folder: Path, count: int) -> None:
    """``count`` smooth random RGB images as JPEGs (numpy seed 0)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(256, 401, size=2))
        coarse = rng.uniform(0, 255, size=(h // 16 + 2, w // 16 + 2, 3))
        big = np.kron(coarse, np.ones((16, 16, 1)))[:h, :w]
        noise = rng.normal(0, 12, size=(h, w, 3))
        img = np.clip(big + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img, mode="RGB").save(folder / f"img_{i:04d}.jpg", quality=90)


class ForwardFeatures:
    """``model.forward_features`` as a module (the map OpenERF reads)."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class _FF(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, x: Any) -> Any:
                return self.m.forward_features(x)

        return _FF(model)


def best_of(
    fns: dict[str, Callable[[], Any]], repeat: int, sync: Callable[[], None]
) -> dict[str, tuple[float, float, Any]]:
    """``{name: (best wall s, best CPU s, last result)}``, the functions interleaved."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, Any] = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            out[k] = fn()
            sync()
            wall[k].append(time.perf_counter() - start)
            cpu[k].append(time.process_time() - start_cpu)
    return {k: (min(wall[k]), min(cpu[k]), out[k]) for k in fns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 images, best of 1")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    ap.add_argument("--ablation", action="store_true", help="where erftheory's time goes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = ap.parse_args()
    n_img = args.images or (20 if args.quick else 100)
    repeat = args.repeat or (1 if args.quick else 2)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from erftheory.torch.empirical import empirical_erf, suggest_batch_size
    from erftheory.torch.models import import_timm

    timm = import_timm()
    import openerf
    from openerf.data import FlatImageDataset, build_timm_eval_transform
    from openerf.erf import _compute_positive_input_gradients_from_forward_features as oe_one

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    base = timm.create_model("resnet18", pretrained=False).eval()
    print(
        f"Machine: {describe()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"timm {timm.__version__}, OpenERF {getattr(openerf, '__version__', '0.6.1')}, "
        f"erftheory {__version__}; device {dev}"
    )
    print(f"Load average before: {load()}; {n_img} images; best of {repeat}")
    start_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_images(folder, n_img)
        transform, _ = build_timm_eval_transform(base)

        def preprocess() -> Any:
            ds = FlatImageDataset(folder, transform)
            return torch.stack([ds[i][0] for i in range(len(ds))])

        t0 = time.perf_counter()
        images = preprocess()
        t_pre = time.perf_counter() - t0
        h, w = images.shape[-2:]
        print(f"Images: {tuple(images.shape)} after timm's eval transform")
        print()
        print(
            "| dtype | batch (auto) | OpenERF end to end s/img | reading + transforming "
            "s/img | OpenERF gradient loop s/img | erftheory s/img | OpenERF loop / erftheory "
            "| (CPU time) | OpenERF end to end / (erftheory + reading) | max diff / peak |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        rows = []
        for name in args.dtypes:
            dtype = getattr(torch, name)
            model = base.to(device=dev, dtype=dtype)
            ff = ForwardFeatures(model).eval()
            x = images.to(device=dev, dtype=dtype)
            probe = torch.zeros((1, 3, h, w), dtype=dtype, device=dev)
            with torch.no_grad():
                out_hw = tuple(model.forward_features(probe).shape[2:])
            centre = (out_hw[0] // 2, out_hw[1] // 2)  # OpenERF's centre rule
            batch = suggest_batch_size(ff, (3, h, w), dtype=dtype, device=dev)

            def oe_loop(model: Any = model, x: Any = x) -> Any:  # OpenERF's own loop
                acc = None
                with torch.enable_grad():
                    for i in range(x.shape[0]):
                        xi = x[i : i + 1].clone().requires_grad_(True)
                        g = oe_one(model=model, inputs=xi, source_name="forward_features")
                        acc = g if acc is None else acc + g
                return acc

            def ours(ff: Any = ff, x: Any = x, dtype: Any = dtype, centre: Any = centre) -> Any:
                return empirical_erf(
                    ff, inputs=x, statistic="relu", output_index=centre, dtype=dtype, device=dev
                )

            def oe_full(limit: int | None = None, base: Any = base) -> Any:
                return openerf.compute_erf(
                    base,
                    model_name="resnet18",
                    image_dir=folder,
                    show_progress=False,
                    device=dev,
                    max_images=limit,
                )

            # warm-up on four images: allocator, oneDNN primitives, imports, first trace
            oe_loop(x=x[:4])
            empirical_erf(ff, inputs=x[:4], statistic="relu", dtype=dtype, device=dev)
            fns: dict[str, Callable[[], Any]] = {"loop": oe_loop, "ours": ours}
            if dtype == torch.float32:
                oe_full(4)
                fns = {"full": oe_full, "pre": preprocess, **fns}
            res = best_of(fns, repeat, sync)
            p_oe = res["loop"][2].double().cpu().numpy()
            p_oe = p_oe / p_oe.sum()
            erf = res["ours"][2]
            p_us = erf.map / erf.map.sum()
            diff = float(np.abs(p_us - p_oe).max() / p_oe.max())
            t_loop, t_ours = res["loop"][0] / n_img, res["ours"][0] / n_img
            cpu_ratio = res["loop"][1] / res["ours"][1]
            if "full" in res:
                full_map = res["full"][2].erf_map
                diff = max(diff, float(np.abs(p_us - full_map).max() / full_map.max()))
                t_full, t_read = res["full"][0] / n_img, res["pre"][0] / n_img
                e2e = f"{t_full:.4f}"
                read = f"{t_read:.4f}"
                ratio2 = f"**{t_full / (t_ours + t_read):.2f}**"
            else:
                e2e = read = ratio2 = "–"
            print(
                f"| {name} | {batch} | {e2e} | {read} | {t_loop:.4f} | {t_ours:.4f} "
                f"| **{t_loop / t_ours:.2f}** | {cpu_ratio:.2f} | {ratio2} | {diff:.1e} |",
                flush=True,
            )
            rows.append((name, erf.origin, erf.origin_source))
            base = base.float()
        for name, origin, source in rows:
            print(f"({name}: erftheory's origin {origin}, {source})")
        print(f"(first reading + transforming, cold: {t_pre:.2f} s)")

        if args.ablation:
            dtype = torch.float32
            model = base.to(device=dev, dtype=dtype)
            ff = ForwardFeatures(model).eval()
            x = images.to(device=dev, dtype=dtype)
            settings: dict[str, dict[str, Any]] = {
                "batch 1, nothing else": dict(
                    batch_size=1, channels_last=False, fuse_batchnorm=False
                ),
                "+ batch size from memory": dict(channels_last=False, fuse_batchnorm=False),
                "+ channels-last inputs": dict(fuse_batchnorm=False),
                "+ batch norm folded (the defaults)": {},
            }
            fns = {
                k: (
                    lambda kw=kw: empirical_erf(
                        ff, inputs=x, statistic="relu", dtype=dtype, device=dev, **kw
                    )
                )
                for k, kw in settings.items()
            }
            res = best_of(fns, repeat, sync)
            first = res["batch 1, nothing else"][0]
            ref = res["batch 1, nothing else"][2].map
            print()
            print("Where erftheory's time goes (float32, the same call, settings added in turn):")
            print()
            print("| setting | s/img | speed-up over batch 1 | max diff / peak |")
            print("|---|---|---|---|")
            for k, (t, _, erf) in res.items():
                d = float(np.abs(erf.map / erf.map.sum() - ref / ref.sum()).max())
                d /= float((ref / ref.sum()).max())
                print(f"| {k} | {t / n_img:.4f} | {first / t:.2f} | {d:.1e} |")
    print()
    print(f"({time.perf_counter() - start_all:.0f} s; load average after: {load()})")


if __name__ == "__main__":
    main()
