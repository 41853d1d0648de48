"""Training: optimiser groups, schedules, sampler, exact resume, NaN handling, DDP equivalence, CLI."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torchvision.transforms.v2.functional import pil_to_tensor

from mobilenet import ModelCard, load
from mobilenet.cli import main
from mobilenet.errors import ConfigError
from mobilenet.models import create_model
from mobilenet.models.mobilenet_v1 import MobileNetV1
from mobilenet.models.mobilenet_v2 import MobileNetV2
from mobilenet.training import TrainConfig, TrainingError, resolve_config, train
from mobilenet.training.batchnorm import equalise_filter_norms, renormalise_batchnorm
from mobilenet.training.distributed import GlobalBatchSampler
from mobilenet.training.optim import RMSpropTF, build_optimizer, lr_factor, param_groups
from mobilenet.training.recipes import RECIPES
from mobilenet.weights import read_native, save_native

CLASSES = ("circle", "square", "stripe")
COLOURS = {  # seven classes (top-5 can miss), each a set of lit RGB channels; names in sorted order
    "blue": (0, 0, 1),
    "cyan": (0, 1, 1),
    "green": (0, 1, 0),
    "magenta": (1, 0, 1),
    "red": (1, 0, 0),
    "white": (1, 1, 1),
    "yellow": (1, 1, 0),
}
TIMED_KEYS = {"images_per_s", "seconds", "data_seconds"}


def _make_folder(root: Path, per_class: int = 8, size: int = 32, seed: int = 0, colours: dict | None = None) -> Path:
    """A tiny learnable image folder: each class a different colour pattern plus noise."""
    colours = colours or {name: tuple(int(c == i) for c in range(3)) for i, name in enumerate(CLASSES)}
    generator = torch.Generator().manual_seed(seed)
    for name, lit in colours.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = torch.rand(size, size, 3, generator=generator) * 60
            image += 150 * torch.tensor(lit, dtype=torch.float32)
            Image.fromarray(image.to(torch.uint8).numpy()).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_folder(tmp_path_factory.mktemp("tiny"), per_class=16)


def _config(data: Path, out: Path, **overrides: object) -> TrainConfig:
    values = {
        "data": str(data),
        "val_data": str(data),
        "out": str(out),
        "model": "mobilenet_v1",
        "width_mult": 0.25,
        "stem_stride": 1,
        "epochs": 2,
        "batch_size": 8,
        "lr": 0.05,
        "warmup_epochs": 0.5,
        "ema_decay": 0.9,
        "random_erasing": 0.5,
        "device": "cpu",
        "progress": False,
        "seed": 3,
        "workers": 0,
    }
    return TrainConfig(**{**values, **overrides})


def _metrics(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMED_KEYS} for line in lines]


def _read(file: str | Path) -> torch.Tensor:
    """An image file as a uint8 tensor (channels, height, width)."""
    with Image.open(file) as image:
        return pil_to_tensor(image.convert("RGB"))


def _scores(checkpoint: Path, folder: Path, flip: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 of a checkpoint on an image folder, computed here (``flip``: mean with the mirror)."""
    model, card = load(checkpoint)
    transform = card.eval_transform()
    images, labels = [], []
    for label, name in enumerate(card.eval_classes):
        for file in sorted((folder / name).glob("*.png")):
            images.append(transform(_read(file)))
            labels.append(label)
    targets = torch.tensor(labels)
    with torch.no_grad():
        batch = torch.stack(images)
        logits = (model(batch) + model(batch.flip(-1))) / 2 if flip else model(batch)
    top5 = logits.topk(5, dim=1).indices
    return {
        "loss": F.cross_entropy(logits, targets).item(),
        "top1": (logits.argmax(1) == targets).double().mean().item(),
        "top5": (top5 == targets[:, None]).any(1).double().mean().item(),
    }


# ------------------------------------------------------------------------ optimiser, schedule


def _ids(groups: list[dict], **match: object) -> set[int]:
    return {id(p) for g in groups if all(g[k] == v for k, v in match.items()) for p in g["params"]}


