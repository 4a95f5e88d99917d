"""A real firmware image from an export folder, and its true flash/RAM footprint.

`build_firmware` links the exported C array (`model_int8.h`/`.cc`), TFLite-Micro with CMSIS-NN,
the frame encoder (`firmware/edgehar_imu/edgehar_frame.c`) and the wrist application
(`firmware/wrist_device/main.cc`: frames in, predictions out) into an ELF for a board.
`footprint` reads the linked image: flash = code + read-only data + initialised data, RAM =
data + bss + the stack the linker script reserves, split by the link map into the model array,
the tensor arena, TFLM (+ CMSIS-NN) code, the C library and the application.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgehar.errors import UserError, require_dir


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
    """(model_int8.cc, model_int8.tflite, modelcard.json) of an export folder."""
    d = Path(require_dir(folder, "export folder"))
    files = [d / "model_int8.cc", d / "model_int8.tflite", d / "modelcard.json"]
    for f in (*files, d / "model_int8.h"):
        if not f.is_file():
            raise UserError(f, "missing; run `edgehar export ... --int8` to write it")
    return tuple(files)


def arena_for(tflite: Path) -> int:
    """Arena bytes to reserve: TFLM's host measurement (64-bit pointers, so at least what the
    32-bit MCU needs) rounded up to 1 KiB, plus 1 KiB of headroom."""
    from edgehar.profile.arena import measure_arena

    found = measure_arena(str(tflite)).to_dict()
    if not found.get("arena_bytes"):
        raise UserError(tflite, f"tflite-micro cannot run it: {found.get('tflm_error')}")
    return (found["arena_bytes"] + 1023) // 1024 * 1024 + 1024


def build_firmware(folder: str, board: str = "nrf52840", toolchains: str | None = None,
                   arena_bytes: int | None = None, quiet: bool = False) -> Path:
    """Link the wrist firmware for `board`; returns the (cached) ELF path."""
    from edgehar.card import ModelCard
    from edgehar.profile import mcu_build
    from edgehar.profile.mcu_toolchain import find_toolchain

    source, tflite, card_path = artifact_files(folder)
    card = ModelCard.from_json(card_path.read_text(), str(card_path))
    b = BOARDS[board]
    tc = find_toolchain(toolchains, need_qemu=False)
    arena = arena_bytes or arena_for(tflite)
    fw = mcu_build.FIRMWARE
    return mcu_build.link(
        tc, mcu_build.CPUS[b.cpu], "cmsis-nn", name="edgehar_wrist", board=b.linker,
        semihosting=False, quiet=quiet,
        sources=[fw / "wrist_device" / "main.cc", source, fw / "edgehar_imu" / "edgehar_frame.c",
                 fw / "tflm_runner" / "op_resolver.cc"],
        defines=(f"-DEDGEHAR_HOP={int(card.hop)}", f"-DEDGEHAR_ARENA_BYTES={arena}"),
        include_dirs=(source.parent, fw / "edgehar_imu", fw / "tflm_runner"))


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


def footprint(elf: Path, board: str = "nrf52840") -> dict:
    """Flash and RAM of a linked image, split into model, arena, TFLM code, libc and app."""
    from edgehar.profile.mcu_toolchain import find_toolchain

    tc = find_toolchain(None, need_qemu=False) if not shutil.which("arm-none-eabi-nm") else None
    nm = tc.nm if tc else shutil.which("arm-none-eabi-nm")
    size_tool = tc.size if tc else shutil.which("arm-none-eabi-size")
    sections = {}
    for line in subprocess.run([size_tool, "-A", str(elf)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("."):
            sections[parts[0]] = int(parts[1])
    symbols, addresses = {}, {}
    for line in subprocess.run([nm, "-S", str(elf)], capture_output=True, text=True,
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
