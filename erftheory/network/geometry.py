r"""A network's geometry: its receptive field, output sizes and the input-size rule.

Torch-free integer arithmetic on the layers' sizes, strides, dilations and paddings
(PyTorch's floor rule for output lengths). `ReceptiveField` is what one output unit
sees; `_fits` is the rule behind `Network.fits` and `Network.min_input_size`: the
backward pass of the centre output unit must never reach padding, so that the
measured gradient equals the exact profile at every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ERFValueError
from ..layers import Graph, Layer, _Block, _Spatial

MAX_RF_BITS = 256


"""Moments and tables are refused for receptive fields or jumps above $2^{256}$ pixels."""


@dataclass(frozen=True)
class ReceptiveField:
    """The theoretical receptive field of one output unit, per axis (ints in 1-D).

    Attributes:
        size: pixels spanned: $\\sum_l J_{l-1} d_l (k_l - 1) + 1$ for a plain stack.
        jump: input pixels between neighbouring output units: $J_L = \\prod_l s_l$.
        offset: input coordinate of the first pixel of output unit 0's field (negative
            when it starts in the padding); output unit $i$ covers
            ``offset + jump*i ... offset + jump*i + size - 1``.
    """

    size: Any
    jump: Any
    offset: Any

    @property
    def center(self) -> Any:
        """Input coordinate of the centre of output unit 0's field: ``offset + (size-1)/2``."""
        if isinstance(self.size, tuple):
            return tuple(o + (s - 1) / 2 for o, s in zip(self.offset, self.size, strict=True))
        return self.offset + (self.size - 1) / 2

    def window(self, unit: int | Sequence[int] = 0) -> tuple[range, ...]:
        """The input pixels output unit ``unit`` reads, as one `range` per axis.

        Output unit $i$ covers ``offset + jump*i ... offset + jump*i + size - 1`` (some of
        it may lie in the padding: below 0 or beyond the input).

        Example:
            >>> ReceptiveField(size=5, jump=2, offset=-2).window(3)
            (range(4, 9),)
            >>> ReceptiveField(size=(3, 3), jump=(1, 1), offset=(-1, -1)).window((0, 2))
            (range(-1, 2), range(1, 4))
        """
        sizes, jumps, offsets = (_tuple(v) for v in (self.size, self.jump, self.offset))
        units = _tuple(unit)
        if len(units) != len(sizes):
            raise ERFValueError(f"unit must give one index per axis ({len(sizes)}), got {unit!r}")
        return tuple(
            range(o + j * i, o + j * i + s)
            for s, j, o, i in zip(sizes, jumps, offsets, units, strict=True)
        )


_MAX_SEARCH_WORK = 10**5  # layer steps of min_input_size's search (a second or two)


def _big(n: int) -> str:
    """An int for a message: its digits, or ``about 2^k`` when it is huge."""
    return str(n) if n.bit_length() <= 64 else f"about 2^{n.bit_length() - 1}"


def _out_len(layers: Sequence[Layer], n: int, axis: int, ndim: int) -> int:
    for layer in layers:
        if isinstance(layer, _Spatial):
            lo, hi = layer.pads(ndim)[axis]
            span = n + lo + hi - layer.extent(ndim)[axis]
            if span < 0:
                return 0
            n = span // layer.stride(ndim)[axis] + 1
        elif isinstance(layer, _Block):
            outs = {_out_len(b, n, axis, ndim) for b in layer.branches}
            if len(outs) != 1:
                return 0
            n = outs.pop()
        elif isinstance(layer, Graph):
            n = _graph_lengths(layer, n, axis, ndim)[-1]
        if n <= 0:
            return 0
    return n


def _needed(layers: Sequence[Layer], n_in: int, lo: int, hi: int, axis: int, ndim: int) -> bool:
    """Whether output positions ``lo..hi`` of ``layers`` read only real input (no padding)."""
    lengths = [n_in]
    for layer in layers:
        lengths.append(_out_len([layer], lengths[-1], axis, ndim))
    for layer, n in zip(reversed(layers), reversed(lengths[:-1]), strict=True):
        if isinstance(layer, _Spatial):
            left = layer.padding(ndim)[axis]
            s = layer.stride(ndim)[axis]
            lo, hi = s * lo - left, s * hi - left + layer.extent(ndim)[axis] - 1
        elif isinstance(layer, _Block):
            ranges = []
            for b in layer.branches:
                if not _needed(b, n, lo, hi, axis, ndim):
                    return False
                ranges.append(_span(b, lo, hi, axis, ndim))
            lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        elif isinstance(layer, Graph):
            inner = _graph_span(layer, n, lo, hi, axis, ndim)
            if inner is None:
                return False
            lo, hi = inner
        if lo < 0 or hi > n - 1:
            return False
    return True


