r"""PyTorch bridge: build a `erftheory.network.Network` as a torch model.

Needs ``torch`` (``pip install erftheory[torch]``); ``import erftheory`` never imports
it, only ``import erftheory.torch`` does.

- `to_torch`: the torch model of a network, with kernel, all-ones or random weights.

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

from .build import NetworkModule, to_torch

__all__ = ["NetworkModule", "to_torch"]
