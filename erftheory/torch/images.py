r"""Folders of images as input batches for `erftheory.torch.empirical.empirical_erf`.

The paper measures ERFs on random inputs; trained models are usually looked at on real
images, preprocessed the way the model expects. This module turns a folder of images
into batches of ``(B, C, H, W)`` float32 tensors with that preprocessing:

- `find_images`: the image files of a folder (sorted, optionally recursive), with a
  one-line error when there is none.
- `image_transform`: the model's own evaluation transform (``"timm"``,
  ``"torchvision"``, ``"none"``, or ``"auto"`` to choose), as an `ImageTransform`
  that states exactly what it does.
- `image_batches`: an `ImageBatches`, a re-iterable of batches with a length, which
  `empirical_erf` takes as ``inputs=``; `load_images` stacks them into one tensor.

Reading needs Pillow (the ``torch`` extra lists it; torchvision brings it too); the
``"timm"`` and ``"torchvision"`` transforms of a timm or torchvision model need timm or
torchvision (the ``models`` extra). The standard ImageNet transform and ``"none"`` need
Pillow and torch only.

Example:
    >>> import pytest
    >>> _ = pytest.importorskip("PIL")
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     Image.new("RGB", (40, 30), (60 * i, 0, 0)).save(folder / f"{i}.png")
    >>> batches = image_batches(folder, transform="none", batch_size=2)
    >>> len(batches), [tuple(b.shape) for b in batches]
    (2, [(2, 3, 30, 40), (1, 3, 30, 40)])
"""

from __future__ import annotations

import concurrent.futures
import math
import numbers
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._errors import ERFTypeError, ERFValueError, MissingDependencyError
from ._guard import one_line

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SUFFIXES",
    "TRANSFORMS",
    "ImageBatches",
    "ImageTransform",
    "check_images",
    "find_images",
    "image_batches",
    "image_transform",
    "load_images",
]

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
)
"""The file suffixes `find_images` reads (in any letter case)."""

TRANSFORMS: tuple[str, ...] = ("auto", "timm", "torchvision", "none")
"""The names `image_transform` takes."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_CROP_PCT = 0.875  # 224 / 256, the standard ImageNet evaluation ratio
_PIL_EXTRA = "torch"  # the torch extra lists Pillow


def _pil() -> Any:
    """The ``PIL.Image`` module, or `MissingDependencyError` naming the extra."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("Pillow", _PIL_EXTRA, "reading images") from None
    return Image


# ------------------------------------------------------------------------ files
def find_images(
    directory: str | os.PathLike[str],
    *,
    recursive: bool = False,
    limit: int | None = None,
) -> list[Path]:
    """The image files of a folder, sorted by their path relative to it.

    A file is an image when its suffix is one of `IMAGE_SUFFIXES` (any case); names
    starting with ``.`` (hidden files, macOS ``._`` companions) are skipped. Nothing is
    opened here.

    Args:
        directory: the folder.
        recursive: also search its sub-folders (symbolic links to folders are not
            followed).
        limit: at most this many files, the first in sorted order.

    Raises:
        ERFValueError: the folder does not exist or is not a folder, holds no image,
            or ``limit`` is not a positive int.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("b.PNG", "a.jpg", "notes.txt", ".hidden.png"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> [p.name for p in find_images(folder)]
        ['a.jpg', 'b.PNG']
    """
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1
    ):
        raise ERFValueError(f"limit must be a positive int or None, got {limit!r}")
    if not isinstance(directory, (str, os.PathLike)):
        raise ERFTypeError(f"the image folder must be a path, got {type(directory).__name__}")
    root = Path(directory)
    if not root.exists():
        raise ERFValueError(f"the image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise ERFValueError(f"the image folder {str(root)!r} is not a folder (it is a file)")
    found: list[Path] = []
    subfolders = False
    try:
        if recursive:
            for here, dirs, files in os.walk(root, onerror=_raise):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(here) / f for f in files if _is_image(f))
        else:
            for entry in root.iterdir():
                if entry.is_dir():
                    subfolders = subfolders or not entry.name.startswith(".")
                elif _is_image(entry.name):
                    found.append(entry)
    except OSError as e:
        raise ERFValueError(
            f"the image folder {str(root)!r} cannot be read ({e.strerror or e})"
        ) from None
    found = [p for p in found if p.is_file()]
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    if not found:
        hint = (
            "; it has sub-folders, which are searched only when asked (recursive=True, --recursive)"
            if subfolders
            else ""
        )
        raise ERFValueError(
            f"no images in the folder {str(root)!r} (files ending in "
            f"{', '.join(IMAGE_SUFFIXES[:4])}, ...){hint}"
        )
    return found[:limit] if limit is not None else found


