"""Which real torchvision and timm CNNs `from_torch` reads, and whether their RFs are right.

    python benchmarks/real_models.py                  # every family, about 3 minutes
    python benchmarks/real_models.py --only resnet18 timm:dla34
    python benchmarks/real_models.py --cap 0           # no autograd check
    python benchmarks/real_models.py --table           # docs/architectures.md's table
    python benchmarks/real_models.py --share           # the SE gates' pooled share

Each model is built with random weights (`erftheory.torch.models.load_model`; nothing is
downloaded), then `from_torch(model, (3, 224, 224))` (299 for Inception-v3) is tried on
the whole model and, if that is refused, on its feature extractor (``model.features`` or
``model.forward_features``). Where one is accepted, its receptive field is checked
against `autograd_rf`: the bounding box of the support of plain autograd's input
gradient of the centre unit of the last feature map, in a linearised float64 copy
(positive weights, identity activations, average pooling). The check runs at the
network's `min_input_size` (the whole field inside the input) when that is at most
``--cap`` pixels (1400), else at the default size (the field clipped to the input).
Squeeze-and-excitation gates (a product of a map and a tensor of one pixel) are held
constant in that check (`detach_gates`), as `from_torch` reads them. Then a
markdown table, accepted/total, and the refusals grouped by cause.

With ``--table``: per family, the accepted model's RF size and jump, its ERF std
(`erftheory.network.Network.profile`, the centre unit, in pixels of the input) with
all-ones weights (``kind="gradient"``) and with the initialisation's variances
(``weights="variance"``, ``kind="expected_square"``; through
`erftheory.network.float_square` where the exact fixed parts are refused), std/RF,
and the seconds each took (``from_torch`` and the profile). Weights are drawn after
``torch.manual_seed(0)``. Needs
``pip install 'erftheory[models]'``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from _machine import describe

from erftheory.torch.models import (
    FAMILIES as _FAMILIES,
)
from erftheory.torch.models import (
    autograd_rf,
    default_input_shape,
    detach_gates,
    import_timm,
    import_torchvision,
    load_model,
    model_parts,
    network_rf,
    skipped_fake_kernels,
)
from erftheory.torch.trace import from_torch

FAMILIES: list[tuple[str, str]] = list(_FAMILIES)

# Refusal messages reduced to their cause (module paths and sizes left out).
CAUSES: list[tuple[str, str]] = [
    (r"ceil_mode=True", "max pooling with ceil_mode=True"),
    (r"squeeze-and-excitation|comes after .* which ends the spatial part", "SE / global gate"),
    (
        r"does not pass through the last spatial feature map",
        "SE / global gate taken for the end of the model",
    ),
    (r"not series-parallel", "graph not series-parallel (dense connections)"),
    (r"reshapes a \S+ feature map", "flatten of a spatial map (head)"),
    (r"indexing or slicing|slic|index", "tensor indexing or slicing"),
    (r"could not be traced|symbolically traced|torch\.fx|trace", "torch.fx tracing"),
    (r"dilated max pool", "dilated max pooling"),
]


def _cause(message: str) -> str:
    for pattern, cause in CAUSES:
        if re.search(pattern, message):
            return cause
    m = re.search(r"of type (\w+)", message)
    if m and "not supported" in message:
        return f"unsupported module {m.group(1)}"
    m = re.search(r"(?:function|method) ([\w.]+)", message)
    if m:
        return f"unsupported operation {m.group(1)}"
    return message[:80]


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Row:
    label: str
    spec: str
    part: str = "–"
    rf: str = "–"
    seconds: float = 0.0
    check: str = "–"
    errors: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.part != "–"


def _rf(net: Any) -> str:
    rf = net.receptive_field
    first = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731 (square models)
    return f"{first(rf.size)} / {first(rf.jump)} / {first(rf.offset)}"


def _check(module: Any, net: Any, default: int, cap: int) -> str:
    if cap <= 0:
        return "–"
    fit = net.min_input_size()
    fit = max(fit) if isinstance(fit, tuple) else fit
    n, where = (fit, "fits") if fit <= cap else (default, "clipped")
    t = time.perf_counter()
    try:
        got = autograd_rf(detach_gates(module, input_shape=(3, n, n)), (3, n, n))
    except Exception as e:  # a benchmark reports, never stops
        return f"autograd failed at {n}: {_one_line(e, 80)}"
    want = network_rf(net, n)
    dt = time.perf_counter() - t
    if got == want:
        return f"= at {n} ({where}, {dt:.1f} s)"
    return (
        f"≠ at {n} ({where}): autograd lo {got.lo} hi {got.hi} out {got.output_size}, "
        f"theory lo {want.lo} hi {want.hi} out {want.output_size}"
    )


def run_one(label: str, spec: str, cap: int) -> Row:
    row = Row(label, spec)
    try:
        model = load_model(spec)
    except Exception as e:
        row.errors.append(f"load: {_one_line(e)}")
        return row
    shape = default_input_shape(model)
    for part, module in model_parts(model):
        t = time.perf_counter()
        try:
            net = from_torch(module, shape)
        except Exception as e:
            row.seconds += time.perf_counter() - t
            row.errors.append(f"{part}: {_one_line(e)}")
            continue
        row.seconds += time.perf_counter() - t
        row.part, row.rf = part, _rf(net)
        row.check = _check(module, net, shape[1], cap)
        break
    return row


def _std(profile: Any) -> float:
    std = profile.std
    return float(std[0] if isinstance(std, tuple) else std)


def _variance_profile(net: Any) -> tuple[Any, str, float]:
    """``net.profile("expected_square")``, or the float route of `float_square` if refused.

    Also the seconds the refused attempt took (0 if none), which the table leaves out.
    """
    from erftheory import SizeLimitError
    from erftheory.network.float_square import float_square_profile

    t = time.perf_counter()
    try:
        return net.profile("expected_square"), "auto", 0.0
    except SizeLimitError:
        refused = time.perf_counter() - t
        return float_square_profile(net), "float_square", refused


@dataclass
class ProfileRow:
    label: str
    spec: str
    part: str = "–"
    rf: int = 0
    jump: int = 0
    std_ones: float | None = None
    std_init: float | None = None
    s_ones: float = 0.0
    s_init: float = 0.0
    note: str = ""


def profile_one(label: str, spec: str) -> ProfileRow:
    """RF, jump and ERF std of a family's accepted model, all-ones and at initialisation."""
    import warnings

    import torch

    from erftheory import ERFError

    row = ProfileRow(label, spec)
    torch.manual_seed(0)
    try:
        model = load_model(spec)
    except Exception as e:  # a benchmark reports, never stops
        row.note = f"load: {_one_line(e, 100)}"
        return row
    shape = default_input_shape(model)
    for part, module in model_parts(model):
        t = time.perf_counter()
        try:
            net = from_torch(module, shape)
            ones = net.profile("gradient")
        except ERFError as e:
            row.note = _cause(str(e))
            continue
        row.s_ones = time.perf_counter() - t
        row.part, row.std_ones = part, _std(ones)
        first = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731
        row.rf, row.jump = first(net.receptive_field.size), first(net.receptive_field.jump)
        t, refused = time.perf_counter(), 0.0
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                init = from_torch(module, shape, weights="variance")
            prof, route, refused = _variance_profile(init)
            row.std_init = _std(prof)
            notes = []
            if route != "auto":
                notes.append(
                    f"init: float route of erftheory.network.float_square (the refusal of "
                    f"the exact fixed parts took {refused:.1f} s more, not counted)"
                )
            if any("all zero" in str(w.message) for w in caught):
                notes.append("init zeroes a branch (warned)")
            row.note = "; ".join(notes)
        except ERFError as e:
            row.note = f"init: {_cause(str(e))}"
        row.s_init = time.perf_counter() - t - refused
        return row
    return row


