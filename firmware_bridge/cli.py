"""`edgehar device simulate` (a pty device replaying a recording) and `edgehar live`."""

from __future__ import annotations

import argparse
import json
import sys

from edgehar.bridge import flags
from edgehar.cli_types import nonneg_float, positive_float, positive_int, threads


def register(sub) -> None:
    dev = sub.add_parser("device", help="virtual serial devices for testing the live bridge",
                         description="Virtual serial devices for testing the live bridge.")
    dsub = dev.add_subparsers(dest="device_command", metavar="ACTION")
    dsub.required = True
    sim = dsub.add_parser(
        "simulate", help="replay a recording through a pseudo-terminal, like a real board",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Open a pseudo-terminal, print its path, and stream a recording through it in "
                    "real time (or --speed times faster) in text mode (Edge Impulse data forwarder "
                    "lines) or frame mode (COBS frames, see firmware_bridge/PROTOCOL.md).",
        epilog="faults: garbage=P,drop=P,burst=P,err=P (probability per line/frame, 0.01 or 1%),\n"
               "        disconnect=T[+T...] (unplug at recording second T), down=S, seed=N\n"
               "example: edgehar device simulate --replay banglejs_wrist/acc_exp01_user01.txt \\\n"
               "           --speed 10 --protocol frame --faults garbage=1%,drop=1%,disconnect=30 "
               "--link /tmp/edgehar-dev")
    sim.add_argument("--replay", required=True, metavar="RECORDING",
                     help="recording file (Bangle.js, HAPT, CSV, .cwa)")
    sim.add_argument("--rate", type=flags.rate_hz, metavar="HZ",
                     help="device sample rate: the recording is resampled to it (default: its own)")
    sim.add_argument("--speed", type=positive_float, default=1.0, metavar="X", help="replay X times faster than real time")
    sim.add_argument("--protocol", choices=["text", "frame"], default="text")
    sim.add_argument("--faults", type=flags.faults, metavar="SPEC", help="faults to inject (see below)")
    sim.add_argument("--link", type=flags.link_path, metavar="PATH",
                     help="stable symlink to the pty, re-pointed after a simulated unplug (an existing "
                          "file is never replaced; a link to a pty, e.g. left by a killed simulator, is)")
    sim.add_argument("--start", type=nonneg_float, default=0.0, metavar="S", help="start S seconds into the recording")
    sim.add_argument("--seconds", type=positive_float, metavar="S", help="replay only S seconds")
    sim.add_argument("--frame-samples", type=flags.frame_samples, metavar="N", help="samples per frame (default: rate/10)")
    sim.add_argument("--loop", action="store_true", help="replay forever")
    sim.add_argument("--no-declare", action="store_true",
                     help="send no '# edgehar rate=.. channels=..' line (like plain Edge Impulse firmware)")
    sim.add_argument("--json", action="store_true", help="print the port and the final summary as JSON")
    sim.set_defaults(func=run_simulate)
    from edgehar.bridge.emulate_cli import register_emulate

    register_emulate(dsub)

    live = sub.add_parser(
        "live", help="live predictions from a serial device",
        description="Read a serial device (text or frame mode), resample to the model card's rate, "
                    "window with its hop, run the model, smooth, and show the current activity. "
                    "Ctrl-C ends it.")
    live.add_argument("--port", required=True,
                      help="serial port or URL: /dev/ttyACM0, a simulator's path, socket://HOST:PORT, "
                           "loop://, sim://RECORDING?speed=20&faults=... (the virtual device, in "
                           "process), qemu://ARTIFACT_DIR?cpu=cortex-m4 (the emulated firmware)")
    live.add_argument("--model", required=True,
                      help="model (.tflite, .onnx, .pt) or artifact folder: a model file/folder or a "
                           "zoo name (edgehar models; a student runs its shipped int8 model)")
    live.add_argument("--baud", type=positive_int, default=115200, help="baud rate (default 115200)")
    live.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    live.add_argument("--log", type=flags.log_path, metavar="FILE",
                      help="write every prediction to FILE (.csv, or JSON lines for .jsonl/.json); "
                           "it replaces FILE only when the run ends")
    live.add_argument("--protocol", choices=["auto", "text", "frame"], default="auto")
    live.add_argument("--rate", type=flags.rate_hz, metavar="HZ",
                      help="device rate (text mode; default: declared by the device or measured)")
    live.add_argument("--smooth", default="ema:0.5", metavar="SPEC", help="none, vote:N or ema:A (default ema:0.5)")
    live.add_argument("--backend", choices=["litert", "tflite-runtime", "onnxruntime", "torch"],
                      help="runtime (default: the first available for the model file)")
    live.add_argument("--threads", type=threads, default=1, help="inference threads (default 1)")
    live.add_argument("--max-gap", type=nonneg_float, default=0.25, metavar="S",
                      help="frame mode: interpolate gaps up to S seconds, start a new segment after longer")
    from edgehar.cli_types import label_list
    live.add_argument("--labels", type=label_list, metavar="A,B,...",
                      help="predict these classes zero-shot, from their text alone: cosine of the "
                           "model's embedding output to each label's prototype (no retraining)")
    from edgehar.classes import add_classes_flag
    add_classes_flag(live, "probabilities renormalised over them, the argmax among them (with "
                           "--on-device: only when the artifact was exported with those classes)")
    live.add_argument("--json", action="store_true", help="JSON lines: one per prediction, then a summary")
    live.add_argument("--on-device", action="store_true",
                      help="show the predictions the device computed itself (frame-mode 'P ...' "
                           "messages, e.g. from `edgehar device emulate`) instead of running the model here")
    live.set_defaults(func=run_live)


