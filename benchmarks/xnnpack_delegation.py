"""Which operators of a family member's ExecuTorch program XNNPACK runs, in fp32 and in int8 (no timing).

Each member is lowered as ``mobilenet bench``'s ``executorch`` and ``executorch-int8`` backends
lower it (PT2E's XNNPACK quantizer, per-channel weights, then XNNPACK's partitioner) and ExecuTorch's
delegation report counts every operator inside and outside the XNNPACK subgraphs. An operator left
outside runs on ExecuTorch's portable kernels; quantize / dequantize nodes inside are the int8
graph's conversions (XNNPACK fuses a pair into the quantized operator between them where it has one).

Run: .venv/bin/python benchmarks/xnnpack_delegation.py [--models a,b] [--out docs/results/xnnpack_delegation.md]
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import torch

from mobilenet.bench import calibration_batch, load_subject, registry_size
from mobilenet.export.executorch_export import INSTALL
from mobilenet.export.metadata import require
from mobilenet.export.pt2e import capture, quantize_pt2e

ROOT = Path(__file__).resolve().parent.parent


def delegation(name: str, int8: bool) -> dict[str, tuple[int, int]]:
    """Operator -> (nodes inside XNNPACK subgraphs, nodes outside) of ``name``'s lowered program."""
    exir = require("executorch.exir", INSTALL)
    partitioner = require("executorch.backends.xnnpack.partition.xnnpack_partitioner", INSTALL)
    debug = require("executorch.devtools.backend_debug", INSTALL)
    subject = load_subject(name, registry_size(name))
    graph = subject.graph
    if int8:
        graph = quantize_pt2e(graph, calibration_batch(subject), "xnnpack", per_channel=True, max_batch=64)
    program = capture(graph, subject.resolution, 64, example_batch=64)
    lowered = exir.to_edge_transform_and_lower(program, partitioner=[partitioner.XnnpackPartitioner()])
    info = debug.get_delegation_info(lowered.exported_program().graph_module)
    frame = info.get_operator_delegation_dataframe()
    return {
        row.op_type: (int(row.occurrences_in_delegated_graphs), int(row.occurrences_in_non_delegated_graphs))
        for row in frame.itertuples()
        if row.op_type != "Total"
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v3_small_075,mobilenet_v3_small")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "xnnpack_delegation.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        "# XNNPACK delegation of the ExecuTorch programs",
        "",
        f"`benchmarks/xnnpack_delegation.py --models {args.models}`, {date.today().isoformat()}: per operator, "
        "nodes inside XNNPACK subgraphs / outside (portable kernels).",
        "",
    ]
    for name in args.models.split(","):
        counts = {precision: delegation(name, precision == "int8") for precision in ("fp32", "int8")}
        ops = sorted(set(counts["fp32"]) | set(counts["int8"]))
        lines += [f"## {name}", "", "| operator | fp32 in / out | int8 in / out |", "|---|---|---|"]
        for op in ops:
            cells = [counts[p].get(op, (0, 0)) for p in ("fp32", "int8")]
            lines.append(f"| {op} | " + " | ".join(f"{inside} / {outside}" for inside, outside in cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
