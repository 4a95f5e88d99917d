"""A real firmware image from an export folder, and its true flash/RAM footprint.

`build_firmware` links the exported C array (`model_int8.h`/`.cc`), TFLite-Micro with CMSIS-NN,
the frame encoder (`firmware/edgehar_imu/edgehar_frame.c`) and the wrist application
(`firmware/wrist_device/main.cc`: frames in, predictions out) into an ELF for a board.
`footprint` reads the linked image: flash = code + read-only data + initialised data, RAM =
data + bss + the stack the linker script reserves, split by the link map into the model array,
the tensor arena, TFLM (+ CMSIS-NN) code, the C library and the application.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgehar import zoo
from edgehar.atomic import write_text
from edgehar.card import ModelCard
from edgehar.card_io import content_digest
from edgehar.errors import UserError, require_dir
from edgehar.export.c_array import parse_c_array, write_c_array
from edgehar.mcu import build
from edgehar.mcu.toolchain import find_toolchain
from edgehar.profile.arena import measure_arena
from edgehar.profile.tflite_graph import read_tflite


@dataclass(frozen=True)
class Board:
    name: str
    cpu: str
    linker: str  # firmware/boards/<linker>.ld and board_<linker>.c
    flash: int
    ram: int
    example: str


BOARDS = {
    "nrf52840": Board("nrf52840", "cortex-m4", "nrf52840", 1 << 20, 256 << 10,
                      "Nordic nRF52840 (Cortex-M4F, 64 MHz): Bangle.js 2, Arduino Nano 33 BLE"),
    "mps2-an386": Board("mps2-an386", "cortex-m4", "mps2_an386", 4 << 20, 4 << 20,
                        "Arm MPS2 AN386 (Cortex-M4), emulated by qemu-system-arm"),
}
FLASH_SECTIONS = (".text", ".ARM.exidx", ".init_array", ".data")
RAM_SECTIONS = (".data", ".bss")


def artifact_files(folder: str) -> tuple[Path, Path, Path]:
    """(model_int8.cc, model_int8.tflite, modelcard.json) of an export folder, checked to hold
    the int8 model its card describes (`check_model_bytes`)."""
    d = Path(require_dir(folder, "export folder"))
    files = [d / "model_int8.cc", d / "model_int8.tflite", d / "modelcard.json"]
    for f in (*files, d / "model_int8.h"):
        if not f.is_file():
            raise UserError(f, "missing; run `edgehar export ... --int8` to write it")
    check_model_bytes(*files)
    return tuple(files)


@contextlib.contextmanager
def export_folder(spec: str) -> Iterator[Path]:
    """The export folder a `firmware build` / `device emulate` argument names: a user's folder
    as it is; for a zoo name, a temporary copy of the shipped int8 export with its C array
    (`model_int8.h`/`.cc`, the .tflite's bytes, which the zoo does not ship twice) written as
    export writes it, removed on exit."""
    folder = zoo.resolve(spec, "artifact")
    if not zoo.is_name(spec):
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="edgehar-zoo-") as tmp:
        copy = Path(tmp) / spec
        copy.mkdir()
        for f in folder.iterdir():  # contents only: an installed zoo may be read-only
            shutil.copyfile(f, copy / f.name)
        card = ModelCard.from_json((copy / "modelcard.json").read_text(), str(folder / "modelcard.json"))
        write_c_array((copy / "model_int8.tflite").read_bytes(), card, copy / "model_int8.h",
                      copy / "model_int8.cc")
        yield copy


def check_model_bytes(source: Path, tflite: Path, card_path: Path) -> None:
    """The firmware compiles the C array and feeds it int8 windows, so any other model (a float
    one renamed `model_int8.*`, a file changed after export) would run and answer garbage:
    the array must hold the .tflite's bytes, their content hash must be the one the card
    records for that file (when it records one), and the model must take and give int8."""
    card = ModelCard.from_json(card_path.read_text(), str(card_path))
    data = tflite.read_bytes()
    if parse_c_array(source.read_text()) != data:
        raise UserError(source, f"does not hold the bytes of {tflite.name}: the folder was changed "
                                "after export; run `edgehar export ... --int8` again")
    recorded = (card.content_sha256 or {}).get(tflite.name)
    digest = content_digest(data, tflite.suffix)
    if recorded and digest != recorded:
        raise UserError(tflite, f"is not the model its card describes (sha256 {digest[:12]}..., "
                                f"{card_path.name} records {recorded[:12]}... for {tflite.name}): "
                                "a different model renamed, or a file changed after export")
    graph = read_tflite(str(tflite))
    kinds = {"input": graph.inputs[0].dtype if graph.inputs else None,
             "output": graph.outputs[0].dtype if graph.outputs else None}
    if any(dtype != "int8" for dtype in kinds.values()):
        raise UserError(tflite, "is not a full-integer int8 model (" + ", ".join(
            f"{k} {v}" for k, v in kinds.items()) + "); the firmware runs int8 models only: "
            "export with --int8")


def check_fits(folder: str, board: Board, *, ram: int = 0, flash: int = 0, what: str = "") -> None:
    """Raise the one-line 'does not fit' error when `ram` / `flash` bytes exceed the board's."""
    for kind, need, has in (("RAM", ram, board.ram), ("flash", flash, board.flash)):
        if need > has:
            raise UserError(folder, f"the model needs {-(-need // 1024):,} KiB of {kind} but "
                                    f"{board.name} has {has // 1024:,} KiB ({what}; "
                                    f"a smaller model{' or --arena-kb' if kind == 'RAM' else ''}, "
                                    "or a board with more)")


def arena_for(tflite: Path) -> int:
    """Arena bytes to reserve: TFLM's host measurement (64-bit pointers, so at least what the
    32-bit MCU needs) rounded up to 1 KiB, plus 1 KiB of headroom."""
    found = measure_arena(str(tflite)).to_dict()
    if not found.get("arena_bytes"):
        raise UserError(tflite, f"tflite-micro cannot run it: {found.get('tflm_error')}")
    return (found["arena_bytes"] + 1023) // 1024 * 1024 + 1024


def model_op_resolver(tflite: Path) -> Path:
    """A resolver registering only the model's ops (so the image holds only their kernels),
    generated from the runner's op_resolver.cc, whose `resolver.AddX();  // BUILTIN` lines are
    the one list of supported ops."""
    full = (build.FIRMWARE / "tflm_runner" / "op_resolver.cc").read_text()
    add = {op: method for method, op in re.findall(r"resolver\.(Add\w+)\(\);\s*//\s*(\w+)", full)}
    ops = sorted(read_tflite(str(tflite)).op_counts())
    missing = [op for op in ops if op not in add]
    if missing:
        raise UserError(tflite, f"op {missing[0]} is not in edgehar's TFLM runner "
                                f"(firmware/tflm_runner/op_resolver.cc lists the ops it registers)")
    calls = "\n".join(f"    resolver.{add[op]}();" for op in ops)
    text = f"""// Generated by edgehar firmware build: the model's ops only ({', '.join(ops)}).
#include "op_resolver.h"

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace {{
tflite::MicroMutableOpResolver<{len(ops)}> resolver;
bool ready = false;
}}  // namespace

const tflite::MicroOpResolver& edgehar_op_resolver() {{
  if (!ready) {{
    ready = true;
{calls}
  }}
  return resolver;
}}
"""
    path = build.cache_root() / "generated" / f"model_ops-{hashlib.sha256(text.encode()).hexdigest()[:16]}.cc"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
    return path


def build_firmware(folder: str, board: str = "nrf52840", toolchains: str | None = None,
                   arena_bytes: int | None = None, quiet: bool = False) -> Path:
    """Link the wrist firmware for `board`; returns the (cached) ELF path."""
    source, tflite, card_path = artifact_files(folder)
    card = ModelCard.from_json(card_path.read_text(), str(card_path))
    b = BOARDS[board]
    model_bytes = tflite.stat().st_size
    # Before the toolchain and its minutes-long first TFLM build: what alone cannot fit.
    check_fits(folder, b, flash=model_bytes, what=f"the model array alone: {model_bytes:,} B")
    if arena_bytes:
        check_fits(folder, b, ram=arena_bytes, what=f"the tensor arena alone: {arena_bytes:,} B")
    tc = find_toolchain(toolchains, need_qemu=False)
    resolver = model_op_resolver(tflite)
    arena = arena_bytes or arena_for(tflite)
    fw = build.FIRMWARE
    try:
        return build.link(
            tc, build.CPUS[b.cpu], "cmsis-nn", name="edgehar_wrist", board=b.linker,
            semihosting=False, quiet=quiet,
            sources=[fw / "wrist_device" / "main.cc", source,
                     fw / "edgehar_imu" / "edgehar_frame.c", resolver],
            defines=(f"-DEDGEHAR_HOP={int(card.hop)}", f"-DEDGEHAR_ARENA_BYTES={arena}"),
            include_dirs=(source.parent, fw / "edgehar_imu", fw / "tflm_runner"))
    except build.RegionOverflow as e:  # the linker's verdict on the whole image
        over_ram, over_flash = e.overflow.get("RAM", 0), e.overflow.get("CODE", 0)
        check_fits(folder, b, ram=b.ram + over_ram if over_ram else 0,
                   flash=b.flash + over_flash if over_flash else 0,
                   what=f"tensor arena {arena:,} B, model array {model_bytes:,} B, "
                        "plus TFLM, the stack and the application")
        raise


_MAP_LINE = re.compile(r"^\s*(\.\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$")


def _map_sizes(map_text: str) -> dict[str, dict[str, int]]:
    """Bytes per (output section, origin) from a GNU ld map: origin tflm / libc / app."""
    sizes: dict[str, dict[str, int]] = {}
    section, pending = None, None
    for line in map_text.split("Linker script and memory map", 1)[-1].splitlines():
        top = re.match(r"^(\.[A-Za-z_.]+)\s", line)
        if top and not line.startswith(" "):
            section = top.group(1)
            continue
        if pending and line.startswith(" " * 16):
            line = pending + line
        pending = None
        m = _MAP_LINE.match(line)
        if not m:
            if re.match(r"^ \.\S+$", line):  # input section name alone, numbers on next line
                pending = line
            continue
        size, origin = int(m.group(3), 16), m.group(4)
        if not size or section is None or "(" not in origin and not origin.endswith(".o"):
            continue
        kind = ("tflm" if "libtflm.a" in origin else
                "libc" if "arm-none-eabi" in origin or "libgcc" in origin else "app")
        sizes.setdefault(section, {}).setdefault(kind, 0)
        sizes[section][kind] += size
    return sizes


def footprint(tc, elf: Path, board: str = "nrf52840") -> dict:
    """Flash and RAM of a linked image, split into model, arena, TFLM code, libc and app."""
    sections = {}
    for line in subprocess.run([tc.size, "-A", str(elf)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("."):
            sections[parts[0]] = int(parts[1])
    symbols, addresses = {}, {}
    for line in subprocess.run([tc.nm, "-S", str(elf)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            symbols[parts[3]] = int(parts[1], 16)
        if len(parts) >= 3:
            addresses[parts[-1]] = int(parts[0], 16)
    stack = addresses.get("__stack_top__", 0) - addresses.get("__stack_limit__", 0)
    model = symbols.get("g_edgehar_model", 0)
    arena = next((v for k, v in symbols.items() if "tensor_arena" in k), 0)
    by_origin = _map_sizes(elf.with_suffix(".map").read_text())
    code = {k: sum(by_origin.get(s, {}).get(k, 0) for s in (".text", ".ARM.exidx", ".init_array"))
            for k in ("tflm", "libc", "app")}
    flash = sum(sections.get(s, 0) for s in FLASH_SECTIONS)
    ram = sum(sections.get(s, 0) for s in RAM_SECTIONS) + stack
    b = BOARDS[board]
    return {
        "board": board, "example": b.example, "elf": str(elf),
        "flash_bytes": flash, "ram_bytes": ram,
        "flash": {"model": model, "tflm_code": code["tflm"], "libc": code["libc"],
                  "app": code["app"] - model, "data_init": sections.get(".data", 0)},
        "ram": {"arena": arena, "stack": stack, "other_bss_data": ram - arena - stack},
        "flash_capacity": b.flash, "ram_capacity": b.ram,
        "sections": sections,
    }
