"""Where images come from: image folders, the named data sets and the ImageNet-sample layout.

A :class:`Split` is one split of a data set before decoding: image files with their labels, or
(Fashion-MNIST's IDX files, torchvision's CIFAR-10 download) images already in memory. The
named data sets are data (:data:`DATASETS`): each knows its kind, channels, native size,
normalisation, splits and where its files may be.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision.datasets
from torchvision.datasets.vision import VisionDataset

from mobilenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.data.cache import cache_dir
from mobilenet.data.images import IMAGE_EXTENSIONS, is_image_file, probe_images, walk_images
from mobilenet.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Kind,
    Stats,
    kind_of,
)
from mobilenet.errors import DataError

PHOTO_RESOLUTION = 224
"""Default input side for photos: the paper's full-resolution MobileNet."""
TRAIN_SPLIT = "train"
VAL_SPLITS = ("valid", "val", "test")
"""Sub-folders of a data root taken as its validation split, in order of preference."""
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian/Ubuntu's ``dataset-fashion-mnist`` package installs the IDX files."""
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IDX_UNSIGNED_BYTE = 0x08


@dataclass
class Split:
    """One split of a data set, not yet decoded: image files, or images already in memory."""

    name: str
    """Where it came from, for messages: a folder, or ``<data set>/<split>``."""
    classes: list[str]
    labels: torch.Tensor
    """int64 class index of each image."""
    paths: list[str] = field(default_factory=list)
    """Absolute paths of the image files, as strings (cheap by the 100,000)."""
    images: torch.Tensor | None = None
    """uint8 ``N x C x H x W`` when the source is decoded already; then ``paths`` is empty."""
    labels_are_indices: bool = False
    """Labels index a fixed class list (ImageNet's 1000) instead of naming folders."""

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Source:
    """A data set's splits and what the transforms need to know about its images."""

    name: str
    train: Split
    val: Split | None
    kind: Kind
    in_chans: int
    """Native channels: 1 for grayscale data, 3 for colour."""
    resolution: int
    """Default input side: the native size of small images, 224 for photos."""
    mean: Stats
    std: Stats


def default_data_root() -> Path | None:
    """``$MOBILENET_DATA``, else ``../shared/data`` from the working directory if it exists."""
    if os.environ.get("MOBILENET_DATA"):
        return Path(os.environ["MOBILENET_DATA"])
    shared = Path.cwd().parent / "shared" / "data"
    return shared if shared.is_dir() else None


# --- image folders ----------------------------------------------------------------------------


