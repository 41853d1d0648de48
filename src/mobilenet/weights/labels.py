"""Class names from a labels file: one name a line, in output order (``--labels FILE``).

The format of Google's ``labels.txt`` / ``imagenet_labels.txt`` and of TFLite metadata's label
files. Blank lines at the end are ignored; a blank line inside the list is an error (it would
shift every name after it).
"""

from __future__ import annotations

from pathlib import Path

from mobilenet.errors import WeightsError


def read_labels(path: str | Path) -> list[str]:
    """The class names in ``path``; a one-line :class:`WeightsError` for a missing, binary or gappy file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
        raise WeightsError(f"cannot read labels file {path}: {reason}") from err
    names = [line.strip() for line in text.rstrip().splitlines()]
    if not names or not names[0]:
        raise WeightsError(f"labels file {path} names no class: expected one name a line")
    if "" in names:
        raise WeightsError(f"labels file {path}: line {names.index('') + 1} is blank (one name a line, no gaps)")
    return names
