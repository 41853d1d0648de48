"""Kill training anywhere, lose nothing: SIGKILL ``mobilenet train`` at random instants, resume, compare.

One uninterrupted run of a small training job on real images (Flowers-17 ``valid``, MobileNet V1
at a small width and resolution, EMA and validation on) is the reference; it also times the
job (from ``config.json``, written once the interpreter has started, to the end, and to the
first checkpoint). Then the same job runs again in trials. Each attempt is killed with SIGKILL,
in turn: at an instant drawn uniformly over the job's duration; the moment a checkpoint's
temporary file appears (inside a checkpoint write); at an instant drawn uniformly before the
first checkpoint (``--modes`` chooses; ``mid``: inside the epoch after this attempt's first
commit). The next attempt is ``mobilenet train --resume``. A trial ends when an attempt
finishes; trials repeat until ``--kills`` kills were made.

After every kill each checkpoint file present must load (``corrupt`` counts those that do
not). After every trial the final weights, EMA, optimizer, scheduler and grad-scaler state, the
epoch/step counters and every ``metrics.jsonl`` line (timings aside) must equal the reference's
bit for bit, with each epoch's line exactly once and no temporary file left.

With ``--nproc 2`` the job is ``torchrun --nproc-per-node 2 --max-restarts K`` (gloo on CPU):
each kill hits one worker process chosen at random, torchrun restarts the group by itself, and
the restarted processes continue from the last checkpoint (elastic training, no ``--resume``).

    .venv/bin/python benchmarks/chaos_resume.py --kills 20
    .venv/bin/python benchmarks/chaos_resume.py --kills 6 --nproc 2

The last line printed is one JSON object: ``{"kills": n, "identical": true|false, "corrupt": n, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mobilenet.fileio import TEMPORARY_SUFFIX
from mobilenet.training import TrainConfig
from mobilenet.training.checkpoint import TAGS, load_state, state_path
from mobilenet.weights import read_native

REPO = Path(__file__).resolve().parents[1]
TIMED_KEYS = {"images_per_s", "seconds", "data_seconds"}
POLL_S = 0.0005
STATE_KEYS = ("epoch", "step", "model", "ema", "optimizer", "scheduler", "scaler", "best_top1")


MODES = ("uniform", "write", "early", "mid")


@dataclass
class Timing:
    """Seconds of the reference job: from ``config.json`` to its first checkpoint and to its end; one epoch."""

    first_checkpoint: float = 0.0
    job: float = 0.0
    epoch: float = 0.0


@dataclass
class Tally:
    """What the kills did."""

    kills: int = 0
    corrupt: int = 0
    inside_writes: int = 0
    before_first_checkpoint: int = 0
    trials: int = 0
    attempts: int = 0
    differences: list[str] = field(default_factory=list)


def train_command(args: argparse.Namespace, out: Path, restarts: int) -> list[str]:
    """The training job: one process, or ``torchrun`` with ``restarts`` elastic restarts."""
    job = [
        "-m", "mobilenet", "train", "--data", str(args.data), "--val-data", str(args.data),
        "--model", "mobilenet_v1", "--width-mult", str(args.width), "--resolution", str(args.resolution),
        "--epochs", str(args.epochs), "--batch-size", "16", "--lr", "0.05", "--warmup-epochs", "0.5",
        "--ema-decay", "0.9", "--seed", str(args.seed), "--device", "cpu", "--no-progress", "--workers", "0",
        "--out", str(out),
    ]  # fmt: skip
    if args.nproc == 1:
        return [sys.executable, *job]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc)]
    return [sys.executable, *launcher, "--max-restarts", str(restarts), *job]


def temporaries(out: Path, prefix: str = ".") -> list[Path]:
    """Interrupted writes' temporary files in the run folder (``prefix``: of checkpoints, ``.last.`` / ``.best.``)."""
    return list(out.glob(f"{prefix}*{TEMPORARY_SUFFIX}")) if out.is_dir() else []


def checkpoint_writes(out: Path) -> bool:
    """Whether a checkpoint file is being written now."""
    return bool(temporaries(out, ".last.") or temporaries(out, ".best."))


