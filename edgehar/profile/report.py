"""`profile_model`: the whole profile of a .tflite or .onnx file as one JSON-able dict.

The dict's keys are the `edgehar profile --json` contract: format, inputs, outputs, ops,
params, weights_bytes, file_bytes, macs (+ layers with per_layer), other_ops, arena_bytes,
tflm_supported, tflm_unsupported_ops, latency_ms, mcu_measured (with --measure: instructions
counted on an emulated Cortex-M, keys in mcu_report.py), targets (the MAC-constant fallback
estimate, only without --measure). `format_table` renders it for people.
"""

from __future__ import annotations

import os

from edgehar.errors import UserError, first_line, require_file
from edgehar.profile.arena import measure_arena
from edgehar.profile.graph import Graph
from edgehar.profile.latency import measure_latency
from edgehar.profile.macs import UNCOUNTED, count_layers, weight_totals
from edgehar.profile.mcu_report import format_measured, measure_all
from edgehar.profile.onnx_graph import read_onnx
from edgehar.profile.targets import NOTE, TARGETS, compute_class, estimate, parse_target
from edgehar.profile.tflite_graph import looks_like_tflite, read_tflite

FALLBACK = ("fallback, no measurement (count instructions instead with --measure cortex-m4, "
            "which needs the Arm toolchain and EDGEHAR_TOOLCHAINS): ")


