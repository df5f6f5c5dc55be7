"""`NetworkProfile`: the `Profile` of a network's ERF."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ..engines import Result
from ..profile import Method, Profile

if TYPE_CHECKING:
    from .network import Network


class NetworkProfile(Profile):
    """The `Profile` of a network's ERF: its transfer polynomial taken once.

    Built by `Network.profile` from an engine's result for the exact transfer polynomial
    (`erftheory.engines.source.TransferPolynomial`), with no `Kernel` in between.
    Everything of `Profile` applies (``coefficients``, ``normalized()``, ``mean``,
    ``variance``, ERF sizes, ``gaussian()``); ``kernel`` is the transfer polynomial on
    the RF grid (built when it is read) and ``layers`` is 1. ``rf_size`` is the
    network's theoretical RF; `summary` starts with the network, its kind, and the RF's
    jump and offset.

    Attributes:
        network: the `Network`.
        kind: ``"gradient"`` or ``"expected_square"``.
    """

    def __init__(self, network: Network, kind: str, result: Result | Profile) -> None:
        if isinstance(result, Profile):  # a Profile of the transfer polynomial's Kernel
            base = result
            result = network.profile(kind, method=cast(Method, base.method), dps=base.dps)._result
            result.reason = base.engine_reason
        self._attach(result)
        self.network = network
        self.kind = kind

    def __repr__(self) -> str:
        return f"NetworkProfile({self.network!r}, kind={self.kind!r}, method={self.method!r})"
