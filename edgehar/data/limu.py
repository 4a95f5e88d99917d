"""LIMU-BERT's published preprocessing of UCI HAPT: 2088 windows of 120 samples at 20 Hz.

Rebuilt from the HAPT raw files exactly as LIMU-BERT's `dataset/uci.py` does it (Xu et al.,
SenSys 2021), so the published LIMU-BERT weights see the input they were trained on:

- experiments are walked in file-name order (`acc_expXX_userYY.txt`, i.e. by experiment),
  and within one experiment the labelled segments in `labels.txt` order;
- every segment of activities 1-6 is averaged down from 50 to 20 Hz over alternating blocks
  of 2 and 3 raw samples (2.5 on average), starting at the *1-based* start row used as a
  0-based index (as the original does) and stopping while a full 3-sample block still ends
  before the segment's end row;
- a segment yields windows only if it has more than 120 downsampled samples; it is cut into
  consecutive non-overlapping windows of 120 samples (the rest dropped);
- acc is converted from g to m/s^2 (x 9.80665), gyro stays in rad/s.

Labels are 0-based activity ids; `subject` is the HAPT user id (the reference file stores
user - 1); `recording` indexes `hapt.load_hapt(root)` and `start` is the raw 50 Hz row of each
window's first sample (a window spans 300 raw rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehar.data import hapt
from edgehar.data.resample import G
from edgehar.data.windows import Windows
from edgehar.errors import UserError, require_file

RATE = 20.0
WINDOW = 120
RAW_RATE = 50.0
CHANNELS = hapt.CHANNELS
UNITS = ("m/s^2", "m/s^2", "m/s^2", "rad/s", "rad/s", "rad/s")
LABEL_NAMES = ("walking", "upstairs", "downstairs", "sitting", "standing", "lying")
RAW_PER_WINDOW = int(WINDOW * RAW_RATE / RATE)  # 300 raw rows per window
CLASS_COUNTS = (355, 318, 254, 362, 398, 401)  # the published 2088 windows per class


def block_average(data: np.ndarray, start: int, end: int, ratio: float = RAW_RATE / RATE) -> np.ndarray:
    """Average `data[start:end]` down by a non-integer `ratio` (LIMU-BERT's `down_sample`).

    Blocks are floor(ratio) samples long, one sample longer whenever the accumulated fractional
    part reaches 1 (ratio 2.5 -> 2, 3, 2, 3, ...). A block is taken only while
    `i + floor(ratio) + 1 < end`, so the last few samples of a segment may be dropped.
    """
    base = int(ratio)
    frac = ratio - base
    out = []
    if frac == 0:  # integer ratio: plain blocks
        for i in range(start, end - base, base):
            out.append(data[i:i + base].mean(0))
        return np.array(out).reshape(-1, data.shape[1])
    remainder, i = 0.0, start
    while start <= i + base + 1 < end:
        remainder += frac
        size = base
        if remainder >= 1:
            remainder -= 1
            size = base + 1
        out.append(data[i:i + size].mean(0))
        i += size
    return np.array(out).reshape(-1, data.shape[1])


def limu_uci_windows(hapt_root: str | Path) -> Windows:
    """The 2088 LIMU-BERT UCI windows (120 x 6 at 20 Hz, acc m/s^2, gyro rad/s) from HAPT raw."""
    root = Path(hapt_root)
    segments = hapt.read_segments(root)
    recordings = hapt.load_hapt(root)  # sorted by experiment = file-name order
    xs, ys, subjects, rec_idx, starts = [], [], [], [], []
    for r_i, rec in enumerate(recordings):
        exp = rec.meta["experiment"]
        raw = rec.data.astype(np.float64)
        raw[:, :3] *= G
        for _, _, act, start, end in segments[(segments[:, 0] == exp) & (segments[:, 1] == rec.subject)]:
            if act > hapt.ACTIVITIES:
                continue  # postural transitions are not LIMU-BERT classes
            down = block_average(raw, int(start), int(end))
            if len(down) <= WINDOW:  # the original keeps segments strictly longer than a window
                continue
            n = len(down) // WINDOW
            xs.append(down[:n * WINDOW].reshape(n, WINDOW, down.shape[1]))
            ys.append(np.full(n, act - 1, dtype=np.int64))
            subjects.append(np.full(n, rec.subject, dtype=np.int64))
            rec_idx.append(np.full(n, r_i, dtype=np.int64))
            # start = raw 50 Hz row of the window's first sample: 120 blocks span 300 rows
            starts.append(int(start) + np.arange(n, dtype=np.int64) * RAW_PER_WINDOW)
    if not xs:
        raise UserError(root, "no HAPT activity segment is long enough for a 120-sample window")
    return Windows(x=np.concatenate(xs).astype(np.float32), y=np.concatenate(ys),
                   subject=np.concatenate(subjects), rate=RATE, channels=tuple(CHANNELS),
                   units=UNITS, label_names=LABEL_NAMES, hop=WINDOW,
                   recording=np.concatenate(rec_idx), start=np.concatenate(starts))


def reference_labels(limu_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(activity 0-based, user id) per window from LIMU-BERT's `uci_label_20_120.npy`."""
    path = Path(require_file(Path(limu_dir) / "uci_label_20_120.npy", "LIMU-BERT UCI label file"))
    labels = np.load(path)
    if labels.ndim != 3 or labels.shape[1:] != (WINDOW, 2):
        raise UserError(path, f"expected shape (N, {WINDOW}, 2), got {labels.shape}")
    # one label per window: the original repeats it on every sample
    return labels[:, 0, 0].astype(np.int64), labels[:, 0, 1].astype(np.int64) + 1
