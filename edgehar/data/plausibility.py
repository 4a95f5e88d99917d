"""Is a stream what its manifest or card says? Checks from the accelerometer signal itself.

A stream in m/s^2 declared as g, a gravity-free (linear-acceleration) stream, or one in the
gravity-vector sign convention (Bangle.js) is read without complaint and gives confident,
wrong predictions. Three measurements tell them apart, per accelerometer triple:

- the magnitude at rest: the median |a| of the stillest tenth of its 1 s windows. An
  accelerometer at rest reads 1 g = 9.81 m/s^2, so the number in the file says its unit (a
  stream that never rests: the median |mean| of its 10 s windows, gravity's magnitude);
- the gravity share: the median over 10 s windows of |mean vector| / rms |a|. Gravity is a
  constant vector, so with gravity the mean holds most of the magnitude; without it (a
  linear-acceleration sensor: specific force minus a low-pass gravity estimate) the mean is
  near 0 whatever the unit;
- the direction of the mean against the model card's training mean (`norm_mean`). The kit's
  convention is the specific force (at rest +1 g "up"); a device reporting the gravity vector
  reads its negative. A single mean direction cannot tell a negated stream from a device worn
  upside down, on the other arm, or with other axes, so this is only ever "suspected".

`benchmarks/bench_plausibility.py` measures the thresholds on HAPT, WISDM watch, DSADS arms,
GeoTec, Axivity and Bangle.js (results/plausibility.md): the units and gravity-free checks catch
every recording and 30 s piece made wrong and flag none as it is; the sign check suspects both
raw Bangle.js recordings and 61 % of their 30 s pieces, and false-alarms on 1-5 % of the wrist
sets' recordings (33 % of Axivity's 30 s pieces: another axis frame).

Every function takes an (n, channels) float array, its channel names, their declared units and
the rate; `check_stream` returns what was measured and a list of findings, each with a code, a
message saying what to write instead, and the numbers behind it. Findings are warnings: the
data is still valid input.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from edgehar.data.resample import G

ACCELERATION = ("g", "m/s^2")
REST_WINDOW_S = 1.0
MEAN_WINDOW_S = 10.0
MIN_SECONDS = 2.0  # shorter streams are not judged
QUIET_SHARE = 0.1  # the stillest tenth of the 1 s windows ...
# ... is at rest when its movement is at most this share of its magnitude (at rest <= 0.02;
# the stillest windows of 30 s of running with a clipping sensor: >= 0.34)
REST_MOVEMENT = 0.25
# |a| at rest in g of a device reading specific force, with margin for recordings that never
# rest (their quietest windows still move): measured 0.87-2.08 g on six data sets
REST_BAND_G = (0.5, 3.0)
# gravity's magnitude from 10 s means, in g, when no window is at rest: measured 0.34-2.09 g
# (2.09: 30 s of running on a Bangle.js clipping at 8 g), so m/s^2 reads >= 3.3
MEAN_BAND_G = (0.3, 2.5)
# A reading this far under 1 g at rest is no gravity in any unit (g or m/s^2 read >= 0.5).
NO_GRAVITY_READING = 0.3
GRAVITY_SHARE_MIN = 0.2  # measured: >= 0.31 with gravity, <= 0.10 without
SIGN_MIN_G = 0.3  # both means must point somewhere for their directions to mean anything
SIGN_COSINE = -0.5  # at or below: the stream's mean points against the model's

# What to write, by where the stream was declared ({unit}/{units}/{manifest_units} filled in).
FIXES = {
    "manifest": {"units": 'write "units": {manifest_units} in edgehar.json (or in the file\'s '
                          'entry under "files")',
                 "sign": "if the device reports the gravity vector (Bangle.js does), negate its "
                         "samples in the CSV files (README: Bangle.js)"},
    "record": {"units": 'the device sends {unit}: set this take\'s "units" to {manifest_units} in '
                        "edgehar.json, and record with --units {unit} (or have the device declare "
                        "units={units})",
               "sign": "if the device reports the gravity vector, negate its samples before "
                       "sending (README: Bangle.js)"},
    "device": {"units": "the device sends {unit}: have it declare units={units} in its "
                        "'# edgehar' line (firmware_bridge/PROTOCOL.md), or send g",
               "sign": "if the device reports the gravity vector (Bangle.js does), negate its "
                       "samples before sending (README: Bangle.js)"},
}
_NOT_ACC = re.compile(r"gyr|mag|rot|ang|ori", re.IGNORECASE)


@dataclass
class Finding:
    code: str  # "units", "scale", "gravity-free", "gravity-sign"
    message: str  # what is wrong, the evidence, and what to write instead
    measured: dict = field(default_factory=dict)
    certainty: str = "likely"  # "suspected" where the signal cannot decide

    def to_dict(self) -> dict:
        return asdict(self)


def accelerometer_triples(channels, units) -> list[tuple[int, int, int]]:
    """Indices of the accelerometer triples: channels declared in g or m/s^2 (not named like a
    gyroscope or magnetometer), three sharing a name but for the last character (acc_x..acc_z,
    ax..az), or the only three when names do not group."""
    acc = [i for i, (c, u) in enumerate(zip(channels, units))
           if u in ACCELERATION and not _NOT_ACC.search(str(c))]
    groups: dict[str, list[int]] = {}
    for i in acc:
        groups.setdefault(str(channels[i])[:-1], []).append(i)
    triples = [tuple(g) for g in groups.values() if len(g) == 3]
    if not triples and len(acc) == 3:
        triples = [tuple(acc)]
    return triples


BLOCK_ROWS = 1 << 16  # samples a step: float64 temporaries stay a few MB, whatever the length


def _windows(x: np.ndarray, length: int) -> np.ndarray:
    k = len(x) // length
    return x[:k * length].reshape(k, length, x.shape[1])


def _blocks(w: np.ndarray):
    """Windows `w` in float64, about BLOCK_ROWS samples at a time, so memory does not grow with
    the stream."""
    step = max(1, BLOCK_ROWS // w.shape[1])
    for i in range(0, len(w), step):
        yield w[i:i + step].astype(np.float64)


def rest_magnitude(x: np.ndarray, rate: float) -> tuple[float, float] | None:
    """(median |a|, median movement) over the stillest tenth of the 1 s windows of (n, 3)
    samples, in their own unit; movement is the root of the summed per-axis variances (a
    window whose magnitude is steady but whose axes swing, as when a sensor clips while
    running, is not still). None when under two windows."""
    w = _windows(x, max(int(round(REST_WINDOW_S * rate)), 2))
    if len(w) < 2:
        return None
    mag, move = (np.concatenate(v) for v in zip(*(
        (np.sqrt(np.einsum("ijk,ijk->ij", b, b)).mean(axis=1), np.sqrt(b.var(axis=1).sum(axis=1)))
        for b in _blocks(w))))
    still = move <= np.quantile(move, QUIET_SHARE)
    return float(np.median(mag[still])), float(np.median(move[still]))


def gravity_share(x: np.ndarray, rate: float) -> tuple[float, float] | None:
    """(share, magnitude) over 10 s windows (one window for a shorter stream): the median of
    |mean vector| / rms |a|, near 1 with gravity and near 0 without; and the median |mean
    vector|, gravity's magnitude even while the sensor moves (motion averages out, a turning
    sensor only shortens it). None when there is no nonzero window."""
    w = _windows(x, min(len(x), max(int(round(MEAN_WINDOW_S * rate)), 2)))
    if not len(w):
        return None
    mean, rms = (np.concatenate(v) for v in zip(*(
        (np.linalg.norm(b.mean(axis=1), axis=1), np.sqrt(np.einsum("ijk,ijk->ij", b, b).mean(axis=1)))
        for b in _blocks(w))))
    ok = rms > 0
    if not ok.any():
        return None
    return float(np.median(mean[ok] / rms[ok])), float(np.median(mean[ok]))


def card_mean_g(card, names) -> tuple[np.ndarray, np.ndarray] | None:
    """The model card's training mean and spread (`norm_mean`, `norm_std`) of the accelerometer
    axes `names`, in g: by name when the card has them, else in order from the card's only acc
    triple. None when the card carries no mean for them."""
    mean = list(getattr(card, "norm_mean", None) or [])
    if not mean:
        return None
    std = list(getattr(card, "norm_std", None) or []) or [1.0] * len(mean)
    channels, units = list(card.channels), list(card.units)
    if all(n in channels for n in names):
        idx = [channels.index(n) for n in names]
    else:
        triples = accelerometer_triples(channels, units)
        if len(triples) != 1:
            return None
        idx = list(triples[0])
    if any(units[i] not in ACCELERATION for i in idx):
        return None
    to_g = np.array([1 / G if units[i] == "m/s^2" else 1.0 for i in idx])
    return np.array([mean[i] for i in idx]) * to_g, np.array([std[i] for i in idx]) * to_g


def check_stream(data, channels, units, rate: float, card=None, fix: str = "manifest") -> dict:
    """Measure every accelerometer triple of `data` (n, channels) and judge it against its
    declared `units` (and the card's training mean, given a model card). `fix` says where the
    stream was declared ("manifest", "record", "device"), for the advice.

    Returns {"checked": [what was measured, per triple], "findings": [Finding dicts]}, and
    "skipped" with the reason when nothing could be measured."""
    channels, units = [str(c) for c in channels], [str(u) for u in units]
    data = np.asarray(data)
    triples = accelerometer_triples(channels, units)
    if not triples:
        return {"checked": [], "findings": [],
                "skipped": "no accelerometer triple (three channels in g or m/s^2)"}
    checked, findings = [], []
    for triple in triples:
        a = triple[0]  # three neighbouring columns are a view, not a copy of the stream
        x = data[:, a:a + 3] if list(triple) == [a, a + 1, a + 2] else data[:, list(triple)]
        m, f = _check_triple(x, channels, units, triple, float(rate), card, fix)
        checked.append(m)
        findings += f
    out = {"checked": checked, "findings": [f.to_dict() for f in findings]}
    if all("skipped" in m for m in checked):
        out["skipped"] = checked[0]["skipped"]
    return out


def _check_triple(x, channels, units, triple, rate, card, fix) -> tuple[dict, list[Finding]]:
    names = [channels[i] for i in triple]
    declared = {units[i] for i in triple}
    measured: dict = {"channels": names, "declared_units": units[triple[0]] if len(declared) == 1 else
                      [units[i] for i in triple]}
    x = np.asarray(x, np.float32)
    # non-finite rows, and all-zero rows: dropouts (DSADS has 1,500-sample runs), not rest
    step = BLOCK_ROWS
    keep = np.concatenate([np.isfinite(c).all(axis=1) & np.any(c != 0, axis=1)
                           for c in (x[i:i + step] for i in range(0, len(x), step))] or [np.ones(0, bool)])
    if not keep.all():
        x = x[keep]
    measured["seconds"] = round(len(x) / rate, 2)
    if len(x) < MIN_SECONDS * rate:
        measured["skipped"] = f"under {MIN_SECONDS:g} s of nonzero samples"
        return measured, []
    (still, movement), (share, mean_magnitude) = rest_magnitude(x, rate), gravity_share(x, rate)
    measured.update({"rest_magnitude": round(still, 4), "rest_movement": round(movement, 4),
                     "gravity_share": round(share, 3), "mean_magnitude": round(mean_magnitude, 4)})
    if share < GRAVITY_SHARE_MIN or still < NO_GRAVITY_READING:
        measured["inferred_units"] = None  # no gravity, no yardstick for the unit
        return measured, [_gravity_free(names, share, still, card)]
    if movement <= REST_MOVEMENT * still:
        reading, basis, band = still, "at rest", REST_BAND_G
    else:  # never still: gravity's magnitude from the 10 s means instead
        reading, basis, band = mean_magnitude, "as their 10 s mean (never at rest)", MEAN_BAND_G
    inferred = _unit_of(reading, band)
    measured.update({"units_from": "rest" if band is REST_BAND_G else "mean", "inferred_units": inferred})
    findings = []
    if inferred is None:
        findings.append(Finding(
            "scale", f"{','.join(names)} read {reading:.4g} {basis}, which is neither 1 g nor 9.81 "
                     "m/s^2 (raw counts? mg?): scale the samples to g or m/s^2 (mg: divide by 1000; "
                     "counts: by the counts per g of the sensor's range)",
            {"reading": round(reading, 4), "from": basis}))
    elif len(declared) == 1 and inferred not in declared:
        findings.append(_wrong_units(names, units, triple, inferred, reading, basis, fix))
    measured["sign"] = sign = _sign(x, names, inferred or units[triple[0]], rate, card)
    if sign.get("cosine") is not None and sign["cosine"] <= SIGN_COSINE:
        findings.append(Finding(
            "gravity-sign",
            f"suspected gravity-vector sign: the mean of {','.join(names)} "
            f"({', '.join(f'{v:+.2f}' for v in sign['stream_mean_g'])}) g points against the "
            f"model's training mean ({', '.join(f'{v:+.2f}' for v in sign['model_mean_g'])}) g "
            f"(cosine {sign['cosine']:+.2f} in the model's normalised units). A device reporting the "
            "gravity vector instead of the specific force does this; so does one worn upside down, "
            f"on the other arm or with other axes; {FIXES[fix]['sign']}", sign, certainty="suspected"))
    return measured, findings


def _gravity_free(names, share: float, still: float, card) -> Finding:
    expect = card_mean_g(card, names) if card is not None else None
    trained = (f"; the model was trained with a mean of {np.linalg.norm(expect[0]):.2f} g"
               if expect is not None and np.linalg.norm(expect[0]) >= SIGN_MIN_G else "")
    return Finding(
        "gravity-free",
        f"{','.join(names)} hold no gravity: their 10 s mean is {share:.2f} of their magnitude "
        f"(with gravity >= {GRAVITY_SHARE_MIN}) and their stillest seconds read {still:.3g}{trained}; "
        "the kit's data sets and models take the specific force, gravity included: stream the raw "
        "accelerometer, not a linear-acceleration (gravity-removed) sensor",
        {"gravity_share": round(share, 3), "rest_magnitude": round(still, 4)})


def _wrong_units(names, units, triple, inferred: str, reading: float, basis: str, fix: str) -> Finding:
    """The declared unit is not the one gravity reads in: what to write instead, in the words
    of the place the unit was declared."""
    fixed = [inferred if i in triple else u for i, u in enumerate(units)]
    manifest_units = (f'"{fixed[0]}"' if len(set(fixed)) == 1 else
                      "[" + ", ".join(f'"{u}"' for u in fixed) + "]")
    advice = FIXES[fix]["units"].format(unit=inferred, units=",".join(fixed), manifest_units=manifest_units)
    return Finding(
        "units", f"{','.join(names)} read {reading:.3g} {basis}, declared {units[triple[0]]}: the "
                 f"samples are in {inferred} (gravity reads 1 g = 9.81 m/s^2); {advice}",
        {"reading": round(reading, 4), "from": basis, "declared": units[triple[0]], "inferred": inferred})


def _unit_of(reading: float, band: tuple[float, float]) -> str | None:
    low, high = band
    if low <= reading <= high:
        return "g"
    if low * G <= reading <= high * G:
        return "m/s^2"
    return None


def _sign(x, names, unit, rate, card) -> dict:
    """The stream's mean direction against the card's training mean, or why not compared.

    The cosine is taken in the model's normalised space (each axis over its training spread,
    `norm_std`), as the model sees its input: an axis the training data spreads widely over
    weighs less. On the wrist sets this keeps GeoTec's and Axivity's other axis frames from
    looking negated (false alarms 6 % and 0 % of recordings, against 49 % and 100 % unscaled)."""
    if card is None:
        return {"checked": False, "why": "no model card to compare with"}
    if len(x) < MEAN_WINDOW_S * rate:
        return {"checked": False, "why": f"under {MEAN_WINDOW_S:g} s"}
    expect = card_mean_g(card, names)
    if expect is None or np.linalg.norm(expect[0]) < SIGN_MIN_G:
        return {"checked": False, "why": "the model card's training mean has no clear direction "
                                         f"(under {SIGN_MIN_G} g or absent)"}
    model_mean, spread = expect
    mean = x.mean(axis=0, dtype=np.float64) / (G if unit == "m/s^2" else 1.0)
    if np.linalg.norm(mean) < SIGN_MIN_G:
        return {"checked": False, "why": f"the stream's mean is under {SIGN_MIN_G} g"}
    a, b = mean / spread, model_mean / spread
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    return {"checked": True, "cosine": round(cosine, 3),
            "stream_mean_g": [round(float(v), 3) for v in mean],
            "model_mean_g": [round(float(v), 3) for v in model_mean]}


class FirstSeconds:
    """The first `seconds` of a live stream, checked once (`edgehar live`): `add` blocks as they
    arrive; it returns the result when enough has arrived, `finish` checks what came of a
    shorter stream. `result` holds it afterwards (None before, or for under 2 s)."""

    def __init__(self, channels, units, card=None, fix: str = "device", seconds: float = 30.0):
        self.channels, self.units, self.card, self.fix = list(channels), list(units), card, fix
        self.seconds = seconds
        self.blocks: list[np.ndarray] = []
        self.n = 0
        self.rate: float | None = None
        self.result: dict | None = None
        self.done = False

    def add(self, values, rate: float) -> dict | None:
        if self.done:
            return None
        if self.rate is not None and rate != self.rate:  # the device changed its rate: judge what came
            return self.finish()
        self.rate = float(rate)
        values = np.asarray(values, np.float32)
        self.blocks.append(values)
        self.n += len(values)
        return self.finish() if self.n >= self.seconds * self.rate else None

    def finish(self) -> dict | None:
        if self.done:
            return None
        self.done = True
        if self.rate and self.n >= MIN_SECONDS * self.rate:
            data = np.concatenate(self.blocks)
            self.result = {"seconds": round(self.n / self.rate, 2),
                           **check_stream(data, self.channels, self.units, self.rate, self.card, self.fix)}
        self.blocks = []
        return self.result


def warning_lines(result: dict, where: str) -> list[str]:
    """One line per finding, `WHERE: message` (printed after `edgehar: warning: `)."""
    return [f"{where}: {f['message']}" for f in result.get("findings", [])]
