r"""The ``symbolic`` engine: coefficients of $V(z)^n$ (Eq. 9) as sympy expressions.

By the cheapest exact route (`SymbolicResult.route`): integer and rational kernels through
the ``exact`` engine, weights that are polynomials with rational coefficients in their
symbols through python-flint's ``fmpq_mpoly`` power, anything else through sympy's own
polynomial power, each after a memory and work estimate. sympy is imported on first use.
The public helpers for the proofs (``erftheory.symbolic``) are another module.

Example:
    >>> import sympy
    >>> from erftheory import Kernel
    >>> from erftheory.engines.source import KernelPower
    >>> a = sympy.Symbol("a")
    >>> r = build(KernelPower(Kernel([a, 1]), 2))
    >>> r.route, r.coefficients()
    ('mpoly', [a**2, 2*a, 1])
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _config
from .._errors import ERFTypeError
from ..kernel import format_value, to_sympy
from . import exact
from .base import BaseResult

if TYPE_CHECKING:
    from .source import Source

__all__ = ["SymbolicResult", "build"]

_SYMBOLIC_MAX_TERMS = 100_000  # sympy builds about 5000 terms per second: 20 s at most


def build(source: Source, dps: int | None = None) -> SymbolicResult:
    """The ``symbolic`` result for any ``source`` (``dps`` unused)."""
    return SymbolicResult(source)


class SymbolicResult(BaseResult):
    r"""The ``symbolic`` engine: coefficients as sympy expressions, by the cheapest exact route.

    - Integer and rational kernels: the exact engine (flint, with its memory guard), its
      values returned as sympy numbers; `normalized` and the other numeric reads work.
    - Weights that are polynomials with rational coefficients in their symbols (or in
      other atoms: ``sqrt(a)``, ``pi``): python-flint's ``fmpq_mpoly`` power in those
      generators and $z$ (or $x, y$), after a memory and work estimate; only the
      coefficients asked for are turned into sympy expressions (about 0.2 ms per term,
      so `coefficients` is refused past `_SYMBOLIC_MAX_TERMS` terms). $[a, 1]$ at
      $n = 20\,000$ takes seconds.
    - Anything else (float weights, ...): sympy's own polynomial power, refused up front
      past `_SYMPY_MAX_WORK` (about 10 s).
    """

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self.domain = source.domain
        self.n = source.n
        self.weights = [to_sympy(x) for x in source.flat]
        self._coeffs: list[Any] | None = None
        self._numeric: Any = None
        if source.is_exact:
            self._numeric = exact.build(source)
        elif source.domain == "float":
            from . import tilted

            self._numeric = tilted.build(source)
        self._mpoly: tuple[Any, list[Any], dict[tuple[int, ...], list[Any]]] | None = None
        self._route: str | None = None

    # ---------------------------------------------------------------- total, moments
    def total(self) -> Any:
        r"""$(\sum_m w(m))^n$ as a sympy number or expression (a float for float kernels).

        Unevaluated past $n = 64$ for symbolic kernels: ``sqrt(2)**(10**12)`` would be
        built as ``2**(5*10**11)``.
        """
        if self.domain == "float":
            return self.source.total_power()
        import sympy

        if self.domain == "symbolic":
            base = to_sympy(self.source.total)
            return base**self.n if self.n <= 64 else sympy.Pow(base, self.n, evaluate=False)
        return _sympy_number(self.source.total_power())

    def moments(self) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]:
        """The source's moments (Eq. 10) as simplified sympy expressions."""
        if self._moments is None:
            import sympy

            mean, cov = self.source.moments()
            self._moments = (
                tuple(sympy.simplify(x) for x in mean),
                tuple(tuple(sympy.simplify(x) for x in r) for r in cov),
            )
        return self._moments

    # ---------------------------------------------------------------- routes
    @property
    def route(self) -> str:
        """``"exact"``, ``"mpoly"`` or ``"sympy"``."""
        if self._route is None:
            if self.domain in ("integer", "rational"):
                self._route = "exact"
            else:
                self._route = "mpoly" if self._polys() is not None else "sympy"
        return self._route

    def _polys(self) -> tuple[list[Any], list[Any]] | None:
        """The weights as sympy Polys over QQ in common generators, or None."""
        import sympy

        if self.domain == "float" or any(w.has(sympy.Float) for w in self.weights):
            return None
        try:
            polys, opt = sympy.parallel_poly_from_expr(self.weights, domain="QQ")
        except (sympy.PolynomialError, sympy.polys.polyerrors.OptionError, ValueError):
            return None
        return polys, list(opt.gens)

    def _terms_bound(self, polys: list[Any], gens: list[Any]) -> int:
        """An upper bound on the terms of $V^n$ in the generators and $z$ (or $x, y$)."""
        nonzero = sum(1 for p in polys if not p.is_zero)
        multinomial = math.comb(self.n + nonzero - 1, nonzero - 1) if nonzero else 1
        dense = math.prod(self.shape)
        for g in range(len(gens)):
            dense *= self.n * max((p.degree(g) if not p.is_zero else 0) for p in polys) + 1
        return min(multinomial, dense)

    def _power(self) -> tuple[Any, list[Any], dict[tuple[int, ...], list[Any]]]:
        """``(mpoly power, generators, {index: [(exponents, coefficient), ...]})``."""
        if self._mpoly is None:
            import flint

            found = self._polys()
            assert found is not None
            polys, gens = found
            terms = self._terms_bound(polys, gens)
            num, den = 0, 1
            for p in polys:
                for c in p.coeffs():
                    q = Fraction(int(c.numerator), int(c.denominator))
                    num += abs(q.numerator)
                    den = math.lcm(den, q.denominator)
            bits = exact.mul(self.n, math.log2(max(num, 2)) + math.log2(den)) + 2
            nvars = len(gens) + self.source.ndim
            what = "the symbolic expansion (python-flint's fmpq_mpoly power)"
            hint = "substitute numbers for some symbols or use fewer layers"
            exact.guard(exact.mul(terms, 2 * bits / 8 + 8 * nvars + 64), what, hint)
            exact.check_work(exact.mul(terms, len(polys) * (bits / 8 + 8 * nvars)), what, hint)
            names = [f"g{i}" for i in range(len(gens))] + ["_x", "_y"][: self.source.ndim]
            ctx = flint.fmpq_mpoly_ctx.get(tuple(names), "lex")
            k2 = self.source.shape[-1]
            base: dict[tuple[int, ...], Any] = {}
            for m, p in enumerate(polys):
                pos = divmod(m, k2)[2 - self.source.ndim :]  # (m,) in 1-D
                for monom, c in p.terms():
                    key = (*monom, *pos)
                    base[key] = base.get(key, 0) + flint.fmpq(int(c.numerator), int(c.denominator))
            power = ctx.from_dict(base) ** self.n if base else ctx.from_dict({}) ** self.n
            groups: dict[tuple[int, ...], list[Any]] = {}
            ng = len(gens)
            for monom, c in zip(power.monoms(), power.coeffs(), strict=True):
                groups.setdefault(tuple(monom[ng:]), []).append((monom[:ng], c))
            self._mpoly = (power, gens, groups)
        return self._mpoly

    def _expr(self, index: tuple[int, ...]) -> Any:
        """One coefficient of the mpoly power as a sympy expression (canonical, expanded)."""
        import sympy

        _, gens, groups = self._power()
        terms = [_sympy_term(c, gens, e) for e, c in groups.get(index, [])]
        return _sympy_sum(terms) if terms else sympy.Integer(0)

    # ---------------------------------------------------------------- reads
    def coefficients(self) -> list[Any]:
        if self._coeffs is None:
            route = self.route
            if route == "exact":
                values = self._numeric.coefficients()
                self._coeffs = _nested_map(values, _sympy_number)
            elif route == "mpoly":
                power = self._power()[0]
                if len(power) > _SYMBOLIC_MAX_TERMS:
                    raise _config.SizeLimitError(
                        f"the symbolic expansion has {len(power)} terms, above the limit of "
                        f"{_SYMBOLIC_MAX_TERMS} that sympy turns into expressions in seconds; "
                        f"read single coefficients with coefficient(t), substitute numbers for "
                        f"some symbols, or use fewer layers",
                        len(power),
                        _SYMBOLIC_MAX_TERMS,
                    )
                self._coeffs = _grid(self.shape, self._expr)
            else:
                self._coeffs = self._sympy_coefficients()
        return self._coeffs

    def _sympy_coefficients(self) -> list[Any]:
        import sympy

        k = len(self.weights)
        terms = math.comb(self.n + k - 1, k - 1)
        length = math.prod(self.shape)
        work = exact.mul(terms, exact.fl(length))
        if terms > _SYMBOLIC_MAX_TERMS or work > _SYMPY_MAX_WORK:
            raise _config.SizeLimitError(
                f"the symbolic expansion has up to {format_value(terms, short=True)} terms "
                f"over {format_value(length, short=True)} coefficients (work about "
                f"{work:.3g}, limit {_SYMPY_MAX_WORK:.3g}: sympy would take minutes); write "
                f"float weights as exact rationals, substitute numbers for some symbols, or "
                f"use fewer layers",
                int(min(work, 2.0**200)),
                int(_SYMPY_MAX_WORK),
            )
        if self.source.ndim == 1:
            z = sympy.Symbol("z")
            poly = sympy.Poly(sum(w * z**m for m, w in enumerate(self.weights)), z) ** self.n
            return [sympy.expand(poly.coeff_monomial(z**t)) for t in range(length)]
        x, y = sympy.symbols("x y")
        k1, k2 = self.source.shape
        base = sum(self.weights[i * k2 + j] * x**i * y**j for i in range(k1) for j in range(k2))
        poly = sympy.Poly(base, x, y) ** self.n
        L1, L2 = self.shape
        return [
            [sympy.expand(poly.coeff_monomial(x**i * y**j)) for j in range(L2)] for i in range(L1)
        ]

    def compute(self) -> None:
        self.coefficients()

    def coefficient(self, index: tuple[int, ...]) -> Any:
        if self._coeffs is None and self.route == "exact":
            return _sympy_number(self._numeric.coefficient(index))
        if self._coeffs is None and self.route == "mpoly":
            return self._expr(index)
        c: Any = self.coefficients()
        for i in index:
            c = c[i]
        return c

    def _normalized(self) -> np.ndarray:
        if self._numeric is None:
            raise ERFTypeError(
                "normalized() needs numbers; this profile is symbolic: substitute values into "
                "the kernel's symbols and build a numeric Kernel"
            )
        return np.asarray(self._numeric.normalized())

    def _log_normalized(self) -> np.ndarray:
        if self._numeric is None:
            raise ERFTypeError("log_normalized() needs numbers; this profile is symbolic")
        return np.asarray(self._numeric.log_normalized())


