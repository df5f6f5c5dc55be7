r"""``erftheory measure``: the ERF of a model measured on a folder of images.

`measure` runs `erftheory.torch.empirical.empirical_erf` over the images of a folder,
preprocessed the model's own way (`erftheory.torch.images`), and writes into ``out``:

- ``erf.npy``: the measured map $\bar q(x)$ (float64, ``(H, W)``, the input's size),
  and ``erf_stderr.npy``: its standard error per pixel;
- ``summary.json``: the count and shape, the centre unit, ``origin`` and how it was
  found (``origin_source``), the moments with standard errors, the moment Gaussian
  ($\sigma_x$, $\sigma_y$ along the axes, the principal widths, the orientation of the
  major axis) with standard errors, the radial mass curve, the squares holding 20, 30,
  50 and 99 % of the map, and, where `erftheory.torch.trace.from_torch` accepts the
  model, the theory's same measures and `erftheory.compare.compare`'s verdict; the
  model spec, the transform, dtype, device, batch size and timings;
- ``erf.png``: the measured map with its Gaussian ellipses and mass-share squares, the
  theory beside it (or why there is none), the radial mass curves, the mass-share
  sides, the central cross-sections and a text panel with the numbers and the verdict
  (at most `MAX_PIXELS` at `DPI`; text of at least 9 points).

**What is measured.** Models are randomly initialised (`erftheory.torch.models.load_model`
downloads nothing). The ERF is that of the centre unit of the *last spatial feature
map*: the model itself when its output is a map of more than one pixel (or a token
sequence), else its feature extractor (``model.forward_features`` of timm,
``model.features`` of torchvision's VGG, MobileNet, EfficientNet...), else its leading
children when the model is a chain of them followed by a classifier head of pooling,
flatten, dropout and linear layers (torchvision's ResNet, RegNet, Inception,
ShuffleNet: ``conv1`` ... ``layer4``), checked on one random input (`spatial_part`).

**The theory.** With the default statistic ``"mean_square"`` (the expected squared
gradient of random weights, Section 2.2) the theory is
``from_torch(part, input_shape, weights="variance").profile("expected_square")``, the
per-tap weight variances of this very model (``weights="ones"``, equal variances, when
``"variance"`` is refused, e.g. for squeeze-and-excitation gates). Other statistics
have no theory. The verdict needs the theory's grid (the receptive field of the centre
unit) inside the image: for ResNets at 224² it is not (their RF is 400-odd pixels), and
the summary then says so and gives the input size at which it would be
(`erftheory.Network.min_input_size`); the theory's own measures are still reported.
The theory of a random ReLU network on natural images rests on the independence
assumption of Section 2.4 (it is exact for Gaussian inputs only for linear networks),
so an "inconsistent" verdict on real images is a finding, not a failure.

Needs torch and Pillow; matplotlib for the figure (``figure=False`` skips it);
torchvision or timm for their models and transforms.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import numbers
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from .._errors import ERFError, ERFTypeError, ERFValueError, MissingDependencyError
from ..compare import Comparison, compare
from ..network import Network, NetworkProfile
from ._guard import check_seed
from .empirical import STATISTICS, EmpiricalERF, empirical_erf, suggest_batch_size
from .images import ImageBatches, ImageTransform, check_images, find_images, image_transform
from .models import feature_extractor, load_model

__all__ = [
    "DPI",
    "FILES",
    "MAX_PIXELS",
    "SHARES",
    "Measurement",
    "measure",
    "prepare_out",
    "spatial_part",
]

SHARES: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)
"""The mass shares whose squares `measure` reports (RepLKNet's analysis)."""

FILES: dict[str, str] = {
    "map": "erf.npy",
    "stderr": "erf_stderr.npy",
    "summary": "summary.json",
    "figure": "erf.png",
}
"""What `measure` writes into ``out``, by role."""

DPI = 100
"""The resolution of ``erf.png``."""

MAX_PIXELS = (1600, 1000)
"""The largest figure, width × height in pixels at `DPI`: readable at 100 % on a laptop."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ------------------------------------------------------------------ what is measured
_HEAD_TYPES: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
    nn.Linear,
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.LayerNorm,
    nn.BatchNorm1d,
    nn.Sequential,
)


def _is_head(module: nn.Module) -> bool:
    """Whether a module is classifier-head material (pooling, flatten, linear, ...)."""
    return all(type(m) in _HEAD_TYPES for m in module.modules())


def _kind_of(y: Any, x: torch.Tensor) -> str:
    """``"map"`` (more than one pixel), ``"pixel"`` (a 1-pixel map), ``"tokens"`` or ``""``."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.shape[0] != x.shape[0]:
        return ""
    if y.dim() == x.dim():
        return "map" if math.prod(y.shape[2:]) > 1 else "pixel"
    if x.dim() == 4 and y.dim() == 3 and y.shape[1] > 1:
        return "tokens"
    return ""


_Call = tuple[str, nn.Module, Any, Any]  # a child's name, the child, its input, its output


def _consumes(inp: Any, prev: Any, spatial: tuple[int, ...] | None) -> bool:
    """Whether ``inp`` is ``prev``, or ``prev`` flattened, or (a map) globally pooled."""
    if inp is prev:
        return True
    if not isinstance(inp, torch.Tensor) or not isinstance(prev, torch.Tensor):
        return False
    if inp.shape[0] != prev.shape[0]:
        return False
    candidates = [prev]
    if spatial:
        candidates += [prev.mean(spatial), prev.amax(spatial)]
    for c in candidates:
        if c.numel() == inp.numel() and torch.allclose(
            inp.reshape(inp.shape[0], -1), c.reshape(c.shape[0], -1), rtol=1e-5, atol=0.0
        ):
            return True
    return False


def _chain(
    model: nn.Module, x: torch.Tensor, calls: list[_Call], y: Any
) -> tuple[nn.Module, str] | None:
    """The leading children of ``model`` up to its last feature map, when they form a chain.

    ``calls`` are the children's calls in order on the input ``x``, ``y`` the model's
    output. The trunk must be a chain (each child takes the previous one's output, the
    first takes ``x``, none is called twice), the rest classifier-head material that
    consumes only the trunk's output (as it is, flattened, or globally pooled) in a chain
    ending in ``y``.
    """
    last = max((i for i, c in enumerate(calls) if _kind_of(c[3], x) == "map"), default=None)
    if last is None:
        return None
    trunk, head = calls[: last + 1], calls[last + 1 :]
    if not all(_is_head(m) for _, m, _, _ in head):
        return None
    if len({id(m) for _, m, _, _ in calls}) != len(calls):
        return None
    if trunk[0][2] is not x:
        return None
    if any(cur[2] is not prev[3] for prev, cur in itertools.pairwise(trunk)):
        return None
    fmap = trunk[-1][3]
    prev: Any = fmap
    axes: tuple[int, ...] | None = tuple(range(2, fmap.dim()))
    for _, _, inp, out in head:
        if not _consumes(inp, prev, axes):
            return None
        prev, axes = out, (tuple(range(2, out.dim())) if _kind_of(out, x) else None)
    if not _consumes(y, prev, axes):
        return None
    part = nn.Sequential(OrderedDict((name, m) for name, m, _, _ in trunk))
    if not torch.equal(part(x), fmap):
        return None
    dropped = [name for name, *_ in head]
    words = (
        f"children {trunk[0][0]} ... {trunk[-1][0]} of the model"
        if len(trunk) > 1
        else f"child {trunk[0][0]} of the model"
    )
    return part, words + (f" (head {', '.join(dropped)} left out)" if dropped else "")


def spatial_part(model: nn.Module, input_shape: Sequence[int]) -> tuple[nn.Module, str]:
    """The part of ``model`` whose output is its last spatial feature map, and its name.

    In this order: the model itself when its output on an input of ``input_shape`` is a
    map of more than one pixel or a token sequence; its feature extractor
    (`erftheory.torch.models.feature_extractor`) when that gives such an output; its
    leading children up to the last one that gives a map, when the model is a chain of
    them and every later child is classifier-head material (pooling, flatten, dropout,
    linear, activations, norms) that consumes only that map; the model itself when its
    output is a map of one pixel. The returned module shares its parameters with
    ``model``.

    The chain is checked on one seeded random input: the first child takes the input,
    every other child of the chain the previous one's output (the same tensor), no
    child is called twice, the head's children take the map or their predecessor's
    output as it is, flattened or globally pooled (mean or max) and end in the model's
    output, and the chain run as an ``nn.Sequential`` gives the map again. A model
    whose ``forward`` adds anything between its children (a residual connection at
    the top level, an input normalisation) is refused.

    Raises:
        ERFValueError: none of these: the output is not a map and the model has no
            feature extractor or chain of children (the message says what to pass).

    Example:
        >>> from torch import nn
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = nn.Conv2d(3, 4, 3)
        ...         self.pool = nn.AdaptiveAvgPool2d(1)
        ...         self.fc = nn.Linear(4, 2)
        ...     def forward(self, x):
        ...         return self.fc(self.pool(self.conv(x)).flatten(1))
        >>> part, what = spatial_part(Net(), (3, 8, 8))
        >>> what, part
        ('child conv of the model (head pool, fc left out)', Sequential(
          (conv): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))
        ))
    """
    part, name, _ = _find_part(model, input_shape)
    return part, name


def _calls_output(calls: list[_Call], part: nn.Module) -> Any:
    """The output of the last child of a chain ``part`` in the recorded ``calls``."""
    last = list(part.children())[-1]
    return next(out for _, m, _, out in reversed(calls) if m is last)


def _find_part(model: nn.Module, input_shape: Sequence[int]) -> tuple[nn.Module, str, Any]:
    """`spatial_part`, and the part's output on the probe input."""
    shape = tuple(int(s) for s in input_shape)
    gen = torch.Generator().manual_seed(0)  # random: equal values must not be a coincidence
    x = torch.randn((1, *shape), generator=gen).to(_dtype_of(model))
    modes = [(m, m.training) for m in model.modules()]
    calls: list[_Call] = []
    names = {id(m): n for n, m in model.named_children()}
    handles = [
        child.register_forward_hook(
            lambda m, args, out: calls.append((names[id(m)], m, args[0] if args else None, out))
        )
        for child in model.children()
    ]
    try:
        model.eval()
        with torch.no_grad():
            try:
                y = model(x)
            except Exception as e:
                raise ERFValueError(
                    f"the model {type(model).__qualname__} raised on an input of shape "
                    f"{(1, *shape)}: {type(e).__name__}: {_first_line(e)}"
                ) from e
            finally:
                for h in handles:
                    h.remove()
            kind = _kind_of(y, x)
            if kind in ("map", "tokens"):
                return model, "the model", y
            features = feature_extractor(model)
            if features is not None:
                try:
                    fy = features(x)
                except Exception:
                    fy = None
                if _kind_of(fy, x) in ("map", "tokens"):
                    name = (
                        "model.forward_features"
                        if callable(getattr(model, "forward_features", None))
                        else "model.features"
                    )
                    return features, name, fy
            try:
                found = _chain(model, x, calls, y)
            except Exception:
                found = None
            if found is not None:
                return (*found, _calls_output(calls, found[0]))
            if kind == "pixel":
                return model, "the model", y
    finally:
        for m, mode in modes:
            m.training = mode
    got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
    raise ERFValueError(
        f"the model {type(model).__qualname__} gives {got} on an input of shape {(1, *shape)}, "
        f"not a spatial map, and it has no feature extractor (forward_features, features) "
        f"nor a chain of children ending in a classifier head: pass the module (or a "
        f"file.py:FACTORY returning it) whose output is the feature map"
    )


def _output_layout(input_shape: Sequence[int], y: Any) -> str | None:
    """``"channels_last"`` for a ``(N, H', W', C')`` map (torchvision's Swin), else None.

    Read off the shape: the last axis is longer than the input's width while the
    middle two have the input's aspect ratio and are no larger than it.
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or len(input_shape) != 3:
        return None
    _, h, w = (int(v) for v in input_shape)
    a, b, c = (int(v) for v in y.shape[1:])
    if c > w and a <= h and b <= w and a * w == b * h:
        return "channels_last"
    return None


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else "(no message)"
    return text if len(text) <= 240 else text[:237] + "..."


def _dtype_of(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


# ------------------------------------------------------------------ arguments
def _check_device(device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ERFValueError(
            f"device {device!r} is not a device: use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ERFValueError(f"device {device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ERFValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
    elif dev.type != "cpu":
        raise ERFValueError(f"device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")
    return dev


def _check_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    raise ERFValueError(f"dtype must be 'float32' or 'float64' (or the torch dtype), got {dtype!r}")


def prepare_out(out: str | os.PathLike[str]) -> Path:
    """Create the output folder if need be and check that files can be written in it.

    Its parent must exist. A probe file is created and removed, so that every reason
    the system would give later is reported now, before any work.

    Raises:
        ERFValueError: ``out`` is a file, its parent does not exist, or it cannot be
            written.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise ERFTypeError(f"out must be a path, got {type(out).__name__}")
    path = Path(out)
    if str(out).strip() == "" or "\0" in str(out):
        raise ERFValueError(f"the output folder {str(out)!r} is not a valid name")
    if path.exists() and not path.is_dir():
        raise ERFValueError(f"the output folder {str(path)!r} exists and is not a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise ERFValueError(
            f"the output folder {str(path)!r} cannot be made: {str(parent)!r} is not a folder"
        )
    try:
        path.mkdir(exist_ok=True)
        probe = path / f".erftheory-probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ERFValueError(
            f"the output folder {str(path)!r} cannot be written ({e.strerror or e})"
        ) from None
    return path


