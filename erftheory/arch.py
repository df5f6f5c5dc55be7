r"""Architectures as data: a JSON (or YAML) description of a `erftheory.network.Network`.

`load_arch` reads a file, `parse_arch` takes the decoded document (a dict or a list),
and `arch_to_dict` writes a `Network` back as a document. The command line reads the
same files: ``erftheory profile --arch FILE``. ``docs/architectures.md`` derives the
algebra behind it; ``docs/examples/*.json`` holds VGG-16, ResNet-18 and the networks
of Sections 2.5 and 3.1.

## The document

An object with the keys

- ``"layers"`` (required): the layers, input first (see below);
- ``"ndim"``: 1 or 2. Without it the dimension comes from the layers (a 2-D kernel, a
  per-axis list of two values), and is 1 when nothing fixes it;
- ``"name"``, ``"description"``: free text, ignored.

A bare list is the same as ``{"layers": [...]}``. Unknown keys are errors everywhere.

## Layers

A layer is either the name of its type (``"relu"``) or an object with exactly one key,
the type, whose value holds the options (``{"conv": {"size": 3, "stride": 2}}``;
``{"relu": {}}`` and ``{"relu": null}`` are the same as ``"relu"``).

| type | options (defaults) | layer |
|---|---|---|
| ``conv`` | ``kernel`` or ``size``; ``anchor``; ``stride`` (1); ``dilation`` (1); ``padding`` (``"same"``) | `~erftheory.layers.Conv` |
| ``avgpool`` | ``size``; ``stride`` (= size); ``padding`` (0) | `~erftheory.layers.AvgPool` |
| ``maxpool`` | ``size``; ``stride`` (= size); ``padding`` (0) | `~erftheory.layers.MaxPool` |
| ``relu``, ``identity`` | none | `~erftheory.layers.ReLU`, `~erftheory.layers.Identity` |
| ``leaky_relu`` | ``negative_slope`` (``"1/100"``) | `~erftheory.layers.LeakyReLU` |
| ``tanh``, ``sigmoid`` | ``input_std`` (1) | `~erftheory.layers.Tanh`, `~erftheory.layers.Sigmoid` |
| ``silu``, ``gelu``, ``gelu_tanh``, ``hardswish``, ``hardsigmoid``, ``mish``, ``selu`` | ``input_std`` (1) | `~erftheory.layers.Elementwise` |
| ``elu``, ``celu`` | ``alpha`` (1); ``input_std`` (1) | `~erftheory.layers.Elementwise` |
| ``softplus`` | ``beta`` (1); ``threshold`` (20); ``input_std`` (1) | `~erftheory.layers.Elementwise` |
| ``activation`` | ``name`` (``"activation"``); ``gradient_factor``; ``square_factor`` | `~erftheory.layers.Activation` |
| ``dropout`` | ``p`` (``"1/2"``) | `~erftheory.layers.Dropout` |
| ``batchnorm`` | ``scale`` (1) | `~erftheory.layers.BatchNorm` |
| ``residual`` | ``layers``; ``shortcut`` (``[]``, the identity) | `~erftheory.layers.Residual` |
| ``parallel`` | ``branches``: a list of layer lists (``[]`` is the identity) | `~erftheory.layers.Parallel` |
| ``graph`` | ``nodes``: a list of layer lists; ``inputs``: per node the list of earlier nodes it reads (0 is the input) | `~erftheory.layers.Graph` |
| ``repeat`` | ``times``; ``layers`` | the layers, ``times`` times in a row |

Every type but ``repeat`` is an entry of the layer registry
(`erftheory.layers.registry.REGISTRY`), which this table follows.

Values:

- ``kernel``: text read exactly by `erftheory.Kernel.parse` (``"1,2,1"``;
  ``"1,2,1;2,4,2;1,2,1"`` in 2-D), or a list of weights, or a list of rows. Weights
  are ints, strings such as ``"1/4"`` or ``"0.25"``, or JSON decimals; every one is
  read exactly (``0.1`` is $1/10$), nothing is evaluated. In ``kind="gradient"`` the
  kernel holds fixed weights, in ``kind="expected_square"`` per-tap weight variances.
  ``size`` instead of ``kernel`` gives the all-ones kernel of Section 2.1.
- ``size``, ``stride``, ``dilation``, ``anchor``, ``padding``: an int (every axis) or a
  list with one int per axis; sizes, strides and dilations in $[1, 1024]$, paddings and
  anchors in $[0, 1024]$. ``padding`` may also be ``"same"`` or ``"valid"``.
- ``negative_slope``, ``p``, ``scale``, ``input_std``, ``gradient_factor``,
  ``square_factor``, ``alpha``, ``beta``, ``threshold``: a number, or a string such as
  ``"1/3"`` (exact; ints of any size stay exact). ``input_std`` lies in
  $[10^{-6}, 10^6]$, where the quadrature of its factors is accurate; ``elu.alpha`` and
  ``softplus.threshold`` in $[-10^6, 10^6]$, ``celu.alpha`` and ``softplus.beta`` in
  $[10^{-3}, 10^3]$.
- ``repeat.times``: an int in $[1, 10\,000]$.

Limits keep every file cheap to read: at most 10 000 layers in all (every layer
counts, nested and repeated ones included), blocks nested at most 32 deep, at most 64
different ``input_std`` values or activation parameters (each costs a numerical
integration), regular files
of at most 10 MiB (a FIFO or a device is refused before it is opened for reading),
YAML without aliases (``*name``; use ``repeat``). Every error is an `erftheory.ERFValueError` or `erftheory.ERFTypeError`
whose message starts with the path of the offending value
(``layers[3].conv.stride``) and states the valid range.

## Files

`load_arch` reads UTF-8 JSON, or YAML when the name ends in ``.yaml`` or ``.yml``
(YAML needs PyYAML, which erftheory does not require).

Example:
    >>> from erftheory.arch import parse_arch, arch_to_dict
    >>> net = parse_arch({
    ...     "ndim": 1,
    ...     "layers": [
    ...         {"conv": {"kernel": "1,2,1"}},
    ...         "relu",
    ...         {"conv": {"size": 3, "stride": 2}},
    ...         {"residual": {"layers": [{"conv": {"size": 3}}, "relu", {"conv": {"size": 3}}]}},
    ...         {"repeat": {"times": 2, "layers": [{"maxpool": {"size": 2}}]}},
    ...     ],
    ... })
    >>> net
    Network([Conv(Kernel([1, 2, 1])), ReLU(), Conv(3, stride=2), Residual(Conv(3), ReLU(), Conv(3)), MaxPool(2), MaxPool(2)])
    >>> net.receptive_field
    ReceptiveField(size=19, jump=8, offset=-6)
    >>> parse_arch(arch_to_dict(net)).receptive_field == net.receptive_field
    True
    >>> parse_arch({"layers": [{"conv": {"size": 3, "stride": -2}}]})
    Traceback (most recent call last):
    ...
    erftheory.ERFValueError: layers[0].conv.stride: must be an int in [1, 1024] or a list of such ints, one per axis; got -2
    >>> parse_arch(["relu", {"rleu": {}}])
    Traceback (most recent call last):
    ...
    erftheory.ERFValueError: layers[1]: unknown layer type 'rleu' (did you mean 'relu'?); ...
"""  # noqa: E501

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
import stat
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ._errors import ERFTypeError, ERFValueError, MissingDependencyError, with_context
from .kernel import Kernel, parse_weight
from .layers import Layer
from .layers.registry import REGISTRY, find_type
from .layers.schema import Option
from .network import Network

