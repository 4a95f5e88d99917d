"""Text mode (Edge Impulse data forwarder lines): parsing, axis detection, ERR/# lines, cut
lines, and a parser that no byte string can crash."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgehar.bridge.protocol_text import DETECT_LINES, DeviceError, Info, LineParser, Reading, parse_numbers
from edgehar.bridge.virtual_device import _TEXT_GARBAGE, format_line


def _feed(parser, data: bytes, chunk: int = 5) -> list:
    out = []
    for i in range(0, len(data), chunk):
        out += parser.feed(data[i:i + chunk])
    return out


def test_separators_first_line_err_and_info():
    p = LineParser()
    stream = (b"3,-0.5,cut line\r\n"  # first line after connect: maybe cut, dropped
              b"# edgehar rate=50 channels=acc_x,acc_y,acc_z units=g,g,g\r\n"
              b"1,2,3\n1.5\t-2e-3\t3\r\n  4 5 6 ;\n7,8\nERR imu not responding\r\nnan,1,2\n9,x,1\n10,11,12\n")
    out = _feed(p, stream)
    readings = [o.values for o in out if isinstance(o, Reading)]
    assert readings == [(1, 2, 3), (1.5, -0.002, 3), (4, 5, 6), (10, 11, 12)]
    assert [o.text for o in out if isinstance(o, DeviceError)] == ["ERR imu not responding"]
    assert [o.fields["rate"] for o in out if isinstance(o, Info)] == ["50"]
    assert p.axes == 3
    assert p.counts == {"lines": 9, "readings": 4, "garbled": 3, "errors": 1, "truncated": 1}


def test_axis_count_by_majority_and_held_lines_released():
    p = LineParser()
    lines = [b"1,2,3,4,5,6\n"] * (DETECT_LINES - 1) + [b"1,2\n", b"6,5,4,3,2,1\n"]
    out = _feed(p, b"\n" + b"".join(lines), chunk=3)
    assert p.axes == 6
    assert len(out) == DETECT_LINES  # every 6-value line, in order; the 2-value one is garbled
    assert out[-1].values == (6, 5, 4, 3, 2, 1)
    assert p.counts["garbled"] == 1


def test_cut_last_line_and_endless_garbage():
    p = LineParser(axes=3)
    assert len(p.feed(b"\n1,2,3\n4,5")) == 1
    p.connection_lost()
    assert p.counts["truncated"] == 1
    p.feed(b"6\n")  # the rest of the cut line after reconnect: dropped as a first line
    assert p.counts["truncated"] == 2 and p.counts["readings"] == 1
    p.feed(b"x" * 5000)  # a stream of junk without newline: bounded memory, resync later
    out = p.feed(b"\n7,8,9\n")
    assert [o.values for o in out] == [(7, 8, 9)]
    assert p.counts["garbled"] >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 50), st.sampled_from([None, 1, 3, 6]))
def test_parser_never_raises(data, chunk, axes):
    p = LineParser(axes=axes)
    for item in _feed(p, data, chunk):
        assert isinstance(item, (Reading, DeviceError, Info))
        if isinstance(item, Reading):
            assert len(item.values) == p.axes and all(math.isfinite(v) for v in item.values)
    p.connection_lost()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(-1e4, 1e4, width=32), min_size=3, max_size=3), min_size=1, max_size=40),
       st.integers(1, 40))
def test_device_lines_roundtrip_exactly(rows, chunk):
    rows = np.asarray(rows, np.float32)
    stream = b"\r\n" + b"".join(format_line(r) for r in rows)
    p = LineParser(axes=3)
    got = np.asarray([o.values for o in _feed(p, stream, chunk)], np.float32)
    np.testing.assert_array_equal(got, rows)  # float32 written shortest-exact, read back bit-equal


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=8).map(lambda b: bytes(_TEXT_GARBAGE[x % len(_TEXT_GARBAGE)] for x in b)),
       st.integers(0, 20))
def test_simulator_garbage_always_spoils_the_line(junk, pos):
    line = format_line(np.array([0.66870, -0.00879, -0.76587], np.float32))
    pos %= len(line) - 2
    assert parse_numbers(line[:pos] + junk + line[pos:]) is None
    # bytes float() would silently accept inside or around a number are never garbage
    assert not set(b" \t\x0b\x0c_+-.eE0123456789,;\r\n") & set(_TEXT_GARBAGE)
