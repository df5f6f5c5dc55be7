r"""`Network`: a stack of layers and its exact ERF (Sections 2.4 and 2.5).

The transfer polynomial comes from `erftheory.network.algebra` (and, for
``kind="expected_square"``, `erftheory.network.families`); the receptive field and the
input-size rule from `erftheory.network.geometry`; the ERF itself is a
`erftheory.network.profile.NetworkProfile`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

from .. import _config
from .._errors import ERFTypeError, ERFValueError
from ..engines import run
from ..engines.source import FloatTransfer, TransferPolynomial, plain
from ..kernel import Kernel
from ..layers import Graph, Layer, _Block, _Spatial, as_chain, check_kind
from ..profile import Method
from . import geometry
from .algebra import (
    _Bound,
    _compose,
    _Exact,
    _Float,
    _Geometry,
    _layer,
    _Moments,
    _Transfer,
    _unit,
)
from .families import _FIXED_COPIES, _chain, _fixed_span, _sq_bound, _sq_final, _sq_start, _sq_step
from .geometry import MAX_RF_BITS, ReceptiveField, _fits, _out_len
from .profile import NetworkProfile


@dataclass(frozen=True)
class LayerRow:
    """One row of `Network.table`: the network up to and including ``layer``.

    Attributes:
        index: position of the layer (0 = nearest the input).
        layer: a short description.
        rf_size: receptive-field size per axis (int in 1-D).
        jump: total stride so far.
        std: the ERF's standard deviation per axis in input pixels (None where the
            normalised profile is not a distribution: zero or negative mass or variance).
    """

    index: int
    layer: str
    rf_size: Any
    jump: Any
    std: Any


class Network:
    r"""A stack of layers (input first) and its exact ERF.

    Args:
        layers: `erftheory.layers` objects (blocks nest); a `Network` is accepted as a
            layer list.
        ndim: 1 or 2; by default the dimension fixed by the layers (kernels, per-axis
            tuples), or 1 when nothing fixes it.

    Raises:
        ERFTypeError: something that is not a layer.
        ERFValueError: layers of different dimensions; branches on different grids.

    Example:
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv, ReLU
        >>> net = Network([Conv((3, 3)), ReLU()] * 2)
        >>> net.receptive_field.size, net.profile(kind="expected_square").variance
        ((5, 5), (Fraction(4, 3), Fraction(4, 3)))
    """

    def __init__(self, layers: Iterable[Any], ndim: int | None = None) -> None:
        if isinstance(layers, Layer):
            raise ERFTypeError("Network takes a list of layers; wrap a single layer in [ ]")
        self.layers: tuple[Layer, ...] = as_chain(layers, "Network's layers")
        dims = {d for x in self.layers if (d := x.fixed_ndim) is not None}
        if len(dims) > 1:
            raise ERFValueError(f"the layers mix 1-D and 2-D ({sorted(dims)}); use one dimension")
        if ndim is not None and (isinstance(ndim, bool) or ndim not in (1, 2)):
            raise ERFValueError(f"ndim must be 1 or 2, got {ndim!r}")
        if ndim is not None and dims and dims != {ndim}:
            raise ERFValueError(f"ndim={ndim} but the layers are {dims.pop()}-D")
        self.ndim: int = ndim if ndim is not None else (dims.pop() if dims else 1)
        self._geometry()  # validate strides of branches now

    # ------------------------------------------------------------ geometry
    def _geometry(self) -> _Transfer:
        return _chain(self.layers, "gradient", _Geometry(self.ndim))

    def _axes(self, values: tuple[Any, ...]) -> Any:
        return values[0] if self.ndim == 1 else values

    @cached_property
    def receptive_field(self) -> ReceptiveField:
        """Size, jump and offset of the theoretical RF (`ReceptiveField`)."""
        g = self._geometry()
        return ReceptiveField(
            self._axes(g.size), self._axes(g.jump), self._axes(tuple(-p for p in g.pad))
        )

    # ------------------------------------------------------------ exact transfer
    def _check_memory(self, kind: str) -> None:
        """Refuse, before anything is built, an exact transfer above the memory limit.

        The estimate uses sizes and the layers' exact sums (`KernelStats`, closed forms
        for uniform kernels) in exact integer arithmetic, so astronomically large
        receptive fields are refused with their estimate instead of overflowing a float.
        """
        _config.check_size(
            self._exact_bytes(kind),
            "the network's exact transfer polynomial",
            "use fewer or smaller layers, or raise erftheory.set_memory_limit()",
        )

    def _exact_bytes(self, kind: str) -> int:
        """The memory estimate of the exact transfer polynomial (bytes, an exact int)."""
        g = self._geometry()
        terms = math.prod(g.size)
        if kind == "expected_square":
            l1, den = _sq_bound(self.layers, self.ndim)
            # the fixed parts are exact polynomials too, one per family of paths
            terms += _FIXED_COPIES * self._fixed_terms()
        else:
            l1, den = _chain(self.layers, "gradient", _Bound(self.ndim)).rep
        bits = max(l1, 0.0) + 2 * den + 64
        return 2 * terms * (math.ceil(bits / 4) + 48)

    def _fixed_terms(self) -> int:
        """A bound on the terms of each exact fixed part of ``kind="expected_square"``.

        The box of the fixed layers' span (`_fixed_span`); with a `Graph`, at most the
        count bound of `_fixed_counts` too (the alignment shifts of a graph's nodes make
        the box much larger than the sparse polynomials, which are mostly monomials).
        """
        box = math.prod(_fixed_span(self.layers, self.ndim)[0])
        if not _has_graph(self.layers):
            return box
        n_d, n_f = _fixed_counts(self.layers, self.ndim)
        return min(box, max(n_d, n_f, 1))

    def _fixed_parts_bytes(self) -> int:
        """The estimate `_check_closed_forms` refuses for the exact fixed parts."""
        l1, den = _chain(self.layers, "gradient", _Bound(self.ndim)).rep
        bits = max(l1, 0.0) + 2 * den + 64
        terms = _FIXED_COPIES * self._fixed_terms()
        return 2 * terms * (math.ceil(bits / 4) + 48)

    def _check_closed_forms(self, kind: str) -> None:
        """Refuse moments of astronomically large fields, and fixed parts above the limit."""
        g = self._geometry()
        for what, values in (("receptive field", g.size), ("jump", g.jump)):
            for axis, v in enumerate(values):
                if v.bit_length() > MAX_RF_BITS:
                    raise ERFValueError(
                        f"the {what} is about 2^{v.bit_length() - 1} pixels on axis {axis}, "
                        f"above the limit of 2^{MAX_RF_BITS} for which erftheory computes "
                        f"moments and tables; use fewer strided or dilated layers"
                    )
        if kind == "expected_square":
            _config.check_size(
                self._fixed_parts_bytes(),
                "the exact fixed parts of kind='expected_square' (products of the average "
                "pools between random layers)",
                "use fewer or smaller average pools, or raise erftheory.set_memory_limit()",
            )

    def transfer(self, kind: str = "gradient") -> Kernel:
        r"""The exact transfer polynomial's coefficients as a `Kernel` on the RF grid.

        Entry ``e`` (per axis) is input pixel ``offset + e`` for output unit 0 (see
        `receptive_field`); the anchor is the RF's centre pixel ``(size - 1) // 2``.
        """
        kind = check_kind(kind)
        self._check_memory(kind)
        rep = _chain(self.layers, kind, _Exact(self.ndim)).rep
        return TransferPolynomial(rep, self._geometry().size).kernel

    def profile(
        self, kind: str = "gradient", *, method: Method = "auto", dps: int | None = None
    ) -> NetworkProfile:
        r"""The ERF of the centre output unit as a `NetworkProfile`.

        Args:
            kind: ``"gradient"`` (fixed weights) or ``"expected_square"`` (zero-mean
                random weights with the kernels as per-tap variances).
            method: the engine, as for `erftheory.profile`. With ``"auto"`` the transfer
                polynomial is formed exactly when its estimate is at most
                `EXACT_AUTO_BYTES` (64 MiB), and otherwise in float64 as the product of
                the layers' transfer functions (the float route: ``method`` is
                ``"float"``, `NetworkProfile.abs_error_bound` bounds every normalised
                value, and the moments stay exact); any other method forms it exactly.
            dps: decimal digits for ``method="arb"``, as for `erftheory.profile`.

        The coefficients cover the theoretical RF (``receptive_field.size`` per axis);
        ``origin`` is its centre pixel ``(size - 1) // 2``, which for ``'same'`` padding
        and odd kernels is the pixel under the output unit. The engine reads the exact
        transfer polynomial itself (`erftheory.engines.source.TransferPolynomial`, the
        power $n = 1$), chosen by the rules of `erftheory.engines.select`.
        """
        kind = check_kind(kind)
        if method == "auto":
            estimate = self._exact_bytes(kind)
            if estimate > EXACT_AUTO_BYTES and self._numeric():
                return self._float_profile(kind, estimate)
        self._check_memory(kind)
        rep = _chain(self.layers, kind, _Exact(self.ndim)).rep
        describe = self._describer(kind)
        source = TransferPolynomial(rep, self._geometry().size, describe=describe)
        return NetworkProfile(self, kind, run(source, method, dps))

    def _numeric(self) -> bool:
        """Whether every kernel of the network is numeric (the float route needs numbers)."""
        # only explicit kernels can be symbolic (sizes alone are uniform numbers), so no
        # kernel is built here: a 1024 x 1024 pool stays a size
        kernels = (x.options().get("kernel") for x in _spatial_layers(self.layers))
        return all(k is None or k.domain != "symbolic" for k in kernels)

    def _float_profile(self, kind: str, estimate: int) -> NetworkProfile:
        """The float route: the transfer polynomial formed in float64 (`_Float`)."""
        g = self._geometry()
        needed = _FLOAT_COPIES * 8 * math.prod(g.size)
        if needed > _config.get_memory_limit():
            self._check_memory(kind)  # the exact route's refusal, with its estimate
        _config.check_size(
            needed,
            "the network's float64 transfer polynomial",
            "use fewer or smaller layers, or raise erftheory.set_memory_limit()",
        )
        if kind == "expected_square" and self._fixed_parts_bytes() > _config.get_memory_limit():
            # the exact fixed parts are refused: form them in float64 too
            from .float_square import float_square_profile

            return float_square_profile(
                self,
                reason=f"auto: the exact transfer polynomial would need about "
                f"{_config.format_bytes(estimate)} and its exact fixed parts are above the "
                f"memory limit, so the ",
            )
        alg = _Float(self.ndim)
        rep = _chain(self.layers, kind, alg).rep
        total, mean, cov = self.moments(kind)
        if total == 0:
            raise ERFValueError(
                "the network's transfer polynomial sums to zero; the profile cannot be "
                "normalised (use method='exact' for its coefficients)"
            )
        moments = (_tuple(mean), tuple(_tuple(r) for r in (cov if self.ndim == 2 else (cov,))))
        source = FloatTransfer(
            alg.padded(rep, g.size), rep.err, moments, describe=self._describer(kind)
        )
        result = run(source, "float")
        result.reason = (
            f"auto: the exact transfer polynomial would need about "
            f"{_config.format_bytes(estimate)} (above {_config.format_bytes(EXACT_AUTO_BYTES)})"
            f", so the float64 product of the layers' transfer functions (shifted sums and "
            f"FFT, absolute error bound in abs_error_bound; moments exact); method='exact' "
            f"forces the exact polynomial"
        )
        return NetworkProfile(self, kind, result)

    def _describer(self, kind: str) -> Any:
        def describe() -> dict[str, Any]:
            rf = self.receptive_field
            return {
                "network": repr(self),
                "kind": kind,
                "jump": plain(rf.jump),
                "offset": plain(rf.offset),
            }

        return describe

    def moments(self, kind: str = "gradient") -> tuple[Any, Any, Any]:
        r"""Total, mean and covariance of the ERF without forming it (exact Fractions).

        The mean is measured from the RF's centre pixel, as `NetworkProfile.mean`.
        Costs $O(\text{layers})$ operations on Fractions (closed forms for uniform
        kernels, one cached pass over an explicit one), so it works for any depth.

        Returns:
            ``(total, mean, covariance)``; mean and covariance are per axis (a pair and a
            2×2 matrix in 2-D; numbers in 1-D). Mean and covariance are None when the
            total is 0.

        Raises:
            ERFValueError: the receptive field or the jump is above $2^{256}$ pixels on an
                axis (`MAX_RF_BITS`; `receptive_field` still answers exactly).
            SizeLimitError: for ``kind="expected_square"``, the exact fixed parts (products
                of average pools between random layers) are above the memory limit.
        """
        kind = check_kind(kind)
        self._check_closed_forms(kind)
        t = _chain(self.layers, kind, _Moments(self.ndim))
        return self._moments_of(t)

    def _moments_of(self, t: _Transfer) -> tuple[Any, Any, Any]:
        m0, m1, m2 = t.rep
        if m0 == 0:
            return m0, None, None
        d = range(self.ndim)
        centre = tuple((s - 1) // 2 for s in t.size)
        mean = tuple(m1[i] / m0 for i in d)
        cov = tuple(tuple(m2[i][j] / m0 - mean[i] * mean[j] for j in d) for i in d)
        mean = tuple(mean[i] - centre[i] for i in d)
        if self.ndim == 1:
            return m0, mean[0], cov[0][0]
        return m0, mean, cov

    def std(self, kind: str = "gradient") -> Any:
        """ERF standard deviation per axis (float; a pair in 2-D), from `moments`."""
        return _std(self.moments(kind)[2], self.ndim)

    def table(self, kind: str = "gradient") -> list[LayerRow]:
        """Per-layer rows: the network up to each top-level layer (RF size, jump, ERF std).

        Example:
            >>> from erftheory import Network
            >>> from erftheory.layers import Conv
            >>> net = Network([Conv(3), Conv(3, stride=2), Conv(3)])
            >>> [(r.rf_size, r.jump) for r in net.table()]
            [(3, 1), (5, 2), (9, 2)]
        """
        kind = check_kind(kind)
        self._check_closed_forms(kind)
        d = self.ndim
        rows = []
        geo = _unit(_Geometry(d))
        mom = _unit(_Moments(d))
        ex = _Exact(d)
        sq = _sq_start(_Moments(d), ex)
        for i, layer in enumerate(self.layers):  # prefixes, built incrementally
            geo = _compose(geo, _layer(layer, _Geometry(d)), _Geometry(d))
            if kind == "gradient":
                mom = _compose(mom, _layer(layer, _Moments(d)), _Moments(d))
                cur = mom
            else:
                sq = _sq_step(sq, layer, _Moments(d), ex)
                cur = _sq_final(sq, _Moments(d))
            cur.size = geo.size
            cov = self._moments_of(cur)[2]
            rows.append(
                LayerRow(
                    i,
                    layer.describe(),
                    self._axes(geo.size),
                    self._axes(geo.jump),
                    _std(cov, d),
                )
            )
        return rows

    def format_table(self, kind: str = "gradient") -> str:
        """`table` as aligned text (the CLI prints it)."""
        rows = self.table(kind)
        head = ("#", "layer", "RF size", "jump", "ERF std")
        body = [
            (str(r.index), _clip(r.layer), _fmt(r.rf_size), _fmt(r.jump), _fmt(r.std)) for r in rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in (head, *body)
        ]
        return "\n".join(lines)

    # ------------------------------------------------------------ input sizes
    def output_size(self, input_size: int | Sequence[int]) -> Any:
        """Output length per axis for an input of ``input_size`` (PyTorch's floor rule).

        An int ``padding`` adds that many zeros on both sides, as PyTorch does; ``'same'``
        adds ``padding(ndim)`` zeros before and $d(k-1)$ minus that after, so that stride
        1 keeps the length.
        """
        sizes = self._sizes(input_size)
        out = tuple(_out_len(self.layers, sizes[a], a, self.ndim) for a in range(self.ndim))
        return self._axes(out)

    def _sizes(self, input_size: Any) -> tuple[int, ...]:
        if isinstance(input_size, int) and not isinstance(input_size, bool):
            sizes: tuple[int, ...] = (input_size,) * self.ndim
        else:
            sizes = tuple(input_size)
        if len(sizes) != self.ndim or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes
        ):
            raise ERFValueError(
                f"input_size must be a positive int or {self.ndim} positive ints, got "
                f"{input_size!r}"
            )
        return sizes

    def centre_output(self, input_size: int | Sequence[int]) -> Any:
        """The output unit whose ERF is measured: index ``(n_out - 1) // 2`` per axis.

        For an even output length this is the lower of the two middle units.
        """
        out = self.output_size(input_size)
        per = (out,) if self.ndim == 1 else out
        return self._axes(tuple((n - 1) // 2 for n in per))

    def fits(self, input_size: int | Sequence[int]) -> bool:
        """Whether the centre output unit's backward pass never reaches padding.

        Then the gradient on the input equals the exact profile at every pixel.
        """
        sizes = self._sizes(input_size)
        return all(_fits(self.layers, sizes[a], a, self.ndim) for a in range(self.ndim))

    def min_input_size(self) -> Any:
        """The smallest input size per axis for which `fits` holds (the input size rule).

        Example:
            >>> from erftheory import Network
            >>> from erftheory.layers import Conv
            >>> Network([Conv(3)] * 3).min_input_size()   # the RF of the centre unit just fits
            7
        """
        self._check_closed_forms("gradient")
        geo = self._geometry()
        return self._axes(geometry.min_input_size(self.layers, geo.size, geo.jump, self.ndim))

    # ------------------------------------------------------------ dunder
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Any:
        return iter(self.layers)

    def __repr__(self) -> str:
        return f"Network([{', '.join(repr(x) for x in self.layers)}])"


def _std(cov: Any, ndim: int) -> Any:
    if cov is None:
        return None
    diag = [cov] if ndim == 1 else [cov[0][0], cov[1][1]]
    if any(v < 0 for v in diag):
        return None
    vals = tuple(_sqrt(Fraction(v)) for v in diag)
    return vals[0] if ndim == 1 else vals


def _sqrt(v: Fraction) -> float:
    r"""$\sqrt v$ as a float for any exact $v \ge 0$ (``inf`` beyond float range)."""
    try:
        return math.sqrt(float(v))
    except OverflowError:  # v above 1.8e308: its square root may still be a float
        half = (math.log2(v.numerator) - math.log2(v.denominator)) / 2
        try:
            return 2.0**half
        except OverflowError:
            return math.inf


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, tuple):
        return (
            "×".join(_fmt(v) for v in x)
            if all(isinstance(v, int) for v in x)
            else ("(" + ", ".join(_fmt(v) for v in x) + ")")
        )
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _clip(s: str, width: int = 48) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


EXACT_AUTO_BYTES = 64 * 1024**2
"""``method="auto"`` forms a network's transfer polynomial exactly up to this estimate;
above it, in float64 (`Network.profile`'s float route)."""

# float64 arrays on the RF grid held at once by the float route (factors, products,
# inflated kernels, sums of branches)
_FLOAT_COPIES = 10


def _tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, tuple) else (x,)


def _spatial_layers(layers: Sequence[Layer]) -> Iterable[_Spatial]:
    for layer in layers:
        if isinstance(layer, _Spatial):
            yield layer
        elif isinstance(layer, _Block):
            for b in layer.branches:
                yield from _spatial_layers(b)
        elif isinstance(layer, Graph):
            for b in layer.nodes:
                yield from _spatial_layers(b)


def _has_graph(layers: Sequence[Layer]) -> bool:
    for layer in layers:
        if isinstance(layer, Graph):
            return True
        if isinstance(layer, _Block) and any(_has_graph(b) for b in layer.branches):
            return True
    return False


def _fixed_counts(layers: Sequence[Layer], ndim: int) -> tuple[int, int]:
    r"""Bounds on the number of terms of the deterministic part $D$ and of every fixed
    part $F$ of the expected-square family algebra (`erftheory.network.families`).

    A fixed spatial layer multiplies both by its taps; a random one starts families
    from $D$ ($F \le \max(F, D)$) and ends $D$; a scalar changes neither; the $D$ of
    the branches of a block (or of a `Graph` node's inputs) add, while every family
    keeps its own $F$ (the bound is the largest).
    Composition: $D = D_a D_b$, $F = \max(F_a D_b, D_a F_b, F_a F_b)$.
    """
    n_d, n_f = 1, 0
    for layer in layers:
        if isinstance(layer, _Spatial):
            if layer.random:
                b_d, b_f = 0, 1
            else:
                taps = math.prod(layer.size(ndim))
                b_d, b_f = taps, 0
        elif isinstance(layer, _Block):
            parts = [_fixed_counts(b, ndim) for b in layer.branches]
            b_d = sum(p[0] for p in parts)  # D adds; each family keeps its own F
            b_f = max(p[1] for p in parts)
        elif isinstance(layer, Graph):
            nodes = [(1, 0)]
            for chain, inputs in zip(layer.nodes, layer.inputs, strict=True):
                into = [nodes[j] for j in inputs]
                a_d, a_f = sum(x[0] for x in into), max(x[1] for x in into)
                c_d, c_f = _fixed_counts(chain, ndim)
                nodes.append((a_d * c_d, max(a_f * c_d, a_d * c_f, a_f * c_f)))
            b_d, b_f = nodes[-1]
        else:
            continue
        n_d, n_f = n_d * b_d, max(n_f * b_d, n_d * b_f, n_f * b_f)
    return n_d, n_f