__all__ = [
    "LAYER_TYPES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INPUT_STDS",
    "MAX_LAYERS",
    "MAX_REPEAT",
    "arch_to_dict",
    "load_arch",
    "parse_arch",
]

MAX_LAYERS = 10_000
"""The most layers a document may describe, nested and repeated ones included."""
MAX_REPEAT = 10_000
"""The largest ``repeat.times``."""
MAX_DEPTH = 32
"""The deepest nesting of blocks (``residual``, ``parallel``, ``repeat``)."""
MAX_AXIS = 1024
"""The largest size, stride, dilation, padding or anchor on one axis."""
MAX_FILE_BYTES = 10 * 1024**2
"""The largest architecture file `load_arch` reads."""
MAX_INPUT_STDS = 64
"""The most distinct ``input_std`` values (and parameters) of the activations whose
factors are integrals, ``tanh``, ``sigmoid``, ``elu``, ... (each costs a quadrature)."""

LAYER_TYPES: dict[str, tuple[str, ...]] = {
    **{name: entry.option_names for name, entry in REGISTRY.items()},
    "repeat": ("times", "layers"),
}
"""Every layer type and its options: the registry's (`erftheory.layers.registry`), and
``repeat``, which only the file format has."""

_TOP_KEYS = ("layers", "ndim", "name", "description")
_NUMBER_FORMS = "an int, a decimal, or a string such as '1/4'"


