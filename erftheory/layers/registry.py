r"""The layer registry: every layer type, its options and how it is built from them.

`REGISTRY` maps each type's name (as written in architecture files) to its `LayerType`.
Everything that reads or writes layers is driven by it, so a new layer type is one entry
here (with its class in `erftheory.layers`) and one row in each torch table keyed by the
same names:

- `erftheory.arch` reads and writes every type from its options (`parse_arch`,
  `arch_to_dict`), kind by kind (`erftheory.layers.schema.OPTION_KINDS`);
- `erftheory.torch.to_torch` builds a module per entry (``build._MODULES``) and
  `erftheory.torch.from_torch` recognises torch modules and functions per entry
  (``trace.FROM_TORCH``);
- `erftheory.initializations.variance_network` replaces convolutions and rebuilds blocks
  through `map_nested`.

A pointwise activation of `erftheory.layers.elementwise.ACTIVATIONS` is one entry there;
its registry entry, its architecture type and its torch mappings follow from it.

Example:
    >>> from erftheory.layers import Conv, ReLU
    >>> list(REGISTRY)[:4]
    ['conv', 'avgpool', 'maxpool', 'relu']
    >>> entry = layer_type(Conv(3, stride=2))
    >>> entry.name, entry.option_names
    ('conv', ('kernel', 'size', 'anchor', 'stride', 'dilation', 'padding'))
    >>> entry.make(Conv(3, stride=2).options())
    Conv(3, stride=2)
    >>> REGISTRY["elu"].make({"alpha": 2})
    Elementwise('elu', alpha=2)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from fractions import Fraction
from functools import partial
from typing import Any

from .._errors import ERFTypeError
from ..kernel import Kernel
from . import (
    MAX_INPUT_STD,
    MIN_INPUT_STD,
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Elementwise,
    Graph,
    Identity,
    Layer,
    LeakyReLU,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
    _Block,
)
from .elementwise import ACTIVATIONS
from .schema import LayerType, Option

__all__ = ["REGISTRY", "find_type", "layer_type", "map_nested", "walk"]


# --------------------------------------------------------------------------- builders
def _conv(kernel: Any, size: Any, anchor: Any, stride: Any, dilation: Any, padding: Any) -> Conv:
    if kernel is not None and anchor is not None:
        anchors = (anchor,) * kernel.ndim if isinstance(anchor, int) else tuple(anchor)
        if anchors != kernel.anchors:  # an arch file's kernel already holds its anchor
            kernel = Kernel(kernel, anchor=anchor)
    first = kernel if kernel is not None else size
    return Conv(first, stride=stride, dilation=dilation, padding=padding)


def _conv_rules(keys: Collection[str]) -> tuple[str, str] | None:
    if ("kernel" in keys) == ("size" in keys):
        return "", (
            "give exactly one of 'kernel' (weights such as \"1,2,1\") and 'size' (the "
            "all-ones kernel)"
        )
    if "anchor" in keys and "kernel" not in keys:
        return ".anchor", "only a 'kernel' takes an anchor"
    return None


def _residual(layers: Sequence[Layer], shortcut: Sequence[Layer]) -> Residual:
    return Residual(*layers, shortcut=list(shortcut) or None)


def _parallel(branches: Sequence[Sequence[Layer]]) -> Parallel:
    return Parallel(*[list(b) for b in branches])


# --------------------------------------------------------------------------- options
_INPUT_STD = Option(
    "input_std",
    "number",
    default=1,
    valid=lambda f: MIN_INPUT_STD <= f <= MAX_INPUT_STD,
    valid_text="a positive number in [1e-6, 1e6]",
    quadrature=True,
)
_POOL = (
    Option("size", "axes", required="'size' (an int in [1, {max_axis}] per axis)"),
    Option("stride", "axes"),  # None: the size
    Option("padding", "padding", default=(0,)),
)
_FACTORS = "'gradient_factor' (E[σ'(x)]) and 'square_factor' (E[σ'(x)²] ≥ 0)"


def _activation(name: str) -> LayerType:
    act = ACTIVATIONS[name]
    return LayerType(
        name,
        Elementwise,
        (*act.params, _INPUT_STD),
        build=partial(Elementwise, name),
        summary=f"the activation {name} (`Elementwise`)",
    )


REGISTRY: dict[str, LayerType] = {
    t.name: t
    for t in (
        LayerType(
            "conv",
            Conv,
            (
                Option("kernel", "kernel"),
                Option("size", "axes"),
                Option("anchor", "anchor", minimum=0),
                Option("stride", "axes", default=(1,)),
                Option("dilation", "axes", default=(1,)),
                Option("padding", "padding", default="same"),
            ),
            build=_conv,
            rules=_conv_rules,
            summary="a convolution: fixed weights or per-tap variances",
        ),
        LayerType("avgpool", AvgPool, _POOL, summary="average pooling"),
        LayerType("maxpool", MaxPool, _POOL, summary="max pooling"),
        LayerType("relu", ReLU, summary="ReLU"),
        LayerType(
            "leaky_relu",
            LeakyReLU,
            (Option("negative_slope", "number", default=Fraction(1, 100), always=True),),
            summary="leaky ReLU",
        ),
        LayerType("tanh", Tanh, (_INPUT_STD,), summary="tanh of Gaussian inputs"),
        LayerType("sigmoid", Sigmoid, (_INPUT_STD,), summary="sigmoid of Gaussian inputs"),
        *(_activation(name) for name in ACTIVATIONS),
        LayerType(
            "activation",
            Activation,
            (
                Option("name", "label", default="activation", always=True),
                Option("gradient_factor", "number", always=True, required=_FACTORS),
                Option(
                    "square_factor",
                    "number",
                    always=True,
                    valid=lambda f: f >= 0,
                    valid_text="≥ 0",
                    required=_FACTORS,
                ),
            ),
            summary="any activation, given its two factors",
        ),
        LayerType(
            "dropout",
            Dropout,
            (
                Option(
                    "p",
                    "number",
                    default=Fraction(1, 2),
                    always=True,
                    valid=lambda f: 0 <= f < 1,
                    valid_text="in [0, 1)",
                ),
            ),
            summary="inverted dropout in training mode",
        ),
        LayerType(
            "batchnorm",
            BatchNorm,
            (Option("scale", "number", default=1),),
            summary="batch normalisation in evaluation mode",
        ),
        LayerType("identity", Identity, summary="the identity"),
        LayerType(
            "residual",
            Residual,
            (
                Option(
                    "layers", "layers", required="'layers', the residual branch F of y = x + F(x)"
                ),
                Option("shortcut", "layers", default=(), empty=True),
            ),
            build=_residual,
            summary="a residual block x + F(x)",
        ),
        LayerType(
            "parallel",
            Parallel,
            (Option("branches", "branches", required="'branches', a list of layer lists"),),
            build=_parallel,
            summary="branches summed",
        ),
        LayerType(
            "graph",
            Graph,
            (
                Option("nodes", "branches", required="'nodes', a list of layer lists"),
                Option(
                    "inputs",
                    "inputs",
                    required="'inputs', per node the list of the earlier nodes it reads",
                ),
            ),
            summary="any DAG of chains, summed at each node",
        ),
    )
}
"""Every layer type, by its name in architecture files, in the order of the file format."""


def find_type(layer: Any) -> LayerType | None:
    """The registry entry of ``layer``, or None for a type that is not registered.

    A subclass of a registered layer (that keeps its ``type_name``) is read as it.

    Example:
        >>> find_type(ReLU()).name, find_type(Elementwise("silu")).name
        ('relu', 'silu')
        >>> find_type("relu") is None
        True
    """
    entry = REGISTRY.get(getattr(layer, "type_name", None) or "")
    return entry if entry is not None and isinstance(layer, entry.cls) else None


def layer_type(layer: Any) -> LayerType:
    """The registry entry of ``layer``.

    Raises:
        ERFTypeError: ``layer`` is not of a registered layer type.

    Example:
        >>> layer_type(Tanh(input_std=2)).option_names
        ('input_std',)
    """
    entry = find_type(layer)
    if entry is None:
        raise ERFTypeError(
            f"{layer!r} of type {type(layer).__name__} is not a registered layer type"
        )
    return entry


def map_nested(layer: Layer, fn: Callable[[Layer], Layer]) -> Layer:
    """``layer`` with ``fn`` applied to every layer it holds (a block), else ``layer``.

    Example:
        >>> map_nested(Residual(Conv(3), ReLU()), lambda x: Identity())
        Residual(Identity(), Identity())
    """
    entry = find_type(layer)
    if entry is None or not entry.nested:
        return layer
    values = layer.options()
    for opt in entry.options:
        if opt.kind == "layers":
            values[opt.name] = tuple(fn(x) for x in values[opt.name])
        elif opt.kind == "branches":
            values[opt.name] = tuple(tuple(fn(x) for x in b) for b in values[opt.name])
    rebuilt: Layer = entry.make(values)
    return rebuilt


def walk(layers: Sequence[Layer]) -> Iterator[Layer]:
    """Every layer of a chain, blocks first and then the layers they hold, recursively.

    Example:
        >>> [repr(x) for x in walk([Conv(1), Residual(Conv(3), shortcut=[Conv(1)])])]
        ['Conv(1)', 'Residual(Conv(3), shortcut=[Conv(1)])', 'Conv(1)', 'Conv(3)']
    """
    for layer in layers:
        yield layer
        if isinstance(layer, _Block):
            for branch in layer.branches:
                yield from walk(branch)
        elif isinstance(layer, Graph):
            for node in layer.nodes:
                yield from walk(node)