def test_weight_decay_groups_follow_the_paper() -> None:
    model = MobileNetV1(num_classes=10, width_mult=0.25)
    config = TrainConfig()
    groups = param_groups(model, config)
    decayed, plain = _ids(groups, weight_decay=config.weight_decay), _ids(groups, weight_decay=0.0)
    dw = model.blocks[0].dw.conv.weight
    pw = model.blocks[0].pw.conv.weight
    assert id(pw) in decayed and id(model.classifier.weight) in decayed
    assert {id(dw), id(model.blocks[0].dw.bn.weight), id(model.classifier.bias)} <= plain
    assert len(decayed) + len(plain) == len(list(model.parameters()))
    everything = param_groups(model, TrainConfig(decay_bn=True, decay_bias=True, decay_depthwise=True))
    assert _ids(everything, weight_decay=0.0) == set()


def test_body_learning_rate_scale() -> None:
    model = MobileNetV1(num_classes=10, width_mult=0.25)
    groups = param_groups(model, TrainConfig(lr=0.1, body_lr_scale=0.1))
    assert _ids(groups, lr=0.1) == {id(p) for p in model.classifier.parameters()}
    assert id(model.stem.conv.weight) in _ids(groups, lr=pytest.approx(0.01))


def test_schedules() -> None:
    cosine = lr_factor(TrainConfig(epochs=10, warmup_epochs=1, lr=0.1, min_lr=0.001), steps_per_epoch=10)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)  # halfway through the cosine
    assert cosine(100) == pytest.approx(0.01)
    tfslim = lr_factor(TrainConfig(schedule="exponential", epochs=10), steps_per_epoch=4)
    assert [tfslim(s) for s in (0, 9, 10, 20)] == pytest.approx([1.0, 1.0, 0.94, 0.94**2])
    step = lr_factor(TrainConfig(schedule="step", step_epochs=3, step_gamma=0.5), steps_per_epoch=1)
    assert [step(s) for s in (2, 3, 6)] == [1.0, 0.5, 0.25]


def test_rmsprop_tf_epsilon_inside_the_root() -> None:
    param = nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = RMSpropTF([param], lr=0.1, alpha=0.9, eps=1.0, momentum=0.5)
    param.grad = torch.tensor([0.5, 1.0])
    optimizer.step()
    square = 0.9 * 1.0 + 0.1 * param.grad**2  # TF starts the mean square at 1
    expected = torch.tensor([1.0, -2.0]) - 0.1 * param.grad / (square + 1.0).sqrt()
    torch.testing.assert_close(param.data, expected)
    assert isinstance(build_optimizer(MobileNetV1(width_mult=0.25), TrainConfig(optimizer="rmsprop")), RMSpropTF)


@pytest.mark.parametrize("world_size", [2, 4])
def test_data_order_does_not_depend_on_process_count(world_size: int) -> None:
    single = GlobalBatchSampler(50, 8, seed=5)
    shards = [GlobalBatchSampler(50, 8, rank, world_size, seed=5) for rank in range(world_size)]
    for sampler in (single, *shards):
        sampler.set_epoch(2)
    joined = [[i for part in parts for i in part] for parts in zip(*(list(s) for s in shards), strict=True)]
    assert joined == list(single) and len(joined) == 6
    single.set_epoch(3)
    assert list(single) != joined


def test_recipes_resolve_and_flags_override() -> None:
    config = resolve_config("fashion-mnist", epochs=3, out="x")
    assert config.epochs == 3 and config.data == "fashion-mnist" and config.recipe == "fashion-mnist"
    assert config.stem_stride == RECIPES["fashion-mnist"]["stem_stride"]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_is_a_valid_config(recipe: str) -> None:
    weights = "google.tflite" if "-finetune" in recipe else None  # fine-tuning recipes start from weights
    data = None if "data" in RECIPES[recipe] else "/data/imagenet"  # imagenet: the user's own folder
    config = resolve_config(recipe, out="x", weights=weights, data=data)
    config.validate()
    assert config.recipe == recipe and all(getattr(config, k) == v for k, v in RECIPES[recipe].items())


