"""`edgehar profile --measure`: instructions measured on an emulated Cortex-M, per op and in all.

One entry of the report's `mcu_measured` list (JSON keys):
- `cpu`, `machine` (the QEMU board), `kernels` ("cmsis-nn" | "reference")
- `instructions`: executed instructions of one steady-state `Invoke()` (the second of two
  inferences on the same seeded input; `first_inference_instructions` is the first one)
- `ops_instructions`: the sum over ops; `interpreter_instructions`: the rest of `Invoke()`
- `macs`, `instructions_per_mac` (None without MACs), `arena_used_bytes` (what TFLM allocated,
  `MicroInterpreter::arena_used_bytes()` on the device build)
- `per_op`: [{index, op, instructions, share, macs, instructions_per_mac}] in execution order
- `by_op`: {op: {count, instructions, share, macs, instructions_per_mac}}
- `mhz`, `cycles_per_instruction` [low, high], `latency_ms` [low, high]: an ESTIMATE from a
  measured instruction count (`latency_kind` says so), `cpi_source` cites the band
MACs come from edgehar's own counter (macs.py), matched to TFLM's ops by execution order.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from edgehar.errors import UserError
from edgehar.mcu.build import CPUS
from edgehar.mcu.run import probe_windows, run_on_mcu
from edgehar.mcu.toolchain import find_toolchain
from edgehar.profile.targets import split_clock
from edgehar.profile.tflite_graph import looks_like_tflite

LATENCY_KIND = "estimate from a measured instruction count"


@dataclass(frozen=True)
class CpiBand:
    low: float
    high: float
    mhz: float
    example: str
    source: str


# Instructions are not cycles. Low end: these cores retire at most one instruction per cycle
# on these kernels. High end: flash wait states and multi-cycle loads, measured on a board.
CPI = {
    "cortex-m4": CpiBand(
        1.0, 1.7, 64, "nRF52840 (Bangle.js 2) at 64 MHz",
        "low 1.0: the Cortex-M4 issues at most one instruction per cycle (Arm Cortex-M4 TRM, "
        "DDI 0439, 'Instruction set summary': most instructions 1 cycle, loads 2); high 1.7: "
        "TFLM person_detection with CMSIS-NN ran 386.6 ms on an STM32F413 at 100 MHz from flash "
        "(38.7M cycles) and executes 22.6M instructions counted this way (shared TOOLCHAIN.md)"),
    "cortex-m33": CpiBand(
        1.0, 1.7, 160, "STM32U5 at 160 MHz",
        "the M4 band: the Cortex-M33 mostly issues one instruction per cycle (its limited dual "
        "issue of 16-bit pairs can take a loop slightly below 1.0; Arm Cortex-M33 TRM, 100230) "
        "and meets the same flash wait states; not separately measured on a board"),
    "cortex-m55": CpiBand(
        1.0, 2.0, 160, "Alif Ensemble E3 high-efficiency core at 160 MHz",
        "low 1.0: single-issue scalar pipeline; high 2.0: the M55's MVE is dual-beat, a "
        "128-bit vector instruction occupies it for 2 cycles (Arm Cortex-M55 TRM, 101051), "
        "plus the M4 board's memory stalls; less grounded than the M4 band"),
}


def parse_measure(spec: str) -> list[tuple[str, float | None]]:
    """`cortex-m4[@MHZ][,cortex-m55[@MHZ]]` -> [(cpu, mhz or None)] (argparse `type=`)."""
    out = []
    for part in spec.split(","):
        name, clock, clock_ok = split_clock(part)
        if name not in CPUS:
            raise argparse.ArgumentTypeError(
                f"unknown CPU {name!r}; known: {', '.join(CPUS)} (optionally CPU@MHZ)")
        if not clock_ok:
            raise argparse.ArgumentTypeError(f"bad clock in {part!r}; expected CPU@MHZ")
        out.append((name, clock))
    return out


def _ipm(instructions: int, macs: int | None):
    return round(instructions / macs, 3) if macs else None


def measure_entry(tc, model: str, rows, cpu: str, mhz: float | None, kernels: str) -> dict:
    """Run `model` on `cpu` and build one `mcu_measured` entry (see module docstring)."""
    run = run_on_mcu(tc, model, probe_windows(model, 2), cpu=cpu, kernels=kernels)
    first, steady = run.inferences[0], run.inferences[-1]
    per_op, by_op = [], {}
    for i, (op, n) in enumerate(steady.ops):
        row = rows[i] if i < len(rows) and rows[i].layer.op == op else None
        macs = row.macs if row else None
        per_op.append({"index": i, "op": op, "instructions": n,
                       "share": round(n / steady.instructions, 4), "macs": macs,
                       "instructions_per_mac": _ipm(n, macs)})
        agg = by_op.setdefault(op, {"count": 0, "instructions": 0, "macs": 0})
        agg["count"] += 1
        agg["instructions"] += n
        agg["macs"] += macs or 0
    for agg in by_op.values():
        agg["share"] = round(agg["instructions"] / steady.instructions, 4)
        agg["instructions_per_mac"] = _ipm(agg["instructions"], agg["macs"])
    ops_total = sum(n for _, n in steady.ops)
    macs = sum(r.macs or 0 for r in rows)
    band = CPI[cpu]
    clock = mhz or band.mhz
    return {
        "cpu": cpu, "machine": CPUS[cpu].machine, "kernels": kernels,
        "instructions": steady.instructions,
        "first_inference_instructions": first.instructions,
        "ops_instructions": ops_total,
        "interpreter_instructions": steady.instructions - ops_total,
        "macs": macs, "instructions_per_mac": _ipm(steady.instructions, macs),
        "arena_used_bytes": run.arena_used_bytes,
        "per_op": per_op,
        "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]["instructions"])),
        "mhz": clock, "example": band.example if mhz is None else None,
        "cycles_per_instruction": [band.low, band.high],
        "latency_ms": [round(steady.instructions * band.low / (clock * 1e3), 4),
                       round(steady.instructions * band.high / (clock * 1e3), 4)],
        "latency_kind": LATENCY_KIND, "cpi_source": band.source,
    }


def measure_all(model: str, rows, specs: list[tuple[str, float | None]], kernels: str,
                toolchains: str | None) -> list[dict]:
    if not model.endswith(".tflite") and not _is_tflite(model):
        raise UserError(model, "--measure runs .tflite files only (TFLite-Micro)")
    tc = find_toolchain(toolchains)
    return [measure_entry(tc, model, rows, cpu, mhz, kernels) for cpu, mhz in specs]


def _is_tflite(path: str) -> bool:
    with open(path, "rb") as f:
        return looks_like_tflite(f.read(8))


def format_measured(entries: list[dict]) -> list[str]:
    lines = []
    for m in entries:
        ipm = f", {m['instructions_per_mac']} instr/MAC" if m["instructions_per_mac"] else ""
        lines.append(f"  {m['cpu']:<12}MEASURED on emulated {m['cpu']} ({m['machine']}, "
                     f"{m['kernels']} kernels): {m['instructions']:,} instructions/inference"
                     f"{ipm}; arena {m['arena_used_bytes']:,} B")
        lo, hi = m["latency_ms"]
        lines.append(f"  {'':<12}latency {lo:.3f}-{hi:.3f} ms at {m['mhz']:g} MHz "
                     f"({LATENCY_KIND}, {m['cycles_per_instruction'][0]}-"
                     f"{m['cycles_per_instruction'][1]} cycles/instruction)")
        for op, a in m["by_op"].items():
            ipm = f"{a['instructions_per_mac']:>6} instr/MAC" if a["instructions_per_mac"] else ""
            lines.append(f"  {'':<14}{op:<22} x{a['count']:<3} {a['instructions']:>11,} "
                         f"{a['share']:>6.1%}  {ipm}")
        lines.append(f"  {'':<14}{'(interpreter)':<22} {'':<4}{m['interpreter_instructions']:>11,}")
    return lines
