"""Peak RAM of a .tflite in the TFLite-Micro interpreter, measured, not estimated.

`arena_bytes` is the smallest tensor arena (to 16 bytes, the TFLM buffer alignment) with which
the tflite-micro Python interpreter allocates the model, found by bisection; the
`RecordingMicroAllocator`'s own total (`print_allocations`, read from the C-level stdout/stderr)
seeds the search and is reported too. When even a large arena fails, each distinct operator is
allocated alone in a one-operator copy of the model, so the report can name every operator
TFLM lacks (or cannot prepare for these tensor types), not only the first.

TFLM can crash the process (SIGSEGV) when an arena is far too small for its own bookkeeping, so
every allocation runs in a worker process (`python -m edgehar.profile.arena`); a worker that
dies counts as "too small" and is replaced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgehar.interpreters import c_output_to, micro_interpreter
from edgehar.profile.tflite_graph import single_op_models

ALIGN = 16
MAX_ARENA = 512 * 1024 * 1024
_SHORTAGE = re.compile(r"Failed to (allocate|resize)|missing:|available", re.I)
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([^']+)'")
_RECORDED = re.compile(r"Arena allocation total (\d+) bytes")


@dataclass
class ArenaReport:
    arena_bytes: int | None = None
    arena_recorded_bytes: int | None = None
    tflm_supported: bool | None = None
    tflm_unsupported_ops: list[str] = field(default_factory=list)
    tflm_error: str | None = None
    probes: int = 0

    def to_dict(self) -> dict:
        out = {"arena_bytes": self.arena_bytes, "arena_recorded_bytes": self.arena_recorded_bytes,
               "tflm_supported": self.tflm_supported,
               "tflm_unsupported_ops": self.tflm_unsupported_ops}
        if self.tflm_error:
            out["tflm_error"] = self.tflm_error
        return out


class _Worker:
    """A child process that allocates models in tflite-micro on request (one JSON line each)."""

    def __init__(self):
        self.proc = None

    def ask(self, **request) -> dict:
        for _ in range(2):
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "edgehar.profile.arena"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except BrokenPipeError:
                line = ""
            if line:
                return json.loads(line)
            code = self.proc.wait()
            self.proc = None
            if request.get("size", 0) < MAX_ARENA:  # died while allocating: arena too small
                return {"ok": False, "log": f"tflite-micro crashed (exit {code})", "crashed": True}
        return {"ok": False, "log": "tflite-micro worker keeps crashing", "crashed": True}

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.proc = None


def measure_arena(path: str) -> ArenaReport:
    """Bisect the smallest arena that allocates `path` in TFLM; explain failures."""
    worker = _Worker()
    report = ArenaReport()
    try:
        return _measure(worker, os.fspath(path), report)
    finally:
        worker.close()


def _measure(worker: _Worker, path: str, report: ArenaReport) -> ArenaReport:
    size = max(1 << 20, 16 * os.path.getsize(path))
    while True:  # grow until it allocates, or until the failure is not about size
        reply = worker.ask(path=path, size=size, record=True)
        report.probes += 1
        if reply["ok"] or size >= MAX_ARENA or not _SHORTAGE.search(reply["log"]):
            break
        size = min(size * 4, MAX_ARENA)
    if not reply["ok"]:
        report.tflm_supported = False
        report.tflm_unsupported_ops, reasons = _unsupported_ops(worker, path)
        report.tflm_error = _first_line(reply["log"]) or "TFLM failed to allocate tensors"
        if report.tflm_unsupported_ops:
            report.tflm_error = "; ".join(f"{op}: {why}" for op, why in reasons.items())
        return report
    report.tflm_supported = True
    recorded = _RECORDED.search(reply["log"])
    report.arena_recorded_bytes = int(recorded.group(1)) if recorded else None
    lo, hi = 0, size  # lo: known failure, hi: known success
    if report.arena_recorded_bytes and _align(report.arena_recorded_bytes) < hi:
        guess = _align(report.arena_recorded_bytes)  # bracket the answer tightly around it
        report.probes += 1
        if worker.ask(path=path, size=guess)["ok"]:
            hi, below = guess, _align(guess * 0.97)
            report.probes += 1
            if worker.ask(path=path, size=below)["ok"]:
                hi = below
            else:
                lo = below
        else:
            lo = guess
    while hi - lo > ALIGN:
        mid = _align((lo + hi) // 2)
        if mid in (lo, hi):
            break
        report.probes += 1
        if worker.ask(path=path, size=mid)["ok"]:
            hi = mid
        else:
            lo = mid
    check = worker.ask(path=path, size=hi, invoke=True)
    report.probes += 1
    if not check["ok"]:  # allocates but cannot run: say so rather than report a false figure
        report.tflm_supported = False
        report.tflm_error = _first_line(check["log"]) or "TFLM invoke failed"
        return report
    report.arena_bytes = hi
    return report


def _align(n: float) -> int:
    return int(-(-int(n) // ALIGN) * ALIGN)


def _first_line(log: str) -> str:
    lines = [l.strip() for l in log.splitlines() if l.strip()]
    return lines[0] if lines else ""


def _unsupported_ops(worker: _Worker, path: str) -> tuple[list[str], dict[str, str]]:
    """Allocate each distinct operator alone; return those TFLM cannot prepare, with why."""
    bad: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edgehar-tflm-") as tmp:
        for op_name, model_bytes in single_op_models(path):
            one = os.path.join(tmp, f"{len(bad)}-{re.sub(r'[^A-Za-z0-9_]', '_', op_name)}.tflite")
            with open(one, "wb") as f:
                f.write(model_bytes)
            reply = worker.ask(path=one, size=64 << 20)
            if not reply["ok"]:
                missing = _MISSING_OP.search(reply["log"])
                bad[op_name] = ("no kernel in tflite-micro" if missing else
                                _first_line(reply["log"]) or "cannot be prepared")
    return sorted(bad), dict(sorted(bad.items()))


# -- worker side ------------------------------------------------------------------------------
def _serve() -> None:
    """Answer allocation requests on stdin; C-level output of TFLM is captured per request."""
    reply_stream = os.fdopen(os.dup(1), "w")
    cache: dict[str, bytes] = {}
    for line in sys.stdin:
        req = json.loads(line)
        data = cache.get(req["path"])
        if data is None:
            data = cache[req["path"]] = open(req["path"], "rb").read()
        ok, error = False, ""
        with tempfile.TemporaryFile() as log:
            try:
                with c_output_to(log):
                    interp = micro_interpreter(data, int(req["size"]))
                    if req.get("invoke"):
                        for i in range(_count_inputs(data)):
                            d = interp.get_input_details(i)
                            interp.set_input(np.zeros(d["shape"], d["dtype"]), i)
                        interp.invoke()
                    if req.get("record"):
                        interp.print_allocations()
                ok = True
            except (RuntimeError, ValueError) as e:
                error = str(e)
            log.seek(0)
            text = log.read().decode("utf-8", "replace")
        reply_stream.write(json.dumps({"ok": ok, "log": (text + "\n" + error).strip()}) + "\n")
        reply_stream.flush()


def _count_inputs(data: bytes) -> int:
    return schema.Model.GetRootAs(data, 0).Subgraphs(0).InputsLength()


if __name__ == "__main__":
    _serve()
