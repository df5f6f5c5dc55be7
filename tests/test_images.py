"""Folders of images as inputs (`erftheory.torch.images`): files, transforms, batches.

The images are written by the tests (small PNGs) or are scikit-learn's bundled sample
photographs (china.jpg, flower.jpg, 427x640) where natural images are wanted. Each
transform is checked against the library it claims to equal, tensor for tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="erftheory.torch.images needs the torch extra")
Image = pytest.importorskip("PIL.Image", reason="reading images needs Pillow")

from torch import nn  # noqa: E402

from erftheory import ERFValueError  # noqa: E402
from erftheory.torch import empirical_erf  # noqa: E402
from erftheory.torch.images import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageBatches,
    check_images,
    find_images,
    image_batches,
    image_transform,
    load_images,
)


def _png(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> Path:
    """A random image of ``size`` (W, H) saved losslessly."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five 20x12 PNGs (W x H), named out of order."""
    for i, name in enumerate(["c.png", "a.png", "e.PNG", "b.png", "d.png"]):
        _png(tmp_path / name, (20, 12), i)
    return tmp_path


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    datasets = pytest.importorskip("sklearn.datasets", reason="natural images need scikit-learn")
    images = [Image.fromarray(a) for a in datasets.load_sample_images().images]
    # and two odd sizes, portrait and landscape, to exercise the rounding of resize and crop
    rng = np.random.default_rng(0)
    for h, w in ((301, 257), (257, 333)):
        images.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return images


def _torchvision() -> object:
    from erftheory.torch.models import import_torchvision

    try:
        return import_torchvision()
    except ImportError as e:
        pytest.skip(f"torchvision is not installed ({e}); install the 'models' extra")


# ------------------------------------------------------------------ files
def test_find_images_sorted_filtered_limited(folder: Path) -> None:
    (folder / "notes.txt").write_text("not an image")
    _png(folder / ".hidden.png", (4, 4), 9)
    (folder / "sub").mkdir()
    _png(folder / "sub" / "z.jpg", (4, 4), 9)
    names = [p.name for p in find_images(folder)]
    assert names == ["a.png", "b.png", "c.png", "d.png", "e.PNG"]
    assert [p.name for p in find_images(folder, limit=2)] == ["a.png", "b.png"]
    deep = find_images(folder, recursive=True)
    assert [p.relative_to(folder).as_posix() for p in deep][-1] == "sub/z.jpg"
    assert len(deep) == 6


def test_find_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ERFValueError, match="does not exist"):
        find_images(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(ERFValueError, match="is not a folder"):
        find_images(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ERFValueError, match=r"no images in the folder .*empty'"):
        find_images(empty)
    (empty / "inner").mkdir()
    _png(empty / "inner" / "x.png", (3, 3), 0)
    with pytest.raises(ERFValueError, match=r"sub-folders.*recursive=True"):
        find_images(empty)
    assert len(find_images(empty, recursive=True)) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ERFValueError, match="limit must be a positive int"):
            find_images(empty, recursive=True, limit=bad)


def test_check_images_names_the_bad_file(folder: Path) -> None:
    check_images(find_images(folder))
    (folder / "f.png").write_bytes(b"not a png")
    with pytest.raises(ERFValueError, match=r"image '.*f\.png' cannot be read \(Unidentified"):
        check_images(find_images(folder))
    (folder / "f.png").unlink()
    _png(folder / "f.png", (21, 12), 0)
    check_images(find_images(folder))
    with pytest.raises(ERFValueError, match=r"one size.*a\.png' is 20x12 and .*f\.png' is 21x12"):
        check_images(find_images(folder), same_size=True)


# ------------------------------------------------------------------ transforms
def test_none_is_to_tensor_only(folder: Path) -> None:
    path = folder / "a.png"
    t = image_transform(None, "none")
    assert (t.name, t.source, t.size, t.mode) == ("none", "none", None, "RGB")
    x = t(Image.open(path))
    expected = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255
    assert x.dtype == torch.float32 and x.shape == (3, 12, 20)
    assert torch.equal(x, expected)


def test_grey_images_for_one_channel_models(folder: Path) -> None:
    model = nn.Conv2d(1, 2, 3)
    t = image_transform(model, "none")
    assert t.mode == "L"
    x = t(Image.open(folder / "a.png"))
    grey = np.asarray(Image.open(folder / "a.png").convert("L"), dtype=np.float32) / 255
    assert x.shape == (1, 12, 20) and torch.equal(x[0], torch.from_numpy(grey))
    std = image_transform(None, "torchvision", input_shape=(1, 8, 8))
    assert std.mode == "L" and std(Image.open(folder / "a.png")).shape == (1, 8, 8)


