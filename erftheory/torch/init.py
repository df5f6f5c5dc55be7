r"""Weight initialisation of convolutions, in the style of ``torch.nn.init``.

Each ``*_`` function fills a convolution weight of shape
``(out_channels, in_channels / groups, *kernel_size)`` in place with zero-mean draws,
takes an optional ``generator`` and returns the tensor. Each ``*_variances`` function
gives the matching per-tap weight variance $C(m)$ as an exact `erftheory.Kernel`: the
reading of ``kind="expected_square"`` (Section 2.2, Eq. 8), so that
``Network.profile(kind="expected_square")`` predicts the expected squared input
gradient over initialisations (`variance_network` swaps them into a network).

| init | weight of tap $m$ | per-tap variance $C(m)$ |
|---|---|---|
| `ones_` | $1$ (Section 2.1) | – (fixed weights: ``kind="gradient"``) |
| `he_` | $\mathcal N(0, v)$ | $2 / n_\text{in}$ (He et al. [7]: gain $\sqrt 2$, ReLU) |
| `xavier_` | $\mathcal N(0, v)$ | $2 g^2 / (n_\text{in} + n_\text{out})$ (Glorot and Bengio [5]) |
| `centre_low_` | $\mathcal N(0, C(m))$ | He's total, moved from the centre outwards (Section 4) |

The fans are PyTorch's: $n_\text{in} = C_\text{in} K$ (``fan_in``) and
$n_\text{out} = C_\text{out} K$ (``fan_out``) for a kernel of $K$ taps; a
single-channel convolution ($C_\text{in} = C_\text{out} = 1$) has both equal to $K$.

Randomness: ``generator`` is a ``torch.Generator`` or an int seed, so the same
generator state gives the same weights bit for bit; the draws are made on the
generator's device (the CPU for a seed) and copied into the tensor, so a CPU generator
gives the same weights on every device. Pass one generator to successive calls for
independent draws (two calls with the same seed fill two tensors with the same
numbers). None draws from torch's global generator, as ``torch.nn.init`` does (seed it
with ``torch.manual_seed``), so successive layers initialised with None differ.

Example:
    >>> import torch
    >>> from erftheory.torch.init import he_, he_variances
    >>> w = he_(torch.empty(1000, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    >>> round(float(w.var()), 2), he_variances((3, 3)).flat[0]
    (0.22, Fraction(2, 9))
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

from .._errors import ERFTypeError, ERFValueError
from ..initializations import (  # the torch-free variances, re-exported here
    DEFAULT_STRENGTH,
    _stds,
    _strength,
    centre_low_variances,
    he_variances,
    variance_network,
    xavier_variances,
)
from ._guard import as_generator

__all__ = [
    "DEFAULT_STRENGTH",
    "centre_low_",
    "centre_low_variances",
    "he_",
    "he_variances",
    "ones_",
    "variance_network",
    "xavier_",
    "xavier_variances",
]


def _check_tensor(tensor: Any) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ERFTypeError(
            f"tensor must be a torch.Tensor (a convolution weight), got {type(tensor).__name__}"
        )
    if not tensor.is_floating_point():
        raise ERFTypeError(
            f"a convolution weight must be a floating tensor, got dtype {tensor.dtype}"
        )


def _fans(tensor: torch.Tensor) -> tuple[int, int, tuple[int, ...]]:
    """PyTorch's fans of a convolution weight, and its kernel size."""
    _check_tensor(tensor)
    if tensor.dim() < 3:
        raise ERFValueError(
            f"a convolution weight has shape (out, in, *kernel_size), got "
            f"shape {tuple(tensor.shape)}"
        )
    size = tuple(int(k) for k in tensor.shape[2:])
    taps = math.prod(size)
    return int(tensor.shape[1]) * taps, int(tensor.shape[0]) * taps, size


