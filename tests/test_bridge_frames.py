"""Frame mode: COBS, CRC-16 and frames against the shared test vectors, the C encoder
byte-for-byte (compiled with the host gcc), and a decoder that no byte string can crash."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgehar.bridge import frames

ROOT = Path(__file__).resolve().parents[1] / "firmware_bridge"
VECTORS = json.loads((ROOT / "test_vectors.json").read_text())
C_DIR = ROOT.parent / "edgehar" / "mcu" / "firmware" / "edgehar_imu"


def test_python_codec_matches_vectors():
    for c in VECTORS["crc16_ccitt_false"]:
        assert frames.crc16(c["ascii"].encode()) == int(c["crc"], 16)
    for v in VECTORS["cobs"]:
        raw, enc = bytes.fromhex(v["raw_hex"]), bytes.fromhex(v["encoded_hex"])
        assert frames.cobs_encode(raw) == enc
        assert frames.cobs_decode(enc) == raw
    for f in VECTORS["frames"]:
        data = np.asarray(f["data"], np.int16)
        wire = frames.encode_frame(f["seq"], f["t_us"], f["period_us"], f["scale"], data)
        assert wire.hex() == f["wire_hex"], f["name"]
        dec = frames.FrameDecoder()
        (got,) = dec.feed(b"\x00" + wire)
        assert (got.seq, got.t_us, got.period_us) == (f["seq"], f["t_us"], f["period_us"])
        assert np.float32(got.scale) == np.float32(f["scale"])
        np.testing.assert_array_equal(got.samples, data)
    for m in VECTORS["messages"]:
        (got,) = frames.FrameDecoder().feed(b"\x00" + bytes.fromhex(m["wire_hex"]))
        assert got == frames.Message(m["seq"], m["text"])


def _c_literal_bytes(b: bytes) -> str:
    return "{" + ",".join(str(x) for x in b) + "}" if b else "{0}"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_c_encoder_matches_vectors_byte_for_byte(tmp_path):
    lines = ['#include <stdio.h>', '#include <string.h>', '#include "edgehar_frame.h"',
             "static void hex(const unsigned char *p, size_t n) {",
             '  for (size_t i = 0; i < n; i++) { printf("%02x", p[i]); }',
             '  printf("\\n");', '}',
             "int main(void) {", "  unsigned char out[4096]; size_t n;"]
    for i, c in enumerate(VECTORS["crc16_ccitt_false"]):
        lines.append(f'  printf("%04x\\n", edgehar_crc16((const unsigned char*)"{c["ascii"]}", '
                     f'{len(c["ascii"])}, 0xFFFF));')
    for i, v in enumerate(VECTORS["cobs"]):
        raw = bytes.fromhex(v["raw_hex"])
        lines.append(f"  {{ static const unsigned char in{i}[] = {_c_literal_bytes(raw)};")
        lines.append(f"    n = edgehar_cobs_encode(in{i}, {len(raw)}, out); hex(out, n); }}")
    for i, f in enumerate(VECTORS["frames"]):
        flat = [x for row in f["data"] for x in row]
        s, c = len(f["data"]), len(f["data"][0])
        lines.append(f"  {{ static const short d{i}[] = {{{','.join(map(str, flat))}}};")
        # the scale goes in by its float32 bits, so no decimal round trip can differ
        lines.append(f"    unsigned int bits = 0x{bytes.fromhex(f['scale_f32_hex'])[::-1].hex()}u; float sc;"
                     f" memcpy(&sc, &bits, 4);")
        lines.append(f"    n = edgehar_frame_encode({f['seq']}u, {f['t_us']}u, {f['period_us']}u, sc, {c}, {s},"
                     f" d{i}, out, sizeof out); hex(out, n); }}")
    for m in VECTORS["messages"]:
        lines.append(f'  n = edgehar_message_encode({m["seq"]}u, "{m["text"]}", out, sizeof out); hex(out, n);')
    lines.append("  n = edgehar_frame_encode(0, 0, 20000, 1.0f, 3, 1, (const short[]){1,2,3}, out, 5);")
    lines.append('  printf("%zu\\n", n);')  # too small a buffer: refused, not overrun
    lines += ["  return 0;", "}"]
    main = tmp_path / "vectors_main.c"
    main.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "vectors"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{C_DIR}",
                    str(C_DIR / "edgehar_frame.c"), str(main), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    want = ([f"{int(c['crc'], 16):04x}" for c in VECTORS["crc16_ccitt_false"]]
            + [v["encoded_hex"] for v in VECTORS["cobs"]]
            + [f["wire_hex"] for f in VECTORS["frames"]]
            + [m["wire_hex"] for m in VECTORS["messages"]] + ["0", ""])
    assert got == want


def test_decoder_counts_gaps_garbage_and_resyncs():
    data = np.arange(15, dtype=np.int16).reshape(5, 3)
    wire = [frames.encode_frame(s, s * 100000, 20000, 0.01, data) for s in (65534, 65535, 0, 2, 2, 1, 3)]
    dec = frames.FrameDecoder()
    stream = b"\x17\x99half-frame" + b"\x00" + b"".join(wire[:3]) + b"\x05\x06junk\x00" + b"".join(wire[3:])
    corrupted = bytearray(wire[0])
    corrupted[5] ^= 0x40  # one flipped bit: CRC must catch it
    stream += bytes(corrupted)
    got = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        got += dec.feed(stream[i:i + 7])
    assert [f.seq for f in got] == [65534, 65535, 0, 2, 3]  # wrap is fine, 1 is late, 2 repeated
    assert dec.counts == {"frames": 5, "garbled": 2, "dropped": 1, "out_of_order": 2, "messages": 0,
                          "truncated": 1}
    np.testing.assert_allclose(got[0].values, data * np.float32(0.01))


def test_decoder_drops_cut_frame_on_disconnect():
    wire = frames.encode_frame(1, 0, 20000, 1.0, np.ones((2, 3), np.int16))
    dec = frames.FrameDecoder()
    assert len(dec.feed(b"\x00" + wire + wire[:6])) == 1
    dec.connection_lost()
    assert dec.counts["truncated"] == 1
    assert dec.feed(wire[6:]) == []  # the rest of the cut frame is not glued to anything


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 64))
def test_decoder_never_raises(data, chunk):
    dec = frames.FrameDecoder()
    for i in range(0, len(data), chunk):
        for item in dec.feed(data[i:i + chunk]):
            assert isinstance(item, (frames.Frame, frames.Message))
    dec.connection_lost()
    assert frames.cobs_decode(data) is None or isinstance(frames.cobs_decode(data), bytes)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_cobs_roundtrip(raw):
    enc = frames.cobs_encode(raw)
    assert b"\x00" not in enc
    assert frames.cobs_decode(enc) == raw
    assert len(enc) <= len(raw) + len(raw) // 254 + 1


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.integers(0, 399), st.integers(1, 255))
def test_valid_frame_with_noise_spliced_in_is_rejected_or_intact(noise, pos, flip):
    data = np.arange(12, dtype=np.int16).reshape(4, 3)
    wire = bytearray(frames.encode_frame(9, 0, 20000, 1.0, data))
    pos %= len(wire) - 1
    wire[pos] ^= flip  # any corruption of the frame body
    got = frames.FrameDecoder().feed(b"\x00" + bytes(wire) + noise + b"\x00")
    for f in got:
        if isinstance(f, frames.Frame) and f.seq == 9:
            np.testing.assert_array_equal(f.samples, data)  # CRC let nothing wrong through


def test_protocol_md_examples_are_the_vectors():
    """The hex written out in PROTOCOL.md is the test vectors' (no drift between doc and code)."""
    import re

    text = (ROOT / "PROTOCOL.md").read_text()
    known = {f["wire_hex"] for f in VECTORS["frames"]} | {m["wire_hex"] for m in VECTORS["messages"]}
    payloads = {f["payload_hex"] for f in VECTORS["frames"]}
    found = 0
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        fields = {}
        for line in block.splitlines():
            m = re.match(r"(payload\+crc|wire)?\s+([0-9a-f ]+)$", line)
            if m and m.group(1):
                key = m.group(1)
                fields[key] = m.group(2).replace(" ", "")
            elif m and fields:
                fields[key] += m.group(2).replace(" ", "")
        if "wire" in fields:
            assert fields["wire"] in known
            found += 1
        if "payload+crc" in fields:
            assert fields["payload+crc"] in payloads
    assert found == 3
