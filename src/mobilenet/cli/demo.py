"""``mobilenet demo``: the main job in a few minutes (train on Fashion-MNIST, evaluate, report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenet.cli._format import millions, table
from mobilenet.demo import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="train a MobileNet on Fashion-MNIST briefly, evaluate it, print the results")
    p.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="checkpoint folder (an earlier demo's is replaced)"
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps-per-epoch", type=int, default=150, help="cap per epoch (0: whole epochs)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    figures = run_demo(args.out, args.epochs, args.steps_per_epoch or None)
    rows = [
        ("test top-1", f"{100 * figures['test_top1']:.2f}% of {figures['test_images']:,} Fashion-MNIST test images"),
        ("test top-5", f"{100 * figures['test_top5']:.2f}%"),
        ("parameters", millions(figures["params"])),
        ("mult-adds", f"{millions(figures['mult_adds'])} per 28x28 image"),
        ("latency", f"{figures['latency_ms']:.2f} ms (batch 1, CPU, median)"),
        ("training time", f"{figures['train_seconds']:.0f} s"),
        ("checkpoint", figures["checkpoint"]),
    ]
    print(f"\n{figures['model']} (short demo run)\n")
    print(table(("figure", "value"), rows))
    print("\nThe full recipe: mobilenet train --recipe fashion-mnist --out runs/fashion (see docs/RESULTS.md)")
    return 0