def _raise(error: OSError) -> None:
    raise error


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


# ------------------------------------------------------------------------ transforms
@dataclass(frozen=True)
class ImageTransform:
    """A preprocessing of one ``PIL.Image`` into a ``(C, H, W)`` float32 tensor.

    Attributes:
        name: ``"timm"``, ``"torchvision"`` or ``"none"`` (what ``"auto"`` chose).
        source: where the steps come from: ``"timm"`` (timm's own transform of the
            model), ``"torchvision-weights"`` (the ``transforms()`` of the torchvision
            model's default weights), ``"imagenet"`` (the standard ImageNet
            evaluation transform) or ``"none"``.
        description: the steps, on one line.
        mode: the PIL mode every image is converted to first (``"RGB"`` or ``"L"``).
        size: the ``(H, W)`` every output has, or None (``"none"``: the images' own).
        function: the steps after the conversion (PIL image in, tensor out).
    """

    name: str
    source: str
    description: str
    mode: str
    size: tuple[int, int] | None
    function: Callable[[Any], torch.Tensor] = field(repr=False, compare=False)

    def __call__(self, image: Any) -> torch.Tensor:
        """``image`` (a ``PIL.Image``) converted to `mode`, then the steps."""
        out = self.function(image.convert(self.mode))
        if not isinstance(out, torch.Tensor) or out.dim() != 3:
            got = type(out).__name__
            if isinstance(out, torch.Tensor):
                got += f" of shape {tuple(out.shape)}"
            raise ERFValueError(f"the {self.name} transform returned {got}, not a (C, H, W) tensor")
        return out.to(torch.float32)


def _to_tensor(image: Any) -> torch.Tensor:
    """torchvision's ``ToTensor`` for 8-bit ``RGB`` and ``L`` images: ``(C, H, W)`` / 255."""
    a = np.array(image, dtype=np.uint8, copy=True)
    if a.ndim == 2:
        a = a[:, :, None]
    t = torch.from_numpy(a).permute(2, 0, 1).contiguous()
    return t.to(torch.float32).div(255)


def _imagenet(size: tuple[int, int], channels: int) -> ImageTransform:
    """The standard ImageNet evaluation transform at crop ``size`` (PIL and torch only)."""
    Image = _pil()
    h, w = size
    resize = math.floor(max(h, w) / _CROP_PCT)
    mean = torch.tensor(IMAGENET_MEAN if channels == 3 else (float(np.mean(IMAGENET_MEAN)),))
    std = torch.tensor(IMAGENET_STD if channels == 3 else (float(np.mean(IMAGENET_STD)),))

    def run(image: Any) -> torch.Tensor:
        iw, ih = image.size
        short, long = (iw, ih) if iw <= ih else (ih, iw)
        new_long = int(resize * long / short)
        new = (resize, new_long) if iw <= ih else (new_long, resize)
        if new != (iw, ih):
            image = image.resize(new, Image.BILINEAR)
        nw, nh = image.size
        top, left = round((nh - h) / 2.0), round((nw - w) / 2.0)  # torchvision's rounding
        image = image.crop((left, top, left + w, top + h))
        t = _to_tensor(image)
        return t.sub_(mean[:, None, None]).div_(std[:, None, None])

    m = ", ".join(f"{v:g}" for v in mean.tolist())
    s = ", ".join(f"{v:g}" for v in std.tolist())
    description = (
        f"standard ImageNet evaluation: shorter side resized to {resize} (PIL bilinear), "
        f"centre crop {h}x{w}, to [0, 1], normalised with mean ({m}) and std ({s})"
    )
    return ImageTransform(
        "torchvision", "imagenet", description, "RGB" if channels == 3 else "L", (h, w), run
    )


