"""The main job in a few minutes: train a MobileNet on Fashion-MNIST, evaluate it, report.

``mobilenet demo`` (what ``make demo`` runs) trains the ``fashion-mnist`` recipe with a short
schedule, evaluates the best checkpoint on the 10,000 test images, and prints accuracy,
parameters, mult-adds, latency and where the checkpoint is. The full recipe's figures are in
docs/RESULTS.md.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mobilenet.analysis import profile_module
from mobilenet.data import load_eval_folder
from mobilenet.errors import ConfigError
from mobilenet.evaluate import evaluate
from mobilenet.load import load
from mobilenet.training import resolve_config, train

MARKER = ".mobilenet-demo"
"""The file that marks a folder as the demo's own: only such a folder is ever replaced."""


def claim_folder(out: Path) -> None:
    """Empty ``out`` for a new demo run if the demo made it; refuse any other folder that holds files.

    A training run, or anything else a user keeps there, is never deleted.
    """
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ConfigError(
                f"{out} holds files the demo did not write (a training run?): it is left alone; "
                "pass another --out, or delete the folder yourself"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by mobilenet demo: the next demo run replaces this folder\n")


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
    """Train briefly in ``out`` (see :func:`claim_folder`), evaluate on the test split, return the figures."""
    claim_folder(out)
    config = resolve_config(
        "fashion-mnist", out=str(out), epochs=epochs, steps_per_epoch=steps_per_epoch, progress=progress
    )
    start = time.perf_counter()
    train(config)
    train_seconds = time.perf_counter() - start
    model, card = load(out)
    test, classes = load_eval_folder(
        "fashion-mnist", card.input_size, card.in_chans, card.mean, card.std, card.eval_classes
    )
    result = evaluate(model, DataLoader(test, batch_size=500), classes)
    shape = (card.in_chans, card.input_size, card.input_size)
    cost = profile_module(model, shape)
    return {
        "model": card.summary(),
        "test_top1": result.top1,
        "test_top5": result.top5,
        "test_images": result.n,
        "params": cost.params,
        "mult_adds": cost.mult_adds,
        "latency_ms": latency_ms(model, shape),
        "train_seconds": train_seconds,
        "checkpoint": str(out / "best.safetensors"),
    }
