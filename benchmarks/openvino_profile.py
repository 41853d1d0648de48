"""Where OpenVINO's time goes, per kind of layer, against each kind's own floor.

MobileNetV1 (randomly initialised: speed does not depend on the weights) is converted to OpenVINO
fp32 and int8 (NNCF, 32 noise images), run with the CPU plugin's per-layer counters, and the time of
each executed layer is summed by kind: the first full convolution, depthwise 3x3, pointwise 1x1,
the classifier, and everything else (pooling, reorders, quantize). Each kind's mult-adds (from the
IR's convolution shapes) at the run's best GEMM peak (``mobilenet.bench.gemm_peaks``) is its floor:
the table shows which layers keep a row far from the whole model's floor.

Run: .venv/bin/python benchmarks/openvino_profile.py [--model mobilenet_v1] [--batch 1] [--runs 50]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from typing import Any

import torch

from mobilenet.bench import cpu_info, default_threads, gemm_peaks, load_subject
from mobilenet.export.openvino_export import ir_model, quantize_ir

KINDS = ("full conv", "depthwise", "pointwise", "classifier", "other")


def layer_macs(model: Any, batch: int) -> dict[str, tuple[str, int]]:
    """Each convolution / matmul of the IR by name: (kind, mult-adds at ``batch``)."""
    macs = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = list(op.get_output_partial_shape(0).get_min_shape())
        weight = list(op.input(1).get_partial_shape().get_min_shape())
        if kind == "MatMul":
            macs[op.get_friendly_name()] = ("classifier", batch * math.prod(weight))
            continue
        spatial = math.prod(out[2:])
        if kind == "GroupConvolution":  # weights (groups, out/groups, in/groups, kh, kw)
            macs[op.get_friendly_name()] = ("depthwise", batch * spatial * math.prod(weight))
        else:
            name = "pointwise" if weight[2:] == [1, 1] else "full conv"
            macs[op.get_friendly_name()] = (name, batch * spatial * math.prod(weight))
    return macs


def profile(model: Any, batch: int, resolution: int, threads: int, runs: int) -> dict[str, tuple[float, float]]:
    """(median microseconds over ``runs`` inferences, mult-adds) of each kind of layer."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    macs = layer_macs(model, batch)
    x = torch.randn(batch, 3, resolution, resolution).numpy()
    samples: dict[str, list[float]] = defaultdict(list)
    for step in range(runs + 5):
        request.infer([x])
        if step < 5:
            continue
        totals: dict[str, float] = defaultdict(float)
        for info in request.get_profiling_info():
            original = info.node_name.split(",")  # a fused node lists the layers it runs
            kind = next((macs[n][0] for n in original if n in macs), "other")
            totals[kind] += info.real_time.total_seconds() * 1e6
        for kind in KINDS:
            samples[kind].append(totals[kind])
    counts: dict[str, float] = defaultdict(float)
    for kind, mac in macs.values():
        counts[kind] += mac
    return {kind: (sorted(samples[kind])[len(samples[kind]) // 2], counts[kind]) for kind in KINDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v1")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    threads = default_threads()
    torch.set_num_threads(threads)
    subject = load_subject(args.model, args.resolution)
    fp32 = ir_model(subject.graph, args.resolution)
    calib = torch.rand(32, 3, args.resolution, args.resolution) * 4 - 2
    int8 = quantize_ir(fp32, calib, max_drop=None)[0]
    peaks = {p: max(rates.values()) for p, rates in gemm_peaks(threads).items()}
    cpu = cpu_info().describe()
    print(f"CPU {cpu['model']} ({' '.join(cpu['extensions'])}), {threads} threads, batch {args.batch}")
    print(f"peaks: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, int8 {peaks['int8'] / 1e9:.0f} GOP/s\n")
    print("| precision | layers | MMAC | median ms | floor ms | % of floor | share of time |")
    print("|---|---|---|---|---|---|---|")
    for precision, model in (("fp32", fp32), ("int8", int8)):
        kinds = profile(model, args.batch, args.resolution, threads, args.runs)
        total = sum(us for us, _ in kinds.values())
        for kind, (us, macs) in kinds.items():
            floor = 2 * macs / peaks[precision] * 1e3
            pct = f"{100 * floor / (us / 1e3):.0f}%" if us and macs else "-"
            print(
                f"| {precision} | {kind} | {macs / 1e6:.0f} | {us / 1e3:.2f} | {floor:.3f} | {pct} | "
                f"{100 * us / total:.0f}% |"
            )


if __name__ == "__main__":
    main()
