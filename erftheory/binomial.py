r"""Extended binomial coefficients (Section 2.1).

$\binom{n}{t}_k$ is the coefficient of $z^t$ in $(1 + z + \dots + z^{k-1})^n$: the ERF of
$n$ layers of an all-ones kernel of $k$ taps. For $k = 2$ it is the binomial row.
"""

from __future__ import annotations

import math
import numbers

from . import _config, _exact
from ._errors import ERFTypeError, ERFValueError
from .profile import check_layers

__all__ = ["extended_binomial", "extended_binomial_coefficient"]


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise (ERFTypeError if not isinstance(k, numbers.Integral) else ERFValueError)(
            f"k must be a positive integer (1, 2, 3, ...), got {k!r}"
        )
    return int(k)


def extended_binomial(n: int, k: int) -> list[int]:
    r"""The exact coefficients of $(1 + z + \dots + z^{k-1})^n$, a list of $n(k-1)+1$ ints.

    Computed with python-flint's ``fmpz_poly`` power after a memory check.

    Example:
        >>> extended_binomial(4, 2)            # binomial row C(4, t)
        [1, 4, 6, 4, 1]
        >>> extended_binomial(2, 3)
        [1, 2, 3, 2, 1]
    """
    n = check_layers(n, "n")
    k = _check_k(k)
    ints = [1] * k
    bits, length = _exact.coefficient_bits_bound(ints, n)
    _config.check_size(
        _exact.POW_PEAK_FACTOR * _exact.poly_bytes(bits, length)
        + _exact.python_bytes(bits, length),
        "the exact coefficients",
        "use erftheory.profile(..., method='float') or raise erftheory.set_memory_limit()",
    )
    p = _exact.power_1d(ints, n)
    return [int(c) for c in p.coeffs()] + [0] * (length - p.degree() - 1)


def extended_binomial_coefficient(n: int, k: int, t: int) -> int:
    r"""One extended binomial coefficient by the closed form (inclusion–exclusion):

    $$\binom{n}{t}_k = \sum_{j \ge 0} (-1)^j \binom{n}{j} \binom{t - jk + n - 1}{n - 1}.$$

    Example:
        >>> extended_binomial_coefficient(2, 3, 2)
        3
        >>> [extended_binomial_coefficient(n, 3, n) for n in range(8)]  # OEIS A002426
        [1, 1, 3, 7, 19, 51, 141, 393]
    """
    n = check_layers(n, "n")
    k = _check_k(k)
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise ERFTypeError(f"t must be an integer, got {t!r}")
    t = int(t)
    if t < 0 or t > n * (k - 1):
        return 0
    if n == 0:
        return 1
    if k == 1:
        return 1 if t == 0 else 0
    return sum(
        (-1) ** j * math.comb(n, j) * math.comb(t - j * k + n - 1, n - 1)
        for j in range(min(n, t // k) + 1)
    )