_SYMPY_MAX_WORK = 4e6
"""sympy's own power costs about 1.5 µs × (terms) × (coefficients) (measured: [a, 1] at
n = 800, [a, b, a] at n = 80, [a, 1, 1, 1] at n = 60: 1-3 s); past this, refuse."""


def _sympy_number(x: Any) -> Any:
    import sympy

    if isinstance(x, Fraction):
        return sympy.Rational(x.numerator, x.denominator)
    if isinstance(x, float):
        return sympy.Float(x)
    return sympy.Integer(int(x))


def _grid(shape: tuple[int, ...], f: Any, start: tuple[int, ...] = ()) -> list[Any]:
    """``f(index)`` for every index of ``shape``: a list (1-D) or a list of rows (2-D)."""
    if len(shape) == 1:
        return [f((*start, t)) for t in range(shape[0])]
    return [_grid(shape[1:], f, (*start, i)) for i in range(shape[0])]


def _nested_map(values: Any, f: Any) -> Any:
    if isinstance(values, list):
        return [_nested_map(v, f) for v in values]
    return f(values)


def _sympy_term(c: Any, gens: list[Any], exps: tuple[int, ...]) -> Any:
    """``c * prod(g**e)`` as sympy builds it, without Mul's flattening where that is safe."""
    import sympy
    from sympy.core.basic import Basic

    q = Fraction(int(c.p), int(c.q))
    coeff = sympy.Rational(q.numerator, q.denominator)
    factors = [g**e if e != 1 else g for g, e in zip(gens, exps, strict=True) if e]
    if not factors:
        return coeff
    if not all(isinstance(g, sympy.Symbol) for g, e in zip(gens, exps, strict=True) if e):
        return sympy.Mul(coeff, *factors)  # atoms such as sqrt(a) may combine: evaluate
    import functools

    factors.sort(key=functools.cmp_to_key(Basic.compare))
    args = factors if coeff == 1 else [coeff, *factors]
    return args[0] if len(args) == 1 else sympy.Mul._from_args(args)


def _sympy_sum(terms: list[Any]) -> Any:
    import sympy

    if len(terms) == 1:
        return terms[0]
    return sympy.Add(*terms)
