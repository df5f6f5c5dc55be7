r"""The float route for ``kind="expected_square"``: fixed parts in float64 too.

The expected-square algebra (`erftheory.network.families`) keeps the deterministic part
$D$ and the fixed (coherent) parts $F_f$ of its families of paths as exact polynomials,

$$\mathbb E[g^2] = \mathrm{sq}(D) + \sum_f V_f\,\mathrm{sq}(F_f),$$

so that families with equal fixed parts can be pooled. Where average pools sit between
random layers (Inception-v3's pool branches, ResNet-D's pooled shortcut) the $F_f$ are
products of many pools and span most of the receptive field; exactly they would need
tens of GiB. This module runs the same walk with every polynomial a float64 array
(`erftheory.network.algebra._Float`, whose error bounds are carried through every
operation):

- families are pooled where their fixed parts are equal after division by their first
  coefficient (bitwise, as arrays; a family left unpooled costs time, never accuracy);
- a family whose whole contribution is bounded by less than ``PRUNE`` times the bound
  on the total (its bound $\sum V_f (\sum |F_f|)^2$ against that of all families and
  $D$) is dropped, and that bound is added to the error of every coefficient. The
  coherent part of a path is multiplied by $E[\sigma']$ at every activation
  ($\tfrac12$ for ReLU), so in a deep network most families are negligible.

`square_transfer` returns the values with their error bound; `float_square_profile`
wraps them, with the moments read from the values, as the `NetworkProfile` that
`erftheory.network.Network.profile` returns on its float route.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from .._errors import ERFTypeError, ERFValueError
from ..layers import Graph, Layer, _Block, _Scalar, _Spatial
from .algebra import _EPS, _amax, _Float, _FloatPoly, _Transfer
from .families import _mean_and_noise

__all__ = ["PRUNE", "float_square_profile", "square_transfer"]

PRUNE = 2.0**-40
r"""Relative size below which a family of paths is dropped (its bound joins the error).

About $10^{-12}$ of the bound on the total: on Inception-v3 it keeps 34 of 53 families, and
the normalised profile moves by $5\cdot10^{-19}$ (its bound says $2.5\cdot10^{-12}$).
"""

_MAX_FAMILIES = 4096


class _State:
    """``D``, the families ``[(V, F)]`` and the bound on what was dropped (absolute)."""

    __slots__ = ("D", "fams", "lost")

    def __init__(self, D: _FloatPoly, fams: list[tuple[_FloatPoly, _FloatPoly]], lost: float):
        self.D, self.fams, self.lost = D, fams, lost


def _l1(p: _FloatPoly) -> float:
    return float(abs(p.values).sum()) + p.err * p.values.size


def _sq(p: _FloatPoly) -> _FloatPoly:
    """Coefficient-wise square, its error bound from the input's."""
    m = _amax(p.values)
    return _FloatPoly(p.values * p.values, 2 * m * p.err + p.err * p.err + _EPS * m * m)


def _mul(a: _FloatPoly, b: _FloatPoly) -> _FloatPoly:
    """``a * b`` as `_Float.mul` (its error bounds), by shifted sums only where cheaper.

    `_Float.mul` sums shifted copies whenever one factor has at most 256 taps; on the
    large arrays of this route (a 1311 x 1311 family times a 16 x 16 fixed part) one FFT
    convolution is far cheaper, so the choice here is by operation count.
    """
    import numpy as np

    A, B = a.values, b.values
    if np.count_nonzero(A) < np.count_nonzero(B):
        A, B, a, b = B, A, b, a
    taps = np.argwhere(B)
    shape = tuple(x + y - 1 for x, y in zip(A.shape, B.shape, strict=True))
    n = max(2, math.prod(shape))
    l1a, l1b = float(np.abs(A).sum()), float(np.abs(B).sum())
    err = a.err * l1b + b.err * l1a + a.err * b.err * B.size
    if len(taps) * A.size <= _FFT_COST * n * math.log2(n):
        out = np.zeros(shape)
        for tap in taps:
            idx = tuple(slice(int(t), int(t) + m) for t, m in zip(tap, A.shape, strict=True))
            out[idx] += B[tuple(tap)] * A
        err += 2 * len(taps) * _EPS * l1b * _amax(A)
    else:
        from scipy.signal import fftconvolve

        out = fftconvolve(A, B)
        err += 5 * _EPS * math.log2(n) * float(np.linalg.norm(A) * np.linalg.norm(B))
    return _FloatPoly(out, err)


_FFT_COST = 3  # shifted-sum operations worth one N log2 N of an FFT convolution


def _zero(d: int) -> _FloatPoly:
    import numpy as np

    return _FloatPoly(np.zeros((1,) * d))


