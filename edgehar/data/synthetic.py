"""The embedded default data: physically plausible waist or wrist IMU recordings, generated.

Used when no real data is given (`edgehar demo` without `EDGEHAR_DATA`), so the whole flow runs
on a fresh install. It is a stand-in for HAPT, not a benchmark: figures measured on it say the
flow works, not how well a model recognises people.

Each subject is one `Recording` at 50 Hz with acc (g, specific force: +1 g "up" at rest) and
gyro (rad/s), the six HAPT activities in a shuffled schedule of bouts, and short unlabelled
postural transitions between bouts (labels -1), like HAPT's transitions.

- walking: steps at the subject's cadence (1.7-2.0 Hz) with 2nd/3rd harmonics along the true
  vertical, fore-aft at step frequency, lateral sway and pelvis rotation at stride frequency
  (half the cadence); at the wrist an arm swing (a pendulum at stride frequency, gyro about its
  axis, tangential acceleration).
- upstairs: slower cadence, larger vertical effort, forward lean, less arm swing (railing);
  downstairs: faster cadence, sharp heel-strike impacts, backward lean.
- sitting / standing / lying: the gravity direction of the posture (per subject and bout
  variants: pelvis tilt, arm on the lap, supine or on a side), slow sway, breathing,
  physiological tremor (8-12 Hz) and sensor noise.

Deterministic by seed. `write_banglejs` stores a recording's accelerometer in the Bangle.js
layout (`acc_expNN_userNN.txt`, `labels.csv`, `classnames.csv`) for the simulated device.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgehar.atomic import write_text
from edgehar.data.banglejs import SIGN
from edgehar.data.recording import UNLABELLED, Recording
from edgehar.data.windows import Windows, make_windows

NAME = "synthetic"
RATE = 50.0
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("g", "g", "g", "rad/s", "rad/s", "rad/s")
LABELS = ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying")
TEST_SUBJECTS = (2, 5, 9)  # the default subject-disjoint test split
PLACEMENTS = ("waist", "wrist")
G = 9.80665

# device axes: x = the placement's "up" at rest standing (waist: up; wrist: along the hanging
# forearm, so gravity reads -x), y = the pitch / arm-swing axis, z = fore-aft.
_UP = {"waist": np.array([1.0, 0.0, 0.0]), "wrist": np.array([-1.0, 0.0, 0.0])}
_PITCH_AXIS = np.array([0.0, 1.0, 0.0])
_ROLL_AXIS = np.array([0.0, 0.0, 1.0])

# posture angles in degrees (pitch about y, roll about z): (low, high) drawn per bout
_POSTURE = {
    "waist": {"standing": ((-6, 6), (-5, 5)), "sitting": ((25, 45), (-8, 8)),
              "laying": ((78, 100), (-45, 45)), "walking": ((-3, 5), (-4, 4)),
              "walking_upstairs": ((6, 14), (-4, 4)), "walking_downstairs": ((-10, -2), (-4, 4))},
    "wrist": {"standing": ((-12, 12), (-15, 15)), "sitting": ((70, 110), (-30, 30)),
              "laying": ((40, 140), (-90, 90)), "walking": ((-8, 8), (-10, 10)),
              "walking_upstairs": ((-5, 20), (-10, 10)), "walking_downstairs": ((-10, 8), (-10, 10))},
}
# gait: (cadence factor, vertical amplitude factor, 2nd, 3rd harmonic, impact, arm swing deg)
_GAIT = {"walking": (1.0, 1.0, 0.35, 0.12, 0.0, 25.0),
         "walking_upstairs": (0.82, 1.15, 0.2, 0.06, 0.0, 10.0),
         "walking_downstairs": (1.12, 1.25, 0.3, 0.1, 0.9, 18.0)}


def _rotate(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of vectors v (n, 3) about a fixed unit axis by per-sample angles (n,)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return v * c + np.cross(axis, v) * s + axis * (v @ axis)[:, None] * (1 - c)


def _mount(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A random rotation matrix within `max_deg` degrees (how the device sits on the body)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    a = math.radians(rng.uniform(0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def _slow(rng: np.random.Generator, n: int, hz=(0.05, 0.5), parts: int = 3) -> np.ndarray:
    """Smooth zero-mean wander of unit-ish amplitude: a few random low-frequency sines."""
    t = np.arange(n) / RATE
    out = np.zeros(n)
    for _ in range(parts):
        out += np.sin(2 * np.pi * rng.uniform(*hz) * t + rng.uniform(0, 2 * np.pi))
    return out / math.sqrt(parts / 2)


def _subject(rng: np.random.Generator, placement: str) -> dict:
    return {"cadence": rng.uniform(1.7, 2.0), "amp": rng.uniform(0.22, 0.4),
            "mount": _mount(rng, 10 if placement == "waist" else 20),
            "tremor_hz": rng.uniform(8, 12), "tremor": rng.uniform(0.002, 0.008),
            "gyro_bias": rng.normal(0, 0.004, 3), "noise": rng.uniform(0.006, 0.012),
            "arm": 0.0 if placement == "waist" else rng.uniform(0.7, 1.3)}


def _angles(rng, placement: str, activity: str) -> tuple[float, float]:
    (p0, p1), (r0, r1) = _POSTURE[placement][activity]
    return math.radians(rng.uniform(p0, p1)), math.radians(rng.uniform(r0, r1))


def _orient(up: np.ndarray, pitch: np.ndarray, roll: np.ndarray, mount: np.ndarray) -> np.ndarray:
    """Gravity reading direction (n, 3) for per-sample pitch and roll."""
    v = np.repeat(up[None], len(pitch), 0)
    v = _rotate(_rotate(v, _ROLL_AXIS, roll), _PITCH_AXIS, pitch)
    return v @ mount.T


def _bout(rng, subj: dict, placement: str, activity: str, n: int, pitch0: float, roll0: float):
    """(acc (n,3) g, gyro (n,3) rad/s, end pitch, end roll) of one activity bout."""
    t = np.arange(n) / RATE
    pitch = pitch0 + math.radians(1.5) * _slow(rng, n)
    roll = roll0 + math.radians(1.0) * _slow(rng, n)
    dyn = np.zeros((n, 3))
    gyro = np.zeros((n, 3))
    if activity in _GAIT:
        cad, amp, h2, h3, impact, swing = _GAIT[activity]
        f = subj["cadence"] * cad * (1 + 0.03 * _slow(rng, n, (0.02, 0.2)))  # step Hz, drifting
        phi = 2 * np.pi * np.cumsum(f) / RATE + rng.uniform(0, 2 * np.pi)
        a = subj["amp"] * amp * rng.uniform(0.9, 1.1)
        vert = a * (np.sin(phi) + h2 * np.sin(2 * phi + 0.7) + h3 * np.sin(3 * phi + 1.9)
                    + impact * (np.maximum(np.cos(phi), 0) ** 8 - 0.27))
        fore = 0.5 * a * np.sin(phi + np.pi / 2) + 0.1 * a * np.sin(2 * phi)
        lat = 0.3 * a * np.sin(phi / 2 + 0.4)
        gyro[:, 0] += 0.25 * np.sin(phi / 2)  # pelvis yaw at stride frequency
        gyro[:, 1] += 0.12 * np.sin(phi + 0.3)
        gyro[:, 2] += 0.18 * np.sin(phi / 2 + 1.1)
        if subj["arm"]:  # the forearm swings like a pendulum once per stride
            theta = math.radians(swing) * subj["arm"] * np.sin(phi / 2)
            omega = math.radians(swing) * subj["arm"] * np.cos(phi / 2) * np.pi * f
            pitch = pitch + theta
            gyro[:, 1] += omega
            fore = fore + 0.6 * np.gradient(omega, 1 / RATE) / G  # tangential, 0.6 m arm
            vert = 0.6 * vert  # the arm damps the step impacts
        dyn = np.stack([vert, lat, fore], 1)
    else:  # postures: sway, breathing, tremor
        breath = 0.01 * np.sin(2 * np.pi * rng.uniform(0.2, 0.33) * t) if activity == "laying" else 0
        tremor = subj["tremor"] * np.sin(2 * np.pi * subj["tremor_hz"] * t + rng.uniform(0, 6.3))
        dyn[:, 2] += breath + tremor
        dyn[:, 1] += 0.004 * _slow(rng, n, (0.1, 1.0))
        gyro += 0.03 * subj["tremor"] / 0.005 * np.sin(2 * np.pi * subj["tremor_hz"] * t)[:, None] \
            * rng.normal(0, 1, 3)
    g_dir = _orient(_UP[placement], pitch, roll, subj["mount"])
    # dynamic acceleration acts along the true vertical (vert) and the body's own axes
    acc = g_dir + dyn[:, :1] * g_dir + (dyn[:, 1:2] * _PITCH_AXIS + dyn[:, 2:] * _ROLL_AXIS) @ subj["mount"].T
    gyro = gyro @ subj["mount"].T
    return acc, gyro, float(pitch[-1]), float(roll[-1])


def _transition(rng, subj: dict, placement: str, n: int, p0: float, r0: float, p1: float, r1: float):
    """An unlabelled posture change: a smooth (cosine) turn from one orientation to the next
    with a movement burst; gyro = the turn rate."""
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n - 1, 1))
    pitch, roll = p0 + (p1 - p0) * ramp, r0 + (r1 - r0) * ramp
    g_dir = _orient(_UP[placement], pitch, roll, subj["mount"])
    burst = 0.12 * np.sin(np.pi * ramp)[:, None] * np.stack([_slow(rng, n, (0.5, 3.0)) for _ in range(3)], 1)
    gyro = np.stack([np.zeros(n), np.gradient(pitch, 1 / RATE), np.gradient(roll, 1 / RATE)], 1)
    gyro += 0.2 * np.sin(np.pi * ramp)[:, None] * np.stack([_slow(rng, n, (0.5, 2.0)) for _ in range(3)], 1)
    return g_dir + burst, gyro @ subj["mount"].T


def synthetic_recording(subject: int, placement: str = "waist", seconds: float = 20.0, bouts: int = 2,
                        seed: int = 0) -> Recording:
    """One subject: each activity `bouts` times (about `seconds` s each, +-25%) in a shuffled
    order, 2-4 s unlabelled transitions between bouts."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r} (known: {', '.join(PLACEMENTS)})")
    rng = np.random.default_rng([seed, subject, PLACEMENTS.index(placement)])
    subj = _subject(rng, placement)
    schedule = [a for a in range(len(LABELS)) for _ in range(bouts)]
    rng.shuffle(schedule)
    accs, gyros, labels = [], [], []
    pitch, roll = _angles(rng, placement, "standing")
    for k, act in enumerate(schedule):
        name = LABELS[act]
        p_next, r_next = _angles(rng, placement, name)
        n_tr = int(rng.uniform(2, 4) * RATE)
        a, w = _transition(rng, subj, placement, n_tr, pitch, roll, p_next, r_next)
        accs.append(a), gyros.append(w), labels.append(np.full(n_tr, UNLABELLED))
        n = int(seconds * rng.uniform(0.75, 1.25) * RATE)
        a, w, pitch, roll = _bout(rng, subj, placement, name, n, p_next, r_next)
        accs.append(a), gyros.append(w), labels.append(np.full(n, act))
    acc, gyro = np.concatenate(accs), np.concatenate(gyros)
    acc += rng.normal(0, subj["noise"], acc.shape)
    gyro += subj["gyro_bias"] + rng.normal(0, 0.01, gyro.shape)
    return Recording(np.hstack([acc, gyro]).astype(np.float32), RATE, CHANNELS, UNITS, subject=subject,
                     labels=np.concatenate(labels), label_names=LABELS,
                     name=f"synthetic_{placement}_user{subject:02d}", source=f"synthetic:seed={seed}",
                     meta={"placement": placement, "synthetic": True, "seed": seed,
                           "cadence_hz": round(float(subj["cadence"]), 3)})


