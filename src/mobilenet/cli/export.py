"""``mobilenet export``: a checkpoint or pretrained weights as a file a runtime executes, float or int8."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from mobilenet.bench import pick_backend
from mobilenet.cli.evaluate import add_labels, labelled
from mobilenet.errors import ExportError
from mobilenet.export import DEFAULT_CALIB_IMAGES, DEFAULT_MAX_DROP, FORMATS, export
from mobilenet.export.runtime import FORMAT_SUFFIXES
from mobilenet.load import load
from mobilenet.models import MobileNet


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint or weights (BN folded) to ONNX, ExecuTorch, .pt2 or OpenVINO, optionally int8",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="training --out folder (best, else last)")
    source.add_argument("--weights", metavar="W", help="weights file or tag, as `mobilenet convert` takes")
    p.add_argument(
        "--format",
        default="onnx",
        help=f"one of {', '.join(FORMATS)} (default onnx), or auto: the format of the backend measured fastest "
        "on this machine at this precision (cached per machine; `mobilenet bench --pick`; --out takes its suffix)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the file to write")
    p.add_argument("--resolution", type=int, help="input size the file accepts (default: the model's)")
    p.add_argument("--int8", action="store_true", help="post-training static int8 quantization (needs --calib-data)")
    p.add_argument("--calib-data", metavar="PATH", help="calibration images: a folder or data set, as eval --data")
    p.add_argument("--calib-split", default="train", help="split of --calib-data to calibrate on (default train)")
    p.add_argument("--calib-images", type=int, default=DEFAULT_CALIB_IMAGES, metavar="N", help="images to calibrate on")
    p.add_argument(
        "--per-tensor", action="store_true", help="int8 weights with one scale per tensor (default: per channel)"
    )
    p.add_argument(
        "--reduce-range",
        choices=("auto", "on", "off"),
        default="auto",
        help="7-bit weights (onnx) / activations (pt2) against int8 saturation on x86 without VNNI; "
        "auto: onnx keeps whichever agrees better with the float model on the calibration images, pt2 on",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=100 * DEFAULT_MAX_DROP,
        metavar="POINTS",
        help="openvino --int8: accuracy budget, the percentage of calibration images that may change class "
        f"(NNCF keeps the most sensitive layers in float to stay within it; default {100 * DEFAULT_MAX_DROP})",
    )
    p.add_argument(
        "--nncf-preset",
        choices=("auto", "performance", "mixed"),
        default="auto",
        help="openvino --int8: NNCF's preset, symmetric (performance) or asymmetric (mixed) int8 activations; "
        "auto: mixed where the network has hard-swish, performance elsewhere",
    )
    p.add_argument("--data-root", help="where named data sets live")
    add_labels(p)
    p.add_argument("--json", action="store_true", help="print the exported file's metadata as one JSON object")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    model, card = load(args.checkpoint or args.weights)
    if not isinstance(model, MobileNet):
        raise ExportError(f"{args.weights} is already an exported file: export its checkpoint or weights instead")
    if not 0 <= args.max_drop <= 100:
        raise ExportError(f"--max-drop is a percentage of images, 0 to 100: got {args.max_drop}")
    export_format, pick, out = args.format, None, args.out
    if args.format == "auto":
        precision = "int8" if args.int8 else "fp32"
        pick = pick_backend(model, precision, resolution=args.resolution or card.input_size)
        export_format = pick.export_format
        out = out.with_suffix(FORMAT_SUFFIXES[export_format])
        if not args.json:
            print(f"fastest here: {pick.describe()}")
    info = export(
        model,
        out,
        export_format,
        args.resolution,
        labelled(card, args.labels),
        int8=args.int8,
        calib_data=args.calib_data,
        calib_images=args.calib_images,
        calib_split=args.calib_split,
        data_root=args.data_root,
        per_channel=not args.per_tensor,
        reduce_range={"auto": None, "on": True, "off": False}[args.reduce_range],
        max_drop=args.max_drop / 100,
        nncf_preset=None if args.nncf_preset == "auto" else args.nncf_preset,
    )
    if args.json:
        choice = {"choice": asdict(pick)} if pick else {}
        print(json.dumps({"out": str(out), "export_format": export_format, **choice, **info.to_dict()}))
        return 0
    quant = info.quantization
    precision = f"int8 ({quant['calib_images']} calibration images)" if quant else "float32"
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out}: {export_format}, {precision}, input {info.input_size}, {size_mb:.2f} MB")
    return 0
