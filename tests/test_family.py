"""Adding an architecture is one model file: a network registered here, and nothing else, runs through
train -> checkpoint -> load -> eval -> export (ONNX) -> bench."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

import mobilenet
from mobilenet.bench import run_bench
from mobilenet.cli import main
from mobilenet.models import MobileNet, ModelInfo, list_models, register_model
from mobilenet.models.base import check_common, init_weights
from mobilenet.models.layers import ConvBNAct
from mobilenet.training import resolve_config, train

WIDTHS = (8, 16)  # the test architecture's "table": output channels of its two stride-2 convolutions


class TinyNet(MobileNet):
    """A two-convolution network written the way a family member is: its table as data, the base surface."""

    arch = "tiny_test_net"
    shaping_args = ("in_chans",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0) -> None:
        super().__init__({"num_classes": num_classes, "in_chans": in_chans, "dropout": dropout})
        check_common(num_classes, in_chans, dropout)
        chans = [in_chans, *WIDTHS]
        self.blocks = nn.Sequential(*(ConvBNAct(a, b, 3, 2) for a, b in itertools.pairwise(chans)))
        self.min_input_size = 2 ** len(WIDTHS)
        self.feature_info = [
            {"module": f"blocks.{i}", "module_index": i, "num_chs": c, "reduction": 2 ** (i + 1)}
            for i, c in enumerate(WIDTHS)
        ]
        self.build_head(WIDTHS[-1], dropout)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.blocks(x)

    def feature_modules(self) -> Iterable[nn.Module]:
        return tuple(self.blocks)

    @classmethod
    def kwargs_from_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
        if set(state) & {"stem.conv.weight"} or "blocks.0.conv.weight" not in state or "blocks.2.conv.weight" in state:
            return None
        weight = state.get("classifier.weight")
        return {"in_chans": state["blocks.0.conv.weight"].shape[1], "num_classes": 0 if weight is None else len(weight)}


if "tiny_test_net" not in list_models():
    register_model(ModelInfo("tiny_test_net", TinyNet, {}, "a test-only architecture", input_size=32))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three colour classes of 32 px images (red, green, blue tints with noise), 12 each."""
    root = tmp_path_factory.mktemp("rgb")
    generator = torch.Generator().manual_seed(0)
    for label, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir()
        for i in range(12):
            pixels = torch.randint(0, 90, (32, 32, 3), generator=generator, dtype=torch.uint8)
            pixels[..., label] += 160
            Image.fromarray(pixels.numpy()).save(root / name / f"{i}.png")
    return root


def test_new_architecture_trains_loads_evaluates_exports_and_benches(folder: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    torch.set_num_threads(1)
    out = tmp_path / "run"
    config = resolve_config(
        data=str(folder), model="tiny_test_net", out=str(out), epochs=3, batch_size=12, lr=0.05, val_fraction=0.25
    )
    config.progress = False
    record = train(config)
    assert record["epoch"] == 3 and record["val_top1"] > 0.5  # colour is easy: far above chance (1/3)

    model, card = mobilenet.load(out)
    assert isinstance(model, TinyNet) and card.arch == "tiny_test_net"
    assert card.classes == ("blue", "green", "red") and card.input_size == 32 and card.kind == "small"

    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--data", str(folder), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["n"] == 36 and evaluated["top1"] > 0.5

    onnx_file = tmp_path / "tiny.onnx"
    assert main(["export", "--checkpoint", str(out), "--out", str(onnx_file)]) == 0
    runner, exported = mobilenet.load(onnx_file)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(runner(x), model(x), atol=1e-4)
    assert exported.arch == "tiny_test_net" and exported.classes == card.classes

    rows, skips, _ = run_bench(["tiny_test_net"], ["eager", "onnxruntime"], [1], resolution=32, threads=1, runs=20)
    assert not skips and {r.backend for r in rows} == {"eager", "onnxruntime"}
    assert all(r.mult_adds == 3 * 3 * 3 * 8 * 16 * 16 + 3 * 3 * 8 * 16 * 8 * 8 + 16 * 1000 for r in rows)