def _kinds(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _hint(key: Any, valid: Sequence[str] | dict[str, Any]) -> str:
    """`` (did you mean 'relu'?)`` for a near miss, else ``""``."""
    if not isinstance(key, str):
        return ""
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value: Any, width: int = 60) -> str:
    """``repr(value)``, clipped to ``width`` characters.

    Built piece by piece and stopped at ``width``: never the repr of a whole document
    (YAML aliases can make a small file a huge value), never a huge int in decimal.
    """
    parts: list[str] = []
    room = [width + 1]

    def put(text: str) -> bool:
        parts.append(text[: room[0]])
        room[0] -= len(text)
        return room[0] > 0

    def walk(x: Any, depth: int) -> bool:
        if _is_int(x) and abs(x).bit_length() > 4 * width:
            return put(f"<an int of {abs(x).bit_length()} bits>")
        if isinstance(x, str):
            return put(repr(x[: room[0] + 1]))
        if isinstance(x, (bytes, bytearray)):
            return put(repr(bytes(x[: room[0] + 1])))
        if isinstance(x, (list, tuple, dict, set, frozenset)):
            if depth > 8:
                return put("…")
            if isinstance(x, dict):
                open_, close = "{", "}"
            elif isinstance(x, (set, frozenset)):
                open_, close = "{", "}"
            else:
                open_, close = ("[", "]") if isinstance(x, list) else ("(", ")")
            if not put(open_):
                return False
            for i, item in enumerate(x.items() if isinstance(x, dict) else x):
                if i and not put(", "):
                    return False
                if isinstance(x, dict):
                    if not (walk(item[0], depth + 1) and put(": ") and walk(item[1], depth + 1)):
                        return False
                elif not walk(item, depth + 1):
                    return False
            return put(close)
        if isinstance(x, (bool, float)) or x is None or _is_int(x):
            return put(repr(x))
        return put(f"<{type(x).__name__}>")

    walk(value, 0)
    text = "".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


