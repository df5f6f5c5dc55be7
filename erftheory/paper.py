r"""The paper's networks (Sections 2, 3.1 and 3.2), without torch.

`paper_network` builds the stacks of single-channel convolutions of Fig. 1 and Section
3.1 (uniform, random, random + ReLU, strided or dilated layers, residual blocks);
`REPLACED` are the layers made strided or dilated in the Section 3.1 comparison, and
`replaced_network` builds its three networks. `resnet_network` is the classification
ResNet of Section 3.2 (17 residual blocks, no pooling or downsampling). `paper_network`
is re-exported by `erftheory.torch.batched` and `erftheory.torch`; ``erftheory
reproduce`` builds every network of its experiments here.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import ERFValueError
from .layers import Activation, BatchNorm, Conv, Dropout, Layer, ReLU, Residual, Sigmoid, Tanh
from .network import Network

__all__ = [
    "PAPER_RESNET_RF",
    "REPLACED",
    "REPLACED_DILATIONS",
    "REPLACEMENTS",
    "RESNET_BLOCKS",
    "paper_network",
    "replaced_network",
    "resnet_network",
]

REPLACED: tuple[int, ...] = (3, 7, 11)
"""The layers (0-based) made strided or dilated in the Section 3.1 comparison: the 4th,
8th and 12th of 15. The paper ("replace 3 of the 15 convolutional layers") does not say
which; these are the ones of ``docs/architectures.md`` and ``erftheory reproduce``."""

REPLACED_DILATIONS: tuple[int, ...] = (2, 4, 8)
"""The dilations of the `REPLACED` layers in the dilated variant, in order."""

REPLACEMENTS: tuple[str, ...] = ("dense", "stride", "dilation")
"""The variants of the Section 3.1 comparison (`replaced_network`)."""

RESNET_BLOCKS = 17
"""Residual blocks of the Section 3.2 classification ResNet ("a ResNet with 17 residual
blocks", CIFAR-10, "we did not use pooling or downsampling")."""

PAPER_RESNET_RF = 74
"""The theoretical RF the paper states for that ResNet ("actually 74×74"). A stack of
stride-1 convolutions of odd size with 'same' padding has an odd RF, so no such network
has 74; `resnet_network` has 71 (35 convolutions of 3×3)."""

_ACTIVATIONS: dict[str, Callable[[], Layer]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def paper_network(
    depth: int,
    kernel_size: int = 3,
    ndim: int = 2,
    activation: str | Activation | None = None,
    stride_layers: Sequence[int] = (),
    dilations: Sequence[int] | Mapping[int, int] | None = None,
    residual: bool = False,
    dropout: float | None = None,
) -> Network:
    r"""The synthetic networks of Sections 2 and 3.1: a stack of single-channel convolutions.

    ``depth`` convolutions of ``kernel_size`` taps per axis, ``'same'`` padding; the
    activation (and then dropout) follows every convolution except the last. With
    `BatchedNetworks` the paper's three cases of Fig. 1 are ``init="ones"`` with no
    activation ("Uniform"), ``init="he"`` with no activation ("Random") and
    ``init="he"`` with ``activation="relu"`` ("Random + ReLU"). The strided and dilated
    variants of Section 3.1 ("replace 3 of the 15 convolutional layers") replace the
    layers `REPLACED` (the 4th, 8th and 12th; the paper does not say which 3):
    ``paper_network(15, stride_layers=REPLACED)`` or
    ``paper_network(15, dilations=dict(zip(REPLACED, (2, 4, 8))))``, as
    ``erftheory reproduce`` and ``docs/architectures.md`` do.

    Args:
        depth: the number of convolutions $n \ge 1$.
        kernel_size: taps per axis.
        ndim: 1 or 2.
        activation: ``None``, ``"relu"``, ``"tanh"``, ``"sigmoid"`` or an `Activation`
            layer.
        stride_layers: indices (0 = nearest the input) of the convolutions with stride 2.
        dilations: the dilation of every convolution (a sequence of ``depth`` ints), or
            ``{index: dilation}`` for some of them.
        residual: wrap every stride-1 convolution with its activation (and dropout) in
            a `Residual` block $y = x + F(x)$ (the skip connections of Section 2.5);
            strided ones stay plain, since an identity shortcut cannot change the grid.
        dropout: $p$ of a `Dropout` after each activation (None: no dropout).

    Example:
        >>> paper_network(3, activation="relu")
        Network([Conv(3), ReLU(), Conv(3), ReLU(), Conv(3)])
        >>> paper_network(3, ndim=1, stride_layers=[1], dilations={2: 2}, residual=True)
        Network([Residual(Conv(3)), Conv(3, stride=2), Residual(Conv(3, dilation=2))])
        >>> paper_network(15, dilations=dict(zip(REPLACED, (2, 4, 8)))).receptive_field.size
        (53, 53)
    """
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ERFValueError(f"depth must be a positive int, got {depth!r}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
        raise ERFValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
    if kernel_size < 1:
        raise ERFValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
    if ndim not in (1, 2) or isinstance(ndim, bool):
        raise ERFValueError(f"ndim must be 1 or 2, got {ndim!r}")
    act: Layer | None
    if activation is None:
        act = None
    elif isinstance(activation, Activation):
        act = activation
    elif activation in _ACTIVATIONS:
        act = _ACTIVATIONS[activation]()
    else:
        raise ERFValueError(
            f"activation must be None, 'relu', 'tanh', 'sigmoid' or an Activation, "
            f"got {activation!r}"
        )
    strided = set()
    for i in stride_layers:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < depth:
            raise ERFValueError(f"stride_layers must hold indices 0..{depth - 1}, got {i!r}")
        strided.add(int(i))
    dil = [1] * depth
    if dilations is not None:
        items = (
            dilations.items()
            if isinstance(dilations, Mapping)
            else enumerate(_sequence(dilations, depth))
        )
        for i, d in items:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < depth:
                raise ERFValueError(f"dilations: layer index {i!r} is outside 0..{depth - 1}")
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
                raise ERFValueError(f"dilations must be positive ints, got {d!r} at layer {i}")
            dil[int(i)] = int(d)
    if dropout is not None:
        Dropout(dropout)  # validate
    layers: list[Layer] = []
    for i in range(depth):
        block: list[Layer] = [
            Conv(int(kernel_size), stride=2 if i in strided else 1, dilation=dil[i])
        ]
        if i < depth - 1:
            if act is not None:
                block.append(act)
            if dropout is not None:
                block.append(Dropout(dropout))
        if residual and i not in strided:
            layers.append(Residual(*block))
        else:
            layers.extend(block)
    return Network(layers, ndim=ndim)


def _sequence(values: Any, depth: int) -> list[Any]:
    out = list(values)
    if len(out) != depth:
        raise ERFValueError(f"dilations must give {depth} values (one per layer), got {len(out)}")
    return out


def replaced_network(depth: int = 15, how: str = "stride") -> Network:
    r"""Section 3.1's comparison: ``depth`` 3×3 layers, the `REPLACED` ones changed.

    ``how="stride"``: those layers have stride 2 ("subsampling"); ``"dilation"``: they
    are dilated by `REPLACED_DILATIONS`; ``"dense"``: neither (the plain stack). The
    paper's ``depth`` is 15, where the `REPLACED` layers are its 4th, 8th and 12th.

    Raises:
        ERFValueError: ``how`` not one of `REPLACEMENTS`; ``"stride"`` or
            ``"dilation"`` with a ``depth`` that does not hold the `REPLACED` layers.

    Example:
        >>> replaced_network(5, "dilation")
        Traceback (most recent call last):
        erftheory.ERFValueError: dilations: layer index 7 is outside 0..4
        >>> [replaced_network(15, how).receptive_field.size for how in REPLACEMENTS]
        [(31, 31), (105, 105), (53, 53)]
    """
    if how == "stride":
        return paper_network(depth, stride_layers=REPLACED)
    if how == "dilation":
        return paper_network(depth, dilations=dict(zip(REPLACED, REPLACED_DILATIONS, strict=True)))
    if how == "dense":
        return paper_network(depth)
    raise ERFValueError(f"how must be one of {', '.join(REPLACEMENTS)}, got {how!r}")


def resnet_network(
    blocks: int = RESNET_BLOCKS,
    *,
    kernel_size: int = 3,
    batchnorm: Sequence[Any] | None = None,
) -> Network:
    r"""Section 3.2's classification ResNet: a stem convolution and pre-activation residual blocks.

    The paper trains "a ResNet with 17 residual blocks" on CIFAR-10 and states: "in this
    experiment we did not use pooling or downsampling, and exclusively focus on
    architectures with skip-connections". It gives no layer list. This network is the
    identity-mapping ResNet of its reference [8]: a ``kernel_size`` convolution (the
    stem), then ``blocks`` residual blocks

    $$x \mapsto x + \mathrm{Conv}(\mathrm{ReLU}(\mathrm{BN}(\mathrm{Conv}(\mathrm{ReLU}(
    \mathrm{BN}(x))))))$$

    with identity shortcuts, every convolution of stride 1 with 'same' padding. Its RF is
    $(2\,\text{blocks} + 1)(k - 1) + 1$ per axis: 71 for 17 blocks of 3×3, against the
    paper's 74 (`PAPER_RESNET_RF`), which no stack of odd stride-1 kernels reaches; the
    final normalisation, pooling and classifier of a full model (the head) do not change
    it. For the expected squared gradient build the variances with
    `erftheory.initializations.variance_network` (``"he"``); a `BatchNorm` is its
    evaluation-mode gradient, the fixed factor ``scale``.

    Args:
        blocks: the number of residual blocks (at least 1).
        kernel_size: taps per axis of every convolution (odd, at least 1).
        batchnorm: the ``scale`` of every `BatchNorm`, ``2 * blocks`` values in order
            (block by block, the one at the branch's input first); None: all 1, the
            evaluation-mode gradient of a freshly initialised ``nn.BatchNorm2d`` up to
            its $1/\sqrt{1 + \epsilon}$.

    Raises:
        ERFValueError: ``blocks`` or ``kernel_size`` not a positive int, an even
            ``kernel_size``, or ``batchnorm`` of the wrong length or with a bad scale.

    Example:
        >>> resnet_network(1)
        Network([Conv(3), Residual(BatchNorm(), ReLU(), Conv(3), BatchNorm(), ReLU(), Conv(3))])
        >>> resnet_network().receptive_field.size, PAPER_RESNET_RF
        ((71, 71), 74)
        >>> from erftheory.initializations import variance_network
        >>> [round(s, 4) for s in variance_network(resnet_network()).std("expected_square")]
        [3.4641, 3.4641]
    """
    if isinstance(blocks, bool) or not isinstance(blocks, numbers.Integral) or blocks < 1:
        raise ERFValueError(f"blocks must be a positive int, got {blocks!r}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
        raise ERFValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ERFValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
    n = int(blocks)
    if batchnorm is None:
        norms = [BatchNorm() for _ in range(2 * n)]
    else:
        values = list(batchnorm)
        if len(values) != 2 * n:
            raise ERFValueError(
                f"batchnorm must give {2 * n} scales (two per block), got {len(values)}"
            )
        norms = [BatchNorm(v) for v in values]
    k = int(kernel_size)
    layers: list[Layer] = [Conv(k)]
    for b in range(n):
        layers.append(Residual(norms[2 * b], ReLU(), Conv(k), norms[2 * b + 1], ReLU(), Conv(k)))
    return Network(layers, ndim=2)
