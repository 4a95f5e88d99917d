"""Live-bridge delay and CPU use at 50 Hz and 200 Hz device rates, text and frame mode.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_bridge.py [--model ART] [--seconds 120]

The virtual device (`edgehar device simulate`, its own process) replays Bangle.js user 1 in
real time, resampled to the device rate; `LiveSession` (this process) reads the pty, resamples
to the card's 50 Hz, windows (128, hop 64) and runs the model. Figures per run:
- delay: from the moment the bytes holding a window's last sample were read off the port to its
  prediction being ready (median, p99); the device's own buffering (a frame holds rate/10
  samples) and the resampler's group delay (printed separately) come on top;
- CPU: this process's CPU time / wall time, in % of one core (reader thread + parsing +
  resampling + windowing + inference), and the inference share of it.
Default model: a tiny student trained 45 steps (3 passes) on Bangle.js user 2 and exported --int8
(LiteRT, int8 I/O). Writes `bridge.json` + `bridge.md`. One inference thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_default_model(root: Path, out: Path) -> Path:
    """A tiny student on Bangle.js user 2 (user 1 is replayed), exported int8."""
    import torch

    from edgehar.checkpoint import save_checkpoint
    from edgehar.data.datasets import activity_windows
    from edgehar.export.pipeline import export_student
    from edgehar.recipes import train_student_supervised

    torch.set_num_threads(1)
    w = activity_windows("banglejs", root / "banglejs_wrist", rate=50.0, window=128, hop=64)
    data = {"dataset": "banglejs", "root": str(root / "banglejs_wrist"), "test_subjects": [1]}
    model, card = train_student_supervised(w.take(w.subject == 2).labelled(), "tiny", steps=45, data=data)
    ckpt = out / "bridge_student.pt"
    save_checkpoint(ckpt, model, card)
    art = out / "bridge_student_export"
    export_student(ckpt, out=art, int8=True, windows=w, test_subjects=[1], micro=False, data="banglejs")
    return art


def run_once(model, recording: Path, rate: float, protocol: str, seconds: float, tmp: Path) -> dict:
    from edgehar.bridge.live import LiveSession
    from edgehar.bridge.stream import StreamResampler

    link = tmp / f"dev-{protocol}-{rate:g}"
    sim = subprocess.Popen([sys.executable, "-m", "edgehar", "device", "simulate", "--replay", str(recording),
                            "--rate", str(rate), "--protocol", protocol, "--start", "0",
                            "--seconds", str(seconds + 5), "--link", str(link), "--json"],
                           stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        json.loads(sim.stdout.readline())  # the device is up
        session = LiveSession(str(link), model, smooth="none")
        infer = [0.0]
        predict = session.predictor.predict_proba

        def timed(x):
            t = time.process_time()
            try:
                return predict(x)
            finally:
                infer[0] += time.process_time() - t

        session.predictor.predict_proba = timed
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            session.run(duration=seconds)
        finally:
            del session.predictor.predict_proba  # back to the class method
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    c = session.counts()
    r = StreamResampler(rate, session.card.rate)
    group_delay_ms = 0.0 if r.identity else 1e3 * 10 * max(r.up, r.down) / r.up / rate
    return {"rate_hz": rate, "protocol": protocol, "seconds": round(wall, 2), "windows": c["windows"],
            "delay_ms_median": c["delay_ms"]["median"], "delay_ms_p99": c["delay_ms"]["p99"],
            "cpu_percent": round(100 * cpu / wall, 2), "inference_cpu_percent": round(100 * infer[0] / wall, 2),
            "resampler_group_delay_ms": round(group_delay_ms, 1),
            # a frame leaves the device with its last sample: up to S-1 sample periods of waiting
            "device_buffer_ms": round(1e3 * (max(1, round(rate / 10)) - 1) / rate, 1) if protocol == "frame" else 0.0,
            "bytes_per_s": round(c["bytes"] / wall), "garbled": c["garbled"], "dropped": c["dropped"],
            "overruns": c["overruns"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--model", help="model or artifact folder with a 3-axis acc card (default: build one)")
    p.add_argument("--seconds", type=float, default=120.0, help="real-time seconds per run (~90 windows)")
    p.add_argument("--rates", default="50,200")
    p.add_argument("--protocols", default="text,frame")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("bench_bridge: set EDGEHAR_DATA or pass --data")
    import tempfile

    from edgehar.atomic import write_json, write_text
    from edgehar.runtime import Predictor

    root, out = Path(args.data), Path(args.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else build_default_model(root, out / "models")
    predictor = Predictor(model)
    recording = root / "banglejs_wrist" / "acc_exp01_user01.txt"
    runs = []
    with tempfile.TemporaryDirectory(prefix="edgehar-bench-") as tmp:
        for rate in [float(r) for r in args.rates.split(",")]:
            for protocol in args.protocols.split(","):
                r = run_once(predictor, recording, rate, protocol, args.seconds, Path(tmp))
                print(json.dumps(r), flush=True)
                runs.append(r)
    result = {"model": str(model), "backend": predictor.backend, "describe": predictor.describe(),
              "card": {"rate": predictor.card.rate, "window": predictor.card.window, "hop": predictor.card.hop},
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "runs": runs}
    write_json(out / "bridge.json", result)
    lines = ["# Live bridge: delay and CPU", "",
             f"Model `{Path(model).name}` ({predictor.backend}, {predictor.describe().get('input_dtype')} input), "
             f"card {predictor.card.rate:g} Hz, window {predictor.card.window}, hop {predictor.card.hop}; "
             f"Bangle.js user 1 replayed in real time by `edgehar device simulate`; {args.seconds:g} s per run, "
             f"{os.cpu_count()} shared CPU cores.", "",
             "| device rate | mode | windows | delay median (ms) | delay p99 (ms) | bridge CPU (% of a core) "
             "| of which inference | resampler group delay (ms) | device buffering (ms) | bytes/s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['rate_hz']:g} Hz | {r['protocol']} | {r['windows']} | {r['delay_ms_median']} | "
                     f"{r['delay_ms_p99']} | {r['cpu_percent']} | {r['inference_cpu_percent']} | "
                     f"{r['resampler_group_delay_ms']} | {r['device_buffer_ms']} | {r['bytes_per_s']} |")
    lines += ["", "Delay: bytes holding a window's last sample read off the port -> prediction ready. "
              "The resampler's group delay (offline-identical `resample_poly` filter) and the device's "
              "frame buffering come on top of it and are listed separately."]
    write_text(out / "bridge.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
