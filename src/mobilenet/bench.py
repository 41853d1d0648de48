"""Inference speed of our models and their peers on every backend, against a measured floor.

Each (model, backend) pair is built once: ``eager`` and ``channels_last`` run the PyTorch module as
its library builds it; ``compile`` is Inductor with weight freezing; ``onnxruntime`` and
``executorch`` run exported files (ours exported from the BN-folded inference graph); the int8
backends (``onnxruntime-int8``, ``pt2e-int8``, ``executorch-int8``) quantize with 32 noise images
as calibration (the speed of an int8 kernel does not depend on its scales; accuracy is measured
with real calibration data by ``mobilenet eval --exported``). Each batch size is then timed after
a warm-up: the median, p90, min and max of the timed runs, and images per second from the median.

The floor is what the model's mult-adds would take at the machine's matrix-multiply peak, fp32
(``torch.mm``) or int8 (ONNX Runtime's ``MatMulInteger``, the kernels its int8 convolutions use),
both measured in the same run with the same threads; ``floor_pct`` is floor / median.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.analysis import profile_module
from mobilenet.errors import ConfigError, ExportError
from mobilenet.export import compile_for_cpu, inference_model, quantize_pt2e
from mobilenet.export.executorch_export import load_method, pte_program
from mobilenet.export.metadata import require
from mobilenet.export.onnx_export import DEFAULT_OPSET, onnx_proto, ort_runner
from mobilenet.export.quantize import quantize_onnx_file
from mobilenet.fileio import atomic_write
from mobilenet.models import create_model, get_model_info

BACKENDS = (
    "eager",
    "channels_last",
    "compile",
    "onnxruntime",
    "onnxruntime-int8",
    "pt2e-int8",
    "executorch",
    "executorch-int8",
)
INT8_BACKENDS = ("onnxruntime-int8", "pt2e-int8", "executorch-int8")
PEER_LIBRARIES = ("timm", "torchvision")
PEERS = ("timm:mobilenetv1_100", "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_large")
DEFAULT_MODELS = ("mobilenet_v1", *PEERS)
CALIB_IMAGES = 32

Run = Callable[[torch.Tensor], Any]


@dataclass
class Subject:
    """A model to time: its float module, its deployable graph (ours: BN folded) and its cost."""

    name: str
    module: nn.Module
    graph: nn.Module
    mult_adds: int
    in_chans: int


@dataclass
class Row:
    """One (model, backend, batch) measurement."""

    model: str
    backend: str
    precision: str
    batch: int
    threads: int
    mult_adds: int
    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    images_per_s: float
    floor_ms: float | None
    floor_pct: float | None


@dataclass
class Skip:
    """A (model, backend) pair that could not run here, and why."""

    model: str
    backend: str
    reason: str


def check_backends(names: Iterable[str]) -> list[str]:
    """``names`` if each is a backend; :class:`ConfigError` naming the unknown ones otherwise."""
    names = list(names)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend(s) {', '.join(unknown)}: use {', '.join(BACKENDS)}")
    return names


def check_models(names: Iterable[str]) -> list[str]:
    """``names`` if each is a registry name or a ``timm:`` / ``torchvision:`` peer; an error otherwise."""
    names = list(names)
    for name in names:
        if ":" in name:
            if name.split(":", 1)[0] not in PEER_LIBRARIES:
                raise ConfigError(
                    f"unknown model library in {name!r}: use {', '.join(PEER_LIBRARIES)} or a registry name"
                )
        else:
            get_model_info(name)  # UnknownModelError with the close matches
    if not names:
        raise ConfigError("--models names no model")
    return names


def load_subject(name: str, resolution: int) -> Subject:
    """Ours by registry name, or a peer ``timm:NAME`` / ``torchvision:NAME``, randomly initialised, in eval mode."""
    if name.startswith("timm:"):
        timm = require("timm", "timm")
        module = timm.create_model(name.split(":", 1)[1], pretrained=False)
        graph = module
    elif name.startswith("torchvision:"):
        import torchvision

        module = torchvision.models.get_model(name.split(":", 1)[1], weights=None)
        graph = module
    else:
        module = create_model(name)
        graph = inference_model(module.eval(), resolution)
    module.eval()
    in_chans = getattr(module, "in_chans", 3)
    cost = profile_module(module, (in_chans, resolution, resolution), name).mult_adds
    return Subject(name, module, graph.eval(), cost, in_chans)


def build(backend: str, subject: Subject, resolution: int, calib: torch.Tensor, work: Path, threads: int) -> Run:
    """A function that runs ``subject`` on a batch with ``backend`` (and converts its input as the backend wants)."""
    if backend == "eager":
        return _no_grad(subject.module)
    if backend == "channels_last":
        module = copy.deepcopy(subject.module).to(memory_format=torch.channels_last)
        run = _no_grad(module)
        return lambda x: run(x.contiguous(memory_format=torch.channels_last))
    if backend == "compile":
        return compile_for_cpu(subject.module)
    if backend == "pt2e-int8":
        return compile_for_cpu(quantize_pt2e(subject.graph, calib, "x86"))
    if backend in ("onnxruntime", "onnxruntime-int8"):
        path = work / f"{backend}.onnx"
        float_path = work / "float.onnx"
        if not float_path.exists():
            float_path.write_bytes(onnx_proto(subject.graph, resolution, DEFAULT_OPSET).SerializeToString())
        if backend == "onnxruntime-int8":
            quantize_onnx_file(float_path, path, calib, reduce_range=True)
        return ort_runner(path if backend == "onnxruntime-int8" else float_path, threads)
    if backend in ("executorch", "executorch-int8"):
        path = work / f"{backend}.pte"
        int8 = calib if backend == "executorch-int8" else None
        path.write_bytes(pte_program(subject.graph, resolution, max_batch=64, calib_images=int8))
        method = load_method(path)
        return lambda x: method.execute([x])
    raise ConfigError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")


def _no_grad(module: nn.Module) -> Run:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return run


def time_runs(run: Run, x: torch.Tensor, warmup: int, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``run(x)``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return times


def fp32_peak(size: int = 1024, repeats: int = 10) -> float:
    """Measured fp32 matrix-multiply peak (FLOP/s): the median of ``repeats`` square ``torch.mm`` of ``size``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = time_runs(lambda _: torch.mm(a, b), a, 2, repeats)
    return 2 * size**3 / statistics.median(times)


