"""Shared helpers of the proofs: checks that survive ``python -O``, exact expectations, fits."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy


def require(condition: Any, message: str) -> None:
    """Raise `AssertionError` with ``message`` unless ``condition`` holds (not stripped by -O)."""
    if not bool(condition):
        raise AssertionError(message)


def zero(expr: Any, message: str) -> None:
    """Require a sympy expression to simplify to exactly 0."""
    value = sympy.simplify(sympy.expand(expr))
    require(value == 0, f"{message}: residual {value} is not 0")


def pick(variant: str | None, variants: Mapping[str, str]) -> str | None:
    """Validate a variant name against a proof's ``VARIANTS`` table."""
    if variant is not None and variant not in variants:
        raise ValueError(
            f"variant must be None or one of {', '.join(sorted(variants))}; got {variant!r}"
        )
    return variant


def expect(expr: sympy.Expr, moments: Mapping[sympy.Symbol, Any]) -> sympy.Expr:
    r"""$\mathbb E$ of a polynomial in independent random symbols.

    ``moments[x]`` is a function ``e -> E[x**e]``; symbols not listed are constants.
    Independence makes the expectation of a monomial the product of the moments.
    """
    gens = list(moments)
    poly = sympy.Poly(sympy.expand(expr), *gens)
    total = sympy.Integer(0)
    for monom, coeff in poly.terms():
        term = coeff
        for x, e in zip(gens, monom, strict=True):
            term *= moments[x](e)
        total += term
    return sympy.expand(total)


def variance_from_coefficients(coeffs: Sequence[Any], origin: int = 0) -> tuple[Fraction, Fraction]:
    """Mean and variance of the normalised sequence, straight from its definition."""
    total = sum(Fraction(c) for c in coeffs)
    mean = sum(Fraction(c) * (t - origin) for t, c in enumerate(coeffs)) / total
    second = sum(Fraction(c) * (t - origin) ** 2 for t, c in enumerate(coeffs)) / total
    return mean, second - mean * mean


def convolve(a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    """The full discrete convolution of two finite sequences, by its definition."""
    out: list[Any] = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def loglog_slope(ns: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) against log(ns)."""
    x = np.log(np.asarray(ns, dtype=float))
    y = np.log(np.asarray(values, dtype=float))
    return float(np.polyfit(x, y, 1)[0])


def close(a: float, b: float, rel: float, message: str) -> None:
    """Require ``|a - b| <= rel * |b|``."""
    require(math.isfinite(a) and abs(a - b) <= rel * abs(b), f"{message}: {a!r} vs {b!r}")
