r"""The algebras a network's layers are evaluated in (Section 2.5).

One walk over the layers (`_gradient`) computes, depending on the algebra it is given:

- `_Exact`: the transfer polynomial $T(z) = \prod_l V_l(z^{J_{l-1} d_l})$ itself, exactly,
  as a python-flint ``fmpq_mpoly`` (one variable per axis);
- `_Moments`: only its sum, first and second moments (exact Fractions; closed forms for
  uniform kernels), so any depth costs $O(\text{layers})$;
- `_Bound`: $\log_2$ bounds of its coefficients' sum and denominator, for the memory guard;
- `_Geometry`: nothing but the grid (jump, padding, size): the receptive field.

A `_Transfer` carries the value in the algebra with the grid it lives on. Composition
inflates the later factor by the jump so far; branches of a block are aligned on their
padding and added. A `Graph` is evaluated node by node in topological order
(`_propagate`): a node's value is its chain composed after the aligned sum of its
inputs' values, so the sum over the graph's paths is never expanded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import Any

import flint

from .._errors import ERFTypeError, ERFValueError
from ..kernel import Kernel
from ..layers import Graph, KernelStats, Layer, _Block, _Scalar, _Spatial


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


def _log2(x: Fraction) -> float:
    if x == 0:
        return -math.inf
    return math.log2(x.numerator) - math.log2(x.denominator)


def _log2sum(xs: Sequence[float]) -> float:
    r"""$\log_2 \sum_i 2^{x_i}$ without overflow (``-inf`` entries are zeros)."""
    hi = max(xs)
    if hi == -math.inf:
        return hi
    return hi + math.log2(sum(2.0 ** (x - hi) for x in xs))


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


_EPS = 2.0**-53  # unit roundoff of float64
# Products whose smaller factor has at most this many nonzero taps are summed as shifted
# copies (each coefficient a sum of nonnegative terms for nonnegative data); larger ones
# go through scipy's FFT convolution.
_SPARSE_TAPS = 256


class _FloatPoly:
    """A float64 coefficient array (index = exponent per axis) with an error bound.

    Attributes:
        values: the coefficients.
        err: a bound on the absolute error of every coefficient.
    """

    __slots__ = ("err", "values")

    def __init__(self, values: Any, err: float = 0.0) -> None:
        self.values, self.err = values, err


class _Float(_Algebra):
    r"""float64 coefficient arrays: the float route for networks too large to expand exactly.

    Each product is formed as a sum of shifted copies when one factor has few nonzero
    taps (a layer's kernel inflated by the jump: rounding error at most
    $\text{taps}\cdot u\,\sum|b|\,\max|a|$ per coefficient, $u = 2^{-53}$), and by FFT
    convolution otherwise (at most $5u\log_2 N\,\|a\|_2\|b\|_2$). The bounds are carried
    through every operation, so `_FloatPoly.err` bounds the absolute error of every
    coefficient of the result.
    """

    def __init__(self, ndim: int) -> None:
        super().__init__(ndim)
        import numpy as np

        self.np = np

    def one(self) -> Any:
        return _FloatPoly(self.np.ones((1,) * self.ndim))

    def spatial(self, layer: _Spatial, kind: str) -> Any:
        d = self.ndim
        value = layer.uniform_value(kind, d)
        if value is None:
            return self.kernel(layer.kernel(kind, d), layer.dilation(d))
        vals = self.np.full(layer.size(d), float(value))  # no Kernel of Fractions built
        return self.inflate(_FloatPoly(vals, _EPS * abs(float(value))), layer.dilation(d))

    def kernel(self, k: Kernel, dilation: tuple[int, ...]) -> Any:
        np = self.np
        vals = np.array([float(w) for w in k.flat], dtype=np.float64).reshape(k.shape)
        if all(d == 1 for d in dilation):
            return _FloatPoly(vals, _EPS * float(np.abs(vals).max(initial=0.0)))
        return self.inflate(_FloatPoly(vals, _EPS * float(np.abs(vals).max(initial=0.0))), dilation)

    def scale(self, r: Any, c: Any) -> Any:
        f = float(c)
        return _FloatPoly(r.values * f, abs(f) * r.err + _EPS * abs(f) * _amax(r.values))

    def mul(self, a: Any, b: Any) -> Any:
        np = self.np
        A, B = a.values, b.values
        if np.count_nonzero(A) < np.count_nonzero(B):
            A, B, a, b = B, A, b, a
        taps = np.argwhere(B)
        shape = tuple(x + y - 1 for x, y in zip(A.shape, B.shape, strict=True))
        l1a, l1b = float(np.abs(A).sum()), float(np.abs(B).sum())
        # propagated input errors: |dA * B| + |A * dB| + |dA * dB| per coefficient
        err = a.err * l1b + b.err * l1a + a.err * b.err * B.size
        if len(taps) <= _SPARSE_TAPS:
            out = np.zeros(shape)
            for tap in taps:
                idx = tuple(slice(int(t), int(t) + n) for t, n in zip(tap, A.shape, strict=True))
                out[idx] += B[tuple(tap)] * A
            err += 2 * len(taps) * _EPS * l1b * _amax(A)
        else:
            from scipy.signal import fftconvolve

            out = fftconvolve(A, B)
            n = max(2, math.prod(shape))
            err += 5 * _EPS * math.log2(n) * float(np.linalg.norm(A) * np.linalg.norm(B))
        return _FloatPoly(out, err)

    def inflate(self, r: Any, jump: tuple[int, ...]) -> Any:
        if all(j == 1 for j in jump):
            return r
        np = self.np
        shape = tuple((n - 1) * j + 1 for n, j in zip(r.values.shape, jump, strict=True))
        out = np.zeros(shape)
        out[tuple(slice(None, None, j) for j in jump)] = r.values
        return _FloatPoly(out, r.err)

    def shift(self, r: Any, s: tuple[int, ...]) -> Any:
        if not any(s):
            return r
        return _FloatPoly(self.np.pad(r.values, [(k, 0) for k in s]), r.err)

    def add(self, a: Any, b: Any) -> Any:
        np = self.np
        shape = tuple(max(x, y) for x, y in zip(a.values.shape, b.values.shape, strict=True))
        out = np.zeros(shape)
        out[tuple(slice(0, n) for n in a.values.shape)] += a.values
        out[tuple(slice(0, n) for n in b.values.shape)] += b.values
        return _FloatPoly(out, a.err + b.err + _EPS * _amax(out))

    def from_sq(self, p: Any) -> Any:
        np = self.np
        terms = [(tuple(int(e) for e in m), float(c) ** 2) for m, c in p.terms()]
        if not terms:
            return _FloatPoly(np.zeros((1,) * self.ndim))
        shape = tuple(max(m[i] for m, _ in terms) + 1 for i in range(self.ndim))
        out = np.zeros(shape)
        for m, c in terms:
            out[m] = c
        return _FloatPoly(out, 3 * _EPS * _amax(out))

    def padded(self, r: Any, size: tuple[int, ...]) -> Any:
        """``r``'s coefficients on the grid ``size`` (the receptive field)."""
        np = self.np
        v = r.values[tuple(slice(0, n) for n in size)]
        return np.pad(v, [(0, n - m) for n, m in zip(size, v.shape, strict=True)])


