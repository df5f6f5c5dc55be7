r"""The plain ``fft`` engine: sample the DTFT, raise it to the $n$-th power, invert.

$V(\omega)$ is sampled on $N \ge n(k-1)+1$ points (a fast FFT length, so there is no
wrap-around), each sample is raised to the $n$-th power and one inverse real FFT
returns all coefficients of $V^n / V(1)^n$.

**Error bound (absolute).** With $u = 2^{-53}$, $\|w\|_1 = \sum_m |w_m|$ and
$\rho = \|w\|_1 / |\sum_m w_m|$, every normalised coefficient satisfies

$$|\hat c_t - c_t| \le u\,(n + 3\log_2 N + 4)\,\rho^{\,n}\,A, \qquad
A = \frac1N \sum_i \bigl|V(\omega_i)/\textstyle\sum_m |w_m|\bigr|^n \le 1,$$

a first-order bound: the forward FFT gives each sample with a relative error of about
$u \log_2 N$, the power multiplies it by $n$, and the inverse FFT adds $u\log_2 N$ of
the largest sample. $A$ is computed from the samples, so the bound returned by
`fft_power` is usually far below the a-priori $u(n + 3\log_2 N + 4)\rho^n$. For
nonnegative kernels $\rho = 1$ and the bound is about $u\,n\,\max_t c_t$: tail
coefficients below it are noise (they may even be negative) — use the ``float``
engine for relative accuracy.

`FFTResult` is the engine's result for a `erftheory.engines.source.Source`; the ``float``
engine falls back to it where tilting does not apply (negative weights).

Example:
    >>> import numpy as np
    >>> values, bound = fft_power(np.array([1.0, 1.0]), 2)
    >>> bool(np.allclose(values, [0.25, 0.5, 0.25])), bound < 1e-14
    (True, True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import fft as sfft

from .._errors import ERFValueError
from ..kernel import format_value
from .base import require_nonzero_sum
from .floats import ArrayResult

if TYPE_CHECKING:
    from .source import Source

__all__ = ["FFTResult", "build", "fft_power", "scaled_weights"]

UNIT_ROUNDOFF = 2.0**-53


def scaled_weights(weights: np.ndarray) -> np.ndarray:
    """``weights`` as float64 times a power of two (exact) that brings the largest near 1.

    Normalised profiles do not depend on the scale; without it sums of weights near
    1e308 overflow to inf and the profile comes out NaN. Non-finite weights are an
    `erftheory.ERFValueError`.
    """
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ERFValueError("the weights must be finite numbers; got inf or nan")
    top = float(np.max(np.abs(w))) if w.size else 0.0
    if top > 0 and not 2.0**-500 < top < 2.0**500:
        w = np.ldexp(w, -math.frexp(top)[1])
    return w


def fft_power(weights: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Return ``(values, bound)``: the normalised $V^n / V(1)^n$ (1-D or 2-D) and its error bound.

    ``weights`` must have a non-zero sum. ``bound`` is the absolute error bound of the
    module docstring.
    """
    w = scaled_weights(weights)
    shape = tuple(n * (s - 1) + 1 for s in w.shape)
    l1 = float(np.abs(w).sum())
    total = float(w.sum())
    if n == 0:
        out = np.zeros(shape)
        out.flat[0] = 1.0
        return out, 0.0
    sizes = [sfft.next_fast_len(s, real=True) for s in shape]
    axes = tuple(range(w.ndim))
    spec = sfft.rfftn(w / l1, sizes, axes=axes)
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):  # the caller checks
        spec = spec**n
        mag = float(np.mean(np.abs(spec)))
        values = sfft.irfftn(spec, sizes, axes=axes)
        ratio = float(np.float64(l1 / abs(total)) ** n)  # inf past 1.8e308: the caller refuses
        values = values[tuple(slice(0, s) for s in shape)] * (np.float64(l1 / total) ** n)
    big_n = math.prod(sizes)
    bound = UNIT_ROUNDOFF * (n + 3 * math.log2(big_n) + 4) * ratio * mag
    if math.isnan(bound):
        bound = math.inf
    return values, bound


class FFTResult(ArrayResult):
    """The plain ``fft`` engine's result (`fft_power`), with its absolute error bound."""

    def _normalized(self) -> np.ndarray:
        self._check(5.0)
        w = self.source.float_rows()
        require_nonzero_sum(self.source.total)
        if w.sum() == 0:
            raise ERFValueError(
                "the kernel's weights cancel to zero in float64 (their exact sum is "
                f"{format_value(self.source.total, short=True)}); use method='exact' or "
                "method='arb'"
            )
        values, bound = fft_power(w, self.source.n)
        if not (math.isfinite(bound) and np.all(np.isfinite(values))):
            raise ERFValueError(
                "the plain FFT cannot represent this profile: with weights of mixed signs "
                "its error bound grows like (sum |w| / |sum w|)**n, here beyond float64; "
                "use method='exact' or method='arb'"
            )
        self._bound = bound
        return values

    def _log_normalized(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(self.normalized(), 0.0))


def build(source: Source, dps: int | None = None) -> FFTResult:
    """The ``fft`` result for a numeric ``source`` (``dps`` unused)."""
    return FFTResult(source)
