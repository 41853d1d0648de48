"""The GPU benchmarks (training recipes and throughput) on one CUDA GPU, as one prepared command.

The GPU machine is assumed offline, with only the repository copied to it (at most 64 MiB), so
the work has two halves.

``pack``, here::

    .venv/bin/python benchmarks/gpu_benchmarks.py pack

writes ``.gpu/`` (and adds it to ``.git/info/exclude``): CIFAR-10's JPEGs, Fashion-MNIST's IDX
files (xz, 4 MB less than Debian's gzip files), Flowers-17 with every image's short side reduced
to 146 px (128 / 0.875, the recipe's evaluation resize) at JPEG quality 80, Google's 0.75-192
TFLite weights and a wheel of ``tflite`` (the one package a bare PyTorch image lacks): everything
the GPU machine needs in less than 64 MiB. ``pack`` prints the size and
fails above :data:`PACK_LIMIT_MIB`.

``run``, there (with ``.gpu/`` copied along, and a time limit about 90 s above ``--budget``)::

    python3 benchmarks/gpu_benchmarks.py run --budget 450

unpacks into ``/tmp``, then runs the jobs of :data:`JOBS` in order, each inside its share of
``--budget`` seconds: every training run first measures its images/s in a two-epoch pilot
capped at 30 steps, takes as many epochs as fit its share (never more than its recipe's), and is
then evaluated on its test split (Flowers-17: valid), plain and with ``--tta flip``; a run stopped by its share is
still evaluated from its best checkpoint. The throughput benchmark runs last, in what is left.
Results land in ``$OUT``: ``summary.md`` (a table and the exact commands, for docs/RESULTS.md),
``summary.json`` and ``logs.tar.gz`` (each run's config.json, metrics.jsonl, eval JSON and log).

``run --smoke`` caps every epoch at 2 steps, every run at 1 epoch and every resolution at 32 px:
it checks the whole script on a CPU in minutes (use it before spending GPU time).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))  # there the repository is not installed, only copied

from mobilenet.training import RECIPES  # noqa: E402

PACK = REPO / ".gpu"
SHARED = REPO.parent / "shared"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
WEIGHTS = "mobilenet_v1_0.75_192_quant.tflite"
WHEELS = ["tflite==2.18.0"]
FLOWERS_SHORT_SIDE = 146
FLOWERS_QUALITY = 80
PACK_LIMIT_MIB = 62  # of the 64 MiB copied to the GPU machine; the repository takes the rest
DATA = Path("/tmp/gpu-data")
SITE = Path("/tmp/gpu-site")
RUNS = Path("/tmp/gpu-runs")


@dataclass(frozen=True)
class Job:
    """One training run: a CPU recipe scaled to the GPU, and its share of the time budget."""

    name: str
    recipe: str
    share: float  # of --budget
    train_images: int  # to turn images/s into epochs
    flags: list[str] = field(default_factory=list)
    pretrained: bool = False
    split: str = "test"  # what it is evaluated on


# The CPU recipes with what a GPU changes: the weights' own resolution (192) instead of the
# CPU's compromise, batch 256 with the learning rate scaled by sqrt(256 / recipe batch), bf16.
JOBS = [
    Job(
        "cifar10",
        "cifar10-finetune",
        0.40,
        47_500,
        ["--resolution", "192", "--batch-size", "256", "--lr", "0.04"],
        True,
    ),
    Job(
        "fashion",
        "fashion-mnist-finetune",
        0.30,
        57_000,
        ["--resolution", "112", "--batch-size", "256", "--lr", "0.056"],
        True,
    ),
    Job("flowers", "flowers17", 0.12, 1_088, split="valid"),
]
THROUGHPUT = [("cifar10/train", 32, 128), ("flowers17/train", 224, 32)]


def pack() -> None:
    """Copy what the GPU machine needs into ``.gpu/`` and keep git from tracking it."""
    shutil.rmtree(PACK, ignore_errors=True)
    (PACK / "wheels").mkdir(parents=True)
    exclude = REPO / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    if "/.gpu/" not in (exclude.read_text().split() if exclude.exists() else []):
        with exclude.open("a") as f:
            f.write("/.gpu/\n")
    with tarfile.open(PACK / "cifar10.tar.gz", "w:gz", compresslevel=1) as tar:
        for split in ("train", "test"):
            tar.add(SHARED / "data" / "cifar10" / split, f"cifar10/{split}")
    with tarfile.open(PACK / "fashion-mnist.tar.xz", "w:xz", preset=6) as tar:
        for file in sorted(FASHION_MNIST.glob("*-ubyte.gz")):
            with gzip.open(file) as raw:
                data = raw.read()
            info = tarfile.TarInfo(f"fashion-mnist/{file.stem}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _pack_flowers(PACK / "flowers17.tar")
    shutil.copy(SHARED / "weights" / "tflite" / WEIGHTS, PACK / WEIGHTS)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "-d", str(PACK / "wheels"), *WHEELS], check=True)
    size = sum(f.stat().st_size for f in PACK.rglob("*") if f.is_file()) / 2**20
    print(f"{PACK}: {size:.1f} MiB (64 MiB travel with the repository)")
    if size > PACK_LIMIT_MIB:
        sys.exit(f"{PACK} is over {PACK_LIMIT_MIB} MiB: too large to copy with the repository")


def _pack_flowers(out: Path) -> None:
    """Flowers-17 as a tar of JPEGs whose short side is :data:`FLOWERS_SHORT_SIDE`."""
    source = SHARED / "data" / "flowers17"
    work = PACK / "flowers17"
    for image in sorted(source.rglob("*.jpg")):
        target = work / "flowers17" / image.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(image) as im:
            im = im.convert("RGB")
            scale = FLOWERS_SHORT_SIDE / min(im.size)
            im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC).save(
                target, quality=FLOWERS_QUALITY
            )
    with tarfile.open(out, "w") as tar:
        tar.add(work / "flowers17", "flowers17")
    shutil.rmtree(work)


def unpack() -> dict[str, str]:
    """Data under :data:`DATA`, wheels under :data:`SITE`; the environment for our CLI."""
    DATA.mkdir(parents=True, exist_ok=True)
    for archive in ("cifar10.tar.gz", "flowers17.tar", "fashion-mnist.tar.xz"):
        with tarfile.open(PACK / archive) as tar:
            tar.extractall(DATA, filter="data")
    wheels = sorted(str(w) for w in (PACK / "wheels").glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade", "--no-index", "--no-deps"]
    subprocess.run([*pip, "--target", str(SITE), *wheels], check=True)
    path = os.pathsep.join([str(REPO / "src"), str(SITE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "MOBILENET_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}


def cli(*args: str) -> list[str]:
    """Our command line, as ``python -m mobilenet``."""
    return [sys.executable, "-m", "mobilenet", *args]


def call(command: list[str], env: dict[str, str], log: Path, seconds: float) -> tuple[int, float]:
    """Run ``command`` with its output in ``log``, stopped after ``seconds``; (exit status, wall s)."""
    start = time.perf_counter()
    with log.open("a") as f:
        f.write("$ " + " ".join(command) + "\n")
        f.flush()
        try:
            status = subprocess.run(
                command, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=max(seconds, 1)
            ).returncode
        except subprocess.TimeoutExpired:
            status = 124
    return status, time.perf_counter() - start


def train_command(job: Job, out: Path, extra: list[str]) -> list[str]:
    """``mobilenet train`` for ``job`` writing to ``out``."""
    weights = ["--weights", str(PACK / WEIGHTS)] if job.pretrained else []
    common = ["--amp", "bf16", "--channels-last", "--no-progress"]
    return cli("train", "--recipe", job.recipe, *weights, *job.flags, *common, *extra, "--out", str(out))


def images_per_s(out: Path) -> float:
    """Our loop's steady speed: the last epoch's images/s in ``out``'s metrics."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return float(json.loads(lines[-1])["images_per_s"])


