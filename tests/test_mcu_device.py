"""The wrist firmware: linked for the nRF52840 (footprint read from the ELF) and run on an
emulated Cortex-M4 (QEMU mps2-an386) whose predictions must agree with host int8 inference.

Skips with the reason when EDGEHAR_TOOLCHAINS or the Arm compiler / QEMU are missing. Shares the
cortex-m4 CMSIS-NN TFLM library with test_mcu_profile.py (one build, cached).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgehar.cli import main
from tiny_har_models import bangle_card, built_models, random_windows


@pytest.fixture(scope="session")
def toolchain():
    if not os.environ.get("EDGEHAR_TOOLCHAINS"):
        pytest.skip("EDGEHAR_TOOLCHAINS is unset (the TFLM sources; CI sets it to ../shared/toolchains)")
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (see .ci/run for the apt line)")
    from edgehar.mcu.toolchain import find_toolchain

    return find_toolchain()


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    """An export folder like `edgehar export --int8` writes, around the tiny int8 model."""
    from edgehar.export.c_array import write_c_array
    from edgehar.interpreters import litert_interpreter

    folder = tmp_path_factory.mktemp("export")
    data = Path(built_models()["tflite_int8"]).read_bytes()
    (folder / "model_int8.tflite").write_bytes(data)
    it = litert_interpreter(data, xnnpack=False)
    (si, zi), (so, zo) = (it.get_input_details()[0]["quantization"],
                          it.get_output_details()[0]["quantization"])
    card = bangle_card(quantization={"input_scale": si, "input_zero_point": zi,
                                     "output_scale": so, "output_zero_point": zo})
    write_c_array(data, card, folder / "model_int8.h", folder / "model_int8.cc")
    (folder / "modelcard.json").write_text(card.to_json())
    return folder


def test_firmware_build_reports_flash_and_ram(toolchain, export_dir, capsys):
    assert main(["firmware", "build", str(export_dir), "--board", "nrf52840", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    model_bytes = (export_dir / "model_int8.tflite").stat().st_size
    assert Path(r["elf"]).is_file() and r["elf"].endswith("firmware-nrf52840.elf")
    assert r["flash"]["model"] == model_bytes == r["model_file_bytes"]  # the array is the file
    assert r["flash"]["tflm_code"] > 20_000  # interpreter + kernels really linked
    assert r["flash_bytes"] >= r["flash"]["model"] + r["flash"]["tflm_code"]
    assert r["ram"]["arena"] > 0 and r["ram"]["arena"] % 1024 == 0
    assert r["ram_bytes"] == r["ram"]["arena"] + r["ram"]["stack"] + r["ram"]["other_bss_data"]
    assert r["flash_bytes"] <= r["flash_capacity"] and r["ram_bytes"] <= r["ram_capacity"]


def test_emulated_device_agrees_with_host_int8(toolchain, export_dir):
    """Same replayed samples -> same windows -> the MCU's int8 outputs vs LiteRT's."""
    from edgehar.bridge.emulator import EmulatedDevice, device_windows, stream_scale
    from edgehar.mcu.firmware_build import build_firmware
    from edgehar.interpreters import litert_interpreter

    card = bangle_card()
    stream = np.concatenate([random_windows(card, 1, seed=s)[0] for s in range(5, 29)])  # 3072 samples
    scale = stream_scale(stream)
    elf = build_firmware(str(export_dir), "mps2-an386")
    it = litert_interpreter(str(export_dir / "model_int8.tflite"), xnnpack=False)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    windows = device_windows(stream, scale, card, *inp["quantization"])
    host = []
    for w in windows:
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        host.append(it.get_tensor(out["index"])[0].astype(int))
    host = np.stack(host)
    with EmulatedDevice(elf, toolchain.qemu, pty=False) as dev:
        assert dev.wait_for(lambda d: d.messages, 60), "firmware did not greet"
        assert dev.messages[0].startswith("# edgehar device arena="), dev.messages
        dev.send(stream, card.rate, scale)
        assert dev.wait_for(lambda d: len(d.predictions) >= len(windows), 120)
        preds = dev.predictions
    assert [p.window for p in preds] == list(range(len(windows)))
    mcu = np.stack([p.outputs.astype(int) for p in preds])
    assert (mcu.argmax(1) == host.argmax(1)).mean() >= 0.995
    assert [p.top for p in preds] == list(mcu.argmax(1))  # the firmware's own argmax
    assert np.abs(mcu - host).max() <= 3


def test_live_on_device_shows_emulated_predictions(toolchain, export_dir, data_root, tmp_path):
    """`edgehar device emulate` on a pty, `edgehar live --port PTY --on-device` reading it."""
    recording = data_root / "banglejs_wrist" / "acc_exp01_user01.txt"
    if not recording.is_file():
        pytest.skip(f"{recording} missing")
    emu = subprocess.Popen([sys.executable, "-m", "edgehar", "device", "emulate", "--model",
                            str(export_dir), "--replay", str(recording), "--start", "600",
                            # 30 s of streaming: `live` below may take 10-20 s to start on a
                            # loaded machine, and a pty is gone once the replay has ended
                            "--seconds", "60", "--speed", "2", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = json.loads(emu.stdout.readline())["port"]
        live = subprocess.run([sys.executable, "-m", "edgehar", "live", "--port", port, "--model",
                               str(export_dir), "--on-device", "--duration", "12", "--json"],
                              capture_output=True, text=True, timeout=120)
        lines = [json.loads(l) for l in live.stdout.splitlines() if l.strip()]
        emu.send_signal(signal.SIGTERM)  # ends the replay cleanly: it prints what the MCU ran so far
        emu_out, _ = emu.communicate(timeout=120)
    finally:
        if emu.poll() is None:
            emu.kill()
    preds = [l for l in lines if "window" in l]
    assert live.returncode == 0, live.stderr
    assert preds and all(p["on_device"] and p["label"] in bangle_card().labels for p in preds)
    emulated = [json.loads(l) for l in emu_out.splitlines() if l.startswith('{"window"')]
    by_window = {e["window"]: e for e in emulated}
    assert all(by_window[p["window"]]["outputs"] == p["outputs"] for p in preds)


def test_firmware_build_names_a_missing_export_file(tmp_path, capsys):
    assert main(["firmware", "build", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model_int8.cc: missing; run `edgehar export" in err[0]