def _amax(values: Any) -> float:
    return float(abs(values).max(initial=0.0)) if values.size else 0.0


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
        return _sum([_gradient(b, alg) for b in layer.branches], alg, layer)
    if isinstance(layer, Graph):
        chains = [_gradient(b, alg) for b in layer.nodes]
        out = _propagate(
            layer,
            _unit(alg),
            lambda t, k: _compose(t, chains[k], alg),
            lambda parts: _sum(parts, alg, layer),
        )
        if isinstance(alg, _Bound):
            # every path's denominator divides the product of all the layers' ones: a
            # bound linear in the layers (adding along the paths would double per join)
            out.rep = (out.rep[0], sum(t.rep[1] for t in chains))
        return out
    raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} is not an erftheory layer")


def _gradient(layers: Sequence[Layer], alg: _Algebra) -> _Transfer:
    """The gradient-kind transfer of a chain of layers (input first) in ``alg``."""
    t = _unit(alg)
    for layer in layers:
        t = _compose(t, _layer(layer, alg), alg)
    return t


def _propagate(
    graph: Graph,
    start: _Transfer,
    apply: Callable[[_Transfer, int], _Transfer],
    add: Callable[[Sequence[_Transfer]], _Transfer],
) -> _Transfer:
    r"""The output of a `Graph` by propagation in topological order.

    $T_0$ is ``start``; node $k$'s value is ``apply(add(inputs), k - 1)``: its chain
    $C_k$ (``graph.nodes[k - 1]``) applied after the aligned sum of its inputs' values.
    Each value is formed once, so the cost is one chain and one sum per node, whatever
    the number of paths.
    """
    values = [start]
    for k, (layers, inputs) in enumerate(zip(graph.nodes, graph.inputs, strict=True)):
        parts = [values[j] for j in inputs]
        total = parts[0] if len(parts) == 1 else add(parts)
        values.append(apply(total, k) if layers else total)
    return values[-1]
