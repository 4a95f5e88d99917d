"""Measuring one model for the table: scores through `edgehar eval`'s code, file exports of any
torch window classifier, the profile, host latency, and the Bangle.js wrist score."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from edgehar.atomic import write_bytes
from edgehar.bench.provenance import shown_path
from edgehar.card import ModelCard
from edgehar.card_io import embed_card_tflite
from edgehar.data.datasets import activity_windows, windows_for_card
from edgehar.errors import UserError
from edgehar.evaluate import evaluate_file
from edgehar.export import onnx as onnx_export
from edgehar.export.tflite import quiet
from edgehar.mcu.toolchain import find_toolchain
from edgehar.metrics import report
from edgehar.models import build
from edgehar.models.harfm import CONFIGS, DEFAULT_INPUT
from edgehar.models.inference import predict_logits
from edgehar.models.limubert import teacher_from_spec
from edgehar.models.torch_macs import torch_macs as count_torch_macs
from edgehar.profile.macs import count_layers
from edgehar.profile.mcu_report import measure_entry
from edgehar.profile.report import profile_model
from edgehar.profile.targets import TARGETS, estimate
from edgehar.profile.tflite_graph import looks_like_tflite, read_tflite
from edgehar.runtime import Predictor
from edgehar.scoring import class_matches, score


def torch_macs(model, card) -> int:
    """MACs of one window (edgehar.models.torch_macs: the counter every benchmark uses)."""
    return count_torch_macs(model, torch.zeros(1, card.window, len(card.channels)))


def export_onnx(model, card, fp32: Path, int8: Path | None, calib_x: np.ndarray | None) -> None:
    """ONNX files (float, and QDQ int8 when `int8`) of any window classifier, card embedded."""
    fp32.parent.mkdir(parents=True, exist_ok=True)
    onnx_export.export_fp32(model.eval(), card.window, len(card.channels), fp32)
    onnx_export.embed_card(fp32, card)
    if int8 is not None:
        onnx_export.quantize_int8(fp32, int8, calib_x)
        onnx_export.embed_card(int8, card)


def export_tflite_fp32(model, card, path: Path) -> str | None:
    """A float TFLite file of any torch window classifier via litert-torch (card embedded), or
    the reason there is none."""
    try:
        import litert_torch  # deferred: it loads scipy and jax (6 s), which nothing else here needs
    except ImportError:
        return "litert-torch is not installed"

    tmp = path.with_suffix(".tmp.tflite")
    try:
        with quiet():
            litert_torch.convert(model.eval(), (torch.zeros(1, card.window, len(card.channels)),)).export(str(tmp))
        write_bytes(path, embed_card_tflite(tmp.read_bytes(), card))
    except Exception as e:  # noqa: BLE001 - a converter refusing a model is a finding
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120]}"
    finally:
        tmp.unlink(missing_ok=True)
    return None


def profile(path: Path, runs: int) -> dict:
    r = profile_model(path, runs=runs)
    m4 = next((t for t in r["targets"] if t["name"].startswith("cortex-m4f")), None)
    return {"file_bytes": r["file_bytes"], "arena_bytes": r.get("arena_bytes"),
            "tflm_supported": r.get("tflm_supported"), "tflm_unsupported_ops": r.get("tflm_unsupported_ops"),
            "graph_macs": r["macs"],
            "latency_ms": (r["latency_ms"] or {}).get("median"),
            "latency_runtime": (r["latency_ms"] or {}).get("runtime"),
            "m4f_ms": m4["estimated_ms"] if m4 else None, "latency_error": r.get("latency_error"),
            **mcu_instructions(path)}


def mcu_instructions(path: Path) -> dict:
    """Instructions per inference on emulated Cortex-M4 and M55 (CMSIS-NN), measured with
    `edgehar profile --measure`'s code; {} when the Arm toolchain / EDGEHAR_TOOLCHAINS is missing,
    the file is not TFLite or TFLM cannot run it (the table then shows the estimate)."""
    with open(path, "rb") as f:
        if not looks_like_tflite(f.read(8)):
            return {}
    try:
        tc = find_toolchain()
        rows = count_layers(read_tflite(str(path)))
        return {f"{cpu.split('-')[1]}_instructions":
                measure_entry(tc, str(path), rows, cpu, None, "cmsis-nn")["instructions"]
                for cpu in ("cortex-m4", "cortex-m55")}
    except UserError:
        return {}


def float_m4f_ms(macs: int) -> float:
    return estimate(TARGETS["cortex-m4f"], {"float32": macs})["estimated_ms"]


def torch_latency_ms(model, card, runs: int) -> float:
    x = torch.zeros(1, card.window, len(card.channels))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def wrist_score(model_path: Path, root: Path) -> tuple[float | None, str]:
    """macro-F1 on the Bangle.js wrist recordings (all windows, classes matched by name).

    A model whose card names a gyro stream runs only if it accepts an absent stream (the
    students: `absent_stream = "zeros"`): the gyro channels are fed as the normalisation mean,
    i.e. exactly zero after normalisation, as on a watch without gyroscope."""
    bangle = root / "banglejs_wrist"
    if not bangle.is_dir():
        return None, "n/a (no banglejs_wrist/)"
    predictor = Predictor(model_path)
    card = predictor.card
    acc = [c for c in card.channels if c.startswith("acc")]
    if len(acc) == len(card.channels):
        return evaluate_file(model_path, "banglejs", bangle, split="all")["macro_f1"], "acc"
    if (card.arch or {}).get("config", {}).get("absent_stream") != "zeros":
        return None, "n/a (needs gyro)"
    w = activity_windows("banglejs", bangle, rate=card.rate, window=card.window, hop=card.window // 2,
                         channels=acc, units=[card.units[card.channels.index(c)] for c in acc]).labelled()
    x = np.repeat(np.asarray(card.norm_mean, np.float32)[None, None], len(w), 0).repeat(card.window, 1)
    for i, c in enumerate(acc):
        x[..., card.channels.index(c)] = w.x[..., i]
    mapping = class_matches(w.label_names, card.labels, w.canonical_names)
    known = np.isin(w.y, list(mapping))
    truth = [card.labels[mapping[int(c)]] for c in w.y[known]]
    pred = [card.labels[int(p)] for p in predictor.predict(x[known])]
    f1 = score(truth, pred, order=card.labels)["macro_f1"]
    return f1, "acc, gyro absent"


def measure_row(name: str, kind: str, fmt: str, path: Path, root: Path, runs: int, model=None, card=None,
                macs: int | None = None, params: int | None = None, profile_file: Path | None = None,
                origin: str = "") -> dict:
    """One table row: HAPT test-subject scores of the file at `path` (`edgehar eval`'s code),
    its profile (or `profile_file`'s, e.g. a teacher's ONNX export), host latency, the
    Cortex-M4F estimate and the wrist score."""
    r = evaluate_file(path, "hapt", root / "hapt")
    target = profile_file or (path if Path(path).suffix != ".pt" else None)
    prof = profile(target, runs) if target else {}
    if not prof and model is not None:
        prof = {"file_bytes": 4 * params if params else None, "latency_ms": torch_latency_ms(model, card, 20),
                "latency_runtime": "torch"}
    if prof.get("m4f_ms") is None and macs:
        prof["m4f_ms"] = float_m4f_ms(macs)
    wrist, wrist_how = wrist_score(Path(path), root)
    return {"name": name, "kind": kind, "format": fmt, "path": shown_path(path), "macro_f1": r["macro_f1"],
            "accuracy": r["accuracy"], "params": params, "macs": macs, "flash_bytes": prof.get("file_bytes"),
            "arena_bytes": prof.get("arena_bytes"), "tflm_unsupported_ops": prof.get("tflm_unsupported_ops"),
            "latency_ms": prof.get("latency_ms"), "latency_runtime": prof.get("latency_runtime"),
            "m4f_ms": prof.get("m4f_ms"), "m4_instructions": prof.get("m4_instructions"),
            "m55_instructions": prof.get("m55_instructions"), "graph_macs": prof.get("graph_macs"),
            "wrist_f1": wrist,
            "wrist_input": wrist_how, "backend": r["backend"], "confusion": r["confusion"],
            "labels": r["labels"], "origin": origin}


def limubert_row(limu: Path, root: Path, test_subjects) -> dict:
    """The published LIMU-BERT classifier on its own input (20 Hz, 120 samples) of the test subjects."""
    model, card = teacher_from_spec(f"limu-bert:{limu}")
    w = windows_for_card(card, "hapt", root / "hapt").labelled()
    test = w.take(np.isin(w.subject, test_subjects))
    pred = predict_logits(model, card.normalise(test.x), 256).argmax(1)
    r = report(test.y, pred, card.labels)
    macs = torch_macs(model, card)
    params = sum(q.numel() for q in model.parameters())
    return {"name": "LIMU-BERT (published)", "kind": "teacher", "format": "fp32 torch", "path": shown_path(limu),
            "macro_f1": r["macro_f1"], "accuracy": r["accuracy"], "params": params, "macs": macs,
            "flash_bytes": 4 * params, "arena_bytes": None, "latency_ms": torch_latency_ms(model, card, 20),
            "latency_runtime": "torch", "m4f_ms": float_m4f_ms(macs), "graph_macs": None,
            "wrist_f1": None, "wrist_input": "n/a (needs gyro)", "backend": "torch",
            "confusion": r["confusion"], "labels": r["labels"], "held_out": False,
            "origin": "published weights, own input (20 Hz, 120 samples); its head was trained on UCI windows "
                    "that include test subjects: not a held-out figure, not a distillation candidate"}


def paper_harfm_macs() -> int:
    """MACs per window of HAR-FM's published size on this input (an untrained model: a count only)."""
    model = build({"name": "harfm", "config": {**CONFIGS["paper"], **DEFAULT_INPUT}})
    model.set_task(6)
    card = ModelCard(labels=[str(i) for i in range(6)], rate=50.0, window=128, hop=64,
                     channels=DEFAULT_INPUT["channels"], units=["g"] * 3 + ["rad/s"] * 3)
    return torch_macs(model, card)
