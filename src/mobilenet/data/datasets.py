"""PyTorch data sets over cached or lazily decoded images, and the two entry points.

:func:`load_data` turns a folder or a data set name into a :class:`DataBundle` for training;
:func:`load_eval_folder` turns a folder or a named split into a data set for evaluation, its
labels mapped to a checkpoint's classes. Small data sets are decoded once into uint8 tensors in
memory (see :mod:`mobilenet.data.cache`); larger ones are decoded item by item, by the
DataLoader's workers.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import Dataset

from mobilenet.constants import CROP_FRACTION
from mobilenet.data.cache import Images, decode_files
from mobilenet.data.images import check_in_chans, decode_file, nothing_decoded, probe_images, to_channels
from mobilenet.data.sources import Split, default_data_root, eval_split, open_source, scan_image_folder
from mobilenet.data.transforms import Kind, Stats, adapt_stats, eval_resize_size, eval_transform, train_transform
from mobilenet.errors import BadImageError, ConfigError, DataError

CACHE_MODES = ("auto", "memory", "none")
AUTO_CACHE_LIMIT = 4 * 2**30
"""``cache="auto"`` keeps decoded images in memory when they are estimated to take less than this (4 GiB)."""
PREVIEW = 10
"""How many names a message or summary lists before counting the rest."""

Transform = Callable[[torch.Tensor], torch.Tensor]
Self = TypeVar("Self", bound="LabeledImages")


class LabeledImages(Dataset):
    """``(transform(image), label)`` pairs; subclasses say where image ``i`` comes from.

    Without a transform an item is the raw uint8 ``CxHxW`` image.
    """

    def __init__(self, labels: torch.Tensor, transform: Transform | None = None) -> None:
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        """The uint8 image ``index``, before the transform."""
        raise NotImplementedError

    def subset(self: Self, indices: torch.Tensor) -> Self:
        """The images at ``indices``, same transform."""
        raise NotImplementedError

    def with_transform(self: Self, transform: Transform | None) -> Self:
        """The same images with another transform (the images are shared, not copied)."""
        other = copy.copy(self)
        other.transform = transform
        return other

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._item(index, self.image(index))

    def _item(self, index: int, image: torch.Tensor) -> tuple[torch.Tensor, int]:
        return (self.transform(image) if self.transform else image), int(self.labels[index])


class InMemoryImages(LabeledImages):
    """Images decoded once, held as a stacked uint8 tensor or a list of them (photos of varied sizes)."""

    def __init__(self, images: Images, labels: torch.Tensor, transform: Transform | None = None) -> None:
        super().__init__(labels, transform)
        self.images = images

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch of items (the DataLoader's batch fetch): one batch-wide transform where the transform has one."""
        batch = getattr(self.transform, "batch", None)
        if batch is None or not isinstance(self.images, torch.Tensor):
            return [self[index] for index in indices]
        chosen = torch.as_tensor(indices, dtype=torch.long)
        return list(zip(batch(self.images[chosen]).unbind(0), self.labels[chosen].tolist(), strict=True))

    def subset(self, indices: torch.Tensor) -> InMemoryImages:
        if isinstance(self.images, torch.Tensor):
            images: Images = self.images[indices]
        else:
            images = [self.images[i] for i in indices.tolist()]
        return InMemoryImages(images, self.labels[indices], self.transform)


class ImageFiles(LabeledImages):
    """Images decoded from their files at every read, for data too large to keep in memory.

    A file that cannot be decoded is replaced by the next readable one, with a warning (or
    raises :class:`BadImageError` when ``strict``): unlike the cache, lazy reading cannot know
    the bad files in advance.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: torch.Tensor,
        in_chans: int,
        strict: bool = False,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(labels, transform)
        self.paths = list(paths)
        self.in_chans = in_chans
        self.strict = strict

    def image(self, index: int) -> torch.Tensor:
        return decode_file(self.paths[index], self.in_chans)

    def subset(self, indices: torch.Tensor) -> ImageFiles:
        paths = [self.paths[i] for i in indices.tolist()]
        return ImageFiles(paths, self.labels[indices], self.in_chans, self.strict, self.transform)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for offset in range(len(self)):
            substitute = (index + offset) % len(self)
            try:
                return self._item(substitute, self.image(substitute))
            except BadImageError as err:
                if self.strict:
                    raise
                warnings.warn(f"skipped: {err}", stacklevel=2)
        raise nothing_decoded(len(self), self.paths[0])


@dataclass
class DataBundle:
    """Everything training needs from the data: both splits and how their images were prepared."""

    train: LabeledImages
    val: LabeledImages | None
    """None when there is no validation data (no split, no val_data, val_fraction 0)."""
    classes: list[str]
    in_chans: int
    resolution: int
    mean: Stats
    std: Stats
    kind: Kind
    skipped: list[str] = field(default_factory=list)
    """Files left out because they could not be decoded."""
    name: str = ""
    cache: str = "none"
    """Where the decoded images live: ``memory``, ``memory (from disk cache)`` or ``none`` (decoded per item)."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> str:
        """One line: counts, classes, input shape, cache, skipped files."""
        val = f"{len(self.val):,} val" if self.val is not None else "no val"
        return (
            f"{self.name}: {len(self.train):,} train / {val} images, {self.num_classes} classes "
            f"({preview(self.classes)}), {self.kind} {self.in_chans}x{self.resolution}x{self.resolution}, "
            f"cache {self.cache}, {len(self.skipped)} skipped"
        )


