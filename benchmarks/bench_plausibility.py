"""How often the stream checks (`edgehar/data/plausibility.py`) fire on real recordings, as
they are and deliberately made wrong: the figures behind their thresholds.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_plausibility.py [--seconds 30]

For every recording of HAPT, WISDM watch, DSADS (arm units), GeoTec watch, Axivity and Bangle.js
(whole, and cut into --seconds pieces as `edgehar live` checks its first seconds), it runs
`check_stream` on the accelerometer:
- as loaded (the kit's specific-force convention, in g): every finding is a false alarm;
- the same numbers in m/s^2 but declared g, and in g but declared m/s^2 (should be "units");
- gravity-free: minus a 0.3 Hz low-pass (2nd-order Butterworth, zero phase), as a
  linear-acceleration sensor reports (should be "gravity-free");
- negated (the gravity-vector convention; for Bangle.js the raw file as the watch wrote it),
  against a card whose training mean is the pooled mean of the wrist sets (WISDM, DSADS arms,
  GeoTec, as the wrist corpus teacher pools them) or of HAPT (should be "gravity-sign", which is
  only ever "suspected").
Writes plausibility.json + plausibility.md under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
WRIST = ("wisdm_watch", "dsads:left_arm", "dsads:right_arm", "geotec_watch")
SETS = ("hapt", *WRIST, "axivity", "banglejs")
ACC = ("acc_x", "acc_y", "acc_z")


def load(name: str) -> list[tuple[np.ndarray, float]]:
    """(acc in g, rate) of every recording of a named data set."""
    from edgehar.data.registry import folder_of, lookup
    from edgehar.data.resample import unit_factor

    ds, option = lookup(name)
    recs = ds.load(folder_of(ds), option) if ds.options else ds.load(folder_of(ds))
    out = []
    for r in recs:
        idx = [r.channels.index(c) for c in ACC]
        f = np.array([unit_factor(r.units[i], "g") for i in idx], np.float32)
        out.append((r.data[:, idx] * f, r.rate))
    return out


def banglejs_raw() -> list[tuple[np.ndarray, float]]:
    """The Bangle.js files as the watch wrote them (gravity vector), before the loader negates."""
    from edgehar.data.csvfile import load_csv

    root = Path(os.environ["EDGEHAR_DATA"]) / "banglejs_wrist"
    return [(load_csv(p, columns=list(ACC), units="g", time_column="time").data, 50.0)
            for p in sorted(root.glob("acc_exp*_user*.txt"))]


def card(streams) -> SimpleNamespace:
    """A card's acc fields as `channel_stats` makes them: the pooled mean and std per axis."""
    n = sum(len(x) for x, _ in streams)
    mean = sum(x.sum(axis=0, dtype=np.float64) for x, _ in streams) / n
    var = sum(((x - mean) ** 2).sum(axis=0) for x, _ in streams) / n
    return SimpleNamespace(channels=list(ACC), units=["g"] * 3, norm_mean=[float(v) for v in mean],
                           norm_std=[float(v) for v in np.sqrt(var)])


def gravity_free(x: np.ndarray, rate: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, 0.3, fs=rate, output="sos")
    return (x - sosfiltfilt(sos, x.astype(np.float64), axis=0)).astype(np.float32)


def pieces(streams, seconds):
    for x, rate in streams:
        if seconds is None:
            yield x, rate
            continue
        n = int(seconds * rate)
        for k in range(0, len(x) - n + 1, n):
            yield x[k:k + n], rate


def tally(streams, seconds, units, model, transform=lambda x, r: x) -> dict:
    from edgehar.data.plausibility import check_stream

    counts = {"streams": 0, "skipped": 0}
    for x, rate in pieces(streams, seconds):
        res = check_stream(transform(x, rate), ACC, [units] * 3, rate, card=model)
        counts["streams"] += 1
        counts["skipped"] += "skipped" in res
        for f in res["findings"]:
            counts[f["code"]] = counts.get(f["code"], 0) + 1
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="piece length, as live checks (default 30)")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    if not os.environ.get("EDGEHAR_DATA"):
        sys.exit("bench_plausibility: set EDGEHAR_DATA")
    from edgehar.data.resample import G

    data = {name: load(name) for name in SETS}
    cards = {"wrist": card([s for n in WRIST for s in data[n]]), "hapt": card(data["hapt"])}
    negated = {n: [(-x, r) for x, r in data[n]] for n in SETS}
    negated["banglejs"] = banglejs_raw()
    rows = []
    for name in SETS:
        model = cards["hapt" if name == "hapt" else "wrist"]
        for seconds in (None, args.seconds):
            s = data[name]
            rows.append({
                "data": name, "piece_s": seconds,
                "as_is": tally(s, seconds, "g", model),
                "m/s^2 declared g": tally(s, seconds, "g", None, lambda x, r: x * np.float32(G)),
                "g declared m/s^2": tally(s, seconds, "m/s^2", None),
                "gravity-free": tally(s, seconds, "g", model, gravity_free),
                "negated": tally(negated[name], seconds, "g", model),
            })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"cards_mean_g": {k: [round(v, 3) for v in c.norm_mean] for k, c in cards.items()},
              "cards_std_g": {k: [round(v, 3) for v in c.norm_std] for k, c in cards.items()}, "rows": rows}
    (out / "plausibility.json").write_text(json.dumps(result, indent=2) + "\n")

    def share(c: dict, code: str) -> str:
        judged = c["streams"] - c["skipped"]
        return f"{c.get(code, 0)}/{judged}" if judged else "-"

    lines = ["# Stream checks on real recordings (`edgehar/data/plausibility.py`)", "",
             "Measured with `EDGEHAR_DATA=../shared/data python benchmarks/bench_plausibility.py`.", "",
             (f"Reference training means (g): wrist {result['cards_mean_g']['wrist']}, "
              f"HAPT {result['cards_mean_g']['hapt']} (std {result['cards_std_g']['wrist']}, "
              f"{result['cards_std_g']['hapt']}). Cells: streams flagged / streams judged "
              "(streams under 2 s of nonzero samples are not judged; the sign needs 10 s)."), "",
             ("| data | piece | false alarms as is (any) | units: m/s^2 as g | units: g as m/s^2 | "
              "gravity-free caught | negated: sign suspected | sign false alarms as is |"),
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        a = r["as_is"]
        any_alarm = sum(v for k, v in a.items() if k not in ("streams", "skipped"))
        piece = "whole" if r["piece_s"] is None else f"{r['piece_s']:g} s"
        lines.append(f"| {r['data']} | {piece} "
                     f"| {any_alarm}/{a['streams'] - a['skipped']} | {share(r['m/s^2 declared g'], 'units')} "
                     f"| {share(r['g declared m/s^2'], 'units')} | {share(r['gravity-free'], 'gravity-free')} "
                     f"| {share(r['negated'], 'gravity-sign')} | {share(a, 'gravity-sign')} |")
    (out / "plausibility.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
