r"""The expected-square algebra of random-weight networks (Eq. 6–8, Section 2.5).

The gradient of a random-weight network is a sum over paths, each a product of one tap
per layer. Paths that use different sets of random taps are uncorrelated (every weight
has mean 0), so with $D$ the paths through no random layer and, per family $f$ of paths
through the same random layers, $V_f$ the product of their variance polynomials and
$F_f$ the fixed (coherent) part of the paths,

$$\mathbb E[g^2] = \mathrm{sq}(D) + \sum_f V_f\,\mathrm{sq}(F_f), \qquad
\mathrm{sq} = \text{coefficient-wise square}.$$

Composing $a$ then $b$: $D = D_a D_b$; families $(V_a, F_a D_b)$, $(V_b, D_a F_b)$ and
$(V_a V_b, F_a F_b)$. Branches of a block add their $D$ and pool their families. A
pointwise factor $f$ with mean $\mu$ and variance $s^2$, independent from pixel to pixel
(dropout's mask; an activation's slope under the independence assumption), is
$\mu$ + noise: $D$ and $F$ scale by $\mu$, and the noise closes every segment below it:
$(s^2\,\mathrm{sq}(D), 1)$ and $(s^2 V\,\mathrm{sq}(F), 1)$.

`_chain` is the entry for both kinds: the gradient walk of `erftheory.network.algebra`,
or this one for ``kind="expected_square"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from .._errors import ERFTypeError, ERFValueError
from ..layers import Graph, Layer, _Block, _Scalar, _Spatial
from .algebra import (
    _Algebra,
    _compose,
    _Exact,
    _fmpq,
    _Geometry,
    _gradient,
    _log2,
    _log2sum,
    _propagate,
    _sum,
    _Transfer,
)


def _chain(layers: Sequence[Layer], kind: str, alg: _Algebra) -> _Transfer:
    """The transfer of a chain of layers (input first) for ``kind``, in ``alg``."""
    if kind == "expected_square":
        return _square(layers, alg)
    return _gradient(layers, alg)


def _sq_bound(layers: Sequence[Layer], d: int) -> tuple[float, float]:
    r"""Bounds $(\log_2 \sum_t \mathbb E[g_t^2],\ \log_2 D)$ of the expected-square
    transfer, from the layers' sums alone (no polynomial, no kernel built).

    Per layer the total is multiplied by at most: $\sum v$ for a random layer (exact);
    $(\sum|w|)^2$ for a fixed one (Young: $\|w * g\|_2 \le \|w\|_1 \|g\|_2$);
    $\mathbb E[f^2]$ for a pointwise factor; $B \sum_b M_b$ for a block of $B$
    branches (Cauchy–Schwarz). All coefficients are $\ge 0$, so the total bounds each.
    """
    l1, den = 0.0, 0.0
    for layer in layers:
        if isinstance(layer, _Spatial):
            if layer.random:
                st = layer.stats("expected_square", d)
                a, b = _log2(st.l1), math.log2(st.den)
            else:
                st = layer.stats("gradient", d)
                a, b = 2 * _log2(st.l1), 2 * math.log2(st.den)
        elif isinstance(layer, _Scalar):
            mu = Fraction(layer.factor("gradient"))
            sq = Fraction(layer.factor("expected_square"))
            a = _log2(max(abs(sq), mu * mu))
            b = 2 * math.log2(mu.denominator) + math.log2(sq.denominator)
        elif isinstance(layer, _Block):
            parts = [_sq_bound(br, d) for br in layer.branches]
            a = math.log2(len(parts)) + _log2sum([x[0] for x in parts])
            b = sum(x[1] for x in parts)
        elif isinstance(layer, Graph):
            # node by node: B inputs summed (Cauchy-Schwarz), then the node's chain
            nodes = [(0.0, 0.0)]
            for chain, inputs in zip(layer.nodes, layer.inputs, strict=True):
                own = _sq_bound(chain, d)
                into = [nodes[j] for j in inputs]
                nodes.append(
                    (
                        math.log2(len(into)) + _log2sum([x[0] for x in into]) + own[0],
                        sum(x[1] for x in into) + own[1],
                    )
                )
            # every path's denominator divides the product of all the layers' ones
            a, b = nodes[-1][0], sum(_sq_bound(chain, d)[1] for chain in layer.nodes)
        else:
            raise ERFTypeError(
                f"{layer!r} of type {type(layer).__name__} is not an erftheory layer"
            )
        l1, den = l1 + a, den + b
    return l1, den


def _fixed_span(layers: Sequence[Layer], d: int) -> tuple[list[int], list[int]]:
    """Per-axis span and jump of the *fixed* (non-random) layers alone.

    The fixed parts ``D`` and ``F`` of the expected-square algebra are exact polynomials
    of these layers only, so their terms are at most the product of this span.
    """
    span, jump = [1] * d, [1] * d
    for layer in layers:
        if isinstance(layer, _Spatial):
            ext = (1,) * d if layer.random else layer.extent(d)
            stride = layer.stride(d)
        elif isinstance(layer, _Block):
            parts = [_fixed_span(b, d) for b in layer.branches]
            pads = [_gradient(b, _Geometry(d)).pad for b in layer.branches]
            ext = tuple(max(x[0][i] for x in parts) + max(p[i] for p in pads) for i in range(d))
            stride = tuple(parts[0][1])
        elif isinstance(layer, Graph):
            ext, stride = _graph_fixed_span(layer, d)
        else:
            continue
        span = [span[i] + jump[i] * (ext[i] - 1) for i in range(d)]
        jump = [jump[i] * stride[i] for i in range(d)]
    return span, jump


def _graph_fixed_span(graph: Graph, d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`_fixed_span` of a `Graph`, node by node.

    The families' fixed parts are kept without their lowest monomial (`_sq_graph`), so
    only the deterministic part $D$ of inputs that have one (a route from the input
    through no random layer) is shifted by the alignment of a node's inputs.
    """
    geometry = _Geometry(d)
    one = (1,) * d
    nodes = [(one, one, _gradient([], geometry), True)]  # span, jump, geometry, has D
    for chain, inputs in zip(graph.nodes, graph.inputs, strict=True):
        into = [nodes[j] for j in inputs]
        pad = [max(x[2].pad[i] for x in into) for i in range(d)]
        span = [
            max(x[0][i] + (pad[i] - x[2].pad[i] if x[3] else 0) for x in into) for i in range(d)
        ]
        jump = into[0][1]
        own, own_jump = _fixed_span(chain, d)
        geo = _compose(
            _sum([x[2] for x in into], geometry, graph), _gradient(chain, geometry), geometry
        )
        random = any(isinstance(x, _Spatial) and x.random for x in chain)
        nodes.append(
            (
                tuple(span[i] + jump[i] * (own[i] - 1) for i in range(d)),
                tuple(jump[i] * own_jump[i] for i in range(d)),
                geo,
                any(x[3] for x in into) and not random,
            )
        )
    return nodes[-1][0], nodes[-1][1]


