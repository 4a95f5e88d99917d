"""Own-data folders under careless and hostile input: every manifest mistake is one line on the
manifest before any CSV is read; non-finite or overlong cells, a time column that jumps, a
header naming a column twice, a dangling link or a pipe named `x.csv` are one line naming the
file (and line); a folder named `2024.csv` is a folder whose recordings are read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgehar.data import owndata
from edgehar.data.owndata import check_folder, load_folder
from edgehar.errors import UserError

GOOD = "t,acc_x,acc_y,acc_z,act\n" + "".join(f"{i * 0.02:.2f},{i},0,1,walk\n" for i in range(300))
LABELLED = {"rate": 50, "label": {"column": "act"}}
TIMED = {"time": {"column": "t"}, "label": {"column": "act"}}


def _folder(tmp_path, manifest, files, raw: str | None = None):
    folder = tmp_path / "d"
    folder.mkdir(parents=True)
    (folder / "edgehar.json").write_text(raw if raw is not None else json.dumps(manifest))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgehar", *args], capture_output=True, text=True)


def _one_error(folder, expected: str) -> None:
    with pytest.raises(UserError) as e:
        load_folder(folder)
    assert expected in e.value.message, e.value.message
    assert "\n" not in e.value.message


MANIFESTS = [  # (manifest or raw JSON text, what the one line says after "<folder>/edgehar.json: ")
    ({"rate": 50, "files": ["a.csv"]}, "files: expected an object"),
    ({"rate": 50, "files": {"a.csv": "sit"}}, 'files["a.csv"]: expected an object of overrides'),
    ({"rate": 50, "channels": 5}, "channels: expected a list of channel names"),
    ({"rate": 50, "units": 5}, "units: expected one of g, m/s^2, rad/s, deg/s"),
    ({"rate": 50, "units": ["g", "parsec"]}, "units[1]: expected one of g"),
    ({"time": {"column": "t", "unit": ["s"]}}, "time.unit: expected one of s, ms, us, ns"),
    ({"time": {"unit": "s"}}, 'time: no "column"'),
    ({"rate": 50, "subject": {"pattern": 5}}, "subject.pattern: expected a regular expression"),
    ({"rate": 50, "subject": {"pattern": "(unclosed"}}, "subject.pattern: not a regular expression"),
    ({"rate": 50, "label": {"folder": 0}}, "label.folder: expected a whole number >= 1"),
    ({"rate": 50, "label": "act"}, 'label: expected one of {"column": NAME}'),
    ({"rate": 50, "label_map": ["walking"]}, "label_map: expected an object"),
    ({"rate": 50, "delimiter": 5}, "delimiter: expected one character"),
    ({"rate": 1e9}, "rate: 1000000000.0 Hz is outside 1..10000 Hz"),
    ({"rate": 1e-6}, "rate: 1e-06 Hz is outside 1..10000 Hz"),
    ({"rate": True}, "rate: expected a number of Hz"),
    ('{"rate": Infinity}', "rate: Infinity Hz is outside 1..10000 Hz"),
    ('{"rate": NaN}', "rate: NaN Hz is outside"),
    ('{"rate": 50, "rate": 25}', "key 'rate' given twice"),
    ('{"rate": 50, ', "line 1: not valid JSON"),
    ("[50]", "expected a JSON object"),
    ({"rate": 50, "sampels": 3}, "unknown key 'sampels'"),
    ({"rate": 50, "files": {"a.csv": {"bogus": 1}}}, 'files["a.csv"]: unknown key \'bogus\''),
    ({"rate": 50, "files": {"a.csv": {"classes": ["walk"]}}}, "is folder-wide: move it to the top level"),
    ({"rate": 50, "files": {"a.csv": {"rate": "fast"}}}, 'files["a.csv"].rate: expected a number'),
    ({"rate": 50, "files": {"a.csv": {"label": {"value": ""}}}}, 'files["a.csv"].label.value: expected a non-empty'),
    ({"rate": 50, "files": {"b.csv": {"rate": 25}}}, 'files["b.csv"]: no such .csv file in the folder'),
    ({"rate": 50, "channels": ["acc_x", "acc_x"]}, "channels: 'acc_x' is listed twice"),
    ({"label": {"column": "act"}}, 'no "rate" and no "time" column'),
    ({"rate": 50, "header": False}, '"header": false needs "columns"'),
]


@pytest.mark.parametrize("manifest,expected", MANIFESTS, ids=[m[1][:40] for m in MANIFESTS])
def test_a_manifest_mistake_is_one_line_on_the_manifest_before_any_file_is_read(
        tmp_path, monkeypatch, manifest, expected):
    raw = manifest if isinstance(manifest, str) else None
    folder = _folder(tmp_path, manifest, {"a.csv": GOOD}, raw=raw)

    def no_reading(*args, **kwargs):
        raise AssertionError("a CSV was read before the manifest was checked")

    monkeypatch.setattr(owndata, "read_table", no_reading)
    with pytest.raises(UserError) as e:
        check_folder(folder)
    assert e.value.message == f"{folder / 'edgehar.json'}: {e.value.what}"
    assert expected in e.value.what, e.value.what


def test_a_manifest_mistake_through_the_cli_is_one_line_and_exit_2(tmp_path):
    folder = _folder(tmp_path, {"rate": 50, "files": {"a.csv": "sit"}}, {"a.csv": GOOD})
    for action in ("check", "summary"):
        r = _cli("data", action, str(folder))
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == (f"edgehar: error: {folder / 'edgehar.json'}: files[\"a.csv\"]: expected an "
                            "object of overrides, e.g. {\"label\": {\"value\": \"sit\"}}, got a string 'sit'\n")


def test_a_manifest_record_writes_passes_the_schema(tmp_path):
    folder = _folder(tmp_path, {
        "format": "edgehar-record/1", "time": {"column": "time", "unit": "s"}, "subject": {"value": "0"},
        "files": {"a.csv": {"label": {"value": "walk"}, "subject": {"value": "3"}, "rate": 50.0,
                            "units": ["g"] * 3, "samples": 300, "ended_by": "seconds",
                            "counters": {"bytes": 10, "garbled": 0}}}},
        {"a.csv": GOOD.replace(",act", "").replace(",walk", "").replace("t,", "time,", 1)})
    (rec,) = load_folder(folder)
    assert rec.n_samples == 300 and rec.rate == 50.0 and rec.meta["subject_name"] == "3"


@pytest.mark.parametrize("cell,what", [
    ("nan", "nan is not a finite number"), ("NaN", "nan is not a finite number"),
    ("inf", "inf is not a finite number"), ("Infinity", "inf is not a finite number"),
    ("-inf", "-inf is not a finite number"), ("1e400", "inf is not a finite number"),
    ("3.5e38", "3.5e+38 is beyond the float32 range"),
])
def test_a_non_finite_cell_is_refused_with_file_and_line(tmp_path, cell, what):
    folder = _folder(tmp_path, LABELLED, {"a.csv": GOOD.replace(",150,0,1", f",{cell},0,1")})
    _one_error(folder, f"a.csv: line 152, column 'acc_x': {what}")
    assert any("line 152" in p for p in check_folder(folder)["problems"])


def test_a_nan_time_cell_is_refused_with_file_and_line(tmp_path):
    folder = _folder(tmp_path, TIMED, {"a.csv": GOOD.replace("\n2.00,100", "\nnan,100")})
    _one_error(folder, "a.csv: line 102, column 't': nan is not a finite number")


def test_a_cell_too_long_to_be_a_number_is_refused_with_file_and_line(tmp_path):
    folder = _folder(tmp_path, LABELLED, {"a.csv": GOOD.replace(",150,0,1", "," + "1" * 5000 + ",0,1")})
    _one_error(folder, "a.csv: line 152, column 'acc_x': a cell of 5000 characters is no number")
    folder2 = _folder(tmp_path / "2", LABELLED, {"a.csv": GOOD.replace("walk\n", "walk" + "k" * 5000 + "\n", 1)})
    _one_error(folder2, "a.csv: line 2, column 'act': a cell of 5004 characters (at most 1000)")


def test_a_line_without_end_is_refused_before_it_is_read_whole(tmp_path, monkeypatch):
    from edgehar.data import fastparse

    monkeypatch.setattr(fastparse, "CHUNK", 64)  # the line starts in a chunk and runs on
    folder = _folder(tmp_path, {"rate": 50}, {"a.csv": "x,y\n1,2\n" + "1" * 300_000})
    _one_error(folder, "a.csv: line 3: over")


def test_a_glitched_stamp_is_a_jump_reported_before_resampling(tmp_path, monkeypatch):
    from edgehar.data import resample

    def no_resampling(*args, **kwargs):
        raise AssertionError("resampled before the time column was checked")

    monkeypatch.setattr(resample, "resample_on_times", no_resampling)
    folder = _folder(tmp_path, TIMED, {"a.csv": GOOD + "1000000,1,2,3,walk\n"})
    _one_error(folder, "a.csv: line 302, column 't': time jumps 999994 s from the line before")
    glitch_first = "t,acc_x,acc_y,acc_z,act\n1e9,0,0,1,walk\n" + GOOD.split("\n", 1)[1].replace(
        "\n0.00,", "\n2e9,", 1)
    folder2 = _folder(tmp_path / "2", TIMED, {"a.csv": glitch_first})
    _one_error(folder2, "a.csv: line 3: time goes backwards")


def test_a_rate_far_above_the_times_is_refused_not_interpolated(tmp_path):
    folder = _folder(tmp_path, {**TIMED, "rate": 10000}, {"a.csv": GOOD})
    _one_error(folder, "a.csv: column 't': 300 samples over 5.98 s would be interpolated onto")


def test_a_short_pause_is_still_interpolated(tmp_path):
    rows = GOOD.splitlines()
    paused = "\n".join(rows[:150] + [f"{float(r.split(',')[0]) + 0.5:.2f}," + r.split(",", 1)[1]
                                     for r in rows[150:]]) + "\n"
    folder = _folder(tmp_path, TIMED, {"a.csv": paused})
    (rec,) = load_folder(folder)
    assert rec.meta["resampled"] and rec.rate == 50.0 and rec.n_samples == 325
    assert np.isfinite(rec.data).all() and (rec.labels == 0).all()


def test_a_header_naming_a_column_twice_is_an_error_not_a_dropped_column(tmp_path):
    folder = _folder(tmp_path, LABELLED, {"a.csv": GOOD.replace("t,acc_x,acc_y", "t,acc_x,acc_x")})
    _one_error(folder, "a.csv: line 1: the header names column 'acc_x' twice")


def test_empty_and_headerless_files_are_one_line(tmp_path):
    folder = _folder(tmp_path, {"rate": 50}, {"a.csv": ""})
    _one_error(folder, "a.csv: empty file")
    folder2 = _folder(tmp_path / "2", {"rate": 50}, {"a.csv": "x,y\n"})
    _one_error(folder2, "a.csv: no data rows")


def test_a_dangling_link_and_a_pipe_are_problems_and_a_folder_named_csv_is_read(tmp_path):
    folder = _folder(tmp_path, LABELLED, {"a.csv": GOOD, "2024.csv/b.csv": GOOD})
    os.symlink("gone.csv", folder / "x.csv")
    os.mkfifo(folder / "p.csv")  # reading it would block for ever
    info = check_folder(folder)
    assert sorted(f["file"] for f in info["files"] if f["ok"]) == [
        str(folder / "2024.csv" / "b.csv"), str(folder / "a.csv")]
    assert info["problems"] == [
        f"{folder / 'p.csv'}: not a regular file (a device, socket or pipe): remove it",
        f"{folder / 'x.csv'}: a symbolic link to 'gone.csv', which does not exist: restore the file "
        "or remove the link"]
    r = _cli("data", "check", str(folder))
    assert r.returncode == 2 and r.stderr.count("edgehar: error: ") == 2 and "Traceback" not in r.stderr
    os.unlink(folder / "x.csv")
    os.unlink(folder / "p.csv")
    assert [rec.name for rec in load_folder(folder)] == ["2024.csv/b", "a"]


def test_hidden_files_and_folders_are_not_recordings(tmp_path):
    folder = _folder(tmp_path, LABELLED, {"a.csv": GOOD, ".staging/b.csv": "junk", ".c.csv": "junk"})
    assert [rec.name for rec in load_folder(folder)] == ["a"]


def test_chunked_reading_gives_the_rows_and_lines_of_a_large_file(tmp_path, monkeypatch):
    from edgehar.data import fastparse

    monkeypatch.setattr(fastparse, "CHUNK", 64)  # many chunks, lines cut at chunk ends
    rows = ["t,acc_x,acc_y,acc_z,act"] + [f"{i * 0.02:.2f},{i},{-i},{i % 7},{'walk' if i < 500 else 'sit'}"
                                          for i in range(1000)]
    rows.insert(400, "")  # blank lines are no rows but count as lines
    rows.insert(401, "   ")
    folder = _folder(tmp_path, LABELLED, {"a.csv": "\r\n".join(rows) + "\r\n"})
    (rec,) = load_folder(folder)
    assert rec.channels == ("t", "acc_x", "acc_y", "acc_z")  # no time key: t is a channel
    np.testing.assert_array_equal(rec.data[:, 1], np.arange(1000))
    np.testing.assert_array_equal(rec.data[:, 2], -np.arange(1000))
    assert rec.label_names == ("sit", "walk") and (rec.labels[:500] == 1).all() and (rec.labels[500:] == 0).all()
    rows[900] = rows[900].replace(",sit", ",oops,sit")
    (folder / "a.csv").write_text("\n".join(rows) + "\n")
    _one_error(folder, "a.csv: line 901: 6 values, expected 5")
    rows[900] = "17.96,x,0,0,sit"
    (folder / "a.csv").write_text("\n".join(rows) + "\n")
    _one_error(folder, "a.csv: line 901, column 'acc_x': not a number: 'x'")