def preview(names: Sequence[str]) -> str:
    """The first :data:`PREVIEW` names, then how many more."""
    more = f" +{len(names) - PREVIEW} more" if len(names) > PREVIEW else ""
    return ", ".join(names[:PREVIEW]) + more


def load_data(
    data: str,
    val_data: str | None = None,
    data_root: str | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    resolution: int | None = None,
    in_chans: int | None = None,
    augment: bool = True,
    auto_augment: str | None = None,
    random_erasing: float = 0.0,
    download: bool = False,
    strict: bool = False,
    cache: str = "auto",
) -> DataBundle:
    """The training and validation data sets of a folder or a named data set.

    Args:
        data: a folder (``<root>/<class>/<image>``, or a root holding ``train/`` and one of
            ``valid/``, ``val/``, ``test/``) or a name: ``fashion-mnist``, ``cifar10``,
            ``flowers17``. An existing path wins over a name.
        val_data: a separate validation folder (``<root>/<class>/<image>``, same classes).
        data_root: where named data sets live; default ``$MOBILENET_DATA``, else
            ``../shared/data`` from the working directory.
        val_fraction: without a validation split, this fraction of each class of the training
            images (chosen with ``seed``) becomes the validation set.
        seed: seeds the validation split.
        resolution: input side R; default: the native size of small images (28 Fashion-MNIST,
            32 CIFAR-10), 224 for photos.
        in_chans: 1 or 3; default: the data's own (1 for grayscale). Grayscale to 3 repeats
            the channel; colour to 1 takes the luminance.
        augment: random training transform; False makes it the evaluation transform.
        auto_augment: ``None`` or a name of :data:`~mobilenet.data.transforms.AUTO_AUGMENTS`.
        random_erasing: probability of random erasing.
        download: let torchvision download Fashion-MNIST or CIFAR-10 when missing.
        strict: a corrupt image raises instead of being skipped with a warning.
        cache: ``"memory"`` decodes every image once into RAM (and keeps it on disk for the
            next run), ``"none"`` decodes per item, ``"auto"`` caches when under 4 GiB.
    """
    _check_options(resolution, in_chans, cache)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    source = open_source(str(data), _data_root(data_root), download)
    val_split = source.val if val_data is None else scan_image_folder(Path(val_data))
    in_chans = in_chans or source.in_chans
    resolution = resolution or source.resolution
    mean, std = adapt_stats(source.mean, source.std, in_chans)
    test_transform = eval_transform(source.kind, resolution, mean, std)
    train_tf = train_transform(source.kind, resolution, mean, std, auto_augment, random_erasing)
    train, skipped, cache_used = build_images(source.train, in_chans, source.kind, resolution, cache, strict)
    val = None
    if val_split is not None:
        if val_fraction:
            warnings.warn(f"val_fraction={val_fraction} ignored: validating on {val_split.name}", stacklevel=2)
        val_split = align_labels(val_split, source.train.classes)
        val, val_skipped, _ = build_images(val_split, in_chans, source.kind, resolution, cache, strict)
        skipped += val_skipped
    elif val_fraction > 0:
        train_indices, val_indices = stratified_split(train.labels, val_fraction, seed)
        train, val = train.subset(train_indices), train.subset(val_indices)
    return DataBundle(
        train=train.with_transform(train_tf if augment else test_transform),
        val=val.with_transform(test_transform) if val is not None else None,
        classes=source.train.classes,
        in_chans=in_chans,
        resolution=resolution,
        mean=mean,
        std=std,
        kind=source.kind,
        skipped=skipped,
        name=source.name,
        cache=cache_used,
    )


