"""Generic CSV loader: time formats, rate, columns, units, labels, delimiters and the errors."""

from datetime import datetime, timezone

import numpy as np
import pytest

from edgehar.data.csvfile import load_csv
from edgehar.errors import UserError


def write(tmp_path, text, name="rec.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def rows(n, rate, time=lambda t: f"{t:.3f}", end=""):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).round(5)
    lines = [f"{time(i / rate)},{a},{b},{c}{end}" for i, (a, b, c) in enumerate(x)]
    return x, lines


def test_seconds_time_column_gives_rate_and_data(tmp_path):
    x, lines = rows(200, 50.0)
    rec = load_csv(write(tmp_path, "time,acc_x,acc_y,acc_z\n" + "\n".join(lines) + "\n"))
    assert rec.rate == 50.0 and rec.channels == ("acc_x", "acc_y", "acc_z")
    assert rec.units == ("g",) * 3 and rec.n_samples == 200 and rec.labels is None
    np.testing.assert_allclose(rec.data, x, atol=1e-6)
    assert rec.meta["time_format"] == "seconds" and rec.meta["time_jumps"] == 0
    assert rec.start_time is None and rec.name == "rec"


def test_clock_times_and_trailing_semicolons_bangle_style(tmp_path):
    def clock(t):
        t += 6120.018  # 01:42:00.018
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"
    x, lines = rows(300, 50.0, clock, end=";")
    rec = load_csv(write(tmp_path, "time,acc_x,acc_y,acc_z\r\n" + "\r\n".join(lines) + "\r\n"))
    assert rec.rate == 50.0 and rec.meta["time_format"] == "clock"
    assert rec.meta["start_clock"] == "01:42:00.018"
    np.testing.assert_allclose(rec.data, x, atol=1e-6)


def test_iso_datetimes_set_start_time(tmp_path):
    t0 = datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc).timestamp()
    x, lines = rows(100, 100.0, lambda t: datetime.fromtimestamp(t0 + t, timezone.utc)
                    .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
    rec = load_csv(write(tmp_path, "timestamp,ax,ay,az\n" + "\n".join(lines)))
    assert rec.rate == 100.0 and rec.start_time == pytest.approx(t0)
    assert rec.channels == ("ax", "ay", "az") and rec.meta["time_column"] == "timestamp"


def test_rate_needed_without_time_column(tmp_path):
    p = write(tmp_path, "x,y,z\n1,2,3\n4,5,6\n")
    with pytest.raises(UserError, match="no time column and no rate given"):
        load_csv(p)
    rec = load_csv(p, rate=25, units="m/s^2")
    assert rec.rate == 25.0 and rec.units == ("m/s^2",) * 3
    np.testing.assert_array_equal(rec.data, [[1, 2, 3], [4, 5, 6]])


def test_rate_argument_wins_over_time_steps(tmp_path):
    _, lines = rows(20, 50.0)
    rec = load_csv(write(tmp_path, "time,a,b,c\n" + "\n".join(lines)), rate=52.0)
    assert rec.rate == 52.0


def test_non_numeric_cell_names_line_and_column(tmp_path):
    p = write(tmp_path, "time,acc_x,acc_y\n0.00,1,2\n\n0.02,abc,3\n")
    with pytest.raises(UserError) as e:
        load_csv(p)
    assert str(e.value) == f"{p}: line 4, column 'acc_x': not a number: 'abc'"


def test_bad_time_cell_and_ragged_row(tmp_path):
    p = write(tmp_path, "time,a\n00:00:00.00,1\n00:00:00.02,2\nnoon,3\n")
    with pytest.raises(UserError, match=r"line 4, column 'time': not a HH:MM:SS time: 'noon'"):
        load_csv(p)
    p = write(tmp_path, "time,a,b\n0,1,2\n0.1,1\n")
    with pytest.raises(UserError, match=r"line 3: 2 cells, the header has 3"):
        load_csv(p)


def test_label_column_and_default_columns_skip_text(tmp_path):
    text = ("t,acc_x,acc_y,note,activity,gyro_x\n"
            "0.0,1,2,hi,walk,0.1\n0.1,1,2,hi,walk,0.2\n0.2,1,2,hi,,0.3\n0.3,1,2,hi,sit,0.4\n")
    rec = load_csv(write(tmp_path, text), label_column="activity",
                   units=["g", "g", "rad/s"])
    assert rec.channels == ("acc_x", "acc_y", "gyro_x") and rec.rate == 10.0
    assert rec.units == ("g", "g", "rad/s")
    assert rec.label_names == ("sit", "walk") and rec.labels.tolist() == [1, 1, -1, 0]
    ids = load_csv(write(tmp_path, "a,class\n1,10\n2,2\n3,2\n"), rate=1, label_column="class")
    assert ids.label_names == ("2", "10") and ids.labels.tolist() == [1, 0, 0]


def test_chosen_columns_order_and_errors(tmp_path):
    p = write(tmp_path, "time,acc_x,acc_y,acc_z\n0,1,2,3\n0.5,4,5,6\n")
    rec = load_csv(p, columns=["acc_z", "acc_x"], units="deg/s")
    assert rec.channels == ("acc_z", "acc_x") and rec.rate == 2.0
    np.testing.assert_array_equal(rec.data, [[3, 1], [6, 4]])
    with pytest.raises(UserError, match=r"no data column 'gyro_x' \(columns: time, acc_x"):
        load_csv(p, columns=["gyro_x"])
    with pytest.raises(UserError, match="unknown unit 'mg'"):
        load_csv(p, units="mg")
    with pytest.raises(UserError, match="2 units given for 3 columns"):
        load_csv(p, units=["g", "g"])
    with pytest.raises(UserError, match="no time column 'clock'"):
        load_csv(p, time_column="clock")


def test_delimiters_semicolon_tab_space(tmp_path):
    for sep in (";", "\t", " "):
        text = sep.join(["time", "a", "b"]) + "\n" + "\n".join(
            sep.join([f"{i * 0.04:.2f}", str(i), str(-i)]) + (";" if sep == ";" else "")
            for i in range(10))
        rec = load_csv(write(tmp_path, text, f"d{ord(sep)}.csv"))
        assert rec.rate == 25.0 and rec.channels == ("a", "b")
        np.testing.assert_array_equal(rec.data[:, 1], -np.arange(10))


def test_time_jumps_do_not_bias_the_rate(tmp_path):
    t = np.concatenate([np.arange(100) * 0.02, 500 + np.arange(100) * 0.02, 100 + np.arange(50) * 0.02])
    text = "time,a\n" + "\n".join(f"{v:.3f},1" for v in t)
    rec = load_csv(write(tmp_path, text))
    assert rec.rate == 50.0 and rec.meta["time_jumps"] == 2


def test_empty_header_only_and_headerless(tmp_path):
    with pytest.raises(UserError, match="empty file"):
        load_csv(write(tmp_path, "\n\n"))
    with pytest.raises(UserError, match="no data rows"):
        load_csv(write(tmp_path, "time,a\n"))
    with pytest.raises(UserError, match="no header row"):
        load_csv(write(tmp_path, "0,1,2\n1,2,3\n"), rate=10)


def test_real_banglejs_file(data_root):
    path = data_root / "banglejs_wrist" / "acc_exp01_user01.txt"
    rec = load_csv(path)
    assert rec.rate == 50.0 and rec.channels == ("acc_x", "acc_y", "acc_z")
    assert rec.n_samples == 60100 and rec.meta["time_format"] == "clock"
    assert rec.meta["time_jumps"] >= 3  # stitched from separately recorded 5-minute sessions
    np.testing.assert_allclose(rec.data[0], [0.66870, -0.00879, -0.76587], atol=1e-6)
    assert 0.9 < np.median(np.linalg.norm(rec.data, axis=1)) < 1.1


def test_read_in_chunks_same_recording_and_lines(tmp_path, monkeypatch):
    from edgehar.data import fastparse

    def clock(t):
        return f"00:00:{t:06.3f}"
    x, lines = rows(500, 50.0, clock, end=";")
    labels = ["walk" if i < 250 else ("" if i % 7 else "sit") for i in range(500)]
    lines = [f"{line[:-1]},{lab};" for line, lab in zip(lines, labels)]
    lines[100:100] = ["# a comment line", "", "   "]  # lines, not rows
    p = write(tmp_path, "# exported by a watch\ntime,acc_x,acc_y,acc_z,act\n" + "\n".join(lines) + "\n")
    whole = load_csv(p, label_column="act")
    for chunk in (64, 8):  # lines cut at chunk ends; 8: a chunk of nothing but a comment
        monkeypatch.setattr(fastparse, "CHUNK", chunk)
        chunked = load_csv(p, label_column="act")
        assert whole.data.tobytes() == chunked.data.tobytes() and whole.meta == chunked.meta
    np.testing.assert_allclose(chunked.data, x, atol=1e-6)
    assert chunked.label_names == ("sit", "walk") and chunked.labels.tolist() == [
        {"walk": 1, "sit": 0, "": -1}[lab] for lab in labels]
    bad = p.read_text().replace("00:00:09.000", "00:00:08.970")  # row 450: line 456
    with pytest.raises(UserError, match=r"line 456, column 'time': time goes back 0.01 s"):
        load_csv(write(tmp_path, bad), label_column="act")
    bad = p.read_text().replace("00:00:09.020,", "00:00:09.020,x")
    with pytest.raises(UserError, match=r"line 457, column 'acc_x': not a number: 'x"):
        load_csv(write(tmp_path, bad))


def test_an_overlong_line_is_measured_without_reading_it_whole(tmp_path, monkeypatch):
    from edgehar.data import fastparse

    monkeypatch.setattr(fastparse, "CHUNK", 64)
    p = write(tmp_path, "time,a\n0,1\n0.1,2\n0.2," + "1" * 300_000 + "\n0.3,4\n")
    with pytest.raises(UserError, match=r"line 4: over \d+ characters, with a cell of 300000"):
        load_csv(p)
    with pytest.raises(UserError, match=r"line 1: over 100000 characters, with a cell of 200000"):
        load_csv(write(tmp_path, "time," + "a" * 200_000 + "\n0,1\n"))
    with pytest.raises(UserError, match=r"line 1: a cell of 1001 characters \(at most 1000\)"):
        load_csv(write(tmp_path, "time," + "a" * 1001 + "\n0,1\n"))


def test_binary_header_quoted_names_and_columns_named_twice(tmp_path):
    with pytest.raises(UserError, match=r"line 2: a NUL byte"):
        load_csv(write(tmp_path, "# log\ntime,\x00a\n0,1\n"))
    p = write(tmp_path, '"time","a","b"\n0,1,2\n0.5,3,4\n')
    rec = load_csv(p, columns=["b", "a", "b", "time"])
    assert rec.channels == ("b", "a", "b", "time") and rec.rate == 2.0
    np.testing.assert_array_equal(rec.data, [[2, 1, 2, 0], [4, 3, 4, 0.5]])
    with pytest.raises(UserError, match=r"line 2: 2 cells, the header has 3"):
        load_csv(write(tmp_path, "time,a,b\n0,1\n"))


def test_blank_separated_columns_may_be_aligned(tmp_path):
    rec = load_csv(write(tmp_path, "time   a    b\n0.00   1   -1\n0.04  10  -10\n0.08   2   -2\n"))
    assert rec.rate == 25.0 and rec.channels == ("a", "b")
    np.testing.assert_array_equal(rec.data, [[1, -1], [10, -10], [2, -2]])