def int8_peak(threads: int, size: int = 1024, repeats: int = 10) -> float | None:
    """Measured int8 matrix-multiply peak (ops/s) of ONNX Runtime's ``MatMulInteger`` (uint8 x int8), or None.

    None when ``onnx`` / ``onnxruntime`` are not installed.
    """
    try:
        onnx = require("onnx")
        require("onnxruntime")
    except ExportError:
        return None
    helper, tensor = onnx.helper, onnx.TensorProto
    weight = onnx.numpy_helper.from_array(torch.randint(-127, 128, (size, size), dtype=torch.int8).numpy(), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])],
        "peak",
        [helper.make_tensor_value_info("x", tensor.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", tensor.INT32, [size, size])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "peak.onnx"
        path.write_bytes(model.SerializeToString())
        run = ort_runner(path, threads)
    x = torch.randint(0, 256, (size, size), dtype=torch.uint8)
    return 2 * size**3 / statistics.median(time_runs(run, x, 2, repeats))


def measure(
    run: Run, subject: Subject, backend: str, batch: int, resolution: int, threads: int, runs: int, peak: float | None
) -> Row:
    """Time ``run`` on a batch of ``batch`` random images and make the row."""
    x = torch.randn(batch, subject.in_chans, resolution, resolution)
    warmup = 3 if batch == 1 else 2
    times_ms = sorted(t * 1e3 for t in time_runs(run, x, warmup, runs))
    median = statistics.median(times_ms)
    p90 = times_ms[min(len(times_ms) - 1, math.ceil(0.9 * len(times_ms)) - 1)]
    floor = 2 * subject.mult_adds * batch / peak * 1e3 if peak else None
    return Row(
        model=subject.name,
        backend=backend,
        precision="int8" if backend in INT8_BACKENDS else "fp32",
        batch=batch,
        threads=threads,
        mult_adds=subject.mult_adds,
        runs=runs,
        median_ms=median,
        p90_ms=p90,
        min_ms=times_ms[0],
        max_ms=times_ms[-1],
        images_per_s=batch / median * 1e3,
        floor_ms=floor,
        floor_pct=100 * floor / median if floor else None,
    )


def default_threads() -> int:
    """Every core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_bench(
    models: Sequence[str] = DEFAULT_MODELS,
    backends: Sequence[str] = BACKENDS,
    batches: Sequence[int] = (1, 32),
    resolution: int = 224,
    threads: int | None = None,
    runs: int = 30,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[Row], list[Skip], dict[str, Any]]:
    """Time every model on every backend at every batch size; returns rows, skipped pairs and run facts.

    ``runs`` timed calls at batch 1 (at least 20), a third of that (at least 5) at larger batches.
    A backend that cannot run a model here (not installed, export unsupported) is skipped with its
    reason. The facts are the threads and the measured fp32 / int8 peaks.
    """
    check_backends(backends)
    check_models(models)
    if runs < 20:
        raise ConfigError(f"--runs must be at least 20 (batch 1 statistics), got {runs}")
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    _executorch_threads(threads)
    peaks = {"fp32": fp32_peak(), "int8": int8_peak(threads)}
    facts = {"threads": threads, "fp32_peak_gflops": peaks["fp32"] / 1e9, "resolution": resolution}
    facts["int8_peak_gops"] = peaks["int8"] / 1e9 if peaks["int8"] else None
    rows: list[Row] = []
    skips: list[Skip] = []
    for name in models:
        try:
            subject = load_subject(name, resolution)
        except ExportError as err:  # a peer library that is not installed
            skips.extend(Skip(name, backend, str(err)) for backend in backends)
            continue
        images = torch.rand(CALIB_IMAGES, subject.in_chans, resolution, resolution) * 4 - 2
        with tempfile.TemporaryDirectory() as work:
            for backend in backends:
                log(f"{name} / {backend}")
                torch._dynamo.reset()  # compiled functions of earlier pairs would count against the recompile limit
                try:
                    run = build(backend, subject, resolution, images, Path(work), threads)
                except Exception as err:  # any library's failure to build this pair is a skip, not an abort
                    skips.append(Skip(name, backend, _first_line(err)))
                    continue
                peak = peaks["int8" if backend in INT8_BACKENDS else "fp32"]
                for batch in batches:
                    count = runs if batch == 1 else max(5, runs // 3)
                    rows.append(measure(run, subject, backend, batch, resolution, threads, count, peak))
    return rows, skips, facts


def _executorch_threads(threads: int) -> None:
    try:
        portable = require("executorch.extension.pybindings.portable_lib", "executorch")
    except ExportError:
        return
    portable._unsafe_reset_threadpool(threads)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


def table(rows: Sequence[Row], skips: Sequence[Skip], facts: dict[str, Any]) -> str:
    """The results as a Markdown table, with the run's facts and the skipped pairs below it."""
    headers = ["model", "backend", "precision", "batch", "MMAC", "median ms", "p90 ms", "min ms", "max ms"]
    headers += ["img/s", "floor ms", "% of floor"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        floor = f"{r.floor_ms:.2f} | {r.floor_pct:.0f}%" if r.floor_ms else "- | -"
        lines.append(
            f"| {r.model} | {r.backend} | {r.precision} | {r.batch} | {r.mult_adds / 1e6:.0f} | {r.median_ms:.2f} | "
            f"{r.p90_ms:.2f} | {r.min_ms:.2f} | {r.max_ms:.2f} | {r.images_per_s:.1f} | {floor} |"
        )
    int8 = f"{facts['int8_peak_gops']:.1f} GOP/s" if facts["int8_peak_gops"] else "not measured"
    lines.append("")
    lines.append(
        f"threads {facts['threads']}, input {facts['resolution']}; matmul peak fp32 "
        f"{facts['fp32_peak_gflops']:.1f} GFLOP/s, int8 {int8}"
    )
    lines.extend(f"skipped {s.model} / {s.backend}: {s.reason}" for s in skips)
    return "\n".join(lines)


def as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One object per (model, backend, batch)."""
    return [asdict(r) for r in rows]


def plot(rows: Sequence[Row], path: str | Path, batch: int = 1) -> None:
    """Latency (median, ``batch``) against mult-adds, one marker per backend, each point named by model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = [r for r in rows if r.batch == batch]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = dict(zip(BACKENDS, "osDv^<>p", strict=True))
    for backend in BACKENDS:
        points = [r for r in picked if r.backend == backend]
        if points:
            xs = [r.mult_adds / 1e6 for r in points]
            ax.scatter(xs, [r.median_ms for r in points], marker=markers[backend], label=backend, s=40)
    for r in picked:
        ax.annotate(r.model, (r.mult_adds / 1e6, r.median_ms), fontsize=6, alpha=0.6)
    ax.set_xlabel("mult-adds (millions)")
    ax.set_ylabel(f"median latency, batch {batch} (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