def test_imagenet_recipes_carry_their_sources_numbers() -> None:
    """V2: the paper's Section 6.1; V3: torchvision's published recipe (the paper's is for 4096-image TPU batches)."""
    v2_paper = resolve_config("imagenet-v2", data="/data/imagenet", out="x")
    assert (v2_paper.model, v2_paper.optimizer, v2_paper.lr, v2_paper.batch_size) == (
        "mobilenet_v2",
        "rmsprop",
        0.045,
        96,
    )
    assert (v2_paper.weight_decay, v2_paper.schedule, v2_paper.exp_gamma, v2_paper.exp_epochs) == (
        4e-5,
        "exponential",
        0.98,
        1.0,
    )
    factor = lr_factor(v2_paper, steps_per_epoch=10)
    assert factor(9) == 1.0 and factor(10) == pytest.approx(0.98) and factor(25) == pytest.approx(0.98**2)
    for name, model in (("imagenet-v3-large", "mobilenet_v3_large"), ("imagenet-v3-small", "mobilenet_v3_small")):
        v3 = resolve_config(name, data="/data/imagenet", out="x")
        assert (v3.model, v3.lr, v3.batch_size, v3.weight_decay, v3.epochs) == (model, 0.064, 1024, 1e-5, 600)
        assert (v3.exp_gamma, v3.exp_epochs, v3.auto_augment, v3.random_erasing) == (0.973, 2.0, "imagenet", 0.2)
        assert v3.rmsprop_eps == pytest.approx(0.0316**2, rel=2e-3)  # torchvision's epsilon, moved inside the root


# ------------------------------------------------------------------------ runs on tiny data


def test_flowers17_recipes_per_architecture_differ_only_in_the_model() -> None:
    """From scratch, V3-Large and V3-Small train on Flowers-17 exactly as V1 does, at their own width 1.0."""
    base = resolve_config("flowers17", out="x")
    for name, model in (("flowers17-v3-large", "mobilenet_v3_large"), ("flowers17-v3-small", "mobilenet_v3_small")):
        config = resolve_config(name, out="x")
        assert (config.model, config.width_mult) == (model, 1.0)
        different = {k for k in vars(base) if getattr(base, k) != getattr(config, k)}
        assert different == {"model", "width_mult", "recipe"}


def test_cifar10_finetune_for_v3_large_minimal_equalises_the_filters_and_trains_longer() -> None:
    """The V3-Large-minimalistic CIFAR-10 fine-tune is V1's, with the folded filters equalised first and 14 epochs."""
    base = resolve_config("cifar10-finetune", out="x", weights="w.tflite")
    config = resolve_config("cifar10-finetune-v3-large-minimal", out="x", weights="w.tflite")
    assert config.equalise_filters and not base.equalise_filters
    assert (base.epochs, config.epochs) == (10, 14)
    assert {k for k in vars(base) if getattr(base, k) != getattr(config, k)} == {"equalise_filters", "epochs", "recipe"}


