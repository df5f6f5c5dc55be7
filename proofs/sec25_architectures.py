r"""Section 2.5 (the appendix it cites is not available, so the claims are derived here):
dropout, subsampling (strides), dilation and skip connections.

Notation (as on the notation page): $V_l(z) = \sum_m w_l(m) z^m$; $X_l$ is one tap of
layer $l$ drawn with the normalised weights; $J_l = s_1 \cdots s_l$ is the product of
the strides of layers $1, \dots, l$ ($J_0 = 1$); for a generating function $G$ the
normalised mean and variance are $G'(1)/G(1)$ and
$G''(1)/G(1) + G'(1)/G(1) - (G'(1)/G(1))^2$.

1. **Dropout.** Keeping each unit with probability $q$ (PyTorch's `p` is the drop
   probability $1 - q$) and multiplying the kept ones by $1/r$ ($r = q$ for inverted
   dropout, so the mask is $M \in \{0, 1/r\}$) multiplies the expected backward signal
   of every layer by $\mathbb E[M] = q/r$, so the expected ERF is $(q/r)^n V(z)^n$: the
   same normalised shape. (In the variance analysis of Section 2.2 the factor is
   $\mathbb E[M^2] = q/r^2$ per layer.)
2. **Strides.** If layer $l$ reads $x^{l-1}(s_l i + m)$, the input position reached by
   taps $m_1, \dots, m_n$ is $\sum_l m_l J_{l-1}$: layer $l$ sees the input on a grid
   $J_{l-1} = s_1 \cdots s_{l-1}$ pixels apart (the strides *below* it). So
   $G(z) = \prod_l V_l(z^{J_{l-1}})$ and
   $\mathrm{Var} = \sum_l J_{l-1}^2\,\mathrm{Var}[X_l]$.
3. **Dilation** $d$: $V(z^d)$, so a layer's variance is multiplied by $d^2$.
4. **Skip connections.** A residual block $x \mapsto x + \mathrm{conv}(x)$ (the identity
   at the anchor tap $m_0$) has
   $G(z) = (z^{m_0} + V(z))^n = \sum_i \binom{n}{i} z^{m_0(n-i)} V(z)^i$:
   a binomial mixture of plain stacks. With $V(1)$ the branch's mass,
   $\rho = V(1)/(1+V(1))$ its share, $\mu = \mathbb E[X] - m_0$ the mean of one
   normalised tap measured from the anchor and $\mathrm{Var}[X]$ its variance, the stack
   variance is $n(\rho\,\mathrm{Var}[X] + \rho(1-\rho)\mu^2)$. For a centred branch
   ($\mu = 0$) it is $\rho$ times the plain stack's $n\,\mathrm{Var}[X]$: skip connections
   shrink the ERF. In general the residual stack is narrower iff
   $\rho\mu^2 < \mathrm{Var}[X]$ (an off-centre branch can make it wider; e.g.
   $w = [0, 0, 1]$ with anchor $m_0 = 1$).

Symbolic part (general): lemmas on undefined functions $f, h$ with symbolic $J$, $n$:
$f(z^J)$ scales the variance by $J^2$; variances add over products; $H^n$ has $n$ times
the variance of $H$; constant factors leave the normalised GF unchanged; the mixture
$(1 + h)/(1 + h(1))$ has the variance above; the binomial expansion by Pascal's rule for
symbolic $n, i$; the two-layer stride composition for symbolic stride $s$.

Numeric spot checks compute coefficients from the definitions — explicit backward passes
(chain rule of each layer), exact enumeration of dropout masks — and from polynomial
powers of inflated kernels (zeros inserted between taps) with `erftheory.profile` and
python-flint; the variances are then computed from the coefficients.

Cross-check through the layer algebra: the same strided, dilated, residual and dropout
networks built from `erftheory.Network` layers give, with `Network.profile`, exactly the
coefficients of the explicit backward passes, in both kinds. For
``kind="expected_square"`` the kernels are per-tap weight variances; the reference is the
exact expectation of the squared backward pass over symbolic zero-mean weights and
Bernoulli dropout masks, in which the cross terms of different paths vanish.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import flint
import sympy

from erftheory import BatchNorm, Conv, Dropout, Kernel, Network, Residual, profile

from ._util import expect, pick, require, variance_from_coefficients, zero

NAME = "sec25_architectures"
SECTION = "2.5"
STATEMENT = (
    "Dropout scales the ERF without changing its shape; with strides the variance is "
    "sum_l J_{l-1}^2 Var[X_l] (J_{l-1} = s_1 ... s_{l-1}, the product of the strides below "
    "layer l); dilation d multiplies a layer's variance by d^2; a residual stack (1 + V)^n = "
    "sum_i C(n, i) V^i has variance n (rho Var[X] + rho (1 - rho) mu^2) with "
    "rho = V(1)/(1 + V(1)) and mu the tap's mean from the anchor, i.e. rho times the plain "
    "stack's for a centred branch, so skip connections shrink the ERF."
)
LATEX = (
    r"G_{\text{stride}}(z) = \prod_l V_l(z^{J_{l-1}}) \Rightarrow \mathrm{Var} = "
    r"\sum_l J_{l-1}^2 \mathrm{Var}[X_l];\quad V(z^d) \Rightarrow d^2\,\mathrm{Var};\quad "
    r"(1 + V)^n = \sum_i \binom{n}{i} V^i,\ "
    r"\mathrm{Var} = n\big(\rho\,\mathrm{Var}[X] + \rho(1-\rho)\mu^2\big),\ "
    r"\rho = \tfrac{V(1)}{1 + V(1)};\quad \text{dropout: } (q/r)^n V^n"
)
VARIANTS = {
    "wrong": "strides and dilation scale a layer's variance by J instead of J^2",
    "residual": "the residual stack's variance ratio is 1 - rho (the skip's share) instead of rho",
    "dropout": "dropout scales the expected ERF by q^(n+1) instead of (q/r)^n",
}


def _gf_moments(G: sympy.Expr, z: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr]:
    g0 = G.subs(z, 1)
    g1 = sympy.diff(G, z).subs(z, 1) / g0
    g2 = sympy.diff(G, z, 2).subs(z, 1) / g0
    return g1, g2 + g1 - g1**2


def _symbolic(variant: str | None) -> None:
    z = sympy.Symbol("z", positive=True)
    J, n, c = sympy.symbols("J n c", positive=True)
    f, h = sympy.Function("f"), sympy.Function("h")
    power = 1 if variant == "wrong" else 2
    # Lemma 1: f(z^J) scales the mean by J and the variance by J^2 (strides, dilation).
    m0, v0 = _gf_moments(f(z), z)
    mJ, vJ = _gf_moments(f(z**J), z)
    zero(mJ - J * m0, "mean of f(z^J)")
    zero(vJ - J**power * v0, "variance of f(z^J)")
    # Lemma 2: moments add over products (the induction step over layers).
    mh, vh = _gf_moments(h(z), z)
    mp, vp = _gf_moments(f(z) * h(z), z)
    zero(mp - m0 - mh, "mean of a product")
    zero(vp - v0 - vh, "variance of a product")
    # Lemma 3: n layers, symbolic n; Lemma 4: a constant factor (dropout) changes nothing.
    mn, vn = _gf_moments(h(z) ** n, z)
    zero(mn - n * mh, "mean of h^n")
    zero(vn - n * vh, "variance of h^n")
    zero((c * h(z)) ** n / (c * h(1)) ** n - h(z) ** n / h(1) ** n, "dropout normalised GF")
    _, vc = _gf_moments((c * h(z)) ** n, z)
    zero(vc - vn, "dropout variance")
    # Two stride layers, symbolic stride s: positions a1 + s a2.
    s = sympy.Symbol("s", positive=True, integer=True)
    u = sympy.symbols("u0:3")
    w = sympy.symbols("w0:3")
    direct = sum(u[a1] * w[a2] * z ** (a1 + s * a2) for a1 in range(3) for a2 in range(3))
    composed = sum(u[a] * z**a for a in range(3)) * sum(w[a] * (z**s) ** a for a in range(3))
    zero(sympy.powsimp(sympy.expand(direct - composed), force=True), "stride composition")
    # Residual: Pascal step of (1 + V)^n = sum C(n, i) V^i for symbolic n, i.
    i = sympy.Symbol("i", integer=True, nonnegative=True)
    nn = sympy.Symbol("n", integer=True, nonnegative=True)
    step = sympy.binomial(nn, i) + sympy.binomial(nn, i - 1) - sympy.binomial(nn + 1, i)
    zero(sympy.combsimp(sympy.expand_func(step)), "Pascal step of the residual expansion")
    # Residual block (1 + h)/(1 + h(1)): h is the branch (positions from the anchor).
    mb, vb = _gf_moments(1 + h(z), z)
    S = h(1)
    rho = S / (1 + S)
    mu, v = mh, vh
    zero(mb - rho * mu, "residual block mean")
    zero(vb - (rho * v + rho * (1 - rho) * mu**2), "residual block variance")
    # Ratio to the plain stack for a centred branch, and the general criterion.
    R, V_, M = sympy.symbols("rho v mu", positive=True)
    block = R * V_ + R * (1 - R) * M**2
    share = 1 - R if variant == "residual" else R
    zero(block.subs(M, 0) / V_ - share, "residual/plain variance ratio, centred branch")
    zero(sympy.factor(V_ - block) - (1 - R) * (V_ - R * M**2), "narrower iff rho mu^2 < v")


def _inflate(weights: list[int], J: int) -> list[int]:
    out: list[int] = []
    for m, x in enumerate(weights):
        out += [x] if m == 0 else [0] * (J - 1) + [x]
    return out


def _strided_backprop(layers: list[tuple[list[int], int]]) -> list[int]:
    """Chain rule of x^l(i) = sum_a w_l(a) x^{l-1}(s_l i + a), from the top unit down."""
    grad = {0: 1}
    for w, stride in reversed(layers):
        lower: dict[int, int] = {}
        for i, g in grad.items():
            for a, x in enumerate(w):
                lower[stride * i + a] = lower.get(stride * i + a, 0) + x * g
        grad = lower
    return [grad.get(t, 0) for t in range(max(grad) + 1)]


def _flint_product(parts: list[list[int]]) -> list[int]:
    p = flint.fmpz_poly([1])
    for c in parts:
        p *= flint.fmpz_poly(c)
    return [int(x) for x in p.coeffs()]


def _numeric(variant: str | None) -> None:
    power = 1 if variant == "wrong" else 2
    # Strides: the paper's experiment shape, 3-tap layers with three stride-2 layers.
    kernels = [[1, 2, 1], [1, 1, 1], [1, 3, 2], [2, 1, 1]]
    strides = [1, 1, 2, 1, 2, 1, 2, 1, 1]
    stack = [(kernels[i % len(kernels)], s) for i, s in enumerate(strides)]
    coeffs = _strided_backprop(stack)
    Js = [math.prod(s for _, s in stack[:l]) for l in range(len(stack))]
    parts = [
        profile(Kernel(_inflate(w, J)), layers=1).coefficients
        for (w, _), J in zip(stack, Js, strict=True)
    ]
    require(_flint_product(parts) == coeffs, "strided stack: backward pass vs prod V_l(z^J_{l-1})")
    _, var = variance_from_coefficients(coeffs)
    want = sum(J**power * Kernel(w).moments()[1] for (w, _), J in zip(stack, Js, strict=True))
    require(var == want, f"strided stack variance {var}, sum J^{power} Var_l = {want}")
    net = Network([Conv(Kernel(w), stride=s, padding=0) for w, s in stack])
    for kind in ("gradient", "expected_square"):  # all taps random: the same polynomial
        require(
            net.profile(kind).coefficients == coeffs, f"strided stack: Network ({kind}) vs backprop"
        )
    require(net.receptive_field.offset == 0, "strided stack: padding 0 gives offset 0")
    require(net.moments()[2] == var, "strided stack: Network.moments variance vs backprop")

    # Dilation: explicit backward pass x^l(i) = sum_a w(a) x^{l-1}(i + d a).
    for w, d, n in (([1, 2, 1], 2, 3), ([1, 1, 1], 4, 2), ([3, 1, 0, 2], 3, 4)):
        grad = {0: 1}
        for _ in range(n):
            lower: dict[int, int] = {}
            for i, g in grad.items():
                for a, x in enumerate(w):
                    lower[i + d * a] = lower.get(i + d * a, 0) + x * g
            grad = lower
        direct = [grad.get(t, 0) for t in range(max(grad) + 1)]
        dilated = profile(Kernel(_inflate(w, d)), layers=n)
        require(dilated.coefficients == direct, f"dilated {w}, d = {d}: engine vs backward pass")
        net = Network([Conv(Kernel(w), dilation=d, padding=0)] * n)
        for kind in ("gradient", "expected_square"):
            require(
                net.profile(kind).coefficients == direct,
                f"dilated {w}, d = {d}: Network ({kind}) vs backward pass",
            )
        _, var = variance_from_coefficients(direct)
        base = profile(Kernel(w), layers=n).variance
        require(var == d**power * base, f"dilation d = {d}: variance {var} vs d^{power} * {base}")

    # Residual blocks: g_{l-1}(i) = g_l(i) + sum_a w(a) g_l(i + a - anchor).
    for w, n in (([1, 2, 1], 6), ([1, 1, 1], 5), ([1, 4, 2], 4), ([0, 0, 1], 5)):
        kern = Kernel(w)
        a = kern.anchor
        grad = {0: 1}
        for _ in range(n):
            lower = {}
            for i, g in grad.items():
                lower[i] = lower.get(i, 0) + g
                for m, x in enumerate(w):
                    lower[i + m - a] = lower.get(i + m - a, 0) + x * g
            grad = lower
        lo = min(grad)
        direct = [grad.get(t, 0) for t in range(lo, max(grad) + 1)]
        block = [0] * len(w)
        block[a] += 1
        block = [x + y for x, y in zip(block, w, strict=True)]
        powered = profile(Kernel(block), layers=n).coefficients
        require(powered == direct, f"residual {w}: backward pass vs (z^a + V)^n")
        net = Network([Residual(Conv(kern))] * n)
        require(net.receptive_field.offset == lo, f"residual {w}: RF offset vs backward pass")
        for kind in ("gradient", "expected_square"):  # the identity skip squares to 1
            require(
                net.profile(kind).coefficients == direct,
                f"residual {w}: Network ({kind}) vs backward pass",
            )
        mixture = [0] * (n * (len(w) - 1) + 1)
        for i in range(n + 1):
            for t, cf in enumerate(profile(kern, layers=i).coefficients):
                mixture[a * (n - i) + t] += math.comb(n, i) * cf
        require(mixture == direct, f"residual {w}: binomial mixture sum C(n,i) V^i")
        _, var = variance_from_coefficients(direct)
        s = Fraction(sum(w))
        rho = s / (1 + s)
        mu, v = kern.moments()
        require(var == n * (rho * v + rho * (1 - rho) * mu**2), f"residual {w}: variance {var}")
        if mu == 0:
            share = 1 - rho if variant == "residual" else rho
            require(var == share * n * v, f"residual {w}: ratio to plain stack {var / (n * v)}")
            require(var < n * v, f"residual {w}: the ERF does not shrink")
        else:
            require((var < n * v) == (rho * mu**2 < v), f"residual {w}: criterion rho mu^2 < v")

    # Dropout: exact expectation over all masks of a 2-layer, 3-tap network.
    q = Fraction(2, 3)
    for r in (Fraction(1), q):  # plain and inverted dropout
        w = [1, 2, 3]
        n = 2
        units = [list(range(-(n - p + 1) * 2, 1)) for p in range(1, n + 1)]  # layer p-1 units
        expected: dict[int, Fraction] = {}
        n_units = sum(len(u) for u in units)
        for bits in itertools.product((0, 1), repeat=n_units):
            prob = math.prod((q if b else 1 - q) for b in bits)
            mask = {}
            it = iter(bits)
            for p in range(1, n + 1):
                for i in units[p - 1]:
                    mask[(p, i)] = next(it)
            grad = {0: Fraction(1)}
            for p in range(n, 0, -1):
                lower = {}
                for i, g in grad.items():
                    for m, x in enumerate(w):
                        j = i - m
                        lower[j] = lower.get(j, 0) + x * g * mask[(p, j)] / r
                grad = lower
            for t, g in grad.items():
                expected[t] = expected.get(t, 0) + prob * g
        o = profile(w, layers=n).coefficients
        factor = q ** (n + 1) if variant == "dropout" else (q / r) ** n
        for t in range(len(o)):
            require(expected.get(-t, 0) == factor * o[t], f"dropout r = {r}: E[g(-{t})]")
        total = sum(expected.values())
        shape = [expected.get(-t, 0) / total for t in range(len(o))]
        require(shape == [Fraction(x, sum(o)) for x in o], "dropout changes the normalised shape")
        # The layer algebra: a mask on the input of each layer (inverted dropout with
        # keep probability q; plain dropout is that times q), and the kernel reversed
        # because x^p(i) reads x^{p-1}(i - m): output unit 0 reads pixels -2 .. 0.
        net = _dropout_network(w, n, q, r)
        lo = net.receptive_field.offset
        got = net.profile("gradient").coefficients
        require(
            got == [expected.get(lo + e, 0) for e in range(len(got))],
            f"dropout r = {r}: Network (gradient) vs the expectation over masks",
        )
    _dropout_expected_square()


def _dropout_network(w: list[int], n: int, q: Fraction, r: Fraction) -> Network:
    """Dropout (keep q, scale 1/r) on the input of each of n layers x^p(i) = sum w(m) x(i - m)."""
    mask = [Dropout(1 - q)] + ([] if r == q else [BatchNorm(q / r)])
    return Network([*mask, Conv(Kernel(w[::-1]), padding=len(w) - 1)] * n)


def _dropout_expected_square() -> None:
    """E[g^2] over zero-mean random weights and dropout masks, symbolically, vs Network."""
    q = Fraction(2, 3)
    v = [1, 2, 3]  # per-tap weight variances
    n = 2
    weights = {(p, m): sympy.Symbol(f"w{p}_{m}") for p in range(1, n + 1) for m in range(len(v))}
    masks: dict[tuple[int, int], sympy.Symbol] = {}
    moments: dict[sympy.Symbol, object] = {}
    for (_, m), x in weights.items():  # zero mean, variance v(m); g is linear in each weight
        moments[x] = lambda e, var=v[m]: {0: 1, 1: 0, 2: var}[e]
    for r in (Fraction(1), q):
        grad: dict[int, sympy.Expr] = {0: sympy.Integer(1)}
        for p in range(n, 0, -1):
            lower: dict[int, sympy.Expr] = {}
            for i, g in grad.items():
                for m in range(len(v)):
                    j = i - m
                    if (p, j) not in masks:
                        masks[(p, j)] = sympy.Symbol(f"m{p}_{j + 10}")
                        moments[masks[(p, j)]] = lambda e: sympy.Integer(1) if e == 0 else q
                    term = (
                        weights[(p, m)]
                        * g
                        * masks[(p, j)]
                        / sympy.Rational(r.numerator, r.denominator)
                    )
                    lower[j] = lower.get(j, 0) + term
            grad = lower
        square = {t: expect(g**2, moments) for t, g in grad.items()}
        o = profile(v, layers=n).coefficients
        per_layer = q / r**2  # E[m^2] / r^2: each path meets one mask per layer
        for t in range(len(o)):
            require(square[-t] == per_layer**n * o[t], f"dropout r = {r}: E[g(-{t})^2]")
        net = _dropout_network(v, n, q, r)
        lo = net.receptive_field.offset
        got = net.profile("expected_square").coefficients
        require(
            got == [square.get(lo + e, 0) for e in range(len(got))],
            f"dropout r = {r}: Network (expected_square) vs E[g^2] over weights and masks",
        )


def verify(variant: str | None = None) -> None:
    """Derive the Section 2.5 claims with generating functions, then check them exactly."""
    pick(variant, VARIANTS)
    _symbolic(variant)
    _numeric(variant)