def _none(size: tuple[int, int] | None, channels: int) -> ImageTransform:
    def run(image: Any) -> torch.Tensor:
        if size is not None and (image.size[1], image.size[0]) != size:
            raise ERFValueError(
                f"transform 'none' keeps each image's size, and this one is "
                f"{image.size[1]}x{image.size[0]} (H x W), not the input's {size[0]}x{size[1]}"
            )
        return _to_tensor(image)

    mode = "RGB" if channels == 3 else "L"
    description = f"none: converted to {mode} and to [0, 1] (no resize, crop or normalisation)"
    return ImageTransform("none", "none", description, mode, size, run)


def _one_line_repr(obj: Any) -> str:
    return " ".join(repr(obj).split())


def _timm(model: Any, input_shape: tuple[int, int, int] | None) -> ImageTransform:
    from .models import import_timm

    timm = import_timm()
    import timm.data as timm_data

    args: dict[str, Any] = {} if input_shape is None else {"input_size": input_shape}
    if isinstance(model, str):
        name = model.split(":", 1)[1]
        cfg = timm.models.get_pretrained_cfg(name)
        pretrained = cfg.to_dict() if cfg is not None else None
        config = timm_data.resolve_data_config(args, pretrained_cfg=pretrained)
    else:
        config = timm_data.resolve_data_config(args, model=model)
    function = timm_data.create_transform(**config, is_training=False)
    c, h, w = (int(v) for v in config["input_size"])
    if c not in (1, 3):
        raise ERFValueError(f"timm's data config has {c} input channels; images give 1 or 3")
    description = (
        f"timm eval transform of timm.data.resolve_data_config (input_size {c}x{h}x{w}, "
        f"interpolation {config.get('interpolation')}, crop_pct {config.get('crop_pct')}, "
        f"crop_mode {config.get('crop_mode')}): {_one_line_repr(function)}"
    )
    return ImageTransform("timm", "timm", description, "RGB" if c == 3 else "L", (h, w), function)


def _torchvision_weights(
    name: str, input_shape: tuple[int, int, int] | None
) -> ImageTransform | None:
    """The ``transforms()`` of torchvision's default weights of model ``name``, if any."""
    from .models import import_torchvision

    tv = import_torchvision()
    try:
        weights = tv.models.get_model_weights(name).DEFAULT
        build = weights.transforms
        probe = build()
        crop = int(probe.crop_size[0])
        resize = int(probe.resize_size[0])
    except (ValueError, KeyError, AttributeError, TypeError, IndexError):
        return None
    if input_shape is not None and input_shape[1:] != (crop, crop):
        _, h, w = input_shape
        if h != w:
            raise ERFValueError(
                f"the transform of torchvision's {weights} crops squares, but the input is "
                f"{h}x{w}; give a square input or transform 'none'"
            )
        resize = math.floor(h * resize / crop)
        crop = h
        function = build(crop_size=crop, resize_size=resize)
    else:
        function = probe
    description = f"torchvision {weights}.transforms(): {_one_line_repr(function)}" + (
        "" if function is probe else " (sizes scaled to the given input)"
    )
    return ImageTransform(
        "torchvision", "torchvision-weights", description, "RGB", (crop, crop), function
    )


def _is_timm(model: Any) -> bool:
    if isinstance(model, str):
        return model.startswith("timm:")
    return isinstance(getattr(model, "pretrained_cfg", None), dict)


