r"""Section 2.4: the ReLU factor in the variance recursion is $\mathbb E[\sigma'^2] = 1/2$.

For ReLU, $\sigma' = \mathbf I[x > 0]$; with $x$ symmetric about 0 (and $P(x = 0) = 0$),
$\sigma'$ is Bernoulli(1/2), so $\mathbb E[\sigma'] = \mathbb E[\sigma'^2] = 1/2$ and
$\mathrm{Var}[\sigma'] = 1/4$. The paper writes
$\mathbb E[\sigma'^2] = \mathrm{Var}[\sigma'] = 1/4$; these are not equal. The recursion of
Eq. (12), with $\sigma'$ independent of the zero-mean sum $Y = \sum w\,g$, is
$\mathrm{Var}[\sigma' Y] = \mathbb E[\sigma'^2]\,\mathrm{Var}[Y]$, so the per-layer factor
is $\mathbb E[\sigma'^2] = 1/2$ (the shape of the ERF is unaffected either way).

Symbolic part: $P(x > 0) = 1/2$ for Normal, Laplace and Uniform inputs with symbolic
scale; the Bernoulli($p$) moments for symbolic $p$; and
$\mathrm{Var}[DY] = \mathbb E[D^2]\mathbb E[Y^2] - \mathbb E[D]^2\mathbb E[Y]^2$ for
independent $D, Y$ with symbolic moments, which reduces to $\mathbb E[D^2]\mathrm{Var}[Y]$
when $\mathbb E[Y] = 0$.

Numeric spot check: an explicit backward pass of Eq. (12) through 3 layers of a
3-tap kernel with symbolic weights ($\mathbb E w = 0$, $\mathbb E w^2 = C$) and one
independent Bernoulli(1/2) derivative per unit; the exact expectation of $g(t, 0)^2$ is
$(C/2)^n$ times `erftheory.profile([1, 1, 1], n)`.
"""

from __future__ import annotations

import sympy

from erftheory import profile

from ._util import expect, pick, require, zero

NAME = "sec24_relu_factor"
SECTION = "2.4"
STATEMENT = (
    "For ReLU with inputs symmetric about 0, E[s'^2] = 1/2 and Var[s'] = 1/4; the gradient "
    "variance recursion Var[g(p-1)] = E[s'^2] C sum Var[g(p)] needs E[s'^2] = 1/2, not the "
    "1/4 the paper equates it with."
)
LATEX = (
    r"\sigma' = \mathbf I[x > 0]:\ \mathbb E[\sigma'^2] = \tfrac12 \ne \mathrm{Var}[\sigma'] = "
    r"\tfrac14,\qquad \mathrm{Var}[g(i,j,p-1)] = \mathbb E[\sigma'^2]\sum_{a,b}"
    r"\mathrm{Var}[w^p_{a,b}]\,\mathrm{Var}[g(i+a,j+b,p)]"
)
ERRATUM = (
    "Section 2.4 states E[s'^2] = Var[s'] = 1/4. For ReLU with symmetric inputs E[s'^2] = 1/2 "
    "and Var[s'] = 1/4; the variance recursion needs E[s'^2] = 1/2."
)
VARIANTS = {"paper": "the per-layer factor Var[s'] = 1/4 used in place of E[s'^2]"}

_LAYERS = 3
_K = 3


