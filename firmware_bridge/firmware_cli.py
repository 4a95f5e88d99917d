"""`edgehar firmware build ARTIFACT_DIR --board nrf52840`: a linked firmware ELF and its footprint."""

from __future__ import annotations

import json
from pathlib import Path

from edgehar.atomic import write_bytes
from edgehar.cli_types import positive_int
from edgehar.mcu.firmware_build import BOARDS, artifact_files, build_firmware, footprint
from edgehar.mcu.toolchain import find_toolchain


def register(sub) -> None:
    fw = sub.add_parser("firmware", help="build microcontroller firmware from an export folder",
                        description="Build microcontroller firmware from an export folder.")
    fsub = fw.add_subparsers(dest="firmware_command", metavar="ACTION")
    fsub.required = True
    b = fsub.add_parser(
        "build", help="link the int8 model, TFLite-Micro + CMSIS-NN and the frame encoder into an ELF",
        description="Link the exported C array (model_int8.h/.cc), TFLite-Micro with CMSIS-NN "
                    "kernels, the bridge's frame encoder and the wrist application (IMU frames in, "
                    "predictions out, windowed as the model card says) into a firmware ELF with "
                    "arm-none-eabi-gcc, and report flash and RAM read from the linked image, split "
                    "into model, arena and TFLM code, beside the model file's bytes. TFLM is "
                    "compiled once per CPU and cached. Needs EDGEHAR_TOOLCHAINS (or --toolchains).")
    b.add_argument("artifacts", metavar="ARTIFACT_DIR",
                   help="folder written by `edgehar export --int8`, or a zoo name (edgehar models)")
    b.add_argument("--board", choices=list(BOARDS), default="nrf52840",
                   help="; ".join(f"{k}: {v.example}" for k, v in BOARDS.items()) + " (default nrf52840)")
    b.add_argument("--out", metavar="FILE.elf",
                   help="where to write the ELF (default ARTIFACT_DIR/firmware-BOARD.elf; for a zoo "
                        "name, NAME-firmware-BOARD.elf in the current folder)")
    b.add_argument("--arena-kb", type=positive_int, metavar="N",
                   help="tensor arena size (default: measured with tflite-micro, +1 KiB)")
    b.add_argument("--toolchains", metavar="DIR", help="TFLM sources folder (default $EDGEHAR_TOOLCHAINS)")
    from edgehar.classes import add_classes_flag
    add_classes_flag(b, "the firmware runs the export's own outputs, so ARTIFACT_DIR must have been "
                        "exported with these classes (`edgehar export --classes`); otherwise refused")
    b.add_argument("--json", action="store_true", help="print the footprint as JSON")
    b.set_defaults(func=run_build)


def _build(args, folder: Path, out: Path) -> dict:
    card_path = artifact_files(folder)[2]  # the user's folder is checked before the tools
    if args.classes:
        check_export_classes(card_path, args.classes)
    tc = find_toolchain(args.toolchains, need_qemu=False)
    elf = build_firmware(folder, args.board, args.toolchains,
                         args.arena_kb * 1024 if args.arena_kb else None)
    write_bytes(out, elf.read_bytes())
    report = footprint(tc, elf, args.board)
    report["elf"] = str(out)
    report["model_file_bytes"] = (folder / "model_int8.tflite").stat().st_size
    return report


def is_elf(path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def claim_elf(out: Path, inputs) -> None:
    """Before the build: --out is none of the files it reads, not a folder, and replaces only an
    ELF (a firmware image an earlier build wrote)."""
    from edgehar.outputs import claim_file

    claim_file(out, "firmware build", inputs=inputs, recognise=is_elf, kind="a firmware ELF")


def check_export_classes(card_path: Path, classes) -> None:
    """The firmware runs the int8 graph as exported: `--classes` is a no-op when the export
    already has exactly those classes, else a one-line hint to export them."""
    from edgehar.card import ModelCard
    from edgehar.classes import has_classes
    from edgehar.errors import UserError

    card = ModelCard.from_json(card_path.read_text(), str(card_path))
    if not has_classes(card, classes):
        raise UserError(card_path.parent, f"was exported with the classes {', '.join(card.labels)}; the "
                                          f"firmware runs the export's outputs as they are: export with "
                                          f"`edgehar export CHECKPOINT --int8 --classes {','.join(classes)}` "
                                          "and build that folder")


def run_build(args) -> int:
    from edgehar import zoo
    from edgehar.mcu.firmware_build import export_folder

    art = zoo.resolve(args.artifacts, "artifact")
    named = zoo.is_name(args.artifacts)  # the zoo's folder is read-only: the ELF goes here
    out = Path(args.out) if args.out else (Path(f"{args.artifacts}-firmware-{args.board}.elf") if named
                                           else art / f"firmware-{args.board}.elf")
    claim_elf(out, [art, *(art / n for n in ("model_int8.cc", "model_int8.h", "model_int8.tflite", "modelcard.json"))])
    with export_folder(args.artifacts) as folder:
        report = _build(args, folder, out)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    f, r = report["flash"], report["ram"]
    print(f"{out}  ({args.board}: {report['example']})")
    print(f"  flash  {report['flash_bytes']:>9,} B of {report['flash_capacity']:,}: model {f['model']:,} "
          f"(the .tflite file: {report['model_file_bytes']:,}), TFLM + CMSIS-NN code "
          f"{f['tflm_code']:,}, C library {f['libc']:,}, application {f['app']:,}, "
          f"initialised data {f['data_init']:,}")
    print(f"  RAM    {report['ram_bytes']:>9,} B of {report['ram_capacity']:,}: tensor arena "
          f"{r['arena']:,}, stack {r['stack']:,}, other data {r['other_bss_data']:,}")
    return 0
