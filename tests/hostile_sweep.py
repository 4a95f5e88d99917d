"""The hostile-input sweep: careless and hostile input (every reproduction issues 16 and 26
list, and new inputs of the same classes) run against the real CLI as subprocesses
(`python -m edgehar ...`); tests/test_hostile_sweep.py runs each case as a test of its own.
Issue 16: checkpoints, cards, label files, flags, devices, replay files, signals. Issue 26
(groups issue26 and new26): outputs onto user folders or inputs, `record` (two writers, long or
hidden names, SIGKILL), own-data cells, time stamps, headers and manifests, damaged corpora,
firmware and the TFLM cache.

The cases read one set of artifacts (`make_artifacts`): the shipped zoo's wrist student
(`wrist-tiny`: its checkpoint and int8 export, with the C array `export --int8` writes beside it)
and wrist teacher, copied into a folder of their own. Each case runs in a folder of its own with a
fresh $TMPDIR, and is checked for:
- exit status: 2 for an error (or the documented right behaviour: 0, 130 for Ctrl-C, 143 for
  SIGTERM);
- stderr: an error is one line of its own starting with `edgehar: error: ` (argparse's
  `usage: ...` + `edgehar ...: error: argument ...` for a flag), never a "Traceback";
- destroyed files: every file in the case folder, the artifacts folder and the data it reads is
  checksummed before and after; a changed, removed or retyped one is destroyed;
- residue: anything new that the case did not ask for (hidden `.X.*` staging, files left in
  $TMPDIR such as TensorFlow's `__autograph_generated_file*.py`, dangling links);
- hangs (a case still running at its timeout is killed and fails) and memory: the command's
  peak RSS (`os.wait4`), bounded where the input is small but once blew up;
- lost takes: takes `record` reported written that the folder does not list and hold.
Cases that need the Arm toolchain (arm-none-eabi-gcc, qemu-system-arm, $EDGEHAR_TOOLCHAINS) or
the data sets ($EDGEHAR_DATA) say so in `Case.needs`; the tests skip them, with the reason,
where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from filelock import FileLock

from edgehar import zoo
from edgehar.atomic import staged_folder
from edgehar.cachedir import cache_dir
from edgehar.calib.build import calib_from_windows, save_calib
from edgehar.data.datasets import activity_windows
from edgehar.digest import file_sha256

PY = sys.executable
DATA = Path(os.environ.get("EDGEHAR_DATA") or "/nonexistent")
BANGLE = DATA / "banglejs_wrist" / "acc_exp01_user01.txt"
# Exports of the zoo's student name their calibration data (Bangle.js): its card names the
# corpus it was distilled on, which is not here; n26-export-corpus-student-default-calibration
# covers that default, with --root naming a corpus that is.
CALIB_DATA = ("--data", "banglejs")
STUDENT, TEACHER = "wrist-tiny", "wrist-teacher"  # zoo names: 20 Hz x 100 samples, acc
DATA_NEEDED = ("data",)


# -- cases ----------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    group: str                                 # "issue" (listed reproduction) or "new"
    argv: Callable[["Ctx"], list]              # edgehar arguments
    expect: str = "error"                      # error | usage | ok | interrupted | terminated | killed
    needle: str | None = None                  # must appear in the error line (or in stderr)
    setup: Callable[["Ctx"], None] | None = None
    device: Callable[["Ctx"], list] | None = None   # `python ...` argv of a background device
    signal: tuple | None = None                # (signal, regex in stderr or seconds to wait[, delay])
    outputs: tuple = ()                        # paths (relative to the case folder) it may create
    changes: tuple = ()                        # paths (relative to the case folder) it may change
    check: Callable[["Ctx", "Result"], list] | None = None  # more problems to report
    after: Callable[["Ctx"], list] | None = None  # a follow-up step; returns problems
    timeout: float = 300
    concurrent: Callable[["Ctx"], list] | None = None  # edgehar arguments run alongside the case
    max_rss_mb: float | None = None            # the command's peak RSS must stay under this
    needs: tuple = ()                          # "data", "toolchain": skipped (with the reason) without
    env: Callable[["Ctx"], dict] | None = None  # more environment variables for the commands


@dataclass
class Result:
    rc: int | None = None
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    problems: list = field(default_factory=list)
    destroyed: list = field(default_factory=list)
    residue: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # figures a case reports (peak RSS, takes, ...)


class Ctx:
    """One case's folders: `dir` (its working folder), `tmp` (its $TMPDIR), the artifacts folder
    `D` (read only) and `shared` (where fixtures made once per session live)."""

    def __init__(self, root: Path, artifacts: Path, case: Case, shared: Path | None = None):
        self.D = artifacts
        self.root = root
        self.shared = shared or artifacts.parent
        self.extra: dict = {}
        self.dir = root / "case"
        self.tmp = root / "tmp"
        for p in (self.dir, self.tmp):
            shutil.rmtree(p, ignore_errors=True)
            p.mkdir(parents=True)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(self.tmp)}
        if case.env:
            self.env.update({k: str(v) for k, v in case.env(self).items()})

    def __truediv__(self, name) -> Path:
        return self.dir / name

    @property
    def ckpt(self):
        return self.D / "student.pt"

    @property
    def art(self):
        return self.D / "export"


# -- artifacts and fixtures, made once per session ------------------------------------------
def made_once(folder: Path, make: Callable[[Path], None]) -> Path:
    """`folder`, made by `make(staging)` unless it is there: one process makes it, the others
    (pytest-xdist workers) wait on the lock and reuse it."""
    with FileLock(str(folder) + ".lock"):
        if not folder.is_dir():
            with staged_folder(folder) as staging:
                make(staging)
    return folder


def make_artifacts(folder: Path) -> None:
    """The shipped student's checkpoint (student.pt) and int8 export (export/, with the C array
    `edgehar export --int8` writes, which the zoo does not ship twice) and the shipped teacher
    (teacher.pt): real models, no training, and copies, so no case can touch the zoo."""
    from edgehar.card import ModelCard
    from edgehar.export.c_array import write_c_array

    shutil.copyfile(zoo.PACKAGE_DIR / STUDENT / zoo.CHECKPOINT, folder / "student.pt")
    shutil.copyfile(zoo.PACKAGE_DIR / TEACHER / zoo.CHECKPOINT, folder / "teacher.pt")
    art = folder / "export"
    shutil.copytree(zoo.PACKAGE_DIR / STUDENT / zoo.ARTIFACT, art)
    card = ModelCard.from_json((art / zoo.CARD).read_text(), str(art / zoo.CARD))
    write_c_array((art / zoo.TFLITE).read_bytes(), card, art / "model_int8.h", art / "model_int8.cc")


def edgehar(*args) -> list:
    return [PY, "-m", "edgehar", *map(str, args)]


def simulate(*args) -> Callable[[Ctx], list]:
    """A background `edgehar device simulate` whose link is `<case>/dv`."""
    return lambda c: edgehar("device", "simulate", *[a(c) if callable(a) else a for a in args],
                             "--link", c / "dv")


DECLARING_DEVICE = """
import signal, sys, time, numpy as np
from edgehar.bridge.virtual_device import VirtualDevice
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
class D(VirtualDevice):
    def _preamble(self):
        return b"\\r\\n" + sys.argv[1].encode() + b"\\r\\n"
data = np.zeros((100000, 3), np.float32)
dev = D(data, 50, speed=20, channels=tuple(sys.argv[2].split(",")), link=sys.argv[3]).start()
print(dev.path, flush=True)
try:
    time.sleep(600)
finally:
    dev.stop()