class _Mixed:
    """``D`` (exact polynomial) and families ``[(V, F)]`` (V in the target algebra)."""

    __slots__ = ("D", "fams")

    def __init__(self, D: Any, fams: list[tuple[Any, Any]]) -> None:
        self.D, self.fams = D, fams


_MAX_FAMILIES = 4096


_FIXED_COPIES = 4  # fixed-part polynomials held at once (D, F and temporaries), for the guard


def _merge(fams: list[tuple[Any, Any]], alg: _Algebra) -> list[tuple[Any, Any]]:
    """Pool families with equal fixed parts F (their V add); drop F = 0."""
    out: dict[str, tuple[Any, Any]] = {}
    for V, F in fams:
        if F.is_zero():
            continue
        # (V, cF) and (c^2 V, F) are the same family: make F's first coefficient 1.
        c = F.coeffs()[0]
        if c != 1:
            F = F / c
            V = alg.scale(V, Fraction(int(c.p), int(c.q)) ** 2)
        key = str(F)
        out[key] = (alg.add(out[key][0], V), F) if key in out else (V, F)
    if len(out) > _MAX_FAMILIES:
        raise ERFValueError(
            f"kind='expected_square' needs more than {_MAX_FAMILIES} families of paths with "
            f"different fixed parts; use fewer fixed (non-random) layers between random ones"
        )
    return list(out.values())


