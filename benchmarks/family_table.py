"""Measure what ``mobilenet compare`` shows: latency per family member, top-1 of Google's weights, Flowers-17.

Writes the results file ``mobilenet compare`` reads (``docs/results/family.json``), each group
of figures with the date, CPU and command:

- ``latency``: ``mobilenet bench`` at batch 1 for every member (at its own resolution) on every
  backend installed; the fastest fp32 and int8 backend of each (median of ``--runs`` calls, one
  run, the same threads). The same architectures from torchvision and timm run beside them; the
  table of the whole run goes to ``--table`` (docs/results/bench_family.md);
- ``versus``: ours against the same architecture from torchvision / timm on every backend, the two
  called in turn call by call (a table, ``--versus-table``: docs/results/bench_versus.md; the
  latency group's rows are timed minutes apart, and this machine's speed drifts by more than the
  differences between two builds of one architecture);
- ``int8_vs_fp32``: every backend of a member called in turn, ``TURN_BLOCK`` timed calls a turn after
  ``TURN_SETTLE`` untimed ones (:mod:`mobilenet.bench`), the fastest fp32 and int8 of them (a table,
  ``--int8-table``: docs/results/bench_int8_vs_fp32.md). Recorded after the latency group, so its
  figures replace the latency group's for the members it measures: the ratio of best int8 to best
  fp32 holds here where the latency group's rows, timed minutes apart, drift
  (docs/results/interleaving.md);
- ``top1_sample``: ``mobilenet eval`` of Google's TFLite weights (converted to float) on the
  300-image ImageNet sample, for the members Google published files of;
- ``flowers17`` (``--flowers NAME=RUN,...``): ``mobilenet eval`` of fine-tuned runs' last epoch on
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
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import torch

from mobilenet.bench import (
    BACKENDS,
    PEER_BUILDS,
    TURN_BLOCK,
    TURN_SETTLE,
    Row,
    Skip,
    build,
    calibration_batch,
    cpu_info,
    default_threads,
    fastest,
    load_subject,
    precision_of,
    registry_size,
    run_bench,
    set_threads,
    table,
    time_interleaved,
)
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
GROUPS = ("latency", "versus", "int8_vs_fp32", "top1_sample", "flowers17")


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


def latency(
    models: list[str], backends: list[str], peers: bool, runs: int, threads: int | None, table_path: Path
) -> tuple[dict[str, dict], str]:
    """The fastest fp32 and int8 backend of each model at batch 1 (each at its own resolution), and the CPU.

    With ``peers``, the same architecture from torchvision / timm (:data:`PEER_BUILDS`) runs in the same
    run on every backend; the whole run and the ours-against-peer table go to ``table_path``.
    """
    named = models + [PEER_BUILDS[m] for m in models if peers and m in PEER_BUILDS]
    subjects = [load_subject(name, registry_size(name)) for name in named]
    rows, skips, facts = run_bench(subjects, backends, (1,), threads=threads, runs=runs, log=print)
    for skip in skips:
        print(f"skipped {skip.model} / {skip.backend}: {skip.reason}")
    figures: dict[str, dict] = {}
    for model in models:
        if best := fastest({r.backend: r.median_ms for r in rows if r.model == model}):
            figures[model] = best
    table_path.write_text(family_bench_table(rows, skips, facts, figures), encoding="utf-8")
    print(f"wrote {table_path}")
    return figures, f"{cpu_line(facts['cpu'])}, {facts['threads']} threads"


def versus_peers(
    models: list[str], backends: list[str], calls: int, threads: int | None, table_path: Path
) -> list[dict[str, Any]]:
    """Ours against the same architecture elsewhere (:data:`PEER_BUILDS`) on every backend, timed call by call
    in turn at batch 1 (:func:`~mobilenet.bench.time_interleaved`); the table goes to ``table_path``."""
    threads = threads or default_threads()
    set_threads(threads)
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for model in [m for m in models if m in PEER_BUILDS]:
        subjects = [load_subject(name, registry_size(name)) for name in (model, PEER_BUILDS[model])]
        size = subjects[0].resolution
        calib = calibration_batch(subjects[0])
        x = torch.rand(1, 3, size, size)
        for backend in backends:
            print(f"{model} against {PEER_BUILDS[model]} / {backend}", flush=True)
            torch._dynamo.reset()
            with tempfile.TemporaryDirectory() as work:
                try:
                    runs = []
                    for index, subject in enumerate(subjects):
                        (Path(work) / str(index)).mkdir()
                        runs.append(build(backend, subject, size, calib, Path(work) / str(index), threads))
                except Exception as err:  # a backend that cannot build one of the pair: named, not fatal
                    skipped.append(f"skipped {model} / {backend}: {type(err).__name__}: {str(err)[:150]}")
                    continue
                ours, peer = (statistics.median(t) * 1e3 for t in time_interleaved(runs, x, 5, calls))
            results.append(
                {"ours": model, "peer": PEER_BUILDS[model], "backend": backend, "ours_ms": ours, "peer_ms": peer}
            )
    cpu = cpu_line(cpu_info().describe())
    lines = [
        "# Ours against the same architecture elsewhere, call by call",
        "",
        f"Batch 1, {threads} threads, median of {calls} calls each, the two models called in turn; {cpu}; "
        f"{date.today().isoformat()}.",
        "",
        "| ours | peer | backend | ours ms | peer ms | peer / ours |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['ours']} | {r['peer']} | {r['backend']} | {r['ours_ms']:.2f} | {r['peer_ms']:.2f} | "
        f"{r['peer_ms'] / r['ours_ms']:.2f}x |"
        for r in results
    ]
    table_path.write_text("\n".join([*lines, "", *skipped, ""]), encoding="utf-8")
    print(f"wrote {table_path}")
    return results


def int8_against_fp32(
    models: list[str], backends: list[str], calls: int, threads: int | None, table_path: Path
) -> tuple[dict[str, dict], str]:
    """The fastest fp32 and int8 backend of each model at batch 1, its backends called in turn
    (:func:`~mobilenet.bench.time_interleaved`); the table of every backend goes to ``table_path``."""
    threads = threads or default_threads()
    set_threads(threads)
    figures: dict[str, dict] = {}
    lines: list[str] = []
    skipped: list[str] = []
    for model in models:
        print(f"{model}: every backend in turn", flush=True)
        subject = load_subject(model, registry_size(model))
        calib, size = calibration_batch(subject), subject.resolution
        torch._dynamo.reset()
        with tempfile.TemporaryDirectory() as work:
            built: dict[str, Any] = {}
            for backend in backends:
                try:
                    built[backend] = build(backend, subject, size, calib, Path(work), threads)
                except Exception as err:  # a backend that cannot build this model: named, not fatal
                    skipped.append(f"skipped {model} / {backend}: {type(err).__name__}: {str(err)[:150]}")
            x = torch.rand(1, 3, size, size)
            times = time_interleaved(list(built.values()), x, 5, calls, block=TURN_BLOCK, settle=TURN_SETTLE)
        medians = {backend: statistics.median(t) * 1e3 for backend, t in zip(built, times, strict=True)}
        if best := fastest(medians):
            figures[model] = best
        lines += [f"| {model} | {b} | {precision_of(b)} | {ms:.2f} |" for b, ms in medians.items()]
        if {"fp32_ms", "int8_ms"} <= set(figures.get(model, {})):
            best = figures[model]
            lines.append(
                f"| **{model}** | best int8 {best['int8_backend']} against best fp32 {best['fp32_backend']} | "
                f"fp32 / int8 | **{best['fp32_ms'] / best['int8_ms']:.2f}x** |"
            )
    cpu = f"{cpu_line(cpu_info().describe())}, {threads} threads"
    head = [
        "# Best int8 against best fp32, every backend called in turn",
        "",
        f"Batch 1, median of {calls} calls each, a model's backends called in turn ({TURN_BLOCK} timed calls a "
        f"turn after {TURN_SETTLE} untimed); {cpu}; {date.today().isoformat()}.",
        "",
        "| model | backend | precision | median ms |",
        "|---|---|---|---|",
    ]
    table_path.write_text("\n".join([*head, *lines, "", *skipped, ""]), encoding="utf-8")
    print(f"wrote {table_path}")
    return figures, cpu


def family_bench_table(rows: list[Row], skips: list[Skip], facts: dict, figures: dict[str, dict]) -> str:
    """Markdown: ours against the same architecture elsewhere per backend, best int8 against best fp32, every row."""
    median = {(r.model, r.backend): r.median_ms for r in rows}
    lines = ["# The family at batch 1, every backend", "", "## Ours against the same architecture elsewhere", ""]
    lines += ["| ours | peer | backend | ours ms | peer ms | peer / ours |", "|---|---|---|---|---|---|"]
    for model, peer in PEER_BUILDS.items():
        for backend in BACKENDS:
            if (model, backend) in median and (peer, backend) in median:
                ours, theirs = median[model, backend], median[peer, backend]
                lines.append(f"| {model} | {peer} | {backend} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}x |")
    lines += ["", "## Best int8 against best fp32 (ours)", ""]
    lines += ["| model | best fp32 | ms | best int8 | ms | fp32 / int8 |", "|---|---|---|---|---|---|"]
    for model, best in figures.items():
        if "fp32_ms" in best and "int8_ms" in best:
            lines.append(
                f"| {model} | {best['fp32_backend']} | {best['fp32_ms']:.2f} | {best['int8_backend']} | "
                f"{best['int8_ms']:.2f} | {best['fp32_ms'] / best['int8_ms']:.2f}x |"
            )
    return "\n".join([*lines, "", "## Every row", "", table(rows, skips, facts), ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(FAMILY), help="comma-separated registry names")
    parser.add_argument("--skip", default="", help=f"groups not to measure: {', '.join(GROUPS)}")
    parser.add_argument("--flowers", default="", help="NAME=RUN_FOLDER,... fine-tuned Flowers-17 runs")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: all)")
    parser.add_argument("--no-peers", action="store_true", help="time ours only (no torchvision / timm rows)")
    parser.add_argument("--table", type=Path, default=ROOT / "docs" / "results" / "bench_family.md")
    parser.add_argument("--versus-table", type=Path, default=ROOT / "docs" / "results" / "bench_versus.md")
    parser.add_argument("--int8-table", type=Path, default=ROOT / "docs" / "results" / "bench_int8_vs_fp32.md")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--results", type=Path, default=ROOT / DEFAULT_RESULTS)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    skip = set(filter(None, args.skip.split(",")))
    command = "python benchmarks/family_table.py " + shlex.join(sys.argv[1:])
    if "latency" not in skip:
        figures, cpu = latency(models, args.backends.split(","), not args.no_peers, args.runs, args.threads, args.table)
        record(args.results, "latency", figures, cpu, command)
    if "versus" not in skip:
        versus_peers(models, args.backends.split(","), args.runs, args.threads, args.versus_table)
    if "int8_vs_fp32" not in skip:
        figures, cpu = int8_against_fp32(models, args.backends.split(","), args.runs, args.threads, args.int8_table)
        record(args.results, "int8_vs_fp32", figures, cpu, command)
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
        figures = {  # the last epoch's weights: the best epoch is chosen on these same images
            name: {"flowers17": eval_top1(["--weights", str(Path(run) / "last.safetensors"), "--data", valid])}
            for name, run in pairs
        }
        record(args.results, "flowers17", figures, cpu, command)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