def _span(layers: Sequence[Layer], lo: int, hi: int, axis: int, ndim: int) -> tuple[int, int]:
    for layer in reversed(layers):
        if isinstance(layer, _Spatial):
            left = layer.padding(ndim)[axis]
            s = layer.stride(ndim)[axis]
            lo, hi = s * lo - left, s * hi - left + layer.extent(ndim)[axis] - 1
        elif isinstance(layer, _Block):
            spans = [_span(b, lo, hi, axis, ndim) for b in layer.branches]
            lo, hi = min(x[0] for x in spans), max(x[1] for x in spans)
        elif isinstance(layer, Graph):
            lo, hi = _graph_span(layer, None, lo, hi, axis, ndim) or (lo, hi)
    return lo, hi


def _graph_lengths(graph: Graph, n: int, axis: int, ndim: int) -> list[int]:
    """The length of every node of ``graph`` on ``axis`` for input length ``n`` (node 0);
    0 from a node whose inputs disagree on their length (PyTorch could not add them)."""
    lengths = [n]
    for chain, inputs in zip(graph.nodes, graph.inputs, strict=True):
        ins = {lengths[j] for j in inputs}
        m = ins.pop() if len(ins) == 1 else 0
        lengths.append(_out_len(chain, m, axis, ndim) if m > 0 else 0)
    return lengths


def _graph_span(
    graph: Graph, n: int | None, lo: int, hi: int, axis: int, ndim: int
) -> tuple[int, int] | None:
    """The input positions that output positions ``lo..hi`` of ``graph`` read, walking the
    nodes backwards (each node's range is the hull of what its users need).

    With an input length ``n``, None when some node's range leaves its feature map (the
    ERF is clipped by padding there); without one, only the span.
    """
    lengths = _graph_lengths(graph, n, axis, ndim) if n is not None else None
    need: list[tuple[int, int] | None] = [None] * (len(graph.nodes) + 1)
    need[-1] = (lo, hi)
    for k in range(len(graph.nodes), 0, -1):
        rng = need[k]
        if rng is None:  # pragma: no cover - every node feeds the output
            continue
        a, b = rng
        chain = graph.nodes[k - 1]
        if lengths is not None:
            if a < 0 or b > lengths[k] - 1:
                return None
            m = {lengths[j] for j in graph.inputs[k - 1]}.pop()
            if chain and not _needed(chain, m, a, b, axis, ndim):
                return None
        a, b = _span(chain, a, b, axis, ndim)
        for j in graph.inputs[k - 1]:
            old = need[j]
            need[j] = (a, b) if old is None else (min(old[0], a), max(old[1], b))
    return need[0]


def _fits(layers: Sequence[Layer], n: int, axis: int, ndim: int) -> bool:
    out = _out_len(layers, n, axis, ndim)
    if out <= 0:
        return False
    c = (out - 1) // 2
    return _needed(layers, n, c, c, axis, ndim)


def min_input_size(
    layers: Sequence[Layer], size: tuple[int, ...], jump: tuple[int, ...], ndim: int
) -> tuple[int, ...]:
    """The smallest input length per axis for which `_fits` holds (the input-size rule).

    ``size`` and ``jump`` are the receptive field's, per axis. The search is bounded:
    more than ``_MAX_SEARCH_WORK`` layer steps are refused with the range tried.
    """
    out = []
    for a in range(ndim):
        # Beyond 2 (size + jump) + a margin every layer's grid has room on both sides
        # of the centre; if nothing fits by then, branches disagree on output length.
        # Below the RF size nothing fits (the centre unit reads `size` pixels).
        bound = 2 * (size[a] + jump[a]) + 2 * len(layers) + 8
        start = size[a]
        budget = max(1024, _MAX_SEARCH_WORK // (len(layers) + 1))
        n = None
        for tried, m in enumerate(range(start, bound + 1)):
            if tried >= budget:
                raise ERFValueError(
                    f"min_input_size: no input size from {_big(start)} to "
                    f"{_big(m - 1)} keeps the ERF of the centre output unclipped on axis "
                    f"{a}, and trying more than {budget} sizes (for {len(layers)} "
                    f"layers; RF {_big(size[a])}, jump {_big(jump[a])}) is refused"
                )
            if _fits(layers, m, a, ndim):
                n = m
                break
        if n is None:
            raise ERFValueError(
                f"no input size up to {_big(bound)} keeps the ERF of the centre output "
                f"unclipped on axis {a}: the branches of a block produce outputs of "
                f"different lengths (PyTorch could not add them); check their padding"
            )
        out.append(n)
    return tuple(out)


def _tuple(value: Any) -> tuple[Any, ...]:
    """A per-axis value as a tuple (an int is one axis)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