def _square(layers: Sequence[Layer], alg: _Algebra) -> _Transfer:
    """The expected-square transfer of a chain, in ``alg``."""
    return _sq_final(_sq_chain(layers, alg, _Exact(alg.ndim)), alg)


def _sq_final(t: _Transfer, alg: _Algebra) -> _Transfer:
    m: _Mixed = t.rep
    rep = alg.from_sq(m.D)
    for V, F in m.fams:
        rep = alg.add(rep, alg.mul(V, alg.from_sq(F)))
    return _Transfer(rep, t.jump, t.pad, t.size)


def _sq_start(alg: _Algebra, ex: _Exact) -> _Transfer:
    d = alg.ndim
    return _Transfer(_Mixed(ex.one(), []), (1,) * d, (0,) * d, (1,) * d)


def _sq_chain(layers: Sequence[Layer], alg: _Algebra, ex: _Exact) -> _Transfer:
    t = _sq_start(alg, ex)
    for layer in layers:
        t = _sq_step(t, layer, alg, ex)
    return t


def _mean_and_noise(layer: _Scalar) -> tuple[Fraction, Fraction]:
    r"""A pointwise factor's mean $\mu$ and variance $s^2 = \mathbb E[f^2] - \mu^2$."""
    mu = Fraction(layer.factor("gradient"))
    noise = Fraction(layer.factor("expected_square")) - mu * mu
    if noise < 0:
        raise ERFValueError(
            f"{layer!r}: its mean square factor is below the square of its mean factor "
            f"(E[f^2] < E[f]^2), which no random factor can have"
        )
    return mu, noise


def _sq_aligned_sum(
    parts: Sequence[_Transfer], alg: _Algebra, ex: _Exact, d: int
) -> tuple[Any, list[tuple[Any, Any]], tuple[int, ...], tuple[int, ...]]:
    """Branches of one jump summed on a common grid: ``(D, families, pad, size)``, the
    fixed parts added and the families pooled (unmerged), each shifted into place."""
    pad = tuple(max(t.pad[i] for t in parts) for i in range(d))
    D = ex.zero()
    fams: list[tuple[Any, Any]] = []
    for t in parts:
        s = tuple(pad[i] - t.pad[i] for i in range(d))
        D = D + ex.shift(t.rep.D, s)
        fams += [(alg.shift(V, s), F) for V, F in t.rep.fams]
    size = tuple(max(pad[i] - t.pad[i] + t.size[i] for t in parts) for i in range(d))
    return D, fams, pad, size


def _sq_step(t: _Transfer, layer: Layer, alg: _Algebra, ex: _Exact) -> _Transfer:
    """``t`` followed by ``layer``."""
    if not isinstance(layer, _Scalar):
        return _sq_compose(t, _sq_layer(layer, alg, ex), alg, ex)
    mu, noise = _mean_and_noise(layer)
    m: _Mixed = t.rep
    fams = [(V, F * _fmpq(mu)) for V, F in m.fams]
    if noise:
        if not m.D.is_zero():
            fams.append((alg.scale(alg.from_sq(m.D), noise), ex.one()))
        fams += [(alg.scale(alg.mul(V, alg.from_sq(F)), noise), ex.one()) for V, F in m.fams]
    return _Transfer(_Mixed(m.D * _fmpq(mu), _merge(fams, alg)), t.jump, t.pad, t.size)


