"""Top-1 lost to int8: every int8 path against the float export, on three data sets, with batch-1 latency.

Cases (each skipped, with the reason, when its model or data is missing):
- ``flowers17-ft``: the fine-tuned Flowers-17 checkpoint (``runs/flowers-ft``), calibrated on 256
  train images, evaluated on flowers17/valid; ``flowers17-ft-v2``, ``flowers17-ft-v3-small`` and
  ``flowers17-ft-v3-large-minimal`` the same for the family's fine-tunes, ``flowers17-scratch-v3-large``
  and ``flowers17-scratch-v3-small`` for the V3s trained from scratch (:data:`CHECKPOINTS`);
- ``flowers17-relu6`` and ``flowers17-relu``: the ReLU6 / ReLU models trained from scratch with the
  same recipe and seed (``--recipe flowers17 [--act relu]``, ``runs/flowers-scratch[-relu]``),
  calibrated on 256 train images, evaluated on flowers17/valid (the seed article's ReLU6 claim);
- ``cifar10-relu6`` and ``cifar10-relu``: the same comparison on CIFAR-10 (``runs/cifar-relu6``,
  ``runs/cifar-relu``), calibrated on 256 train images, evaluated on the 10,000 test images;
  ``cifar10-v2-relu6`` and ``cifar10-v2-relu`` the same for V2 (``runs/cifar-v2-relu6[-relu]``);
- ``imagenet-sample`` (V1 1.0-224), ``imagenet-v1-075`` (V1 0.75-192), ``imagenet-v2`` (V2 1.0-224),
  ``imagenet-v3-small`` and ``imagenet-v3-large-minimal``: Google's TFLite weights converted to float, calibrated on 100
  images of the 300-image sample and evaluated on the other 200 (calibration and evaluation never
  share an image).

Paths: ONNX Runtime QDQ with per-channel and per-tensor weights, PT2E with the x86 quantizer
(``.pt2``, Inductor), PT2E with the XNNPACK quantizer (``.pte``), and OpenVINO NNCF: plain
post-training quantization (``openvino ptq``, what ``mobilenet bench``'s openvino-int8 runs; NNCF's
preset as the export picks it, ``mixed`` after hard-swish) or accuracy-controlled (``openvino nncf``,
the export's default); ``openvino ptq performance`` is plain quantization with symmetric
activations everywhere, to compare. The float reference is the
float ONNX file. With ``--latency`` each runtime's float file is exported too (its largest logit
difference from PyTorch is printed) and the batch-1 latency of float and int8 is measured per
runtime, in the same run (median of ``--runs`` calls). Output: stdout and
``docs/results/int8_accuracy.md``; with ``--record``, the ImageNet cases' drops go into
``mobilenet compare``'s results file (docs/results/family.json) as their members' int8 drop.

With ``--agreement`` each int8 file is compared with the float file, label-free, on more images
than accuracy is measured on (:func:`agreement_images`): the share of images whose top-1 it keeps
and the signal-to-quantization-noise ratio of its logits, which tell quantization settings apart
where a one-image difference in top-1 cannot.

Run: .venv/bin/python benchmarks/int8_accuracy.py [--cases flowers17-ft,...] [--latency] [--agreement] [--record]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobilenet.bench import time_runs
from mobilenet.card import ModelCard
from mobilenet.compare import DEFAULT_RESULTS, record
from mobilenet.data import load_eval_folder
from mobilenet.evaluate import evaluate
from mobilenet.export import export
from mobilenet.export.openvino_export import DEFAULT_MAX_DROP
from mobilenet.export.quantize import calibration_picks
from mobilenet.fileio import atomic_write_text
from mobilenet.load import load

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")
TFLITE = DATA.parent / "weights" / "tflite"
GOOGLE = {
    "imagenet-sample": (
        "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
        "mobilenet_quant_v1_224_head_layers.tflite",
    ),
    "imagenet-v1-075": ("mobilenet_v1_0.75_192_quant.tflite",),
    "imagenet-v2": ("mobilenet_v2_1.0_224_quant.tflite",),
    "imagenet-v3-small": ("v3-small_224_1.0_uint8.tflite",),
    "imagenet-v3-large-minimal": ("v3-large-minimalistic_224_1.0_uint8.tflite",),
}
"""Google's TFLite files per ImageNet case (V1 1.0-224 is a body file and a head file)."""
MEMBERS = {
    "imagenet-sample": "mobilenet_v1_100_224",
    "imagenet-v1-075": "mobilenet_v1_075_192",
    "imagenet-v2": "mobilenet_v2_100_224",
    "imagenet-v3-small": "mobilenet_v3_small",
    "imagenet-v3-large-minimal": "mobilenet_v3_large_minimal",
}
"""The family member (``mobilenet compare``'s row) of each ImageNet case."""
BACKEND_PATHS = {
    "onnxruntime-int8": "onnxruntime per-channel",
    "pt2e-int8": "pt2e x86 (.pt2)",
    "executorch-int8": "pt2e xnnpack (.pte)",
    "openvino-int8": "openvino ptq",
}
"""The int8 path behind each int8 backend of ``mobilenet bench``."""
OUT = ROOT / "docs" / "results" / "int8_accuracy.md"
FAMILY_FINETUNES = {
    "flowers17-ft-v2": "runs/flowers-ft-v2/last.safetensors",
    "flowers17-ft-v3-small": "runs/flowers-ftbn20-v3-small/last.safetensors",
    "flowers17-ft-v3-large-minimal": "runs/flowers-ftbn20-v3-large-minimal/last.safetensors",
}
"""Flowers-17 fine-tunes of the family's members (their last epoch, as ``mobilenet compare`` reports):
case -> checkpoint (docs/RESULTS.md has the commands)."""
CHECKPOINTS: dict[str, tuple[str, str, str]] = {
    "flowers17-ft": ("runs/flowers-ft", "flowers17", "valid"),
    **{name: (run, "flowers17", "valid") for name, run in FAMILY_FINETUNES.items()},
    "flowers17-scratch-v3-large": ("runs/flowers-scratch-v3-large/last.safetensors", "flowers17", "valid"),
    "flowers17-scratch-v3-small": ("runs/flowers-scratch-v3-small/last.safetensors", "flowers17", "valid"),
    "flowers17-relu6": ("runs/flowers-scratch", "flowers17", "valid"),
    "flowers17-relu": ("runs/flowers-scratch-relu", "flowers17", "valid"),
    "cifar10-relu6": ("runs/cifar-relu6", "cifar10", "test"),
    "cifar10-relu": ("runs/cifar-relu", "cifar10", "test"),
    "cifar10-v2-relu6": ("runs/cifar-v2-relu6", "cifar10", "test"),
    "cifar10-v2-relu": ("runs/cifar-v2-relu", "cifar10", "test"),
}
"""Cases of our own training runs: case -> (run folder or checkpoint, data set, evaluation split)."""
PATHS: dict[str, dict[str, Any]] = {
    "onnxruntime per-channel": {"format": "onnx", "per_channel": True},
    "onnxruntime per-tensor": {"format": "onnx", "per_channel": False},
    "pt2e x86 (.pt2)": {"format": "pt2", "per_channel": True},
    "pt2e xnnpack (.pte)": {"format": "executorch", "per_channel": True},
    "openvino nncf": {"format": "openvino", "per_channel": True, "max_drop": DEFAULT_MAX_DROP},
    "openvino ptq": {"format": "openvino", "per_channel": True, "max_drop": None},
    "openvino ptq performance": {"format": "openvino", "per_channel": True, "max_drop": None, "preset": "performance"},
}
SUFFIXES = {"onnx": "onnx", "pt2": "pt2", "executorch": "pte", "openvino": "xml"}
RUNTIMES = {"onnx": "ONNX Runtime", "pt2": "Inductor", "executorch": "ExecuTorch XNNPACK", "openvino": "OpenVINO"}


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    card: ModelCard
    calib: Path
    calib_split: str
    calib_images: int
    data: Path
    split: str


