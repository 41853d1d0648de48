"""Data loading: folders, named data sets, decoding, caching, transforms and every user error."""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from mobilenet.data import (
    DATASETS,
    build_batch_mix,
    cache,
    eval_transform,
    find_images,
    load_data,
    load_eval_folder,
    load_image,
    read_idx,
    sources,
    train_transform,
)
from mobilenet.data.datasets import InMemoryImages
from mobilenet.data.images import decode_image_bytes
from mobilenet.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    SmallAugment,
    adapt_stats,
    eval_resize_size,
    small_padding,
)
from mobilenet.errors import BadImageError, ConfigError, DataError

CLASSES = ["cat", "dog", "frog"]
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean, std that leave pixels at value / 255


def unit(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """:data:`UNIT` for ``channels`` channels."""
    return (0.0,) * channels, (1.0,) * channels


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decoded-image caches and downloads go to a temporary folder, never ~/.cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MOBILENET_CACHE", str(folder))
    return folder


def pixels(seed: int, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """A smooth random uint8 image (H x W x C, or H x W) that survives JPEG recognisably."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, channels), dtype=np.uint8)
    image = Image.fromarray(coarse.squeeze(-1) if channels == 1 else coarse).resize(size, Image.BILINEAR)
    return np.array(image)


def write(path: Path, array: np.ndarray, **save_args: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_args)
    return path


def image_folder(root: Path, per_class: int = 10, size: tuple[int, int] = (16, 16), ext: str = ".png") -> Path:
    """``root/<class>/<i>.png`` for :data:`CLASSES`, distinct images."""
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            write(root / name / f"{i:02d}{ext}", pixels(100 * label + i, size))
    return root


def raw_images(dataset) -> list[bytes]:
    return [dataset.image(i).numpy().tobytes() for i in range(len(dataset))]


def mixed_formats(root: Path) -> Path:
    """One class of every format the loader converts, plus a second class of plain JPEGs."""
    odd = root / "odd"
    write(odd / "rgb.jpg", pixels(1, (20, 16)), quality=90)
    write(odd / "gray.jpg", pixels(2, (16, 16), 1), quality=90)
    rgba = np.dstack([pixels(3, (16, 16)), np.full((16, 16), 7, np.uint8)])
    write(odd / "rgba.png", rgba)
    Image.fromarray(pixels(4, (16, 16))).convert("P", palette=Image.ADAPTIVE).save(odd / "palette.png")
    write(odd / "wide.png", (pixels(5, (16, 16), 1).astype(np.uint16) * 257))
    write(odd / "plain.bmp", pixels(6, (16, 16)))
    write(odd / "progressive.jpg", pixels(7, (16, 16)), progressive=True)
    Image.fromarray(pixels(8, (16, 16))).convert("CMYK").save(odd / "cmyk.jpg")
    for i in range(3):
        write(root / "plain" / f"{i}.jpg", pixels(10 + i, (16, 16)), quality=90)
    return root


# --- folders, labels, splits ---------------------------------------------------------------------


def test_folder_labels_follow_sorted_class_folders(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=4)
    bundle = load_data(str(root), augment=False)
    assert bundle.classes == CLASSES
    assert bundle.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert (bundle.kind, bundle.in_chans, bundle.resolution, bundle.val) == ("small", 3, 16, None)
    image, label = bundle.train[5]
    assert label == 1
    expected = torch.from_numpy(pixels(101, (16, 16))).permute(2, 0, 1)
    assert torch.equal(bundle.train.image(5), expected)  # PNG: lossless, so exactly the written pixels
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert "12 train / no val images, 3 classes (cat, dog, frog)" in bundle.summary()


def test_class_folders_skip_hidden_entries_and_recurse(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=2)
    write(root / ".ipynb_checkpoints" / "0.png", pixels(0, (16, 16)))  # a hidden folder is no class
    write(root / "cat" / ".thumbs" / "0.png", pixels(1, (16, 16)))  # nor are images inside hidden folders
    write(root / "cat" / ".0.png", pixels(2, (16, 16)))
    write(root / "cat" / "0" / "0.png", pixels(3, (16, 16)))  # images in sub-folders belong to the class
    write(root / "cat" / "00.gif", pixels(4, (16, 16)))  # GIF is not in torchvision's list, Pillow reads it
    split = sources.scan_image_folder(root)
    assert split.classes == CLASSES
    cat = root.absolute() / "cat"
    # sorted as whole paths ("0/0.png" before "00.gif"), not folder by folder as torchvision's make_dataset lists them
    assert split.paths[:4] == [str(cat / "0" / "0.png"), str(cat / "00.gif"), str(cat / "00.png"), str(cat / "01.png")]
    assert split.labels.tolist() == [0] * 4 + [1] * 2 + [2] * 2 and all(isinstance(p, str) for p in split.paths)


def test_val_fraction_split_is_stratified_and_seeded(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=10)
    first = load_data(str(root), val_fraction=0.2, seed=1)
    again = load_data(str(root), val_fraction=0.2, seed=1)
    other = load_data(str(root), val_fraction=0.2, seed=2)
    assert (len(first.train), len(first.val)) == (24, 6)
    assert torch.bincount(first.val.labels).tolist() == [2, 2, 2]
    assert raw_images(first.val) == raw_images(again.val)
    assert raw_images(first.val) != raw_images(other.val)
    assert set(raw_images(first.val)).isdisjoint(raw_images(first.train))
    assert first.val.transform is not first.train.transform  # val evaluates, train augments


def test_split_root_uses_its_valid_folder(tmp_path: Path) -> None:
    image_folder(tmp_path / "data" / "train", per_class=3)
    image_folder(tmp_path / "data" / "valid", per_class=2)
    with pytest.warns(UserWarning, match="val_fraction=0.5 ignored"):
        bundle = load_data(str(tmp_path / "data"), val_fraction=0.5)
    assert (len(bundle.train), len(bundle.val)) == (9, 6)
    assert bundle.val.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_val_data_must_have_the_same_classes(tmp_path: Path) -> None:
    train = image_folder(tmp_path / "train", per_class=2)
    val = image_folder(tmp_path / "val", per_class=1)
    assert len(load_data(str(train), val_data=str(val)).val) == 3
    (val / "bird").mkdir()
    write(val / "bird" / "0.png", pixels(0, (16, 16)))
    with pytest.raises(DataError, match="missing none; extra bird"):
        load_data(str(train), val_data=str(val))


def test_photos_and_grayscale_are_detected(tmp_path: Path) -> None:
    for name in CLASSES[:2]:
        write(tmp_path / "photos" / name / "a.jpg", pixels(0, (120, 90)))
        write(tmp_path / "gray" / name / "a.png", pixels(1, (28, 28), 1))
    photos = load_data(str(tmp_path / "photos"))
    assert (photos.kind, photos.resolution, photos.in_chans) == ("photo", 224, 3)
    gray = load_data(str(tmp_path / "gray"))
    assert (gray.kind, gray.resolution, gray.in_chans, len(gray.mean)) == ("small", 28, 1, 1)


def test_channel_conversion_and_statistics(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=1)
    gray = load_data(str(root), in_chans=1, augment=False)
    rgb = load_data(str(root), augment=False)
    assert gray.train.image(0).shape == (1, 16, 16)
    luma = (rgb.train.image(0).double() * torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1)).sum(0)
    assert (gray.train.image(0)[0].double() - luma).abs().max() <= 1  # ITU-R 601 luminance, rounded
    assert adapt_stats(CIFAR10_MEAN, CIFAR10_STD, 1)[0] == (0.4809,)
    assert adapt_stats((0.286,), (0.353,), 3) == ((0.286,) * 3, (0.353,) * 3)


# --- transforms ----------------------------------------------------------------------------------


def test_eval_transform_normalises_exactly(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=2)
    bundle = load_data(str(root), augment=False, val_fraction=0.5)
    mean, std = torch.tensor(bundle.mean).view(3, 1, 1), torch.tensor(bundle.std).view(3, 1, 1)
    expected = (bundle.train.image(1).float() / 255 - mean) / std
    assert torch.allclose(bundle.train[1][0], expected, atol=1e-6)
    assert bundle.train.transform is bundle.val.transform  # augment=False: train transform == eval transform


def test_eval_geometry_on_a_photo_resizes_to_r_over_0875_and_crops_the_centre() -> None:
    columns = torch.arange(200, dtype=torch.uint8).repeat(100, 1)  # 100 high, 200 wide: value = column
    out = eval_transform("photo", 64, (0.0,), (1.0 / 255,))(columns[None])
    assert eval_resize_size("photo", 64) == 73 and eval_resize_size("photo", 224) == 256
    assert out.shape == (1, 64, 64)
    # shorter side 100 -> 73 (scale 0.73), width 146; the 64 centre columns start at (146 - 64) // 2 = 41
    first, last = (41 + 0.5) / 0.73 - 0.5, (41 + 63 + 0.5) / 0.73 - 0.5
    assert out[0, :, 0].sub(first).abs().max() < 1.5 and out[0, :, -1].sub(last).abs().max() < 1.5
    assert torch.equal(out[0, 0], out[0, -1])  # rows are unchanged by the crop


def test_eval_crop_fraction_comes_from_the_caller() -> None:
    assert eval_resize_size("photo", 224, crop_fraction=1.0) == 224
    assert eval_resize_size("photo", 224, crop_fraction=0.95) == 236  # round(224 / 0.95)
    assert eval_resize_size("small", 32, crop_fraction=0.5) == 32  # small images are never cropped
    image = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8)
    whole = eval_transform("photo", 60, *UNIT, crop_fraction=1.0)(image)  # shorter side to 60: nothing cut off
    resized = v2.functional.resize(image, [60], antialias=True)
    assert torch.allclose(whole, v2.functional.center_crop(resized, [60]).float() / 255)
    assert not torch.equal(whole, eval_transform("photo", 60, *UNIT)(image))  # the default crops 60 out of 69
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="crop_fraction must be in"):
            eval_transform("photo", 60, *UNIT, crop_fraction=bad)


def test_small_images_at_native_size_are_not_resized() -> None:
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = eval_transform("small", 32, *UNIT)(image)
    assert torch.allclose(out, image.float() / 255)
    assert eval_transform("small", 48, *UNIT)(image).shape == (3, 48, 48)


def test_train_transforms_shapes_ranges_and_options() -> None:
    torch.manual_seed(0)
    image = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    small = train_transform("small", 32, *UNIT)
    outs = torch.stack([small(image) for _ in range(20)])
    assert outs.shape == (20, 3, 32, 32) and outs.dtype == torch.float32
    assert small_padding(32) == 4 and small_padding(224) == 28
    assert outs.min() == 0 and outs.max() == 1  # zero padding shows up in some crops, pixels stay 1
    photo = train_transform("photo", 24, *UNIT, auto_augment="trivial", random_erasing=1.0)
    assert photo(torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)).shape == (3, 24, 24)
    assert (photo(torch.full((3, 32, 32), 200, dtype=torch.uint8)) == 0).any()  # p=1: always an erased patch
    with pytest.raises(ConfigError, match="unknown auto_augment 'auto'"):
        train_transform("small", 32, *UNIT, auto_augment="auto")
    policy = train_transform("photo", 24, *UNIT, auto_augment="imagenet")  # AutoAugment (the V3 recipes')
    assert any(isinstance(step, v2.AutoAugment) for step in policy.transforms)
    gradient = torch.arange(50 * 70, dtype=torch.int64).reshape(1, 50, 70).expand(3, -1, -1) % 256
    augmented = torch.stack([policy(gradient.to(torch.uint8)) for _ in range(8)])
    assert augmented.shape == (8, 3, 24, 24) and augmented.std(0).max() > 0  # random crops and policies differ
    with pytest.raises(ConfigError, match="random_erasing"):
        train_transform("small", 32, *UNIT, random_erasing=1.5)


def _pad_crop_candidates(image: torch.Tensor, padding: int) -> torch.Tensor:
    """Every window (and its mirror) that pad-and-crop with a flip can produce from ``image``."""
    size = image.shape[-1]
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    windows = [
        padded[:, top : top + size, left : left + size]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]
    return torch.stack(windows + [window.flip(-1) for window in windows])


def test_batched_small_augmentation_is_pad_crop_flip_per_image() -> None:
    torch.manual_seed(0)
    images = torch.randint(1, 256, (64, 2, 12, 12), dtype=torch.uint8)
    augment = train_transform("small", 12, *unit(2))
    assert isinstance(augment, SmallAugment)
    out = augment.batch(images)
    assert out.shape == (64, 2, 12, 12) and out.dtype == torch.float32
    windows = (2 * small_padding(12) + 1) ** 2  # 5 x 5 offsets at 2 px of padding
    offsets, flips = set(), 0
    for image, result in zip(images, out, strict=True):
        candidates = _pad_crop_candidates(image.float() / 255, small_padding(12))
        matches = [i for i, c in enumerate(candidates) if torch.equal(c, result)]
        assert matches, "every output is one padded window of its own input, maybe mirrored"
        offsets.add(matches[0] % windows)
        flips += matches[0] >= windows
    assert len(offsets) > 15 and 16 < flips < 48  # the offsets vary; about half the images are mirrored
    assert augment(images[0]).shape == (2, 12, 12)  # one image is a batch of one


def test_batched_random_erasing_draws_rectangles_like_v2() -> None:
    torch.manual_seed(0)
    images = torch.full((2000, 1, 28, 28), 255, dtype=torch.uint8)
    out = SmallAugment(28, *unit(1), random_erasing=0.5).batch(images)
    padding = small_padding(28)
    inner = out[:, 0, padding:-padding, padding:-padding]  # never touched by the zero padding
    erased = (inner == 0).flatten(1).any(1)
    assert 0.45 < erased.float().mean() < 0.55
    areas = (out == 0).flatten(1).sum(1).float()
    # each erased rectangle covers 2-33% of the image (plus at most the padding's zero rows/columns)
    assert areas[erased].max() <= 0.33 * 28 * 28 + 2 * padding * 28
    v2_erasing = v2.RandomErasing(p=1.0, value=0)
    reference = torch.stack([v2_erasing(torch.ones(1, 28, 28)) for _ in range(500)])
    ours = SmallAugment(28, *unit(1), random_erasing=1.0)._erase(torch.ones(500, 1, 28, 28))
    mean_ref, mean_ours = (reference == 0).float().mean().item(), (ours == 0).float().mean().item()
    assert abs(mean_ref - mean_ours) < 0.02  # the same distribution of erased area: ~12% of pixels


def test_in_memory_batches_keep_images_and_labels_together() -> None:
    labels = torch.arange(40) % 10
    images = (labels * 20 + 10).to(torch.uint8).view(40, 1, 1, 1).expand(40, 1, 16, 16).contiguous()
    data = InMemoryImages(images, labels, train_transform("small", 16, *unit(1)))
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True)
    for batch, targets in loader:
        assert torch.allclose(batch.amax((1, 2, 3)), (targets * 20 + 10).float() / 255)


def test_batch_mix() -> None:
    assert build_batch_mix(0.0, 0.0, 10) is None
    images, labels = torch.rand(8, 3, 8, 8), torch.arange(8) % 4
    mixed, soft = build_batch_mix(0.2, 0.0, 4)(images, labels)
    assert mixed.shape == images.shape and soft.shape == (8, 4)
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert (soft.max(1).values < 1).all()  # every label mixed with another image's
    _, soft = build_batch_mix(0.2, 1.0, 4)(images, labels)
    assert soft.shape == (8, 4)
    with pytest.raises(ConfigError):
        build_batch_mix(-1.0, 0.0, 4)


# --- decoding: formats, cache, corrupt files ----------------------------------------------------


def test_load_image_converts_every_mode(tmp_path: Path) -> None:
    gray = write(tmp_path / "g.png", np.full((4, 5), 90, np.uint8))
    assert load_image(gray, in_chans=1).shape == (1, 4, 5)
    assert load_image(gray).shape == (3, 4, 5) and load_image(gray).unique().tolist() == [90]
    transparent = np.dstack([np.full((4, 4, 3), (10, 20, 30), np.uint8), np.zeros((4, 4), np.uint8)])
    assert load_image(write(tmp_path / "a.png", transparent))[:, 0, 0].tolist() == [10, 20, 30]  # alpha dropped
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50])
    palette.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png")[:, 0, 0].tolist() == [200, 100, 50]
    wide = write(tmp_path / "w.png", np.array([[0, 257 * 100, 32768, 65535]], np.uint16))
    assert load_image(wide, in_chans=1)[0, 0].tolist() == [0, 100, 128, 255]
    red = write(tmp_path / "r.png", np.full((2, 2, 3), (255, 0, 0), np.uint8))
    assert load_image(red, in_chans=1).unique().tolist() == [76]  # 0.299 * 255
    Image.fromarray(np.full((8, 8, 3), (200, 100, 50), np.uint8)).convert("CMYK").save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg")[:, 0, 0].sub(torch.tensor([200, 100, 50])).abs().max() <= 2
    with pytest.raises(ConfigError, match="in_chans must be 1"):
        load_image(red, in_chans=4)


def test_cache_equals_lazy_decoding_pixel_for_pixel(tmp_path: Path, private_cache: Path) -> None:
    root = mixed_formats(tmp_path / "data")
    memory = load_data(str(root), cache="memory", augment=False)
    lazy = load_data(str(root), cache="none", augment=False)
    again = load_data(str(root), cache="memory", augment=False)
    assert (memory.cache, lazy.cache, again.cache) == ("memory", "none", "memory (from disk cache)")
    assert len(list((private_cache / "decoded").glob("*.pt"))) == 1
    assert len(memory.train) == len(lazy.train) == 11
    for i in range(11):
        assert torch.equal(memory.train.image(i), lazy.train.image(i))
        assert torch.equal(memory.train.image(i), again.train.image(i))
        assert torch.equal(memory.train[i][0], lazy.train[i][0])
    assert isinstance(memory.train.images, list)  # sizes differ (20x16 beside 16x16): not stacked


def test_parallel_decoding_keeps_order_and_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = image_folder(tmp_path / "data", per_class=5)
    (root / "dog" / "02.png").write_bytes(b"broken")
    monkeypatch.setattr(cache, "GROUP", 4)  # 15 files: 4 groups over 2 worker processes
    monkeypatch.setattr(cache, "WORKERS", 2)
    with pytest.warns(UserWarning, match=r"02\.png"):
        parallel = load_data(str(root), cache="memory", augment=False)
    good = [path for path in sorted(root.rglob("*.png")) if path != root / "dog" / "02.png"]
    assert raw_images(parallel.train) == [load_image(path).numpy().tobytes() for path in good]
    assert parallel.train.labels.tolist() == [0] * 5 + [1] * 4 + [2] * 5


def test_photo_cache_is_stored_small_and_evaluates_like_the_file(tmp_path: Path) -> None:
    for i, name in enumerate(CLASSES[:2]):
        write(tmp_path / "data" / name / "a.jpg", pixels(i, (160, 120)), quality=90)
    memory = load_data(str(tmp_path / "data"), resolution=64, cache="memory", augment=False)
    lazy = load_data(str(tmp_path / "data"), resolution=64, cache="none", augment=False)
    assert memory.train.image(0).shape == (3, 73, 97)  # shorter side round(64 / 0.875), never the full 120
    assert lazy.train.image(0).shape == (3, 120, 160)
    assert torch.equal(memory.train[0][0], lazy.train[0][0])
    cached, _ = load_eval_folder(str(tmp_path / "data"), 64, 3, *UNIT, crop_fraction=1.0, cache="memory")
    from_file, _ = load_eval_folder(str(tmp_path / "data"), 64, 3, *UNIT, crop_fraction=1.0, cache="none")
    assert cached.image(0).shape == (3, 64, 85)  # a model card's crop fraction of 1: shorter side 64, not 73
    assert torch.equal(cached[0][0], from_file[0][0])


def test_corrupt_image_is_skipped_with_a_warning_or_raises_when_strict(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=3, ext=".jpg")
    good = (root / "dog" / "01.jpg").read_bytes()
    bad = root / "dog" / "truncated.jpg"
    bad.write_bytes(good[: len(good) // 2])
    for _ in range(2):  # decoding, then from the disk cache: the same warning and count
        with pytest.warns(UserWarning, match=r"truncated\.jpg"):
            bundle = load_data(str(root))
        assert bundle.skipped == [str(bad)] and len(bundle.train) == 9
        assert bundle.train.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
        assert "1 skipped" in bundle.summary()
    with pytest.raises(BadImageError, match=r"truncated\.jpg"):
        load_data(str(root), strict=True)
    with pytest.raises(BadImageError, match=r"truncated\.jpg"):
        load_data(str(root), strict=True, cache="none").train[6]  # lazy: found when read


def test_lazy_reading_replaces_a_corrupt_image_by_the_next(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=2)
    (root / "cat" / "00.png").write_bytes(b"not a png")
    bundle = load_data(str(root), cache="none", augment=False)
    with pytest.warns(UserWarning, match="00.png"):
        image, label = bundle.train[0]
    assert label == 0 and torch.equal(image, bundle.train[1][0])


def test_jpegs_keep_their_channels_and_decode_like_pillow(tmp_path: Path) -> None:
    for name, array in (("gray.jpg", pixels(0, (24, 16), 1)), ("rgb.jpg", pixels(1, (24, 16)))):
        path = write(tmp_path / name, array, quality=85)
        decoded = decode_image_bytes(path.read_bytes(), str(path))
        with Image.open(path) as image:
            reference = torch.from_numpy(np.array(image))
        expected = reference[None] if reference.dim() == 2 else reference.permute(2, 0, 1)
        assert decoded.shape == ((1 if array.ndim == 2 else 3), 16, 24)  # grayscale stays one channel
        assert torch.equal(decoded, expected)  # libjpeg-turbo either way: the same pixels


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    png = write(tmp_path / "big.png", pixels(0, (100, 100)))
    jpeg = write(tmp_path / "big.jpg", pixels(0, (100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for path in (png, jpeg):
        with pytest.raises(BadImageError, match=r"decompression bomb.*MAX_IMAGE_PIXELS") as caught:
            load_image(path)
        assert caught.value.path == str(path) and isinstance(caught.value, DataError)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 junk")
    with pytest.raises(BadImageError, match=r"cannot read image .*junk.jpg: .*replace or remove the file"):
        load_image(tmp_path / "junk.jpg")
    with pytest.raises(DataError, match="no such image file"):
        load_image(tmp_path / "missing.jpg")


def test_find_images(tmp_path: Path) -> None:
    write(tmp_path / "a" / "b" / "2.PNG", pixels(0, (4, 4)))
    write(tmp_path / "a" / "1.jpg", pixels(0, (4, 4)))
    write(tmp_path / "a" / ".hidden.jpg", pixels(0, (4, 4)))
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "odd.data").write_bytes(b"x")
    found = find_images([tmp_path / "a", str(tmp_path / "odd.data")])
    assert found == [tmp_path / "a" / "1.jpg", tmp_path / "a" / "b" / "2.PNG", tmp_path / "odd.data"]
    with pytest.raises(DataError, match="no such file or folder"):
        find_images([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        find_images([tmp_path / "empty"])


# --- user errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "neither a folder nor a known data set"),
        ("empty", "is empty"),
        ("no_images", "holds no images"),
        ("flat", "holds images but no class folders"),
        ("file", "is a file"),
    ],
)
def test_bad_folders(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / layout
    if layout == "empty":
        root.mkdir()
    elif layout == "no_images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "readme.txt").write_text("x")
    elif layout == "flat":
        write(root / "0.png", pixels(0, (8, 8)))
    elif layout == "file":
        root.write_bytes(b"x")
    with pytest.raises(DataError, match=message):
        load_data(str(root))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cache": "disk"}, "unknown cache mode"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"in_chans": 2}, "in_chans"),
        ({"resolution": 0}, "resolution"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict, message: str) -> None:
    root = image_folder(tmp_path / "data", per_class=1)
    with pytest.raises(ConfigError, match=message):
        load_data(str(root), **options)


# --- evaluation folders --------------------------------------------------------------------------


def test_eval_folder_maps_labels_to_the_checkpoint_classes(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", per_class=1)
    dataset, classes = load_eval_folder(str(root), 16, 3, *UNIT, classes=["frog", "cat", "dog"])
    assert classes == ["frog", "cat", "dog"]
    assert dataset.labels.tolist() == [1, 2, 0]  # cat, dog, frog folders in the checkpoint's order
    assert dataset[0][0].shape == (3, 16, 16)
    with pytest.raises(DataError, match=r"missing bird, mouse; extra frog"):
        load_eval_folder(str(root), 16, 3, *UNIT, classes=["cat", "dog", "bird", "mouse"])


def test_eval_folder_takes_the_split_of_a_data_root(tmp_path: Path) -> None:
    image_folder(tmp_path / "data" / "train", per_class=2)
    image_folder(tmp_path / "data" / "test", per_class=1)
    dataset, classes = load_eval_folder(str(tmp_path / "data"), 16, 3, *UNIT)
    assert (len(dataset), classes) == (3, CLASSES)
    with pytest.raises(DataError, match="no valid/ split: pass split= one of train, test"):
        load_eval_folder(str(tmp_path / "data"), 16, 3, *UNIT, split="valid")


def test_imagenet_sample_layout(tmp_path: Path) -> None:
    root = tmp_path / "sample"
    for i in range(3):
        write(root / "images" / f"ILSVRC2012_val_{i:08d}.JPEG", pixels(i, (80, 80)))
    (root / "labels.csv").write_text(
        "file,label\nILSVRC2012_val_00000000.JPEG,5\nILSVRC2012_val_00000001.JPEG,2\nILSVRC2012_val_00000002.JPEG,999\n"
    )
    dataset, classes = load_eval_folder(str(root), 64, 3, *UNIT)
    assert classes == [str(i) for i in range(1000)] and dataset.labels.tolist() == [5, 2, 999]
    assert dataset[0][0].shape == (3, 64, 64)
    (root / "synset_words.txt").write_text("".join(f"n{i:08d} class {i}, alias\n" for i in range(1000)))
    assert load_eval_folder(str(root), 64, 3, *UNIT)[1][999] == "class 999, alias"
    with pytest.raises(DataError, match="has label 999, the model only 10 classes"):
        load_eval_folder(str(root), 64, 3, *UNIT, classes=[str(i) for i in range(10)])
    (root / "labels.csv").write_text("file,label\nmissing.JPEG,1\n")
    with pytest.raises(DataError, match=r"line 2: .*missing\.JPEG does not exist"):
        load_eval_folder(str(root), 64, 3, *UNIT)


# --- Fashion-MNIST's IDX files -------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray, np.ndarray]:
    """A data root whose fashion-mnist/ holds 20 train and 10 test images in IDX files."""
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path / "not-installed")
    folder = tmp_path / "root" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10
    for prefix, part in (("train", slice(0, 20)), ("t10k", slice(20, 30))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images[part])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels[part])
    return folder.parent, images.astype(np.uint8), labels


def test_fashion_mnist_from_idx_files(fake_fashion_mnist: tuple[Path, np.ndarray, np.ndarray]) -> None:
    root, images, labels = fake_fashion_mnist
    bundle = load_data("fashion-mnist", data_root=str(root), val_fraction=0.5, augment=False)
    assert (len(bundle.train), len(bundle.val), bundle.cache) == (10, 10, "memory")
    assert (bundle.kind, bundle.in_chans, bundle.resolution, bundle.mean) == ("small", 1, 28, (0.2860,))
    assert bundle.classes[0] == "T-shirt/top" and bundle.classes[9] == "Ankle boot"
    first = bundle.train.image(0)
    index = next(i for i in range(20) if np.array_equal(images[i], first[0].numpy()))
    assert bundle.train.labels[0] == labels[index]
    test, classes = load_eval_folder("fashion-mnist", 28, 3, (0.286,) * 3, (0.353,) * 3, data_root=str(root))
    assert len(test) == 10 and test.labels.tolist() == labels[20:].tolist()
    assert torch.equal(test.image(0), torch.from_numpy(images[20]).expand(3, 28, 28))
    assert classes == bundle.classes


def test_idx_reader_rejects_damaged_files(tmp_path: Path) -> None:
    good = tmp_path / "good.gz"
    write_idx(good, np.arange(12).reshape(3, 4))
    assert read_idx(good).tolist() == np.arange(12).reshape(3, 4).tolist()
    (tmp_path / "magic").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00")
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"abc")
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")


def test_missing_named_data_sets_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist.*--download"):
        load_data("fashion-mnist", data_root=str(tmp_path))
    with pytest.raises(DataError, match=r"cifar10/train.*--download"):
        load_data("cifar10", data_root=str(tmp_path))
    with pytest.raises(DataError, match=r"flowers17/train"):
        load_data("flowers17", data_root=str(tmp_path))
    with pytest.raises(DataError, match="has no split 'test': use one of train, valid"):
        load_eval_folder("flowers17", 224, 3, *UNIT, data_root=str(tmp_path))
    assert list(DATASETS) == ["fashion-mnist", "cifar10", "flowers17"]


# --- the real data sets (skipped where absent) ---------------------------------------------------


def test_real_fashion_mnist_matches_its_statistics() -> None:
    if not (sources.SYSTEM_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist is not installed")
    bundle = load_data("fashion-mnist", data_root="/nonexistent", val_fraction=0.1)
    assert (len(bundle.train), len(bundle.val)) == (54_000, 6_000)
    counts = torch.bincount(torch.cat([bundle.train.images, bundle.val.images]).flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * values).sum() / counts.sum()
    std = ((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt()
    assert mean.item() == pytest.approx(bundle.mean[0], abs=5e-4)
    assert std.item() == pytest.approx(bundle.std[0], abs=5e-4)
    test, _ = load_eval_folder("fashion-mnist", 28, 1, bundle.mean, bundle.std, data_root="/nonexistent")
    assert len(test) == 10_000 and torch.bincount(test.labels).tolist() == [1000] * 10


def test_shared_evaluation_sets(shared_data: Path) -> None:
    root = str(shared_data)
    flowers, classes = load_eval_folder("flowers17", 224, 3, *UNIT, data_root=root, split="valid", cache="none")
    assert (len(flowers), len(classes)) == (136, 17) and flowers[0][0].shape == (3, 224, 224)
    cifar, classes = load_eval_folder("cifar10", 32, 3, *UNIT, data_root=root, cache="none")
    assert len(cifar) == 10_000 and classes[:3] == ["airplane", "automobile", "bird"]
    assert cifar[0][0].shape == (3, 32, 32)
    sample = shared_data / "imagenet-val-sample"
    imagenet, classes = load_eval_folder(str(sample), 224, 3, *UNIT, cache="none")
    first = (sample / "labels.csv").read_text().splitlines()[1].split(",")
    assert len(imagenet) == 300 and len(classes) == 1000 and classes[0].startswith("tench")
    assert imagenet.labels[0] == int(first[1])


def test_no_decoder_deprecation_warnings(tmp_path: Path) -> None:
    write(tmp_path / "a.jpg", pixels(0, (8, 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(tmp_path / "a.jpg")
