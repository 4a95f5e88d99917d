"""The demo's one config: which flow runs, on what data, with which sizes. Every step reads it.

Flows (`edgehar.demo.steps.FLOWS`):
- `deploy` (the default when the data root holds `banglejs_wrist/`): the shipped wrist student
  (`wrist-small` from the model zoo) is deployed, no training: export -> profile -> live on
  Bangle.js user 2's whole recording.
- `train` (`--train`, `--quick`, `--synthetic`, `--data NAME|FOLDER`, or no data): today's whole
  flow from scratch: data -> teacher -> student -> export -> profile -> live. Which data depends on
  the root: the pooled wrist corpus (wisdm_watch/, dsads/, geotec_watch/ and banglejs_wrist/),
  HAPT (hapt/), a named data set or your own folder, else the embedded synthetic set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgehar import zoo
from edgehar.card_io import read_card
from edgehar.data.registry import REGISTRY, check_data
from edgehar.demo.wrist import WRIST_SETS, wrist_root_missing
from edgehar.errors import UserError

ACC = ("acc_x", "acc_y", "acc_z")
WINDOW, HOP = 128, 64  # 2.56 s at 50 Hz, the UCI-HAR window; live stride 1.28 s
# the zoo's wrist student with the best validation macro-F1 (results/zoo.md; a test holds this)
DEFAULT_MODEL = "wrist-small"

# Sizes of the training flow's steps: --quick must stay under 2 minutes, the full flow under 10,
# on 2 cores. "wrist": the wrist corpus flow's sizes (corpus_hop None: half a window, as
# bench_wrist). `replay_seconds`: seconds of the recording the live step streams (the wrist
# flows stream Bangle.js user 2's whole recording).
PLANS = {
    "quick": {"wrist": {"corpus_hop": 100, "teacher_steps": 150, "stage_a_steps": 30, "student": "tiny",
                        "distill_steps": 150},
              "teacher": "tiny", "pretrain_steps": 100, "finetune_steps": 160, "student": "tiny",
              "distill_steps": 160, "max_train_windows": 1500, "n_calib": 200, "profile_runs": 20,
              "replay_seconds": 40.0, "synthetic": {"subjects": 10, "seconds": 20, "bouts": 2}},
    "full": {"wrist": {"corpus_hop": None, "teacher_steps": 1500, "stage_a_steps": 300, "student": "small",
                       "distill_steps": 1500},
             "teacher": "cpu", "pretrain_steps": 500, "finetune_steps": 200, "student": "small",
             "distill_steps": 600, "max_train_windows": None, "n_calib": 500, "profile_runs": 50,
             "replay_seconds": 80.0, "synthetic": {"subjects": 12, "seconds": 25, "bouts": 2}},
}
DEPLOY_PROFILE_RUNS = 50


@dataclass
class DemoConfig:
    flow: str  # "deploy" or "train"
    out: Path
    root: Path | str | None  # a data root, a data set name / own folder (train), None: synthetic
    plan: dict  # the training flow's sizes (PLANS)
    mode: str = "full"  # "quick" or "full" (the training flow's sizes)
    model: str = DEFAULT_MODEL  # deploy: a zoo name or an int8 export folder
    seed: int = 0
    replay_seconds: float | None = None  # train: seconds of the recording streamed (None: the plan's)
    device: str = "auto"
    show: bool = True  # progress and the live view on stderr
    artifact: Path | None = None  # deploy: the int8 export folder `model` stands for
    entry: dict | None = None  # deploy: its zoo index entry (None: a folder of your own)


def data_root(args) -> str | None:
    """`--data` or $EDGEHAR_DATA (None: neither, or `--synthetic`)."""
    if args.synthetic:
        return None
    return args.data or os.environ.get("EDGEHAR_DATA") or None


def choose_flow(args) -> str:
    """`deploy` when nothing asks for training and the data root holds Bangle.js (the recording
    the shipped model is deployed on), else `train`."""
    if args.train or args.quick or args.synthetic:
        return "train"
    root = data_root(args)
    if root is None or not (Path(root) / "banglejs_wrist").is_dir():
        return "train"
    if args.data and str(args.data).split(":")[0] in REGISTRY:
        return "train"  # a data set's name, even when a folder of that name holds banglejs_wrist/
    return "deploy"


def resolve_data_root(args) -> Path | str | None:
    """Where the training flow's data comes from: None (the embedded synthetic data), a data root
    (the EDGEHAR_DATA layout: the wrist sets and banglejs_wrist/, or hapt/), or a data set name /
    a folder of your own recordings with an edgehar.json manifest (given as --data)."""
    root = data_root(args)
    if root is None:
        return None
    if (Path(root) / "hapt").is_dir() or not wrist_root_missing(Path(root)):
        return Path(root)
    if args.data and (str(args.data).split(":")[0] in REGISTRY or (Path(args.data) / "edgehar.json").is_file()):
        return check_data(args.data)
    missing = wrist_root_missing(Path(root))
    if len(missing) <= len(WRIST_SETS):  # a data root with part of the wrist flow's folders
        raise UserError(root, f"has no hapt/ and no {', '.join(m + '/' for m in missing)} (the wrist flow needs "
                              f"{', '.join(d + '/' for d in WRIST_SETS)} and banglejs_wrist/; the HAPT flow hapt/)")
    where = "--data" if args.data else "EDGEHAR_DATA"
    raise UserError(root, f"no hapt/ folder and no edgehar.json here ({where} takes a data root holding "
                          f"{', '.join(d + '/' for d in WRIST_SETS)} and banglejs_wrist/ or hapt/, a data set "
                          "name, or a folder of your own recordings with an edgehar.json manifest; leave it "
                          "unset for the embedded synthetic data)")


def make_config(args) -> DemoConfig:
    """The config of one `edgehar demo` run; a flag that does not fit the flow is one line."""
    flow = choose_flow(args)
    mode = "quick" if args.quick else "full"
    if flow == "deploy":
        if args.live_seconds is not None:
            raise UserError("--live-seconds", "applies to the training flow (--train): the shipped model is "
                                              "deployed on Bangle.js user 2's whole recording")
        model = args.model or DEFAULT_MODEL
        artifact, entry = shipped_model(model)
        return DemoConfig("deploy", Path(args.out), Path(data_root(args)), dict(PLANS[mode]), mode, model,
                          args.seed, None, args.device, not args.json, artifact, entry)
    if args.model is not None:
        raise UserError("--model", "deploys a shipped model (without --train, with $EDGEHAR_DATA or --data "
                                   "holding banglejs_wrist/); the training flow trains its own")
    return DemoConfig("train", Path(args.out), resolve_data_root(args), dict(PLANS[mode]), mode,
                      DEFAULT_MODEL, args.seed, args.live_seconds, args.device, not args.json)


def shipped_model(spec: str) -> tuple[Path, dict | None]:
    """(int8 export folder, zoo entry or None) of `--model`: a zoo name, its files checked against
    their sha256, or an export folder of your own; refused unless it is an int8 model of a watch's
    accelerometer (what the deploy streams)."""
    entry = zoo.entry(spec) if zoo.is_name(spec) else None
    if entry is None and spec == DEFAULT_MODEL and not os.path.exists(spec):
        raise UserError(spec, "is not in this installation's model zoo (edgehar models lists what is): "
                              "reinstall edgehar, or train the whole flow with --train")
    folder = zoo.resolve(spec, "artifact")
    tflite = folder / "model_int8.tflite"
    if not folder.is_dir() or not tflite.is_file():
        raise UserError(folder, "is not an int8 export folder (no model_int8.tflite): the demo deploys a "
                                "student's `edgehar export --int8` folder or a zoo name (edgehar models)")
    card = read_card(tflite)  # the card embedded in the bytes that run
    if (card.quantization or {}).get("dtype") != "int8":
        raise UserError(tflite, "is not a full-integer int8 model (its card has no int8 quantization)")
    if set(card.channels) != set(ACC):
        raise UserError(spec, f"takes {', '.join(card.channels)}; the demo streams a watch's accelerometer "
                              f"({', '.join(ACC)}): deploy a wrist student (edgehar models)")
    return folder, entry
