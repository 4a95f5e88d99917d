"""The training commands' shared flags (`--device`, `--checkpoint-every`, `--resume`), bound
to the parsers here so the CLI can be built without importing torch (`edgehar --help` stays
fast); `edgehar.train.loop` does the work behind them."""

from __future__ import annotations

import argparse

from edgehar.cli_types import nonneg_int

DEFAULT_CHECKPOINT_EVERY = 500  # optimiser steps between checkpoints of a command's run


def device_arg(text: str) -> str:
    """argparse `type=` for --device: the spec, checked against this machine at parse time."""
    from edgehar.train.loop import resolve_device  # torch: only once a command's flags are read

    try:
        resolve_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text}: {e}") from None
    return text.strip().lower()


def add_device_argument(parser) -> None:
    parser.add_argument("--device", type=device_arg, default="auto",
                        help="auto (a GPU when CUDA is available, else the CPU), cpu, cuda or cuda:N "
                             "(default auto)")


def add_resume_arguments(parser) -> None:
    parser.add_argument("--checkpoint-every", type=nonneg_int, default=DEFAULT_CHECKPOINT_EVERY, metavar="N",
                        help=f"write a resumable checkpoint every N optimiser steps into <out>.run/ "
                             f"(0: none; default {DEFAULT_CHECKPOINT_EVERY}); removed when the run completes")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the interrupted run whose checkpoints are in DIR (same command and flags)")
