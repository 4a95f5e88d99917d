"""The training flow's data: windows to train, choose and score on, and the recording the live
step streams. One loader per kind of root (see `edgehar.demo.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehar.data import hapt, synthetic
from edgehar.data.banglejs import load_banglejs
from edgehar.data.datasets import activity_windows, load_dataset, prepare, test_subjects
from edgehar.data.splits import validation_subjects
from edgehar.data.synthetic import write_banglejs
from edgehar.demo.config import ACC, HOP, WINDOW, DemoConfig
from edgehar.demo.live import Replay
from edgehar.demo.wrist import RATE, WRIST_SETS, bangle_replay, build_or_reuse_corpus, wrist_root_missing
from edgehar.demo.wrist import WINDOW as CORPUS_WINDOW
from edgehar.errors import UserError


@dataclass
class DemoData:
    source: str  # "wrist", "hapt", "synthetic", or the --data NAME|FOLDER
    description: str
    train: object  # Windows of the training subjects, less validation (wrist: None, the corpus holds them)
    validation: object  # Windows of subjects drawn from the training subjects: every choice
    test: object  # Windows of the test subjects: scored once, for the report
    test_subjects: list[int] | dict
    replay: Replay  # what the live step streams
    extra: dict = field(default_factory=dict)  # wrist flow: "corpus" folder and its "manifest"


def replay_seconds(cfg: DemoConfig) -> float:
    return cfg.replay_seconds if cfg.replay_seconds is not None else cfg.plan["replay_seconds"]


def written_replay(rec, folder: Path, cfg: DemoConfig, note: str, name: str) -> Replay:
    """A recording without a file the virtual device reads (resampled, selected, synthetic):
    written in the Bangle.js layout into the demo folder, streamed from there."""
    rec = rec.with_data(rec.data, subject=int(rec.subject))  # the layout numbers its files by subject
    path = write_banglejs(rec, folder)
    return Replay(path, rec, seconds=min(replay_seconds(cfg), rec.seconds), note=f"{path} ({note})", name=name)


def load_named_data(cfg: DemoConfig) -> DemoData:
    """A named data set or your own folder: its accelerometer at 50 Hz in g; test subjects are
    its official ones or a seeded 20 %; the live step replays a test subject's recording."""
    from edgehar.recipes import split_train_validation

    source, plan, seed = cfg.root, cfg.plan, cfg.seed
    recs = load_dataset(source)
    if missing := [c for c in ACC if c not in recs[0].channels]:
        raise UserError(source, f"has no {', '.join(missing)} channel (the demo's model reads {', '.join(ACC)})")
    subjects = sorted({int(r.subject) for r in recs})
    if len(subjects) < 3:
        raise UserError(source, f"needs recordings of at least 3 subjects (train, validation, test), has {len(subjects)}")
    tests = list(test_subjects(source)) or validation_subjects(subjects, 0.2, seed)
    w = activity_windows(source, rate=50.0, window=WINDOW, hop=HOP, channels=ACC, units=("g",) * 3)
    train, val, test = split_train_validation(w, tests, seed)
    if not len(train.labelled()) or not len(val.labelled()) or not len(test.labelled()):
        raise UserError(source, "needs labelled windows in the training, validation and test subjects")
    if plan["max_train_windows"] and len(train) > plan["max_train_windows"]:
        train = train.take(np.sort(np.random.default_rng(seed).choice(len(train), plan["max_train_windows"], replace=False)))
    held = next(r for r in recs if int(r.subject) in tests)
    rec = prepare([held], 50.0, ACC, ("g",) * 3)[0]
    replay = written_replay(rec, cfg.out / "replay", cfg, f"{held.source}, test subject {held.subject}",
                            f"{source} subject {held.subject}")
    return DemoData(source, f"{source}: accelerometer at 50 Hz in g, test subjects {tests}", train, val, test,
                    tests, replay)


