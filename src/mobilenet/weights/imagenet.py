"""ImageNet's 1000 class names, shipped with the package.

``imagenet_classes.txt`` holds one name per line in the standard ILSVRC2012 synset order (the
order of every ImageNet label file and of ``labels.csv`` indices 0-999). It was derived from
Google's ``imagenet_labels.txt`` (released with the TFLite MobileNets, Apache-2.0) by dropping
its first line, ``background``. Google's models have 1001 outputs with that background class at
index 0, so ImageNet class ``i`` is their output ``i + 1`` (:data:`BACKGROUND_OFFSET`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

BACKGROUND = "background"
BACKGROUND_OFFSET = 1  # ImageNet class i is output i + 1 of a 1001-class model
NUM_CLASSES = 1000


@cache
def _names() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(text.splitlines())


def imagenet_classes(background: bool = False) -> list[str]:
    """ImageNet's 1000 class names in index order; with ``background``, the 1001 of Google's models."""
    return [BACKGROUND, *_names()] if background else list(_names())


def classes_for(num_classes: int) -> list[str] | None:
    """ImageNet's names for a 1000- or 1001-output classifier (None for any other count)."""
    if num_classes == NUM_CLASSES + BACKGROUND_OFFSET:
        return imagenet_classes(background=True)
    return imagenet_classes() if num_classes == NUM_CLASSES else None
