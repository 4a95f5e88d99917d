"""The `--budget` of `edgehar tune`: limits on measured instructions, TFLM arena and flash.

`instructions=0.5M,arena=32KiB,flash=128KiB`: any subset of the three keys. Counts take the
suffixes k/K (1e3) and M (1e6); sizes take B, KB/MB (1000s) and KiB/MiB (1024s). The
instruction limit applies to every target core measured; flash is the int8 model file (the
flatbuffer firmware keeps in flash; TFLM's own code is the same for every model).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass

COUNT_SUFFIXES = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6}
SIZE_SUFFIXES = {"": 1, "B": 1, "KB": 1000, "MB": 1000 ** 2, "KiB": 1024, "MiB": 1024 ** 2}
KEYS = {"instructions": COUNT_SUFFIXES, "arena": SIZE_SUFFIXES, "flash": SIZE_SUFFIXES}
_VALUE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")


@dataclass(frozen=True)
class Budget:
    instructions: int | None = None  # per inference, on every target
    arena: int | None = None         # bytes TFLM allocates
    flash: int | None = None         # bytes of the int8 model file

    def excess(self, instructions: int, arena: int, flash: int) -> dict[str, float]:
        """Relative overshoot per limit given (<= 0: within), Optuna's constraint convention."""
        pairs = {"instructions": (instructions, self.instructions), "arena": (arena, self.arena),
                 "flash": (flash, self.flash)}
        return {k: (value - limit) / limit for k, (value, limit) in pairs.items() if limit is not None}

    def within(self, instructions: int, arena: int, flash: int) -> bool:
        return all(e <= 0 for e in self.excess(instructions, arena, flash).values())

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = [f"{k}={v:,}" for k, v in asdict(self).items() if v is not None]
        return ", ".join(parts) or "none"


def parse_budget(text: str) -> Budget:
    """`key=value[,key=value]` -> Budget (argparse `type=`: a bad entry fails at parse time)."""
    values = {}
    for part in text.split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep or key not in KEYS:
            raise argparse.ArgumentTypeError(
                f"bad budget entry {part.strip()!r}; expected KEY=VALUE with KEY one of "
                f"{', '.join(KEYS)} (e.g. instructions=0.5M,arena=32KiB,flash=128KiB)")
        if key in values:
            raise argparse.ArgumentTypeError(f"{key} is given twice in the budget")
        m = _VALUE.fullmatch(raw.strip())
        suffixes = KEYS[key]
        if not m or m.group(2) not in suffixes:
            raise argparse.ArgumentTypeError(
                f"bad {key} value {raw!r}; expected a number with an optional suffix "
                f"({', '.join(s for s in suffixes if s)})")
        value = float(m.group(1)) * suffixes[m.group(2)]
        if not math.isfinite(value) or value < 1:
            raise argparse.ArgumentTypeError(f"{key} must be at least 1, got {raw!r}")
        values[key] = int(round(value))
    return Budget(**values)
