"""Axivity .cwa reader: the real wrist file, files built here from the format description, and
every kind of damage a user can bring (cut, corrupt, not a .cwa)."""

import gzip
import struct
from datetime import datetime, timezone

import numpy as np
import pytest

from edgehar.data.cwa import load_cwa, read_cwa
from edgehar.errors import UserError


def _packed_time(t: float) -> int:
    d = datetime.fromtimestamp(int(t), tz=timezone.utc)
    return ((d.year - 2000) << 26 | d.month << 22 | d.day << 17 | d.hour << 12
            | d.minute << 6 | d.second)


def _header(rate_code: int, hardware: int = 0x17, sensor: int = 0) -> bytes:
    h = bytearray(b"\xff" * 1024)
    h[0:4] = b"MD" + struct.pack("<H", 1020)
    h[4], h[35], h[36], h[41] = hardware, sensor, rate_code, 46
    h[5:11] = struct.pack("<HI", 1234, 77)
    h[11:13] = b"\xff\xff"
    h[64:64 + 22] = b"_c=Lab&_p=left%20wrist"
    return bytes(h)


def _block(seq, payload: bytes, count, rate_code, fmt, t_first, hz_int, light=0):
    """One 'AX' block whose timestamp is the (fractional) time of its first sample."""
    whole = int(np.floor(t_first))
    frac15 = int(round((t_first - whole) * 32768)) & 0x7FFF
    shim = ((frac15 << 1) * hz_int) >> 16  # firmware pre-shifts the offset for old readers
    b = bytearray(512)
    struct.pack_into("<2sHHIIIHHBBBBhH", b, 0, b"AX", 508, 0x8000 | frac15, 77, seq,
                     _packed_time(whole), light, 300, 0, 200, rate_code, fmt, -shim, count)
    b[30:30 + len(payload)] = payload
    struct.pack_into("<H", b, 510, (-sum(struct.unpack_from("<255H", b, 0))) & 0xFFFF)
    return bytes(b)


def make_cwa(path, values: np.ndarray, fmt: int, rate_code: int, true_rate: float,
             t0: float = 1686226864.25, light: int = 0, hardware: int = 0x17, sensor: int = 0):
    """A .cwa of int `values` (n, channels); fmt 0x30 packs 3 axes in DWORDs (values given as
    (mantissa, exponent) pairs in a (n, 3, 2) array), else int16 axes."""
    per = 120 if fmt == 0x30 else 480 // (2 * (fmt >> 4))
    hz = int(3200 / (1 << (15 - (rate_code & 15))))
    out = [_header(rate_code, hardware, sensor)]
    for seq, k in enumerate(range(0, len(values), per)):
        chunk = values[k:k + per]
        if fmt == 0x30:
            m, e = chunk[..., 0] & 0x3FF, chunk[:, 0, 1]
            words = m[:, 0] | m[:, 1] << 10 | m[:, 2] << 20 | e.astype(np.int64) << 30
            payload = words.astype("<u4").tobytes()
        else:
            payload = chunk.astype("<i2").tobytes()
        out.append(_block(seq, payload, len(chunk), rate_code, fmt, t0 + k / true_rate, hz, light))
    path.write_bytes(b"".join(out))
    return path


# --------------------------------------------------------------------------- the real file
@pytest.fixture(scope="module")
def real(data_root):
    return data_root / "axivity_wrist" / "tiny-sample.cwa.gz"


def test_real_file_rate_count_magnitude_and_time(real):
    raw = gzip.decompress(real.read_bytes())
    # The blocks' own fields, read here with struct, independently of the reader.
    blocks = [raw[o:o + 512] for o in range(1024, len(raw), 512)]
    codes = {b[24] for b in blocks}
    counts = [struct.unpack_from("<H", b, 28)[0] for b in blocks]
    assert codes == {74}  # 64 (+-8 g) + 10 (100 Hz)
    f = read_cwa(real)
    assert f.rate == 3200 / (1 << (15 - (74 & 15))) == 100.0
    assert f.range_g == 8 and f.header["device"] == "AX3"
    assert f.blocks == len(blocks) and len(f.acc) == sum(counts) == f.blocks * f.samples_per_block
    assert np.all(np.diff(f.time) > 0)
    assert 0.95 < np.median(np.linalg.norm(f.acc, axis=1)) < 1.05  # gravity, worn, mostly still
    assert abs(f.measured_rate - f.rate) / f.rate < 0.05
    # Logging restarted once (the sequence counter resets): two segments, one gap.
    assert len(f.segments) == 2 and f.segments[0] == (0, 7740 * 120)


