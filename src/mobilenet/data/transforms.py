"""Training and evaluation transforms, normalisation statistics and batch mixing.

Every transform is a ``torchvision.transforms.v2`` pipeline on a uint8 ``CxHxW`` tensor that
ends with :class:`ToNormalizedFloat`: ``(x / 255 - mean) / std`` in float32. Two kinds of data:

- ``small`` images (at most 64 px, CIFAR-10, Fashion-MNIST): train with pad-and-random-crop and
  a horizontal flip, the CIFAR recipe of the ResNet paper (4 px of padding at 32 px); evaluate
  at the native size.
- ``photo``: train with ``RandomResizedCrop`` and a flip, the Inception recipe MobileNet was
  trained with (paper Section 4); evaluate by resizing the shorter side to R / crop fraction
  and cropping the central R x R (by default the standard 87.5% crop: 256 then 224).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torchvision.transforms import v2

from mobilenet.constants import CROP_FRACTION
from mobilenet.errors import ConfigError

Kind = Literal["small", "photo"]
Stats = tuple[float, ...]
BatchMix = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

SMALL_MAX_SIDE = 64
"""Images whose longer side is at most this many pixels are ``small``; larger ones are photos."""
SMALL_PADDING_FRACTION = 1 / 8
"""Pad-and-crop padding as a fraction of the resolution: 4 px at 32 px."""
AUTO_AUGMENTS: dict[str, Callable[[], v2.Transform]] = {
    "trivial": v2.TrivialAugmentWide,
    "rand": v2.RandAugment,
    "imagenet": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),  # AutoAugment's ImageNet policy
}

FASHION_MNIST_MEAN: Stats = (0.2860,)
FASHION_MNIST_STD: Stats = (0.3530,)
CIFAR10_MEAN: Stats = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: Stats = (0.2470, 0.2435, 0.2616)
LUMA_WEIGHTS: Stats = (0.299, 0.587, 0.114)
"""ITU-R 601 luminance, the weights of Pillow's ``L`` mode and torchvision's ``rgb_to_grayscale``."""


def kind_of(max_side: int) -> Kind:
    """``small`` for images whose longer side is at most :data:`SMALL_MAX_SIDE`, else ``photo``."""
    return "small" if 0 < max_side <= SMALL_MAX_SIDE else "photo"


def adapt_stats(mean: Sequence[float], std: Sequence[float], in_chans: int) -> tuple[Stats, Stats]:
    """Per-channel statistics for ``in_chans`` channels from statistics of the data's own channels.

    Grayscale statistics are repeated for a repeated channel. RGB statistics become luminance
    ones: the mean exactly (a weighted sum); the std as the same weighted sum, which is exact
    when the channels are perfectly correlated and an upper bound otherwise.
    """
    mean, std = tuple(mean), tuple(std)
    if len(mean) == in_chans:
        return mean, std
    if in_chans == 3:
        return mean * 3, std * 3
    return (_luma(mean),), (_luma(std),)


def _luma(values: Stats) -> float:
    return round(sum(weight * value for weight, value in zip(LUMA_WEIGHTS, values, strict=True)), 4)


def eval_resize_size(kind: Kind, resolution: int, *, crop_fraction: float = CROP_FRACTION) -> int:
    """The shorter side an image is resized to before the central ``resolution`` crop.

    ``round(resolution / crop_fraction)`` for photos (256 for 224 at the default 0.875); small
    images are evaluated at ``resolution`` uncropped, whatever ``crop_fraction``.
    """
    if not 0.0 < crop_fraction <= 1.0:
        raise ConfigError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    return resolution if kind == "small" else round(resolution / crop_fraction)


def small_padding(resolution: int) -> int:
    """Pad-and-crop padding for small images: 4 px at 32 px, proportionally otherwise."""
    return max(1, round(resolution * SMALL_PADDING_FRACTION))


class ToNormalizedFloat(torch.nn.Module):
    """uint8 pixels to float32 ``(x / 255 - mean) / std`` per channel, as one multiply-add.

    The same values as ``ToDtype(float32, scale=True)`` then ``Normalize(mean, std)`` (to float32
    rounding) in a third of the time: for a server that decodes every request, the normalisation
    was the largest part of preparing a 224 px image. A float input is taken as already in [0, 1].
    """

    def __init__(self, mean: Stats, std: Stats) -> None:
        super().__init__()
        mean_, std_ = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        self.scale = (1 / (255 * std_)).float().view(-1, 1, 1)
        self.shift = (-mean_ / std_).float().view(-1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale * 255 if x.is_floating_point() else self.scale
        return torch.addcmul(self.shift, x.to(torch.float32), scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale.flatten().tolist()}, shift={self.shift.flatten().tolist()}"


def _to_normalized_float(mean: Stats, std: Stats) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    return [ToNormalizedFloat(mean, std)]


def eval_transform(
    kind: Kind, resolution: int, mean: Stats, std: Stats, *, crop_fraction: float = CROP_FRACTION
) -> v2.Compose:
    """Deterministic evaluation transform: resize the shorter side, crop the centre, normalise.

    Small images at their native size pass through unresized; photos are resized to
    ``round(resolution / crop_fraction)`` and center-cropped to ``resolution``. ``crop_fraction``
    defaults to the standard 0.875 (:data:`mobilenet.constants.CROP_FRACTION`); pass a model
    card's own to evaluate the way its weights were measured.
    """
    resize = eval_resize_size(kind, resolution, crop_fraction=crop_fraction)
    geometry = [v2.Resize(resize, antialias=True), v2.CenterCrop(resolution)]
    return v2.Compose(geometry + _to_normalized_float(mean, std))


def train_transform(
    kind: Kind,
    resolution: int,
    mean: Stats,
    std: Stats,
    auto_augment: str | None = None,
    random_erasing: float = 0.0,
) -> v2.Compose | SmallAugment:
    """Random training transform for ``kind`` data at ``resolution``.

    Small images without ``auto_augment`` get :class:`SmallAugment`, which also augments whole
    batches (the data sets use it for a batch at a time).

    Args:
        kind: ``small`` (pad-and-crop + flip) or ``photo`` (RandomResizedCrop + flip).
        resolution: output side R.
        mean, std: normalisation statistics, one per channel.
        auto_augment: ``None``, ``"trivial"`` (TrivialAugmentWide), ``"rand"`` (RandAugment) or
            ``"imagenet"`` (AutoAugment's ImageNet policy),
            applied to the uint8 crop.
        random_erasing: probability of erasing a random rectangle of the normalised image.
    """
    if auto_augment is not None and auto_augment not in AUTO_AUGMENTS:
        raise ConfigError(f"unknown auto_augment {auto_augment!r}: use one of {', '.join(AUTO_AUGMENTS)} or None")
    if not 0.0 <= random_erasing <= 1.0:
        raise ConfigError(f"random_erasing is a probability in [0, 1], got {random_erasing}")
    if kind == "small" and auto_augment is None:
        return SmallAugment(resolution, mean, std, random_erasing)
    if kind == "small":
        steps = [
            v2.Resize(resolution, antialias=True),
            v2.RandomCrop(resolution, padding=small_padding(resolution), pad_if_needed=True),
        ]
    else:
        steps = [v2.RandomResizedCrop(resolution, antialias=True)]
    steps.append(v2.RandomHorizontalFlip())
    if auto_augment is not None:
        steps.append(AUTO_AUGMENTS[auto_augment]())
    steps += _to_normalized_float(mean, std)
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose(steps)


ERASE_SCALE = (0.02, 0.33)
"""Random erasing: the erased area as a fraction of the image (``v2.RandomErasing``'s default)."""
ERASE_RATIO = (0.3, 3.3)
"""Random erasing: the rectangle's aspect ratio range, drawn log-uniformly (``v2.RandomErasing``'s default)."""
ERASE_ATTEMPTS = 10
"""Random erasing: rectangles drawn per image until one fits (``v2.RandomErasing`` tries 10)."""


class SmallAugment:
    """The ``small`` training transform (pad-and-crop, flip, normalise, random erasing) for a whole batch.

    The same distribution as the per-image ``v2`` pipeline, drawn with tensor operations on a
    uint8 ``NxCxHxW`` batch at once: per-image ``v2`` calls cost more than the training step of a
    28-32 px MobileNet on a CPU. Called with one ``CxHxW`` image it is a batch of one.
    """

    def __init__(self, resolution: int, mean: Stats, std: Stats, random_erasing: float = 0.0) -> None:
        self.resolution = resolution
        self.padding = small_padding(resolution)
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.random_erasing = random_erasing

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.batch(image.unsqueeze(0))[0]

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Augmented float32 ``NxCxRxR`` images from uint8 ``NxCxHxW`` ones (shorter side resized to R first)."""
        if min(images.shape[-2:]) != self.resolution:  # the shorter side becomes R, as v2.Resize(R) does
            images = v2.functional.resize(images, [self.resolution], antialias=True)
        images = self._flip(self._pad_crop(images))
        images = (images.float() / 255 - self.mean) / self.std
        return self._erase(images) if self.random_erasing > 0 else images

    def _pad_crop(self, images: torch.Tensor) -> torch.Tensor:
        """Zero-pad by ``padding`` on each side, then cut an R x R window at a random offset per image."""
        n, channels, height, width = images.shape
        size = self.resolution
        padded = torch.nn.functional.pad(images, (self.padding,) * 4)
        top = torch.randint(0, height + 2 * self.padding - size + 1, (n,))
        left = torch.randint(0, width + 2 * self.padding - size + 1, (n,))
        span = torch.arange(size)
        rows = (top[:, None] + span).view(n, 1, size, 1)
        cols = (left[:, None] + span).view(n, 1, 1, size)
        return padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(channels).view(1, -1, 1, 1), rows, cols]

    def _flip(self, images: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(images.shape[0]) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)

    def _erase(self, images: torch.Tensor) -> torch.Tensor:
        n, _, size, _ = images.shape
        area = size * size * torch.empty(n, ERASE_ATTEMPTS).uniform_(*ERASE_SCALE)
        log_ratio = torch.empty(n, ERASE_ATTEMPTS).uniform_(math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]))
        heights = (area * log_ratio.exp()).sqrt().round().long()
        widths = (area / log_ratio.exp()).sqrt().round().long()
        fits = (heights < size) & (widths < size)
        first = fits.long().argmax(1, keepdim=True)  # the first rectangle that fits, as v2 takes it
        h, w = heights.gather(1, first).squeeze(1), widths.gather(1, first).squeeze(1)
        erase = fits.any(1) & (torch.rand(n) < self.random_erasing)
        top = (torch.rand(n) * (size - h + 1)).long()
        left = (torch.rand(n) * (size - w + 1)).long()
        span = torch.arange(size)
        inside_rows = (span >= top[:, None]) & (span < (top + h)[:, None])
        inside_cols = (span >= left[:, None]) & (span < (left + w)[:, None])
        mask = erase.view(n, 1, 1) & inside_rows[:, :, None] & inside_cols[:, None, :]
        return images.masked_fill(mask.unsqueeze(1), 0.0)


def build_batch_mix(mixup_alpha: float, cutmix_alpha: float, num_classes: int) -> BatchMix | None:
    """MixUp and/or CutMix applied to a whole batch: ``(images, labels) -> (images, soft_labels)``.

    With both alphas positive each batch gets one of the two, chosen at random. Returns None
    when both are 0 (no mixing).
    """
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ConfigError(f"mixup/cutmix alphas must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
    mixes = [
        mix(alpha=alpha, num_classes=num_classes)
        for mix, alpha in ((v2.MixUp, mixup_alpha), (v2.CutMix, cutmix_alpha))
        if alpha > 0
    ]
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
