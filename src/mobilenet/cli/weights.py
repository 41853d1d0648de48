"""``mobilenet convert``: weights from TFLite, Keras, timm or Hugging Face into our ``.safetensors``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenet.cli.evaluate import add_labels, labelled
from mobilenet.errors import WeightsError
from mobilenet.weights import load_weights, save_native


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command."""
    p = sub.add_parser("convert", help="convert pretrained weights into our .safetensors (with metadata)")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SRC",
        help="a weights file or Hugging Face folder (format recognised by content), a tag (timm, hf, keras, "
        "TAG:VARIANT), or Google's 1.0-224 TFLite body and head files, in either order",
    )
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--num-classes", type=int, help="1000 drops the background class of Google's 1001-class weights")
    add_labels(p)
    p.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    if len(args.sources) > 2:
        raise WeightsError(f"expected one source, or two TFLite files (body and head); got {len(args.sources)}")
    overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model, card = load_weights(args.sources[0] if len(args.sources) == 1 else args.sources, **overrides)
    card = labelled(card, args.labels)
    save_native(model, card.replace(extra={**card.extra, "converted_from": card.source}), args.out)
    print(f"wrote {args.out}: {card.summary()}")
    return 0
