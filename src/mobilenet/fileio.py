"""Writes that matter are atomic and durable: a temporary file in the same folder, flushed to disk, then a rename.

A process killed at any instant leaves either the old file or the new one, never a mix; what
it leaves besides is a hidden temporary file (``.<name>.<random>.tmp``) that
:func:`remove_temporaries` clears. A write that fails (disk full, permission lost, read-only
file system) raises an :class:`OSError` whose ``filename`` is the file meant, never the
temporary one, and leaves the earlier file as it was. Writers hand over bytes: a library that
writes files itself reports a full disk in its own way (``torch.save`` as a ``RuntimeError``),
Python's own file I/O always as an ``OSError``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


def _default_mode() -> int:
    """The permissions a plain ``open(path, "w")`` would give (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it onto ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was; an
    :class:`OSError` names ``path``.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a failure is always an :class:`OSError` naming ``path``)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` in one write, flushed to disk.

    A killed process appends the whole line or nothing; a write that fails part-way (disk
    full) can leave a torn last line, which readers of such logs skip.
    """
    data = (line + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            written = os.write(fd, data)
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that writes interrupted by a killed process left in ``folder``; returns them.

    Only for a folder no other process is writing into.
    """
    stale = [p for p in Path(folder).glob(f".*{TEMPORARY_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def describe_failure(err: OSError) -> str:
    """``<path>: <reason>`` for a failed write (the reason as the OS words it)."""
    return f"{err.filename}: {err.strerror or err}" if err.filename else str(err.strerror or err)
