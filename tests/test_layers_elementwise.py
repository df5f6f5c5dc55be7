r"""The pointwise activations of `erftheory.layers.Elementwise`, each checked by routes
independent of its quadrature.

- the derivative formulas against numerical differentiation of $\sigma$ itself, written
  here from PyTorch's definitions;
- the float factors against mpmath quadrature at 40 digits with finer subdivisions
  (relative tolerance $10^{-13}$: float64 rounding is $10^{-16}$, the 30-digit quadrature
  far below);
- closed forms where they exist (Hardsigmoid, Hardswish, ELU, SELU, CELU), and the
  symmetry $\mathbb E[\sigma'] = 1/2$ of $x \cdot (\tfrac12 + \text{odd})$ activations;
- the limits $s \to 0$ and $s \to \infty$ of the input's standard deviation;
- with torch: Monte Carlo over PyTorch's own autograd of the module `to_torch` builds
  (fixed seed, within 5 standard errors), and `from_torch` reading modules and functions.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import pytest

from erftheory import ERFTypeError, ERFValueError, Network
from erftheory.arch import arch_to_dict, parse_arch
from erftheory.layers import MAX_INPUT_STD, MIN_INPUT_STD, Conv, Elementwise, LeakyReLU
from erftheory.layers.elementwise import ACTIVATIONS, normal_factors

NAMES = list(ACTIVATIONS)
LAMBDA = "1.0507009873554804934193349852946"  # SELU's constants in PyTorch
ALPHA = "1.6732632423543772848170429916717"

# One parameter set per case: the defaults and a non-default one where there are parameters.
CASES: list[tuple[str, dict[str, Any]]] = [(n, {}) for n in NAMES] + [
    ("elu", {"alpha": Fraction(1, 2)}),
    ("elu", {"alpha": -2}),
    ("celu", {"alpha": 3}),
    ("softplus", {"beta": 2, "threshold": 1}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'default'}" for n, p in CASES]


def _params(name: str, given: dict[str, Any]) -> dict[str, Fraction]:
    return {p.name: Fraction(given.get(p.name, p.default)) for p in ACTIVATIONS[name].params}


def sigma(name: str, x: Any, p: dict[str, Fraction]) -> Any:
    """The activation itself, from PyTorch's documentation (mpmath)."""
    mp = mpmath.mp
    f = {k: mp.mpf(v.numerator) / v.denominator for k, v in p.items()}
    if name == "silu":
        return x / (1 + mp.exp(-x))
    if name == "gelu":
        return x * mp.ncdf(x)
    if name == "gelu_tanh":
        return x / 2 * (1 + mp.tanh(mp.sqrt(2 / mp.pi) * (x + mp.mpf(0.044715) * x**3)))
    if name == "hardswish":
        return x * min(max(x + 3, 0), 6) / 6
    if name == "hardsigmoid":
        return min(max(x + 3, 0), 6) / mp.mpf(6)
    if name == "mish":
        return x * mp.tanh(mp.log(1 + mp.exp(x)))
    if name == "elu":
        return x if x > 0 else f["alpha"] * (mp.exp(x) - 1)
    if name == "selu":
        return mp.mpf(LAMBDA) * (x if x > 0 else mp.mpf(ALPHA) * (mp.exp(x) - 1))
    if name == "celu":
        return x if x > 0 else f["alpha"] * (mp.exp(x / f["alpha"]) - 1)
    assert name == "softplus"
    b, t = f["beta"], f["threshold"]
    return x if b * x > t else mp.log(1 + mp.exp(b * x)) / b


def _kinks(name: str, p: dict[str, Fraction]) -> list[float]:
    return [0.0, *ACTIVATIONS[name].breaks(**p)]


@pytest.mark.parametrize(("name", "given"), CASES, ids=IDS)
def test_derivatives_match_numerical_differentiation(name: str, given: dict[str, Any]) -> None:
    p = _params(name, given)
    kinks = _kinks(name, p)
    with mpmath.workdps(40):
        for i in range(-40, 41):
            x = mpmath.mpf(i) / 7 + mpmath.mpf(1) / 1000
            if any(abs(x - k) < 0.01 for k in kinks):
                continue
            numeric = mpmath.diff(lambda u: sigma(name, u, p), x)
            exact = ACTIVATIONS[name].derivative(mpmath.mp, x, **p)
            assert abs(numeric - exact) < mpmath.mpf(10) ** -25, (name, x)


