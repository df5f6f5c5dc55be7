r"""Channel-by-channel expected-square ERF of a torch model, by one backward pass.

(`mean_gradient` runs the same pass with the weights, scales and signs as they are and
the activations as their mean slopes: the expected gradient of the model's own fixed
weights, which `erftheory.torch.trace.from_torch` uses for ``weights="model"`` on
multi-channel models. Gates are taken as 1 and layer norms as their affine weight there.)

The layer algebra of `erftheory.network` is single-channel: `erftheory.torch.trace.from_torch`
with ``weights="variance"`` averages the squared weights over output channels, exact at
initialisation (all output channels alike) but not for a model whose channels differ.
`predicted_erf` propagates Eq. (8) of the paper *without* that average. For zero-mean
random weights with per-(output, input, tap) variances $v_{c',c}(m)$,

$$\mathrm{Var}[g_{p-1}(c, i)] = \sum_{c'} \sum_m v_{c',c}(m)\,
\mathrm{Var}[g_p(c', s i + m)] \times a_p(c) \times d_p,$$

with the activation factor $a_p(c) = \mathbb E[\sigma'(x)^2]$ (Section 2.4) and the
dropout factor $d_p$. This is the transposed (backward) map of a *linear* network whose
weights are the variances, so it is computed as one autograd backward pass through the
model itself, run in float64 under a ``torch.overrides.TorchFunctionMode`` that swaps
the operations (the model is not copied or changed):

| operation | in the variance pass |
|---|---|
| ``conv1d/2d/3d``, ``conv_transpose*``, ``linear`` | weight $w$ replaced by its per-tap variance $v$ (``variances``), no bias |
| ``batch_norm`` | the per-channel factor $\gamma^2/(\sigma^2_\text{running}+\epsilon)$ (eval-mode scale, squared) |
| activations (ReLU, LeakyReLU, PReLU, tanh, sigmoid, SiLU, GELU, ...) | multiplication by $\mathbb E[\sigma'(x)^2]$ (``activation``) |
| ``avg_pool*``, ``adaptive_avg_pool*`` | the squared weights $1/D^2$ per tap |
| ``max_pool*``, ``adaptive_max_pool*`` | $1/n$ per tap, $n$ the window's in-bounds taps (below) |
| ``dropout`` | identity in ``eval()``, $1/(1-p)$ in training mode |
| ``a + b``, ``a - b``, ``torch.add(a, b, alpha=)`` | $\mathrm{Var}[a] + \alpha^2 \mathrm{Var}[b]$ (the signs square away) |
| ``x * c``, ``x / c`` for a number $c$ | $c^2$, $1/c^2$ |
| ``torch.cat``, ``split``, ``chunk``, views, slices, ``F.pad`` | as they are (a reflecting pad: below) |

Anything else that touches the signal (a product of two maps, a gate, a layer norm, an
operation reading a parameter the table does not know) is refused with an
`ERFValueError` naming it, rather than silently giving a wrong answer.

**Seed and channel convention.** The output gradient is 1 at the centre unit of every
output channel (or of ``output_channel`` only), as for
`erftheory.torch.empirical_erf`, so the result is the expected square of the gradient of
the *sum over output channels* of the centre unit. The weights of different output
channels are independent, so the cross terms vanish and this is the sum over output
channels of the per-output-channel maps. Likewise the expected square of the
input-channel-summed gradient equals the sum over input channels of the per-channel
maps, so ``map`` predicts ``empirical_erf(..., statistic="mean_square")`` with either
``channel_reduce``.

**Max pooling.** The rule of `erftheory.layers.MaxPool`: the gradient of a window goes
to one of its $n$ in-bounds taps, each with probability $1/n$, independently of the
gradient arriving from above (the independence assumption), so the expected square is
$1/n$ per tap, not $1/n^2$. Exact for non-overlapping windows on exchangeable inputs
(iid pixels, as the random inputs are); an approximation where windows overlap or
where zero padding below makes border values smaller.

**What is exact and what is assumed.** The propagation is exact for linear random
networks with independent zero-mean weights of the given variances, provided every
*fixed* spatial mixing (an average pool, a reflecting pad) receives a gradient that is
uncorrelated across its taps: true of the first one met going down from the output
(random convolutions keep distinct pixels uncorrelated, fixed averages correlate
them), only approximate for a second one (`erftheory.network` handles those paths
coherently, this route does not). Activations and max pools rest on the independence
assumption of Section 2.4: $\sigma'(x)$ independent of the gradient and of the
weights. It is exact for one ReLU between two random convolutions with zero biases and
symmetric inputs (sign symmetry of the filters), and fails after residual additions,
where the sum has a non-zero mean and the ReLU is active more than half the time:
``activation="calibrated"`` measures the actual factor per call and per channel on
``inputs``. Rounding: every term is non-negative, so nothing cancels, and each value is
a sum of products with at most $N$ rounded operations along any path;
`ChannelERF.rounding_bound` is $\gamma_N = N u / (1 - N u)$ ($u = 2^{-53}$), a bound
on the relative float64 error of every pixel (Higham, *Accuracy and Stability of
Numerical Algorithms*, Lemma 3.1 and Eq. 4.4), computed from the operations met.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from erftheory.torch.channels import predicted_erf
    >>> conv = nn.Conv2d(2, 3, 3, bias=False)
    >>> with torch.no_grad():
    ...     _ = conv.weight.fill_(1.0)
    >>> erf = predicted_erf(nn.Sequential(conv, nn.ReLU()), (2, 3, 3))
    >>> erf.map.tolist()   # 3 output channels x 2 input channels x ReLU factor 1/2
    [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]
    >>> erf.per_channel.shape
    (2, 3, 3)
"""  # noqa: E501

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .._errors import ERFTypeError, ERFValueError
from ..layers.elementwise import ACTIVATIONS, normal_factors

