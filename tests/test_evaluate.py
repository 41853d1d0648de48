"""evaluate(): counts, and flip test-time augmentation."""

from __future__ import annotations

import math

import torch
from torch import nn

from mobilenet.evaluate import evaluate


class LeftMinusRight(nn.Module):
    """Class 0 scores how much brighter the left half is than the right; class 1 the reverse."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        d = x[..., :half].mean((1, 2, 3)) - x[..., half:].mean((1, 2, 3))
        return torch.stack([d, -d], 1)


def _left_right_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four images bright on the left (label 0) and four bright on the right (label 1)."""
    images = torch.zeros(8, 3, 8, 8)
    images[:4, ..., :4] = 1
    images[4:, ..., 4:] = 1
    return images, torch.tensor([0] * 4 + [1] * 4)


def test_flip_tta_averages_each_image_with_its_mirror() -> None:
    batch = [_left_right_batch()]
    plain = evaluate(LeftMinusRight(), batch, ["left", "right"])
    tta = evaluate(LeftMinusRight(), batch, ["left", "right"], flip_tta=True)
    assert plain.top1 == 1.0 and plain.n == tta.n == 8
    # The mirror's logits cancel the image's: every score is 0, the loss is exactly log 2.
    assert math.isclose(tta.loss, math.log(2), rel_tol=1e-6)
    assert tta.top1 == 0.5


def test_flip_tta_leaves_a_mirror_invariant_model_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    batch = [(torch.randn(16, 3, 8, 8), torch.randint(0, 3, (16,)))]
    plain, tta = (evaluate(model, batch, ["a", "b", "c"], flip_tta=f) for f in (False, True))
    assert torch.equal(plain.confusion, tta.confusion) and math.isclose(plain.loss, tta.loss, rel_tol=1e-5)
