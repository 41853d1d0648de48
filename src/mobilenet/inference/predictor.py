"""Top-k predictions for images with any model ``mobilenet.load`` returns, fed as its card says."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.data import load_image
from mobilenet.errors import MobileNetError


@dataclass
class Prediction:
    """The ``k`` most probable classes of one image."""

    file: str
    topk: list[dict[str, Any]]  # {"label", "index", "prob"}, most probable first

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "topk": self.topk}


class Predictor:
    """A model (or an exported file's runner) with its card: images in, top-k classes out.

    Images are prepared with the card's evaluation transform (channels, resize, crop,
    normalisation); output ``i`` is named ``card.output_names()[i]`` (for Google's weights, the
    1001 outputs with ``background`` first).
    """

    def __init__(self, model: nn.Module, card: ModelCard, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.card = card
        self.transform = card.eval_transform()
        self.names = card.output_names()

    def predict_tensors(self, images: Sequence[torch.Tensor], topk: int = 5) -> list[list[dict[str, Any]]]:
        """Top-k of each decoded uint8 image (``C x H x W``, already with the card's channels)."""
        return self.top(self.probabilities(torch.stack([self.transform(image) for image in images])), topk)

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax of the model's outputs (``N x outputs``, on the CPU) for a batch already transformed."""
        return self.model(batch.to(self.device)).float().softmax(1).cpu()

    def top(self, probs: torch.Tensor, topk: int = 5) -> list[list[dict[str, Any]]]:
        """The ``topk`` most probable outputs of each row of ``probs``, named."""
        values, indices = probs.topk(min(topk, probs.shape[1]), 1)
        return [
            [{"label": self.names[i], "index": i, "prob": p} for p, i in zip(row_values, row_indices, strict=True)]
            for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def predict_files(self, files: Sequence[Path], topk: int = 5, batch_size: int = 32) -> Iterator[Prediction]:
        """Classify ``files`` in batches; an unreadable file is skipped with a warning naming it."""
        for start in range(0, len(files), batch_size):
            names, images = [], []
            for path in files[start : start + batch_size]:
                try:
                    images.append(load_image(path, self.card.in_chans))
                    names.append(str(path))
                except MobileNetError as err:
                    warnings.warn(f"skipped {path}: {err}", stacklevel=2)
            if images:
                for name, top in zip(names, self.predict_tensors(images, topk), strict=True):
                    yield Prediction(name, top)
