"""Class names from a labels file: one name a line, in output order (``--labels FILE``).

The format of Google's ``labels.txt`` / ``imagenet_labels.txt`` and of TFLite metadata's label
files. Blank lines at the end are ignored; a blank line inside the list is an error (it would
shift every name after it).

A TFLite file with metadata carries its label file inside: TFLite's metadata writer appends
the model's associated files to the flatbuffer as a zip archive (:func:`embedded_labels`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from mobilenet.errors import WeightsError

MAX_LABELS_BYTES = 16 * 2**20  # a label file of a million classes is a few MB; more is not one


def read_labels(path: str | Path) -> list[str]:
    """The class names in ``path``; a one-line :class:`WeightsError` for a missing, binary or gappy file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
        raise WeightsError(f"cannot read labels file {path}: {reason}") from err
    return parse_labels(text, str(path))


def parse_labels(text: str, source: str) -> list[str]:
    """The class names in a labels file's ``text`` (``source`` names it in errors)."""
    names = [line.strip() for line in text.rstrip().splitlines()]
    if not names or not names[0]:
        raise WeightsError(f"labels file {source} names no class: expected one name a line")
    if "" in names:
        raise WeightsError(f"labels file {source}: line {names.index('') + 1} is blank (one name a line, no gaps)")
    return names


def embedded_labels(path: str | Path, classes: int) -> list[str] | None:
    """The class names of a TFLite file's metadata: the first ``.txt`` file in the zip archive appended to
    it that names ``classes`` classes (None if it has no such file)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".txt") or info.file_size > MAX_LABELS_BYTES:
                    continue
                names = parse_labels(archive.read(info).decode("utf-8"), f"{info.filename} in {path}")
                if len(names) == classes:
                    return names
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, WeightsError, ValueError, EOFError):
        return None  # a damaged archive is no labels: the file's weights were read on their own
    return None
