r"""Pointwise activations with Gaussian inputs: their derivatives and factors (Section 2.4).

Under the independence assumption an activation $\sigma$ multiplies the expected
gradient by $\mathbb E[\sigma'(x)]$ and the expected squared gradient by
$\mathbb E[\sigma'(x)^2]$. For the smooth activations of modern CNNs these expectations
have no closed form in general; with inputs $x \sim \mathcal N(0, s^2)$ they are
one-dimensional integrals, computed here by mpmath's quadrature to 30 digits (split at
the points where $\sigma'$ is not smooth) and stored as float64.

`ACTIVATIONS` holds one `ActivationFunction` per activation: its derivative, its
parameters and its PyTorch names. It drives `erftheory.layers.Elementwise`, the
architecture file types of the same names, `erftheory.torch.to_torch` and
`erftheory.torch.from_torch`; adding an activation is adding one entry. tanh and the
logistic sigmoid, which have their own layers (`erftheory.layers.Tanh`,
`erftheory.layers.Sigmoid`), share `normal_factors`.

| name | $\sigma(x)$ | parameters | PyTorch |
|---|---|---|---|
| ``silu`` | $x\,\mathrm{sigmoid}(x)$ | | ``nn.SiLU``, ``F.silu`` |
| ``gelu`` | $x\,\Phi(x)$ | | ``nn.GELU()``, ``F.gelu`` |
| ``gelu_tanh`` | $\frac x2 (1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))$ | | ``nn.GELU(approximate='tanh')`` |
| ``hardswish`` | $x \min(\max(x + 3, 0), 6) / 6$ | | ``nn.Hardswish``, ``F.hardswish`` |
| ``hardsigmoid`` | $\min(\max(x + 3, 0), 6) / 6$ | | ``nn.Hardsigmoid``, ``F.hardsigmoid`` |
| ``mish`` | $x \tanh(\log(1 + e^x))$ | | ``nn.Mish``, ``F.mish`` |
| ``elu`` | $x$ for $x > 0$, $\alpha(e^x - 1)$ else | ``alpha`` (1) | ``nn.ELU``, ``F.elu`` |
| ``selu`` | $\lambda x$ for $x > 0$, $\lambda\alpha(e^x - 1)$ else (PyTorch's $\lambda, \alpha$) | | ``nn.SELU``, ``F.selu`` |
| ``celu`` | $x$ for $x > 0$, $\alpha(e^{x/\alpha} - 1)$ else | ``alpha`` (1) | ``nn.CELU``, ``F.celu`` |
| ``softplus`` | $\log(1 + e^{\beta x})/\beta$; $x$ where $\beta x > t$ | ``beta`` (1), ``threshold`` $t$ (20) | ``nn.Softplus``, ``F.softplus`` |

PReLU with one parameter $a$ is a leaky ReLU of slope $a$, whose factors are exact
(`erftheory.layers.LeakyReLU`); ``from_torch`` reads it as one.

Example:
    >>> g, s = normal_factors("silu", 1.0)
    >>> round(g, 12), round(s, 4)   # E[silu'] = 1/2 by symmetry
    (0.5, 0.3795)
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Any

from .schema import Option

__all__ = ["ACTIVATIONS", "ActivationFunction", "normal_factors"]

Derivative = Callable[..., Any]
"""``(mp, x, **params) -> σ'(x)`` in the mpmath context ``mp``."""