__all__ = [
    "ACTIVATION_MODES",
    "VARIANCE_MODES",
    "ChannelERF",
    "activation_factors",
    "mean_gradient",
    "predicted_erf",
]

VARIANCE_MODES: tuple[str, ...] = ("model", "init")
"""The named ``variances`` of `predicted_erf`: ``"model"`` ($w^2$ per tap, what the
weights alone predict) and ``"init"`` (every tap of a layer the layer's mean $w^2$: the
variance of any i.i.d. zero-mean initialisation, estimated from its draws)."""

ACTIVATION_MODES: tuple[str, ...] = ("paper", "calibrated")
"""``"paper"``: the factors of Section 2.4 for inputs $\\mathcal N(0, 1)$ (1/2 for ReLU);
``"calibrated"``: measured on ``inputs`` per call and per channel."""

_U = 2.0**-53  # the unit roundoff of float64
VarianceFn = Callable[[str, nn.Module, torch.Tensor], torch.Tensor]
"""``variances(name, module, weight) -> v``: per-tap variances of ``weight``'s shape."""


@dataclass(frozen=True)
class ChannelERF:
    r"""The predicted expected-square ERF of `predicted_erf`.

    Attributes:
        map: the expected squared input gradient summed over input channels, float64,
            the input's spatial shape.
        per_channel: the same per input channel, ``(C, *spatial)``.
        centre: the output unit seeded (index per output axis).
        output_channels: the number of output channels seeded.
        factors: the activation factor of each activation call, in call order: a float
            (``"paper"``) or a float64 array of one value per channel (``"calibrated"``).
        operations: the longest chain of rounded float64 operations counted for the
            rounding bound.
        rounding_bound: $\gamma_N$ for that $N$, a bound on the relative float64
            rounding error of every value of ``map`` and ``per_channel``.
        activation: ``"paper"`` or ``"calibrated"``.
        variances: ``"model"``, ``"init"`` or ``"callable"``.
    """

    map: np.ndarray
    per_channel: np.ndarray
    centre: tuple[int, ...]
    output_channels: int
    factors: tuple[Any, ...] = field(repr=False)
    operations: int
    rounding_bound: float
    activation: str
    variances: str

    @property
    def total(self) -> float:
        """The sum of ``map``."""
        return float(self.map.sum())


# ------------------------------------------------------------------ activation functions
def _fn(spec: str) -> Any:
    mod, _, name = spec.partition(".")
    return getattr(F if mod == "F" else torch, name)


_RELU_LIKE: set[Any] = {
    F.relu,
    F.relu_,
    F.relu6,
    torch.relu,
    torch.relu_,
    torch.Tensor.relu,
    torch.Tensor.relu_,
}
_LEAKY = {F.leaky_relu, F.leaky_relu_}
_TANH: set[Any] = {F.tanh, torch.tanh, torch.tanh_, torch.Tensor.tanh, torch.Tensor.tanh_}
_SIGMOID: set[Any] = {
    F.sigmoid,
    torch.sigmoid,
    torch.sigmoid_,
    torch.Tensor.sigmoid,
    torch.Tensor.sigmoid_,
}
_HARDTANH = {F.hardtanh, F.hardtanh_}
# the smooth activations of ACTIVATIONS, by torch function (several names may share one)
_SMOOTH: dict[Any, list[str]] = {}
for _name, _act in ACTIVATIONS.items():
    for _spec in _act.torch_functions:
        _SMOOTH.setdefault(_fn(_spec), []).append(_name)
_ACTIVATION_FUNCS = frozenset(
    {*_RELU_LIKE, *_LEAKY, *_TANH, *_SIGMOID, *_HARDTANH, F.prelu, *_SMOOTH}
)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _paper_factor(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], square: bool = True
) -> Any:
    """$\\mathbb E[\\sigma'(x)^2]$ (``square``) or $\\mathbb E[\\sigma'(x)]$ for
    $x \\sim \\mathcal N(0, 1)$ (Section 2.4)."""
    k = 1 if square else 0
    if func in _RELU_LIKE or func in _HARDTANH:
        return 0.5  # ReLU6 and hardtanh: their clips ignored, as from_torch does
    if func in _LEAKY:
        a = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
        return (1 + a * a) / 2 if square else (1 + a) / 2
    if func is F.prelu:
        w = _arg(args, kwargs, 1, "weight", None).detach().double().reshape(-1)
        f = (1 + w * w) / 2 if square else (1 + w) / 2
        return f.cpu().numpy() if w.numel() > 1 else float(f)
    if func in _TANH:
        return normal_factors("tanh", 1.0)[k]
    if func in _SIGMOID:
        return normal_factors("sigmoid", 1.0)[k]
    names = _SMOOTH[func]
    if len(names) > 1:  # GELU: the exact form or the tanh approximation
        approx = _arg(args, kwargs, 1, "approximate", "none")
        names = [n for n in names if ACTIVATIONS[n].torch_fixed.get("approximate") == approx]
    act = ACTIVATIONS[names[0]]
    from fractions import Fraction

    params = tuple(
        (p.name, Fraction(float(_arg(args, kwargs, i + 1, p.name, p.default))))
        for i, p in enumerate(act.params)
    )
    return normal_factors(act.name, 1.0, params)[k]


