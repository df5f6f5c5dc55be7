r"""The ERF of a network: the layer algebra of Sections 2.4 and 2.5.

A stack of layers with strides $s_l$ and dilations $d_l$ has the transfer polynomial

$$T(z) = \prod_l V_l\!\left(z^{J_{l-1} d_l}\right), \qquad J_l = s_1 s_2 \cdots s_l,$$

in input coordinates: layer $l$ sees the input on a grid $J_{l-1}$ times coarser, and a
dilation $d$ maps $V(z)$ to $V(z^d)$. Branches whose outputs are summed (a residual
block $y = x + F(x)$, parallel paths) add their polynomials, aligned on the output grid.
The coefficients of $T$ are the ERF of one output unit (Eq. 3, 4 and 9 for one kernel).

Two kinds of ERF run on the same algebra (see `erftheory.layers`):

- ``kind="gradient"``: the gradient of the output unit with *fixed* weights;
- ``kind="expected_square"``: the expected squared gradient when the convolutions have
  independent zero-mean random weights with the given per-tap variances. Paths through
  different random taps are uncorrelated (Eq. 6–8), so their squares add, while paths
  through the *same* random taps add coherently across fixed layers (average pooling,
  batch norm, shortcuts): with $D$ the paths through no random layer and, for each family
  $f$ of paths sharing their random layers, $V_f$ the product of those layers' variance
  polynomials and $F_f$ the fixed part,
  $\mathbb E[g^2] = \mathrm{sq}(D) + \sum_f V_f\,\mathrm{sq}(F_f)$ with $\mathrm{sq}$ the
  coefficient-wise square. A pointwise random factor (dropout's mask, an activation's
  slope under the independence assumption of Section 2.4) is its mean plus noise that is
  independent from pixel to pixel, which adds the squares of everything below it. This
  is exact for random convolutions, fixed layers and dropout in a chain; for an
  activation or dropout *inside* a block it treats the paths below the block as coherent,
  which is exact unless fixed multi-tap layers lie between the block and the nearest
  random convolution below it.

Example:
    >>> from erftheory import Kernel, Network
    >>> from erftheory.layers import Conv, AvgPool
    >>> net = Network([Conv(Kernel([1, 1, 1])), AvgPool(2, stride=2), Conv(3)])
    >>> net.ndim, net.receptive_field
    (1, ReceptiveField(size=8, jump=2, offset=-3))
    >>> [str(c) for c in net.profile().coefficients]   # (1+z+z²)·½(1+z)·(1+z²+z⁴)
    ['1/2', '1', '3/2', '3/2', '3/2', '3/2', '1', '1/2']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import flint

from . import _config
from ._errors import ERFTypeError, ERFValueError
from .kernel import Kernel
from .layers import (
    KernelStats,
    Layer,
    _Block,
    _Scalar,
    _Spatial,
    as_chain,
    check_kind,
)
from .profile import Method, Profile, profile

__all__ = ["MAX_RF_BITS", "LayerRow", "Network", "NetworkProfile", "ReceptiveField"]


# --------------------------------------------------------------------------- algebras
class _Transfer:
    """A transfer polynomial with its geometry (all per axis).

    Output unit $i$ reads input pixel $J i - P + e$ with weight ``rep``'s coefficient at
    exponent $e$; ``size`` is the span of exponents the geometry allows.
    """

    __slots__ = ("jump", "pad", "rep", "size")

    def __init__(
        self, rep: Any, jump: tuple[int, ...], pad: tuple[int, ...], size: tuple[int, ...]
    ) -> None:
        self.rep, self.jump, self.pad, self.size = rep, jump, pad, size


class _Algebra:
    """Operations on one representation of polynomials (exact, moments, bounds, none)."""

    def __init__(self, ndim: int) -> None:
        self.ndim = ndim

    def one(self) -> Any: ...
    def kernel(self, k: Kernel, dilation: tuple[int, ...]) -> Any: ...

    def spatial(self, layer: _Spatial, kind: str) -> Any:
        """The representation of a spatial layer's kernel for ``kind`` (with its dilation)."""
        d = self.ndim
        return self.kernel(layer.kernel(kind, d), layer.dilation(d))

    def scale(self, r: Any, c: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def inflate(self, r: Any, jump: tuple[int, ...]) -> Any: ...
    def shift(self, r: Any, s: tuple[int, ...]) -> Any: ...
    def add(self, a: Any, b: Any) -> Any: ...

    def from_sq(self, p: Any) -> Any:
        """The polynomial whose coefficients are the squares of the exact polynomial ``p``'s."""
        raise NotImplementedError


class _Geometry(_Algebra):
    """No polynomial at all: receptive-field arithmetic only."""

    def spatial(self, layer: _Spatial, kind: str) -> Any:
        return None  # sizes only: never build a kernel


class _Exact(_Algebra):
    """python-flint `fmpq_mpoly` polynomials in one variable per axis."""

    def __init__(self, ndim: int) -> None:
        super().__init__(ndim)
        self.ctx = flint.fmpq_mpoly_ctx.get(("x", "y")[:ndim] if ndim == 2 else ("z",))

    def one(self) -> Any:
        return self.ctx.from_dict({(0,) * self.ndim: 1})

    def kernel(self, k: Kernel, dilation: tuple[int, ...]) -> Any:
        terms = {}
        shape = k.shape
        for i, w in enumerate(k.flat):
            if w == 0:
                continue
            pos = (i,) if len(shape) == 1 else divmod(i, shape[1])
            terms[tuple(p * d for p, d in zip(pos, dilation, strict=True))] = _fmpq(w)
        return self.ctx.from_dict(terms)

    def scale(self, r: Any, c: Any) -> Any:
        return r * _fmpq(c)

    def mul(self, a: Any, b: Any) -> Any:
        return a * b

    def inflate(self, r: Any, jump: tuple[int, ...]) -> Any:
        return r if all(j == 1 for j in jump) else r.inflate(list(jump))

    def shift(self, r: Any, s: tuple[int, ...]) -> Any:
        return r if not any(s) else r * self.ctx.from_dict({s: 1})

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def zero(self) -> Any:
        return self.ctx.from_dict({})

    def from_sq(self, p: Any) -> Any:
        return self.ctx.from_dict({m: c * c for m, c in p.to_dict().items()})


def _fmpq(x: Any) -> Any:
    f = Fraction(x)
    return flint.fmpq(f.numerator, f.denominator)


class _Moments(_Algebra):
    r"""Raw moments $(\sum c,\ \sum c\,e_i,\ \sum c\,e_i e_j)$ of the coefficients, exactly.

    The analogue of Eq. 10 for networks: products add cumulants, inflation by $J$
    scales positions, so the mean and covariance of any network cost $O(\text{layers})$
    with no expansion.
    """

    def one(self) -> Any:
        d = self.ndim
        return (Fraction(1), (Fraction(0),) * d, ((Fraction(0),) * d,) * d)

    def _from_terms(self, terms: Iterable[tuple[tuple[int, ...], Any]]) -> Any:
        d = self.ndim
        m0 = Fraction(0)
        m1 = [Fraction(0)] * d
        m2 = [[Fraction(0)] * d for _ in range(d)]
        for pos, c in terms:
            c = Fraction(c)
            m0 += c
            for i in range(d):
                m1[i] += c * pos[i]
                for j in range(d):
                    m2[i][j] += c * pos[i] * pos[j]
        return (m0, tuple(m1), tuple(tuple(r) for r in m2))

    def kernel(self, k: Kernel, dilation: tuple[int, ...]) -> Any:
        return self._dilated(KernelStats.of(k), dilation)

    def spatial(self, layer: _Spatial, kind: str) -> Any:
        d = self.ndim
        return self._dilated(layer.stats(kind, d), layer.dilation(d))

    def _dilated(self, st: KernelStats, dilation: tuple[int, ...]) -> Any:
        """Moments of a kernel whose tap ``m`` sits at ``m * dilation``: closed forms."""
        d = range(self.ndim)
        return (
            st.m0,
            tuple(st.m1[i] * dilation[i] for i in d),
            tuple(tuple(st.m2[i][j] * dilation[i] * dilation[j] for j in d) for i in d),
        )

    def scale(self, r: Any, c: Any) -> Any:
        c = Fraction(c)
        m0, m1, m2 = r
        return (m0 * c, tuple(x * c for x in m1), tuple(tuple(x * c for x in row) for row in m2))

    def mul(self, a: Any, b: Any) -> Any:
        a0, a1, a2 = a
        b0, b1, b2 = b
        d = self.ndim
        m1 = tuple(a1[i] * b0 + a0 * b1[i] for i in range(d))
        m2 = tuple(
            tuple(a2[i][j] * b0 + a1[i] * b1[j] + a1[j] * b1[i] + a0 * b2[i][j] for j in range(d))
            for i in range(d)
        )
        return (a0 * b0, m1, m2)

    def inflate(self, r: Any, jump: tuple[int, ...]) -> Any:
        m0, m1, m2 = r
        d = self.ndim
        return (
            m0,
            tuple(m1[i] * jump[i] for i in range(d)),
            tuple(tuple(m2[i][j] * jump[i] * jump[j] for j in range(d)) for i in range(d)),
        )

    def shift(self, r: Any, s: tuple[int, ...]) -> Any:
        m0, m1, m2 = r
        d = self.ndim
        return (
            m0,
            tuple(m1[i] + s[i] * m0 for i in range(d)),
            tuple(
                tuple(m2[i][j] + s[i] * m1[j] + s[j] * m1[i] + s[i] * s[j] * m0 for j in range(d))
                for i in range(d)
            ),
        )

    def add(self, a: Any, b: Any) -> Any:
        d = self.ndim
        return (
            a[0] + b[0],
            tuple(a[1][i] + b[1][i] for i in range(d)),
            tuple(tuple(a[2][i][j] + b[2][i][j] for j in range(d)) for i in range(d)),
        )

    def from_sq(self, p: Any) -> Any:
        return self._from_terms(
            (tuple(int(e) for e in m), Fraction(int(c.p), int(c.q)) ** 2) for m, c in p.terms()
        )


class _Bound(_Algebra):
    """Bounds $(\\log_2 \\sum|c|,\\ \\log_2 D)$ for the memory guard; no polynomial arithmetic."""

    def one(self) -> Any:
        return (0.0, 0.0)

    def kernel(self, k: Kernel, dilation: tuple[int, ...]) -> Any:
        st = KernelStats.of(k)
        return (_log2(st.l1), math.log2(st.den))

    def spatial(self, layer: _Spatial, kind: str) -> Any:
        st = layer.stats(kind, self.ndim)
        return (_log2(st.l1), math.log2(st.den))

    def scale(self, r: Any, c: Any) -> Any:
        f = Fraction(c)
        return (r[0] + _log2(abs(f)), r[1] + math.log2(f.denominator))

    def mul(self, a: Any, b: Any) -> Any:
        return (a[0] + b[0], a[1] + b[1])

    def inflate(self, r: Any, jump: tuple[int, ...]) -> Any:
        return r

    def shift(self, r: Any, s: tuple[int, ...]) -> Any:
        return r

    def add(self, a: Any, b: Any) -> Any:
        hi, lo = max(a[0], b[0]), min(a[0], b[0])
        l1 = hi + math.log2(1 + 2.0 ** (lo - hi)) if lo > -math.inf else hi
        return (l1, a[1] + b[1])


def _log2sum(xs: Sequence[float]) -> float:
    r"""$\log_2 \sum_i 2^{x_i}$ without overflow (``-inf`` entries are zeros)."""
    hi = max(xs)
    if hi == -math.inf:
        return hi
    return hi + math.log2(sum(2.0 ** (x - hi) for x in xs))


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
            pads = [_chain(b, "gradient", _Geometry(d)).pad for b in layer.branches]
            ext = tuple(max(x[0][i] for x in parts) + max(p[i] for p in pads) for i in range(d))
            stride = tuple(parts[0][1])
        else:
            continue
        span = [span[i] + jump[i] * (ext[i] - 1) for i in range(d)]
        jump = [jump[i] * stride[i] for i in range(d)]
    return span, jump


def _log2(x: Fraction) -> float:
    if x == 0:
        return -math.inf
    return math.log2(x.numerator) - math.log2(x.denominator)


# --------------------------------------------------------------------------- evaluation
def _unit(alg: _Algebra) -> _Transfer:
    d = alg.ndim
    return _Transfer(alg.one(), (1,) * d, (0,) * d, (1,) * d)


def _compose(a: _Transfer, b: _Transfer, alg: _Algebra) -> _Transfer:
    """``a`` (nearer the input) followed by ``b``: $T_a(z)\\,T_b(z^{J_a})$."""
    rep = alg.mul(a.rep, alg.inflate(b.rep, a.jump))
    d = range(alg.ndim)
    return _Transfer(
        rep,
        tuple(a.jump[i] * b.jump[i] for i in d),
        tuple(a.pad[i] + a.jump[i] * b.pad[i] for i in d),
        tuple(a.size[i] + a.jump[i] * (b.size[i] - 1) for i in d),
    )


def _sum(parts: Sequence[_Transfer], alg: _Algebra, where: Layer) -> _Transfer:
    jumps = {t.jump for t in parts}
    if len(jumps) > 1:
        raise ERFValueError(
            f"the branches of {where!r} end on different grids (total strides "
            f"{sorted(jumps)}); give the shortcut the same stride as the residual branch"
        )
    d = range(alg.ndim)
    pad = tuple(max(t.pad[i] for t in parts) for i in d)
    rep = None
    for t in parts:
        shifted = alg.shift(t.rep, tuple(pad[i] - t.pad[i] for i in d))
        rep = shifted if rep is None else alg.add(rep, shifted)
    size = tuple(max(pad[i] - t.pad[i] + t.size[i] for t in parts) for i in d)
    return _Transfer(rep, parts[0].jump, pad, size)


def _layer(layer: Layer, alg: _Algebra) -> _Transfer:
    """The gradient-kind transfer of one layer."""
    d = alg.ndim
    if isinstance(layer, _Spatial):
        return _Transfer(
            alg.spatial(layer, "gradient"),
            layer.stride(d),
            layer.padding(d),
            layer.extent(d),
        )
    if isinstance(layer, _Scalar):
        t = _unit(alg)
        t.rep = alg.scale(t.rep, layer.factor("gradient"))
        return t
    if isinstance(layer, _Block):
        return _sum([_chain(b, "gradient", alg) for b in layer.branches], alg, layer)
    raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} is not an erftheory layer")


