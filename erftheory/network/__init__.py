r"""The ERF of a network: the layer algebra of Sections 2.4 and 2.5.

A stack of layers with strides $s_l$ and dilations $d_l$ has the transfer polynomial

$$T(z) = \prod_l V_l\!\left(z^{J_{l-1} d_l}\right), \qquad J_l = s_1 s_2 \cdots s_l,$$

in input coordinates: layer $l$ sees the input on a grid $J_{l-1}$ times coarser, and a
dilation $d$ maps $V(z)$ to $V(z^d)$. Branches whose outputs are summed (a residual
block $y = x + F(x)$, parallel paths) add their polynomials, aligned on the output grid.
The coefficients of $T$ are the ERF of one output unit (Eq. 3, 4 and 9 for one kernel).

Two kinds of ERF run on the same algebra (see `erftheory.layers`):

- ``kind="gradient"``: the gradient of the output unit with *fixed* weights;
- ``kind="expected_square"``: the expected squared gradient when the convolutions have
  independent zero-mean random weights with the given per-tap variances. Paths through
  different random taps are uncorrelated (Eq. 6–8), so their squares add, while paths
  through the *same* random taps add coherently across fixed layers (average pooling,
  batch norm, shortcuts): with $D$ the paths through no random layer and, for each family
  $f$ of paths sharing their random layers, $V_f$ the product of those layers' variance
  polynomials and $F_f$ the fixed part,
  $\mathbb E[g^2] = \mathrm{sq}(D) + \sum_f V_f\,\mathrm{sq}(F_f)$ with $\mathrm{sq}$ the
  coefficient-wise square. A pointwise random factor (dropout's mask, an activation's
  slope under the independence assumption of Section 2.4) is its mean plus noise that is
  independent from pixel to pixel, which adds the squares of everything below it. This
  is exact for random convolutions, fixed layers and dropout in a chain; for an
  activation or dropout *inside* a block it treats the paths below the block as coherent,
  which is exact unless fixed multi-tap layers lie between the block and the nearest
  random convolution below it.

Example:
    >>> from erftheory import Kernel, Network
    >>> from erftheory.layers import Conv, AvgPool
    >>> net = Network([Conv(Kernel([1, 1, 1])), AvgPool(2, stride=2), Conv(3)])
    >>> net.ndim, net.receptive_field
    (1, ReceptiveField(size=8, jump=2, offset=-3))
    >>> [str(c) for c in net.profile().coefficients]   # (1+z+z²)·½(1+z)·(1+z²+z⁴)
    ['1/2', '1', '3/2', '3/2', '3/2', '3/2', '1', '1/2']

The package, one concept a module (data flows down the list):

- `erftheory.network.algebra`: the algebras the layers are evaluated in (exact
  polynomial, moments, bounds, geometry) and the gradient walk;
- `erftheory.network.families`: the expected-square families of random-weight paths;
- `erftheory.network.geometry`: the receptive field, output sizes, the input-size rule;
- `erftheory.network.network`: `Network` and its per-layer table;
- `erftheory.network.profile`: `NetworkProfile`.
"""

from .algebra import (  # noqa: F401 - the old module's private names, for callers
    _Bound,
    _compose,
    _Exact,
    _Geometry,
    _layer,
    _Moments,
    _Transfer,
    _unit,
)
from .families import _chain, _sq_bound  # noqa: F401
from .geometry import MAX_RF_BITS, ReceptiveField
from .network import LayerRow, Network, _sqrt, _std  # noqa: F401
from .profile import NetworkProfile

__all__ = ["MAX_RF_BITS", "LayerRow", "Network", "NetworkProfile", "ReceptiveField"]