def _derivative_squared(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> np.ndarray:
    """The mean over batch and pixels of $\\sigma'(x)^2$, per channel (autograd)."""
    x: Any = args[0] if args else kwargs.get("input", kwargs.get("self"))
    kw = {k: v for k, v in kwargs.items() if k not in ("inplace", "input", "self")}
    base = {
        F.relu_: F.relu,
        torch.relu_: torch.relu,
        torch.Tensor.relu_: torch.relu,
        F.leaky_relu_: F.leaky_relu,
        F.hardtanh_: F.hardtanh,
        torch.tanh_: torch.tanh,
        torch.Tensor.tanh_: torch.tanh,
        torch.sigmoid_: torch.sigmoid,
        torch.Tensor.sigmoid_: torch.sigmoid,
    }.get(func, func)
    if base in (torch.Tensor.relu, torch.Tensor.tanh, torch.Tensor.sigmoid):
        base = getattr(torch, base.__name__)
    with torch.enable_grad():
        z = x.detach().double().requires_grad_()
        rest = tuple(a.detach().double() if isinstance(a, torch.Tensor) else a for a in args[1:])
        y = base(z, *rest, **kw)
        (d,) = torch.autograd.grad(y.sum(), z)
    dims = tuple(i for i in range(d.dim()) if i != 1) if d.dim() > 1 else (0,)
    return (d * d).mean(dim=dims).cpu().numpy()


# ------------------------------------------------------------------------- pooling
def _tuple(v: Any, nd: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, Sequence) else (v,) * nd


_MAX_POOLS = {
    F.max_pool1d: 1,
    F.max_pool2d: 2,
    F.max_pool3d: 3,
    F.max_pool1d_with_indices: 1,
    F.max_pool2d_with_indices: 2,
    F.max_pool3d_with_indices: 3,
    torch.max_pool1d: 1,
    torch.max_pool2d: 2,
    torch.max_pool3d: 3,
}
_AVG_POOLS = {F.avg_pool1d: 1, F.avg_pool2d: 2, F.avg_pool3d: 3, torch.avg_pool1d: 1}
_ADAPTIVE_AVG = {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3}
_ADAPTIVE_MAX = {
    F.adaptive_max_pool1d: 1,
    F.adaptive_max_pool2d: 2,
    F.adaptive_max_pool3d: 3,
    F.adaptive_max_pool1d_with_indices: 1,
    F.adaptive_max_pool2d_with_indices: 2,
    F.adaptive_max_pool3d_with_indices: 3,
}
_AVG_FN = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE_FN = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_POOL_NAMES = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
_AVG_NAMES = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
)


