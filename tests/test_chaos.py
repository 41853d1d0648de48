"""Kill training anywhere, lose nothing: SIGKILLs at random instants and inside checkpoint writes, then resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mobilenet.cli import main
from mobilenet.training import train
from mobilenet.training.checkpoint import load_state
from test_training import _config, _make_folder, _metrics

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_three_kills_resume_bit_identical(shared_data: Path, tmp_path: Path) -> None:
    """``benchmarks/chaos_resume.py --kills 3``: one kill each at a uniform instant, inside a write, early."""
    data = shared_data / "flowers17" / "valid"
    command = [sys.executable, str(REPO / "benchmarks" / "chaos_resume.py"), "--kills", "3", "--epochs", "2"]
    done = subprocess.run([*command, "--data", str(data), "--work", str(tmp_path)], capture_output=True, text=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["kills"] == 3 and summary["corrupt"] == 0, done.stdout
    assert summary["identical"] and summary["differences"] == [], done.stdout
    assert done.returncode == 0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_folder(tmp_path_factory.mktemp("chaos"), per_class=8)


def test_killed_before_its_first_checkpoint_starts_afresh(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill in the first epoch leaves a config, a torn metric line, a half-written file: --resume starts over."""
    straight = tmp_path / "straight"
    train(_config(data, straight, epochs=1, ema_decay=None))
    out = tmp_path / "killed"
    out.mkdir()
    (out / "config.json").write_text(_config(data, out, epochs=1, ema_decay=None).to_json())
    (out / "metrics.jsonl").write_text('{"epoch": 1, "train_lo')
    (out / ".last.state.pt.x1y2.tmp").write_bytes(b"PK\x03\x04")
    assert main(["train", "--resume", str(out)]) == 0
    assert "holds no checkpoint: starting afresh" in capsys.readouterr().out
    assert _metrics(out) == _metrics(straight) and not list(out.glob(".*"))
    assert all(torch.equal(v, load_state(out)["model"][k]) for k, v in load_state(straight)["model"].items())


def test_resume_without_a_run_says_to_start_afresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "start afresh with the original command" in error[0]
