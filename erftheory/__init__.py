r"""erftheory: exact effective receptive fields of deep CNNs.

The ERF of $n$ stacked convolutions with kernel $w$ is the coefficient sequence of
$(\sum_m w(m) z^m)^n$ (Luo, Li, Urtasun and Zemel, NIPS 2016, Eq. 9).

>>> import erftheory
>>> erftheory.extended_binomial(3, 3)
[1, 3, 6, 7, 6, 3, 1]

Layout (docs/design.md): data flows one way, kernel or network → engine result →
`Profile` → measures.

- `kernel`: kernels (Eq. 1, 9). `engines`: one module per engine (`exact`, `tilted`
  for ``float``, `fft`, `arb`, `symbolic`) behind one `Result` protocol over a source (a
  kernel's power or a network's transfer polynomial), and the table `ENGINES` that
  selects and builds (Eq. 3–9). `profile` and `binomial`: profiles, a thin facade over a
  result. `measures` and `gaussian`: ERF sizes, moments and the Gaussian limit (Eq. 10–11).
- `layers` (with `registry`: every layer's file name, options and builder) and `network`
  (`algebra`, `families`, `geometry`, `network`, `profile`): architectures (Sections
  2.4–2.5); `arch`, `initializations`, `paper`: networks as data and the paper's
  networks (Section 3); `graph`: graph decomposition; `compare`: theory against
  measurement.
- `cli`, `plotting`, `verify`, `strategies`: user surfaces.
- `erftheory.torch`: everything that needs torch (building, tracing, measuring,
  reproducing). The core never imports torch, matplotlib or scikit-learn at import time;
  `_errors` and `_config` import nothing of the package.
"""

from __future__ import annotations

import importlib.util
from typing import Any

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
    Graph,
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
    "Graph",
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


def __getattr__(name: str) -> Any:
    """``from_torch`` on first use: `erftheory.torch.trace` imports torch, the rest does not."""
    if name != "from_torch":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if importlib.util.find_spec("torch") is None:
        return _from_torch_without_torch
    from .torch.trace import from_torch

    globals()["from_torch"] = from_torch
    return from_torch


def __dir__() -> list[str]:
    return sorted({*globals(), "from_torch"})


def _from_torch_without_torch(*args: Any, **kwargs: Any) -> Any:
    """`erftheory.torch.trace.from_torch`, which needs torch (not installed)."""
    raise MissingDependencyError("torch", "torch", "from_torch")
