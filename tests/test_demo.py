"""The main job (``make demo``): a short Fashion-MNIST run, evaluated on the test split."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobilenet.cli import main

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_demo_trains_evaluates_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2", "--steps-per-epoch", "40"]) == 0
    report = capsys.readouterr().out
    assert "MobileNetV1 0.75, Fashion-MNIST" in report  # the recipe's width, not a fixed label
    assert "of 10,000 Fashion-MNIST test images" in report and "ms (batch 1, CPU, median)" in report
    top1 = float(report.split("test top-1")[1].split("%")[0])
    assert 30 < top1 <= 100  # 80 steps (one of them warm-up) already beat chance (10%) by far (measured 61%)
    assert (out / "best.safetensors").is_file() and str(out / "best.safetensors") in report
