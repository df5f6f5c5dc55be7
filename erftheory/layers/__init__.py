r"""Layers of the network algebra (Sections 2.4 and 2.5).

Every layer here has a backward pass that is linear in the gradient, or an effect on
the expected squared gradient that is a known factor, so the ERF of a stack of them
is a product and sum of kernel polynomials (see `erftheory.network`).

Each layer answers two questions, one for each kind of ERF:

- ``kind="gradient"``: the deterministic gradient of a network with *fixed* weights
  (Section 2.1): a convolution contributes its weights $w(m)$, an activation the mean
  slope $\mathbb E[\sigma'(x)]$.
- ``kind="expected_square"``: the expected squared gradient of a network whose
  convolutions have zero-mean random weights with per-tap variances $C(m)$ (Sections
  2.2 and 2.4, Eq. 8): a convolution contributes $C(m)$, an activation the factor
  $\mathbb E[\sigma'(x)^2]$.

Sizes, strides, dilations and paddings are an int (every axis) or a tuple (one per
axis). A layer given only ints takes its dimension from the rest of the network; inside,
they are tuples (`Layer.options` returns them so).

Every layer type is one entry of the registry, `erftheory.layers.registry.REGISTRY`: its
name in architecture files, its options and how it is built from them. The architecture
reader and writer (`erftheory.arch`), `erftheory.torch.to_torch`,
`erftheory.torch.from_torch` and `erftheory.initializations.variance_network` are driven
by it. The pointwise activations of modern CNNs (SiLU, GELU, ELU, ...) are one layer,
`Elementwise`, over the table `erftheory.layers.elementwise.ACTIVATIONS`.

Example:
    >>> from erftheory import Kernel
    >>> from erftheory.layers import Conv, AvgPool, ReLU
    >>> Conv(Kernel([1, 2, 1]), stride=2)
    Conv(Kernel([1, 2, 1]), stride=2)
    >>> ReLU().factor("gradient"), ReLU().factor("expected_square")
    (Fraction(1, 2), Fraction(1, 2))
    >>> AvgPool(2).kernel("gradient", 1).weights
    (Fraction(1, 2), Fraction(1, 2))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any, Literal

from .._errors import ERFTypeError, ERFValueError
from ..kernel import Kernel, format_value
from .elementwise import ACTIVATIONS, normal_factors

__all__ = [
    "MAX_INPUT_STD",
    "MIN_INPUT_STD",
    "Activation",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "Dropout",
    "Elementwise",
    "Graph",
    "Identity",
    "KernelStats",
    "Layer",
    "LeakyReLU",
    "MaxPool",
    "Parallel",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Tanh",
]

Kind = Literal["gradient", "expected_square"]
KINDS: tuple[str, ...] = ("gradient", "expected_square")
Padding = Literal["same", "valid"] | int | Sequence[int]


def _safe(value: Any, width: int = 80) -> str:
    """``repr(value)`` for a message: clipped, and never a huge int turned into digits."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if int(value).bit_length() > 256:
            return f"<an int of {int(value).bit_length()} bits>"
    elif isinstance(value, Fraction):
        bits = max(value.numerator.bit_length(), value.denominator.bit_length())
        if bits > 256:
            return f"<a fraction of {bits}-bit integers>"
    elif isinstance(value, (tuple, list)) and len(value) > 8:
        return f"<a {type(value).__name__} of {len(value)} items>"
    elif isinstance(value, (tuple, list)):
        inner = ", ".join(_safe(v, width) for v in value)
        text = (
            f"({inner}{',' if len(value) == 1 else ''})"
            if isinstance(value, tuple)
            else f"[{inner}]"
        )
        return text if len(text) <= width else text[: width - 1] + "…"
    try:
        text = repr(value)
    except ValueError:  # an object whose repr has too many digits
        return f"<a {type(value).__name__}>"
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(x: Any) -> str:
    """Exact text of a number for a repr, without Python's 4300-digit limit."""
    return format_value(x)


def check_kind(kind: Any) -> str:
    """Validate an ERF kind: ``"gradient"`` or ``"expected_square"``."""
    if kind not in KINDS:
        raise ERFValueError(f"kind must be 'gradient' or 'expected_square', got {kind!r}")
    return str(kind)


