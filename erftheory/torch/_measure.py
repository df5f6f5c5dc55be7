r"""The one measurement of the torch layer: a unit gradient at the output centre, back-propagated.

Section 3 of the paper: "we place a gradient signal of 1 at the center of the output plane
and 0 everywhere else, and then back-propagate this gradient through the network to get
input gradients." `centre_gradient` does that for a whole batch in one backward pass;
`erftheory.torch.empirical.empirical_erf`, `erftheory.torch.batched.batched_input_gradients`
and the experiments of `erftheory.torch.reproduce` all measure through it. `sample_maps`
turns the gradients into one statistic map per sample (the per-sample quantity
$q_k$ of `erftheory.torch.empirical`), and `per_axis` gives a per-axis value (an int in
1-D) as a tuple, so that everything inside works on tuples.

Example:
    >>> import torch
    >>> from erftheory import Network
    >>> from erftheory.layers import Conv
    >>> from erftheory.torch.build import to_torch
    >>> model = to_torch(Network([Conv([1, 2, 3])] * 2))
    >>> g = centre_gradient(model, torch.zeros(2, 1, 5, dtype=torch.float64))
    >>> g.shape, g[1, 0].tolist()   # (1 + 2z + 3z²)² for every sample
    (torch.Size([2, 1, 5]), [1.0, 4.0, 10.0, 12.0, 9.0])
    >>> sample_maps(g, "mean_square", "sum")[0][0].tolist()
    [1.0, 16.0, 100.0, 144.0, 81.0]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ._guard import describe_model, is_out_of_memory, one_line, wrap_exception

__all__ = [
    "CentreRule",
    "SavedBytes",
    "centre_gradient",
    "frozen_parameters",
    "per_axis",
    "record_saved_bytes",
    "sample_maps",
]

CentreRule = Callable[[torch.Tensor, torch.Tensor], Sequence[int]]
"""``rule(x, y) -> unit``: the output unit, chosen once the output ``y`` of ``x`` is known."""


def per_axis(value: Any) -> tuple[int, ...]:
    """A per-axis value (an int for one axis, or a sequence) as a tuple of ints.

    Example:
        >>> per_axis(7), per_axis((3, 4)), per_axis(torch.Size([5]))
        ((7,), (3, 4), (5,))
    """
    if isinstance(value, (tuple, list, torch.Size)):
        return tuple(int(v) for v in value)
    return (int(value),)


@contextlib.contextmanager
def frozen_parameters(model: Any) -> Iterator[None]:
    """Parameters of ``model`` (an ``nn.Module``) stop requiring gradients, then are restored.

    Only the input gradient is wanted, so autograd needs no weight-gradient edges: the
    graph is smaller and no ``AccumulateGrad`` node exists. Anything that is not a module
    is left alone.

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> with frozen_parameters(lin):
        ...     print(lin.weight.requires_grad)
        False
        >>> lin.weight.requires_grad
        True
    """
    frozen: list[torch.Tensor] = []
    if isinstance(model, nn.Module):
        seen: set[int] = set()
        for p in model.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                frozen.append(p)
    try:
        for t in frozen:
            t.requires_grad_(False)
        yield
    finally:
        for t in frozen:
            t.requires_grad_(True)


class SavedBytes:
    """What `record_saved_bytes` counted: bytes of the distinct storages saved for backward."""

    def __init__(self, skip: set[tuple[str, int]] | None = None) -> None:
        self.bytes = 0
        self._seen: set[tuple[str, int]] = set(skip or ())

    def add(self, t: torch.Tensor) -> None:
        try:
            key = _storage_key(t)
            size = int(t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # pragma: no cover - sparse, meta
            key, size = (str(t.device), id(t)), int(t.numel() * t.element_size())
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += size


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    return (str(t.device), int(t.untyped_storage().data_ptr()))


@contextlib.contextmanager
def record_saved_bytes(model: Any = None) -> Iterator[SavedBytes]:
    """Count the bytes autograd saves for the backward pass of what runs inside.

    Every tensor a forward pass saves for its backward goes through a pack hook; their
    distinct storages are what one batch keeps alive between the forward and the
    backward pass (on any device), the bulk of its memory. The parameters and buffers
    of ``model`` (an ``nn.Module``), which do not grow with the batch, are not counted.

    Example:
        >>> x = torch.ones(1000, requires_grad=True)
        >>> with record_saved_bytes() as saved:
        ...     y = (x * x).sum()
        >>> saved.bytes   # x, saved once for both factors of the product
        4000
        >>> conv = nn.Conv1d(1, 1, 3)
        >>> with record_saved_bytes(conv) as saved:
        ...     y = conv(x.reshape(1, 1, 1000))
        >>> saved.bytes   # the input, not the weight
        4000
    """
    skip: set[tuple[str, int]] = set()
    if isinstance(model, nn.Module):
        for t in [*model.parameters(), *model.buffers()]:
            try:
                skip.add(_storage_key(t))
            except (RuntimeError, NotImplementedError):  # pragma: no cover - meta, sparse
                pass
    saved = SavedBytes(skip)

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.add(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield saved


def centre_gradient(
    model: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    centre: Sequence[int] | CentreRule | None = None,
    *,
    channels: slice = slice(None),
    memory_format: torch.memory_format | None = None,
    where: str | None = None,
    shown: Any = None,
) -> torch.Tensor:
    r"""Every sample's input gradient of its centre output unit, in one backward pass.

    The output gradient is 1 at the unit $o$ = ``centre`` of the output channels
    ``channels`` of every sample and 0 elsewhere (Section 3), so for a model that
    couples no samples of the batch, row $k$ of the result is

    $$g_k(c, x) = \sum_{c'} \frac{\partial y^{(k)}_{c'}(o)}{\partial x^{(k)}_c(x)}.$$

    Gradients are enabled while the model runs (also inside ``torch.no_grad()``); the
    model's parameters get no ``.grad``: while it runs they do not require gradients at
    all (`frozen_parameters`, restored afterwards), so autograd builds no weight-gradient
    edges.

    Args:
        model: the model (any callable from a tensor to a tensor).
        x: the input batch ``(batch, channels, *spatial)``; it is detached (the caller's
            tensor is not changed) and differentiated.
        centre: the output unit, one index per spatial axis; a `CentreRule`
            ``rule(x, y)`` called after the forward pass (it may check the output and
            raise); None: ``(n - 1) // 2`` per spatial axis of the output (the rule of
            `erftheory.Network.centre_output`).
        channels: the output channels that are seeded: all (default), or e.g.
            ``slice(None, None, k)``, the first of every group of ``k``.
        memory_format: the layout ``x`` is made contiguous in first (None: as it is).
        where: when given, an exception raised by the model or by its backward pass
            (other than an allocator failure, which is re-raised as it is for the
            caller's memory message) becomes an `erftheory.ERFTypeError` (for a
            ``TypeError``) or `erftheory.ERFValueError` that names the model and
            ``where``, with the original chained.
        shown: the object whose type names the model in those messages, and whose
            parameters are frozen (default: ``model``; for a wrapper of a module).

    Returns:
        The gradient, detached, of the shape of ``x``: zeros where the selected
        outputs do not depend on the input.
    """
    shown = model if shown is None else shown
    with torch.enable_grad(), frozen_parameters(shown), frozen_parameters(model):
        x = x.detach()
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        x.requires_grad_(True)
        try:
            y = model(x)
        except Exception as e:
            if where is None or is_out_of_memory(e):
                raise
            raise wrap_exception(e, f"{describe_model(shown)} raised {where}: {one_line(e)}") from e
        if centre is None:
            unit: tuple[int, ...] = tuple((int(n) - 1) // 2 for n in y.shape[2:])
        elif callable(centre):
            unit = tuple(centre(x, y))
        else:
            unit = tuple(centre)
        selected = y[(slice(None), channels, *unit)]
        g: torch.Tensor | None = None
        if selected.requires_grad:
            try:
                (g,) = torch.autograd.grad(selected.sum(), x, allow_unused=True)
            except Exception as e:
                if where is None or is_out_of_memory(e):
                    raise
                raise wrap_exception(
                    e, f"the backward pass of {describe_model(shown)} failed {where}: {one_line(e)}"
                ) from e
    return torch.zeros_like(x) if g is None else g.detach()


def sample_maps(
    g: torch.Tensor, statistic: str, channel_reduce: str
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample statistic maps of input gradients ``(batch, channels, *spatial)``.

    ``channel_reduce="sum"``: $q_k = \phi(\sum_c g_k(c, \cdot))$; ``"sum_after"``:
    $q_k = \sum_c \phi(g_k(c, \cdot))$, with $\phi$ the statistic (``"mean"``: $g$,
    ``"mean_square"``: $g^2$, ``"mean_abs"``: $|g|$, ``"relu"``: $\max(g, 0)$),
    computed in the dtype of ``g``.

    Returns:
        ``(q, finite)``: the maps ``(batch, *spatial)`` in float64, and per sample
        whether its gradient and its map hold only finite numbers.
    """
    if channel_reduce == "sum":
        q = _statistic(g.sum(1), statistic)
    else:
        q = _statistic(g, statistic).sum(1)
    q = q.to(torch.float64)
    n = int(q.shape[0])
    finite = torch.isfinite(g).reshape(n, -1).all(1) & torch.isfinite(q).reshape(n, -1).all(1)
    return q, finite


def _statistic(g: torch.Tensor, statistic: str) -> torch.Tensor:
    if statistic == "mean":
        return g
    if statistic == "mean_square":
        return g * g
    if statistic == "mean_abs":
        return g.abs()
    return g.clamp_min(0)
