"""OpenVINO compiled for the batch's exact shape against its dynamic-batch graph, fp32 and int8, at batch 1.

The exported graphs keep the batch dimension symbolic. ``ov_runner`` compiles a static copy for each
of the first input shapes it meets (``STATIC_SHAPES``); this measures what that buys. For each model
the same IR runs four ways (fp32 / int8 NNCF PTQ, each dynamic and static) beside ONNX Runtime fp32
(the fastest fp32 backend of the small members), every way called in turn (``TURN_SETTLE`` untimed
calls and ``TURN_BLOCK`` timed ones a turn), ``--repeats`` times. A sixth way quantizes with NNCF's
``performance`` preset whatever the graph: against the int8 static way (``mixed`` where the graph
has hard-swish, see ``nncf_preset``) it is the speed cost of asymmetric activations.

Writes docs/results/openvino_shapes.md (median of the repeats' medians, ms).

Run: .venv/bin/python benchmarks/openvino_shapes.py [--models a,b] [--runs 200] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch

from mobilenet.bench import (
    TURN_BLOCK,
    TURN_SETTLE,
    Run,
    build,
    calibration_batch,
    cpu_info,
    load_subject,
    registry_size,
    set_threads,
    time_interleaved,
)
from mobilenet.export.openvino_export import STATIC_SHAPES, ir_from_onnx, nncf_preset, ov_runner, quantize_ir

ROOT = Path(__file__).resolve().parent.parent
MODELS = "mobilenet_v3_small_minimal,mobilenet_v3_small_075,mobilenet_v3_small,mobilenet_v3_large_075"
WAYS = (
    "onnxruntime fp32",
    "openvino fp32 dynamic",
    "openvino fp32 static",
    "openvino int8 dynamic",
    "openvino int8 static",
    "openvino int8 static, performance preset",
)


def runners(name: str, work: Path, threads: int) -> tuple[dict[str, Run], str]:
    """The six ways of :data:`WAYS` for the family member ``name`` (graphs written under ``work``), and the
    NNCF preset its default int8 way takes."""
    subject = load_subject(name, registry_size(name))
    calib = calibration_batch(subject)
    ort = build("onnxruntime", subject, subject.resolution, calib, work, threads)  # writes work/float.onnx
    fp32 = ir_from_onnx(work / "float.onnx")
    int8 = quantize_ir(ir_from_onnx(work / "float.onnx"), calib, max_drop=None)[0]
    symmetric = quantize_ir(ir_from_onnx(work / "float.onnx"), calib, max_drop=None, preset="performance")[0]
    ways = {
        WAYS[0]: ort,
        WAYS[1]: ov_runner(fp32, threads, static_shapes=0),
        WAYS[2]: ov_runner(fp32, threads, static_shapes=STATIC_SHAPES),
        WAYS[3]: ov_runner(int8, threads, static_shapes=0),
        WAYS[4]: ov_runner(int8, threads, static_shapes=STATIC_SHAPES),
        WAYS[5]: ov_runner(symmetric, threads, static_shapes=STATIC_SHAPES),
    }
    return ways, nncf_preset(fp32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per way and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "openvino_shapes.md")
    args = parser.parse_args()
    set_threads(args.threads)
    table: dict[str, tuple[dict[str, float], str]] = {}
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as work:
            runs, preset = runners(name, Path(work), args.threads)
            x = torch.rand(1, 3, registry_size(name), registry_size(name))
            repeats = []
            for _ in range(args.repeats):
                times = time_interleaved(list(runs.values()), x, 5, args.runs, block=TURN_BLOCK, settle=TURN_SETTLE)
                repeats.append([statistics.median(t) * 1e3 for t in times])
            ms = {way: statistics.median(r[i] for r in repeats) for i, way in enumerate(runs)}
            table[name] = ms, preset
            print(name + ": " + ", ".join(f"{way} {t:.2f}" for way, t in ms.items()), flush=True)
    cpu = cpu_info().describe()
    lines = [
        "# OpenVINO: static shape against dynamic batch; NNCF's preset",
        "",
        f"`python benchmarks/openvino_shapes.py {shlex.join(sys.argv[1:])}`, {date.today().isoformat()}; "
        f"{cpu['model']} ({', '.join(cpu['extensions'])}), {args.threads} threads; batch 1 at each model's "
        f"resolution. Median ms of {args.runs} calls, the median of {args.repeats} repeats, every way called "
        f"in turn ({TURN_SETTLE} untimed and {TURN_BLOCK} timed calls a turn).",
        "",
        "| model | "
        + " | ".join(WAYS)
        + " | static speed-up fp32 / int8 | ORT fp32 / OpenVINO int8 static | int8 preset | performance / it |",
        "|---|" + "---|" * (len(WAYS) + 4),
    ]
    for name, (ms, preset) in table.items():
        gain = f"{ms[WAYS[1]] / ms[WAYS[2]]:.2f}x / {ms[WAYS[3]] / ms[WAYS[4]]:.2f}x"
        cells = " | ".join(f"{ms[way]:.2f}" for way in WAYS)
        cost = f"{ms[WAYS[5]] / ms[WAYS[4]]:.2f}x"
        lines.append(f"| {name} | {cells} | {gain} | {ms[WAYS[0]] / ms[WAYS[4]]:.2f}x | {preset} | {cost} |")
    args.out.write_text("\n".join([*lines, ""]), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
