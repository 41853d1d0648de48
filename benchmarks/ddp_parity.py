"""Where 1-process and 2-process DDP training part on real images: the first step, rank by rank.

Builds the training job exactly as ``mobilenet train --sync-bn`` does (data, seeded model,
sampler, synchronised batch norm, DDP) and runs its first step in one process and, under
``torchrun``, in two; each process saves its images, loss and gradients (after DDP's
averaging), and the parent compares them per tensor, in float32 and in float64:

- float64: 1 and 2 processes agree to rounding of float64: the two computations are the same.
- float32: each differs from the float64 gradients by about as much as from the other.
- float64 with the images perturbed by 1e-7, 1e-9, 1e-11 (relative): how far the gradient moves.
  The jump between 1e-11 and 1e-9 is ReLU6 inputs crossing 0 or 6: float32 rounding (1e-7)
  flips some, and every flip in the last layers (few values per channel) moves the gradient.

    .venv/bin/python benchmarks/ddp_parity.py --width 1.0 --resolution 128 --batch-size 32

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mobilenet.training import resolve_config, trainer
from mobilenet.training.distributed import convert_sync_batchnorm, setup, teardown

REPO = Path(__file__).resolve().parents[1]
PERTURBATIONS = (1e-7, 1e-9, 1e-11)


def first_step(args: argparse.Namespace, perturb: float = 0.0) -> dict[str, torch.Tensor]:
    """This process's first batch, loss and gradients (averaged over processes by DDP)."""
    config = resolve_config(
        None, data=str(args.data), width_mult=args.width, resolution=args.resolution, batch_size=args.batch_size,
        lr=0.0005, seed=0, augment=False, dropout=0.0, sync_bn=True, epochs=1, out=str(args.work / "unused"),
        device="cpu", workers=0, progress=False,
    )  # fmt: skip
    rt = setup("cpu")
    data = trainer.load_training_data(config, config.resolution, None)
    trainer._seed(config.seed)
    model, _ = trainer._build_model(config, data, None)
    if rt.distributed:
        model = convert_sync_batchnorm(model, rt.device)
    dtype = getattr(torch, args.dtype)
    model.to(dtype).train()
    loop = trainer._loop(config, rt, data)
    trainer._seed_epoch(config.seed, 0, rt.rank, loop.loader)
    loop.sampler.set_epoch(0)
    images, labels = next(iter(loop.loader))
    images = images.to(dtype)
    if perturb:
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
        images = images * (1 + perturb * noise)
    forward = DistributedDataParallel(model) if rt.distributed else model
    loss = F.cross_entropy(forward(images), labels)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return {"images": images, "loss": loss.detach(), "grads": grads, "rank": torch.tensor(rt.rank)}


def relative(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Median and largest per-tensor relative difference ||a - b|| / ||b||."""
    values = sorted(((a[k].double() - b[k].double()).norm() / b[k].double().norm().clamp(min=1e-300)).item() for k in b)
    return values[len(values) // 2], values[-1]


def run(args: argparse.Namespace, dtype: str, nproc: int, perturb: float = 0.0) -> dict:
    """Run ``first_step`` in ``nproc`` processes; rank 0's record."""
    out = args.work / f"{dtype}-{nproc}-{perturb}"
    flags = ["--worker", str(out), "--dtype", dtype, "--perturb", str(perturb), "--data", str(args.data)]
    flags += ["--width", str(args.width), "--resolution", str(args.resolution), "--batch-size", str(args.batch_size)]
    launcher = [] if nproc == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *launcher, __file__, *flags], env=env, check=True, capture_output=True)
    return torch.load(f"{out}.0.pt", weights_only=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "flowers17" / "valid")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    parser.add_argument("--perturb", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="float64 parity only (no float32, no perturbations)")
    args = parser.parse_args()
    if args.worker is not None:  # one process of a run
        args.work = args.worker.parent
        record = first_step(args, args.perturb)
        torch.save(record, f"{args.worker}.{int(record['rank'])}.pt")
        teardown()
        return 0
    if not args.data.is_dir():
        print(f"ddp_parity: error: no image folder at {args.data}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work:
        args.work = Path(work)
        one, two = run(args, "float64", 1), run(args, "float64", 2)
        half = args.batch_size // 2
        result = {
            "same_images": bool(torch.equal(one["images"][:half], two["images"])),
            "float64_two_vs_one": relative(two["grads"], one["grads"]),
            "loss_float64_one": one["loss"].item(),
        }
        if not args.quick:
            one32, two32 = run(args, "float32", 1), run(args, "float32", 2)
            result["float32_two_vs_one"] = relative(two32["grads"], one32["grads"])
            result["float32_one_vs_float64"] = relative(one32["grads"], one["grads"])
            result["float32_two_vs_float64"] = relative(two32["grads"], one["grads"])
            for size in PERTURBATIONS:
                moved = run(args, "float64", 1, size)
                result[f"float64_images_perturbed_{size:.0e}"] = relative(moved["grads"], one["grads"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
