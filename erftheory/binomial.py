r"""Extended binomial coefficients (Section 2.1).

$\binom{n}{t}_k$ is the coefficient of $z^t$ in $(1 + z + \dots + z^{k-1})^n$: the ERF of
$n$ layers of an all-ones kernel of $k$ taps. For $k = 2$ it is the binomial row.
"""

from __future__ import annotations

import numbers

from ._errors import ERFTypeError, ERFValueError
from .engines import exact as _exact
from .kernel import Kernel, format_value
from .profile import check_layers, profile

__all__ = ["extended_binomial", "extended_binomial_coefficient"]


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise (ERFTypeError if not isinstance(k, numbers.Integral) else ERFValueError)(
            f"k must be a positive integer (1, 2, 3, ...), got {format_value(k, short=True)}"
        )
    return int(k)


def extended_binomial(n: int, k: int) -> list[int]:
    r"""The exact coefficients of $(1 + z + \dots + z^{k-1})^n$, a list of $n(k-1)+1$ ints.

    The exact engine's route for an all-ones kernel (`erftheory.profile` of
    `Kernel.uniform`): the uniform three-term recurrence on gmpy2 integers where it is
    faster than flint's power, with the same memory guard.

    Example:
        >>> extended_binomial(4, 2)            # binomial row C(4, t)
        [1, 4, 6, 4, 1]
        >>> extended_binomial(2, 3)
        [1, 2, 3, 2, 1]
    """
    n = check_layers(n, "n")
    k = _check_k(k)
    if n == 0 or k == 1:
        return [1]
    return list(profile(Kernel.uniform(k), n).coefficients)


def extended_binomial_coefficient(n: int, k: int, t: int) -> int:
    r"""One extended binomial coefficient by the closed form (inclusion–exclusion):

    $$\binom{n}{t}_k = \sum_{j \ge 0} (-1)^j \binom{n}{j} \binom{t - jk + n - 1}{n - 1},$$

    summed by binary splitting (`erftheory.engines.exact.uniform_coefficient`) after a memory and
    work estimate: ``extended_binomial_coefficient(10**6, 3, 10**6)``, a number of 1.6
    million bits, takes about 2 s; much larger ones are refused up front
    (`SizeLimitError`, with the estimate).

    Example:
        >>> extended_binomial_coefficient(2, 3, 2)
        3
        >>> [extended_binomial_coefficient(n, 3, n) for n in range(8)]  # OEIS A002426
        [1, 1, 3, 7, 19, 51, 141, 393]
    """
    n = check_layers(n, "n")
    k = _check_k(k)
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise ERFTypeError(
            f"t must be an integer, got {format_value(t, short=True)} of type {type(t).__name__}"
        )
    return _exact.uniform_coefficient(k, n, int(t))