def _fine_quadrature(name: str, std: float, p: dict[str, Fraction]) -> tuple[Any, Any]:
    """The factors at 40 digits, split at the kinks and at multiples of the std."""
    act = ACTIVATIONS[name]
    with mpmath.workdps(40):
        mp = mpmath.mp
        s = mp.mpf(std)
        points = {mp.mpf(k) for k in _kinks(name, p)} | {
            s * k for k in (-8, -4, -2, -1, 1, 2, 4, 8)
        }
        cuts = [-mp.inf, *sorted(points), mp.inf]

        def expect(power: int) -> Any:
            return mp.quad(lambda x: act.derivative(mp, x, **p) ** power * mp.npdf(x, 0, s), cuts)

        return expect(1), expect(2)


@pytest.mark.parametrize(("name", "given"), CASES, ids=IDS)
def test_factors_against_a_finer_quadrature(name: str, given: dict[str, Any]) -> None:
    std = 1.7
    layer = Elementwise(name, input_std=std, **given)
    g, q = _fine_quadrature(name, std, _params(name, given))
    assert float(layer.factor("gradient")) == pytest.approx(float(g), rel=1e-13, abs=1e-300)
    assert float(layer.factor("expected_square")) == pytest.approx(float(q), rel=1e-13)


def _closed_form(name: str, std: float, p: dict[str, Fraction]) -> tuple[Any, Any]:
    mp = mpmath.mp
    s = mp.mpf(std)
    f = {k: mp.mpf(v.numerator) / v.denominator for k, v in p.items()}
    if name in ("hardsigmoid", "hardswish"):
        inside = 2 * mp.ncdf(3 / s) - 1  # P(|x| < 3)
        if name == "hardsigmoid":
            return inside / 6, inside / 36
        above = 1 - mp.ncdf(3 / s)
        x2_inside = s**2 * (inside - 2 * (3 / s) * mp.npdf(3 / s))  # E[x^2; |x| < 3]
        return above + inside / 2, above + (4 * x2_inside + 9 * inside) / 36

    def below(a: Any) -> Any:  # E[exp(a x); x < 0]
        return mp.exp(a * a * s * s / 2) * mp.ncdf(-a * s)

    if name == "elu":
        a = f["alpha"]
        return 1 / mp.mpf(2) + a * below(1), 1 / mp.mpf(2) + a * a * below(2)
    if name == "selu":
        lam, la = mp.mpf(LAMBDA), mp.mpf(LAMBDA) * mp.mpf(ALPHA)
        return lam / 2 + la * below(1), lam**2 / 2 + la**2 * below(2)
    assert name == "celu"
    a = f["alpha"]
    return 1 / mp.mpf(2) + below(1 / a), 1 / mp.mpf(2) + below(2 / a)


CLOSED = [c for c in CASES if c[0] in ("hardsigmoid", "hardswish", "elu", "selu", "celu")]


@pytest.mark.parametrize(("name", "given"), CLOSED, ids=[IDS[CASES.index(c)] for c in CLOSED])
@pytest.mark.parametrize("std", [1e-3, 0.7, 40.0])
def test_closed_forms(name: str, given: dict[str, Any], std: float) -> None:
    layer = Elementwise(name, input_std=std, **given)
    with mpmath.workdps(40):
        g, q = _closed_form(name, std, _params(name, given))
    assert float(layer.factor("gradient")) == pytest.approx(float(g), rel=1e-13)
    assert float(layer.factor("expected_square")) == pytest.approx(float(q), rel=1e-13)


@pytest.mark.parametrize("name", ["silu", "gelu", "gelu_tanh", "hardswish", "softplus"])
@pytest.mark.parametrize("std", [0.5, 1.0, 3.0])
def test_mean_slope_is_one_half_by_symmetry(name: str, std: float) -> None:
    # sigma(x) - x/2 is even, so sigma' - 1/2 is odd (softplus: up to e^-20 beyond its threshold)
    assert abs(float(Elementwise(name, input_std=std).factor("gradient")) - 0.5) < 1e-14


