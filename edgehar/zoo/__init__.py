"""The model zoo: trained models shipped with edgehar, which every command takes by name.

The zoo is a folder (`ZOO_DIR`: this package's own folder, installed with the wheel, or the
folder `$EDGEHAR_ZOO` names) holding `index.json` and one folder per model:

    index.json               {"models": {NAME: ENTRY}}: task, kind, files, sha256, input,
                             classes, recipe key, provenance, figures (see `publish`)
    NAME/model.pt            the checkpoint (teachers and students)
    NAME/int8/               students only: the deployable export, model_int8.tflite,
                             modelcard.json (and text_basis.npy for a text-aligned student; the
                             C array is made from the .tflite when firmware needs it)
    NAME/windows.npz         students only: the real windows their int8 export was calibrated
                             and checked on (`save_windows`), so `edgehar export NAME` needs no data

`resolve(spec, want)` is the one place a command's model argument becomes a path: a path that
exists is returned unchanged, so users' own files keep working and win over a name; a name
returns the shipped file once its bytes match the sha256 the index records. Only the zoo
build writes the zoo (`publish`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from edgehar.atomic import staged_file, staged_folder, write_json
from edgehar.card_io import read_card
from edgehar.data.windows import Windows
from edgehar.digest import file_sha256
from edgehar.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
ENV = "EDGEHAR_ZOO"
INDEX = "index.json"
CHECKPOINT = "model.pt"
ARTIFACT = "int8"
TFLITE = "model_int8.tflite"
CARD = "modelcard.json"  # edgehar.card_io.CARD_FILE: the name every reader of a folder expects
ARTIFACT_FILES = (TFLITE, CARD)
# shipped when the export has it: the text basis of a text-aligned student (zero-shot --labels)
ARTIFACT_OPTIONAL = ("text_basis.npy",)
WINDOWS = "windows.npz"
WINDOWS_FORMAT = "edgehar-zoo-windows/1"
WINDOWS_DATA = "shipped windows"  # the data name an export made from a windows file records
KINDS = ("teacher", "student")
WANTS = ("checkpoint", "artifact", "tflite", "model")
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
# what a missing path is called today by each kind of model argument
MISSING = {"checkpoint": "no such checkpoint", "artifact": "no such export folder",
           "tflite": "no such model file", "model": "no such model file or folder"}
HELP = "a model file/folder or a zoo name (edgehar models)"


def zoo_dir() -> Path:
    """The zoo folder in use: `$EDGEHAR_ZOO` when set, else the package folder."""
    given = os.environ.get(ENV)
    return Path(given) if given else PACKAGE_DIR


def __getattr__(name: str):
    # ZOO_DIR follows $EDGEHAR_ZOO at every access (tests point it at a temporary zoo)
    if name == "ZOO_DIR":
        return zoo_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def index() -> dict:
    """`ZOO_DIR/index.json` ({"models": {}} when the zoo has none yet)."""
    path = zoo_dir() / INDEX
    if not path.is_file():
        return {"models": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(path, f"the model zoo's index is unreadable ({e}): reinstall edgehar") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("files"), dict) and isinstance(e.get("sha256"), dict)
            for e in models.values()):
        raise UserError(path, "the model zoo's index is not {\"models\": {NAME: entry}} with files "
                              "and sha256 per entry: reinstall edgehar")
    return data


def names() -> list[str]:
    """The shipped models' names, sorted."""
    return sorted(index()["models"])


def entry(name: str) -> dict:
    """The index entry of model `name`; an unknown name is one line naming the known ones."""
    models = index()["models"]
    if name not in models:
        known = sorted(models)
        raise UserError(name, "no such model in the zoo " + (f"(known: {', '.join(known)})" if known
                                                              else "(the zoo is empty)"))
    return models[name]


def is_name(spec: str | os.PathLike) -> bool:
    """Whether `spec` names a shipped model (and no existing path: a path wins)."""
    spec = os.fspath(spec)
    return not os.path.exists(spec) and spec in index()["models"]