"""


def declaring(declaration: str, channels="acc_x,acc_y,acc_z"):
    return lambda c: [PY, "-c", DECLARING_DEVICE, declaration, channels, str(c / "dv")]


# -- file makers ----------------------------------------------------------------------------
def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def csv_rows(n=600, rate=50.0, extra: str = "", header="time,acc_x,acc_y,acc_z\n", nl="\n") -> str:
    return header + "".join(f"{i / rate:.3f},0.1,0.2,0.98{nl}" for i in range(n)) + extra


def truncated_ckpt(c: Ctx):
    raw = c.ckpt.read_bytes()
    write(c / "t.pt", raw[: len(raw) // 2])


def card_edit(changes: dict):
    def setup(c: Ctx):
        shutil.copytree(c.art, c / "art")
        card = json.loads((c / "art" / "modelcard.json").read_text())
        card.update(changes)
        (c / "art" / "modelcard.json").write_text(json.dumps(card))
    return setup


def small_hapt(c: Ctx, label_edit=None, acc_extra: str = ""):
    src = DATA / "hapt"
    root = c / "hapt"
    (root / "RawData").mkdir(parents=True)
    shutil.copy(src / "activity_labels.txt", root)
    for name in ("acc_exp01_user01.txt", "gyro_exp01_user01.txt"):
        shutil.copy(src / "RawData" / name, root / "RawData")
    if acc_extra:
        with open(root / "RawData" / "acc_exp01_user01.txt", "a") as f:
            f.write(acc_extra)
        with open(root / "RawData" / "gyro_exp01_user01.txt", "a") as f:
            f.write("0 0 0\n")
    lines = [ln for ln in (src / "RawData" / "labels.txt").read_text().splitlines() if ln.startswith("1 1 ")]
    if label_edit:
        lines = label_edit(lines)
    write(root / "RawData" / "labels.txt", "\n".join(lines) + "\n")


def small_bangle(c: Ctx, label_edit=None, acc_extra: str = ""):
    src = DATA / "banglejs_wrist"
    root = c / "bangle"
    root.mkdir()
    shutil.copy(src / "classnames.csv", root)
    shutil.copy(BANGLE, root)
    if acc_extra:
        with open(root / BANGLE.name, "a") as f:
            f.write(acc_extra)
    lines = [ln for ln in (src / "labels.csv").read_text().splitlines() if ln.startswith("1 1 ")]
    if label_edit:
        lines = label_edit(lines)
    write(root / "labels.csv", "\n".join(lines) + "\n")


def gyro_csv(c: Ctx):
    write(c / "gyro.csv", csv_rows(3000, header="time,gyro_x,gyro_y,gyro_z\n"))


def own_folder(c: Ctx, manifest, csv: str | bytes | None = None, name="own"):
    folder = c / name
    folder.mkdir()
    write(folder / "edgehar.json", manifest if isinstance(manifest, str) else json.dumps(manifest))
    write(folder / "a.csv", csv if csv is not None else csv_rows(2000))
    return folder


def tiny_own_data(c: Ctx):
    """Three subjects of 6 s each, one class: the smallest folder the demo accepts."""
    folder = c / "own"
    write(folder / "edgehar.json", json.dumps({"rate": 50, "label": {"value": "walking"}, "subject": {"folder": 1}}))
    for s in (1, 2, 3):
        write(folder / f"s{s}" / "a.csv", "acc_x,acc_y,acc_z\n" + "0.1,0.2,0.9\n" * 300)


def flip_weights(c: Ctx):
    raw = bytearray((c.art / "model_int8.tflite").read_bytes())
    mid = len(raw) // 2
    for i in range(mid, mid + 128):
        raw[i] ^= 0xFF
    write(c / "flipped.tflite", bytes(raw))


def appended(c: Ctx):
    write(c / "big.tflite", (c.art / "model_int8.tflite").read_bytes() + b"\0" * (50 << 20))


def fake_hapt_root(c: Ctx):
    """A HAPT root whose samples hold a NaN (for calib build)."""
    small_hapt(c, acc_extra="nan 0 1\n")


# -- follow-ups and extra checks ------------------------------------------------------------
def windows_of(out: str) -> int:
    for line in reversed(out.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        s = obj.get("summary", obj)
        if isinstance(s, dict) and "windows" in s:
            return int(s["windows"])
    return -1


def noisy_windows(c: Ctx, r: Result) -> list:
    """The noisy-stream case must yield windows: compare with --protocol text on the same stream."""
    n_auto = windows_of(r.out)
    r.extra["windows_auto"] = n_auto
    if n_auto <= 0:
        return [f"--protocol auto gave {n_auto} windows"]
    return []


def export_again_cleans(c: Ctx) -> list:
    """After a SIGKILLed export, a successful export to the same --out removes the stale staging."""
    p = subprocess.run(edgehar("export", c.ckpt, "--int8", "--no-micro", *CALIB_DATA, "--out", c / "out"),
                       cwd=c.dir, env=c.env, capture_output=True, text=True, timeout=600)
    problems = [] if p.returncode == 0 else [f"second export exit {p.returncode}: {p.stderr[-300:]}"]
    problems += [f"stale staging left: {e.name}" for e in c.dir.iterdir() if e.name.startswith(".")]
    shutil.rmtree(c / "out", ignore_errors=True)
    return problems


def live_names_dangling_link(c: Ctx) -> list:
    """After a SIGKILLed simulator: `live` names the dangling link, a new simulator replaces it,
    and its SIGTERM removes it."""
    problems = []
    p = subprocess.run(edgehar("live", "--port", c / "dv", "--model", c.art, "--duration", "5"),
                       cwd=c.dir, env=c.env, capture_output=True, text=True, timeout=120)
    if p.returncode != 2 or "which is gone" not in p.stderr or "Traceback" in p.stderr:
        problems.append(f"live on the dangling link: exit {p.returncode}: {p.stderr.strip()[-200:]}")
    sim = subprocess.Popen(edgehar("device", "simulate", "--replay", BANGLE, "--link", c / "dv"),
                           cwd=c.dir, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = sim.stdout.readline().strip()
    if not os.path.exists(c / "dv"):
        problems.append(f"a new simulator did not replace the dangling link ({line})")
    sim.send_signal(signal.SIGTERM)
    sim.communicate(timeout=60)
    return problems


# -- the list -------------------------------------------------------------------------------
def cases() -> list[Case]:
    L: list[Case] = []

    def add(*a, **k):
        L.append(Case(*a, **k))

    # ## Tracebacks: checkpoints
    for cmd in ("eval", "export", "calib", "live", "finetune", "distill"):
        argv = {"eval": lambda c: ["eval", c / "t.pt"],
                "export": lambda c: ["export", c / "t.pt", "--out", c / "o"],
                "calib": lambda c: ["calib", "build", "--data", "hapt", "--like", c / "t.pt", "--out", c / "c.npz"],
                "live": lambda c: ["live", "--port", c / "dv", "--model", c / "t.pt", "--duration", "5"],
                "finetune": lambda c: ["finetune", c / "t.pt", "--out", c / "f.pt"],
                "distill": lambda c: ["distill", "--teacher", c / "t.pt", "--out", c / "s.pt"]}[cmd]
        add(f"truncated-pt-{cmd}", "issue", argv, needle="truncated", setup=truncated_ckpt,
            device=simulate("--replay", BANGLE) if cmd == "live" else None)
    add("empty-pt-eval", "issue", lambda c: ["eval", c / "e.pt"], needle="empty",
        setup=lambda c: write(c / "e.pt", b""))
    add("empty-pt-export", "issue", lambda c: ["export", c / "e.pt", "--out", c / "o"], needle="empty",
        setup=lambda c: write(c / "e.pt", b""))

    def wrong_shape(c):
        import torch
        ck = torch.load(c.ckpt, weights_only=True)
        sd = dict(ck["state_dict"])
        k = next(k for k, v in sd.items() if v.ndim >= 2)
        sd[k] = torch.zeros(*sd[k].shape[:-1], sd[k].shape[-1] + 2)
        torch.save({**ck, "state_dict": sd}, c / "shape.pt")
    add("wrong-shape-weight-eval", "issue", lambda c: ["eval", c / "shape.pt"], needle="has shape", setup=wrong_shape)

    # model cards
    for tag, change in [("rate-0", {"rate": 0}), ("rate-fast", {"rate": "fast"}),
                        ("rate-nan", {"rate": float("nan")}),
                        ("6-channels", {"channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                                        "units": ["g"] * 3 + ["rad/s"] * 3, "norm_mean": [0.0] * 6,
                                        "norm_std": [1.0] * 6})]:
        needle = "card does not fit the model" if tag == "6-channels" else "modelcard.json"
        add(f"card-{tag}-eval", "issue", lambda c: ["eval", c / "art"], setup=card_edit(change), needle=needle)
        add(f"card-{tag}-live", "issue", lambda c: ["live", "--port", c / "dv", "--model", c / "art", "--duration", "5"],
            setup=card_edit(change), needle=needle, device=simulate("--replay", BANGLE))

    # label files
    bad_hapt = lambda c: small_hapt(c, lambda ls: ls[:1] + ["1 1 13 " + " ".join(ls[1].split()[3:])] + ls[2:])
    add("hapt-label-13-summary", "issue", lambda c: ["data", "summary", "hapt", "--root", c / "hapt"],
        setup=bad_hapt, needle="activity 13")
    add("hapt-label-13-eval", "issue", lambda c: ["eval", c.art, "--data", "hapt", "--root", c / "hapt", "--split", "all"],
        setup=bad_hapt, needle="activity 13")
    bad_bangle = lambda c: small_bangle(c, lambda ls: ls[:1] + ["1 1 7 " + " ".join(ls[1].split()[3:])] + ls[2:])
    add("bangle-label-7-summary", "issue", lambda c: ["data", "summary", "banglejs", "--root", c / "bangle"],
        setup=bad_bangle, needle="class 7")
    add("bangle-label-7-eval", "issue", lambda c: ["eval", c.art, "--data", "banglejs", "--root", c / "bangle", "--split", "all"],
        setup=bad_bangle, needle="class 7")

    # numbers reaching libraries
    for argv, flag in [
        (["pretrain", "--method", "harfm", "--lr", "nan"], "--lr"),
        (["finetune", "T", "--lr", "nan"], "--lr"),
        (["distill", "--teacher", "T", "--lr", "nan"], "--lr"),
        (["calib", "build", "--data", "hapt", "--out", "c.npz", "--rate", "0"], "--rate"),
        (["calib", "build", "--data", "hapt", "--out", "c.npz", "--rate", "-50"], "--rate"),
        (["calib", "build", "--data", "hapt", "--out", "c.npz", "--rate", "nan"], "--rate"),
        (["calib", "build", "--data", "hapt", "--out", "c.npz", "--channels", "bogus,acc_x"], "--channels"),
        (["device", "simulate", "--replay", "B", "--rate", "nan"], "--rate"),
        (["device", "simulate", "--replay", "B", "--rate", "-5"], "--rate"),
        (["device", "simulate", "--replay", "B", "--faults", "seed=-1"], "--faults"),
        (["live", "--port", "p", "--model", "M", "--rate", "0"], "--rate"),
        (["live", "--port", "p", "--model", "M", "--rate", "nan"], "--rate"),
        (["live", "--port", "p", "--model", "M", "--rate", "-50"], "--rate"),
        # bad input accepted with exit 0
        (["distill", "--teacher", "T", "--steps", "0"], "--steps"),
        (["finetune", "T", "--steps", "0"], "--steps"),
        (["distill", "--teacher", "T", "--batch-size", "-1"], "--batch-size"),
        (["distill", "--teacher", "T", "--temperature", "0"], "--temperature"),
        (["distill", "--teacher", "T", "--w-kd", "nan"], "--w-kd"),
        (["live", "--port", "p", "--model", "M", "--duration", "-1"], "--duration"),
        (["live", "--port", "p", "--model", "M", "--duration", "nan"], "--duration"),
        (["live", "--port", "p", "--model", "M", "--baud", "0"], "--baud"),
        (["live", "--port", "p", "--model", "M", "--max-gap", "-1"], "--max-gap"),
        (["live", "--port", "p", "--model", "M", "--max-gap", "nan"], "--max-gap"),
        (["live", "--port", "p", "--model", "M", "--log", "pred.xlsx"], "--log"),
        (["data", "download", "hapt", "--url", "not-a-url"], "--url"),
        (["export", "S", "--n-calib", "0"], "--n-calib"),
        (["demo", "--seed", "-1", "--out", "d"], "--seed"),
    ]:
        def mk(argv=argv):
            return lambda c: [{"T": c.D / "teacher.pt", "S": c.ckpt, "M": c.art, "B": BANGLE}.get(a, a) for a in argv]
        add(f"flag-{argv[0]}{'-' + argv[1] if argv[0] in ('calib', 'device', 'data') else ''}{flag}={argv[argv.index(flag) + 1]}",
            "issue", mk(), expect="usage", needle=f"argument {flag}")

    # a device declaring a bad rate
    for rate in ("0", "nan", "-50", "1e9"):
        add(f"device-declares-rate={rate}", "issue",
            lambda c: ["live", "--port", c / "dv", "--model", c.art, "--duration", "20"],
            device=declaring(f"# edgehar rate={rate} channels=acc_x,acc_y,acc_z"), needle=f"declared rate={rate}")

    # replay CSVs
    for tag, body, needle in [
        ("all-nan", "time,acc_x,acc_y,acc_z\n" + "".join(f"{i / 50},nan,nan,nan\n" for i in range(50)), "not a finite"),
        ("1e308", csv_rows(100, extra="2.00,1e308,0,0\n"), "float32 range"),
        ("200k-field", csv_rows(100, extra="2.00,0," + "1" * 200_000 + ",0\n"), "200000 characters"),
        ("nul-byte", csv_rows(100, extra="2.00,0,\x001,0\n"), "NUL byte"),
        ("time-back", csv_rows(100, extra="1.5,0,0,0\n"), "time goes back"),
        ("1MHz", "time,acc_x,acc_y,acc_z\n" + "".join(f"{i * 1e-6:.6f},0,0,1\n" for i in range(100)), "above"),
    ]:
        add(f"replay-csv-{tag}", "issue", lambda c: ["device", "simulate", "--replay", c / "r.csv"],
            setup=lambda c, body=body: write(c / "r.csv", body), needle=needle)

    def cut_calib(c):  # a real calibration set for the student (20 Hz x 100 acc samples), cut in half
        w = activity_windows("banglejs", rate=20.0, window=100, channels=("acc_x", "acc_y", "acc_z"))
        save_calib(c / "full.npz", calib_from_windows(w.labelled(), 50))
        raw = (c / "full.npz").read_bytes()
        write(c / "cut.npz", raw[: len(raw) // 2])
        (c / "full.npz").unlink()
    add("truncated-calib-npz", "issue", lambda c: ["export", c.ckpt, "--calib", c / "cut.npz", "--out", c / "o"],
        setup=cut_calib, needle="calibration set")
    add("link-into-missing-folder", "issue",
        lambda c: ["device", "simulate", "--replay", BANGLE, "--link", c / "no" / "dv"], expect="usage", needle="--link")
    add("link-onto-folder", "issue", lambda c: ["device", "simulate", "--replay", BANGLE, "--link", c.dir],
        expect="usage", needle="--link")
    add("ctrl-c-export-importing-tf", "issue", lambda c: ["export", c.ckpt, "--int8", *CALIB_DATA, "--out", c / "o"],
        expect="interrupted", signal=(signal.SIGINT, r"keras mirror|data\]"))

    # ## user files destroyed
    add("log-keep-csv-port-unopenable", "issue",
        lambda c: ["live", "--port", c / "ttyACM9", "--model", c.art, "--log", c / "keep.csv"],
        # the output guard now refuses a --log it did not write before the port is opened
        setup=lambda c: write(c / "keep.csv", "the user's own file\n"), needle="keep.csv: exists and is not a prediction log")

    def devnode(c):
        os.mknod(c / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    add("log-device-node", "issue",
        lambda c: ["live", "--port", c / "ttyACM9", "--model", c.art, "--log", c / "null"],
        setup=devnode, expect="usage", needle="--log")
    add("link-onto-user-file", "issue", lambda c: ["device", "simulate", "--replay", BANGLE, "--link", c / "p.txt"],
        setup=lambda c: write(c / "p.txt", "keep me"), expect="usage", needle="--link")

    # ## windows lost
    add("noisy-stream-auto", "issue",
        lambda c: ["live", "--port", c / "dv", "--model", c.art, "--duration", "12", "--json"],
        expect="ok", check=noisy_windows,
        device=simulate("--replay", BANGLE, "--speed", "5", "--seconds", "40", "--faults",
                        "garbage=50%,drop=30%,burst=20%,err=20%,seed=5"))
    add("frame-stream-protocol-text", "issue",
        lambda c: ["live", "--port", c / "dv", "--model", c.art, "--duration", "3", "--protocol", "text"],
        expect="ok", needle="try --protocol frame", device=simulate("--replay", BANGLE, "--speed", "5", "--protocol", "frame"))
    add("text-stream-protocol-frame", "issue",
        lambda c: ["live", "--port", c / "dv", "--model", c.art, "--duration", "3", "--protocol", "frame"],
        expect="ok", needle="try --protocol text", device=simulate("--replay", BANGLE, "--speed", "5", "--protocol", "text"))

    # ## residue and signals
    add("sigkill-export-then-export", "issue", lambda c: ["export", c.ckpt, "--int8", "--no-micro", *CALIB_DATA,
                                                          "--out", c / "out"],
        expect="killed", signal=(signal.SIGKILL, r"keras mirror"), after=export_again_cleans, timeout=600)
    add("sigterm-export", "issue", lambda c: ["export", c.ckpt, "--int8", *CALIB_DATA, "--out", c / "out"],
        expect="terminated", signal=(signal.SIGTERM, r"keras mirror"))
    add("ctrl-c-export-keras-stage", "issue", lambda c: ["export", c.ckpt, "--int8", *CALIB_DATA, "--out", c / "out"],
        expect="interrupted", signal=(signal.SIGINT, r"keras mirror"))

    def sigkilled_sim(c):
        sim = subprocess.Popen(edgehar("device", "simulate", "--replay", BANGLE, "--link", c / "dv"),
                               env=c.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        sim.stdout.readline()
        sim.kill()
        sim.wait()
    add("sigkill-simulator-dangling-link", "issue", lambda c: ["data", "summary", "banglejs"], expect="ok",
        setup=sigkilled_sim, after=live_names_dangling_link, changes=("dv",))

    # NaN / inf samples, calib of NaN windows
    add("hapt-nan-sample", "issue", lambda c: ["data", "summary", "hapt", "--root", c / "hapt"],
        setup=fake_hapt_root, needle="not a finite")
    add("bangle-inf-sample", "issue", lambda c: ["data", "summary", "banglejs", "--root", c / "bangle"],
        setup=lambda c: small_bangle(c, acc_extra="01:45:00.000,inf,0,1;\n"), needle="not a finite")
    add("calib-nan-windows", "issue",
        lambda c: ["calib", "build", "--data", "hapt", "--root", c / "hapt", "--include-test-subjects",
                   "--n", "50", "--out", c / "c.npz"], setup=fake_hapt_root, needle="not a finite")
    # corrupt models warn
    for tag, mk, f in [("flipped", flip_weights, "flipped.tflite"), ("appended-50MB", appended, "big.tflite")]:
        add(f"tflite-{tag}-profile", "issue", lambda c, f=f: ["profile", c / f, "--no-arena", "--no-latency"],
            setup=mk, expect="ok", needle="changed or damaged after export")
        add(f"tflite-{tag}-eval", "issue", lambda c, f=f: ["eval", c / f, "--data", "banglejs"],
            setup=mk, expect="ok", needle="changed or damaged after export")
    # Bangle.js label rows
    add("bangle-label-row-minus-5000", "issue", lambda c: ["data", "summary", "banglejs", "--root", c / "bangle"],
        setup=lambda c: small_bangle(c, lambda ls: ls[:1] + ["1 1 1 -5000 " + ls[1].split()[4]] + ls[2:]),
        needle="segment -5000")
    add("bangle-label-row-past-end", "issue", lambda c: ["data", "summary", "banglejs", "--root", c / "bangle"],
        setup=lambda c: small_bangle(c, lambda ls: ls + ["1 1 1 9000000 9001000"]), needle="segment 9000000")
    # channel names
    add("gyro-stream-acc-model", "issue",
        lambda c: ["live", "--port", c / "dv", "--model", c.art, "--duration", "20"],
        setup=gyro_csv, device=simulate("--replay", lambda c: c / "gyro.csv", "--speed", "5"), needle="gyro_x")
    # messages: --out checked before training
    for cmd, argv in [("pretrain", lambda c: ["pretrain", "--method", "harfm", "--out", c / "f" / "t.pt"]),
                      ("finetune", lambda c: ["finetune", c.D / "teacher.pt", "--out", c / "f" / "t.pt"]),
                      ("distill", lambda c: ["distill", "--teacher", c.D / "teacher.pt", "--out", c / "f" / "s.pt"])]:
        add(f"out-under-a-file-{cmd}", "issue", argv, setup=lambda c: write(c / "f", "a file"), needle="is a file",
            check=lambda c, r: ["trained before refusing --out"] if "it/s" in r.err else [])
    add("v99-checkpoint-message", "issue", lambda c: ["eval", c / "v99.pt"], needle="edgehar-checkpoint/99",
        setup=lambda c: _v99(c))

    # ## 20 new hostile inputs
    add("new-tflite-as-checkpoint", "new", lambda c: ["export", c.art / "model_int8.tflite", "--out", c / "o"],
        needle="model_int8.tflite")
    add("new-checkpoint-as-tflite-profile", "new", lambda c: ["profile", c.ckpt], needle="student.pt")
    add("new-folder-without-card", "new", lambda c: ["eval", c / "art"], needle="modelcard.json",
        setup=lambda c: (shutil.copytree(c.art, c / "art"), (c / "art" / "modelcard.json").unlink()))
    add("new-card-is-a-list", "new", lambda c: ["eval", c / "art"], needle="modelcard.json",
        setup=lambda c: (shutil.copytree(c.art, c / "art"), write(c / "art" / "modelcard.json", "[1, 2, 3]\n")))

    def loop(c):
        os.symlink(c / "l2", c / "l1")
        os.symlink(c / "l1", c / "l2")
    add("new-symlink-loop-as-out", "new", lambda c: ["export", c.ckpt, "--int8", "--no-micro", "--out", c / "l1"],
        setup=loop)
    add("new-out-equals-input", "new", lambda c: ["export", c / "s.pt", "--out", c / "s.pt"],
        setup=lambda c: shutil.copy(c.ckpt, c / "s.pt"))
    add("new-csv-only-header", "new", lambda c: ["data", "check", c / "own"],
        setup=lambda c: own_folder(c, {"rate": 50}, "time,acc_x,acc_y,acc_z\n"))
    add("new-csv-crlf-bom", "new", lambda c: ["data", "check", c / "own"], expect="ok",
        setup=lambda c: own_folder(c, {"rate": 50}, ("\ufeff" + csv_rows(2000, nl="\r\n")).encode("utf-8")))
    add("new-unicode-space-path", "new", lambda c: ["eval", c / "mödel ü x" / "export", "--data", "banglejs"], expect="ok",
        setup=lambda c: shutil.copytree(c.art, c / "mödel ü x" / "export"))
    add("new-bangle-labels-with-tabs", "new", lambda c: ["data", "summary", "banglejs", "--root", c / "bangle"],
        expect="ok", setup=lambda c: small_bangle(c, lambda ls: [ln.replace(" ", "\t") for ln in ls]))
    add("new-owndata-wrong-types", "new", lambda c: ["data", "check", c / "own"],
        setup=lambda c: own_folder(c, {"rate": "fifty", "channels": "acc_x", "header": "no"}))
    add("new-corpus-into-user-folder", "new",
        lambda c: ["data", "corpus", "build", "--data", "axivity", "--rate", "50", "--window", "128",
                   "--out", c / "mine"],
        setup=lambda c: write(c / "mine" / "notes.txt", "my notes"))
    add("new-corpus-window-huge", "new",
        lambda c: ["data", "corpus", "build", "--data", "axivity", "--rate", "50", "--window", "10000000000",
                   "--out", c / "corpus"], needle="shorter than one window")
    add("new-corpus-rate-nan", "new",
        lambda c: ["data", "corpus", "build", "--data", "axivity", "--rate", "nan", "--window", "128",
                   "--out", c / "corpus"], expect="usage", needle="--rate")
    add("new-record-onto-file", "new",
        lambda c: ["record", "--port", c / "dv", "--label", "walking", "--out", c / "take.csv", "--seconds", "2"],
        setup=lambda c: write(c / "take.csv", "my own data\n"), device=simulate("--replay", BANGLE, "--speed", "5"))
    add("new-calib-n-1", "new", lambda c: ["calib", "build", "--data", "banglejs", "--like", c.ckpt, "--n", "1",
                                           "--out", c / "c.npz"], expect="ok", outputs=("c.npz",))
    add("new-profile-empty-onnx", "new", lambda c: ["profile", c / "m.onnx"], setup=lambda c: write(c / "m.onnx", b""),
        needle="m.onnx")
    add("new-eval-data-images", "new", lambda c: ["eval", c.art, "--data", c / "imgs"],
        setup=lambda c: [write(c / "imgs" / f"img{i}.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200)) for i in range(3)])
    add("new-live-threads-1000", "new", lambda c: ["live", "--port", c / "dv", "--model", c.art, "--threads", "1000"],
        expect="usage", needle="--threads")
    add("new-port-regular-file", "new", lambda c: ["live", "--port", c / "port.txt", "--model", c.art, "--duration", "3"],
        setup=lambda c: write(c / "port.txt", "not a tty\n"), needle="port.txt")
    add("new-record-takes-0", "new",
        lambda c: ["record", "--port", c / "dv", "--label", "walking", "--out", c / "rec", "--takes", "0"],
        expect="usage", needle="--takes")
    add("new-demo-data-images", "new", lambda c: ["demo", "--quick", "--data", c / "imgs", "--out", c / "d"],
        setup=lambda c: [write(c / "imgs" / f"img{i}.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200)) for i in range(3)])
    add("new-demo-out-is-a-file", "new", lambda c: ["demo", "--quick", "--out", c / "notes.txt"],
        setup=lambda c: write(c / "notes.txt", "my notes\n"), needle="notes.txt")
    add("new-demo-tiny-own-data", "new", lambda c: ["demo", "--quick", "--data", c / "own", "--out", c / "d"],
        expect="ok", outputs=("d",), setup=tiny_own_data, timeout=600)
    add("new-sigint-distill", "new",
        lambda c: ["distill", "--teacher", c.D / "teacher.pt", "--data", "banglejs", "--steps", "5000",
                   "--out", c / "s.pt"], expect="interrupted", signal=(signal.SIGINT, r"distill.*\d+/\d+"))
    add("new-sigint-pretrain", "new",
        lambda c: ["pretrain", "--method", "harfm", "--config", "tiny", "--data", "banglejs", "--steps", "5000",
                   "--out", c / "t.pt"], expect="interrupted", signal=(signal.SIGINT, r"pretrain.*\d+/\d+"))
    add("new-sigterm-record", "new",
        lambda c: ["record", "--port", c / "dv", "--label", "walking", "--out", c / "rec", "--seconds", "60"],
        # SIGTERM a second into the take (not at a fixed time, which waits out the start-up too)
        expect="ok", signal=(signal.SIGTERM, r"started", 1.0), device=simulate("--replay", BANGLE, "--speed", "5"),
        outputs=("rec",))
    every = L + issue26_cases()
    for case in every:
        if case.name in NEEDS_DATA:
            case.needs += DATA_NEEDED
    assert NEEDS_DATA <= {case.name for case in every}, NEEDS_DATA - {case.name for case in every}
    return every


# Cases that read $EDGEHAR_DATA (Bangle.js or HAPT files, their replay, `--data banglejs`): the
# tests skip them where it is unset. The others run on the zoo's models and generated files.
NEEDS_DATA = {
    "truncated-pt-live", "card-rate-0-live", "card-rate-fast-live", "card-rate-nan-live", "card-6-channels-live",
    "hapt-label-13-summary", "hapt-label-13-eval", "bangle-label-7-summary", "bangle-label-7-eval",
    "truncated-calib-npz", "ctrl-c-export-importing-tf", "noisy-stream-auto", "frame-stream-protocol-text",
    "text-stream-protocol-frame", "sigkill-export-then-export", "sigterm-export", "ctrl-c-export-keras-stage",
    "sigkill-simulator-dangling-link", "hapt-nan-sample", "bangle-inf-sample", "calib-nan-windows",
    "tflite-flipped-eval", "tflite-appended-50MB-eval", "bangle-label-row-minus-5000", "bangle-label-row-past-end",
    "new-unicode-space-path", "new-bangle-labels-with-tabs", "new-corpus-window-huge", "new-record-onto-file",
    "new-calib-n-1", "new-sigint-distill", "new-sigint-pretrain", "new-sigterm-record",
    "i26-download-dest-user-files", "i26-live-log-onto-modelcard", "i26-record-two-writers-5-rounds",
    "i26-record-sigkill-open-take", "i26-emulate-float-model-as-int8",
}


# -- issue 26: own data, outputs, recording and corpora ---------------------------------------
SIM = f"sim://{BANGLE}"  # the virtual device in process: a port URL, nothing in the background
OWN_RSS_MB = 1000  # data check / corpus build: python, numpy and the kit, plus the samples
EVAL_RSS_MB = 2500  # eval imports TensorFlow Lite and torch as well


def own26(manifest, rows: str | bytes | None = None, name="own"):
    return lambda c: own_folder(c, manifest, rows, name)


def own_rows(n=2000, cell_at: int | None = None, cell: str = "", col: int = 2) -> str:
    """`time,acc_x,acc_y,acc_z` at 50 Hz; row `cell_at` (0-based) gets `cell` in column `col`."""
    lines = ["time,acc_x,acc_y,acc_z"]
    for i in range(n):
        row = [f"{i / 50:.3f}", "0.1", "0.2", "0.98"]
        if i == cell_at:
            row[col] = cell
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


TIMED = {"rate": 50, "time": {"column": "time", "unit": "s"}, "label": {"value": "walking"}}


def labelled_own(c: Ctx, rows: str, name="own", extra: dict | None = None):
    own_folder(c, {**TIMED, **(extra or {})}, rows, name)


def art_copy(c: Ctx):
    shutil.copytree(c.art, c / "art")


def hapt_zip(c: Ctx):
    """A small archive with the UCI HAPT layout, served by file:// from the case folder."""
    import zipfile
    with zipfile.ZipFile(c / "hapt.zip", "w") as z:
        z.write(DATA / "hapt" / "activity_labels.txt", "HAPT/activity_labels.txt")
        z.writestr("HAPT/RawData/labels.txt", "1 1 5 250 1232\n")
        z.write(DATA / "hapt" / "RawData" / "acc_exp01_user01.txt", "HAPT/RawData/acc_exp01_user01.txt")


