"""parity.json: the float PyTorch student vs every exported artifact on held-out real windows.

Bounds (the export issue's acceptance figures):
- fp32 TFLite and fp32 ONNX: max |logit difference| to PyTorch <= 1e-4;
- int8 TFLite and int8 ONNX: top-1 agreement with PyTorch >= 98%, macro-F1 drop <= 1.0 point;
- int8 TFLite on TFLite-Micro (reference kernels) and tflite-runtime vs ai-edge-litert:
  int8 outputs within 4 LSB, same top-1 on >= 99.5% of windows;
- int8 TFLite file <= 30% of the fp32 file (reported for the whole file and for the weight
  buffers alone). Both files are compacted the same way first (edgehar.export.compact), and
  `tflite_bytes_breakdown` says where their bytes go. `int8_tflite_ratio_floor` =
  (int8 weight buffers + per-channel float32 scales) / fp32 weight buffers is the lowest file
  ratio any flatbuffer holding this int8 graph can reach (everything else in the int8 file --
  tables, names, card -- is at least as large as in the fp32 file, and adding the same amount
  to both sides of a ratio below 1 only raises it). Int32 biases and a scale per output channel
  for every weight and bias tensor keep that floor above 0.30 on students of 15-55k parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgehar.export import onnx as onnx_export
from edgehar.export import tflite as tflite_export  # `tflite` is weight_bytes' argument
from edgehar.export.compact import breakdown
from edgehar.scoring import score

BOUNDS = {
    "fp32_tflite_max_abs_diff": ("<=", 1e-4),
    "fp32_onnx_max_abs_diff": ("<=", 1e-4),
    "int8_tflite_top1_agreement": (">=", 0.98),
    "int8_tflite_macro_f1_drop_points": ("<=", 1.0),
    "int8_onnx_top1_agreement": (">=", 0.98),
    "int8_onnx_macro_f1_drop_points": ("<=", 1.0),
    "int8_micro_max_lsb": ("<=", 4),
    "int8_micro_top1_agreement": (">=", 0.995),
    "int8_tflite_runtime_max_lsb": ("<=", 4),
    "int8_tflite_runtime_top1_agreement": (">=", 0.995),
    "int8_tflite_file_ratio": ("<=", 0.30),
    "int8_tflite_weights_ratio": ("<=", 0.30),
}


def check_bounds(figures: dict) -> dict:
    """{name: {"value", "bound", "ok"}} for every bounded figure present in `figures`."""
    out = {}
    for name, (op, bound) in BOUNDS.items():
        if figures.get(name) is None:
            continue
        v = figures[name]
        out[name] = {"value": v, "bound": f"{op} {bound:g}", "ok": bool(v <= bound if op == "<=" else v >= bound)}
    return out


def weight_bytes(tflite: bytes) -> int:
    """Bytes of the constant buffers (weights, biases) of a TFLite file, metadata excluded."""
    m = schema.Model.GetRootAs(tflite, 0)
    meta = {m.Metadata(i).Buffer() for i in range(m.MetadataLength())}
    return int(sum(m.Buffers(i).DataLength() for i in range(m.BuffersLength()) if i not in meta))


def parity_report(model, card, held_out, files: dict, micro: bool = True,
                  tflite_runtime_python: str | None = None) -> dict:
    """Compare PyTorch with each artifact in `files` (keys fp32_tflite, int8_tflite, fp32_onnx,
    int8_onnx -> path) on the windows of `held_out` (raw `Windows`)."""
    from edgehar.models.inference import predict_logits

    x = card.normalise(held_out.x)
    ref = predict_logits(model, x)
    labelled = held_out.y >= 0
    truth = [card.labels[i] for i in held_out.y[labelled]]
    # the kit's one scoring (`edgehar.scoring`, as `edgehar eval`): over the classes the windows hold
    f1 = lambda logits: score(truth, [card.labels[i] for i in logits[labelled].argmax(1)])["macro_f1"]  # noqa: E731
    agree = lambda a, b: float((a.argmax(1) == b.argmax(1)).mean())  # noqa: E731
    f1_ref = f1(ref)
    fig: dict = {"windows": int(len(x)), "labelled_windows": int(labelled.sum()), "macro_f1_pytorch": f1_ref}

    if "fp32_tflite" in files:
        out = tflite_export.run_litert(files["fp32_tflite"], x)
        fig["fp32_tflite_max_abs_diff"] = float(np.abs(out - ref).max())
        fig["macro_f1_fp32_tflite"] = f1(out)
    if "fp32_onnx" in files:
        out = onnx_export.run_onnx(files["fp32_onnx"], x)
        fig["fp32_onnx_max_abs_diff"] = float(np.abs(out - ref).max())
        fig["macro_f1_fp32_onnx"] = f1(out)
    if "int8_tflite" in files:
        q = card.quantization
        qin = {"scale": q["input_scale"], "zero_point": q["input_zero_point"]}
        qout = {"scale": q["output_scale"], "zero_point": q["output_zero_point"]}
        xq = tflite_export.quantize(x, qin)
        raw = tflite_export.run_litert(files["int8_tflite"], xq)
        out = tflite_export.dequantize(raw, qout)
        fig["int8_tflite_top1_agreement"] = agree(out, ref)
        fig["macro_f1_int8_tflite"] = f1(out)
        fig["int8_tflite_macro_f1_drop_points"] = 100 * (f1_ref - fig["macro_f1_int8_tflite"])
        fig["int8_tflite_max_abs_diff"] = float(np.abs(out - ref).max())
        for name, runner in (("micro", tflite_export.run_micro if micro else None),
                             ("tflite_runtime",
                              (lambda p, v: tflite_export.run_tflite_runtime(tflite_runtime_python, p, v))
                              if tflite_runtime_python else None)):
            if runner is None:
                continue
            other = runner(files["int8_tflite"], xq)
            fig[f"int8_{name}_max_lsb"] = int(np.abs(other.astype(np.int32) - raw.astype(np.int32)).max())
            fig[f"int8_{name}_top1_agreement"] = agree(other.astype(np.float32), raw.astype(np.float32))
    if "int8_onnx" in files:
        out = onnx_export.run_onnx(files["int8_onnx"], x)
        fig["int8_onnx_top1_agreement"] = agree(out, ref)
        fig["macro_f1_int8_onnx"] = f1(out)
        fig["int8_onnx_macro_f1_drop_points"] = 100 * (f1_ref - fig["macro_f1_int8_onnx"])
    sizes = {key: os.path.getsize(path) for key, path in files.items()}
    fig["bytes"] = sizes
    if "fp32_tflite" in files and "int8_tflite" in files:
        fig["int8_tflite_file_ratio"] = sizes["int8_tflite"] / sizes["fp32_tflite"]
        data = {k: Path(files[k]).read_bytes() for k in ("fp32_tflite", "int8_tflite")}
        w32, w8 = (weight_bytes(data[k]) for k in ("fp32_tflite", "int8_tflite"))
        fig["weight_bytes"] = {"fp32_tflite": w32, "int8_tflite": w8}
        fig["int8_tflite_weights_ratio"] = w8 / w32
        parts = {k: breakdown(v) for k, v in data.items()}
        fig["tflite_bytes_breakdown"] = parts
        fig["int8_tflite_ratio_floor"] = (w8 + parts["int8_tflite"]["per_channel_scales"]) / w32
    if not truth:  # no held-out window of a class the model knows: no macro-F1 to compare
        fig = {k: v for k, v in fig.items() if "macro_f1" not in k}
    checks = check_bounds(fig)
    notes = {}
    if not checks.get("int8_tflite_file_ratio", {"ok": True})["ok"]:
        notes["int8_tflite_file_ratio"] = (
            f"measured {fig['int8_tflite_file_ratio']:.3f} after compacting both files the same way. "
            f"Floor for this graph: {fig['int8_tflite_ratio_floor']:.3f} = (int8 weights + int32 biases "
            "+ float32 per-channel scales) / fp32 weights, before any table, name or card; the rest "
            "(tensor/operator tables, per-tensor quantisation, card) is the same in both files and "
            "weighs as much as a few thousand int8 weights. See tflite_bytes_breakdown; "
            "int8_tflite_weights_ratio is the weight buffers alone.")
    return {"figures": fig, "bounds": checks, "ok": all(c["ok"] for c in checks.values()),
            "failed": [name for name, c in checks.items() if not c["ok"]], "notes": notes}
