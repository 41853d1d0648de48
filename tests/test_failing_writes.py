"""Full disks and failing writes: training, export and convert stop with one line and keep what was good.

Failures are injected where the bytes meet the file system (creating the temporary file,
writing it, appending a log line), and once for real: a process whose file-size limit
(``RLIMIT_FSIZE``) makes the kernel refuse a checkpoint part-way through.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mobilenet import fileio
from mobilenet.cli import main
from mobilenet.training import TrainingError, train
from mobilenet.training.checkpoint import load_state
from test_training import _config, _make_folder, _metrics

FAILURES = {
    errno.ENOSPC: "No space left on device",
    errno.EACCES: "Permission denied",
    errno.EROFS: "Read-only file system",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_folder(tmp_path_factory.mktemp("failing-writes"), per_class=8)


@pytest.fixture(scope="module")
def straight(data: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """The run no failure interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(_config(data, out, ema_decay=None))
    return out


def _fail_creating(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """Creating the temporary file of ``name`` fails (permission lost, read-only file system)."""
    real = tempfile.mkstemp

    def mkstemp(*args: object, prefix: str = "", **kwargs: object) -> tuple[int, str]:
        if prefix == f".{name}.":
            raise OSError(code, FAILURES[code])
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)


def _fail_writing(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """Writing the temporary file of ``name`` stops half-way (the disk fills up)."""
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self.name.startswith(f".{name}."):
            real(self, data[: len(data) // 2])
            raise OSError(code, FAILURES[code])
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def _fail_appending(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """Opening ``name`` to append a line fails."""
    real = os.open

    def open_(path: str | Path, flags: int, *args: object) -> int:
        if Path(path).name == name and flags & os.O_APPEND:
            raise OSError(code, FAILURES[code])
        return real(path, flags, *args)

    monkeypatch.setattr(fileio.os, "open", open_)


Inject = Callable[[pytest.MonkeyPatch, str, int], None]


@pytest.mark.parametrize(
    ("inject", "name", "code"),
    [
        (_fail_writing, "last.safetensors", errno.ENOSPC),
        (_fail_creating, "last.state.pt", errno.EACCES),
        (_fail_creating, "last.state.pt", errno.EROFS),
        (_fail_appending, "metrics.jsonl", errno.ENOSPC),
    ],
)
def test_a_failed_write_stops_training_and_resume_continues(
    inject: Inject, name: str, code: int, data: Path, straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    config = _config(data, out, ema_decay=None)
    train(_config(data, out, ema_decay=None, stop_after=1))
    committed = (out / "last.state.pt").read_bytes()
    with monkeypatch.context() as patch:
        inject(patch, name, code)
        with pytest.raises(TrainingError) as failure:
            train(config, resume=True)
    message = str(failure.value)
    assert f"cannot write {out / name}: {FAILURES[code]}" in message and "\n" not in message
    assert f"--resume {out}" in message and "training stopped in epoch 2" in message
    assert (out / "last.state.pt").read_bytes() == committed and load_state(out)["epoch"] == 1
    assert not list(out.glob(".*"))  # no temporary file left
    assert main(["train", "--resume", str(out)]) == 0
    assert _metrics(out) == _metrics(straight)
    final, expected = load_state(out), load_state(straight)
    assert all(torch.equal(final["model"][k], v) for k, v in expected["model"].items())


def test_a_full_disk_for_real(data: Path, straight: Path, tmp_path: Path) -> None:
    """The kernel refuses the checkpoint part-way (file-size limit): one line, exit 2, the last epoch intact."""
    resource = pytest.importorskip("resource")
    out = tmp_path / "run"
    train(_config(data, out, ema_decay=None, stop_after=1))
    committed = (out / "last.state.pt").read_bytes()
    limit = (out / "last.safetensors").stat().st_size // 2  # config, metrics fit; a checkpoint does not

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mobilenet", "train", "--resume", str(out)]
    failed = subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=small_files, check=False)
    assert failed.returncode == 2, failed.stderr
    error = failed.stderr.strip().splitlines()
    assert len(error) == 1 and "File too large" in error[0] and f"cannot write {out}/" in error[0], error
    assert (out / "last.state.pt").read_bytes() == committed and not list(out.glob(".*"))
    assert main(["train", "--resume", str(out)]) == 0
    assert _metrics(out) == _metrics(straight)


@pytest.mark.parametrize("command", ["convert", "export"])
def test_convert_and_export_leave_no_partial_file(
    command: str, straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / ("model.safetensors" if command == "convert" else "model.onnx")
    source = (
        ["convert", str(straight / "last.safetensors")]
        if command == "convert"
        else ["export", "--checkpoint", str(straight)]
    )
    _fail_writing(monkeypatch, target.name, errno.ENOSPC)
    assert main([*source, "--out", str(target)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"cannot write {target}" in error[0] and "No space left on device" in error[0], error
    assert not list(tmp_path.iterdir())  # neither the file nor a temporary one
