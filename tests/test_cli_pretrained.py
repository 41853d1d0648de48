"""``predict`` and ``eval`` with Google's ImageNet weights: class names, background class mapped away."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mobilenet.cli import main


@pytest.fixture(scope="module")
def tflite_075(shared_data: Path) -> Path:
    path = shared_data.parent / "weights" / "tflite" / "mobilenet_v1_0.75_192_quant.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_predict_names_imagenet_classes(tflite_075: Path, shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(shared_data / "images" / "parrot.jpg"), "--weights", str(tflite_075), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["topk"][0]["label"] == "macaw" and answer["topk"][0]["prob"] > 0.9
    assert answer["topk"][0]["index"] == 89 and len(answer["topk"]) == 5  # output 89 = ImageNet class 88 + background


def test_eval_imagenet_layout_with_1001_class_weights(
    tflite_075: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sample = shared_data / "imagenet-val-sample"
    rows = (sample / "labels.csv").read_text().splitlines()
    header, first = rows[0], rows[1:41]
    (tmp_path / "images").mkdir()
    for row in first:
        name = row.split(",")[0]
        shutil.copy(sample / "images" / name, tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text("\n".join([header, *first]) + "\n")
    assert main(["eval", "--weights", str(tflite_075), "--data", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 40 and len(result["per_class"]) == 1000  # background mapped away
    assert result["top1"] >= 0.6 and result["top5"] >= result["top1"]
    assert result["weights"] == str(tflite_075) and "confusion_png" not in result  # none without --confusion
    assert not list(tmp_path.rglob("*.png")) and sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels.csv"]