def _channels(model: Any, input_shape: tuple[int, int, int] | None) -> int:
    """1 or 3: the input's channels, else the first convolution's, else 3."""
    if input_shape is not None:
        return input_shape[0]
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                return 1 if m.in_channels == 1 else 3
    return 3


def _check_input_shape(input_shape: Any) -> tuple[int, int, int] | None:
    if input_shape is None:
        return None
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if (
        len(shape) != 3
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape)
        or min(shape) < 1
    ):
        raise ERFValueError(
            f"input_shape must be (C, H, W) of positive ints for images, got {input_shape!r}"
        )
    c, h, w = (int(v) for v in shape)
    if c not in (1, 3):
        raise ERFValueError(
            f"input_shape {(c, h, w)} has {c} channels; images give 1 (grey) or 3 (RGB)"
        )
    return c, h, w


def image_transform(
    model: str | nn.Module | None = None,
    transform: str = "auto",
    *,
    input_shape: Sequence[int] | None = None,
) -> ImageTransform:
    r"""The evaluation preprocessing of a model, as an `ImageTransform`.

    - ``"timm"``: timm's own evaluation transform,
      ``timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))``
      (resize by the model's ``crop_pct`` with its interpolation, centre crop to its
      ``input_size``, normalise with its mean and std). For a ``timm:NAME`` spec the
      configuration is the model's pretrained configuration; for a module without one,
      timm's defaults. Needs timm.
    - ``"torchvision"``: for a ``torchvision:NAME`` spec whose model has weights, the
      ``transforms()`` of its default weights (e.g. ``ResNet50_Weights.IMAGENET1K_V2``:
      resize 232 bilinear, centre crop 224, normalise), read from torchvision's
      metadata without downloading anything (needs torchvision). Otherwise (a module,
      a file spec, a torchvision model without weights) the standard ImageNet
      evaluation transform: the shorter side resized to 256 with PIL's (antialiased)
      bilinear filter, a centre crop of 224×224, values scaled to $[0, 1]$ and
      normalised with the ImageNet mean (0.485, 0.456, 0.406) and standard deviation
      (0.229, 0.224, 0.225). It equals torchvision's ``Compose([Resize(256),
      CenterCrop(224), ToTensor(), Normalize(mean, std)])`` on PIL images, and needs only
      Pillow and torch.
    - ``"none"``: converted to RGB (or grey) and scaled to $[0, 1]$, nothing else; all
      images must then have one size.
    - ``"auto"`` (default): ``"timm"`` for a timm model (a ``timm:NAME`` spec, or a
      module with timm's ``pretrained_cfg``), ``"torchvision"`` otherwise.

    With ``input_shape`` ``(C, H, W)`` the crop is $H \times W$ instead of the default:
    the standard transform resizes the shorter side to $\lfloor \max(H, W)/0.875
    \rfloor$; timm gets ``input_size=(C, H, W)``; torchvision's weights transform keeps
    its resize/crop ratio (square inputs only); ``"none"`` requires images of that size.
    ``C`` is 3 (RGB) or 1 (grey; the standard transform then normalises with the means
    of the ImageNet values); without ``input_shape``, a module whose first convolution
    takes one channel gets grey images.

    Args:
        model: a spec (``"torchvision:NAME"``, ``"timm:NAME"``, ``"file.py:FACTORY"``),
            a module, or None (then ``"auto"`` is the standard transform).
        transform: one of `TRANSFORMS`.
        input_shape: ``(C, H, W)``, see above.

    Raises:
        ERFValueError: an unknown ``transform``; a bad ``input_shape``.
        MissingDependencyError: Pillow, timm or torchvision is needed and not installed.

    Example:
        >>> import pytest
        >>> _ = pytest.importorskip("PIL")
        >>> t = image_transform(None, "torchvision")
        >>> t.source, t.size
        ('imagenet', (224, 224))
        >>> print(t.description)
        standard ImageNet evaluation: shorter side resized to 256 (PIL bilinear), centre crop
        224x224, to [0, 1], normalised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)
    """
    if not isinstance(transform, str) or transform not in TRANSFORMS:
        raise ERFValueError(
            f"transform must be one of {', '.join(repr(t) for t in TRANSFORMS)}, got {transform!r}"
        )
    if model is not None and not isinstance(model, (str, nn.Module)):
        raise ERFTypeError(
            f"model must be a spec, a torch.nn.Module or None, got {type(model).__name__}"
        )
    shape = _check_input_shape(input_shape)
    _pil()
    if transform == "auto":
        transform = "timm" if model is not None and _is_timm(model) else "torchvision"
    channels = _channels(model, shape)
    if transform == "none":
        return _none(None if shape is None else shape[1:], channels)
    if transform == "timm":
        if model is None or (isinstance(model, str) and not model.startswith("timm:")):
            raise ERFValueError(
                f"transform 'timm' needs a timm:NAME spec or a module, got {model!r}"
            )
        return _timm(model, shape)
    if isinstance(model, str) and model.startswith("torchvision:"):
        found = _torchvision_weights(model.split(":", 1)[1], shape)
        if found is not None:
            return found
    return _imagenet((224, 224) if shape is None else shape[1:], channels)


