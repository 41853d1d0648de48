"""Top-k predictions for image files with a trained model."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.data import load_image
from mobilenet.errors import MobileNetError


@dataclass
class Prediction:
    """The ``k`` most probable classes of one image."""

    file: str
    topk: list[dict[str, Any]]  # {"label", "index", "prob"}, most probable first

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "topk": self.topk}


@torch.no_grad()
def predict_files(
    model: nn.Module,
    files: Sequence[Path],
    transform: Any,
    classes: Sequence[str],
    in_chans: int = 3,
    topk: int = 5,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> Iterator[Prediction]:
    """Classify ``files`` in batches; an unreadable file is skipped with a warning naming it."""
    model.eval().to(device)
    k = min(topk, len(classes))
    for start in range(0, len(files), batch_size):
        names, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(transform(load_image(path, in_chans)))
                names.append(str(path))
            except MobileNetError as err:
                warnings.warn(f"skipped {path}: {err}", stacklevel=2)
        if not images:
            continue
        probs = model(torch.stack(images).to(device)).float().softmax(1).cpu()
        values, indices = probs.topk(k, 1)
        for name, row_values, row_indices in zip(names, values.tolist(), indices.tolist(), strict=True):
            top = [{"label": classes[i], "index": i, "prob": p} for p, i in zip(row_values, row_indices, strict=True)]
            yield Prediction(name, top)
