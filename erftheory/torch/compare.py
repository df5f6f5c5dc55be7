"""The old path of `erftheory.compare` (theory against measurement), kept for imports.

The comparison needs only numpy and scipy, so it lives outside `erftheory.torch`;
``from erftheory.torch.compare import compare`` still works.
"""

from __future__ import annotations

from ..compare import Comparison, Correction, compare, total_variation

__all__ = ["Comparison", "Correction", "compare", "total_variation"]
