"""``mobilenet profile``, ``mobilenet paper`` and ``mobilenet models``: where the cost goes."""

from __future__ import annotations

import argparse
import json

from mobilenet import analysis, compare
from mobilenet.cli._format import millions, table
from mobilenet.models import get_model_info, list_models

KIND_ORDER = ("stem_conv", "expansion", "depthwise", "se", "projection", "pointwise", "full_conv", "fc")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the three analysis sub-commands."""
    p = sub.add_parser("profile", help="per-layer parameters and mult-adds of a model")
    p.add_argument("model", nargs="?", default="mobilenet_v1", help="registry name (default mobilenet_v1)")
    p.add_argument("--width-mult", type=float, help="the paper's alpha (default: the model's)")
    p.add_argument("--resolution", type=int, help="input size, the paper's rho (default: the model's)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run_profile)

    p = sub.add_parser("paper", help="the paper's cost figures (Tables 1-9) against ours")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run_paper)

    p = sub.add_parser("compare", help="which member to pick: cost, accuracy, latency and int8 loss side by side")
    p.add_argument("--models", help=f"comma-separated registry names (default: {', '.join(compare.FAMILY)})")
    p.add_argument("--results", default=str(compare.DEFAULT_RESULTS), help="the benchmarks' results file (JSON)")
    p.add_argument("--json", action="store_true", help="one JSON list of rows on stdout")
    p.add_argument("--plot", metavar="FILE", help="write top-1 against latency (Pareto front marked) as PNG")
    p.set_defaults(run=run_compare)

    p = sub.add_parser("models", help="the registry of named models with their metadata")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*_224'")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run_models)


def run_profile(args: argparse.Namespace) -> int:
    cost = analysis.profile(args.model, resolution=args.resolution, width_mult=args.width_mult)
    if args.json:
        print(json.dumps(cost.as_dict()))
        return 0
    height, width = cost.input_size
    print(f"{cost.model} at {height}x{width}: {millions(cost.mult_adds)} mult-adds, {millions(cost.params)} parameters")
    print("(mult-adds of conv and fc layers; BN, activations and pooling excluded; FLOPs = 2 x mult-adds)\n")
    rows = [
        (
            layer.index,
            layer.name,
            layer.kind,
            "x".join(map(str, layer.in_shape)),
            "x".join(map(str, layer.out_shape)),
            f"{layer.kernel}x{layer.kernel}",
            layer.stride,
            f"{layer.params:,}",
            f"{layer.params_share:.2f}",
            f"{layer.mult_adds:,}",
            f"{layer.mult_adds_share:.2f}",
            f"{layer.standard_mult_adds:,}" if layer.standard_mult_adds else "",
            f"{layer.separable_ratio:.3f}" if layer.separable_ratio else "",
        )
        for layer in cost.layers
    ]
    headers = (
        "#",
        "layer",
        "kind",
        "input",
        "output",
        "k",
        "s",
        "params",
        "%",
        "mult-adds",
        "%",
        "standard conv",
        "ratio",
    )
    print(table(headers, rows, [True, False, False, False, False, False, True, True, True, True, True, True, True]))
    print("\nBy layer type (the paper's Table 2):")
    shares = cost.by_kind()
    kind_rows = [(k, f"{shares[k]['mult_adds']:.2f}", f"{shares[k]['params']:.2f}") for k in KIND_ORDER if k in shares]
    print(table(("type", "mult-adds %", "params %"), kind_rows, [False, True, True]))
    pairs = [layer for layer in cost.layers if layer.standard_mult_adds]
    if pairs:
        separable = sum((layer.separable_ratio or 0) * (layer.standard_mult_adds or 0) for layer in pairs)
        standard = sum(layer.standard_mult_adds or 0 for layer in pairs)
        print(
            f"\nThe {len(pairs)} depthwise separable blocks cost {millions(separable)} mult-adds; standard 3x3 "
            f"convolutions in their place would cost {millions(standard)} ({standard / separable:.1f}x)."
        )
    return 0


def run_paper(args: argparse.Namespace) -> int:
    checks = analysis.paper_checks()
    ok = all(check.ok for check in checks)
    if args.json:
        rows = [{**vars(check), "deviation_percent": check.deviation} for check in checks]
        print(json.dumps({"ok": ok, "checks": rows}))
        return 0 if ok else 1
    for source in dict.fromkeys(check.table for check in checks):
        print(f"\n{source}")
        rows = [
            (
                c.item,
                c.quantity,
                f"{c.paper:g}",
                f"{c.ours:.3f}",
                f"{c.deviation:+.2f}%",
                "ok" if c.ok else "MISMATCH",
                c.note,
            )
            for c in checks
            if c.table == source
        ]
        print(
            table(
                ("item", "quantity", "paper", "ours", "deviation", "status", "note"),
                rows,
                [False, False, True, True, True, False, False],
            )
        )
    bad = sum(not check.ok for check in checks)
    print(f"\n{len(checks) - bad} of {len(checks)} published figures reproduced" + ("" if ok else f"; {bad} MISMATCH"))
    return 0 if ok else 1


def run_models(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    infos = [get_model_info(name) for name in names]
    if args.json:
        print(json.dumps({"models": [info.as_dict() for info in infos]}))
        return 0
    rows = []
    for info in infos:
        figures = info.published.get("TF-slim") or next(iter(info.published.values()), None)
        paper_rows = [f for src, f in info.published.items() if src.startswith("Table")]
        rows.append(
            (
                info.name,
                info.input_size,
                info.kwargs.get("width_mult", 1.0),
                f"{figures.mult_adds_m:g}" if figures else "",
                f"{figures.params_m:g}" if figures else "",
                f"{paper_rows[0].top1:g}" if paper_rows else "",
                f"{figures.top1:g}" if figures and figures.top1 and "TF-slim" in info.published else "",
                info.description,
            )
        )
    headers = ("name", "input", "alpha", "M mult-adds", "M params", "paper top-1", "TF-slim top-1", "description")
    print(table(headers, rows, [False, True, True, True, True, True, True, False]))
    print(
        f"\n{len(names)} models; mean/std {infos[0].mean}/{infos[0].std}, {infos[0].num_classes} classes"
        if infos
        else "no model matches"
    )
    return 0


def _cell(value: object, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def run_compare(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else list(compare.FAMILY)
    results = compare.read_results(args.results)
    rows = compare.family_rows(names, results)
    if args.plot:
        compare.plot(rows, args.plot)
    if args.json:
        print(json.dumps(compare.as_json(rows)))
        return 0
    front = {row.model for row in compare.pareto(rows)}
    cells = [
        (
            row.model + (" *" if row.model in front else ""),
            f"{row.params:.2f}",
            f"{row.mult_adds:.0f}",
            _cell(row.top1_published, ".1f"),
            _cell(row.top1_sample, ".1f"),
            _cell(row.flowers17, ".1f"),
            _cell(row.fp32_ms, ".2f") + (f" {row.fp32_backend}" if row.fp32_backend else ""),
            _cell(row.int8_ms, ".2f") + (f" {row.int8_backend}" if row.int8_backend else ""),
            _cell(row.int8_drop, "+.1f"),
        )
        for row in rows
    ]
    headers = (
        "model",
        "M params",
        "M mult-adds",
        "top-1 pub.",
        "top-1 sample",
        "Flowers-17",
        "fp32 ms",
        "int8 ms",
        "int8 drop",
    )
    print(table(headers, cells, [False, True, True, True, True, True, False, False, True]))
    print("\n* the Pareto front: no other member is both faster (best backend) and more accurate (published top-1)")
    for group, source in sorted(results["sources"].items()):
        print(f"{group}: {source.get('date')}, {source.get('cpu')}: {source.get('command')}")
    if not results["sources"]:
        print(f"no measured figures: {args.results} not found (the benchmarks write it; see docs/RESULTS.md)")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