def synthetic_dataset(subjects: int = 10, placement: str = "waist", seconds: float = 20.0,
                      bouts: int = 2, seed: int = 0) -> list[Recording]:
    """`subjects` recordings (subject ids 1..N), like `load_dataset` returns for real data."""
    return [synthetic_recording(s, placement, seconds, bouts, seed) for s in range(1, subjects + 1)]


def synthetic_windows(recordings: list[Recording], channels=CHANNELS, window: int = 128,
                      hop: int = 64, purity: float = 0.8) -> Windows:
    """Windows of synthetic recordings holding `channels` (transitions stay unlabelled)."""
    return make_windows([r.select(list(channels)) for r in recordings], window, hop, purity)


def _clock(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    return f"{h % 24:02d}:{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}"


def write_banglejs(rec: Recording, folder: str | Path, exp: int = 1) -> Path:
    """Write the accelerometer of `rec` in the Bangle.js layout (`acc_expNN_userNN.txt`, with
    `labels.csv` and `classnames.csv` beside it); returns the recording file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    acc = SIGN * rec.select(["acc_x", "acc_y", "acc_z"]).data  # the device's own sign convention
    t = np.arange(len(acc)) / rec.rate
    rows = [f"{_clock(s)},{x:.5f},{y:.5f},{z:.5f};" for s, (x, y, z) in zip(t, acc)]
    path = folder / f"acc_exp{exp:02d}_user{rec.subject:02d}.txt"
    write_text(path, "time,acc_x,acc_y,acc_z\n" + "\n".join(rows) + "\n")
    segments = []
    labels = rec.labels if rec.labels is not None else np.full(len(acc), UNLABELLED)
    edges = np.flatnonzero(np.diff(labels)) + 1
    for s, e in zip(np.r_[0, edges], np.r_[edges, len(labels)]):
        if labels[s] >= 0:
            segments.append(f"{exp} {rec.subject} {labels[s]} {s + 1} {e}")
    write_text(folder / "labels.csv", "\n".join(segments) + "\n")
    write_text(folder / "classnames.csv", "\n".join(f"{i} {n}" for i, n in enumerate(rec.label_names)) + "\n")
    return path
