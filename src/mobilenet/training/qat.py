"""Quantization-aware training: fine-tune a float model with int8 simulated, then write the int8 file.

``mobilenet train --qat --weights FLOAT ...`` is for when post-training quantization loses more
than a point. The float model (a training ``--out`` folder or any weights ``load_weights`` reads)
is captured with ``torch.export`` and prepared by PT2E for QAT with the x86 quantizer
(``X86InductorQuantizer(is_qat=True)``: conv + BN folded as they will be at inference, fake-quant
on per-channel int8 weights and uint8 activations, 7-bit with ``reduce_range``). It is trained
with BN statistics frozen (batch statistics of a few QAT epochs only add noise to folded scales)
and dropout off; the optimiser, schedule, label smoothing and data pipeline are those of
``mobilenet train``. Each epoch evaluates the fake-quantized model on the validation split; the end
result is ``<out>/model_int8.pt2`` (PT2E converted, run by Inductor), which ``mobilenet eval
--exported`` evaluates like any exported file. Single process, no EMA, no resume: a QAT run is
minutes to an hour.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mobilenet.errors import ConfigError
from mobilenet.export.metadata import export_meta, require
from mobilenet.export.pt2e import INSTALL, capture, save_pt2
from mobilenet.training.checkpoint import load_model
from mobilenet.training.config import TrainConfig
from mobilenet.training.distributed import setup
from mobilenet.training.loop import (
    TrainingError,
    _evaluate,
    _Logger,
    _normalised_like,
    _prepare_output,
    _seed,
    load_training_data,
)
from mobilenet.training.optim import build_optimizer, build_scheduler

INT8_FILE = "model_int8.pt2"


def load_float(weights: str) -> tuple[nn.Module, dict[str, Any]]:
    """The float model to quantize: a training ``--out`` folder, or weights in any format we read."""
    folder = Path(weights)
    if folder.is_dir() and any((folder / f"{tag}.safetensors").is_file() for tag in ("best", "last")):
        return load_model(folder)
    from mobilenet.weights import load_weights

    return load_weights(weights)


def train_qat(config: TrainConfig) -> dict[str, Any]:
    """Run QAT as ``config`` says (``config.weights`` is the float model); returns the last epoch's metrics."""
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", INSTALL)
    helpers = require("torchao.quantization.pt2e", INSTALL)
    x86 = require("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", INSTALL)
    config.validate()
    if not config.weights:
        raise ConfigError("--qat needs --weights: the float checkpoint (a training --out folder) to quantize")
    rt = setup(config.device)
    if rt.distributed:
        raise ConfigError("--qat runs in one process: launch it without torchrun")
    out = Path(config.out)
    _prepare_output(out, config, resume=False)
    model, meta = load_float(config.weights)
    data = load_training_data(config, meta.get("input_size"), model.in_chans)
    data = _normalised_like(data, meta, config)
    classes = meta["classes"][int(meta.get("label_offset", 0)) :]
    if list(classes) != list(data.classes):
        raise ConfigError(f"--qat fine-tunes the float model's own task: its classes {classes} are not the data's")
    print(data.summary(), flush=True)
    _seed(config.seed)

    info = export_meta(model, meta, data.resolution)
    captured = capture(model.eval(), data.resolution).module()
    quantizer = x86.X86InductorQuantizer().set_global(
        x86.get_default_x86_inductor_quantization_config(is_qat=True, reduce_range=True)
    )
    prepared = pt2e.prepare_qat_pt2e(captured, quantizer).to(rt.device)
    helpers.allow_exported_model_train_eval(prepared)  # .eval() now switches the graph's BN and dropout
    prepared.eval()  # and it stays so: frozen BN statistics, no dropout

    optimizer = build_optimizer(prepared, config)
    loader = torch.utils.data.DataLoader(
        data.train, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=0
    )
    steps = min(len(loader), config.steps_per_epoch or len(loader))
    scheduler = build_scheduler(optimizer, config, steps)
    val_loader = torch.utils.data.DataLoader(data.val, batch_size=config.batch_size) if data.val is not None else None
    logger = _Logger(out, True)
    record: dict[str, Any] = {}
    for epoch in range(config.epochs):
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        for step, (images, labels) in enumerate(loader):
            if step >= steps:
                break
            images, labels = images.to(rt.device), labels.to(rt.device)
            logits = prepared(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingError(f"QAT loss became {loss.item()} at epoch {epoch + 1}: try a lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen, "train_top1": correct / seen}
        if val_loader is not None:
            result = _evaluate(prepared, val_loader, data.classes, config, rt)
            prepared.eval()  # evaluate() restores the mode it found; the graph must stay in eval mode
            record.update(val_loss=result.loss, val_top1=result.top1, val_top5=result.top5)
        record.update(images_per_s=seen / seconds, seconds=seconds)
        logger.write(record)
    logger.close()

    prepared.eval()
    converted = pt2e.convert_pt2e(copy.deepcopy(prepared).cpu())
    info["int8"] = {
        "runtime": "pytorch-inductor",
        "format": "PT2E QAT (X86InductorQuantizer)",
        "weights": "int8 per-channel",
        "activations": "uint8, 7-bit",
        "calibration": f"quantization-aware training, {config.epochs} epochs from {config.weights}",
        "calib_images": 0,
    }
    save_pt2(converted, out / INT8_FILE, info)
    print(f"done: int8 program in {out / INT8_FILE} (evaluate it with mobilenet eval --exported)", flush=True)
    return record


__all__ = ["INT8_FILE", "load_float", "train_qat"]
