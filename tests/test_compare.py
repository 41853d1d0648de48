"""``mobilenet compare``: the family table from computed cost, published accuracy and a results file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from mobilenet import compare
from mobilenet.cli import main

MODELS = "mobilenet_v3_small,mobilenet_v3_small_minimal,mobilenet_v2_035_96"


def _results(path: Path) -> None:
    compare.record(
        path,
        "latency",
        {
            "mobilenet_v3_small": {"fp32_ms": 4.0, "fp32_backend": "onnx", "int8_ms": 3.0, "int8_backend": "openvino"},
            "mobilenet_v3_small_minimal": {"fp32_ms": 3.5, "fp32_backend": "onnx"},
            "mobilenet_v2_035_96": {"fp32_ms": 1.0, "fp32_backend": "onnx"},
        },
        cpu="Test CPU (avx2)",
        command="benchmarks/family_table.py",
    )
    compare.record(
        path,
        "accuracy",
        {"mobilenet_v3_small": {"top1_sample": 78.0, "int8_drops": {"openvino": 0.7, "onnxruntime-int8": -2.0}}},
        "Test CPU",
        "x",
    )


def test_json_rows_carry_the_documented_keys_and_measured_figures(tmp_path: Path, capsys) -> None:
    results = tmp_path / "family.json"
    _results(results)
    assert main(["compare", "--models", MODELS, "--results", str(results), "--json"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    keys = {"model", "params", "mult_adds", "top1_published", "top1_sample", "fp32_ms", "fp32_backend", "int8_ms"}
    assert keys | {"int8_backend", "int8_drop"} <= set(rows["mobilenet_v3_small"])
    small = rows["mobilenet_v3_small"]
    assert small["params"] == pytest.approx(2.54, abs=0.01) and small["mult_adds"] == pytest.approx(56.5, abs=0.5)
    assert small["top1_published"] == 67.4  # the paper's Table 3, not TF-slim's 67.5
    assert (small["top1_sample"], small["int8_ms"], small["int8_drop"]) == (78.0, 3.0, 0.7)
    assert rows["mobilenet_v3_small_minimal"]["int8_ms"] is None  # not measured: None, never a guess


def test_pareto_front_keeps_only_undominated_members(tmp_path: Path) -> None:
    results = tmp_path / "family.json"
    _results(results)
    rows = compare.family_rows(MODELS.split(","), compare.read_results(results))
    front = [row.model for row in compare.pareto(rows)]
    # v2 0.35-96: fastest (1.0 ms); v3 small: best top-1 (67.4) at 3.0; small minimal: slower than small, worse
    assert front == ["mobilenet_v2_035_96", "mobilenet_v3_small"]


def test_table_and_plot(tmp_path: Path, capsys) -> None:
    results = tmp_path / "family.json"
    _results(results)
    png = tmp_path / "family.png"
    assert main(["compare", "--models", MODELS, "--results", str(results), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v3_small *" in out and "3.00 openvino" in out and "Test CPU (avx2)" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_results_measured_columns_are_empty_and_bad_files_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["compare", "--models", "mobilenet_v3_small", "--results", str(tmp_path / "absent.json")]) == 0
    assert "no measured figures" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", "--models", "mobilenet_v3_small", "--results", str(bad)]) == 2
    assert "cannot read results file" in capsys.readouterr().err
    assert main(["compare", "--models", "resnet50", "--results", str(tmp_path / "absent.json")]) == 2
    assert "unknown model" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown result fields"):
        compare.record(tmp_path / "r.json", "x", {"mobilenet_v3_small": {"top5": 1.0}}, "cpu", "cmd")


def _benchmark(name: str):
    """A script of benchmarks/ imported as a module (they are run as scripts, not installed)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_int8_drop_shown_is_the_fastest_int8_backends_whenever_latency_is_measured(tmp_path: Path) -> None:
    """benchmarks/int8_accuracy.py --record keeps a drop per int8 backend; the table shows the fastest's,
    also after the latency is measured again and another backend is fastest."""
    int8_accuracy = _benchmark("int8_accuracy")
    results = tmp_path / "family.json"
    compare.record(
        results, "latency", {"mobilenet_v3_small": {"int8_ms": 2.0, "int8_backend": "openvino-int8"}}, "c", "x"
    )
    drops = {
        "imagenet-v3-small": {"onnxruntime per-channel": -2.5, "openvino ptq": 0.5, "pt2e xnnpack (.pte)": -4.0},
        "imagenet-v2": {"onnxruntime per-channel": 0.5, "openvino ptq": 0.0},  # no latency: the default path
    }
    int8_accuracy.record_drops(results, drops, "python benchmarks/int8_accuracy.py --record")
    measured = compare.read_results(results)["models"]
    assert measured["mobilenet_v3_small"]["int8_drops"] == {
        "onnxruntime-int8": -2.5,
        "openvino-int8": 0.5,
        "executorch-int8": -4.0,
    }
    rows = compare.family_rows(["mobilenet_v3_small", "mobilenet_v2_100_224"], compare.read_results(results))
    assert (rows[0].int8_backend, rows[0].int8_ms, rows[0].int8_drop) == ("openvino-int8", 2.0, 0.5)
    assert (rows[1].int8_backend, rows[1].int8_drop) == (None, 0.5)
    compare.record(
        results, "latency", {"mobilenet_v3_small": {"int8_ms": 1.5, "int8_backend": "executorch-int8"}}, "c", "y"
    )
    compare.record(
        results, "latency", {"mobilenet_v2_100_224": {"int8_ms": 1.0, "int8_backend": "pt2e-int8"}}, "c", "z"
    )
    rows = compare.family_rows(["mobilenet_v3_small", "mobilenet_v2_100_224"], compare.read_results(results))
    assert (rows[0].int8_backend, rows[0].int8_drop) == ("executorch-int8", -4.0)
    assert (rows[1].int8_backend, rows[1].int8_drop) == ("pt2e-int8", None)  # not measured on that path: no guess


