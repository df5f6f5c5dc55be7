r"""Build a PyTorch model from a `erftheory.network.Network`.

`to_torch` turns the layer algebra into ``torch.nn`` modules with the same geometry
(stride, dilation, padding, floor rule for output lengths), so the exact ERF of a
`Network` can be checked against autograd, and empirical ERFs can be measured on the
same architecture.

| erftheory layer | torch module |
|---|---|
| `Conv` | ``nn.Conv1d`` / ``nn.Conv2d``, no bias (asymmetric padding: a `Pad` first) |
| `AvgPool` | ``nn.AvgPool1d`` / ``nn.AvgPool2d`` with ``count_include_pad=True`` |
| `MaxPool` | ``nn.MaxPool1d`` / ``nn.MaxPool2d`` (padding is $-\infty$, as in torch) |
| `ReLU`, `LeakyReLU` | ``nn.ReLU``, ``nn.LeakyReLU`` |
| `Tanh`, `Sigmoid` | ``nn.Tanh``, ``nn.Sigmoid`` |
| `Elementwise` | its module: ``nn.SiLU``, ``nn.GELU``, ``nn.ELU``, ... (`ACTIVATIONS`) |
| `Dropout` | ``nn.Dropout`` (identity in ``eval()`` mode) |
| `BatchNorm` | `Scale`: multiplication by the fixed ``scale`` $= \gamma/\sqrt{\sigma^2+\epsilon}$ |
| `Identity` | ``nn.Identity`` |
| `Residual` | `ResidualBlock`: ``shortcut(x) + body(x)`` |
| `Parallel` | `ParallelBlock`: $\sum_b$ ``branch_b(x)`` |
| `Graph` | `GraphBlock`: node $k$ is ``node_k`` of the sum of its inputs; the last is the output |

A generic `Activation` has no torch counterpart (only its factors are known) and is
refused. The table is ``_MODULES``, keyed by the entries of the layer registry
(`erftheory.layers.registry.REGISTRY`).

Padding follows the conventions of `erftheory.layers`: output unit $i$ of a layer reads
input $s\,i - p + d\,m$; an int padding adds $p$ zeros on both sides, ``'same'`` adds
``layer.padding(ndim)`` zeros before and $d(k-1)$ minus that after (torch's
``padding='same'``, which torch itself refuses for stride > 1).

Example:
    >>> import torch
    >>> from erftheory import Network
    >>> from erftheory.layers import Conv, AvgPool
    >>> from erftheory.torch import to_torch
    >>> net = Network([Conv([1, 2, 1]), AvgPool(2)])
    >>> model = to_torch(net)
    >>> model(torch.ones(1, 1, 6, dtype=torch.float64)).tolist()  # zeros pad the edges
    [[[3.5, 4.0, 3.5]]]
    >>> net.output_size(6)
    3
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._config import check_size
from .._errors import ERFTypeError, ERFValueError
from ..layers import Conv, Layer
from ..layers.elementwise import ACTIVATIONS
from ..layers.registry import find_type, walk
from ..network import Network
from ._guard import as_generator

__all__ = [
    "GraphBlock",
    "NetworkModule",
    "Pad",
    "ParallelBlock",
    "ResidualBlock",
    "Scale",
    "WeightMode",
    "to_torch",
]

WeightMode = Literal["kernel", "ones", "random"]
_MODES: tuple[str, ...] = ("kernel", "ones", "random")


# --------------------------------------------------------------------------- modules
class Pad(nn.Module):
    r"""Constant padding given per axis, first axis first (unlike ``F.pad``).

    Args:
        pads: ``(before, after)`` per spatial axis, e.g. ``[(1, 2)]`` in 1-D or
            ``[(1, 2), (0, 1)]`` in 2-D (rows, then columns).
        value: the padding value: 0 for convolutions and average pooling,
            $-\infty$ for max pooling.

    Example:
        >>> import torch
        >>> Pad([(1, 2)])(torch.tensor([[[5.0]]]))
        tensor([[[0., 5., 0., 0.]]])
    """

    def __init__(self, pads: Sequence[tuple[int, int]], value: float = 0.0) -> None:
        super().__init__()
        self.pads = tuple((int(a), int(b)) for a, b in pads)
        self.value = float(value)
        flat: list[int] = []
        for before, after in reversed(self.pads):  # F.pad wants the last axis first
            flat += [before, after]
        self._flat = tuple(flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self._flat, value=self.value)

    def extra_repr(self) -> str:
        return f"pads={self.pads}" + ("" if self.value == 0 else f", value={self.value}")


class Scale(nn.Module):
    r"""Multiplication by a fixed number: `BatchNorm` in evaluation mode.

    The gradient of batch normalisation with frozen statistics is the constant
    $\gamma/\sqrt{\sigma^2+\epsilon}$; a fixed factor (a buffer, not a parameter) keeps
    it exact in both ``train()`` and ``eval()`` mode, unlike ``nn.BatchNorm``, whose
    training mode uses batch statistics.

    Args:
        scale: the factor.
        dtype: the dtype of the stored factor.
    """

    scale: torch.Tensor

    def __init__(self, scale: float, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={float(self.scale):g}"


class ResidualBlock(nn.Module):
    r"""A residual block $y = \mathrm{shortcut}(x) + \mathrm{body}(x)$ (`Residual`).

    Attributes:
        body: the residual branch $F$ (an ``nn.Sequential``).
        shortcut: the shortcut; an empty ``nn.Sequential`` is the identity.
    """

    def __init__(self, body: nn.Sequential, shortcut: nn.Sequential) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.shortcut(x) + self.body(x)
        return out


class ParallelBlock(nn.Module):
    r"""Branches applied to the same input and summed: $y = \sum_b B_b(x)$ (`Parallel`).

    Attributes:
        branches: one ``nn.Sequential`` per branch (an empty one is the identity).
    """

    def __init__(self, branches: Sequence[nn.Sequential]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        total = outs[0]
        for out in outs[1:]:
            total = total + out
        return total


class GraphBlock(nn.Module):
    r"""A DAG of chains (`Graph`): $x_0 = x$, $x_k = C_k\big(\sum_{j \in \mathrm{in}(k)} x_j\big)$,
    and the output is the last node's value.

    Attributes:
        nodes: one ``nn.Sequential`` per node (an empty one is the identity).
        inputs: per node the indices of the nodes it reads (0 is the block input).
    """

    def __init__(self, nodes: Sequence[nn.Sequential], inputs: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.nodes = nn.ModuleList(nodes)
        self.inputs = [list(i) for i in inputs]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for node, inputs in zip(self.nodes, self.inputs, strict=True):
            total = values[inputs[0]]
            for j in inputs[1:]:
                total = total + values[j]
            values.append(node(total))
        return values[-1]

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}"


class NetworkModule(nn.Sequential):
    r"""The torch model of a `Network`: an ``nn.Sequential`` that remembers its source.

    Inputs have shape ``(batch, copies * channels, *spatial)`` and outputs
    ``(batch, copies * channels, *network.output_size(spatial))``.

    Attributes:
        network: the `Network` it was built from.
        ndim: 1 or 2 spatial axes.
        channels: channels per copy.
        copies: independent copies of the network side by side (channel groups).
    """

    def __init__(
        self, network: Network, modules: Sequence[nn.Module], channels: int, copies: int
    ) -> None:
        super().__init__(*modules)
        self.network = network
        self.ndim = network.ndim
        self.channels = channels
        self.copies = copies


# --------------------------------------------------------------------------- building
class _Builder:
    """Turns layers into modules with one set of options (weights, dtype, channels)."""

    def __init__(
        self,
        ndim: int,
        weights: str,
        dtype: torch.dtype,
        generator: torch.Generator | None,
        channels: int,
        copies: int,
    ) -> None:
        self.ndim = ndim
        self.weights = weights
        self.dtype = dtype
        self.generator = generator
        self.channels = channels
        self.copies = copies

    def chain(self, layers: Sequence[Layer]) -> list[nn.Module]:
        out: list[nn.Module] = []
        for layer in layers:
            out.extend(self.layer(layer))
        return out

    def layer(self, layer: Layer) -> list[nn.Module]:
        entry = find_type(layer)
        make = None if entry is None else _MODULES.get(entry.name)
        if make is None:
            raise ERFTypeError(f"{layer!r} of type {type(layer).__name__} has no torch counterpart")
        return make(self, layer)

    def conv(self, layer: Conv) -> list[nn.Module]:
        nd = self.ndim
        c, g = self.channels, self.copies
        pads = layer.pads(self.ndim)
        symmetric = all(a == b for a, b in pads)
        cls = nn.Conv1d if nd == 1 else nn.Conv2d
        opts: dict[str, Any] = {
            "kernel_size": layer.size(nd),
            "stride": layer.stride(nd),
            "dilation": layer.dilation(nd),
            "padding": tuple(a for a, _ in pads) if symmetric else 0,
        }
        # skip_init: no default initialisation, which would draw from torch's global generator
        module = torch.nn.utils.skip_init(
            cls, c * g, c * g, groups=g, bias=False, dtype=self.dtype, **opts
        )
        with torch.no_grad():
            module.weight.copy_(self.conv_weight(layer))
        return [module] if symmetric else [Pad(pads), module]

    def conv_weight(self, layer: Conv) -> torch.Tensor:
        """Weights of shape ``(copies*channels, channels, *size)``."""
        nd = self.ndim
        c, g = self.channels, self.copies
        size = tuple(layer.size(nd))
        shape = (g * c, c, *size)
        if self.weights == "ones":
            return torch.full(shape, 1.0 / c, dtype=self.dtype)
        if self.weights == "kernel":
            k = layer.kernel("gradient", nd)
            base = torch.tensor([float(w) for w in k.flat], dtype=self.dtype).reshape(size)
            return (base / c).expand(shape).clone()
        k = layer.kernel("expected_square", nd)  # refuses negative variances
        var = torch.tensor([float(w) for w in k.flat], dtype=self.dtype).reshape(size)
        gen = self.generator
        assert gen is not None
        noise = torch.randn(shape, generator=gen, dtype=self.dtype, device=gen.device).cpu()
        return noise * torch.sqrt(var / c)

    def pool(self, layer: Any, average: bool) -> list[nn.Module]:
        nd = self.ndim
        size = tuple(layer.size(nd))
        pads = layer.pads(self.ndim)
        # torch pads implicitly only symmetrically and by at most half the window.
        native = all(a == b and 2 * a <= k for (a, b), k in zip(pads, size, strict=True))
        opts: dict[str, Any] = {
            "kernel_size": size,
            "stride": layer.stride(nd),
            "padding": tuple(a for a, _ in pads) if native else 0,
        }
        module: nn.Module
        if average:
            avg = nn.AvgPool1d if nd == 1 else nn.AvgPool2d
            module = avg(count_include_pad=True, **opts)
            value = 0.0
        else:
            mx = nn.MaxPool1d if nd == 1 else nn.MaxPool2d
            module = mx(**opts)
            value = -math.inf
        if native:
            return [module]
        return [Pad(pads, value), module]


def _activation(builder: _Builder, layer: Any) -> list[nn.Module]:
    raise ERFTypeError(
        f"{layer!r} is a generic Activation (only its factors are known) and has no "
        f"torch module; use ReLU, LeakyReLU, Tanh, Sigmoid or Elementwise, or build it "
        f"yourself"
    )


def _elementwise(builder: _Builder, layer: Any) -> list[nn.Module]:
    act = ACTIVATIONS[layer.function]
    params = {name: float(value) for name, value in layer.params.items()}
    return [getattr(nn, act.torch_module)(**params, **act.torch_fixed)]


def _residual(builder: _Builder, layer: Any) -> list[nn.Module]:
    body = nn.Sequential(*builder.chain(layer.body))
    return [ResidualBlock(body, nn.Sequential(*builder.chain(layer.shortcut)))]


def _parallel(builder: _Builder, layer: Any) -> list[nn.Module]:
    return [ParallelBlock([nn.Sequential(*builder.chain(b)) for b in layer.branches])]


def _graph(builder: _Builder, layer: Any) -> list[nn.Module]:
    nodes = [nn.Sequential(*builder.chain(b)) for b in layer.nodes]
    return [GraphBlock(nodes, layer.inputs)]


_Make = Callable[[_Builder, Any], list[nn.Module]]
_MODULES: dict[str, _Make] = {
    "conv": _Builder.conv,
    "avgpool": lambda b, layer: b.pool(layer, average=True),
    "maxpool": lambda b, layer: b.pool(layer, average=False),
    "relu": lambda b, layer: [nn.ReLU()],
    "leaky_relu": lambda b, layer: [nn.LeakyReLU(float(layer.negative_slope))],
    "tanh": lambda b, layer: [nn.Tanh()],
    "sigmoid": lambda b, layer: [nn.Sigmoid()],
    **dict.fromkeys(ACTIVATIONS, _elementwise),
    "activation": _activation,
    "dropout": lambda b, layer: [nn.Dropout(float(layer.p))],
    "batchnorm": lambda b, layer: [Scale(float(layer.scale), b.dtype)],
    "identity": lambda b, layer: [nn.Identity()],
    "residual": _residual,
    "parallel": _parallel,
    "graph": _graph,
}
"""The torch modules of each layer type, by its registry name (every entry has one)."""


def _conv_elements(layers: Sequence[Layer], ndim: int) -> int:
    """Weights per channel pair and copy of every `Conv`, blocks included."""
    return sum(math.prod(x.size(ndim)) for x in walk(layers) if isinstance(x, Conv))


def to_torch(
    network: Network | Sequence[Layer],
    *,
    weights: WeightMode = "kernel",
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | int | None = None,
    channels: int = 1,
    copies: int = 1,
) -> NetworkModule:
    r"""Instantiate a `Network` as a torch model with the same geometry.

    Args:
        network: a `Network` (or a list of layers, made into one).
        weights: the convolution weights:

            - ``"kernel"``: each `Conv`'s `Kernel`, converted to ``dtype`` (exact for
              integer kernels in float64);
            - ``"ones"``: all-ones kernels of the same sizes;
            - ``"random"``: independent zero-mean Gaussian weights whose per-tap
              variance is the kernel's value $C(m)$ (the reading of
              ``kind="expected_square"``), drawn with ``generator``.
        dtype: the dtype of the weights (and of the inputs you feed the model).
        generator: the ``torch.Generator`` for ``weights="random"``, an int seed, or
            None (seed 0). torch's global generator is never used (the modules are
            built without their default initialisation, which would draw from it), so
            the same generator state gives the same weights bit for bit; the weights are
            drawn on the generator's device and built on the CPU.
        channels: channels per layer ($C$), input and output. Every pair of input and
            output channels gets the kernel divided by $C$ (``"kernel"``, ``"ones"``) or
            the variance divided by $C$ (``"random"``). Then, for the gradient of *one*
            output channel at the output unit:

            - ``"kernel"``, ``"ones"``: on an input whose channels all equal $u$, every
              channel of every layer equals the one-channel network on $u$ (activations
              included), so the input gradient summed over input channels is the
              one-channel ERF exactly;
            - ``"random"`` (linear layers): the squared input gradient summed over input
              channels has expectation the ``kind="expected_square"`` ERF.

            Seeding all $C$ output channels instead multiplies both by $C$.
        copies: $G$ independent copies of the network side by side as channel groups
            (``groups=G`` in every convolution): the input has $G\,C$ channels and copy
            $g$ owns channels $gC \dots gC + C - 1$. With ``weights="random"`` each copy
            has its own weights, so one backward pass samples $G$ networks.

    Returns:
        A `NetworkModule` (an ``nn.Sequential``) whose output on an input of spatial
        size ``n`` has spatial size ``network.output_size(n)``. Its `Dropout` layers are
        active in ``train()`` mode, the default of a new module; call ``eval()`` for the
        deterministic network.

    Raises:
        ERFTypeError: a layer without a torch counterpart (a generic `Activation`).
        ERFValueError: an unknown ``weights`` mode, ``channels`` or ``copies`` below 1,
            or negative variances with ``weights="random"``.
        SizeLimitError: the convolution weights would need more than the memory limit
            (`erftheory.get_memory_limit`).

    Example:
        >>> import torch
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv, ReLU
        >>> model = to_torch(Network([Conv((3, 3), stride=2), ReLU(), Conv(3)]))
        >>> model(torch.zeros(1, 1, 9, 9, dtype=torch.float64)).shape
        torch.Size([1, 1, 5, 5])
        >>> model
        NetworkModule(
          (0): Conv2d(1, 1, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
          (1): ReLU()
          (2): Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
        )
    """
    if not isinstance(network, Network):
        network = Network(network)
    if weights not in _MODES:
        raise ERFValueError(f"weights must be 'kernel', 'ones' or 'random', got {weights!r}")
    for name, value in (("channels", channels), ("copies", copies)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ERFValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ERFTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    gen = as_generator(generator) if weights == "random" else None
    elements = _conv_elements(network.layers, network.ndim) * copies * channels * channels
    nbytes = elements * torch.empty((), dtype=dtype).element_size()
    # "random" draws the noise and the scaled copy before the module's own weight
    check_size(
        nbytes * (3 if weights == "random" else 2),
        f"the convolution weights of {copies} copies with {channels} channels",
        "use fewer copies or channels, or raise the limit (erftheory.set_memory_limit)",
    )
    builder = _Builder(network.ndim, weights, dtype, gen, channels, copies)
    return NetworkModule(network, builder.chain(network.layers), channels, copies)
