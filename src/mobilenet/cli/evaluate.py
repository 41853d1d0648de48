"""``mobilenet eval`` and ``mobilenet predict``: accuracy on a data set, top-k for images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mobilenet.card import ModelCard
from mobilenet.cli._format import table
from mobilenet.data import find_images, load_eval_folder
from mobilenet.devices import choose_device
from mobilenet.errors import WeightsError
from mobilenet.evaluate import evaluate, save_confusion_png
from mobilenet.inference import Predictor
from mobilenet.load import ACTIVATIONS, is_run_folder, load
from mobilenet.weights.labels import read_labels


def add_model_source(p: argparse.ArgumentParser) -> None:
    """The three ways to name a model: a run folder, weights, an exported file (all read by ``mobilenet.load``)."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="training --out folder (best, else last)")
    source.add_argument("--weights", metavar="W", help="weights in any format (e.g. Google's .tflite), or a tag")
    source.add_argument(
        "--exported", metavar="FILE", help="a file written by `mobilenet export` (.onnx, .pte, .pt2, OpenVINO .xml)"
    )
    add_labels(p)
    p.add_argument(
        "--activations",
        choices=ACTIVATIONS,
        default="float",
        help="uint8: round each layer's output to an 8-bit TFLite file's grid, as the TFLite interpreter does "
        "(Google's V3 files were trained that way); default float",
    )


def add_labels(p: argparse.ArgumentParser) -> None:
    """``--labels FILE``: class names for weights that carry none (one a line)."""
    p.add_argument("--labels", metavar="FILE", help="class names, one a line, in output order (replaces the model's)")


def labelled(card: ModelCard, labels: str | None) -> ModelCard:
    """``card`` with the class names of ``--labels`` if given."""
    return card.with_labels(read_labels(labels), labels) if labels else card


def load_source(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, ModelCard]:
    """The model the arguments name, on ``device``, and its card."""
    if args.checkpoint and not is_run_folder(Path(args.checkpoint)):
        raise WeightsError(f"no training run at {args.checkpoint}: pass a mobilenet train --out folder")
    model, card = load(args.checkpoint or args.weights or args.exported, activations=args.activations)
    return model.to(device), labelled(card, args.labels)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` and ``predict``."""
    p = sub.add_parser("eval", help="top-1/top-5, loss, per-class accuracy and a confusion matrix on a data set")
    add_model_source(p)
    p.add_argument("--data", required=True, help="image folder (root/<class>/<image>) or fashion-mnist / cifar10")
    p.add_argument("--data-root", help="where named data sets live")
    p.add_argument("--split", default="test", help="split of a named data set (default test)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--confusion",
        type=Path,
        metavar="FILE.png",
        help="write a confusion-matrix PNG here (default: confusion_<data>.png in a --checkpoint run folder; "
        "none for --weights / --exported)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument(
        "--tta", choices=("none", "flip"), default="none", help="flip: mean logits of each image and its mirror"
    )
    p.set_defaults(run=run_eval)

    p = sub.add_parser("predict", help="top-k classes of image files or folders")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    add_model_source(p)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.set_defaults(run=run_predict)


def run_eval(args: argparse.Namespace) -> int:
    device = choose_device(args.device)
    model, card = load_source(args, device)
    classes = card.eval_classes or card.output_names()
    dataset, classes = load_eval_folder(
        args.data,
        resolution=card.input_size,
        in_chans=card.in_chans,
        mean=card.mean,
        std=card.std,
        classes=classes,
        data_root=args.data_root,
        split=args.split,
        crop_fraction=card.crop_fraction,
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=0)
    logit_map = torch.arange(card.label_offset, len(card.classes)) if card.label_offset else None
    result = evaluate(model, loader, classes, device, logit_map=logit_map, flip_tta=args.tta == "flip")
    png = args.confusion
    if png is None and args.checkpoint:
        png = Path(args.checkpoint) / f"confusion_{Path(args.data).name or 'data'}.png"
    if png is not None:
        save_confusion_png(result, png, f"{Path(args.data).name}: top-1 {100 * result.top1:.2f}% ({result.n} images)")
    if args.json:
        source = {k: getattr(args, k) for k in ("checkpoint", "exported", "weights") if getattr(args, k)}
        confusion = {"confusion_png": str(png)} if png is not None else {}
        print(json.dumps({**result.as_dict(), "tta": args.tta, **confusion, **source}))
        return 0
    tta = " (flip TTA: mean of each image and its mirror)" if args.tta == "flip" else ""
    print(f"{args.data}: {result.n} images, {len(classes)} classes{tta}")
    print(f"top-1 {100 * result.top1:.2f}%   top-5 {100 * result.top5:.2f}%   loss {result.loss:.4f}\n")
    rows = [(name, "-" if acc is None else f"{100 * acc:.1f}%") for name, acc in result.per_class().items()]
    print(table(("class", "accuracy"), rows, [False, True]))
    if png is not None:
        print(f"\nconfusion matrix: {png}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    device = choose_device(args.device)
    predictor = Predictor(*load_source(args, device), device)
    for prediction in predictor.predict_files(find_images(args.inputs), args.topk):
        if args.json:
            print(json.dumps(prediction.as_dict()))
        else:
            best = ", ".join(f"{p['label']} {100 * p['prob']:.1f}%" for p in prediction.topk)
            print(f"{prediction.file}: {best}")
        sys.stdout.flush()
    return 0
