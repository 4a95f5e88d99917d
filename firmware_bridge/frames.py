"""Frame mode: COBS-framed binary packets of int16 samples with a sequence number, a device
timestamp and a CRC-16 (byte layout and test vectors in PROTOCOL.md).

Payload (little-endian), then CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection,
xorout 0) over the payload, little-endian; the whole is COBS-encoded and ends in one 0x00:

    off size field
    0   1    version (1)
    1   1    type (1 = samples, 2 = text message, e.g. "ERR ...")
    2   2    seq, uint16, +1 per frame, wraps
    4   4    t_us, uint32, device clock at the first sample (µs, wraps after ~71 min)
    8   4    period_us, uint32, sample period (50 Hz -> 20000)
    12  4    scale, float32, physical value = int16 * scale
    16  1    channels C
    17  1    samples S
    18  2*S*C int16 samples, sample-major (s0c0 s0c1 .. s1c0 ..)
    (type 2: bytes 2..3 seq, then UTF-8 text from offset 4)

The host side uses `binascii.crc_hqx` and the `cobs` package (checked against the shared test
vectors); the device side is the C encoder in edgehar/mcu/firmware/edgehar_imu/.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np
from cobs import cobs

from edgehar.bridge.resync import DelimitedSplitter

VERSION = 1
TYPE_SAMPLES = 1
TYPE_TEXT = 2
HEADER = struct.Struct("<BBHIIfBB")  # version, type, seq, t_us, period_us, scale, C, S
MAX_FRAME = 4096  # longest encoded frame accepted before resyncing on the next 0x00


# -- CRC-16/CCITT-FALSE and COBS: the standard library's and the `cobs` package's ---------------
def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (check value of b"123456789" is 0x29B1): binascii's CRC-CCITT (XModem
    polynomial, no reflection) started at 0xFFFF."""
    return binascii.crc_hqx(data, crc)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: `data` without any 0x00 (delimiter not added).
    Input that ends exactly on a full 254-byte run gets no empty trailing block, as in Cheshire
    & Baker's reference code and the C encoder."""
    return cobs.encode(data)


def cobs_decode(data: bytes) -> bytes | None:
    """Inverse of `cobs_encode` (also accepts an empty trailing block); None if not COBS."""
    try:
        return cobs.decode(data)
    except cobs.DecodeError:
        return None


# -- frames ---------------------------------------------------------------------------------
@dataclass
class Frame:
    seq: int
    t_us: int
    period_us: int
    scale: float
    samples: np.ndarray  # (S, C) int16

    @property
    def values(self) -> np.ndarray:
        """Samples in physical units (float32)."""
        return self.samples.astype(np.float32) * np.float32(self.scale)


@dataclass
class Message:
    seq: int
    text: str


def encode_payload(seq: int, t_us: int, period_us: int, scale: float, samples: np.ndarray) -> bytes:
    """The un-stuffed payload + CRC of one samples frame."""
    samples = np.asarray(samples)
    if samples.ndim != 2 or not (1 <= samples.shape[0] <= 255 and 1 <= samples.shape[1] <= 255):
        raise ValueError(f"samples must be (1..255, 1..255), got {samples.shape}")
    body = HEADER.pack(VERSION, TYPE_SAMPLES, seq & 0xFFFF, t_us & 0xFFFFFFFF, period_us & 0xFFFFFFFF,
                       scale, samples.shape[1], samples.shape[0])
    body += samples.astype("<i2").tobytes()
    return body + struct.pack("<H", crc16(body))


def encode_frame(seq: int, t_us: int, period_us: int, scale: float, samples: np.ndarray) -> bytes:
    """One samples frame on the wire: COBS(payload + CRC) + 0x00."""
    return cobs_encode(encode_payload(seq, t_us, period_us, scale, samples)) + b"\x00"


def encode_message(seq: int, text: str) -> bytes:
    """A text message frame (the frame-mode form of an `ERR ...` line)."""
    body = struct.pack("<BBH", VERSION, TYPE_TEXT, seq & 0xFFFF) + text.encode("utf-8")[:1000]
    return cobs_encode(body + struct.pack("<H", crc16(body))) + b"\x00"


def quantize(values: np.ndarray, scale: float) -> np.ndarray:
    """Physical values -> int16 at `scale` units per LSB, saturating."""
    return np.clip(np.round(np.asarray(values, np.float64) / scale), -32768, 32767).astype(np.int16)


def parse_payload(raw: bytes) -> Frame | Message | str:
    """A decoded (un-stuffed) frame, or a short reason string when it is garbled."""
    if len(raw) < 6:
        return "short"
    body, crc = raw[:-2], struct.unpack("<H", raw[-2:])[0]
    if crc16(body) != crc:
        return "crc"
    if body[0] != VERSION:
        return "version"
    if body[1] == TYPE_TEXT:
        return Message(struct.unpack("<H", body[2:4])[0], body[4:].decode("utf-8", "replace"))
    if body[1] != TYPE_SAMPLES or len(body) < HEADER.size:
        return "type"
    _, _, seq, t_us, period_us, scale, c, s = HEADER.unpack_from(body)
    if c == 0 or s == 0 or len(body) != HEADER.size + 2 * c * s or period_us == 0 \
            or not np.isfinite(scale) or scale <= 0:
        return "length"
    data = np.frombuffer(body, dtype="<i2", offset=HEADER.size).reshape(s, c).astype(np.int16)
    return Frame(seq, t_us, period_us, float(scale), data)


class FrameDecoder:
    """Incremental decoder: feed arbitrary bytes, get Frames/Messages; never raises.

    Bytes before the first 0x00 after a (re)connect are dropped (a frame cut in half), as is
    an unfinished frame when the link drops. Counts frames, garbled frames, and sequence
    gaps (`dropped` frames) and repeats/reorders (`out_of_order`).
    """

    def __init__(self):
        self.counts = {"frames": 0, "garbled": 0, "dropped": 0, "out_of_order": 0, "messages": 0,
                       "truncated": 0}
        self.last_seq: int | None = None
        self._pieces = DelimitedSplitter(b"\x00", MAX_FRAME, self.counts)

    def reset(self) -> None:
        """A new connection: resync on the next delimiter."""
        self._pieces.reset()
        self.last_seq = None

    def connection_lost(self) -> None:
        self._pieces.connection_lost()
        self.last_seq = None

    def feed(self, data: bytes) -> list[Frame | Message]:
        out: list[Frame | Message] = []
        for chunk in self._pieces.split(data):
            if not chunk:
                continue  # back-to-back delimiters: idle filler
            item = self._decode(chunk)
            if item is not None:
                out.append(item)
        return out

    def _decode(self, chunk: bytes):
        raw = cobs_decode(chunk) if len(chunk) <= MAX_FRAME else None
        item = parse_payload(raw) if raw is not None else "cobs"
        if isinstance(item, str):
            self.counts["garbled"] += 1
            return None
        if isinstance(item, Message):
            self.counts["messages"] += 1
            return item
        if self.last_seq is not None:
            delta = (item.seq - self.last_seq) & 0xFFFF
            if delta == 0 or delta >= 0x8000:  # repeat or late: the samples were placed already
                self.counts["out_of_order"] += 1
                return None
            self.counts["dropped"] += delta - 1
        self.last_seq = item.seq
        self.counts["frames"] += 1
        return item
