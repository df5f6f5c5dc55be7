"""The layer registry (`erftheory.layers.registry`), parametrised over its entries.

For every layer type: its architecture file round trip, its torch round trip
(``to_torch`` then ``from_torch``), ``variance_network`` and the tables keyed by it. A
layer class that is not registered, or an entry without examples here, fails a test.
"""

from __future__ import annotations

import inspect
import json
from fractions import Fraction
from typing import Any

import pytest

import erftheory.layers as layers_module
from erftheory import ERFTypeError, ERFValueError, Kernel, Network
from erftheory import arch as arch_module
from erftheory.arch import LAYER_TYPES, arch_to_dict, parse_arch
from erftheory.initializations import he_variances, variance_network
from erftheory.layers import (
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
)
from erftheory.layers.elementwise import ACTIVATIONS
from erftheory.layers.registry import REGISTRY, find_type, layer_type, map_nested, walk
from erftheory.layers.schema import OPTION_KINDS

KINDS = ("gradient", "expected_square")

EXAMPLES: dict[str, list[Layer]] = {
    "conv": [
        Conv(3),
        Conv((3, 1), stride=2, dilation=(1, 2), padding="valid"),
        Conv(Kernel([1, 2, 1]), stride=2),
        Conv(Kernel([[1, 2], [3, 4]], anchor=(1, 0)), stride=(2, 1), padding=(1, 0)),
        Conv(Kernel(["1/4", "1/2", "1/4"]), padding=1),
    ],
    "avgpool": [AvgPool(2), AvgPool(3, stride=1, padding=1), AvgPool((2, 3), stride=(2, 1))],
    "maxpool": [MaxPool(2), MaxPool(3, stride=2, padding=1)],
    "relu": [ReLU()],
    "leaky_relu": [LeakyReLU(), LeakyReLU("1/4"), LeakyReLU(-2)],
    "tanh": [Tanh(), Tanh(input_std=0.5)],
    "sigmoid": [Sigmoid(), Sigmoid(input_std=2)],
    "silu": [Elementwise("silu"), Elementwise("silu", input_std=2)],
    "gelu": [Elementwise("gelu")],
    "gelu_tanh": [Elementwise("gelu_tanh")],
    "hardswish": [Elementwise("hardswish")],
    "hardsigmoid": [Elementwise("hardsigmoid")],
    "mish": [Elementwise("mish")],
    "elu": [Elementwise("elu"), Elementwise("elu", alpha="1/2")],
    "selu": [Elementwise("selu")],
    "celu": [Elementwise("celu"), Elementwise("celu", alpha=2)],
    "softplus": [Elementwise("softplus"), Elementwise("softplus", beta=2, threshold=10)],
    "activation": [Activation("gelu", "1/2", "2/5"), Activation("activation", -1, 1)],
    "dropout": [Dropout(), Dropout("1/4")],
    "batchnorm": [BatchNorm(), BatchNorm("1/2"), BatchNorm(-3)],
    "identity": [Identity()],
    "residual": [
        Residual(Conv(3), ReLU(), Conv(3)),
        Residual(Conv(3, stride=2), shortcut=[Conv(1, stride=2, padding=0), BatchNorm(2)]),
    ],
    "parallel": [Parallel([], Conv(1), [Conv(3), Conv(3)]), Parallel(Conv(5), MaxPool(1))],
    "graph": [
        Graph([Conv(3), [Conv(3), ReLU()], []], [[0], [0, 1], [1, 2]]),
        Graph([[], Conv(1)], [[0], [0, 1]]),
    ],
}
"""Examples of every registry entry (a new entry needs some: see the first test)."""

CASES = [
    pytest.param(name, layer, id=f"{name}-{i}")
    for name, layers in EXAMPLES.items()
    for i, layer in enumerate(layers)
]


def _network(layer: Layer) -> Network:
    """The example after a convolution, so that every network has a field to compare."""
    ndim = layer.fixed_ndim or 1
    first = Conv(Kernel([1, 2, 1]) if ndim == 1 else Kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]]))
    return Network([first, layer])


