"""Hypothesis strategies for kernels and profiles, for your own property tests.

Import this module explicitly (it needs ``hypothesis``, a dependency of erftheory)::

    from hypothesis import given
    from erftheory.strategies import kernels, layer_counts

    @given(kernels(), layer_counts(max_value=20))
    def test_sum(kernel, n):
        assert sum(profile(kernel, n).coefficients) == kernel.total ** n

Exact profiles make good oracles: the strategies here generate integer and rational
kernels small enough that their exact profiles compute in milliseconds.

Example:
    >>> from hypothesis import given, settings
    >>> from erftheory import profile
    >>> from erftheory.strategies import kernels, layer_counts
    >>> @settings(max_examples=20)
    ... @given(kernels(), layer_counts(max_value=10))
    ... def check(kernel, n):
    ...     assert sum(profile(kernel, n).coefficients) == kernel.total ** n
    >>> check()
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from hypothesis import strategies as st

from .kernel import Kernel
from .profile import Profile, profile

__all__ = ["kernels", "layer_counts", "profiles", "weights"]


def weights(
    domain: Literal["integer", "rational", "float"] = "integer",
    *,
    nonnegative: bool = True,
    max_magnitude: int = 20,
) -> st.SearchStrategy[int | Fraction | float]:
    """One weight of the given domain.

    Args:
        domain: ``"integer"``, ``"rational"`` (denominators up to 12) or ``"float"``.
        nonnegative: only weights ≥ 0 (the case of Section 2.3 and of variance kernels).
        max_magnitude: the largest absolute value (numerator for rationals).
    """
    lo = 0 if nonnegative else -max_magnitude
    if domain == "integer":
        return st.integers(lo, max_magnitude)
    if domain == "rational":
        return st.builds(Fraction, st.integers(lo, max_magnitude), st.integers(1, 12))
    if domain == "float":
        return st.floats(
            float(lo), float(max_magnitude), allow_nan=False, allow_infinity=False, width=64
        )
    raise ValueError(f"domain must be 'integer', 'rational' or 'float', got {domain!r}")


@st.composite
def kernels(
    draw: st.DrawFn,
    ndim: Literal[1, 2] = 1,
    domain: Literal["integer", "rational", "float"] = "integer",
    *,
    min_size: int = 1,
    max_size: int = 6,
    nonnegative: bool = True,
    nonzero_sum: bool = True,
    random_anchor: bool = False,
) -> Kernel:
    """A `Kernel` of ``ndim`` axes with ``min_size``..``max_size`` taps per axis.

    Args:
        nonzero_sum: reject kernels whose weights sum to zero (so normalised
            quantities exist).
        random_anchor: draw the anchor; otherwise use the default ``(k-1)//2``.
    """
    shape = [draw(st.integers(min_size, max_size)) for _ in range(ndim)]
    count = shape[0] if ndim == 1 else shape[0] * shape[1]
    flat = draw(st.lists(weights(domain, nonnegative=nonnegative), min_size=count, max_size=count))
    if nonzero_sum:
        total = sum(flat)
        if total == 0:
            flat[draw(st.integers(0, count - 1))] += 1
            if sum(flat) == 0:
                flat[0] += 1
    w = flat if ndim == 1 else [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    anchor: int | tuple[int, ...] | None = None
    if random_anchor:
        drawn = tuple(draw(st.integers(0, k - 1)) for k in shape)
        anchor = drawn[0] if ndim == 1 else drawn
    return Kernel(w, anchor=anchor)


def layer_counts(max_value: int = 30, min_value: int = 0) -> st.SearchStrategy[int]:
    """Layer counts ``min_value..max_value``."""
    return st.integers(min_value, max_value)


@st.composite
def profiles(
    draw: st.DrawFn,
    ndim: Literal[1, 2] = 1,
    max_layers: int = 12,
    domain: Literal["integer", "rational"] = "integer",
) -> Profile:
    """An exact `Profile` of a drawn kernel and depth (small enough to be fast)."""
    kernel = draw(kernels(ndim=ndim, domain=domain, max_size=5 if ndim == 1 else 3))
    return profile(kernel, layers=draw(layer_counts(max_layers if ndim == 1 else 6)))