def _sq_layer(layer: Layer, alg: _Algebra, ex: _Exact) -> _Transfer:
    d = alg.ndim
    if isinstance(layer, _Spatial):
        geo = (layer.stride(d), layer.padding(d), layer.extent(d))
        if layer.random:
            v = alg.spatial(layer, "expected_square")
            return _Transfer(_Mixed(ex.zero(), [(v, ex.one())]), *geo)
        return _Transfer(
            _Mixed(ex.kernel(layer.kernel("gradient", d), layer.dilation(d)), []), *geo
        )
    if isinstance(layer, _Block):
        parts = [_sq_chain(b, alg, ex) for b in layer.branches]
        jumps = {t.jump for t in parts}
        if len(jumps) > 1:
            _sum([_gradient(b, _Geometry(d)) for b in layer.branches], _Geometry(d), layer)
        D, fams, pad, size = _sq_aligned_sum(parts, alg, ex, d)
        return _Transfer(_Mixed(D, _merge(fams, alg)), parts[0].jump, pad, size)
    if isinstance(layer, Graph):
        return _sq_graph(layer, alg, ex)
    raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} is not an erftheory layer")


def _sq_graph(graph: Graph, alg: _Algebra, ex: _Exact) -> _Transfer:
    r"""The expected-square transfer of a `Graph`, propagated node by node.

    A node's inputs are aligned and summed as the branches of a block are: their
    deterministic parts $D$ add (coherently) and their families are pooled (their
    expected squares add, the assumption stated on `erftheory.layers.Graph`); the node's
    chain is then applied layer by layer (`_sq_step`), so a random activation in it
    closes the families of all its inputs.

    Each family $(V, F)$ is kept with the lowest monomial $z^m$ of $F$ moved into $V$,
    $(z^m V, z^{-m} F)$, which is the same family ($\mathrm{sq}(z^m F') = z^m
    \mathrm{sq}(F')$ in every later product): families that differ only by a shift
    (the alignment of a node's inputs) are then pooled into one, which keeps their
    number small in dense blocks.
    """
    d = alg.ndim
    geometry = _Geometry(d)

    def unshift(m: _Mixed) -> _Mixed:
        fams = []
        for V, F in m.fams:
            terms = F.to_dict()
            low = tuple(min(int(e[i]) for e in terms) for i in range(d)) if terms else ()
            if terms and any(low):
                F = ex.ctx.from_dict(
                    {tuple(int(e[i]) - low[i] for i in range(d)): c for e, c in terms.items()}
                )
                V = alg.shift(V, low)
            fams.append((V, F))
        return _Mixed(m.D, _merge(fams, alg))

    def add(parts: Sequence[_Transfer]) -> _Transfer:
        jumps = {t.jump for t in parts}
        if len(jumps) > 1:
            _sum([_Transfer(None, t.jump, t.pad, t.size) for t in parts], geometry, graph)
        D, fams, pad, size = _sq_aligned_sum(parts, alg, ex, d)
        return _Transfer(unshift(_Mixed(D, fams)), parts[0].jump, pad, size)

    def apply(t: _Transfer, k: int) -> _Transfer:
        for layer in graph.nodes[k]:
            t = _sq_step(t, layer, alg, ex)
            t = _Transfer(unshift(t.rep), t.jump, t.pad, t.size)
        return t

    return _propagate(graph, _sq_start(alg, ex), apply, add)


def _sq_compose(a: _Transfer, b: _Transfer, alg: _Algebra, ex: _Exact) -> _Transfer:
    J = a.jump
    ma: _Mixed = a.rep
    mb: _Mixed = b.rep
    Db = ex.inflate(mb.D, J)
    fb = [(alg.inflate(V, J), ex.inflate(F, J)) for V, F in mb.fams]
    fams = [(V, F * Db) for V, F in ma.fams]
    fams += [(V, ma.D * F) for V, F in fb]
    fams += [(alg.mul(V, V2), F * F2) for V, F in ma.fams for V2, F2 in fb]
    geo = _compose(
        _Transfer(None, a.jump, a.pad, a.size),
        _Transfer(None, b.jump, b.pad, b.size),
        _Geometry(alg.ndim),
    )
    return _Transfer(_Mixed(ma.D * Db, _merge(fams, alg)), geo.jump, geo.pad, geo.size)
