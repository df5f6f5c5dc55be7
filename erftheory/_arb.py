r"""The ``arb`` engine: ball arithmetic at a chosen precision (python-flint's `arb`).

The kernel's weights enter exactly (integers, or floats, which are dyadic rationals)
and $V(z)^n$ is computed with ``arb_poly`` powering at $\lceil \mathrm{dps}\cdot
\log_2 10\rceil + 32$ bits. Every result is a ball $[m \pm r]$ that is guaranteed to
contain the true normalised coefficient; flint's block multiplication scales blocks
of coefficients separately, so tail coefficients keep a small *relative* radius too.
2-D kernels are packed into one polynomial (Kronecker substitution $x \mapsto z^{L_2}$,
exact for polynomials). Cost grows roughly like the exact engine's times the working
precision; it is meant for references and certified values, not for speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flint

__all__ = ["ARB_GUARD_BITS", "arb_power", "prec_for_dps"]

ARB_GUARD_BITS = 32
"""Extra bits on top of the requested decimal digits."""


def prec_for_dps(dps: int) -> int:
    """Working precision in bits for ``dps`` decimal digits."""
    return math.ceil(dps * math.log2(10)) + ARB_GUARD_BITS


def arb_power(rows: Sequence[Sequence[Any]], n: int, dps: int) -> list[list[Any]]:
    """Balls for the normalised coefficients of $V^n / V(1)^n$ (a grid; one row in 1-D).

    ``rows`` holds exact weights (ints or floats; a rational kernel is passed in its
    integer form). Returns a list of rows of ``flint.arb``.
    """
    prec = prec_for_dps(dps)
    old = flint.ctx.prec
    flint.ctx.prec = prec
    try:
        k1, k2 = len(rows), len(rows[0])
        l1, l2 = n * (k1 - 1) + 1, n * (k2 - 1) + 1
        packed = [flint.arb(0)] * ((k1 - 1) * l2 + k2)
        total = flint.arb(0)
        for i in range(k1):
            for j in range(k2):
                v = flint.arb(rows[i][j])
                packed[i * l2 + j] = v
                total += v
        power = flint.arb_poly(packed) ** n
        scale = 1 / total**n
        deg = power.degree()
        zero = flint.arb(0)
        return [
            [power[i * l2 + j] * scale if i * l2 + j <= deg else zero for j in range(l2)]
            for i in range(l1)
        ]
    finally:
        flint.ctx.prec = old
