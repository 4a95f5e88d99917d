"""Cutting a serial byte stream into delimited pieces (text lines, COBS frames) with the resync
rules both modes share.

The bytes before the first delimiter after a (re)connect are dropped (the piece may be cut),
and so is an unfinished piece when the link drops: both count as `truncated` unless blank. A
piece that outgrows `max_len` without a delimiter is garbage: counted as `garbled`, dropped,
and the next delimiter resyncs.
"""

from __future__ import annotations

from typing import Callable


class DelimitedSplitter:
    """Feed arbitrary bytes, get the complete pieces (delimiter removed); counts into the
    decoder's own `counts` dict."""

    def __init__(self, delimiter: bytes, max_len: int, counts: dict,
                 blank: Callable[[bytes], bool] = lambda piece: not piece):
        self.delimiter, self.max_len, self.counts, self.blank = delimiter, max_len, counts, blank
        self.reset()

    def reset(self) -> None:
        """A new connection: resync on the next delimiter."""
        self._buf = bytearray()
        self._synced = False

    def connection_lost(self) -> None:
        if not self.blank(self._buf):
            self.counts["truncated"] += 1
        self.reset()

    def split(self, data: bytes) -> list[bytes]:
        pieces = []
        start = 0
        while True:
            end = data.find(self.delimiter, start)
            if end < 0:
                self._buf += data[start:]
                if len(self._buf) > self.max_len:  # no delimiter for too long: garbage
                    self.counts["garbled"] += 1
                    self._buf.clear()
                    self._synced = False
                return pieces
            piece = bytes(self._buf) + data[start:end]
            self._buf.clear()
            start = end + 1
            if not self._synced:
                self._synced = True
                if not self.blank(piece):
                    self.counts["truncated"] += 1
                continue
            pieces.append(piece)