def _chain(layers: Sequence[Layer], kind: str, alg: _Algebra) -> _Transfer:
    """The transfer of a chain of layers (input first) for ``kind``."""
    if kind == "expected_square":
        return _square(layers, alg)
    t = _unit(alg)
    for layer in layers:
        t = _compose(t, _layer(layer, alg), alg)
    return t


# ---------------------------------------------------------------- expected squares
# The gradient of a random-weight network is a sum over paths, each a product of one
# tap per layer. Paths that use different sets of random taps are uncorrelated (every
# weight has mean 0), so with $D$ the paths through no random layer and, per family $f$
# of paths through the same random layers, $V_f$ the product of their variance
# polynomials and $F_f$ the fixed (coherent) part of the paths,
#
#     E[g^2] = sq(D) + sum_f V_f sq(F_f),       sq = coefficient-wise square.
#
# Composing a then b: D = D_a D_b; families (V_a, F_a D_b), (V_b, D_a F_b) and
# (V_a V_b, F_a F_b). Branches of a block add their D and pool their families.
# A pointwise factor f with mean mu and variance s^2, independent from pixel to pixel
# (dropout's mask; an activation's slope under the independence assumption), is
# mu + noise: D and F scale by mu, and the noise closes every segment below it:
# (s^2 sq(D), 1) and (s^2 V sq(F), 1).