def _same_profiles(a: Network, b: Network) -> None:
    assert a.ndim == b.ndim
    assert a.receptive_field.size == b.receptive_field.size
    assert a.receptive_field.jump == b.receptive_field.jump
    for kind in KINDS:
        pa, pb = a.profile(kind), b.profile(kind)
        assert pa.shape == pb.shape, kind
        assert pa.coefficients == pb.coefficients, kind


# --------------------------------------------------------------------------- the table
def test_every_entry_has_examples() -> None:
    assert list(EXAMPLES) == list(REGISTRY)


def test_every_layer_class_is_registered() -> None:
    def subclasses(cls: type) -> list[type]:
        out = []
        for sub in cls.__subclasses__():
            out += [sub, *subclasses(sub)]
        return out

    registered = {entry.cls for entry in REGISTRY.values()}
    mine = [
        c
        for c in subclasses(Layer)
        if c.__module__.startswith("erftheory.") and not c.__name__.startswith("_")
    ]
    missing = sorted(c.__name__ for c in mine if c not in registered)
    assert not missing, f"Layer subclasses without a registry entry: {missing}"
    # ... and every public layer of erftheory.layers is one of them
    public = {
        obj
        for name in layers_module.__all__
        if inspect.isclass(obj := getattr(layers_module, name)) and issubclass(obj, Layer)
    }
    assert public - {Layer} <= registered


def test_names_kinds_and_the_arch_tables_agree() -> None:
    assert LAYER_TYPES == {
        **{n: e.option_names for n, e in REGISTRY.items()},
        "repeat": ("times", "layers"),
    }
    assert set(arch_module._READERS) == set(OPTION_KINDS) == set(arch_module._WRITERS)
    for name, entry in REGISTRY.items():
        assert entry.name == name
        assert {o.kind for o in entry.options} <= set(OPTION_KINDS)
        assert len(set(entry.option_names)) == len(entry.options)
        if entry.cls is not Elementwise:  # one class, one entry per activation
            assert entry.cls.type_name == name
        assert f"``{name}``" in arch_module.__doc__, f"{name} is not in arch's table"
    assert set(ACTIVATIONS) <= set(REGISTRY)


@pytest.mark.parametrize(("name", "layer"), CASES)
def test_options_rebuild_the_layer(name: str, layer: Layer) -> None:
    entry = layer_type(layer)
    assert entry is REGISTRY[name] and find_type(layer) is entry
    values = layer.options()
    assert tuple(values) == entry.option_names
    again = entry.make(values)
    assert type(again) is type(layer) and repr(again) == repr(layer)
    if name != "activation":
        assert again.options() == values
    # per-axis values are tuples inside
    for opt in entry.options:
        if opt.kind in ("axes", "anchor") and values[opt.name] is not None:
            assert isinstance(values[opt.name], tuple)


# --------------------------------------------------------------------------- (a) arch files
@pytest.mark.parametrize(("name", "layer"), CASES)
def test_arch_round_trip(name: str, layer: Layer) -> None:
    net = _network(layer)
    doc = json.loads(json.dumps(arch_to_dict(net)))  # plain JSON
    entry = doc["layers"][1]
    assert entry == name or list(entry) == [name]
    again = parse_arch(doc)
    assert repr(again) == repr(net)
    assert type(again.layers[1]) is type(layer)
    _same_profiles(again, net)
    assert arch_to_dict(again) == doc


def test_unregistered_layers_are_refused_by_name() -> None:
    class Custom(Layer):
        def __repr__(self) -> str:
            return "Custom()"

    assert find_type(Custom()) is None
    with pytest.raises(ERFTypeError, match=r"Custom\(\) of type Custom is not a registered"):
        layer_type(Custom())
    with pytest.raises(ERFTypeError, match="has no architecture format"):
        arch_module._layer_dict(Custom())
    assert map_nested(Custom(), lambda x: x).__class__ is Custom  # kept as it is
    with pytest.raises(ERFValueError, match="dropout has no option 'q'"):
        REGISTRY["dropout"].make({"q": 1})


