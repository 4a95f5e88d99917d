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

`to_limu_spec` is the one place other windows (the wrist corpus's: acc only, in g, 100
samples) become LIMU-BERT's input (acc m/s^2 + gyro rad/s, 120 samples, 20 Hz) when the
published weights serve as a distillation teacher.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from scipy.ndimage import uniform_filter1d

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


# -- other windows in LIMU-BERT's input spec ---------------------------------------------------

ACC = ("acc_x", "acc_y", "acc_z")
# Low-pass of the gravity direction that `pseudo_gyro` differentiates: 9 samples (0.45 s at
# 20 Hz). Chosen on the 2088 HAPT windows above, where the real gyroscope is known: with the
# gyro replaced by the pseudo-gyro of the accelerometer, the published UCI classifier scores
# macro-F1 0.52 / 0.58 / 0.62 / 0.64 for 1 / 3 / 5 / 9 samples (0.36 with the gyro zeroed,
# 0.93 with the real one); never tuned on a corpus.
GRAVITY_SMOOTHING = 9


def pseudo_gyro(acc: np.ndarray, rate: float, smoothing: int = GRAVITY_SMOOTHING) -> np.ndarray:
    """Angular velocity (rad/s) estimated from an accelerometer alone, (N, T, 3) -> (N, T, 3).

    The low-passed acceleration is taken as gravity; a fixed world vector seen by a rotating
    sensor turns as du/dt = -omega x u, so -u x du/dt is the rotation rate about the two axes
    perpendicular to gravity (rotation about gravity itself is invisible to an accelerometer
    and stays 0). Arm motion leaks into the estimate; it is a better stand-in for the
    gyroscope LIMU-BERT expects than none (see GRAVITY_SMOOTHING)."""
    g = uniform_filter1d(np.asarray(acc, np.float64), smoothing, axis=1, mode="nearest")
    u = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-9)
    return (-np.cross(u, np.gradient(u, 1.0 / rate, axis=1))).astype(np.float32)


def to_limu_spec(w: Windows, where) -> Windows:
    """Accelerometer windows (`w`: acc_x/y/z in g or m/s^2, RATE Hz, at most WINDOW samples)
    as LIMU-BERT's input: acc in m/s^2, the gyroscope it expects estimated from the
    accelerometer (`pseudo_gyro`), WINDOW samples. Labels, subjects and provenance are kept.

    The missing gyroscope: zeros (LIMU-BERT's normalisation leaves gyro in rad/s, so zero is
    both the raw and the normalised value, and its pre-training masks samples with zeros)
    read as "never rotating", and the published UCI classifier falls to macro-F1 0.36 on HAPT
    with them; the pseudo-gyro restores 0.64 (see GRAVITY_SMOOTHING).

    Length: a shorter window is padded at its end by reflection, not read longer from the
    recording. The student sees exactly these samples on the device, so the teacher's
    targets should describe the same seconds, not one the student never sees; a corpus keeps
    windows, not recordings, and the next samples exist only where an overlapping window of
    the same recording follows (never for a recording's last window); and the first five
    of LIMU-GRU's six 1-second chunks are then the real samples. It costs little: on the HAPT
    windows cut to 100 samples (acc only, pseudo-gyro) the UCI classifier scores macro-F1
    0.638 padded by reflection against 0.642 on the 120 real samples; wrap 0.638, edge 0.605,
    zeros 0.419 (zero acc reads as free fall). Reflection keeps gravity's direction and the
    signal's level continuous at the seam."""
    if abs(float(w.rate) - RATE) > 1e-6:
        raise UserError(where, f"windows are at {w.rate:g} Hz but LIMU-BERT takes {RATE:g} Hz (its published "
                               f"weights): build the corpus at --rate {RATE:g}")
    if tuple(w.channels[:3]) != ACC or len(w.channels) != 3:
        raise UserError(where, f"LIMU-BERT's wrist input is built from acc_x, acc_y, acc_z; got {', '.join(w.channels)}")
    if w.length > WINDOW:
        raise UserError(where, f"windows are {w.length} samples; LIMU-BERT takes at most {WINDOW}")
    scale = {"g": G, "m/s^2": 1.0}
    if any(u not in scale for u in w.units) or len(set(w.units)) != 1:
        raise UserError(where, f"acceleration in {', '.join(w.units)}; expected g or m/s^2")
    acc = w.x.astype(np.float64) * scale[w.units[0]]
    if w.length < WINDOW:
        pad = WINDOW - w.length
        if pad >= w.length:  # reflection reads `pad` samples back from the end
            raise UserError(where, f"windows are {w.length} samples; LIMU-BERT needs more than {WINDOW // 2} "
                                   f"to pad to {WINDOW}")
        acc = np.pad(acc, ((0, 0), (0, pad), (0, 0)), mode="reflect")
    x = np.concatenate([acc.astype(np.float32), pseudo_gyro(acc, RATE)], axis=-1)
    return replace(w, x=x, channels=tuple(CHANNELS), units=UNITS, hop=w.hop)
