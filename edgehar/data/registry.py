"""The one table of named data sets: name -> folder under EDGEHAR_DATA, loader, label map onto
the activity vocabulary, default placement and device. Every command reads it.

A name may carry an option after a colon, e.g. `dsads:left_arm` (one DSADS unit). Anything
that is not a registered name is a folder of your own CSV recordings (`owndata.py`).
"""

from __future__ import annotations

import argparse
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgehar.errors import UserError


@dataclass(frozen=True)
class DataSet:
    name: str
    folder: str  # sub-folder of EDGEHAR_DATA
    loader: str  # "module:function", called as f(path) or f(path, option)
    placement: str  # where the sensor sits, unless the loader says per recording
    device: str
    labels: dict[str, str] = field(default_factory=dict)  # own class name -> canonical name
    options: tuple[str, ...] = ()  # what `name:option` may select (the loader's 2nd argument)
    test_subjects: tuple[int, ...] = ()  # an official test split, if the data set has one
    classes: int | None = None  # only the first N classes are activities (others: unlabelled)
    training: bool = True  # False: never enters a training corpus
    about: str = ""

    def load(self, path: Path, option: str | None = None):
        module, func = self.loader.split(":")
        fn = getattr(importlib.import_module(module), func)
        return fn(path, option) if self.options else fn(path)


_STAIRS = {"walking_upstairs": "stairs up", "walking_downstairs": "stairs down"}
REGISTRY: dict[str, DataSet] = {d.name: d for d in (
    DataSet("hapt", "hapt", "edgehar.data.hapt:load_hapt", "waist", "Samsung Galaxy S II",
            {"walking": "walking", **_STAIRS, "sitting": "sitting", "standing": "standing",
             "laying": "lying", "stand_to_sit": "sitting down", "sit_to_stand": "standing up",
             "sit_to_lie": "lying down", "lie_to_sit": "getting up", "stand_to_lie": "lying down",
             "lie_to_stand": "getting up"},
            test_subjects=(2, 4, 9, 10, 12, 13, 18, 20, 24), classes=6,
            about="UCI HAPT, phone on the waist, 30 subjects, acc + gyro 50 Hz"),
    DataSet("banglejs", "banglejs_wrist", "edgehar.data.banglejs:load_banglejs", "left wrist",
            "Bangle.js", {"running": "running", "walking": "walking", "sitting": "sitting",
                          "lying": "lying"},
            training=False, about="Bangle.js watch, 2 users: the unseen-device test, never trained on"),
    DataSet("axivity", "axivity_wrist", "edgehar.data.cwa:load_cwa_folder", "wrist",
            "Axivity AX3/AX6", about="Axivity .cwa wrist logger, unlabelled"),
    DataSet("wisdm_watch", "wisdm_watch", "edgehar.data.wisdm:load_wisdm", "dominant wrist",
            "LG G Watch", {"walking": "walking", "jogging": "running", "stairs": "stairs",
                           "sitting": "sitting", "standing": "standing"},
            about="WISDM 2019 watch accelerometer, 51 subjects, 20 Hz"),
    DataSet("dsads", "dsads", "edgehar.data.dsads:load_dsads", "", "Xsens MTx",
            {"sitting": "sitting", "standing": "standing", "lying on back": "lying",
             "lying on right side": "lying", "ascending stairs": "stairs up",
             "descending stairs": "stairs down", "standing in an elevator": "standing",
             "walking in a parking lot": "walking", "walking on a treadmill flat": "walking",
             "walking on a treadmill inclined": "walking", "running on a treadmill": "running",
             "cycling on a horizontal exercise bike": "cycling",
             "cycling on a vertical exercise bike": "cycling", "rowing": "rowing",
             "jumping": "jumping"},
            options=("torso", "right_arm", "left_arm", "right_leg", "left_leg"),
            about="UCI Daily and Sports Activities, 5 units (placement = unit), 8 subjects, 25 Hz"),
    DataSet("geotec_watch", "geotec_watch", "edgehar.data.geotec:load_geotec", "wrist",
            "smartwatch", {"SEATED": "sitting", "STANDING_UP": "standing up",
                           "WALKING": "walking", "TURNING": "turning",
                           "SITTING_DOWN": "sitting down"},
            about="GeoTec smartwatch, 23 subjects, timed-up-and-go, resampled to 100 Hz"),
)}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def is_folder_arg(arg: str) -> bool:
    """Whether a --data value names a folder of your own data rather than a data set."""
    base = str(arg).split(":")[0]
    return base not in REGISTRY and (os.sep in str(arg) or Path(arg).exists() or arg.startswith("."))


def lookup(arg: str) -> tuple[DataSet, str | None]:
    """(data set, option) of a `name` or `name:option`; a one-line error when unknown."""
    name, _, option = str(arg).partition(":")
    if name not in REGISTRY:
        raise UserError(arg, f"unknown data set (known: {', '.join(REGISTRY)}; or a folder of "
                             "CSV recordings with an edgehar.json manifest)")
    ds = REGISTRY[name]
    if option and option not in ds.options:
        known = f"known: {', '.join(ds.options)}" if ds.options else "it takes none"
        raise UserError(arg, f"unknown option {option!r} for {name} ({known})")
    return ds, option or None


def folder_of(ds: DataSet, root: str | Path | None = None) -> Path:
    """Folder of a data set: `root` if given, else `$EDGEHAR_DATA/<folder>`."""
    if root is not None:
        return Path(root)
    env = os.environ.get("EDGEHAR_DATA")
    if not env:
        raise UserError(ds.name, "no --root given and EDGEHAR_DATA is unset")
    return Path(env) / ds.folder


def check_data(text: str) -> str:
    """`text` if it is a registered name (`name[:option]`) or an existing folder, else a
    one-line `UserError`."""
    if is_folder_arg(text):
        if not Path(text).is_dir():
            raise UserError(text, f"no such folder (and not a data set: {', '.join(REGISTRY)})")
        return text
    lookup(text)
    return text


def data_arg(text: str) -> str:
    """argparse `type=` for --data, the one parse-time check every command uses."""
    try:
        return check_data(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(e.message) from None


DATA_HELP = ("data set: a name (hapt, banglejs, axivity, wisdm_watch, dsads[:UNIT], geotec_watch) "
             "or a folder of your own CSV recordings with an edgehar.json manifest")
