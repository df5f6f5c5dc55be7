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
"""

from __future__ import annotations

import copy
import math
import numbers
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
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
from ._measure import centre_gradient, per_axis, sample_maps

__all__ = [
    "CHANNEL_REDUCTIONS",
    "STATISTICS",
    "ChannelReduce",
    "EmpiricalERF",
    "Statistic",
    "empirical_erf",
]

Statistic = Literal["mean", "mean_square", "mean_abs", "relu"]
STATISTICS: tuple[str, ...] = ("mean", "mean_square", "mean_abs", "relu")
ChannelReduce = Literal["sum", "sum_after"]
CHANNEL_REDUCTIONS: tuple[str, ...] = ("sum", "sum_after")

PROGRESS_MIN_BATCHES = 200
"""With ``progress=None`` a bar is shown from this many backward passes on (and a tty)."""

_DEFAULT_BATCH = 32  # random inputs through one fixed model
_DEFAULT_CHUNK = 64  # a given tensor is cut into batches of this many samples

ModelFactory = Callable[[int, torch.Generator], nn.Module]


# --------------------------------------------------------------------------- result
class _What(NamedTuple):
    """What an `EmpiricalERF` measured; results merge only when this agrees."""

    statistic: str
    channel_reduce: str
    centre: tuple[int, ...]
    origin: tuple[int, ...]


class _Sums(NamedTuple):
    """The shifted accumulators of an `EmpiricalERF` (see its documentation)."""

    shift: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    cross_sum: np.ndarray
    total_shift: float
    total_sum: float
    total_sum_sq: float


@dataclass(frozen=True, repr=False, eq=False)
class EmpiricalERF:
    r"""An ERF measured by back-propagation, with the sums that produced it.

    The accumulators are *shifted* sums, so that deterministic pixels (the gradient of a
    linear network with fixed weights) get a standard error of exactly 0 and nothing
    cancels catastrophically: with $q_k$ the per-sample maps and $S$ a per-pixel shift,

    $$\texttt{sum} = \sum_k (q_k - S), \qquad \texttt{sum\_sq} = \sum_k (q_k - S)^2,$$

    and likewise for the per-sample total $T_k = \sum_x q_k(x)$ (shift $S_T$), with the
    cross sums $\sum_k (q_k - S)(T_k - S_T)$ that give the standard error of the
    normalised map. The raw sums are ``count * shift + sum`` and so on; `merge` and
    `all_reduce` re-shift before adding, so results combine exactly as if all samples
    had been accumulated in one place.

    Attributes:
        map: the ERF $\bar q(x)$, float64, the spatial shape of the input (NaN where
            ``count == 0``).
        stderr: standard error of the mean per pixel, $s(x)/\sqrt N$ with the sample
            standard deviation $s$ (NaN when ``count < 2``). For a factory of networks
            with several inputs per network the unit is the network (see
            `empirical_erf`).
        count: $N$, the number of samples aggregated.
        nonfinite: the number of samples whose gradient (or statistic) held a NaN or
            an infinity; they are counted here and left out of everything else.
        statistic: ``"mean"``, ``"mean_square"``, ``"mean_abs"`` or ``"relu"``.
        channel_reduce: ``"sum"`` or ``"sum_after"``.
        centre: the output unit whose gradient was propagated (index per output axis).
        origin: the input pixel under the centre of that unit's receptive field (index
            per axis), the ``origin`` that `erftheory.measures` takes; exact when the
            `Network` is known, an estimate otherwise (see `empirical_erf`).
        shift, sum, sum_sq: the per-pixel shift and shifted sums (float64 arrays).
        total_shift, total_sum, total_sum_sq: the same for the per-sample total $T_k$.
        cross_sum: $\sum_k (q_k - S)(T_k - S_T)$ per pixel.
    """

    map: np.ndarray
    stderr: np.ndarray
    count: int
    nonfinite: int
    statistic: str
    channel_reduce: str
    centre: tuple[int, ...]
    origin: tuple[int, ...]
    shift: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    total_shift: float
    total_sum: float
    total_sum_sq: float
    cross_sum: np.ndarray

    # ------------------------------------------------------------ construction
    @classmethod
    def from_sums(
        cls,
        *,
        count: int,
        nonfinite: int,
        statistic: str,
        channel_reduce: str,
        centre: Sequence[int],
        origin: Sequence[int],
        shift: np.ndarray,
        sum: np.ndarray,
        sum_sq: np.ndarray,
        total_shift: float,
        total_sum: float,
        total_sum_sq: float,
        cross_sum: np.ndarray,
    ) -> EmpiricalERF:
        r"""Build a result from (shifted) accumulators; ``map`` and ``stderr`` follow.

        With $N$ samples, $\bar q = S + \texttt{sum}/N$ and the sample variance is
        $(\texttt{sum\_sq} - \texttt{sum}^2/N)/(N-1)$, clipped at 0.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_sums(
            ...     count=4, nonfinite=0, statistic="mean", channel_reduce="sum",
            ...     centre=(0,), origin=(1,), shift=np.zeros(3), sum=np.array([0.0, 4.0, 2.0]),
            ...     sum_sq=np.array([0.0, 4.0, 2.0]), total_shift=0.0, total_sum=6.0,
            ...     total_sum_sq=10.0, cross_sum=np.array([0.0, 4.0, 2.0]))
            >>> erf.map, erf.stderr
            (array([0. , 1. , 0.5]), array([0.  , 0.  , 0.288...]))
        """
        what = _What(statistic, channel_reduce, tuple(centre), tuple(origin))
        sums = _Sums(shift, sum, sum_sq, cross_sum, total_shift, total_sum, total_sum_sq)
        return cls._build(what, count, nonfinite, sums)

    @classmethod
    def _build(cls, what: _What, count: int, nonfinite: int, sums: _Sums) -> EmpiricalERF:
        """The one construction site: checks, ``map`` and ``stderr`` (see `from_sums`)."""
        statistic, channel_reduce = what.statistic, what.channel_reduce
        if statistic not in STATISTICS:
            raise ERFValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if channel_reduce not in CHANNEL_REDUCTIONS:
            raise ERFValueError(
                f"channel_reduce must be one of {CHANNEL_REDUCTIONS}, got {channel_reduce!r}"
            )
        maps = (sums.shift, sums.sum, sums.sum_sq, sums.cross_sum)
        arrays = [np.array(a, dtype=np.float64) for a in maps]
        if len({a.shape for a in arrays}) != 1:
            raise ERFValueError(
                f"shift, sum, sum_sq and cross_sum must have one shape, got "
                f"{[a.shape for a in arrays]}"
            )
        shift_a, sum_a, sq_a, cross_a = arrays
        n = int(count)
        if n < 0 or int(nonfinite) < 0:
            raise ERFValueError(f"count and nonfinite must be >= 0, got {count!r}, {nonfinite!r}")
        if n == 0:
            mean = np.full(shift_a.shape, np.nan)
        else:
            mean = shift_a + sum_a / n
        if n < 2:
            stderr = np.full(shift_a.shape, np.nan)
        else:
            var = np.maximum(sq_a - sum_a * sum_a / n, 0.0) / (n - 1)
            stderr = np.sqrt(var / n)
        for a in (mean, stderr, *arrays):
            a.setflags(write=False)
        return cls(
            map=mean,
            stderr=stderr,
            count=n,
            nonfinite=int(nonfinite),
            statistic=statistic,
            channel_reduce=channel_reduce,
            centre=tuple(int(c) for c in what.centre),
            origin=tuple(int(o) for o in what.origin),
            shift=shift_a,
            sum=sum_a,
            sum_sq=sq_a,
            total_shift=float(sums.total_shift),
            total_sum=float(sums.total_sum),
            total_sum_sq=float(sums.total_sum_sq),
            cross_sum=cross_a,
        )

    # ------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape of the map (the input's)."""
        return tuple(self.map.shape)

    @property
    def ndim(self) -> int:
        """The number of spatial axes."""
        return self.map.ndim

    def normalized(self) -> tuple[np.ndarray, np.ndarray]:
        r"""The map divided by its sum, and the standard error of that ratio.

        The total $M = \sum_x \bar q(x)$ is itself random, so the standard error of
        $p(x) = \bar q(x)/M$ comes from the delta method with the per-sample totals
        $T_k$:

        $$\operatorname{Var} p(x) \approx \frac{\operatorname{Var} q(x)
        - 2 p(x) \operatorname{Cov}(q(x), T) + p(x)^2 \operatorname{Var} T}{N M^2}.$$

        Returns:
            ``(p, stderr_p)``, float64 arrays of the map's shape.

        Raises:
            ERFValueError: nothing was aggregated or the map sums to 0.

        Example:
            >>> import numpy as np
            >>> erf = EmpiricalERF.from_sums(
            ...     count=2, nonfinite=0, statistic="mean", channel_reduce="sum", centre=(0,),
            ...     origin=(0,), shift=np.array([1.0, 3.0]), sum=np.zeros(2), sum_sq=np.zeros(2),
            ...     total_shift=4.0, total_sum=0.0, total_sum_sq=0.0, cross_sum=np.zeros(2))
            >>> erf.normalized()
            (array([0.25, 0.75]), array([0., 0.]))
        """
        n = self.count
        if n == 0:
            raise ERFValueError("no sample was aggregated (count == 0); there is no map")
        total = float(self.map.sum())
        if total == 0 or not math.isfinite(total):
            raise ERFValueError(f"the map sums to {total!r}; it cannot be normalised")
        p = self.map / total
        if n < 2:
            return p, np.full(p.shape, np.nan)
        var_q = np.maximum(self.sum_sq - self.sum * self.sum / n, 0.0) / (n - 1)
        cov = (self.cross_sum - self.sum * self.total_sum / n) / (n - 1)
        var_t = max(self.total_sum_sq - self.total_sum**2 / n, 0.0) / (n - 1)
        var_p = np.maximum(var_q - 2.0 * p * cov + p * p * var_t, 0.0) / (n * total * total)
        return p, np.sqrt(var_p)

    # ------------------------------------------------------------ combination
    def _check_compatible(self, other: EmpiricalERF) -> None:
        if not isinstance(other, EmpiricalERF):
            raise ERFTypeError(f"can only merge an EmpiricalERF, got {type(other).__name__}")
        for name in ("statistic", "channel_reduce", "centre", "origin", "shape"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                raise ERFValueError(f"cannot merge ERFs with different {name}: {a!r} and {b!r}")

    @property
    def _what(self) -> _What:
        return _What(self.statistic, self.channel_reduce, self.centre, self.origin)

    def _shifted(self, shift: np.ndarray, total_shift: float) -> _Sums:
        """The accumulators re-expressed about another shift (exact algebra, float64)."""
        n = float(self.count)
        d = self.shift - shift
        e = self.total_shift - total_shift
        s = self.sum + n * d
        s2 = self.sum_sq + 2.0 * d * self.sum + n * d * d
        ts = self.total_sum + n * e
        ts2 = self.total_sum_sq + 2.0 * e * self.total_sum + n * e * e
        cross = self.cross_sum + e * self.sum + d * self.total_sum + n * d * e
        return _Sums(shift, s, s2, cross, total_shift, ts, ts2)

    def _min_shift(self) -> tuple[np.ndarray, float]:
        """Shifts for the MIN reduction: $+\\infty$ where nothing was aggregated."""
        if self.count == 0:
            return np.full(self.shift.shape, np.inf), math.inf
        return self.shift, self.total_shift

    def merge(self, other: EmpiricalERF) -> EmpiricalERF:
        """The ERF of both sets of samples together (as if accumulated in one run).

        Both must share statistic, channel reduction, centre, origin and shape.

        Example:
            >>> import numpy as np
            >>> def one(v):
            ...     return EmpiricalERF.from_sums(
            ...         count=1, nonfinite=0, statistic="mean", channel_reduce="sum",
            ...         centre=(0,), origin=(0,), shift=np.array([v]), sum=np.zeros(1),
            ...         sum_sq=np.zeros(1), total_shift=v, total_sum=0.0, total_sum_sq=0.0,
            ...         cross_sum=np.zeros(1))
            >>> both = one(1.0).merge(one(3.0))
            >>> both.count, both.map, both.stderr
            (2, array([2.]), array([1.]))
        """
        self._check_compatible(other)
        sa, ta = self._min_shift()
        sb, tb = other._min_shift()
        shift = np.minimum(sa, sb)
        total_shift = min(ta, tb)
        if not math.isfinite(total_shift):  # neither has samples
            shift, total_shift = np.zeros(self.shift.shape), 0.0
        a = self._shifted(shift, total_shift)
        b = other._shifted(shift, total_shift)
        sums = _Sums(
            shift,
            a.sum + b.sum,
            a.sum_sq + b.sum_sq,
            a.cross_sum + b.cross_sum,
            total_shift,
            a.total_sum + b.total_sum,
            a.total_sum_sq + b.total_sum_sq,
        )
        count, nonfinite = self.count + other.count, self.nonfinite + other.nonfinite
        return EmpiricalERF._build(self._what, count, nonfinite, sums)

    def all_reduce(self, group: Any = None) -> EmpiricalERF:
        """Combine the results of all processes of a ``torch.distributed`` group.

        Every rank of ``group`` must call it (it is a collective). The accumulators are
        added with ``all_reduce(SUM)`` after the ranks agree on a common shift
        (``all_reduce(MIN)``), so every rank gets the same result, equal to `merge`-ing
        the ranks' results in one process up to float rounding. Tensors travel on the
        CPU, or on the current CUDA device with the ``nccl`` backend. ``self`` is not
        changed; the combined result is returned.

        Raises:
            ERFValueError: ``torch.distributed`` is unavailable or not initialised, or
                the ranks measured different things (shape, statistic, centre, origin).

        Example:
            >>> import numpy as np
            >>> import torch.distributed as dist
            >>> erf = EmpiricalERF.from_sums(
            ...     count=1, nonfinite=0, statistic="mean", channel_reduce="sum", centre=(0,),
            ...     origin=(0,), shift=np.zeros(1), sum=np.zeros(1), sum_sq=np.zeros(1),
            ...     total_shift=0.0, total_sum=0.0, total_sum_sq=0.0, cross_sum=np.zeros(1))
            >>> if not dist.is_initialized():
            ...     try:
            ...         erf.all_reduce()
            ...     except Exception as e:
            ...         print(type(e).__name__)
            ERFValueError
        """
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise ERFValueError(
                "all_reduce needs an initialised torch.distributed process group "
                "(torch.distributed.init_process_group)"
            )
        backend = str(dist.get_backend(group))
        dev = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )

        def reduce(values: np.ndarray, op: Any) -> np.ndarray:
            t = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64), device=dev)
            dist.all_reduce(t, op=op, group=group)
            return np.asarray(t.cpu().numpy(), dtype=np.float64)

        # Same thing measured everywhere? (min == max of a fixed-length descriptor)
        desc = self._descriptor()
        lo = reduce(desc, dist.ReduceOp.MIN)
        hi = reduce(desc, dist.ReduceOp.MAX)
        if not np.array_equal(lo, hi):
            raise ERFValueError(
                "the ranks measured different ERFs (shape, statistic, channel reduction, "
                "centre or origin differ); all_reduce needs the same measurement everywhere"
            )
        counts = reduce(np.array([self.count, self.nonfinite], dtype=np.float64), dist.ReduceOp.SUM)
        shift_local, tshift_local = self._min_shift()
        shifts = reduce(np.append(shift_local.ravel(), tshift_local), dist.ReduceOp.MIN)
        if not math.isfinite(shifts[-1]):  # no rank has samples
            shifts = np.zeros_like(shifts)
        shift = shifts[:-1].reshape(self.shift.shape)
        total_shift = float(shifts[-1])
        local = self._shifted(shift, total_shift)
        maps = (local.sum, local.sum_sq, local.cross_sum)
        totals = [local.total_sum, local.total_sum_sq]
        packed = reduce(np.concatenate([*(m.ravel() for m in maps), totals]), dist.ReduceOp.SUM)
        shape, size = self.shift.shape, self.shift.size
        s, s2, cross = (packed[i * size : (i + 1) * size].reshape(shape) for i in range(3))
        ts, ts2 = (float(t) for t in packed[3 * size :])
        sums = _Sums(shift, s, s2, cross, total_shift, ts, ts2)
        return EmpiricalERF._build(self._what, int(counts[0]), int(counts[1]), sums)

    def _descriptor(self) -> np.ndarray:
        """A fixed-length numeric fingerprint of what was measured (for all_reduce)."""
        shape = self.shape
        weights = [1.0, 7919.0, 104729.0]

        def fold(v: Sequence[int]) -> float:
            return float(sum((x + 1) * w for x, w in zip(v, weights, strict=False)))

        return np.array(
            [
                len(shape),
                float(np.prod(shape)),
                fold(shape),
                STATISTICS.index(self.statistic),
                CHANNEL_REDUCTIONS.index(self.channel_reduce),
                len(self.centre),
                fold(self.centre),
                fold(self.origin),
            ],
            dtype=np.float64,
        )

    def __repr__(self) -> str:
        return (
            f"EmpiricalERF(statistic={self.statistic!r}, shape={self.shape}, count={self.count}, "
            f"nonfinite={self.nonfinite}, centre={self.centre}, origin={self.origin})"
        )