def load_eval_folder(
    path_or_name: str,
    resolution: int,
    in_chans: int,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str] | None = None,
    data_root: str | None = None,
    split: str = "test",
    *,
    download: bool = False,
    strict: bool = False,
    cache: str = "auto",
    crop_fraction: float = CROP_FRACTION,
) -> tuple[LabeledImages, list[str]]:
    """An evaluation data set (resize, center crop, normalise) and its class names.

    ``path_or_name`` is an ImageFolder, a data root with split folders (``split`` is used), the
    ImageNet-sample layout (``images/`` + ``labels.csv`` of ``file,label`` with integer labels),
    or a named data set (its ``split``: ``test`` for Fashion-MNIST and CIFAR-10). With
    ``classes`` (from a checkpoint) the folder's class names must be the same set, and labels
    follow the checkpoint's order; the ImageNet-sample layout's integer labels must index it.
    Photos are resized to ``round(resolution / crop_fraction)`` before the central crop (a model
    card's ``crop_fraction``; 0.875 by default).
    """
    _check_options(resolution, in_chans, cache)
    images, kind = eval_split(str(path_or_name), _data_root(data_root), split, download)
    if classes is not None:
        images = align_labels(images, classes)
    transform = eval_transform(kind, resolution, tuple(mean), tuple(std), crop_fraction=crop_fraction)
    dataset, _, _ = build_images(images, in_chans, kind, resolution, cache, strict, crop_fraction=crop_fraction)
    return dataset.with_transform(transform), images.classes


def _data_root(data_root: str | None) -> Path | None:
    return Path(data_root) if data_root else default_data_root()


def _check_options(resolution: int | None, in_chans: int | None, cache: str) -> None:
    if resolution is not None and resolution < 1:
        raise ConfigError(f"resolution must be a positive number of pixels, got {resolution}")
    if in_chans is not None:
        check_in_chans(in_chans)
    if cache not in CACHE_MODES:
        raise ConfigError(f"unknown cache mode {cache!r}: use one of {', '.join(CACHE_MODES)}")


def build_images(
    split: Split,
    in_chans: int,
    kind: Kind,
    resolution: int,
    cache: str,
    strict: bool,
    *,
    crop_fraction: float = CROP_FRACTION,
) -> tuple[LabeledImages, list[str], str]:
    """A split as an untransformed data set: (data set, skipped files, cache used).

    Photos are cached with their shorter side at the evaluation resize
    (``round(R / crop_fraction)``, never enlarged): evaluation then sees exactly the pixels it
    would from the file, and RandomResizedCrop still has more than R pixels to crop from.
    """
    if split.images is not None:
        return InMemoryImages(to_channels(split.images, in_chans), split.labels), [], "memory"
    short_side = None if kind == "small" else eval_resize_size(kind, resolution, crop_fraction=crop_fraction)
    if cache == "none" or (cache == "auto" and estimate_bytes(split.paths, in_chans, short_side) >= AUTO_CACHE_LIMIT):
        return ImageFiles(split.paths, split.labels, in_chans, strict), [], "none"
    decoded = decode_files(split.paths, in_chans, short_side, strict)
    images = InMemoryImages(decoded.images, split.labels[decoded.kept])
    used = "memory (from disk cache)" if decoded.from_disk else "memory"
    return images, [path for path, _ in decoded.skipped], used


def estimate_bytes(paths: Sequence[Path], in_chans: int, short_side: int | None) -> float:
    """Decoded size of ``paths`` in bytes, from a sample of image headers."""
    sizes = probe_images(paths).sizes
    if not sizes:
        return 0.0
    per_image = [in_chans * width * height * _shrink_factor(width, height, short_side) ** 2 for width, height in sizes]
    return sum(per_image) / len(per_image) * len(paths)


def _shrink_factor(width: int, height: int, short_side: int | None) -> float:
    return 1.0 if short_side is None or min(width, height) <= short_side else short_side / min(width, height)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices: ``round(fraction * n)`` random images of each class go to val.

    Every class with at least two images keeps at least one on each side. The same ``seed``
    and labels always give the same split.
    """
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        count = min(max(round(len(members) * fraction), 1), len(members) - 1)
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    val = torch.cat(chosen).sort().values
    in_train = torch.ones(len(labels), dtype=torch.bool)
    in_train[val] = False
    return in_train.nonzero().flatten(), val


def align_labels(split: Split, classes: Sequence[str]) -> Split:
    """``split`` with labels indexing ``classes`` (a model's), which must name the same classes.

    Raises :class:`DataError` listing the classes missing from the folder and the extra ones. A
    split whose labels are already indices (the ImageNet-sample layout) only has to fit.
    """
    classes = list(classes)
    if split.labels_are_indices:
        top = int(split.labels.max())
        if top >= len(classes):
            raise DataError(
                f"{split.name} has label {top}, the model only {len(classes)} classes: use a matching model"
            )
        return replace(split, classes=classes)
    found, wanted = set(split.classes), set(classes)
    missing = [name for name in classes if name not in found]
    extra = [name for name in split.classes if name not in wanted]
    if missing or extra:
        raise DataError(
            f"classes of {split.name} differ from the model's {len(classes)}: missing {preview(missing) or 'none'}; "
            f"extra {preview(extra) or 'none'}; rename or remove class folders to match"
        )
    order = {name: index for index, name in enumerate(classes)}
    mapping = torch.tensor([order[name] for name in split.classes], dtype=torch.int64)
    return replace(split, classes=classes, labels=mapping[split.labels])