def _limits(name: str, p: dict[str, Fraction], small: bool) -> tuple[float, float]:
    """(E[σ'], E[σ'^2]) as s -> 0 (the mean of the one-sided slopes at 0) or s -> inf."""
    if small:
        left = right = None
        for x, side in ((-1e-12, "left"), (1e-12, "right")):
            d = float(ACTIVATIONS[name].derivative(mpmath.mp, mpmath.mpf(x), **p))
            left, right = (d, right) if side == "left" else (left, d)
    else:
        left = float(ACTIVATIONS[name].derivative(mpmath.mp, mpmath.mpf(-1e30), **p))
        right = float(ACTIVATIONS[name].derivative(mpmath.mp, mpmath.mpf(1e30), **p))
    assert left is not None and right is not None
    return (left + right) / 2, (left * left + right * right) / 2


@pytest.mark.parametrize(
    ("name", "given"), [*CASES[: len(NAMES)], CASES[-1]], ids=[*NAMES, IDS[-1]]
)
@pytest.mark.parametrize("small", [True, False], ids=["s=1e-6", "s=1e6"])
def test_extreme_input_stds_tend_to_their_limits(
    name: str, given: dict[str, Any], small: bool
) -> None:
    layer = Elementwise(name, input_std=MIN_INPUT_STD if small else MAX_INPUT_STD, **given)
    g, q = _limits(name, _params(name, given), small)
    assert float(layer.factor("gradient")) == pytest.approx(g, abs=1e-5)
    assert float(layer.factor("expected_square")) == pytest.approx(q, abs=1e-5)


def test_normal_factors_keeps_tanh_and_sigmoid() -> None:
    assert [round(v, 4) for v in normal_factors("tanh", 1.0)] == [0.6057, 0.4644]
    assert [round(v, 4) for v in normal_factors("sigmoid", 1.0)] == [0.2066, 0.0448]


# --------------------------------------------------------------------------- the layer
def test_construction_errors() -> None:
    with pytest.raises(ERFValueError, match="unknown activation 'swish'; the activations are"):
        Elementwise("swish")
    with pytest.raises(ERFTypeError, match=r"silu takes no parameters .*got 'alpha'"):
        Elementwise("silu", alpha=1)
    with pytest.raises(ERFTypeError, match="softplus takes the parameters beta, threshold"):
        Elementwise("softplus", gamma=1)
    with pytest.raises(ERFValueError, match=r"alpha of celu must be a positive number in \[1e-3"):
        Elementwise("celu", alpha=0)
    with pytest.raises(ERFValueError, match="input_std must be in"):
        Elementwise("gelu", input_std=0)
    with pytest.raises(ERFTypeError, match="alpha must be a real number"):
        Elementwise("elu", alpha=[1])


def test_repr_params_and_describe() -> None:
    layer = Elementwise("softplus", beta="1/2", input_std=2)
    assert repr(layer) == "Elementwise('softplus', beta=1/2, input_std=2.0)"
    assert layer.params == {"beta": Fraction(1, 2), "threshold": 20}
    assert layer.describe() == "softplus" and layer.type_name == "softplus"
    assert repr(Elementwise("elu", alpha=1.0)) == "Elementwise('elu')"


def test_in_a_network_the_factor_scales_the_profile() -> None:
    net = Network([Conv([1, 2, 1]), Elementwise("hardsigmoid"), Conv([1, 1])])
    f = Fraction(float(Elementwise("hardsigmoid").factor("gradient")))
    assert net.profile().coefficients == [f * c for c in (1, 3, 3, 1)]


