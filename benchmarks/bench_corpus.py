"""Pooled-corpus build and streaming: time, bytes, windows per data set and class, peak RSS.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_corpus.py [--data LIST] [--rate 50] [--window 128]

Builds the corpus of every named wrist set + HAPT + Axivity (`edgehar data corpus build`'s
code) into benchmarks/results/tmp/corpus (replaced each run), then streams every shard back in
a fresh subprocess and reports that process's peak RSS (`resource.getrusage`, ru_maxrss) next
to the corpus bytes: streaming reads through memory maps, so the peak stays far below the
corpus size. The build runs in its own subprocess too (and its time is measured there). Writes `corpus.json` + `corpus.md` under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = "hapt,wisdm_watch,dsads,geotec_watch,axivity"
BUILD = """
import json, sys, time
from edgehar.data.corpus import build_corpus
t = time.perf_counter()
build_corpus(sys.argv[1].split(","), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
print(time.perf_counter() - t)
"""
# its own process, started from this small one: Linux keeps ru_maxrss across fork + exec, so a
# child of the (large) building process would report the builder's peak
STREAM = """
import resource, sys, time
from edgehar.data.corpus import stream
t = time.perf_counter(); n = 0; total = 0.0
for x, meta in stream(sys.argv[1], split=None, rank=0, world=1, batch=1024):
    n += len(x); total += float(x[:, :, 0].sum())
print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT, help=f"data sets (default {DEFAULT})")
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--out", default=str(HERE / "results"), help="folder for corpus.json/.md")
    args = p.parse_args()
    if not os.environ.get("EDGEHAR_DATA"):
        sys.exit("bench_corpus: set EDGEHAR_DATA")
    work = HERE / "results" / "tmp" / "corpus"
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", BUILD, args.data, str(args.rate), str(args.window), str(work)],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench_corpus: build failed: {r.stderr.strip().splitlines()[-1]}")
    build_s = float(r.stdout.split()[-1])
    m = json.loads((work / "corpus.json").read_text())
    r = subprocess.run([sys.executable, "-c", STREAM, str(work)], capture_output=True, text=True, check=True)
    n, stream_s, rss = r.stdout.split()
    assert int(n) == m["windows"]
    result = {"command": f"EDGEHAR_DATA=... python benchmarks/bench_corpus.py --data {args.data} "
                         f"--rate {args.rate:g} --window {args.window}",
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
              "rate": args.rate, "window": args.window, "hop": m["hop"], "channels": m["channels"],
              "build_seconds": round(build_s, 1), "bytes": m["bytes"], "windows": m["windows"],
              "shards": len(m["shards"]), "stream_seconds": round(float(stream_s), 1),
              "stream_peak_rss_bytes": int(rss), "per_dataset": m["counts"], "splits": m["splits"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Pooled corpus ({args.data})", "", f"Command: `{result['command']}` ({result['date']}).", "",
             f"{m['windows']} windows of {args.window} samples at {args.rate:g} Hz, channels "
             f"{', '.join(m['channels'])} (absent ones zero, masked); {m['bytes'] / 1e6:.1f} MB in "
             f"{len(m['shards'])} shards; built in {build_s:.1f} s; streamed back in "
             f"{float(stream_s):.1f} s with a peak RSS of {int(rss) / 1e6:.0f} MB (measured).", "",
             "| data set | windows | train | validation | test | classes (windows) |", "|---|---:|---:|---:|---:|---|"]
    for name, c in m["counts"].items():
        cls = ", ".join(f"{k} {v}" for k, v in c["per_class"].items())
        s = c["per_split"]
        lines.append(f"| {name} | {c['windows']} | {s['train']} | {s['validation']} | {s['test']} | {cls} |")
    (out / "corpus.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
