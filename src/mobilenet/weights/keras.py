"""Keras HDF5 files: every layer's arrays by ``layer/param`` name, read in a bounded child process.

The reading itself is :mod:`mobilenet.weights.hdf5_reader` (h5py; both layouts Keras writes, files
that point outside themselves refused). It runs as a script in a child process under a time limit
(:data:`READ_SECONDS`) and an address-space limit (:data:`READ_MEMORY`): libhdf5 is native code
that Python cannot interrupt, and a damaged file can keep it busy for minutes (a fuzzed
global-heap address did) or make it allocate without bound. What the names mean for an
architecture is its converter's business (:mod:`mobilenet.weights.converters`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mobilenet.errors import WeightsError
from mobilenet.weights.formats import optional_import

READ_SECONDS = 30
"""Wall-clock limit of one file's read (a published file takes 0.3 s, most of it the start of the process)."""
READ_MEMORY = 2 * 2**30
"""Address-space limit of the reading process: a damaged file's read stays under 2 GB (the largest Keras
MobileNet file is 17 MB; a small file reads within 512 MiB of address space)."""
READER = Path(__file__).with_name("hdf5_reader.py")
"""The script that reads (run by path: it imports h5py and numpy only)."""


def read_keras(path: Path) -> dict[str, np.ndarray]:
    """``layer/param`` -> array for every layer of a Keras HDF5 file (``param`` without Keras's ``:0``)."""
    optional_import("h5py")  # the extra's one-line error here, not a child's traceback
    with tempfile.TemporaryDirectory(prefix="mobilenet-h5-") as work:
        out = Path(work) / "weights.npz"
        command = [sys.executable, "-I", str(READER), str(path), str(out), str(READ_MEMORY)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=READ_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise WeightsError(f"{path}: refused: HDF5 did not finish reading it in {READ_SECONDS} s") from None
        if done.returncode != 0:
            reason = done.stdout.strip() or f"the HDF5 reader failed ({_last_line(done.stderr)})"
            raise WeightsError(f"{path}: {reason}")
        with np.load(out, allow_pickle=False) as arrays:
            return {str(name): arrays[f"t{i}"] for i, name in enumerate(arrays["names"])}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
