"""`export`: a student or baseline checkpoint -> an artifact folder, written atomically.

    model_fp32.tflite   model_int8.tflite   (full integer: int8 I/O, activations, weights)
    model.onnx          model_int8.onnx     (QDQ, per-channel weights, static activations)
    model_int8.h/.cc    (C array for TFLite-Micro, + labels, normalisation, int8 I/O constants)
    modelcard.json      (also embedded in every .tflite / .onnx)
                        (.tflite files are compacted losslessly: see edgehar.export.compact)
    parity.json         (PyTorch vs each artifact on held-out real windows)

A baseline (`edgehar.models.baselines`: the plain CNN, Ignatov, the TinyHAR variant
`tinyhar_tflm`) goes through the same steps, its Keras mirror from `edgehar.export.baseline_mirror`.

The exported graph computes the main task's logits from one normalised window (batch 1, as a
microcontroller runs it; float I/O for the fp32 files, int8 I/O with the card's constants for
the int8 TFLite file, float I/O around QDQ for the int8 ONNX file). A student with class-text
prototypes (distilled from a text-aligned teacher) gets a second output, its embedding, for
zero-shot labels on the device (`edgehar.zeroshot`): the card and the C header carry the
prototypes in int8 with their scale, and `text_basis.npy` maps new labels' text into the
embedding space. Other task heads stay in the checkpoint.

The folder is built in a temporary sibling and swapped in at the end (`staged_folder`), so a
failure leaves no half-written artifact and an older export at the same path untouched. The
output folder is checked before any work (`edgehar.outputs.claim_folder`): it must be new,
empty or a previous export (its `.edgehar-output.json` lists exactly the files that export
wrote), never the current folder, a folder holding the checkpoint, or one holding anything else.
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib import metadata
from io import BytesIO
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from edgehar.atomic import scratch_folder, temp_dir, write_bytes, write_json, write_text
from edgehar.calib.build import CalibSet, calib_from_windows, check_fits_card, load_calib
from edgehar.card import provenance
from edgehar.card_io import CARD_FILE, content_digest, embedded_card_payload
from edgehar.checkpoint import load_checkpoint
from edgehar.classes import in_model_classes, slice_classes
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.data.registry import is_folder_arg
from edgehar.data.windows import Windows
from edgehar.data.wrist_corpus import ACC, load_part, relabel_to
from edgehar.errors import UserError
from edgehar.export import onnx as onnx_export
from edgehar.export import parity  # the module: a test replaces parity.parity_report
from edgehar.export import tflite
from edgehar.export.c_array import write_c_array
from edgehar.export.compact import compact, short_float32
from edgehar.export.keras_mirror import build_keras_mirror
from edgehar.models import load_model
from edgehar.outputs import claim_folder, staged_output_folder
from edgehar.zeroshot import BASIS_FILE, quantize_prototypes

FILES = {"fp32_tflite": "model_fp32.tflite", "int8_tflite": "model_int8.tflite",
         "fp32_onnx": "model.onnx", "int8_onnx": "model_int8.onnx"}
COMMAND = "export"
# every name an export writes: recognises an export folder written before the output marker
EXPORT_NAMES = frozenset({*FILES.values(), "model_int8.h", "model_int8.cc", "modelcard.json", "parity.json",
                          "text_basis.npy"})
FP32_TOLERANCE = 1e-4  # the Keras mirror must reproduce PyTorch's logits this closely
TFLITE_RUNTIME_ENV = "EDGEHAR_TFLITE_RUNTIME_PYTHON"  # a python with tflite-runtime (numpy < 2)


def load_student(path):
    """(model, card, state_dict) of a student checkpoint or of a baseline with a Keras mirror,
    or a one-line error for anything else."""
    from edgehar.models.baselines import INT8_EXPORTABLE

    ckpt = load_checkpoint(path)
    card = ckpt["card"]
    name = (card.arch or {}).get("name")
    if card.kind == "baseline" and name == "tinyhar":
        raise UserError(path, "is a TinyHAR baseline: its LayerNorm, GELU and LSTM have no full-int8 "
                              "TFLite-Micro graph here; train the variant tinyhar_tflm to export one")
    if not ((card.kind == "student" and name == "student") or (card.kind == "baseline" and name in INT8_EXPORTABLE)):
        raise UserError(path, f"is a {card.kind} checkpoint ({name or 'no architecture'}); export takes a "
                              f"student (make one with `edgehar distill`) or a baseline "
                              f"({', '.join(INT8_EXPORTABLE)})")
    model, card = load_model(path)
    return model, card, ckpt["state_dict"]


def keras_mirror(card, state: dict, embedding: bool = False):
    """The Keras mirror of a student or baseline checkpoint (its card and torch state dict)."""
    if card.kind == "baseline":
        from edgehar.export.baseline_mirror import build_baseline_mirror

        return build_baseline_mirror(card.arch, state)
    return build_keras_mirror(card.arch["config"], state, embedding=embedding)


def card_data(card) -> dict:
    """The data set a card was trained on (`provenance["data"]`), as a dict."""
    data = (card.provenance or {}).get("data") or {}
    return {"dataset": data} if isinstance(data, str) else dict(data)


def card_windows(card, dataset: str | None = None, root=None):
    """(windows, data set name, held-out subjects): all windows of the card's data set in the
    card's rate, window, channels and units, and the subjects parity holds out (a corpus: its
    test split; otherwise the card's test subjects, or HAPT's official ones)."""
    data = card_data(card)
    dataset = dataset or data.get("dataset")
    if not dataset:
        raise UserError("--data", "the model card names no data set: pass --data (and --root) for "
                                  "calibration and parity windows")
    if root is None and dataset == data.get("dataset"):
        root = data.get("root")
    if dataset == "corpus":  # a wrist student distilled on a corpus: the same windows it trained on
        return corpus_windows(card, root)
    windows = activity_windows(dataset, root, rate=card.rate, window=card.window,
                               channels=card.channels, units=card.units)
    if data.get("test_subjects"):
        return windows, dataset, [int(s) for s in data["test_subjects"]]
    return windows, dataset, list(hapt.TEST_SUBJECTS) if dataset == "hapt" else []


def corpus_windows(card, folder):
    """The wrist windows of the corpus a student was distilled on: its train split (where
    calibration draws from) and its test split (held out for parity), labelled by the card."""
    if folder is None or not Path(folder).is_dir():
        raise UserError(folder or "--data", "the model was distilled on a corpus that is not here: pass "
                                            "--data (and --root) or --calib for calibration windows")
    if list(card.channels) != list(ACC):
        raise UserError(folder, f"the model takes {', '.join(card.channels)}; a corpus gives {', '.join(ACC)}")
    train, test = (relabel_to(load_part(folder, s), list(card.labels)).windows(list(card.labels))
                   for s in ("train", "test"))
    if abs(train.rate - card.rate) > 1e-6 or train.length != card.window:
        raise UserError(folder, f"corpus windows are {train.length} samples at {train.rate:g} Hz; the model "
                                f"takes {card.window} at {card.rate:g} Hz")
    both = Windows.concat([train, test]) if len(test) else train
    return both, "corpus", sorted({int(s) for s in test.subject})


def resolve_calibration(card, calib, windows, dataset, held: list[int], n: int, seed: int):
    """The calibration set: `calib` (a CalibSet or an .npz path, checked against the card) or
    one drawn from the training subjects of `windows`."""
    if calib is not None:
        where = "calibration set" if isinstance(calib, CalibSet) else calib
        calib = calib if isinstance(calib, CalibSet) else load_calib(calib)
        check_fits_card(calib, card, where)
        return calib
    train = windows.take(~np.isin(windows.subject, held))
    if len(train) == 0:
        raise UserError(dataset, "no training-subject windows to calibrate on (pass --calib)")
    return calib_from_windows(train, n, seed, dataset=dataset, excluded_subjects=held)


def _versions() -> dict:
    out = {}
    for pkg in ("torch", "tensorflow-cpu", "onnx", "onnxruntime", "ai-edge-litert", "tflite-micro"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def previous_export(folder: Path) -> set[str] | None:
    """The names of an export folder written before the output marker existed (its model card
    and nothing an export does not write), or None when `folder` is not one."""
    names = {e for e in os.listdir(folder) if not e.startswith(".")}
    return names if "modelcard.json" in names and names <= EXPORT_NAMES else None


def claim_export_folder(out, checkpoint, calib=None, data=None, root=None) -> Path:
    """Refuse, before any work, an output folder that would lose anything: see the module doc."""
    inputs = [checkpoint, calib if isinstance(calib, (str, os.PathLike)) else None, root,
              data if isinstance(data, str) and is_folder_arg(data) else None]
    return claim_folder(out, COMMAND, inputs=inputs, replaces=True, legacy=previous_export)


def export_student(checkpoint, out=None, int8: bool = True, calib=None, data: str | None = None, root=None,
                   windows=None, test_subjects: list[int] | None = None, n_calib: int = 500, seed: int = 0,
                   micro: bool = True, tflite_runtime_python: str | None = None, progress: bool = True,
                   classes: list[str] | None = None) -> dict:
    """Export a student (or baseline) checkpoint into the folder `out`; returns a summary
    (paths, parity).

    `classes`: keep only these of the model's classes (`edgehar.classes.slice_classes`: its
    main head's rows), so every file, the card and the C header carry only those outputs;
    parity then scores the held-out windows of those classes.

    Calibration: `calib` (CalibSet or .npz path), else `n_calib` windows drawn from the training
    subjects. Parity runs on the held-out subjects. The windows come from `windows` (raw
    `Windows`, with `test_subjects`) when given, else from the data set the card names (or
    `data`/`root`). Cheap checks (checkpoint, calibration shape, output folder) run first.
    """
    import torch

    out = Path(out) if out else Path(checkpoint).with_name(Path(checkpoint).stem + "_export")
    claim_export_folder(out, checkpoint, calib, data, root)
    torch.set_num_threads(1)
    model, card, state = load_student(checkpoint)
    if classes:
        model, card = slice_classes(model, card, classes, checkpoint)
        state = model.state_dict()
    if calib is not None:
        where = "calibration set" if isinstance(calib, CalibSet) else calib
        calib = calib if isinstance(calib, CalibSet) else load_calib(calib)
        check_fits_card(calib, card, where)
    tflite_runtime_python = tflite_runtime_python or os.environ.get(TFLITE_RUNTIME_ENV)
    # TensorFlow writes generated code (__autograph_generated_file*.py) to the temp folder and
    # deletes it only at a clean exit: give it a scratch folder that goes on every exit path
    with staged_output_folder(out, COMMAND, previous_export) as tmp, scratch_folder(out) as scratch, \
            temp_dir(scratch):
        bar = tqdm(total=7, desc="export", disable=not progress, leave=False)
        bar.set_postfix_str("data")
        if windows is None:
            windows, dataset, held = card_windows(card, data, root)
        else:
            card.check_input(windows.rate, windows.channels, "windows")
            dataset, held = data or "windows", list(test_subjects or [])
        if calib is None:
            calib = resolve_calibration(card, None, windows, dataset, held, n_calib, seed)
        held_out = windows.take(np.isin(windows.subject, held)) if held else windows
        # the data's classes are not the model's when it was trained on other data (a wrist
        # student exported with Bangle.js windows) or sliced by --classes: macro-F1 counts the
        # classes both know; the other windows still count for agreement
        held_out = in_model_classes(held_out, card.labels)
        files, export_card = write_models(tmp, model, card, state, calib, int8, bar)
        bar.set_postfix_str("parity")
        report = parity.parity_report(model, export_card, held_out, {k: str(v) for k, v in files.items()},
                                      micro=micro and int8, tflite_runtime_python=tflite_runtime_python)
        report["held_out"] = {"dataset": dataset, "subjects": sorted(int(s) for s in np.unique(held_out.subject)),
                              "test_subjects": held, "held_out": bool(held)}
        report["files"] = {k: Path(v).name for k, v in files.items()}
        write_json(tmp / "parity.json", report)
        for f in tmp.iterdir():  # temp files are private (0600); an artifact folder is not
            f.chmod(0o644)
        tmp.chmod(0o755)
        bar.update(1)
    bar.close()
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
            "quantization": export_card.quantization,
            "parity": report}


def compact_checked(model: bytes, card, probe: np.ndarray) -> bytes:
    """`compact(model, card)`, after checking it gives bit-identical outputs on `probe` (the
    model's input dtype) in ai-edge-litert."""
    out = compact(model, card)
    if not np.array_equal(tflite.run_litert(model, probe), tflite.run_litert(out, probe)):
        raise RuntimeError("the compacted TFLite file computes differently from the converter's")
    return out


def placeholder_hashes(files: dict) -> dict:
    """A distinct 64-hex-digit stand-in per model file, replaced by `stamp_content_hashes`."""
    return {Path(f).name: f"{i + 1:064x}" for i, f in enumerate(files.values())}


def stamp_content_hashes(files: dict, card) -> None:
    """Put each model file's content digest (its bytes without the embedded card,
    `card_io.content_digest`) into `card.content_sha256` and into the card embedded in every
    file. The digests replace same-length placeholders in place, so no file changes anywhere
    but inside its card and every digest stays valid."""
    placeholders = dict(card.content_sha256)
    datas = {name: Path(f).read_bytes() for name, f in ((Path(f).name, f) for f in files.values())}
    digests = {name: content_digest(data, Path(name).suffix) for name, data in datas.items()}
    for f in files.values():
        name = Path(f).name
        data = datas[name]
        old = embedded_card_payload(data, Path(name).suffix)
        new = old
        for key, stand_in in placeholders.items():
            new = new.replace(f'"{stand_in}"'.encode(), f'"{digests[key]}"'.encode())
        if old is None or len(new) != len(old) or data.count(old) != 1:
            raise RuntimeError(f"cannot stamp the content hash into {name}")
        write_bytes(f, data.replace(old, new))
    card.content_sha256 = digests


def zero_shot_quantization(i8: bytes, card) -> dict:
    """The int8 file's embedding output constants and the card's prototypes in int8."""
    out = tflite.interpreter(i8).get_output_details()[1]
    scale, zero = out["quantization"]
    q, proto_scale = quantize_prototypes(np.asarray(card.text_prototypes, np.float32))
    return {"embedding_output": 1, "embedding_dim": int(out["shape"][-1]), "embedding_scale": float(scale),
            "embedding_zero_point": int(zero), "prototypes_int8": q.tolist(), "prototypes_scale": proto_scale}


def write_text_basis(folder: Path, basis) -> None:
    """`text_basis.npy`: the (text dim, embedding dim) map from label text to prototypes."""
    buf = BytesIO()
    np.save(buf, basis.detach().cpu().numpy().astype(np.float32))
    write_bytes(folder / BASIS_FILE, buf.getvalue())


def write_models(tmp: Path, model, card, state, calib, int8: bool, bar) -> tuple[dict, object]:
    """Convert and write every model file (card embedded) into `tmp`; (files, exported card)."""
    import torch

    cal_x = card.normalise(calib.x)
    clip = card.arch["config"].get("input_clip")
    if clip:  # the model clips its input first: calibrate the input range on what it keeps
        cal_x = np.clip(cal_x, -clip, clip)
    bar.set_postfix_str("keras mirror")
    embedding = bool(card.text_prototypes)
    with tflite.quiet():
        mirror = keras_mirror(card, state, embedding=embedding)
    fp32 = tflite.outputs_in_signature_order(tflite.convert_fp32(mirror))
    probe = cal_x[: min(len(cal_x), 32)]
    with torch.no_grad():
        want = model(torch.from_numpy(probe))
    want = want if isinstance(want, (tuple, list)) else (want,)  # a student: (logits, ...); a baseline: logits
    diff = float(np.abs(tflite.run_litert(fp32, probe) - want[0].numpy()).max())
    if embedding:
        diff = max(diff, float(np.abs(tflite.run_litert(fp32, probe, output=1) - want[1].numpy()).max()))
    if diff > FP32_TOLERANCE:  # a layout bug in the mirror, never the user's fault
        raise RuntimeError(f"Keras mirror differs from PyTorch by {diff:.3g} (> {FP32_TOLERANCE:g})")
    bar.update(1)
    files = {"fp32_tflite": tmp / FILES["fp32_tflite"], "fp32_onnx": tmp / FILES["fp32_onnx"]}
    export_card = replace(card, quantization={"output": "logits"},
                          text_prototypes=short_float32(card.text_prototypes),
                          provenance={**card.provenance, "export": provenance(tools=_versions(), calibration={
                              k: calib.provenance.get(k) for k in
                              ("dataset", "n", "seed", "subjects", "counts", "created")})})
    if int8:
        bar.set_postfix_str("tflite int8")
        i8, graph = tflite.convert_full_int8(mirror, cal_x)
        io = tflite.io_quantization(i8)
        export_card.quantization = {
            "output": "logits", "dtype": "int8", "applies_to": [FILES["int8_tflite"], "model_int8.h"],
            "input_scale": io["input"]["scale"], "input_zero_point": io["input"]["zero_point"],
            "output_scale": io["output"]["scale"], "output_zero_point": io["output"]["zero_point"],
            "weights": "int8 per-channel (symmetric)", "activations": "int8 per-tensor", "biases": "int32",
            "ops": graph["ops"]}
        if embedding:
            export_card.quantization.update(zero_shot_quantization(i8, export_card))
        files["int8_tflite"] = tmp / FILES["int8_tflite"]
        files["int8_onnx"] = tmp / FILES["int8_onnx"]
    export_card.content_sha256 = placeholder_hashes(files)  # same length as the real ones
    bar.update(2)
    # both files get the same lossless rewrite (export/compact.py), checked to compute the same
    files["fp32_tflite"].write_bytes(compact_checked(fp32, export_card, probe))
    if int8:
        int8_bytes = compact_checked(i8, export_card, tflite.quantize(probe, {
            "scale": export_card.quantization["input_scale"],
            "zero_point": export_card.quantization["input_zero_point"]}))
        files["int8_tflite"].write_bytes(int8_bytes)
    bar.set_postfix_str("onnx fp32")
    onnx_export.export_fp32(model, card.window, len(card.channels), files["fp32_onnx"], embedding=embedding)
    bar.update(1)
    if int8:
        bar.set_postfix_str("onnx int8")
        onnx_export.quantize_int8(files["fp32_onnx"], files["int8_onnx"], cal_x)
        onnx_export.embed_card(files["int8_onnx"], export_card)
    onnx_export.embed_card(files["fp32_onnx"], export_card)
    stamp_content_hashes(files, export_card)
    if int8:
        write_c_array(files["int8_tflite"].read_bytes(), export_card, tmp / "model_int8.h", tmp / "model_int8.cc")
    if embedding and "text_basis" in state:
        write_text_basis(tmp, state["text_basis"])
    write_text(tmp / CARD_FILE, export_card.to_json() + "\n")
    bar.update(2)
    return files, export_card
