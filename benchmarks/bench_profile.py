"""Profile the kit's students (or any model files) and check the profiler against PyTorch.

    python benchmarks/bench_profile.py [MODEL ...] [--runs 200] [--out benchmarks/results]

With no MODEL, builds the tiny and small students (HAPT shape: 128 samples x 6 channels, acc +
gyro streams, 6 classes; untrained: costs do not depend on weights) and exports each to float32
and int8 TFLite (Keras mirror + TensorFlow converter) and float32 ONNX (torch.onnx), then
profiles every file with `edgehar profile`. For the students it also records the PyTorch MAC
count (`torch_macs`, logits and embedding head) next to the graph count, and how long the
profile itself took. Writes `profile.json` and `profile.md`. One thread, fixed seed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgehar.atomic import write_json, write_text
from edgehar.profile.report import profile_model

HERE = Path(__file__).resolve().parent
HAPT_STREAMS = {"acc": [0, 1, 2], "gyro": [3, 4, 5]}


def export_students(folder: Path) -> tuple[list[Path], dict[str, int]]:
    """Tiny and small students as fp32/int8 .tflite and fp32 .onnx; their PyTorch MACs."""
    import torch

    from edgehar.export import keras_mirror, onnx as export_onnx, tflite as export_tflite
    from edgehar.models import student
    from edgehar.models.torch_macs import torch_macs

    torch.set_num_threads(1)
    files, reference = [], {}
    calib = np.random.default_rng(0).standard_normal((32, 128, 6)).astype(np.float32)
    for size in ("tiny", "small"):
        torch.manual_seed(0)
        model = student.Student(student.student_config(size, 128, 6, HAPT_STREAMS,
                                                       {"activity": 6})).eval()
        with export_tflite.quiet():
            mirror = keras_mirror.build_keras_mirror(model.cfg, model.state_dict())
        for name, data in ((f"student-{size}-fp32.tflite", export_tflite.convert_fp32(mirror)),
                           (f"student-{size}-int8.tflite", export_tflite.convert_int8(mirror, calib))):
            (folder / name).write_bytes(data)
            files.append(folder / name)
        export_onnx.export_fp32(model, 128, 6, folder / f"student-{size}-fp32.onnx")
        files.append(folder / f"student-{size}-fp32.onnx")
        reference[size] = torch_macs(model, torch.zeros(1, 128, 6))
    return files, reference


def markdown(rows: list[dict]) -> str:
    head = ("| model | format | params | weights B | file B | MACs | PyTorch MACs | TFLM arena B "
            "| host median ms | host p90 ms | M4F@64 est. ms | M33@160 est. ms | M7@480 est. ms "
            "| S3@240 est. ms | profile s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lat = r["latency_ms"] or {}
        est = {t["name"].split("@")[0]: t["estimated_ms"] for t in r["targets"]}
        arena = r["arena_bytes"] if r["arena_bytes"] else (
            "n/a" if r["tflm_supported"] is None else "unsupported: " + ", ".join(r["tflm_unsupported_ops"]))
        torch_macs = f"{r['torch_macs']:,}" if "torch_macs" in r else ""
        lines.append(
            f"| {Path(r['model']).name} | {r['format']} | {r['params']:,} | {r['weights_bytes']:,} "
            f"| {r['file_bytes']:,} | {r['macs']:,} | {torch_macs} | {arena} "
            f"| {lat.get('median', float('nan')):.4f} | {lat.get('p90', float('nan')):.4f} "
            f"| {est.get('cortex-m4f', 0):.2f} | {est.get('cortex-m33', 0):.2f} "
            f"| {est.get('cortex-m7', 0):.2f} | {est.get('esp32-s3', 0):.2f} | {r['profile_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model files (default: export the tiny/small students)")
    ap.add_argument("--runs", type=int, default=200, help="timed host runs per model")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        files, reference = [Path(m) for m in args.models], {}
        if not files:
            files, reference = export_students(Path(tmp))
        rows = []
        for path in files:
            t0 = time.perf_counter()
            r = profile_model(path, runs=args.runs, warmup=20)
            r["profile_s"] = time.perf_counter() - t0
            size = next((s for s in reference if f"-{s}-" in path.name), None)
            if size:
                r["torch_macs"] = reference[size]
            rows.append(r)
            print(f"{path.name}: {r['macs']:,} MACs, arena {r['arena_bytes']}, "
                  f"{(r['latency_ms'] or {}).get('median', float('nan')):.4f} ms", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "profile.json", {"runs": args.runs, "models": rows})
    note = ("MCU columns are ESTIMATES (MAC layers x cycles-per-MAC / clock; sources in "
            "edgehar/profile/targets.py). PyTorch MACs count the student's embedding head, "
            "which the deployed graphs do not contain.\n\n")
    write_text(out / "profile.md", "# edgehar profile: students\n\n" + note + markdown(rows))
    print(out / "profile.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
