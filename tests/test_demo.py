"""The main job (``make demo``): a short Fashion-MNIST run, evaluated on the test split; it never deletes a run."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from mobilenet import demo, load
from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.demo import MARKER, claim_folder
from mobilenet.errors import ConfigError
from mobilenet.models import create_model
from mobilenet.training import TrainConfig
from mobilenet.weights import save_native

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _training_run(out: Path) -> Path:
    """A folder as ``mobilenet train --out`` leaves it: config, checkpoint with its card, metrics, TensorBoard log."""
    out.mkdir(parents=True)
    (out / "config.json").write_text(TrainConfig(data="fashion-mnist", out=str(out), epochs=1).to_json())
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=3, in_chans=1, stem_stride=1)
    card = ModelCard("mobilenet_v1", classes=("a", "b", "c"), input_size=28, in_chans=1, mean=(0.5,), std=(0.5,))
    save_native(model, card, out / "last.safetensors")
    (out / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "events.out.tfevents.1").write_bytes(b"\x00\x01 event")
    return out


def test_demo_refuses_a_training_run_and_leaves_it_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _training_run(tmp_path / "run")
    before = _snapshot(run)
    assert main(["demo", "--out", str(run), "--epochs", "1", "--steps-per-epoch", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith(f"mobilenet demo: error: {run} holds files the demo did not write")
    assert _snapshot(run) == before  # byte for byte, and no marker added


def test_claim_folder_replaces_only_the_demos_own_output(tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "demo"
    claim_folder(fresh)  # created, and marked as the demo's
    assert _snapshot(fresh).keys() == {MARKER}
    for name in ("config.json", "best.safetensors", "tensorboard/events.out.tfevents.1"):  # what the demo writes
        (fresh / name).parent.mkdir(exist_ok=True)
        (fresh / name).write_bytes(b"demo output")
    claim_folder(fresh)  # a second demo on its own folder: emptied for the new run
    assert _snapshot(fresh).keys() == {MARKER} and not (fresh / "tensorboard").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_folder(empty)  # nothing to lose
    assert _snapshot(empty).keys() == {MARKER}
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files the demo did not write"):
        claim_folder(kept)
    assert _snapshot(kept) == {"notes.txt": b"mine"}


def _write_idx(path: Path, data: torch.Tensor) -> None:
    """An unsigned-byte IDX file (Fashion-MNIST's format): magic, each dimension as big-endian uint32, the bytes."""
    header = struct.pack(f">HBB{data.dim()}I", 0, 0x08, data.dim(), *data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


def _stand_in_fashion_mnist(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A small Fashion-MNIST in ``root/fashion-mnist`` (240 train, 60 test images); returns the test split."""
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, count in (("train", 240), ("t10k", 60)):
        labels = torch.arange(count, dtype=torch.uint8) % 10
        images = (torch.rand(count, 28, 28, generator=generator) * 60 + 19 * labels[:, None, None]).to(torch.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return images, labels.long()


def test_demo_end_to_end_on_a_small_stand_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train, evaluate on the test split, report; then its own folder is the next demo's (fast, synthetic data)."""
    images, labels = _stand_in_fashion_mnist(tmp_path / "data")
    monkeypatch.setenv("MOBILENET_DATA", str(tmp_path / "data"))
    timed = demo.latency_ms
    monkeypatch.setattr(demo, "latency_ms", lambda model, shape: timed(model, shape, runs=1))  # the median of 30: slow
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1"]) == 0
    report = capsys.readouterr().out
    assert "mobilenet_v1 width_mult=0.75, 10 classes" in report and "of 60 Fashion-MNIST test images" in report
    assert "ms (batch 1, CPU, median)" in report
    model, card = load(out)
    assert card.classes[0] == "T-shirt/top" and (card.in_chans, card.input_size) == (1, 28)
    transform = card.eval_transform()
    with torch.no_grad():
        logits = model(torch.stack([transform(image[None]) for image in images]))
    top1 = (logits.argmax(1) == labels).double().mean().item()  # the test split, by the best checkpoint
    assert report.split("test top-1")[1].split("%")[0].strip() == f"{100 * top1:.2f}"
    assert str(out / "best.safetensors") in report and (out / MARKER).is_file()
    claim_folder(out)  # a second demo may replace what the first wrote
    assert _snapshot(out).keys() == {MARKER}


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_demo_trains_evaluates_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2", "--steps-per-epoch", "40"]) == 0
    report = capsys.readouterr().out
    assert "mobilenet_v1 width_mult=0.75, 10 classes" in report  # the recipe's width, not a fixed label
    assert "input 1x28x28" in report and "(short demo run)" in report
    assert "of 10,000 Fashion-MNIST test images" in report and "ms (batch 1, CPU, median)" in report
    top1 = float(report.split("test top-1")[1].split("%")[0])
    assert 30 < top1 <= 100  # 80 steps (one of them warm-up) already beat chance (10%) by far (measured 61%)
    assert (out / "best.safetensors").is_file() and str(out / "best.safetensors") in report
    assert (out / MARKER).is_file()  # its own folder: the next demo may replace it
