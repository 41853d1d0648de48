"""Measure what ``mobilenet compare`` shows: latency per family member, top-1 of Google's weights, Flowers-17.

Writes the results file ``mobilenet compare`` reads (``docs/results/family.json``), each group
of figures with the date, CPU and command:

- ``latency``: ``mobilenet bench`` at batch 1 for every member on every backend installed; the
  fastest fp32 and int8 backend of each (median of ``--runs`` calls, one run, the same threads);
- ``top1_sample``: ``mobilenet eval`` of Google's TFLite weights (converted to float) on the
  300-image ImageNet sample, for the members Google published files of;
- ``flowers17`` (``--flowers NAME=RUN,...``): ``mobilenet eval`` of fine-tuned runs on
  flowers17/valid.

Run: .venv/bin/python benchmarks/family_table.py [--models a,b] [--skip latency,top1_sample] [--flowers ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from mobilenet.bench import BACKENDS, cpu_info, run_bench
from mobilenet.cli import main as cli
from mobilenet.compare import DEFAULT_RESULTS, FAMILY, record
from mobilenet.load import load
from mobilenet.weights import save_native

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")
TFLITE = DATA.parent / "weights" / "tflite"
GOOGLE = {  # family member: Google's file(s) of it
    "mobilenet_v1_100_224": (
        "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
        "mobilenet_quant_v1_224_head_layers.tflite",
    ),
    "mobilenet_v1_075_192": ("mobilenet_v1_0.75_192_quant.tflite",),
    "mobilenet_v2_100_224": ("mobilenet_v2_1.0_224_quant.tflite",),
    "mobilenet_v3_small": ("v3-small_224_1.0_uint8.tflite",),
    "mobilenet_v3_large_minimal": ("v3-large-minimalistic_224_1.0_uint8.tflite",),
}
GROUPS = ("latency", "top1_sample", "flowers17")


def eval_top1(args: list[str]) -> float:
    """Top-1 (percent) that ``mobilenet eval ... --json`` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli(["eval", *args, "--json"])
    if status:
        raise SystemExit(f"mobilenet eval {' '.join(args)} failed (exit {status})")
    return round(100 * json.loads(out.getvalue())["top1"], 2)


def cpu_line(cpu: dict) -> str:
    """``model (extensions)`` of ``Cpu.describe()``."""
    return f"{cpu['model']} ({', '.join(cpu['extensions'])})"


def one_file(files: tuple[str, ...], work: Path) -> str:
    """Google's file, or its body and head files converted into one of ours (``--weights`` takes one)."""
    if len(files) == 1:
        return str(TFLITE / files[0])
    model, card = load([TFLITE / f for f in files])
    return str(save_native(model, card, work / "joined.safetensors"))


def latency(models: list[str], runs: int, threads: int | None) -> tuple[dict[str, dict], str]:
    """The fastest fp32 and int8 backend of each model at batch 1, and the CPU it ran on."""
    rows, skips, facts = run_bench(models, BACKENDS, (1,), threads=threads, runs=runs, log=print)
    for skip in skips:
        print(f"skipped {skip.model} / {skip.backend}: {skip.reason}")
    figures: dict[str, dict] = {}
    for model in models:
        for precision in ("fp32", "int8"):
            mine = [r for r in rows if r.model == model and r.precision == precision]
            if mine:
                best = min(mine, key=lambda r: r.median_ms)
                figures.setdefault(model, {}).update(
                    {f"{precision}_ms": round(best.median_ms, 3), f"{precision}_backend": best.backend}
                )
    return figures, f"{cpu_line(facts['cpu'])}, {facts['threads']} threads"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(FAMILY), help="comma-separated registry names")
    parser.add_argument("--skip", default="", help=f"groups not to measure: {', '.join(GROUPS)}")
    parser.add_argument("--flowers", default="", help="NAME=RUN_FOLDER,... fine-tuned Flowers-17 runs")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--results", type=Path, default=ROOT / DEFAULT_RESULTS)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    skip = set(filter(None, args.skip.split(",")))
    command = "python benchmarks/family_table.py " + shlex.join(sys.argv[1:])
    if "latency" not in skip:
        figures, cpu = latency(models, args.runs, args.threads)
        record(args.results, "latency", figures, cpu, command)
    cpu = cpu_line(cpu_info().describe())
    if "top1_sample" not in skip and TFLITE.is_dir():
        sample = str(DATA / "imagenet-val-sample")
        with tempfile.TemporaryDirectory() as work:
            figures = {
                name: {"top1_sample": eval_top1(["--weights", one_file(files, Path(work)), "--data", sample])}
                for name, files in GOOGLE.items()
                if name in models
            }
        record(args.results, "top1_sample", figures, cpu, command)
    if "flowers17" not in skip and args.flowers:
        valid = str(DATA / "flowers17" / "valid")
        pairs = [item.split("=", 1) for item in args.flowers.split(",")]
        figures = {name: {"flowers17": eval_top1(["--checkpoint", run, "--data", valid])} for name, run in pairs}
        record(args.results, "flowers17", figures, cpu, command)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