def _fill(
    tensor: torch.Tensor,
    rule: str,
    generator: torch.Generator | int | None,
    param: Fraction = Fraction(0),
) -> torch.Tensor:
    """Standard normal draws times $\\sqrt{C(m)}$ per tap, in place (``rule``'s variances)."""
    fan_in, fan_out, size = _fans(tensor)
    gen = torch.default_generator if generator is None else as_generator(generator)
    std = torch.tensor(
        _stds(rule, size, fan_in, fan_out, param), dtype=tensor.dtype, device=tensor.device
    ).reshape(size)
    with torch.no_grad():
        if gen.device == tensor.device:
            tensor.normal_(0.0, 1.0, generator=gen)
        else:
            noise = torch.randn(tensor.shape, generator=gen, dtype=tensor.dtype, device=gen.device)
            tensor.copy_(noise)
        tensor.mul_(std)
    return tensor


# --------------------------------------------------------------------------- in place
def ones_(tensor: torch.Tensor, generator: torch.Generator | int | None = None) -> torch.Tensor:
    r"""All weights 1: the uniform kernel of Section 2.1 (``generator`` is ignored).

    Example:
        >>> import torch
        >>> ones_(torch.empty(1, 1, 2)).tolist()
        [[[1.0, 1.0]]]
    """
    if not isinstance(tensor, torch.Tensor):
        raise ERFTypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    with torch.no_grad():
        return tensor.fill_(1.0)


def he_(tensor: torch.Tensor, generator: torch.Generator | int | None = None) -> torch.Tensor:
    r"""He (Kaiming) normal initialisation: $\mathcal N(0,\, 2/n_\text{in})$, zero mean.

    The same distribution as ``torch.nn.init.kaiming_normal_(tensor, nonlinearity="relu")``
    (mode ``fan_in``, gain $\sqrt 2$); the per-tap variance is `he_variances`.

    Args:
        tensor: a convolution weight ``(out, in / groups, *kernel_size)``.
        generator: the ``torch.Generator`` to draw from, an int seed, or None
            (torch's global generator; see the module's *Randomness*).

    Example:
        >>> import torch
        >>> w = he_(torch.empty(4000, 1, 2), generator=torch.Generator().manual_seed(1))
        >>> abs(float(w.var()) - 1.0) < 0.05   # 2 / fan_in = 2 / 2
        True
    """
    return _fill(tensor, "he", generator)


def xavier_(
    tensor: torch.Tensor, generator: torch.Generator | int | None = None, gain: Any = 1
) -> torch.Tensor:
    r"""Xavier (Glorot) normal init: $\mathcal N(0,\, 2g^2/(n_\text{in} + n_\text{out}))$.

    As ``torch.nn.init.xavier_normal_``; the per-tap variance is `xavier_variances`.
    A single-channel convolution with $K$ taps gets variance $1/K$.

    Example:
        >>> import torch
        >>> w = xavier_(torch.empty(1, 1, 5, 5), generator=torch.Generator().manual_seed(0))
        >>> w.shape
        torch.Size([1, 1, 5, 5])
    """
    return _fill(tensor, "xavier", generator, _strength(gain, "gain"))


def centre_low_(
    tensor: torch.Tensor,
    generator: torch.Generator | int | None = None,
    strength: Any = DEFAULT_STRENGTH,
) -> torch.Tensor:
    r"""Section 4's initialisation: per-tap variances `centre_low_variances`, zero mean.

    As Section 4 describes it: draw He weights, then scale tap $m$ by
    $\sqrt{C(m) / C_\text{He}}$, small at the centre and large on the outside; with
    the same generator state `he_` and `centre_low_` give exactly these two tensors.

    Args:
        tensor: a convolution weight ``(out, in / groups, *kernel_size)``.
        generator: the ``torch.Generator`` to draw from, an int seed, or None
            (torch's global generator; see the module's *Randomness*).
        strength: $a$ of `centre_low_variances` (corners get $1 + a$ times the centre's
            variance).

    Example:
        >>> import torch
        >>> he = he_(torch.empty(1, 1, 3, 3), torch.Generator().manual_seed(0))
        >>> low = centre_low_(torch.empty(1, 1, 3, 3), torch.Generator().manual_seed(0))
        >>> (low / he)[0, 0] ** 2   # C(m) / (2/9): 6/5 at the corners, 9/10 edges, 3/5 centre
        tensor([[1.2000, 0.9000, 1.2000],
                [0.9000, 0.6000, 0.9000],
                [1.2000, 0.9000, 1.2000]])
    """
    return _fill(tensor, "centre_low", generator, _strength(strength))
