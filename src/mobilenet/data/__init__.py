"""Data: image folders and the named data sets (Fashion-MNIST, CIFAR-10, Flowers-17), transforms, caching.

``load_data`` is what training calls; ``load_eval_folder`` what evaluation calls; ``load_image``
and ``find_images`` serve single-image prediction and export calibration.
"""

from mobilenet.data.datasets import (
    DataBundle,
    ImageFiles,
    InMemoryImages,
    LabeledImages,
    align_labels,
    load_data,
    load_eval_folder,
    stratified_split,
)
from mobilenet.data.images import IMAGE_EXTENSIONS, find_images, load_image
from mobilenet.data.sources import DATASETS, NamedDataset, read_idx
from mobilenet.data.transforms import build_batch_mix, eval_transform, train_transform

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "DataBundle",
    "ImageFiles",
    "InMemoryImages",
    "LabeledImages",
    "NamedDataset",
    "align_labels",
    "build_batch_mix",
    "eval_transform",
    "find_images",
    "load_data",
    "load_eval_folder",
    "load_image",
    "read_idx",
    "stratified_split",
    "train_transform",
]
