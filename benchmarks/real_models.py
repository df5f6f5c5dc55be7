"""Which real torchvision and timm CNNs `from_torch` reads, and whether their RFs are right.

    python benchmarks/real_models.py                  # every family, about 3 minutes
    python benchmarks/real_models.py --only resnet18 timm:dla34
    python benchmarks/real_models.py --cap 0           # no autograd check

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
markdown table, accepted/total, and the refusals grouped by cause. Needs
``pip install 'erftheory[models]'``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import operator
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from _machine import describe

from erftheory.torch.models import (
    autograd_rf,
    default_input_shape,
    feature_extractor,
    import_timm,
    import_torchvision,
    load_model,
    network_rf,
    skipped_fake_kernels,
)
from erftheory.torch.trace import from_torch

FAMILIES: list[tuple[str, str]] = [
    ("ResNet-18", "torchvision:resnet18"),
    ("ResNet-50", "torchvision:resnet50"),
    ("ResNeXt-50 32x4d", "torchvision:resnext50_32x4d"),
    ("Wide-ResNet-50-2", "torchvision:wide_resnet50_2"),
    ("ResNet-50-D", "timm:resnet50d"),
    ("VGG11", "torchvision:vgg11"),
    ("VGG11-BN", "torchvision:vgg11_bn"),
    ("VGG11 (timm)", "timm:vgg11"),
    ("AlexNet", "torchvision:alexnet"),
    ("SqueezeNet 1.0", "torchvision:squeezenet1_0"),
    ("GoogLeNet", "torchvision:googlenet"),
    ("Inception-v3", "torchvision:inception_v3"),
    ("DenseNet-121", "torchvision:densenet121"),
    ("MobileNetV2", "torchvision:mobilenet_v2"),
    ("MobileNetV3-small", "torchvision:mobilenet_v3_small"),
    ("MobileNetV3-large", "torchvision:mobilenet_v3_large"),
    ("EfficientNet-B0", "torchvision:efficientnet_b0"),
    ("EfficientNetV2-S", "torchvision:efficientnet_v2_s"),
    ("RegNetX-400MF", "torchvision:regnet_x_400mf"),
    ("RegNetY-400MF", "torchvision:regnet_y_400mf"),
    ("ShuffleNetV2 x1.0", "torchvision:shufflenet_v2_x1_0"),
    ("MNASNet 1.0", "torchvision:mnasnet1_0"),
    ("ConvNeXt-Tiny", "torchvision:convnext_tiny"),
    ("RepVGG-A2", "timm:repvgg_a2"),
    ("DLA-34", "timm:dla34"),
    ("CSPResNet-50", "timm:cspresnet50"),
    ("MixNet-S", "timm:mixnet_s"),
    ("ReXNet-1.0", "timm:rexnet_100"),
    ("VoVNet-19-DW (eSE)", "timm:ese_vovnet19b_dw"),
    ("GhostNet-1.0", "timm:ghostnet_100"),
]

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


def _gate_mul(a: Any, b: Any) -> Any:
    """``a * b`` with a gate of one pixel (squeeze-and-excitation) detached."""
    import torch

    def flat(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.dim() >= 3 and all(s == 1 for s in t.shape[2:])

    def big(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.dim() >= 3 and any(s > 1 for s in t.shape[2:])

    if flat(b) and big(a):
        b = b.detach()
    elif flat(a) and big(b):
        a = a.detach()
    return a * b


def detach_gates(module: Any) -> Any:
    """A traced copy of ``module`` whose products ``x * s(pool(x))`` hold the gate constant.

    Every multiplication of a feature map by a tensor of one pixel detaches that tensor
    (decided on the tensors' shapes at run time), so the input gradient is the local
    ERF: the gradient through the pooled branch is left out, as `from_torch` reads it.
    """
    import torch

    from erftheory.torch.trace import _trace

    gm = _trace(module, type(module).__name__)
    for node in list(gm.graph.nodes):
        mul = (
            node.op == "call_function" and node.target in (operator.mul, operator.imul, torch.mul)
        ) or (node.op == "call_method" and node.target in ("mul", "mul_"))
        if mul and len(node.args) == 2 and not node.kwargs:
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(_gate_mul, tuple(node.args))
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


def _check(module: Any, net: Any, default: int, cap: int) -> str:
    if cap <= 0:
        return "–"
    fit = net.min_input_size()
    fit = max(fit) if isinstance(fit, tuple) else fit
    n, where = (fit, "fits") if fit <= cap else (default, "clipped")
    t = time.perf_counter()
    try:
        got = autograd_rf(detach_gates(module), (3, n, n))
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
    candidates = [("whole", model)]
    features = feature_extractor(model)
    if features is not None:
        candidates.append(("features", features))
    for part, module in candidates:
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
        if row.check.startswith("≠") and part == "whole" and features is not None:
            # autograd_rf takes the last 4-D tensor for the map: a channels-last head
            # (ConvNeXt's LayerNorm2d) fools it; the feature extractor ends at the map
            try:
                same = _rf(from_torch(features, shape)) == row.rf
            except Exception:  # a benchmark reports, never stops
                same = False
            if same:
                row.check = _check(features, net, shape[1], cap) + " (on the features)"
        break
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="labels or specs (substrings) to run")
    parser.add_argument(
        "--cap", type=int, default=1400, help="largest input side for the check (0: none)"
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