def _bound(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _window_counts(length: int, out: int) -> list[int]:
    """The window sizes of an adaptive pool (PyTorch's start/end rule)."""
    return [math.ceil((i + 1) * length / out) - (i * length) // out for i in range(out)]


def _adaptive_divisor(x: torch.Tensor, output_size: Any, nd: int) -> torch.Tensor:
    sizes = x.shape[-nd:]
    outs = [s if o is None else o for s, o in zip(sizes, _tuple(output_size, nd), strict=True)]
    d = torch.ones((), dtype=x.dtype, device=x.device)
    for axis, (n, o) in enumerate(zip(sizes, outs, strict=True)):
        c = torch.tensor(_window_counts(n, o), dtype=x.dtype, device=x.device)
        shape = [1] * nd
        shape[axis] = o
        d = d * c.reshape(shape)
    return d


# ------------------------------------------------------------------- the variance pass
_VIEWS = frozenset(
    {
        torch.Tensor.view,
        torch.Tensor.reshape,
        torch.reshape,
        torch.Tensor.flatten,
        torch.flatten,
        torch.Tensor.permute,
        torch.permute,
        torch.Tensor.transpose,
        torch.transpose,
        torch.Tensor.contiguous,
        torch.Tensor.squeeze,
        torch.squeeze,
        torch.Tensor.unsqueeze,
        torch.unsqueeze,
        torch.Tensor.clone,
        torch.clone,
        torch.Tensor.__getitem__,
        torch.cat,
        torch.concat,
        torch.concatenate,
        torch.Tensor.split,
        torch.split,
        torch.Tensor.chunk,
        torch.chunk,
        torch.Tensor.narrow,
        torch.narrow,
        torch.Tensor.expand_as,
        torch.Tensor.expand,
        torch.Tensor.__iter__,
        torch.Tensor.unbind,
        torch.unbind,
        torch.Tensor.to,
        torch.Tensor.double,
        torch.Tensor.detach,
        torch.Tensor.requires_grad_,
        torch.Tensor.float,
        torch.Tensor.__len__,
        torch.nn.functional.pad,
        torch.Tensor.__format__,
    }
)
_ADDS = frozenset(
    {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__}
)
_RADD = frozenset({torch.Tensor.__radd__})
_SUBS = frozenset(
    {torch.sub, torch.Tensor.sub, torch.Tensor.sub_, torch.Tensor.__sub__, torch.Tensor.__isub__}
)
_MULS = frozenset(
    {
        torch.mul,
        torch.Tensor.mul,
        torch.Tensor.mul_,
        torch.Tensor.__mul__,
        torch.Tensor.__imul__,
        torch.Tensor.__rmul__,
    }
)
_DIVS = frozenset(
    {
        torch.div,
        torch.Tensor.div,
        torch.Tensor.div_,
        torch.Tensor.__truediv__,
        torch.Tensor.__itruediv__,
    }
)
_CONVS = frozenset({F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d})
_CONV_T = frozenset({F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d})
_DROPOUTS = frozenset(
    {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
)


def _signal(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def _flat(args: Any) -> list[Any]:
    out: list[Any] = []
    stack = [args]
    while stack:
        a = stack.pop()
        if isinstance(a, list | tuple):
            stack.extend(a)
        elif isinstance(a, dict):
            stack.extend(a.values())
        else:
            out.append(a)
    return out


def _func_name(func: Any) -> str:
    owner = getattr(func, "__module__", None) or ""
    name = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))
    name = name.replace("TensorBase.", "Tensor.").replace("_TensorBase.", "Tensor.")
    if owner.startswith("torch.nn.functional"):
        return f"F.{name}"
    return name if name.startswith("Tensor.") else f"torch.{name}"


class _Recorder(TorchFunctionMode):
    """The calibration pass: the model runs as it is; activations record their factor."""

    def __init__(self) -> None:
        super().__init__()
        self.factors: list[np.ndarray] = []

    def __torch_function__(  # type: ignore[override]
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _ACTIVATION_FUNCS:
            self.factors.append(_derivative_squared(func, args, kwargs))
        return func(*args, **kwargs)


class _VariancePass(TorchFunctionMode):
    """While active, the model's operations act on variances (module docstring)."""

    def __init__(
        self,
        variance_of: Callable[[torch.Tensor], torch.Tensor],
        factors: list[Any] | None,
        device: torch.device,
        dtype: torch.dtype,
        params: dict[int, str],
        square: bool = True,
    ) -> None:
        super().__init__()
        self.square = square  # False: the mean gradient (weights and factors as they are)
        self.variance_of = variance_of
        self.calibrated = factors
        self.used: list[Any] = []
        self.device = device
        self.dtype = dtype
        self.params = params
        self.depth: dict[int, int] = {}  # id(tensor) -> rounded operations along its paths

    # rounding bookkeeping: the longest chain of rounded operations reaching a tensor
    def _ops(self, inputs: list[Any]) -> int:
        return max(
            (self.depth.get(id(t), 0) for t in inputs if isinstance(t, torch.Tensor)), default=0
        )

    def _out(self, out: Any, inputs: list[Any], cost: int) -> Any:
        n = self._ops(inputs) + cost
        for t in _flat(out):
            if isinstance(t, torch.Tensor):
                self.depth[id(t)] = n
        return out

    def _t(self, t: Any) -> Any:
        return t.to(self.device, self.dtype) if isinstance(t, torch.Tensor) else t

    def _factor(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.calibrated is None:
            f = _paper_factor(func, args, kwargs, self.square)
        else:
            k = len(self.used)
            if k >= len(self.calibrated):
                raise ERFValueError(
                    f"the variance pass met more activation calls ({k + 1}) than the "
                    f"calibration pass recorded ({len(self.calibrated)}): the model's forward "
                    f"is not the same on both passes"
                )
            f = self.calibrated[k]
        self.used.append(f)
        return f

    def __torch_function__(  # type: ignore[override]
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        flat = _flat((args, kwargs))
        if not any(_signal(t) for t in flat):
            return func(*args, **kwargs)
        x = args[0] if args else kwargs.get("input")
        if func in _CONVS or func in _CONV_T or func is F.linear:
            w = _arg(args, kwargs, 1, "weight", None)
            v = self.variance_of(w)
            rest = list(args[3:])
            kw = {k: val for k, val in kwargs.items() if k not in ("input", "weight", "bias")}
            out = func(x, v, None, *rest, **kw)
            fan = max(w.shape[0], w.shape[1]) * math.prod(w.shape[2:])
            return self._out(out, [x], fan + 1)
        if func is F.batch_norm:
            a = _bound(
                ("input", "running_mean", "running_var", "weight", "bias", "training"),
                args,
                kwargs,
            )
            var = a.get("running_var")
            if var is None:
                raise ERFValueError(
                    "a batch norm without running statistics (track_running_stats=False) has "
                    "an input-dependent scale; the variance pass needs the eval-mode scale"
                )
            eps = float(kwargs.get("eps", args[7] if len(args) > 7 else 1e-5))
            scale = 1.0 / (self._t(var) + eps)
            if not self.square:  # the eval-mode scale itself
                scale = scale.sqrt()
            weight = a.get("weight")
            if weight is not None:
                scale = scale * (self._t(weight) ** 2 if self.square else self._t(weight))
            shape = [1, -1] + [1] * (x.dim() - 2)
            return self._out(x * scale.reshape(shape), [x], 3)
        if func in _ACTIVATION_FUNCS:
            f = self._factor(func, args, kwargs)
            if isinstance(f, np.ndarray):
                if f.size != x.shape[1]:
                    raise ERFValueError(
                        f"activation call {len(self.used)}: {f.size} calibrated channels, "
                        f"the map has {x.shape[1]}"
                    )
                ft = torch.as_tensor(f, dtype=self.dtype, device=self.device)
                return self._out(x * ft.reshape([1, -1] + [1] * (x.dim() - 2)), [x], 1)
            return self._out(x * float(f), [x], 1)
        if func in _MAX_POOLS:
            nd = _MAX_POOLS[func]
            a = _bound(_POOL_NAMES, args, kwargs)
            dil = _tuple(a.get("dilation", 1), nd)
            if any(d != 1 for d in dil):
                raise ERFValueError(f"a dilated max pool (dilation {dil}) is not supported")
            if a.get("return_indices") or func in (
                F.max_pool1d_with_indices,
                F.max_pool2d_with_indices,
                F.max_pool3d_with_indices,
            ):
                raise ERFValueError("a max pool that returns its indices is not supported")
            k = a["kernel_size"]
            out = _AVG_FN[nd](
                x,
                k,
                a.get("stride") or k,
                a.get("padding", 0),
                ceil_mode=bool(a.get("ceil_mode", False)),
                count_include_pad=False,
            )
            return self._out(out, [x], math.prod(_tuple(k, nd)) + 1)
        if func in _AVG_POOLS:
            nd = _AVG_POOLS[func]
            a = _bound(_AVG_NAMES, args, kwargs)
            k = a["kernel_size"]
            geo = {
                "kernel_size": k,
                "stride": a.get("stride") or k,
                "padding": a.get("padding", 0),
                "ceil_mode": bool(a.get("ceil_mode", False)),
            }
            avg = _AVG_FN[nd]
            opts = {
                "count_include_pad": a.get("count_include_pad", True),
                "divisor_override": a.get("divisor_override"),
            }
            if nd == 1:
                opts.pop("divisor_override")
            ones = torch.ones((1, 1, *x.shape[-nd:]), dtype=self.dtype, device=self.device)
            valid = _in_bounds(ones, geo, nd)  # in-bounds taps per output
            weight = avg(ones, **geo, **opts)  # n_valid / D per output: the tap weight times n
            divisor = valid / weight
            if not self.square:  # the average itself
                return self._out(avg(x, **geo, **opts), [x], math.prod(_tuple(k, nd)) + 1)
            return self._out(avg(x, **geo, **opts) / divisor, [x], math.prod(_tuple(k, nd)) + 2)
        if func in _ADAPTIVE_AVG or func in _ADAPTIVE_MAX:
            nd = _ADAPTIVE_AVG.get(func) or _ADAPTIVE_MAX[func]
            size = _arg(args, kwargs, 1, "output_size", None)
            if func in _ADAPTIVE_MAX and (
                _arg(args, kwargs, 2, "return_indices", False) or "indices" in func.__name__
            ):
                raise ERFValueError("a max pool that returns its indices is not supported")
            out = _ADAPTIVE_FN[nd](x, size)
            if func in _ADAPTIVE_AVG and self.square:  # squared weights 1/D^2 = average / D
                out = out / _adaptive_divisor(x, size, nd)
            return self._out(out, [x], int(np.prod(x.shape[-nd:])) + 2)
        if func in _DROPOUTS:
            p = float(_arg(args, kwargs, 1, "p", 0.5))
            training = bool(_arg(args, kwargs, 2, "training", True))
            if not training or p == 0 or not self.square:  # inverted dropout: mean 1
                return x
            return self._out(x / (1 - p), [x], 1)
        if func in _ADDS or func in _RADD or func in _SUBS:
            a, b = (args[0], args[1]) if len(args) > 1 else (x, kwargs.get("other"))
            alpha = float(_arg(args, kwargs, 2, "alpha", 1))
            if not isinstance(b, torch.Tensor) or not b.requires_grad:  # a constant (bias)
                return a if isinstance(a, torch.Tensor) and a.requires_grad else b
            if not self.square:  # the mean gradient: the operation itself, signs kept
                return self._out(func(*args, **kwargs), [a, b], 1)
            if not (isinstance(a, torch.Tensor) and a.requires_grad):
                return b * alpha * alpha
            inplace = func in (torch.Tensor.add_, torch.Tensor.__iadd__, torch.Tensor.sub_)
            inplace = inplace or func is torch.Tensor.__isub__
            out = a + b * (alpha * alpha) if not inplace else a.add_(b, alpha=alpha * alpha)
            return self._out(out, [a, b], 1)
        if func in _MULS or func in _DIVS:
            a = args[0] if args else kwargs.get("input")
            b = args[1] if len(args) > 1 else kwargs.get("other")
            if func is torch.Tensor.__rmul__:
                a, b = b, a
            if _signal(a) and _signal(b) and not self.square:
                for one, two in ((a, b), (b, a)):  # a parameter (a layer scale): constant
                    if _is_param(one, self.params):
                        return self._out(two * self._t(one.detach()), [two], 1)
                gate = _gate_of(a, b)
                if gate is not None:  # a gate: taken as the factor 1 (from_torch warns)
                    other = b if gate is a else a
                    return self._out(other * 1.0, [other], 0)
            if _signal(a) and _signal(b):
                raise ERFValueError(
                    f"{_func_name(func)}: a product of two maps (a gate such as "
                    f"squeeze-and-excitation) is not a linear map of the signal; the variance "
                    f"pass does not support it"
                )
            sig, c = (a, b) if _signal(a) else (b, a)
            if isinstance(c, torch.Tensor):
                c = self._t(c.detach())
            elif not isinstance(c, numbers.Real):
                raise ERFTypeError(f"{_func_name(func)} by {type(c).__name__} is not supported")
            cc = c * c if self.square else c
            if func in _DIVS:
                if kwargs.get("rounding_mode") is not None or not _signal(a):
                    raise ERFValueError(f"{_func_name(func)} with the map as divisor is not linear")
                return self._out(sig / cc, [sig], 2)
            return self._out(sig * cc, [sig], 2)
        if not self.square and func in _LINEAR_REDUCTIONS:  # linear: as they are
            return self._out(func(*args, **kwargs), flat, 1)
        if not self.square and func in (F.layer_norm, F.group_norm):
            # the mean gradient: the statistics' scale taken as 1 (it depends on the
            # input), the affine weight kept
            w = _arg(args, kwargs, 2, "weight", None)
            if w is None:
                return self._out(x * 1.0, [x], 0)
            w = self._t(w.detach())
            if func is F.group_norm:
                w = w.reshape([1, -1] + [1] * (x.dim() - 2))
            return self._out(x * w, [x], 1)
        if func is torch.Tensor.neg or func is torch.neg or func is torch.Tensor.__neg__:
            return x if self.square else self._out(-x, [x], 0)
        if func in _VIEWS:
            # F.pad: zeros are exact; reflect/replicate copy border pixels (an
            # approximation at the border only, see the module docstring)
            out = func(*args, **kwargs)
            return self._out(out, flat, 0)
        used = [t for t in flat if isinstance(t, torch.Tensor) and _is_param(t, self.params)]
        what = f" (it reads {self.params[id(used[0])]})" if used else ""
        if not used:
            try:
                out = func(*args, **kwargs)
            except Exception as e:
                raise ERFValueError(
                    f"{_func_name(func)} is not supported by the channel-aware variance pass "
                    f"(it failed on the variance map: {e})"
                ) from e
            if not any(_signal(t) for t in _flat(out)):  # sizes, shapes, comparisons, masks
                return out
        raise ERFValueError(
            f"{_func_name(func)} is not supported by the channel-aware variance pass{what}; "
            f"it supports convolutions, linear maps, batch norm, pointwise activations, "
            f"pooling, dropout, sums, concatenation and views (erftheory.torch.channels)"
        )


_LINEAR_REDUCTIONS = frozenset({torch.mean, torch.Tensor.mean, torch.sum, torch.Tensor.sum})
"""Linear reductions the mean-gradient pass runs as they are (a gate's pooling)."""


def _gate_of(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """The operand of ``a * b`` that is one pixel per channel (a squeeze-and-excitation
    gate), or None."""
    for g, x in ((a, b), (b, a)):
        if g.dim() == x.dim() and g.dim() > 2 and all(n == 1 for n in g.shape[2:]):
            if any(n > 1 for n in x.shape[2:]):
                return g
    return None


def _in_bounds(ones: torch.Tensor, geo: dict[str, Any], nd: int) -> torch.Tensor:
    """The number of in-bounds taps of every pooling window (a sum pool of ones)."""
    if nd == 1:  # avg_pool1d has no divisor_override: pool a (1, L) image instead
        g = {
            "kernel_size": (1, _tuple(geo["kernel_size"], 1)[0]),
            "stride": (1, _tuple(geo["stride"], 1)[0]),
            "padding": (0, _tuple(geo["padding"], 1)[0]),
            "ceil_mode": geo["ceil_mode"],
        }
        return F.avg_pool2d(ones.unsqueeze(2), **g, divisor_override=1).squeeze(2)
    pool: Any = _AVG_FN[nd]
    return pool(ones, **geo, divisor_override=1)  # type: ignore[no-any-return]


def _is_param(t: torch.Tensor, params: dict[int, str]) -> bool:
    return id(t) in params


# ---------------------------------------------------------------------------- variances
def _variance_table(
    model: nn.Module, variances: Any, device: torch.device, dtype: torch.dtype
) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    weights: dict[int, tuple[str, nn.Module]] = {}
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(mod, nn.modules.conv._ConvNd | nn.Linear) and isinstance(w, torch.Tensor):
            weights[id(w)] = (name or type(mod).__name__, mod)
    cache: dict[int, torch.Tensor] = {}

    def variance_of(w: torch.Tensor) -> torch.Tensor:
        key = id(w)
        if key in cache:
            return cache[key]
        wd = w.detach().to(device, dtype)
        if variances == "model":
            v = wd * wd
        elif variances == "init":
            v = torch.full_like(wd, float((wd * wd).mean()))
        else:
            name, mod = weights.get(key, ("<a weight not owned by a module>", nn.Module()))
            got = variances(name, mod, w)
            if not isinstance(got, torch.Tensor):
                got = torch.as_tensor(got, dtype=dtype)
            v = got.to(device, dtype).expand_as(wd)
            if bool((v < 0).any()) or not bool(torch.isfinite(v).all()):
                raise ERFValueError(
                    f"variances({name!r}) must be finite and non-negative, got min {float(v.min())}"
                )
        cache[key] = v
        return v

    kind = variances if isinstance(variances, str) else "callable"
    return variance_of, kind


def activation_factors(
    model: nn.Module,
    inputs: Any,
    input_shape: Sequence[int] | None = None,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 8,
) -> list[np.ndarray]:
    r"""The measured $\mathbb E[\sigma'(x)^2]$ of every activation call, per channel.

    One forward pass of the model (as it is, in ``eval()`` mode, float64) over
    ``inputs``: every pointwise activation call (module or functional, in call order)
    records the mean over the batch and the pixels of its derivative squared, per
    channel (for ReLU, the fraction of active units).

    Args:
        model: the model.
        inputs: a tensor ``(N, C, *spatial)``, or ``"random"`` (``batch_size`` standard
            normal samples of ``input_shape`` from a CPU generator seeded with ``seed``).
        input_shape: ``(C, *spatial)``, needed for ``"random"``.
        device: where to run.
        seed: the seed of random inputs.
        batch_size: the number of random inputs.

    Returns:
        One float64 array of per-channel factors per activation call.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> x = torch.tensor([[[-1.0, 2.0, 3.0, -4.0]]])
        >>> activation_factors(nn.ReLU(), x)
        [array([0.5])]
    """
    dev = torch.device(device)
    x = _inputs(inputs, input_shape, seed, batch_size).to(dev, torch.float64)
    was = [m.training for m in model.modules()]
    model.eval()
    rec = _Recorder()
    try:
        with torch.no_grad(), rec:
            model(x) if _on_device(model, dev) else _moved(model, dev)(x)
    finally:
        for m, t in zip(model.modules(), was, strict=True):
            m.training = t
    return rec.factors


def _on_device(model: nn.Module, dev: torch.device) -> bool:
    ts = [*model.parameters(), *model.buffers()]
    return all(
        t.device.type == dev.type and t.dtype == torch.float64 for t in ts if t.is_floating_point()
    )


def _moved(model: nn.Module, dev: torch.device) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(dev, torch.float64).eval()


def _inputs(inputs: Any, input_shape: Any, seed: int, batch_size: int) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):
        if not inputs.is_floating_point() or inputs.dim() < 3:
            raise ERFValueError(
                f"inputs must be a floating tensor (N, C, *spatial), got shape "
                f"{tuple(inputs.shape)} of {inputs.dtype}"
            )
        return inputs
    if isinstance(inputs, str) and inputs == "random":
        if input_shape is None:
            raise ERFValueError("inputs='random' needs input_shape (C, *spatial)")
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((batch_size, *input_shape), generator=gen, dtype=torch.float64)
    raise ERFTypeError(
        f"inputs must be a tensor (N, C, *spatial) or 'random', got {type(inputs).__name__}"
    )


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else None
    if (
        shape is None
        or len(shape) < 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
    ):
        raise ERFValueError(
            f"input_shape must be (C, *spatial) of positive ints, at least one spatial axis; "
            f"got {input_shape!r}"
        )
    return shape


def predicted_erf(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    variances: Literal["model", "init"] | VarianceFn = "model",
    activation: Literal["paper", "calibrated"] = "paper",
    inputs: Any = None,
    output_index: int | Sequence[int] | None = None,
    output_channel: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    calibration_batch: int = 8,
) -> ChannelERF:
    r"""The expected-square ERF of Eq. (8), channel by channel, in one backward pass.

    See the module documentation for what each operation becomes and what is assumed.

    Args:
        model: a ``torch.nn.Module`` whose output is a spatial map
            ``(N, C', *spatial')`` (pass a classifier's feature extractor). It is not
            changed or copied; its parameters are read (and cast to ``dtype`` on
            ``device``) by the variance pass.
        input_shape: ``(C, *spatial)`` of one sample.
        variances: the per-tap variance of every convolution and linear weight:
            ``"model"`` ($w^2$: what the weights alone predict), ``"init"`` (the layer's
            mean $w^2$ on every tap) or ``variances(name, module, weight) -> tensor``
            (broadcastable to the weight's shape; e.g. He's $2/n_\text{in}$).
        activation: ``"paper"`` (the factors of Section 2.4 for $\mathcal N(0,1)$
            inputs: 1/2 for ReLU, $(1+a^2)/2$ for leaky ReLU, quadrature for the
            smooth ones) or ``"calibrated"`` (measured by `activation_factors` on
            ``inputs``, per call and per channel).
        inputs: for ``"calibrated"``: a tensor ``(N, C, *spatial)`` or ``"random"``.
        output_index: the output unit, by default ``(n - 1) // 2`` per axis.
        output_channel: seed only this output channel (default: all, summed).
        device: ``"cpu"``, ``"cuda"``, a ``torch.device``.
        dtype: the floating dtype of the pass (float64 by default; the rounding bound
            assumes float64).
        seed: the seed of random calibration inputs.
        calibration_batch: the number of random calibration inputs.

    Returns:
        A `ChannelERF`.

    Raises:
        ERFValueError: a bad argument; an output that is not a spatial map; an
            operation the variance pass does not support (named).
        ERFTypeError: ``model`` is not a module; bad ``inputs``.

    Example:
        >>> from torch import nn
        >>> predicted_erf(nn.MaxPool1d(2), (1, 6)).map.tolist()   # 1/2 per tap of the window
        [0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
    """
    if not isinstance(model, nn.Module):
        raise ERFTypeError(f"predicted_erf takes a torch.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    if not (isinstance(variances, str) and variances in VARIANCE_MODES) and not (
        callable(variances) and not isinstance(variances, str)
    ):
        raise ERFValueError(
            f"variances must be one of {VARIANCE_MODES} or a callable(name, module, weight), "
            f"got {variances!r}"
        )
    if activation not in ACTIVATION_MODES:
        raise ERFValueError(f"activation must be one of {ACTIVATION_MODES}, got {activation!r}")
    dev = _device_for(device, dtype)
    factors: list[Any] | None = None
    if activation == "calibrated":
        if inputs is None:
            raise ERFValueError("activation='calibrated' needs inputs (a tensor or 'random')")
        factors = list(
            activation_factors(
                model, inputs, shape, device=dev, seed=seed, batch_size=calibration_batch
            )
        )
    elif inputs is not None:
        raise ERFValueError("inputs are only used with activation='calibrated'")
    variance_of, kind = _variance_table(model, variances, dev, dtype)
    mode = _VariancePass(variance_of, factors, dev, dtype, _param_names(model))
    per, centre, channels, n = _run(model, shape, mode, output_index, output_channel, dev, dtype)
    if factors is not None and len(mode.used) != len(factors):
        raise ERFValueError(
            f"the calibration pass recorded {len(factors)} activation calls, the variance "
            f"pass met {len(mode.used)}"
        )
    bound = n * _U / (1 - n * _U)
    return ChannelERF(
        map=per.sum(axis=0),
        per_channel=per,
        centre=centre,
        output_channels=channels if output_channel is None else 1,
        factors=tuple(mode.used),
        operations=n,
        rounding_bound=bound,
        activation=activation,
        variances=kind,
    )


def _device_for(device: Any, dtype: Any) -> torch.device:
    """The checked device of a pass (and a check of its floating ``dtype``)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ERFTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ERFValueError(f"unknown device {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ERFValueError(f"device {device!r} is not available (no CUDA)")
    return dev


def _param_names(model: nn.Module) -> dict[int, str]:
    params = {id(p): n for n, p in model.named_parameters()}
    params.update({id(b): n for n, b in model.named_buffers()})
    return params


def _run(
    model: nn.Module,
    shape: tuple[int, ...],
    mode: _VariancePass,
    output_index: Any,
    output_channel: Any,
    dev: torch.device,
    dtype: torch.dtype,
) -> tuple[np.ndarray, tuple[int, ...], int, int]:
    """One pass of ``mode`` through ``model``: the per-channel input map of the seeded
    unit, the unit, the output channels and the rounded operations along the paths."""
    x = torch.zeros((1, *shape), dtype=dtype, device=dev, requires_grad=True)
    was = [m.training for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad(), mode:
            y = model(x)
    finally:
        for m, t in zip(model.modules(), was, strict=True):
            m.training = t
    if not isinstance(y, torch.Tensor) or y.dim() != len(shape) + 1 or not y.requires_grad:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ERFValueError(
            f"the model's output must be a spatial map (N, C', *spatial) computed from the "
            f"input, got {got}; pass the feature extractor of a classifier"
        )
    out_spatial = tuple(int(s) for s in y.shape[2:])
    nd = len(out_spatial)
    if output_index is None:
        centre = tuple((s - 1) // 2 for s in out_spatial)
    else:
        centre = (output_index,) * nd if isinstance(output_index, int) else tuple(output_index)
        if len(centre) != nd or any(
            not 0 <= c < s for c, s in zip(centre, out_spatial, strict=True)
        ):
            raise ERFValueError(
                f"output_index {output_index!r} is outside the output map {out_spatial}"
            )
    seed_grad = torch.zeros_like(y)
    unit: Any
    channels = int(y.shape[1])
    if output_channel is None:
        unit = (0, slice(None), *centre)
        seed_grad[unit] = 1.0
    else:
        if not isinstance(output_channel, int) or not 0 <= output_channel < channels:
            raise ERFValueError(
                f"output_channel must be an int in 0 .. {channels - 1}, got {output_channel!r}"
            )
        unit = (0, output_channel, *centre)
        seed_grad[unit] = 1.0
    (g,) = torch.autograd.grad(y, x, seed_grad)
    per = g[0].detach().to("cpu", torch.float64).numpy()
    n = mode.depth.get(id(y), 0) + int(shape[0])  # + the final sum over input channels
    return per, centre, channels, n


def mean_gradient(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    output_index: int | Sequence[int] | None = None,
    output_channel: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> ChannelERF:
    r"""The expected input gradient of a model with its own (fixed) weights, channel by channel.

    Section 2.1 with the model's multi-channel weights, and Section 2.4's treatment of
    nonlinearities: every activation is its mean slope $\mathbb E[\sigma'(x)]$ for
    $x \sim \mathcal N(0, 1)$ (1/2 for ReLU), independent of everything else, and a max
    pool sends the gradient to one of its $n$ taps, each with probability $1/n$; then
    the model is linear, and its input gradient of the centre unit (seeded at every
    output channel, or ``output_channel``) is one float64 backward pass through the
    model itself, under the same operation table as `predicted_erf` with the weights,
    batch-norm scales, average pools and signs as they are. ``map`` is the gradient of
    the channel-summed input. For a linear model it is torch's plain input gradient;
    `erftheory.torch.exact_gradient` gives it in rationals for small models (they agree
    to rounding). The values are signed sums, so ``rounding_bound`` is NaN (no relative
    bound); ``activation`` is ``"paper"`` and ``variances`` is ``"gradient"``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> conv = nn.Conv1d(1, 2, 3, bias=False)
        >>> m = nn.Sequential(conv, nn.ReLU(), nn.Conv1d(2, 1, 1, bias=False))
        >>> with torch.no_grad():
        ...     _ = conv.weight.copy_(torch.tensor([[[1.0, 2.0, 1.0]], [[0.0, -2.0, 0.0]]]))
        ...     _ = m[2].weight.fill_(1.0)
        >>> mean_gradient(m, (1, 3)).map.tolist()   # (1/2) * ([1, 2, 1] + [0, -2, 0])
        [0.5, 0.0, 0.5]
    """
    shape = _check_shape(input_shape)
    if not isinstance(model, nn.Module):
        raise ERFTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dev = _device_for(device, dtype)

    def weights(w: torch.Tensor) -> torch.Tensor:
        return w.detach().to(dev, dtype)

    mode = _VariancePass(weights, None, dev, dtype, _param_names(model), square=False)
    per, centre, channels, n = _run(model, shape, mode, output_index, output_channel, dev, dtype)
    return ChannelERF(
        map=per.sum(axis=0),
        per_channel=per,
        centre=centre,
        output_channels=channels if output_channel is None else 1,
        factors=tuple(mode.used),
        operations=n,
        rounding_bound=float("nan"),
        activation="paper",
        variances="gradient",
    )
