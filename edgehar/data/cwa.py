"""Axivity AX3/AX6 raw `.cwa` files (and `.cwa.gz`), read from the open block format.

A `.cwa` file is one 1024-byte "MD" header block followed by 512-byte "AX" data blocks. Each
data block holds up to 120 samples (3 axes packed in one 32-bit "DWORD": 3 x 10 bits + a 2-bit
exponent, units of 1/256 g) or int16 samples (3 axes: 80, 6 axes gyro+acc: 40, 9 axes with a
magnetometer: 26), the RTC time of one of its samples, the rate code
(Hz = 3200 / 2**(15 - code & 15), +-g = 16 >> (code >> 6)) and a checksum (16-bit words sum to 0).

The sensor's own clock is not the RTC: a 100 Hz AX3 really samples at ~97-102 Hz. So, like
Open Movement's `omconvert`, `load_cwa` gives every sample its time from the block timestamps
and interpolates onto a uniform grid at the configured rate; each stretch of continuous
logging (a "segment") is gridded on its own and the segments are concatenated, their starts
and the gaps between them kept in `meta["segments"]`.

Damage is a one-line `UserError`: a file cut inside its header or inside a data block (a cut
at a block boundary reads fine), a bad checksum, a foreign block, a mid-file format change.
"""

from __future__ import annotations

import gzip
import urllib.parse
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehar.data.recording import Recording
from edgehar.errors import UserError, require_dir, require_file

HEADER_BYTES = 1024
BLOCK_BYTES = 512
ACC = ("acc_x", "acc_y", "acc_z")
GYRO = ("gyro_x", "gyro_y", "gyro_z")
_DEVICES = {0x00: "AX3", 0xFF: "AX3", 0x17: "AX3", 0x64: "AX6"}

# One data block, little-endian and tightly packed (Open Movement's cwa.h layout).
BLOCK = np.dtype([
    ("magic", "S2"), ("length", "<u2"), ("fractional", "<u2"), ("session", "<u4"),
    ("sequence", "<u4"), ("timestamp", "<u4"), ("light", "<u2"), ("temperature", "<u2"),
    ("events", "u1"), ("battery", "u1"), ("rate_code", "u1"), ("axes_format", "u1"),
    ("timestamp_offset", "<i2"), ("count", "<u2"), ("samples", "V480"), ("checksum", "<u2"),
])
assert BLOCK.itemsize == BLOCK_BYTES


@dataclass
class CwaFile:
    """The raw content of a `.cwa` file: samples as stored, each with its own time."""

    acc: np.ndarray  # (n, 3) float32, g
    gyro: np.ndarray | None  # (n, 3) float32, deg/s (AX6 only)
    time: np.ndarray  # (n,) float64 POSIX seconds of every sample
    rate: float  # configured rate (Hz), from the blocks' rate code
    range_g: int  # accelerometer range, +-g
    blocks: int
    samples_per_block: int  # capacity of a full block in this file's format
    segments: list[tuple[int, int]]  # [start, stop) sample slices of continuous logging
    header: dict = field(default_factory=dict)

    @property
    def measured_rate(self) -> float:
        """Samples per second of RTC time, over all segments."""
        n = sum(b - a - 1 for a, b in self.segments)
        secs = sum(self.time[b - 1] - self.time[a] for a, b in self.segments)
        return float(n / secs) if secs > 0 else self.rate