def scan_image_folder(root: Path) -> Split:
    """The ImageFolder layout ``root/<class>/<image>`` (images found recursively); classes sorted by name."""
    _check_folder(root)
    # Not torchvision's find_classes: it takes hidden folders (.ipynb_checkpoints) for classes.
    class_dirs = sorted(
        entry for entry in root.absolute().iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_dirs:
        if any(is_image_file(entry.name) for entry in root.iterdir() if entry.is_file()):
            raise DataError(f"{root} holds images but no class folders: move them into {root}/<class>/ sub-folders")
        raise DataError(f"{root} has no class folders: expected the layout {root}/<class>/<image>")
    paths: list[str] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = walk_images(class_dir)
        if not files:
            raise DataError(
                f"class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
                "add images or remove the folder"
            )
        paths += files
        labels += [label] * len(files)
    return Split(str(root), [d.name for d in class_dirs], torch.tensor(labels, dtype=torch.int64), paths)


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise DataError(f"no such folder: {root}; check the path")
    if not root.is_dir():
        raise DataError(f"{root} is a file: pass a folder laid out as <folder>/<class>/<image>")
    if not any(root.iterdir()):
        raise DataError(f"{root} is empty: expected class folders <folder>/<class>/<image>")


def split_layout(root: Path) -> list[str]:
    """The splits of a data root holding ``train/`` and nothing but ``valid/``, ``val/`` or ``test/`` beside it.

    Empty for any other folder (one ImageFolder, whose sub-folders are classes).
    """
    subdirs = {entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")}
    if TRAIN_SPLIT not in subdirs or not subdirs <= {TRAIN_SPLIT, *VAL_SPLITS}:
        return []
    return [name for name in (TRAIN_SPLIT, *VAL_SPLITS) if name in subdirs]


def split_folders(root: Path) -> tuple[Path, Path | None]:
    """(train, validation) folders of a data root.

    In a split layout the first of ``valid/``, ``val/``, ``test/`` validates; a plain ImageFolder
    has no validation folder.
    """
    splits = split_layout(root)
    if not splits:
        return root, None
    val = next((root / name for name in splits if name != TRAIN_SPLIT), None)
    return root / TRAIN_SPLIT, val


def folder_source(root: Path) -> Source:
    """A folder given by path: its splits, and kind, channels and size probed from its images."""
    _check_folder(root)
    train_dir, val_dir = split_folders(root)
    train = scan_image_folder(train_dir)
    kind, in_chans, resolution = describe_images(train)
    val = scan_image_folder(val_dir) if val_dir is not None else None
    return Source(str(root), train, val, kind, in_chans, resolution, IMAGENET_MEAN, IMAGENET_STD)


def describe_images(split: Split) -> tuple[Kind, int, int]:
    """Kind, native channels and default resolution of a split's images, from a sample of headers."""
    probe = probe_images(split.paths)
    kind = kind_of(probe.max_side)
    return kind, 1 if probe.gray else 3, probe.max_side if kind == "small" else PHOTO_RESOLUTION


def labelled_list_layout(root: Path) -> bool:
    """Whether ``root`` is the ImageNet-sample layout: ``images/`` beside ``labels.csv``."""
    return (root / "images").is_dir() and (root / "labels.csv").is_file()


def read_labelled_list(root: Path) -> Split:
    """The ImageNet-sample layout: ``root/images/<file>`` and ``root/labels.csv`` (``file,label``).

    Labels are integer class indices (0-999 for ImageNet). Class names come from
    ``synset_words.txt`` (``<wnid> <description>`` per line) when present, else are the indices.
    """
    csv_path, images = root / "labels.csv", root.absolute() / "images"
    present = set(os.listdir(images))
    paths: list[str] = []
    labels: list[int] = []
    with csv_path.open(newline="") as handle:
        for line, row in enumerate(csv.reader(handle), 1):
            if line == 1 and row[:2] == ["file", "label"]:
                continue
            if len(row) != 2 or not row[1].strip().isdigit():
                raise DataError(f"{csv_path} line {line}: expected 'file,label' with an integer label, got {row}")
            if row[0] not in present:
                raise DataError(f"{csv_path} line {line}: {images / row[0]} does not exist; fix the list or the file")
            paths.append(str(images / row[0]))
            labels.append(int(row[1]))
    if not paths:
        raise DataError(f"{csv_path} lists no images: add 'file,label' rows")
    synsets = root / "synset_words.txt"
    if synsets.is_file():
        classes = [line.split(" ", 1)[-1].strip() for line in synsets.read_text().splitlines() if line.strip()]
    else:
        classes = [str(index) for index in range(max(labels) + 1)]
    return Split(str(root), classes, torch.tensor(labels, dtype=torch.int64), paths, labels_are_indices=True)


# --- Fashion-MNIST (IDX files) ------------------------------------------------------------------


def read_idx(path: Path) -> torch.Tensor:
    """An unsigned-byte IDX file (gzipped or not) as a uint8 tensor of its stored shape.

    IDX: two zero bytes, a type code (0x08: unsigned byte), the number of dimensions, each
    dimension as a big-endian uint32, then the data.
    """
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path} ({err}); reinstall or re-download it") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UNSIGNED_BYTE:
        raise DataError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()}); re-download it")
    ndim = data[3]
    dims = struct.unpack_from(f">{ndim}I", data, 4) if len(data) >= 4 + 4 * ndim else ()
    offset, count = 4 + 4 * ndim, math.prod(dims)
    if len(dims) != ndim or len(data) - offset != count:
        raise DataError(f"{path} is truncated: header says {dims}, {len(data) - offset} bytes follow; re-download it")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


def _idx_files(folder: Path, prefix: str) -> tuple[Path, Path] | None:
    """(images, labels) IDX files of one Fashion-MNIST split in ``folder``, gzipped or not."""
    for suffix in (".gz", ""):
        images = folder / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def _fashion_mnist(split: str, data_root: Path | None, download: bool) -> Split:
    prefix = "train" if split == TRAIN_SPLIT else "t10k"
    downloads = cache_dir() / "datasets"
    folders = [SYSTEM_FASHION_MNIST, downloads / "FashionMNIST" / "raw"]
    if data_root is not None:
        folders.insert(0, data_root / "fashion-mnist")
    found = next(filter(None, (_idx_files(folder, prefix) for folder in folders)), None)
    if found is None and download:
        _torchvision_download("FashionMNIST", downloads, split)
        found = _idx_files(downloads / "FashionMNIST" / "raw", prefix)
    if found is None:
        raise DataError(
            f"Fashion-MNIST not found in {', '.join(map(str, folders))}: "
            "`apt-get install dataset-fashion-mnist`, or pass --download (download=True)"
        )
    images, labels = (read_idx(path) for path in found)
    if images.dim() != 3 or len(images) != len(labels):
        raise DataError(f"{found[0]} and {found[1]} do not match ({tuple(images.shape)} vs {len(labels)} labels)")
    return Split(f"fashion-mnist/{split}", FASHION_MNIST_CLASSES, labels.long(), images=images[:, None])


# --- CIFAR-10 and Flowers-17 (image folders under the data root) -------------------------------


def _named_folder(name: str, split: str, data_root: Path | None) -> Path | None:
    folder = data_root / name / split if data_root is not None else None
    return folder if folder is not None and folder.is_dir() else None