def resolve(spec: str | os.PathLike, want: str) -> Path:
    """The path a command's model argument stands for.

    `want`: "checkpoint" (the .pt), "artifact" (a student's int8 export folder), "tflite" (its
    model_int8.tflite) or "model" (what runs: a student's int8 folder, a teacher's checkpoint).
    An existing path is returned unchanged; a zoo name gives the shipped file or folder after
    its bytes are checked against the index; anything else is the command's usual one-line
    error for a missing path, pointing at the names too.
    """
    if want not in WANTS:
        raise ValueError(f"want must be one of {WANTS}, got {want!r}")
    spec = os.fspath(spec)
    if os.path.exists(spec) or os.path.islink(spec):  # a dangling link: the command's own error
        return Path(spec)
    models = index()["models"]
    if spec not in models:
        raise UserError(spec, f"{MISSING[want]} (or a model name: edgehar models)")
    e = models[spec]
    files = e["files"]
    if want == "model":
        want = "artifact" if files.get("artifact") else "checkpoint"
    if want == "checkpoint":
        rel = files.get("checkpoint")
        checked = [rel]
    else:
        folder = files.get("artifact")
        if not folder:
            raise UserError(spec, f"is a {e.get('kind', 'teacher')}: it ships a checkpoint, no int8 export "
                                  "(the int8 models are the students: edgehar models)")
        checked = [f"{folder}/{n}" for n in ARTIFACT_FILES]
        checked += [rel for rel in e["sha256"] if rel.startswith(f"{folder}/") and rel not in checked]
        rel = folder if want == "artifact" else f"{folder}/{TFLITE}"
    for f in checked:
        check_file(spec, e, f)
    return zoo_dir() / rel


def check_file(name: str, e: dict, rel: str) -> None:
    """Raise the one-line reinstall error unless shipped file `rel` has the recorded sha256."""
    path = zoo_dir() / rel
    want = e["sha256"].get(rel)
    try:
        ok = want is not None and file_sha256(path) == want
    except OSError:
        ok = False
    if not ok:
        raise UserError(name, f"shipped file {rel} does not match its sha256 (reinstall edgehar)")


def check_all(name: str) -> None:
    """Check every file the entry of `name` records against its sha256."""
    e = entry(name)
    for rel in e["sha256"]:
        check_file(name, e, rel)


def card(name: str):
    """The model card of a shipped model: its int8 export's for a student (what deploys), its
    checkpoint's for a teacher (reading a .pt loads torch)."""
    return read_card(resolve(name, "model"))


