r"""erftheory: exact effective receptive fields of deep CNNs.

The ERF of $n$ stacked convolutions with kernel $w$ is the coefficient sequence of
$(\sum_m w(m) z^m)^n$ (Luo, Li, Urtasun and Zemel, NIPS 2016, Eq. 9).

>>> import erftheory
>>> erftheory.extended_binomial(3, 3)
[1, 3, 6, 7, 6, 3, 1]
"""

from __future__ import annotations

from ._config import get_memory_limit, memory_limit, set_memory_limit
from ._errors import ERFTypeError, ERFValueError, SizeLimitError
from .binomial import extended_binomial, extended_binomial_coefficient
from .gaussian import GaussianFit
from .kernel import Kernel
from .profile import Profile, profile

__all__ = [
    "ERFTypeError",
    "ERFValueError",
    "GaussianFit",
    "Kernel",
    "Profile",
    "SizeLimitError",
    "__version__",
    "extended_binomial",
    "extended_binomial_coefficient",
    "get_memory_limit",
    "memory_limit",
    "profile",
    "set_memory_limit",
]

__version__ = "0.1.0.dev0"
