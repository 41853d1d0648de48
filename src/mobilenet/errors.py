"""Exceptions a user can cause.

Every error a user can trigger (an impossible width, an input of the wrong shape, an unknown
model name, a bad path) is a :class:`MobileNetError`. Its message says what was wrong and
how to fix it; the CLI prints it on one line and exits with status 2.
"""

from __future__ import annotations


class MobileNetError(Exception):
    """Base class of every error that a user's input can cause."""


class ConfigError(MobileNetError, ValueError):
    """An architecture or training argument outside its valid range."""


class InputShapeError(MobileNetError, ValueError):
    """A tensor handed to a model has the wrong number of channels or is too small."""


class UnknownModelError(MobileNetError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
