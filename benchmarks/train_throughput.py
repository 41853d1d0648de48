"""Training throughput (images/s): our training loop against the seed article's plain PyTorch code.

The baseline is what the seed article's code does: the same MobileNetV1 written as plain
``nn.Sequential`` blocks, fp32, NCHW, ``torchvision.datasets.ImageFolder`` decoding every JPEG
with PIL in every epoch, ``DataLoader`` with default settings, a naive loop. Ours is
``mobilenet.training.train`` (in-memory uint8 cache, our loader and loop) with the given flags.
Both run in the same process, alternating, ``--repeats`` times; the table reports medians and the
ratio. Results go to stdout and to ``docs/results/train_throughput.md``.

To separate the loop from the kernels, the same run also times the bare optimisation step of
each model on one fixed in-memory batch (no data loading, no augmentation, no logging): the seed
article's model in NCHW and ours in the given memory format. ``bare ratio`` = our bare step / the
seed article's whole loop: what the kernels alone give. A loop whose ratio reaches it loses
nothing to data loading or bookkeeping; beyond it, only faster convolution kernels help.

All three run on ``--device`` (CUDA when present, as the training CLI chooses): on a GPU the
seed article's loop moves each batch to the device as its code does (``.to(device)``), and every
timing waits for the device (``torch.cuda.synchronize``) before reading the clock.

Run: .venv/bin/python benchmarks/train_throughput.py --data ../shared/data/cifar10/train --resolution 32
     .venv/bin/python benchmarks/train_throughput.py --data ../shared/data/flowers17/train --resolution 224
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms

from mobilenet.devices import choose_device
from mobilenet.models import create_model
from mobilenet.training import resolve_config, train

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results" / "train_throughput.md"


def seed_article_mobilenet(num_classes: int, stem_stride: int) -> nn.Module:
    """MobileNetV1 as the seed article writes it (conv_bn / conv_dw Sequentials), last stride fixed to 1."""

    def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))

    def conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
            nn.BatchNorm2d(inp),
            nn.ReLU6(inplace=True),
            nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )

    plan = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)]
    plan += [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    body = nn.Sequential(conv_bn(3, 32, stem_stride), *(conv_dw(i, o, s) for i, o, s in plan))
    return nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, num_classes))


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once all work queued on ``device`` has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def baseline_images_per_s(data: str, resolution: int, batch: int, steps: int, device: torch.device) -> float:
    """The seed article's loop: PIL decode every image every epoch, fp32 NCHW, default DataLoader."""
    small = resolution <= 64
    augment = (
        [transforms.RandomCrop(resolution, padding=resolution // 8)]
        if small
        else [transforms.RandomResizedCrop(resolution)]
    )
    transform = transforms.Compose(
        [*augment, transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )
    dataset = torchvision.datasets.ImageFolder(data, transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    model = seed_article_mobilenet(len(dataset.classes), 1 if small else 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    model.train()
    start, seen = time.perf_counter(), 0
    for step, (images, labels) in enumerate(loader):
        if step == 1:  # the first batch includes start-up; time from the second
            start, seen = clock(device), 0
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        seen += images.shape[0]
        if step >= steps:
            break
    return seen / (clock(device) - start)


def bare_step_images_per_s(
    model: nn.Module,
    resolution: int,
    batch: int,
    steps: int,
    channels_last: bool,
    device: torch.device,
    compile_model: bool = False,
) -> float:
    """Forward, backward and SGD step on one fixed random batch: the kernels' own speed.

    With ``compile_model`` the model runs through ``torch.compile`` (compilation happens in the
    dropped first step).
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compile_model:
        torch._dynamo.reset()  # a fresh compile each repeat, never a cache-limit fallback to eager
    forward = torch.compile(model) if compile_model else model
    images = torch.randn(batch, 3, resolution, resolution).to(device, memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,), device=device)
    times = []
    for _ in range(steps + 1):  # the first step includes start-up; dropped
        start = clock(device)
        optimizer.zero_grad()
        nn.functional.cross_entropy(forward(images), labels).backward()
        optimizer.step()
        times.append(clock(device) - start)
    return batch / statistics.median(times[1:])


def ours_images_per_s(data: str, resolution: int, batch: int, steps: int, flags: dict) -> float:
    """Our loop's own images/s (data + step time) in the second of two capped epochs.

    The first epoch carries the start-up (and, with ``compile``, the compilation), as the
    baseline's first batch does; the second is the steady state a real run spends its time in.
    """
    if flags.get("compile"):
        torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as out:
        config = resolve_config(
            data=data,
            out=out,
            resolution=resolution,
            stem_stride=1 if resolution <= 64 else 2,
            epochs=2,
            batch_size=batch,
            steps_per_epoch=steps,
            progress=False,
            **flags,
        )
        record = train(config)
        return record["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an ImageFolder root (e.g. ../shared/data/cifar10/train)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ours", default='{"channels_last": true}', help="JSON of our training flags")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    parser.add_argument("--table", type=Path, default=RESULTS, help="the Markdown table the row is added to")
    args = parser.parse_args()
    device = choose_device(args.device)
    flags = {**json.loads(args.ours), "device": str(device)}
    torch.manual_seed(0)
    stem_stride = 1 if args.resolution <= 64 else 2
    num_classes = len(torchvision.datasets.folder.find_classes(args.data)[0])
    width = float(flags.get("width_mult", 1.0))
    base, ours, base_step, ours_step = [], [], [], []
    for repeat in range(args.repeats):
        base.append(baseline_images_per_s(args.data, args.resolution, args.batch_size, args.steps, device))
        ours.append(ours_images_per_s(args.data, args.resolution, args.batch_size, args.steps, flags))
        seed_model = seed_article_mobilenet(num_classes, stem_stride)
        our_model = create_model("mobilenet_v1", width_mult=width, num_classes=num_classes, stem_stride=stem_stride)
        base_step.append(
            bare_step_images_per_s(seed_model, args.resolution, args.batch_size, args.steps, False, device)
        )
        ours_step.append(
            bare_step_images_per_s(
                our_model,
                args.resolution,
                args.batch_size,
                args.steps,
                flags.get("channels_last", False),
                device,
                flags.get("compile", False),
            )
        )
        print(
            f"repeat {repeat + 1}: baseline {base[-1]:.1f} img/s, ours {ours[-1]:.1f} img/s; bare steps "
            f"{base_step[-1]:.1f} / {ours_step[-1]:.1f} img/s",
            flush=True,
        )
    b, o, bs, os_ = (statistics.median(v) for v in (base, ours, base_step, ours_step))
    row = (
        f"| {Path(args.data).parent.name}/{Path(args.data).name} | {args.resolution} | {args.batch_size} | "
        f"{b:.1f} | {o:.1f} | {o / b:.2f}x | {bs:.1f} | {os_:.1f} | {os_ / b:.2f}x | `{json.dumps(flags)}` | "
        f"{torch.get_num_threads()} |"
    )
    header = (
        "| data | resolution | batch | seed-article img/s | ours img/s | ratio | seed bare step img/s | "
        "our bare step img/s | bare ratio | our flags | threads |\n" + "|---" * 11 + "|"
    )
    args.table.parent.mkdir(parents=True, exist_ok=True)
    existing = args.table.read_text() if args.table.exists() else ""
    if not existing.startswith(header):  # a table of an older layout is replaced, not mixed with
        existing = header + "\n"
    args.table.write_text(existing + row + "\n")
    print(header + "\n" + row)


if __name__ == "__main__":
    main()