def written_since(path: Path, since: float) -> bool:
    """Whether ``path`` was (re)written after ``since`` (``config.json``: this attempt's job began)."""
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def unreadable(out: Path) -> list[str]:
    """The run's files that exist but do not load."""
    bad = []
    checks = [(out / "config.json", lambda p: TrainConfig.from_json(p))]
    for tag in TAGS:
        checks.append((out / f"{tag}.safetensors", read_native))
        checks.append((state_path(out, tag), lambda p, tag=tag: load_state(p.parent, tag)))
    for path, read in checks:
        if path.exists():
            try:
                read(path)
            except Exception as err:  # any failure to load is what this counts
                bad.append(f"{path.name}: {err}")
    metrics = out / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                bad.append(f"metrics.jsonl line {line[:40]!r}")
    return bad


def workers(launcher: int) -> list[int]:
    """The worker processes torchrun (process ``launcher``) runs now."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == launcher and fields[0] not in "ZX":
            children.append(int(stat.parent.name))
    return children


def wait_for(process: subprocess.Popen, ready: Any, deadline: float) -> bool:
    """Poll until ``ready()`` or the process ends or ``deadline`` passes; whether ``ready()`` came true."""
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(POLL_S)
    return False


def kill_once(process: subprocess.Popen, out: Path, mode: str, timing: Timing, nproc: int, rng: random.Random) -> bool:
    """Kill the job (a worker of it under torchrun) as ``mode`` says; False when it ended first."""
    since = time.time() - 1  # file times are coarser than the clock
    if nproc > 1:  # the group (re)starts: wait for all of its workers
        wait_for(process, lambda: len(workers(process.pid)) == nproc, time.monotonic() + 600)
    if mode == "write":
        hit = wait_for(process, lambda: checkpoint_writes(out), time.monotonic() + 3600)
    else:
        span = {"uniform": timing.job, "early": timing.first_checkpoint, "mid": timing.epoch}[mode]
        marker = state_path(out) if mode == "mid" else out / "config.json"
        hit = wait_for(process, lambda: written_since(marker, since), time.monotonic() + 3600)
        hit = hit and not wait_for(process, lambda: False, time.monotonic() + rng.uniform(0, span))
        hit = hit and process.poll() is None
    if not hit:
        return False
    if nproc == 1:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True
    alive = workers(process.pid)
    if not alive:
        return False
    victim = rng.choice(alive)
    os.kill(victim, signal.SIGKILL)
    wait_for(process, lambda: victim not in workers(process.pid), time.monotonic() + 60)
    return True


def inspect_after_kill(out: Path, tally: Tally) -> None:
    """Count unreadable files, kills inside writes and kills before the first checkpoint."""
    tally.kills += 1
    tally.inside_writes += bool(temporaries(out))
    tally.before_first_checkpoint += not state_path(out).is_file()
    bad = unreadable(out)
    tally.corrupt += len(bad)
    for item in bad:
        print(f"  unreadable after kill {tally.kills}: {item}", flush=True)


def run_trial(
    args: argparse.Namespace, out: Path, env: dict[str, str], timing: Timing, tally: Tally, rng: random.Random
) -> None:
    """Kill and resume (or let torchrun restart) until the job finishes."""
    finished = False
    while not finished:
        tally.attempts += 1
        if args.nproc == 1 and (out / "config.json").is_file():
            command = [sys.executable, "-m", "mobilenet", "train", "--resume", str(out)]
        else:
            command = train_command(args, out, restarts=args.kills)
        with open(out.parent / "log.txt", "a") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            while True:
                mode = args.modes[tally.kills % len(args.modes)]
                killed = tally.kills < args.kills and kill_once(process, out, mode, timing, args.nproc, rng)
                if killed:
                    inspect_after_kill(out, tally)
                    print(f"  kill {tally.kills} ({mode}): committed epochs {committed(out)}", flush=True)
                if not killed or args.nproc == 1:
                    break
            code = process.wait()
        if not killed:
            if code != 0:
                raise SystemExit(f"the training job failed with status {code}: see {out.parent / 'log.txt'}")
            finished = True


def committed(out: Path) -> int:
    """The epoch that ``last.state.pt`` commits (0: none)."""
    path = state_path(out)
    return int(torch.load(path, weights_only=True)["epoch"]) if path.is_file() else 0


def reference_run(args: argparse.Namespace, out: Path, env: dict[str, str], log: Path) -> Timing:
    """The uninterrupted job, timed from its ``config.json`` to its first checkpoint and to its end."""
    began = time.time() - 1
    with open(log, "w") as handle:
        process = subprocess.Popen(train_command(args, out, 0), env=env, stdout=handle, stderr=subprocess.STDOUT)
        wait_for(process, lambda: written_since(out / "config.json", began), time.monotonic() + 3600)
        start = time.monotonic()
        wait_for(process, lambda: state_path(out).is_file(), time.monotonic() + 3600)
        first = time.monotonic() - start
        if process.wait() != 0:
            raise SystemExit(f"the reference run failed: see {log}")
    job = time.monotonic() - start
    last_commit = job - (time.time() - state_path(out).stat().st_mtime)
    return Timing(first_checkpoint=first, job=job, epoch=(last_commit - first) / max(args.epochs - 1, 1))


def same(a: Any, b: Any) -> bool:
    """Bitwise equality of nested tensors and containers."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def metrics(out: Path) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMED_KEYS} for line in lines]


