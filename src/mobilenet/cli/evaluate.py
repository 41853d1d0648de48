"""``mobilenet eval`` and ``mobilenet predict``: accuracy on a data set, top-k for images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mobilenet.cli._format import table
from mobilenet.data import eval_transform, find_images, load_eval_folder
from mobilenet.evaluate import evaluate, save_confusion_png
from mobilenet.export import load_exported
from mobilenet.predict import predict_files
from mobilenet.training import load_model
from mobilenet.training.distributed import choose_device
from mobilenet.weights import load_weights


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` and ``predict``."""
    p = sub.add_parser("eval", help="top-1/top-5, loss, per-class accuracy and a confusion matrix on a data set")
    model_source = p.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--checkpoint", metavar="DIR", help="training --out folder (best, else last)")
    model_source.add_argument("--exported", metavar="FILE", help="a file written by `mobilenet export` (.onnx, .pte)")
    model_source.add_argument("--weights", metavar="W", help="pretrained weights (e.g. Google's .tflite), any format")
    p.add_argument("--data", required=True, help="image folder (root/<class>/<image>) or fashion-mnist / cifar10")
    p.add_argument("--data-root", help="where named data sets live")
    p.add_argument("--split", default="test", help="split of a named data set (default test)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--confusion", type=Path, help="confusion-matrix PNG (default: confusion_<data>.png by the model)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument(
        "--tta", choices=("none", "flip"), default="none", help="flip: mean logits of each image and its mirror"
    )
    p.set_defaults(run=run_eval)

    p = sub.add_parser("predict", help="top-k classes of image files or folders")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    model_source = p.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--checkpoint", metavar="DIR", help="training --out folder")
    model_source.add_argument("--weights", metavar="W", help="pretrained weights (e.g. Google's .tflite), any format")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.set_defaults(run=run_predict)


def _model_and_meta(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The model from --checkpoint, --exported or --weights, and metadata in the checkpoint's form.

    Weights with Google's background class (``label_offset`` 1) keep all outputs for prediction;
    ``logit_map`` selects the 1000 ImageNet outputs for evaluation against labels 0-999.
    """
    if getattr(args, "exported", None):
        return load_exported(args.exported)
    if args.checkpoint:
        return load_model(Path(args.checkpoint))
    model, weights_meta = load_weights(args.weights)
    classes = weights_meta["classes"] or [str(i) for i in range(weights_meta["arch"]["num_classes"])]
    offset = weights_meta.get("label_offset", 0)
    meta = {
        "classes": classes,
        "eval_classes": classes[offset:],
        "logit_map": torch.arange(offset, len(classes)) if offset else None,
        "mean": weights_meta["mean"],
        "std": weights_meta["std"],
        "input_size": weights_meta["input_size"],
        "in_chans": weights_meta["arch"].get("in_chans", 3),
        "kind": "photo",
    }
    return model.eval(), meta


def run_eval(args: argparse.Namespace) -> int:
    model, meta = _model_and_meta(args)
    device = choose_device(args.device)
    dataset, classes = load_eval_folder(
        args.data,
        resolution=meta["input_size"],
        in_chans=meta["in_chans"],
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        classes=meta.get("eval_classes", meta["classes"]),
        data_root=args.data_root,
        split=args.split,
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=0)
    result = evaluate(
        model.to(device), loader, classes, device, logit_map=meta.get("logit_map"), flip_tta=args.tta == "flip"
    )
    folder = Path(args.checkpoint or Path(args.exported or args.weights).parent)
    png = args.confusion or folder / f"confusion_{Path(args.data).name or 'data'}.png"
    save_confusion_png(result, png, f"{Path(args.data).name}: top-1 {100 * result.top1:.2f}% ({result.n} images)")
    if args.json:
        source = {k: getattr(args, k) for k in ("checkpoint", "exported", "weights") if getattr(args, k)}
        print(json.dumps({**result.as_dict(), "tta": args.tta, "confusion_png": str(png), **source}))
        return 0
    tta = " (flip TTA: mean of each image and its mirror)" if args.tta == "flip" else ""
    print(f"{args.data}: {result.n} images, {len(classes)} classes{tta}")
    print(f"top-1 {100 * result.top1:.2f}%   top-5 {100 * result.top5:.2f}%   loss {result.loss:.4f}\n")
    rows = [(name, "-" if acc is None else f"{100 * acc:.1f}%") for name, acc in result.per_class().items()]
    print(table(("class", "accuracy"), rows, [False, True]))
    print(f"\nconfusion matrix: {png}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    model, meta = _model_and_meta(args)
    files = find_images(args.inputs)
    transform = eval_transform(meta["kind"], meta["input_size"], tuple(meta["mean"]), tuple(meta["std"]))
    device = choose_device(args.device)
    predictions = predict_files(model, files, transform, meta["classes"], meta["in_chans"], args.topk, device)
    for prediction in predictions:
        if args.json:
            print(json.dumps(prediction.as_dict()))
        else:
            best = ", ".join(f"{p['label']} {100 * p['prob']:.1f}%" for p in prediction.topk)
            print(f"{prediction.file}: {best}")
        sys.stdout.flush()
    return 0