def test_family_bench_table_sets_ours_beside_the_peer_and_int8_beside_fp32() -> None:
    family_table = _benchmark("family_table")
    from mobilenet.bench import Row, run_facts

    def row(model: str, backend: str, ms: float) -> Row:
        precision = "int8" if backend.endswith("int8") else "fp32"
        return Row(model, backend, precision, 1, 2, 56_000_000, 30, ms, ms, ms, ms, 1e3 / ms, None, None)

    rows = [
        row("mobilenet_v3_small", "onnxruntime", 2.0),
        row("torchvision:mobilenet_v3_small", "onnxruntime", 2.5),
        row("mobilenet_v3_small", "openvino-int8", 1.6),
    ]
    facts = run_facts({"fp32": {}, "int8": {}}, threads=2, resolution=224) | {"over_floor": []}
    best = {
        "mobilenet_v3_small": {
            "fp32_ms": 2.0,
            "fp32_backend": "onnxruntime",
            "int8_ms": 1.6,
            "int8_backend": "openvino-int8",
        }
    }
    text = family_table.family_bench_table(rows, [], facts, best)
    assert "| mobilenet_v3_small | torchvision:mobilenet_v3_small | onnxruntime | 2.00 | 2.50 | 1.25x |" in text
    assert "| mobilenet_v3_small | onnxruntime | 2.00 | openvino-int8 | 1.60 | 1.25x |" in text


def test_each_figure_keeps_the_command_that_measured_it(tmp_path: Path) -> None:
    """Two commands measuring different members under one group both stay; a rerun replaces its own source."""
    path = tmp_path / "family.json"
    compare.record(path, "accuracy", {"mobilenet_v2_100_224": {"top1_sample": 80.0}}, "cpu", "first")
    compare.record(path, "accuracy", {"mobilenet_v3_small": {"top1_sample": 78.0}}, "cpu", "second")
    results = compare.read_results(path)
    assert {name: source["command"] for name, source in results["sources"].items()} == {
        "accuracy": "first",
        "accuracy-2": "second",
    }
    assert results["models"]["mobilenet_v3_small"]["top1_sample_source"] == "accuracy-2"
    compare.record(path, "accuracy", {"mobilenet_v3_small": {"top1_sample": 77.0}}, "cpu", "second")
    assert set(compare.read_results(path)["sources"]) == {"accuracy", "accuracy-2"}
    compare.record(path, "accuracy", {"mobilenet_v2_100_224": {"top1_sample": 81.0}}, "cpu", "third")
    sources = compare.read_results(path)["sources"]  # "first" measures nothing any more: its source goes
    assert {name: source["command"] for name, source in sources.items()} == {
        "accuracy": "third",
        "accuracy-2": "second",
    }


