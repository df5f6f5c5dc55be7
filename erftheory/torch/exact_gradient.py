r"""Exact multi-channel gradients of linear torch models with their own weights (issue 15).

The layer algebra of `erftheory.network` is single-channel. For a *linear* model (no
activation, or activations replaced by constant factors) with fixed multi-channel
weights, the gradient of one output unit with respect to every input pixel and channel
is still a finite exact computation: back-propagate the seed through the model's graph
with rational arithmetic. A convolution $y_{c'}(u) = \sum_c \sum_k W_{c'ck}\,
x_c(s u + d k - p)$ sends the gradient $g_{y}$ of its output to

$$g_{x}(c, v) = \sum_{c'} \sum_{k:\ s u + d k - p = v} W_{c'ck}\, g_{y}(c', u),$$

that is, with generating functions, $G_{x,c}(z) = z^{-p} \sum_{c'} W_{c'c}(z^d)\,
G_{y,c'}(z^s)$: a matrix of polynomials applied to a vector of polynomials, truncated to
the map's pixels (the padding receives nothing). Branches that meet in an addition add
their gradients; a concatenation splits them by channel; batch norm in ``eval()`` mode
is a per-channel scale $\gamma_c / \sqrt{\sigma_c^2 + \epsilon}$; average pooling a
convolution with weights $1/k$. Every float64 weight is converted to the rational it
*is* (no rounding), so the result is the exact gradient of the model as stored; torch's
float64 autograd agrees to rounding (`tests/test_exact_gradient.py` checks
$10^{-12}$ of the peak on random models with strides, dilations, groups, residual and
concatenated branches).

The values are kept as numpy object arrays of python-flint ``fmpq``: exact, and fast
enough for the small models exact rationals serve (a few channels, maps of a few dozen
pixels). For real models use float64 autograd, or `erftheory.torch.channels` for the
expected-square theory.
"""

from __future__ import annotations

import copy
import math
import numbers
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from .._errors import ERFTypeError, ERFValueError

__all__ = ["ExactGradient", "exact_expected_square", "exact_gradient"]


def _flint() -> Any:
    import flint

    return flint


def _q(x: float) -> Any:
    """The exact rational of a float (python-flint ``fmpq``)."""
    fr = Fraction(float(x))
    return _flint().fmpq(fr.numerator, fr.denominator)


