"""`benchmarks/run_all.py --fast` end to end on real HAPT: the README table's code path, with
every choice made on validation and every model made by the recipes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data]
REPO = Path(__file__).resolve().parents[1]


def test_fast_plan_writes_the_whole_table(data_root, tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "EDGEHAR_DATA": str(data_root)}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--fast", "--only", "harfm",
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["selection"] == {"best_teacher": "harfm", "chosen_on": "validation macro-F1",
                              "validation_macro_f1": s["selection"]["validation_macro_f1"]}
    val, test = set(s["data"]["validation_subjects"]), set(s["data"]["test_subjects"])
    assert val and not val & test
    kinds = {(row["name"], row["format"]) for row in s["rows"]}
    for size in ("tiny", "small"):
        for fmt in ("fp32 TFLite", "int8 TFLite", "fp32 ONNX", "int8 ONNX"):
            assert (f"student {size}", fmt) in kinds
    assert {"plain 3-layer 1-D CNN", "TinyHAR"} <= {n for n, _ in kinds}
    # the baselines with a full-int8 export get the students' four rows, int8 TFLite measured on M4 / M55
    for name in ("plain 3-layer 1-D CNN", "Ignatov CNN (STM32 zoo 'ign')", "TinyHAR (TFLM variant)"):
        int8 = [r for r in s["rows"] if r["name"] == name and r["format"] == "int8 TFLite"]
        assert len(int8) == 1 and int8[0]["kind"] == "baseline" and int8[0]["arena_bytes"]
        if os.environ.get("EDGEHAR_TOOLCHAINS"):
            assert int8[0]["m4_instructions"] > 0 and int8[0]["m55_instructions"] > 0
    # a folder outside the checkout and the data is this machine's: shown as .../NAME
    assert s["provenance"]["command"].endswith("run_all.py --fast --only harfm --out .../results")
    assert s["provenance"]["cpu_seconds"] > 0 and not s["failures"]
    # every model was made by this run and recorded by content hash
    manifest = json.loads((out / "models" / "manifest.json").read_text())
    assert set(manifest) == {"teacher_harfm.pt", "student_tiny.pt", "student_small.pt", "cnn.pt",
                             "ignatov.pt", "tinyhar.pt", "tinyhar_tflm.pt"} and s["reused_models"] == {}
    md = (out / "summary.md").read_text()
    assert md.count("\n| student ") == 8 and (out / "f1_vs_macs.png").stat().st_size > 0