# ------------------------------------------------------------------------ batches
def check_images(paths: Sequence[str | os.PathLike[str]], *, same_size: bool = False) -> None:
    """Open the header of every file (no decoding): each must be an image Pillow reads.

    Raises:
        ERFValueError: a file that is not a readable image (the message names it); with
            ``same_size``, two images of different sizes (both named).
        MissingDependencyError: Pillow is not installed.
    """
    Image = _pil()
    first: tuple[tuple[int, int], Path] | None = None
    for p in paths:
        path = Path(p)
        try:
            with Image.open(path) as image:
                size = tuple(image.size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise ERFValueError(f"image {str(path)!r} cannot be read ({one_line(e)})") from None
        if same_size:
            if first is None:
                first = (size, path)
            elif size != first[0]:
                (a, pa), b = first, size
                raise ERFValueError(
                    f"transform 'none' needs images of one size, but {str(pa)!r} is "
                    f"{a[0]}x{a[1]} and {str(path)!r} is {b[0]}x{b[1]} (W x H); use "
                    f"transform 'torchvision' or 'timm' to resize and crop them"
                )


class ImageBatches:
    """Images of a list of files as batches of ``(B, C, H, W)`` float32 tensors.

    Re-iterable (every pass reads the files again) with ``len`` the number of batches,
    so `empirical_erf` shows a progress bar over it and can make several runs. Images
    are decoded and transformed in ``workers`` threads (Pillow releases the GIL);
    the result does not depend on their number.

    Attributes:
        paths: the files, in order.
        transform: the `ImageTransform`.
        batch_size: images per batch (the last batch may be smaller).
        workers: decoding threads (0: in the calling thread).
    """

    paths: list[Path]
    transform: ImageTransform
    batch_size: int
    workers: int

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        transform: ImageTransform,
        *,
        batch_size: int = 16,
        workers: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise ERFValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size < 1:
            raise ERFValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
            raise ERFValueError(f"workers must be an int >= 0 or None, got {workers!r}")
        if not isinstance(transform, ImageTransform):
            raise ERFTypeError(
                f"transform must be an ImageTransform (image_transform), got "
                f"{type(transform).__name__}"
            )
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ERFValueError("no image files were given")
        self.transform = transform
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self._shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __repr__(self) -> str:
        return (
            f"ImageBatches({len(self.paths)} images, batch_size={self.batch_size}, "
            f"transform={self.transform.name!r})"
        )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one preprocessed image (the first is read to find it)."""
        if self._shape is None:
            self._shape = tuple(int(s) for s in self.load(self.paths[0]).shape)
        return self._shape

    def load(self, path: str | os.PathLike[str]) -> torch.Tensor:
        """One preprocessed image ``(C, H, W)``.

        Raises:
            ERFValueError: the file cannot be read as an image (the message names it).
        """
        Image = _pil()
        try:
            with Image.open(path) as image:
                image.load()
                return self.transform(image)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            if isinstance(e, ERFValueError):
                raise ERFValueError(f"image {str(path)!r}: {e}") from None
            raise ERFValueError(f"image {str(path)!r} cannot be read ({one_line(e)})") from None

    def check(self, *, same_size: bool | None = None) -> None:
        """Open every file's header (cheap: no decoding) before a long run.

        Args:
            same_size: also require one image size (default: for transform
                ``"none"``, which keeps the sizes).

        Raises:
            ERFValueError: a file that is not an image Pillow can read; with
                ``same_size``, an image whose size differs from the first's.
        """
        check_images(
            self.paths, same_size=self.transform.size is None if same_size is None else same_size
        )

    def _chunk(self, paths: Sequence[Path], pool: Any) -> torch.Tensor:
        tensors = (
            list(pool.map(self.load, paths)) if pool is not None else [self.load(p) for p in paths]
        )
        if self._shape is None:
            self._shape = tuple(int(s) for s in tensors[0].shape)
        for p, t in zip(paths, tensors, strict=True):
            if tuple(t.shape) != self._shape:
                raise ERFValueError(
                    f"image {str(p)!r} gives a tensor of shape {tuple(t.shape)}, but the "
                    f"first gave {self._shape}; all images must give one shape"
                )
        return torch.stack(tensors)

    def __iter__(self) -> Iterator[torch.Tensor]:
        n, b = len(self.paths), self.batch_size
        if self.workers == 0:
            for i in range(0, n, b):
                yield self._chunk(self.paths[i : i + b], None)
            return
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            for i in range(0, n, b):
                yield self._chunk(self.paths[i : i + b], pool)

    def tensor(self) -> torch.Tensor:
        """All images in one ``(N, C, H, W)`` tensor."""
        return torch.cat(list(self))


def image_batches(
    directory: str | os.PathLike[str],
    model: str | nn.Module | None = None,
    transform: str | ImageTransform = "auto",
    *,
    batch_size: int = 16,
    input_shape: Sequence[int] | None = None,
    recursive: bool = False,
    limit: int | None = None,
    workers: int | None = None,
) -> ImageBatches:
    """The images of a folder, preprocessed for ``model``, as `ImageBatches`.

    `find_images` lists the files (sorted; ``recursive``, ``limit``), `image_transform`
    chooses the preprocessing (``transform`` may also be an `ImageTransform`), and the
    result is the ``inputs=`` of `erftheory.torch.empirical.empirical_erf`.

    Raises:
        ERFValueError: as `find_images` and `image_transform`; a file that cannot be
            read raises when its batch is read (call `ImageBatches.check` to find it
            first).
        MissingDependencyError: Pillow (or timm, torchvision) is not installed.

    Example:
        >>> import pytest
        >>> _ = pytest.importorskip("PIL")
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (300, 260)).save(folder / "black.jpg")
        >>> x = load_images(folder)          # standard ImageNet transform
        >>> tuple(x.shape), round(float(x[0, 0, 0, 0]), 4)   # (0 - 0.485) / 0.229
        ((1, 3, 224, 224), -2.1179)
    """
    paths = find_images(directory, recursive=recursive, limit=limit)
    chosen = (
        transform
        if isinstance(transform, ImageTransform)
        else image_transform(model, transform, input_shape=input_shape)
    )
    return ImageBatches(paths, chosen, batch_size=batch_size, workers=workers)


def load_images(
    directory: str | os.PathLike[str],
    model: str | nn.Module | None = None,
    transform: str | ImageTransform = "auto",
    **options: Any,
) -> torch.Tensor:
    """`image_batches` stacked into one ``(N, C, H, W)`` float32 tensor."""
    return image_batches(directory, model, transform, **options).tensor()