def test_resume_continues_exactly(tiny_data: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    train(_config(tiny_data, straight))
    stopped = tmp_path / "stopped"
    train(_config(tiny_data, stopped, stop_after=1))
    assert len(_metrics(stopped)) == 1
    assert main(["train", "--resume", str(stopped)]) == 0
    assert _metrics(stopped) == _metrics(straight)
    for tag in ("last", "best"):
        (a, card_a), (b, card_b) = (read_native(folder / f"{tag}.safetensors") for folder in (straight, stopped))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), tag
        assert card_a.replace(source=None) == card_b.replace(source=None), tag  # the source names its --out
    assert card_b.classes == CLASSES and card_b.kwargs["width_mult"] == 0.25 and card_b.format == "native"
    state = torch.load(stopped / "last.state.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 2 * 48 // 8 and state["ema"] is not None
    assert state["best_top1"] == max(max(m["val_top1"], m["ema_val_top1"]) for m in _metrics(straight))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A 4-epoch run on seven classes: (validation folder, run folder, what ``train`` returned)."""
    data = _make_folder(tmp_path_factory.mktemp("seven"), per_class=8, colours=COLOURS)
    val = _make_folder(tmp_path_factory.mktemp("seven-val"), per_class=4, seed=1, colours=COLOURS)
    out = tmp_path_factory.mktemp("seven-run") / "run"
    record = train(_config(data, out, val_data=str(val), epochs=4, random_erasing=0.0))
    return val, out, record


def _best(metrics: list[dict]) -> tuple[int, str]:
    """The epoch (index) and weights (``val``: model, ``ema_val``: EMA) that first scored the highest top-1."""
    order = [(index, prefix) for index in range(len(metrics)) for prefix in ("val", "ema_val")]
    return max(order, key=lambda c: metrics[c[0]][f"{c[1]}_top1"])  # the first of equals


def test_run_outputs(run: tuple[Path, Path, dict]) -> None:
    val, out, record = run
    metrics = _metrics(out)
    required = {"epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "ema_val_top1"}
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4] and required <= metrics[0].keys()
    assert {k: v for k, v in record.items() if k not in TIMED_KEYS} == metrics[-1]
    timed = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < m["data_seconds"] < m["seconds"] for m in timed)  # the loader's share of the epoch
    assert record["train_top1"] > 1.5 / 7 and record["train_loss"] < metrics[0]["train_loss"]  # it learns (chance 1/7)
    assert len({m["val_loss"] for m in metrics}) == 4  # each epoch validates its own weights
    # The last epoch's validation figures are those of last.safetensors on the same images, computed here.
    last = _scores(out / "last.safetensors", val)
    assert last["top1"] < last["top5"] < 1  # seven classes: the two differ, and top-5 can miss
    assert record["val_top1"] == pytest.approx(last["top1"]) and record["val_top5"] == pytest.approx(last["top5"])
    assert record["val_loss"] == pytest.approx(last["loss"], rel=1e-4)
    # best.safetensors: the weights (model or EMA) that first scored highest, with their epoch's figures.
    index, prefix = _best(metrics)
    best_card = read_native(out / "best.safetensors")[1]
    assert best_card.extra["weights_of"] == {"val": "model", "ema_val": "ema"}[prefix]
    best = _scores(out / "best.safetensors", val)
    assert best["top1"] == pytest.approx(metrics[index][f"{prefix}_top1"])
    assert best["loss"] == pytest.approx(metrics[index][f"{prefix}_loss"], rel=1e-4)
    assert json.loads((out / "config.json").read_text())["batch_size"] == 8
    model, card = load(out)
    assert card.classes == tuple(COLOURS) and card.kwargs["width_mult"] == 0.25 and card.num_classes == 7
    assert (card.input_size, card.in_chans, card.kind) == (32, 3, "small")
    assert isinstance(model, MobileNetV1) and model.classifier.out_features == 7 and not model.training
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "nan"
    train(_config(tiny_data, out, stop_after=1))
    before = (out / "last.safetensors").read_bytes()
    from mobilenet.training import trainer

    real = trainer.F.cross_entropy
    monkeypatch.setattr(trainer.F, "cross_entropy", lambda *a, **k: real(*a, **k) * math.nan)
    with pytest.raises(TrainingError, match="loss became nan at epoch 2, step 1"):
        train(_config(tiny_data, out), resume=True)
    assert (out / "last.safetensors").read_bytes() == before


def test_eval_and_predict_cli(run: tuple[Path, Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    val, out, _ = run
    metrics = _metrics(out)
    index, prefix = _best(metrics)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--data", str(val), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # The best checkpoint on the validation images: the figures training recorded for it.
    assert result["n"] == 28 and result["top1"] == pytest.approx(metrics[index][f"{prefix}_top1"])
    assert result["top5"] == pytest.approx(metrics[index][f"{prefix}_top5"])
    assert result["loss"] == pytest.approx(metrics[index][f"{prefix}_loss"], rel=1e-4)
    assert list(result["per_class"]) == list(COLOURS)
    assert sum(result["per_class"].values()) / 7 == pytest.approx(result["top1"])  # 4 images per class
    png = Path(result["confusion_png"])
    assert png.parent == out and png.stat().st_size > 1000  # default: into the run folder
    # --weights, with and without --tta flip: the figures computed here (flip: each image averaged with its mirror).
    plain, mirrored = _scores(out / "last.safetensors", val), _scores(out / "last.safetensors", val, flip=True)
    assert mirrored["loss"] != pytest.approx(plain["loss"], rel=1e-6)
    for tta, expected in (("none", plain), ("flip", mirrored)):
        argv = ["eval", "--weights", str(out / "last.safetensors"), "--data", str(val), "--tta", tta, "--json"]
        assert main(argv) == 0
        scored = json.loads(capsys.readouterr().out)
        assert scored["tta"] == tta and scored["n"] == 28 and "confusion_png" not in scored  # none beside --weights
        assert scored["loss"] == pytest.approx(expected["loss"], rel=1e-6)
        assert scored["top1"] == pytest.approx(expected["top1"])
    assert sorted(out.glob("*.png")) == [png]
    assert main(["predict", str(val / "red"), "--checkpoint", str(out), "--topk", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and lines[0]["file"].endswith("0.png")
    top = lines[0]["topk"]
    assert len(top) == 2 and top[0]["prob"] >= top[1]["prob"] and tuple(COLOURS)[top[0]["index"]] == top[0]["label"]
    model, card = load(out)
    with torch.no_grad():
        probs = model(card.eval_transform()(_read(lines[0]["file"]))[None]).softmax(1)[0]
    expected = probs.topk(2)
    assert [p["index"] for p in top] == expected.indices.tolist()
    assert [p["prob"] for p in top] == pytest.approx(expected.values.tolist(), abs=1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "/nonexistent/folder", "--out", "{tmp}/o"], "/nonexistent/folder"),
        (["train", "--data", "{data}", "--out", "/proc/forbidden"], "cannot write to --out"),
        (["train", "--resume", "{tmp}"], "cannot resume"),
        (["train", "--data", "{data}", "--out", "{tmp}/o", "--optimizer", "adam"], "--optimizer must be one of"),
        (["train", "--data", "{data}", "--out", "{tmp}/o", "--equalise-filters"], "--equalise-filters needs --weights"),
        (["eval", "--checkpoint", "{tmp}", "--data", "{data}"], "no training run at"),
    ],
)
def test_cli_errors_are_one_line(
    argv: list[str], message: str, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(tmp=tmp_path, data=tiny_data) for a in argv]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_refuses_to_overwrite_a_run(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(tiny_data, out, epochs=1, steps_per_epoch=1, val_data=None))
    files = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(_config(tiny_data, out, epochs=1))
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == files


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log file gets one summary line per epoch and no progress bar; a terminal gets the bar."""
    quick = {"steps_per_epoch": 1, "val_data": None, "progress": True}
    train(_config(tiny_data, tmp_path / "logged", **quick))
    out, err = capfd.readouterr()
    assert "\r" not in out + err and "epoch 1/2" not in err
    assert re.findall(r"^epoch (\d) \| loss \d\.\d{4} \| train \d+\.\d\d% \|", out, re.MULTILINE) == ["1", "2"]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train(_config(tiny_data, tmp_path / "interactive", epochs=1, **quick))
    assert "\r" in terminal.getvalue() and "epoch 1/1" in terminal.getvalue()


def _noise_folder(root: Path, per_class: int = 16) -> Path:
    """Full-range noise images: well-conditioned batch statistics (no dead channels at init)."""
    generator = torch.Generator().manual_seed(0)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (torch.rand(32, 32, 3, generator=generator) * 255).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path: Path) -> None:
    """DDP under torchrun (gloo, 2 CPU processes, sync BN) ends where 1 process with the same global batch does.

    A small learning rate: at initialisation a deep BN network is sensitive enough that float
    rounding (1e-7) grows beyond 1e-4 within a few steps at large rates, whatever the launcher.
    """
    data = _noise_folder(tmp_path / "noise")
    common = [
        "-m", "mobilenet", "train", "--data", str(data), "--model", "mobilenet_v1", "--width-mult", "0.25",
        "--stem-stride", "1", "--epochs", "1", "--batch-size", "16", "--lr", "0.0005", "--no-augment", "--dropout", "0",
        "--sync-bn", "--seed", "1", "--device", "cpu", "--no-progress", "--steps-per-epoch", "3", "--workers", "0",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    subprocess.run([sys.executable, *common, "--out", str(one)], check=True, env=env, capture_output=True)
    two = tmp_path / "two"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    subprocess.run([*launcher, *common, "--out", str(two)], check=True, env=env, capture_output=True)
    a, b = load_file(one / "last.safetensors"), load_file(two / "last.safetensors")
    torch.manual_seed(1)  # the run's initial weights (seed 1)
    start = MobileNetV1(num_classes=3, width_mult=0.25, stem_stride=1, dropout=0).state_dict()
    moved = (a["blocks.0.pw.conv.weight"] - start["blocks.0.pw.conv.weight"]).abs().max().item()
    assert moved > 1e-3  # three real optimisation steps happened
    differences = {k: (a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point()}
    assert max(differences.values()) <= 1e-4, sorted(differences.items(), key=lambda kv: -kv[1])[:3]


def _pretrained_file(model: nn.Module, path: Path) -> Path:
    """``model`` saved as native weights with a card of unknown classes and its own normalisation."""
    card = ModelCard(model.arch, model.config, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=32, source=str(path))
    return save_native(model, card, path)


def test_fine_tuning_from_pretrained_weights(tiny_data: Path, tmp_path: Path) -> None:
    """--weights: a new classifier for the data's classes, the body frozen for --freeze-epochs."""
    torch.manual_seed(5)
    pretrained = create_model("mobilenet_v1", width_mult=0.25, num_classes=7, padding="tf_same")
    source = _pretrained_file(pretrained, tmp_path / "p.safetensors")
    out = tmp_path / "ft"
    config = _config(tiny_data, out, weights=str(source), freeze_epochs=1, stop_after=1, body_lr_scale=0.1)
    config.width_mult = config.stem_stride = None
    train(config)
    tuned, card = load(out, tag="last")
    assert card.kwargs["padding"] == "tf_same" and card.num_classes == 3 and card.classes == CLASSES
    assert card.mean == (0.5,) * 3 and card.std == (0.5,) * 3 and card.input_size == 32
    assert card.source.startswith(f"fine-tuned from {source} ")
    before, after = pretrained.state_dict(), tuned.state_dict()
    body = [k for k in before if not k.startswith("classifier")]
    assert all(torch.equal(before[k], after[k]) for k in body)  # frozen: weights and BN statistics
    assert tuned.classifier.out_features == 3
    train(_config(tiny_data, out, weights=str(source), freeze_epochs=1, width_mult=None, stem_stride=None), resume=True)
    moved = load_file(out / "last.safetensors")
    assert not torch.equal(moved["blocks.0.pw.conv.weight"], before["blocks.0.pw.conv.weight"])


def _folded_like(model: nn.Module) -> nn.Module:
    """BN as in weights with BN folded into the convolutions: identity statistics, arbitrary scale and shift."""
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.zero_()
                module.running_var.fill_(1 - module.eps)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.num_features, generator=generator) * 2 - 1)
    return model


