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
    "edgehar.zoo.cli",
    "edgehar.profile.cli",
    "edgehar.tune.cli",
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


_SIGNALLED: list[int] = []  # the stop signals received (SIGINT, SIGTERM) during this command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _SIGNALLED.clear()
    restore = _catch_signals()
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        return _fail(f"error: {e.message}", 2)
    except KeyboardInterrupt:
        return _stopped()
    except BrokenPipeError:
        return 0
    except Exception as e:
        # A library may turn the interrupt into another error (TensorFlow re-raises Ctrl-C in an
        # import as ImportError; Keras then fails on the half-imported module): once a stop
        # signal came, what follows is its consequence, not a bug.
        if _SIGNALLED or _interrupted(e):
            return _stopped()
        raise
    finally:
        restore()


def _stopped() -> int:
    """Ctrl-C or SIGTERM, handled: one line, exit 143 or 130."""
    _forget_unhandled_interrupt()
    return _fail("terminated", 143) if signal.SIGTERM in _SIGNALLED else _fail("interrupted", 130)


def _forget_unhandled_interrupt() -> None:
    """CPython sets a sticky flag when a KeyboardInterrupt leaves code a C extension runs
    through PyRun_String (an import of TensorFlow does), and at exit kills the process with
    SIGINT whatever status it returns: exit -2 instead of edgehar's 130. The interrupt was
    handled here, so clear the flag (a CPython internal; absent elsewhere, then nothing to do)."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (AttributeError, ValueError, OSError):
        pass


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
        _SIGNALLED.append(signum)
        raise Terminated()

    def interrupt(signum, frame):
        _SIGNALLED.append(signum)
        raise KeyboardInterrupt()

    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, terminate)

    def restore():
        for sig, handler in old.items():
            if handler is not None:
                signal.signal(sig, handler)
    return restore


if __name__ == "__main__":
    sys.exit(main())
