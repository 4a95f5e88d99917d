"""`edgehar` command line: one sub-command per step of the flow.

Each step's module registers its own sub-parser (`register(subparsers)`) and keeps heavy
imports (torch, tensorflow) inside its run function, so `edgehar --help` stays fast.
A `UserError` anywhere becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgehar import __version__
from edgehar.errors import UserError

# Modules that add sub-commands, in the order `--help` lists them.
COMMAND_MODULES = [
    "edgehar.data.cli",
    "edgehar.profile.cli",
    "edgehar.train.cli",
    "edgehar.train.distill_cli",
    "edgehar.calib.cli",
    "edgehar.export.cli",
    "edgehar.evaluate",
    "edgehar.bridge.cli",
    "edgehar.bridge.firmware_cli",
    "edgehar.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgehar",
        description="Deploy wearable HAR foundation models on the wrist: teachers -> distil -> "
                    "int8 export -> profile -> live predictions from a serial device.",
    )
    parser.add_argument("--version", action="version", version=f"edgehar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"edgehar: error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgehar: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