def test_renormalise_batchnorm_keeps_the_function_and_matches_batch_statistics() -> None:
    """After it, eval mode computes what it did, and train mode (batch statistics) on the measured data too."""
    torch.manual_seed(0)
    model = _folded_like(MobileNetV1(width_mult=0.25, num_classes=10, dropout=0.0)).eval()
    images = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        before = model(images)
        assert not torch.allclose(model.train()(images), before, atol=0.1)  # batch statistics change it
    _folded_like(model).eval()  # that train-mode pass moved the running statistics
    assert renormalise_batchnorm(model, [images[:4], images[4:]]) == 27  # stem + 13 blocks x 2
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(images), before, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model.train()(images), before, atol=1e-3, rtol=1e-3)


def test_equalise_filter_norms_keeps_the_function_in_both_modes() -> None:
    """Every filter gets He's norm sqrt(2); eval mode and (after renormalising) train mode compute what they did."""
    torch.manual_seed(0)
    model = _folded_like(MobileNetV2(width_mult=0.35, num_classes=10, dropout=0.0)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("conv.weight"):  # folded filters at arbitrary, per-channel scales
                param.mul_(torch.rand(param.shape[0], 1, 1, 1) * 0.3 + 0.01)
    images = torch.randn(8, 3, 64, 64)
    renormalise_batchnorm(model, [images])
    with torch.no_grad():
        before, before_train = model(images), model.train()(images)
    _ = model.eval()
    renormalise_batchnorm(model, [images])  # the train-mode pass moved the running statistics
    assert equalise_filter_norms(model) == 1 + 16 * 3 + 2 + 1  # stem, 3 per block (2 in the first), head
    convs = [m.conv.weight for m in model.modules() if hasattr(m, "bn") and hasattr(m, "conv")]
    norms = torch.cat([w.flatten(1).norm(dim=1) for w in convs])
    torch.testing.assert_close(norms, torch.full_like(norms, 2**0.5))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), before, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model.train()(images), before_train, atol=1e-4, rtol=1e-4)


