"""`edgehar device emulate --model DIR --replay REC` and `edgehar live --on-device`."""

from __future__ import annotations

import json
import sys

from edgehar.bridge import flags
from edgehar.bridge.emulator import EmulatedDevice, card_values, parse_prediction, stream_scale
from edgehar.bridge.virtual_device import check_link
from edgehar.card import ModelCard
from edgehar.mcu.firmware_build import artifact_files, build_firmware
from edgehar.mcu.toolchain import find_toolchain


def register_emulate(dsub) -> None:
    from edgehar.cli_types import nonneg_float, positive_float

    emu = dsub.add_parser(
        "emulate", help="the int8 model's real firmware on an emulated Cortex-M4, on a pty",
        description="Build the wrist firmware for the export folder (TFLite-Micro + CMSIS-NN, the "
                    "C array, the frame codec), boot it in qemu-system-arm (mps2-an386, Cortex-M4) "
                    "and feed it the replayed recording as samples frames, as its IMU would. The "
                    "firmware windows them as the model card says, runs the int8 model ON the "
                    "emulated MCU and sends each prediction back as a frame-mode text message; "
                    "those bytes come out of a pseudo-terminal whose path is printed first: read it "
                    "with `edgehar live --port PTY --on-device --model DIR`.")
    emu.add_argument("--model", required=True, metavar="ARTIFACT_DIR",
                     help="folder written by `edgehar export --int8` (model_int8.cc, modelcard.json), "
                          "or a zoo name (edgehar models)")
    emu.add_argument("--replay", required=True, metavar="RECORDING",
                     help="recording the emulated IMU delivers (Bangle.js, HAPT, CSV, .cwa)")
    emu.add_argument("--speed", type=nonneg_float, default=1.0, metavar="X",
                     help="X times real time (default 1; 0 = as fast as the MCU takes them)")
    emu.add_argument("--start", type=nonneg_float, default=0.0, metavar="S", help="start S seconds in")
    emu.add_argument("--seconds", type=positive_float, metavar="S", help="replay only S seconds")
    emu.add_argument("--link", type=flags.link_path, metavar="PATH",
                     help="stable symlink to the pty (an existing file, or a link to anything but a "
                          "pty, is never replaced)")
    emu.add_argument("--toolchains", metavar="DIR", help="TFLM sources (default $EDGEHAR_TOOLCHAINS)")
    emu.add_argument("--json", action="store_true",
                     help="print the port as JSON first, then the device's predictions and a summary")
    emu.set_defaults(func=run_emulate)


def run_emulate(args) -> int:
    from edgehar.mcu.firmware_build import export_folder

    with export_folder(args.model) as folder:
        return _emulate(args, folder)


def _emulate(args, folder) -> int:
    import os
    import signal

    from edgehar.data import load_recording
    from edgehar.errors import UserError

    _, _, card_path = artifact_files(folder)  # the user's folder is checked before the tools
    tc = find_toolchain(args.toolchains)
    card = ModelCard.from_json(card_path.read_text(), str(card_path))
    rec = load_recording(args.replay)
    values = card_values(rec, card, args.replay)
    s = int(round(args.start * card.rate))
    values = values[s:] if args.seconds is None else values[s:s + int(round(args.seconds * card.rate))]
    if len(values) < card.window:
        raise UserError(args.replay, f"fewer than one window ({card.window} samples) to replay")
    elf = build_firmware(folder, "mps2-an386", args.toolchains)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends the replay cleanly (link removed)
    with EmulatedDevice(elf, tc.qemu) as dev:
        if args.link:
            check_link(args.link)  # again: the path may have changed since the flags were read
            if os.path.islink(args.link):
                os.unlink(args.link)  # a pty link, left by a killed device
            os.symlink(dev.path, args.link)
        try:
            print(json.dumps({"port": dev.path, "windows": 1 + (len(values) - card.window) // card.hop})
                  if args.json else dev.path, flush=True)
            if not dev.wait_for(lambda d: any(m.startswith(("# edgehar device", "ERR"))
                                              for m in d.messages), 60):
                raise UserError(elf, "the emulated firmware did not start")
            errors = [m for m in dev.messages if m.startswith("ERR")]
            if errors:
                raise UserError(elf, f"the firmware reports {errors[0]}")
            expected = 1 + (len(values) - card.window) // card.hop
            dev.send(values, card.rate, stream_scale(values), speed=args.speed)
            dev.wait_for(lambda d: len(d.predictions) >= expected, 60 + expected)
        except KeyboardInterrupt:
            pass
        finally:
            if args.link and os.path.islink(args.link):
                os.unlink(args.link)
        if args.json:
            for p in dev.predictions:
                print(json.dumps({"window": p.window, "label": card.labels[p.top],
                                  "outputs": p.outputs.tolist()}))
        summary = {"windows": len(dev.predictions), "messages": len(dev.messages),
                   "device": next((m for m in dev.messages if m.startswith("#")), "")}
    print(json.dumps({"summary": summary}) if args.json else
          f"edgehar: emulated device ran {summary['windows']} windows on the MCU ({summary['device']})",
          file=sys.stdout if args.json else sys.stderr)
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt


def run_live_on_device(args) -> int:
    """Show the predictions a device computed itself (frame-mode "P ..." messages)."""
    import time

    from edgehar.bridge import frames
    from edgehar.bridge.serial_reader import open_port
    from edgehar.errors import UserError
    from edgehar.runtime import Predictor

    from pathlib import Path

    card_path = Path(args.model) / "modelcard.json"
    labels = (ModelCard.from_json(card_path.read_text(), str(card_path)).labels if card_path.is_file()
              else Predictor(args.model, args.backend, args.threads).card.labels)
    classes = getattr(args, "classes", None)
    if classes and sorted(classes) != sorted(labels):
        # the device computes its own outputs: a subset is chosen at export, not here
        raise UserError(args.model, f"--on-device shows the device's own outputs ({', '.join(labels)}): "
                                    f"export the model with --classes {','.join(classes)} and run that on the device")
    port = open_port(args.port, args.baud)
    import serial

    decoder, count, errors, gone = frames.FrameDecoder(), 0, 0, False
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while end is None or time.monotonic() < end:
            try:
                data = port.read(4096)
            except (serial.SerialException, OSError):  # the device went away: the session ends
                gone = True
                break
            for item in decoder.feed(data or b""):
                if not isinstance(item, frames.Message):
                    continue
                if item.text.startswith("ERR"):
                    errors += 1
                p = parse_prediction(item.text)
                if p is None:
                    continue
                count += 1
                label = labels[p.top] if p.top < len(labels) else str(p.top)
                print(json.dumps({"window": p.window, "label": label, "outputs": p.outputs.tolist(),
                                  "on_device": True}) if args.json else
                      f"window {p.window:>5}  {label}  (on-device int8 {p.outputs.tolist()})",
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        port.close()
    summary = {"windows": count, "device_errors": errors, "on_device": True, "device_gone": gone}
    print(json.dumps({"summary": summary}) if args.json else
          f"edgehar: {count} on-device predictions, device errors {errors}", file=sys.stderr
          if not args.json else sys.stdout)
    return 0
