"""Our conversion of Google's TFLite MobileNets (V1, V2, V3) against the TFLite interpreter.

Both see the same pixels: shorter side resized to R / 0.875 (bilinear), centre crop R x R, uint8.
The interpreter takes the uint8 image; our model takes the float value the quantized model's
input stands for (the card's mean/std: (q - 128) / 128, or / 127 for V3's files). Top-1 compares
the 1001 logits (the interpreter's dequantized pre-softmax tensor, so that no ties come from the
8-bit softmax); ImageNet label i is output i + 1. Requirements: agreement >= 95% of images
(>= 90% for V1 0.25-128 and for V3, whose uint8 activations round hard-swish), top-1 within 1.5
points for V1 and 1 point for V2 and V3.

Each model runs twice: with float activations, and with every layer's output rounded to the
file's uint8 grid as the interpreter computes (``mobilenet.load(..., activations="uint8")``).
A model meets the requirements when one of the two does: the float one for files converted
after training (V1, V2), the uint8 one for files trained with quantization in place (V3).

Run: .venv/bin/python benchmarks/tflite_agreement.py [--limit N]
Writes docs/results/tflite_agreement.md (needs ai-edge-litert: pip install -e '.[dev]').
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mobilenet import load
from mobilenet.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")
WEIGHTS = DATA.parent / "weights" / "tflite"
OUT = ROOT / "docs" / "results" / "tflite_agreement.md"
CROP_PCT = 0.875
MODELS: dict[str, tuple[int, tuple[str, ...]]] = {
    "0.25-128": (128, ("mobilenet_v1_0.25_128_quant.tflite",)),
    "0.5-160": (160, ("mobilenet_v1_0.5_160_quant.tflite",)),
    "0.75-192": (192, ("mobilenet_v1_0.75_192_quant.tflite",)),
    "1.0-224": (
        224,
        ("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", "mobilenet_quant_v1_224_head_layers.tflite"),
    ),
    "v2 1.0-224": (224, ("mobilenet_v2_1.0_224_quant.tflite",)),
    "v3-small 1.0-224": (224, ("v3-small_224_1.0_uint8.tflite",)),
    "v3-large-minimal 1.0-224": (224, ("v3-large-minimalistic_224_1.0_uint8.tflite",)),
}
MIN_AGREEMENT = {"0.25-128": 0.90, "v3-small 1.0-224": 0.90, "v3-large-minimal 1.0-224": 0.90}
DEFAULT_MIN_AGREEMENT = 0.95
MAX_TOP1_GAP = {"0.25-128": 1.5, "0.5-160": 1.5, "0.75-192": 1.5, "1.0-224": 1.5}  # points
DEFAULT_MAX_TOP1_GAP = 1.0


@dataclass(frozen=True)
class Row:
    model: str
    activations: str
    images: int
    labelled: int
    agreement: float
    photos_agreeing: int  # of the unlabelled everyday photos
    ours_top1: float
    tflite_top1: float
    ours_ms: float
    tflite_ms: float

    @property
    def ok(self) -> bool:
        enough = self.agreement >= MIN_AGREEMENT.get(self.model, DEFAULT_MIN_AGREEMENT)
        return enough and abs(self.ours_top1 - self.tflite_top1) <= MAX_TOP1_GAP.get(self.model, DEFAULT_MAX_TOP1_GAP)


def image_list(data: Path, limit: int | None = None) -> list[tuple[Path, int | None]]:
    """The everyday photos (no label) and the labelled ImageNet sample (label 0-999), ``limit`` of each."""
    photos = sorted(p for p in (data / "images").iterdir() if p.is_file())[:limit]
    with (data / "imagenet-val-sample" / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))[:limit]
    sample = [(data / "imagenet-val-sample" / "images" / row["file"], int(row["label"])) for row in rows]
    return [(p, None) for p in photos] + sample


def preprocess(path: Path, size: int) -> np.ndarray:
    """uint8 HxWx3: shorter side to ``size / 0.875``, centre crop ``size``."""
    image = Image.open(path).convert("RGB")
    scale = round(size / CROP_PCT) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.array(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


class Interpreter:
    """The TFLite interpreter on one model, or on a body and head chained; returns float logits."""

    def __init__(self, paths: Sequence[Path]) -> None:
        from ai_edge_litert.interpreter import Interpreter as Litert

        self.parts = []
        for path in paths:
            part = Litert(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True)
            part.allocate_tensors()
            self.parts.append(part)
        self.logits_index = _softmax_input(paths[-1])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = image[None]
        for part in self.parts:
            part.set_tensor(part.get_input_details()[0]["index"], x)
            part.invoke()
            x = part.get_tensor(part.get_output_details()[0]["index"])
        last = self.parts[-1]
        detail = next(d for d in last.get_tensor_details() if d["index"] == self.logits_index)
        scale, zero = detail["quantization"]
        return (last.get_tensor(self.logits_index).astype(np.float32).reshape(-1) - zero) * scale


def _softmax_input(path: Path) -> int:
    """Index of the tensor that the last graph's SOFTMAX reads: the logits."""
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if model.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.SOFTMAX:
            return int(op.Inputs(0))
    return int(graph.Outputs(0))