def shares(families: list[tuple[str, str]]) -> None:
    """`pooled_share` of every family's model in its linearised copy, default input."""
    import torch

    from erftheory.torch.models import pooled_share

    print("| model | spec | share of the gradient mass through the gates' pools | s |")
    print("|---|---|---|---|")
    for label, spec in families:
        torch.manual_seed(0)
        t = time.perf_counter()
        try:
            model = load_model(spec)
            share = f"{pooled_share(model, default_input_shape(model)):.4f}"
        except Exception as e:  # a benchmark reports, never stops
            share = _one_line(e, 100)
        print(f"| {label} | `{spec}` | {share} | {time.perf_counter() - t:.1f} |", flush=True)


def _load() -> str:
    import os

    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


class _Overtime(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Overtime


def _timed_profile(label: str, spec: str, limit: int) -> ProfileRow:
    """`profile_one`, stopped after ``limit`` seconds (0: no limit; POSIX only)."""
    import signal

    if limit <= 0 or not hasattr(signal, "SIGALRM"):
        return profile_one(label, spec)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    try:
        return profile_one(label, spec)
    except _Overtime:
        return ProfileRow(label, spec, note=f"stopped after {limit} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def table(families: list[tuple[str, str]], limit: int = 0) -> None:
    """The markdown table of docs/architectures.md."""
    print(
        "| model | spec | part | RF | jump | ERF std, all-ones | ERF std, init | "
        "std/RF, all-ones | std/RF, init | s, all-ones | s, init | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, spec in families:
        r = _timed_profile(label, spec, limit)
        ratio = lambda v, rf=r.rf: None if v is None or not rf else v / rf  # noqa: E731
        print(
            f"| {label} | `{spec}` | {r.part} | {r.rf or '–'} | {r.jump or '–'} | "
            f"{_fmt(r.std_ones)} | {_fmt(r.std_init)} | {_fmt(ratio(r.std_ones), 3)} | "
            f"{_fmt(ratio(r.std_init), 3)} | {r.s_ones:.1f} | {r.s_init:.1f} | {r.note} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="labels or specs (substrings) to run")
    parser.add_argument(
        "--cap", type=int, default=1400, help="largest input side for the check (0: none)"
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="print the markdown table of docs/architectures.md (profiles, no autograd check)",
    )
    parser.add_argument(
        "--limit", type=int, default=180, help="seconds per model for --table (0: none)"
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="print each model's pooled_share (the SE gates' pooled paths) at its default input",
    )
    args = parser.parse_args()
    tv, timm = import_torchvision(), import_timm()
    import torch

    families = FAMILIES
    if args.only:
        families = [
            (label, spec)
            for label, spec in FAMILIES
            if any(o.lower() in label.lower() or o in spec for o in args.only)
        ]
    print(describe())
    print(
        f"torch {torch.__version__}, torchvision {tv.__version__}, timm {timm.__version__}; "
        f"fake kernels skipped at import: {', '.join(skipped_fake_kernels()) or 'none'}"
    )
    print()
    if args.share:
        shares(families)
        return
    if args.table:
        start = time.perf_counter()
        table(families, args.limit)
        print()
        print(f"{time.perf_counter() - start:.0f} s in all; load average {_load()}")
        return
    print("| model | spec | from_torch | RF size / jump / offset | s | autograd check |")
    print("|---|---|---|---|---|---|")
    rows = []
    start = time.perf_counter()
    for label, spec in families:
        row = run_one(label, spec, args.cap)
        rows.append(row)
        status = f"accepted ({row.part})" if row.accepted else "rejected"
        print(
            f"| {label} | `{spec}` | {status} | {row.rf} | {row.seconds:.2f} | {row.check} |",
            flush=True,
        )
    accepted = sum(r.accepted for r in rows)
    matched = sum(r.check.startswith("=") for r in rows)
    print()
    print(
        f"accepted {accepted}/{len(rows)}; autograd agrees {matched}/{accepted}; "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if not r.accepted:
            groups[_cause(r.errors[0])].append(r.label)
    if groups:
        print()
        print("Refusals by cause (of the whole model):")
        for cause, labels in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"- {cause} ({len(labels)}): {', '.join(labels)}")
        print()
        print("Messages (a feature extractor's only where its cause differs):")
        for r in rows:
            seen: set[str] = set()
            for e in r.errors:
                if _cause(e) not in seen:
                    seen.add(_cause(e))
                    print(f"- {r.label}: {e}")


if __name__ == "__main__":
    main()