def load_wrist_data(cfg: DemoConfig) -> DemoData:
    """The pooled wrist corpus (built into `out/corpus`) and Bangle.js user 2 to replay; the
    windows come with the teacher's classes (train/validation/test are filled in then)."""
    root = cfg.root
    corpus, manifest = build_or_reuse_corpus(root, cfg.out, cfg.plan["wrist"]["corpus_hop"])
    tests = {d: manifest["splits"][d]["test"] for d in WRIST_SETS}
    return DemoData("wrist", f"pooled wrist corpus {corpus} ({', '.join(WRIST_SETS)} from {root}; wrist and arm "
                    f"placements, accelerometer in g, {RATE:g} Hz, {CORPUS_WINDOW}-sample windows, hop "
                    f"{manifest['hop']}), each data set's test subjects held out", None, None, None, tests,
                    bangle_replay(root), extra={"corpus": corpus, "manifest": manifest})


def load_synthetic_data(cfg: DemoConfig) -> DemoData:
    from edgehar.recipes import split_train_validation

    c, seed = cfg.plan["synthetic"], cfg.seed
    recs = synthetic.synthetic_dataset(c["subjects"], "wrist", c["seconds"], c["bouts"], seed)
    w = synthetic.synthetic_windows(recs, ACC, WINDOW, HOP)
    train, val, test = split_train_validation(w, synthetic.TEST_SUBJECTS, seed)
    held = recs[synthetic.TEST_SUBJECTS[0] - 1].select(list(ACC))
    replay = written_replay(held, cfg.out / "replay", cfg,
                            f"held-out synthetic subject {held.subject}, Bangle.js layout",
                            f"synthetic subject {held.subject}")
    return DemoData("synthetic", f"embedded synthetic wrist recordings (edgehar.data.synthetic, seed {seed}): "
                    f"{c['subjects']} subjects x 6 activities, acc + gyro at 50 Hz",
                    train, val, test, list(synthetic.TEST_SUBJECTS), replay)


def load_hapt_data(cfg: DemoConfig) -> DemoData:
    from edgehar.recipes import split_train_validation

    root, plan, seed = cfg.root, cfg.plan, cfg.seed
    w = activity_windows("hapt", root / "hapt", rate=50.0, window=WINDOW, hop=HOP, channels=ACC)
    train, val, test = split_train_validation(w, hapt.TEST_SUBJECTS, seed)
    if plan["max_train_windows"] and len(train) > plan["max_train_windows"]:
        keep = np.random.default_rng(seed).choice(len(train), plan["max_train_windows"], replace=False)
        train = train.take(np.sort(keep))
    bangle = root / "banglejs_wrist"
    seconds = replay_seconds(cfg)
    if bangle.is_dir():
        rec = load_banglejs(bangle)[0]
        start = 870.0  # 32 s before its sitting -> walking change at 902 s
        replay = Replay(Path(rec.source), rec, start, min(seconds, rec.seconds - start),
                        f"{rec.source} from {start:g} s (real Bangle.js, left wrist: sitting, then walking)",
                        f"banglejs_wrist user {rec.subject} from {start:g} s")
    else:
        rec = hapt.load_hapt(root / "hapt")[0].select(list(ACC))
        replay = written_replay(rec, cfg.out / "replay", cfg,
                                f"{rec.source}: real HAPT, waist: no banglejs_wrist/ folder found",
                                f"hapt subject {rec.subject}")
    missing = wrist_root_missing(root)
    why = f" (not the wrist flow: no {', '.join(m + '/' for m in missing)} here)" if len(missing) < 4 else ""
    return DemoData("hapt", f"real HAPT recordings ({root / 'hapt'}), accelerometer channels, "
                    f"official test subjects held out{why}", train, val, test, list(hapt.TEST_SUBJECTS), replay)


def load_demo_data(cfg: DemoConfig) -> DemoData:
    root = cfg.root
    if isinstance(root, Path) and not wrist_root_missing(root):
        return load_wrist_data(cfg)
    if isinstance(root, str):
        return load_named_data(cfg)
    if root is None:
        return load_synthetic_data(cfg)
    return load_hapt_data(cfg)
