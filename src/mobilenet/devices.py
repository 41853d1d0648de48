"""Which device a job runs on: CUDA when present, else the CPU, overridable."""

from __future__ import annotations

import torch

from mobilenet.errors import ConfigError


def choose_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """CUDA when present (``auto``), else CPU; ``cpu``, ``cuda`` or ``cuda:N`` force a device."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA GPU is available: use --device cpu")
        return torch.device(preference if ":" in preference else f"cuda:{local_rank}")
    if preference != "cpu":
        raise ConfigError(f"unknown device {preference!r}: use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")
