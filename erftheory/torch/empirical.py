r"""Empirical ERFs of torch models by back-propagation (Luo et al., Section 3).

"For all ERF studies, we place a gradient signal of 1 at the center of the output plane
and 0 everywhere else, and then back-propagate this gradient through the network to get
input gradients." `empirical_erf` does exactly that for every sample of a batch at once
and aggregates a per-pixel statistic of the input gradient over inputs, batches and,
optionally, independently initialised networks.

Notation: for sample $k$ (an input, or an input and a network), the input gradient is

$$g_k(c, x) = \sum_{c'} \frac{\partial y_{c'}(o)}{\partial x_c(x)},$$

the derivative of the output at the centre unit $o$, summed over output channels $c'$,
with respect to input channel $c$ at pixel $x$. A *statistic* $\phi$ turns it into one
map per sample,

- ``channel_reduce="sum"`` (default): $q_k(x) = \phi\big(\sum_c g_k(c, x)\big)$, the
  statistic of the channel-summed gradient (the gradient of the input image
  $x_c(x) = u(x)$ for all $c$; for an `erftheory.torch.build.to_torch` model with
  $C$ channels it is $C$ times the one-channel ERF of the theory, since all $C$
  output channels are seeded);
- ``channel_reduce="sum_after"``: $q_k(x) = \sum_c \phi\big(g_k(c, x)\big)$, the
  statistic per input channel, then summed over channels (the order of the large-kernel
  papers' scripts),

and the ERF is the sample mean $\bar q(x) = \frac1N \sum_k q_k(x)$. The statistics
$\phi$ are

- ``"mean"``: $\phi(g) = g$, the signed mean gradient (fixed weights, Section 2.1);
- ``"mean_square"``: $\phi(g) = g^2$, the expected squared gradient of random-weight
  networks (Section 2.2, Eq. 6–8; `erftheory.Network.profile` with
  ``kind="expected_square"``);
- ``"mean_abs"``: $\phi(g) = |g|$;
- ``"relu"``: $\phi(g) = \max(g, 0)$.

The ``"relu"`` statistic with ``channel_reduce="sum_after"`` is the per-pixel quantity
of RepLKNet (Ding et al., "Scaling Up Your Kernels to 31x31", CVPR 2022) and the
papers that reuse its ``erf/visualize_erf.py`` (SLaK, UniRepLKNet): they sum
$\max(g(c, x), 0)$ over input channels and images. Their script differs in two more
points that are not statistics of the input gradient: it back-propagates from
$\sum_{c'} \max(y_{c'}(o), 0)$ (a ReLU on the output, so only channels with a positive
output contribute; wrap the model as ``nn.Sequential(model, nn.ReLU())`` to reproduce
it), and it takes the centre at index ``n // 2`` (the *upper* middle unit for an even
output size; pass ``output_index``). It then plots $\log_{10}(1 + \text{sum})$, which
is a display transform, not part of the measurement.

Independence of the samples of a batch: one backward pass gives every sample's
gradient only if no layer couples the samples of a batch. `empirical_erf` therefore runs
the model in ``eval()`` mode (batch normalisation uses its running statistics, dropout
is off), warns when it finds batch normalisation in training mode, and restores every
module's mode afterwards.

Measures of the result (`EmpiricalERF`): `EmpiricalERF.moments` (mean and covariance
per axis), `EmpiricalERF.gaussian` (centre, principal widths, orientation; by moments or
least squares), `EmpiricalERF.radial_mass` (the share within radius $r$ of the
origin), `EmpiricalERF.mass_shares` (the squares holding 20, 30, 50 and 99 % of the
map), each with a delta-method standard error from the per-sample spread of summary
features accumulated with the map, and `EmpiricalERF.plot`. `EmpiricalERF.from_samples`
builds a result from per-sample maps measured elsewhere.

Speed: the parameters stop requiring gradients while the model runs (only the input is
differentiated), 4-D float32 inputs go channels-last, batch norm is folded into the
preceding convolutions (``fuse_batchnorm``), tensor inputs are cut into batches sized
from memory (``batch_size="auto"``), and the sums stay on the device with masks instead
of per-batch host synchronisation. None of this changes the result beyond rounding.

A subtlety of vision transformers: when the output ends in a ``LayerNorm`` with unit
weights (a randomly initialised timm ViT), the sum over channels of a token is constant,
so seeding all of its channels gives a zero gradient up to rounding (for OpenERF's mean
over channels too); use trained weights or seed chosen channels.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._config import check_size, format_bytes, get_memory_limit
from .._errors import ERFError, ERFTypeError, ERFValueError
from ..network import Network
from ._guard import (
    as_generator,
    check_seed,
    derived_seed,
    describe_model,
    is_out_of_memory,
    one_line,
    out_of_memory_as,
    seeded_global_rng,
    wrap_exception,
)
from ._measure import centre_gradient, per_axis, record_saved_bytes, sample_maps
from ._tokens import OUTPUT_LAYOUTS, TokenOptions, Tokens, View, patch_embed, prefix_attr
from .map_measures import MAX_FEATURES, GaussianFit, MassShare, Moments, RadialMass
from .result import (
    CHANNEL_REDUCTIONS,
    ORIGIN_SOURCES,
    STATISTICS,
    Accumulator,
    ChannelReduce,
    EmpiricalERF,
    Statistic,
    What,
)

__all__ = [
    "AUTO_BATCH_BYTES_CPU",
    "AUTO_BATCH_CPU",
    "AUTO_BATCH_GPU",
    "CHANNEL_REDUCTIONS",
    "MAX_FEATURES",
    "ORIGIN_SOURCES",
    "STATISTICS",
    "ChannelReduce",
    "EmpiricalERF",
    "GaussianFit",
    "MassShare",
    "Moments",
    "RadialMass",
    "Statistic",
    "empirical_erf",
    "suggest_batch_size",
]


PROGRESS_MIN_BATCHES = 200
"""With ``progress=None`` a bar is shown from this many backward passes on (and a tty)."""

_DEFAULT_BATCH = 32  # random inputs through one fixed model

ModelFactory = Callable[[int, torch.Generator], nn.Module]
OutputLayout = Literal["channels_first", "channels_last", "tokens"]


# --------------------------------------------------------------------------- validation
def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ERFValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


_SHAPES = "(C, L) or (C, H, W) for batches (N, C, L) or (N, C, H, W)"


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list, torch.Size)):
        raise ERFValueError(
            f"input_shape must be (channels, *spatial), a tuple of positive ints such as "
            f"{_SHAPES}, got {input_shape!r}"
        )
    shape = tuple(input_shape)
    if len(shape) < 2:
        raise ERFValueError(
            f"input_shape {input_shape!r} has no spatial axis; it must be (channels, *spatial) "
            f"such as {_SHAPES}"
        )
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
        raise ERFValueError(
            f"input_shape must be (channels, *spatial) with positive int sizes, such as "
            f"{_SHAPES}, got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


def _device(device: Any) -> torch.device:
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, numbers.Integral)):
        raise ERFTypeError(
            f"device must be a string such as 'cpu' or 'cuda:0' or a torch.device, got "
            f"{device!r} of type {type(device).__name__}"
        )
    try:
        dev = torch.device(int(device) if isinstance(device, numbers.Integral) else device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ERFValueError(
            f"device {device!r} is not a torch device ({one_line(e)}); use 'cpu' or 'cuda'"
        ) from e
    if dev.type == "cpu":
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ERFValueError(
                f"device {device!r} was asked for, but MPS is not available to this torch "
                f"({torch.__version__}); use device='cpu'"
            )
        return dev
    if dev.type != "cuda":
        raise ERFValueError(
            f"device {device!r} (type {dev.type!r}) is not supported by empirical_erf; use "
            f"'cpu', 'cuda' or 'mps'"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ERFValueError(
                f"device {device!r} was asked for, but CUDA is not available to this torch "
                f"({torch.__version__}); use device='cpu'"
            )
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.index >= torch.cuda.device_count():
            raise ERFValueError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return dev


def _has_train_batchnorm(model: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules()
    )


def _on(model: nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether every parameter and buffer is on ``device`` (floating ones in ``dtype``)."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.device != device or (t.is_floating_point() and t.dtype != dtype):
            return False
    return True


# --------------------------------------------------------------------------- outputs
_ELEMENTWISE = frozenset(
    {
        "AbsBackward0",
        "AddBackward1",
        "AliasBackward0",
        "CloneBackward0",
        "DivBackward1",
        "EluBackward0",
        "GeluBackward0",
        "HardswishBackward0",
        "HardtanhBackward0",
        "LeakyReluBackward0",
        "MulBackward1",
        "NativeDropoutBackward0",
        "NegBackward0",
        "ReluBackward0",
        "SigmoidBackward0",
        "SiluBackward0",
        "SoftplusBackward0",
        "SubBackward1",
        "TanhBackward0",
        "ThresholdBackward0",
        "ToCopyBackward0",
    }
)
_VIEWS = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"})
_MATMULS = frozenset(
    {
        "AddmmBackward0",
        "MmBackward0",
        "BmmBackward0",
        "BaddbmmBackward0",
        "AddbmmBackward0",
        "MvBackward0",
        "LinearBackward0",
    }
)


def _ends_in_linear(y: torch.Tensor) -> bool:
    """Whether ``y`` is a matrix product over its last axis (``nn.Linear``), up to
    elementwise functions: the autograd graph is walked back from the output."""
    fn = y.grad_fn
    for _ in range(64):
        if fn is None:
            return False
        name = type(fn).__name__
        if name in _MATMULS:
            return True
        if name not in _ELEMENTWISE and name not in _VIEWS:
            return False
        nexts = [f for f, _ in fn.next_functions if f is not None]
        if len(nexts) != 1:
            return False
        if name in _VIEWS:
            return type(nexts[0]).__name__ in _MATMULS
        fn = nexts[0]
    return False


def _check_output(model: nn.Module, x: torch.Tensor, y: Any) -> None:
    """Refuse outputs that are not a spatial map of the input's spatial axes."""
    inp = tuple(x.shape)
    what = describe_model(model)
    if not isinstance(y, torch.Tensor):
        hint = (
            "; return only the feature map (wrap the model to pick one element)"
            if isinstance(y, (tuple, list, dict))
            else ""
        )
        raise ERFTypeError(
            f"{what} returned {type(y).__name__} for inputs of shape {inp}; empirical_erf needs "
            f"a tensor output map (batch, channels, *spatial){hint}"
        )
    if not y.is_floating_point():
        raise ERFTypeError(
            f"{what} returned a tensor of dtype {y.dtype} for inputs of shape {inp}; "
            f"empirical_erf needs a real floating output map to differentiate"
        )
    out = tuple(y.shape)
    if y.dim() < 3 or y.shape[0] != x.shape[0]:
        spatial = " (it has no spatial axis)" if y.dim() == 2 and y.shape[0] == x.shape[0] else ""
        raise ERFValueError(
            f"for inputs of shape {inp} {what} returned shape {out}{spatial}; empirical_erf "
            f"needs an output map (batch, channels, *spatial) with one entry per sample, such "
            f"as (N, C, L) or (N, C, H, W)"
        )
    if y.dim() != x.dim():
        raise ERFValueError(
            f"{what} maps inputs of shape {inp} ({x.dim() - 2} spatial axes) to shape {out} "
            f"({y.dim() - 2} spatial axes); empirical_erf needs an output map with the input's "
            f"spatial axes: (N, C, L) -> (N, C', L') or (N, C, H, W) -> (N, C', H', W')"
            + (
                ", or a token sequence (N, T, C') with output_layout='tokens'"
                if y.dim() == 3 and x.dim() == 4
                else ""
            )
        )
    if isinstance(model, (nn.Linear, nn.Bilinear)) or _ends_in_linear(y):
        raise ERFValueError(
            f"the output of {what} (shape {out} for inputs of shape {inp}) comes from a linear "
            f"layer (nn.Linear, a matrix product) over its last axis, which is not spatial: "
            f"empirical_erf needs a model whose output is a spatial map (N, C, L) or "
            f"(N, C, H, W), such as a convolutional feature extractor"
        )