def epochs_for(job: Job, speed: float, seconds: float, recipe_epochs: int) -> int:
    """Epochs of ``job`` that fit ``seconds`` at ``speed`` images/s, with 15% for validation and start-up."""
    return max(1, min(recipe_epochs, math.floor(0.85 * seconds * speed / job.train_images)))


def run_job(job: Job, env: dict[str, str], seconds: float, smoke: bool, logs: Path) -> dict:
    """Pilot, train and evaluate one job inside ``seconds``; its summary row."""
    deadline = time.perf_counter() + seconds
    log = logs / f"{job.name}.log"
    pilot = RUNS / f"{job.name}-pilot"
    small = ["--resolution", "32"] if smoke else []  # a smoke run's evaluations take seconds on a CPU
    steps = "2" if smoke else "30"
    pilot_flags = ["--epochs", "2", "--steps-per-epoch", steps, *small]
    status, _ = call(train_command(job, pilot, pilot_flags), env, log, seconds / 3)
    if status != 0:
        return {"job": job.name, "error": f"pilot exited {status}: see {log.name}"}
    speed = images_per_s(pilot)
    resolved = json.loads((pilot / "config.json").read_text())
    eval_reserve = 0.15 * seconds
    fits = deadline - time.perf_counter() - eval_reserve
    epochs = 1 if smoke else epochs_for(job, speed, fits, RECIPES[job.recipe]["epochs"])
    out = RUNS / job.name
    extra = ["--epochs", str(epochs), *(["--steps-per-epoch", "2"] if smoke else []), *small]
    command = train_command(job, out, extra)
    status, wall = call(command, env, log, deadline - time.perf_counter() - eval_reserve)
    row = {
        "job": job.name,
        "split": job.split,
        "pilot_images_per_s": speed,
        "epochs": epochs,
        "train_status": status,
        "train_s": wall,
    }
    row["command"] = " ".join(command)
    row["config"] = {k: resolved[k] for k in ("resolution", "batch_size", "lr", "amp", "width_mult")}
    if not (out / "best.safetensors").exists():
        return {**row, "error": f"no checkpoint: see {log.name}"}
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    row["epochs_done"] = len(metrics)
    row["best_val_top1"] = max(max(m["val_top1"], m.get("ema_val_top1", 0.0)) for m in metrics)
    row["images_per_s"] = sorted(m["images_per_s"] for m in metrics)[len(metrics) // 2]
    for tta in ("none", "flip"):
        result = logs / f"{job.name}.eval-{tta}.json"
        args = ["eval", "--checkpoint", str(out), "--data", json.loads((out / "config.json").read_text())["data"]]
        args += ["--split", job.split, "--tta", tta, "--json"]
        with result.open("w") as f:
            done = subprocess.run(
                cli(*args),
                env=env,
                stdout=f,
                stderr=subprocess.DEVNULL,
                timeout=max(1, deadline - time.perf_counter() + 60),
            )
        if done.returncode == 0:
            row["top1" + ("" if tta == "none" else "_tta")] = json.loads(result.read_text())["top1"]
    for name in ("config.json", "metrics.jsonl"):
        shutil.copy(out / name, logs / f"{job.name}.{name}")
    return row


def run_throughput(env: dict[str, str], seconds: float, smoke: bool, logs: Path) -> list[str]:
    """The training-throughput benchmark at 32 and 224 px inside ``seconds``; its table rows."""
    deadline = time.perf_counter() + seconds
    table = logs / "train_throughput.md"
    for data, resolution, batch in THROUGHPUT:
        steps, repeats = ("2", "1") if smoke else ("30", "2")
        command = [sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--data", str(DATA / data)]
        command += ["--resolution", str(resolution), "--batch-size", str(batch), "--steps", steps, "--repeats", repeats]
        call([*command, "--table", str(table)], env, logs / "throughput.log", deadline - time.perf_counter())
    return table.read_text().splitlines() if table.exists() else []


def device_facts() -> dict:
    """The GPU and the software versions, as the GPU machine reports them."""
    import torch
    import torchvision

    gpu = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "gpu": gpu.name if gpu else None,
        "gpu_memory_gib": round(gpu.total_memory / 2**30, 1) if gpu else None,
        "cpus": os.cpu_count(),
    }


def summary_markdown(facts: dict, rows: list[dict], throughput: list[str]) -> str:
    """The results as the table and commands docs/RESULTS.md records."""
    lines = [
        f"GPU benchmarks: {facts}",
        "",
        "| job | epochs | img/s | train s | best val | evaluated on | top-1 | top-1, --tta flip |",
        "|---" * 8 + "|",
    ]
    for r in rows:
        cells = [r["job"], r.get("epochs_done", "-"), f"{r.get('images_per_s', 0):.0f}", f"{r.get('train_s', 0):.0f}"]
        cells += [_pct(r.get("best_val_top1")), r.get("split", "-"), _pct(r.get("top1")), _pct(r.get("top1_tta"))]
        lines.append("| " + " | ".join(map(str, cells)) + " |" + (f" {r['error']}" if "error" in r else ""))
    lines += [
        "",
        "Commands:",
        *(f"    {r['command']}" for r in rows if "command" in r),
        "",
        "Throughput rows:",
        *throughput,
    ]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def run(budget: float, smoke: bool) -> None:
    """Unpack, run every job and the throughput benchmark, and write the results to ``$OUT``."""
    out = Path(os.environ.get("OUT") or "/tmp/gpu-out")
    logs = RUNS / "logs"
    shutil.rmtree(RUNS, ignore_errors=True)
    logs.mkdir(parents=True)
    start = time.perf_counter()
    env = unpack()
    facts = device_facts()
    print(f"device: {facts}; unpacked in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for job in JOBS:
        rows.append(run_job(job, env, job.share * budget, smoke, logs))
        print(json.dumps(rows[-1]), flush=True)
    left = budget - (time.perf_counter() - start)
    throughput = run_throughput(env, max(left, 30), smoke, logs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"device": facts, "runs": rows, "throughput": throughput}, indent=1))
    (out / "summary.md").write_text(summary_markdown(facts, rows, throughput))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        tar.add(logs, "logs")
    print((out / "summary.md").read_text())
    print(f"total {time.perf_counter() - start:.0f} s of a {budget:.0f} s budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("pack", help="here: copy data, weights and wheels into .gpu/")
    go = sub.add_parser("run", help="on the GPU machine: every benchmark inside --budget seconds")
    go.add_argument("--budget", type=float, default=450.0, help="seconds for all jobs together")
    go.add_argument("--smoke", action="store_true", help="2 steps an epoch, 1 epoch, 32 px: check the script on a CPU")
    args = parser.parse_args()
    if args.action == "pack":
        pack()
    else:
        run(args.budget, args.smoke)


if __name__ == "__main__":
    main()