# --------------------------------------------------------------------------- accumulator
class _Accumulator:
    """Shifted float64 sums on the measuring device."""

    def __init__(self, shape: tuple[int, ...], device: torch.device) -> None:
        z = torch.zeros(shape, dtype=torch.float64, device=device)
        self.shift = z.clone()
        self.sum = z.clone()
        self.sum_sq = z.clone()
        self.cross = z.clone()
        self.tshift = torch.zeros((), dtype=torch.float64, device=device)
        self.tsum = self.tshift.clone()
        self.tsum_sq = self.tshift.clone()
        self.count = 0
        self.nonfinite = 0
        self.started = False

    def add(self, q: torch.Tensor) -> None:
        """Add finite samples ``q`` of shape ``(n, *spatial)`` (float64)."""
        n = int(q.shape[0])
        if n == 0:
            return
        totals = q.reshape(n, -1).sum(1)
        if not self.started:
            self.shift = q[0].clone()
            self.tshift = totals[0].clone()
            self.started = True
        d = q - self.shift
        e = totals - self.tshift
        self.sum += d.sum(0)
        self.sum_sq += (d * d).sum(0)
        self.cross += (d * e.reshape((n,) + (1,) * (q.dim() - 1))).sum(0)
        self.tsum += e.sum()
        self.tsum_sq += (e * e).sum()
        self.count += n

    def result(self, what: _What) -> EmpiricalERF:
        def host(t: torch.Tensor) -> np.ndarray:
            return np.array(t.detach().cpu().numpy(), dtype=np.float64)

        sums = _Sums(
            host(self.shift),
            host(self.sum),
            host(self.sum_sq),
            host(self.cross),
            float(self.tshift),
            float(self.tsum),
            float(self.tsum_sq),
        )
        return EmpiricalERF._build(what, self.count, self.nonfinite, sums)


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
            yield from torch.split(self.tensor, self.batch_size)
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
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float64,
    output_index: int | Sequence[int] | None = None,
    channel_reduce: ChannelReduce = "sum",
    network: Network | None = None,
    progress: bool | None = None,
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
            tuples whose first element is the input batch.
        runs: passes over the inputs: a fresh random batch per run with
            ``inputs="random"``, another pass over the tensor or iterable otherwise
            (useful with a factory: a new network per run; with one model, extra passes
            over fixed inputs repeat identical samples, which inflates ``count`` and
            understates ``stderr``).
        batch_size: samples per backward pass: the random batch of each run (default
            32 with one model, 1 with a factory), or the chunk size of an input tensor
            (default 64). Batches of an iterable are used as they come.
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
            `erftheory.torch.build.to_torch` models do). Without it ``origin`` is the
            input pixel nearest to where the centre unit falls when the output grid is
            stretched over the input, ``round((c + 1/2) n_in / n_out - 1/2)``, exact for
            ``'same'`` padding and odd kernels.
        progress: show a ``tqdm`` bar (True), never (False), or only when there are at
            least `PROGRESS_MIN_BATCHES` backward passes and stderr is a terminal
            (None).

    Returns:
        An `EmpiricalERF` with ``map``, ``stderr``, ``count``, ``nonfinite``,
        ``centre`` and ``origin``. Samples whose gradient held a NaN or an infinity are
        counted in ``nonfinite`` and left out.

    Accepted shapes: inputs are ``(N, C, L)`` or ``(N, C, H, W)`` (``input_shape``
    ``(C, L)`` or ``(C, H, W)``; more spatial axes work the same way), and the output
    must be a map with the same spatial axes, ``(N, C', L')`` or ``(N, C', H', W')``.
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
    if batch_size is None:
        if isinstance(inputs, torch.Tensor):
            batch_size = _DEFAULT_CHUNK
        else:
            batch_size = 1 if factory is not None else _DEFAULT_BATCH
    else:
        batch_size = _positive_int(batch_size, "batch_size")
        if not isinstance(inputs, (str, torch.Tensor)):
            raise ERFValueError(
                "batch_size applies to random and tensor inputs; an iterable's batches are "
                "used as they come"
            )
    global_seed = derived_seed(gen, b"erftheory.empirical_erf: torch's global generator")
    source = _Source(inputs, shape, batch_size, dtype, gen, runs)
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

    meas = _Measurement(source, dev, dtype, statistic, channel_reduce, output_index, network)
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


@dataclass(eq=False)
class _Measurement:
    """The state of one `empirical_erf` call: options, geometry (from the first batch), sums."""

    source: _Source
    dev: torch.device
    dtype: torch.dtype
    statistic: str
    channel_reduce: str
    output_index: Any
    network: Network | None
    acc: _Accumulator | None = None
    centre: tuple[int, ...] = ()
    origin: tuple[int, ...] = ()
    sample_shape: tuple[int, ...] = ()
    out_spatial: tuple[int, ...] = ()

    # ------------------------------------------------------------ drivers
    def fixed(self, model: nn.Module, runs: int, bar: Any) -> None:
        """All runs through the user's model: eval mode (restored), or a moved copy."""
        if _has_train_batchnorm(model):
            _warn_batchnorm()
        if self.network is None:
            self.network = _network_of(model)
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
                    f"{describe_model(model)} is not on {self.dev} in {self.dtype} and could not "
                    f"be copied there ({one_line(e)}); move it yourself (model.to(device, dtype))"
                ) from e
            for _ in range(runs):
                self.run(work, per_run=False, bar=bar)
            return
        modes = [(m, m.training) for m in model.modules()]
        try:
            for _ in range(runs):
                self.run(model, per_run=False, bar=bar)
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
            if self.network is None:
                self.network = _network_of(built)
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
        run_n = 0
        run_bad = 0
        for x_cpu in self.source.run():
            q, finite = self.batch(model, x_cpu)
            acc = self.acc
            assert acc is not None
            good = q[finite]
            bad = int(q.shape[0]) - int(good.shape[0])
            if per_run:
                run_bad += bad
                if good.shape[0]:
                    part = good.sum(0)
                    run_sum = part if run_sum is None else run_sum + part
                    run_n += int(good.shape[0])
            else:
                acc.nonfinite += bad
                acc.add(good)
            if bar is not None:
                bar.update(1)
        if per_run and self.acc is not None:
            self.acc.nonfinite += run_bad
            if run_sum is not None and run_n:
                self.acc.add((run_sum / run_n).unsqueeze(0))

    def result(self) -> EmpiricalERF:
        if self.acc is None:
            raise ERFValueError("the inputs yielded no samples")
        return self.acc.result(_What(self.statistic, self.channel_reduce, self.centre, self.origin))

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
            self.origin = _origin(self.network, self.centre, sample[1:], out_spatial)
            self.acc = _Accumulator(sample[1:], x.device)
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
        """`gradient` of one batch, with allocator failures turned into one-line errors."""
        shape = tuple(x_cpu.shape)

        def message(error: str) -> str:
            nbytes = x_cpu.numel() * _element_size(self.dtype)
            return (
                f"{describe_model(model)} ran out of memory on {self.dev} with a batch of "
                f"shape {shape} ({format_bytes(nbytes)} of inputs in {self.dtype}): "
                f"{error}; use a smaller batch_size (now {shape[0]}) or a smaller input"
            )

        with out_of_memory_as(message):
            maps = self.gradient(model, x_cpu.to(device=self.dev, dtype=self.dtype))
        return maps

    def gradient(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample statistic maps ``(B, *spatial)`` (float64) and a finiteness mask."""
        shape = tuple(x.shape)
        where = (
            f"on inputs of shape {shape} (batch {shape[0]}, sample shape {shape[1:]}, "
            f"channels {shape[1]})"
        )

        def centre(x: torch.Tensor, y: torch.Tensor) -> tuple[int, ...]:
            _check_output(model, x, y)
            self._geometry(x, y)
            return self.centre

        g = centre_gradient(model, x, centre, where=where)
        return sample_maps(g, self.statistic, self.channel_reduce)