class _Mixed:
    """``D`` (exact polynomial) and families ``[(V, F)]`` (V in the target algebra)."""

    __slots__ = ("D", "fams")

    def __init__(self, D: Any, fams: list[tuple[Any, Any]]) -> None:
        self.D, self.fams = D, fams


_MAX_FAMILIES = 4096

MAX_RF_BITS = 256
"""Moments and tables are refused for receptive fields or jumps above $2^{256}$ pixels."""

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


def _sq_step(t: _Transfer, layer: Layer, alg: _Algebra, ex: _Exact) -> _Transfer:
    """``t`` followed by ``layer``."""
    if not isinstance(layer, _Scalar):
        return _sq_compose(t, _sq_layer(layer, alg, ex), alg, ex)
    mu = Fraction(layer.factor("gradient"))
    noise = Fraction(layer.factor("expected_square")) - mu * mu
    if noise < 0:
        raise ERFValueError(
            f"{layer!r}: its mean square factor is below the square of its mean factor "
            f"(E[f^2] < E[f]^2), which no random factor can have"
        )
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
            _sum([_chain(b, "gradient", _Geometry(d)) for b in layer.branches], _Geometry(d), layer)
        pad = tuple(max(t.pad[i] for t in parts) for i in range(d))
        D = ex.zero()
        fams: list[tuple[Any, Any]] = []
        for t in parts:
            s = tuple(pad[i] - t.pad[i] for i in range(d))
            D = D + ex.shift(t.rep.D, s)
            fams += [(alg.shift(V, s), F) for V, F in t.rep.fams]
        size = tuple(max(pad[i] - t.pad[i] + t.size[i] for t in parts) for i in range(d))
        return _Transfer(_Mixed(D, _merge(fams, alg)), parts[0].jump, pad, size)
    raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} is not an erftheory layer")


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


