"""Exceptions a user can cause.

Every error a user can trigger (an impossible width, an input of the wrong shape, an unknown
model name, a bad path) is a :class:`MobileNetError`. Its message says what was wrong and
how to fix it; the CLI prints it on one line and exits with status 2.
"""

from __future__ import annotations


class MobileNetError(Exception):
    """Base class of every error that a user's input can cause."""


def one_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type when it has none (library messages often span many)."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


class ConfigError(MobileNetError, ValueError):
    """An architecture or training argument outside its valid range."""


class InputShapeError(MobileNetError, ValueError):
    """A tensor handed to a model has the wrong number of channels or is too small."""


class UnknownModelError(MobileNetError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(MobileNetError):
    """A data set or image that cannot be used: a missing path, an empty folder, a class mismatch."""


class BadImageError(DataError):
    """One image file that cannot be decoded: corrupt, truncated, or a decompression bomb.

    Data sets skip such files with a warning (or stop, when asked to be strict); ``path``
    names the file.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}; replace or remove the file")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable across DataLoader workers
        return type(self), (self.path, self.reason)


class WeightsError(MobileNetError, ValueError):
    """Weights that cannot be used: an unknown or corrupt file, or weights for another architecture.

    The message says what was expected and what was found (the format, the width, the class count).
    """


class ExportError(MobileNetError):
    """A model, file or option that cannot be exported, or an exported file that cannot be run.

    Not our model, an unknown format, too little or mismatched calibration data, an output path
    that cannot be written, a file that ``mobilenet export`` did not write.
    """
