"""`NetworkProfile`: the `Profile` of a network's ERF."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..profile import Profile

if TYPE_CHECKING:
    from .network import Network


class NetworkProfile(Profile):
    """The `Profile` of a network's ERF: its transfer polynomial taken once.

    Everything of `Profile` applies (``coefficients``, ``normalized()``, ``mean``,
    ``variance``, ERF sizes, ``gaussian()``); ``kernel`` is the transfer polynomial on
    the RF grid and ``layers`` is 1. ``rf_size`` is the network's theoretical RF.

    Attributes:
        network: the `Network`.
        kind: ``"gradient"`` or ``"expected_square"``.
    """

    def __init__(self, network: Network, kind: str, base: Profile) -> None:
        super().__init__(base.kernel, 1, base.method, dps=base.dps, reason=base.engine_reason)
        self.network = network
        self.kind = kind

    def summary(self, fractions: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)) -> dict[str, Any]:
        out = super().summary(fractions)
        rf = self.network.receptive_field
        del out["kernel"], out["anchor"], out["layers"]
        out = {
            "network": repr(self.network),
            "kind": self.kind,
            "jump": rf.jump if self.ndim == 1 else list(rf.jump),
            "offset": rf.offset if self.ndim == 1 else list(rf.offset),
            **out,
        }
        return out

    def __repr__(self) -> str:
        return f"NetworkProfile({self.network!r}, kind={self.kind!r}, method={self.method!r})"