def verify(variant: str | None = None) -> None:
    """Derive the ReLU factor symbolically, then check an explicit 3-layer network."""
    pick(variant, VARIANTS)
    s = sympy.Symbol("s", positive=True)
    x = sympy.Symbol("x", real=True)
    # Any density f symmetric about 0, with antiderivative F: d/dx [F(x) + F(-x)] =
    # f(x) - f(-x) = 0, so F(-x) = 2 F(0) - F(x) and P(x < 0) = F(0) - F(-oo) =
    # F(oo) - F(0) = P(x > 0).
    F, f = sympy.Function("F"), sympy.Function("f")
    derivative = sympy.diff(F(x) + F(-x), x).doit()
    derivative = derivative.replace(
        lambda e: isinstance(e, sympy.Derivative), lambda e: f(e.variables[0])
    ).doit()
    require(derivative == f(x) - f(-x), f"d/dx [F(x) + F(-x)] = {derivative}")
    zero(derivative.subs(f(-x), f(x)), "d/dx [F(x) + F(-x)] for a symmetric density")
    # ... so P(x > 0) = 1/2; explicitly for three families with symbolic scale.
    densities = {
        "normal": (sympy.exp(-(x**2) / (2 * s**2)) / (s * sympy.sqrt(2 * sympy.pi)), sympy.oo),
        "laplace": (sympy.exp(-sympy.Abs(x) / s) / (2 * s), sympy.oo),
        "uniform": (1 / (2 * s), s),
    }
    for name, (pdf, top) in densities.items():
        zero(sympy.integrate(pdf, (x, -top, top)) - 1, f"{name} density total")
        zero(sympy.integrate(pdf, (x, 0, top)) - sympy.Rational(1, 2), f"P(x > 0), {name}")
    # sigma' = I[x > 0] takes values 0 and 1 with P(1) = p: E[sigma'^e] = p for e >= 1.
    p = sympy.Symbol("p", positive=True)
    e1, e2 = p, p
    var = e2 - e1**2
    half = sympy.Rational(1, 2)
    e2_half, var_half = e2.subs(p, half), var.subs(p, half)
    require(
        (e1.subs(p, half), e2_half, var_half) == (half, half, sympy.Rational(1, 4)),
        "ReLU derivative moments at p = 1/2",
    )
    require(e2_half != var_half, "E[s'^2] and Var[s'] coincide")

    # Var[D Y] for independent D, Y with symbolic moments.
    d, y = sympy.symbols("d y")
    d1, d2, y1, y2 = sympy.symbols("d1 d2 y1 y2")
    table = {d: lambda e: [1, d1, d2][e], y: lambda e: [1, y1, y2][e]}
    var_prod = expect((d * y) ** 2, table) - expect(d * y, table) ** 2
    zero(var_prod - (d2 * y2 - d1**2 * y1**2), "Var of a product of independent variables")
    # With E[Y] = 0 the factor multiplying Var[Y] = y2 is E[D^2] = d2.
    factor = var_half if variant == "paper" else e2_half
    zero(
        var_prod.subs({y1: 0, d1: e1, d2: e2}).subs(p, half) - factor * y2,
        "the variance recursion factor",
    )

    # Explicit backward pass of Eq. 12, 1-D, with symbolic weights and Bernoulli masks.
    C = sympy.Symbol("C", positive=True)
    weights = [[sympy.Symbol(f"w{l}_{a}") for a in range(_K)] for l in range(1, _LAYERS + 1)]
    masks: dict[tuple[int, int], sympy.Symbol] = {}
    moments = {}
    for layer in weights:
        for w in layer:
            moments[w] = lambda e: {0: 1, 1: 0, 2: C}.get(e, sympy.Symbol(f"mu{e}"))
    span = _LAYERS * (_K - 1)
    g: dict[int, sympy.Expr] = {0: sympy.Integer(1)}
    for l in range(_LAYERS, 0, -1):
        lower = {}
        for i in range(-span, 1):
            total = sum(
                (weights[l - 1][a] * g[i + a] for a in range(_K) if i + a in g), sympy.Integer(0)
            )
            if total != 0:
                masks[(l, i)] = sympy.Symbol(f"m{l}_{-i}")
                moments[masks[(l, i)]] = lambda e: 1 if e == 0 else half  # Bernoulli(1/2)
                lower[i] = sympy.expand(masks[(l, i)] * total)
        g = lower
    ones = profile([1] * _K, layers=_LAYERS).coefficients
    for i in range(-span, 1):
        second = expect(g[i] ** 2, moments)
        want = (factor * C) ** _LAYERS * ones[-i]
        require(second == want, f"E[g({i}, 0)^2] = {second}, expected {want}")