def user_folder(name="mine"):
    return lambda c: (write(c / name / "notes.txt", "my notes\n"), write(c / name / "photo.jpg", b"\xff\xd8" + os.urandom(64)))


def big_own(folder: Path):
    """Three labelled subjects of 200 s: enough windows for a corpus of several shards."""
    write(folder / "edgehar.json", json.dumps({"rate": 50, "label": {"value": "walking"}, "subject": {"folder": 1},
                                               "placement": "wrist"}))
    rng = __import__("numpy").random.default_rng(0)
    for s in (1, 2, 3):
        x = rng.normal(0, 0.3, (10000, 3)) + [0, 0, 1]
        write(folder / f"s{s}" / "a.csv", "acc_x,acc_y,acc_z\n" + "".join(f"{a:.4f},{b:.4f},{z:.4f}\n" for a, b, z in x))


def make_corpus(folder: Path) -> None:
    """One small corpus built from `big_own`, at the zoo teacher's 20 Hz and 100-sample window
    so distill reads it (the own-data folder it is built from stays beside it)."""
    big_own(folder / "own")
    subprocess.run(edgehar("data", "corpus", "build", "--data", folder / "own", "--rate", "20", "--window", "100",
                           "--shard-windows", "64", "--out", folder / "corpus"),
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)