# -- writing (the zoo build only) -------------------------------------------------------------
def publish(name: str, *, checkpoint, artifact=None, windows=None, task: str, recipe_key: str,
            provenance: dict, figures: dict) -> dict:
    """Copy a trained model into the zoo as `name` and record it in index.json; returns the entry.

    `checkpoint`: its .pt (the card inside gives kind, input and classes); `artifact`: for a
    student, its `edgehar export --int8` folder, of which model_int8.tflite, modelcard.json
    (and text_basis.npy when there is one) are shipped, with `windows` (a `save_windows` file:
    what the export was calibrated and checked on). The model's folder is replaced whole and
    index.json rewritten, each atomically, under a lock on the zoo folder.
    """
    if not NAME.fullmatch(name):
        raise ValueError(f"a model name is lower-case letters, digits and '-', got {name!r}")
    for what, value in (("provenance", provenance), ("figures", figures)):
        if not isinstance(value, dict):
            raise ValueError(f"{what} must be a dict")
        _check_json(value, what)
    checkpoint = Path(checkpoint)
    ckpt_card = read_card(checkpoint)
    kind = ckpt_card.kind
    if kind not in KINDS:
        raise ValueError(f"{checkpoint}: a {kind!r} model: the zoo ships {' and '.join(KINDS)}s")
    if (kind == "student") != (artifact is not None):
        raise ValueError(f"{name}: a student ships its int8 export (artifact=), a teacher none")
    deployed = ckpt_card
    if artifact is not None:
        artifact = Path(artifact)
        missing = [n for n in ARTIFACT_FILES if not (artifact / n).is_file()]
        if missing:
            raise ValueError(f"{artifact}: not an int8 export folder (no {', '.join(missing)})")
        deployed = read_card(artifact)
    artifact_names = [] if artifact is None else [
        *ARTIFACT_FILES, *(n for n in ARTIFACT_OPTIONAL if (artifact / n).is_file())]
    root = zoo_dir()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        with staged_folder(root / name) as tmp:
            shutil.copyfile(checkpoint, tmp / CHECKPOINT)
            if windows is not None:
                shutil.copyfile(windows, tmp / WINDOWS)
            if artifact is not None:
                (tmp / ARTIFACT).mkdir()
                for n in artifact_names:
                    shutil.copyfile(artifact / n, tmp / ARTIFACT / n)
        files = {"checkpoint": f"{name}/{CHECKPOINT}"}
        shipped = [files["checkpoint"]]
        if windows is not None:
            files["windows"] = f"{name}/{WINDOWS}"
            shipped.append(files["windows"])
        if artifact is not None:
            files["artifact"] = f"{name}/{ARTIFACT}"
            shipped += [f"{name}/{ARTIFACT}/{n}" for n in artifact_names]
        e = {"name": name, "task": task, "kind": kind, "files": files,
             "sha256": {rel: file_sha256(root / rel) for rel in shipped},
             "input": {"rate": deployed.rate, "window": deployed.window, "channels": list(deployed.channels)},
             "classes": list(deployed.labels), "recipe_key": recipe_key,
             "provenance": provenance, "figures": figures}
        data = index()
        data["models"][name] = e
        data["models"] = dict(sorted(data["models"].items()))
        write_json(root / INDEX, data)
    return e


# -- the windows a student's export is made from ------------------------------------------------
def save_windows(path, w, held_out_subjects) -> None:
    """Write `Windows` w (raw, the data's units) as a zoo windows file: x as float16 (half the
    bytes; the export reads back exactly these values), labels, subjects and the input format;
    `held_out_subjects` are the ones export checks parity on, the rest it calibrates on."""
    meta = {"format": WINDOWS_FORMAT, "rate": float(w.rate), "hop": int(w.hop), "channels": list(w.channels),
            "units": list(w.units), "label_names": list(w.label_names),
            "canonical_names": list(w.canonical_names),
            "held_out_subjects": sorted(int(s) for s in held_out_subjects)}
    with staged_file(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, x=w.x.astype(np.float16), y=w.y.astype(np.int64),
                            subject=w.subject.astype(np.int64), meta=json.dumps(meta))


def load_windows(path):
    """(Windows, held-out subjects) of a `save_windows` file."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != WINDOWS_FORMAT:
            raise UserError(path, f"not a zoo windows file ({WINDOWS_FORMAT})")
        w = Windows(x=z["x"].astype(np.float32), y=z["y"], subject=z["subject"], rate=meta["rate"],
                    channels=tuple(meta["channels"]), units=tuple(meta["units"]),
                    label_names=tuple(meta["label_names"]), hop=meta["hop"],
                    canonical_names=tuple(meta["canonical_names"]))
    return w, meta["held_out_subjects"]


def shipped_windows(name: str):
    """(Windows, held-out subjects) a shipped student's export was made from, checked against
    its sha256; None when the model ships none (a teacher)."""
    e = entry(name)
    rel = e["files"].get("windows")
    if not rel:
        return None
    check_file(name, e, rel)
    return load_windows(zoo_dir() / rel)


def _check_json(value, where: str) -> None:
    """Refuse what would not survive index.json: NaN/infinity and non-JSON types."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} is not plain JSON ({e})") from None


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on the zoo folder: two builds publishing at once keep both entries."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
