"""`mobilenet bench`: rows, statistics, floors, peers, JSON, plot and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobilenet.analysis import profile
from mobilenet.bench import load_subject, run_bench
from mobilenet.cli import main


@pytest.fixture
def onnx_export() -> None:
    """Skips the test when the ONNX backends' exporter or runtime is not installed."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")


@pytest.mark.slow
@pytest.mark.usefixtures("onnx_export")
def test_rows_have_consistent_statistics() -> None:
    backends = ["eager", "channels_last", "onnxruntime", "onnxruntime-int8"]
    rows, skips, facts = run_bench(["mobilenet_v1_025_128"], backends, [1, 3], resolution=64, threads=1, runs=20)
    assert not skips and facts["threads"] == 1 and facts["fp32_peak_gflops"] > 0 and facts["int8_peak_gops"] > 0
    assert [(r.backend, r.batch) for r in rows] == [(b, n) for b in backends for n in (1, 3)]
    macs = profile("mobilenet_v1_025_128", resolution=64).mult_adds
    for row in rows:
        assert row.mult_adds == macs
        assert row.runs == (20 if row.batch == 1 else 6)
        assert row.min_ms <= row.median_ms <= row.p90_ms <= row.max_ms
        assert row.images_per_s == pytest.approx(row.batch / row.median_ms * 1e3)
        peak = facts["int8_peak_gops" if row.precision == "int8" else "fp32_peak_gflops"] * 1e9
        assert row.floor_ms == pytest.approx(2 * macs * row.batch / peak * 1e3)
        assert row.floor_pct == pytest.approx(100 * row.floor_ms / row.median_ms)
    assert {r.precision for r in rows if r.backend == "onnxruntime-int8"} == {"int8"}


def test_peer_is_counted_like_ours() -> None:
    """timm's mobilenetv1_100 is the same network: the same 568.74M mult-adds at 224."""
    pytest.importorskip("timm")
    assert load_subject("timm:mobilenetv1_100", 224).mult_adds == profile("mobilenet_v1").mult_adds
    assert load_subject("torchvision:mobilenet_v2", 224).mult_adds == pytest.approx(300.8e6, rel=0.01)


@pytest.mark.slow
@pytest.mark.usefixtures("onnx_export")
def test_cli_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plot = tmp_path / "plots" / "latency.png"
    argv = ["bench", "--models", "mobilenet_v1_025_128", "--backends", "eager,onnxruntime", "--batch", "1"]
    assert main([*argv, "--resolution", "64", "--threads", "1", "--runs", "20", "--json", "--plot", str(plot)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["backend"], r["batch"]) for r in rows] == [("eager", 1), ("onnxruntime", 1)]
    assert all({"model", "backend", "batch", "median_ms", "images_per_s"} <= set(r) for r in rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backends", "eager,tensorrt"], "unknown backend(s) tensorrt"),
        (["--models", "mobilenet_v9"], "unknown model"),
        (["--models", "keras:mobilenet"], "unknown model library"),
        (["--batch", "1,x"], "comma-separated integers"),
        (["--batch", "0"], "positive integers"),
        (["--runs", "5"], "at least 20"),
        (["--threads", "0"], "at least 1"),
    ],
)
def test_cli_bad_input(args: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--resolution", "64", "--backends", "eager", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
