"""Independent routes used as oracles: brute-force convolution, enumeration."""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any


def convolve(a: list[Any], b: list[Any]) -> list[Any]:
    """Plain O(len(a) len(b)) convolution, in whatever exact type the inputs carry."""
    out: list[Any] = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def power_by_convolution(w: list[Any], n: int) -> list[Any]:
    """The coefficients of V(z)^n by n successive convolutions (no flint)."""
    out: list[Any] = [1]
    for _ in range(n):
        out = convolve(out, w)
    return out


def convolve2d(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
    rows, cols = len(a) + len(b) - 1, len(a[0]) + len(b[0]) - 1
    out: list[list[Any]] = [[0] * cols for _ in range(rows)]
    for i, ra in enumerate(a):
        for j, x in enumerate(ra):
            for p, rb in enumerate(b):
                for q, y in enumerate(rb):
                    out[i + p][j + q] += x * y
    return out


def power2d_by_convolution(w: list[list[Any]], n: int) -> list[list[Any]]:
    out: list[list[Any]] = [[1]]
    for _ in range(n):
        out = convolve2d(out, w)
    return out


def enumerate_paths(w: list[Any], n: int) -> list[Any]:
    """o(t) as a sum over all k^n tap sequences (the paths of Section 1)."""
    k = len(w)
    out: list[Any] = [0] * (n * (k - 1) + 1)
    for seq in itertools.product(range(k), repeat=n):
        term: Any = 1
        for m in seq:
            term *= w[m]
        out[sum(seq)] += term
    return out


def exact_moments(coeffs: list[Any], origin: int) -> tuple[Fraction, Fraction]:
    total = Fraction(sum(coeffs))
    mean = sum(Fraction(c) * (t - origin) for t, c in enumerate(coeffs)) / total
    second = sum(Fraction(c) * (t - origin) ** 2 for t, c in enumerate(coeffs)) / total
    return mean, second - mean * mean