def test_standard_transform_equals_torchvision(photos: list[Image.Image]) -> None:
    _torchvision()
    import torchvision.transforms as T

    ref = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    ours = image_transform("my_model.py:build", "auto")  # a file model: the standard one
    assert ours.source == "imagenet" and ours.size == (224, 224)
    assert "resized to 256" in ours.description and "centre crop 224x224" in ours.description
    for image in photos:
        assert torch.equal(ours(image), ref(image))
    # another crop: the shorter side goes to floor(64 / 0.875) = 73
    small = image_transform(None, "torchvision", input_shape=(3, 64, 64))
    ref64 = T.Compose(
        [T.Resize(73), T.CenterCrop(64), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    for image in photos:
        assert torch.equal(small(image), ref64(image))


def test_torchvision_weights_transform(photos: list[Image.Image]) -> None:
    tv = _torchvision()
    chosen = image_transform("torchvision:resnet50", "auto")
    assert chosen.source == "torchvision-weights" and chosen.size == (224, 224)
    assert "ResNet50_Weights.IMAGENET1K_V2" in chosen.description
    reference = tv.models.ResNet50_Weights.DEFAULT.transforms()  # type: ignore[attr-defined]
    for image in photos[:2]:
        assert torch.equal(chosen(image), reference(image))
    scaled = image_transform("torchvision:resnet50", "torchvision", input_shape=(3, 112, 112))
    ref = tv.models.ResNet50_Weights.DEFAULT.transforms(crop_size=112, resize_size=116)  # type: ignore[attr-defined]
    assert torch.equal(scaled(photos[0]), ref(photos[0]))
    with pytest.raises(ERFValueError, match="crops squares"):
        image_transform("torchvision:resnet50", "auto", input_shape=(3, 64, 96))


def test_timm_transform_equals_timms_own(photos: list[Image.Image]) -> None:
    from erftheory.torch.models import import_timm, load_model

    try:
        timm = import_timm()
    except ImportError as e:
        pytest.skip(f"timm is not installed ({e}); install the 'models' extra")
    import timm.data

    model = load_model("timm:resnet18")
    chosen = image_transform(model, "auto")
    assert chosen.name == "timm" and chosen.source == "timm"
    own = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    by_spec = image_transform("timm:resnet18", "timm")
    for image in photos:
        x = chosen(image)
        assert x.shape == (3, 224, 224)
        assert torch.equal(x, own(image))
        assert torch.equal(by_spec(image), x)
    # resnet18's configuration is not the standard one: bicubic, crop_pct 0.95 (resize 235)
    assert "bicubic" in chosen.description and "crop_pct 0.95" in chosen.description
    assert not torch.equal(chosen(photos[0]), image_transform(None, "torchvision")(photos[0]))


def test_transform_arguments() -> None:
    with pytest.raises(ERFValueError, match=r"transform must be one of 'auto', 'timm'.*'bogus'"):
        image_transform(None, "bogus")
    with pytest.raises(ERFValueError, match="needs a timm:NAME spec or a module"):
        image_transform("my.py:f", "timm")
    for bad in ((3, 8), (3, 0, 8), (2, 8, 8), (3, 8.0, 8)):
        with pytest.raises(ERFValueError, match="input_shape"):
            image_transform(None, "none", input_shape=bad)


# ------------------------------------------------------------------ batches
def test_batches_shapes_and_reiteration(folder: Path) -> None:
    batches = image_batches(folder, transform="none", batch_size=2)
    assert len(batches) == 3 and batches.sample_shape == (3, 12, 20)
    first = list(batches)
    assert [tuple(b.shape) for b in first] == [(2, 3, 12, 20), (2, 3, 12, 20), (1, 3, 12, 20)]
    again = list(batches)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    serial = image_batches(folder, transform="none", batch_size=2, workers=0)
    assert all(torch.equal(a, b) for a, b in zip(first, serial, strict=True))
    stacked = load_images(folder, transform="none")
    t = batches.transform
    for x, path in zip(stacked, sorted(folder.iterdir(), key=lambda p: p.name), strict=True):
        assert torch.equal(x, t(Image.open(path)))


def test_batches_errors(folder: Path) -> None:
    with pytest.raises(ERFValueError, match="batch_size must be a positive int"):
        image_batches(folder, transform="none", batch_size=0)
    _png(folder / "f.png", (21, 12), 0)
    batches = image_batches(folder, transform="none", batch_size=10)
    with pytest.raises(ERFValueError, match=r"f\.png' gives a tensor of shape \(3, 12, 21\)"):
        list(batches)
    (folder / "f.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ERFValueError, match=r"image '.*f\.png' cannot be read"):
        list(image_batches(folder, transform="none", batch_size=10))
    with pytest.raises(ERFValueError, match="no image files"):
        ImageBatches([], image_transform(None, "none"))


def test_empirical_erf_on_batches_equals_the_tensor(folder: Path) -> None:
    """The batches are `empirical_erf` inputs: the same map as the stacked tensor."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    batches = image_batches(folder, transform="none", batch_size=2)
    from_batches = empirical_erf(model, inputs=batches, dtype=torch.float32)
    from_tensor = empirical_erf(model, inputs=batches.tensor(), batch_size=2, dtype=torch.float32)
    assert from_batches.count == from_tensor.count == 5
    np.testing.assert_array_equal(from_batches.map, from_tensor.map)
    np.testing.assert_array_equal(from_batches.stderr, from_tensor.stderr)
    assert from_batches.origin == from_tensor.origin == (5, 9)


def test_empirical_erf_reads_a_folder(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``inputs=`` a folder: the images with the model's preprocessing, as image_batches."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    batches = image_batches(folder, model, "auto", batch_size=3)
    direct = empirical_erf(model, inputs=batches, dtype=torch.float32)
    for given in (folder, str(folder)):
        read = empirical_erf(model, inputs=given, batch_size=3, dtype=torch.float32)
        assert read.count == direct.count == 5
        np.testing.assert_array_equal(read.map, direct.map)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ERFValueError, match="no image"):
        empirical_erf(model, inputs=empty)
    with pytest.raises(ERFValueError, match="is not a folder"):
        empirical_erf(model, inputs=str(folder / "a.png"))
