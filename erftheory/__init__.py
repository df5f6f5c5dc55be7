r"""erftheory: exact effective receptive fields of deep CNNs.

The ERF of $n$ stacked convolutions with kernel $w$ is the coefficient sequence of
$(\sum_m w(m) z^m)^n$ (Luo, Li, Urtasun and Zemel, NIPS 2016, Eq. 9).

>>> import erftheory
>>> erftheory.extended_binomial(3, 3)
[1, 3, 6, 7, 6, 3, 1]
"""

from __future__ import annotations

from ._config import get_memory_limit, memory_limit, set_memory_limit
from ._errors import (
    ERFError,
    ERFTypeError,
    ERFValueError,
    MissingDependencyError,
    SizeLimitError,
)
from .arch import load_arch, parse_arch
from .binomial import extended_binomial, extended_binomial_coefficient
from .gaussian import GaussianFit
from .kernel import Kernel
from .layers import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Identity,
    LeakyReLU,
    MaxPool,
    Parallel,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
)
from .network import LayerRow, Network, NetworkProfile, ReceptiveField
from .profile import Profile, profile
from .trace import from_torch

__all__ = [
    "Activation",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "Dropout",
    "ERFError",
    "ERFTypeError",
    "ERFValueError",
    "GaussianFit",
    "Identity",
    "Kernel",
    "LayerRow",
    "LeakyReLU",
    "MaxPool",
    "MissingDependencyError",
    "Network",
    "NetworkProfile",
    "Parallel",
    "Profile",
    "ReLU",
    "ReceptiveField",
    "Residual",
    "Sigmoid",
    "SizeLimitError",
    "Tanh",
    "__version__",
    "extended_binomial",
    "extended_binomial_coefficient",
    "from_torch",
    "get_memory_limit",
    "load_arch",
    "memory_limit",
    "parse_arch",
    "profile",
    "set_memory_limit",
]

__version__ = "0.1.0.dev0"