# ------------------------------------------------------------------ the result
@dataclass(frozen=True, eq=False)
class Measurement:
    """The result of `measure`.

    Attributes:
        erf: the `EmpiricalERF`.
        summary: the JSON-ready summary (what ``summary.json`` holds).
        transform: the `erftheory.torch.images.ImageTransform` used.
        part: the module that was measured (see `spatial_part`).
        theory: the theory's `NetworkProfile`, or None (``summary["notes"]`` says why).
        comparison: `compare`'s result, or None (the theory does not fit in the image,
            or there is none).
        files: the paths written, by role (`FILES`); empty without ``out``.
    """

    erf: EmpiricalERF
    summary: dict[str, Any]
    transform: ImageTransform
    part: nn.Module = field(repr=False)
    theory: NetworkProfile | None = None
    comparison: Comparison | None = None
    theory_map: np.ndarray | None = field(default=None, repr=False)
    theory_origin: tuple[int, ...] | None = None
    files: dict[str, Path] = field(default_factory=dict)


# ------------------------------------------------------------------ measures as JSON
def _floats(v: Any) -> Any:
    """numpy and tuples to lists of floats; NaN and infinities to None."""
    if isinstance(v, np.ndarray):
        return _floats(v.tolist())
    if isinstance(v, (list, tuple)):
        return [_floats(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _floats(x) for k, x in v.items()}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def _measures(erf: EmpiricalERF) -> dict[str, Any]:
    """Moments, Gaussian, radial mass and mass shares of a map, as JSON values."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    try:
        mom = erf.moments()
    except ERFValueError as e:
        return {
            "moments": None,
            "gaussian": None,
            "radial_mass": None,
            "mass_shares": None,
            "notes": [f"no measures: {e}"],
        }
    out["moments"] = {
        "mean": mom.mean,
        "mean_stderr": mom.mean_stderr,
        "covariance": mom.covariance,
        "covariance_stderr": mom.covariance_stderr,
        "variance": mom.variance,
        "variance_stderr": mom.variance_stderr,
    }
    try:
        g = erf.gaussian()
    except ERFValueError as e:
        out["gaussian"] = None
        notes.append(f"no Gaussian: {e}")
    else:
        out["gaussian"] = {
            "method": g.method,
            "centre": g.centre,
            "centre_stderr": g.centre_stderr,
            "sigma_x": g.sigma_x,
            "sigma_x_stderr": g.sigma_axis_stderr[-1],
            "sigma_y": g.sigma_y,
            "sigma_y_stderr": g.sigma_axis_stderr[0],
            "sigma": g.sigma,
            "sigma_stderr": g.sigma_stderr,
            "orientation_deg": math.degrees(g.angle),
            "orientation_deg_stderr": math.degrees(g.angle_stderr),
            "angle": g.angle,
            "angle_stderr": g.angle_stderr,
            "covariance": g.covariance,
            "r_squared": g.r_squared,
        }
    rm = erf.radial_mass()
    out["radial_mass"] = {"radius": rm.radius, "mass": rm.mass, "stderr": rm.stderr}
    out["mass_shares"] = [
        {
            "share": s.share,
            "side": s.side,
            "pixels": s.pixels,
            "area_ratio": s.area_ratio,
            "width": s.width,
            "width_stderr": s.width_stderr,
        }
        for s in erf.mass_shares(SHARES)
    ]
    out["notes"] = notes
    return out


# ------------------------------------------------------------------ theory
def _theory(
    part: nn.Module, shape: tuple[int, ...], statistic: str
) -> tuple[Network | None, str | None, list[str]]:
    """The `Network` of the part (``weights`` tried in order) and the weights used."""
    if statistic != "mean_square":
        return (
            None,
            None,
            [
                f"no theory for statistic {statistic!r}: the theory (expected_square) is that of "
                f"'mean_square'"
            ],
        )
    from .trace import from_torch

    notes: list[str] = []
    for weights in ("variance", "ones"):
        try:
            return from_torch(part, shape, weights=weights), weights, notes
        except ERFError as e:
            notes.append(f"from_torch(weights={weights!r}) refused the model: {e}")
    return None, None, notes


_Placed = tuple[
    NetworkProfile | None,
    Comparison | None,
    np.ndarray | None,
    tuple[int, ...] | None,
    dict[str, Any],
    list[str],
]


def _placed(net: Network, erf: EmpiricalERF, confidence: float) -> _Placed:
    notes: list[str] = []
    rf = net.receptive_field
    info: dict[str, Any] = {
        "kind": "expected_square",
        "layers": len(net),
        "rf_size": list(_tuple(rf.size)),
        "jump": list(_tuple(rf.jump)),
        "offset": list(_tuple(rf.offset)),
    }
    try:
        prof = net.profile("expected_square")
    except ERFError as e:
        notes.append(f"the theory's profile could not be computed: {e}")
        return None, None, None, None, info, notes
    info["method"] = prof.method
    own = np.array(prof.normalized(), dtype=np.float64)
    size = _tuple(rf.size)
    start = tuple(
        int(o + j * c)
        for o, j, c in zip(_tuple(rf.offset), _tuple(rf.jump), erf.centre, strict=True)
    )
    end = tuple(b + n for b, n in zip(start, size, strict=True))
    fits = all(b >= 0 for b in start) and all(e <= n for e, n in zip(end, erf.shape, strict=True))
    info["fits"] = fits
    info["start"] = list(start)
    info["min_input_size"] = list(_tuple(net.min_input_size()))
    cmp: Comparison | None = None
    if fits:
        tmap = np.zeros(erf.shape)
        tmap[tuple(slice(b, e) for b, e in zip(start, end, strict=True))] = own
        tmap /= tmap.sum()
        origin = tuple(erf.origin)
        try:
            cmp = compare(prof, erf, confidence=confidence)
        except ERFValueError as e:
            notes.append(f"no verdict: {e}")
    else:
        tmap, origin = own, tuple(int(o) for o in _tuple(prof.origin))
        notes.append(
            f"no verdict: the theory's grid (the receptive field of the centre unit, "
            f"{'x'.join(map(str, size))}, at input indices {start} to "
            f"{tuple(e - 1 for e in end)}) leaves the image of {'x'.join(map(str, erf.shape))}; "
            f"it fits from an input of {'x'.join(map(str, info['min_input_size']))} "
            f"(--input / input_shape)"
        )
    info["origin"] = list(origin)
    info["shape"] = list(tmap.shape)
    return prof, cmp, tmap, origin, info, notes


def _tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _comparison(cmp: Comparison) -> dict[str, Any]:
    return {
        "consistent": cmp.consistent,
        "verdict": "consistent" if cmp.consistent else "inconsistent",
        "confidence": cmp.confidence,
        "correction": cmp.correction,
        "critical_z": cmp.critical_z,
        "max_abs_z": cmp.max_abs_z,
        "tested": cmp.tested,
        "failing": cmp.failing,
        "pixels": int(cmp.z.size),
        "tv_distance": cmp.tv_distance,
        "variance_ratio": cmp.variance_ratio,
        "report": str(cmp),
    }


# ------------------------------------------------------------------ progress
class _Counted:
    """Batches that advance a progress bar by their images once they are used."""

    def __init__(self, batches: ImageBatches, bar: Any) -> None:
        self.batches = batches
        self.bar = bar

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.batches:
            yield batch
            self.bar.update(int(batch.shape[0]))


def _bar(total: int, show: bool | None) -> Any:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the torch extra
        return None
    return tqdm(total=total, desc="erftheory measure", unit="image", leave=False)


# ------------------------------------------------------------------ measure
def measure(
    model: str | nn.Module,
    images: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    transform: str | ImageTransform = "auto",
    input_shape: Sequence[int] | None = None,
    statistic: str = "mean_square",
    batch_size: int | str = "auto",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    limit: int | None = None,
    recursive: bool = False,
    progress: bool | None = None,
    theory: bool = True,
    confidence: float = 0.99,
    figure: bool = True,
    seed: int = 0,
    workers: int | None = None,
) -> Measurement:
    r"""Measure a model's ERF on a folder of images and write the map, a summary and a figure.

    Args:
        model: a spec (``"torchvision:resnet50"``, ``"timm:NAME"``,
            ``"path/to/file.py:FACTORY"``; `erftheory.torch.models.load_model`, random
            weights) or a ``torch.nn.Module`` (not changed; measured as a copy when it
            is not on ``device`` in ``dtype``).
        images: the folder (`erftheory.torch.images.find_images`: sorted, ``recursive``,
            at most ``limit`` files).
        out: the folder to write `FILES` into (created; its parent must exist), or None
            to write nothing.
        transform: ``"auto"``, ``"timm"``, ``"torchvision"``, ``"none"``
            (`erftheory.torch.images.image_transform`) or an ``ImageTransform``.
        input_shape: ``(C, H, W)``: the crop of the transform (default: the
            transform's own, 224×224 for most models).
        statistic: as `empirical_erf` (default ``"mean_square"``, the one with a theory).
        batch_size: images per backward pass, or ``"auto"``
            (`erftheory.torch.empirical.suggest_batch_size`, at most the image count).
        device, dtype: where and in which precision the model runs (``"float32"``
            default, or ``"float64"``); the sums are float64 either way.
        progress: a progress bar over the images on stderr (True), never (False), or
            when stderr is a terminal (None).
        theory: compute the theory and the verdict where `from_torch` accepts the model.
        confidence: the confidence of `compare`'s verdict.
        figure: draw ``erf.png`` (needs matplotlib) when ``out`` is given.
        seed: the seed of a spec's random weights (torch's global generator is seeded
            with it while the model is built, and restored afterwards) and
            `empirical_erf`'s seed (for models that draw random numbers themselves).
        workers: decoding threads (`erftheory.torch.images.ImageBatches`).

    Returns:
        A `Measurement`. ``summary`` is what ``summary.json`` holds; its ``notes`` say
        why a part is missing (no theory, no verdict, no Gaussian).

    Raises:
        ERFValueError: a bad folder, image, output folder, device, dtype, statistic or
            option; a model that does not load or has no spatial output (see
            `spatial_part`); the refusals of `empirical_erf`. Every check that needs no
            computation (folders, files, headers of the images, matplotlib) runs before
            the model is loaded.
        MissingDependencyError: Pillow, matplotlib (with ``figure``), torchvision or
            timm is needed and not installed.

    Example:
        >>> import pytest
        >>> _ = pytest.importorskip("PIL")
        >>> import tempfile
        >>> import numpy as np
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from torch import nn
        >>> folder = Path(tempfile.mkdtemp())
        >>> rng = np.random.default_rng(0)
        >>> for i in range(4):
        ...     Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(
        ...         folder / f"{i}.png")
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1))
        >>> result = measure(model, folder, transform="none", progress=False)
        >>> result.erf.count, result.erf.shape, result.summary["origin_source"]
        (4, (9, 9), 'from_torch')
        >>> result.summary["comparison"]["verdict"] in ("consistent", "inconsistent")
        True
    """
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    if statistic not in STATISTICS:
        raise ERFValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    seed = check_seed(seed)
    dev = _check_device(device)
    dt = _check_dtype(dtype)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not (0 < float(confidence) < 1)
    ):
        raise ERFValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not (
        batch_size == "auto"
        or (
            isinstance(batch_size, numbers.Integral)
            and not isinstance(batch_size, bool)
            and batch_size >= 1
        )
    ):
        raise ERFValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
    if not isinstance(model, (str, nn.Module)):
        raise ERFTypeError(
            f"model must be a spec string or a torch.nn.Module, got {type(model).__name__}"
        )
    out_dir = prepare_out(out) if out is not None else None
    paths = find_images(images, recursive=recursive, limit=limit)
    if figure and out_dir is not None:
        from ..plotting import require_matplotlib

        try:
            require_matplotlib()
        except MissingDependencyError:
            raise MissingDependencyError("matplotlib", "plot", "the figure erf.png") from None
    # headers first: an unreadable file is reported before the model is loaded
    keeps_size = transform == "none" or (
        isinstance(transform, ImageTransform) and transform.size is None
    )
    check_images(paths, same_size=keeps_size)
    seconds["check"] = time.perf_counter() - t0

    # ---- the model and its preprocessing
    t = time.perf_counter()
    owned = isinstance(model, str)
    if isinstance(model, str):
        with torch.random.fork_rng(devices=[]):  # the weights are drawn from seed
            torch.manual_seed(seed)
            module = load_model(model)
    else:
        module = model
    if not isinstance(module, nn.Module):  # pragma: no cover - load_model returns modules
        raise ERFTypeError(f"the model is a {type(module).__name__}, not a torch.nn.Module")
    if isinstance(transform, ImageTransform):
        chosen = transform
    else:
        # a torchvision spec names its weights' transform; otherwise the module says
        by_name = owned and str(model).startswith("torchvision:")
        chosen = image_transform(model if by_name else module, transform, input_shape=input_shape)
    seconds["load_model"] = time.perf_counter() - t
    batches = ImageBatches(paths, chosen, batch_size=1, workers=workers)
    if chosen.size is None and not keeps_size:  # pragma: no cover - 'auto' never keeps sizes
        check_images(paths, same_size=True)
    shape = batches.sample_shape
    t = time.perf_counter()
    part, part_name, probe = _find_part(module, shape)
    layout = _output_layout(shape, probe)
    tokens = isinstance(probe, torch.Tensor) and probe.dim() == 3
    layout_name = layout or ("tokens" if tokens else "channels_first")
    del probe
    network = None
    weights = None
    notes: list[str] = []
    if theory:
        network, weights, notes = _theory(part, shape, statistic)
    seconds["trace"] = time.perf_counter() - t

    # ---- the measurement
    if not owned and not _is_on(part, dev, dt):
        part = copy.deepcopy(part)
    part = part.to(device=dev, dtype=dt)
    if batch_size == "auto":
        size = min(suggest_batch_size(part, shape, dtype=dt, device=dev), len(paths))
    else:
        size = int(batch_size)
    batches = ImageBatches(paths, chosen, batch_size=size, workers=workers)
    batches._shape = shape
    bar = _bar(len(paths), progress)
    t = time.perf_counter()
    try:
        erf = empirical_erf(
            part,
            shape,
            statistic=statistic,  # type: ignore[arg-type]
            inputs=_Counted(batches, bar) if bar is not None else batches,
            device=dev,
            dtype=dt,
            seed=seed,
            progress=False,
            output_layout=layout,  # type: ignore[arg-type]
        )
    finally:
        if bar is not None:
            bar.close()
    seconds["measure"] = time.perf_counter() - t

    # ---- the theory
    t = time.perf_counter()
    prof = cmp = tmap = torigin = None
    theory_doc: dict[str, Any] | None = None
    if network is not None:
        prof, cmp, tmap, torigin, theory_doc, more = _placed(network, erf, float(confidence))
        notes.extend(more)
        theory_doc["weights"] = weights
        if tmap is not None and torigin is not None:
            tm = EmpiricalERF.from_samples(tmap[None], origin=torigin)
            theory_doc.update(_measures(tm))
            notes.extend(f"theory: {n}" for n in theory_doc.pop("notes", []))
            for key in ("moments", "radial_mass"):
                if isinstance(theory_doc.get(key), dict):
                    theory_doc[key] = {
                        k: v for k, v in theory_doc[key].items() if "stderr" not in k
                    }
    seconds["theory"] = time.perf_counter() - t

    # ---- the summary
    measured = _measures(erf)
    notes.extend(measured.pop("notes"))
    summary: dict[str, Any] = {
        "erftheory": __version__,
        "model": model if owned else f"the module {type(module).__qualname__}",
        "measured": part_name,
        "images": {
            "folder": str(images),
            "count": len(paths),
            "recursive": bool(recursive),
            "limit": limit,
            "first": paths[0].name,
            "last": paths[-1].name,
        },
        "transform": {
            "name": chosen.name,
            "source": chosen.source,
            "description": chosen.description,
        },
        "input_shape": list(shape),
        "statistic": statistic,
        "channel_reduce": erf.channel_reduce,
        "count": erf.count,
        "nonfinite": erf.nonfinite,
        "shape": list(erf.shape),
        "centre": list(erf.centre),
        "origin": list(erf.origin),
        "origin_source": erf.origin_source,
        "origin_exact": erf.origin_source != "estimate",
        "output_layout": layout_name,
        **measured,
        "theory": theory_doc,
        "comparison": _comparison(cmp) if cmp is not None else None,
        "notes": notes,
        "dtype": str(dt).removeprefix("torch."),
        "device": str(dev),
        "batch_size": size,
        "seed": seed,
        "seconds": {},
    }
    result = Measurement(
        erf=erf,
        summary=summary,
        transform=chosen,
        part=part,
        theory=prof,
        comparison=cmp,
        theory_map=tmap,
        theory_origin=torigin,
    )
    if out_dir is not None:
        t = time.perf_counter()
        files = {role: out_dir / name for role, name in FILES.items()}
        if not figure:
            del files["figure"]
        try:
            np.save(files["map"], erf.map)
            np.save(files["stderr"], erf.stderr)
            if figure:
                from .measure_figure import plot_measurement

                plot_measurement(result, files["figure"])
        except OSError as e:
            raise ERFValueError(
                f"the output folder {str(out_dir)!r} cannot be written ({e.strerror or e})"
            ) from None
        seconds["write"] = time.perf_counter() - t
        summary["files"] = {role: p.name for role, p in files.items()}
        result.files.update(files)
    seconds["total"] = time.perf_counter() - t0
    summary["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    clean = _floats(summary)
    summary.clear()
    summary.update(clean)
    if out_dir is not None:
        try:
            files["summary"].write_text(
                json.dumps(summary, indent=1, allow_nan=False) + "\n", encoding="utf-8"
            )
        except OSError as e:
            raise ERFValueError(
                f"the output folder {str(out_dir)!r} cannot be written ({e.strerror or e})"
            ) from None
    return result


def _is_on(module: nn.Module, dev: torch.device, dtype: torch.dtype) -> bool:
    for t in [*module.parameters(), *module.buffers()]:
        if t.device.type != dev.type or (dev.index is not None and t.device.index != dev.index):
            return False
        if t.is_floating_point() and t.dtype != dtype:
            return False
    return True