def _q_array(t: torch.Tensor) -> np.ndarray:
    a = t.detach().to("cpu", torch.float64).numpy()
    out = np.empty(a.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(a.reshape(-1)):
        flat[i] = _q(v)
    return out


def _zeros(shape: Sequence[int]) -> np.ndarray:
    zero = _flint().fmpq(0)
    out = np.empty(tuple(shape), dtype=object)
    out.fill(zero)
    return out


@dataclass(frozen=True)
class ExactGradient:
    r"""The exact input gradient (or its expected square) of one output unit.

    Attributes:
        per_channel: ``(C, *spatial)`` numpy object array of ``fractions.Fraction``:
            for ``kind="gradient"``, $\partial \sum_{c' \in S} y_{c'}(o) / \partial
            x_c(v)$ for every input channel $c$ and pixel $v$; for
            ``kind="expected_square"``, the expected square of that derivative over the
            random weights (`exact_expected_square`).
        output_index: the output unit $o$ (one index per spatial axis).
        output_channels: the seeded output channels $S$ (all of them by default).
        kind: ``"gradient"`` or ``"expected_square"``.
    """

    per_channel: np.ndarray
    output_index: tuple[int, ...]
    output_channels: tuple[int, ...]
    kind: str = "gradient"

    @property
    def summed(self) -> np.ndarray:
        """Summed over input channels, ``(*spatial)`` of ``Fraction``: the gradient of
        the channel-summed input, or (expected square) its expected square, since the
        first layer's independent weights make the cross terms between input channels
        vanish."""
        return np.sum(self.per_channel, axis=0)

    def to_float(self, summed: bool = True) -> np.ndarray:
        """The gradient as float64 (rounded once from the exact values)."""
        a = self.summed if summed else self.per_channel
        return np.vectorize(float, otypes=[np.float64])(a) if a.size else np.zeros(a.shape)


def _as_fraction(a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    flat, src = out.reshape(-1), a.reshape(-1)
    for i, v in enumerate(src):
        q = v
        flat[i] = Fraction(int(q.p), int(q.q))
    return out


def _conv_backward(
    g: np.ndarray, w: np.ndarray, in_shape: tuple[int, ...], stride, dilation, padding, groups
) -> np.ndarray:
    """$g_x$ of a convolution from $g_y$ (object arrays; ``w`` is ``(C', C/groups, *k)``)."""
    c_out = w.shape[0]
    c_in_g = w.shape[1]
    c_in = c_in_g * groups
    out_per_g = c_out // groups
    spatial_in = in_shape[1:]
    ndim = len(spatial_in)
    gx = _zeros((c_in, *spatial_in))
    out_spatial = g.shape[1:]
    for co in range(c_out):
        grp = co // out_per_g
        gy = g[co]
        if not any(v != 0 for v in gy.reshape(-1)):
            continue
        for ci_local in range(c_in_g):
            ci = grp * c_in_g + ci_local
            for k in np.ndindex(*w.shape[2:]):
                wk = w[(co, ci_local, *k)]
                if wk == 0:
                    continue
                # input position v = s*u + d*k - p for output position u
                src: list[slice] = []
                dst: list[slice] = []
                ok = True
                for ax in range(ndim):
                    s, d, p = stride[ax], dilation[ax], padding[ax]
                    off = d * k[ax] - p
                    n_out, n_in = out_spatial[ax], spatial_in[ax]
                    # output positions u with 0 <= s*u + off < n_in
                    lo = max(0, (s - 1 - off) // s)
                    hi = min(n_out - 1, (n_in - 1 - off) // s)
                    if hi < lo:
                        ok = False
                        break
                    src.append(slice(lo, hi + 1))
                    v0 = s * lo + off
                    dst.append(slice(v0, v0 + s * (hi - lo) + 1, s))
                if not ok:
                    continue
                gx[(ci, *dst)] = gx[(ci, *dst)] + wk * gy[tuple(src)]
    return gx


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    return tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else (int(v),) * n


def exact_gradient(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    output_index: int | Sequence[int] | None = None,
    output_channels: int | Sequence[int] | None = None,
    activation_factors: dict[type, Any] | None = None,
) -> ExactGradient:
    r"""The exact gradient of one output unit of a linear model, per input channel.

    The model is traced with ``torch.fx`` and its graph back-propagated in rational
    arithmetic (see the module documentation). The seed is 1 at output unit
    ``output_index`` (default: the centre ``(n - 1) // 2`` per axis) of every channel
    in ``output_channels`` (default: all, the convention of
    `erftheory.torch.empirical_erf`), so the result is
    $\partial \sum_{c' \in S} y_{c'}(o) / \partial x_c(v)$.

    Supported: ``Conv1d``/``Conv2d`` (any stride, dilation, zero padding, groups, bias
    ignored: it does not change a gradient), ``BatchNorm`` in ``eval()`` mode (its
    per-channel scale), ``AvgPool`` (zero padding, ``count_include_pad=True``),
    ``Identity`` and ``Dropout`` (``eval()``), additions of feature maps, ``torch.cat``
    over channels, and activations listed in ``activation_factors`` (a module type to
    its constant derivative, e.g. ``{nn.ReLU: Fraction(1, 2)}`` for Section 2.4's mean
    factor). Anything else is refused by name.

    Args:
        model: a torch module taking ``(N, C, *spatial)``.
        input_shape: ``(C, *spatial)``.
        output_index: the output unit.
        output_channels: the seeded output channels.
        activation_factors: module types treated as constant derivatives.

    Returns:
        `ExactGradient`.

    Raises:
        ERFValueError: an unsupported operation (named), bad shapes or indices.
        ERFTypeError: a model that is not an ``nn.Module``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = nn.Conv1d(2, 3, 3, bias=False).double()
        >>> with torch.no_grad():
        ...     _ = m.weight.copy_(torch.arange(18.0).reshape(3, 2, 3) / 4)
        >>> g = exact_gradient(m, (2, 5))
        >>> # W[c', 0, k] = (6 c' + k) / 4; the centre unit u = 1 reads v = 1 + k:
        >>> [str(v) for v in g.per_channel[0]]   # sum over c' = (18 + 3 k) / 4
        ['0', '9/2', '21/4', '6', '0']
    """
    return _run(model, input_shape, output_index, output_channels, activation_factors, None)


def exact_expected_square(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    variances: str | Callable[[nn.Module], torch.Tensor] = "model",
    output_index: int | Sequence[int] | None = None,
    output_channels: int | Sequence[int] | None = None,
    activation_factors: dict[type, Any] | None = None,
) -> ExactGradient:
    r"""Eq. (8) channel by channel, exactly: the expected squared gradient of a random model.

    For zero-mean random convolution weights, independent across taps and channels,
    with per-(output, input, tap) variances $v_{c'c}(m)$, the expected squared
    gradient propagates without any average over channels,

    $$\mathrm{Var}[g_{p-1}(c, \cdot)] = \sum_{c'} v_{c'c} * \mathrm{Var}[g_p(c', \cdot)]$$

    (the cross terms vanish because distinct taps and channels have independent
    zero-mean weights): the back-propagation of `exact_gradient` with every weight
    replaced by its variance. Batch norm contributes its squared scale, average pooling
    its squared weights $1/k^2$, an activation the factor given in
    ``activation_factors`` (its $\mathbb E[\sigma'(x)^2]$ under Section 2.4's
    independence assumption, e.g. ``{nn.ReLU: Fraction(1, 2)}``), an addition of
    branches the sum of their variances (a random branch is uncorrelated with the other),
    a concatenation its split. The seed is 1 at unit ``output_index`` of every channel in
    ``output_channels`` (default all: the convention of `erftheory.torch.empirical_erf`,
    whose sum over output channels has no cross terms either).

    Exact for linear models whose convolutions are all random; a *fixed* spatial mixing
    (an average pool) is exact when what reaches it from above is uncorrelated across
    its taps (the first one met going down from the output), an approximation for a
    second one below (`erftheory.network` treats such paths coherently, one channel at
    a time).

    Args:
        model: a torch module taking ``(N, C, *spatial)``.
        input_shape: ``(C, *spatial)``.
        variances: ``"model"`` (the squared weights: what the model's own weights
            predict for random weights of the same sizes) or a function of a
            convolution module returning its per-tap variances, the weight's shape.
        output_index, output_channels, activation_factors: as `exact_gradient`.

    Returns:
        `ExactGradient` with ``kind="expected_square"``.

    Raises:
        ERFValueError: as `exact_gradient`; variances of the wrong shape or negative.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Conv1d(1, 2, 3, bias=False), nn.Conv1d(2, 1, 1, bias=False))
        >>> v = {3: torch.tensor([1.0, 2.0, 3.0]), 1: torch.ones(1)}  # by kernel size
        >>> var = lambda conv: v[conv.kernel_size[0]].expand(conv.weight.shape)
        >>> [str(x) for x in exact_expected_square(m, (1, 3), variances=var).summed]
        ['2', '4', '6']
    """
    if variances == "model":

        def square(mod: nn.Module) -> torch.Tensor:
            w: Any = mod.weight
            return torch.as_tensor(w).detach().double() ** 2

        chosen: Callable[[nn.Module], torch.Tensor] = square
    elif callable(variances):
        chosen = variances
    else:
        raise ERFValueError(
            f"variances must be 'model' or a function of a convolution module, got {variances!r}"
        )
    return _run(model, input_shape, output_index, output_channels, activation_factors, chosen)


def _run(
    model: Any,
    input_shape: Any,
    output_index: Any,
    output_channels: Any,
    activation_factors: Any,
    variances: Callable[[nn.Module], torch.Tensor] | None,
) -> ExactGradient:
    if not isinstance(model, nn.Module):
        raise ERFTypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise ERFValueError(
            f"input_shape must be (C, L) or (C, H, W) of positive ints, got {input_shape!r}"
        )
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    factors = dict(activation_factors or {})
    copy_ = copy.deepcopy(model).eval().double()  # the model itself is not changed
    if not list(copy_.children()):  # a bare layer: trace it as a module, not its forward
        copy_ = nn.Sequential(copy_)
    try:
        gm = symbolic_trace(copy_)
    except Exception as e:  # torch.fx raises many types
        raise ERFValueError(
            f"torch.fx cannot trace the model: {str(e).splitlines()[0][:200]}"
        ) from e
    ShapeProp(gm).propagate(torch.zeros((1, *shape), dtype=torch.float64))
    return _backward(gm, shape, output_index, output_channels, _Rules(factors, variances))


@dataclass(frozen=True)
class _Rules:
    """What a layer does: the gradient's rules, or (``variances`` set) the variances'."""

    factors: dict[type, Any]
    variances: Callable[[nn.Module], torch.Tensor] | None

    @property
    def square(self) -> bool:
        return self.variances is not None

    def weight(self, mod: nn.Module, name: str) -> np.ndarray:
        w: torch.Tensor = mod.weight  # type: ignore[assignment]
        if self.variances is None:
            return _q_array(w)
        v = torch.as_tensor(self.variances(mod), dtype=torch.float64)
        if tuple(v.shape) != tuple(w.shape) or bool((v < 0).any()) or not bool(v.isfinite().all()):
            raise ERFValueError(
                f"{name}: variances must be finite, >= 0 and of the weight's shape "
                f"{tuple(w.shape)}, got shape {tuple(v.shape)}"
            )
        return _q_array(v)

    def scale(self, q: Any) -> Any:
        return q * q if self.square else q


def _node_shape(node: Any) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise ERFValueError(f"node {node.name!r} ({node.op} {node.target}) has no tensor shape")
    return tuple(int(s) for s in meta.shape[1:])


def _backward(
    gm: Any, shape: Any, output_index: Any, output_channels: Any, rules: _Rules
) -> ExactGradient:
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    outputs = [n for n in nodes if n.op == "output"]
    if len(placeholders) != 1 or len(outputs) != 1:
        raise ERFValueError("the model must take one input tensor and return one tensor")
    end = outputs[0].args[0]
    out_shape = _node_shape(end)
    c_out, spatial = out_shape[0], out_shape[1:]
    if len(spatial) != len(shape) - 1:
        raise ERFValueError(f"the output {out_shape} is not a feature map of the input's rank")
    if output_index is None:
        o = tuple((n - 1) // 2 for n in spatial)
    else:
        o = _tuple(output_index, len(spatial))
    if len(o) != len(spatial) or not all(0 <= a < n for a, n in zip(o, spatial, strict=True)):
        raise ERFValueError(f"output_index {output_index!r} is not a unit of the output {spatial}")
    if output_channels is None:
        chans = tuple(range(c_out))
    else:
        chans = (
            _tuple(output_channels, 1)
            if isinstance(output_channels, numbers.Integral)
            else tuple(int(c) for c in output_channels)
        )
    if not chans or not all(0 <= c < c_out for c in chans):
        raise ERFValueError(f"output_channels {output_channels!r} must be in 0 .. {c_out - 1}")
    one = _flint().fmpq(1)
    grads: dict[Any, np.ndarray] = {}
    seed = _zeros(out_shape)
    for c in chans:
        seed[(c, *o)] = one
    grads[end] = seed
    modules = dict(gm.named_modules())

    def send(node: Any, g: np.ndarray) -> None:
        if node in grads:
            grads[node] = grads[node] + g
        else:
            grads[node] = g

    for node in reversed(nodes):
        if node.op in ("output",) or node not in grads:
            continue
        g = grads.pop(node)
        if node.op == "placeholder":
            kind = "expected_square" if rules.square else "gradient"
            return ExactGradient(_as_fraction(g), o, chans, kind)
        src = [a for a in node.args if hasattr(a, "op")]
        if node.op == "call_module":
            mod = modules[node.target]
            ins = _node_shape(node.args[0])
            send(node.args[0], _module_backward(mod, g, ins, node, rules))
        elif node.op == "call_function" and node.target in (operator.add, torch.add, operator.iadd):
            for a in src:
                if _node_shape(a) != _node_shape(node):
                    raise ERFValueError(
                        f"addition {node.name!r} broadcasts; only equal shapes are supported"
                    )
                send(a, g)
        elif node.op == "call_function" and node.target is torch.cat:
            parts = node.args[0]
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if dim not in (1, -len(shape) - 1):
                raise ERFValueError(
                    f"torch.cat {node.name!r} over dim {dim}; only channels (dim=1)"
                )
            at = 0
            for a in parts:
                k = _node_shape(a)[0]
                send(a, g[at : at + k])
                at += k
        else:
            raise ERFValueError(
                f"exact_gradient does not support {node.op} {_name(node.target)!r} "
                f"(node {node.name!r}); supported: convolutions, batch norm, average pooling, "
                f"identity, dropout, additions, channel concatenation and the activations "
                f"in activation_factors"
            )
    raise ERFValueError("the output does not depend on the input")


def _name(target: Any) -> str:
    return str(getattr(target, "__name__", target))


def _module_backward(
    mod: nn.Module, g: np.ndarray, ins: tuple[int, ...], node: Any, rules: _Rules
) -> np.ndarray:
    n = len(ins) - 1
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        if mod.padding_mode != "zeros":
            raise ERFValueError(f"{node.target!r}: padding_mode {mod.padding_mode!r}; only 'zeros'")
        pad = mod.padding
        if isinstance(pad, str):
            if pad == "valid":
                pad = (0,) * n
            else:  # 'same' with stride 1: total d*(k-1), left half
                pad = tuple(mod.dilation[i] * (mod.kernel_size[i] - 1) // 2 for i in range(n))
        return _conv_backward(
            g,
            rules.weight(mod, str(node.target)),
            ins,
            _tuple(mod.stride, n),
            _tuple(mod.dilation, n),
            _tuple(pad, n),
            mod.groups,
        )
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if mod.running_var is None:
            raise ERFValueError(f"{node.target!r}: batch norm without running statistics")
        scale = 1.0 / torch.sqrt(mod.running_var.double() + mod.eps)
        if mod.weight is not None:
            scale = scale * mod.weight.double()
        s = np.vectorize(rules.scale, otypes=[object])(_q_array(scale))
        return g * s.reshape((-1,) + (1,) * n)
    if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d)):
        if (
            not mod.count_include_pad
            or getattr(mod, "ceil_mode", False)
            or getattr(mod, "divisor_override", None)
        ):
            raise ERFValueError(
                f"{node.target!r}: only count_include_pad=True, floor mode average pooling"
            )
        k = _tuple(mod.kernel_size, n)
        c = ins[0]
        w = _zeros((c, 1, *k))
        inv = rules.scale(_flint().fmpq(1, math.prod(k)))
        w.fill(inv)
        stride = _tuple(mod.stride if mod.stride is not None else mod.kernel_size, n)
        return _conv_backward(g, w, ins, stride, (1,) * n, _tuple(mod.padding, n), c)
    if isinstance(mod, (nn.Identity, nn.Dropout)):
        return g
    for typ, f in rules.factors.items():
        if isinstance(mod, typ):
            fr = Fraction(f)
            return g * _flint().fmpq(fr.numerator, fr.denominator)
    raise ERFValueError(
        f"exact_gradient does not support module {node.target!r} of type {type(mod).__name__}; "
        f"give its constant derivative in activation_factors if it is an activation"
    )
