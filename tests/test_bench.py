"""`mobilenet bench`: rows, statistics, floors, peers, JSON, plot and bad input."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch

import mobilenet.bench
from mobilenet.analysis import profile
from mobilenet.bench import Cpu, Row, load_subject, pick_backend, run_bench, theoretical_peaks, time_interleaved
from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.models import create_model
from mobilenet.weights import save_native


@pytest.fixture
def onnx_export() -> None:
    """Skips the test when the ONNX backends' exporter or runtime is not installed."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")


@pytest.mark.slow
@pytest.mark.usefixtures("onnx_export")
def test_rows_have_consistent_statistics() -> None:
    backends = ["eager", "channels_last", "onnxruntime", "onnxruntime-int8"]
    subject = load_subject("mobilenet_v1_025_128", 64)  # a module, as `export --format auto` and serve pass it
    rows, skips, facts = run_bench([subject], backends, [1, 3], resolution=64, threads=1, runs=20)
    assert not skips and facts["threads"] == 1 and facts["fp32_peak_gops"] > 0 and facts["int8_peak_gops"] > 0
    assert facts["cpu"]["model"] and facts["over_floor"] == []
    assert [(r.backend, r.batch) for r in rows] == [(b, n) for b in backends for n in (1, 3)]
    macs = profile("mobilenet_v1_025_128", resolution=64).mult_adds
    for row in rows:
        assert row.mult_adds == macs
        assert row.runs == (20 if row.batch == 1 else 6)
        assert row.min_ms <= row.median_ms <= row.p90_ms <= row.max_ms
        assert row.images_per_s == pytest.approx(row.batch / row.median_ms * 1e3)
        peak = facts[f"{row.precision}_peak_gops"] * 1e9
        assert row.floor_ms == pytest.approx(2 * macs * row.batch / peak * 1e3)
        assert row.floor_pct == pytest.approx(100 * row.floor_ms / row.median_ms) and row.floor_pct <= 100
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


@pytest.mark.parametrize(
    ("flags", "fp32", "int8"),
    [
        # 2 cores at 2 GHz: 512-bit FMA (16 lanes x 2 ops x 2 units), AMX (2048 int8 ops a cycle)
        (("avx2", "avx512f", "avx512_vnni", "amx_int8"), 2 * 2e9 * 64, 2 * 2e9 * 2048),
        (("avx2", "avx512f", "avx512_vnni"), 2 * 2e9 * 64, 2 * 2e9 * 256),  # VPDPBUSD: 64 MACs x 2 units
        (("avx2",), 2 * 2e9 * 32, 2 * 2e9 * 64),  # AVX2 without VNNI: half of VPDPBUSD's 128 ops
    ],
    ids=["amx", "avx512-vnni", "avx2"],
)
def test_theoretical_peaks_from_vector_width(flags: tuple[str, ...], fp32: float, int8: float) -> None:
    cpu = Cpu("test", flags, cores=4, mhz=2000.0)
    assert theoretical_peaks(cpu, threads=2) == {"fp32": pytest.approx(fp32), "int8": pytest.approx(int8)}
    assert theoretical_peaks(Cpu("test", flags, cores=4, mhz=None), 2) == {"fp32": None, "int8": None}


def fake_rows(medians: dict[str, float], calls: list[tuple]) -> object:
    """A stand-in for ``run_bench`` that records its calls and returns rows with the given medians."""

    def bench(subjects, backends, batches, resolution, threads, runs, log):
        calls.append((tuple(backends), threads, resolution))
        rows = [
            Row(subjects[0].name, b, "x", batches[0], threads, 1, runs, ms, ms, ms, ms, 1e3 / ms, ms / 2, 50.0)
            for b, ms in medians.items()
            if b in backends
        ]
        return rows, [], {}

    return bench


def test_pick_measures_once_per_machine_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOBILENET_CACHE", str(tmp_path))
    calls: list[tuple] = []
    medians = {"onnxruntime-int8": 3.0, "openvino-int8": 2.5, "pt2e-int8": 4.0, "openvino": 5.0}
    monkeypatch.setattr(mobilenet.bench, "run_bench", fake_rows(medians, calls))
    pick = pick_backend("mobilenet_v1_025_128", "int8", threads=2)
    assert (pick.backend, pick.export_format, pick.median_ms, pick.cached) == ("openvino-int8", "openvino", 2.5, False)
    assert calls == [(("onnxruntime-int8", "openvino-int8", "pt2e-int8", "executorch-int8"), 2, 128)]
    assert pick.candidates == {"onnxruntime-int8": 3.0, "openvino-int8": 2.5, "pt2e-int8": 4.0}
    again = pick_backend("mobilenet_v1_025_128", "int8", threads=2)
    assert again.cached and again.backend == "openvino-int8" and len(calls) == 1
    assert (tmp_path / "backend_choice.json").is_file()
    assert not pick_backend("mobilenet_v1_025_128", "int8", threads=1).cached  # another thread count
    assert not pick_backend("mobilenet_v1_025_128", "int8", threads=2, refresh=True).cached
    assert pick_backend("mobilenet_v1_025_128", "fp32", threads=2).backend == "openvino"
    assert len(calls) == 4


@pytest.mark.slow
def test_cli_pick_and_export_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("onnxscript")
    monkeypatch.setenv("MOBILENET_CACHE", str(tmp_path))
    monkeypatch.setattr(mobilenet.bench, "run_bench", fake_rows({"onnxruntime": 3.0, "openvino": 2.0}, []))
    argv = ["bench", "--pick", "--models", "mobilenet_v1_025_128", "--precision", "fp32", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "openvino"
    weights = tmp_path / "v1.safetensors"  # the same architecture: its measurement is in the cache
    save_native(create_model("mobilenet_v1_025_128"), ModelCard("mobilenet_v1", input_size=128), weights)
    out = tmp_path / "deploy" / "model.onnx"
    assert main(["export", "--weights", str(weights), "--format", "auto", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fp32: openvino (--format openvino) 2.00 ms" in printed and "(cached)" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bin", "model.xml"]


def test_interleaved_timing_calls_the_runs_in_turn_and_reverses_the_order() -> None:
    calls: list[str] = []

    def runner(name: str, seconds: float):
        def run(x: torch.Tensor) -> None:
            calls.append(name)
            time.sleep(seconds)

        return run

    times = time_interleaved([runner("a", 0.004), runner("b", 0.001)], torch.zeros(1), warmup=1, calls=4)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then a-b, b-a, ...
    assert [len(t) for t in times] == [4, 4] and min(times[0]) >= 0.004 and min(times[0]) > statistics.median(times[1])


def test_interleaved_timing_in_blocks_settles_each_turn_untimed() -> None:
    calls: list[str] = []
    slow_first = {"a": 0.02}  # the first call of each turn of "a" is slow (a pool spinning up, a cold cache)

    def runner(name: str):
        def run(x: torch.Tensor) -> None:
            if not calls or calls[-1] != name:
                time.sleep(slow_first.get(name, 0.0))
            calls.append(name)

        return run

    times = time_interleaved([runner("a"), runner("b")], torch.zeros(1), warmup=0, calls=5, block=2, settle=1)
    # three rounds (a a a, b b b; b b b, a a a; a a, b b): one untimed call, then two timed, the last turn short
    assert "".join(calls) == "aaabbbbbbaaaaabb"
    assert [len(t) for t in times] == [5, 5] and max(times[0]) < 0.02