@pytest.mark.slow
def test_int8_against_fp32_times_every_backend_in_turn_and_names_the_fastest(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    family_table = _benchmark("family_table")
    table = tmp_path / "int8_vs_fp32.md"
    backends = ["eager", "onnxruntime", "onnxruntime-int8", "no-such-backend"]
    figures, cpu = family_table.int8_against_fp32(["mobilenet_v1_025_128"], backends, 3, 1, table)
    text = table.read_text()
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| mobilenet_v1_025_128 |")]
    medians = {cells[1]: float(cells[3].rstrip(" |")) for cells in rows}
    assert set(medians) == {"eager", "onnxruntime", "onnxruntime-int8"}
    best = figures["mobilenet_v1_025_128"]
    assert best["fp32_backend"] == min(("eager", "onnxruntime"), key=medians.__getitem__)
    assert (best["int8_backend"], best["int8_ms"]) == (
        "onnxruntime-int8",
        pytest.approx(medians["onnxruntime-int8"], abs=0.01),
    )
    assert f"{best['fp32_ms'] / best['int8_ms']:.2f}x" in text and "1 threads" in cpu
    assert "skipped mobilenet_v1_025_128 / no-such-backend: ConfigError" in text


def test_interleaving_times_every_way_and_the_xnnpack_pair_alone() -> None:
    interleaving = _benchmark("interleaving")
    called: list[str] = []

    def runner(name: str):
        return lambda x: called.append(name)

    built = {name: runner(name) for name in ("onnxruntime", "executorch", "executorch-int8")}
    timers = interleaving.ways(built, {"onnxruntime": runner("quiet onnxruntime")}, torch.zeros(1), calls=2)
    measured = {way: timer() for way, timer in timers.items()}
    assert list(measured) == [
        "alone",
        "turns of 1",
        "turns of 1, ORT not spinning",
        "turns of 10 after 3 untimed",
        "XNNPACK pair, turns of 1",
    ]
    assert all(set(ms) == set(built) for way, ms in measured.items() if "pair" not in way)
    assert set(measured["XNNPACK pair, turns of 1"]) == {"executorch", "executorch-int8"}
    assert "quiet onnxruntime" in called
    assert interleaving.best_ratio({"onnxruntime": 3.0, "executorch": 2.0, "executorch-int8": 1.6}) == "1.25x"
    assert interleaving.best_ratio({"onnxruntime": 3.0}) == "-"


def test_int8_agreement_counts_changed_classes_and_skips_the_calibrated_images(tmp_path: Path) -> None:
    """benchmarks/int8_accuracy.py --agreement: label-free int8 against float, on images calibration did not take."""
    from PIL import Image

    from mobilenet.card import ModelCard
    from mobilenet.export.quantize import calibration_picks

    int8_accuracy = _benchmark("int8_accuracy")
    reference = torch.tensor([[3.0, 1.0], [1.0, 3.0], [2.0, 0.0], [0.0, 2.0]])
    int8 = reference + torch.tensor([[0.0, 0.0], [0.0, 0.0], [-1.5, 1.5], [0.0, 0.0]])
    share, flips, sqnr = int8_accuracy.agreement(reference, int8)
    # one of four images changes class; signal 28, noise 4.5: 10 log10(28 / 4.5) dB
    assert (share, flips) == (0.75, 1) and sqnr == pytest.approx(7.94, abs=0.01)
    for split, count in (("train", 9), ("valid", 2)):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (40 * i, 100, 200)).save(tmp_path / split / label / f"{i}.png")
    card = ModelCard(arch="mobilenet_v3_small", classes=("a", "b"), input_size=8)
    case = int8_accuracy.Case("t", torch.nn.Identity(), card, tmp_path, "train", 5, tmp_path, "valid")
    batches = int8_accuracy.agreement_images(case)
    assert len(set(calibration_picks(18, 5))) == 5  # five distinct images calibrated on
    assert sum(len(batch) for batch in batches) == 2 * 2 + 18 - 5  # valid, and the train images not calibrated on
