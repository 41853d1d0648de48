"""``--labels FILE``: class names for weights that carry none, checked against the model's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.errors import WeightsError
from mobilenet.models import create_model
from mobilenet.weights import save_native
from mobilenet.weights.labels import read_labels


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A 3-output model with no class names, as converted weights of a foreign classifier would be."""
    torch.manual_seed(0)
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=3)
    card = ModelCard("mobilenet_v1", dict(model.config), classes=None, input_size=32)
    return save_native(model, card, tmp_path / "w.safetensors")


def test_read_labels(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("cat\n dog \nbird\n\n")
    assert read_labels(good) == ["cat", "dog", "bird"]
    gap = tmp_path / "gap.txt"
    gap.write_text("cat\n\ndog\n")
    with pytest.raises(WeightsError, match="line 2 is blank"):
        read_labels(gap)
    with pytest.raises(WeightsError, match="cannot read labels file"):
        read_labels(tmp_path / "missing.txt")


def test_card_with_labels_counts_outputs_and_background() -> None:
    card = ModelCard("mobilenet_v1", {"num_classes": 3})
    assert card.with_labels(["a", "b", "c"]).classes == ("a", "b", "c")
    with pytest.raises(WeightsError, match="names 2 classes; the model has 3 outputs"):
        card.with_labels(["a", "b"])
    google = ModelCard("mobilenet_v1", {"num_classes": 4}, classes=("background", "x", "y", "z"), label_offset=1)
    renamed = google.with_labels(["a", "b", "c"])  # the names after the background output
    assert renamed.classes == ("background", "a", "b", "c") and renamed.eval_classes == ["a", "b", "c"]
    assert google.with_labels(["background", "a", "b", "c"]).label_offset == 1


def test_predict_names_outputs_from_labels(weights: Path, tmp_path: Path, capsys) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    assert main(["predict", str(image), "--weights", str(weights), "--labels", str(labels), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["topk"]
    assert sorted(p["label"] for p in top) == ["blue", "green", "red"]
    assert [p["label"] for p in top] == [["red", "green", "blue"][p["index"]] for p in top]


def test_wrong_label_count_is_one_line_exit_2(weights: Path, tmp_path: Path, capsys) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\n")
    out = tmp_path / "x.safetensors"
    assert main(["convert", str(weights), "--labels", str(labels), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "names 2 classes; the model has 3 outputs" in err and "\n" not in err and not out.exists()
