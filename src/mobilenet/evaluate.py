"""Accuracy of a model on a data set: top-1, top-5, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MAX_LABELLED_CLASSES = 60  # beyond this the confusion matrix is drawn without class names
MAX_FIGURE_INCHES = 16.0


@dataclass
class EvalResult:
    """Counts over every evaluated image (summed over processes when distributed)."""

    classes: list[str]
    confusion: torch.Tensor  # [true, predicted] counts, int64
    top5_correct: int
    loss_sum: float

    @property
    def n(self) -> int:
        """Images evaluated."""
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        """Fraction of images whose highest-scoring class is right."""
        return float(self.confusion.diagonal().sum()) / max(self.n, 1)

    @property
    def top5(self) -> float:
        """Fraction of images whose right class is among the five highest."""
        return self.top5_correct / max(self.n, 1)

    @property
    def loss(self) -> float:
        """Mean cross-entropy."""
        return self.loss_sum / max(self.n, 1)

    def per_class(self) -> dict[str, float | None]:
        """Accuracy of each class (None for a class with no image).

        A name that occurs twice (ImageNet has two "crane" and two "maillot") gets its index appended.
        """
        totals = self.confusion.sum(1)
        seen = Counter(self.classes)
        return {
            (name if seen[name] == 1 else f"{name} (#{i})"): (
                float(self.confusion[i, i]) / int(totals[i]) if totals[i] else None
            )
            for i, name in enumerate(self.classes)
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary: top1/top5 as fractions, n, loss, per-class accuracy."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "n": self.n,
            "loss": self.loss,
            "per_class": self.per_class(),
        }


def autocast(device: torch.device, amp: str) -> Any:
    """The autocast context for ``amp`` (``none``, ``bf16`` or ``fp16``) on ``device``."""
    if amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    classes: Sequence[str],
    device: torch.device | str = "cpu",
    amp: str = "none",
    channels_last: bool = False,
    logit_map: torch.Tensor | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    flip_tta: bool = False,
) -> EvalResult:
    """Run ``model`` (in eval mode) over ``batches`` of (images, labels) and count.

    ``logit_map`` selects and orders the model's outputs that correspond to ``classes`` (e.g.
    dropping a background class); by default output ``i`` is class ``i``. ``reduce`` sums the
    counts over processes when each evaluates a shard. ``flip_tta`` scores each image by the mean
    of its logits and its mirror image's (left-right), test-time augmentation matching the
    training flip; it costs a second forward pass.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for images, labels in batches:
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(images).float()
            if flip_tta:
                logits = (logits + model(images.flip(-1)).float()) / 2
        if logit_map is not None:
            logits = logits[:, logit_map.to(device)]
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        predicted = logits.argmax(1)
        confusion += torch.bincount(labels * k + predicted, minlength=k * k).view(k, k)
        top5 += (logits.topk(min(5, k), 1).indices == labels[:, None]).any(1).sum()
    model.train(was_training)
    totals = torch.cat([confusion.flatten().double(), top5[None].double(), loss_sum[None]])
    if reduce is not None:
        totals = reduce(totals)
    confusion = totals[: k * k].round().long().view(k, k).cpu()
    return EvalResult(list(classes), confusion, int(totals[k * k]), float(totals[k * k + 1]))


def save_confusion_png(result: EvalResult, path: Path, title: str = "") -> Path:
    """A confusion-matrix heat map (rows: true class, columns: predicted), row-normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = result.confusion.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    many = len(result.classes) > MAX_LABELLED_CLASSES  # ImageNet: a heat map without names
    size = min(max(4.0, 0.45 * len(result.classes) + 2), MAX_FIGURE_INCHES)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if not many:
        ticks = range(len(result.classes))
        ax.set_xticks(ticks, result.classes, rotation=90, fontsize=7)
        ax.set_yticks(ticks, result.classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"top-1 {100 * result.top1:.2f}% on {result.n} images")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