def test_subclasses_of_registered_layers_are_read_as_them() -> None:
    class MyConv(Conv):
        pass

    assert find_type(MyConv(3)) is REGISTRY["conv"]
    assert arch_to_dict(Network([MyConv(3)]))["layers"] == [{"conv": {"size": 3}}]


# --------------------------------------------------------------------------- (c) variances
@pytest.mark.parametrize(("name", "layer"), CASES)
def test_variance_network_handles_every_entry(name: str, layer: Layer) -> None:
    net = _network(layer)
    out = variance_network(net)
    before, after = list(walk(net.layers)), list(walk(out.layers))
    assert [type(x) for x in before] == [type(x) for x in after]
    nd = net.ndim
    for old, new in zip(before, after, strict=True):
        if isinstance(old, Conv):
            assert new.kernel("gradient", nd).weights == he_variances(old.size(nd)).weights
            assert new.kernel("gradient", nd).anchors == old.anchors(nd)
            for geometry in ("stride", "dilation", "padding"):
                assert getattr(new, geometry)(nd) == getattr(old, geometry)(nd)
        elif not layer_type(old).nested:
            assert new is old
    assert out.receptive_field == net.receptive_field


def test_map_nested_rebuilds_blocks_only() -> None:
    res = Residual(Conv(3), ReLU(), shortcut=[Conv(1)])
    out = map_nested(res, lambda x: Identity() if isinstance(x, ReLU) else x)
    assert repr(out) == "Residual(Conv(3), Identity(), shortcut=[Conv(1)])"
    relu = ReLU()
    assert map_nested(relu, lambda x: Identity()) is relu


# --------------------------------------------------------------------------- (b), (d) torch
# Examples that torch expresses exactly: odd kernels (even ones pad asymmetrically through a
# Pad module), input_std 1 (a torch module has no input distribution), dyadic numbers.
TORCH_EXAMPLES: dict[str, list[Layer]] = {
    "conv": [Conv(3), Conv(Kernel([1, 2, 1]), stride=2), Conv((3, 1), dilation=(1, 2))],
    "avgpool": [AvgPool(2), AvgPool(3, stride=1, padding=1)],
    "maxpool": [MaxPool(2), MaxPool(3, stride=2, padding=1)],
    "relu": [ReLU()],
    "leaky_relu": [LeakyReLU(), LeakyReLU("1/4")],
    "tanh": [Tanh()],
    "sigmoid": [Sigmoid()],
    **{name: [Elementwise(name)] for name in ACTIVATIONS},
    "elu": [Elementwise("elu"), Elementwise("elu", alpha="1/2")],
    "celu": [Elementwise("celu", alpha=2)],
    "softplus": [Elementwise("softplus", beta=2, threshold=10)],
    "activation": [],  # only its factors are known: no torch module
    "dropout": [Dropout(), Dropout("1/4")],
    "batchnorm": [BatchNorm("1/2"), BatchNorm(-3)],
    "identity": [Identity()],
    "residual": [
        Residual(Conv(3), ReLU(), Conv(3)),
        Residual(Conv(3, stride=2), shortcut=[Conv(1, stride=2, padding=0), BatchNorm(2)]),
    ],
    "parallel": [Parallel([], Conv(1), [Conv(3), Conv(3)])],
    "graph": [Graph([Conv(3), [Conv(3), ReLU()], []], [[0], [0, 1], [1, 2]])],
}
TORCH_CASES = [
    pytest.param(name, layer, id=f"{name}-{i}")
    for name, layers in TORCH_EXAMPLES.items()
    for i, layer in enumerate(layers)
]


def test_every_entry_has_torch_examples_or_a_reason() -> None:
    assert list(TORCH_EXAMPLES) == list(REGISTRY)
    assert [n for n, v in TORCH_EXAMPLES.items() if not v] == ["activation"]


