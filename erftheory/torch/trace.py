r"""Build a `erftheory.network.Network` from a PyTorch model (`from_torch`).

The model is traced with ``torch.fx``, so the data flow of ``forward`` is read, not
guessed: residual connections written ``out += identity``, ``x + f(x)`` or
``torch.add(a, b)`` and concatenated branches (``torch.cat`` along the channels) are
found wherever they are. The traced graph (a DAG from the input to the last spatial
feature map) is decomposed into chains and blocks: every ``+`` or ``torch.cat`` joins
the paths that leave their nearest common dominator (the last node every path from the
input to all operands goes through), which become the branches of a
`erftheory.layers.Residual` (an addition of two branches) or a
`erftheory.layers.Parallel` (anything else). Where the graph is not series-parallel
(one node feeding two blocks that overlap, as in DenseNet and DLA), the part between
two consecutive nodes that every path goes through becomes one `erftheory.layers.Graph`
(its nodes in topological order, runs of single-input nodes merged into chains); the
series-parallel parts stay as they are.

torch is imported inside the functions only; ``import erftheory`` never loads it.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, partial
from typing import Any

from .._config import format_bytes, get_memory_limit
from .._errors import ERFError, ERFTypeError, ERFValueError, SizeLimitError, with_context
from ..graph import (
    NotSeriesParallelError,
    compact_dag,
    dominators,
    reachable,
    series_parallel,
)
from ..kernel import Kernel
from ..layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Elementwise,
    Graph,
    Layer,
    LeakyReLU,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
    _Spatial,
)
from ..layers.elementwise import ACTIVATIONS, ActivationFunction
from ..network import Network

__all__ = ["from_torch"]

WEIGHTS: tuple[str, ...] = ("ones", "model", "variance")


def from_torch(module: Any, input_shape: Sequence[int], *, weights: str = "ones") -> Network:
    r"""The `Network` of a PyTorch model: its layers, strides, paddings and branches.

    The model is traced with ``torch.fx`` and evaluated once on ``meta`` tensors of
    ``input_shape`` (no computation, no change to the model), which checks that it runs
    and fixes the sizes of adaptive pooling layers.

    **Where the network ends.** The ERF is that of one unit of the *last spatial feature
    map*. The spatial part ends at global pooling (an adaptive pooling layer with output
    size 1, or a mean, sum or max over all spatial axes) or at a layer that reshapes the
    map (``torch.flatten``, ``view``, ``reshape``, ``nn.Flatten``, ``nn.Linear`` on a
    spatial axis); what comes after (the classifier head) is ignored. A flatten or
    linear layer on a map larger than $1$ pixel would make every output depend on every
    input pixel, so it is an error: pass the feature extractor instead
    (``model.features`` for VGG and AlexNet). Models without a local receptive field
    (transformers such as ViT and Swin, which flatten the map into tokens and attend
    over all of them) get the same one-line error. Nothing after the end may be spatial
    again.

    **Channel-only operations** are the identity on the spatial map: ``view``,
    ``reshape``, ``flatten``, ``transpose``, ``permute``, ``squeeze`` and ``unsqueeze``
    that keep the batch axis first and every spatial axis whole (the channel shuffle of
    ShuffleNet, channels-last layouts), slices and indices of the channels only
    (``x[:, :1]``, ``x[:, 0]``; slicing the batch or a spatial axis is an
    `ERFValueError`), and ``split``/``chunk`` along the channels: each piece is the same
    map, so a branch through a piece is a branch of the block that joins the pieces.
    ``nn.Linear`` on the channels (a channels-last map, as in ConvNeXt) is a 1×1
    convolution. ``nn.LayerNorm`` over the channels and ``nn.GroupNorm`` are per-pixel
    scales: the identity with ``weights="ones"`` (as batch norm is; GroupNorm's spatial
    statistics are taken as constants, as batch statistics are), factor 1 with the other
    weights (as SE gates below; their scale depends on the input). A constant factor of
    one value per channel (a layer scale) is the identity with ``"ones"``.

    **Squeeze-and-excitation.** A product ``x * s`` of a map and a tensor of one pixel
    (``s = sigmoid(fc(pool(x)))``, as in MobileNetV3, EfficientNet, RegNetY, GhostNet)
    takes the gate as a per-channel constant of the map: the result is the *local* ERF,
    in which the pooled branch contributes no spatial path (through it every output
    depends on every input pixel, weakly). With ``weights="ones"`` the gate is the
    identity; with ``"variance"`` it is taken as 1 (a factor shared by channels that are
    alike does not change the normalised ERF, only its total; a `UserWarning` says so),
    and with ``"model"`` too (an approximation there: the model's gates differ from
    channel to channel and depend on the input). The share of
    the gradient mass that the path through the pool carries depends on the activations'
    values, so it is measured, not read: `erftheory.torch.models.pooled_share` (autograd
    with the gates held constant and kept).

    **Weights.** ``weights`` chooses what a convolution becomes:

    - ``"ones"`` (default): the all-ones kernel of its size, $w(m) = 1$, with its stride,
      dilation and padding; channel counts and groups are ignored and batch
      normalisation is the identity. With ``kind="gradient"`` this is the ERF of the
      architecture (Section 2.1); with ``kind="expected_square"`` the ERF of random
      weights of equal variance on every tap (Section 2.2).
    - ``"model"``: the module's weights. A single-channel model (every convolution with
      one input and one output channel, every batch norm one feature) is read layer by
      layer, exactly (every float64 value as a `fractions.Fraction`); batch norm is the
      constant $\gamma/\sqrt{\sigma^2_{\text{running}}+\epsilon}$ (in training mode
      too, where the batch statistics make it an approximation). With
      ``kind="gradient"`` the profile equals torch's input gradient of the centre output
      unit wherever no nonlinearity or max pooling intervenes. A multi-channel model's
      channel mixing does not factor into one-channel layers, so its network is *one*
      convolution with the model's receptive field (size, jump, offset) whose kernel is
      the model's mean input gradient of the centre unit
      (`erftheory.torch.channels.mean_gradient`: its own weights, every activation its
      mean slope $\mathbb E[\sigma'(x)]$ of Section 2.4, max pooling the uniform choice of
      a tap, seeded at every output channel, the gradient of the channel-summed input;
      one float64 backward pass at `erftheory.network.Network.min_input_size`, or at the
      given input, clipped, when that is above `COLLAPSE_MAX_SIDE`). Use it with
      ``kind="gradient"``; for multi-channel theory of random weights see
      `erftheory.torch.channels.predicted_erf`. Gates and channel norms, whose value
      depends on the input, are taken as 1 (a `UserWarning` says so).
    - ``"variance"``: per-tap weight variances for ``kind="expected_square"`` under the
      independence assumption of Section 2.4 (every output channel receives the same
      expected squared gradient): tap $m$ of a convolution with $C_\text{out}$ outputs
      gets $C(m) = \frac{1}{C_\text{out}}\sum_{o,i} w_{o,i}(m)^2$ (computed in float64,
      then taken exactly), and the network ends in the factor $C'$ of its $C'$ output
      channels (a last layer "sum over C' output channels"), so the result is the
      expected square of the input-channel-summed gradient of the *sum over output
      channels* of the centre unit: `erftheory.torch.empirical_erf`'s seed, so that
      ``compare(..., normalize=False)`` compares at one scale. The channel average is
      exact when all output channels are alike (at initialisation);
      `erftheory.torch.channels.predicted_erf` keeps every channel. Batch norm
      multiplies the squared gradient by the channel mean of
      $\gamma^2/(\sigma^2_{\text{running}}+\epsilon)$.

    Biases never matter. Activations follow `erftheory.layers`: ReLU (and ReLU6, whose
    upper clip is ignored), LeakyReLU (and PReLU with one parameter, its slope), Tanh,
    Sigmoid and the activations of `erftheory.layers.Elementwise` (SiLU, GELU, Hardswish,
    Hardsigmoid, Mish, ELU, SELU, CELU, Softplus) become their expected-slope factors;
    other nonlinearities are rejected. What is recognised, and as which layer, is the
    table ``FROM_TORCH``, keyed by the entries of the layer registry
    (`erftheory.layers.registry.REGISTRY`). Dropout is modelled as the module is
    set: `Dropout` with its ``p`` when ``module.training`` is true, nothing in
    evaluation mode. Padding modes other than zeros, ``count_include_pad=False`` and
    ``ceil_mode=True`` pooling (read as the same layer as floor mode: ceil mode only
    adds a partial window at the far border) only change units whose field reaches the
    border, never the centre unit of an input of
    `erftheory.network.Network.min_input_size` (on other inputs ceil mode may give the
    map one more unit than `erftheory.network.Network.output_size` says).

    **Branches.** An addition (``+``, ``+=``, ``torch.add``) of two branches from a
    common input becomes a `erftheory.layers.Residual` when one branch is the identity
    or a projection (1×1 convolutions, pooling, batch norm: torchvision's
    ``downsample``), a `erftheory.layers.Parallel` otherwise; ``-`` and ``alpha``
    scale a branch. ``torch.cat`` of branches along the channels is taken as the *sum*
    of the branches: the result is the ERF of the channel-summed gradient (for
    ``"ones"`` weights it is exactly what the next all-ones convolution sees). A sum
    over channels (``x.sum(1, keepdim=True)``) is the identity, a mean over channels the
    factor $1/C$; constants added or multiplied are the identity and a factor.

    Args:
        module: a ``torch.nn.Module``, traced as it is (``training`` flags included). A
            bare ``torch.nn`` layer (``nn.Conv2d(1, 1, 3)``) is a model of one layer.
        input_shape: ``(C, L)`` for 1-D models, ``(C, H, W)`` for 2-D models, or either
            with a leading batch size (``(N, C, L)`` is recognised by the model's 1-D
            layers).
        weights: ``"ones"``, ``"model"`` or ``"variance"`` (above).

    Returns:
        The `Network`, 1-D or 2-D as the input.

    Raises:
        ERFTypeError: ``module`` is not a torch module; a module or operation that is
            not supported (the message names it and its type); a model torch.fx cannot
            trace.
        ERFValueError: a bad ``input_shape`` or ``weights``; a model that does not run
            on ``input_shape``; unsupported options (dilated max pooling, adaptive
            pooling that is not a fixed pool); ``"model"`` weights on a multi-channel
            layer; indexing or slicing of the batch
            or a spatial axis (``x[:, :, 1:]``; the message names the node); a reshape
            that mixes pixels (a transformer); normalisation over spatial axes; an
            SE gate or layer/group norm with weights other than ``"ones"``;
            non-finite weights, factors or batch-norm statistics.
        SizeLimitError: a model that does not run on meta tensors and whose run on
            real zeros of ``input_shape`` would exceed the memory limit.

    Warns:
        UserWarning: with ``"model"`` or ``"variance"`` weights, where convolutions or
            batch norms have weights that are all zero (timm's ResNets zero the last
            batch norm of every block, ``zero_init_last=True``): the paths through them
            are cut, so the ERF is the other paths' alone. The warning names the layers.

    A forward whose control flow reads a shape (``if x.shape[-1] < 7``, as the head of
    timm's VGG) cannot be traced symbolically; it is then traced for ``input_shape``
    with torch.fx's ``MetaTracer`` (shapes concrete), so the network read is the one for
    that input shape.

    Every failure is one of these, with a one-line message that names the module (its
    path in the model and its type) or the operation: an unexpected exception from
    deep inside torch.fx ends as an `ERFTypeError` chained to it (``__cause__``).

    Example:
        >>> import torch.nn as nn
        >>> from erftheory.trace import from_torch
        >>> model = nn.Sequential(
        ...     nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        ...     nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1),
        ...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
        >>> net = from_torch(model, (3, 32, 32))
        >>> net
        Network([Conv(3, padding=1), ReLU(), MaxPool(2), Conv(3, padding=1)])
        >>> net.receptive_field
        ReceptiveField(size=(8, 8), jump=(2, 2), offset=(-3, -3))
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ERFTypeError(
            f"from_torch takes a torch.nn.Module, got {_short(module)} of type "
            f"{type(module).__name__}"
        )
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise ERFValueError(f"weights must be 'ones', 'model' or 'variance', got {weights!r}")
    shape = _check_shape(input_shape)
    try:
        return _from_torch(module, shape, weights)
    except ERFError:
        raise
    except Exception as e:  # a safety net: no traceback from deep inside torch.fx
        raise ERFTypeError(
            f"from_torch could not convert the model {type(module).__name__} for input shape "
            f"{shape}: {_one_line(e)}"
        ) from e


def _from_torch(module: Any, shape: tuple[int, ...], weights: str) -> Network:
    import torch

    if type(module).forward is torch.nn.Module.forward:
        raise ERFTypeError(
            f"the model {type(module).__name__} has no forward() (it only holds modules or "
            f"parameters, as ModuleList and ModuleDict do); pass a module that runs them, such "
            f"as nn.Sequential"
        )
    ndim, batched = _resolve_shape(module, shape)
    bare = _is_builtin_layer(module)
    # A bare torch.nn layer (nn.Conv2d) is traced as the one layer of a wrapper, so that
    # it is read as a module and not as the functional call inside its forward.
    gm = _trace(torch.nn.Sequential(module) if bare else module, type(module).__name__, batched)
    shapes = _shapes(gm, batched)
    converter = _Converter(gm, shapes, ndim, weights, bare=bare)
    layers = converter.convert()
    if converter.zeroed:
        _warn_zeroed(converter.zeroed, weights)
    if converter.unscaled:
        _warn_unscaled(converter.unscaled, weights)
    if converter.multichannel:
        spatial = tuple(int(n) for n in batched[2:])
        return _collapsed(_up_to(gm, converter.end), layers, ndim, int(batched[1]), spatial)
    if weights == "variance" and (channels := converter.output_channels()) > 1:
        # the seed is 1 at the centre unit of every output channel (empirical_erf's
        # convention); their weights are independent, so the expected squares add
        layers.append(Activation(f"sum over {channels} output channels", 1, channels))
    return Network(layers, ndim=ndim)


def _warn_unscaled(names: Sequence[str], weights: str) -> None:
    """A `UserWarning`: input-dependent factors taken as 1."""
    import warnings

    shown = "; ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    what = (
        "so the normalised ERF is the theory's but its total is not (compare with normalize=True)"
        if weights == "variance"
        else "an approximation: the model's own gates and norms scale its channels "
        "differently, and by values that depend on the input"
    )
    warnings.warn(
        f"{len(names)} factor(s) depend on the input ({shown}): with weights={weights!r} "
        f"they are taken as 1, {what}",
        UserWarning,
        stacklevel=4,
    )


def _up_to(gm: Any, end: Any) -> Any:
    """The traced model cut at node ``end`` (the last spatial map): its output is ``end``."""
    import torch.fx as fx

    graph = fx.Graph()
    env: dict[Any, Any] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            break
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node is end:
            break
    graph.output(env[end])
    cut = fx.GraphModule(gm, graph)
    cut.graph.eliminate_dead_code()
    cut.recompile()
    return cut


COLLAPSE_MAX_SIDE = 720
"""The largest `Network.min_input_size` side at which ``weights="model"`` evaluates a
multi-channel model's mean gradient on its whole receptive field (`_collapsed`); above
it (and above the given input) the gradient is taken at the given input, clipped."""


def _collapsed(
    module: Any, layers: list[Layer], ndim: int, channels: int, given: tuple[int, ...]
) -> Network:
    """``weights="model"`` for a multi-channel model: one convolution, the mean gradient.

    A one-channel `Network` cannot carry the model's channel mixing layer by layer, but
    the centre unit's input gradient can: `erftheory.torch.channels.mean_gradient` (the
    model's own weights, activations as their mean slopes, one float64 backward pass)
    at `Network.min_input_size`, read on the unit's RF window, becomes the kernel of one
    convolution with the network's jump and offset (``layers``, read as all-ones
    kernels, give the geometry). Where the smallest input holding the field has a side
    above `COLLAPSE_MAX_SIDE` (and above the given input), the gradient is taken at the
    given input instead and is 0 on the part of the field outside it (a `UserWarning`
    says so).
    """
    import warnings

    import numpy as np
    import torch

    from .channels import mean_gradient

    geo = Network(layers, ndim=ndim)
    rf = geo.receptive_field
    size = geo.min_input_size()
    sizes = (size,) if isinstance(size, int) else tuple(size)
    if max(sizes) > max(COLLAPSE_MAX_SIDE, *given):
        warnings.warn(
            f"weights='model': the receptive field ({'x'.join(map(str, _tuple_of(rf.size)))}) "
            f"fits from an input of {'x'.join(map(str, sizes))}, above {COLLAPSE_MAX_SIDE} "
            f"pixels; the mean gradient is taken at the given input "
            f"{'x'.join(map(str, given))} and is 0 where the field leaves it",
            UserWarning,
            stacklevel=4,
        )
        sizes = given
    unit = geo.centre_output(sizes if ndim > 1 else sizes[0])
    units = (unit,) if isinstance(unit, int) else tuple(unit)
    g = mean_gradient(module, (channels, *sizes), output_index=units).map
    window = rf.window(units)
    values = np.zeros(tuple(len(r) for r in window))
    src = tuple(slice(max(r.start, 0), min(r.stop, n)) for r, n in zip(window, sizes, strict=True))
    dst = tuple(
        slice(s.start - r.start, s.stop - r.start) for s, r in zip(src, window, strict=True)
    )
    values[dst] = g[src]
    kernel = Kernel(_tensor_fractions(torch.as_tensor(values)))
    offset = (rf.offset,) if isinstance(rf.offset, int) else tuple(rf.offset)
    if any(o > 0 for o in offset):  # pragma: no cover - a field that starts inside
        raise ERFValueError(f"the RF offset {rf.offset} is positive; it cannot be padding")
    padding = tuple(-o for o in offset)
    one = Conv(kernel, rf.jump, 1, padding if ndim > 1 else padding[0])
    net = Network([one], ndim=ndim)
    if net.receptive_field != rf:  # pragma: no cover - one convolution spans the field
        raise ERFValueError(f"the collapsed network's RF {net.receptive_field} is not {rf}")
    return net


def _tuple_of(v: Any) -> tuple[int, ...]:
    return (v,) if isinstance(v, int) else tuple(v)


def _warn_zeroed(names: Sequence[str], weights: str) -> None:
    """A `UserWarning` naming the layers whose weights are all zero (a branch cut off)."""
    import warnings

    shown = "; ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    warnings.warn(
        f"{len(names)} layer(s) have weights that are all zero at this initialisation "
        f"({shown}): with weights={weights!r} every path through them is cut, so the ERF is "
        f"that of the other paths alone (in a residual block, the skip path's). timm's "
        f"ResNets zero the last batch norm of each block by default (zero_init_last=True); "
        f"pass zero_init_last=False, or use weights='ones', for the ERF of the full network",
        UserWarning,
        stacklevel=4,
    )


