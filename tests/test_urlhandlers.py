"""Ports by URL: `live` and `record` on `sim://` (the virtual device in process, no pty) give
what the pty path gives; `loop://` and `socket://` through the reader; faults from the query
string reach the stream; bad URLs are one-line errors; `qemu://` runs the wrist firmware."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import numpy as np
import pytest

from edgehar.bridge import frames
from edgehar.bridge.ring import Ring
from edgehar.bridge.serial_reader import SerialReader, pyserial
from edgehar.bridge.virtual_device import VirtualDevice, format_line, frame_scale
from edgehar.cli import main
from edgehar.data import load_recording
from edgehar.data.owndata import load_folder
from tiny_har_models import bangle_card, built_models, random_windows

RATE = 50.0
START_S, SECONDS = 270, 40  # Bangle.js user 1, across the lying -> running boundary at 300 s


@pytest.fixture()
def replay_file(tmp_path):
    """A 60 s, 3-axis recording with a time column, in a folder whose name needs quoting."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3000, 3)) * [0.3, 0.5, 1.0] + [0, 0, 1]).astype(np.float32)
    lines = ["time,acc_x,acc_y,acc_z"] + [f"{i / RATE:.3f}," + ",".join(f"{v:.9g}" for v in r)
                                          for i, r in enumerate(x)]
    folder = tmp_path / "my recs #1"
    folder.mkdir()
    path = folder / "replay.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def sim_url(path, **options) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"sim://{quote(str(path))}" + (f"?{query}" if query else "")


def refuse_ptys(monkeypatch) -> None:
    """Any pseudo-terminal opened from here on fails the test."""
    def refuse():
        raise AssertionError("a pty was opened")

    monkeypatch.setattr(os, "openpty", refuse)


@pytest.fixture()
def no_pty(monkeypatch):
    refuse_ptys(monkeypatch)


def _json_lines(text: str) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return lines[:-1], lines[-1]["summary"]


# -- live and record on sim:// ----------------------------------------------------------------
def _pty_predictions(data, rec, model, protocol, tmp_path) -> dict[int, np.ndarray]:
    """The pty path: `VirtualDevice` on a pty, a `LiveSession` reading it, until the replay ends."""
    from edgehar.bridge.live import LiveSession

    dev = VirtualDevice(data, rec.rate, rec.channels, rec.units, protocol, speed=40,
                        link=str(tmp_path / "dev"))
    session = LiveSession(dev.path, model, smooth="none", keep=True)
    dev.start()
    done = []

    def idle():
        if dev.finished and not done:
            done.append(time.perf_counter())
        if done and time.perf_counter() - done[0] > 0.5:
            session.stop()

    try:
        session.run(duration=120, on_idle=idle)
    finally:
        dev.stop()
    assert len(dev.sent) == 1 and len(dev.sent[0]) == len(data)
    return {p.start: p.probs for p in session.predictions}


