"""``mobilenet serve`` as its own process: SIGTERM under load, a source that fails to load, bad arguments."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenet.cli import main

pytest.importorskip("uvicorn")
requests = pytest.importorskip("requests")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mobilenet", "serve", *args, "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def wait_ready(url: str, process: subprocess.Popen[str], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"not ready: {process.communicate()[0]}")


def photo() -> bytes:
    """A 640 x 480 JPEG of noise."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def in_flight(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("mobilenet_inflight_requests")))


def test_sigterm_finishes_requests_in_flight_and_exits_0(serve_source: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(serve_source, "--port", str(port), "--max-batch", "4", "--backend", "onnxruntime")
    try:
        wait_ready(url, process)
        files = [("f", (f"{i}.jpg", photo())) for i in range(8)]
        with ThreadPoolExecutor(6) as pool:
            replies = [pool.submit(requests.post, f"{url}/v1/classify", files=files, timeout=120) for _ in range(6)]
            deadline = time.monotonic() + 30
            while in_flight(url) < 3 and time.monotonic() < deadline:  # this /metrics request counts itself
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            statuses = [reply.result().status_code for reply in replies]
        assert statuses == [200] * 6
        assert process.wait(120) == 0
    finally:
        process.kill()
        process.communicate()


def test_a_source_that_fails_to_load_exits_2_with_one_error_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    process = start(str(broken), "--port", str(free_port()))
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 2
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert errors == [
        f"mobilenet serve: error: cannot load model 'broken' from {broken}: {errors[0].split(': ', 3)[3]}"
    ]
    assert "not an ONNX model" in errors[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no model to serve"),
        (["--model", "novalue"], "NAME=SOURCE"),
        (["a.tflite", "--model", "a=b.tflite"], "two models are called 'a'"),
        (["a.tflite", "--max-batch", "0"], "--max-batch"),
        (["a.onnx", "--backend", "eager"], "cannot run on eager"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if args and args[0] == "a.onnx":
        (tmp_path / "a.onnx").write_bytes(b"x")
        args = [str(tmp_path / "a.onnx"), *args[1:]]
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
