"""Peak memory of `edgehar data check` and `edgehar data summary` on a large own-data CSV.

    python benchmarks/bench_memory.py [--mb 200]

Generates an own-data folder holding one CSV of about `--mb` MB (`time,acc_x,acc_y,acc_z,act`:
a 50 Hz time column, three channels, a label) in a temporary folder (removed after; never
committed), runs each command as a user would (`python -m edgehar data ACTION FOLDER`) and
reads the child's peak RSS and CPU time from `os.wait4`. The figure to hold is the peak above
an interpreter that ran the same command on a 300-row folder, against the float32 size of the
samples the file holds (rows x 4 numeric columns x 4 bytes): the target is <= 2x. Writes
benchmarks/results/memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from edgehar.bench.provenance import Run  # noqa: E402

TARGET = 2.0
NUMERIC_COLUMNS = 4  # time + 3 channels


def write_csv(path: Path, megabytes: float, seed: int = 0) -> int:
    """A realistic own-data take: 50 Hz stamps in s, acc in g with noise, a label per 10 s."""
    rng = np.random.default_rng(seed)
    rows, size, block = 0, 0, 200_000
    with open(path, "w") as f:
        f.write("time,acc_x,acc_y,acc_z,act\n")
        while size < megabytes * 1e6:
            i = np.arange(rows, rows + block)
            acc = rng.normal([0, 0, 1], 0.3, size=(block, 3))
            acts = np.where((i // 500) % 2 == 0, "walk", "sit")
            text = "".join(f"{t:.2f},{a:.6f},{b:.6f},{c:.6f},{s}\n"
                           for t, (a, b, c), s in zip(i * 0.02, acc, acts))
            f.write(text)
            size += len(text)
            rows += block
    return rows


def run_child(argv: list[str]) -> dict:
    """Exit status, peak RSS (bytes) and CPU seconds of one command, from `os.wait4` (a forked
    child's own rusage: not this process's, which `RUSAGE_CHILDREN` would mix in)."""
    pid = os.fork()
    if pid == 0:  # the child execs the command; its rusage is its own
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    return {"exit": os.waitstatus_to_exitcode(status), "peak_rss_bytes": usage.ru_maxrss * 1024,
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=200.0, help="size of the generated CSV in MB (default 200)")
    p.add_argument("--out", default=str(HERE / "results"), help="folder for memory.json/.md")
    args = p.parse_args()
    run = Run(__file__, repo=REPO)
    rows_by_action = {}
    with tempfile.TemporaryDirectory(prefix="edgehar-bench-memory-") as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        for folder in (big, small):
            folder.mkdir()
            (folder / "edgehar.json").write_text(json.dumps(
                {"time": {"column": "time", "unit": "s"}, "label": {"column": "act"}, "units": "g"}))
        rows = write_csv(big / "take.csv", args.mb)
        (small / "take.csv").write_text("time,acc_x,acc_y,acc_z,act\n" + "".join(
            f"{i * 0.02:.2f},0.1,0.2,1.0,{'walk' if i < 150 else 'sit'}\n" for i in range(300)))
        file_bytes = (big / "take.csv").stat().st_size
        samples_f32 = rows * NUMERIC_COLUMNS * 4
        for action in ("check", "summary"):
            base = run_child([sys.executable, "-m", "edgehar", "data", action, str(small)])
            peak = run_child([sys.executable, "-m", "edgehar", "data", action, str(big)])
            if base["exit"] or peak["exit"]:
                sys.exit(f"bench_memory: data {action} exited {base['exit']}/{peak['exit']}")
            above = peak["peak_rss_bytes"] - base["peak_rss_bytes"]
            rows_by_action[action] = {
                "command": f"python -m edgehar data {action} FOLDER",
                "peak_rss_bytes": peak["peak_rss_bytes"], "baseline_rss_bytes": base["peak_rss_bytes"],
                "above_baseline_bytes": above, "cpu_seconds": peak["cpu_seconds"],
                "ratio_to_float32_samples": round(above / samples_f32, 2),
                "ratio_total_to_float32_samples": round(peak["peak_rss_bytes"] / samples_f32, 2),
                "within_target": above <= TARGET * samples_f32}
    result = {**run.stamp(), "csv_bytes": file_bytes, "rows": rows, "numeric_columns": NUMERIC_COLUMNS,
              "float32_samples_bytes": samples_f32, "target_ratio": TARGET, "commands": rows_by_action}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    mb = 1e6
    lines = ["# Memory of `data check` and `data summary` on a large own-data CSV", "",
             f"Command: `{result['command']}` at {result['commit']} ({result['finished']}, "
             f"{result['hardware']['cpu']}, {result['hardware']['cores']} cores); "
             f"{result['cpu_seconds']} CPU s in all.", "",
             f"One generated CSV of {file_bytes / mb:.0f} MB: {rows} rows of `time,acc_x,acc_y,acc_z,act` "
             f"(50 Hz, in a temporary folder). Its samples as float32 (rows x {NUMERIC_COLUMNS} numeric "
             f"columns x 4 B): {samples_f32 / mb:.0f} MB. Peak RSS from `os.wait4` of the command; "
             "the baseline is the same command on a 300-row folder (the interpreter and its imports).", "",
             "| command | peak RSS | baseline | above baseline | / float32 samples | target | CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for action, r in rows_by_action.items():
        lines.append(f"| `edgehar data {action}` | {r['peak_rss_bytes'] / mb:.0f} MB | "
                     f"{r['baseline_rss_bytes'] / mb:.0f} MB | {r['above_baseline_bytes'] / mb:.0f} MB | "
                     f"{r['ratio_to_float32_samples']:.2f}x | <= {TARGET:g}x "
                     f"{'(met)' if r['within_target'] else '(NOT met)'} | {r['cpu_seconds']} |")
    (out / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