def _is_builtin_layer(module: Any) -> bool:
    """A layer of ``torch.nn`` itself (not a container): fx would trace into it."""
    import torch.nn as nn

    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    return type(module).__module__.startswith("torch.nn.") and not isinstance(module, containers)


def _one_line(exc: BaseException, limit: int = 240) -> str:
    """``Type: first line of the message``, at most ``limit`` characters."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else "(no message)"
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return f"{type(exc).__name__}: {text}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value).replace("\n", " ")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- input shape
def _check_shape(input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise ERFValueError(
            f"input_shape must be (C, L), (C, H, W) or either with a batch size first, got "
            f"{input_shape!r}"
        )
    out = []
    for v in input_shape:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ERFValueError(f"input_shape must hold positive ints, got {input_shape!r}")
        out.append(int(v))
    if not 2 <= len(out) <= 4:
        raise ERFValueError(
            f"input_shape must be (C, L), (C, H, W), (N, C, L) or (N, C, H, W), got "
            f"{input_shape!r} with {len(out)} axes"
        )
    return tuple(out)


def _resolve_shape(module: Any, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """The network's dimension and the (batch 2) shape the shape pass runs on."""
    import torch.nn as nn

    core: tuple[int, ...]
    if len(shape) == 2:
        ndim, core = 1, shape
    elif len(shape) == 4:
        ndim, core = 2, shape[1:]
    else:
        one = (nn.Conv1d, nn.AvgPool1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)
        two = (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
        mods = list(module.modules())
        is_1d = any(isinstance(m, one) for m in mods) and not any(isinstance(m, two) for m in mods)
        ndim, core = (1, shape[1:]) if is_1d else (2, shape)
    # batch 2: batch norm in training mode refuses a batch of one 1×1 map
    return ndim, (2, *core)


# ---------------------------------------------------------------- tracing
def _trace(module: Any, name: str, batched: tuple[int, ...] | None = None) -> Any:
    """``module`` traced by torch.fx, its `FROM_TORCH` modules kept whole.

    Where plain symbolic tracing fails (control flow on a shape, as the head of timm's
    VGG has) and the batched input shape ``batched`` is given, the module is traced
    again with torch.fx's ``MetaTracer``, whose proxies carry meta tensors: shapes,
    sizes and ``dim()`` are then concrete numbers, the branch for that input shape is
    the one recorded, and the nodes that only computed the condition are dropped.
    """
    import torch.fx as fx

    leaves = _leaf_types()

    class Tracer(fx.Tracer):  # type: ignore[misc]
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            if _own_norm(m):  # a LayerNorm2d that permutes inside: traced into
                return False
            return isinstance(m, leaves) or bool(super().is_leaf_module(m, qualname))

    tracer = Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as e:
        meta = _meta_trace(module, batched, leaves) if batched is not None else None
        if meta is not None:
            return meta
        raise ERFTypeError(
            f"torch.fx could not trace {name} ({_one_line(e)}); from_torch needs a forward "
            f"whose control flow does not depend on tensor values"
        ) from e
    return fx.GraphModule(tracer.root, graph)


def _meta_trace(module: Any, batched: tuple[int, ...], leaves: tuple[type, ...]) -> Any:
    """``module`` traced with meta tensors of shape ``batched`` (None if that fails too)."""
    import inspect
    import warnings

    import torch
    import torch.fx as fx
    from torch.fx.experimental.meta_tracer import MetaTracer

    class Tracer(MetaTracer):  # type: ignore[misc]
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            if _own_norm(m):
                return False
            return isinstance(m, leaves) or bool(super().is_leaf_module(m, qualname))

    params = list(inspect.signature(module.forward).parameters)
    if not params:
        return None
    tracer = Tracer()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Could not compute metadata": not needed
            graph = tracer.trace(module, {params[0]: torch.empty(batched, device="meta")})
        gm = fx.GraphModule(tracer.root, graph)
        gm.graph.eliminate_dead_code()
        gm.recompile()
    except Exception:  # the caller reports the plain tracer's error
        return None
    return gm


def _own_norm(m: Any) -> bool:
    """A subclass of ``nn.LayerNorm`` with its own forward (torchvision's LayerNorm2d)."""
    import torch.nn as nn

    return isinstance(m, nn.LayerNorm) and type(m).forward is not nn.LayerNorm.forward


def _leaf_types() -> tuple[type, ...]:
    """The modules fx keeps whole: every module of ``FROM_TORCH``, flatten and linear."""
    import torch.nn as nn

    return (*_lookups().modules, nn.Flatten, nn.Linear)


def _shapes(gm: Any, batched: tuple[int, ...]) -> dict[Any, Any]:
    """Output shape of every node, from one pass on meta tensors.

    A tensor gives its shape (a tuple), a number or size ``"size"``, anything else
    (a tuple of tensors, say) ``"object"``.

    The parameters and buffers are replaced by meta tensors for the pass, so nothing is
    computed and the model (batch-norm statistics included) is left unchanged. A model
    whose tensors cannot live on the meta device is run once on zeros instead, with
    copies of its buffers.
    """
    import torch
    import torch.fx as fx

    shapes: dict[Any, Any] = {}

    def kind(r: Any) -> Any:
        if isinstance(r, torch.Tensor):
            return tuple(r.shape)
        if isinstance(r, (numbers.Number, torch.Size)) or (
            isinstance(r, (tuple, list)) and all(isinstance(v, numbers.Number) for v in r)
        ):
            return "size"
        return "object"

    class Recorder(fx.Interpreter):  # type: ignore[misc]
        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            shapes[n] = kind(result)
            return result

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return Recorder(self.inner).run(x)

    wrapper = Wrapper(gm)
    params = list(wrapper.named_parameters()) + list(wrapper.named_buffers())
    dtype = next((p.dtype for _, p in params if p.is_floating_point()), torch.get_default_dtype())
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ERFTypeError(
            f"from_torch traces forward(x) with one tensor input; this model's forward takes "
            f"{len(placeholders)} inputs ({', '.join(n.name for n in placeholders)})"
        )
    errors: list[Exception] = []
    for device in ("meta", "real"):
        shapes.clear()
        if device == "real":
            # zeros of the input shape and a few activations of that size: a lower bound
            esize = torch.empty((), dtype=dtype).element_size()
            estimate = 4 * math.prod(batched) * esize
            if estimate > get_memory_limit():
                raise SizeLimitError(
                    f"the model does not run on meta tensors ({_one_line(errors[-1])}), and a "
                    f"run on real zeros of shape {batched} would need about "
                    f"{format_bytes(estimate)}, above the memory limit of "
                    f"{format_bytes(get_memory_limit())}; use a smaller input_shape",
                    estimate,
                    get_memory_limit(),
                )
        try:
            with torch.no_grad():
                if device == "meta":
                    state = {k: torch.empty_like(v, device="meta") for k, v in params}
                    x = torch.zeros(batched, dtype=dtype, device="meta")
                    torch.func.functional_call(wrapper, state, (x,))
                else:
                    state = {k: v.detach().clone() for k, v in wrapper.named_buffers()}
                    dev = params[0][1].device if params else None
                    x = torch.zeros(batched, dtype=dtype, device=dev)
                    with torch.random.fork_rng(devices=[]):  # dropout draws no numbers
                        torch.func.functional_call(wrapper, state, (x,))
            return shapes
        except Exception as e:
            errors.append(e)
    why = " ".join(str(errors[-1]).strip().split("\n\n")[0].split())
    if len(why) > 300:
        why = why[:297] + "..."
    raise ERFValueError(
        f"the model does not run on an input of shape {batched[1:]} (batch size "
        f"{batched[0]}): {why}"
    ) from errors[-1]


# ---------------------------------------------------------------- helpers
def _collapse(t: Any) -> Any:
    """A per-axis tuple with equal entries as one int (so the repr stays short)."""
    if isinstance(t, str):
        return t
    t = tuple(int(v) for v in (t if isinstance(t, (tuple, list)) else (t,)))
    return t[0] if len(set(t)) == 1 else t


def _exact(x: float) -> Fraction:
    v = float(x)
    if not math.isfinite(v):
        raise ERFValueError(f"a weight or factor is {v!r}; from_torch needs finite numbers")
    return Fraction(v)


def _decimal(x: float) -> Fraction:
    """A hyper-parameter such as 0.01 as the decimal it was written as (1/100)."""
    v = float(x)
    if not math.isfinite(v):
        raise ERFValueError(f"a hyper-parameter is {v!r}; from_torch needs finite numbers")
    return Fraction(repr(v))


def _tensor_fractions(t: Any) -> Any:
    """A float tensor (1-D or 2-D) as nested lists of exact Fractions."""
    values = t.detach().to(device="cpu").double().tolist()

    def conv(v: Any) -> Any:
        return [conv(x) for x in v] if isinstance(v, list) else _exact(v)

    return conv(values)


def _arg(node: Any, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _scale(name: str, c: Any) -> Activation:
    """A constant factor $c$ on the gradient ($c^2$ on its square)."""
    c = Fraction(c) if not isinstance(c, float) else _exact(c)
    return Activation(name, c, c * c)


# ---------------------------------------------------------------- the converter
class _Converter:
    """From the fx graph of one model to nested erftheory layers."""

    def __init__(
        self, gm: Any, shapes: dict[Any, Any], ndim: int, weights: str, *, bare: bool = False
    ) -> None:
        import torch
        import torch.fx as fx
        import torch.nn.functional as F

        self.Node = fx.Node
        self.bare = bare
        self.torch, self.F = torch, F
        self.gm, self.shapes, self.ndim, self.weights = gm, shapes, ndim, weights
        # layers whose weights (or batch-norm scales) are all zero: their branch is cut
        self.zeroed: list[str] = []
        self.unscaled: list[str] = []  # input-dependent factors taken as 1
        self.multichannel: list[str] = []  # multi-channel layers under weights="model"
        self.nodes = list(gm.graph.nodes)
        self.order = {n: i for i, n in enumerate(self.nodes)}
        self.input = next(n for n in self.nodes if n.op == "placeholder")
        self.done: set[Any] = set()
        # nodes computed from the input; ``feeds``: those that carry feature maps
        self.live: set[Any] = {self.input}
        for n in self.nodes:
            if n.op not in ("placeholder", "output") and any(
                a in self.live for a in n.all_input_nodes
            ):
                self.live.add(n)
        self.feeds = {n for n in self.live if self.shapes.get(n) != "size"}
        # ``cut[n]``: operands of ``n`` that are not followed (the gate of an SE block)
        self.cut: dict[Any, set[Any]] = {}
        # where the spatial axes of every feature map are (None: the map is gone)
        self.axes: dict[Any, tuple[int, ...] | None] = {}
        for n in self.nodes:
            if n in self.live:
                self.axes[n] = self.layout(n)
        for n in self.nodes:
            gate = self.gate(n)
            if gate is not None:
                self.cut[n] = {gate}

    # ------------------------------------------------------------ description
    def describe(self, node: Any) -> str:
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            if self.bare and node.target == "0":
                return f"the model itself, a module of type {type(mod).__name__}"
            return f"module '{node.target}' of type {type(mod).__name__}"
        if node.op == "call_method":
            return f"method Tensor.{node.target} (node '{node.name}')"
        name = getattr(node.target, "__name__", repr(node.target))
        if getattr(self.F, name, None) is node.target:
            qual = f"torch.nn.functional.{name}"
        elif getattr(self.torch, name, None) is node.target:
            qual = f"torch.{name}"
        else:
            where = getattr(node.target, "__module__", None) or ""
            qual = f"{where}.{name}" if where and where != "_operator" else name
        return f"function {qual} (node '{node.name}')"

    def unsupported(self, node: Any, why: str = "") -> ERFTypeError:
        extra = f" ({why})" if why else ""
        return ERFTypeError(
            f"{self.describe(node)} is not supported by from_torch{extra}; supported: {SUPPORTED}"
        )

    def operands(self, node: Any) -> list[Any]:
        """The live tensor inputs of ``node``, in argument order (gates left out)."""
        cut = self.cut.get(node, ())
        return [a for a in self.all_operands(node) if a not in cut]

    def all_operands(self, node: Any) -> list[Any]:
        """The live tensor inputs of ``node``, in argument order."""
        out = []

        def visit(a: Any) -> None:
            if isinstance(a, (list, tuple)):
                for x in a:
                    visit(x)
            elif isinstance(a, dict):
                for x in a.values():
                    visit(x)
            elif isinstance(a, self.Node) and a in self.feeds:
                out.append(a)

        visit(node.args)
        visit(node.kwargs)
        return out

    def tensor(self, node: Any) -> bool:
        return isinstance(self.shapes.get(node), tuple)

    def spatial(self, node: Any) -> tuple[int, ...] | None:
        s, axes = self.shapes.get(node), self.axes.get(node)
        if not isinstance(s, tuple) or axes is None:
            return None
        return tuple(s[a] for a in axes)

    # ------------------------------------------------------------ layouts
    def source(self, node: Any) -> Any:
        """The first operand of ``node`` that holds a feature map (through split/chunk)."""
        for a in self.all_operands(node):
            if self.shapes.get(a) == "object":  # a piece of split/chunk
                return self.source(a)
            if self.axes.get(a) is not None:
                return a
        return None

    def layout(self, node: Any) -> tuple[int, ...] | None:
        """The positions of the spatial axes in ``node``'s output, or None.

        Operations on the channels only (view/reshape/transpose/permute that keep the
        batch and the spatial axes, split, chunk, channel slices, reductions over
        channels) move the spatial axes without mixing pixels; anything else that
        changes the rank ends the spatial map.
        """
        if node is self.input:
            s = self.shapes.get(node)
            if isinstance(s, tuple) and len(s) == self.ndim + 2:
                return tuple(range(2, 2 + self.ndim))
            return None
        out = self.shapes.get(node)
        src = self.source(node)
        if src is None or not isinstance(out, (tuple, str)) or out == "size":
            return None
        axes = self.axes[src]
        assert axes is not None
        shape = self.shapes[src]
        rank = len(shape)
        t, fn, meth = node.target, node.op == "call_function", node.op == "call_method"
        torch = self.torch
        if out == "object":  # split / chunk: pieces along one axis
            if (fn and t in (torch.split, torch.chunk, torch.tensor_split)) or (
                meth and t in ("split", "chunk", "tensor_split")
            ):
                dim = _arg(node, 2, "dim", 0)
                if isinstance(dim, int) and dim % rank not in (0, *axes):
                    return axes
            return None
        if fn and t is operator.getitem:
            if self.shapes.get(node.args[0]) == "object":
                return axes
            return _index_axes(node.args[1], shape, axes)
        if (fn and t in (torch.permute,)) or (meth and t == "permute"):
            dims = node.args[1:]
            if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
                dims = dims[0]
            if not dims:
                dims = node.kwargs.get("dims", ())
            dims = [int(d) % rank for d in dims]
            if len(dims) != rank or dims[0] != 0:
                return None
            return tuple(dims.index(a) for a in axes)
        if (fn and t in (torch.transpose, torch.swapaxes)) or (
            meth and t in ("transpose", "swapaxes")
        ):
            d0, d1 = (int(_arg(node, i, k)) % rank for i, k in ((1, "dim0"), (2, "dim1")))
            if 0 in (d0, d1):
                return None
            swap = {d0: d1, d1: d0}
            return tuple(swap.get(a, a) for a in axes)
        if (fn and t is torch.unsqueeze) or (meth and t in ("unsqueeze", "unsqueeze_")):
            d = int(_arg(node, 1, "dim")) % (rank + 1)
            if d == 0:
                return None
            return tuple(a + 1 if a >= d else a for a in axes)
        red = self.reduction_dims(node, src)
        if red is not None:
            dims, keep = red
            if 0 in dims or dims & set(axes):
                return None
            return axes if keep else tuple(a - sum(d < a for d in dims) for a in axes)
        assert isinstance(out, tuple)
        if (fn and t in (torch.flatten, torch.reshape, torch.squeeze)) or (
            meth and t in ("view", "reshape", "flatten", "unflatten", "squeeze")
        ):
            return _reshape_axes(shape, axes, out)
        if node.op == "call_module" and isinstance(
            self.gm.get_submodule(t), (torch.nn.Flatten, torch.nn.Unflatten)
        ):
            return _reshape_axes(shape, axes, out)
        if len(out) == rank:  # elementwise, convolution, pooling, a layer on one axis
            return axes
        return None

    def gate(self, node: Any) -> Any:
        """The gate $s$ of ``x * s`` when $s$ is constant along the map of $x$, else None.

        Squeeze-and-excitation: $s$ is computed from global pooling of the map; from
        `from_torch` it is a per-channel factor of the map (its own path to the input,
        through the pooling, is left out).
        """
        torch = self.torch
        t = node.target
        if not (
            (node.op == "call_function" and t in (operator.mul, operator.imul, torch.mul))
            or (node.op == "call_method" and t in ("mul", "mul_"))
        ):
            return None
        ops = self.all_operands(node)
        if len(ops) != 2:
            return None
        for x, s in (ops, ops[::-1]):
            if self._constant_along(s, x):
                return s
        return None

    def _constant_along(self, s: Any, x: Any) -> bool:
        """``s`` broadcasts along every spatial axis of the map ``x`` (size 1 there)."""
        sx, ss, axes = self.shapes.get(x), self.shapes.get(s), self.axes.get(x)
        if not isinstance(sx, tuple) or not isinstance(ss, tuple) or axes is None:
            return False
        if all(sx[a] == 1 for a in axes) or len(ss) > len(sx):
            return False
        pad = len(sx) - len(ss)
        return all(a < pad or ss[a - pad] == 1 for a in axes)

    # ------------------------------------------------------------ the end
    def end_kind(self, node: Any) -> str | None:
        """``"global"`` (global pooling), ``"reshape"`` (flatten, linear) or None.

        A reshape is an operation that takes a feature map and gives a tensor whose
        axes no longer hold its pixels (`layout` is None), or a linear layer on a
        spatial axis; one on the channels (channels-last ``nn.Linear``) is a 1x1
        convolution.
        """
        torch, F = self.torch, self.F
        nn = torch.nn
        t = node.target
        src = self.source(node)
        last_axis_spatial = False
        if src is not None:
            src_shape, src_axes = self.shapes[src], self.axes[src] or ()
            last_axis_spatial = len(src_shape) - 1 in src_axes
        if node.op == "call_module":
            mod = self.gm.get_submodule(t)
            if isinstance(mod, nn.Linear) and (last_axis_spatial or self.axes.get(node) is None):
                return "reshape"
            if isinstance(mod, nn.Flatten) and self.axes.get(node) is None:
                return "reshape"
            adaptive = (
                nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool1d,
                nn.AdaptiveMaxPool2d,
            )
            if isinstance(mod, adaptive):
                out = self.spatial(node)
                return "global" if out is not None and all(o == 1 for o in out) else None
            return None
        if node.op == "call_function" and t in (
            F.adaptive_avg_pool1d,
            F.adaptive_avg_pool2d,
            F.adaptive_max_pool1d,
            F.adaptive_max_pool2d,
        ):
            out = self.spatial(node)
            return "global" if out is not None and all(o == 1 for o in out) else None
        if node.op == "call_function" and t is F.linear and last_axis_spatial:
            return "reshape"
        if self.reduction(node) == "spatial":
            return "global"
        if src is not None and self.axes.get(node) is None and self.shapes.get(node) != "size":
            return "reshape"
        return None

    def reduction_dims(self, node: Any, src: Any) -> tuple[set[int], bool] | None:
        """The axes a sum/mean/max over ``src`` reduces, and keepdim; None if not one."""
        torch = self.torch
        names = ("sum", "mean", "amax", "amin", "logsumexp")
        fns = (torch.sum, torch.mean, torch.amax, torch.amin, torch.logsumexp)
        if not (
            (node.op == "call_method" and node.target in names)
            or (node.op == "call_function" and node.target in fns)
        ):
            return None
        if len(self.all_operands(node)) != 1:
            return None
        dim = _arg(node, 1, "dim")
        shape = self.shapes.get(src)
        if dim is None or not isinstance(shape, tuple):
            return None
        rank = len(shape)
        try:
            dims = {int(d) % rank for d in (dim if isinstance(dim, (list, tuple)) else (dim,))}
        except (TypeError, ValueError):
            return None
        return dims, bool(_arg(node, 2, "keepdim", False))

    def reduction(self, node: Any) -> str | None:
        """``"channels"`` or ``"spatial"`` for a sum/mean/max over those axes, else None."""
        src = self.source(node)
        red = None if src is None else self.reduction_dims(node, src)
        if red is None:
            return None
        dims, axes = red[0], set(self.axes[src] or ())
        if dims == axes:
            return "spatial"
        if 0 not in dims and not dims & axes:
            return "channels"
        return None

    def find_end(self) -> Any:
        """The node holding the last spatial feature map, checked as documented."""
        output = next(n for n in self.nodes if n.op == "output")
        needed = self.ancestors([output])
        end = None
        for n in self.nodes:
            if n not in self.live or n not in needed:
                continue
            if self.shapes.get(n) == "object" and self.axes.get(n) is None:
                raise self.unsupported(n, "it does not return one tensor")
            self.check_indexing(n)
            if self.tensor(n) and self.end_kind(n):
                end = n
                break
        if end is not None:
            ops = self.operands(end)
            if len(ops) != 1:
                raise self.unsupported(end, "it takes several feature maps")
            last = ops[0]
            if self.end_kind(end) == "reshape":
                sp = self.spatial(last)
                if sp is None or any(s > 1 for s in sp):
                    size = "×".join(map(str, sp)) if sp else str(self.shapes.get(last))
                    into = self.shapes.get(end)
                    into_text = f" into shape {tuple(into[1:])}" if isinstance(into, tuple) else ""
                    raise ERFValueError(
                        f"{self.describe(end)} reshapes a {size} feature map{into_text}, which "
                        f"makes every later output depend on every pixel (a dense layer, or "
                        f"attention over the positions as in a transformer: no local receptive "
                        f"field); from_torch gives the ERF of the last spatial feature map: end "
                        f"the model with global pooling or pass its convolutional feature "
                        f"extractor (e.g. model.features)"
                    )
        else:
            outs = self.operands(output)
            if len(outs) != 1 or output.args[0] is not outs[0]:
                raise ERFTypeError(
                    "from_torch needs a model with one tensor output (the last feature map)"
                )
            last = outs[0]
        before = self.ancestors([last])
        after = self.descendants(last)
        for n in self.nodes:
            if n not in self.live or n not in needed or n in before or n is last:
                continue
            if n not in after:
                raise ERFValueError(
                    f"{self.describe(n)} does not pass through the last spatial feature map "
                    f"'{last.name}' (the input of {self.describe(end) if end else 'the output'});"
                    f" from_torch needs one path of feature maps from the input to the end"
                )
            sp = self.spatial(n)
            if sp is not None and any(s > 1 for s in sp):
                raise ERFValueError(
                    f"{self.describe(n)} is spatial ({'×'.join(map(str, sp))}) but comes after "
                    f"{self.describe(end) if end else 'the end'}, which ends the spatial part "
                    f"of the model (after it every output depends on every pixel)"
                )
        return last

    def inputs(self, node: Any) -> list[Any]:
        cut = self.cut.get(node, ())
        return [p for p in node.all_input_nodes if p not in cut]

    def users(self, node: Any) -> list[Any]:
        return [u for u in node.users if node not in self.cut.get(u, ())]

    def ancestors(self, nodes: list[Any]) -> set[Any]:
        return reachable(nodes, self.inputs)

    def descendants(self, node: Any) -> set[Any]:
        return reachable(self.users(node), self.users)

    # ------------------------------------------------------------ decomposition
    def output_channels(self) -> int:
        """The channels of the end map (every axis but the batch and the spatial ones)."""
        shape, axes = self.shapes[self.end], set(self.axes[self.end] or ())
        return math.prod(int(n) for i, n in enumerate(shape) if i != 0 and i not in axes)

    def convert(self) -> list[Layer]:
        last = self.find_end()
        self.end = last
        region = self.ancestors([last]) & self.feeds
        self.region = region
        # dominators over the region, in topological order (the input has no inputs)
        self.dom = dominators(
            (n for n in self.nodes if n in region),
            lambda n: [p for p in self.inputs(n) if p in region],
        )
        # every node's layers, in the order of the forward pass (so that an error names the
        # first unsupported operation)
        self.cache: dict[Any, Any] = {}
        for n in self.nodes:
            if n not in region or n is self.input:
                continue
            ops = self.operands(n)
            try:
                self.check_indexing(n)
                join = self.join(n, ops)
                if join is None and len(ops) != 1:  # pragma: no cover - join() raised
                    raise self.unsupported(n, "it combines several feature maps")
                self.cache[n] = join if join is not None else self.node_layers(n, ops[0])
            except ERFError as e:
                raise with_context(e, self.describe(n)) from e.__cause__
        layers = self.chain(self.input, last)
        missing = [n for n in region if n is not self.input and n not in self.done]
        if missing:  # pragma: no cover - every region node lies between input and end
            raise ERFValueError(f"nodes {[n.name for n in missing]} could not be placed")
        return layers

    def chain(self, src: Any, dst: Any) -> list[Layer]:
        """The layers from node ``src`` to node ``dst`` (``src`` dominates ``dst``)."""

        def inputs(n: Any) -> list[Any]:
            entry = self.cache[n]
            return list(entry[0]) if isinstance(entry, tuple) else self.operands(n)

        def join(n: Any, branches: list[list[Layer]]) -> list[Layer]:
            _, extras, kind = self.cache[n]
            return [_block([b + e for b, e in zip(branches, extras, strict=True)], kind)]

        def fold(a: Any, b: Any) -> tuple[list[Layer], set[Any]]:
            seen: set[Any] = set()
            part = series_parallel(
                a,
                b,
                inputs=inputs,
                dominators=self.dom,
                order=self.order,
                leaf=lambda n: list(self.cache[n]),
                join=join,
                is_join=lambda n: isinstance(self.cache[n], tuple),
                visited=seen,
            )
            return part, seen

        try:
            layers, seen = fold(src, dst)
        except NotSeriesParallelError:
            pass
        else:
            self.done |= seen
            return layers
        # Not series-parallel (DenseNet, DLA): cut at the nodes every path goes through,
        # keep each series-parallel segment as it was and make every other one a Graph.
        cuts = sorted(
            (n for n in self.dom[dst] if self.order[n] >= self.order[src]),
            key=lambda n: self.order[n],
        )
        layers = []
        for i in range(len(cuts) - 1):
            a, b = cuts[i], cuts[i + 1]
            try:
                part, seen = fold(a, b)
            except NotSeriesParallelError:
                part, seen = self.graph(a, b, inputs)
            self.done |= seen
            layers += part
        return layers

    def graph(
        self, src: Any, dst: Any, inputs: Callable[[Any], list[Any]]
    ) -> tuple[list[Layer], set[Any]]:
        """A `Graph` of the nodes after ``src`` up to ``dst`` (each dominates the next)."""
        lo, hi = self.order[src], self.order[dst]
        members = [n for n in self.nodes if n in self.region and lo < self.order[n] <= hi]
        index = {src: 0}
        chains: list[list[Layer]] = []
        ins: list[list[int]] = []
        for n in members:
            entry = self.cache[n]
            ops = inputs(n)
            if any(op not in index for op in ops) or not ops:  # pragma: no cover - dominators
                raise ERFValueError(
                    f"internal error: {self.describe(n)} reads a node outside the part of the "
                    f"graph from {self.describe(src)} to {self.describe(dst)}"
                )
            if isinstance(entry, tuple):  # a join: its operands' extra layers, then the sum
                _, extras, _ = entry
                reads = []
                for op, extra in zip(ops, extras, strict=True):
                    if extra:
                        chains.append(list(extra))
                        ins.append([index[op]])
                        reads.append(len(chains))
                    else:
                        reads.append(index[op])
                chains.append([])
                ins.append(reads)
            else:
                chains.append(list(entry))
                ins.append([index[op] for op in ops])
            index[n] = len(chains)
        chains, ins = compact_dag(chains, ins)
        return [Graph(chains, ins)], set(members)

    def join(self, node: Any, ops: list[Any]) -> tuple[list[Any], list[list[Layer]], str] | None:
        """For a node that sums feature maps: operands, their extra layers and the kind."""
        torch = self.torch
        t = node.target
        fn = node.op == "call_function"
        meth = node.op == "call_method"
        if len(ops) < 2:
            return None
        if (fn and t in (operator.add, operator.iadd, torch.add)) or (
            meth and t in ("add", "add_")
        ):
            alpha = node.kwargs.get("alpha", 1)
            a, b = node.args[0], node.args[1]
            extra_b: list[Layer] = [] if alpha == 1 else [_scale("alpha", alpha)]
            return [a, b], [[], extra_b], "add"
        if (fn and t in (operator.sub, operator.isub, torch.sub)) or (
            meth and t in ("sub", "sub_")
        ):
            alpha = node.kwargs.get("alpha", 1)
            a, b = node.args[0], node.args[1]
            return [a, b], [[], [_scale("negate", -alpha)]], "sum"
        if fn and t in (torch.cat, torch.concat, torch.concatenate):
            tensors = _arg(node, 0, "tensors")
            dim = _arg(node, 1, "dim", 0)
            rank = len(self.shapes[node])
            if int(dim) % rank in (0, *(self.axes.get(node) or ())):
                raise self.unsupported(node, f"concatenation along axis {dim}, not the channels")
            members = [u for u in tensors if isinstance(u, self.Node) and u in self.feeds]
            return members, [[] for _ in members], "cat"
        raise self.unsupported(node, "it combines several feature maps")

    # ------------------------------------------------------------ one node
    def check_indexing(self, node: Any) -> None:
        """Refuse ``x[...]`` on a feature map unless it selects channels only."""
        if not (node.op == "call_function" and node.target is operator.getitem):
            return
        if not node.args or not isinstance(node.args[0], self.Node):
            return
        if self.axes.get(node.args[0]) is None or self.axes.get(node) is not None:
            return
        index = _index_text(node.args[1] if len(node.args) > 1 else None)
        raise ERFValueError(
            f"{self.describe(node)}: tensor indexing or slicing ({node.args[0].name}[{index}]) "
            f"of the batch or spatial axes is not supported by from_torch (slices of the "
            f"channels are); pass the part of the model before the slice"
        )

    def node_layers(self, node: Any, src: Any) -> list[Layer]:
        """The layers of a node with one live tensor input ``src``."""
        if node.op == "call_module":
            return self.module_layers(node, self.gm.get_submodule(node.target), src)
        if node.op == "call_function":
            return self.function_layers(node, src)
        if node.op == "call_method":
            return self.method_layers(node, src)
        raise self.unsupported(node)  # pragma: no cover - get_attr is never live

    def module_layers(self, node: Any, mod: Any, src: Any) -> list[Layer]:
        reader = _lookups().module(type(mod))
        if reader is None:
            raise self.unsupported(node)
        return reader(self, node, mod, src, self.describe(node))

    def max_pool(self, mod: Any, name: str) -> list[Layer]:
        # ceil_mode=True only adds a partial window at the far border (same layer)
        if _collapse(mod.dilation) != 1:
            raise ERFValueError(f"{name}: dilated max pooling is not supported")
        if mod.return_indices:
            raise ERFValueError(f"{name}: return_indices=True is not supported")
        return [MaxPool(_collapse(mod.kernel_size), _collapse(mod.stride), _collapse(mod.padding))]

    def attribute(self, node: Any) -> Any:
        """The tensor a ``get_attr`` node reads (a parameter or buffer of the model)."""
        obj = self.gm
        for part in str(node.target).split("."):
            obj = getattr(obj, part)
        return obj

    def conv(self, mod: Any, name: str) -> Conv:
        if mod.transposed:  # pragma: no cover - ConvTranspose is not a Conv1d/Conv2d
            raise ERFTypeError(f"{name}: transposed convolutions are not supported")
        stride, dilation = _collapse(mod.stride), _collapse(mod.dilation)
        padding = _collapse(mod.padding)
        if self.weights == "ones":
            return Conv(_collapse(mod.kernel_size), stride, dilation, padding)
        w = mod.weight.detach()
        if self.weights == "model":
            if mod.in_channels != 1 or mod.out_channels != 1:  # see _collapsed
                self.multichannel.append(name)
                return Conv(_collapse(mod.kernel_size), stride, dilation, padding)
            return Conv(Kernel(_tensor_fractions(w[0, 0])), stride, dilation, padding)
        v = (w.double() ** 2).sum(dim=(0, 1)) / mod.out_channels
        if not bool(v.any()):
            self.zeroed.append(name)
        return Conv(Kernel(_tensor_fractions(v)), stride, dilation, padding)

    def avg_pool(self, mod: Any, name: str) -> list[Layer]:
        # ceil_mode=True and count_include_pad=False only change windows at the border
        size = _collapse(mod.kernel_size)
        pool: list[Layer] = [AvgPool(size, _collapse(mod.stride), _collapse(mod.padding))]
        divisor = getattr(mod, "divisor_override", None)
        if divisor:
            taps = math.prod(size) if isinstance(size, tuple) else size**self.ndim
            pool.append(_scale("avgpool divisor", Fraction(taps, int(divisor))))
        return pool

    def adaptive(
        self, node: Any, src: Any, pool: Callable[..., _Spatial], name: str
    ) -> list[Layer]:
        n_in, n_out = self.spatial(src), self.spatial(node)
        if n_in is None or n_out is None:  # pragma: no cover - shapes are known
            raise ERFValueError(f"{name}: its input is not a {self.ndim}-D feature map")
        size = []
        for a, b in zip(n_in, n_out, strict=True):
            if a % b:
                raise ERFValueError(
                    f"{name} maps {'×'.join(map(str, n_in))} to {'×'.join(map(str, n_out))}: "
                    f"windows of unequal size are not a fixed pool; choose an input size whose "
                    f"feature map here is a multiple of the output size"
                )
            size.append(a // b)
        if all(k == 1 for k in size):
            return []
        return [pool(_collapse(size))]

    def batch_norm(self, mod: Any, name: str) -> list[Layer]:
        if self.weights == "ones":
            return []
        if mod.running_var is None:
            raise ERFValueError(
                f"{name} has no running statistics (track_running_stats=False); its gradient "
                f"depends on the batch"
            )
        if self.weights == "model" and mod.num_features != 1:  # see _collapsed
            self.multichannel.append(name)
            return []
        # in Python floats (correctly rounded), so the values are reproducible
        var = [float(v) for v in mod.running_var.detach().double().tolist()]
        gamma = [1.0] * len(var) if mod.weight is None else mod.weight.detach().double().tolist()
        if not all(v + mod.eps > 0 for v in var):  # NaN fails too
            raise ERFValueError(
                f"{name} has running variances {var[:4]}... that are negative or NaN; batch "
                f"norm needs running_var + eps > 0"
                if len(var) > 4
                else f"{name} has running variances {var} that are negative or NaN; batch norm "
                f"needs running_var + eps > 0"
            )
        scales = [float(g) / math.sqrt(v + mod.eps) for g, v in zip(gamma, var, strict=True)]
        if not any(scales):
            self.zeroed.append(name)
        if self.weights == "model":
            return [BatchNorm(_exact(scales[0]))]
        # Mean scale and mean squared scale over channels, exactly: the spread of the
        # channels' scales acts as noise on the squared gradient (mean**2 <= mean square).
        exact = [_exact(s) for s in scales]
        mean = sum(exact, Fraction(0)) / len(exact)
        square = sum((s * s for s in exact), Fraction(0)) / len(exact)
        return [Activation("batchnorm", mean, square)]

    def function_layers(self, node: Any, src: Any) -> list[Layer]:
        if node.target is operator.getitem:  # channels only (check_indexing)
            return []
        name = getattr(node.target, "__name__", "")
        if name == "stochastic_depth" and str(node.target.__module__).startswith("torchvision"):
            return _dropout(_arg(node, 1, "p", 0.5), _arg(node, 3, "training", True))
        reader = _lookups().functions.get(node.target)
        if reader is not None:
            return reader(self, node, src)
        scaled = self.scalar(node, src)
        if scaled is not None:
            return scaled
        raise self.unsupported(node)

    def method_layers(self, node: Any, src: Any) -> list[Layer]:
        reader = _lookups().methods.get(node.target)
        if reader is not None:
            return reader(self, node, src)
        scaled = self.scalar(node, src)
        if scaled is not None:
            return scaled
        raise self.unsupported(node)

    def scalar(self, node: Any, src: Any) -> list[Layer] | None:
        """Constants added or multiplied, channel sums: a factor or nothing."""
        torch = self.torch
        t = node.target
        fn, meth = node.op == "call_function", node.op == "call_method"
        red = self.reduction(node)
        if red == "channels":
            if (fn and t is torch.sum) or (meth and t == "sum"):
                return []
            if (fn and t is torch.mean) or (meth and t == "mean"):
                shape = self.shapes.get(src)
                assert shape is not None
                return [_scale("channel mean", Fraction(1, shape[1]))]
            raise self.unsupported(node, "a maximum over channels is not linear")
        if node in self.cut:
            return self.gate_layers(node)
        if node.args and node.args[0] is src:
            other = node.args[1] if len(node.args) > 1 else None
            first = True
        else:
            other = node.args[0] if node.args else None
            first = False
        number = isinstance(other, numbers.Real) and not isinstance(other, bool)
        constant = number or (
            other is not None and not (isinstance(other, self.Node) and other in self.live)
        )
        add = (fn and t in (operator.add, operator.iadd, torch.add)) or (
            meth and t in ("add", "add_")
        )
        sub = (fn and t in (operator.sub, operator.isub, torch.sub)) or (
            meth and t in ("sub", "sub_")
        )
        if (add or sub) and constant:
            if node.kwargs.get("alpha", 1) != 1 and not first:
                raise self.unsupported(node, "alpha on the feature map")
            return [] if (add or first) else [_scale("negate", -1)]
        mul = (fn and t in (operator.mul, operator.imul, torch.mul)) or (
            meth and t in ("mul", "mul_")
        )
        div = (fn and t in (operator.truediv, operator.itruediv, torch.div)) or (
            meth and t in ("div", "div_")
        )
        if (mul or (div and first)) and number:
            if div and node.kwargs.get("rounding_mode") is not None:
                raise self.unsupported(node, "rounded division")
            c = _exact(other) if isinstance(other, float) else Fraction(other)  # type: ignore[arg-type]
            if div:
                if c == 0:
                    raise ERFValueError(f"{self.describe(node)} divides by zero")
                c = 1 / c
            return [_scale("scale", c)]
        if (fn and t in (operator.neg, torch.neg)) or (meth and t in ("neg", "neg_")):
            return [_scale("negate", -1)]
        if mul and isinstance(other, self.Node) and other.op == "get_attr":
            return self.constant_factor(node, src, other)
        return None

    def gate_layers(self, node: Any) -> list[Layer]:
        """``x * s`` with a gate $s$ constant along the map: a per-channel factor."""
        if self.weights == "ones":
            return []
        self.unscaled.append(self.describe(node))  # its value depends on the input
        return []

    def constant_factor(self, node: Any, src: Any, other: Any) -> list[Layer]:
        """``x * w`` with a parameter ``w`` constant along the map (a layer scale)."""
        if not self._constant_along(other, src):
            raise self.unsupported(node, "a factor that varies over the positions of the map")
        if self.weights == "ones":
            return []
        values = [_exact(v) for v in self.attribute(other).detach().double().reshape(-1).tolist()]
        if self.weights == "model":
            if len(values) != 1:  # see _collapsed
                self.multichannel.append(self.describe(node))
                return []
            return [_scale("scale", values[0])]
        mean = sum(values, Fraction(0)) / len(values)
        square = sum((v * v for v in values), Fraction(0)) / len(values)
        return [Activation("channel scale", mean, square)]

    def norm(self, node: Any, src: Any, dims: int | None, name: str) -> list[Layer]:
        """LayerNorm over the last ``dims`` axes, GroupNorm (``dims`` None)."""
        shape, axes = self.shapes[src], self.axes[src] or ()
        if dims is not None and any(a >= len(shape) - dims for a in axes):
            raise ERFValueError(
                f"{name} normalises over the spatial axes of a "
                f"{'×'.join(str(shape[a]) for a in axes)} map, which makes every output depend "
                f"on every pixel; from_torch reads normalisation over the channels"
            )
        if self.weights == "ones":  # a per-pixel (per-channel) scale: the identity
            return []
        self.unscaled.append(name)  # its scale depends on the input
        return []

    def linear(self, mod: Any, name: str) -> list[Layer]:
        """``nn.Linear`` on the channels (channels last): a 1x1 convolution."""
        one: Any = 1
        if self.weights == "ones":
            return [Conv(one, 1, 1, 0)]
        w = mod.weight.detach()
        if self.weights == "model":
            if w.shape != (1, 1):  # see _collapsed
                self.multichannel.append(name)
                return [Conv(one, 1, 1, 0)]
            v = _exact(float(w[0, 0]))
        else:
            v = _exact(float((w.double() ** 2).sum()) / mod.out_features)
        return [Conv(Kernel([[v]] if self.ndim == 2 else [v]), 1, 1, 0)]


def _index_text(index: Any) -> str:
    """``x[...]``'s index as written (``:, :1``)."""

    def one(v: Any) -> str:
        if isinstance(v, slice):
            parts = ["" if a is None else _index_text(a) for a in (v.start, v.stop, v.step)]
            text = ":".join(parts[:2]) if v.step is None else ":".join(parts)
            return text
        if v is Ellipsis:
            return "..."
        if v is None:
            return "None"
        return str(getattr(v, "name", v))

    if isinstance(index, tuple):
        return ", ".join(one(v) for v in index)
    return one(index)


def _index_axes(index: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """The spatial axes after ``x[index]``, None unless it selects channels only."""
    idx = list(index) if isinstance(index, tuple) else [index]
    if any(v is None for v in idx) or sum(v is Ellipsis for v in idx) > 1:
        return None
    rank = len(shape)
    explicit = len(idx) - sum(v is Ellipsis for v in idx)
    if explicit > rank:
        return None
    if Ellipsis in idx:
        i = idx.index(Ellipsis)
        idx[i : i + 1] = [slice(None)] * (rank - explicit)
    idx += [slice(None)] * (rank - len(idx))
    kept: list[int] = []
    for p, v in enumerate(idx):
        if isinstance(v, slice):
            kept.append(p)
            if p == 0 or p in axes:
                whole = (
                    v.start in (None, 0)
                    and v.step in (None, 1)
                    and (v.stop is None or (isinstance(v.stop, int) and v.stop >= shape[p]))
                )
                if not whole:
                    return None
        elif isinstance(v, int) and not isinstance(v, bool):
            if p == 0 or p in axes:
                return None
        else:
            return None
    return tuple(kept.index(a) for a in axes)


def _reshape_axes(shape: tuple[int, ...], axes: tuple[int, ...], out: Any) -> Any:
    """The spatial axes after a reshape of ``shape`` into ``out``, None if it mixes pixels.

    A reshape keeps the map when the spatial axes are the last ones, before and after,
    with the batch first: it only regroups the channels.
    """
    nd = len(axes)
    if not isinstance(out, tuple) or len(out) < nd + 1:
        return None
    if axes != tuple(range(len(shape) - nd, len(shape))):
        return None
    if out[0] != shape[0] or tuple(out[-nd:]) != tuple(shape[-nd:]):
        return None
    return tuple(range(len(out) - nd, len(out)))


def _dropout(p: Any, training: Any) -> list[Layer]:
    if not training or not p:
        return []
    return [Dropout(_decimal(p))]


def _block(branches: list[list[Layer]], kind: str) -> Layer:
    """`Residual` for $F(x) + x$ or $F(x) + P(x)$ with a projection $P$, else `Parallel`.

    A projection shortcut has no spatial extent beyond pooling: 1×1 convolutions,
    pooling and scalar layers (torchvision's ``downsample``). The choice only changes
    how the network prints; the transfer is the sum of the branches either way.
    """
    if kind == "add" and len(branches) == 2:
        a, b = branches
        if _is_projection(b) and not _is_projection(a):
            return Residual(*a, shortcut=b or None)
        if _is_projection(a) and not _is_projection(b):
            return Residual(*b, shortcut=a or None)
    return Parallel(*branches)


def _is_projection(layers: list[Layer]) -> bool:
    for x in layers:
        if isinstance(x, Conv):
            if any(k != 1 for k in x.size(x.fixed_ndim or 1)):
                return False
        elif not isinstance(x, (AvgPool, MaxPool, Activation, BatchNorm, Dropout)):
            return False
    return True


# ---------------------------------------------------------------- the table
ModuleReader = Callable[[_Converter, Any, Any, Any, str], list[Layer]]
"""``(converter, node, module, src, name) -> layers`` for a module call."""
NodeReader = Callable[[_Converter, Any, Any], list[Layer]]
"""``(converter, node, src) -> layers`` for a function or method call."""


@dataclass(frozen=True)
class Reads:
    """How `from_torch` recognises one layer type of the registry.

    Attributes:
        modules: ``"nn.<Class>"`` (``torch.nn``) or ``"build.<Class>"``
            (`erftheory.torch.build`) to the reader of such a module (subclasses
            included).
        functions: ``"torch.<name>"`` or ``"F.<name>"`` (``torch.nn.functional``) to
            the reader of a call.
        methods: a ``Tensor`` method name to the reader of a call.
        structure: for layers recognised from the graph and not from one call (blocks,
            constant factors), what is read as them.

    Example:
        >>> sorted(FROM_TORCH["relu"].modules), sorted(FROM_TORCH["relu"].methods)
        (['nn.ReLU', 'nn.ReLU6'], ['relu', 'relu_'])
    """

    modules: Mapping[str, ModuleReader] = field(default_factory=dict)
    functions: Mapping[str, NodeReader] = field(default_factory=dict)
    methods: Mapping[str, NodeReader] = field(default_factory=dict)
    structure: str = ""


def _fixed(layers: list[Layer]) -> Callable[..., list[Layer]]:
    """A reader that ignores its call and gives fresh copies of ``layers``."""

    def read(*_: Any) -> list[Layer]:
        return [type(x)() for x in layers]

    return read


def _pool_function(module: str, names: tuple[str, ...]) -> NodeReader:
    """``F.avg_pool2d(x, ...)`` and friends: read as the module of the same options."""

    def read(c: _Converter, node: Any, src: Any) -> list[Layer]:
        kwargs = {}
        for i, key in enumerate(names):
            if len(node.args) > i + 1:
                kwargs[key] = node.args[i + 1]
            elif key in node.kwargs:
                kwargs[key] = node.kwargs[key]
        cls = getattr(c.torch.nn, module)
        return c.module_layers(node, cls(**kwargs), src)

    return read


def _adaptive_max(c: _Converter, node: Any, mod: Any, src: Any, name: str) -> list[Layer]:
    if mod.return_indices:
        raise ERFValueError(f"{name}: return_indices=True is not supported")
    return c.adaptive(node, src, MaxPool, name)


def _prelu_module(c: _Converter, node: Any, mod: Any, src: Any, name: str) -> list[Layer]:
    return [_prelu(mod.weight, name)]


def _prelu_function(c: _Converter, node: Any, src: Any) -> list[Layer]:
    weight = _arg(node, 1, "weight")
    if not (isinstance(weight, c.Node) and weight.op == "get_attr"):
        raise c.unsupported(node, "its weight is not a parameter of the model")
    return [_prelu(c.attribute(weight), c.describe(node))]


def _prelu(weight: Any, name: str) -> Layer:
    """PReLU with one parameter $a$: a leaky ReLU of slope $a$ (exact)."""
    if weight.numel() != 1:
        raise ERFValueError(
            f"{name} has {weight.numel()} parameters (one slope per channel); from_torch reads "
            f"a PReLU with one parameter (num_parameters=1)"
        )
    return LeakyReLU(_exact(float(weight.detach().reshape(-1)[0])))


def _scale_module(c: _Converter, node: Any, mod: Any, src: Any, name: str) -> list[Layer]:
    """`erftheory.torch.build.Scale` (what `to_torch` makes of `BatchNorm`)."""
    if c.weights == "ones":  # batch norm is the identity with all-ones weights
        return []
    return [BatchNorm(_exact(float(mod.scale)))]


def _activation_module(
    group: tuple[ActivationFunction, ...], c: _Converter, node: Any, mod: Any, src: Any, name: str
) -> list[Layer]:
    for act in group:
        if all(getattr(mod, k, None) == v for k, v in act.torch_fixed.items()):
            params = {p.name: _decimal(getattr(mod, p.name)) for p in act.params}
            return [Elementwise(act.name, **params)]
    fixed = {k: getattr(mod, k, None) for a in group for k in a.torch_fixed}
    raise ERFValueError(f"{name}: the options {fixed} are not supported")


def _activation_function(
    group: tuple[ActivationFunction, ...], c: _Converter, node: Any, src: Any
) -> list[Layer]:
    defaults = group[0].torch_fixed  # the first of a group holds torch's defaults
    for act in group:
        names = [p.name for p in act.params]
        fixed = {
            k: _arg(node, len(names) + 1 + j, k, defaults.get(k))
            for j, k in enumerate(act.torch_fixed)
        }
        if fixed == dict(act.torch_fixed):
            params = {
                p.name: _decimal(_arg(node, i + 1, p.name, p.default))
                for i, p in enumerate(act.params)
            }
            return [Elementwise(act.name, **params)]
    raise c.unsupported(node, "these options are not supported")


def _activation_reads(name: str) -> Reads:
    act = ACTIVATIONS[name]
    group = tuple(a for a in ACTIVATIONS.values() if a.torch_module == act.torch_module)
    return Reads(
        modules={f"nn.{act.torch_module}": partial(_activation_module, group)},
        functions=dict.fromkeys(act.torch_functions, partial(_activation_function, group)),
    )


def _conv_module(c: _Converter, node: Any, mod: Any, src: Any, name: str) -> list[Layer]:
    return [c.conv(mod, name)]


def _dropout_module(c: _Converter, node: Any, mod: Any, src: Any, name: str) -> list[Layer]:
    return _dropout(mod.p, mod.training)


def _dropout_function(c: _Converter, node: Any, src: Any) -> list[Layer]:
    return _dropout(_arg(node, 1, "p", 0.5), _arg(node, 2, "training", True))


_CHANNEL_OPS = (
    "reshape",
    "permute",
    "transpose",
    "swapaxes",
    "flatten",
    "squeeze",
    "unsqueeze",
    "split",
    "chunk",
    "tensor_split",
)
"""Functions and methods that move or regroup axes: on the channels, the identity."""

_MAX_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

FROM_TORCH: dict[str, Reads] = {
    "conv": Reads(
        modules={
            **dict.fromkeys(("nn.Conv1d", "nn.Conv2d"), _conv_module),
            # on the channels (channels last): a 1x1 convolution; else the end
            "nn.Linear": lambda c, node, mod, src, name: c.linear(mod, name),
        }
    ),
    "avgpool": Reads(
        modules={
            **dict.fromkeys(
                ("nn.AvgPool1d", "nn.AvgPool2d"),
                lambda c, node, mod, src, name: c.avg_pool(mod, name),
            ),
            **dict.fromkeys(
                ("nn.AdaptiveAvgPool1d", "nn.AdaptiveAvgPool2d"),
                lambda c, node, mod, src, name: c.adaptive(node, src, AvgPool, name),
            ),
        },
        functions={
            "F.avg_pool1d": _pool_function(
                "AvgPool1d", ("kernel_size", "stride", "padding", "ceil_mode")
            ),
            "F.avg_pool2d": _pool_function(
                "AvgPool2d",
                (
                    "kernel_size",
                    "stride",
                    "padding",
                    "ceil_mode",
                    "count_include_pad",
                    "divisor_override",
                ),
            ),
            "F.adaptive_avg_pool1d": _pool_function("AdaptiveAvgPool1d", ("output_size",)),
            "F.adaptive_avg_pool2d": _pool_function("AdaptiveAvgPool2d", ("output_size",)),
        },
    ),
    "maxpool": Reads(
        modules={
            **dict.fromkeys(
                ("nn.MaxPool1d", "nn.MaxPool2d"),
                lambda c, node, mod, src, name: c.max_pool(mod, name),
            ),
            **dict.fromkeys(("nn.AdaptiveMaxPool1d", "nn.AdaptiveMaxPool2d"), _adaptive_max),
        },
        functions={
            "F.max_pool1d": _pool_function("MaxPool1d", _MAX_POOL_ARGS),
            "F.max_pool2d": _pool_function("MaxPool2d", _MAX_POOL_ARGS),
            "F.adaptive_max_pool1d": _pool_function(
                "AdaptiveMaxPool1d", ("output_size", "return_indices")
            ),
            "F.adaptive_max_pool2d": _pool_function(
                "AdaptiveMaxPool2d", ("output_size", "return_indices")
            ),
        },
    ),
    "relu": Reads(
        modules=dict.fromkeys(("nn.ReLU", "nn.ReLU6"), _fixed([ReLU()])),  # ReLU6: clip ignored
        functions=dict.fromkeys(
            ("torch.relu", "torch.relu_", "F.relu", "F.relu_", "F.relu6"), _fixed([ReLU()])
        ),
        methods=dict.fromkeys(("relu", "relu_"), _fixed([ReLU()])),
    ),
    "leaky_relu": Reads(
        modules={
            "nn.LeakyReLU": lambda c, node, mod, src, name: [
                LeakyReLU(_decimal(mod.negative_slope))
            ],
            "nn.PReLU": _prelu_module,
        },
        functions={
            **dict.fromkeys(
                ("F.leaky_relu", "F.leaky_relu_"),
                lambda c, node, src: [LeakyReLU(_decimal(_arg(node, 1, "negative_slope", 0.01)))],
            ),
            **dict.fromkeys(("F.prelu", "torch.prelu"), _prelu_function),
        },
    ),
    "tanh": Reads(
        modules={"nn.Tanh": _fixed([Tanh()])},
        functions=dict.fromkeys(("torch.tanh", "F.tanh"), _fixed([Tanh()])),
        methods=dict.fromkeys(("tanh", "tanh_"), _fixed([Tanh()])),
    ),
    "sigmoid": Reads(
        modules={"nn.Sigmoid": _fixed([Sigmoid()])},
        functions=dict.fromkeys(("torch.sigmoid", "F.sigmoid"), _fixed([Sigmoid()])),
        methods=dict.fromkeys(("sigmoid", "sigmoid_"), _fixed([Sigmoid()])),
    ),
    **{name: _activation_reads(name) for name in ACTIVATIONS},
    "activation": Reads(
        structure="constant factors (x * c, x / c, -x, alpha), a mean over channels, an "
        "avgpool divisor, and batch norm with weights='variance'"
    ),
    "dropout": Reads(
        modules=dict.fromkeys(("nn.Dropout", "nn.Dropout1d", "nn.Dropout2d"), _dropout_module),
        functions=dict.fromkeys(("F.dropout", "F.dropout1d", "F.dropout2d"), _dropout_function),
    ),
    "batchnorm": Reads(
        modules={
            **dict.fromkeys(
                ("nn.BatchNorm1d", "nn.BatchNorm2d"),
                lambda c, node, mod, src, name: c.batch_norm(mod, name),
            ),
            "build.Scale": _scale_module,
            # over the channels: a per-pixel scale, the identity with weights="ones"
            "nn.LayerNorm": lambda c, node, mod, src, name: c.norm(
                node, src, len(mod.normalized_shape), name
            ),
            "nn.GroupNorm": lambda c, node, mod, src, name: c.norm(node, src, None, name),
        },
        functions={
            "F.layer_norm": lambda c, node, src: c.norm(
                node, src, len(tuple(_arg(node, 1, "normalized_shape"))), c.describe(node)
            ),
            "F.group_norm": lambda c, node, src: c.norm(node, src, None, c.describe(node)),
        },
    ),
    "identity": Reads(  # read as nothing
        # (flatten, view, reshape, permute, split, ... only when they keep the map: on
        # the channels; otherwise they end the spatial part)
        modules=dict.fromkeys(("nn.Identity", "nn.Flatten", "nn.Unflatten"), _fixed([])),
        # torch.cat of one feature map and constants: the constants carry no gradient
        functions=dict.fromkeys(
            (
                "torch.clone",
                "torch.cat",
                "torch.concat",
                "torch.concatenate",
                *(f"torch.{m}" for m in _CHANNEL_OPS),
            ),
            _fixed([]),
        ),
        methods=dict.fromkeys(
            ("contiguous", "clone", "float", "double", "to", *_CHANNEL_OPS, "unflatten", "view"),
            _fixed([]),
        ),
    ),
    "residual": Reads(
        structure="an addition of two branches from a common input (x + f(x), torch.add), "
        "one of them the identity or a projection"
    ),
    "parallel": Reads(
        structure="other sums of branches, and their concatenation along the channels"
    ),
    "graph": Reads(
        structure="sums and concatenations whose graph is not series-parallel (DenseNet, "
        "DLA): the segments between the nodes every path goes through"
    ),
}
"""What `from_torch` reads as each layer type, keyed by the names of the layer registry."""


def _supported() -> str:
    names: list[str] = []
    for reads in FROM_TORCH.values():
        for key in reads.modules:
            space, _, name = key.partition(".")
            if space == "nn" and name not in names:
                names.append(name)
    shown = []
    for name in names:
        if name.endswith("2d") and name[:-2] + "1d" in names:
            continue
        shown.append(f"{name}/2d" if name.endswith("1d") and name[:-2] + "2d" in names else name)
    return (
        ", ".join(shown) + ", nn.Sequential and other containers; the functional forms of "
        "these; + and - of two branches; torch.cat along channels; a sum or mean over "
        "channels; scalar * and /; global pooling, flatten and Linear at the end"
    )


SUPPORTED = _supported()
"""The modules and operations `from_torch` reads, for messages."""


@dataclass(frozen=True)
class _Lookups:
    modules: dict[type, ModuleReader]
    functions: dict[Any, NodeReader]
    methods: dict[str, NodeReader]

    def module(self, cls: type) -> ModuleReader | None:
        """The reader of a module class or of its nearest registered base class."""
        for base in cls.__mro__:
            if base in self.modules:
                return self.modules[base]
        return None


@cache
def _lookups() -> _Lookups:
    """``FROM_TORCH`` with the torch objects in place of their names (torch is loaded)."""
    import torch

    from . import build

    spaces = {"nn": torch.nn, "F": torch.nn.functional, "torch": torch, "build": build}

    def resolve(key: str) -> Any:
        space, _, name = key.partition(".")
        return getattr(spaces[space], name, None)  # None: not in this torch version

    modules: dict[type, ModuleReader] = {}
    functions: dict[Any, NodeReader] = {}
    methods: dict[str, NodeReader] = {}
    for reads in FROM_TORCH.values():
        for key, module_reader in reads.modules.items():
            if (cls := resolve(key)) is not None:
                modules[cls] = module_reader
        for key, reader in reads.functions.items():
            if (fn := resolve(key)) is not None:
                functions[fn] = reader
        methods.update(reads.methods)
    return _Lookups(modules, functions, methods)
