"""Do ours and the peer's build of one architecture run the same kernels? (no timing involved)

``mobilenet bench``'s versus rows compare our family members with torchvision's and timm's builds of
the same architecture. Where a ratio strays from 1, this script says whether the builds can differ
at all on that backend:

- ``compile``: both modules (random weights, eval mode) compiled by Inductor with freezing, as
  ``mobilenet bench`` does; the generated Python/C++ code of each is normalised (buffer, argument
  and constant names, addresses, source-node comments) and diffed. An empty diff means the same
  kernels in the same order with the same arguments.
- ``eager`` / ``channels_last``: the ATen operators each forward pass dispatches (PyTorch's
  profiler, top-level operators only), counted by name: in-place and out-of-place variants and
  equivalent reductions are shown as they are, so a reader sees exactly what differs.

Run: .venv/bin/python benchmarks/kernel_diff.py --model mobilenet_v2_100_224 [--backends compile,channels_last]
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections import Counter

import torch

from mobilenet.bench import PEER_BUILDS, load_subject

NORMALISE = (
    (re.compile(r"0x[0-9a-f]+"), "ADDR"),
    (re.compile(r"\b(buf|arg|constant|_frozen_param|primals_)\d+(_\d+)?"), r"\1N"),
    (re.compile(r"\b([a-z_]+?)_\d+\b"), r"\1_N"),
    (re.compile(r"# Topologically Sorted Source Nodes: .*"), "# source nodes"),
    (re.compile(r"^# (kernel path|AOT ID): .*$|^async_compile\.wait.*$", re.M), ""),
    (re.compile(r"'[0-9a-z]{40,}'|/tmp/[^\s'\"]+"), "PATH"),
    (re.compile(r"(device\(type='cpu'\) torch\.\w+ \([^)]*\) \([^)]*\)) \w+$", re.M), r"\1"),
)


def normalised(code: str) -> list[str]:
    """Inductor's output code with names that differ between two compilations of the same graph made equal."""
    for pattern, repl in NORMALISE:
        code = pattern.sub(repl, code)
    return [line.rstrip() for line in code.splitlines() if line.strip()]


def inductor_code(module: torch.nn.Module, x: torch.Tensor) -> list[str]:
    """The code Inductor generates for ``module`` on ``x`` (freezing on, as ``mobilenet bench``'s compile)."""
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    compiled = torch.compile(module)
    with torch.no_grad(), torch._inductor.config.patch(freezing=True):
        _, codes = run_and_get_code(compiled, x)
    return normalised("\n".join(codes))


def aten_ops(module: torch.nn.Module, x: torch.Tensor) -> Counter[str]:
    """Top-level ATen operators of one forward pass, by name."""
    with torch.no_grad(), torch.profiler.profile() as prof:
        module(x)
    return Counter(event.name for event in prof.events() if event.cpu_parent is None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2_100_224", help=f"one of {', '.join(PEER_BUILDS)}")
    parser.add_argument("--backends", default="compile,eager,channels_last")
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ours, peer = load_subject(args.model, args.resolution), load_subject(PEER_BUILDS[args.model], args.resolution)
    x = torch.randn(1, 3, args.resolution, args.resolution)
    for backend in args.backends.split(","):
        if backend == "compile":
            a, b = inductor_code(ours.module, x), inductor_code(peer.module, x)
            diff = list(difflib.unified_diff(a, b, ours.name, peer.name, lineterm="", n=0))
            verdict = "identical" if not diff else f"{sum(line[:1] in '+-' for line in diff[2:])} lines differ"
            print(f"compile: {len(a)} / {len(b)} lines of generated code, {verdict}")
            print("\n".join(diff[:40]))
            continue
        layout = torch.channels_last if backend == "channels_last" else torch.contiguous_format
        xs = x.contiguous(memory_format=layout)
        ops = [aten_ops(s.module.to(memory_format=layout), xs) for s in (ours, peer)]
        names = sorted(set(ops[0]) | set(ops[1]))
        print(f"{backend}: ATen operators per forward pass (ours / {peer.name})")
        for name in names:
            mark = "" if ops[0][name] == ops[1][name] else "   <- differs"
            print(f"  {name:40s} {ops[0][name]:4d} / {ops[1][name]:4d}{mark}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