def test_real_file_recording_on_a_uniform_grid(real):
    rec = load_cwa(real)
    f = read_cwa(real)
    assert rec.channels == ("acc_x", "acc_y", "acc_z") and rec.units == ("g",) * 3
    assert rec.rate == 100.0 and rec.data.dtype == np.float32
    spans = sum(f.time[b - 1] - f.time[a] for a, b in f.segments)
    assert abs(rec.n_samples - spans * rec.rate) <= len(f.segments) + 1
    assert rec.meta["raw_samples"] == len(f.acc) and len(rec.meta["gaps_s"]) == 1
    assert datetime.fromtimestamp(rec.start_time, tz=timezone.utc).date().isoformat() == "2023-06-08"
    assert 0.95 < np.median(np.linalg.norm(rec.data, axis=1)) < 1.05
    raw = load_cwa(real, uniform=False)
    np.testing.assert_array_equal(raw.data, f.acc)


def test_real_file_cut_mid_block_is_one_line_error(real, tmp_path):
    raw = gzip.decompress(real.read_bytes())
    cut = tmp_path / "cut.cwa"
    cut.write_bytes(raw[:1024 + 512 * 5 + 200])
    with pytest.raises(UserError, match=r"truncated: data block 5 is cut after 200 of 512") as e:
        read_cwa(cut)
    assert e.value.where == str(cut) and "\n" not in e.value.message
    cut.write_bytes(raw[:1024 + 512 * 5])  # whole blocks only: fine
    assert len(read_cwa(cut).acc) == 5 * 120


def test_real_gzip_cut_short(real, tmp_path):
    cut = tmp_path / "cut.cwa.gz"
    cut.write_bytes(real.read_bytes()[:50_000])
    with pytest.raises(UserError, match="truncated gzip"):
        load_cwa(cut)


