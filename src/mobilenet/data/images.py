"""One image file to one uint8 tensor, and finding image files.

Every path in the package that turns file bytes into pixels goes through
:func:`decode_image_bytes`, so an image decoded into the in-memory cache and the same image
decoded lazily by a data set are identical pixel for pixel. JPEGs (nearly every file of a real
data set) are decoded by torchvision's libjpeg-turbo binding; everything else (PNG, BMP, GIF,
TIFF, WebP; 16-bit, palette, alpha) by Pillow, converted to 8-bit grayscale or RGB. Both
enforce Pillow's decompression-bomb limit before decoding.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.io import ImageReadMode
from torchvision.transforms.v2 import functional as F

from mobilenet.errors import BadImageError, ConfigError, DataError, one_line

IMAGE_EXTENSIONS: tuple[str, ...] = (*IMG_EXTENSIONS, ".jpe", ".jfif", ".gif", ".pbm")
"""torchvision's ImageFolder extensions, plus the other JPEG suffixes, GIF and PBM (Pillow reads them all)."""
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes with one colour channel (alpha aside)."""

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 less DHT, JPG, DAC
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field


def is_image_file(name: str) -> bool:
    """Whether the file ``name`` has an image extension, in any case (and is not hidden)."""
    return has_file_allowed_extension(name, IMAGE_EXTENSIONS) and not name.startswith(".")


def walk_images(folder: str | Path) -> list[str]:
    """Image files under ``folder``, recursively (following links, skipping hidden entries), sorted.

    Paths are strings: a data set holds many (50,000 ``Path`` objects cost about a second).
    """
    # Not torchvision's make_dataset: it walks into hidden folders, sorts folder by folder and needs class folders.
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        found.extend(os.path.join(dirpath, name) for name in filenames if is_image_file(name))
    return sorted(found)


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files named by ``inputs`` (files, or folders searched recursively), sorted.

    A file named explicitly is taken whatever its extension. Raises :class:`DataError` for a
    path that does not exist or when nothing is found.
    """
    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.update(map(Path, walk_images(path)))
        elif path.is_file():
            found.add(path)
        else:
            raise DataError(f"no such file or folder: {path}; check the path")
    if not found:
        where = ", ".join(map(str, inputs)) or "(no paths given)"
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {where}; pass images or folders")
    return sorted(found)


def jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """Width, height and component count from a JPEG's frame header; None if ``data`` is no JPEG.

    The size of every JPEG is checked against the decompression-bomb limit before it is decoded.
    """
    # Hand-written: ~4 us a file; Pillow's Image.open takes ~60 us, more than decoding a CIFAR-10 JPEG (~50 us).
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _STANDALONE_MARKERS:
            i += 2
        elif marker in _JPEG_FRAME_MARKERS:
            height, width = struct.unpack_from(">HH", data, i + 5)
            return width, height, data[i + 9]
        else:
            i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    return None