# --------------------------------------------------------------------------- arch files
def test_arch_types_parse_and_write_back() -> None:
    net = parse_arch(
        [
            {"conv": {"size": 3}},
            "silu",
            {"elu": {"alpha": "1/2"}},
            {"softplus": {"beta": 2, "threshold": 10, "input_std": 0.5}},
            {"gelu_tanh": None},
        ]
    )
    assert [repr(x) for x in net.layers[1:]] == [
        "Elementwise('silu')",
        "Elementwise('elu', alpha=1/2)",
        "Elementwise('softplus', beta=2, threshold=10, input_std=0.5)",
        "Elementwise('gelu_tanh')",
    ]
    assert arch_to_dict(net)["layers"][1:] == [
        "silu",
        {"elu": {"alpha": "1/2"}},
        {"softplus": {"beta": 2, "threshold": 10, "input_std": 0.5}},
        "gelu_tanh",
    ]


@pytest.mark.parametrize(
    ("doc", "cls", "message"),
    [
        ([{"celu": {"alpha": 0}}], ERFValueError, "layers[0].celu.alpha: must be a positive"),
        ([{"elu": {"alpha": "x"}}], ERFValueError, "layers[0].elu.alpha: 'x' is not a number"),
        ([{"elu": {"alpha": True}}], ERFTypeError, "layers[0].elu.alpha: must be"),
        ([{"silu": {"alpha": 1}}], ERFValueError, "layers[0].silu: unknown option 'alpha'"),
        ([{"softplus": {"betta": 1}}], ERFValueError, "(did you mean 'beta'?)"),
        ([{"selu": {"input_std": 0}}], ERFValueError, "selu.input_std: must be a positive"),
        (["gelu_tan"], ERFValueError, "did you mean 'gelu_tanh'?"),
    ],
)
def test_arch_errors_name_the_path(doc: Any, cls: type[Exception], message: str) -> None:
    with pytest.raises(cls) as info:
        parse_arch(doc)
    assert message in str(info.value)


def test_arch_bounds_the_quadratures_of_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    from erftheory import arch as arch_module

    monkeypatch.setattr(arch_module, "MAX_INPUT_STDS", 2)
    ok = [{"elu": {"alpha": 1 + i}} for i in range(2)]
    assert len(parse_arch([*ok, *ok, "elu", "silu"])) == 6  # defaults and repeats are free
    with pytest.raises(ERFValueError, match=r"layers\[2\]\.elu\.alpha: more than 2 different"):
        parse_arch([*ok, {"elu": {"alpha": 3}}])
    with pytest.raises(ERFValueError, match=r"layers\[2\]\.celu\.input_std: more than 2"):
        parse_arch([*ok, {"celu": {"input_std": 2}}])


# --------------------------------------------------------------------------- torch
TORCH_CASES = [
    ("silu", {}, "SiLU()"),
    ("gelu", {}, "GELU(approximate='none')"),
    ("gelu_tanh", {}, "GELU(approximate='tanh')"),
    ("hardswish", {}, "Hardswish()"),
    ("hardsigmoid", {}, "Hardsigmoid()"),
    ("mish", {}, "Mish()"),
    ("elu", {"alpha": "1/2"}, "ELU(alpha=0.5)"),
    ("selu", {}, "SELU()"),
    ("celu", {"alpha": 2}, "CELU(alpha=2.0)"),
    ("softplus", {"beta": 2, "threshold": 1}, "Softplus(beta=2.0, threshold=1.0)"),
]


