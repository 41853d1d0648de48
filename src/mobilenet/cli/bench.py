"""``mobilenet bench``: latency and throughput of our models and the peers on every inference backend."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from mobilenet.bench import (
    BACKENDS,
    DEFAULT_MODELS,
    PRECISIONS,
    as_json,
    check_backends,
    check_models,
    describe_facts,
    pick_backend,
    plot,
    run_bench,
    table,
)
from mobilenet.constants import DEFAULT_INPUT_SIZE
from mobilenet.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    p = sub.add_parser("bench", help="time models (ours and peers) on every inference backend")
    p.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated: registry names, timm:X, torchvision:X"
    )
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)}")
    p.add_argument("--batch", default="1,32", help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--resolution", type=int, help="input size (default 224; --pick: the model's own)")
    p.add_argument("--threads", type=int, help="threads for every runtime (default: the physical cores)")
    p.add_argument(
        "--runs", type=int, default=30, help="timed runs at batch 1 (>= 20; a third, >= 5, at larger batches)"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per (model, backend, batch)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="latency against mult-adds, per model and backend")
    p.add_argument(
        "--pick",
        action="store_true",
        help="instead of the table: the fastest exportable backend per model and precision at the first --batch "
        "(measured once per machine, then cached; what `export --format auto` uses)",
    )
    p.add_argument("--precision", choices=(*PRECISIONS, "both"), default="both", help="--pick: which precision(s)")
    p.add_argument("--refresh", action="store_true", help="--pick: measure again instead of using the cache")
    p.set_defaults(run=run_bench_cli)


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from err
    if not values or min(values) < 1:
        raise ConfigError(f"{flag} needs positive integers, got {text!r}")
    return values


def run_bench_cli(args: argparse.Namespace) -> int:
    backends = check_backends(b.strip() for b in args.backends.split(",") if b.strip())
    models = check_models(m.strip() for m in args.models.split(",") if m.strip())
    batches = _ints(args.batch, "--batch")
    if args.resolution is not None and args.resolution < 32:
        raise ConfigError(f"--resolution must be at least 32, got {args.resolution}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if args.runs < 20:
        raise ConfigError(f"--runs must be at least 20 (batch 1 statistics), got {args.runs}")

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    if args.pick:
        return _pick(args, models, batches[0], log)
    resolution = args.resolution or DEFAULT_INPUT_SIZE
    rows, skips, facts = run_bench(models, backends, batches, resolution, args.threads, args.runs, log=log)
    if args.plot:
        plot(rows, args.plot, batches[0])
    if args.json:
        print(json.dumps(as_json(rows)))
        for line in describe_facts(facts):
            print(line, file=sys.stderr)
        for skip in skips:
            print(f"skipped {skip.model} / {skip.backend}: {skip.reason}", file=sys.stderr)
    else:
        print(table(rows, skips, facts))
    return 0


def _pick(args: argparse.Namespace, models: list[str], batch: int, log: Callable[[str], None]) -> int:
    precisions = PRECISIONS if args.precision == "both" else (args.precision,)
    for model in models:
        for precision in precisions:
            options = {"resolution": args.resolution, "threads": args.threads, "runs": args.runs}
            pick = pick_backend(model, precision, batch=batch, refresh=args.refresh, log=log, **options)
            print(json.dumps(asdict(pick)) if args.json else pick.describe())
            sys.stdout.flush()
    return 0
