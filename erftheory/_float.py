"""The float engine: powers of float kernels by repeated squaring in float64.

Each squaring is a convolution (``scipy.signal.convolve``, which picks direct
summation for short inputs and FFT for long ones). The kernel is divided by its
largest absolute weight first so that nothing overflows; the caller rescales.
FFT products carry an absolute error of order $10^{-16}$ of the peak, so tiny
tail values are not relatively accurate; see the engines issue for the tilted
engine that fixes this.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["power_float"]


def power_float(weights: np.ndarray, n: int) -> np.ndarray:
    """Return ``weights`` convolved with itself ``n`` times (1-D or 2-D), in float64."""
    base = np.asarray(weights, dtype=np.float64)
    result = np.ones((1,) * base.ndim)
    while n:
        if n & 1:
            result = signal.convolve(result, base)
        n >>= 1
        if n:
            base = signal.convolve(base, base)
    return result
