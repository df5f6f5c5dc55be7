"""Token outputs of vision transformers as grids, for `empirical_erf` (``output_layout``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._errors import ERFValueError
from ._guard import describe_model
from ._measure import per_axis

__all__ = ["OUTPUT_LAYOUTS"]

OUTPUT_LAYOUTS: tuple[str, ...] = ("channels_first", "channels_last", "tokens")
"""The output layouts `empirical_erf` reads (``output_layout``)."""


@dataclass(frozen=True)
class TokenOptions:
    prefix: int | None
    grid: tuple[int, ...] | None

    @staticmethod
    def parse(prefix: Any, grid: Any) -> TokenOptions:
        if prefix is not None and (
            isinstance(prefix, bool) or not isinstance(prefix, numbers.Integral) or prefix < 0
        ):
            raise ERFValueError(f"prefix_tokens must be a non-negative int, got {prefix!r}")
        g: tuple[int, ...] | None = None
        if grid is not None:
            g = per_axis(grid) if isinstance(grid, (tuple, list, torch.Size)) else ()
            if not g or any(v < 1 for v in g):
                raise ERFValueError(
                    f"token_grid must be positive ints, one per spatial axis, got {grid!r}"
                )
        return TokenOptions(None if prefix is None else int(prefix), g)


def patch_embed(model: Any) -> Any:
    """The first ``patch_embed`` submodule with a ``patch_size`` (timm's layout), or None."""
    if not isinstance(model, nn.Module):
        return None
    for name, m in model.named_modules():
        if name.split(".")[-1] == "patch_embed" and hasattr(m, "patch_size"):
            return m
    return None


def prefix_attr(model: Any) -> int | None:
    if not isinstance(model, nn.Module):
        return None
    for m in model.modules():
        v = getattr(m, "num_prefix_tokens", None)
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            return int(v)
    return None


def _split_grid(m: int, spatial: tuple[int, ...]) -> tuple[int, ...] | None:
    """A 2-D grid of ``m`` tokens with the aspect ratio of ``spatial``, or None."""
    if len(spatial) == 1:
        return (m,)
    if len(spatial) != 2:
        return None
    h, w = spatial
    gh = max(1, round(math.sqrt(m * h / w)))
    for cand in (gh - 1, gh, gh + 1):
        if cand >= 1 and m % cand == 0 and cand * w == (m // cand) * h:
            return (cand, m // cand)
    return None


@dataclass(frozen=True)
class Tokens:
    """How a token sequence ``(B, N, D)`` maps onto a grid: prefix tokens, then the grid."""

    prefix: int
    grid: tuple[int, ...]
    patch: tuple[int, ...] | None  # exact patch size of a plain patch embedding

    @staticmethod
    def infer(model: Any, y: torch.Tensor, spatial: tuple[int, ...], opts: TokenOptions) -> Tokens:
        n = int(y.shape[1])
        pe = patch_embed(model)
        patch: tuple[int, ...] | None = None
        grid = opts.grid
        if pe is not None:
            ps = per_axis(pe.patch_size)
            if len(ps) == 1 and len(spatial) > 1:
                ps = ps * len(spatial)
            proj = getattr(pe, "proj", None)
            if (
                isinstance(proj, (nn.Conv1d, nn.Conv2d))
                and per_axis(proj.kernel_size) == ps
                and per_axis(proj.stride) == ps
                and all(p == 0 for p in per_axis(proj.padding))
                and per_axis(proj.dilation) == (1,) * len(ps)
            ):
                patch = ps
            if grid is None and len(ps) == len(spatial):
                grid = tuple(s // p for s, p in zip(spatial, ps, strict=True))
        prefix = opts.prefix if opts.prefix is not None else prefix_attr(model)
        if grid is None:
            for p in range(prefix if prefix is not None else 0, min(n, 17)):
                found = _split_grid(n - p, spatial)
                if found is not None:
                    grid = found
                    prefix = p if prefix is None else prefix
                    break
                if prefix is not None:
                    break
        if grid is None:
            raise ERFValueError(
                f"cannot lay the {n} output tokens of {describe_model(model)} on a grid for "
                f"inputs of spatial shape {spatial}; give token_grid= (and prefix_tokens=)"
            )
        if prefix is None:
            prefix = n - math.prod(grid)
        if len(grid) != len(spatial) or prefix < 0 or prefix + math.prod(grid) != n:
            raise ERFValueError(
                f"{describe_model(model)} returned {n} tokens, which are not "
                f"{prefix} prefix token(s) and a grid {grid} for inputs of spatial shape "
                f"{spatial}; give token_grid= and prefix_tokens="
            )
        if patch is not None and tuple(g * p for g, p in zip(grid, patch, strict=True)) != tuple(
            s - s % p for s, p in zip(spatial, patch, strict=True)
        ):
            patch = None
        return Tokens(prefix, grid, patch)

    def to_map(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, N, D)`` -> ``(B, D, *grid)`` (the prefix tokens dropped)."""
        b, _, d = y.shape
        grid = y[:, self.prefix :, :].reshape(b, *self.grid, d)
        return grid.movedim(-1, 1)


class View:
    """The model seen by `centre_gradient`: its output as ``(B, C, *spatial)``."""

    def __init__(self, model: Any, layout: str | None, meas: Any) -> None:
        self.model = model
        self.layout = layout
        self.meas = meas

    def __call__(self, x: torch.Tensor) -> Any:
        y = self.model(x)
        if not isinstance(y, torch.Tensor) or y.dim() < 3:
            return y
        layout = self.layout
        if layout is None:
            layout = "channels_first"
            if y.dim() == 3 and x.dim() > 3 and self.meas.looks_like_transformer():
                layout = "tokens"
        if layout == "channels_last":
            return y.movedim(-1, 1)
        if layout == "tokens":
            if y.dim() != 3:
                raise ERFValueError(
                    f"output_layout='tokens' needs outputs (batch, tokens, channels), "
                    f"got {tuple(y.shape)}"
                )
            meas = self.meas
            if meas.tokens is None:
                spatial = tuple(int(s) for s in x.shape[2:])
                meas.tokens = Tokens.infer(meas.shown, y, spatial, meas.token_opts)
            return meas.tokens.to_map(y)
        return y