def _element_size(dtype: torch.dtype) -> int:
    return int(torch.empty((), dtype=dtype).element_size())


def _check_batch_memory(
    samples: int, sample_shape: Sequence[int], dtype: torch.dtype, what: str, hint: str = ""
) -> None:
    r"""`SizeLimitError` before a batch is drawn whose own tensors exceed the limit.

    The estimate is a lower bound: the batch in ``dtype``, its input gradient in
    ``dtype`` and the float64 statistic per sample (the model's activations come on
    top), plus the four float64 accumulator maps.
    """
    numel = math.prod(int(s) for s in sample_shape)
    spatial = math.prod(int(s) for s in sample_shape[1:])
    per_sample = numel * (2 * _element_size(dtype) + 8)
    fixed = 4 * 8 * spatial
    estimate = samples * per_sample + fixed
    if estimate <= get_memory_limit():
        return
    if not hint:
        fit = (get_memory_limit() - fixed) // per_sample if per_sample else 0
        hint = (
            f"use batch_size={fit} or less, or raise the limit (erftheory.set_memory_limit)"
            if fit >= 1
            else f"one sample of shape {tuple(sample_shape)} alone needs "
            f"{format_bytes(per_sample + fixed)}; use a smaller input or raise the limit "
            f"(erftheory.set_memory_limit)"
        )
    check_size(estimate, what, hint)


