"""argparse `type=` functions for the bridge's flags: a bad number is an argparse error at parse
time (exit 2, before any port or model is touched), never NaN or a negative reaching a library.
"""

from __future__ import annotations

import argparse
import json
import math
import os

from edgehar.bridge.virtual_device import Faults, check_link
from edgehar.cli_types import finite_float, positive_int
from edgehar.data.recording import MAX_RATE_HZ
from edgehar.errors import UserError

MIN_RATE_HZ = 0.1  # slower than any activity sensor; keeps the live resampler's filter small
LOG_FORMATS = (".csv", ".jsonl", ".json")  # what PredictionLog writes (.json = JSON lines)
LOG_HEADER = "time,segment,start,label,smoothed,delay_ms"  # a CSV prediction log's first line
LOG_KEYS = {"time", "segment", "label", "probs"}  # in every line of a JSON-lines prediction log


def rate_problem(rate) -> str | None:
    """Why `rate` (Hz) cannot be a stream's rate, or None when it can."""
    if rate is None:
        return "not a number"
    if not math.isfinite(rate):
        return f"{rate} is not a number of Hz"
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        return f"{rate:g} Hz is outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz"
    return None


def rate_hz(text: str) -> float:
    """A sample rate in MIN_RATE_HZ..MAX_RATE_HZ (no wearable sensor streams faster)."""
    value = finite_float(text)
    problem = rate_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def frame_samples(text: str) -> int:
    value = positive_int(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"a frame holds at most 255 samples, got {value}")
    return value


def faults(text: str):
    """A `--faults` spec, parsed and range-checked (see `Faults.parse`)."""
    try:
        return Faults.parse(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(e.what) from None


def is_prediction_log(path) -> bool:
    """Whether the file at `path` is empty or a prediction log `edgehar live` wrote: the only
    files `--log` replaces."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return False
    if not first:
        return True
    text = first.decode("utf-8", "replace").strip()
    if text.startswith(LOG_HEADER):
        return True
    try:
        row = json.loads(text)
    except ValueError:
        return False
    return isinstance(row, dict) and LOG_KEYS <= set(row)


def log_path(text: str) -> str:
    """A `--log` file: a known format, and not a folder or a device node. What an existing file
    holds, and whether it is one of the command's inputs, is checked before the model loads
    (`live.check_log_target`: only a prediction log is replaced)."""
    if not text.lower().endswith(LOG_FORMATS):
        raise argparse.ArgumentTypeError(f"{text}: unknown log format (use {', '.join(LOG_FORMATS)})")
    if os.path.exists(text) and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a regular file (refusing to write onto it)")
    return text


def link_path(text: str) -> str:
    """A `--link` path: its folder exists, and it is free or a pty link (see `check_link`)."""
    try:
        check_link(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    return text
