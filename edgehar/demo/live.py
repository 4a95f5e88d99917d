"""The demo's live step: a labelled recording streamed through the bridge into `live`, scored.

The virtual device runs in this process (`sim://RECORDING?speed=0`: as fast as the reader reads,
no pty, no pacing), so what `live` predicts depends only on the recording and the model, never
on the machine's load: the same bytes give the same figures everywhere. The session ends when
the replay has ended and every sample it sent has been read and predicted.

Agreement is scored with `edgehar.scoring` (the one scoring function): each window's top class
against the recording's label at the window's centre, over the windows whose centre label the
model knows; per class, the share of that class's windows predicted as it (recall).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from edgehar.bridge.live import LiveSession
from edgehar.scoring import class_matches, score

ROUND = 4  # decimals of the stored and printed figures


@dataclass
class Replay:
    """What the live step streams: a recording file (what the virtual device sends) and the same
    recording loaded with its labels (what the predictions are scored against)."""

    path: Path  # the recording file the device replays
    recording: object  # edgehar.data.Recording with labels, as `path` loads
    start: float = 0.0  # seconds into the recording
    seconds: float | None = None  # None: to its end
    note: str = ""  # what a reader is told about it
    name: str = ""  # how the figures name it ("banglejs_wrist user 2")

    @property
    def first_sample(self) -> int:
        return int(round(self.start * self.recording.rate))

    def url(self) -> str:
        """`sim://PATH?speed=0[&start=S][&seconds=S]`, PATH %-quoted (`sim://` reads it so)."""
        query = ["speed=0"] + ([f"start={self.start:g}"] if self.start else []) + (
            [f"seconds={self.seconds:g}"] if self.seconds is not None else [])
        return f"sim://{quote(os.path.abspath(self.path))}?{'&'.join(query)}"


@dataclass
class LiveRun:
    predictions: list  # edgehar.bridge.live.Prediction, in order
    labels: list[str]  # the model's classes
    rate: float  # the model's rate, window and hop
    window: int
    hop: int
    counts: dict  # the session's counters (reader, assembler, delay)
    seconds: float  # wall time of the session


def stream(model: str | os.PathLike, replay: Replay, on_prediction=None, on_session=None,
           timeout: float = 600.0) -> LiveRun:
    """Run `live` on the replay until the device has sent everything and every window of it is
    predicted. `on_session(session)` is called once the session is made (the port open, the
    model loaded), `on_prediction(p)` with each prediction as it is made."""
    session = LiveSession(replay.url(), str(model), smooth="ema:0.5", keep=True)
    if on_session:
        on_session(session)
    ended = []

    def idle():
        # the replay unplugs the device for good once sent: stop once the reader has read from it
        # and lost it, and nothing it read waits in the ring. Bytes read, not a sampled
        # `connected`: an in-process replay can be read whole between two idle calls.
        reader = session.reader
        if reader.counts["bytes"] and not reader.connected and not len(session.ring):
            ended.append(True)
            session.stop()

    t0 = time.perf_counter()
    session.run(timeout, on_prediction, idle)
    if not ended:
        raise RuntimeError(f"the replay of {replay.path} did not end within {timeout:g} s")
    card = session.card
    return LiveRun(list(session.predictions), list(card.labels), card.rate, card.window, card.hop,
                   session.counts(), time.perf_counter() - t0)


def window_truth(run: LiveRun, replay: Replay) -> list[int | None]:
    """The recording's class id at each predicted window's centre (None: unlabelled there).
    `start` counts model-rate samples from the replay's first sample."""
    rec = replay.recording
    if rec.labels is None:
        return [None] * len(run.predictions)
    last = len(rec.labels) - 1
    out = []
    for p in run.predictions:
        mid = replay.first_sample + int(round((p.start + run.window / 2) * rec.rate / run.rate))
        k = int(rec.labels[min(mid, last)])
        out.append(k if k >= 0 else None)
    return out


def scores(run: LiveRun, replay: Replay) -> dict:
    """{"agreement", "per_class": {class: {"agreement", "windows"}}, "n"}, unrounded: agreement
    of each window's top class with the label at its centre, over the windows whose centre label
    the model knows (`n`); per class, over that class's windows."""
    rec = replay.recording
    mapping = class_matches(rec.label_names, run.labels, rec.canonical_names) if rec.labels is not None else {}
    truth, pred = [], []
    for p, k in zip(run.predictions, window_truth(run, replay)):
        if k is not None and k in mapping:
            truth.append(run.labels[mapping[k]])
            pred.append(run.labels[p.label])
    if not truth:
        return {"agreement": None, "per_class": {}, "n": 0}
    r = score(truth, pred, order=sorted(set(truth)))
    rows = r["confusion"]
    per_class = {c: {"agreement": float(rows[i][i] / sum(rows[i])), "windows": int(sum(rows[i]))}
                 for i, c in enumerate(r["labels"])}
    return {"agreement": float(r["accuracy"]), "per_class": per_class, "n": len(truth)}


def rounded(figures: dict) -> dict:
    """The figures as stored and printed: agreement and per-class agreement to 4 decimals."""
    def r(v):
        return None if v is None else round(float(v), ROUND)

    return {"agreement": r(figures["agreement"]),
            "per_class": {c: r(v["agreement"]) for c, v in figures["per_class"].items()},
            "n": int(figures["n"])}


def measure(model: str | os.PathLike, replay: Replay, on_prediction=None, on_session=None) -> tuple[LiveRun, dict]:
    """(the run, its figures): `stream` then `scores`, rounded as stored and printed, with the
    recording's name. The demo's live step and `edgehar.demo_wrist.live_figures` both measure here."""
    run = stream(model, replay, on_prediction, on_session)
    return run, {"recording": replay.name, **rounded(scores(run, replay))}
