"""Quantization-aware training's two ends: prepare a float model for it, convert the result to int8.

``mobilenet train --qat --weights FLOAT ...`` is for when post-training quantization loses more
than a point. The float model is captured with ``torch.export`` and prepared by PT2E for QAT
with the x86 quantizer (``X86InductorQuantizer(is_qat=True)``: conv + BN folded as they will be
at inference, fake-quant on per-channel int8 weights and uint8 activations, 7-bit with
``reduce_range``). The training loop then trains the prepared graph like any model, in eval
mode throughout (BN statistics frozen: batch statistics of a few QAT epochs only add noise to
folded scales; dropout off). :func:`convert_qat` turns it into int8 and writes a ``.pt2``
program that Inductor runs and ``mobilenet eval --exported`` evaluates.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from mobilenet.card import ModelCard
from mobilenet.export.metadata import export_card, require
from mobilenet.export.pt2e import INSTALL, capture, save_pt2

INT8_FILE = "model_int8.pt2"


def prepare_qat(model: torch.nn.Module, card: ModelCard, resolution: int) -> tuple[torch.fx.GraphModule, ModelCard]:
    """The fake-quantized graph of ``model`` at ``resolution`` to train, and the card its int8 file will carry.

    The graph is in eval mode (``.train()``/``.eval()`` switch its BN and dropout, which QAT
    keeps in eval mode).
    """
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", INSTALL)
    helpers = require("torchao.quantization.pt2e", INSTALL)
    x86 = require("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", INSTALL)
    info = export_card(model, card, resolution)
    captured = capture(model.eval(), resolution).module()
    quantizer = x86.X86InductorQuantizer().set_global(
        x86.get_default_x86_inductor_quantization_config(is_qat=True, reduce_range=True)
    )
    prepared = pt2e.prepare_qat_pt2e(captured, quantizer)
    helpers.allow_exported_model_train_eval(prepared)  # its eval() returns None, unlike nn.Module's
    prepared.eval()
    return prepared, info


def convert_qat(prepared: torch.fx.GraphModule, card: ModelCard, out: Path, calibration: str) -> ModelCard:
    """The trained fake-quantized graph converted to int8, written as the ``.pt2`` program ``out``; returns its card."""
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", INSTALL)
    prepared.eval()
    converted = pt2e.convert_pt2e(copy.deepcopy(prepared).cpu())
    quantization: dict[str, Any] = {
        "runtime": "pytorch-inductor",
        "format": "PT2E QAT (X86InductorQuantizer)",
        "weights": "int8 per-channel",
        "activations": "uint8, 7-bit",
        "calibration": calibration,
        "calib_images": 0,
    }
    info = card.replace(quantization=quantization)
    save_pt2(converted, out, info)
    return info