def corpus_copy(c: Ctx, damage=None):
    """A copy of the session's small corpus (`make_corpus`), then `damage(folder)`."""
    built = made_once(c.shared / "corpus", make_corpus) / "corpus"
    shutil.copytree(built, c / "corpus")
    if damage:
        damage(c / "corpus")


def first_shard(folder: Path) -> Path:
    return min(folder.glob("*.x.npy"))


def flip_64k(folder: Path):
    p = first_shard(folder)
    raw = bytearray(p.read_bytes())
    n = min(64 << 10, (len(raw) - 256) // 2)
    for i in range(256, 256 + n):
        raw[i] ^= 0xFF
    p.write_bytes(bytes(raw))


def truncate_shard(folder: Path):
    p = first_shard(folder)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def corrupt_npy_header(folder: Path):
    p = first_shard(folder)
    raw = bytearray(p.read_bytes())
    raw[10:40] = b"{'descr': '<f4', 'shape': (((("  # the dict literal no longer parses
    p.write_bytes(bytes(raw))


def cut_manifest(folder: Path):
    text = (folder / "corpus.json").read_text()
    (folder / "corpus.json").write_text(text[: len(text) // 2])


def manifest_without_shards(folder: Path):
    spec = json.loads((folder / "corpus.json").read_text())
    spec.pop("shards")
    (folder / "corpus.json").write_text(json.dumps(spec))


def swap_shards(folder: Path):
    a = first_shard(folder)
    b = a.with_name(a.name.replace(".x.npy", ".meta.npy"))
    tmp = folder / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def shard_is_folder(folder: Path):
    p = first_shard(folder)
    p.unlink()
    p.mkdir()
    write(p / "x.npy", b"")


def corpus_format_9(folder: Path):
    spec = json.loads((folder / "corpus.json").read_text())
    spec["format"] = "edgehar-corpus/9"
    (folder / "corpus.json").write_text(json.dumps(spec))


def no_wrist(folder: Path):
    spec = json.loads((folder / "corpus.json").read_text())
    spec["placements"] = ["ankle"]  # corpus.json itself is not hashed: only its shards are
    (folder / "corpus.json").write_text(json.dumps(spec))


def pretrain_corpus(*more):
    return lambda c: ["pretrain", "--method", "harfm", "--config", "tiny", "--data", c / "corpus", "--steps", "3",
                      "--out", c / "t.pt", *more]


def distill_corpus(*more):
    return lambda c: ["distill", "--teacher", c.D / "teacher.pt", "--data", c / "corpus", "--steps", "3",
                      "--out", c / "s.pt", *more]


# record
def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "file" in obj:
            out.append(obj)
    return out


def takes_in(folder: Path) -> dict:
    """file name -> samples of each take the folder lists and holds (data lines in the file)."""
    try:
        spec = json.loads((folder / "edgehar.json").read_text())
    except (OSError, ValueError):
        return {}
    kept = {}
    for name in (spec.get("files") or {}):
        p = folder / name
        if p.is_file():
            with open(p, "rb") as f:
                kept[name] = max(0, sum(1 for _ in f) - 1)
    return kept


# a take of 4 device seconds lasts 2 s: longer than the two recorders' start-up skew, so the
# takes of a round overlap (each picks its name and updates the manifest while the other runs)
RECORD = lambda c: ["record", "--port", f"{SIM}?speed=2", "--label", "walking", "--out", c / "rec",
                    "--seconds", "4", "--json"]


def record_rounds(c: Ctx, r: Result) -> list:
    """Round 1 ran as the case (two recorders at once); four more rounds of two, then count the
    takes the recorders reported written against the takes the folder lists and holds."""
    problems, reported = [], json_lines(r.out) + json_lines(c.alongside.out.decode(errors="replace"))
    if c.alongside.p.returncode != 0:
        problems.append(f"round 1, second recorder: exit {c.alongside.p.returncode}: "
                        f"{c.alongside.err.decode(errors='replace').strip()[-200:]}")
    overlapping = 0
    for rnd in range(2, 6):
        procs = [Proc(edgehar(*RECORD(c)), c) for _ in range(2)]
        started, ended = [None, None], [None, None]
        deadline = time.time() + 120
        while None in ended and time.time() < deadline:  # when each take starts and is written
            for k, p in enumerate(procs):
                if started[k] is None and b"started" in p.err:
                    started[k] = time.time()
                if ended[k] is None and (b'"file"' in p.out or p.poll() is not None):
                    ended[k] = time.time()
            time.sleep(0.02)
        overlapping += None not in started + ended and max(started) < min(ended)
        for k, p in enumerate(procs):
            rc = p.wait(120)
            reported += json_lines(p.out.decode(errors="replace"))
            err = p.err.decode(errors="replace")
            if rc != 0 or "Traceback" in err:
                problems.append(f"round {rnd}, recorder {k + 1}: exit {rc}: {err.strip()[-200:]}")
    kept = takes_in(c / "rec")
    names = [Path(t["file"]).name for t in reported]
    lost = [n for n in names if not kept.get(n)]
    if len(set(names)) != len(names):
        problems.append(f"two takes reported under one name: {sorted(n for n in names if names.count(n) > 1)}")
    c.extra.update(takes_reported=len(names), takes_kept=len(kept), lost_takes=len(lost) + len(names) - len(set(names)),
                   overlapping_rounds=f"{overlapping} of rounds 2-5")
    if overlapping < 3:
        problems.append(f"the two recorders' takes overlapped in only {overlapping} of rounds 2-5")
    if len(names) != 10:
        problems.append(f"{len(names)} takes reported written, expected 10")
    if lost:
        problems.append(f"lost takes: {lost}")
    return problems


def killed_take_kept(c: Ctx) -> list:
    """After a SIGKILL during an open-ended take: the folder lists it (partial) with what was read,
    and the folder reads as own data."""
    kept = takes_in(c / "rec")
    c.extra.update(takes_reported=1, takes_kept=sum(1 for n in kept.values() if n), lost_takes=0 if any(kept.values()) else 1)
    problems = [] if any(kept.values()) else [f"the killed take left no samples ({kept})"]
    spec = json.loads((c / "rec" / "edgehar.json").read_text()) if (c / "rec" / "edgehar.json").exists() else {}
    if not any(isinstance(e, dict) and e.get("partial") for e in (spec.get("files") or {}).values()):
        problems.append("the killed take is not marked partial")
    p = subprocess.run(edgehar("data", "check", c / "rec"), cwd=c.dir, env=c.env, capture_output=True, text=True, check=False,
                       timeout=120)
    if p.returncode != 0:
        problems.append(f"data check of the folder: exit {p.returncode}: {p.stderr.strip()[-200:]}")
    return problems


# firmware
def float_as_int8(c: Ctx):
    """The export folder with the same student's float model renamed model_int8.tflite (the zoo
    ships no float model: `edgehar export` writes it, from the shipped windows)."""
    art_copy(c)
    subprocess.run(edgehar("export", STUDENT, "--no-micro", "--out", c.tmp / "fp32"), cwd=c.dir, env=c.env,
                   check=True, capture_output=True, timeout=600)
    shutil.copy(c.tmp / "fp32" / "model_fp32.tflite", c / "art" / "model_int8.tflite")
    shutil.rmtree(c.tmp / "fp32")


def tflm_cache_env(c: Ctx) -> dict:
    return {"XDG_CACHE_HOME": c / "cache"}


def tflm_staging_swept(c: Ctx) -> list:
    """After a SIGKILL of the first TFLM build (its process, as the OOM killer does; the compiler
    jobs it started finish on their own and are waited for): the staging folder is there; the
    next build removes it. The finished TFLM library of the user's own cache is copied in first
    (the same key), so the next build only links."""
    deadline = time.time() + 300
    while time.time() < deadline:  # the orphaned compiler jobs, in the case's process group
        try:
            os.killpg(c.pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    mcu = c / "cache" / "edgehar" / "mcu"
    user = cache_dir("mcu")  # the harness's own, not the case's
    stale = [e.name for e in mcu.iterdir() if e.name.startswith(".")] if mcu.is_dir() else []
    problems = [] if stale else ["no staging folder left by the killed build (nothing to sweep)"]
    for lib in user.glob("tflm-*"):
        if lib.is_dir() and not (mcu / lib.name).exists():
            shutil.copytree(lib, mcu / lib.name)
    p = subprocess.run(edgehar("firmware", "build", c / "art", "--out", c / "fw.elf"), cwd=c.dir, env=c.env, check=False,
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        problems.append(f"the next build: exit {p.returncode}: {p.stderr.strip()[-200:]}")
    left = [e.name for e in mcu.iterdir() if e.name.startswith(".")]
    if left:
        problems.append(f"staging left after the next build: {left}")
    return problems


def issue26_cases() -> list[Case]:
    L: list[Case] = []

    def add(*a, **k):
        L.append(Case(*a, **k))

    # ## data destroyed or lost
    add("i26-export-out-user-folder", "issue26", lambda c: ["export", c.ckpt, "--int8", "--no-micro", "--out", c / "mine"],
        setup=user_folder(), needle="did not write")

    def proj(c):
        shutil.copy(c.ckpt, write(c / "proj" / "notes.txt", "notes").parent / "s.pt")
    add("i26-export-out-holds-checkpoint", "issue26",
        lambda c: ["export", c / "proj" / "s.pt", "--int8", "--no-micro", "--out", c / "proj"],
        setup=proj, needle="proj")
    add("i26-export-out-dot", "issue26", lambda c: ["export", c.ckpt, "--int8", "--no-micro", "--out", "."],
        setup=user_folder(), needle="current folder")
    add("i26-download-dest-user-files", "issue26",
        lambda c: ["data", "download", "hapt", "--url", f"file://{c / 'hapt.zip'}", "--sha256", "none", "--dest", c / "mine"],
        setup=lambda c: (hapt_zip(c), user_folder()(c)), needle="did not write")
    add("i26-live-log-onto-modelcard", "issue26",
        lambda c: ["live", "--port", f"{SIM}?speed=5", "--model", c / "art", "--log", c / "art" / "modelcard.json",
                   "--duration", "5"], setup=art_copy, needle="modelcard.json")
    add("i26-distill-out-is-teacher", "issue26",
        lambda c: ["distill", "--teacher", c / "t.pt", "--data", "banglejs", "--steps", "2", "--out", c / "t.pt"],
        setup=lambda c: shutil.copy(c.D / "teacher.pt", c / "t.pt"), needle="input")
    add("i26-finetune-out-is-input", "issue26",
        lambda c: ["finetune", c / "t.pt", "--data", "banglejs", "--steps", "1", "--out", c / "t.pt"],
        setup=lambda c: shutil.copy(c.D / "teacher.pt", c / "t.pt"), needle="input")
    add("i26-firmware-out-is-own-input", "issue26",
        lambda c: ["firmware", "build", c / "art", "--out", c / "art" / "model_int8.cc"],
        setup=art_copy, needle="model_int8.cc", needs=("toolchain",))
    add("i26-record-two-writers-5-rounds", "issue26", RECORD, expect="ok", concurrent=RECORD, check=record_rounds,
        outputs=("rec",), timeout=180)
    for what, n in (("label", 220), ("label", 300), ("subject", 260)):
        add(f"i26-record-{what}-{n}-chars", "issue26",
            lambda c, what=what, n=n: ["record", "--port", f"{SIM}?speed=20", "--label", "w" * n if what == "label" else "walking",
                                       "--subject", "s" * n if what == "subject" else "1", "--out", c / "rec", "--seconds", "1"],
            expect="usage", needle=f"--{what}")
    add("i26-record-sigkill-open-take", "issue26",
        lambda c: ["record", "--port", f"{SIM}?speed=5", "--label", "walking", "--out", c / "rec"],
        expect="killed", signal=(signal.SIGKILL, r"started", 1.0), after=killed_take_kept, outputs=("rec",))
    for label in ("..", ".walk"):
        add(f"i26-record-label-{label}", "issue26",
            lambda c, label=label: ["record", "--port", f"{SIM}?speed=20", "--label", label, "--out", c / "rec", "--seconds", "1"],
            expect="usage", needle="--label")

    # ## silently wrong, or a blow-up
    for spelling in ("nan", "NaN", "inf", "Infinity", "1e400"):
        rows = own_rows(2000, 1000, spelling)
        add(f"i26-own-{spelling}-cell-check", "issue26", lambda c: ["data", "check", c / "own"],
            setup=lambda c, rows=rows: labelled_own(c, rows), needle="line 1002", max_rss_mb=OWN_RSS_MB)
        add(f"i26-own-{spelling}-cell-eval", "issue26", lambda c: ["eval", c.art, "--data", c / "own"],
            setup=lambda c, rows=rows: labelled_own(c, rows), needle="line 1002", max_rss_mb=EVAL_RSS_MB)
        add(f"i26-own-{spelling}-cell-corpus", "issue26",
            lambda c: ["data", "corpus", "build", "--data", c / "own", "--rate", "50", "--window", "128", "--out", c / "corpus"],
            setup=lambda c, rows=rows: labelled_own(c, rows), needle="line 1002", max_rss_mb=OWN_RSS_MB)

    def glitch(stamp):
        # ~98 KB: 4000 rows at 50 Hz, the last one stamped `stamp` seconds
        return own_rows(4000)[:-1].rsplit("\n", 1)[0] + f"\n{stamp},0.1,0.2,0.98\n"
    for stamp, cmd in (("1e6", "check"), ("1e9", "check"), ("1e9", "eval"), ("1e6", "corpus")):
        argv = {"check": lambda c: ["data", "check", c / "own"],
                "eval": lambda c: ["eval", c.art, "--data", c / "own"],
                "corpus": lambda c: ["data", "corpus", "build", "--data", c / "own", "--rate", "50", "--window", "128",
                                     "--out", c / "corpus"]}[cmd]
        add(f"i26-time-glitch-{stamp}-{cmd}", "issue26", argv, setup=lambda c, s=stamp: labelled_own(c, glitch(s)),
            needle="line 4001", max_rss_mb=EVAL_RSS_MB if cmd == "eval" else OWN_RSS_MB)
    # a 5,000-character cell (a valid number, written out) in a 1 MB file: refused by its line,
    # and the reader's memory does not grow with the widest cell
    wide = own_rows(48000, 20000, "0." + "0" * 4997 + "1")
    add("i26-own-5000-char-cell-1MB", "issue26", lambda c: ["data", "check", c / "own"],
        setup=lambda c: labelled_own(c, wide), needle="line 20002", max_rss_mb=OWN_RSS_MB)
    add("i26-own-header-names-a-column-twice", "issue26", lambda c: ["data", "check", c / "own"],
        setup=lambda c: own_folder(c, {"rate": 50, "label": {"column": "act"}},
                                   "time,acc_x,acc_x,acc_z,act\n" + "0,0.1,0.2,0.9,walk\n" * 600),
        needle="acc_x")
    add("i26-tampered-shard-pretrain", "issue26", pretrain_corpus(), setup=lambda c: corpus_copy(c, flip_64k),
        needle="SHA-256")
    add("i26-tampered-shard-distill", "issue26", distill_corpus(), setup=lambda c: corpus_copy(c, flip_64k),
        needle="SHA-256")
    add("i26-eval-labels-one", "issue26", lambda c: ["eval", c.art, "--labels", "walking"], expect="usage",
        needle="--labels")

    # ## tracebacks and hangs
    for tag, manifest in [("files-list", {"rate": 50, "files": ["a.csv"]}),
                          ("files-entry-string", {"rate": 50, "files": {"a.csv": "sit"}}),
                          ("channels-5", {"rate": 50, "channels": 5}), ("units-5", {"rate": 50, "units": 5}),
                          ("time-unit-list", {"rate": 50, "time": {"column": "time", "unit": ["s"]}}),
                          ("subject-pattern-5", {"rate": 50, "subject": {"pattern": 5}}),
                          ("label-map-list", {"rate": 50, "label_map": ["walk", "walking"]}),
                          ("delimiter-5", {"rate": 50, "delimiter": 5})]:
        add(f"i26-manifest-{tag}", "issue26", lambda c: ["data", "check", c / "own"], setup=own26(manifest),
            needle="edgehar.json")
    for rate in ("Infinity", "1e9", "1e-6"):
        text = f'{{"rate": {rate}, "label": {{"value": "walking"}}}}'
        add(f"i26-manifest-rate-{rate}-check", "issue26", lambda c: ["data", "check", c / "own"],
            setup=own26(text), needle="rate")
        add(f"i26-manifest-rate-{rate}-eval", "issue26", lambda c: ["eval", c.art, "--data", c / "own"],
            setup=own26(text), needle="rate", max_rss_mb=EVAL_RSS_MB)

    def dangling(c):
        own_folder(c, {"rate": 50})
        os.symlink(c / "nowhere.csv", c / "own" / "x.csv")
    add("i26-own-dangling-csv-link", "issue26", lambda c: ["data", "check", c / "own"], setup=dangling,
        needle="x.csv")
    add("i26-own-folder-named-2024.csv", "issue26", lambda c: ["data", "check", c / "own"], expect="ok",
        setup=lambda c: (own_folder(c, {"rate": 50}), write(c / "own" / "2024.csv" / "b.csv", own_rows(600))))
    add("i26-own-nan-time-cell", "issue26", lambda c: ["data", "check", c / "own"],
        setup=lambda c: labelled_own(c, own_rows(2000, 700, "nan", col=0)), needle="line 702")
    for tag, damage in [("truncated-shard", truncate_shard), ("deleted-shard", lambda f: first_shard(f).unlink()),
                        ("corpus-json-cut", cut_manifest), ("corpus-json-no-shards", manifest_without_shards),
                        ("corrupt-npy-header", corrupt_npy_header)]:
        add(f"i26-corpus-{tag}-pretrain", "issue26", pretrain_corpus(), setup=lambda c, d=damage: corpus_copy(c, d),
            needle="corpus")
    add("i26-firmware-arena-300kb", "issue26", lambda c: ["firmware", "build", c.art, "--arena-kb", "300", "--out", c / "fw.elf"],
        needle="arena", needs=("toolchain",))
    add("i26-firmware-out-existing-folder", "issue26",
        lambda c: ["firmware", "build", c.art, "--out", c / "fwdir"], setup=lambda c: (c / "fwdir").mkdir(),
        needle="fwdir", needs=("toolchain",))
    add("i26-emulate-float-model-as-int8", "issue26",
        lambda c: ["device", "emulate", "--model", c / "art", "--replay", BANGLE, "--speed", "0", "--seconds", "5"],
        setup=float_as_int8, needle="model_int8.tflite", needs=("toolchain",))
    add("i26-sigkill-first-tflm-build", "issue26", lambda c: ["firmware", "build", c / "art", "--out", c / "fw.elf"],
        setup=art_copy, env=tflm_cache_env, expect="killed", signal=(signal.SIGKILL, r"first time only", 2.0),
        after=tflm_staging_swept, outputs=("cache", "fw.elf"), needs=("toolchain",), timeout=900)

    # ## new careless inputs of the same classes (not in the issue)
    add("n26-calib-out-is-its-data-folder", "new26",
        lambda c: ["calib", "build", "--data", c / "own.npz", "--n", "20", "--out", c / "own.npz"],
        setup=lambda c: labelled_own(c, own_rows(2000), name="own.npz"), needle="own.npz")
    add("n26-corpus-out-is-its-data", "new26",
        lambda c: ["data", "corpus", "build", "--data", c / "own", "--rate", "50", "--window", "128", "--out", c / "own"],
        setup=lambda c: labelled_own(c, own_rows(2000)), needle="own")
    # the student's card names the corpus it was distilled on, by a folder of the machine that
    # built the zoo: --root says where that corpus is here, the data set is the card's
    add("n26-export-corpus-student-default-calibration", "new26",
        lambda c: ["export", c.ckpt, "--int8", "--no-micro", "--root", c / "corpus", "--out", c / "o"],
        setup=corpus_copy, expect="ok", outputs=("o",), timeout=600)
    add("n26-export-out-parent", "new26", lambda c: ["export", c.ckpt, "--int8", "--no-micro", "--out", ".."],
        needle="above the current")
    add("n26-demo-out-user-folder", "new26", lambda c: ["demo", "--quick", "--out", c / "mine"], setup=user_folder(),
        needle="did not write")
    add("n26-firmware-out-is-card", "new26",
        lambda c: ["firmware", "build", c / "art", "--out", c / "art" / "modelcard.json"], setup=art_copy,
        needle="modelcard.json", needs=("toolchain",))
    add("n26-live-log-is-the-replayed-csv", "new26",
        lambda c: ["live", "--port", f"sim://{c / 'r.csv'}?speed=5", "--model", c.art, "--log", c / "r.csv",
                   "--duration", "3"], setup=lambda c: write(c / "r.csv", csv_rows(3000)), needle="r.csv")
    add("n26-finetune-out-is-its-own-data", "new26",
        lambda c: ["finetune", c.D / "teacher.pt", "--data", c / "own", "--steps", "1", "--out", c / "own" / "a.csv"],
        setup=lambda c: labelled_own(c, own_rows(2000)), needle="a.csv")
    add("n26-record-out-user-folder", "new26",
        lambda c: ["record", "--port", f"{SIM}?speed=20", "--label", "walking", "--out", c / "mine", "--seconds", "1"],
        setup=user_folder(), needle="did not write")
    add("n26-record-subject-dotdot", "new26",
        lambda c: ["record", "--port", f"{SIM}?speed=20", "--label", "walking", "--subject", "..", "--out", c / "rec"],
        expect="usage", needle="--subject")
    for tag, manifest in [("rate-true", {"rate": True}), ("classes-string", {"rate": 50, "classes": "walk"}),
                          ("files-entry-unknown-key", {"rate": 50, "files": {"a.csv": {"lable": {"value": "sit"}}}}),
                          ("time-unit-hours", {"rate": 50, "time": {"column": "time", "unit": "hours"}}),
                          ("label-column-number", {"rate": 50, "label": {"column": 3}})]:
        add(f"n26-manifest-{tag}", "new26", lambda c: ["data", "check", c / "own"], setup=own26(manifest),
            needle="edgehar.json")
    for spelling in ("-Infinity", "NAN", "1E999", "+inf"):
        add(f"n26-own-{spelling}-cell-check", "new26", lambda c: ["data", "check", c / "own"],
            setup=lambda c, s=spelling: labelled_own(c, own_rows(2000, 50, s, col=3)), needle="line 52",
            max_rss_mb=OWN_RSS_MB)
    add("n26-own-time-glitch-mid-file", "new26", lambda c: ["data", "check", c / "own"],
        setup=lambda c: labelled_own(c, own_rows(4000, 1500, "1e9", col=0)), needle="line 150", max_rss_mb=OWN_RSS_MB)

    def two_sessions(c):  # the clock jumps 11.6 days forward at line 1502 and goes on from there
        lines = own_rows(4000).splitlines()
        for i in range(1501, len(lines)):
            t, rest = lines[i].split(",", 1)
            lines[i] = f"{float(t) + 1e6:.3f},{rest}"
        labelled_own(c, "\n".join(lines) + "\n")
    add("n26-own-two-sessions-in-one-file", "new26", lambda c: ["eval", c.art, "--data", c / "own"],
        setup=two_sessions, needle="line 1502", max_rss_mb=EVAL_RSS_MB)

    def fifo(c):
        own_folder(c, {"rate": 50})
        os.mkfifo(c / "own" / "b.csv")
    add("n26-own-fifo-csv", "new26", lambda c: ["data", "check", c / "own"], setup=fifo, needle="b.csv", timeout=60)
    add("n26-own-10MB-header-line", "new26", lambda c: ["data", "check", c / "own"],
        setup=lambda c: own_folder(c, {"rate": 50}, "acc_x," * 2_000_000), needle="a.csv", max_rss_mb=OWN_RSS_MB)
    add("n26-eval-labels-twice-the-same", "new26", lambda c: ["eval", c.art, "--labels", "walking,walking"],
        expect="usage", needle="--labels")
    for tag, damage, more in [("shards-swapped", swap_shards, ()), ("shard-is-a-folder", shard_is_folder, ()),
                              ("format-9", corpus_format_9, ()),
                              ("truncated-shard-no-verify", truncate_shard, ("--no-verify",)),
                              ("corrupt-npy-header-no-verify", corrupt_npy_header, ("--no-verify",))]:
        add(f"n26-corpus-{tag}-distill", "new26", distill_corpus(*more), setup=lambda c, d=damage: corpus_copy(c, d),
            needle="corpus")
    add("n26-corpus-truncated-shard-no-verify-pretrain", "new26", pretrain_corpus("--no-verify"),
        setup=lambda c: corpus_copy(c, truncate_shard), needle="00000.x.npy")
    add("n26-corpus-no-wrist-windows-distill", "new26", distill_corpus(), setup=lambda c: corpus_copy(c, no_wrist),
        needle="wrist placement")
    # a corpus of 3 subjects has no validation subject: an empty split, not a crash
    add("n26-corpus-intact-distill", "new26", distill_corpus(), setup=corpus_copy, expect="ok", outputs=("s.pt",))
    return L


def _v99(c: Ctx):
    import torch
    ck = torch.load(c.ckpt, weights_only=True)
    torch.save({**ck, "format": "edgehar-checkpoint/99"}, c / "v99.pt")


# -- snapshots ------------------------------------------------------------------------------
def snapshot(*roots: Path) -> dict:
    """path -> (kind, digest) for every entry under `roots`, links not followed."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    out[str(p)] = ("link", os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    out[str(p)] = ("dir", "")
                elif stat.S_ISREG(st.st_mode):
                    out[str(p)] = ("file", file_sha256(p))
                else:
                    out[str(p)] = ("special", f"{st.st_mode:o}:{st.st_rdev}")
    return out


# Libraries' own per-user state, created once in the temp folder and reused by every later run
# (a fixed name, so it never accumulates): onnxruntime's session id file and torch's compile
# cache folder (made when torch.optim imports torch._dynamo). Not left by edgehar.
LIBRARY_STATE = {".ses", f"torchinductor_{os.environ.get('USER') or __import__('getpass').getuser()}"}


def compare(before: dict, after: dict, allowed: list[Path], changes: list[Path] = (),
            tmp: Path | None = None) -> tuple[list, list]:
    changes = {str(p) for p in changes}
    destroyed = [f"{p} ({'gone' if p not in after else 'changed'})" for p, v in before.items()
                 if after.get(p) != v and p not in changes]
    allowed_s = [str(a) for a in allowed]
    new = [p for p in after if p not in before and not any(p == a or p.startswith(a + os.sep) for a in allowed_s)
           and not (Path(p).name in LIBRARY_STATE and Path(p).parent == tmp)]
    return destroyed, new


# -- running one case -----------------------------------------------------------------------
# Linux counts a child's peak RSS from the memory it had before exec, which after a fork from a
# pytest worker that loaded torch and TensorFlow is that worker's whole size. A bounded command
# is started by this small launcher instead: a fresh interpreter forks it, reaps it with
# os.wait4, writes its peak RSS (KiB) to the fd in argv[1] and exits as it did.
RSS_LAUNCHER = """
import os, signal, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execvp(argv[0], argv)
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda n, f: os.kill(pid, n))
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


class Proc:
    """A subprocess whose stderr is collected in a thread (so a regex can wait on it), reaped by
    `os.wait4` in a thread of its own. Signals go through `send`, never Popen's poll/wait (which
    would reap it first). `measure_rss`: started by RSS_LAUNCHER, so its peak RSS (its waited-for
    children included) is its own; otherwise the figure includes the forking worker's size."""

    def __init__(self, argv, c: Ctx, measure_rss: bool = False):
        self.rss_read = None
        if measure_rss:
            self.rss_read, rss_write = os.pipe()
            argv = [PY, "-c", RSS_LAUNCHER, str(rss_write), *map(str, argv)]
        self.p = subprocess.Popen(argv, cwd=c.dir, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True, pass_fds=(rss_write,) if measure_rss else ())
        if measure_rss:
            os.close(rss_write)
        self.out, self.err = bytearray(), bytearray()
        self.rusage = None
        self.rss_kib = None
        self.timed_out = False
        self.threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                        for s, b in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.threads:
            t.start()
        self.reaper = threading.Thread(target=self._reap, daemon=True)
        self.reaper.start()

    def _pump(self, stream, buf):
        for chunk in iter(lambda: stream.read1(4096), b""):
            buf.extend(chunk)

    def _reap(self):
        _, status, self.rusage = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        if self.rss_read is not None:
            with os.fdopen(self.rss_read, "rb") as f:
                text = f.read().decode().strip()
            self.rss_kib = int(text) if text else None

    def poll(self):
        return None if self.reaper.is_alive() else self.p.returncode

    def send(self, sig, group: bool = False):
        if self.reaper.is_alive():
            (os.killpg if group else os.kill)(self.p.pid, sig)

    def wait(self, timeout):
        self.reaper.join(timeout)
        if self.reaper.is_alive():
            self.timed_out = True
            os.killpg(self.p.pid, signal.SIGKILL)
            self.reaper.join()
        for t in self.threads:
            t.join(5)
        return self.p.returncode

    @property
    def peak_rss_mb(self) -> float | None:
        kib = self.rss_kib if self.rss_read is not None else (self.rusage and self.rusage.ru_maxrss)
        return None if kib is None else round(kib / 1024, 1)


def start_device(case: Case, c: Ctx):
    dev = subprocess.Popen(case.device(c), cwd=c.dir, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    line = dev.stdout.readline().strip()
    if not line:
        raise RuntimeError(f"device did not start: {dev.stderr.read()[-400:]}")
    return dev


def stop_device(dev) -> list:
    if dev.poll() is None:
        dev.send_signal(signal.SIGTERM)
    try:
        _, err = dev.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        dev.kill()
        _, err = dev.communicate()
    return [f"device: Traceback: {err[-300:]}"] if "Traceback" in err else []


ERROR_LINE = re.compile(r"^edgehar: error: \S")
USAGE_LINE = re.compile(r"^edgehar( [a-z]+)*: error: ")


def stderr_lines(err: str) -> list[str]:
    """Lines as a terminal shows them: a progress bar's \\r-redraws collapse to their last state."""
    return [ln.split("\r")[-1].rstrip() for ln in err.split("\n") if ln.split("\r")[-1].strip()]


def judge(case: Case, r: Result) -> list:
    problems = []
    if "Traceback" in r.err:
        problems.append("traceback: " + r.err.strip().splitlines()[-1][:200])
    lines = stderr_lines(r.err)
    last = lines[-1] if lines else ""
    want = {"error": 2, "usage": 2, "ok": 0, "interrupted": 130, "terminated": 143, "killed": -9}[case.expect]
    if r.rc != want:
        problems.append(f"exit {r.rc}, expected {want}")
    if ERROR_LINE.match(last) and re.search(r"\b[A-Z]\w*(Error|Exception): ", last[len("edgehar: error: "):]):
        problems.append(f"a bug dressed as a user error: {last[:200]!r}")
    if case.expect == "error":
        errs = [ln for ln in r.err.split("\n") if "error" in ln.lower()]
        if not ERROR_LINE.match(last) or len(errs) != 1 or not errs[0].startswith("edgehar: error: "):
            problems.append(f"not one error line of its own: {r.err.strip()[-200:]!r}")
        elif case.needle and case.needle not in last:
            problems.append(f"{case.needle!r} not in {last!r}")
    elif case.expect == "usage":
        if not USAGE_LINE.match(last) or not lines[0].startswith("usage:"):
            problems.append(f"not an argparse error: {r.err.strip()[-200:]!r}")
        elif case.needle and case.needle not in last:
            problems.append(f"{case.needle!r} not in {last!r}")
    elif case.expect in ("interrupted", "terminated"):
        if last != f"edgehar: {case.expect}":
            problems.append(f"last line {last!r}, expected 'edgehar: {case.expect}'")
    elif case.needle and case.needle not in r.err:
        problems.append(f"{case.needle!r} not in stderr: {r.err.strip()[-200:]!r}")
    return problems


def run_case(case: Case, root: Path, artifacts: Path, shared: Path | None = None) -> Result:
    """Run `case` in `root` (its folders: root/case, root/tmp) on the artifacts folder
    (`make_artifacts`); `shared`: where fixtures made once live (default: beside the artifacts)."""
    c = Ctx(root, artifacts, case, shared)
    r = Result()
    if case.setup:
        case.setup(c)
    watched = [c.dir, c.tmp, artifacts, DATA / "banglejs_wrist"]
    before = snapshot(*watched)
    dev = start_device(case, c) if case.device else None
    t0 = time.time()
    try:
        p = Proc(edgehar(*case.argv(c)), c, measure_rss=case.max_rss_mb is not None)
        c.pgid = p.p.pid
        c.alongside = Proc(edgehar(*case.concurrent(c)), c) if case.concurrent else None
        if case.signal:
            sig, when, *rest = case.signal
            group = "group" in rest
            delay = next((x for x in rest if isinstance(x, (int, float))), 0)
            deadline = time.time() + case.timeout
            if isinstance(when, str):
                while p.poll() is None and time.time() < deadline and not re.search(when, p.err.decode(errors="replace")):
                    time.sleep(0.05)
            else:
                time.sleep(when)
            time.sleep(delay)
            if p.poll() is None:
                p.send(sig, group)
            else:
                r.problems.append("ended before the signal could be sent")
        r.rc = p.wait(case.timeout)
        if p.timed_out:
            r.problems.append(f"hang: still running after {case.timeout:g} s, killed")
        if c.alongside is not None:
            c.alongside.wait(case.timeout)
        r.out, r.err = p.out.decode(errors="replace"), p.err.decode(errors="replace")
        r.extra["peak_rss_mb"] = p.peak_rss_mb
    finally:
        r.seconds = time.time() - t0
        if dev is not None:
            r.problems += stop_device(dev)
    r.problems += judge(case, r)
    if case.max_rss_mb is not None and (p.peak_rss_mb or 0) > case.max_rss_mb:
        r.problems.append(f"peak RSS {p.peak_rss_mb:.0f} MB, over the bound of {case.max_rss_mb:g} MB")
    if case.check:
        r.problems += case.check(c, r)
    if case.after:
        r.problems += case.after(c)
    r.extra.update(c.extra)
    after = snapshot(*watched)
    destroyed, new = compare(before, after, [c.dir / o for o in case.outputs], [c.dir / o for o in case.changes], c.tmp)
    r.destroyed = destroyed
    r.residue = new + [f"{p} (dangling link)" for p, (kind, tgt) in after.items()
                       if kind == "link" and not os.path.exists(p) and p not in before]
    return r


def missing_toolchain() -> str | None:
    """Why the Arm cases cannot run here, or None."""
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    tc = os.environ.get("EDGEHAR_TOOLCHAINS")
    if not tc or not Path(tc).is_dir():
        missing.append("EDGEHAR_TOOLCHAINS")
    return f"{', '.join(missing)} missing: the Arm toolchain case cannot run" if missing else None


def problems_of(r: Result) -> list[str]:
    """Everything that went wrong in one case, one line each."""
    return (r.problems + [f"destroyed: {d}" for d in r.destroyed] + [f"residue: {n}" for n in r.residue])