class _Walk:
    def __init__(self, ndim: int) -> None:
        self.alg = _Float(ndim)
        self.d = ndim

    # ------------------------------------------------------------------ families
    def merge(self, st: _State) -> _State:
        np = self.alg.np
        out: dict[tuple[Any, ...], tuple[_FloatPoly, _FloatPoly]] = {}
        for V, F in st.fams:
            nz = np.flatnonzero(F.values)
            if not nz.size:
                continue
            c = float(F.values.flat[nz[0]])
            if c != 1.0:
                F = self.alg.scale(F, 1.0 / c)
                V = self.alg.scale(V, c * c)
            key = (F.values.shape, F.values.tobytes())
            out[key] = (self.alg.add(out[key][0], V), F) if key in out else (V, F)
        fams = list(out.values())
        bounds = [_l1(V) * _l1(F) ** 2 for V, F in fams]
        total = _l1(st.D) ** 2 + sum(bounds) + st.lost
        keep, lost = [], st.lost
        for fam, b in zip(fams, bounds, strict=True):
            if b < PRUNE * total:
                lost += b
            else:
                keep.append(fam)
        if len(keep) > _MAX_FAMILIES:
            raise ERFValueError(
                f"kind='expected_square' needs more than {_MAX_FAMILIES} families of paths "
                f"with different fixed parts; use fewer fixed (non-random) layers between "
                f"random ones"
            )
        return _State(st.D, keep, lost)

    # ------------------------------------------------------------------- walk
    def start(self) -> _Transfer:
        d = self.d
        return _Transfer(_State(self.alg.one(), [], 0.0), (1,) * d, (0,) * d, (1,) * d)

    def chain(self, layers: Sequence[Layer]) -> _Transfer:
        t = self.start()
        for layer in layers:
            t = self.step(t, layer)
        return t

    def step(self, t: _Transfer, layer: Layer) -> _Transfer:
        if not isinstance(layer, _Scalar):
            return self.compose(t, self.layer(layer))
        alg = self.alg
        mu, noise = _mean_and_noise(layer)
        st: _State = t.rep
        fams = [(V, alg.scale(F, mu)) for V, F in st.fams]
        if noise:
            one = alg.one()
            if _amax(st.D.values):
                fams.append((alg.scale(_sq(st.D), noise), one))
            fams += [(alg.scale(_mul(V, _sq(F)), noise), one) for V, F in st.fams]
        lost = st.lost * float(mu * mu + noise)  # E[f^2]: coherent and noise parts
        new = _State(alg.scale(st.D, mu), fams, lost)
        return _Transfer(self.merge(new), t.jump, t.pad, t.size)

    def layer(self, layer: Layer) -> _Transfer:
        d, alg = self.d, self.alg
        if isinstance(layer, _Spatial):
            geo = (layer.stride(d), layer.padding(d), layer.extent(d))
            if layer.random:
                v = alg.spatial(layer, "expected_square")
                return _Transfer(_State(_zero(d), [(v, alg.one())], 0.0), *geo)
            return _Transfer(_State(alg.spatial(layer, "gradient"), [], 0.0), *geo)
        if isinstance(layer, _Block):
            return self.add([self.chain(b) for b in layer.branches], layer)
        if isinstance(layer, Graph):
            from .algebra import _propagate

            def apply(t: _Transfer, k: int) -> _Transfer:
                for inner in layer.nodes[k]:
                    t = self.step(t, inner)
                return t

            return _propagate(layer, self.start(), apply, lambda parts: self.add(parts, layer))
        raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} is not an erftheory layer")

    def add(self, parts: Sequence[_Transfer], where: Layer) -> _Transfer:
        d, alg = self.d, self.alg
        jumps = {t.jump for t in parts}
        if len(jumps) > 1:
            raise ERFValueError(
                f"the branches of {where!r} end on different grids (total strides "
                f"{sorted(jumps)}); give the shortcut the same stride as the residual branch"
            )
        pad = tuple(max(t.pad[i] for t in parts) for i in range(d))
        D: _FloatPoly | None = None
        fams: list[tuple[_FloatPoly, _FloatPoly]] = []
        lost = 0.0
        for t in parts:
            s = tuple(pad[i] - t.pad[i] for i in range(d))
            shifted = alg.shift(t.rep.D, s)
            D = shifted if D is None else alg.add(D, shifted)
            fams += [(alg.shift(V, s), F) for V, F in t.rep.fams]
            lost += t.rep.lost
        # families of different branches are pooled (their expected squares add), never
        # added coherently, so the dropped bounds add too
        size = tuple(max(pad[i] - t.pad[i] + t.size[i] for t in parts) for i in range(d))
        assert D is not None
        return _Transfer(self.merge(_State(D, fams, lost)), parts[0].jump, pad, size)

    def compose(self, a: _Transfer, b: _Transfer) -> _Transfer:
        alg, J = self.alg, a.jump
        sa: _State = a.rep
        sb: _State = b.rep
        Db = alg.inflate(sb.D, J)
        fb = [(alg.inflate(V, J), alg.inflate(F, J)) for V, F in sb.fams]
        fams = [(V, _mul(F, Db)) for V, F in sa.fams]
        fams += [(V, _mul(sa.D, F)) for V, F in fb]
        fams += [(_mul(V, V2), _mul(F, F2)) for V, F in sa.fams for V2, F2 in fb]
        grow = _l1(sb.D) ** 2 + sum(_l1(V) * _l1(F) ** 2 for V, F in sb.fams)
        # what was dropped before b is at most multiplied by b's bound on the total, and
        # what b dropped by a's (the product of two dropped families by both bounds)
        keep_a = _l1(sa.D) ** 2 + sum(_l1(V) * _l1(F) ** 2 for V, F in sa.fams)
        lost = sa.lost * grow + sb.lost * keep_a + sa.lost * sb.lost
        d = range(self.d)
        return _Transfer(
            self.merge(_State(_mul(sa.D, Db), fams, lost)),
            tuple(a.jump[i] * b.jump[i] for i in d),
            tuple(a.pad[i] + a.jump[i] * b.pad[i] for i in d),
            tuple(a.size[i] + a.jump[i] * (b.size[i] - 1) for i in d),
        )

    def final(self, t: _Transfer) -> _FloatPoly:
        st: _State = t.rep
        rep = _sq(st.D)
        for V, F in st.fams:
            rep = self.alg.add(rep, _mul(V, _sq(F)))
        return _FloatPoly(rep.values, rep.err + st.lost)