def test_every_entry_has_a_torch_builder_and_a_recogniser() -> None:
    pytest.importorskip("torch")
    from erftheory.torch import build, trace

    assert list(build._MODULES) == list(REGISTRY)
    assert list(trace.FROM_TORCH) == list(REGISTRY)
    lookups = trace._lookups()
    for name, reads in trace.FROM_TORCH.items():
        assert reads.modules or reads.functions or reads.methods or reads.structure, name
        for key in reads.modules:
            assert trace._lookups().module(trace_resolve(key)) is not None, key
        for key in reads.functions:
            assert trace_resolve(key) in lookups.functions, key
    for name, act in ACTIVATIONS.items():
        reads = trace.FROM_TORCH[name]
        assert f"nn.{act.torch_module}" in reads.modules
        assert set(act.torch_functions) <= set(reads.functions)
    # every nn module from_torch reads is a leaf of the trace, and named in its messages
    for cls in lookups.modules:
        assert cls in trace._leaf_types()
        if cls.__module__.startswith("torch.nn"):
            assert cls.__name__.rstrip("12d") in trace.SUPPORTED, cls


def trace_resolve(key: str) -> Any:
    import torch

    from erftheory.torch import build

    space, _, name = key.partition(".")
    spaces = {"nn": torch.nn, "F": torch.nn.functional, "torch": torch, "build": build}
    obj = getattr(spaces[space], name, None)
    assert obj is not None, f"{key} is not in this torch"
    return obj


@pytest.mark.parametrize(("name", "layer"), TORCH_CASES)
def test_torch_round_trip(name: str, layer: Layer) -> None:
    pytest.importorskip("torch")
    from erftheory.torch import to_torch
    from erftheory.torch.trace import from_torch

    net = _network(layer)
    model = to_torch(net)
    n = net.min_input_size()
    shape = (1, *(n if isinstance(n, tuple) else (n,)))
    again = from_torch(model, shape, weights="model")
    _same_profiles(again, net)
    if name not in ("identity", "residual", "parallel", "graph"):  # identity dropped; blocks vary
        assert [find_type(x).name for x in again.layers[1:]] == [name]
    else:
        assert len(again.layers) >= 1


def test_a_generic_activation_has_no_torch_module() -> None:
    pytest.importorskip("torch")
    from erftheory.torch import to_torch

    with pytest.raises(ERFTypeError, match=r"generic Activation .* no torch module"):
        to_torch(Network([Conv(3), Activation("x", 1, 1)]))

    import torch

    from erftheory.torch.build import _Builder

    class Custom(Layer):
        def __repr__(self) -> str:
            return "Custom()"

    builder = _Builder(1, "kernel", torch.float64, None, 1, 1)
    with pytest.raises(ERFTypeError, match=r"Custom\(\) of type Custom has no torch counterpart"):
        builder.layer(Custom())


def test_from_torch_reads_the_scale_module_as_batch_norm() -> None:
    pytest.importorskip("torch")
    import torch.nn as nn

    from erftheory.torch.build import Scale
    from erftheory.torch.trace import from_torch

    model = nn.Sequential(nn.Conv1d(1, 1, 3, bias=False), Scale(0.5))
    assert repr(from_torch(model, (1, 9), weights="variance").layers[1]) == "BatchNorm(scale=1/2)"
    assert len(from_torch(model, (1, 9))) == 1  # all-ones weights: batch norm is the identity


def test_from_torch_describes_the_blocks_and_factors() -> None:
    pytest.importorskip("torch")
    from erftheory.torch import trace

    assert trace.FROM_TORCH["residual"].structure
    assert trace.FROM_TORCH["parallel"].structure
    assert trace.FROM_TORCH["activation"].structure


def test_exact_numbers_survive_the_torch_round_trip() -> None:
    pytest.importorskip("torch")
    from erftheory.torch import to_torch
    from erftheory.torch.trace import from_torch

    net = Network([Conv(Kernel([1, 2, 1])), LeakyReLU("1/100"), Dropout("1/10"), ReLU()])
    again = from_torch(to_torch(net), (1, 9), weights="model")
    assert again.layers[1].negative_slope == Fraction(1, 100)
    assert again.layers[2].p == Fraction(1, 10)
