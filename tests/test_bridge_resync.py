"""The delimiter splitter both serial modes share: pieces across feeds, resync after a
connect, a lost link and overlong garbage."""

from edgehar.bridge.resync import DelimitedSplitter


def test_pieces_span_feeds_and_first_piece_after_connect_is_dropped():
    counts = {"garbled": 0, "truncated": 0}
    s = DelimitedSplitter(b"\n", 8, counts)
    assert s.split(b"cut\nab") == []
    assert s.split(b"c\n\nde\nf") == [b"abc", b"", b"de"]
    assert counts == {"garbled": 0, "truncated": 1}
    s.connection_lost()  # "f" was unfinished
    assert counts["truncated"] == 2
    assert s.split(b"\nxy\n") == [b"xy"]  # resynced on the first delimiter: nothing lost
    assert counts["truncated"] == 2


def test_overlong_garbage_resyncs_and_blank_rule_is_the_callers():
    counts = {"garbled": 0, "truncated": 0}
    s = DelimitedSplitter(b"\x00", 4, counts, blank=lambda piece: not piece.strip())
    assert s.split(b"\x00ok\x00" + b"z" * 5) == [b"ok"]
    assert counts == {"garbled": 1, "truncated": 0}
    assert s.split(b"zz\x00  \x00ok\x00") == [b"  ", b"ok"]  # the cut "zz" is dropped
    assert counts == {"garbled": 1, "truncated": 1}
    s.split(b"   ")
    s.connection_lost()  # a blank unfinished piece is not a truncation
    assert counts == {"garbled": 1, "truncated": 1}