def _fine_tune_frozen_epoch(
    model: str, width: float, data: Path, tmp_path: Path, **overrides: Any
) -> tuple[nn.Module, nn.Module]:
    """Folded-like weights of ``model`` and the run fine-tuned from them for one epoch with the body frozen;
    checks that the body computes what it did (BN re-measured or filters rescaled keep the function)."""
    torch.manual_seed(5)
    pretrained = _folded_like(create_model(model, width_mult=width, num_classes=7)).eval()
    source = _pretrained_file(pretrained, tmp_path / "p.safetensors")
    config = _config(data, tmp_path / "ft", weights=str(source), freeze_epochs=1, stop_after=1, **overrides)
    config.model, config.width_mult, config.stem_stride = model, None, None
    train(config)
    tuned, _ = load(tmp_path / "ft", tag="last")
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            tuned.eval().forward_features(images), pretrained.forward_features(images), atol=1e-4, rtol=1e-4
        )
    return pretrained, tuned


def test_fine_tuning_with_batch_statistics_renormalises_bn_first(tiny_data: Path, tmp_path: Path) -> None:
    """--no-freeze-bn from weights: BN takes the data's statistics before training, the body's function kept."""
    pretrained, tuned = _fine_tune_frozen_epoch("mobilenet_v1", 0.25, tiny_data, tmp_path, freeze_bn=False)
    before, after = pretrained.state_dict(), tuned.state_dict()
    assert torch.equal(before["stem.conv.weight"], after["stem.conv.weight"])  # frozen for the first epoch
    assert not torch.allclose(after["stem.bn.running_mean"], before["stem.bn.running_mean"])


def test_fine_tuning_can_equalise_filters_first(tiny_data: Path, tmp_path: Path) -> None:
    """--equalise-filters: filters start at He's norm (the frozen first epoch keeps them), the function kept."""
    _, tuned = _fine_tune_frozen_epoch("mobilenet_v2", 0.35, tiny_data, tmp_path, equalise_filters=True)
    norms = tuned.state_dict()["blocks.3.expand.conv.weight"].flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, 2**0.5))


def test_body_learns_after_its_frozen_epochs(tiny_data: Path, tmp_path: Path) -> None:
    """The frozen epoch skips the body's gradients and gives them back: epoch 2 of the same run trains it."""
    torch.manual_seed(5)
    pretrained = create_model("mobilenet_v1", width_mult=0.25, num_classes=7)
    source = _pretrained_file(pretrained, tmp_path / "p.safetensors")
    config = _config(tiny_data, tmp_path / "ft", weights=str(source), freeze_epochs=1, epochs=2)
    config.width_mult = config.stem_stride = None
    train(config)
    tuned, _ = load(tmp_path / "ft", tag="last")
    assert not torch.equal(tuned.state_dict()["stem.conv.weight"], pretrained.state_dict()["stem.conv.weight"])