@dataclass(frozen=True)
class ActivationFunction:
    r"""A pointwise activation $\sigma$: its derivative, parameters and PyTorch names.

    Attributes:
        name: its name (the architecture file type and the key of `ACTIVATIONS`).
        derivative: $\sigma'(x)$ as ``derivative(mp, x, **params)`` in mpmath.
        params: its parameters, as options of kind ``"number"`` (exact Fractions).
        breaks: the points where $\sigma'$ is not smooth, as a function of the
            parameters (floats); the quadrature is split there and at 0.
        torch_module: the name of its module class in ``torch.nn``.
        torch_functions: its functional forms, ``"F.<name>"`` (``torch.nn.functional``)
            or ``"torch.<name>"``; their positional arguments after the input are the
            parameters, then the keys of ``torch_fixed``.
        torch_fixed: keyword arguments of the module (and attributes) that select this
            function among those sharing ``torch_module`` (GELU's ``approximate``).

    Example:
        >>> elu = ACTIVATIONS["elu"]
        >>> [p.name for p in elu.params], elu.torch_module
        (['alpha'], 'ELU')
        >>> import mpmath
        >>> elu.derivative(mpmath.mp, mpmath.mpf(-1), alpha=2) == 2 * mpmath.exp(-1)
        True
    """

    name: str
    derivative: Derivative
    params: tuple[Option, ...] = ()
    breaks: Callable[..., tuple[float, ...]] = field(default=lambda **_: ())
    torch_module: str = ""
    torch_functions: tuple[str, ...] = ()
    torch_fixed: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- derivatives
def _sigmoid(mp: Any, x: Any) -> Any:
    return 1 / (1 + mp.exp(-x))


def _d_tanh(mp: Any, x: Any) -> Any:
    return 1 - mp.tanh(x) ** 2


def _d_sigmoid(mp: Any, x: Any) -> Any:
    s = 1 / (1 + mp.exp(-x))
    return s * (1 - s)


def _d_silu(mp: Any, x: Any) -> Any:
    s = _sigmoid(mp, x)
    return s * (1 + x * (1 - s))


def _d_gelu(mp: Any, x: Any) -> Any:
    return mp.ncdf(x) + x * mp.npdf(x)


_GELU_C = 0.044715  # the constant of PyTorch's tanh approximation (a float there too)


def _d_gelu_tanh(mp: Any, x: Any) -> Any:
    k = mp.sqrt(2 / mp.pi)
    c = mp.mpf(_GELU_C)
    t = mp.tanh(k * (x + c * x**3))
    return (1 + t) / 2 + x * (1 - t * t) * k * (1 + 3 * c * x * x) / 2


def _d_hardswish(mp: Any, x: Any) -> Any:
    if x <= -3:
        return mp.zero
    if x >= 3:
        return mp.one
    return (2 * x + 3) / 6


def _d_hardsigmoid(mp: Any, x: Any) -> Any:
    return mp.one / 6 if -3 < x < 3 else mp.zero


def _d_mish(mp: Any, x: Any) -> Any:
    sp = mp.log1p(mp.exp(x))
    t = mp.tanh(sp)
    return t + x * (1 - t * t) * _sigmoid(mp, x)


def _mpf(mp: Any, f: Fraction) -> Any:
    return mp.mpf(f.numerator) / f.denominator


def _d_elu(mp: Any, x: Any, alpha: Fraction) -> Any:
    return mp.one if x > 0 else _mpf(mp, alpha) * mp.exp(x)


_SELU_LAMBDA = "1.0507009873554804934193349852946"  # PyTorch's constants
_SELU_ALPHA = "1.6732632423543772848170429916717"


def _d_selu(mp: Any, x: Any) -> Any:
    lam = mp.mpf(_SELU_LAMBDA)
    return lam if x > 0 else lam * mp.mpf(_SELU_ALPHA) * mp.exp(x)


def _d_celu(mp: Any, x: Any, alpha: Fraction) -> Any:
    return mp.one if x > 0 else mp.exp(x / _mpf(mp, alpha))


def _d_softplus(mp: Any, x: Any, beta: Fraction, threshold: Fraction) -> Any:
    bx = _mpf(mp, beta) * x
    return mp.one if bx > _mpf(mp, threshold) else _sigmoid(mp, bx)


def _in(low: float, high: float) -> tuple[Callable[[Fraction], bool], str]:
    return (lambda f: low <= f <= high), f"a number in [{low:g}, {high:g}]"


_ALPHA_RANGE = _in(-1e6, 1e6)
_POSITIVE = ((lambda f: Fraction(1, 10**3) <= f <= 10**3), "a positive number in [1e-3, 1e3]")


def _number(name: str, default: Any, valid: tuple[Callable[[Fraction], bool], str]) -> Option:
    return Option(
        name, "number", Fraction(default), valid=valid[0], valid_text=valid[1], quadrature=True
    )


