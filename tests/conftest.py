"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder (``$MOBILENET_DATA``, else ``../shared/data``); skips when absent."""
    folder = Path(os.environ.get("MOBILENET_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} not found (set MOBILENET_DATA)")
    return folder


@pytest.fixture(autouse=True, scope="session")
def private_mobilenet_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Decoded-image caches and downloads of the whole suite go to a temporary folder, never ~/.cache."""
    folder = tmp_path_factory.mktemp("mobilenet-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOBILENET_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests (the test machines' cores are shared), restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def serve_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small model to serve: Google's 0.75-192 TFLite file from ``../shared``, else a tiny native file."""
    tflite = REPO_ROOT.parent / "shared" / "weights" / "tflite" / "mobilenet_v1_0.75_192_quant.tflite"
    if tflite.is_file():
        return str(tflite)
    from mobilenet import create_model
    from mobilenet.card import ModelCard
    from mobilenet.weights.native import save_native

    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=10).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # a zero-initialised classifier ties every class: top-1 would be arbitrary
        generator = torch.Generator().manual_seed(0)
        head.weight.normal_(0.0, 1.0, generator=generator)
        head.bias.normal_(0.0, 1.0, generator=generator)
    card = ModelCard("mobilenet_v1", classes=tuple(f"class{i}" for i in range(10)), input_size=64, source="test")
    return str(save_native(model, card, tmp_path_factory.mktemp("serve") / "tiny.safetensors"))
