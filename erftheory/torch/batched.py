r"""Many independent random networks in one torch model, and their input gradients.

The paper's ERFs of random networks are averages over many initialisations (Section
3.1: "averaged over 20 runs", "across 100 runs with different random weights"). A
Python loop over separately built models spends most of its time in per-module
overhead. `BatchedNetworks` runs ``count`` independent single-channel copies of one
architecture as ONE model: channel $c$ is network $c$. Every convolution becomes a
grouped convolution ``Conv{1,2}d(count, count, k, groups=count)`` whose group $c$ holds
network $c$'s own kernel; pooling, activations, dropout and the fixed `BatchNorm` scale
act channel by channel anyway; residual and parallel blocks add channel by channel.

Because the channels never mix, one backward pass of the *sum* over channels of the
centre output units gives every network its own input gradient, in its own channel
(`batched_input_gradients`): $\partial(\sum_c y_c)/\partial x_c = \partial y_c/\partial x_c$.

`paper_network` builds the synthetic networks of Section 3.1 (uniform, random, random +
ReLU, 15 layers with strided or dilated layers).

Example:
    >>> import torch
    >>> from erftheory.torch.batched import BatchedNetworks, batched_input_gradients
    >>> from erftheory.torch.batched import paper_network
    >>> net = paper_network(3, ndim=1)            # three all-ones 3-tap convolutions
    >>> batched = BatchedNetworks(net, 4, init="ones")
    >>> g = batched_input_gradients(batched, torch.zeros(7, dtype=torch.float64))
    >>> g.shape, g[0].tolist()                    # (1 + z + z²)³ for every network
    (torch.Size([4, 7]), [1.0, 3.0, 6.0, 7.0, 6.0, 3.0, 1.0])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._config import check_size, format_bytes
from .._errors import ERFTypeError, ERFValueError
from ..layers import (
    Layer,
)
from ..network import Network
from ..paper import paper_network
from ._guard import as_generator, is_out_of_memory, one_line, out_of_memory_as, seeded_global_rng
from ._measure import centre_gradient, per_axis
from .build import NetworkModule, WeightMode, to_torch
from .init import DEFAULT_STRENGTH, centre_low_, he_, variance_network, xavier_

__all__ = [
    "INITS",
    "BatchedNetworks",
    "InitFunction",
    "batched_input_gradients",
    "paper_network",
]

InitFunction = Callable[..., Any]
"""An in-place initialiser called as ``fn(weight, generator=generator)`` (``nn.init`` style)."""

INITS: tuple[str, ...] = ("he", "xavier", "ones", "centre_low", "kernel", "random")
"""The named initialisations of `BatchedNetworks`."""

_CONVS = (nn.Conv1d, nn.Conv2d)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ERFValueError(f"count must be a positive int, got {value!r}")
    return int(value)


def _convs(module: nn.Module) -> list[nn.Conv1d | nn.Conv2d]:
    """The convolutions of a model built by `to_torch`, in construction order."""
    return [m for m in module.modules() if isinstance(m, _CONVS)]


class BatchedNetworks(nn.Module):
    r"""``count`` independent single-channel networks of one architecture as one model.

    Args:
        network: a `Network` (or a list of layers): `Conv` (stride, dilation, padding),
            `AvgPool`, `MaxPool`, activations (`ReLU`, `LeakyReLU`, `Tanh`, `Sigmoid`),
            `Dropout`, `BatchNorm` (a fixed scale), `Identity`, `Residual`, `Parallel`.
            Its own activation layers are used as they are.
        count: the number of networks $N \ge 1$.
        init: the convolution weights of every network:

            - ``"he"``: `erftheory.torch.init.he_`, $\mathcal N(0, 2/K)$ per tap for a
              kernel of $K$ taps (Section 3.1 follows He et al. [7]);
            - ``"xavier"``: `erftheory.torch.init.xavier_`, $\mathcal N(0, 1/K)$;
            - ``"centre_low"``: `erftheory.torch.init.centre_low_` with ``strength``
              (Section 4: small variance at the kernel's centre, large outside);
            - ``"ones"``: all ones (the "uniform" networks of Sections 2.1 and 3.1);
            - ``"kernel"``: each `Conv`'s own `Kernel` (the same in every network);
            - ``"random"``: $\mathcal N(0, C(m))$ with the `Conv`'s kernel read as
              per-tap variances, as ``to_torch(weights="random")``;
            - a function ``fn(weight, generator=generator)`` filling a weight in place,
              such as ``torch.nn.init.kaiming_normal_``.

            The ``*_`` functions and callables are applied to each network's own weight
            of shape ``(1, 1, *kernel_size)`` (so the fans are those of a
            single-channel convolution), network by network and, within a network, in
            layer order: network $c$'s weights do not depend on ``count``.
        strength: $a$ of ``init="centre_low"`` (ignored otherwise).
        dtype: the dtype of weights and inputs (float64 by default, as `to_torch`).
        device: where the model lives; weights are drawn on the CPU first, so a given
            ``generator`` seed gives the same networks on every device.
        generator: the ``torch.Generator`` for the random weights, an int seed, or None
            (seed 0). torch's global generator is never used: the same seed gives the
            same networks bit for bit, and two models built with None (or one seed) are
            the *same* networks; pass different seeds, or one generator to both, for
            independent ones. A callable ``init`` is called with the resolved generator.

    Inputs are ``(batch, count, *spatial)`` (network $c$ reads channel $c$) or
    ``(batch, 1, *spatial)``, one input shared by all networks (expanded, not copied,
    so its gradient is the sum over networks: `batched_input_gradients` gives them one
    by one); outputs are ``(batch, count, *network.output_size(spatial))``. Like a new
    ``nn.Module`` the model starts in ``train()`` mode, where `Dropout` is active; call
    ``eval()`` for deterministic networks. Called directly in ``train()`` mode, its
    ``nn.Dropout`` layers draw their masks from torch's global generator, as every
    ``nn.Dropout`` does; `batched_input_gradients` seeds them from its ``generator``.

    Attributes:
        network: the `Network`.
        count: $N$.
        ndim: 1 or 2 spatial axes.
        init: the ``init`` argument.
        strength: the ``strength`` argument.
        dtype: the dtype.
        model: the underlying `NetworkModule` (``to_torch(network, copies=count)``).
        convs: its grouped convolutions, in layer order (residual body before shortcut).

    Raises:
        ERFValueError: ``count`` below 1, an unknown ``init``.
        SizeLimitError: the weights of ``count`` networks would need more than the
            memory limit.
        ERFTypeError: a layer without a torch counterpart (a generic `Activation`); a
            ``generator`` that is neither a generator, an int nor None.

    Example:
        >>> import torch
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv, ReLU
        >>> gen = torch.Generator().manual_seed(0)
        >>> b = BatchedNetworks(Network([Conv((3, 3)), ReLU(), Conv(3)]), 100, generator=gen)
        >>> b.convs[0]
        Conv2d(100, 100, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=100, bias=False)
        >>> b(torch.zeros(1, 1, 8, 8, dtype=torch.float64)).shape
        torch.Size([1, 100, 8, 8])
    """

    def __init__(
        self,
        network: Network | Sequence[Layer],
        count: int,
        *,
        init: str | InitFunction = "he",
        strength: Any = DEFAULT_STRENGTH,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        generator: torch.Generator | int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(network, Network):
            network = Network(network)
        count = _count(count)
        gen = as_generator(generator)
        fill: InitFunction | None
        if callable(init):
            fill = init
        elif init in ("he", "xavier", "centre_low"):
            fill = {"he": he_, "xavier": xavier_, "centre_low": _centre_low(strength)}[init]
        elif init in ("ones", "kernel", "random"):
            fill = None
        else:
            raise ERFValueError(
                f"init must be one of {', '.join(INITS)} or a function, got {init!r}"
            )
        mode: WeightMode = (
            "kernel" if init == "kernel" else "random" if init == "random" else "ones"
        )
        self.network = network
        self.count = count
        self.ndim = network.ndim
        self.init = init
        self.strength = strength
        self._dtype = dtype
        self.model: NetworkModule = to_torch(
            network, weights=mode, dtype=dtype, generator=gen, copies=count
        )
        self.convs = _convs(self.model)
        if fill is not None:
            with torch.no_grad():
                for c in range(count):
                    for conv in self.convs:
                        fill(conv.weight[c : c + 1], generator=gen)
        if device is not None:
            self.model.to(device)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights (the ``dtype`` argument for a network without them)."""
        for p in self.model.parameters():
            return p.dtype
        return self._dtype

    @property
    def device(self) -> torch.device:
        """The device of the weights (the CPU for a network without parameters)."""
        for p in self.model.parameters():
            return p.device
        for b in self.model.buffers():
            return b.device
        return torch.device("cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run all networks: ``x`` is ``(batch, count or 1, *spatial)``."""
        if x.dim() != self.ndim + 2 or x.shape[1] not in (1, self.count):
            raise ERFValueError(
                f"input must have shape (batch, {self.count} or 1, *spatial) with "
                f"{self.ndim} spatial axes, got {tuple(x.shape)}"
            )
        if x.shape[1] == 1 and self.count > 1:
            x = x.expand(-1, self.count, *x.shape[2:])
        out: torch.Tensor = self.model(x)
        return out

    def weights(self, index: int) -> list[torch.Tensor]:
        """Network ``index``'s convolution weights, each ``(1, 1, *kernel_size)`` (copies)."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise ERFTypeError(f"index must be an int, got {index!r}")
        if not -self.count <= index < self.count:
            raise ERFValueError(f"index {index} is outside 0..{self.count - 1}")
        i = int(index) % self.count
        return [conv.weight[i : i + 1].detach().clone() for conv in self.convs]

    def single(self, index: int) -> NetworkModule:
        """Network ``index`` alone: ``to_torch(network)`` with its weights loaded.

        The returned model has one channel; it is in the same train/eval mode as this
        one and on the same device.
        """
        model = to_torch(self.network, weights="ones", dtype=self.dtype)
        with torch.no_grad():
            for conv, w in zip(_convs(model), self.weights(index), strict=True):
                conv.weight.copy_(w.cpu())
        return model.to(self.device).train(self.training)

    def prediction(self) -> tuple[Network, str]:
        r"""The network and ERF kind whose exact profile this batch estimates.

        - ``"ones"`` and ``"kernel"``: the fixed-weight network, ``kind="gradient"``:
          every network's input gradient is its ERF (linear networks: exactly).
        - ``"he"``, ``"xavier"``, ``"centre_low"``, ``"random"``: the network with
          per-tap variance kernels (`erftheory.torch.init.variance_network`),
          ``kind="expected_square"``: the mean over networks of the squared input
          gradient estimates its profile (linear networks: unbiased; activations under
          the independence assumption of Section 2.4).

        Raises:
            ERFValueError: a callable ``init`` (its variances are unknown).

        Example:
            >>> from erftheory import Network
            >>> from erftheory.layers import Conv
            >>> net, kind = BatchedNetworks(Network([Conv(3)]), 2).prediction()
            >>> net, kind
            (Network([Conv(Kernel([2/3, 2/3, 2/3]))]), 'expected_square')
        """
        init = self.init
        if init == "kernel":
            return self.network, "gradient"
        if init == "random":
            return self.network, "expected_square"
        if init == "ones":
            return variance_network(self.network, _ones_kernel), "gradient"
        if isinstance(init, str):
            opts = {"strength": self.strength} if init == "centre_low" else {}
            return variance_network(self.network, init, **opts), "expected_square"
        raise ERFValueError(
            "prediction() needs a named init; a function's per-tap variances are unknown "
            "(build the variance network with erftheory.torch.init.variance_network)"
        )

    def extra_repr(self) -> str:
        init = self.init if isinstance(self.init, str) else getattr(self.init, "__name__", "fn")
        return f"count={self.count}, init={init!r}, network={self.network!r}"


def _ones_kernel(size: tuple[int, ...]) -> Any:
    from ..kernel import Kernel

    return Kernel.uniform(size[0] if len(size) == 1 else size)


def _centre_low(strength: Any) -> InitFunction:
    from .init import centre_low_variances

    centre_low_variances(1, strength)  # validate now, not at the first draw

    def fill(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return centre_low_(weight, generator, strength)

    return fill


# --------------------------------------------------------------------------- gradients
def _as_sizes(size: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        sizes: tuple[Any, ...] = (int(size),) * ndim
    else:
        sizes = tuple(size)
    if len(sizes) != ndim or any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes
    ):
        raise ERFValueError(f"size must be a positive int or {ndim} positive ints, got {size!r}")
    return tuple(int(s) for s in sizes)


def batched_input_gradients(
    batched: BatchedNetworks,
    input: torch.Tensor | None = None,
    *,
    size: int | Sequence[int] | None = None,
    output_unit: int | Sequence[int] | None = None,
    generator: torch.Generator | int | None = None,
    channels_last: bool | None = None,
    num_threads: int | None = None,
    crop: bool | None = None,
) -> torch.Tensor:
    r"""Every network's input gradient of its centre output unit, in one backward pass.

    The paper's ERF measurement (Section 3): a gradient of 1 at the centre output unit
    and 0 elsewhere, back-propagated to the input. The backward pass starts from
    $\sum_c y_c(u)$, the sum over networks of output unit $u$; channels never mix, so
    channel $c$ of the input gradient is network $c$'s $\partial y_c(u) / \partial x_c$.
    Only the input gradient is formed (``torch.autograd.grad``); weight gradients are
    neither computed nor accumulated.

    Args:
        batched: the networks.
        input: one of

            - ``None``: independent $\mathcal N(0, 1)$ inputs per network (the paper's
              "random inputs"), drawn with ``generator``, of spatial size ``size``
              (default ``network.min_input_size()``, the smallest input whose centre
              unit never reaches padding);
            - ``(*spatial)``: one input shared by all networks;
            - ``(count, *spatial)``: network $c$ reads ``input[c]``;
            - ``(batch, 1 or count, *spatial)``: a batch of inputs (shared or per
              network); every sample gets its own gradient.
        size: the spatial size for ``input=None``.
        output_unit: the output unit (an int per axis); default
            ``network.centre_output(spatial)``.
        generator: the ``torch.Generator`` for ``input=None`` and for the masks of
            `Dropout` layers in ``train()`` mode, an int seed, or None (seed 0). torch's
            global generator is not used (it is forked and seeded from ``generator``
            while dropout runs), so on the CPU the same generator state gives the same
            gradients bit for bit. Inputs are drawn on the CPU and moved to the model's
            device, so every device sees the same inputs; on a GPU dropout masks come
            from the CUDA generator (other numbers than on the CPU) and some CUDA
            backward kernels are not deterministic, so results agree with the CPU up to
            rounding (dropout aside).
        channels_last: run 2-D models in ``torch.channels_last`` memory format, where
            PyTorch's CPU depthwise convolution is several times faster in float32.
            Default: on for 2-D float32/float16/bfloat16 networks, off otherwise.
            The result does not depend on it beyond rounding.
        num_threads: run with ``torch.set_num_threads(num_threads)`` and restore the
            previous setting afterwards (None: leave it). PyTorch has no fast CPU kernel
            for float64 grouped convolutions and runs one parallel region per group, so
            on a machine whose cores are busy with other work every extra thread can
            wait for a time slice per group: with 4000 networks we measured 0.3 s with 1
            thread and 115 s with 2 on a loaded 2-core machine. ``num_threads=1`` avoids
            this; on an idle machine threads change float64 times little.
        crop: run the networks on the output unit's receptive-field window only (see
            below). Default: on unless `Dropout` is active (its masks would be drawn for
            a smaller tensor); ``False`` always runs the whole input.

    **The receptive-field window.** The gradient of output unit $u$ is zero outside
    its receptive field ``network.receptive_field.window(u)``, and the unit depends on
    nothing else, so the forward and backward passes run on the input cropped to that
    window (clipped to the input; its start rounded down to a multiple of the jump,
    so that every strided layer keeps its grid) and the gradient is placed back into
    zeros. Every intermediate unit the output unit needs reads only pixels inside the
    window, where the cropped and the whole input agree (and the clipped sides are the
    input's own borders, with the same padding), so the result is the same up to
    rounding; it costs the window's pixels instead of the input's (at 64×64, 41×41 for
    the 20-layer network of the benchmark). A network that cannot run on the cropped
    size (its branches would disagree in shape) runs on the whole input.

    Returns:
        ``(count, *spatial)``, or ``(batch, count, *spatial)`` for a batched ``input``:
        the gradient of network $c$ in row $c$. Detached, contiguous, in the model's
        dtype and on its device.

    Raises:
        ERFValueError: an input of the wrong shape; an output unit outside the output;
            a forward or backward pass that runs out of memory.
        SizeLimitError: the input, its gradient and the output would need more than the
            memory limit (checked before anything is drawn).

    Example:
        >>> import torch
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv
        >>> b = BatchedNetworks(Network([Conv(2, stride=2), Conv(2)]), 3, init="ones")
        >>> batched_input_gradients(b, size=6)[2].tolist()   # (1 + z)(1 + z²), unit 1 of 2
        [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    if not isinstance(batched, BatchedNetworks):
        raise ERFTypeError(f"batched must be a BatchedNetworks, got {type(batched).__name__}")
    if num_threads is None:
        return _gradients(batched, input, size, output_unit, generator, channels_last, crop)
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ERFValueError(f"num_threads must be a positive int, got {num_threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _gradients(batched, input, size, output_unit, generator, channels_last, crop)
    finally:
        torch.set_num_threads(before)


def _gradients(
    batched: BatchedNetworks,
    input: torch.Tensor | None,
    size: Any,
    output_unit: Any,
    generator: torch.Generator | int | None,
    channels_last: bool | None,
    crop: bool | None = None,
) -> torch.Tensor:
    nd, count = batched.ndim, batched.count
    dtype, device = batched.dtype, batched.device
    gen = as_generator(generator, cpu=True)
    squeeze = True
    esize = torch.empty((), dtype=dtype).element_size()
    if input is None:
        sizes = _as_sizes(batched.network.min_input_size() if size is None else size, nd)
        _check_gradient_memory(count * math.prod(sizes) * esize, (1, count, *sizes))
        x = torch.randn((1, count, *sizes), generator=gen, dtype=dtype).to(device)
    else:
        if size is not None:
            raise ERFValueError("give either input or size, not both")
        try:
            t = torch.as_tensor(input)
        except Exception as e:
            raise ERFTypeError(
                f"input must be a tensor (or array) of numbers, got {type(input).__name__}: "
                f"{one_line(e)}"
            ) from e
        if t.is_complex() or not (t.is_floating_point() or t.dtype in _REAL_INT):
            raise ERFTypeError(f"input has dtype {t.dtype}; it must hold real numbers")
        if t.dim() >= nd:
            batch = int(t.shape[0]) if t.dim() == nd + 2 else 1
            pixels = math.prod(int(v) for v in t.shape[t.dim() - nd :])
            _check_gradient_memory(batch * count * pixels * esize, tuple(t.shape))
        t = t.to(dtype=dtype, device=device)
        if t.dim() == nd:
            x = t.reshape(1, 1, *t.shape)
        elif t.dim() == nd + 1 and t.shape[0] == count:
            x = t.unsqueeze(0)
        elif t.dim() == nd + 2 and t.shape[1] in (1, count):
            x = t
            squeeze = False
        else:
            raise ERFValueError(
                f"input must have shape (*spatial), ({count}, *spatial) or (batch, 1 or "
                f"{count}, *spatial) with {nd} spatial axes, got {tuple(t.shape)}"
            )
        x = x.expand(-1, count, *x.shape[2:])
    spatial = tuple(int(s) for s in x.shape[2:])
    out_sizes = per_axis(batched.network.output_size(spatial))
    if any(n <= 0 for n in out_sizes):
        raise ERFValueError(f"an input of size {spatial} gives an empty output")
    if output_unit is None:
        unit = _as_sizes_or_index(batched.network.centre_output(spatial), nd)
    else:
        unit = _as_sizes_or_index(output_unit, nd)
        if not all(0 <= u < n for u, n in zip(unit, out_sizes, strict=True)):
            raise ERFValueError(f"output_unit {output_unit!r} is outside the output {out_sizes}")
    if channels_last is None:
        channels_last = nd == 2 and dtype in (torch.float32, torch.float16, torch.bfloat16)
    fmt = torch.channels_last if channels_last and nd == 2 else torch.contiguous_format
    dropout = batched.model.training and any(
        isinstance(m, nn.Dropout) and m.p > 0 for m in batched.model.modules()
    )
    # one number from the generator seeds the global one for dropout (forked, restored)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)) if dropout else 0
    shape = tuple(x.shape)

    def message(error: str) -> str:
        return (
            f"the {count} networks ran out of memory on {device} with an input of shape "
            f"{shape} ({error}); use fewer networks, a smaller size or a smaller batch"
        )

    box = None if (dropout or crop is False) else _window(batched.network, unit, spatial)
    with out_of_memory_as(message), seeded_global_rng(seed, device if dropout else None):
        grad = None
        if box is not None:
            lo, inner = box
            piece = x[(slice(None), slice(None), *(slice(a, b) for a, b in lo))]
            try:
                part = centre_gradient(batched.model, piece, inner, memory_format=fmt)
            except ERFValueError:
                raise
            except Exception as e:
                if is_out_of_memory(e):
                    raise
                part = None  # the branches disagree on the cropped size: the whole input
            if part is not None:
                grad = torch.zeros(x.shape, dtype=part.dtype, device=part.device)
                grad[(slice(None), slice(None), *(slice(a, b) for a, b in lo))] = part
        if grad is None:
            grad = centre_gradient(batched.model, x, unit, memory_format=fmt).contiguous()
    return grad[0] if squeeze else grad


def _window(
    network: Network, unit: tuple[int, ...], spatial: tuple[int, ...]
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]] | None:
    """The crop ``((lo, hi) per axis)`` and the unit's index in it, or None (no gain).

    ``lo`` is the window's start clipped to 0 and rounded down to a multiple of the jump
    (every strided layer keeps its grid), ``hi`` its end clipped to the input.
    """
    rf = network.receptive_field
    jumps = per_axis(rf.jump)
    box = []
    inner = []
    for w, j, n, u in zip(rf.window(unit), jumps, spatial, unit, strict=True):
        lo = (max(0, w.start) // j) * j
        hi = min(n, w.stop)
        if hi <= lo:
            return None
        box.append((lo, hi))
        inner.append(u - lo // j)
    if all(lo == 0 and hi == n for (lo, hi), n in zip(box, spatial, strict=True)):
        return None
    sizes = tuple(hi - lo for lo, hi in box)
    try:
        out = per_axis(network.output_size(sizes if len(sizes) > 1 else sizes[0]))
    except ERFValueError:
        return None
    if not all(0 <= i < o for i, o in zip(inner, out, strict=True)):
        return None
    return tuple(box), tuple(inner)


_REAL_INT = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def _check_gradient_memory(input_bytes: int, shape: tuple[int, ...]) -> None:
    """The expanded input, its gradient and the output: three input-sized tensors."""
    check_size(
        3 * input_bytes,
        f"the input gradients for an input of shape {shape} "
        f"({format_bytes(input_bytes)} per input-sized tensor)",
        "use fewer networks, a smaller size or a smaller batch, or raise the limit "
        "(erftheory.set_memory_limit)",
    )


def _as_sizes_or_index(value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        vals: tuple[Any, ...] = (int(value),)
    else:
        vals = tuple(value)
    if len(vals) != ndim or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in vals
    ):
        raise ERFValueError(f"output_unit must give one int per axis ({ndim}), got {value!r}")
    return tuple(int(v) for v in vals)
