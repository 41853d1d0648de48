"""Decode many image files once into uint8 tensors in memory, and keep the result on disk.

DataLoader worker processes read and decode groups of files in parallel, each image exactly as
a lazily reading data set decodes it (:func:`~mobilenet.data.images.decode_file`). The result is
stored under ``~/.cache/mobilenet/decoded/`` (the environment variable ``MOBILENET_CACHE``
moves ``~/.cache/mobilenet``), keyed by the files' paths, sizes and modification times and the
decoding options, so a second run loads it instead of decoding again. Files that cannot be
decoded are skipped with a warning and listed, or stop the run when ``strict``.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from mobilenet.data.images import decode_file, nothing_decoded, shrink
from mobilenet.errors import BadImageError

try:
    from tqdm.auto import tqdm
except ImportError:  # progress bars are optional
    tqdm = None

CACHE_FORMAT = 1
"""Bump when the decoded pixels would change (decoder, conversion, resize), to orphan old caches."""
GROUP = 256
"""Files decoded per task."""
WORKERS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
"""DataLoader worker processes decoding groups in parallel (none when there is only one group)."""

Images = torch.Tensor | list[torch.Tensor]
Skipped = list[tuple[str, str]]


@dataclass
class Decoded:
    """Images decoded from a list of files."""

    images: Images
    """A stacked ``N x C x H x W`` tensor when every image has the same shape, else a list."""
    kept: torch.Tensor
    """Index into the file list of each decoded image (files that failed are left out)."""
    skipped: Skipped
    """(path, reason) of each file that could not be decoded."""
    from_disk: bool = False


def cache_dir() -> Path:
    """``$MOBILENET_CACHE``, else ``~/.cache/mobilenet``: downloads and decoded images live here."""
    return Path(os.environ.get("MOBILENET_CACHE") or Path.home() / ".cache" / "mobilenet")


def decode_files(paths: Sequence[str | Path], in_chans: int, short_side: int | None, strict: bool) -> Decoded:
    """Decode ``paths`` to uint8 tensors with ``in_chans`` channels, from the disk cache when there.

    ``short_side`` shrinks larger images so that their shorter side has that many pixels (None:
    keep the decoded size). A file that cannot be decoded is skipped with a warning, or raises
    :class:`BadImageError` when ``strict``.
    """
    file = cache_dir() / "decoded" / f"{cache_key(paths, in_chans, short_side)}.pt"
    decoded = _read_cache(file)
    if decoded is None:
        decoded = _decode_all(paths, in_chans, short_side, strict)
        _write_cache(file, decoded)
    for path, reason in decoded.skipped:
        error = BadImageError(path, reason)
        if strict:
            raise error
        warnings.warn(f"skipped: {error}", stacklevel=3)
    if not len(decoded.kept):
        raise nothing_decoded(len(paths), paths[0])
    return decoded


def cache_key(paths: Sequence[str | Path], in_chans: int, short_side: int | None) -> str:
    """A hash of the decoding options and of every file's path, size and modification time.

    Data sets list absolute paths, so the key does not depend on the working directory.
    """
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{in_chans}|{short_side}".encode())
    for path in paths:
        try:
            stat = os.stat(path)
            digest.update(f"|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"|{path}|missing".encode())
    return digest.hexdigest()[:32]


def _read_cache(file: Path) -> Decoded | None:
    if not file.is_file():
        return None
    try:
        saved = torch.load(file, weights_only=True)
        return Decoded(saved["images"], saved["kept"], [tuple(item) for item in saved["skipped"]], from_disk=True)
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        warnings.warn(f"ignoring unreadable decoded-image cache {file} ({err}); decoding again", stacklevel=3)
        return None


def _write_cache(file: Path, decoded: Decoded) -> None:
    """Save atomically (temporary file in the same folder, then rename); a failure only warns."""
    saved = {"images": decoded.images, "kept": decoded.kept, "skipped": decoded.skipped}
    temporary: Path | None = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=file.parent, suffix=".tmp", delete=False) as handle:
            temporary = Path(handle.name)
            torch.save(saved, handle)
        os.replace(temporary, file)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        warnings.warn(
            f"could not write the decoded-image cache to {file.parent} ({err}); set MOBILENET_CACHE", stacklevel=3
        )


def _decode_all(paths: Sequence[str | Path], in_chans: int, short_side: int | None, strict: bool) -> Decoded:
    groups = _DecodeGroups(paths, in_chans, short_side)
    loader = DataLoader(groups, batch_size=None, num_workers=WORKERS if len(groups) > 1 else 0)
    images: list[torch.Tensor] = []
    kept: list[int] = []
    skipped: Skipped = []
    progress = tqdm(total=len(paths), desc="decoding", unit="img", disable=None, leave=False) if tqdm else None
    try:
        for start, (flat, shapes, errors) in zip(range(0, len(paths), GROUP), loader, strict=True):
            pieces = flat.split([math.prod(shape) for shape in shapes])
            decoded = iter([piece.view(shape) for piece, shape in zip(pieces, shapes, strict=True)])
            for index, error in enumerate(errors, start):
                if error is None:
                    images.append(next(decoded))
                    kept.append(index)
                elif strict:
                    raise error
                else:
                    skipped.append((error.path, error.reason))
            if progress is not None:
                progress.update(len(errors))
    finally:
        if progress is not None:
            progress.close()
    return Decoded(_stack_if_uniform(images), torch.tensor(kept, dtype=torch.int64), skipped)


def _stack_if_uniform(images: list[torch.Tensor]) -> Images:
    """One stacked tensor when all shapes agree, else a list; either way copied out of the workers' shared memory."""
    if images and all(image.shape == images[0].shape for image in images):
        return torch.stack(images)
    return [image.clone() for image in images]


class _DecodeGroups(Dataset):
    """Item ``k``: the ``k``-th group of :data:`GROUP` files decoded, for one DataLoader worker.

    The images travel back packed in one flat tensor (one shared-memory transfer, not one per
    image), with their shapes, and a :class:`BadImageError` or None per file.
    """

    def __init__(self, paths: Sequence[str | Path], in_chans: int, short_side: int | None) -> None:
        self.paths = list(paths)
        self.in_chans = in_chans
        self.short_side = short_side

    def __len__(self) -> int:
        return -(-len(self.paths) // GROUP)

    def __getitem__(self, group: int) -> tuple[torch.Tensor, list[tuple[int, ...]], list[BadImageError | None]]:
        images: list[torch.Tensor] = []
        errors: list[BadImageError | None] = []
        for path in self.paths[group * GROUP : (group + 1) * GROUP]:
            try:
                images.append(shrink(decode_file(path, self.in_chans), self.short_side))
                errors.append(None)
            except BadImageError as err:
                errors.append(err)
        flat = torch.cat([image.flatten() for image in images]) if images else torch.empty(0, dtype=torch.uint8)
        return flat, [tuple(image.shape) for image in images], errors