def read_cwa(path: str | Path) -> CwaFile:
    """Decode every data block of a `.cwa`/`.cwa.gz` file; any damage is a `UserError`."""
    path = Path(require_file(path, "Axivity .cwa file"))
    raw = _read_bytes(path)
    header = _parse_header(path, raw)
    body = raw[HEADER_BYTES:]
    n_blocks, tail = divmod(len(body), BLOCK_BYTES)
    if tail:
        raise UserError(path, f"truncated: data block {n_blocks} is cut after {tail} of "
                              f"{BLOCK_BYTES} bytes (file ends mid-block)")
    if n_blocks == 0:
        raise UserError(path, "no data blocks (the file holds only its header)")
    blocks = np.frombuffer(body, dtype=BLOCK)
    _check_blocks(path, body, blocks)

    rate_code = int(blocks["rate_code"][0])
    rate = 3200.0 / (1 << (15 - (rate_code & 15)))
    fmt = int(blocks["axes_format"][0])
    channels, bytes_per_axis = fmt >> 4, fmt & 15
    if (channels, bytes_per_axis) == (3, 0):
        per_block = 120
    elif bytes_per_axis == 2 and channels in (3, 6, 9):
        per_block = 480 // (2 * channels)
    else:
        raise UserError(path, f"unknown sample format 0x{fmt:02x} in the data blocks")
    counts = blocks["count"].astype(np.int64)
    if counts.max() > per_block:
        k = int(np.argmax(counts > per_block))
        raise UserError(path, f"data block {k} claims {counts[k]} samples, at most {per_block} fit")
    keep = np.arange(per_block)[None, :] < counts[:, None]  # (blocks, per_block)

    light = blocks["light"].astype(np.int32)
    # AX6 blocks carry their scales in the light word's top bits (AAAGGG, zero on an AX3)
    acc_scale = 1.0 / np.left_shift(1, 8 + ((light >> 13) & 7)).astype(np.float32)  # g/count
    if bytes_per_axis == 0:
        acc = _unpack_dwords(body, n_blocks)
    else:
        payload = np.frombuffer(body, np.uint8).reshape(n_blocks, BLOCK_BYTES)
        payload = np.ascontiguousarray(payload[:, 30:30 + per_block * 2 * channels])
        values = payload.view("<i2").reshape(n_blocks, per_block, channels)
        acc = values[:, :, 0:3] if channels == 3 else values[:, :, 3:6]  # AX6: gyro first
    acc = acc[keep] * np.repeat(acc_scale, counts)[:, None]
    gyro = None
    if channels >= 6:
        code = (light >> 10) & 7
        dps = np.where(code > 0, 8000 >> np.maximum(code, 1), header["gyro_range_dps"])
        gyro = values[:, :, 0:3][keep] * np.repeat((dps / 32768.0).astype(np.float32), counts)[:, None]

    time, segments = _sample_times(path, blocks, counts, rate)
    return CwaFile(acc=acc, gyro=gyro, time=time, rate=rate, range_g=16 >> (rate_code >> 6),
                   blocks=n_blocks, samples_per_block=per_block, segments=segments, header=header)