# --------------------------------------------------------------------------- inputs
def _as_batch(x: Any, input_shape: tuple[int, ...] | None, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ERFTypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if input_shape is not None and x.dim() == len(input_shape):
        x = x.unsqueeze(0)
    if x.dim() < 3:
        raise ERFValueError(
            f"{what} has shape {tuple(x.shape)}, with no spatial axis; inputs must be (batch, "
            f"channels, *spatial) such as (N, C, L) or (N, C, H, W), or (channels, *spatial) "
            f"with input_shape given"
        )
    if input_shape is not None and tuple(x.shape[1:]) != input_shape:
        raise ERFValueError(
            f"{what} has shape {tuple(x.shape)}, which does not match input_shape {input_shape}"
        )
    if x.is_complex() or x.dtype == torch.bool:
        raise ERFTypeError(f"{what} has dtype {x.dtype}; inputs must be real numbers")
    return x


class _Source:
    """The batches of one run and how many there are (None when unknown)."""

    def __init__(
        self,
        inputs: Any,
        input_shape: tuple[int, ...] | None,
        batch_size: int,
        dtype: torch.dtype,
        gen: torch.Generator,
        runs: int,
    ) -> None:
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.auto = False  # batch_size="auto": the first batch (one sample) sizes the rest
        self.sized = False
        self.dtype = dtype
        self.gen = gen
        self.kind: str
        if isinstance(inputs, str):
            if inputs != "random":
                raise ERFValueError(
                    f"inputs must be 'random', a tensor or an iterable, got {inputs!r}"
                )
            if input_shape is None:
                raise ERFValueError("inputs='random' needs input_shape = (channels, *spatial)")
            self.kind = "random"
            self.batches: int | None = 1
        elif isinstance(inputs, torch.Tensor):
            self.kind = "tensor"
            self.tensor = _as_batch(inputs, input_shape, "inputs")
            if self.tensor.shape[0] == 0:
                raise ERFValueError("inputs is an empty batch (0 samples)")
            self.batches = -(-int(self.tensor.shape[0]) // batch_size)
        elif isinstance(inputs, Iterable):
            if iter(inputs) is inputs and runs > 1:
                raise ERFValueError(
                    "inputs is a one-shot iterator, but runs > 1 passes over it; give a "
                    "re-iterable (a list, a DataLoader) or runs=1"
                )
            self.kind = "iterable"
            self.iterable = inputs
            try:
                self.batches = len(inputs)  # type: ignore[arg-type]
            except TypeError:
                self.batches = None
        else:
            raise ERFTypeError(
                f"inputs must be 'random', a tensor or an iterable of tensors, got "
                f"{type(inputs).__name__}"
            )

    def check_memory(self) -> None:
        """`SizeLimitError` when one batch of random or tensor inputs is over the limit."""
        if self.kind == "random":
            assert self.input_shape is not None
            _check_batch_memory(
                self.batch_size,
                self.input_shape,
                self.dtype,
                f"a batch of {self.batch_size} random inputs of shape {self.input_shape}",
            )
        elif self.kind == "tensor":
            n = min(self.batch_size, int(self.tensor.shape[0]))
            sample = tuple(int(s) for s in self.tensor.shape[1:])
            _check_batch_memory(n, sample, self.dtype, f"a batch of {n} inputs of shape {sample}")

    def run(self) -> Iterator[torch.Tensor]:
        if self.kind == "random":
            assert self.input_shape is not None
            yield torch.randn(
                (self.batch_size, *self.input_shape), generator=self.gen, dtype=self.dtype
            )
        elif self.kind == "tensor":
            n, i = int(self.tensor.shape[0]), 0
            while i < n:
                b = 1 if self.auto and not self.sized else self.batch_size
                yield self.tensor[i : i + b]
                i += b
        else:
            try:
                iterator = iter(self.iterable)
            except Exception as e:
                raise wrap_exception(e, f"iterating over inputs failed: {one_line(e)}") from e
            i = 0
            while True:
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                except ERFError:
                    raise
                except Exception as e:
                    raise wrap_exception(
                        e, f"the inputs iterable raised at batch {i}: {one_line(e)}"
                    ) from e
                x = item[0] if isinstance(item, (tuple, list)) and item else item
                batch = _as_batch(x, self.input_shape, f"input batch {i}")
                sample = tuple(int(s) for s in batch.shape[1:])
                _check_batch_memory(
                    int(batch.shape[0]),
                    sample,
                    self.dtype,
                    f"input batch {i} of shape {tuple(batch.shape)}",
                    "use smaller batches or raise the limit (erftheory.set_memory_limit)",
                )
                yield batch
                i += 1


# --------------------------------------------------------------------------- geometry
def _origin(
    network: Network | None,
    centre: tuple[int, ...],
    in_spatial: tuple[int, ...],
    out_spatial: tuple[int, ...],
) -> tuple[int, ...]:
    if network is not None:
        if network.ndim != len(in_spatial):
            raise ERFValueError(
                f"the network is {network.ndim}-D but the inputs have {len(in_spatial)} "
                f"spatial axes {in_spatial}"
            )
        rf = network.receptive_field
        axes = zip(per_axis(rf.size), per_axis(rf.jump), per_axis(rf.offset), strict=True)
        return tuple(o + j * c + (s - 1) // 2 for (s, j, o), c in zip(axes, centre, strict=True))
    out = []
    for c, n_in, n_out in zip(centre, in_spatial, out_spatial, strict=False):
        est = round((c + 0.5) * n_in / n_out - 0.5)
        out.append(min(max(int(est), 0), n_in - 1))
    return tuple(out)


def _centre(output_index: Any, out_spatial: tuple[int, ...]) -> tuple[int, ...]:
    if output_index is None:
        return tuple((n - 1) // 2 for n in out_spatial)
    if isinstance(output_index, numbers.Integral):
        idx: tuple[Any, ...] = (output_index,)
    elif isinstance(output_index, (tuple, list, torch.Size)):
        idx = tuple(output_index)
    else:
        idx = ()
    if len(idx) != len(out_spatial) or not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= int(i) < n
        for i, n in zip(idx, out_spatial, strict=False)
    ):
        raise ERFValueError(
            f"output_index {output_index!r} is not an index into the output map of spatial "
            f"shape {out_spatial}"
        )
    return tuple(int(i) for i in idx)


# --------------------------------------------------------------------------- main
def empirical_erf(
    model: nn.Module | ModelFactory,
    input_shape: Sequence[int] | None = None,
    *,
    statistic: Statistic = "mean_square",
    inputs: Any = "random",
    runs: int = 1,
    batch_size: int | Literal["auto"] | None = None,
    device: str | torch.device = "cpu",
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float64,
    output_index: int | Sequence[int] | None = None,
    channel_reduce: ChannelReduce = "sum",
    network: Network | None = None,
    progress: bool | None = None,
    channels_last: bool | None = None,
    fuse_batchnorm: bool = True,
    trace: bool = True,
    output_layout: OutputLayout | None = None,
    prefix_tokens: int | None = None,
    token_grid: Sequence[int] | None = None,
) -> EmpiricalERF:
    r"""Measure the ERF of a torch model by back-propagating from its centre output unit.

    For every sample the output gradient is 1 at the centre unit $o$ of every output
    channel and 0 elsewhere (Section 3); the input gradient $g$ is reduced over input
    channels and turned into a statistic (see the module documentation), and the
    per-pixel mean over samples is the ERF:

    $$\mathrm{ERF}(x) = \frac1N \sum_{k=1}^N \phi\Big(\sum_c
    \frac{\partial \sum_{c'} y^{(k)}_{c'}(o)}{\partial x^{(k)}_c(x)}\Big).$$

    One backward pass serves a whole batch. Samples stay independent only if no layer
    couples a batch, so the model runs in ``eval()`` mode and every module's mode is
    restored afterwards; batch normalisation found in training mode triggers a
    ``UserWarning`` (it is measured with its running statistics).

    Args:
        model: an ``nn.Module`` (one network), or a factory
            ``factory(run_index, generator) -> nn.Module`` called once per run to
            average over independently initialised networks: it should draw its
            weights from ``generator`` (a CPU ``torch.Generator`` seeded with ``seed``,
            also used for the random inputs), e.g.
            ``lambda i, g: to_torch(net, weights="random", generator=g)``. With a
            factory the sampling unit is the *network*: the samples of one run are
            averaged into one map first, so ``count`` counts networks and ``stderr`` is
            correct although inputs through one network are not independent.
        input_shape: ``(channels, *spatial)`` of one sample; needed for
            ``inputs="random"``, optional otherwise (it then allows unbatched tensors).
        statistic: $\phi$: ``"mean"`` ($g$), ``"mean_square"`` ($g^2$, the paper's
            quantity for random weights), ``"mean_abs"`` ($|g|$) or ``"relu"``
            ($\max(g, 0)$, the large-kernel papers' convention).
        inputs: ``"random"`` (i.i.d. standard normal, drawn on the CPU from the seeded
            generator and moved to ``device``, so every device sees the same inputs),
            a tensor ``(N, C, *spatial)`` (or ``(C, *spatial)`` with ``input_shape``),
            or an iterable (a list, a ``DataLoader``) of tensors or of ``(x, y, ...)``
            tuples whose first element is the input batch, or a folder of images (a
            path): `erftheory.torch.images.image_batches` with the model's own
            preprocessing (``transform="auto"``: timm's eval transform for a timm
            model, else the torchvision / standard ImageNet one) in batches of
            ``batch_size`` (default 16).
        runs: passes over the inputs: a fresh random batch per run with
            ``inputs="random"``, another pass over the tensor or iterable otherwise
            (useful with a factory: a new network per run; with one model, extra passes
            over fixed inputs repeat identical samples, which inflates ``count`` and
            understates ``stderr``).
        batch_size: samples per backward pass: the random batch of each run (default
            32 with one model, 1 with a factory), or the chunk size of an input tensor
            (default ``"auto"``: the first sample runs alone while the bytes autograd
            saves for it are counted, and the later batches get as many samples as fit
            in half of the memory limit and of the device's free memory, at most
            `AUTO_BATCH_GPU` on a GPU and, on the CPU, `AUTO_BATCH_CPU` and about
            `AUTO_BATCH_BYTES_CPU` of activations; a batch that still runs out of
            memory is halved and retried; see `suggest_batch_size`).
            Batches of an iterable are used as they come.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``. A model
            whose parameters or buffers are on another device or in another floating
            dtype is measured as a deep copy moved there (the model itself is not
            changed); a factory's models are moved in place.
        seed: an int in ``0 .. 2**64 - 1`` that seeds the CPU generator of random inputs
            and of factory weights, or that CPU ``torch.Generator`` itself (advanced by
            the call, so consecutive calls sharing it draw new numbers). See
            *Reproducibility* below.
        dtype: the floating dtype of the inputs (and of the model copy, see
            ``device``). Sums are always accumulated in float64.
        output_index: the output unit to propagate from (an int or one index per
            output axis); by default the centre rule ``(n_out - 1) // 2`` per axis (the
            lower middle unit for an even size), as `erftheory.Network.centre_output`.
        channel_reduce: ``"sum"`` (statistic of the channel-summed gradient) or
            ``"sum_after"`` (statistic per input channel, then summed).
        network: the `erftheory.Network` the model implements, for the exact
            ``origin`` (taken from ``model.network`` when the model has one, as
            `erftheory.torch.build.to_torch` models do). Without it, and with
            ``trace=True``, `erftheory.torch.trace.from_torch` is tried on the model
            (quietly; a factory's first network) and its network is used when it
            predicts the measured output size (``origin_source="from_torch"``). Where
            that refuses, ``origin`` is an estimate (``origin_source="estimate"``): the
            input pixel nearest to where the centre unit falls when the output grid is
            stretched over the input, ``round((c + 1/2) n_in / n_out - 1/2)``, exact for
            ``'same'`` padding and odd kernels but half a jump off for strided networks
            (112 instead of 96 for a ResNet-18 at 224²).
        progress: show a ``tqdm`` bar (True), never (False), or only when there are at
            least `PROGRESS_MIN_BATCHES` backward passes and stderr is a terminal
            (None).
        channels_last: run 4-D inputs in ``torch.channels_last`` memory format
            (convolutions then keep it); default: for float32, float16 and bfloat16,
            where oneDNN and cuDNN are faster in it. A model that raises on such inputs
            is run on contiguous ones instead.
        fuse_batchnorm: fold every batch norm that follows a convolution into the
            convolution's weights (`torch.fx.experimental.optimization.fuse` on a copy;
            the measurement runs in ``eval()`` mode, where this is exact up to
            rounding) for one model (not a factory's). Models that ``torch.fx`` cannot
            trace, or with hooks, run as they are; so does a fused copy that raises.
        trace: try `erftheory.torch.trace.from_torch` for the exact origin (see
            ``network``).
        output_layout: how the output is laid out: ``"channels_first"``
            ``(N, C', *spatial)``, ``"channels_last"`` ``(N, *spatial, C')`` (timm's
            Swin and other NHWC outputs) or ``"tokens"`` ``(N, T, C')``, a vision
            transformer's token sequence. Default: tokens for a 3-D output of 4-D
            inputs, channels first otherwise.
        prefix_tokens: the tokens before the patch grid (class, distillation and
            register tokens) of a token output; default: the model's
            ``num_prefix_tokens`` (timm), else the tokens beyond the grid.
        token_grid: the patch grid of a token output, one size per spatial axis;
            default: the input size over the ``patch_size`` of the model's
            ``patch_embed`` (timm), else the smallest number of prefix tokens (up to 16)
            that leaves a grid of the input's aspect ratio.

    Returns:
        An `EmpiricalERF` with ``map``, ``stderr``, ``count``, ``nonfinite``,
        ``centre`` and ``origin``. Samples whose gradient held a NaN or an infinity are
        counted in ``nonfinite`` and left out.

    Accepted shapes: inputs are ``(N, C, L)`` or ``(N, C, H, W)`` (``input_shape``
    ``(C, L)`` or ``(C, H, W)``; more spatial axes work the same way), and the output
    must be a map with the same spatial axes, ``(N, C', L')`` or ``(N, C', H', W')``
    (or ``(N, H', W', C')`` with ``output_layout="channels_last"``), or a token
    sequence ``(N, T, C')``.

    Vision transformers: for a token output the prefix tokens (class, distillation,
    registers) are skipped and the remaining $T - P$ tokens are read as the patch grid
    in row-major order; the output unit is the grid's centre token by the usual rule,
    ``(g - 1) // 2`` per axis (for an even grid the upper-left of the four central
    tokens, the rule of OpenERF and of the BMVC 2023 ERF code), and all its
    channels are seeded. With a plain patch embedding (``patch_embed.proj`` a
    convolution with kernel = stride = patch size $p$, no padding) the origin is the
    middle pixel of that token's patch, $p c + (p - 1) // 2$
    (``origin_source="patch_embed"``).
    A model without a spatial output is refused: an output with fewer axes (a
    classifier's logits), or one that comes from ``nn.Linear`` (a matrix product over
    the last axis, as for ``nn.Linear`` applied to ``(N, C, L)``).

    Memory: before a batch is drawn, its own tensors (the inputs and their gradient in
    ``dtype``, the float64 statistic; a lower bound, activations come on top) are
    checked against `erftheory.get_memory_limit`, and an allocator failure inside the
    model ends in a one-line `ERFValueError` that names the batch shape and suggests a
    smaller ``batch_size``.

    Reproducibility: on the CPU the same ``seed`` (or generators in the same state),
    model, inputs and arguments give the same result bit for bit. The random inputs
    and a factory's weights come from the seeded CPU generator and are moved to
    ``device``, so every device sees the same numbers. torch's *global* generator is
    never used by erftheory; while the model runs it is forked and seeded from
    ``seed`` (and restored afterwards), so a model that draws from it itself (noise
    layers, ``torch.rand`` in ``forward``) is reproducible too. On a GPU the inputs
    are the same, but the model's own draws come from the CUDA generator, whose
    streams differ from the CPU's, and some CUDA kernels (atomic-add backward passes
    of pooling, interpolation, scatter; cuDNN algorithm choice) are not
    deterministic, so results agree with the CPU only up to rounding unless
    ``torch.use_deterministic_algorithms(True)`` is set.

    Raises:
        ERFValueError: an unknown statistic or channel reduction; ``runs``,
            ``batch_size`` or an input size not positive; an ``input_shape`` without a
            spatial axis; a model that raises on the inputs (the one-line message
            names the model type, the input shape and the original exception, which
            is chained as ``__cause__``); an output that is not a spatial map; an
            ``output_index`` outside it; a device that is unknown or unavailable; no
            samples; a batch that runs out of memory.
        SizeLimitError: one batch would need more than the memory limit (an
            `ERFValueError`; the message gives the largest ``batch_size`` that fits).
        ERFTypeError: ``model`` is neither a module nor a callable; a factory returns
            something else; inputs, ``seed`` or ``dtype`` of the wrong type; a model
            that raises a ``TypeError``; an output that is not a floating tensor.

    Example:
        >>> import torch
        >>> from erftheory import Network
        >>> from erftheory.layers import Conv
        >>> from erftheory.torch.build import to_torch
        >>> net = Network([Conv(3), Conv(3)])
        >>> erf = empirical_erf(to_torch(net), (1, 9), statistic="mean", batch_size=4)
        >>> erf.map
        array([0., 0., 1., 2., 3., 2., 1., 0., 0.])
        >>> erf.count, erf.centre, erf.origin, float(erf.stderr.max())
        (4, (4,), (4,), 0.0)
    """
    # ---- arguments
    if statistic not in STATISTICS:
        raise ERFValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if channel_reduce not in CHANNEL_REDUCTIONS:
        raise ERFValueError(
            f"channel_reduce must be one of {CHANNEL_REDUCTIONS}, got {channel_reduce!r}"
        )
    runs = _positive_int(runs, "runs")
    shape = None if input_shape is None else _check_shape(input_shape)
    if isinstance(seed, torch.Generator):
        gen = as_generator(seed, "seed", cpu=True)
    else:
        gen = torch.Generator().manual_seed(check_seed(seed))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ERFTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    dev = _device(device)
    if isinstance(model, nn.Module):
        factory: ModelFactory | None = None
    elif callable(model):
        factory = model
    else:
        raise ERFTypeError(
            f"model must be an nn.Module or a factory(run_index, generator) -> nn.Module, got "
            f"{type(model).__name__}"
        )
    if network is not None and not isinstance(network, Network):
        raise ERFTypeError(f"network must be an erftheory Network, got {type(network).__name__}")
    for flag, name in ((fuse_batchnorm, "fuse_batchnorm"), (trace, "trace")):
        if not isinstance(flag, bool):
            raise ERFTypeError(f"{name} must be True or False, got {flag!r}")
    if channels_last is not None and not isinstance(channels_last, bool):
        raise ERFTypeError(f"channels_last must be True, False or None, got {channels_last!r}")
    if output_layout is not None and output_layout not in OUTPUT_LAYOUTS:
        raise ERFValueError(
            f"output_layout must be one of {OUTPUT_LAYOUTS} or None, got {output_layout!r}"
        )
    tokens = TokenOptions.parse(prefix_tokens, token_grid)
    if isinstance(inputs, os.PathLike) or (isinstance(inputs, str) and inputs != "random"):
        inputs, batch_size = _folder(inputs, model, shape, batch_size)
    auto = False
    if batch_size is None:
        if isinstance(inputs, torch.Tensor):
            auto = True
            chunk = 1
        else:
            chunk = 1 if factory is not None else _DEFAULT_BATCH
    elif batch_size == "auto":
        if not isinstance(inputs, torch.Tensor):
            raise ERFValueError(
                "batch_size='auto' applies to tensor inputs; random inputs draw batch_size "
                "samples per run, an iterable's batches are used as they come"
            )
        auto = True
        chunk = 1
    else:
        chunk = _positive_int(batch_size, "batch_size")
        if not isinstance(inputs, (str, torch.Tensor)):
            raise ERFValueError(
                "batch_size applies to random and tensor inputs; an iterable's batches are "
                "used as they come"
            )
    global_seed = derived_seed(gen, b"erftheory.empirical_erf: torch's global generator")
    source = _Source(inputs, shape, chunk, dtype, gen, runs)
    source.auto = auto
    if auto:
        source.batches = None
    source.check_memory()

    # ---- progress bar
    total = None if source.batches is None else runs * source.batches
    show = (
        bool(progress)
        if progress is not None
        else (total is not None and total >= PROGRESS_MIN_BATCHES and sys.stderr.isatty())
    )
    bar: Any = None
    if show:
        try:
            from tqdm import tqdm
        except ImportError as e:  # pragma: no cover - tqdm is installed with torch extras
            if progress:
                raise ERFValueError("progress=True needs the tqdm package") from e
        else:
            bar = tqdm(total=total, desc="empirical ERF", unit="batch", leave=False)

    meas = _Measurement(
        source,
        dev,
        dtype,
        statistic,
        channel_reduce,
        output_index,
        network,
        channels_last=channels_last,
        fuse_batchnorm=fuse_batchnorm,
        trace=trace,
        layout=output_layout,
        tokens=tokens,
        runs=runs,
    )
    try:
        with seeded_global_rng(global_seed, dev):
            if factory is None:
                assert isinstance(model, nn.Module)
                meas.fixed(model, runs, bar)
            else:
                meas.factory(factory, runs, gen, bar)
    finally:
        if bar is not None:
            bar.close()
    return meas.result()


def _folder(
    directory: Any, model: Any, shape: tuple[int, ...] | None, batch_size: Any
) -> tuple[Any, None]:
    """``inputs`` naming a folder: its images preprocessed for the model, as batches."""
    if not os.path.isdir(directory):
        raise ERFValueError(
            f"inputs must be 'random', a tensor, an iterable or a folder of images; "
            f"{str(directory)!r} is not a folder"
        )
    from .images import image_batches

    size = 16 if batch_size in (None, "auto") else _positive_int(batch_size, "batch_size")
    owner = model if isinstance(model, nn.Module) else None
    return image_batches(directory, owner, "auto", batch_size=size, input_shape=shape), None


def suggest_batch_size(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    fuse_batchnorm: bool = True,
) -> int:
    r"""The batch size ``batch_size="auto"`` picks for ``model`` on inputs of one shape.

    ``model`` must be on ``device`` in ``dtype``. One sample is run forward (in
    ``eval()`` mode, gradients for the input only, batch norm folded as `empirical_erf`
    does with ``fuse_batchnorm``) while
    the bytes autograd saves for the backward pass are counted
    (`erftheory.torch._measure.record_saved_bytes`); a batch of $b$ samples needs about
    $b$ times that plus the input, its gradient and the float64 maps. $b$ is the
    largest size whose estimate fits in half of the smaller of the memory limit
    (`erftheory.get_memory_limit`) and the device's free memory, at most
    `AUTO_BATCH_GPU` on a GPU; on the CPU also at most `AUTO_BATCH_CPU` and about
    `AUTO_BATCH_BYTES_CPU` of saved activations per batch; at least 1.

    Example:
        >>> from torch import nn
        >>> suggest_batch_size(nn.Conv2d(1, 1, 3), (1, 8, 8), dtype=torch.float32)
        32
    """
    shape = _check_shape(input_shape)
    dev = _device(device)
    x = torch.zeros((1, *shape), dtype=dtype, device=dev)
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        run = (_fused(model) if fuse_batchnorm else None) or model
        with record_saved_bytes(run) as saved:
            y = centre_gradient(run, x)
        del y
    finally:
        for m, mode in modes:
            m.training = mode
    return _batch_for(saved.bytes, shape, dtype, dev)


AUTO_BATCH_CPU = 32
"""The largest batch ``batch_size="auto"`` picks on the CPU (larger ones gain little)."""
AUTO_BATCH_GPU = 512
"""The largest batch ``batch_size="auto"`` picks on a GPU."""
AUTO_BATCH_BYTES_CPU = {"fast": 96 * 1024**2, "slow": 32 * 1024**2}
"""On the CPU, the saved activations one automatic batch aims at: 96 MiB in float32 and
bfloat16 (oneDNN's convolutions run a batch at once; for a ResNet-18 at 224², 8 samples,
measured about 1.5 times faster per image than one), 32 MiB in other dtypes, whose CPU
convolutions loop over the samples and only lose cache with larger batches (one sample
of that ResNet-18 in float64). Small models still get up to `AUTO_BATCH_CPU`."""


def _free_memory(dev: torch.device) -> int | None:
    try:
        if dev.type == "cuda":
            return int(torch.cuda.mem_get_info(dev)[0])
        if dev.type == "cpu":
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError, RuntimeError):  # pragma: no cover
        return None
    return None


def _batch_for(saved: int, sample: Sequence[int], dtype: torch.dtype, dev: torch.device) -> int:
    numel = math.prod(int(s) for s in sample)
    spatial = math.prod(int(s) for s in sample[1:])
    per_sample = int(saved) + numel * 3 * _element_size(dtype) + 4 * 8 * spatial
    budget = get_memory_limit()
    free = _free_memory(dev)
    if free is not None:
        budget = min(budget, free)
    fit = (budget // 2) // max(per_sample, 1)
    if dev.type == "cpu":
        fast = dtype in (torch.float32, torch.bfloat16)
        aim = AUTO_BATCH_BYTES_CPU["fast" if fast else "slow"] // max(int(saved), 1)
        return int(max(1, min(AUTO_BATCH_CPU, fit, aim)))
    return int(max(1, min(AUTO_BATCH_GPU, fit)))


def _warn_batchnorm() -> None:
    warnings.warn(
        "the model has batch norm in train mode, which couples the samples of a batch; "
        "empirical_erf measures it in eval mode (running statistics) and restores the "
        "train mode afterwards",
        UserWarning,
        stacklevel=4,
    )


def _network_of(model: nn.Module) -> Network | None:
    net = getattr(model, "network", None)
    return net if isinstance(net, Network) else None


def _has_hooks(model: nn.Module) -> bool:
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules()
    )


def _fused(model: nn.Module) -> nn.Module | None:
    """A copy of an eval-mode ``model`` with every convolution + batch norm folded, or None.

    `torch.fx.experimental.optimization.fuse` traces the model (``torch.fx``) and folds
    each batch norm that follows a convolution (or a linear layer) into its weights, an
    exact identity in ``eval()`` mode up to rounding. Models without batch norm, with
    hooks (a traced copy would lose them) or that ``torch.fx`` cannot trace give None.
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None
    if _has_hooks(model):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.fx.experimental.optimization import fuse

            fused = fuse(model, inplace=False)
    except Exception:
        return None
    fused.eval()
    return fused


def _traced_network(model: Any, sample: tuple[int, ...]) -> Network | None:
    """`erftheory.torch.trace.from_torch` of ``model``, or None where it refuses."""
    if not isinstance(model, nn.Module):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from .trace import from_torch

            return from_torch(model, sample)
    except Exception:
        return None


class _Measurement:
    """The state of one `empirical_erf` call: options, geometry (from the first batch), sums."""

    def __init__(
        self,
        source: _Source,
        dev: torch.device,
        dtype: torch.dtype,
        statistic: str,
        channel_reduce: str,
        output_index: Any,
        network: Network | None,
        *,
        channels_last: bool | None = None,
        fuse_batchnorm: bool = True,
        trace: bool = True,
        layout: str | None = None,
        tokens: TokenOptions | None = None,
        runs: int = 1,
    ) -> None:
        self.source = source
        self.dev = dev
        self.dtype = dtype
        self.statistic = statistic
        self.channel_reduce = channel_reduce
        self.output_index = output_index
        self.network = network
        self.origin_source = "network" if network is not None else "estimate"
        self.channels_last = channels_last
        self.fuse_batchnorm = fuse_batchnorm
        self.trace = trace
        self.layout = layout
        self.tokens: Tokens | None = None
        self.token_opts = tokens if tokens is not None else TokenOptions(None, None)
        self.runs = runs
        self.acc: Accumulator | None = None
        self.centre: tuple[int, ...] = ()
        self.origin: tuple[int, ...] = ()
        self.sample_shape: tuple[int, ...] = ()
        self.out_spatial: tuple[int, ...] = ()
        self.shown: Any = None  # the user's model: messages, tracing, token attributes
        self.fused: nn.Module | None = None  # the batch-norm-folded copy that runs
        self.fallback: nn.Module | None = None  # the unfused model it stands for
        self.fused_broken = False
        self.use_cl: bool | None = None
        self._transformer: bool | None = None

    def looks_like_transformer(self) -> bool:
        """Whether the model has a timm-style ``patch_embed`` or ``num_prefix_tokens``."""
        if self._transformer is None:
            m = self.shown
            self._transformer = patch_embed(m) is not None or prefix_attr(m) is not None
        return self._transformer

    # ------------------------------------------------------------ drivers
    def _attach(self, model: nn.Module) -> None:
        if self.shown is None:
            self.shown = model
        if self.network is None:
            self.network = _network_of(model)
            if self.network is not None:
                self.origin_source = "network"

    def fixed(self, model: nn.Module, runs: int, bar: Any) -> None:
        """All runs through the user's model: eval mode (restored), or a moved copy."""
        if _has_train_batchnorm(model):
            _warn_batchnorm()
        self._attach(model)
        modes = [(m, m.training) for m in model.modules()]
        try:
            if not _on(model, self.dev, self.dtype):
                try:
                    work = copy.deepcopy(model).to(device=self.dev, dtype=self.dtype)
                except Exception as e:
                    if is_out_of_memory(e):
                        raise ERFValueError(
                            f"{describe_model(model)} could not be copied to {self.dev} in "
                            f"{self.dtype}: out of memory ({one_line(e)}); move it yourself "
                            f"(model.to(device, dtype)) or use a smaller model"
                        ) from e
                    raise ERFValueError(
                        f"{describe_model(model)} is not on {self.dev} in {self.dtype} and "
                        f"could not be copied there ({one_line(e)}); move it yourself "
                        f"(model.to(device, dtype))"
                    ) from e
            else:
                work = model
            work.eval()
            if self.fuse_batchnorm:
                fused = _fused(work)
                if fused is not None:
                    self.fallback = work
                    self.fused = work = fused
            for _ in range(runs):
                self.run(work, per_run=False, bar=bar)
        finally:
            for m, mode in modes:
                m.training = mode

    def factory(self, factory: ModelFactory, runs: int, gen: torch.Generator, bar: Any) -> None:
        """One new network per run; the run's samples are averaged into one unit."""
        warned = False
        name = getattr(factory, "__qualname__", type(factory).__qualname__)
        for index in range(runs):
            try:
                built = factory(index, gen)
            except ERFError:
                raise
            except Exception as e:
                if is_out_of_memory(e):
                    raise ERFValueError(
                        f"the model factory {name} ran out of memory building the network of "
                        f"run {index} ({one_line(e)}); build a smaller network"
                    ) from e
                raise wrap_exception(
                    e, f"the model factory {name} raised at run {index}: {one_line(e)}"
                ) from e
            if not isinstance(built, nn.Module):
                raise ERFTypeError(
                    f"the model factory returned {type(built).__name__}, not an nn.Module"
                )
            if not warned and _has_train_batchnorm(built):
                _warn_batchnorm()
                warned = True
            self._attach(built)
            try:
                moved = built.to(device=self.dev, dtype=self.dtype)
            except Exception as e:
                raise ERFValueError(
                    f"the network of run {index} ({type(built).__qualname__}) could not be "
                    f"moved to {self.dev} in {self.dtype}: {one_line(e)}"
                ) from e
            self.run(moved, per_run=True, bar=bar)

    def run(self, model: nn.Module, *, per_run: bool, bar: Any) -> None:
        model.eval()
        run_sum: torch.Tensor | None = None
        run_n: torch.Tensor | None = None
        run_bad: torch.Tensor | None = None
        for x_cpu in self.source.run():
            q, finite = self.batch(model, x_cpu)
            acc = self.acc
            assert acc is not None
            if per_run:
                view = (int(q.shape[0]),) + (1,) * (q.dim() - 1)
                part = torch.where(finite.reshape(view), q, 0.0).sum(0)
                good = finite.sum()
                bad = finite.numel() - good
                run_sum = part if run_sum is None else run_sum + part
                run_n = good if run_n is None else run_n + good
                run_bad = bad if run_bad is None else run_bad + bad
            else:
                acc.add(q, finite)
            if bar is not None:
                bar.update(1)
        if per_run and self.acc is not None and run_n is not None:
            assert run_sum is not None and run_bad is not None
            self.acc.bad += run_bad
            n = int(run_n)  # one host sync per run
            if n:
                mean = (run_sum / n).unsqueeze(0)
                self.acc.add(mean, torch.ones(1, dtype=torch.bool, device=mean.device))

    def result(self) -> EmpiricalERF:
        if self.acc is None:
            raise ERFValueError("the inputs yielded no samples")
        what = What(
            self.statistic, self.channel_reduce, self.centre, self.origin, self.origin_source
        )
        return self.acc.result(what)

    # ------------------------------------------------------------ one batch
    def _geometry(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fix the centre, origin and accumulator from the first batch; check later ones."""
        sample = tuple(int(s) for s in x.shape[1:])
        out_spatial = tuple(int(s) for s in y.shape[2:])
        if self.acc is None:
            if 0 in out_spatial:
                raise ERFValueError(
                    f"inputs of shape {sample} give an empty output map {tuple(y.shape)}; "
                    f"use a larger input"
                )
            self.centre = _centre(self.output_index, out_spatial)
            self.sample_shape = sample
            self.out_spatial = out_spatial
            in_spatial = sample[1:]
            if self.tokens is not None:
                if self.tokens.patch is not None:
                    self.origin = tuple(
                        p * c + (p - 1) // 2
                        for p, c in zip(self.tokens.patch, self.centre, strict=True)
                    )
                    self.origin_source = "patch_embed"
                else:
                    self.origin = _origin(None, self.centre, in_spatial, out_spatial)
            else:
                if self.network is None and self.trace:
                    net = _traced_network(self.shown, sample)
                    if (
                        net is not None
                        and net.ndim == len(in_spatial)
                        and per_axis(
                            net.output_size(in_spatial if len(in_spatial) > 1 else in_spatial[0])
                        )
                        == out_spatial
                    ):
                        self.network = net
                        self.origin_source = "from_torch"
                self.origin = _origin(self.network, self.centre, in_spatial, out_spatial)
            self.acc = Accumulator(in_spatial, x.device, self.origin)
        elif sample != self.sample_shape:
            raise ERFValueError(
                f"an input batch has sample shape {sample}, but the first had "
                f"{self.sample_shape}; all samples must have one shape"
            )
        elif out_spatial != self.out_spatial:
            raise ERFValueError(
                f"the output map changed shape from {self.out_spatial} to {out_spatial}"
            )

    def batch(self, model: nn.Module, x_cpu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`gradient` of one batch, with allocator failures turned into one-line errors.

        With ``batch_size="auto"`` the first batch (one sample) also sizes the later
        ones, and a batch that runs out of memory is split in two and retried.
        """
        shape = tuple(x_cpu.shape)
        src = self.source
        probe = src.auto and not src.sized
        if src.auto and src.sized and shape[0] > 1:
            try:
                return self._batch(model, x_cpu)
            except ERFValueError as e:
                if not isinstance(e.__cause__, BaseException) or not is_out_of_memory(e.__cause__):
                    raise
            src.batch_size = max(1, shape[0] // 2)
            half = (shape[0] + 1) // 2
            a = self.batch(model, x_cpu[:half])
            b = self.batch(model, x_cpu[half:])
            return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])
        if not probe:
            return self._batch(model, x_cpu)
        with record_saved_bytes(model) as saved:
            out = self._batch(model, x_cpu)
        per = saved.bytes // max(1, shape[0])
        src.batch_size = _batch_for(per, shape[1:], self.dtype, self.dev)
        src.sized = True
        return out

    def _batch(self, model: nn.Module, x_cpu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = tuple(x_cpu.shape)

        def message(error: str) -> str:
            nbytes = x_cpu.numel() * _element_size(self.dtype)
            return (
                f"{describe_model(self.shown)} ran out of memory on {self.dev} with a batch of "
                f"shape {shape} ({format_bytes(nbytes)} of inputs in {self.dtype}): "
                f"{error}; use a smaller batch_size (now {shape[0]}) or a smaller input"
            )

        with out_of_memory_as(message):
            maps = self.gradient(model, x_cpu.to(device=self.dev, dtype=self.dtype))
        return maps

    def _memory_format(self, x: torch.Tensor) -> torch.memory_format | None:
        if self.use_cl is None:
            want = self.channels_last
            if want is None:
                want = x.dim() == 4 and self.dtype in (torch.float32, torch.float16, torch.bfloat16)
            self.use_cl = bool(want) and x.dim() == 4
        return torch.channels_last if self.use_cl else None

    def gradient(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample statistic maps ``(B, *spatial)`` (float64) and a finiteness mask.

        A fused copy or channels-last inputs that make the model raise fall back, once
        and for the rest of the call, to the unfused model and contiguous inputs, so
        that an error is the model's own.
        """
        shape = tuple(x.shape)
        where = (
            f"on inputs of shape {shape} (batch {shape[0]}, sample shape {shape[1:]}, "
            f"channels {shape[1]})"
        )
        shown = self.shown if self.shown is not None else model

        def centre(x: torch.Tensor, y: torch.Tensor) -> tuple[int, ...]:
            _check_output(shown, x, y)
            self._geometry(x, y)
            return self.centre

        if self.fused is not None and model is self.fused and self.fused_broken:
            assert self.fallback is not None
            model = self.fallback
        fmt = self._memory_format(x)
        if fmt is not None or (self.fused is not None and model is self.fused):
            try:
                g = centre_gradient(
                    View(model, self.layout, self), x, centre, memory_format=fmt, shown=model
                )
                return sample_maps(g, self.statistic, self.channel_reduce)
            except ERFError:
                raise
            except Exception as e:
                if is_out_of_memory(e):
                    raise
            # the plain route below raises the model's own error, if it has one
            self.use_cl = False
            fmt = None
            if self.fused is not None and model is self.fused:
                self.fused_broken = True
                assert self.fallback is not None
                model = self.fallback
        g = centre_gradient(
            View(model, self.layout, self),
            x,
            centre,
            memory_format=fmt,
            where=where,
            shown=shown if model is self.fused else model,
        )
        return sample_maps(g, self.statistic, self.channel_reduce)