def _axes(value: Any, name: str, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ints, each at least ``minimum``, as a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[Any, ...] = (int(value),)
    elif isinstance(value, (tuple, list)) and value:
        values = tuple(value)
    else:
        raise ERFTypeError(
            f"{name} must be an int or a tuple of ints (one per axis), got {_safe(value)}"
        )
    if len(values) > 2:
        raise ERFValueError(f"{name} {_safe(value)} has {len(values)} axes; layers are 1-D or 2-D")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ERFTypeError(f"{name} must hold ints, got {_safe(value)}")
        if v < minimum:
            raise ERFValueError(
                f"{name} must be at least {minimum} on every axis, got {_safe(value)}"
            )
    return tuple(int(v) for v in values)


def _spread(values: tuple[int, ...], ndim: int, name: str) -> tuple[int, ...]:
    if len(values) == ndim:
        return values
    if len(values) == 1:
        return values * ndim
    raise ERFValueError(f"{name} {values!r} has {len(values)} axes but the network is {ndim}-D")


def _fraction(value: Any, name: str, low: Any, high: Any, closed_high: bool) -> Fraction:
    """``value`` as an exact Fraction in ``[low, high]`` (or ``[low, high)``).

    Ints and Fractions of any size stay exact (no float conversion, so nothing
    overflows); floats and other reals must be finite; strings are read by
    `erftheory.kernel.parse_weight`.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ERFTypeError(f"{name} must be a real number, got {_safe(value)}")
    if isinstance(value, str):
        from ..kernel import parse_weight

        try:
            f = Fraction(parse_weight(value))
        except ERFValueError as exc:
            raise ERFValueError(f"{name}: {exc}") from None
    elif isinstance(value, numbers.Rational):
        f = Fraction(int(value.numerator), int(value.denominator))
    else:
        x = float(value)  # a float or another real (numpy): at most float range
        if not math.isfinite(x):
            raise ERFValueError(f"{name} must be finite, got {_safe(value)}")
        f = Fraction(x)
    ok = low <= f and (f <= high if closed_high else f < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ERFValueError(
            f"{name} must be in [{_bound(low)}, {_bound(high)}{bracket}, got {_safe(value)}"
        )
    return f


def _bound(x: Any) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{float(x):g}" if isinstance(x, Fraction) else str(x)


def _s1(n: int) -> int:
    return n * (n - 1) // 2  # sum of 0..n-1


def _s2(n: int) -> int:
    return (n - 1) * n * (2 * n - 1) // 6  # sum of squares of 0..n-1


class KernelStats:
    r"""Exact sums of a kernel's taps $w(m)$ at tap indices $m$ (before dilation).

    Attributes:
        m0: $\sum w$; m1: $\sum w\,m_i$ per axis; m2: $\sum w\,m_i m_j$ (a matrix);
        l1: $\sum |w|$; den: the least common denominator of the weights.
    """

    __slots__ = ("den", "l1", "m0", "m1", "m2")

    def __init__(self, m0: Any, m1: Any, m2: Any, l1: Any, den: int) -> None:
        self.m0, self.m1, self.m2, self.l1, self.den = m0, m1, m2, l1, den

    @classmethod
    def uniform(cls, size: tuple[int, ...], value: Any) -> KernelStats:
        """Closed forms for ``value`` on every tap of a ``size`` grid."""
        v = Fraction(value)
        n = math.prod(size)
        m1 = tuple(v * _s1(s) * (n // s) for s in size)
        m2 = tuple(
            tuple(
                v * _s2(size[i]) * (n // size[i])
                if i == j
                else v * _s1(size[i]) * _s1(size[j]) * (n // (size[i] * size[j]))
                for j in range(len(size))
            )
            for i in range(len(size))
        )
        return cls(v * n, m1, m2, abs(v) * n, v.denominator)

    @classmethod
    def of(cls, k: Kernel) -> KernelStats:
        """One pass over an explicit kernel, in integers over the common denominator."""
        if k.domain == "integer":
            a, den = [int(w) for w in k.flat], 1
        else:
            fr = [Fraction(w) for w in k.flat]
            den = math.lcm(*(f.denominator for f in fr))
            a = [f.numerator * (den // f.denominator) for f in fr]
        shape = k.shape
        if len(shape) == 1:
            rows = [a]
        else:
            rows = [a[r * shape[1] : (r + 1) * shape[1]] for r in range(shape[0])]
        row_sums = [sum(r) for r in rows]
        col_sums = [sum(r[c] for r in rows) for c in range(len(rows[0]))]
        cross = sum(i * sum(c * x for c, x in enumerate(r)) for i, r in enumerate(rows))
        m0 = sum(row_sums)
        mc1 = sum(c * x for c, x in enumerate(col_sums))
        mc2 = sum(c * c * x for c, x in enumerate(col_sums))
        l1 = Fraction(sum(abs(x) for x in a), den)
        if len(shape) == 1:
            return cls(Fraction(m0, den), (Fraction(mc1, den),), ((Fraction(mc2, den),),), l1, den)
        mr1 = sum(i * x for i, x in enumerate(row_sums))
        mr2 = sum(i * i * x for i, x in enumerate(row_sums))
        m2 = (
            (Fraction(mr2, den), Fraction(cross, den)),
            (Fraction(cross, den), Fraction(mc2, den)),
        )
        return cls(Fraction(m0, den), (Fraction(mr1, den), Fraction(mc1, den)), m2, l1, den)


class Layer:
    """Base class of the layers of a `erftheory.network.Network`.

    Subclasses are either *spatial* (a kernel with stride, dilation and padding),
    *scalar* (a factor, shape unchanged) or *blocks* of branches.
    """

    name: str = "layer"
    type_name: str = ""
    """Its entry in the registry (`erftheory.layers.registry.REGISTRY`) and its type name
    in architecture files; empty for a type that is not registered."""

    @property
    def fixed_ndim(self) -> int | None:
        """The dimension this layer fixes (from a kernel or per-axis tuples), or None."""
        return None

    def options(self) -> dict[str, Any]:
        """Its options, by the names of its registry entry: the entry rebuilds it from them.

        Per-axis values are tuples (``(3,)`` for an int given for every axis); ``None``
        marks an option whose value the layer derives from the others (a pool's stride
        equal to its size, the anchor of a centred kernel) or that is given instead of
        another (``size`` when there is a ``kernel``).

        Example:
            >>> Conv(3, stride=2).options()
            {'kernel': None, 'size': (3,), 'anchor': None, 'stride': (2,), 'dilation': (1,), 'padding': 'same'}
            >>> AvgPool(2).options()
            {'size': (2,), 'stride': None, 'padding': (0,)}
        """  # noqa: E501
        return {}

    def describe(self) -> str:
        """A short label for tables."""
        return repr(self)


class _Spatial(Layer):
    """A layer with a kernel: output $i$ reads input $s\\,i - p + d\\,m$ for taps $m$."""

    random = False  # its taps carry zero-mean random weights in "expected_square"

    def __init__(self, size: Any, stride: Any, dilation: Any, padding: Any) -> None:
        self._size = _axes(size, "size", 1)
        self._stride = _axes(stride, "stride", 1)
        self._dilation = _axes(dilation, "dilation", 1)
        if padding in ("same", "valid"):
            self._padding: Any = padding
        elif isinstance(padding, str):
            raise ERFValueError(
                f"padding must be 'same', 'valid', an int or a tuple of ints, got {padding!r}"
            )
        else:
            self._padding = _axes(padding, "padding", 0)

    @property
    def fixed_ndim(self) -> int | None:
        lens = {len(t) for t in (self._size, self._stride, self._dilation) if len(t) > 1}
        if not isinstance(self._padding, str) and len(self._padding) > 1:
            lens.add(len(self._padding))
        if len(lens) > 1:
            raise ERFValueError(f"{self!r} mixes per-axis tuples of different lengths")
        return lens.pop() if lens else None

    def size(self, ndim: int) -> tuple[int, ...]:
        """Kernel taps per axis."""
        return _spread(self._size, ndim, "size")

    def stride(self, ndim: int) -> tuple[int, ...]:
        """Stride per axis."""
        return _spread(self._stride, ndim, "stride")

    def dilation(self, ndim: int) -> tuple[int, ...]:
        """Dilation per axis."""
        return _spread(self._dilation, ndim, "dilation")

    def padding(self, ndim: int) -> tuple[int, ...]:
        """Zeros added before the first input pixel, per axis (PyTorch's ``padding``)."""
        if self._padding == "valid":
            return (0,) * ndim
        if self._padding == "same":
            shape, anchors = self.size(ndim), self.anchors(ndim)
            dil = self.dilation(ndim)
            if anchors == tuple((s - 1) // 2 for s in shape):  # PyTorch's rule
                return tuple(d * (s - 1) // 2 for d, s in zip(dil, shape, strict=True))
            return tuple(d * a for d, a in zip(dil, anchors, strict=True))
        return _spread(self._padding, ndim, "padding")

    def pads(self, ndim: int) -> list[tuple[int, int]]:
        """Zeros ``(before, after)`` the input per axis: an int pads both sides, as PyTorch
        does; ``'same'`` pads `padding` before and $d(k-1)$ minus that after, so stride 1
        keeps the length."""
        left = self.padding(ndim)
        if self._padding == "same":
            return [(a, e - 1 - a) for a, e in zip(left, self.extent(ndim), strict=True)]
        return [(a, a) for a in left]

    def extent(self, ndim: int) -> tuple[int, ...]:
        """Pixels spanned by one output unit: $d(k-1)+1$ per axis."""
        return tuple(
            d * (k - 1) + 1 for d, k in zip(self.dilation(ndim), self.size(ndim), strict=True)
        )

    def kernel(self, kind: str, ndim: int) -> Kernel:
        """The kernel of this layer for ``kind`` (weights or per-tap variances)."""
        raise NotImplementedError

    def anchors(self, ndim: int) -> tuple[int, ...]:
        """The kernel's anchor per axis, without building the kernel."""
        return tuple((s - 1) // 2 for s in self.size(ndim))

    def _uniform_value(self, kind: str, ndim: int) -> Fraction | None:
        """The weight of every tap when the kernel is uniform (None otherwise)."""
        return None

    def uniform_value(self, kind: str, ndim: int) -> Fraction | None:
        """The weight of every tap when the kernel for ``kind`` is uniform (a size-only
        `Conv`, the pools), without building it; None for an explicit kernel."""
        return self._uniform_value(kind, ndim)

    def stats(self, kind: str, ndim: int) -> KernelStats:
        """Exact sums of the kernel for ``kind``, without building it when it is uniform.

        Costs $O(1)$ for uniform kernels (a size-only `Conv`, pools) and one pass over
        the taps, cached, for an explicit kernel: the memory guard and the moments of
        `erftheory.network` use these instead of the taps.
        """
        v = self._uniform_value(kind, ndim)
        if v is not None:
            return KernelStats.uniform(self.size(ndim), v)
        cache: dict[Any, KernelStats] = self.__dict__.setdefault("_stats_cache", {})
        key = (kind, ndim)
        if key not in cache:
            cache[key] = KernelStats.of(self.kernel(kind, ndim))
        return cache[key]

    def _options(self) -> str:
        out = ""
        if self._stride != (1,):
            out += f", stride={_show(self._stride)}"
        if self._dilation != (1,):
            out += f", dilation={_show(self._dilation)}"
        return out


def _show(t: Any) -> str:
    if isinstance(t, str):
        return repr(t)
    return str(t[0]) if len(t) == 1 else str(t)


def _uniform(size: tuple[int, ...], value: Any) -> Kernel:
    if len(size) == 1:
        return Kernel([value] * size[0])
    return Kernel([[value] * size[1] for _ in range(size[0])])


class Conv(_Spatial):
    r"""A convolution (cross-correlation, as in PyTorch): $y(i) = \sum_m w(m)\,x(s i - p + d m)$.

    Args:
        kernel_or_size: a `Kernel` (or a list that `Kernel` accepts) holding the fixed
            weights for ``kind="gradient"`` and the per-tap weight *variances* for
            ``kind="expected_square"``; or a size (int or per-axis tuple) for the
            all-ones kernel of Section 2.1.
        stride: $s$ per axis; the layers above see the input on a grid $s$ times coarser.
        dilation: $d$ per axis: $V(z)$ becomes $V(z^d)$ (Section 2.5).
        padding: ``"same"`` (the kernel's anchor times the dilation, PyTorch's
            ``padding='same'`` at stride 1), ``"valid"`` (0) or zeros per axis. Padding
            moves the RF (`erftheory.network.ReceptiveField.offset`), never its shape.

    In ``"expected_square"`` the taps are independent zero-mean random weights, so
    paths through different taps have uncorrelated gradients (Eq. 6–8).

    Example:
        >>> Conv(3, dilation=2).kernel("gradient", 1).weights, Conv(3, dilation=2).extent(1)
        ((1, 1, 1), (5,))
    """

    name = "conv"
    type_name = "conv"
    random = True

    def __init__(
        self,
        kernel_or_size: Kernel | int | Sequence[Any],
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        padding: Padding = "same",
    ) -> None:
        if isinstance(kernel_or_size, Kernel):
            self._kernel: Kernel | None = kernel_or_size
        elif isinstance(kernel_or_size, numbers.Integral) and not isinstance(kernel_or_size, bool):
            self._kernel = None
        elif isinstance(kernel_or_size, tuple) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in kernel_or_size
        ):
            self._kernel = None
        elif isinstance(kernel_or_size, (list, tuple)) or hasattr(kernel_or_size, "ndim"):
            self._kernel = Kernel(kernel_or_size)
        else:
            raise ERFTypeError(
                f"Conv takes a Kernel, a list of weights or a size (int or tuple of ints), got "
                f"{kernel_or_size!r}"
            )
        if self._kernel is not None:
            if self._kernel.domain == "symbolic":
                raise ERFTypeError(
                    "network kernels must be numeric (int, Fraction, Decimal or float); "
                    "use erftheory.profile for symbolic kernels"
                )
            size: Any = self._kernel.shape
        else:
            size = kernel_or_size
        super().__init__(size, stride, dilation, padding)

    @property
    def fixed_ndim(self) -> int | None:
        own = super().fixed_ndim
        if self._kernel is not None:
            if own is not None and own != self._kernel.ndim:
                raise ERFValueError(f"{self!r}: per-axis options do not match the kernel's axes")
            return self._kernel.ndim
        return own

    def kernel(self, kind: str, ndim: int) -> Kernel:
        if self._kernel is not None:
            if self._kernel.ndim != ndim:
                raise ERFValueError(f"{self!r} is {self._kernel.ndim}-D in a {ndim}-D network")
            if kind == "expected_square" and any(w < 0 for w in self._kernel.flat):
                raise ERFValueError(
                    f"{self!r}: in kind='expected_square' the kernel holds per-tap weight "
                    f"variances, which cannot be negative"
                )
            return self._kernel
        return _uniform(self.size(ndim), 1)

    def anchors(self, ndim: int) -> tuple[int, ...]:
        if self._kernel is not None:
            if self._kernel.ndim != ndim:
                raise ERFValueError(f"{self!r} is {self._kernel.ndim}-D in a {ndim}-D network")
            return self._kernel.anchors
        return super().anchors(ndim)

    def _uniform_value(self, kind: str, ndim: int) -> Fraction | None:
        return None if self._kernel is not None else Fraction(1)

    def stats(self, kind: str, ndim: int) -> KernelStats:
        st = super().stats("gradient", ndim)  # the same taps for both kinds
        if kind == "expected_square" and st.l1 != st.m0:  # some weight is negative
            self.kernel(kind, ndim)  # raises the error about negative variances
        return st

    def options(self) -> dict[str, Any]:
        k = self._kernel
        centred = k is None or k.anchors == tuple((s - 1) // 2 for s in k.shape)
        return {
            "kernel": k,
            "size": self._size if k is None else None,
            "anchor": None if centred or k is None else k.anchors,
            "stride": self._stride,
            "dilation": self._dilation,
            "padding": self._padding,
        }

    def __repr__(self) -> str:
        first = repr(self._kernel) if self._kernel is not None else _show(self._size)
        pad = "" if self._padding == "same" else f", padding={_show(self._padding)}"
        return f"Conv({first}{self._options()}{pad})"


class _Pool(_Spatial):
    """A pooling window of $K$ taps with weight $1/K$; the stride defaults to the size."""

    def __init__(
        self, size: int | Sequence[int], stride: int | Sequence[int] | None = None, padding: Any = 0
    ) -> None:
        super().__init__(size, size if stride is None else stride, 1, padding)

    def kernel(self, kind: str, ndim: int) -> Kernel:
        size = self.size(ndim)
        return _uniform(size, Fraction(1, math.prod(size)))

    def _uniform_value(self, kind: str, ndim: int) -> Fraction | None:
        return Fraction(1, math.prod(self.size(ndim)))

    def options(self) -> dict[str, Any]:
        stride = None if self._stride == self._size else self._stride
        return {"size": self._size, "stride": stride, "padding": self._padding}

    def __repr__(self) -> str:
        stride = "" if self._stride == self._size else f", stride={_show(self._stride)}"
        pad = "" if self._padding in ((0,), "valid") else f", padding={_show(self._padding)}"
        return f"{type(self).__name__}({_show(self._size)}{stride}{pad})"


class AvgPool(_Pool):
    r"""Average pooling: a fixed kernel of weight $1/K$ on each of its $K$ taps.

    It has no random weights, so in ``"expected_square"`` the paths through it that share
    their random taps add coherently (before squaring), not tap by tap: the family
    algebra of `erftheory.network`.

    Args:
        size: taps per axis.
        stride: defaults to ``size``, as in PyTorch.
        padding: zeros per axis (0 by default, as in PyTorch; counted in the average).
    """

    name = "avgpool"
    type_name = "avgpool"


class MaxPool(_Pool):
    r"""Max pooling: the gradient goes to the argmax of each window.

    **Assumption:** the inputs are iid with a continuous distribution and the argmax is
    independent of the gradient arriving from above (the independence assumption of
    Section 2.4). Each of the $K$ taps is then the argmax with probability $1/K$, so

    - ``"gradient"``: the expected gradient is the uniform kernel $1/K$ per tap;
    - ``"expected_square"``: one tap carries the whole gradient, so the expected square
      is also $1/K$ per tap (not $1/K^2$ as for `AvgPool`).

    Exact in expectation for non-overlapping windows (stride ≥ size); an approximation
    when windows overlap, where one pixel can be the argmax of two windows.

    Args:
        size: taps per axis.
        stride: defaults to ``size``, as in PyTorch.
        padding: padding per axis (0 by default, as in PyTorch; never the argmax).
    """

    name = "maxpool"
    type_name = "maxpool"
    random = True  # routing is random: different taps never share a path


class _Scalar(Layer):
    """A layer that multiplies the gradient by a factor and keeps its shape."""

    def factor(self, kind: str) -> Any:
        """The factor on the gradient (``"gradient"``) or on its square."""
        raise NotImplementedError


class Identity(_Scalar):
    """$y = x$: factor 1."""

    name = "identity"
    type_name = "identity"

    def factor(self, kind: str) -> Any:
        return 1

    def __repr__(self) -> str:
        return "Identity()"


class Activation(_Scalar):
    r"""A pointwise nonlinearity $\sigma$ under the independence assumption (Section 2.4).

    Its derivative $\sigma'(x)$ at each pixel is taken to be independent of the weights
    and of the other pixels, so the expected gradient gains the factor
    $\mathbb E[\sigma'(x)]$; for the expected squared gradient the slope is its mean plus
    pixel-wise independent noise of variance $\mathbb E[\sigma'^2] - \mathbb E[\sigma']^2$,
    which between random convolutions is the factor $\mathbb E[\sigma'(x)^2]$.

    Args:
        name: a label.
        gradient_factor: $\mathbb E[\sigma'(x)]$.
        square_factor: $\mathbb E[\sigma'(x)^2]$.
    """

    type_name = "activation"

    def __init__(self, name: str, gradient_factor: Any, square_factor: Any) -> None:
        self.name = name
        self._factors = {
            "gradient": _fraction(gradient_factor, "gradient_factor", -math.inf, math.inf, True),
            "expected_square": _fraction(square_factor, "square_factor", 0, math.inf, True),
        }

    def factor(self, kind: str) -> Any:
        return self._factors[check_kind(kind)]

    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gradient_factor": self._factors["gradient"],
            "square_factor": self._factors["expected_square"],
        }

    def __repr__(self) -> str:
        g, s = self._factors["gradient"], self._factors["expected_square"]
        return f"Activation({self.name!r}, {_number(g)}, {_number(s)})"

    def describe(self) -> str:
        return self.name


class ReLU(Activation):
    r"""ReLU with inputs symmetric about 0: $\sigma'(x) \in \{0, 1\}$ with probability 1/2 each.

    So $\mathbb E[\sigma'] = 1/2$ and $\mathbb E[\sigma'^2] = 1/2$. The paper's Section 2.4
    writes $1/4$ for the squared-gradient factor, which is $\mathbb E[\sigma']^2$: it
    squares the mean instead of taking the mean of the square (see ``docs/errata.md``).
    """

    type_name = "relu"

    def __init__(self) -> None:
        super().__init__("relu", Fraction(1, 2), Fraction(1, 2))

    def options(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return "ReLU()"


class LeakyReLU(Activation):
    r"""Leaky ReLU with slope $a$ below 0 and inputs symmetric about 0.

    $\mathbb E[\sigma'] = (1 + a)/2$ and $\mathbb E[\sigma'^2] = (1 + a^2)/2$.
    """

    type_name = "leaky_relu"

    def __init__(self, negative_slope: Any = Fraction(1, 100)) -> None:
        a = _fraction(negative_slope, "negative_slope", -math.inf, math.inf, True)
        self.negative_slope = a
        super().__init__("leaky_relu", (1 + a) / 2, (1 + a * a) / 2)

    def options(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def __repr__(self) -> str:
        return f"LeakyReLU({_number(self.negative_slope)})"


MIN_INPUT_STD = Fraction(1, 10**6)
"""The smallest ``input_std`` of `Tanh`, `Sigmoid` and `Elementwise` (the quadrature is
accurate above)."""
MAX_INPUT_STD = 10**6
"""The largest ``input_std`` of `Tanh`, `Sigmoid` and `Elementwise`."""

_normal_factors = normal_factors  # the quadrature, under its old private name


class _GaussianInput(Activation):
    r"""An activation whose factors are expectations over inputs $x \sim \mathcal N(0, s^2)$."""

    function = ""
    _params: tuple[tuple[str, Fraction], ...] = ()

    def __init__(self, input_std: float | Fraction | str = 1.0) -> None:
        # Outside [1e-6, 1e6] the quadrature loses digits (and the factors are 1 or
        # 2/(s sqrt(2 pi)) to that accuracy anyway): refuse rather than return noise.
        f = _fraction(input_std, "input_std", MIN_INPUT_STD, MAX_INPUT_STD, True)
        self.input_std = float(f)
        factors = normal_factors(self.function, self.input_std, self._params)
        super().__init__(self.function, *factors)

    def options(self) -> dict[str, Any]:
        return {**dict(self._params), "input_std": self.input_std}

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}()" if self.input_std == 1 else f"{name}(input_std={self.input_std})"


class Tanh(_GaussianInput):
    r"""tanh with Gaussian inputs $x \sim \mathcal N(0, s^2)$ (``input_std`` $= s$).

    The factors are computed by mpmath quadrature to 30 digits and stored as float64
    (exact dyadic rationals in the algebra). For $s = 1$:
    $\mathbb E[\tanh'] \approx 0.6057$, $\mathbb E[\tanh'^2] \approx 0.4644$.

    Example:
        >>> [round(float(Tanh().factor(k)), 4) for k in ("gradient", "expected_square")]
        [0.6057, 0.4644]
    """

    type_name = "tanh"
    function = "tanh"


class Sigmoid(_GaussianInput):
    r"""The logistic sigmoid with Gaussian inputs $x \sim \mathcal N(0, s^2)$.

    For $s = 1$: $\mathbb E[\sigma'] \approx 0.2066$, $\mathbb E[\sigma'^2] \approx 0.0448$.

    Example:
        >>> [round(float(Sigmoid().factor(k)), 4) for k in ("gradient", "expected_square")]
        [0.2066, 0.0448]
    """

    type_name = "sigmoid"
    function = "sigmoid"


class Elementwise(_GaussianInput):
    r"""A pointwise activation of `~erftheory.layers.elementwise.ACTIVATIONS` with Gaussian
    inputs $x \sim \mathcal N(0, s^2)$: SiLU, GELU, Hardswish, Hardsigmoid, Mish, ELU,
    SELU, CELU, Softplus.

    As for `Tanh`, the factors $\mathbb E[\sigma'(x)]$ and $\mathbb E[\sigma'(x)^2]$ are
    computed by mpmath quadrature to 30 digits (`erftheory.layers.elementwise`) and stored
    as float64, under the independence assumption of Section 2.4.

    Args:
        function: its name in ``ACTIVATIONS`` (``"silu"``, ``"gelu"``, ``"elu"``, ...).
        input_std: $s$, in $[10^{-6}, 10^6]$.
        **params: its parameters (``alpha`` of ``"elu"``, ...), exact: ints, Fractions,
            strings such as ``"1/2"`` or floats (taken exactly).

    Example:
        >>> Elementwise("elu", alpha="1/2")
        Elementwise('elu', alpha=1/2)
        >>> round(float(Elementwise("gelu").factor("gradient")), 12)  # 1/2 by symmetry
        0.5
        >>> round(float(Elementwise("silu").factor("expected_square")), 4)
        0.3795
    """

    def __init__(self, function: str, input_std: float | Fraction | str = 1.0, **params: Any):
        act = ACTIVATIONS.get(function) if isinstance(function, str) else None
        if act is None:
            raise ERFValueError(
                f"unknown activation {_safe(function)}; the activations are "
                f"{', '.join(ACTIVATIONS)}"
            )
        names = [p.name for p in act.params]
        for key in params:
            if key not in names:
                takes = f"the parameters {', '.join(names)}" if names else "no parameters"
                raise ERFTypeError(f"{function} takes {takes} (and input_std), got {_safe(key)}")
        values = []
        for p in act.params:
            raw = params.get(p.name, p.default)
            f = _fraction(raw, p.name, -math.inf, math.inf, True)
            if p.valid is not None and not p.valid(f):
                raise ERFValueError(
                    f"{p.name} of {function} must be {p.valid_text}, got {_safe(raw)}"
                )
            values.append((p.name, f))
        self.function = function
        self.type_name = function
        self._params = tuple(values)
        super().__init__(input_std)

    @property
    def params(self) -> dict[str, Fraction]:
        """Its parameters, exactly (defaults included)."""
        return dict(self._params)

    def __repr__(self) -> str:
        act = ACTIVATIONS[self.function]
        parts = [repr(self.function)]
        parts += [
            f"{p.name}={_number(v)}"
            for p, (_, v) in zip(act.params, self._params, strict=True)
            if v != p.default
        ]
        if self.input_std != 1:
            parts.append(f"input_std={self.input_std}")
        return f"Elementwise({', '.join(parts)})"


class Dropout(_Scalar):
    r"""Inverted dropout in training mode: keep a pixel with probability $q$, scale by $1/q$.

    ``p`` is PyTorch's drop probability, so $q$ is one minus ``p`` (the notation page's
    $q$, with $r = q$). The shape of the ERF is unchanged (Section 2.5); the expected gradient
    gains the factor 1. The scaled mask is 1 plus noise of variance $(1-q)/q$, independent
    from pixel to pixel: paths through one pixel share it (factor $1/q$ on their square),
    paths through different pixels do not (the family algebra of `erftheory.network`;
    between random convolutions this is the factor $1/q$). In evaluation mode dropout is
    `Identity`.

    Example:
        >>> Dropout(0.5).factor("gradient"), Dropout(0.5).factor("expected_square")
        (1, Fraction(2, 1))
    """

    name = "dropout"
    type_name = "dropout"

    def __init__(self, p: Any = 0.5) -> None:
        self.p = _fraction(p, "p", 0, 1, False)

    def options(self) -> dict[str, Any]:
        return {"p": self.p}

    def factor(self, kind: str) -> Any:
        return 1 if check_kind(kind) == "gradient" else 1 / (1 - self.p)

    def __repr__(self) -> str:
        return f"Dropout({float(self.p):g})"


class BatchNorm(_Scalar):
    r"""Batch normalisation in evaluation mode: $y = \gamma(x-\mu)/\sqrt{\sigma^2+\epsilon}+\beta$.

    Its gradient is the constant ``scale`` $= \gamma/\sqrt{\sigma^2+\epsilon}$: factor
    $s$ on the gradient and $s^2$ on its square. In training mode the batch statistics
    depend on the input and this is only an approximation.
    """

    name = "batchnorm"
    type_name = "batchnorm"

    def __init__(self, scale: Any = 1) -> None:
        self.scale = _fraction(scale, "scale", -math.inf, math.inf, True)

    def options(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def factor(self, kind: str) -> Any:
        return self.scale if check_kind(kind) == "gradient" else self.scale**2

    def __repr__(self) -> str:
        return "BatchNorm()" if self.scale == 1 else f"BatchNorm(scale={_number(self.scale)})"


def as_chain(item: Any, where: str) -> tuple[Layer, ...]:
    """A layer, or an iterable of layers (a chain from input to output), as a tuple."""
    from ..network import Network

    if isinstance(item, Network):
        return item.layers
    if isinstance(item, Layer):
        return (item,)
    if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
        raise ERFTypeError(f"{where} must be a layer or a list of layers, got {item!r}")
    out: list[Layer] = []
    for x in item:
        out.extend(as_chain(x, where))
    return tuple(out)


class _Block(Layer):
    """Branches whose outputs are summed: $T = \\sum_b T_b$ (aligned on the output grid)."""

    branches: tuple[tuple[Layer, ...], ...]

    @property
    def fixed_ndim(self) -> int | None:
        dims = {d for b in self.branches for x in b if (d := x.fixed_ndim) is not None}
        if len(dims) > 1:
            raise ERFValueError(f"{self!r} mixes 1-D and 2-D layers")
        return dims.pop() if dims else None


class Residual(_Block):
    r"""A residual block $y = x + F(x)$: the transfer is $1 + F$ (Section 2.5).

    Args:
        *layers: the layers of $F$, input to output.
        shortcut: the layers of the shortcut when it is not the identity (a strided
            1×1 convolution in torchvision's downsampling blocks).

    Example:
        >>> Residual(Conv(3), ReLU(), Conv(3))
        Residual(Conv(3), ReLU(), Conv(3))
    """

    name = "residual"
    type_name = "residual"

    def __init__(self, *layers: Any, shortcut: Any = None) -> None:
        body = as_chain(list(layers), "Residual's layers")
        if not body:
            raise ERFValueError("Residual needs at least one layer in its residual branch")
        short = () if shortcut is None else as_chain(shortcut, "shortcut")
        self.body = body
        self.shortcut = short
        self.branches = (short, body)

    def options(self) -> dict[str, Any]:
        return {"layers": self.body, "shortcut": self.shortcut}

    def __repr__(self) -> str:
        inner = ", ".join(repr(x) for x in self.body)
        if self.shortcut:
            inner += f", shortcut=[{', '.join(repr(x) for x in self.shortcut)}]"
        return f"Residual({inner})"


class Parallel(_Block):
    r"""Branches applied to the same input and summed (Inception-style, or concatenated
    channels followed by a layer that sums them): the transfer is $\sum_b T_b$.

    Each branch is a layer or a list of layers; an empty list is the identity. All
    branches must end on the same output grid (equal total stride).

    Example:
        >>> Parallel(Conv(1), [Conv(3), Conv(3)], Conv(5))
        Parallel(Conv(1), [Conv(3), Conv(3)], Conv(5))
    """

    name = "parallel"
    type_name = "parallel"

    def __init__(self, *branches: Any) -> None:
        if not branches:
            raise ERFValueError("Parallel needs at least one branch")
        self.branches = tuple(
            () if isinstance(b, (list, tuple)) and not b else as_chain(b, "a branch")
            for b in branches
        )

    def options(self) -> dict[str, Any]:
        return {"branches": self.branches}

    def __repr__(self) -> str:
        def one(b: tuple[Layer, ...]) -> str:
            return repr(b[0]) if len(b) == 1 else "[" + ", ".join(repr(x) for x in b) + "]"

        return f"Parallel({', '.join(one(b) for b in self.branches)})"


class Graph(Layer):
    r"""Any DAG of linear maps, from one input (node 0) to one output (the last node).

    Node $k = 1, \dots, N$ applies its chain of layers $C_k$ to the sum of the values of
    its inputs (earlier nodes, aligned on the output grid as the branches of a block
    are). Every layer's backward pass is linear, so the transfer polynomial of the
    output is the sum over the paths $0 = k_0 \to k_1 \to \dots \to k_m = N$ of the
    graph of the products of the chains' transfers (Section 2.5; Eq. 7 for one chain),
    each aligned on the output grid,

    $$T_N(z) = \sum_{\text{paths}} \prod_{i=1}^{m} T_{C_{k_i}}(z^{J_{k_{i-1}}}),$$

    which every algebra computes without a series-parallel form by propagating in
    topological order: $T_0 = 1$ and $T_k(z) = \big(\sum_{j \in \mathrm{in}(k)}
    z^{s_j} T_j(z)\big)\,T_{C_k}(z^{J})$, with $J$ the jump (total stride) common to
    the inputs and $s_j$ their alignment shifts. `Residual` and `Parallel` are the
    series-parallel special cases; `erftheory.torch.from_torch` uses a `Graph` only
    where the model's graph is not series-parallel (DenseNet, DLA).

    **Assumption for** ``kind="expected_square"`` **(random weights).** The
    expected-square algebra (`erftheory.network.families`) is propagated node by node
    in the same way: at a node the deterministic parts (paths through no random layer)
    of its inputs are added coherently, and the families of random paths arriving from
    *different inputs* are pooled as uncorrelated: their expected squares add. So the
    gradients that reach a random layer *inside the graph* (or a random activation
    mask there) along different routes that meet again at a later node are treated
    as independent, although they share its weights: the cross term
    $2\,V\,(F_1 \odot F_2)$ of two routes $F_1, F_2$ that leave the same random layer
    (variances $V$) and meet again with no other random layer on either route is
    dropped ($V(1 + s^2)$ instead of $V(1 + s)^2$ for a route through a factor $s$
    beside the identity; an activation on a route does not decorrelate it, since its
    mean slope is shared). This is exact whenever every two routes that leave a node
    and meet again at a later node cross different random layers (convolutions with
    random weights, or max pools, whose routing the algebra takes as random), as in a
    DenseNet block where every node's chain holds a random convolution. Random layers
    *before* the graph reach it through its deterministic part, which is summed
    coherently (exact), and `Residual` and `Parallel` are always summed coherently. A
    random layer in a node's chain is shared by all the node's inputs (one chain
    applied to their sum, as in the torch model).

    Args:
        nodes: the chains $C_1, \dots, C_N$, each a layer or a list of layers (an empty
            list is the identity, as for a join that only adds its inputs).
        inputs: per node $k$ (1-based) the non-empty list of the nodes it reads, each in
            $0, \dots, k-1$; a node may be listed twice (it is then added twice).

    Example:
        >>> from erftheory.layers import Conv
        >>> # 0 -> 1 -> 2, 0 -> 2, 1 -> 3, 2 -> 3: node 1 feeds two joins (not series-parallel)
        >>> g = Graph([Conv(3), [Conv(3)], []], inputs=[[0], [0, 1], [1, 2]])
        >>> g
        Graph([[Conv(3)], [Conv(3)], []], inputs=[[0], [0, 1], [1, 2]])
    """

    name = "graph"
    type_name = "graph"

    def __init__(self, nodes: Any, inputs: Any) -> None:
        if not isinstance(nodes, (list, tuple)) or not nodes:
            raise ERFValueError(f"Graph needs a non-empty list of node chains, got {_safe(nodes)}")
        if not isinstance(inputs, (list, tuple)) or len(inputs) != len(nodes):
            raise ERFValueError(
                f"Graph needs one list of inputs per node ({len(nodes)}), got {_safe(inputs)}"
            )
        self.nodes: tuple[tuple[Layer, ...], ...] = tuple(
            () if isinstance(b, (list, tuple)) and not b else as_chain(b, "a Graph node")
            for b in nodes
        )
        ins: list[tuple[int, ...]] = []
        for k, node_inputs in enumerate(inputs, start=1):
            if not isinstance(node_inputs, (list, tuple)) or not node_inputs:
                raise ERFValueError(
                    f"Graph node {k} needs a non-empty list of input nodes, got "
                    f"{_safe(node_inputs)}"
                )
            for j in node_inputs:
                if isinstance(j, bool) or not isinstance(j, numbers.Integral):
                    raise ERFTypeError(f"Graph node {k}'s inputs must be ints, got {_safe(j)}")
                if not 0 <= int(j) < k:
                    raise ERFValueError(
                        f"Graph node {k} reads node {j}; a node reads earlier nodes, "
                        f"in [0, {k - 1}] (0 is the block input)"
                    )
            ins.append(tuple(int(j) for j in node_inputs))
        used = {j for node_inputs in ins for j in node_inputs}
        unused = [k for k in range(1, len(ins)) if k not in used]
        if unused:
            raise ERFValueError(
                f"Graph node {unused[0]} is read by no later node; every node but the last "
                f"(the output) must feed another"
            )
        self.inputs: tuple[tuple[int, ...], ...] = tuple(ins)

    @property
    def fixed_ndim(self) -> int | None:
        dims = {d for b in self.nodes for x in b if (d := x.fixed_ndim) is not None}
        if len(dims) > 1:
            raise ERFValueError(f"{self!r} mixes 1-D and 2-D layers")
        return dims.pop() if dims else None

    def options(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "inputs": self.inputs}

    def __repr__(self) -> str:
        nodes = ", ".join("[" + ", ".join(repr(x) for x in b) + "]" for b in self.nodes)
        ins = ", ".join("[" + ", ".join(map(str, i)) + "]" for i in self.inputs)
        return f"Graph([{nodes}], inputs=[{ins}])"