def _cifar10(split: str, data_root: Path | None, download: bool) -> Split:
    folder = _named_folder("cifar10", split, data_root)
    if folder is not None:
        return scan_image_folder(folder)
    downloads = cache_dir() / "datasets"
    if not download and not (downloads / "cifar-10-batches-py").is_dir():
        raise DataError(
            f"CIFAR-10 not found in {data_root or '(no data root)'}/cifar10/{split}: set MOBILENET_DATA "
            "(or data_root) to a folder holding cifar10/{train,test}/<class>/, or pass --download (download=True)"
        )
    data = _torchvision_download("CIFAR10", downloads, split)
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return Split(f"cifar10/{split}", list(data.classes), torch.tensor(data.targets, dtype=torch.int64), images=images)


def _flowers17(split: str, data_root: Path | None, download: bool) -> Split:
    folder = _named_folder("flowers17", split, data_root)
    if folder is None:
        raise DataError(
            f"Flowers-17 {split} split not found in {data_root or '(no data root)'}/flowers17/{split}: set "
            "MOBILENET_DATA (or data_root) to a folder holding flowers17/{train,valid}/<class>/ (no download exists)"
        )
    return scan_image_folder(folder)


def _torchvision_download(dataset: str, root: Path, split: str) -> VisionDataset:
    try:
        return getattr(torchvision.datasets, dataset)(str(root), train=split == TRAIN_SPLIT, download=True)
    except (OSError, RuntimeError) as err:
        raise DataError(
            f"downloading {dataset} into {root} failed ({err}); check the network or copy the files"
        ) from None


# --- the named data sets ------------------------------------------------------------------------

Reader = Callable[[str, Path | None, bool], Split]


@dataclass(frozen=True)
class NamedDataset:
    """A data set known by name: its images, normalisation, splits and how to find them."""

    name: str
    kind: Kind
    in_chans: int
    resolution: int
    mean: Stats
    std: Stats
    splits: tuple[str, ...]
    val_split: str | None
    """The split used for validation while training; None: carve one out of train (val_fraction)."""
    reader: Reader
    """``reader(split, data_root, download)`` returns a :class:`Split`."""

    def split(self, split: str, data_root: Path | None, download: bool = False) -> Split:
        """Read one split, by name."""
        if split not in self.splits:
            raise DataError(f"{self.name} has no split {split!r}: use one of {', '.join(self.splits)}")
        return self.reader(split, data_root, download)

    def source(self, data_root: Path | None, download: bool) -> Source:
        """The training split and validation split (if the data set has one)."""
        train = self.split(TRAIN_SPLIT, data_root, download)
        val = self.split(self.val_split, data_root, download) if self.val_split else None
        return Source(self.name, train, val, self.kind, self.in_chans, self.resolution, self.mean, self.std)


DATASETS: dict[str, NamedDataset] = {
    info.name: info
    for info in (
        NamedDataset(
            name="fashion-mnist",
            kind="small",
            in_chans=1,
            resolution=28,
            mean=FASHION_MNIST_MEAN,
            std=FASHION_MNIST_STD,
            splits=("train", "test"),
            val_split=None,
            reader=_fashion_mnist,
        ),
        NamedDataset(
            name="cifar10",
            kind="small",
            in_chans=3,
            resolution=32,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
            splits=("train", "test"),
            val_split=None,
            reader=_cifar10,
        ),
        NamedDataset(
            name="flowers17",
            kind="photo",
            in_chans=3,
            resolution=PHOTO_RESOLUTION,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            splits=("train", "valid"),
            val_split="valid",
            reader=_flowers17,
        ),
    )
}
"""The named data sets (Flowers-17's ``test`` split is held back on purpose: models are judged on it)."""


def eval_split(data: str, data_root: Path | None, split: str, download: bool = False) -> tuple[Split, Kind]:
    """The images to evaluate on, and their kind: a named data set's split, or a folder.

    A folder may be the ImageNet-sample layout (``images/`` + ``labels.csv``), a data root with
    split sub-folders (``split`` is taken), or one ImageFolder.
    """
    path = Path(data)
    if not path.exists():
        info = named_dataset(data)
        return info.split(split, data_root, download), info.kind
    _check_folder(path)
    if labelled_list_layout(path):
        images = read_labelled_list(path)
    elif splits := split_layout(path):
        if split not in splits:
            raise DataError(f"{path} has no {split}/ split: pass split= one of {', '.join(splits)}")
        images = scan_image_folder(path / split)
    else:
        images = scan_image_folder(path)
    return images, describe_images(images)[0]


def named_dataset(name: str) -> NamedDataset:
    """The data set called ``name`` (case-insensitive); a :class:`DataError` if there is none (nor such a path)."""
    if name.lower() not in DATASETS:
        raise DataError(
            f"{name!r} is neither a folder nor a known data set: pass a path or one of {', '.join(DATASETS)}"
        )
    return DATASETS[name.lower()]


def open_source(data: str, data_root: Path | None, download: bool) -> Source:
    """A folder path (preferred when it exists) or a data set name."""
    if Path(data).exists():
        return folder_source(Path(data))
    return named_dataset(data).source(data_root, download)
