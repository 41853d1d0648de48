"""Why backends of different runtimes called in turn run slower than each alone, and how to time them.

One family member is built on every backend named (``mobilenet bench``'s builds) and timed at batch 1
five ways, in one run, each ``--repeats`` times:

- ``alone``: each backend's calls in a row, one backend after the other;
- ``turns of 1``: every backend called in turn, one call a turn (what ``versus`` does for two
  builds on one runtime);
- ``turns of 1, ORT not spinning``: the same with ONNX Runtime's threads waiting without spinning;
- ``turns of B``: every backend in turn, ``TURN_SETTLE`` untimed calls and then ``TURN_BLOCK``
  timed ones a turn (``family_table.py``'s ``int8_vs_fp32`` group);
- ``XNNPACK pair, turns of 1``: ExecuTorch's fp32 and int8 programs alone in turn, one call a turn:
  one runtime and one thread pool, so what remains is the other model's weights in cache.

Writes docs/results/interleaving.md (median of the repeats' medians, ms, and the best fp32 over the
best int8 under each way).

Run: .venv/bin/python benchmarks/interleaving.py [--model mobilenet_v3_small_075] [--runs 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from collections.abc import Callable
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
    fastest,
    load_subject,
    registry_size,
    set_threads,
    time_interleaved,
    time_runs,
)

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("onnxruntime", "openvino", "executorch", "onnxruntime-int8", "openvino-int8", "executorch-int8")
XNNPACK_PAIR = ("executorch", "executorch-int8")
Ways = dict[str, Callable[[], dict[str, float]]]


def ways(built: dict[str, Run], quiet_ort: dict[str, Run], x: torch.Tensor, calls: int) -> Ways:
    """Name -> a function timing every backend that way: backend -> median ms of ``calls`` calls."""

    def medians(names: list[str], times: list[list[float]]) -> dict[str, float]:
        return {name: statistics.median(t) * 1e3 for name, t in zip(names, times, strict=True)}

    def turns(runs: dict[str, Run], block: int, settle: int) -> dict[str, float]:
        return medians(list(runs), time_interleaved(list(runs.values()), x, 5, calls, block=block, settle=settle))

    pair = {name: built[name] for name in XNNPACK_PAIR if name in built}
    return {
        "alone": lambda: {name: statistics.median(time_runs(run, x, 5, calls)) * 1e3 for name, run in built.items()},
        "turns of 1": lambda: turns(built, 1, 0),
        "turns of 1, ORT not spinning": lambda: turns({**built, **quiet_ort}, 1, 0),
        f"turns of {TURN_BLOCK} after {TURN_SETTLE} untimed": lambda: turns(built, TURN_BLOCK, TURN_SETTLE),
        "XNNPACK pair, turns of 1": lambda: turns(pair, 1, 0) if len(pair) == 2 else {},
    }


def best_ratio(ms: dict[str, float]) -> str:
    """Best fp32 over best int8 among ``ms`` (``-`` when a precision is missing)."""
    best = fastest(ms)
    return f"{best['fp32_ms'] / best['int8_ms']:.2f}x" if {"fp32_ms", "int8_ms"} <= set(best) else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v3_small_075")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--runs", type=int, default=60, help="timed calls per backend and way")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "interleaving.md")
    args = parser.parse_args()
    set_threads(args.threads)
    subject = load_subject(args.model, registry_size(args.model))
    calib, size = calibration_batch(subject), subject.resolution
    x = torch.rand(1, subject.in_chans, size, size)
    with tempfile.TemporaryDirectory() as work:
        names = args.backends.split(",")
        built = {name: build(name, subject, size, calib, Path(work), args.threads) for name in names}
        quiet_ort = {
            name: build(name, subject, size, calib, Path(work), args.threads, spin=False)
            for name in names
            if name.startswith("onnxruntime")
        }
        timers = ways(built, quiet_ort, x, args.runs)
        results: dict[str, list[dict[str, float]]] = {way: [] for way in timers}
        for repeat in range(args.repeats):
            for way, timer in timers.items():
                results[way].append(timer())
                print(f"repeat {repeat + 1} {way}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[way][-1].items()))
    table = {way: {b: statistics.median(r[b] for r in runs) for b in runs[0]} for way, runs in results.items()}
    cpu = cpu_info().describe()
    lines = [
        "# Backends of different runtimes called in turn",
        "",
        f"`python benchmarks/interleaving.py {shlex.join(sys.argv[1:])}`, {date.today().isoformat()}; "
        f"{cpu['model']} ({', '.join(cpu['extensions'])}), {args.threads} threads; {args.model} at batch 1, "
        f"{size} px. Median ms of {args.runs} calls, the median of {args.repeats} repeats "
        "(each repeat times every way).",
        "",
        "| backend | " + " | ".join(table) + " |",
        "|---|" + "---|" * len(table),
    ]
    for name in names:
        cells = (f"{ms[name]:.2f}" if name in ms else "-" for ms in table.values())
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **best fp32 / best int8** | " + " | ".join(best_ratio(ms) for ms in table.values()) + " |")
    args.out.write_text("\n".join([*lines, ""]), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
