r"""Real CNNs: torchvision and timm models by name, and an autograd check of their RF.

- `import_torchvision`, `import_timm`: the modules, or `MissingDependencyError` naming
  the ``models`` extra. They also work where ``import torchvision`` itself fails while
  registering fake (meta) kernels for its detection operators (below).
- `load_model`: a model from a spec, ``torchvision:NAME``, ``timm:NAME`` or
  ``path/to/file.py:FACTORY``, randomly initialised (no weights are downloaded), in
  evaluation mode.
- `default_input_shape`: the input shape a model is made for, ``(3, 224, 224)`` unless
  the model says otherwise (``(3, 299, 299)`` for Inception-v3).
- `feature_extractor`: the spatial part of a classifier (``model.features`` or
  ``model.forward_features``), for models whose head `erftheory.torch.trace.from_torch`
  cannot read.
- `gate_mul`, `detach_gates`: products ``x * s(pool(x))`` (squeeze-and-excitation)
  with the gate held constant (the local ERF, as `erftheory.torch.trace.from_torch`
  reads it by default) or kept, and rescaled to mean one either way; `pooled_share`:
  the share of the centre unit's gradient mass that passes through the gates' pools.
- `linearised_copy`, `linearised_functions`, `autograd_rf`, `network_rf`: an
  independent route to the receptive field. A float64 copy with positive weights,
  identity activations and average instead of max pooling has an input gradient whose
  support is exactly the receptive field of the unit: no path cancels, none is cut off
  by a ReLU or a max. `autograd_rf` is the bounding box of that support for the centre
  unit of the last spatial feature map; `network_rf` is what a `erftheory.network.Network`
  predicts for the same unit. The two are `RFBox` values and compare with ``==``.

**Why ``import torchvision`` can fail.** A torchvision wheel built for another torch
(a CUDA build on a CPU-only torch, or another version) cannot load its C++ extension
``torchvision._C``, so the operators ``torchvision::nms`` and ``torchvision::qnms`` are
never defined. torchvision guards the registration of most of its fake kernels by
``torchvision.extension._has_ops()``, but not these two, so ``import torchvision``
stops with ``RuntimeError: operator torchvision::nms does not exist``, though
classification models never call them. `import_torchvision` first tries the plain
import; only if it fails with that error does it forget the half-imported modules and
import again while ``torch.library.register_fake`` (and the older ``impl_abstract``)
skip registrations for operators that do not exist. Everything else in torchvision
works; calling ``torchvision.ops.nms`` raises torchvision's own "Couldn't load custom
C++ ops" error. `skipped_fake_kernels` names the registrations that were skipped.

Needs torch; torchvision and timm are imported only when asked for
(``pip install 'erftheory[models]'``).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .._errors import ERFTypeError, ERFValueError, MissingDependencyError

__all__ = [
    "FAMILIES",
    "RFBox",
    "autograd_rf",
    "default_input_shape",
    "detach_gates",
    "feature_extractor",
    "gate_mul",
    "import_timm",
    "import_torchvision",
    "linearised_copy",
    "linearised_functions",
    "load_model",
    "model_parts",
    "network_rf",
    "parse_spec",
    "pooled_share",
    "read_model",
    "skipped_fake_kernels",
]

SPEC_FORMS = "'torchvision:NAME', 'timm:NAME' or 'path/to/file.py:FACTORY'"

FAMILIES: tuple[tuple[str, str], ...] = (
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
)
"""One representative of every CNN family of issue 14 (label, spec): the models the
tests and `benchmarks/real_models.py` read with `from_torch` and check against autograd."""

# ---------------------------------------------------------------- importing torchvision
_SKIPPED: list[str] = []
_MISSING_OP = re.compile(r"operator \S+ does not exist|Could not find schema for")


def skipped_fake_kernels() -> tuple[str, ...]:
    """The fake-kernel registrations `import_torchvision` had to skip (none normally).

    Example:
        >>> from erftheory.torch.models import skipped_fake_kernels
        >>> isinstance(skipped_fake_kernels(), tuple)
        True
    """
    return tuple(_SKIPPED)


def _op_exists(qualname: str) -> bool:
    """Whether the operator ``namespace::name[.overload]`` is defined."""
    namespace, _, rest = qualname.partition("::")
    name, _, overload = rest.partition(".")
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return False
    return not overload or hasattr(packet, overload)


def _tolerant(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (a fake-kernel registrar) made a no-op for undefined operators."""

    def register(op: Any, func: Any = None, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(op, str) and not _op_exists(op):
            if op not in _SKIPPED:
                _SKIPPED.append(op)
            return func if func is not None else (lambda f: f)
        return original(op, func, *args, **kwargs)

    return register


@contextlib.contextmanager
def _tolerate_missing_ops() -> Iterator[None]:
    """``torch.library.register_fake`` and ``impl_abstract`` skip undefined operators."""
    saved = {}
    for attr in ("register_fake", "impl_abstract"):
        original = getattr(torch.library, attr, None)
        if original is not None:
            saved[attr] = original
            setattr(torch.library, attr, _tolerant(original))
    try:
        yield
    finally:
        for attr, original in saved.items():
            setattr(torch.library, attr, original)


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def import_torchvision() -> ModuleType:
    """The ``torchvision`` module, imported even where its C++ extension cannot load.

    A plain import first; if that fails only because a fake kernel is registered for an
    operator the unloadable extension would have defined (``torchvision::nms``), the
    import is repeated with such registrations skipped (see the module docstring).

    Returns:
        The ``torchvision`` module.

    Raises:
        MissingDependencyError: torchvision is not installed (extra ``models``).

    Example:
        >>> import pytest
        >>> from erftheory.torch.models import import_torchvision
        >>> try:
        ...     tv = import_torchvision()
        ... except ImportError as e:
        ...     pytest.skip(str(e))
        >>> callable(tv.models.get_model)
        True
    """
    return _import_tolerant("torchvision", "import_torchvision")


def _import_tolerant(package: str, what: str) -> ModuleType:
    """Import ``package``, again with missing operators' fake kernels skipped if need be."""
    if (module := sys.modules.get(package)) is not None:
        return module
    if importlib.util.find_spec(package) is None:
        raise MissingDependencyError(package, "models", what)
    try:
        return importlib.import_module(package)
    except RuntimeError as e:
        if not _MISSING_OP.search(str(e)):
            raise
    _forget(package)
    with _tolerate_missing_ops():
        return importlib.import_module(package)


def import_timm() -> ModuleType:
    """The ``timm`` module (torchvision first, through `import_torchvision`).

    Raises:
        MissingDependencyError: timm or torchvision is not installed (extra ``models``).

    Example:
        >>> import pytest
        >>> from erftheory.torch.models import import_timm
        >>> try:
        ...     timm = import_timm()
        ... except ImportError as e:
        ...     pytest.skip(str(e))
        >>> timm.is_model("resnet18")
        True
    """
    if (module := sys.modules.get("timm")) is not None:
        return module
    if importlib.util.find_spec("timm") is None:
        raise MissingDependencyError("timm", "models", "import_timm")
    import_torchvision()  # timm imports torchvision
    return importlib.import_module("timm")


# ---------------------------------------------------------------------------- specs
def parse_spec(spec: Any) -> tuple[str, str, str]:
    """Split a model spec into ``(kind, location, name)``.

    ``kind`` is ``"torchvision"``, ``"timm"`` or ``"file"``; ``location`` is the file
    path for ``"file"`` (else ``""``); ``name`` is the model or factory name. Nothing is
    imported or read.

    Raises:
        ERFTypeError: ``spec`` is not a string.
        ERFValueError: ``spec`` is none of the forms, or the file is not a ``.py`` file.

    Example:
        >>> from erftheory.torch.models import parse_spec
        >>> parse_spec("torchvision:resnet18"), parse_spec("nets/my.py:build")
        (('torchvision', '', 'resnet18'), ('file', 'nets/my.py', 'build'))
    """
    if not isinstance(spec, str):
        raise ERFTypeError(f"a model spec is a string, {SPEC_FORMS}; got {type(spec).__name__}")
    for kind in ("torchvision", "timm"):
        if spec.startswith(kind + ":"):
            name = spec[len(kind) + 1 :]
            if not name or not re.fullmatch(r"[\w.\-]+", name):
                raise ERFValueError(
                    f"model spec {spec!r}: the {kind} model name {name!r} is not a name; "
                    f"a spec is {SPEC_FORMS}"
                )
            return kind, "", name
    path, sep, factory = spec.rpartition(":")
    if not sep or not path or not factory:
        raise ERFValueError(f"model spec {spec!r} is malformed: a spec is {SPEC_FORMS}")
    if not path.endswith(".py"):
        raise ERFValueError(
            f"model spec {spec!r}: {path!r} is not a .py file; a spec is {SPEC_FORMS}"
        )
    if not factory.isidentifier():
        raise ERFValueError(
            f"model spec {spec!r}: the factory {factory!r} is not a Python name; a spec is "
            f"{SPEC_FORMS}"
        )
    return "file", path, factory


def _close(name: str, names: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def _torchvision_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    tv = import_torchvision()
    names = tv.models.list_models()
    if name not in names:
        raise ERFValueError(f"torchvision has no model {name!r}{_close(name, names)}")
    if name in ("googlenet", "inception_v3"):
        # Without it torchvision warns that the default initialisation will change.
        kwargs.setdefault("init_weights", True)
    return tv.models.get_model(name, weights=None, **kwargs)  # type: ignore[no-any-return]


def _timm_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    timm = import_timm()
    if not timm.is_model(name):
        raise ERFValueError(f"timm has no model {name!r}{_close(name, timm.list_models())}")
    return timm.create_model(name, pretrained=False, **kwargs)  # type: ignore[no-any-return]


def _file_model(spec: str, path: str, factory: str, kwargs: dict[str, Any]) -> nn.Module:
    file = Path(path)
    if not file.is_file():
        raise ERFValueError(f"model spec {spec!r}: no such file {path!r}")
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", file.stem)
    module_name = f"_erftheory_model_{stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(module_name, file)
    if loader_spec is None or loader_spec.loader is None:  # pragma: no cover
        raise ERFValueError(f"model spec {spec!r}: cannot import {path!r}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    if not hasattr(module, factory):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ERFValueError(
            f"model spec {spec!r}: {path!r} has no factory {factory!r} (its callables: "
            f"{', '.join(public) or 'none'})"
        )
    build = getattr(module, factory)
    if not callable(build):
        raise ERFTypeError(
            f"model spec {spec!r}: {factory!r} is a {type(build).__name__}, not a callable"
        )
    model = build(**kwargs)
    if not isinstance(model, nn.Module):
        raise ERFTypeError(
            f"model spec {spec!r}: {factory}() returned a {type(model).__name__}, not a "
            f"torch.nn.Module"
        )
    return model


def load_model(spec: str, *, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """A randomly initialised model from a spec, in evaluation mode.

    Args:
        spec: one of

            - ``torchvision:NAME``: ``torchvision.models.get_model(NAME, weights=None)``
              (``init_weights=True`` for ``googlenet`` and ``inception_v3`` unless given);
            - ``timm:NAME``: ``timm.create_model(NAME, pretrained=False)``;
            - ``path/to/file.py:FACTORY``: the file is imported by path and
              ``FACTORY()`` called; it must return a ``torch.nn.Module``.
        num_classes: passed on as ``num_classes=`` when given (the head's size; it never
            changes the receptive field).
        **kwargs: passed on to the model builder or the factory.

    Returns:
        The model, after ``model.eval()``.

    Raises:
        ERFTypeError: ``spec`` is not a string; the factory is not callable or returns
            something that is not a module.
        ERFValueError: a malformed spec (the message gives the valid forms); a file that
            is not a ``.py`` file or does not exist; a missing factory; a model name
            torchvision or timm does not know (with close matches); a bad
            ``num_classes``.
        MissingDependencyError: torchvision or timm is needed and not installed.

    Example:
        >>> import pytest
        >>> from erftheory.torch.models import load_model
        >>> try:
        ...     model = load_model("torchvision:resnet18", num_classes=10)
        ... except ImportError as e:
        ...     pytest.skip(str(e))
        >>> model.training, model.fc.out_features
        (False, 10)
        >>> load_model("resnet18")
        Traceback (most recent call last):
        ...
        erftheory.ERFValueError: model spec 'resnet18' is malformed: a spec is ...
    """
    kind, path, name = parse_spec(spec)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ERFValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
        kwargs["num_classes"] = num_classes
    if kind == "torchvision":
        model = _torchvision_model(name, kwargs)
    elif kind == "timm":
        model = _timm_model(name, kwargs)
    else:
        model = _file_model(spec, path, name, kwargs)
    return model.eval()


def default_input_shape(spec_or_model: str | nn.Module) -> tuple[int, int, int]:
    """The ``(C, H, W)`` a model is made for: ``(3, 224, 224)`` unless it says otherwise.

    A timm model (or ``timm:NAME``) gives its configuration's ``input_size``;
    torchvision's Inception-v3 is ``(3, 299, 299)``. Only a timm spec imports anything
    (timm, to read the configuration).

    Raises:
        ERFTypeError: neither a spec nor a module.
        ERFValueError: a malformed spec; a model timm does not know.

    Example:
        >>> from erftheory.torch.models import default_input_shape
        >>> default_input_shape("torchvision:inception_v3"), default_input_shape("my.py:f")
        ((3, 299, 299), (3, 224, 224))
    """
    default = (3, 224, 224)
    if isinstance(spec_or_model, nn.Module):
        cfg = getattr(spec_or_model, "pretrained_cfg", None)  # timm
        if isinstance(cfg, dict) and len(cfg.get("input_size") or ()) == 3:
            return _shape3(cfg["input_size"])
        if type(spec_or_model).__name__ == "Inception3":
            return (3, 299, 299)
        return default
    if not isinstance(spec_or_model, str):
        raise ERFTypeError(
            f"default_input_shape takes a model spec or a torch.nn.Module, got "
            f"{type(spec_or_model).__name__}"
        )
    kind, _, name = parse_spec(spec_or_model)
    if kind == "torchvision":
        return (3, 299, 299) if name == "inception_v3" else default
    if kind == "timm":
        timm = import_timm()
        if not timm.is_model(name):
            raise ERFValueError(f"timm has no model {name!r}{_close(name, timm.list_models())}")
        cfg = timm.models.get_pretrained_cfg(name)
        size = getattr(cfg, "input_size", None)
        return _shape3(size) if size and len(size) == 3 else default
    return default


def _shape3(size: Sequence[int]) -> tuple[int, int, int]:
    c, h, w = (int(s) for s in size)
    return c, h, w


class _ForwardFeatures(nn.Module):
    """``model.forward_features`` as a module (timm's feature extractor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.training = model.training

    def forward(self, x: torch.Tensor) -> Any:
        forward_features: Any = self.model.forward_features
        return forward_features(x)


def feature_extractor(model: nn.Module) -> nn.Module | None:
    """The spatial part of a classifier, or None if the model has none by name.

    A module running ``model.forward_features`` where the model has it (timm, whose
    ``features`` attribute, where there is one, may leave out the stem), else
    ``model.features`` where it is a module (torchvision's VGG, AlexNet, DenseNet,
    MobileNet, EfficientNet...), else None.

    Example:
        >>> from torch import nn
        >>> from erftheory.torch.models import feature_extractor
        >>> feature_extractor(nn.Conv2d(1, 1, 3)) is None
        True
    """
    if callable(getattr(model, "forward_features", None)):
        return _ForwardFeatures(model)
    features = getattr(model, "features", None)
    return features if isinstance(features, nn.Module) else None


def model_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """What `from_torch` is tried on, in order: ``("whole", model)``, then
    ``("features", feature_extractor(model))`` where the model has one.

    Example:
        >>> from torch import nn
        >>> [part for part, _ in model_parts(nn.Conv2d(1, 1, 3))]
        ['whole']
    """
    parts: list[tuple[str, nn.Module]] = [("whole", model)]
    features = feature_extractor(model)
    if features is not None:
        parts.append(("features", features))
    return parts


def read_model(
    model: nn.Module, input_shape: Sequence[int], weights: str = "ones"
) -> tuple[str, nn.Module, Any]:
    """``(part, module, network)`` for the first of `model_parts` that `from_torch` reads;
    if none is read, the error of the last one.

    Example:
        >>> from torch import nn
        >>> read_model(nn.Sequential(nn.Conv2d(1, 1, 3)), (1, 8, 8))[0]
        'whole'
    """
    from .trace import from_torch

    *first, (last_part, last) = model_parts(model)
    for part, module in first:
        try:
            return part, module, from_torch(module, input_shape, weights=weights)
        except Exception:  # the next part may be read
            continue
    return last_part, last, from_torch(last, input_shape, weights=weights)


# ------------------------------------------------------------------ linearised copy
_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
    nn.Threshold,
)

_F_ACTIVATIONS: frozenset[Any] = frozenset(
    {
        F.relu,
        F.relu_,
        F.relu6,
        F.leaky_relu,
        F.leaky_relu_,
        F.prelu,
        F.rrelu,
        F.elu,
        F.elu_,
        F.selu,
        F.celu,
        F.gelu,
        F.silu,
        F.mish,
        F.hardswish,
        F.hardsigmoid,
        F.hardtanh,
        F.hardtanh_,
        F.sigmoid,
        F.tanh,
        F.softplus,
        F.softsign,
        F.tanhshrink,
        F.logsigmoid,
        F.threshold,
        torch.relu,
        torch.relu_,
        torch.sigmoid,
        torch.sigmoid_,
        torch.tanh,
        torch.tanh_,
        torch.selu,
        torch.celu,
        torch.rrelu,
        torch.Tensor.relu,
        torch.Tensor.relu_,
        torch.Tensor.sigmoid,
        torch.Tensor.sigmoid_,
        torch.Tensor.tanh,
        torch.Tensor.tanh_,
    }
)

_F_MAX_POOLS: dict[Any, int] = {
    F.max_pool1d: 1,
    F.max_pool2d: 2,
    F.max_pool1d_with_indices: 1,
    F.max_pool2d_with_indices: 2,
    torch.max_pool1d: 1,
    torch.max_pool2d: 2,
}
_F_ADAPTIVE_MAX_POOLS: dict[Any, int] = {
    F.adaptive_max_pool1d: 1,
    F.adaptive_max_pool2d: 2,
    F.adaptive_max_pool1d_with_indices: 1,
    F.adaptive_max_pool2d_with_indices: 2,
}


def _is_activation(module: nn.Module) -> bool:
    if isinstance(module, _ACTIVATIONS):
        return True
    # timm's own activation layers (Swish, HardSwish, GELUTanh, ...)
    return type(module).__module__.startswith("timm.layers.activations")


def _avg_pool(pool: Any) -> nn.Module:
    """The average pool of a max pool's geometry (zero padding counted)."""
    dilation = pool.dilation if isinstance(pool.dilation, tuple) else (pool.dilation,)
    if any(d != 1 for d in dilation):
        raise ERFValueError(f"a dilated max pool ({pool}) has no average pool of the same geometry")
    cls = nn.AvgPool1d if isinstance(pool, nn.MaxPool1d) else nn.AvgPool2d
    return cls(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)


def _replace(model: nn.Module) -> None:
    for name, child in list(model.named_children()):
        if _is_activation(child):
            setattr(model, name, nn.Identity())
        elif type(child) in (nn.MaxPool1d, nn.MaxPool2d):
            setattr(model, name, _avg_pool(child))
        elif type(child) is nn.AdaptiveMaxPool1d:
            setattr(model, name, nn.AdaptiveAvgPool1d(child.output_size))
        elif type(child) is nn.AdaptiveMaxPool2d:
            setattr(model, name, nn.AdaptiveAvgPool2d(child.output_size))
        else:
            _replace(child)


def linearised_copy(model: nn.Module, *, seed: int = 0) -> nn.Module:
    r"""A float64 copy whose input gradient has the receptive field as its support.

    The copy (the model is not changed) is in evaluation mode, with

    - activation modules (ReLU, ReLU6, SiLU, GELU, Hardswish, Sigmoid, ..., and timm's
      own) replaced by ``nn.Identity``;
    - ``MaxPool1d/2d`` replaced by ``AvgPool1d/2d`` of the same kernel, stride, padding
      and ceil mode, adaptive max pools by adaptive average pools;
    - every convolution and linear weight drawn uniformly from $[0.5, 1.5]$ and divided
      by its sum over the inputs of each output (an average with positive weights, so
      values neither overflow nor underflow in deep models), biases zero;
    - batch norms the identity up to $1/\sqrt{1+\epsilon}$ (weight 1, bias 0, running
      mean 0, variance 1); group and layer norms weight 1, bias 0;
    - every other parameter or floating buffer replaced by its absolute value (all ones
      where it was all zeros, as zero-initialised layer scales are).

    Activations and max pools written as functions in ``forward`` (``F.relu(x)``,
    ``x.sigmoid()``, ``F.max_pool2d``) are linearised while `linearised_functions` is
    active, as `autograd_rf` does.

    Args:
        model: a ``torch.nn.Module``.
        seed: the seed of the uniform draws.

    Returns:
        The linearised copy.

    Raises:
        ERFTypeError: ``model`` is not a module.
        ERFValueError: a dilated max pool (no average pool has its geometry).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from erftheory.torch.models import linearised_copy
        >>> copy = linearised_copy(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2)))
        >>> copy
        Sequential(
          (0): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))
          (1): Identity()
          (2): AvgPool2d(kernel_size=2, stride=2, padding=0)
        )
        >>> copy[0].weight.dtype, bool((copy[0].weight > 0).all())
        (torch.float64, True)
    """
    if not isinstance(model, nn.Module):
        raise ERFTypeError(f"linearised_copy takes a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model).double().eval()
    if _is_activation(out):
        return nn.Identity()
    if type(out) in (nn.MaxPool1d, nn.MaxPool2d):
        return _avg_pool(out).eval()
    _replace(out)
    gen = torch.Generator().manual_seed(seed)
    done: set[int] = set()
    with torch.no_grad():
        for mod in out.modules():
            if isinstance(mod, nn.modules.conv._ConvNd | nn.Linear):
                w = mod.weight
                w.copy_(torch.rand(w.shape, generator=gen, dtype=torch.float64) + 0.5)
                dims = tuple(range(1, w.dim()))
                if isinstance(mod, nn.modules.conv._ConvTransposeNd):
                    dims = (0, *range(2, w.dim()))
                w.div_(w.sum(dim=dims, keepdim=True))
                done.add(id(w))
                if mod.bias is not None:
                    mod.bias.zero_()
                    done.add(id(mod.bias))
            elif isinstance(mod, nn.modules.batchnorm._NormBase):
                if mod.weight is not None:
                    mod.weight.fill_(1.0)
                    mod.bias.zero_()
                    done |= {id(mod.weight), id(mod.bias)}
                if mod.running_mean is not None and mod.running_var is not None:
                    mod.running_mean.zero_()
                    mod.running_var.fill_(1.0)
                    done |= {id(mod.running_mean), id(mod.running_var)}
            elif isinstance(mod, nn.GroupNorm | nn.LayerNorm) and mod.weight is not None:
                mod.weight.fill_(1.0)
                done.add(id(mod.weight))
                if mod.bias is not None:
                    mod.bias.zero_()
                    done.add(id(mod.bias))
        tensors = [*out.parameters(), *(b for b in out.buffers() if b.is_floating_point())]
        for t in tensors:
            if id(t) in done:
                continue
            t.abs_()
            if t.numel() and not bool(t.any()):
                t.fill_(1.0)
    return out


_POOL_ARGS = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "ceil_mode",
    "return_indices",
)
_ADAPTIVE_ARGS = ("input", "output_size", "return_indices")


def _bound(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a pooling call by name (torch's positional order)."""
    return {**dict(zip(names, args, strict=False)), **kwargs}


class linearised_functions(TorchFunctionMode):
    """While active, functional activations are the identity and max pools average.

    A ``torch.overrides.TorchFunctionMode``: ``F.relu``, ``F.silu``, ``F.gelu``,
    ``x.sigmoid()``, ``torch.tanh`` and the other activations (in place or not) return
    their input; ``F.max_pool1d/2d`` become ``F.avg_pool1d/2d`` with the same kernel,
    stride, padding and ceil mode, and adaptive max pools adaptive average pools.
    Activation modules call these functions too, so the mode linearises them as well.

    Args:
        record: keep the outputs (below).
        linearise: change the functions (``False``: only record).

    Attributes:
        outputs: with ``record=True``, every tensor produced while active that needs a
            gradient, in order (what `autograd_rf` searches for the last feature map).
        pooled: the ids of the recorded tensors of one pixel (3 or more axes, every
            spatial size 1) and of those computed from such tensors alone (a head's
            permute of a pooled vector to channels-last looks like a map: ConvNeXt).

    Example:
        >>> import torch
        >>> from erftheory.torch.models import linearised_functions
        >>> x = torch.tensor([[-1.0, 3.0]])
        >>> with linearised_functions():
        ...     torch.relu(x), torch.nn.functional.max_pool1d(x, 2)
        (tensor([[-1.,  3.]]), tensor([[1.]]))
    """

    def __init__(self, record: bool = False, linearise: bool = True) -> None:
        super().__init__()
        self.record = record
        self.linearise = linearise
        self.outputs: list[torch.Tensor] = []
        self.pooled: set[int] = set()

    def __torch_function__(  # type: ignore[override]
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        if not self.linearise:
            out = func(*args, **kwargs)
        elif func in _F_ACTIVATIONS:
            out = args[0] if args else kwargs.get("input", kwargs.get("self"))
        elif func in _F_MAX_POOLS:
            a = _bound(_POOL_ARGS, args, kwargs)
            dilation = a.get("dilation", 1)
            if any(d != 1 for d in (dilation if isinstance(dilation, Sequence) else (dilation,))):
                raise ERFValueError(
                    f"a dilated max pool (dilation {dilation}) has no average pool of the "
                    f"same geometry"
                )
            if a.get("return_indices"):
                raise ERFValueError("a max pool that returns its indices cannot be linearised")
            pool: Any = F.avg_pool1d if _F_MAX_POOLS[func] == 1 else F.avg_pool2d
            out = pool(
                a["input"],
                a["kernel_size"],
                a.get("stride") or None,
                a.get("padding", 0),
                ceil_mode=bool(a.get("ceil_mode", False)),
            )
        elif func in _F_ADAPTIVE_MAX_POOLS:
            a = _bound(_ADAPTIVE_ARGS, args, kwargs)
            if a.get("return_indices"):
                raise ERFValueError("a max pool that returns its indices cannot be linearised")
            adaptive: Any = (
                F.adaptive_avg_pool1d if _F_ADAPTIVE_MAX_POOLS[func] == 1 else F.adaptive_avg_pool2d
            )
            out = adaptive(a["input"], a["output_size"])
        else:
            out = func(*args, **kwargs)
        if self.record and isinstance(out, torch.Tensor) and out.requires_grad:
            self.outputs.append(out)
            inputs = [
                t
                for t in torch.utils._pytree.tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor) and t.requires_grad
            ]
            if _flat(out) or (inputs and all(id(t) in self.pooled for t in inputs)):
                self.pooled.add(id(out))
        return out


# ------------------------------------------------------------------------ gates
GATES = ("local", "pooled")


def _flat(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() >= 3 and all(s == 1 for s in t.shape[2:])


def _big(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() >= 3 and any(s > 1 for s in t.shape[2:])


def gate_mul(a: Any, b: Any, gates: str = "local") -> Any:
    """``a * b`` where one factor is a gate of one pixel: held constant, rescaled.

    When one factor is a feature map (more than one pixel) and the other a tensor of one
    pixel per channel (a squeeze-and-excitation gate $s(\\mathrm{pool}(x))$), the gate
    is divided by its (detached) mean, and with ``gates="local"`` detached as well, so
    no gradient flows through the pool: the local ERF. The rescaling changes no support
    and keeps the values of a deep linearised copy finite: there a gate is about the
    mean of the map it multiplies, so unscaled every gated block squares the values and
    EfficientNet's overflow to ``inf`` within 16 blocks (a gradient of NaN everywhere).
    Any other product is plain ``a * b``.

    Example:
        >>> import torch
        >>> from erftheory.torch.models import gate_mul
        >>> x = torch.ones(1, 2, 3, 3, requires_grad=True)
        >>> g = 4 * x.mean(dim=(2, 3), keepdim=True)
        >>> y = gate_mul(x, g)
        >>> float(y.detach().sum()), y.grad_fn is not None
        (18.0, True)
    """
    if gates not in GATES:
        raise ERFValueError(f"gates must be one of {GATES}, got {gates!r}")
    if _flat(b) and _big(a):
        a, b = b, a
    elif not (_flat(a) and _big(b)):
        return a * b
    scale = a.detach().mean()
    gate = a.detach() if gates == "local" else a
    return b * (gate / scale)


def detach_gates(
    module: nn.Module, gates: str = "local", *, input_shape: Sequence[int] | None = None
) -> nn.Module:
    """A traced copy of ``module`` whose products go through `gate_mul`.

    Every multiplication in ``forward`` (``*``, ``*=``, ``torch.mul``, ``.mul``) becomes
    `gate_mul`, which decides on the tensors' shapes at run time: a product of a map and
    a gate of one pixel holds the gate constant (``gates="local"``: the local ERF, as
    `erftheory.torch.trace.from_torch` reads it by default) or keeps the path through
    the pool (``"pooled"``), the gate rescaled to mean one either way. With
    ``input_shape`` (``(C, H, W)``), a forward whose control flow reads a shape (timm's
    VGG head) is traced for that shape (the copy is then for inputs of that shape).

    Raises:
        ERFValueError: ``gates`` is not ``"local"`` or ``"pooled"``.
        ERFTypeError: torch.fx cannot trace the module.

    Example:
        >>> from torch import nn
        >>> from erftheory.torch.models import detach_gates
        >>> type(detach_gates(nn.Conv2d(1, 1, 3))).__name__
        'GraphModule'
    """
    import operator

    from .trace import _trace

    if gates not in GATES:
        raise ERFValueError(f"gates must be one of {GATES}, got {gates!r}")
    batched = None if input_shape is None else (1, *_spatial(input_shape))
    gm = _trace(module, type(module).__name__, batched)
    for node in list(gm.graph.nodes):
        mul = (
            node.op == "call_function" and node.target in (operator.mul, operator.imul, torch.mul)
        ) or (node.op == "call_method" and node.target in ("mul", "mul_"))
        if mul and len(node.args) == 2 and not node.kwargs:
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(gate_mul, (*node.args, gates))
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


# --------------------------------------------------------------------- RF boxes
@dataclass(frozen=True)
class RFBox:
    """Where the field of one output unit lies in an input, per spatial axis.

    Attributes:
        input_size: the input's spatial size.
        output_size: the feature map's spatial size.
        unit: the output unit (the centre one: ``(n - 1) // 2`` per axis).
        lo: the first input pixel of its field (clipped to the input).
        hi: the last input pixel of its field (clipped to the input).
    """

    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    unit: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]

    @property
    def size(self) -> tuple[int, ...]:
        """Pixels from ``lo`` to ``hi``, per axis."""
        return tuple(h - l + 1 for l, h in zip(self.lo, self.hi, strict=True))


def _spatial(input_shape: Any) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
    ):
        raise ERFValueError(
            f"input_shape must be (C, L) or (C, H, W) of positive ints, got {input_shape!r}"
        )
    return shape


def network_rf(network: Any, input_size: int | Sequence[int]) -> RFBox:
    """The `RFBox` a `erftheory.network.Network` predicts for its centre output unit.

    Output unit $i$ reads ``offset + jump*i ... offset + jump*i + size - 1``
    (`erftheory.network.ReceptiveField`), clipped here to the input.

    Example:
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv
        >>> from erftheory.torch.models import network_rf
        >>> network_rf(Network([Conv(3, stride=2, padding=1)] * 2, ndim=2), 9)
        RFBox(input_size=(9, 9), output_size=(3, 3), unit=(1, 1), lo=(1, 1), hi=(7, 7))
    """
    nd = network.ndim
    sizes = (input_size,) * nd if isinstance(input_size, int) else tuple(input_size)
    rf = network.receptive_field
    per = lambda v: (v,) if nd == 1 else tuple(v)  # noqa: E731
    out = per(network.output_size(sizes))
    unit = per(network.centre_output(sizes))
    size, jump, offset = per(rf.size), per(rf.jump), per(rf.offset)
    lo = tuple(max(0, o + j * u) for o, j, u in zip(offset, jump, unit, strict=True))
    hi = tuple(
        min(n - 1, o + j * u + s - 1)
        for o, j, u, s, n in zip(offset, jump, unit, size, sizes, strict=True)
    )
    return RFBox(tuple(sizes), tuple(out), tuple(unit), lo, hi)


def autograd_rf(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    feature_map: str | None = None,
    linearise: bool = True,
    seed: int = 0,
) -> RFBox:
    """The support of autograd's input gradient of the centre unit of the last feature map.

    The model is copied with `linearised_copy` (``linearise=True``) and run in float64
    on one random positive input of ``input_shape`` under `linearised_functions`. The
    *last feature map* is the output of the module at ``feature_map`` (a path such as
    ``"layer4"``) or else the last tensor computed from the input that has the input's
    number of axes and more than one pixel and is not computed from pooled tensors
    alone (the map that global pooling reads: a squeeze-and-excitation gate or a head on
    $1\\times1$ maps, channels-last or not, is skipped, so the map must be larger than
    one pixel). The gradient of the sum over channels of its centre
    unit is taken with respect to the input; its nonzero pixels (summed over channels)
    are the support, returned as their bounding box.

    Args:
        model: a ``torch.nn.Module`` (not changed).
        input_shape: ``(C, H, W)`` or ``(C, L)``, without the batch.
        feature_map: the path of the module whose output is the feature map.
        linearise: copy with `linearised_copy` and run under `linearised_functions`
            (else a float64 copy of the model as it is, run as it is).
        seed: the seed of the weights and of the input.

    Returns:
        The `RFBox` of the support.

    Raises:
        ERFTypeError: ``model`` is not a module; the ``feature_map`` module's output is
            not a tensor.
        ERFValueError: a bad ``input_shape``; no feature map found; an unknown
            ``feature_map``; a gradient that is zero everywhere.

    Example:
        >>> from torch import nn
        >>> from erftheory.torch.models import autograd_rf
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        ...                       nn.Conv2d(8, 8, 3, stride=2, padding=1),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
        >>> autograd_rf(model, (3, 9, 9))
        RFBox(input_size=(9, 9), output_size=(3, 3), unit=(1, 1), lo=(1, 1), hi=(7, 7))
    """
    if not isinstance(model, nn.Module):
        raise ERFTypeError(f"autograd_rf takes a torch.nn.Module, got {type(model).__name__}")
    shape = _spatial(input_shape)
    nd = len(shape) - 1
    grad, out_size, unit = _centre_gradient(model, shape, feature_map, linearise, seed)
    mask = np.asarray((grad.abs().sum(dim=(0, 1)) != 0).numpy())
    if not mask.any():
        raise ERFValueError("the input gradient of the centre unit is zero everywhere")
    lo, hi = [], []
    for axis in range(nd):
        other = tuple(a for a in range(nd) if a != axis)
        hit = mask.any(axis=other) if other else mask
        idx = np.flatnonzero(hit)
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]))
    return RFBox(shape[1:], out_size, unit, tuple(lo), tuple(hi))


def _centre_gradient(
    model: nn.Module,
    shape: tuple[int, ...],
    feature_map: str | None,
    linearise: bool,
    seed: int,
) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """The input gradient of the centre unit's channel sum, as `autograd_rf` takes it."""
    nd = len(shape) - 1
    net = linearised_copy(model, seed=seed) if linearise else copy.deepcopy(model).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand((1, *shape), generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    captured: list[Any] = []
    handle = None
    if feature_map is not None:
        try:
            target_module = net.get_submodule(feature_map)
        except AttributeError:
            raise ERFValueError(
                f"feature_map {feature_map!r} is not a module of {type(model).__name__}"
            ) from None
        handle = target_module.register_forward_hook(lambda m, i, o: captured.append(o))
    mode = linearised_functions(record=feature_map is None, linearise=linearise)
    try:
        with torch.enable_grad(), mode:
            net(x)
    finally:
        if handle is not None:
            handle.remove()
    if feature_map is not None:
        if not captured or not isinstance(captured[-1], torch.Tensor):
            got = type(captured[-1]).__name__ if captured else "nothing (never called)"
            raise ERFTypeError(f"feature_map {feature_map!r} returned {got}, not a tensor")
        fmap = captured[-1]
    else:
        maps = [
            t
            for t in mode.outputs
            if t.dim() == nd + 2
            and t.is_floating_point()
            and any(s > 1 for s in t.shape[2:])
            and id(t) not in mode.pooled
        ]
        if not maps:
            raise ERFValueError(
                f"no feature map larger than one pixel with {nd} spatial axes is computed "
                f"from an input of shape {shape}"
            )
        fmap = maps[-1]
    if fmap.dim() != nd + 2:
        raise ERFValueError(
            f"the feature map has shape {tuple(fmap.shape)}, not (N, C) and {nd} spatial axes"
        )
    out_size = tuple(int(s) for s in fmap.shape[2:])
    unit = tuple((s - 1) // 2 for s in out_size)
    index: tuple[Any, ...] = (0, slice(None), *unit)
    (grad,) = torch.autograd.grad(fmap[index].sum(), x)
    return grad, out_size, unit


def pooled_share(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    feature_map: str | None = None,
    linearise: bool = True,
    seed: int = 0,
) -> float:
    r"""The share of the centre unit's input-gradient mass that passes through gates' pools.

    A squeeze-and-excitation product $y = x\,s(\mathrm{pool}(x))$ has the gradient
    $s\,\delta + x\,s'\,\partial\,\mathrm{pool}/\partial x$: a local path (the gate
    held constant, the local ERF `erftheory.torch.trace.from_torch` reads) and a path
    through the pool, whose RF is the whole input. With $M_\text{local}$ and
    $M_\text{all}$ the sums over the input of the gradient of the centre unit (summed
    over channels, as `autograd_rf` takes it) with the gates held constant and kept
    (`detach_gates` ``"local"`` and ``"pooled"``, same weights, same input), the share
    is $1 - M_\text{local}/M_\text{all}$. With ``linearise=True`` (the default) it is
    that of `autograd_rf`'s linearised copy (positive weights, identity activations),
    where no path cancels, so both masses are positive.

    Args:
        model: a ``torch.nn.Module`` (not changed).
        input_shape: ``(C, H, W)`` or ``(C, L)``.
        feature_map: as for `autograd_rf`.
        linearise: as for `autograd_rf`.
        seed: the seed of the weights and of the input.

    Returns:
        The share, in $[0, 1)$ for a linearised copy (0 without gates).

    Raises:
        ERFValueError: as for `autograd_rf`; a mass of zero.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from erftheory.torch.models import pooled_share
        >>> class Gate(nn.Module):  # y = x * mean(x): share x_u / (mean(x) + x_u)
        ...     def forward(self, x):
        ...         return x * x.mean(dim=(2, 3), keepdim=True)
        >>> round(pooled_share(Gate(), (1, 5, 5), linearise=False), 4)
        0.4637
    """
    masses = []
    for gates in GATES:
        masses.append(
            _gradient_mass(
                detach_gates(model, gates, input_shape=input_shape),
                input_shape,
                feature_map=feature_map,
                linearise=linearise,
                seed=seed,
            )
        )
    local, total = masses
    if not total:
        raise ERFValueError("the input gradient of the centre unit sums to zero")
    return 1.0 - local / total


def _gradient_mass(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    feature_map: str | None,
    linearise: bool,
    seed: int,
) -> float:
    """The input gradient's sum for the centre unit, as `autograd_rf` forms it."""
    shape = _spatial(input_shape)
    grad, _, _ = _centre_gradient(model, shape, feature_map, linearise, seed)
    return float(grad.sum())
