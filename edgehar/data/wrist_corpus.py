"""The wrist windows of a pooled corpus, split by split: the accelerometer channels of the
wrist placements, with per-window provenance (source data set, subject, canonical and original
label). What the corpus teacher, the wrist students, their export and the benchmarks read.

The corpus is read through `edgehar.data.corpus.stream` (memory maps). Only accelerometer
channels are used (a watch has no gyroscope to count on); `placements` restricts the sources
(DSADS: the arm units, nearest a watch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgehar.data.corpus import meta_dtype, read_manifest, stream
from edgehar.data.windows import Windows
from edgehar.errors import UserError

WRIST_PLACEMENTS = ("dominant wrist", "wrist", "left wrist", "right wrist", "right arm", "left arm")
ACC = ("acc_x", "acc_y", "acc_z")


@dataclass
class CorpusPart:
    """The accelerometer windows of one split, with per-window provenance."""

    x: np.ndarray  # (N, T, 3) in g
    source: np.ndarray  # index into `sources`
    canonical: np.ndarray  # index into `canonical_names`, -1 unlabelled
    source_label: np.ndarray  # index into the source data set's own labels, -1 unlabelled
    subject: np.ndarray
    dataset: np.ndarray  # index into manifest["datasets"]
    manifest: dict = field(repr=False, default_factory=dict)
    sources: list[str] = field(default_factory=list)  # data set names, one stem each

    def windows(self, canonical_names: list[str], labelled_only: bool = False) -> Windows:
        m = self.manifest
        keep = self.canonical >= 0 if labelled_only else np.ones(len(self.x), bool)
        subject = self.dataset.astype(np.int64) * 100_000 + self.subject  # unique across data sets
        return Windows(x=self.x[keep], y=self.canonical[keep].astype(np.int64), subject=subject[keep],
                       rate=float(m["rate"]), channels=ACC, units=("g",) * 3,
                       label_names=tuple(canonical_names), hop=int(m["hop"]))

    def take(self, mask) -> "CorpusPart":
        return CorpusPart(self.x[mask], self.source[mask], self.canonical[mask], self.source_label[mask],
                          self.subject[mask], self.dataset[mask], self.manifest, self.sources)


def load_part(folder, split: str, placements=WRIST_PLACEMENTS, datasets=None) -> CorpusPart:
    """The acc windows of corpus `split` from the given placements (and data sets)."""
    m = read_manifest(folder)
    missing = [c for c in ACC if c not in m["channels"]]
    if missing:
        raise UserError(folder, f"corpus has no {', '.join(missing)}: wrist training needs acc_x, acc_y, acc_z")
    acc = [m["channels"].index(c) for c in ACC]
    keep_plc = [i for i, p in enumerate(m["placements"]) if p in placements]
    names = list(datasets or m["datasets"])
    keep_ds = [m["datasets"].index(d) for d in names if d in m["datasets"]]
    xs, metas = [], []
    for x, meta in stream(folder, split, rank=0, world=1, batch=8192):
        sel = np.isin(meta["placement"], keep_plc) & np.isin(meta["dataset"], keep_ds) & meta["present"][:, acc[0]]
        xs.append(x[sel][:, :, acc])
        metas.append(meta[sel])
    meta = np.concatenate(metas) if metas else np.zeros(0, dtype=meta_dtype(len(m["channels"])))  # an empty split
    x = np.concatenate(xs) if xs else np.zeros((0, m["window"], 3), np.float32)
    label_names = m["labels"]
    local = np.full(len(meta), -1, np.int64)
    for d in np.unique(meta["dataset"]):
        own = [i for i, n in enumerate(label_names) if n.startswith(m["datasets"][d] + "/")]
        rows = meta["dataset"] == d
        lab = meta["label"][rows]
        local[rows] = np.where(lab >= 0, np.searchsorted(own, lab), -1)
    source = np.array([names.index(m["datasets"][d]) for d in meta["dataset"]], np.int64)
    return CorpusPart(x.astype(np.float32), source, meta["canonical"].astype(np.int64), local,
                      meta["subject"].astype(np.int64), meta["dataset"].astype(np.int64), m, names)


def train_part(folder, datasets=None) -> CorpusPart:
    """`load_part` of the train split, refused in one line when it holds no wrist window (a
    corpus of other placements, or of own data whose manifest names none)."""
    train = load_part(folder, "train", datasets=datasets)
    if not len(train.x):
        have = ", ".join(train.manifest["placements"]) or "none"
        raise UserError(folder, f"no accelerometer windows from a wrist placement in the train split "
                                f"(its placements: {have}; wrist ones: {', '.join(WRIST_PLACEMENTS)}): "
                                "an own-data folder names its placement in edgehar.json, "
                                "e.g. \"placement\": \"wrist\"")
    return train


def train_windows(folder, datasets=None, labels=None) -> Windows:
    """The wrist acc windows of the corpus's train split, unlabelled ones included (what any
    teacher family pre-trains on), labelled with the canonical classes the split has, or with
    `labels` (a teacher card's; other classes unlabelled)."""
    part = train_part(folder, datasets)
    if labels is None:
        labels, remap = canonical_classes(part)
        return relabel(part, remap).windows(labels)
    return relabel_to(part, list(labels)).windows(list(labels))


def relabel(part: CorpusPart, remap: np.ndarray) -> CorpusPart:
    out = part.take(np.ones(len(part.x), bool))
    out.canonical = np.where(part.canonical >= 0, remap[part.canonical], -1)
    return out


def relabel_to(part: CorpusPart, labels: list[str]) -> CorpusPart:
    """Canonical labels re-indexed into `labels` (a card's classes); other classes -> -1."""
    names = part.manifest["canonical"]
    remap = np.array([labels.index(n) if n in labels else -1 for n in names] + [-1], np.int64)
    return relabel(part, remap)


def canonical_classes(train: CorpusPart) -> tuple[list[str], np.ndarray]:
    """(names, remap) of the canonical classes the training split labels (remap: corpus index ->
    class index, -1 for none)."""
    m = train.manifest
    present = sorted(int(c) for c in np.unique(train.canonical) if c >= 0)
    remap = np.full(len(m["canonical"]) + 1, -1, np.int64)
    remap[present] = np.arange(len(present))
    return [m["canonical"][c] for c in present], remap


def original_names(part: CorpusPart) -> dict[str, list[str]]:
    """{canonical class: its source data sets' own names for it that differ} over `part`
    (e.g. "running": ["jogging", "running on a treadmill"]): more text for text-aligned teachers.
    `part` as `load_part` returns it (canonical ids of the corpus, not relabelled)."""
    m = part.manifest
    out: dict[str, set] = {}
    for d, name in enumerate(part.sources):
        own = [n.split("/", 1)[1] for n in m["labels"] if n.startswith(name + "/")]
        rows = (part.source == d) & (part.source_label >= 0) & (part.canonical >= 0)
        for local, canon in set(zip(part.source_label[rows].tolist(), part.canonical[rows].tolist())):
            canonical = m["canonical"][canon]
            if own[local].lower().replace("_", " ") != canonical:
                out.setdefault(canonical, set()).add(own[local].lower().replace("_", " "))
    return {k: sorted(v) for k, v in sorted(out.items())}


def check_teacher_fits_corpus(card, manifest: dict, where) -> None:
    """A teacher and a corpus must agree on rate, window and channels: one line if not."""
    if abs(float(card.rate) - float(manifest["rate"])) > 1e-6:
        raise UserError(where, f"corpus is at {manifest['rate']:g} Hz but the teacher takes {card.rate:g} Hz")
    if int(card.window) != int(manifest["window"]):
        raise UserError(where, f"corpus windows are {manifest['window']} samples but the teacher takes {card.window}")
    missing = [c for c in card.channels if c not in manifest["channels"]]
    if missing:
        raise UserError(where, f"corpus has no {', '.join(missing)} (the teacher takes {', '.join(card.channels)})")
