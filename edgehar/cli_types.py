"""argparse `type=` functions for numeric and list flags, shared by every sub-command.

Each takes the flag's text and returns the parsed value, or raises
`argparse.ArgumentTypeError`, so a bad value fails at parse time with argparse's one-line
`error: argument --lr: ...` (exit 2) before anything is loaded or trained. NaN and
infinities are refused everywhere: no flag of edgehar means "not a number".
"""

from __future__ import annotations

import argparse
import math
import os

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


def integer(text: str) -> int:
    """A whole number in decimal ("12"; "1e3", "2.5" and "nan" refused)."""
    try:
        value = int(str(text).strip(), 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"too large: {text!r}")
    return value


def _within(parse, ok, needs: str, doc: str):
    """A type function: `parse`, then refuse values for which `ok` is false ("must be {needs}")."""
    def check(text: str):
        value = parse(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {needs}, got {text!r}")
        return value

    check.__doc__ = doc
    return check


positive_float = _within(finite_float, lambda v: v > 0, "> 0",
                         "A finite float > 0 (a rate, a learning rate, a temperature, a duration).")
nonneg_float = _within(finite_float, lambda v: v >= 0, ">= 0", "A finite float >= 0 (a loss weight).")
probability = _within(finite_float, lambda v: 0 <= v <= 1, "between 0 and 1", "A finite float in [0, 1].")
fraction = _within(finite_float, lambda v: 0 < v <= 1, "in (0, 1]",
                   "A finite float in (0, 1] (a share that must keep something).")
positive_int = _within(integer, lambda v: v >= 1, "at least 1",
                       "A whole number >= 1 (steps, batch size, windows, threads).")
MAX_THREADS_PER_CORE = 4


def threads(text: str) -> int:
    """CPU threads: a whole number from 1 to 4x the machine's cores (more only adds contention,
    and a thousand threads of a runtime's pool can exhaust memory)."""
    value = positive_int(text)
    most = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(f"at most {most} ({MAX_THREADS_PER_CORE} per CPU core), got {text!r}")
    return value


nonneg_int = _within(integer, lambda v: v >= 0, ">= 0", "A whole number >= 0 (a seed).")


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


def parse_labels(text: str) -> list[str]:
    """"walking, brushing teeth" -> ["walking", "brushing teeth"] (empty items dropped); at
    least two: zero-shot picks one label among several, so a single label would win every
    window (a macro-F1 of 1.0 that says nothing)."""
    labels = [t.strip() for t in str(text).split(",")]
    labels = [t for t in labels if t]
    if not labels:
        raise ValueError(f"no label in {text!r} (give comma-separated names, e.g. \"walking,brushing teeth\")")
    if len(set(labels)) != len(labels):
        raise ValueError(f"a label is named twice in {text!r}")
    if len(labels) < 2:
        raise ValueError(f"one label ({labels[0]!r}): zero-shot picks among at least two "
                         f"(e.g. \"{labels[0]},other\")")
    return labels


def parse_classes(text: str) -> list[str]:
    """"walking, running" -> ["walking", "running"]; at least two, none repeated (one class
    would win every window: a figure that says nothing)."""
    names = [t.strip() for t in str(text).split(",")]
    if not names or any(not n for n in names):
        raise ValueError(f"empty class name in {text!r} (give the model's class names, e.g. \"walking,sitting\")")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"class {', '.join(map(repr, repeated))} named twice in {text!r}")
    if len(names) < 2:
        raise ValueError(f"one class ({names[0]!r}): a subset keeps at least two of the model's classes")
    return names


def class_list(text: str) -> list[str]:
    """argparse `type=` for `--classes`."""
    try:
        return parse_classes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def label_list(text: str) -> list[str]:
    """Comma-separated class names for zero-shot scoring ("walking,brushing teeth")."""
    try:
        return parse_labels(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