def compare(reference: Path, out: Path, epochs: int) -> list[str]:
    """How the finished run differs from the reference (empty: identical)."""
    differences = []
    for tag in TAGS:
        (a, card_a), (b, card_b) = (read_native(folder / f"{tag}.safetensors") for folder in (reference, out))
        if not same(a, b) or card_a != card_b:
            differences.append(f"{tag}.safetensors")
        state_a, state_b = load_state(reference, tag), load_state(out, tag)
        differences += [f"{tag}.state.pt[{k}]" for k in STATE_KEYS if not same(state_a[k], state_b[k])]
    lines = metrics(out)
    if [m["epoch"] for m in lines] != list(range(1, epochs + 1)):
        differences.append(f"metrics.jsonl epochs {[m['epoch'] for m in lines]}")
    else:
        expected = metrics(reference)
        differences += [
            f"metrics.jsonl epoch {got['epoch']} {key}: {got.get(key)} != {want.get(key)}"
            for got, want in zip(lines, expected, strict=True)
            for key in sorted(got.keys() | want.keys())
            if got.get(key) != want.get(key)
        ]
    differences += [f"left behind: {p.name}" for p in temporaries(out)]
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, required=True, help="kills to make in all (>= 1)")
    parser.add_argument("--nproc", type=int, default=1, help="1: plain process; >1: torchrun with elastic restarts")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "flowers17" / "valid")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seeds the training and the kill instants")
    parser.add_argument(
        "--modes", type=lambda text: text.split(","), default=list(MODES[:3]), help="kill modes, in turn"
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.kills < 1 or not args.data.is_dir() or not set(args.modes) <= set(MODES):
        print(f"chaos_resume: error: need --kills >= 1, --modes from {MODES}, images at {args.data}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    # One thread per process: identical arithmetic in every attempt; the decoded images cached once.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MOBILENET_CACHE": str(work / "cache")}
    rng = random.Random(args.seed)
    tally = Tally()
    began = time.monotonic()
    try:
        out = work / "run"  # every run in the same folder: the cards and configs name the same --out
        shutil.rmtree(out, ignore_errors=True)
        timing = reference_run(args, out, env, work / "log.txt")
        reference = work / "reference"
        shutil.rmtree(reference, ignore_errors=True)
        out.rename(reference)
        print(f"reference job: first checkpoint {timing.first_checkpoint:.1f} s, end {timing.job:.1f} s", flush=True)
        while tally.kills < args.kills:
            tally.trials += 1
            run_trial(args, out, env, timing, tally, rng)
            found = compare(reference, out, args.epochs)
            print(f"trial {tally.trials}: {found or 'identical'} after {tally.kills} kills", flush=True)
            tally.differences += found
            shutil.rmtree(out)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    summary = {
        "kills": tally.kills,
        "identical": not tally.differences,
        "corrupt": tally.corrupt,
        "inside_writes": tally.inside_writes,
        "before_first_checkpoint": tally.before_first_checkpoint,
        "trials": tally.trials,
        "attempts": tally.attempts,
        "nproc": args.nproc,
        "differences": tally.differences,
        "job_seconds": round(timing.job, 1),
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(summary))
    return 0 if summary["identical"] and not tally.corrupt else 1


if __name__ == "__main__":
    sys.exit(main())