def read_graph(path: str | os.PathLike) -> Graph:
    """The model's `Graph`, whichever of .tflite / .onnx it is (decided by content)."""
    path = require_file(path, "model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if looks_like_tflite(head):
        return read_tflite(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".tflite":
        raise UserError(path, "not a TFLite flatbuffer (file identifier is not TFL3)")
    try:
        return read_onnx(path)
    except UserError:
        if suffix == ".onnx":
            raise
        raise UserError(path, "not a .tflite or .onnx model") from None


def profile_model(path: str | os.PathLike, *, per_layer: bool = False,
                  targets: list[str] | None = None, runs: int = 50, warmup: int = 5,
                  arena: bool = True, latency: bool = True,
                  measure: list[tuple[str, float | None]] | None = None,
                  kernels: str = "cmsis-nn", toolchains: str | None = None) -> dict:
    """Profile one model file. `targets`: NAME[@MHZ] specs (default: all known).
    `measure`: [(cpu, mhz)] to count instructions on an emulated Cortex-M (replaces targets)."""
    chosen = [parse_target(t) for t in (targets or list(TARGETS))]  # bad names fail first
    if runs < 1:
        raise UserError("--runs", f"must be at least 1, got {runs}")
    graph = read_graph(path)
    rows = count_layers(graph)
    params, weights_bytes, weight_dtypes = weight_totals(graph)

    macs_by_op: dict[str, int] = {}
    macs_by_class = {"int8": 0, "float32": 0}
    other: dict[str, int] = {}
    unknown_shape = []
    for r in rows:
        if r.macs is None:
            unknown_shape.append(r.layer.op)
        elif r.macs:
            macs_by_op[r.layer.op] = macs_by_op.get(r.layer.op, 0) + r.macs
            macs_by_class[compute_class(r.compute_dtype)] += r.macs
        if r.elements:
            other[r.layer.op] = other.get(r.layer.op, 0) + r.elements
    notes = list(graph.notes)
    if unknown_shape:
        notes.append(f"MACs of {len(unknown_shape)} layer(s) not counted, shapes unknown: "
                     f"{', '.join(sorted(set(unknown_shape)))}")
    uncounted = sorted({r.layer.op for r in rows if r.layer.op in UNCOUNTED})

    report = {
        "model": str(graph.path),
        "format": graph.format,
        "producer": graph.producer,
        "inputs": [t.io_dict() for t in graph.inputs],
        "outputs": [t.io_dict() for t in graph.outputs],
        "ops": graph.op_counts(),
        "params": params,
        "weights_bytes": weights_bytes,
        "weight_dtypes": weight_dtypes,
        "file_bytes": graph.file_bytes,
        "macs": sum(macs_by_op.values()),
        "macs_by_op": dict(sorted(macs_by_op.items(), key=lambda kv: -kv[1])),
        "macs_uncounted_ops": uncounted,
        "other_ops": {"total": sum(other.values()),
                      "by_op": dict(sorted(other.items(), key=lambda kv: -kv[1]))},
    }
    if per_layer:
        report["layers"] = [{
            "index": r.layer.index, "op": r.layer.op, "name": r.layer.name,
            "output_shape": (list(r.layer.outputs[0].shape)
                             if r.layer.outputs and r.layer.outputs[0] is not None
                             and r.layer.outputs[0].shape is not None else None),
            "dtype": r.compute_dtype, "macs": r.macs, "other_ops": r.elements, "params": r.params,
        } for r in rows]

    if graph.format == "tflite" and arena:
        report.update(measure_arena(graph.path).to_dict())
    else:
        report.update({"arena_bytes": None, "arena_recorded_bytes": None, "tflm_supported": None,
                       "tflm_unsupported_ops": []})
        if graph.format != "tflite":
            report["tflm_error"] = "tflite-micro runs .tflite files only"

    report["latency_ms"] = None
    if latency:
        try:
            report["latency_ms"] = measure_latency(graph, runs=runs, warmup=warmup)
        except Exception as e:  # noqa: BLE001 - a runtime refusing the model is a finding
            report["latency_error"] = f"{type(e).__name__}: {first_line(e, 200)}"

    report["mcu_measured"] = None
    if measure:
        report["mcu_measured"] = measure_all(str(graph.path), rows, measure, kernels, toolchains)
        report["targets"] = []
        report["targets_note"] = "replaced by mcu_measured"
    else:
        report["targets"] = [estimate(t, macs_by_class) for t in chosen]
        report["targets_note"] = FALLBACK + NOTE
    report["notes"] = notes
    return report


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB ({n:,} B)"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB ({n:,} B)"
    return f"{n} B"


def _count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit} ({n:,})"
    return str(n)


def _io(t: dict) -> str:
    q = t.get("quantization")
    quant = ""
    if q and len(q["scale"]) == 1:
        quant = f"  scale {q['scale'][0]:.6g} zero {q['zero_point'][0] if q['zero_point'] else 0}"
    elif q:
        quant = f"  per-channel ({len(q['scale'])} scales, axis {q['axis']})"
    return f"{t['name']}  {t['shape']} {t['dtype']}{quant}"


def format_table(r: dict) -> str:
    """A human-readable rendering of a `profile_model` report."""
    lines = [f"{r['model']}  ({r['format']}{', ' + r['producer'] if r['producer'] else ''})"]
    for key in ("inputs", "outputs"):
        for t in r[key]:
            lines.append(f"  {key[:-1]:<12}{_io(t)}")
    lines.append(f"  {'ops':<12}" + ", ".join(f"{op} x{n}" for op, n in r["ops"].items()))
    lines.append(f"  {'params':<12}{_count(r['params'])}  "
                 f"({', '.join(f'{k} {v:,}' for k, v in r['weight_dtypes'].items())})")
    lines.append(f"  {'weights':<12}{_size(r['weights_bytes'])}")
    lines.append(f"  {'file':<12}{_size(r['file_bytes'])}")
    lines.append(f"  {'MACs':<12}{_count(r['macs'])}  " +
                 ", ".join(f"{op} {n:,}" for op, n in r["macs_by_op"].items()))
    if r["macs_uncounted_ops"]:
        lines.append(f"  {'':<12}not counted: {', '.join(r['macs_uncounted_ops'])}")
    lines.append(f"  {'other ops':<12}{_count(r['other_ops']['total'])} element ops  " +
                 ", ".join(f"{op} {n:,}" for op, n in list(r["other_ops"]["by_op"].items())[:6]))
    if r["tflm_supported"]:
        lines.append(f"  {'arena':<12}{_size(r['arena_bytes'])}  (tflite-micro, measured)")
    elif r["tflm_supported"] is False:
        lines.append(f"  {'arena':<12}- tflite-micro cannot run it: {r.get('tflm_error', '')}")
    else:
        lines.append(f"  {'arena':<12}- ({r.get('tflm_error', 'not measured')})")
    lat = r["latency_ms"]
    if lat:
        lines.append(f"  {'latency':<12}median {lat['median']:.3f} ms, p90 {lat['p90']:.3f} ms "
                     f"over {lat['runs']} runs, 1 thread, {lat['runtime']}")
    else:
        lines.append(f"  {'latency':<12}- {r.get('latency_error', 'not measured')}")
    if r.get("mcu_measured"):
        lines.extend(format_measured(r["mcu_measured"]))
    else:
        lines.append(f"  targets     ESTIMATES ({r['targets_note']}):")
    for t in r["targets"]:
        cpm = ", ".join(f"{k} {v} cyc/MAC" for k, v in t["cycles_per_mac"].items()) or "no MACs"
        lines.append(f"    {t['name']:<22}~{t['estimated_ms']:.3f} ms  ({cpm}; e.g. {t['example']})")
    for note in r["notes"]:
        lines.append(f"  note: {note}")
    if "layers" in r:
        lines.append("")
        lines.append(f"  {'#':>4} {'op':<22} {'output':<18} {'dtype':<8} {'MACs':>12} "
                     f"{'other':>10} {'params':>9}  name")
        for l in r["layers"]:
            shape = "x".join(map(str, l["output_shape"])) if l["output_shape"] else "?"
            macs = "?" if l["macs"] is None else f"{l['macs']:,}"
            lines.append(f"  {l['index']:>4} {l['op'][:22]:<22} {shape[:18]:<18} {l['dtype']:<8} "
                         f"{macs:>12} {l['other_ops']:>10,} {l['params']:>9,}  {l['name'][:40]}")
    return "\n".join(lines)