def run_simulate(args) -> int:
    import signal

    from edgehar.bridge.virtual_device import Faults, VirtualDevice, load_replay

    faults = args.faults or Faults()  # every flag was checked at parse time
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends the replay cleanly (link removed)
    rec, data = load_replay(args.replay, args.rate, args.start, args.seconds)
    dev = None
    try:  # a signal at any point from here stops the device and removes the link
        dev = VirtualDevice(data, rec.rate, rec.channels, rec.units, args.protocol, args.speed, faults,
                            args.link, args.frame_samples, args.loop, declare=not args.no_declare)
        info = {"port": dev.path, "protocol": args.protocol, "rate": rec.rate,
                "channels": list(rec.channels), "samples": len(data),
                "seconds": round(len(data) / rec.rate, 2), "speed": args.speed}
        print(json.dumps(info) if args.json else dev.path, flush=True)
        if not args.json:
            print(f"edgehar: streaming {info['seconds']} s of {args.replay} ({rec.rate:g} Hz x "
                  f"{len(rec.channels)}) at {args.speed:g}x in {args.protocol} mode; Ctrl-C stops",
                  file=sys.stderr, flush=True)
        dev.start()
        while not dev.wait(0.2):
            pass
    except KeyboardInterrupt:
        if dev is None:
            raise
    finally:
        if dev is not None:
            dev.stop()
    summary = {"sent_samples": sum(len(c) for c in dev.sent), "connections": len(dev.sent), **dev.counts}
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        print("edgehar: device done: " + ", ".join(f"{k} {v}" for k, v in summary.items()),
              file=sys.stderr)
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt


def run_live(args) -> int:
    from edgehar import zoo
    from edgehar.bridge.serial_reader import check_port
    from edgehar.bridge.smoothing import Smoother
    from edgehar.classes import refuse_with_labels

    refuse_with_labels(args.classes, args.labels)
    if not args.on_device:
        Smoother(args.smooth)  # every argument is checked before the port is touched
        check_port(args.port)  # a bad URL fails before the model is looked for
    args.model = str(zoo.resolve(args.model, "model"))
    if args.on_device:
        from edgehar.bridge.emulate_cli import run_live_on_device

        return run_live_on_device(args)
    import signal

    from edgehar.bridge.live import LiveSession, PredictionLog, TerminalView, check_log_target
    from edgehar.runtime import Predictor

    if args.log:
        check_log_target(args.log, args.model, args.port)  # never onto an input, before any work
    from edgehar.classes import restrict

    predictor = restrict(Predictor(args.model, args.backend, args.threads), args.classes)
    if args.labels:
        from edgehar.zeroshot import ZeroShotPredictor
        predictor = ZeroShotPredictor(predictor, args.labels)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends it like Ctrl-C: log kept, port closed
    ok, log = False, None
    try:
        log = PredictionLog(args.log, predictor.card.labels) if args.log else None
        session = LiveSession(args.port, predictor, args.baud, args.protocol, args.rate, args.smooth,
                              max_gap=args.max_gap)
        view = TerminalView(session, sys.stdout, json_lines=args.json)

        def on_prediction(p):
            view.prediction(p)
            if log:
                log.write(p)

        try:
            session.run(args.duration, on_prediction, view.idle)
        except KeyboardInterrupt:
            pass
        ok = True
    finally:
        if log and (ok or log.rows):
            log.close()  # predictions made are kept, even when the device failed later
        elif log:
            log.discard()  # an existing FILE stays untouched when nothing was logged
    summary = session.counts()
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        d = summary["delay_ms"]
        print(f"edgehar: {summary['windows']} windows; delay median {d['median']} ms, p99 {d['p99']} ms; "
              f"bytes {summary['bytes']}, lines {summary['lines']}, frames {summary['frames']}, "
              f"garbled {summary['garbled']}, dropped {summary['dropped']}, out-of-order "
              f"{summary['out_of_order']}, filled {summary['filled']}, truncated {summary['truncated']}, "
              f"reconnects {summary['reconnects']}, device errors {summary['device_errors']}",
              file=sys.stderr)
    return 0