@pytest.mark.data
@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_live_on_sim_url_predicts_as_the_pty_path(data_root, tmp_path, protocol, capsys, monkeypatch):
    recording = data_root / "banglejs_wrist" / "acc_exp01_user01.txt"
    model = str(built_models()["onnx"])
    rec = load_recording(recording)
    data = rec.data[START_S * 50:(START_S + SECONDS) * 50]
    pty = _pty_predictions(data, rec, model, protocol, tmp_path)
    url = sim_url(recording, speed=0, start=START_S, seconds=SECONDS, protocol=protocol)
    argv = ["live", "--port", url, "--model", model, "--smooth", "none", "--duration", "3", "--json"]
    if protocol == "text":  # in this process, where no pty may open from now on
        refuse_ptys(monkeypatch)
        capsys.readouterr()
        assert main(argv) == 0
        out = capsys.readouterr().out
    else:  # the command as a user runs it
        run = subprocess.run([sys.executable, "-m", "edgehar", *argv], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        out = run.stdout
    preds, summary = _json_lines(out)
    assert [p["start"] for p in preds] == sorted(pty)  # the same windows, by sample index
    sim = np.array([[p["probs"][c] for c in ("running", "walking", "sitting", "lying")] for p in preds])
    np.testing.assert_allclose(sim, np.stack([pty[s] for s in sorted(pty)]), atol=1e-5)  # 5 decimals
    assert np.ptp(sim, axis=0).max() > 0.1  # the replay spans two activities: the outputs move
    assert summary["garbled"] == summary["overruns"] == summary["reconnects"] == 0
    assert summary["bytes"] > 0 and summary["windows"] == len(preds)


def _sent(path, protocol):
    data = load_recording(path).data
    if protocol == "frame":  # what a frame carries: int16 at the device's scale
        scale = frame_scale(data)
        return frames.quantize(data, scale).astype(np.float32) * np.float32(scale)
    return data


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_record_on_sim_url_writes_the_takes(replay_file, tmp_path, protocol, capsys, no_pty):
    out = tmp_path / "takes"
    # 50x real time, looping: the device is still there when the second take ends
    url = sim_url(replay_file, speed=50, loop=1, protocol=protocol)
    argv = ["record", "--port", url, "--label", "walking",
            "--subject", "7", "--out", str(out), "--seconds", "8", "--takes", "2", "--json"]
    assert main(argv) == 0, capsys.readouterr().err
    takes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(takes) == 2 and all(t["samples"] == 400 and t["rate"] == RATE for t in takes)
    assert all(t["ended_by"] == "seconds" for t in takes)
    sent = _sent(replay_file, protocol)
    recs = sorted(load_folder(out), key=lambda r: r.name)
    assert all(r.subject == 7 and r.label_names[r.labels[0]] == "walking" for r in recs)
    np.testing.assert_array_equal(recs[0].data, sent[:400])  # the stream's start
    # the second take is a later stretch of the same stream (from the block after the first
    # take's end), sample for sample
    start = int(np.flatnonzero((sent == recs[1].data[0]).all(1))[0])
    assert start >= 400
    np.testing.assert_array_equal(recs[1].data, sent[start:start + 400])


def test_a_sim_replay_ends_as_an_unplug(replay_file, tmp_path, capsys, no_pty):
    """Without --seconds the take is the whole replay, ended by the device going away."""
    out = tmp_path / "takes"
    url = sim_url(replay_file, speed=0, start=10, seconds=12)
    assert main(["record", "--port", url, "--label", "sitting", "--out", str(out), "--wait", "0.3",
                 "--json"]) == 0
    (take,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert take["ended_by"] == "disconnect" and take["samples"] == 600
    (r,) = load_folder(out)
    np.testing.assert_array_equal(r.data, load_recording(replay_file).data[500:1100])


def test_blocks_read_before_the_device_ends_make_the_next_take(replay_file, tmp_path, capsys, no_pty):
    """At speed 0 the whole replay may be read before the loop sees it: the samples after the
    first take's end are the second take, not dropped because no take was open."""
    out = tmp_path / "takes"
    url = sim_url(replay_file, speed=0, start=10, seconds=12)
    assert main(["record", "--port", url, "--label", "sitting", "--out", str(out), "--seconds", "8",
                 "--takes", "2", "--wait", "0.3", "--json"]) == 0
    takes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["ended_by"] for t in takes] == ["seconds", "disconnect"] and takes[0]["samples"] == 400
    # the second take runs to the replay's last sample (the rest of the block that filled the
    # first take is not kept: a take starts with a block)
    second = sorted(load_folder(out), key=lambda r: r.name)[1]
    replay = load_recording(replay_file).data[500:1100]
    np.testing.assert_array_equal(second.data, replay[len(replay) - len(second.data):])


# -- faults from the query string -------------------------------------------------------------
def _read_all(reader: SerialReader, timeout: float = 60.0) -> np.ndarray:
    """Run `reader` until its sim device's replay has ended and been read; the samples."""
    dev = reader._serial.device
    blocks = []
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not (dev.ended and dev.gone and not reader.connected):
            assert time.monotonic() < deadline, "the replay did not end"
            blocks += reader.ring.get_all(timeout=0.05)
            if reader.failure is not None:
                raise reader.failure
    finally:
        reader.stop()
        reader.join(timeout=5)
    blocks += reader.ring.get_all()
    return np.concatenate([b.values for b in blocks])


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_faults_in_the_url_reach_the_stream(replay_file, protocol, no_pty):
    faults = "garbage=2%,drop=1%,err=1%,disconnect=30,down=0.3,seed=4"
    url = sim_url(replay_file, speed=0, protocol=protocol, faults=faults)
    reader = SerialReader(url, Ring(capacity=100_000), protocol=protocol)
    dev = reader._serial.device
    got = _read_all(reader)
    c = reader.stats()
    assert dev.counts["disconnects"] == 1 and len(dev.sent) == 2 and c["reconnects"] == 1
    assert c["garbled"] >= dev.counts["garbage"] > 0
    assert c["device_errors"] == dev.counts["errors"] > 0
    assert c["truncated"] >= 1  # the line/frame cut by the unplug
    assert dev.counts["dropped"] > 0 and dev.counts["unheard"] == 0  # speed=0: nothing falls due unheard
    if protocol == "frame":
        assert c["dropped"] >= dev.counts["dropped"]  # seen as sequence gaps
    # exactly the samples the device says reached the host intact, in order
    np.testing.assert_array_equal(got, _sent(replay_file, protocol)[np.concatenate(dev.sent)])


def test_a_real_time_sim_device_loses_what_falls_due_while_unplugged(replay_file, no_pty):
    url = sim_url(replay_file, speed=10, seconds=20, faults="disconnect=4,down=0.5")
    reader = SerialReader(url, Ring(capacity=100_000), protocol="text")
    dev = reader._serial.device
    got = _read_all(reader)
    assert reader.stats()["reconnects"] == 1 and len(dev.sent) == 2
    assert dev.counts["unheard"] > 0 and dev.sent[1]  # ~0.5 s away at 10x: ~5 s of samples lost
    assert len(dev.sent[0]) + len(dev.sent[1]) + dev.counts["unheard"] + 1 == 1000  # +1: the cut line
    np.testing.assert_array_equal(got, load_recording(replay_file).data[np.concatenate(dev.sent)])


# -- pyserial's own URLs through the reader ---------------------------------------------------
def _stream(protocol: str, x: np.ndarray) -> bytes:
    if protocol == "text":
        return b"\r\n# edgehar rate=50 channels=acc_x,acc_y,acc_z\r\n" + b"".join(format_line(r) for r in x)
    scale = frame_scale(x)
    out = [b"\x00", frames.encode_message(0, "# edgehar rate=50 channels=acc_x,acc_y,acc_z")]
    for i in range(0, len(x), 5):
        out.append(frames.encode_frame(i // 5 + 1, i * 20_000, 20_000, scale, frames.quantize(x[i:i + 5], scale)))
    return b"".join(out)


def _collect(reader: SerialReader, n: int) -> np.ndarray:
    got, deadline = [], time.monotonic() + 30
    while sum(len(b.values) for b in got) < n and time.monotonic() < deadline:
        got += reader.ring.get_all(timeout=0.05)
    return np.concatenate([b.values for b in got])


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_loop_url_round_trip_through_the_reader(protocol):
    x = np.random.default_rng(1).standard_normal((200, 3)).astype(np.float32)
    reader = SerialReader("loop://", Ring(capacity=10_000), protocol=protocol)
    reader.start()
    try:
        reader._serial.write(_stream(protocol, x))
        got = _collect(reader, len(x))
    finally:
        reader.stop()
        reader.join(timeout=5)
    want = x if protocol == "text" else frames.quantize(x, frame_scale(x)) * np.float32(frame_scale(x))
    np.testing.assert_array_equal(got, want)
    assert reader.rate == RATE and reader.stats()["garbled"] == 0


def test_socket_url_through_the_reader():
    x = np.random.default_rng(2).standard_normal((300, 3)).astype(np.float32)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    opened = threading.Event()

    def serve():
        conn, _ = server.accept()
        # pyserial's socket:// discards what is waiting when it opens: send once it is open
        opened.wait(30)
        with conn:
            conn.sendall(_stream("text", x))
            time.sleep(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    reader = SerialReader(f"socket://127.0.0.1:{port}", Ring(capacity=10_000), protocol="auto")
    opened.set()
    reader.start()
    try:
        got = _collect(reader, len(x))
    finally:
        reader.stop()
        reader.join(timeout=5)
        server.close()
    np.testing.assert_array_equal(got, x)
    assert reader.protocol == "text"


# -- bad URLs ---------------------------------------------------------------------------------
def _one_line_error(capsys, argv, where, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgehar: error: {where}: ") and match in err[0], err


def test_bad_urls_are_one_line_errors(replay_file, tmp_path, capsys):
    missing_model = str(tmp_path / "no-such-model.onnx")  # the URL is checked before the model loads
    bad = {"foo://x": "unknown URL scheme 'foo'",
           sim_url(tmp_path / "nope.csv"): "no such recording file",
           sim_url(tmp_path): "is a folder",
           sim_url(replay_file, speed="fast"): "speed=fast: not a number",
           sim_url(replay_file, speed=-2): "speed=-2: must be >= 0",
           sim_url(replay_file, protocol="morse"): "protocol=morse",
           sim_url(replay_file, faults="gremlins=3"): "unknown fault 'gremlins'",
           sim_url(replay_file, faults="drop=2"): "bad value in 'drop=2'",
           sim_url(replay_file, colour="red"): "unknown option 'colour'",
           sim_url(replay_file, start=1000): "nothing to replay from 1000 s",
           f"qemu://{quote(str(tmp_path / 'no-export'))}": "no such export folder",
           f"qemu://{quote(str(tmp_path))}?cpu=cortex-m0": "cpu=cortex-m0: no emulated board",
           f"qemu://{quote(str(tmp_path))}?replay=nope.csv": "no such recording file 'nope.csv'"}
    for url, match in bad.items():
        model = missing_model if "start=" not in url else str(built_models()["onnx"])  # found on open
        _one_line_error(capsys, ["live", "--port", url, "--model", model], url, match)
    _one_line_error(capsys, ["record", "--port", "bar://y", "--label", "walking", "--out",
                             str(tmp_path / "o")], "bar://y", "unknown URL scheme 'bar'")
    assert not (tmp_path / "o").exists()


def test_the_port_help_names_the_url_forms(capsys):
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "sim://RECORDING" in text and "qemu://ARTIFACT_DIR" in text and "socket://" in text


def test_pyserial_finds_the_kit_handlers():
    serial = pyserial()
    pyserial()  # registered once
    assert serial.protocol_handler_packages.count("edgehar.bridge.urlhandler") == 1
    with pytest.raises(ValueError, match="not known"):
        serial.serial_for_url("nosuch://x")


# -- qemu:// ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toolchain():
    if not os.environ.get("EDGEHAR_TOOLCHAINS"):
        pytest.skip("EDGEHAR_TOOLCHAINS is unset (the TFLM sources; CI sets it to ../shared/toolchains)")
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (see .ci/run for the apt line)")
    from edgehar.mcu.toolchain import find_toolchain

    return find_toolchain()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """An export folder like `edgehar export --int8` writes, around the tiny int8 model."""
    from edgehar.export.c_array import write_c_array
    from edgehar.interpreters import litert_interpreter

    folder = tmp_path_factory.mktemp("export")
    data = built_models()["tflite_int8"].read_bytes()
    (folder / "model_int8.tflite").write_bytes(data)
    it = litert_interpreter(data, xnnpack=False)
    (si, zi), (so, zo) = (it.get_input_details()[0]["quantization"],
                          it.get_output_details()[0]["quantization"])
    card = bangle_card(quantization={"input_scale": si, "input_zero_point": zi,
                                     "output_scale": so, "output_zero_point": zo})
    write_c_array(data, card, folder / "model_int8.h", folder / "model_int8.cc")
    (folder / "modelcard.json").write_text(card.to_json())
    return folder


def _host_int8(export_dir, stream, scale) -> np.ndarray:
    """LiteRT's int8 outputs for the windows the firmware builds from the same frames."""
    from edgehar.bridge.emulator import device_windows
    from edgehar.interpreters import litert_interpreter

    it = litert_interpreter(str(export_dir / "model_int8.tflite"), xnnpack=False)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    host = []
    for w in device_windows(stream, scale, bangle_card(), *inp["quantization"]):
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        host.append(it.get_tensor(out["index"])[0].astype(int))
    return np.stack(host)


def test_qemu_url_is_the_firmware_uart(toolchain, export_dir, no_pty):
    """Samples frames written to the port go into the MCU; its predictions come back out."""
    from edgehar.bridge.emulator import parse_prediction, stream_scale

    card = bangle_card()
    stream = np.concatenate([random_windows(card, 1, seed=s)[0] for s in range(5, 13)])  # 1024 samples
    scale = stream_scale(stream)
    host = _host_int8(export_dir, stream, scale)
    decoder, messages = frames.FrameDecoder(), []

    def read_until(done, timeout):
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            messages.extend(m.text for m in decoder.feed(port.read(4096)) if isinstance(m, frames.Message))

    url = f"qemu://{quote(str(export_dir))}?cpu=cortex-m4"
    with pyserial().serial_for_url(url, timeout=0.1) as port:
        read_until(lambda: messages, 60)
        assert messages and messages[0].startswith("# edgehar device arena="), messages
        period = int(round(1e6 / card.rate))
        for seq, i in enumerate(range(0, len(stream), 10)):
            port.write(frames.encode_frame(seq, i * period, period, scale,
                                           frames.quantize(stream[i:i + 10], scale)))
        preds = lambda: [p for p in map(parse_prediction, messages) if p is not None]  # noqa: E731
        read_until(lambda: len(preds()) >= len(host), 120)
    mcu = np.stack([p.outputs.astype(int) for p in preds()])
    assert [p.window for p in preds()] == list(range(len(host)))
    assert (mcu.argmax(1) == host.argmax(1)).all() and np.abs(mcu - host).max() <= 3


def test_live_on_device_reads_a_qemu_url(toolchain, export_dir, tmp_path, capsys, no_pty):
    """`live --on-device --port qemu://DIR?replay=REC`: the MCU's predictions, no pty, no
    second program; the same outputs as the MCU gives for those frames written by hand."""
    from edgehar.bridge.emulator import stream_scale

    card = bangle_card()
    stream = np.concatenate([random_windows(card, 1, seed=s)[0] for s in range(40, 46)])  # 768 samples
    rec = tmp_path / "wrist.csv"
    rec.write_text("time,acc_x,acc_y,acc_z\n" + "".join(
        f"{i / card.rate:.3f}," + ",".join(f"{v:.9g}" for v in row) + "\n" for i, row in enumerate(stream)))
    url = f"qemu://{quote(str(export_dir))}?replay={quote(str(rec))}&speed=0"
    assert main(["live", "--on-device", "--port", url, "--model", str(export_dir), "--duration", "15",
                 "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    preds, summary = lines[:-1], lines[-1]["summary"]
    host = _host_int8(export_dir, stream, stream_scale(stream))
    assert [p["window"] for p in preds] == list(range(len(host))) == list(range(summary["windows"]))
    mcu = np.array([p["outputs"] for p in preds])
    assert (mcu.argmax(1) == host.argmax(1)).all() and np.abs(mcu - host).max() <= 3
    assert all(p["on_device"] and p["label"] == card.labels[int(np.argmax(o))] for p, o in zip(preds, mcu))