ACTIVATIONS: dict[str, ActivationFunction] = {
    f.name: f
    for f in (
        ActivationFunction("silu", _d_silu, torch_module="SiLU", torch_functions=("F.silu",)),
        ActivationFunction(
            "gelu",
            _d_gelu,
            torch_module="GELU",
            torch_functions=("F.gelu",),
            torch_fixed={"approximate": "none"},
        ),
        ActivationFunction(
            "gelu_tanh",
            _d_gelu_tanh,
            torch_module="GELU",
            torch_functions=("F.gelu",),
            torch_fixed={"approximate": "tanh"},
        ),
        ActivationFunction(
            "hardswish",
            _d_hardswish,
            breaks=lambda: (-3.0, 3.0),
            torch_module="Hardswish",
            torch_functions=("F.hardswish",),
        ),
        ActivationFunction(
            "hardsigmoid",
            _d_hardsigmoid,
            breaks=lambda: (-3.0, 3.0),
            torch_module="Hardsigmoid",
            torch_functions=("F.hardsigmoid",),
        ),
        ActivationFunction("mish", _d_mish, torch_module="Mish", torch_functions=("F.mish",)),
        ActivationFunction(
            "elu",
            _d_elu,
            (_number("alpha", 1, _ALPHA_RANGE),),
            torch_module="ELU",
            torch_functions=("F.elu", "F.elu_"),
        ),
        ActivationFunction(
            "selu",
            _d_selu,
            torch_module="SELU",
            torch_functions=("F.selu", "F.selu_", "torch.selu", "torch.selu_"),
        ),
        ActivationFunction(
            "celu",
            _d_celu,
            (_number("alpha", 1, _POSITIVE),),
            torch_module="CELU",
            torch_functions=("F.celu", "F.celu_", "torch.celu", "torch.celu_"),
        ),
        ActivationFunction(
            "softplus",
            _d_softplus,
            (_number("beta", 1, _POSITIVE), _number("threshold", 20, _in(-1e6, 1e6))),
            breaks=lambda beta, threshold: (float(threshold / beta),),
            torch_module="Softplus",
            torch_functions=("F.softplus",),
        ),
    )
}
"""Every pointwise activation of `erftheory.layers.Elementwise`, by name."""

_DERIVATIVES: dict[str, Derivative] = {"tanh": _d_tanh, "sigmoid": _d_sigmoid}


@cache
def normal_factors(
    fn: str, std: float, params: tuple[tuple[str, Fraction], ...] = ()
) -> tuple[float, float]:
    r"""$\mathbb E[\sigma'(x)]$ and $\mathbb E[\sigma'(x)^2]$ for $x \sim \mathcal N(0, s^2)$.

    mpmath's quadrature at 30 digits over $(-\infty, 0)$ and $(0, \infty)$, split further
    where $\sigma'$ is not smooth; cached.

    Args:
        fn: ``"tanh"``, ``"sigmoid"`` or a name in `ACTIVATIONS`.
        std: $s$.
        params: the parameters, as ``(name, value)`` pairs.

    Example:
        >>> [round(v, 4) for v in normal_factors("tanh", 1.0)]
        [0.6057, 0.4644]
    """
    import mpmath

    mp = mpmath.mp.clone()
    mp.dps = 30
    values = dict(params)
    breaks: tuple[float, ...]
    if fn in _DERIVATIVES:
        derivative, breaks = _DERIVATIVES[fn], ()
    else:
        act = ACTIVATIONS[fn]
        derivative, breaks = act.derivative, act.breaks(**values)
    points = sorted({0.0, *(b for b in breaks if math.isfinite(b))})
    # tanh and sigmoid integrate over exactly [-inf, 0, inf], as they always have.
    cuts = [0] if points == [0.0] else [mp.mpf(p) for p in points]

    def expect(power: int) -> float:
        def f(x: Any) -> Any:
            return derivative(mp, x, **values) ** power * mp.npdf(x, 0, std)

        return float(mp.quad(f, [-mp.inf, *cuts, mp.inf]))

    return expect(1), expect(2)
