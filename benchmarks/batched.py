"""Benchmark: input gradients of 100 random networks, a Python loop against one batched pass.

    python benchmarks/batched.py            # full: both dtypes, 1 and 2 threads, 2 sizes
    python benchmarks/batched.py --quick    # float32 only, fewer repeats

The workload is the paper's Section 3.1 "Random + ReLU" experiment: ``count`` (100)
independent single-channel networks of ``depth`` (20) 3×3 convolutions with ReLU
between them, He-initialised, each with its own N(0, 1) input; wanted: every network's
input gradient of its centre output unit.

- **loop**: the 100 networks built separately (``BatchedNetworks.single(c)``, i.e.
  ``to_torch(network)`` with network ``c``'s weights), one forward and one backward
  each, in a plain Python loop;
- **batched**: `BatchedNetworks` (grouped convolutions, ``groups=100``) and one
  `batched_input_gradients` call on the whole input (``crop=False``), in contiguous and
  in channels-last memory format;
- **batched, RF window** (the default, ``crop=True``): the same call on the input
  cropped to the centre unit's receptive-field window (41×41 for this network), where
  the gradient of that unit lives; the gradient is placed back into zeros. At 41×41 (the
  networks' `min_input_size`) the window is the whole input and nothing changes.

Both compute the same thing in the same dtype: the same weights, the same inputs, only
the input gradient (``torch.autograd.grad``, no weight gradients), model construction
and input generation excluded. The results are compared (``max |Δ| / peak``). Each time
is the best of ``--repeat`` runs, loop and batched interleaved; ratios come from one
run. The machine is shared, so its load average is printed with the table.

glibc's malloc hands blocks above 128 KiB back to the system when they are freed, so
every large tensor of every backward pass is page-faulted in afresh (the batched model
keeps 40 activations of 1.6 MB alive per pass; the loop's are 16 KB and never leave the
heap). By default the benchmark raises the mmap and trim thresholds with ``mallopt``
(process-wide, so for both methods); ``--default-malloc`` keeps glibc's defaults.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _machine import describe  # noqa: E402

from erftheory import __version__  # noqa: E402
from erftheory.torch.batched import (  # noqa: E402
    BatchedNetworks,
    batched_input_gradients,
    paper_network,
)


def tune_malloc() -> bool:
    """Keep freed large blocks in the heap (glibc): M_MMAP_THRESHOLD 32 MiB, M_TRIM 1 GiB."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
        return ok and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except OSError:
        return False


def machine() -> str:
    return (
        f"{describe()}, "
        f"torch {torch.__version__} (default threads {torch.get_num_threads()}, "
        f"MKLDNN {torch.backends.mkldnn.is_available()}), erftheory {__version__}"
    )


def load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def best_of(fns: list[Callable[[], Any]], repeat: int, device: str) -> list[float]:
    """Best wall time of each function over ``repeat`` rounds, interleaved."""
    times = [[] for _ in fns]  # type: list[list[float]]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(repeat):
        for t, fn in zip(times, fns, strict=True):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            t.append(time.perf_counter() - start)
    return [min(t) for t in times]


def case(dtype: torch.dtype, size: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(threads)
    net = paper_network(args.depth, activation="relu")
    gen = torch.Generator().manual_seed(0)
    batched = BatchedNetworks(
        net, args.count, init="he", dtype=dtype, generator=gen, device=args.device
    )
    singles = [batched.single(c) for c in range(args.count)]
    x = torch.randn((args.count, size, size), generator=gen, dtype=dtype).to(args.device)
    centre = net.centre_output(size)

    def loop() -> torch.Tensor:
        out = []
        for c, model in enumerate(singles):
            xc = x[c].reshape(1, 1, size, size).clone().requires_grad_(True)
            y = model(xc)
            (g,) = torch.autograd.grad(y[(0, 0, *centre)], xc)
            out.append(g[0, 0])
        return torch.stack(out)

    def plain() -> torch.Tensor:
        return batched_input_gradients(batched, x, channels_last=False, crop=False)

    def cl() -> torch.Tensor:
        return batched_input_gradients(batched, x, channels_last=True, crop=False)

    def window() -> torch.Tensor:
        return batched_input_gradients(batched, x)  # the defaults: the RF window

    ref, a, b, c = loop(), plain(), cl(), window()  # warm-up, and the check that all agree
    peak = float(ref.abs().max())
    diff = max(float((v - ref).abs().max()) for v in (a, b, c)) / peak
    t_loop, t_plain, t_cl, t_win = best_of([loop, plain, cl, window], args.repeat, args.device)
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "threads": threads,
        "loop": t_loop,
        "plain": t_plain,
        "cl": t_cl,
        "win": t_win,
        "diff": diff,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="float32 only, 3 repeats")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=None, help="runs per timing (best of)")
    ap.add_argument("--threads", type=int, nargs="*", default=None, help="default: 1 and all")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--default-malloc", action="store_true", help="no mallopt tuning")
    args = ap.parse_args()
    tuned = False if args.default_malloc else tune_malloc()
    if args.repeat is None:
        args.repeat = 3 if args.quick else 7
    net = paper_network(args.depth, activation="relu")
    n_min = net.min_input_size()[0]
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.float64]
    sizes = [64, n_min]
    threads = args.threads or sorted({1, torch.get_num_threads()})
    print(f"Machine: {machine()}")
    print(f"Load average before: {load()}; malloc tuned: {tuned}; device: {args.device}")
    print(
        f"Workload: {args.count} networks, {args.depth} 3×3 convolutions + ReLU (He init), "
        f"2-D, one N(0, 1) input each; min input size {n_min}; best of {args.repeat}"
    )
    print()
    print(
        "| dtype | input | threads | loop s | batched s | batched channels_last s "
        "| batched RF window (default) s | loop / batched (best whole input) "
        "| loop / default | max abs diff / peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    summary = []
    for dtype in dtypes:
        for size in sizes:
            rows = []
            for t in threads:
                r = case(dtype, size, t, args)
                rows.append(r)
                best = min(r["plain"], r["cl"])
                print(
                    f"| {r['dtype']} | {size}×{size} | {t} | {r['loop']:.3f} | {r['plain']:.3f} "
                    f"| {r['cl']:.3f} | {r['win']:.3f} | {r['loop'] / best:.1f} "
                    f"| {r['loop'] / r['win']:.1f} | {r['diff']:.1e} |",
                    flush=True,
                )
            # Each method at its own best thread count and memory format.
            loop = min(rows, key=lambda r: r["loop"])
            fast = min(rows, key=lambda r: min(r["plain"], r["cl"]))
            fast_t = min(fast["plain"], fast["cl"])
            fmt = "channels_last" if fast["cl"] <= fast["plain"] else "contiguous"
            win = min(rows, key=lambda r: r["win"])
            summary.append(
                f"| {loop['dtype']} | {size}×{size} | {loop['loop']:.3f} ({loop['threads']} "
                f"threads) | {fast_t:.3f} ({fast['threads']} threads, {fmt}) "
                f"| **{loop['loop'] / fast_t:.1f}** | {win['win']:.3f} ({win['threads']} "
                f"threads) | **{loop['loop'] / win['win']:.1f}** |"
            )
    print()
    print("Each method at its best setting:")
    print()
    print(
        "| dtype | input | loop s | batched, whole input s | loop / batched "
        "| batched, RF window (default) s | loop / default |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(summary))
    print()
    print(f"({time.perf_counter() - start:.0f} s; load average after: {load()})")


if __name__ == "__main__":
    main()
