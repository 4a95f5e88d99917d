"""Run a .tflite on an emulated Cortex-M and count the instructions it executes.

`run_on_mcu` boots the cached TFLM runner (build.runner) in `qemu-system-arm` with the
instruction-counting TCG plugin (firmware/qemu_plugin/insn_count.c), feeds it windows through
semihosting and returns, per inference, the exact instructions of `Invoke()` and of each op,
the arena TFLM allocated and the raw output bytes. Counts are exact and repeat run to run:
QEMU translates the same guest code the same way and the plugin adds 1 per executed
instruction (no sampling, no timer).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehar.errors import UserError, require_file
from edgehar.mcu import build
from edgehar.mcu.toolchain import Toolchain
from edgehar.profile.tflite_graph import read_tflite

MARKERS = {"B": "edgehar_mark_invoke_begin", "E": "edgehar_mark_invoke_end",
           "b": "edgehar_mark_op_begin", "e": "edgehar_mark_op_end"}
MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([^']+)'")


@dataclass
class Inference:
    instructions: int                      # Invoke() from entry to return
    ops: list[tuple[str, int]]             # (TFLM op name, instructions) in execution order


@dataclass
class McuRun:
    cpu: str
    kernels: str
    arena_used_bytes: int
    inferences: list[Inference]
    outputs: bytes                         # every inference's output tensor bytes, in order


def marker_addresses(tc: Toolchain, elf: Path) -> dict[str, int]:
    """Entry addresses of the marker functions (Thumb bit cleared: QEMU reports even PCs)."""
    nm = subprocess.run([tc.nm, str(elf)], capture_output=True, text=True, check=True).stdout
    symbols = {parts[2]: int(parts[0], 16) for parts in (l.split() for l in nm.splitlines())
               if len(parts) == 3}
    return {letter: symbols[name] & ~1 for letter, name in MARKERS.items()}


def parse_marks(log: str, op_names: list[list[str]]) -> list[Inference]:
    """Pair the plugin's marker log with the runner's op lists, one `Inference` per B..E."""
    inferences, stack, ops, begin = [], [], [], None
    for line in log.splitlines():
        letter, count = line.split()
        count = int(count)
        if letter == "B":
            begin, ops, stack = count, [], []
        elif letter == "b" and begin is not None:
            stack.append(count)
        elif letter == "e" and stack:
            ops.append(count - stack.pop())
        elif letter == "E" and begin is not None:
            names = op_names[len(inferences)]
            if len(names) != len(ops):
                raise RuntimeError(f"runner listed {len(names)} ops, plugin saw {len(ops)}")
            inferences.append(Inference(count - begin, list(zip(names, ops))))
            begin = None
    return inferences


def _runner_error(path: str, text: str) -> UserError:
    missing = MISSING_OP.search(text)
    if missing:
        return UserError(path, f"op {missing.group(1)} is not in edgehar's TFLM runner "
                               f"(firmware/tflm_runner/op_resolver.cc lists the ops it registers)")
    lines = [l for l in text.splitlines() if l.strip()]
    why = next((l for l in lines if l.startswith("error ")), lines[-1] if lines else "no output")
    return UserError(path, f"the Cortex-M runner failed: {why.removeprefix('error ')[:200]}")


def run_on_mcu(tc: Toolchain, model: str, windows: bytes, *, cpu: str = "cortex-m4",
               kernels: str = "cmsis-nn", timeout: float = 600, quiet: bool = False) -> McuRun:
    """Run `model` once per input-sized chunk of `windows` (raw input tensor bytes)."""
    model = require_file(model, "model file")
    spec = build.parse_cpu(cpu)
    elf = build.runner(tc, spec, kernels, quiet=quiet)
    plugin = build.insn_plugin(tc)
    marks = marker_addresses(tc, elf)
    work = Path(tempfile.mkdtemp(prefix="edgehar-mcu-"))
    try:
        shutil.copyfile(model, work / "model.tflite")
        (work / "input.bin").write_bytes(windows)
        plugin_args = ",".join([f"{plugin}", "out=marks.log",
                                *(f"mark={k}:{v:x}" for k, v in marks.items())])
        cmd = [tc.qemu, "-M", spec.machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
               "-plugin", plugin_args]
        try:
            r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(model, f"the {cpu} runner did not finish within {timeout:.0f} s") from None
        text = r.stdout + "\n" + r.stderr
        if r.returncode or "done " not in r.stdout:
            raise _runner_error(model, text)
        op_names, arena = [], None
        for line in r.stdout.splitlines():
            if line.startswith("arena_used "):
                arena = int(line.split()[1])
            elif line.startswith("invoke "):
                op_names.append([])
            elif line.startswith("op ") and op_names:
                op_names[-1].append(line[3:].strip())
        inferences = parse_marks((work / "marks.log").read_text(), op_names)
        outputs = (work / "output.bin").read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return McuRun(cpu, kernels, arena, inferences, outputs)


def input_spec(model: str) -> tuple[tuple[int, ...], np.dtype, tuple[int, ...], np.dtype]:
    """(input shape, input dtype, output shape, output dtype) of a one-input .tflite; the output
    is the first one (the class scores; a student's second output, its embedding, is not kept)."""
    graph = read_tflite(model)
    if len(graph.inputs) != 1 or not graph.outputs:
        raise UserError(model, "the Cortex-M runner takes models with one input and at least one output")
    i, o = graph.inputs[0], graph.outputs[0]
    return tuple(i.shape), np.dtype(i.dtype), tuple(o.shape), np.dtype(o.dtype)


def probe_windows(model: str, n: int = 2, seed: int = 0) -> bytes:
    """`n` copies of one seeded pseudo-random input (int8: uniform codes; float: N(0, 1))."""
    shape, dtype, _, _ = input_spec(model)
    rng = np.random.default_rng(seed)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    return x.tobytes() * n


def outputs_array(model: str, run: McuRun) -> np.ndarray:
    """The run's outputs as an (inferences, *output shape) array."""
    _, _, shape, dtype = input_spec(model)
    return np.frombuffer(run.outputs, dtype=dtype).reshape(-1, *shape)
