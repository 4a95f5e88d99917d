"""argparse `type=` functions for numeric and list flags, shared by every sub-command.

Each takes the flag's text and returns the parsed value, or raises
`argparse.ArgumentTypeError`, so a bad value fails at parse time with argparse's one-line
`error: argument --lr: ...` (exit 2) before anything is loaded or trained. NaN and
infinities are refused everywhere: no flag of edgehar means "not a number".
"""

from __future__ import annotations

import argparse
import math

from edgehar.card import KNOWN_CHANNELS

# Integers a seed or count may take: numpy and torch seeds must fit in 64 bits (unsigned).
MAX_INT = 2 ** 63 - 1


def finite_float(text: str) -> float:
    """A finite float ("nan", "inf" and non-numbers refused)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0 (a rate, a learning rate, a temperature, a duration)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonneg_float(text: str) -> float:
    """A finite float >= 0 (a loss weight)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A finite float in [0, 1]."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A finite float in (0, 1] (a share that must keep something)."""
    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def integer(text: str) -> int:
    """A whole number in decimal ("12"; "1e3", "2.5" and "nan" refused)."""
    try:
        value = int(str(text).strip(), 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"too large: {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (steps, epochs, batch size, windows, threads)."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    """A whole number >= 0 (a seed)."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def channel_list(text: str) -> list[str]:
    """Comma-separated channel names, each one edgehar knows (acc_x ... mag_z), no repeats."""
    names = [c.strip() for c in str(text).split(",")]
    if not names or any(not c for c in names):
        raise argparse.ArgumentTypeError(f"empty channel name in {text!r} (expected e.g. acc_x,acc_y,acc_z)")
    unknown = [c for c in names if c not in KNOWN_CHANNELS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown channel {', '.join(map(repr, unknown))} "
                                         f"(known: {', '.join(KNOWN_CHANNELS)})")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a channel is named twice in {text!r}")
    return names
