"""The ``mobilenet`` command: one thin sub-command per job (it parses, calls the library, prints).

Errors a user causes print one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from mobilenet import __version__
from mobilenet.cli import analysis, bench, demo, evaluate, export, serve, train, weights
from mobilenet.errors import MobileNetError

COMMANDS = (analysis, train, evaluate, weights, export, bench, serve, demo)
EXIT_USAGE = 2
DESCRIPTION = "The MobileNet family (V1, V2, V3) exactly as published: analyse, train, evaluate, convert and deploy."
EXAMPLES = """most common:
  mobilenet train --recipe fashion-mnist --out runs/fashion          train (recipes: mobilenet train --help)
  mobilenet eval --checkpoint runs/fashion --data fashion-mnist     accuracy of a run, weights or exported file
  mobilenet export --checkpoint runs/fashion --out model.onnx       ONNX, ExecuTorch or .pt2, float or int8

`mobilenet COMMAND --help` explains each command; `mobilenet demo` runs the main job in minutes."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command registered."""
    parser = _Parser(
        prog="mobilenet",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except MobileNetError as err:
        print(f"mobilenet {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mobilenet {args.command}: interrupted", file=sys.stderr)
        return 130