def square_transfer(layers: Sequence[Layer], ndim: int) -> tuple[Any, float, _Transfer]:
    r"""$\mathbb E[g^2]$ of a chain of layers in float64, on its receptive-field grid.

    Args:
        layers: the network's layers, input first.
        ndim: 1 or 2.

    Returns:
        ``(values, error, transfer)``: the coefficients padded to the receptive field
        (index = position in the field), a bound on the absolute error of every one
        (rounding and dropped families), and the `_Transfer` (its grid).

    Example:
        >>> from erftheory.layers import Conv, AvgPool
        >>> values, err, _ = square_transfer([Conv(3), AvgPool(2), Conv(3)], 1)
        >>> [round(float(v), 12) for v in values], err < 1e-14
        ([0.25, 0.5, 0.75, 0.75, 0.75, 0.75, 0.5, 0.25], True)
    """
    walk = _Walk(ndim)
    t = walk.chain(layers)
    rep = walk.final(t)
    return walk.alg.padded(rep, t.size), rep.err, t


def float_square_profile(network: Any, *, reason: str = "") -> Any:
    """The expected-square `NetworkProfile` of ``network`` by the float route.

    The moments are those of the float64 values (exact moments would need the exact
    fixed parts this route avoids). The result's ``reason`` says so, after ``reason``
    (what chose the route) where given.

    Example:
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv
        >>> p = float_square_profile(Network([Conv(3)] * 2, ndim=1))
        >>> p.method, [round(float(v), 12) for v in p.normalized()]
        ('float', [0.111111111111, 0.222222222222, 0.333333333333, 0.222222222222, 0.111111111111])
    """
    import numpy as np

    from ..engines import run
    from ..engines.source import FloatTransfer
    from .profile import NetworkProfile

    values, err, _ = square_transfer(network.layers, network.ndim)
    total = float(values.sum())
    if not total > 0:
        raise ERFValueError(
            "the network's expected-square transfer sums to zero; the profile cannot be normalised"
        )
    nd = values.ndim
    anchor = tuple((s - 1) // 2 for s in values.shape)
    grids = np.meshgrid(
        *[np.arange(s) - a for s, a in zip(values.shape, anchor, strict=True)], indexing="ij"
    )
    p = values / total
    mean = [float((p * g).sum()) for g in grids]
    cov = [
        [float((p * (grids[i] - mean[i]) * (grids[j] - mean[j])).sum()) for j in range(nd)]
        for i in range(nd)
    ]
    moments = (
        tuple(Fraction(m) for m in mean),
        tuple(tuple(Fraction(c) for c in row) for row in cov),
    )
    source = FloatTransfer(values, err, moments, describe=network._describer("expected_square"))
    result = run(source, "float")
    result.reason = reason + (
        "float route for kind='expected_square': the fixed parts (products of the average "
        "pools between random layers) formed in float64 as well, negligible families of "
        f"paths dropped (relative bound {PRUNE:.0e}, added to abs_error_bound); moments "
        "from the float values"
    )
    return NetworkProfile(network, "expected_square", result)