class _Reader:
    """One pass over a document: counts layers and records what fixes the dimension."""

    def __init__(self) -> None:
        self.count = 0
        self.dims: list[tuple[int, str]] = []  # (ndim, path) of whatever fixes a dimension
        self.stds: set[tuple[str, tuple[Any, ...]]] = set()  # the quadratures needed

    # ------------------------------------------------------------------ values
    def _add(self, n: int, path: str) -> None:
        self.count += n
        if self.count > MAX_LAYERS:
            raise ERFValueError(
                f"{path}: the architecture has more than {MAX_LAYERS} layers (nested and "
                f"repeated layers count); at most {MAX_LAYERS} are allowed"
            )

    def axes(self, value: Any, path: str, low: int) -> int | tuple[int, ...]:
        """An int or a per-axis list of ints in ``[low, MAX_AXIS]``."""
        rng = f"an int in [{low}, {MAX_AXIS}] or a list of such ints, one per axis"
        if _is_int(value):
            values: tuple[Any, ...] = (value,)
        elif _is_list(value):
            if not 1 <= len(value) <= 2:
                raise ERFValueError(
                    f"{path}: a per-axis list has 1 or 2 entries (layers are 1-D or 2-D), "
                    f"got {len(value)}"
                )
            values = tuple(value)
            for i, v in enumerate(values):
                if not _is_int(v):
                    raise ERFTypeError(f"{path}[{i}]: must be {rng}; got {_kinds(v)} {_short(v)}")
        else:
            raise ERFTypeError(f"{path}: must be {rng}; got {_kinds(value)} {_short(value)}")
        for v in values:
            if not low <= v <= MAX_AXIS:
                raise ERFValueError(f"{path}: must be {rng}; got {_short(value)}")
        if len(values) == 2:
            self.dims.append((2, path))
            return (int(values[0]), int(values[1]))
        return int(values[0])

    def padding(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            if value not in ("same", "valid"):
                raise ERFValueError(
                    f"{path}: must be 'same', 'valid', an int in [0, {MAX_AXIS}] or a list of "
                    f"such ints, one per axis; got {_short(value)}"
                )
            return value
        return self.axes(value, path, 0)

    @staticmethod
    def number(value: Any, path: str) -> Fraction:
        """A finite number, exactly: ints, decimals (0.1 is 1/10) and strings like '1/4'."""
        if isinstance(value, str):
            try:
                return Fraction(parse_weight(value))
            except ERFValueError:
                raise ERFValueError(
                    f"{path}: {_short(value)} is not a number; write {_NUMBER_FORMS}"
                ) from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ERFTypeError(
                f"{path}: must be {_NUMBER_FORMS}; got {_kinds(value)} {_short(value)}"
            )
        if isinstance(value, numbers.Rational):
            return Fraction(int(value.numerator), int(value.denominator))
        x = float(value)
        if not math.isfinite(x):
            raise ERFValueError(f"{path}: must be a finite number, got {_short(value)}")
        return Fraction(repr(x))  # the decimal that prints as x: 0.1 is 1/10

    def ranged(self, value: Any, path: str, ok: Callable[[Fraction], bool], rng: str) -> Fraction:
        f = self.number(value, path)
        if not ok(f):
            raise ERFValueError(f"{path}: must be {rng}; got {_short(value)}")
        return f

    def kernel(self, value: Any, anchor: Any, path: str) -> Kernel:
        try:
            if isinstance(value, str):
                k = Kernel.parse(value, anchor=anchor)
            elif _is_list(value) and value:
                rows = value if all(_is_list(r) for r in value) else None
                if rows is None and any(_is_list(r) for r in value):
                    raise ERFValueError(
                        "mixes weights and rows; give a list of weights or a list of rows"
                    )
                if rows is None:
                    k = Kernel(
                        [self._weight(v, f"{path}[{i}]") for i, v in enumerate(value)], anchor
                    )
                else:
                    k = Kernel(
                        [
                            [self._weight(v, f"{path}[{i}][{j}]") for j, v in enumerate(r)]
                            for i, r in enumerate(rows)
                        ],
                        anchor,
                    )
            elif _is_list(value):
                raise ERFValueError("is empty; give weights such as '1,2,1' or [1, 2, 1]")
            else:
                raise ERFTypeError(
                    f"must be a string such as '1,2,1' (rows separated by ';') or a list of "
                    f"weights or of rows; got {_kinds(value)} {_short(value)}"
                )
        except (ERFValueError, ERFTypeError) as exc:
            raise with_context(exc, path) from None
        if any(s > MAX_AXIS for s in k.shape):
            raise ERFValueError(
                f"{path}: a kernel has at most {MAX_AXIS} taps per axis, got shape {k.shape}"
            )
        self.dims.append((k.ndim, path))
        return k

    def _weight(self, value: Any, path: str) -> Any:
        if isinstance(value, str) or _is_int(value):
            return value
        if _is_list(value):
            raise ERFValueError(f"{path}: kernels are 1-D or 2-D; this entry is a nested list")
        return self.number(value, path)

    # ------------------------------------------------------------------ layers
    def chain(self, items: Any, path: str, depth: int, allow_empty: bool = False) -> list[Layer]:
        if depth > MAX_DEPTH:
            raise ERFValueError(f"{path}: blocks are nested more than {MAX_DEPTH} deep")
        if not _is_list(items):
            raise ERFTypeError(
                f"{path}: must be a list of layers; got {_kinds(items)} {_short(items)}"
            )
        if not items and not allow_empty:
            raise ERFValueError(f"{path}: must hold at least one layer")
        out: list[Layer] = []
        for i, item in enumerate(items):
            out.extend(self.layer(item, f"{path}[{i}]", depth))
        return out

    def layer(self, item: Any, path: str, depth: int) -> list[Layer]:
        if isinstance(item, str):
            name, opts = item, None
        elif isinstance(item, dict):
            if len(item) != 1:
                keys = ", ".join(repr(k) for k in item) or "none"
                raise ERFValueError(
                    f"{path}: a layer is a type name or an object with exactly one key, its "
                    f'type (such as {{"conv": {{"size": 3}}}}); got the keys {keys}'
                )
            ((name, opts),) = item.items()
            if not isinstance(name, str):
                raise ERFTypeError(f"{path}: the layer type must be a string, got {_short(name)}")
        else:
            raise ERFTypeError(
                f'{path}: a layer is a type name such as "relu" or an object such as '
                f'{{"conv": {{"size": 3}}}}; got {_kinds(item)} {_short(item)}'
            )
        if name not in LAYER_TYPES:
            raise ERFValueError(
                f"{path}: unknown layer type {_short(name)}{_hint(name, LAYER_TYPES)}; the "
                f"types are {', '.join(LAYER_TYPES)}"
            )
        where = f"{path}.{name}"
        if opts is None:
            opts = {}
        if not isinstance(opts, dict):
            raise ERFTypeError(
                f'{where}: the options must be an object (such as {{"size": 3}}); got '
                f"{_kinds(opts)} {_short(opts)}"
            )
        for key in opts:
            if key not in LAYER_TYPES[name]:
                valid = ", ".join(LAYER_TYPES[name]) or "none"
                raise ERFValueError(
                    f"{where}: unknown option {_short(key)}{_hint(key, LAYER_TYPES[name])}; "
                    f"the options of {name} are: {valid}"
                )
        if name == "repeat":
            return self.repeat(opts, where, depth)
        self._add(1, where)
        try:
            layer = self.build(name, opts, where, depth)
        except (ERFValueError, ERFTypeError) as exc:
            msg = str(exc)
            if msg.startswith(path):
                raise
            raise with_context(exc, where) from None
        return [layer]

    def repeat(self, opts: dict[str, Any], where: str, depth: int) -> list[Layer]:
        times: Any = opts.get("times")
        rng = f"an int in [1, {MAX_REPEAT}]"
        if "times" not in opts:
            raise ERFValueError(f"{where}: needs 'times' ({rng}) and 'layers'")
        if not _is_int(times):
            raise ERFTypeError(f"{where}.times: must be {rng}; got {_kinds(times)} {_short(times)}")
        if not 1 <= times <= MAX_REPEAT:
            raise ERFValueError(f"{where}.times: must be {rng}; got {_short(times)}")
        if "layers" not in opts:
            raise ERFValueError(f"{where}: needs 'layers', the list of layers to repeat")
        before = self.count
        body = self.chain(opts["layers"], f"{where}.layers", depth + 1)
        self._add((self.count - before) * (int(times) - 1), where)
        return body * int(times)

    def build(self, name: str, opts: dict[str, Any], where: str, depth: int) -> Layer:
        """The layer of type ``name`` from its options, as its registry entry says."""
        entry = REGISTRY[name]
        if entry.rules is not None and (broken := entry.rules(opts.keys())) is not None:
            suffix, message = broken
            raise ERFValueError(f"{where}{suffix}: {message}")
        for opt in entry.options:
            if opt.required and opt.name not in opts:
                raise ERFValueError(f"{where}: needs {opt.required.format(max_axis=MAX_AXIS)}")
        values: dict[str, Any] = {}
        # a kernel is read last, with its anchor
        for opt in sorted(entry.options, key=lambda o: _READ_LAST.get(o.kind, 0)):
            if opt.name in opts:
                path = f"{where}.{opt.name}"
                values[opt.name] = _READERS[opt.kind](
                    self, opt, opts[opt.name], path, depth, values
                )
            else:
                values[opt.name] = opt.default
        self.quadratures(entry.name, entry.options, opts, values, where)
        layer: Layer = entry.make(values)
        return _checked(layer, where) if entry.nested else layer

    def quadratures(
        self,
        name: str,
        options: Sequence[Option],
        opts: dict[str, Any],
        values: dict[str, Any],
        where: str,
    ) -> None:
        """Count the distinct integrals a document asks for (``input_std`` and friends)."""
        given = [o.name for o in options if o.quadrature and o.name in opts]
        if not given:
            return
        self.stds.add((name, tuple(values[o.name] for o in options if o.quadrature)))
        if len(self.stds) > MAX_INPUT_STDS:
            raise ERFValueError(
                f"{where}.{given[-1]}: more than {MAX_INPUT_STDS} different input_std values "
                f"(or parameters) of tanh, sigmoid and the other activations computed by "
                f"quadrature (each needs a numerical integration); at most {MAX_INPUT_STDS}"
            )

    # ------------------------------------------------------------------ option values
    def read_axes(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        return self.axes(value, path, opt.minimum)

    def read_padding(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        return self.padding(value, path)

    def read_kernel(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        return self.kernel(value, values.get("anchor"), path)

    def read_number(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        if opt.valid is None:
            return self.number(value, path)
        return self.ranged(value, path, opt.valid, opt.valid_text)

    def read_label(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        if not isinstance(value, str) or not value or len(value) > 100:
            raise ERFTypeError(
                f"{path}: must be a non-empty string of at most 100 characters; got "
                f"{_kinds(value)} {_short(value)}"
            )
        return value

    def read_layers(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        return self.chain(value, path, depth + 1, allow_empty=opt.empty)

    def read_branches(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        if not _is_list(value):
            raise ERFTypeError(
                f"{path}: must be a non-empty list of layer lists; got "
                f"{_kinds(value)} {_short(value)}"
            )
        if not value:
            raise ERFValueError(f"{path}: must hold at least one branch")
        return [
            self.chain(b, f"{path}[{i}]", depth + 1, allow_empty=True) for i, b in enumerate(value)
        ]

    def read_inputs(self, opt: Option, value: Any, path: str, depth: int, values: Any) -> Any:
        rng = "a non-empty list, per node, of non-empty lists of node indices (ints >= 0)"
        if not _is_list(value) or not value:
            raise ERFTypeError(f"{path}: must be {rng}; got {_kinds(value)} {_short(value)}")
        out = []
        for i, node in enumerate(value):
            if not _is_list(node) or not node:
                raise ERFTypeError(
                    f"{path}[{i}]: must be a non-empty list of node indices; got "
                    f"{_kinds(node)} {_short(node)}"
                )
            for j, v in enumerate(node):
                if not _is_int(v) or v < 0:
                    raise ERFTypeError(
                        f"{path}[{i}][{j}]: must be a node index (an int >= 0); got "
                        f"{_kinds(v)} {_short(v)}"
                    )
            out.append(tuple(int(v) for v in node))
        return out


_Read = Callable[[_Reader, Option, Any, str, int, dict[str, Any]], Any]
_READERS: dict[str, _Read] = {
    "axes": _Reader.read_axes,
    "anchor": _Reader.read_axes,
    "padding": _Reader.read_padding,
    "kernel": _Reader.read_kernel,
    "number": _Reader.read_number,
    "label": _Reader.read_label,
    "layers": _Reader.read_layers,
    "branches": _Reader.read_branches,
    "inputs": _Reader.read_inputs,
}
"""How a file value of each option kind (`erftheory.layers.schema.OPTION_KINDS`) is read."""
_READ_LAST = {"anchor": 1, "kernel": 2}  # the order in which the file format reads them


def _checked(block: Layer, where: str) -> Layer:
    """Check a block's branches now (same dimension, same output grid), naming its path."""
    try:
        Network([block])
    except (ERFValueError, ERFTypeError) as exc:
        raise with_context(exc, where) from None
    return block


def parse_arch(data: dict[str, Any] | Sequence[Any]) -> Network:
    """Build a `Network` from a decoded architecture document (see the module docstring).

    Args:
        data: ``{"layers": [...], "ndim": 1 or 2}`` (``ndim`` optional), or the list of
            layers alone.

    Raises:
        ERFValueError: unknown keys or layer types, values out of range, too many layers,
            layers of different dimensions, branches on different grids.
        ERFTypeError: a value of the wrong JSON type.

    Example:
        >>> parse_arch({"ndim": 2, "layers": [{"conv": {"size": 3}}]}).receptive_field.size
        (3, 3)
    """
    reader = _Reader()
    ndim: int | None = None
    if isinstance(data, dict):
        for key in data:
            if key not in _TOP_KEYS:
                raise ERFValueError(
                    f"{_short(key)}: unknown key{_hint(key, _TOP_KEYS)}; a document has the keys "
                    f"{', '.join(_TOP_KEYS)}"
                )
        if "layers" not in data:
            raise ERFValueError("layers: missing; a document needs a list of layers")
        if "ndim" in data:
            nd = data["ndim"]
            if not _is_int(nd):
                raise ERFTypeError(f"ndim: must be 1 or 2, got {_kinds(nd)} {_short(nd)}")
            if nd not in (1, 2):
                raise ERFValueError(f"ndim: must be 1 or 2, got {_short(nd)}")
            ndim = int(nd)
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                raise ERFTypeError(f"{key}: must be a string, got {_kinds(data[key])}")
        items = data["layers"]
    elif _is_list(data):
        items = data
    else:
        raise ERFTypeError(
            f'an architecture is an object {{"layers": [...]}} or a list of layers; got '
            f"{_kinds(data)}"
        )
    layers = reader.chain(items, "layers", 0)
    source = "ndim"
    if ndim is None and reader.dims:
        ndim, source = reader.dims[0]
    for dim, path in reader.dims:
        if dim != ndim:
            raise ERFValueError(
                f"{path}: is {dim}-D but {source} makes the network {ndim}-D; use one "
                f"dimension (a per-axis list has one entry per axis)"
            )
    try:
        return Network(layers, ndim=ndim)
    except (ERFValueError, ERFTypeError) as exc:
        raise with_context(exc, "layers") from None


def _decode(text: str, path: str, yaml_file: bool) -> Any:
    if yaml_file:
        try:
            import yaml
        except ImportError:
            raise with_context(
                MissingDependencyError("PyYAML", "yaml", "reading YAML (or write JSON)"),
                path,
            ) from None
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present
        try:
            # Aliases would let a few bytes stand for an exponentially large document
            # ("billion laughs"): refuse them before anything is built.
            for event in yaml.parse(text, Loader=loader):
                if isinstance(event, yaml.AliasEvent):
                    mark = event.start_mark
                    raise ERFValueError(
                        f"{path}: YAML aliases (*{event.anchor[:40]}) are not allowed "
                        f"in architecture files, at line {mark.line + 1}, column "
                        f"{mark.column + 1}; write the layers out or use 'repeat'"
                    )
            return yaml.load(text, Loader=loader)  # a safe loader: plain data only
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ERFValueError(f"{path}: invalid YAML{at}: {_clip(problem)}") from None
        except RecursionError:
            raise ERFValueError(f"{path}: the YAML is nested too deeply") from None
        except ERFValueError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # an int with too many digits
            raise ERFValueError(f"{path}: invalid YAML: {_digits(exc)}") from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ERFValueError(f"{path}: invalid JSON: duplicate key {_short(key)}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise ERFValueError(f"{path}: invalid JSON: {name} is not a number; write {_NUMBER_FORMS}")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ERFValueError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ERFValueError(f"{path}: the JSON is nested too deeply") from None
    except ERFValueError:
        raise
    except ValueError as exc:  # e.g. an int with more digits than Python converts
        raise ERFValueError(f"{path}: invalid JSON: {_digits(exc)}") from None


def _digits(exc: Exception) -> str:
    """Python's message for an int with too many digits, without its advice to call
    ``sys.set_int_max_str_digits`` (a reader of a file cannot), on one line."""
    text = str(exc).split("; use sys.set_int_max_str_digits()")[0]
    return _clip(text)


def _clip(text: str, width: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _read_regular(p: Path, name: str) -> bytes:
    """At most ``MAX_FILE_BYTES + 1`` bytes of a regular file; never blocks.

    The file is opened non-blocking and checked with ``fstat`` before the first read,
    so a FIFO, a socket or a device (``/dev/zero``) is refused instead of read forever.
    """
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(name)
        if not stat.S_ISREG(mode):
            raise ERFValueError(
                f"{name}: not a regular file (a FIFO, socket or device); an architecture file "
                f"is a .json or .yaml file"
            )
        chunks = []
        left = MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_arch(path: str | Path) -> Network:
    """Read an architecture file: UTF-8 JSON, or YAML for names ending in ``.yaml``/``.yml``.

    Args:
        path: the file.

    Raises:
        ERFValueError: the file is missing, unreadable, larger than `MAX_FILE_BYTES`, not
            UTF-8, not valid JSON/YAML (with line and column), or describes an invalid
            network (as `parse_arch`); messages start with the file name.
        ERFTypeError: a value of the wrong type (as `parse_arch`).

    Example:
        >>> from pathlib import Path
        >>> examples = Path(__file__).resolve().parents[1] / "docs" / "examples"
        >>> net = load_arch(examples / "vgg16.json")
        >>> net.receptive_field
        ReceptiveField(size=(212, 212), jump=(32, 32), offset=(-90, -90))
    """
    if not isinstance(path, (str, Path)):
        raise ERFTypeError(f"load_arch takes a path (str or Path), got {type(path).__name__}")
    name = str(path)
    if name == "":
        raise ERFValueError("the architecture file name is empty; give a .json or .yaml file")
    p = Path(path)
    try:
        data = _read_regular(p, name)
    except FileNotFoundError:
        raise ERFValueError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ERFValueError(f"{name}: is a directory, not an architecture file") from None
    except PermissionError:
        raise ERFValueError(f"{name}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise ERFValueError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    except ERFValueError:
        raise
    except ValueError:  # a NUL byte in the name
        raise ERFValueError(
            f"{_short(name)}: not a valid file name (it holds a NUL byte)"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ERFValueError(
            f"{name}: larger than {MAX_FILE_BYTES // 1024**2} MiB; an architecture file is "
            f"smaller (use 'repeat' for repeated layers)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ERFValueError(
            f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    doc = _decode(text, name, p.suffix.lower() in (".yaml", ".yml"))
    try:
        return parse_arch(doc)
    except (ERFValueError, ERFTypeError) as exc:
        raise with_context(exc, name) from None


# --------------------------------------------------------------------------- writing
def _num(x: Any) -> Any:
    """A number as JSON: ints stay ints, other exact values become strings like '1/4'."""
    if isinstance(x, float):
        x = Fraction(x)
    if isinstance(x, numbers.Rational):
        f = Fraction(int(x.numerator), int(x.denominator))
        return int(f) if f.denominator == 1 else str(f)
    raise ERFTypeError(f"{x!r} is not an exact number")


def _per_axis(values: Any) -> Any:
    """Per-axis values as JSON: one int for a 1-D tuple, else a list (or the text)."""
    if isinstance(values, str):
        return values
    values = tuple(values)
    return int(values[0]) if len(values) == 1 else [int(v) for v in values]


def _weights(rows: Any) -> Any:
    """A kernel's weights (nested tuples, one level per axis) as JSON lists."""
    return [_weights(r) if isinstance(r, tuple) else _num(r) for r in rows]


def _option_number(x: Any) -> Any:
    """A number option: a float stays the float (its decimal reads back to it)."""
    return x if isinstance(x, float) else _num(x)


_WRITERS: dict[str, Callable[[Any], Any]] = {
    "axes": _per_axis,
    "anchor": _per_axis,
    "padding": _per_axis,
    "kernel": lambda k: _weights(k.weights),
    "number": _option_number,
    "label": str,
    "layers": lambda chain: [_layer_dict(x) for x in chain],
    "branches": lambda branches: [[_layer_dict(x) for x in b] for b in branches],
    "inputs": lambda inputs: [[int(j) for j in node] for node in inputs],
}
"""How a value of each option kind is written."""


def _layer_dict(layer: Layer) -> Any:
    """A layer as a document entry: its type name alone, or ``{type: options}``."""
    entry = find_type(layer)
    if entry is None:
        raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} has no architecture format")
    values = layer.options()
    opts: dict[str, Any] = {}
    for opt in entry.options:
        value = values.get(opt.name)
        if value is None or (not opt.always and value == opt.default):
            continue
        opts[opt.name] = _WRITERS[opt.kind](value)
    return {entry.name: opts} if opts else entry.name


def arch_to_dict(network: Network) -> dict[str, Any]:
    """The document of a `Network`: ``parse_arch(arch_to_dict(net))`` rebuilds it.

    Repeated layers are written out one by one; exact weights and factors are written as
    ints or strings such as ``"1/4"``, so ``json.dumps`` of the result is exact.

    Example:
        >>> from erftheory import Network, Conv, ReLU, Dropout
        >>> arch_to_dict(Network([Conv([1, 2, 1], stride=2), ReLU(), Dropout("1/4")]))
        {'ndim': 1, 'layers': [{'conv': {'kernel': [1, 2, 1], 'stride': 2}}, 'relu', {'dropout': {'p': '1/4'}}]}
    """  # noqa: E501
    if not isinstance(network, Network):
        raise ERFTypeError(f"arch_to_dict takes a Network, got {type(network).__name__}")
    return {"ndim": network.ndim, "layers": [_layer_dict(x) for x in network.layers]}
