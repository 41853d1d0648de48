"""Recognise a weights file by its content and read tensor files without running code.

The format comes from the first bytes, not the extension: safetensors (an 8-byte header
length, then a JSON header), PyTorch (a zip archive, or a bare pickle for the legacy format),
HDF5 (Keras; its signature at offset 0 or after a user block), TFLite (the flatbuffer file
identifier ``TFL3``). PyTorch files load with ``torch.load(weights_only=True)``: a pickle that
would import anything beyond tensors and plain containers is refused, so no code from a file
ever runs.
"""

from __future__ import annotations

import importlib
import pickle
import re
import struct
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from mobilenet.errors import WeightsError, one_line

FORMATS = ("safetensors", "torch", "hdf5", "tflite")
DESCRIPTION = "safetensors, a PyTorch state dict (.pt/.pth/.bin), Keras HDF5 (.h5) or TFLite (.tflite)"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048)  # the superblock follows an optional user block of 512 * 2^n bytes
ZIP_SIGNATURE = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"
MAX_ZIP_EXPANSION = 4  # unpacked / file size allowed for a zip archive (torch.save's is about 1)
ZIP_SLACK = 2**20  # bytes allowed beyond that (small archives of highly compressible tensors)
STATE_DICT_KEYS = ("state_dict", "model", "model_state", "state_dict_ema")  # where checkpoints nest weights


def optional_import(name: str) -> ModuleType:
    """Import a package that only some formats need, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise WeightsError(f"reading this format needs the {name} package: pip install 'mobilenet[weights]'") from err


def detect_format(path: Path) -> str:
    """One of :data:`FORMATS`, from the file's first bytes; a one-line error for anything else."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
            hdf5 = any(_read_at(f, offset, len(HDF5_SIGNATURE)) == HDF5_SIGNATURE for offset in HDF5_OFFSETS)
        size = path.stat().st_size
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from err
    if size == 0:
        raise WeightsError(f"{path} is empty (0 bytes): expected {DESCRIPTION}")
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    if hdf5:
        return "hdf5"
    if head.startswith(ZIP_SIGNATURE) or (
        len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL
    ):
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return "safetensors"
    raise WeightsError(f"{path}: unknown format (first bytes {head[:8].hex()}, {size} bytes): expected {DESCRIPTION}")


def _read_at(f: Any, offset: int, count: int) -> bytes:
    f.seek(offset)
    return f.read(count)


def read_tensor_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors or PyTorch file, and the safetensors metadata (empty for PyTorch)."""
    kind = detect_format(path)
    if kind == "safetensors":
        return read_safetensors(path)
    if kind == "torch":
        return read_torch(path), {}
    raise WeightsError(f"{path}: expected a safetensors or PyTorch file, found {kind}")


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()
            return {name: f.get_tensor(name) for name in names}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: truncated or corrupt safetensors file ({one_line(err)})") from err


def read_torch(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a ``torch.save`` file, loaded with ``weights_only=True`` (no code runs).

    A zip archive is first checked for a zip bomb (:func:`check_zip_size`).
    """
    with path.open("rb") as f:
        if f.read(len(ZIP_SIGNATURE)) == ZIP_SIGNATURE:
            check_zip_size(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"{path}: refused to load: the pickle holds more than tensors ({_refusal(err)}); only plain state dicts "
            "load (torch.load weights_only=True), so that no code in a file ever runs"
        ) from err
    except (
        Exception
    ) as err:  # torch's reader on a damaged file fails in many ways (RuntimeError, UnicodeDecodeError...)
        raise WeightsError(f"{path}: truncated or corrupt PyTorch file ({one_line(err)})") from err
    return _state_dict(obj, path)


def check_zip_size(path: Path) -> None:
    """Refuse a zip archive whose entries unpack to more than :data:`MAX_ZIP_EXPANSION` times its size.

    ``torch.save`` stores its entries uncompressed, so a state dict's contents are about its file's
    size; a few kilobytes that declare gigabytes are a zip bomb, which ``torch.load`` would inflate
    into memory.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except Exception as err:  # zipfile on a damaged archive: BadZipFile, NotImplementedError, struct.error...
        raise WeightsError(f"{path}: truncated or corrupt zip archive ({one_line(err)})") from err
    size = path.stat().st_size
    if declared > MAX_ZIP_EXPANSION * size + ZIP_SLACK:
        raise WeightsError(
            f"{path}: refused: its zip entries unpack to {declared:,} bytes from a {size:,}-byte file (a zip bomb?); "
            "torch.save writes its entries uncompressed"
        )


def _refusal(err: pickle.UnpicklingError) -> str:
    """Why torch's weights-only unpickler refused a file, in a few words (its message spans many lines)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if found:
        return f"it references {found.group(1)}"
    lines = [line.strip() for line in str(err).splitlines()[1:]]
    reasons = [line for line in lines if line and not line.startswith(("Check the documentation", "Please file"))]
    return reasons[0] if reasons else one_line(err)


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, also when a checkpoint nests it (``state_dict``, ``model``, ...)."""
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return {k.removeprefix("module."): v for k, v in tensors.items()}  # DistributedDataParallel's prefix
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                return _state_dict(obj[key], path)
    found = f"a dict with keys {', '.join(map(str, list(obj)[:5]))}" if isinstance(obj, dict) else type(obj).__name__
    raise WeightsError(f"{path}: expected a state dict of tensors, found {found}")