# --------------------------------------------------------------------------- public API
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
        g = self._geometry()
        terms = math.prod(g.size)
        if kind == "expected_square":
            l1, den = _sq_bound(self.layers, self.ndim)
            # the fixed parts are exact polynomials too, one per family of paths
            terms += _FIXED_COPIES * math.prod(_fixed_span(self.layers, self.ndim)[0])
        else:
            l1, den = _chain(self.layers, "gradient", _Bound(self.ndim)).rep
        bits = max(l1, 0.0) + 2 * den + 64
        _config.check_size(
            2 * terms * (math.ceil(bits / 4) + 48),
            "the network's exact transfer polynomial",
            "use fewer or smaller layers, or raise erftheory.set_memory_limit()",
        )

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
            l1, den = _chain(self.layers, "gradient", _Bound(self.ndim)).rep
            bits = max(l1, 0.0) + 2 * den + 64
            terms = _FIXED_COPIES * math.prod(_fixed_span(self.layers, self.ndim)[0])
            _config.check_size(
                2 * terms * (math.ceil(bits / 4) + 48),
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
        g = self._geometry()
        rep = _chain(self.layers, kind, _Exact(self.ndim)).rep
        size = g.size
        anchor = tuple((s - 1) // 2 for s in size)
        if self.ndim == 1:
            row: list[Any] = [0] * size[0]
            for (e,), c in rep.terms():
                row[e] = _value(c)
            return Kernel(row, anchor=anchor)
        grid: list[list[Any]] = [[0] * size[1] for _ in range(size[0])]
        for (a, b), c in rep.terms():
            grid[a][b] = _value(c)
        return Kernel(grid, anchor=anchor)

    def profile(
        self, kind: str = "gradient", *, method: Method = "auto", dps: int | None = None
    ) -> NetworkProfile:
        r"""The ERF of the centre output unit, exactly, as a `NetworkProfile`.

        Args:
            kind: ``"gradient"`` (fixed weights) or ``"expected_square"`` (zero-mean
                random weights with the kernels as per-tap variances).
            method: the engine, as for `erftheory.profile`; the transfer polynomial
                itself is always formed exactly.
            dps: decimal digits for ``method="arb"``, as for `erftheory.profile`.

        The coefficients cover the theoretical RF (``receptive_field.size`` per axis);
        ``origin`` is its centre pixel ``(size - 1) // 2``, which for ``'same'`` padding
        and odd kernels is the pixel under the output unit.
        """
        kernel = self.transfer(kind)
        base = profile(kernel, 1, method=method, dps=dps)
        return NetworkProfile(self, check_kind(kind), base)

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
        out = []
        for a in range(self.ndim):
            # Beyond 2 (size + jump) + a margin every layer's grid has room on both sides
            # of the centre; if nothing fits by then, branches disagree on output length.
            # Below the RF size nothing fits (the centre unit reads `size` pixels).
            bound = 2 * (geo.size[a] + geo.jump[a]) + 2 * len(self.layers) + 8
            start = geo.size[a]
            budget = max(1024, _MAX_SEARCH_WORK // (len(self.layers) + 1))
            n = None
            for tried, m in enumerate(range(start, bound + 1)):
                if tried >= budget:
                    raise ERFValueError(
                        f"min_input_size: no input size from {_big(start)} to "
                        f"{_big(m - 1)} keeps the ERF of the centre output unclipped on axis "
                        f"{a}, and trying more than {budget} sizes (for {len(self.layers)} "
                        f"layers; RF {_big(geo.size[a])}, jump {_big(geo.jump[a])}) is refused"
                    )
                if _fits(self.layers, m, a, self.ndim):
                    n = m
                    break
            if n is None:
                raise ERFValueError(
                    f"no input size up to {_big(bound)} keeps the ERF of the centre output "
                    f"unclipped on axis {a}: the branches of a block produce outputs of "
                    f"different lengths (PyTorch could not add them); check their padding"
                )
            out.append(n)
        return self._axes(tuple(out))

    # ------------------------------------------------------------ dunder
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Any:
        return iter(self.layers)

    def __repr__(self) -> str:
        return f"Network([{', '.join(repr(x) for x in self.layers)}])"


_MAX_SEARCH_WORK = 10**5  # layer steps of min_input_size's search (a second or two)


def _big(n: int) -> str:
    """An int for a message: its digits, or ``about 2^k`` when it is huge."""
    return str(n) if n.bit_length() <= 64 else f"about 2^{n.bit_length() - 1}"


def _value(c: Any) -> Any:
    p, q = int(c.p), int(c.q)
    return p if q == 1 else Fraction(p, q)


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


# ---------------------------------------------------------------- input-size rule
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
    return lo, hi


def _fits(layers: Sequence[Layer], n: int, axis: int, ndim: int) -> bool:
    out = _out_len(layers, n, axis, ndim)
    if out <= 0:
        return False
    c = (out - 1) // 2
    return _needed(layers, n, c, c, axis, ndim)


# ---------------------------------------------------------------- the profile
class NetworkProfile(Profile):
    """The `Profile` of a network's ERF: its transfer polynomial taken once.

    Everything of `Profile` applies (``coefficients``, ``normalized()``, ``mean``,
    ``variance``, ERF sizes, ``gaussian()``); ``kernel`` is the transfer polynomial on
    the RF grid and ``layers`` is 1. ``rf_size`` is the network's theoretical RF.

    Attributes:
        network: the `Network`.
        kind: ``"gradient"`` or ``"expected_square"``.
    """

    def __init__(self, network: Network, kind: str, base: Profile) -> None:
        super().__init__(base.kernel, 1, base.method, dps=base.dps, reason=base.engine_reason)
        self.network = network
        self.kind = kind

    def summary(self, fractions: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)) -> dict[str, Any]:
        out = super().summary(fractions)
        rf = self.network.receptive_field
        del out["kernel"], out["anchor"], out["layers"]
        out = {
            "network": repr(self.network),
            "kind": self.kind,
            "jump": rf.jump if self.ndim == 1 else list(rf.jump),
            "offset": rf.offset if self.ndim == 1 else list(rf.offset),
            **out,
        }
        return out

    def __repr__(self) -> str:
        return f"NetworkProfile({self.network!r}, kind={self.kind!r}, method={self.method!r})"