def check_pixels(name: str, width: int, height: int) -> None:
    """Refuse an image over Pillow's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS``."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise BadImageError(
            name,
            f"{width}x{height} = {width * height:,} pixels is over the decompression bomb limit of {limit:,} "
            "(PIL.Image.MAX_IMAGE_PIXELS; raise it if the image is genuine)",
        )


def jpeg_mode(data: bytes, name: str) -> ImageReadMode | None:
    """How torchvision should decode ``data``: GRAY or RGB for a JPEG of sane size, None for other formats."""
    header = jpeg_header(data)
    if header is None:
        return None
    width, height, components = header
    check_pixels(name, width, height)
    return ImageReadMode.GRAY if components == 1 else ImageReadMode.RGB


def decode_jpeg(data: bytes, mode: ImageReadMode) -> torch.Tensor:
    """Decode JPEG bytes with libjpeg-turbo, through the operator torchvision registers.

    torchvision 0.29 deprecates its image decoders for TorchCodec: ``torchvision.io.decode_image``
    and ``decode_jpeg`` emit a ``DeprecationWarning`` at every call. The operator underneath
    them is the same decoder (identical pixels) without the warning.
    """
    # Not Pillow, the public decoder without the warning: ~4x slower on CIFAR-10 JPEGs, ~2.6x on Flowers-17 photos.
    return torch.ops.image.decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode.value, False)


def decode_image_bytes(data: bytes, name: str) -> torch.Tensor:
    """Decode one image file's bytes to a uint8 tensor with 1 (grayscale) or 3 (RGB) channels.

    ``name`` is used in error messages. Raises :class:`BadImageError` for corrupt or truncated
    data and for decompression bombs.
    """
    mode = jpeg_mode(data, name)
    if mode is not None:
        try:
            return decode_jpeg(data, mode)
        except RuntimeError:
            pass  # a JPEG variant libjpeg-turbo refuses, or a damaged file: Pillow decides which
    return _decode_with_pillow(data, name)


def _decode_with_pillow(data: bytes, name: str) -> torch.Tensor:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                check_pixels(name, *image.size)
                return pillow_to_tensor(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(name, f"{err} (PIL.Image.MAX_IMAGE_PIXELS; raise it if the image is genuine)") from None
    except Image.UnidentifiedImageError:
        raise BadImageError(name, "not an image format Pillow knows, or damaged beyond recognition") from None
    except Exception as err:  # Pillow's plugins fail on damaged files in many ways (OSError, struct.error,
        # NotImplementedError for DDS, RuntimeError for AVIF...): each is this one file's fault
        raise BadImageError(name, one_line(err)) from None


def pillow_to_tensor(image: Image.Image) -> torch.Tensor:
    """A Pillow image of any mode as an 8-bit 1xHxW (grayscale) or 3xHxW (colour) tensor.

    16-bit grayscale is scaled to 8 bits (``round(v * 255 / 65535)``); alpha is dropped (not
    composited); palette images become RGB.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        return torch.from_numpy(((wide * 255 + 32767) // 65535).astype(np.uint8))[None]
    if image.mode in GRAY_MODES:
        return torch.from_numpy(np.array(image.convert("L")))[None]
    if image.mode in ("P", "PA") and (image.mode == "PA" or "transparency" in image.info):
        image = image.convert("RGBA")  # Pillow warns when a palette with transparency goes straight to RGB
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


def to_channels(images: torch.Tensor, in_chans: int) -> torch.Tensor:
    """``images`` (``...xCxHxW`` uint8, C 1 or 3) with ``in_chans`` channels.

    Grayscale to RGB repeats the channel; RGB to grayscale takes the luminance (ITU-R 601:
    0.299 R + 0.587 G + 0.114 B, as Pillow's ``L`` mode).
    """
    channels = images.shape[-3]
    if channels == in_chans:
        return images
    if in_chans == 3:
        return images.repeat(*([1] * (images.dim() - 3)), 3, 1, 1)
    return F.rgb_to_grayscale(images)


def shrink(image: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """``image`` with its shorter side resized to ``short_side`` (antialiased), if it is longer; else unchanged."""
    if short_side is None or min(image.shape[-2:]) <= short_side:
        return image
    return F.resize(image, [short_side], antialias=True)


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes; an unreadable file is a :class:`BadImageError` naming it."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise BadImageError(str(path), err.strerror or str(err)) from None


def decode_file(path: str | Path, in_chans: int) -> torch.Tensor:
    """The image at ``path`` as a uint8 ``in_chans x H x W`` tensor (see :func:`decode_image_bytes`)."""
    return to_channels(decode_image_bytes(read_bytes(path), str(path)), in_chans)


def nothing_decoded(count: int, first: str | Path) -> DataError:
    """The error for a data set none of whose ``count`` files could be decoded."""
    return DataError(f"none of the {count} images could be decoded (first: {first}); check the files")


def check_in_chans(in_chans: int) -> None:
    """Only grayscale (1) and RGB (3) inputs exist in this package."""
    if in_chans not in (1, 3):
        raise ConfigError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")


def load_image(path: str | Path, in_chans: int = 3) -> torch.Tensor:
    """Load any image Pillow or libjpeg-turbo can read as a uint8 ``in_chans x H x W`` tensor.

    Grayscale, RGBA (alpha dropped), palette and 16-bit images are converted. Raises
    :class:`DataError` for a missing file, and its subclass :class:`BadImageError` for a corrupt
    or truncated file or one over Pillow's decompression-bomb limit.
    """
    check_in_chans(in_chans)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such image file: {path}; check the path")
    return decode_file(path, in_chans)


@dataclass(frozen=True)
class ImageProbe:
    """Sizes and channels of a sample of a data set's images, read from their headers only."""

    sizes: tuple[tuple[int, int], ...]
    """(width, height) of each sampled image that could be opened."""
    gray: bool
    """Every sampled image has one colour channel."""

    @property
    def max_side(self) -> int:
        """The most common longer side among the samples (0 when none could be read)."""
        sides = [max(size) for size in self.sizes]
        return max(set(sides), key=sides.count) if sides else 0


def probe_images(paths: Sequence[str | Path], samples: int = 32) -> ImageProbe:
    """Read the headers of up to ``samples`` images spread evenly over ``paths``."""
    step = max(len(paths) // samples, 1)
    sizes: list[tuple[int, int]] = []
    gray = True
    for path in paths[::step][:samples]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    sizes.append(image.size)
                    gray = gray and image.mode in GRAY_MODES
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            continue  # a bad file is reported when it is decoded
    return ImageProbe(tuple(sizes), gray and bool(sizes))
