"""Top-1 lost to int8: every int8 path against the float export, on three data sets .

Cases (each skipped, with the reason, when its model or data is missing):
- ``flowers17-ft``: the fine-tuned Flowers-17 checkpoint (``runs/flowers-ft``), calibrated on 256
  train images, evaluated on flowers17/valid;
- ``flowers17-relu6`` and ``flowers17-relu``: the ReLU6 / ReLU models trained from scratch with the
  same recipe and seed (``--recipe flowers17 [--act relu]``, ``runs/flowers-scratch[-relu]``),
  calibrated on 256 train images, evaluated on flowers17/valid (the seed article's ReLU6 claim);
- ``cifar10-relu6`` and ``cifar10-relu``: the same comparison on CIFAR-10 (``runs/cifar-relu6``,
  ``runs/cifar-relu``), calibrated on 256 train images, evaluated on the 10,000 test images;
- ``imagenet-sample``: Google's 1.0-224 weights converted to float, calibrated on 100 images of the
  300-image sample and evaluated on the other 200 (calibration and evaluation never share an image).

Paths: ONNX Runtime QDQ with per-channel and per-tensor weights, PT2E with the x86 quantizer
(``.pt2``, Inductor) and PT2E with the XNNPACK quantizer (``.pte``). The float reference is the
float ONNX file (equal to PyTorch within 1e-4: tests/test_export.py). Output: stdout and
``docs/results/int8_accuracy.md``.

Run: .venv/bin/python benchmarks/int8_accuracy.py [--cases flowers17-ft,cifar10-relu6,...]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobilenet.card import ModelCard
from mobilenet.data import load_eval_folder
from mobilenet.evaluate import evaluate
from mobilenet.export import export
from mobilenet.fileio import atomic_write_text
from mobilenet.load import load

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")
GOOGLE_224 = [
    DATA.parent / "weights" / "tflite" / name
    for name in ("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", "mobilenet_quant_v1_224_head_layers.tflite")
]
OUT = ROOT / "docs" / "results" / "int8_accuracy.md"
PATHS: dict[str, dict[str, Any]] = {
    "onnxruntime per-channel": {"format": "onnx", "per_channel": True},
    "onnxruntime per-tensor": {"format": "onnx", "per_channel": False},
    "pt2e x86 (.pt2)": {"format": "pt2", "per_channel": True},
    "pt2e xnnpack (.pte)": {"format": "executorch", "per_channel": True},
}


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
    folder = ROOT / run
    if not folder.is_dir():
        return f"{folder} not found (train it: see docs/RESULTS.md)"
    model, card = load(folder)
    return Case(name, model, card, DATA / data, "train", 256, DATA / data, eval_split)


def imagenet_case(work: Path) -> Case | str:
    sample = DATA / "imagenet-val-sample"
    if not all(p.is_file() for p in GOOGLE_224) or not sample.is_dir():
        return "Google's 1.0-224 TFLite files or the ImageNet sample not found"
    with (sample / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for part, picked in (("calib", rows[::3]), ("eval", [r for i, r in enumerate(rows) if i % 3])):
        (work / part / "images").mkdir(parents=True)
        for row in picked:
            (work / part / "images" / row["file"]).symlink_to(sample / "images" / row["file"])
        lines = ["file,label", *(f"{r['file']},{r['label']}" for r in picked)]
        (work / part / "labels.csv").write_text("\n".join(lines) + "\n")
    for extra in ("synset_words.txt",):
        for part in ("calib", "eval"):
            if (sample / extra).is_file():
                (work / part / extra).symlink_to(sample / extra)
    model, card = load([str(p) for p in GOOGLE_224])
    return Case("imagenet-sample", model, card, work / "calib", "test", len(rows[::3]), work / "eval", "test")


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


def run_case(case: Case, work: Path, paths: list[str]) -> list[str]:
    float_file = work / f"{case.name}.onnx"
    export(case.model, float_file, "onnx", card=case.card)
    base, n, seconds = top1(float_file, case)
    print(f"{case.name}: float {base:.2%} on {n} images ({seconds:.0f} s)", flush=True)
    lines = [f"| {case.name} | float (ONNX Runtime fp32) | {base:.2%} | - | {n} |"]
    for path in paths:
        options = PATHS[path]
        suffix = {"onnx": "onnx", "pt2": "pt2", "executorch": "pte"}[options["format"]]
        out = work / f"{case.name}-{path.split()[0]}-{path.split()[1]}.{suffix}"
        export(
            case.model,
            out,
            options["format"],
            card=case.card,
            int8=True,
            calib_data=case.calib,
            calib_images=case.calib_images,
            calib_split=case.calib_split,
            per_channel=options["per_channel"],
        )
        acc, n, seconds = top1(out, case)
        print(f"{case.name}: {path} {acc:.2%} (drop {100 * (base - acc):+.2f} points, {seconds:.0f} s)", flush=True)
        lines.append(f"| {case.name} | {path} | {acc:.2%} | {100 * (base - acc):.2f} | {n} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cases = ["flowers17-ft", "flowers17-relu6", "flowers17-relu", "cifar10-relu6", "cifar10-relu", "imagenet-sample"]
    parser.add_argument("--cases", default=",".join(cases))
    parser.add_argument("--paths", default=",".join(PATHS))
    args = parser.parse_args()
    paths = args.paths.split(",")
    lines = ["| case | int8 path | top-1 | drop (points) | images |", "|---|---|---|---|---|"]
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        builders = {
            "flowers17-ft": lambda: checkpoint_case("flowers17-ft", "runs/flowers-ft", "flowers17", "valid"),
            "flowers17-relu6": lambda: checkpoint_case("flowers17-relu6", "runs/flowers-scratch", "flowers17", "valid"),
            "flowers17-relu": lambda: checkpoint_case(
                "flowers17-relu", "runs/flowers-scratch-relu", "flowers17", "valid"
            ),
            "cifar10-relu6": lambda: checkpoint_case("cifar10-relu6", "runs/cifar-relu6", "cifar10", "test"),
            "cifar10-relu": lambda: checkpoint_case("cifar10-relu", "runs/cifar-relu", "cifar10", "test"),
            "imagenet-sample": lambda: imagenet_case(work),
        }
        for name in args.cases.split(","):
            case = builders[name]()
            if isinstance(case, str):
                notes.append(f"skipped {name}: {case}")
                print(notes[-1])
                continue
            lines.extend(run_case(case, work, paths))
    text = "\n".join([*lines, "", *notes, "", f"threads: {torch.get_num_threads()}"]) + "\n"
    print(text)
    atomic_write_text(OUT, text)


if __name__ == "__main__":
    main()