# --------------------------------------------------------------------------- built files
def test_packed_dwords_sign_and_exponent(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    mant = rng.integers(-512, 512, size=(n, 3))
    exp = rng.integers(0, 4, size=n)
    vals = np.stack([mant, np.repeat(exp[:, None], 3, 1)], axis=-1)
    f = read_cwa(make_cwa(tmp_path / "p.cwa", vals, 0x30, 74, 100.0))
    np.testing.assert_array_equal(f.acc, (mant << exp[:, None]) / 256.0)
    assert len(f.acc) == n and f.blocks == 3 and f.gyro is None  # 120 + 120 + 60


def test_unpacked_ax3_int16(tmp_path):
    vals = np.random.default_rng(1).integers(-4096, 4096, size=(200, 3))
    f = read_cwa(make_cwa(tmp_path / "u.cwa", vals, 0x32, 74, 100.0))
    assert f.samples_per_block == 80 and f.blocks == 3
    np.testing.assert_allclose(f.acc, vals / 256.0)


def test_ax6_gyro_and_acc_scales(tmp_path):
    vals = np.random.default_rng(2).integers(-30000, 30000, size=(100, 6))
    # light bits: acc unit 1 << (8 + 3) = 2048 counts/g, gyro range 8000 >> 2 = 2000 deg/s
    light = 3 << 13 | 2 << 10 | 123
    path = make_cwa(tmp_path / "ax6.cwa", vals, 0x62, 74, 100.0, light=light, hardware=0x64,
                    sensor=0x02)
    f = read_cwa(path)
    assert f.header["device"] == "AX6" and f.samples_per_block == 40
    np.testing.assert_allclose(f.gyro, vals[:, :3] * 2000 / 32768, rtol=1e-6)
    np.testing.assert_allclose(f.acc, vals[:, 3:] / 2048, rtol=1e-6)
    rec = load_cwa(path, uniform=False)
    assert rec.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert rec.units == ("g",) * 3 + ("deg/s",) * 3
    assert rec.meta["annotations"] == {"_c": "Lab", "_p": "left wrist"}
    assert rec.meta["device_id"] == 1234 and rec.meta["session_id"] == 77


def test_fractional_timestamps_give_true_time_and_uniform_grid(tmp_path):
    true_rate, n = 97.5, 120 * 40  # a 100 Hz AX3 whose sensor runs slow, as real ones do
    t = np.arange(n) / true_rate
    signal = np.round(256 * np.sin(2 * np.pi * 0.5 * t)).astype(int)
    vals = np.stack([signal, np.zeros(n, int), np.full(n, 256)], 1)
    packed = np.stack([vals, np.zeros_like(vals)], -1)
    t0 = 1686226864.25
    path = make_cwa(tmp_path / "slow.cwa", packed, 0x30, 74, true_rate, t0=t0)
    f = read_cwa(path)
    np.testing.assert_allclose(f.time - t0, t, atol=2e-3)  # 1/32768 s fractions, 1 sample rounding
    assert abs(f.measured_rate - true_rate) < 0.05
    rec = load_cwa(path)
    assert rec.rate == 100.0 and abs(rec.n_samples - (n - 1) / true_rate * 100) <= 1
    grid = rec.start_time - t0 + np.arange(rec.n_samples) / 100.0
    np.testing.assert_allclose(rec.data[:, 0], np.sin(2 * np.pi * 0.5 * grid), atol=0.01)


def test_gzip_and_plain_read_the_same(tmp_path):
    vals = np.random.default_rng(3).integers(-900, 900, size=(250, 3))
    plain = make_cwa(tmp_path / "a.cwa", vals, 0x32, 73, 50.0)
    gz = tmp_path / "a.cwa.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_cwa(plain), load_cwa(gz)
    assert a.rate == b.rate == 50.0 and a.name == b.name == "a"
    np.testing.assert_array_equal(a.data, b.data)


# --------------------------------------------------------------------------- bad input
@pytest.fixture()
def good(tmp_path):
    vals = np.random.default_rng(4).integers(-900, 900, size=(400, 3))
    return make_cwa(tmp_path / "good.cwa", vals, 0x32, 74, 100.0)


def test_wrong_checksum(good):
    raw = bytearray(good.read_bytes())
    raw[1024 + 2 * 512 + 100] ^= 0x01
    good.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"data block 2 at byte 2048: checksum mismatch"):
        read_cwa(good)


def test_not_a_cwa_file(tmp_path):
    p = tmp_path / "notes.cwa"
    p.write_text("time,acc_x\n0,1\n")
    with pytest.raises(UserError, match="not an Axivity .cwa file"):
        load_cwa(p)
    p.write_bytes(b"")
    with pytest.raises(UserError, match="not an Axivity"):
        load_cwa(p)


def test_cut_inside_header_or_no_blocks(good, tmp_path):
    raw = good.read_bytes()
    p = tmp_path / "h.cwa"
    p.write_bytes(raw[:700])
    with pytest.raises(UserError, match="truncated inside the 1024-byte header"):
        load_cwa(p)
    p.write_bytes(raw[:1024])
    with pytest.raises(UserError, match="no data blocks"):
        load_cwa(p)


def test_foreign_block_and_missing_file(good, tmp_path):
    raw = bytearray(good.read_bytes())
    raw[1024 + 512: 1024 + 514] = b"ZZ"
    good.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"data block 1 at byte 1536: not an 'AX' data block"):
        read_cwa(good)
    with pytest.raises(UserError, match="no such Axivity"):
        read_cwa(tmp_path / "missing.cwa")


def test_cli_prints_one_line(tmp_path, capsys, monkeypatch):
    from edgehar import cli
    from edgehar.data import load_recording

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["edgehar.data.cli"])  # only the command under test
    p = tmp_path / "x.cwa"
    p.write_bytes(b"MD" + b"\0" * 100)
    with pytest.raises(UserError) as e:
        load_recording(p)
    assert str(e.value) == f"{p}: truncated inside the 1024-byte header (102 bytes)"
    assert cli.main(["data", "summary", "axivity", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgehar: error: ") and "truncated inside" in err and "\n" not in err