def load_cwa(path: str | Path, uniform: bool = True) -> Recording:
    """An Axivity `.cwa`/`.cwa.gz` recording: acc in g (+ gyro in deg/s on an AX6).

    `uniform=True` (default) interpolates the samples at their RTC times onto an exact grid at
    the configured rate; `uniform=False` keeps the samples as stored (rate then only nominal).
    """
    f = read_cwa(path)
    data = f.acc if f.gyro is None else np.concatenate([f.acc, f.gyro], axis=1)
    channels = ACC if f.gyro is None else ACC + GYRO
    units = ("g",) * 3 + ("deg/s",) * (len(channels) - 3)
    segments = []
    if uniform:
        grids = [f.time[a] + np.arange(int((f.time[b - 1] - f.time[a]) * f.rate) + 1) / f.rate
                 for a, b in f.segments]
        out = np.empty((sum(map(len, grids)), data.shape[1]), dtype=np.float32)
        start = 0
        for (a, b), grid in zip(f.segments, grids):
            for c in range(data.shape[1]):
                out[start:start + len(grid), c] = np.interp(grid, f.time[a:b], data[a:b, c])
            segments.append({"start_sample": start, "samples": len(grid),
                             "start_time": float(grid[0])})
            start += len(grid)
        data = out
    else:
        segments = [{"start_sample": a, "samples": b - a, "start_time": float(f.time[a])}
                    for a, b in f.segments]
    gaps = [float(f.time[a] - f.time[prev_stop - 1])
            for (_, prev_stop), (a, _) in zip(f.segments, f.segments[1:])]
    path = Path(path)
    header = {k: v for k, v in f.header.items() if f.gyro is not None or k != "gyro_range_dps"}
    meta = {**header, "blocks": f.blocks, "samples_per_block": f.samples_per_block,
            "raw_samples": int(len(f.acc)), "configured_rate": f.rate,
            "measured_rate": round(f.measured_rate, 4), "range_g": f.range_g,
            "uniform": uniform, "segments": segments, "gaps_s": gaps}
    name = path.name.removesuffix(".gz").removesuffix(".cwa")
    return Recording(data=data, rate=f.rate, channels=channels, units=units, name=name,
                     source=str(path), start_time=float(f.time[0]), meta=meta)


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise UserError(path, "truncated gzip stream (the .gz file was cut short)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise UserError(path, f"corrupt gzip data ({e})") from None


def _parse_header(path: Path, raw: bytes) -> dict:
    if raw[:2] != b"MD":
        raise UserError(path, "not an Axivity .cwa file (it does not start with an 'MD' header block)")
    if len(raw) < HEADER_BYTES:
        raise UserError(path, f"truncated inside the {HEADER_BYTES}-byte header ({len(raw)} bytes)")
    h = np.frombuffer(raw, np.uint8, HEADER_BYTES)
    u16 = lambda o: int(h[o]) | int(h[o + 1]) << 8  # noqa: E731
    length = u16(2)
    if (length + 4 + BLOCK_BYTES - 1) // BLOCK_BYTES * BLOCK_BYTES != HEADER_BYTES:
        raise UserError(path, f"header length field is {length}, expected 1020 (not a .cwa file?)")
    device_id = u16(5) | (0 if u16(11) == 0xFFFF else u16(11) << 16)
    sensor = int(h[35])  # AX6: bottom nibble n gives a gyro range of 8000 / 2**n deg/s
    gyro_dps = 8000 >> (sensor & 15) if sensor not in (0, 0xFF) and sensor & 15 else 2000
    note = bytes(h[64:512]).rstrip(b"\x20\x00\xff").decode("ascii", "replace")
    return {"device": _DEVICES.get(int(h[4]), f"0x{int(h[4]):02x}"), "device_id": device_id,
            "session_id": u16(7) | u16(9) << 16, "firmware": int(h[41]),
            "gyro_range_dps": gyro_dps, "annotations": dict(urllib.parse.parse_qsl(note))}


def _check_blocks(path: Path, body: bytes, blocks: np.ndarray) -> None:
    def fail(bad: np.ndarray, what: str):
        k = int(np.flatnonzero(bad)[0])
        more = f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""
        raise UserError(path, f"data block {k} at byte {HEADER_BYTES + k * BLOCK_BYTES}: {what}{more}")

    bad = (blocks["magic"] != b"AX") | (blocks["length"] != BLOCK_BYTES - 4)
    if bad.any():
        fail(bad, "not an 'AX' data block")
    words = np.frombuffer(body, "<u2").reshape(len(blocks), BLOCK_BYTES // 2)
    bad = words.sum(axis=1, dtype=np.uint16) != 0  # 16-bit word sum of a block is 0
    if bad.any():
        fail(bad, "checksum mismatch (corrupt data)")
    for key, what in (("rate_code", "rate code"), ("axes_format", "sample format")):
        bad = blocks[key] != blocks[key][0]
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            fail(bad, f"{what} changes mid-file ({blocks[key][0]} -> {blocks[key][k]})")
    if blocks["rate_code"][0] == 0:
        fail(np.ones(1, bool), "rate code 0 (pre-2012 firmware format) is not supported")


def _posix_seconds(packed: np.ndarray) -> np.ndarray:
    """Packed RTC values (YYYYYYMM MMDDDDDh hhhhmmmm mmssssss) -> POSIX seconds, NaN if invalid."""
    v = packed.astype(np.int64)
    year, month, day = ((v >> 26) & 63) + 2000, (v >> 22) & 15, (v >> 17) & 31
    ok = (month >= 1) & (month <= 12) & (day >= 1)
    months = ((year - 1970) * 12 + np.where(ok, month, 1) - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64) + np.where(ok, day, 1) - 1
    secs = days * 86400 + ((v >> 12) & 31) * 3600 + ((v >> 6) & 63) * 60 + (v & 63)
    return np.where(ok, secs.astype(np.float64), np.nan)


def _sample_times(path: Path, blocks: np.ndarray, counts: np.ndarray, rate: float):
    """Per-sample POSIX times from each block's timestamp, and the continuous segments."""
    t = _posix_seconds(blocks["timestamp"])
    if np.isnan(t).any():
        k = int(np.flatnonzero(np.isnan(t))[0])
        raise UserError(path, f"data block {k}: invalid timestamp 0x{int(blocks['timestamp'][k]):08x}")
    offset = blocks["timestamp_offset"].astype(np.int64)
    frac = blocks["fractional"].astype(np.int64)
    has_frac = (frac & 0x8000) != 0
    # Newer firmware stores a 1/65536 s fraction and pre-shifted the offset to hide it from old
    # readers; undo that shift and use the true fraction.
    frac16 = np.where(has_frac, (frac & 0x7FFF) << 1, 0)
    offset = offset + (frac16 * int(rate)) // 65536
    t = t + frac16 / 65536.0
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # index of each block's first sample
    anchor = first + offset  # the sample the block's timestamp belongs to

    # A new segment where logging restarted: sequence not +1, session changed, or time jumped.
    expected = np.diff(anchor) / rate
    jump = np.abs(np.diff(t) - expected) > 1.0 + 0.1 * expected
    new = (np.diff(blocks["sequence"].astype(np.int64)) != 1) | (np.diff(blocks["session"]) != 0) | jump
    new |= np.diff(t) < 0
    starts = np.concatenate([[0], np.flatnonzero(new) + 1])
    stops = np.concatenate([starts[1:], [len(blocks)]])
    n = int(counts.sum())
    time = np.empty(n, dtype=np.float64)
    segments = []
    for s, e in zip(starts, stops):
        a, b = int(first[s]), int(first[e - 1] + counts[e - 1])
        if b == a:
            continue
        # Blocks shorter than a second share their whole-second anchor (old firmware): once each.
        idx, keep = np.unique(anchor[s:e], return_index=True)
        ts = t[s:e][keep]
        i = np.arange(a, b)
        r = (idx[-1] - idx[0]) / (ts[-1] - ts[0]) if len(idx) > 1 and ts[-1] > ts[0] else rate
        # Between anchors follow the RTC; beyond the first/last anchor extrapolate at the
        # segment's measured rate (the configured one for a single-block segment).
        seg = np.where(i < idx[0], ts[0] + (i - idx[0]) / r,
                       np.where(i > idx[-1], ts[-1] + (i - idx[-1]) / r, np.interp(i, idx, ts)))
        if np.any(np.diff(seg) <= 0):  # RTC anchors out of order: fall back to a straight line
            slope, icpt = np.polyfit(idx, ts, 1) if len(idx) > 1 else (1 / rate, ts[0] - idx[0] / rate)
            seg = icpt + slope * i
        time[a:b] = seg
        segments.append((a, b))
    return time, segments


def _unpack_dwords(body: bytes, n_blocks: int) -> np.ndarray:
    """(blocks, 120, 3) int16 counts from packed eezzzzzz zzzzyyyy yyyyyyxx xxxxxxxx values."""
    v = np.frombuffer(body, np.uint8).reshape(n_blocks, BLOCK_BYTES)[:, 30:510]
    v = np.ascontiguousarray(v).view("<u4")
    exponent = (v >> 30).astype(np.int16)
    out = np.empty(v.shape + (3,), dtype=np.int16)
    for axis, shift in enumerate((0, 10, 20)):
        signed = (((v >> shift) & 0x3FF).astype(np.int16) ^ 0x200) - 0x200  # sign-extend 10 bits
        out[..., axis] = signed << exponent  # at most 511 << 3: fits int16
    return out


def load_cwa_folder(root: str | Path) -> list[Recording]:
    """Every `.cwa` / `.cwa.gz` file of a folder, by name."""
    files = sorted(p for p in Path(require_dir(root, "Axivity folder")).iterdir()
                   if p.name.endswith((".cwa", ".cwa.gz")))
    if not files:
        raise UserError(root, "no .cwa or .cwa.gz files")
    return [load_cwa(p) for p in files]
