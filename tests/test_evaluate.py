"""evaluate(): counts, and flip test-time augmentation; ``mobilenet eval``: where its confusion matrix goes."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.evaluate import evaluate
from mobilenet.models import create_model
from mobilenet.weights import save_native

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


# --- mobilenet eval: the confusion PNG is written where asked, or into a run folder, never beside weights ---


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run folder holding a 2-class 32-px model's ``best.safetensors``, and a folder of 2 images per class."""
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    model = create_model("mobilenet_v1", num_classes=2, width_mult=0.25)
    card = ModelCard("mobilenet_v1", classes=("dark", "light"), input_size=32, kind="small", source="test")
    save_native(model, card, root / "run" / "best.safetensors")
    for label, level in (("dark", 40), ("light", 210)):
        (root / "data" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (level + 10 * i, level, level)).save(root / "data" / label / f"{i}.png")
    return root / "run", root / "data"


@pytest.fixture
def read_only_weights(small_run: tuple[Path, Path], tmp_path: Path) -> Iterator[Path]:
    """The run's weights as a lone file in a folder with mode 0o555 (restored afterwards)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    weights = shutil.copy(small_run[0] / "best.safetensors", folder / "weights.safetensors")
    folder.chmod(0o555)
    yield Path(weights)
    folder.chmod(0o755)


def eval_json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    assert main(["eval", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_eval_writes_nothing_beside_weights(small_run, read_only_weights: Path, capsys) -> None:
    """``--weights`` in a read-only folder: no confusion PNG there (the tests run as root: the listing is compared)."""
    run, data = small_run
    result = eval_json(capsys, "--weights", str(read_only_weights), "--data", str(data))
    assert [p.name for p in read_only_weights.parent.iterdir()] == ["weights.safetensors"]
    assert "confusion_png" not in result and result["weights"] == str(read_only_weights)
    assert result["n"] == 4 and set(result["per_class"]) == {"dark", "light"}
    from_run = eval_json(capsys, "--checkpoint", str(run), "--data", str(data))  # the same weights, as a run
    assert all(from_run[key] == result[key] for key in ("top1", "top5", "loss", "per_class"))


def test_cli_eval_confusion_goes_where_asked(small_run, read_only_weights: Path, tmp_path: Path, capsys) -> None:
    png = tmp_path / "figures" / "confusion.png"
    argv = ["--weights", str(read_only_weights), "--data", str(small_run[1]), "--confusion", str(png)]
    result = eval_json(capsys, *argv)
    assert result["confusion_png"] == str(png) and png.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in read_only_weights.parent.iterdir()] == ["weights.safetensors"]


def test_cli_eval_checkpoint_writes_its_confusion_into_the_run(small_run: tuple[Path, Path], capsys) -> None:
    run, data = small_run
    png = run / f"confusion_{data.name}.png"
    png.unlink(missing_ok=True)
    result = eval_json(capsys, "--checkpoint", str(run), "--data", str(data))
    assert result["confusion_png"] == str(png) and png.read_bytes()[:8] == PNG_MAGIC
    assert result["n"] == 4 and result["checkpoint"] == str(run)
    assert main(["eval", "--checkpoint", str(run), "--data", str(data)]) == 0  # the table, then where the PNG is
    assert capsys.readouterr().out.rstrip().endswith(f"confusion matrix: {png}")
