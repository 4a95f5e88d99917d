"""A pooled training corpus: windows of many data sets in memory-mapped shards.

`build_corpus` resamples every recording to one rate, converts acceleration to g (gyro to
rad/s), cuts windows, splits each data set subject-disjointly into train / validation / test
(HAPT keeps its official test subjects) and writes shards of at most `shard_windows` windows:
`NNNNN.x.npy` (N, T, C) float32 and `NNNNN.meta.npy` (a structured array of per-window
provenance), listed with their SHA-256 in `corpus.json`. A channel a data set lacks is zero in
`x` and False in the window's `present` mask. `stream` reads shards with `mmap_mode="r"`, one
rank's disjoint share at a time, so a corpus never needs to fit in memory.

Bangle.js never enters a corpus: it is the unseen-device test.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tokenize
from pathlib import Path
from typing import Iterator

import numpy as np

from edgehar.atomic import staged_folder, write_json
from edgehar.data.datasets import load_dataset, test_subjects
from edgehar.data.registry import is_folder_arg, lookup
from edgehar.data.resample import convert_units, resample
from edgehar.data.splits import validation_subjects
from edgehar.data.windows import make_windows
from edgehar.errors import UserError, first_line

FORMAT = "edgehar-corpus/1"
UNIT_OF = {"acc": "g", "gyro": "rad/s"}  # corpus unit by channel prefix
SPLITS = ("train", "validation", "test")


def meta_dtype(n_channels: int) -> np.dtype:
    return np.dtype([("dataset", "i2"), ("subject", "i8"), ("placement", "i2"), ("device", "i2"),
                     ("present", "?", (n_channels,)), ("canonical", "i4"), ("label", "i4"),
                     ("recording", "i4"), ("start", "i8")])


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _index(table: list, value) -> int:
    if value not in table:
        table.append(value)
    return table.index(value)


def split_of(subjects, official_test=(), seed: int = 0) -> dict[int, str]:
    """Subject -> split: the official test subjects when given, else a seeded 20 % (at least
    one subject when there are 3 or more); then 15 % of the rest for validation."""
    subjects = sorted(set(int(s) for s in subjects))
    test = [s for s in subjects if s in set(official_test)]
    if not official_test and len(subjects) >= 3:
        test = validation_subjects(subjects, 0.2, seed)
    rest = [s for s in subjects if s not in test]
    val = validation_subjects(rest, 0.15, seed + 1) if len(rest) >= 3 else []
    return {s: "test" if s in test else "validation" if s in val else "train" for s in subjects}


def corpus_channels(loaded: dict[str, list]) -> tuple[str, ...]:
    """Union of the data sets' channels (acc before gyro); a one-line error when some data set
    shares no channel with the others."""
    have = {name: set(recs[0].channels) for name, recs in loaded.items()}
    names = list(have)
    for n in names:
        others = set().union(*(have[m] for m in names if m != n)) if len(names) > 1 else have[n]
        if not have[n] & others:
            raise UserError(n, f"shares no channel with the rest of the corpus ({', '.join(sorted(have[n]))} "
                               f"vs {', '.join(sorted(others))}): rename its channels (acc_x, acc_y, acc_z)")
    union = sorted(set().union(*have.values()))
    return tuple(sorted(union, key=lambda c: (not c.startswith("acc"), c)))


def _units(channels) -> tuple[str, ...]:
    out = []
    for c in channels:
        prefix = c.split("_")[0]
        if prefix not in UNIT_OF:
            raise UserError(c, "corpus channels must be acc_* or gyro_* (their units are converted)")
        out.append(UNIT_OF[prefix])
    return tuple(out)


def build_corpus(data: list[str], rate: float, window: int, out: str | Path, hop: int | None = None,
                 shard_windows: int = 16384, purity: float = 0.8, seed: int = 0,
                 root: str | Path | None = None, log=None) -> dict:
    """Write the corpus of `data` (names or own-data folders) to `out`; returns its manifest.
    Named data sets are read from `root/<their folder>` (default: $EDGEHAR_DATA)."""
    hop = hop or window // 2
    t0 = time.perf_counter()
    for name in data:
        if not is_folder_arg(name) and not lookup(name)[0].training:
            raise UserError(name, "never enters a training corpus: it is the unseen-device test set")
    if len(set(data)) != len(data):
        raise UserError(",".join(data), "a data set is named twice")
    def folder(name):  # `root` holds the data set folders, like $EDGEHAR_DATA
        return None if root is None or is_folder_arg(name) else Path(root) / lookup(name)[0].folder

    loaded = {name: load_dataset(name, folder(name)) for name in data}
    channels = corpus_channels(loaded)
    units = _units(channels)
    tables = {"datasets": list(data), "placements": [], "devices": [], "canonical": [], "labels": []}
    dt = meta_dtype(len(channels))
    shards, counts, splits = [], {}, {}
    with staged_folder(out, overwrite=False) as tmp:
        for d_i, (name, recs) in enumerate(loaded.items()):
            have = [c for c in channels if c in recs[0].channels]
            try:
                prepared = [convert_units(resample(r.select(have), rate),
                                          [units[channels.index(c)] for c in have]) for r in recs]
            except ValueError as e:  # e.g. an acc channel in rad/s
                raise UserError(name, str(e)) from None
            w = make_windows(prepared, window, hop, purity)
            keep = None if is_folder_arg(name) else lookup(name)[0].classes
            y = np.where(w.y < (keep or 1 << 30), w.y, -1)
            recs_of = np.asarray(w.recording)
            plc = np.array([_index(tables["placements"], r.placement or "unknown") for r in recs], np.int16)
            dev = np.array([_index(tables["devices"], r.device or "unknown") for r in recs], np.int16)
            canon = recs[0].canonical_names or recs[0].label_names
            lab_ids = np.array([_index(tables["labels"], f"{name}/{n}") for n in recs[0].label_names] + [-1], np.int32)
            can_ids = np.array([_index(tables["canonical"], c) for c in canon] + [-1], np.int32)
            subject_split = split_of(w.subject, test_subjects(name), seed)
            splits[name] = {s: sorted(k for k, v in subject_split.items() if v == s) for s in SPLITS}
            split = np.array([subject_split[int(s)] for s in w.subject])
            meta = np.zeros(len(w), dt)
            meta["dataset"], meta["subject"] = d_i, w.subject
            meta["placement"], meta["device"] = plc[recs_of], dev[recs_of]
            meta["present"] = np.isin(channels, have)[None, :]
            meta["label"], meta["canonical"] = lab_ids[y], can_ids[y]
            meta["recording"], meta["start"] = recs_of, w.start
            idx = [channels.index(c) for c in have]
            counts[name] = _counts(meta, tables, split)
            for s in SPLITS:
                rows = np.flatnonzero(split == s)
                for lo in range(0, len(rows), shard_windows):
                    part = rows[lo:lo + shard_windows]
                    stem = f"{len(shards):05d}"
                    x = np.lib.format.open_memmap(tmp / f"{stem}.x.npy", "w+", np.float32,
                                                  (len(part), window, len(channels)))
                    x[...] = 0.0
                    x[:, :, idx] = w.x[part]
                    x.flush()
                    del x
                    np.save(tmp / f"{stem}.meta.npy", meta[part])
                    shards.append({"x": f"{stem}.x.npy", "meta": f"{stem}.meta.npy", "split": s,
                                   "dataset": name, "windows": int(len(part))})
            if log:
                log(f"{name}: {len(w)} windows in {len(recs)} recordings ({time.perf_counter() - t0:.1f} s)")
            del w, prepared, loaded[name][:]
        for sh in shards:
            sh["sha256"] = {k: _sha256(tmp / sh[k]) for k in ("x", "meta")}
        manifest = {"format": FORMAT, "rate": float(rate), "window": int(window), "hop": int(hop),
                    "purity": purity, "seed": seed, "channels": list(channels), "units": list(units),
                    **tables, "splits": splits, "counts": counts, "shards": shards,
                    "windows": int(sum(s["windows"] for s in shards)),
                    "bytes": int(sum((tmp / s[k]).stat().st_size for s in shards for k in ("x", "meta"))),
                    "build_seconds": round(time.perf_counter() - t0, 2)}
        write_json(tmp / "corpus.json", manifest)
    return manifest


def _counts(meta, tables, split) -> dict:
    """Windows of one data set per split and per original class (and unlabelled)."""
    out = {"windows": int(len(meta)), "per_split": {s: int((split == s).sum()) for s in SPLITS},
           "per_class": {}}
    for k in np.unique(meta["label"]):
        name = tables["labels"][k].split("/", 1)[1] if k >= 0 else "(unlabelled)"
        out["per_class"][name] = int((meta["label"] == k).sum())
    return out


# Shards whose hash matched in this process, by (path, size, mtime, inode): every reader
# (`read_manifest`, `stream`, once per split) checks, and a shard is hashed once.
_VERIFIED: set[tuple] = set()
_UNVERIFIED_FOLDERS: set[Path] = set()  # `skip_verification`: --no-verify
_MANIFEST_KEYS = {"format": str, "rate": (int, float), "window": int, "hop": int, "channels": list,
                  "units": list, "datasets": list, "placements": list, "devices": list,
                  "canonical": list, "labels": list, "shards": list}
_SHARD_KEYS = {"x": str, "meta": str, "split": str, "dataset": str, "windows": int, "sha256": dict}


def skip_verification(folder: str | Path) -> None:
    """Read the shards of `folder` without checking their SHA-256 in this process (the
    `--no-verify` flag of the commands that train on a corpus)."""
    _UNVERIFIED_FOLDERS.add(Path(folder).resolve())


def _identity(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _check_manifest(path: Path, m) -> None:
    """The keys every reader of corpus.json relies on, with their JSON types."""
    def bad(what: str):
        return UserError(path, f"{what}: not a corpus.json that `edgehar data corpus build` wrote "
                               "(rebuild the corpus)")
    if not isinstance(m, dict):
        raise bad("not a JSON object")
    if m.get("format") != FORMAT:
        raise UserError(path, f"unknown corpus format {m.get('format')!r} (expected {FORMAT!r})")
    for key, kind in _MANIFEST_KEYS.items():
        if key not in m:
            raise bad(f"no {key!r}")
        if isinstance(m[key], bool) or not isinstance(m[key], kind):
            raise bad(f"{key!r} is {type(m[key]).__name__}")
    if not m["channels"] or m["window"] < 1 or not m["rate"] > 0:
        raise bad("no channels, or a window or rate <= 0")
    for i, sh in enumerate(m["shards"]):
        if not isinstance(sh, dict):
            raise bad(f"shards[{i}] is no object")
        for key, kind in _SHARD_KEYS.items():
            if key not in sh or isinstance(sh[key], bool) or not isinstance(sh[key], kind):
                raise bad(f"shards[{i}].{key} missing or of the wrong type")
        for key in ("x", "meta"):
            if Path(sh[key]).name != sh[key] or sh[key] in ("", ".", ".."):
                raise bad(f"shards[{i}].{key} {sh[key]!r} is not a file name in the corpus folder")
            if not isinstance(sh["sha256"].get(key), str):
                raise bad(f"shards[{i}].sha256.{key} missing")


def is_corpus(path) -> bool:
    """Whether `path` (a --data argument) is a corpus folder (`build_corpus`'s output)."""
    return bool(path) and (Path(path) / "corpus.json").is_file()


def read_manifest(folder: str | Path, verify: bool = True) -> dict:
    """The corpus manifest, checked: its keys, and (`verify`, the default) every shard's
    SHA-256 against the one recorded at build time, so a truncated, damaged or edited shard
    is a `UserError` naming it before anything trains on it. Hashing runs at disk speed and
    once per shard and process; `skip_verification` (--no-verify) turns it off."""
    folder = Path(folder)
    path = folder / "corpus.json"
    if not path.is_file():
        raise UserError(folder, "no corpus.json: not a corpus folder (edgehar data corpus build)")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(path, f"line {e.lineno}: not valid JSON ({e.msg}): a damaged or cut "
                              "corpus.json; rebuild the corpus") from None
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(path, f"cannot be read ({e})") from None
    _check_manifest(path, m)
    if verify and folder.resolve() not in _UNVERIFIED_FOLDERS:
        for sh in m["shards"]:
            for k in ("x", "meta"):
                shard = folder / sh[k]
                if not shard.is_file():
                    raise UserError(shard, "no such shard (corpus.json lists it): the corpus is "
                                           "incomplete; rebuild it")
                key = _identity(shard)
                if key in _VERIFIED:
                    continue
                if _sha256(shard) != sh["sha256"][k]:
                    raise UserError(shard, "content differs from its SHA-256 in corpus.json (a "
                                           "truncated, damaged or edited shard): rebuild the corpus, "
                                           "or pass --no-verify to read it anyway")
                _VERIFIED.add(key)
    return m


def check_corpus(folder: str | Path, verify: bool = True) -> dict:
    """What a command that trains on a corpus runs first, before any other work: the manifest
    and every shard's hash checked, or (`verify=False`, --no-verify) the folder marked to be
    read unchecked for the rest of the process."""
    if not verify:
        skip_verification(folder)
    return read_manifest(folder, verify)


def open_shard(folder: Path, manifest: dict, sh: dict) -> tuple[np.ndarray, np.ndarray]:
    """(x, meta) of one shard as read-only memory maps, their shapes and types checked (what a
    corrupt header or a cut file would break); a problem is a `UserError` naming the file."""
    n_ch = len(manifest["channels"])
    arrays = []
    for key in ("x", "meta"):
        path = folder / sh[key]
        try:
            arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
        except FileNotFoundError:
            raise UserError(path, "no such shard (corpus.json lists it): rebuild the corpus") from None
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as e:
            # numpy reads the header with tokenize and literal_eval: a cut one raises TokenError
            raise UserError(path, f"not a readable .npy array ({first_line(e)}): a damaged shard; "
                                  "rebuild the corpus") from None
    x, meta = arrays
    if x.dtype != np.float32 or x.shape[1:] != (manifest["window"], n_ch):
        raise UserError(folder / sh["x"], f"holds {x.dtype} {x.shape}, corpus.json says float32 "
                                          f"(N, {manifest['window']}, {n_ch}): rebuild the corpus")
    if meta.dtype != meta_dtype(n_ch) or len(meta) != len(x) or len(x) != sh["windows"]:
        raise UserError(folder / sh["meta"], f"{len(meta)} provenance rows of type {meta.dtype} for "
                                             f"{len(x)} windows ({sh['windows']} in corpus.json): "
                                             "rebuild the corpus")
    return x, meta


def shards_for(manifest: dict, split: str | None = None, rank: int = 0, world: int = 1) -> list[dict]:
    """This rank's shards of `split`: every world-th one, so ranks read disjoint shards."""
    chosen = [s for s in manifest["shards"] if split is None or s["split"] == split]
    return chosen[rank::world]


def stream(folder: str | Path, split: str | None = "train", rank: int | None = None,
           world: int | None = None, batch: int = 256,
           verify: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, meta) batches of a corpus split, read through memory maps; `rank`/`world` default to
    torch.distributed's (or RANK / WORLD_SIZE), so torchrun ranks read disjoint shards.
    `verify`: check the shards' hashes first (`read_manifest`)."""
    if rank is None or world is None:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    folder = Path(folder)
    m = read_manifest(folder, verify)
    for sh in shards_for(m, split, rank, world):
        x, meta = open_shard(folder, m, sh)
        for lo in range(0, len(x), batch):
            yield np.asarray(x[lo:lo + batch]), np.asarray(meta[lo:lo + batch])


def corpus_dataset(folder: str | Path, split: str = "train"):
    """A torch IterableDataset of (x, canonical label) windows; DataLoader workers and torchrun
    ranks each take a disjoint share of the shards."""
    import torch

    class CorpusDataset(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            rank = int(torch.distributed.get_rank()) if torch.distributed.is_initialized() else 0
            world = int(torch.distributed.get_world_size()) if torch.distributed.is_initialized() else 1
            workers, wid = (info.num_workers, info.id) if info else (1, 0)
            for x, meta in stream(folder, split, rank * workers + wid, world * workers):
                for xi, mi in zip(x, meta):
                    yield torch.from_numpy(xi.copy()), int(mi["canonical"])

    return CorpusDataset()
