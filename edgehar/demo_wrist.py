"""The wrist deployment's live figure: Bangle.js user 2's whole recording through the bridge into
`live`, scored against its labels. The zoo build stores it in a wrist student's card
(`figures["live"]`) and `edgehar demo` prints it, both through `live_figures`'s code, so the
figure a user reads is the one the card holds, to the digit, on any machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgehar.demo.live import measure
from edgehar.demo.wrist import bangle_replay


def live_figures(artifact_dir: str | os.PathLike, data_root: str | os.PathLike) -> dict:
    """{"recording": "banglejs_wrist user 2", "agreement": float, "per_class": {class: float},
    "n": int} of the int8 export folder's model_int8.tflite on `data_root`/banglejs_wrist/.

    `agreement`: the share of windows whose top class is the recording's label at the window's
    centre, over the `n` windows whose centre label the model knows; `per_class`: that share over
    each labelled class's windows (its recall). Rounded to 4 decimals. Streamed as the demo streams
    it: the virtual device in process (`sim://...?speed=0`), the live session's own windowing,
    resampling and int8 inference (`edgehar.demo.live.measure`)."""
    _, figures = measure(Path(artifact_dir) / "model_int8.tflite", bangle_replay(Path(data_root)))
    return figures
