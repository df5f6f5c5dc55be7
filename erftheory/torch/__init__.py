r"""PyTorch bridge: build a `erftheory.network.Network` as a torch model.

Needs ``torch`` (``pip install erftheory[torch]``); ``import erftheory`` never imports
it, only ``import erftheory.torch`` does.

- `to_torch`: the torch model of a network, with kernel, all-ones or random weights.
- `BatchedNetworks`, `batched_input_gradients`: many independent random networks in one
  pass (channel groups), and their input gradients (Section 3).
- `empirical_erf`: the measured ERF of any torch model (Section 3): signed mean, mean
  square, mean absolute value or ReLU of the gradient, over random inputs, a tensor or a
  DataLoader, with standard errors, NaN counting and `torch.distributed` reduction;
  its result `EmpiricalERF` has moments, a 2-D Gaussian fit, radial mass and mass-share
  squares with delta-method standard errors (`Moments`, `GaussianFit`, `RadialMass`,
  `MassShare`), and a plot.
- `exact_gradient`, `exact_expected_square`: the exact multi-channel input gradient of a
  linear model with its own weights, and Eq. 8 channel by channel (rational arithmetic
  over the traced graph).
- `predicted_erf`: Eq. 8 channel by channel for real models, one float64 variance pass
  through the model itself; the paper's activation factors or ones calibrated on inputs
  (`activation_factors`); `mean_gradient`, its fixed-weight counterpart (the expected
  input gradient with the model's own weights).
- `compare`: theory against measurement, or two measurements against each other, each
  with its own standard errors (z-scores, total variation, variance ratio, a verdict at
  a stated confidence level).
- `paper_network`: the synthetic networks of Sections 3.1 and 2.5.
- Initialisations: `he_`, `xavier_`, `ones_`, `centre_low_` (Section 4) and their exact
  per-tap variance kernels, `variance_network` for the theory of a random network.

Example:
    >>> import torch
    >>> from erftheory import Network
    >>> from erftheory.layers import Conv
    >>> from erftheory.torch import to_torch
    >>> x = torch.zeros(1, 1, 5, dtype=torch.float64, requires_grad=True)
    >>> to_torch(Network([Conv([1, 2, 3])] * 2))(x)[0, 0, 2].backward()
    >>> x.grad[0, 0].tolist()   # (1 + 2z + 3z²)², the exact ERF of the centre unit
    [1.0, 4.0, 10.0, 12.0, 9.0]
"""

from __future__ import annotations

from .batched import BatchedNetworks, batched_input_gradients, paper_network
from .build import NetworkModule, to_torch
from .channels import ChannelERF, activation_factors, mean_gradient, predicted_erf
from .compare import Comparison, compare, total_variation
from .empirical import EmpiricalERF, empirical_erf, suggest_batch_size
from .exact_gradient import ExactGradient, exact_expected_square, exact_gradient
from .init import (
    centre_low_,
    centre_low_variances,
    he_,
    he_variances,
    ones_,
    variance_network,
    xavier_,
    xavier_variances,
)
from .map_measures import GaussianFit, MassShare, Moments, RadialMass
from .result import ORIGIN_SOURCES

__all__ = [
    "ORIGIN_SOURCES",
    "BatchedNetworks",
    "ChannelERF",
    "Comparison",
    "EmpiricalERF",
    "ExactGradient",
    "GaussianFit",
    "MassShare",
    "Moments",
    "NetworkModule",
    "RadialMass",
    "activation_factors",
    "batched_input_gradients",
    "centre_low_",
    "centre_low_variances",
    "compare",
    "empirical_erf",
    "exact_expected_square",
    "exact_gradient",
    "he_",
    "he_variances",
    "mean_gradient",
    "ones_",
    "paper_network",
    "predicted_erf",
    "suggest_batch_size",
    "to_torch",
    "total_variation",
    "variance_network",
    "xavier_",
    "xavier_variances",
]
