"""The main job in a few minutes: train MobileNetV1 on Fashion-MNIST, evaluate it, report.

``mobilenet demo`` (what ``make demo`` runs) trains the ``fashion-mnist`` recipe with a short
schedule, evaluates the best checkpoint on the 10,000 test images, and prints accuracy,
parameters, mult-adds, latency and where the checkpoint is. The full recipe's figures are in
docs/RESULTS.md.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mobilenet.analysis import profile_module
from mobilenet.data import load_eval_folder
from mobilenet.evaluate import evaluate
from mobilenet.training import load_model, resolve_config, train


def latency_ms(model: torch.nn.Module, shape: tuple[int, ...], runs: int = 30) -> float:
    """Median batch-1 inference latency in milliseconds after warm-up, on the CPU."""
    model.eval()
    x = torch.zeros(1, *shape)
    times = []
    with torch.inference_mode():
        for i in range(runs + 5):
            start = time.perf_counter()
            model(x)
            if i >= 5:
                times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def run_demo(out: Path, epochs: int = 2, steps_per_epoch: int | None = 150, progress: bool = True) -> dict[str, Any]:
    """Train briefly, evaluate on the test split, and return the figures of the result table."""
    config = resolve_config(
        "fashion-mnist", out=str(out), epochs=epochs, steps_per_epoch=steps_per_epoch, progress=progress
    )
    start = time.perf_counter()
    train(config)
    train_seconds = time.perf_counter() - start
    model, meta = load_model(out)
    test, classes = load_eval_folder(
        "fashion-mnist", meta["input_size"], meta["in_chans"], tuple(meta["mean"]), tuple(meta["std"]), meta["classes"]
    )
    result = evaluate(model, DataLoader(test, batch_size=500), classes)
    shape = (meta["in_chans"], meta["input_size"], meta["input_size"])
    cost = profile_module(model, shape)
    return {
        "width_mult": model.width_mult,
        "test_top1": result.top1,
        "test_top5": result.top5,
        "test_images": result.n,
        "params": cost.params,
        "mult_adds": cost.mult_adds,
        "latency_ms": latency_ms(model, shape),
        "train_seconds": train_seconds,
        "checkpoint": str(out / "best.safetensors"),
    }
