"""`edgehar` command line: one sub-command per step of the flow.

Each step's module registers its own sub-parser (`register(subparsers)`) and keeps heavy
imports (torch, tensorflow) inside its run function, so `edgehar --help` stays fast.
A `UserError` anywhere becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from edgehar import __version__
from edgehar.errors import Terminated, UserError, end_progress_bars

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
    "edgehar.bridge.record",
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


_TERMINATED: list[int] = []  # set by the SIGTERM handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _TERMINATED.clear()
    restore = _catch_signals()
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        return _fail(f"error: {e.message}", 2)
    except KeyboardInterrupt:
        return _fail("terminated", 143) if _TERMINATED else _fail("interrupted", 130)
    except BrokenPipeError:
        return 0
    except Exception as e:
        if _interrupted(e):  # Ctrl-C inside an import (TensorFlow re-raises it as ImportError)
            return _fail("terminated", 143) if _TERMINATED else _fail("interrupted", 130)
        raise
    finally:
        restore()


def _fail(message: str, status: int) -> int:
    end_progress_bars()
    print(f"edgehar: {message}", file=sys.stderr)
    return status


def _interrupted(e: BaseException) -> bool:
    """Whether `e` was caused by Ctrl-C or SIGTERM somewhere down its chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _catch_signals():
    """Ctrl-C raises KeyboardInterrupt (even when started with SIGINT ignored, as a shell's
    background job is) and SIGTERM raises `Terminated`, so every command's cleanup (staging
    folders, temp files) runs on both. Returns a function that restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def terminate(signum, frame):
        _TERMINATED.append(signum)  # a library may re-raise the interrupt as another type
        raise Terminated()

    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)

    def restore():
        for sig, handler in old.items():
            if handler is not None:
                signal.signal(sig, handler)
    return restore


if __name__ == "__main__":
    sys.exit(main())