def checkpoint_case(name: str, run: str, data: str, eval_split: str) -> Case | str:
    source = ROOT / run
    if not source.exists():
        return f"{source} not found (train it: see docs/RESULTS.md)"
    model, card = load(source)
    return Case(name, model, card, DATA / data, "train", 256, DATA / data, eval_split)


def imagenet_case(name: str, work: Path) -> Case | str:
    """Google's weights of case ``name``: calibrated on every third image of the sample, evaluated on the rest."""
    sample = DATA / "imagenet-val-sample"
    weights = [TFLITE / file for file in GOOGLE[name]]
    if not all(p.is_file() for p in weights) or not sample.is_dir():
        return f"{', '.join(GOOGLE[name])} or the ImageNet sample not found"
    with (sample / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for part, picked in (("calib", rows[::3]), ("eval", [r for i, r in enumerate(rows) if i % 3])):
        folder = work / name / part
        if folder.is_dir():
            continue
        (folder / "images").mkdir(parents=True)
        for row in picked:
            (folder / "images" / row["file"]).symlink_to(sample / "images" / row["file"])
        lines = ["file,label", *(f"{r['file']},{r['label']}" for r in picked)]
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")
        if (sample / "synset_words.txt").is_file():
            (folder / "synset_words.txt").symlink_to(sample / "synset_words.txt")
    model, card = load([str(p) for p in weights] if len(weights) > 1 else weights[0])
    return Case(name, model, card, work / name / "calib", "test", len(rows[::3]), work / name / "eval", "test")


def top1(file: Path, case: Case) -> tuple[float, int, float]:
    """Top-1, images and seconds of the exported ``file`` on the case's evaluation data."""
    runtime, card = load(file)
    data, classes = load_eval_folder(
        str(case.data),
        card.input_size,
        card.in_chans,
        card.mean,
        card.std,
        card.eval_classes,
        split=case.split,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=50)
    start = time.perf_counter()
    result = evaluate(runtime, loader, classes)
    return result.top1, result.n, time.perf_counter() - start


def agreement_images(case: Case) -> list[torch.Tensor]:
    """Batches of the images each int8 file is compared with float on: the evaluation split, and the
    images of the calibration split that calibration does not take (the fine-tunes' other train images)."""
    splits = [(case.data, case.split, None), (case.calib, case.calib_split, case.calib_images)]
    batches = []
    for root, split, calibrated in splits:
        data, _ = load_eval_folder(
            str(root),
            case.card.input_size,
            case.card.in_chans,
            case.card.mean,
            case.card.std,
            case.card.eval_classes,
            split=split,
            cache="none",
        )
        skip = set(calibration_picks(len(data), calibrated)) if calibrated else set()
        kept = torch.utils.data.Subset(data, [i for i in range(len(data)) if i not in skip])
        batches += [images for images, _ in torch.utils.data.DataLoader(kept, batch_size=50)]
    return batches


def logits(file: Path, batches: list[torch.Tensor]) -> torch.Tensor:
    """The exported ``file``'s logits for every image of ``batches``."""
    runtime, _ = load(file)
    with torch.no_grad():
        return torch.cat([runtime(images) for images in batches])


def agreement(reference: torch.Tensor, int8: torch.Tensor) -> tuple[float, int, float]:
    """Share of images whose top-1 ``int8`` keeps, the images that change class, and the logits' SQNR in dB."""
    same = reference.argmax(1) == int8.argmax(1)
    noise = (reference - int8).pow(2).sum().clamp_min(1e-30)
    return same.float().mean().item(), int((~same).sum()), 10 * torch.log10(reference.pow(2).sum() / noise).item()


def batch1_ms(file: Path, runs: int) -> float:
    """Median batch-1 latency (ms) of the exported ``file`` on its runtime, after 5 untimed calls."""
    runtime, card = load(file)
    x = torch.randn(1, card.in_chans, card.input_size, card.input_size)
    return 1e3 * statistics.median(time_runs(runtime.run, x, 5, runs))


def max_difference(file: Path, case: Case) -> float:
    """Largest logit difference between the float ``file`` and the PyTorch model on 4 random images."""
    runtime, card = load(file)
    x = torch.randn(4, card.in_chans, card.input_size, card.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return (runtime(x) - case.model(x)[:, case.card.label_offset :]).abs().max().item()


def run_case(
    case: Case, work: Path, paths: list[str], runs: int | None, agree: bool = False
) -> tuple[list[str], list[str], list[str], dict[str, float]]:
    """The accuracy rows of ``case``, with ``runs`` its latency rows (float vs int8 per runtime), with
    ``agree`` its agreement rows (int8 against the float file, :func:`agreement`), and each path's drop
    in points."""
    float_files = {"onnx": work / f"{case.name}.onnx"}
    export(case.model, float_files["onnx"], "onnx", card=case.card)
    base, n, seconds = top1(float_files["onnx"], case)
    print(f"{case.name}: float {base:.2%} on {n} images ({seconds:.0f} s)", flush=True)
    lines = [f"| {case.name} | float (ONNX Runtime fp32) | {base:.2%} | - | {n} |"]
    latency: list[str] = []
    agreed: list[str] = []
    batches = agreement_images(case) if agree else []
    reference = logits(float_files["onnx"], batches) if agree else None
    drops: dict[str, float] = {}
    for path in paths:
        options = PATHS[path]
        fmt = options["format"]
        out = work / f"{case.name}-{'-'.join(word.strip('(.)') for word in path.split())}.{SUFFIXES[fmt]}"
        export(
            case.model,
            out,
            fmt,
            card=case.card,
            int8=True,
            calib_data=case.calib,
            calib_images=case.calib_images,
            calib_split=case.calib_split,
            per_channel=options["per_channel"],
            max_drop=options.get("max_drop", DEFAULT_MAX_DROP),
            nncf_preset=options.get("preset"),
        )
        acc, n, seconds = top1(out, case)
        print(f"{case.name}: {path} {acc:.2%} (drop {100 * (base - acc):+.2f} points, {seconds:.0f} s)", flush=True)
        lines.append(f"| {case.name} | {path} | {acc:.2%} | {100 * (base - acc):.2f} | {n} |")
        drops[path] = round(100 * (base - acc), 2)
        if reference is not None:
            share, flips, sqnr = agreement(reference, logits(out, batches))
            print(f"{case.name}: {path} keeps {share:.2%} of float's top-1 ({flips} change), SQNR {sqnr:.2f} dB")
            agreed.append(f"| {case.name} | {path} | {share:.2%} | {flips} | {sqnr:.2f} | {len(reference)} |")
        if runs:
            if fmt not in float_files:
                float_files[fmt] = work / f"{case.name}.{SUFFIXES[fmt]}"
                export(case.model, float_files[fmt], fmt, card=case.card)
            difference = max_difference(float_files[fmt], case)
            fp32, int8 = batch1_ms(float_files[fmt], runs), batch1_ms(out, runs)
            print(f"{case.name}: {path} fp32 {fp32:.2f} ms, int8 {int8:.2f} ms, fp32 vs PyTorch {difference:.1e}")
            figures = [f"{fp32:.2f}", f"{int8:.2f}", f"{fp32 / int8:.2f}x", f"{difference:.1e}"]
            cells = [case.name, RUNTIMES[fmt], path, *figures]
            latency.append(f"| {' | '.join(cells)} |")
    return lines, latency, agreed, drops


def record_drops(results: Path, drops: dict[str, dict[str, float]], command: str) -> None:
    """Write each ImageNet case's int8 drops into ``mobilenet compare``'s results file, as its member's.

    One drop per int8 backend of ``mobilenet bench`` whose path (:data:`BACKEND_PATHS`) was measured;
    the table shows the one of the member's fastest int8 backend.
    """
    figures = {}
    for case, by_path in drops.items():
        measured = {backend: by_path[path] for backend, path in BACKEND_PATHS.items() if path in by_path}
        if measured:
            figures[MEMBERS[case]] = {"int8_drops": measured}
    if figures:
        record(results, "int8_drop", figures, cpu_name(), command)
        print(f"wrote int8 drops of {', '.join(figures)} to {results}")


def cpu_name() -> str:
    """The CPU's model name and its int8-relevant vector extensions, as ``lscpu`` reports them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return f"{model} ({', '.join(f for f in wanted if f in flags) or 'no AVX2'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cases = [*CHECKPOINTS, *GOOGLE]
    parser.add_argument("--cases", default=",".join(cases))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--latency", action="store_true", help="also batch-1 latency of float and int8 per runtime")
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="also how often int8 keeps the float file's top-1, and the SQNR of its logits, on more images",
    )
    parser.add_argument("--runs", type=int, default=30, help="timed batch-1 calls per file (with --latency)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--record",
        type=Path,
        nargs="?",
        const=ROOT / DEFAULT_RESULTS,
        help="write the ImageNet cases' int8 drops into mobilenet compare's results file",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = args.paths.split(",")
    lines = ["| case | int8 path | top-1 | drop (points) | images |", "|---|---|---|---|---|"]
    latency = [
        "| case | runtime | int8 path | fp32 ms | int8 ms | int8 speed-up | fp32 file vs PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    agreement_rows = [
        "| case | int8 path | keeps float's top-1 | images that change class | logit SQNR (dB) | images |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    drops: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        builders = {
            **{name: (lambda name=name, at=at: checkpoint_case(name, *at)) for name, at in CHECKPOINTS.items()},
            **{name: (lambda name=name: imagenet_case(name, work)) for name in GOOGLE},
        }
        for name in args.cases.split(","):
            case = builders[name]()
            if isinstance(case, str):
                notes.append(f"skipped {name}: {case}")
                print(notes[-1])
                continue
            runs = args.runs if args.latency else None
            accuracy, timed, agreed, drops[name] = run_case(case, work, paths, runs, args.agreement)
            lines.extend(accuracy)
            latency.extend(timed)
            agreement_rows.extend(agreed)
    facts = f"threads: {torch.get_num_threads()}; CPU: {cpu_name()}; {time.strftime('%Y-%m-%d')}"
    tables = [*lines, "", *(latency if args.latency else []), "", *(agreement_rows if args.agreement else [])]
    tables += ["", *notes, "", facts]
    text = "\n".join(tables) + "\n"
    print(text)
    atomic_write_text(args.out, text)
    if args.record:
        command = "python benchmarks/int8_accuracy.py " + shlex.join(sys.argv[1:])
        record_drops(args.record, {case: d for case, d in drops.items() if case in MEMBERS}, command)


if __name__ == "__main__":
    main()
