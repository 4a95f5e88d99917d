"""Recordings, loaders, windows, splits and normalisation: the first steps of the flow."""

from pathlib import Path

from edgehar.data.recording import UNLABELLED, Recording
from edgehar.data.windows import Windows, make_windows
from edgehar.errors import require_file


def load_recording(path, **kwargs) -> Recording:
    """Load one recording file, choosing the reader by its format.

    `.cwa`/`.cwa.gz` -> Axivity; `acc_expNN_userNN.txt` with a `time,acc_x,...` header ->
    Bangle.js; `acc_expNN_userNN.txt` of bare numbers -> one HAPT experiment (with its gyro
    file and labels); any other `.csv`/`.txt` -> generic CSV (`kwargs` go to `load_csv`).
    """
    path = Path(require_file(path, "recording"))
    # every import of an edgehar.data module runs this package: the readers (about 20 ms of
    # parser set-up) load only when a recording is read
    if path.name.endswith((".cwa", ".cwa.gz")):
        from edgehar.data.cwa import load_cwa  # deferred: start-up time, see above
        return load_cwa(path)
    first = path.open("rb").readline(200)
    if path.name.startswith("acc_exp") and first.startswith(b"time,acc_x"):
        from edgehar.data.banglejs import (  # deferred: start-up time, see above
            load_banglejs_file,
            read_class_names,
            read_label_table,
        )
        labels = path.parent / "labels.csv"
        if labels.exists() and (path.parent / "classnames.csv").exists():
            return load_banglejs_file(path, read_label_table(labels),
                                      read_class_names(path.parent))
        return load_banglejs_file(path)
    if path.name.startswith("acc_exp") and path.parent.name == "RawData":
        from edgehar.data import hapt  # deferred: start-up time, see above
        exp, user = (int(t[-2:]) for t in path.stem.split("_")[1:3])
        return hapt.load_experiment(path.parent.parent, exp, user)
    from edgehar.data.csvfile import load_csv  # deferred: start-up time, see above
    return load_csv(path, **kwargs)


__all__ = ["Recording", "UNLABELLED", "Windows", "make_windows", "load_recording"]
