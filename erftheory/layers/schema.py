r"""The schema of a layer type: its name, its options and how it is built from them.

A `LayerType` is one entry of the layer registry (`erftheory.layers.registry.REGISTRY`).
It says everything that the readers and writers of layers need without knowing the layer:
the name of the type in architecture files, each `Option` (its key, the kind of value it
holds, its default) and the function that builds the layer from the option values. The
layer itself answers the reverse question with `erftheory.layers.Layer.options`, so
``entry.make(layer.options())`` rebuilds an equal layer.

Option kinds are a small closed set (`OPTION_KINDS`); each reader and writer of a format
handles every kind once (`erftheory.arch` for architecture files), so a new layer whose
options are of known kinds needs no change there.

Example:
    >>> from fractions import Fraction
    >>> from erftheory.layers import Dropout
    >>> entry = LayerType(
    ...     "dropout", Dropout, (Option("p", "number", default=Fraction(1, 2), always=True),)
    ... )
    >>> entry.make({"p": Fraction(1, 4)})
    Dropout(0.25)
    >>> entry.option_names
    ('p',)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, get_args

from .._errors import ERFValueError

__all__ = ["OPTION_KINDS", "LayerType", "Option", "OptionKind"]

OptionKind = Literal[
    "axes", "anchor", "padding", "kernel", "number", "label", "layers", "branches", "inputs"
]
OPTION_KINDS: tuple[str, ...] = get_args(OptionKind)
"""Every kind of option value:

- ``"axes"``: an int (every axis) or a tuple of ints, one per axis (sizes, strides,
  dilations), at least `Option.minimum`;
- ``"anchor"``: the same, at least 0, read with the kernel it belongs to;
- ``"padding"``: ``"same"``, ``"valid"`` or zeros per axis;
- ``"kernel"``: a `erftheory.Kernel`;
- ``"number"``: an exact number (a Fraction; a float where the layer keeps one);
- ``"label"``: a short string;
- ``"layers"``: a chain of layers (a tuple);
- ``"branches"``: a tuple of chains;
- ``"inputs"``: a tuple of tuples of node indices (ints at least 0): the inputs of the
  nodes of a `erftheory.layers.Graph`.
"""


@dataclass(frozen=True)
class Option:
    r"""One option of a layer type.

    Attributes:
        name: its key in architecture files and its keyword in `LayerType.make`.
        kind: the kind of value (`OPTION_KINDS`).
        default: the value when the option is not given. ``None`` means that the layer
            derives it from its other options (a pool's stride is its size) or that it
            is given instead of another (a kernel or a size).
        always: write the option even when it has its default value.
        minimum: the least value on an axis (``"axes"``).
        valid: the accepted values of a ``"number"`` (None: every finite number).
        valid_text: the same in words, for messages (``"in [0, 1)"``).
        required: when not empty the option must be given; what it is, for the message
            ``needs ...`` (``{max_axis}`` is replaced by the format's limit per axis).
        empty: an empty chain (the identity) is allowed (``"layers"``).
        quadrature: each distinct value costs a numerical integration, so a reader may
            bound how many different values a document holds.
    """

    name: str
    kind: OptionKind
    default: Any = None
    always: bool = False
    minimum: int = 1
    valid: Callable[[Fraction], bool] | None = None
    valid_text: str = ""
    required: str = ""
    empty: bool = False
    quadrature: bool = False


@dataclass(frozen=True)
class LayerType:
    r"""One entry of the layer registry: a layer type and how to build it.

    Attributes:
        name: the type's name in architecture files (``"conv"``); also the key of the
            tables of `erftheory.torch` (`to_torch`, `from_torch`) and of
            `erftheory.initializations.variance_network`.
        cls: the `erftheory.layers.Layer` subclass it builds.
        options: its options, in the order they are written.
        build: a function from the option values (keywords) to the layer; None builds
            ``cls(**values)``.
        rules: a check of which options a document gives together: from the set of
            given keys, None or ``(suffix, message)`` for the error at ``path + suffix``.
        summary: one line for tables of layer types.
    """

    name: str
    cls: type
    options: tuple[Option, ...] = ()
    build: Callable[..., Any] | None = None
    rules: Callable[[Collection[str]], tuple[str, str] | None] | None = None
    summary: str = ""

    @property
    def option_names(self) -> tuple[str, ...]:
        """The keys of its options, in order."""
        return tuple(o.name for o in self.options)

    @property
    def nested(self) -> bool:
        """Whether it holds other layers (a block)."""
        return any(o.kind in ("layers", "branches") for o in self.options)

    def defaults(self) -> dict[str, Any]:
        """Every option at its default value."""
        return {o.name: o.default for o in self.options}

    def make(self, values: Mapping[str, Any]) -> Any:
        """The layer from option values; options left out take their defaults."""
        unknown = set(values) - set(self.option_names)
        if unknown:
            raise ERFValueError(
                f"{self.name} has no option {sorted(unknown)[0]!r}; its options are: "
                f"{', '.join(self.option_names) or 'none'}"
            )
        full = {**self.defaults(), **values}
        build = self.build if self.build is not None else self.cls
        return build(**full)
