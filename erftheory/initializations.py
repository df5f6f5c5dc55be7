r"""The per-tap weight variances of the initialisations (Sections 3.1 and 4), without torch.

`he_variances`, `xavier_variances` and `centre_low_variances` give a convolution's
per-tap variance kernel $C(m)$ as exact Fractions, for ``Conv`` in
``kind="expected_square"``; `variance_network` puts them in every `Conv` of a network.
The in-place initialisers that draw weights with these variances (`he_`, `xavier_`,
`centre_low_`) are in `erftheory.torch.init`, which re-exports everything here.

Example:
    >>> from erftheory.initializations import he_variances, variance_network
    >>> he_variances(3)
    Kernel([2/3, 2/3, 2/3])
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from ._errors import ERFTypeError, ERFValueError
from .kernel import Kernel
from .layers import Conv, Layer, as_chain
from .layers.registry import find_type, map_nested
from .network import Network

__all__ = [
    "DEFAULT_STRENGTH",
    "VarianceRule",
    "centre_low_variances",
    "he_variances",
    "variance_network",
    "xavier_variances",
]

DEFAULT_STRENGTH = 1
r"""The default ``strength`` $a$ of `centre_low_`: corner taps get twice the variance of
the centre tap. Section 4 asks for "a softer version" of the four-corner optimum and
gives no number; this is the mildest round choice."""

VarianceRule = Callable[[tuple[int, ...]], Kernel]


# --------------------------------------------------------------------------- helpers
def _kernel_size(kernel_size: Any, ndim: int | None) -> tuple[int, ...]:
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        size: tuple[Any, ...] = (int(kernel_size),) * (1 if ndim is None else ndim)
    elif isinstance(kernel_size, (tuple, list)) and kernel_size:
        size = tuple(kernel_size)
    else:
        raise ERFTypeError(f"kernel_size must be an int or a tuple of ints, got {kernel_size!r}")
    if ndim is not None and len(size) != ndim:
        raise ERFValueError(f"kernel_size {kernel_size!r} has {len(size)} axes, not ndim={ndim}")
    if len(size) > 2:
        raise ERFValueError(
            f"kernel_size {kernel_size!r} has {len(size)} axes; kernels are 1-D or 2-D"
        )
    for k in size:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ERFValueError(f"kernel_size must hold positive ints, got {kernel_size!r}")
    return tuple(int(k) for k in size)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ERFValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _strength(value: Any, name: str = "strength") -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ERFTypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ERFValueError(f"{name} must be finite, got {value!r}")
    try:
        f = Fraction(value)  # type: ignore[arg-type]
    except ValueError:
        raise ERFValueError(f"{name} must be a number, got {value!r}") from None
    if name != "strength":
        return f
    if f < 0:
        raise ERFValueError(
            f"strength must be at least 0 (0 is He's uniform variance), got {value!r}"
        )
    return f


def _grid(size: tuple[int, ...], values: Sequence[Any]) -> Kernel:
    if len(size) == 1:
        return Kernel(list(values))
    return Kernel([list(values[i * size[1] : (i + 1) * size[1]]) for i in range(size[0])])


def _taps(size: tuple[int, ...]) -> list[tuple[int, ...]]:
    if len(size) == 1:
        return [(i,) for i in range(size[0])]
    return [(i, j) for i in range(size[0]) for j in range(size[1])]


@functools.lru_cache(maxsize=256)
def _stds(
    rule: str, size: tuple[int, ...], fan_in: int, fan_out: int, param: Fraction
) -> tuple[float, ...]:
    """Per-tap standard deviations (cached: `BatchedNetworks` fills many small weights)."""
    if rule == "he":
        k = he_variances(size, fan_in)
    elif rule == "xavier":
        k = xavier_variances(size, fan_in, fan_out, param)
    else:
        k = centre_low_variances(size, param, fan_in)
    return tuple(math.sqrt(Fraction(v)) for v in k.flat)


# --------------------------------------------------------------------------- variances
def he_variances(kernel_size: int | Sequence[int], fan_in: int | None = None) -> Kernel:
    r"""The per-tap variance of He (Kaiming) normal initialisation: $2/n_\text{in}$ per tap.

    This is the "proper random initialization" the paper follows in Section 3.1 ([7]).

    Args:
        kernel_size: taps per axis; an int is a 1-D kernel, a pair a 2-D one.
        fan_in: $C_\text{in} K$; defaults to $K$, the number of taps (one input channel).

    Returns:
        A `Kernel` of exact Fractions for ``Conv`` in ``kind="expected_square"``.

    Example:
        >>> he_variances((3, 3)).weights[0]
        (Fraction(2, 9), Fraction(2, 9), Fraction(2, 9))
        >>> he_variances(3, fan_in=6).weights
        (Fraction(1, 3), Fraction(1, 3), Fraction(1, 3))
    """
    size = _kernel_size(kernel_size, None)
    fan = math.prod(size) if fan_in is None else _positive_int(fan_in, "fan_in")
    return _grid(size, [Fraction(2, fan)] * math.prod(size))


def xavier_variances(
    kernel_size: int | Sequence[int],
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: Any = 1,
) -> Kernel:
    r"""The per-tap variance of Xavier (Glorot) normal init: $2g^2/(n_\text{in} + n_\text{out})$.

    Args:
        kernel_size: taps per axis; an int is a 1-D kernel, a pair a 2-D one.
        fan_in: $n_\text{in}$; defaults to $K$, the number of taps (one channel in).
        fan_out: $n_\text{out}$; defaults to $K$ (one channel out).
        gain: $g$ (exact: an int, a Fraction or a string such as ``"1/2"``).

    Example:
        >>> xavier_variances(3).weights
        (Fraction(1, 3), Fraction(1, 3), Fraction(1, 3))
    """
    size = _kernel_size(kernel_size, None)
    taps = math.prod(size)
    fi = taps if fan_in is None else _positive_int(fan_in, "fan_in")
    fo = taps if fan_out is None else _positive_int(fan_out, "fan_out")
    g = _strength(gain, "gain")
    return _grid(size, [2 * g * g / (fi + fo)] * taps)


def centre_low_variances(
    kernel_size: int | Sequence[int],
    strength: Any = DEFAULT_STRENGTH,
    fan_in: int | None = None,
) -> Kernel:
    r"""Section 4's initialisation: small variance at the kernel's centre, large outside.

    Section 4 ("Reduce the Gaussian damage") proposes a random initialisation "that
    makes the weights at the center of the convolution kernel to have a smaller scale,
    and the weights on the outside to be larger", obtained by initialising with any
    method and then scaling the weights "according to a distribution that has a lower
    scale at the center and higher scale on the outside". The extreme case, all the
    variance on the 4 corners, maximises the ERF variance (Eq. 10) but is "too
    aggressive"; "a softer version of this idea usually works better". The paper gives
    no formula. This one is a quadratic bowl: tap $m$ at offset $m - c$ from the centre
    $c = (k-1)/2$ (per axis) gets

    $$C(m) = \frac{2}{n_\text{in}}\; K\, \frac{1 + a\,\rho_m^2}{\sum_{m'} (1 + a\,\rho_{m'}^2)},
    \qquad \rho_m^2 = \frac{\lVert m - c\rVert^2}{\lVert c\rVert^2} \in [0, 1],$$

    with $K$ taps and ``strength`` $a \ge 0$. So the corners get $1 + a$ times the
    variance of the centre, the total $\sum_m C(m) = 2K/n_\text{in}$ is He's (the
    forward and backward signal scale of He init are kept), $a = 0$ is He, and
    $a \to \infty$ tends to $v \propto \rho^2$ (zero at the centre; the 4-corner optimum
    itself is not in the family). All values are exact Fractions ($\rho_m^2$ is
    rational), so ``kind="expected_square"`` predicts the ERF exactly.

    For a $3 \times 3$ kernel the per-axis ERF variance per layer is
    $(6 + 5a)/(9 + 6a)$: $2/3$ for He, $11/15$ at $a = 1$, $5/6$ as $a \to \infty$,
    against the optimum $1$.

    Args:
        kernel_size: taps per axis; an int is a 1-D kernel, a pair a 2-D one.
        strength: $a$ (int, Fraction, string such as ``"1/2"``, or float converted
            exactly); default `DEFAULT_STRENGTH`.
        fan_in: $C_\text{in} K$; defaults to $K$ (one input channel).

    Example:
        >>> [[str(v) for v in row] for row in centre_low_variances((3, 3)).weights]
        [['4/15', '1/5', '4/15'], ['1/5', '2/15', '1/5'], ['4/15', '1/5', '4/15']]
        >>> sum(centre_low_variances((3, 3)).flat) == sum(he_variances((3, 3)).flat)
        True
        >>> centre_low_variances(3, strength=0) == he_variances(3)
        True
    """
    size = _kernel_size(kernel_size, None)
    a = _strength(strength)
    taps = math.prod(size)
    fan = taps if fan_in is None else _positive_int(fan_in, "fan_in")
    centre = [Fraction(k - 1, 2) for k in size]
    reach = sum(c * c for c in centre)
    rho2 = [
        sum((Fraction(t) - c) ** 2 for t, c in zip(tap, centre, strict=True)) / reach
        if reach
        else Fraction(0)
        for tap in _taps(size)
    ]
    shape = [1 + a * r for r in rho2]
    total = sum(shape, Fraction(0))
    return _grid(size, [Fraction(2 * taps, fan) * p / total for p in shape])


# --------------------------------------------------------------------------- networks
def _conv_variances(layer: Conv, rule: VarianceRule, nd: int) -> Conv:
    """A `Conv` with the variances of ``rule`` for its size, its geometry kept."""
    size = layer.size(nd)
    kernel = rule(size)
    if not isinstance(kernel, Kernel) or kernel.shape != size:
        raise ERFValueError(
            f"the variance rule gave {kernel!r} for kernel size {size}; it must "
            f"return a Kernel of that shape"
        )
    # Keep the tap under the output unit (the anchor sets 'same' padding).
    anchor = layer.kernel("gradient", nd).anchors
    return Conv(
        Kernel(kernel, anchor=anchor),
        stride=layer.stride(nd),
        dilation=layer.dilation(nd),
        padding=layer.options()["padding"],
    )


_VARIANCES: dict[str, Callable[[Any, VarianceRule, int], Layer]] = {"conv": _conv_variances}
"""The layer types that `variance_network` replaces, by registry name; it rebuilds the
blocks around them (`erftheory.layers.registry.map_nested`) and keeps every other layer."""

_RULES: dict[str, Callable[..., Kernel]] = {
    "he": he_variances,
    "xavier": xavier_variances,
    "centre_low": centre_low_variances,
}


def variance_network(
    network: Network | Sequence[Layer],
    init: str | VarianceRule = "he",
    *,
    strength: Any = DEFAULT_STRENGTH,
    fan_in: int | None = None,
) -> Network:
    r"""``network`` with every `Conv`'s kernel replaced by the per-tap variances of ``init``.

    Its ``profile(kind="expected_square")`` is then the expected squared input gradient
    of ``network`` with weights drawn by the matching ``*_`` function (single-channel
    fans unless ``fan_in`` is given); strides, dilations, paddings and every other
    layer are kept, blocks are rebuilt recursively.

    Args:
        network: a `Network` or a list of layers.
        init: ``"he"``, ``"xavier"``, ``"centre_low"``, or a function from a kernel size
            (tuple of ints, one per axis) to a variance `Kernel`.
        strength: passed to `centre_low_variances`.
        fan_in: passed to the variance rule (``"he"``, ``"xavier"``, ``"centre_low"``).

    Example:
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv
        >>> net = variance_network(Network([Conv(3, stride=2), Conv(3)]))
        >>> net
        Network([Conv(Kernel([2/3, 2/3, 2/3]), stride=2), Conv(Kernel([2/3, 2/3, 2/3]))])
        >>> [str(c) for c in net.profile("expected_square").coefficients]
        ['4/9', '4/9', '8/9', '4/9', '8/9', '4/9', '4/9']
    """
    if not isinstance(network, Network):
        network = Network(network)
    nd = network.ndim
    rule: VarianceRule
    if callable(init):
        rule = init
    elif init in _RULES:
        opts: dict[str, Any] = {"fan_in": fan_in}
        if init == "centre_low":
            opts["strength"] = strength
        name = init

        def rule(size: tuple[int, ...]) -> Kernel:
            return _RULES[name](size, **opts)

    else:
        raise ERFValueError(
            f"init must be 'he', 'xavier', 'centre_low' or a function, got {init!r}"
        )

    def convert(layer: Layer) -> Layer:
        entry = find_type(layer)
        replace = None if entry is None else _VARIANCES.get(entry.name)
        if replace is not None:
            return replace(layer, rule, nd)
        return map_nested(layer, convert)  # blocks rebuilt, every other layer kept

    return Network([convert(x) for x in as_chain(network, "network")], ndim=nd)
