"""A student's full-int8 TFLite file and what it costs on each target core, MEASURED.

The file is what `edgehar export` would write for TFLite-Micro (the Keras mirror, the int8
converter with the calibration windows, the full-integer check), without the ONNX files and
the parity report a trial does not need. It runs in the cached TFLM runner under QEMU
(`edgehar.profile.mcu_report.measure_entry`, CMSIS-NN kernels): instructions of one
steady-state inference per core, and the arena TFLM allocated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehar.atomic import write_bytes
from edgehar.export import tflite
from edgehar.export.keras_mirror import build_keras_mirror
from edgehar.profile.macs import count_layers
from edgehar.profile.mcu_report import measure_entry
from edgehar.profile.tflite_graph import read_tflite


def int8_tflite(model, card, calib_x: np.ndarray) -> bytes:
    """Full-int8 flatbuffer of a student; `calib_x` normalised windows of its training data."""
    clip = card.arch["config"].get("input_clip")
    if clip:  # as export does: the input range is calibrated on what the model keeps
        calib_x = np.clip(calib_x, -clip, clip)
    with tflite.quiet():
        mirror = build_keras_mirror(card.arch["config"], model.state_dict())
        return tflite.convert_full_int8(mirror, calib_x)[0]


def measure_file(toolchain, path: Path, targets: list[str]) -> dict:
    """{"instructions": {cpu: n}, "arena": bytes (the largest over cores), "flash": file bytes,
    "by_op": {cpu: {op: instructions}}} of a .tflite run on each target core."""
    rows = count_layers(read_tflite(path))
    entries = {cpu: measure_entry(toolchain, str(path), rows, cpu, None, "cmsis-nn") for cpu in targets}
    return {"instructions": {cpu: e["instructions"] for cpu, e in entries.items()},
            "arena": max(e["arena_used_bytes"] for e in entries.values()),
            "flash": Path(path).stat().st_size,
            "by_op": {cpu: {op: a["instructions"] for op, a in e["by_op"].items()} for cpu, e in entries.items()}}


def measure_student(toolchain, model, card, calib_x: np.ndarray, path: Path, targets: list[str]) -> dict:
    """Write the student's int8 file to `path` and measure it (see `measure_file`)."""
    write_bytes(path, int8_tflite(model, card, calib_x))
    return measure_file(toolchain, path, targets)