def compare(
    name: str, images: list[tuple[Path, int | None]], weights: Path = WEIGHTS, activations: str = "float"
) -> Row:
    """Top-1 agreement and accuracy of our converted model and the interpreter on ``images``."""
    size, files = MODELS[name]
    paths = [weights / f for f in files]
    model, card = load(paths if len(paths) > 1 else paths[0], activations=activations)
    mean, std = torch.tensor(card.mean).view(1, -1, 1, 1), torch.tensor(card.std).view(1, -1, 1, 1)
    interpreter = Interpreter(paths)
    ours, theirs, labels, ours_time, tflite_time = [], [], [], 0.0, 0.0
    for path, label in images:
        pixels = preprocess(path, size)
        start = time.perf_counter()
        with torch.no_grad():
            x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - mean) / std
            ours.append(int(model(x).argmax()))
        ours_time += time.perf_counter() - start
        start = time.perf_counter()
        theirs.append(int(interpreter(pixels).argmax()))
        tflite_time += time.perf_counter() - start
        labels.append(None if label is None else label + card.label_offset)
    labelled = [i for i, label in enumerate(labels) if label is not None]
    agree = [a == b for a, b in zip(ours, theirs, strict=True)]
    return Row(
        name,
        activations,
        len(images),
        len(labelled),
        float(np.mean(agree)),
        sum(a for a, label in zip(agree, labels, strict=True) if label is None),
        100 * float(np.mean([ours[i] == labels[i] for i in labelled])) if labelled else float("nan"),
        100 * float(np.mean([theirs[i] == labels[i] for i in labelled])) if labelled else float("nan"),
        1000 * ours_time / len(images),
        1000 * tflite_time / len(images),
    )


def markdown(rows: list[Row]) -> str:
    headers = [
        "model",
        "activations",
        "images",
        "top-1 agreement",
        "photos agreeing",
        "our top-1",
        "TFLite top-1",
        "gap",
    ]
    headers += ["ours ms/img", "TFLite ms/img", "ok"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        cells = [
            r.model,
            r.activations,
            r.images,
            f"{100 * r.agreement:.1f}%",
            f"{r.photos_agreeing}/{r.images - r.labelled}",
            f"{r.ours_top1:.1f}%",
            f"{r.tflite_top1:.1f}%",
            f"{r.ours_top1 - r.tflite_top1:+.1f}",
            f"{r.ours_ms:.1f}",
            f"{r.tflite_ms:.1f}",
            "yes" if r.ok else "NO",
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="folder of Google's .tflite files")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding images/ and imagenet-val-sample/")
    parser.add_argument("--limit", type=int, help="at most this many images of each folder (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = image_list(args.data, args.limit)
    rows = [compare(name, images, args.weights, mode) for name in MODELS for mode in ("float", "uint8")]
    table = markdown(rows)
    print(table)
    labelled = rows[0].labelled
    text = (
        "# Google's TFLite MobileNets: our conversion against the TFLite interpreter\n\n"
        "Generated by `.venv/bin/python benchmarks/tflite_agreement.py`: "
        f"{rows[0].images - labelled} photos of `shared/data/images` and {labelled} labelled images of "
        "`shared/data/imagenet-val-sample`, the same uint8 pixels for both (shorter side to R/0.875, centre crop R; "
        "ours sees the float value the uint8 input stands for); ours with float activations, and with each layer's "
        'output on the file\'s uint8 grid (`activations="uint8"`). Top-1 accuracy on the labelled images; one '
        f"CPU thread each, batch 1. Required: agreement >= {100 * DEFAULT_MIN_AGREEMENT:.0f}% (V1 0.25-128 and "
        f"V3: 90%), top-1 within 1.5 points (V1) or {DEFAULT_MAX_TOP1_GAP:g} (V2, V3), by one of the two rows of a "
        f"model.\n\n{table}\n"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, lambda tmp: tmp.write_text(text))
    return 0 if all(any(r.ok for r in rows if r.model == name) for name in MODELS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