@pytest.mark.parametrize(("name", "given", "module"), TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_monte_carlo_over_torch_autograd(name: str, given: dict[str, Any], module: str) -> None:
    torch = pytest.importorskip("torch")
    from erftheory.torch import to_torch

    std = 1.5
    layer = Elementwise(name, input_std=std, **given)
    model = to_torch(Network([layer]))
    assert repr(model[0]) == module
    gen = torch.Generator().manual_seed(20240611)
    x = (std * torch.randn(1, 1, 400_000, generator=gen, dtype=torch.float64)).requires_grad_()
    model(x).sum().backward()
    d = x.grad.flatten()
    for values, factor in ((d, layer.factor("gradient")), (d * d, layer.factor("expected_square"))):
        mean, se = values.mean().item(), values.std().item() / math.sqrt(values.numel())
        assert abs(float(factor) - mean) < 5 * se, (name, float(factor), mean, se)


def test_from_torch_reads_the_modules() -> None:
    torch = pytest.importorskip("torch")
    from erftheory.torch.trace import from_torch

    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.SiLU(),
        nn.GELU(),
        nn.GELU(approximate="tanh"),
        nn.Hardswish(),
        nn.Hardsigmoid(),
        nn.Mish(),
        nn.ELU(alpha=0.5),
        nn.SELU(),
        nn.CELU(alpha=2.0),
        nn.Softplus(beta=2, threshold=10),
        nn.PReLU(),
    )
    net = from_torch(model, (1, 16, 16))
    assert [repr(x) for x in net.layers[1:]] == [
        "Elementwise('silu')",
        "Elementwise('gelu')",
        "Elementwise('gelu_tanh')",
        "Elementwise('hardswish')",
        "Elementwise('hardsigmoid')",
        "Elementwise('mish')",
        "Elementwise('elu', alpha=1/2)",
        "Elementwise('selu')",
        "Elementwise('celu', alpha=2)",
        "Elementwise('softplus', beta=2, threshold=10)",
        "LeakyReLU(1/4)",  # PReLU's initial slope, exactly
    ]


def test_from_torch_reads_the_functions() -> None:
    torch = pytest.importorskip("torch")
    from erftheory.torch.trace import from_torch

    F = torch.nn.functional

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 1, 3)
            self.slope = torch.nn.Parameter(torch.tensor([0.125]))

        def forward(self, x: Any) -> Any:
            x = F.silu(self.conv(x))
            x = F.gelu(x, approximate="tanh")
            x = F.gelu(x)
            x = F.elu(x, 0.5)
            x = F.celu(x, alpha=2.0)
            x = torch.selu(x)
            x = F.softplus(x, 2, 10)
            x = F.hardswish(F.hardsigmoid(F.mish(x)))
            return F.prelu(x, self.slope)

    net = from_torch(Model(), (1, 12))
    assert [repr(x) for x in net.layers[1:]] == [
        "Elementwise('silu')",
        "Elementwise('gelu_tanh')",
        "Elementwise('gelu')",
        "Elementwise('elu', alpha=1/2)",
        "Elementwise('celu', alpha=2)",
        "Elementwise('selu')",
        "Elementwise('softplus', beta=2, threshold=10)",
        "Elementwise('mish')",
        "Elementwise('hardsigmoid')",
        "Elementwise('hardswish')",
        "LeakyReLU(1/8)",
    ]


def test_from_torch_refuses_what_it_cannot_read() -> None:
    torch = pytest.importorskip("torch")
    from erftheory.torch.trace import from_torch

    nn = torch.nn
    with pytest.raises(ERFValueError, match=r"module '1' of type PReLU has 3 parameters"):
        from_torch(nn.Sequential(nn.Conv2d(3, 3, 3), nn.PReLU(3)), (3, 8, 8))
    with pytest.raises(ERFValueError, match=r"module '1' of type CELU: .*alpha of celu must be"):
        from_torch(nn.Sequential(nn.Conv2d(1, 1, 3), nn.CELU(alpha=1e-6)), (1, 8, 8))
    # an unknown module still gets the clear error naming it and its type
    with pytest.raises(ERFTypeError, match=r"^module '1' of type Softsign is not supported") as e:
        from_torch(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Softsign()), (1, 8, 8))
    assert "supported: Conv1d/2d," in str(e.value) and "SiLU, GELU" in str(e.value)


def test_prelu_round_trips_as_a_leaky_relu() -> None:
    torch = pytest.importorskip("torch")
    from erftheory.torch import to_torch
    from erftheory.torch.trace import from_torch

    prelu = torch.nn.PReLU(init=0.5)
    net = from_torch(torch.nn.Sequential(torch.nn.Conv1d(1, 1, 3), prelu), (1, 9))
    assert repr(net.layers[1]) == "LeakyReLU(1/2)"
    assert repr(to_torch(net)[1]) == "LeakyReLU(negative_slope=0.5)"
    assert net.layers[1].factor("expected_square") == LeakyReLU("1/2").factor("expected_square")
