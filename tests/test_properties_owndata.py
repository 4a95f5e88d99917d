"""Property tests of the own-data contract over generated manifests and CSV contents: a folder
either loads into recordings whose windows are finite, or is refused with exactly one
`<file>[: line N]: <what>` UserError; never another exception; the input files unchanged.
A few generated folders also go through `python -m edgehar data check`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgehar.data.owndata import check_folder, load_folder
from edgehar.data.windows import make_windows
from edgehar.errors import UserError

COLUMNS = ["t", "ax", "ay", "az", "act"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

# JSON values of every type, for keys to get the wrong one
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) |
    st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
sane = {
    "rate": st.sampled_from([50, 25.0, 1e9, 1e-6, 0, -5, float("inf")]) | json_values,
    "time": st.fixed_dictionaries({"column": st.sampled_from(["t", "nope"])},
                                  optional={"unit": st.sampled_from(["s", "ms", "h"]) | json_values}) | json_values,
    "header": st.booleans() | json_values,
    "columns": st.just(COLUMNS) | st.lists(st.sampled_from(COLUMNS), max_size=5) | json_values,
    "channels": st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3) | json_values,
    "units": st.sampled_from(["g", "m/s^2", "deg/s"]) | st.lists(st.sampled_from(["g", "rad/s", "x"]),
                                                                  max_size=3) | json_values,
    "subject": st.sampled_from([{"value": "3"}, {"pattern": "^(\\w)"}, {"folder": 1}, {"column": "act"},
                                {"pattern": "("}]) | json_values,
    "label": st.sampled_from([{"column": "act"}, {"value": "walk"}, {"column": "ax"}]) | json_values,
    "classes": st.lists(st.sampled_from(["walk", "sit", "run"]), max_size=3) | json_values,
    "label_map": st.dictionaries(st.sampled_from(["walk", "sit"]), st.sampled_from(["walking", ""]),
                                 max_size=2) | json_values,
    "delimiter": st.sampled_from([",", ";", "\t", "ab"]) | json_values,
    "files": st.dictionaries(st.sampled_from(["a.csv", "b.csv", "sub/c.csv"]),
                             st.dictionaries(st.sampled_from(["rate", "label", "classes", "bogus"]),
                                             json_values, max_size=2) | json_values,
                             max_size=2) | json_values,
}
manifests = st.fixed_dictionaries({}, optional={**sane, "bogus": json_values})

cells = st.one_of(
    st.floats(-1e3, 1e3).map(lambda v: f"{v:.4g}"),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e400", "", " ", "x", "1,5", "3.5e38", "0x10"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
)


def _rows(draw_cells: list[list[str]], t0: float, step: float) -> list[str]:
    return [",".join([f"{t0 + i * step:.6g}", *row, "walk" if i % 3 else "sit"])
            for i, row in enumerate(draw_cells)]


@st.composite
def csv_texts(draw):
    n = draw(st.integers(0, 80))
    body = draw(st.lists(st.lists(st.floats(-20, 20).map(lambda v: f"{v:.5g}"), min_size=3, max_size=3),
                         min_size=n, max_size=n))
    rows = _rows(body, draw(st.sampled_from([0.0, 1.7e9])), draw(st.sampled_from([0.02, 0.01, 0.04])))
    for _ in range(draw(st.integers(0, 3))):  # damage: a cell, a row, a stamp, the header
        if not rows:
            break
        k = draw(st.integers(0, len(rows) - 1))
        kind = draw(st.sampled_from(["cell", "drop", "dup", "stamp", "blank", "semicolon"]))
        parts = rows[k].split(",")
        if kind == "cell":
            parts[draw(st.integers(0, len(parts) - 1))] = draw(cells)
            rows[k] = ",".join(parts)
        elif kind == "drop":
            rows[k] = ",".join(parts[:-1])
        elif kind == "dup":
            rows.insert(k, rows[k])
        elif kind == "stamp":
            rows[k] = ",".join([draw(st.sampled_from(["1e6", "-1", "1e9", "0"])), *parts[1:]])
        elif kind == "blank":
            rows.insert(k, "")
        else:
            rows[k] += ";"
    header = draw(st.sampled_from([",".join(COLUMNS)] * 6 + ["t,ax,ax,az,act", "t,ax,ay,az", "",
                                                          "t;ax;ay;az;act"]))
    return "\n".join([header, *rows]) + draw(st.sampled_from(["\n", "", "\r\n"]))


def _digests(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write(folder: Path, manifest, texts: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    (folder / "edgehar.json").write_text(json.dumps(manifest) if not isinstance(manifest, str) else manifest)
    for name, text in texts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


ERROR = re.compile(r"^\S.*?: .+$")  # "<file>[: line N]: <what>", one line


def _holds_contract(folder: Path) -> None:
    before = _digests(folder)
    try:
        recs = load_folder(folder)
    except UserError as e:
        assert "\n" not in e.message and ERROR.match(e.message), e.message
        assert e.where and Path(e.where).is_relative_to(folder), e.message
        assert re.search(r": line \d+[:,]", e.message) or ": line" not in e.message
    else:
        for r in recs:
            assert r.data.dtype == np.float32 and np.isfinite(r.data).all()
            assert 1 <= r.rate <= 10_000
            if r.n_samples >= 8:
                w = make_windows([r], 8, 4)
                assert np.isfinite(w.x).all()
    try:
        info = check_folder(folder)
        assert all("\n" not in p and ERROR.match(p) for p in info["problems"])
    except UserError as e:
        assert "\n" not in e.message
    assert _digests(folder) == before


@SETTINGS
@given(manifest=manifests, text=csv_texts())
def test_any_manifest_over_a_csv_loads_finite_or_is_one_line(manifest, text):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "d"
        _write(folder, manifest, {"a.csv": text})
        _holds_contract(folder)


@SETTINGS
@given(text=csv_texts(), timed=st.booleans(), rate=st.sampled_from([None, 50, 100]))
def test_any_csv_under_a_valid_manifest_loads_finite_or_is_one_line(text, timed, rate):
    manifest = {"label": {"column": "act"}, "subject": {"value": "1"}}
    if timed:
        manifest["time"] = {"column": "t"}
    if rate or not timed:
        manifest["rate"] = rate or 50
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "d"
        _write(folder, manifest, {"a.csv": text, "sub/b.csv": text})
        _holds_contract(folder)


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifest=manifests, text=csv_texts())
def test_data_check_cli_exits_0_or_2_with_one_line_per_problem(manifest, text):
    tmp = Path(tempfile.mkdtemp())
    try:
        folder = tmp / "d"
        _write(folder, manifest, {"a.csv": text})
        before = _digests(folder)
        r = subprocess.run([sys.executable, "-m", "edgehar", "data", "check", str(folder)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode in (0, 2), r.stderr
        assert "Traceback" not in r.stderr
        lines = r.stderr.splitlines()
        assert (r.returncode == 0) == (lines == [])
        assert all(ln.startswith(f"edgehar: error: {folder}") for ln in lines), r.stderr
        assert len(lines) <= 1  # one file: at most one problem
        assert _digests(folder) == before
    finally:
        shutil.rmtree(tmp)
