"""What `firmware build` and `device emulate` refuse before (or instead of) building, in one line:
a model that is not the int8 one its card describes, a model or arena too big for the board,
an --out folder; and the TFLM cache sweeping the staging folder of a build killed outright.

The refusals of the export folder run without the Arm toolchain; the board-capacity ones need it
(they skip with the reason) and share the cortex-m4 TFLM library the other mcu tests build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgehar.cli import main
from tiny_har_models import bangle_card, built_models


def export_folder(folder: Path, model: bytes, *, record_hash_of: bytes | None) -> Path:
    """An export folder like `edgehar export --int8` writes, holding `model` as model_int8.*;
    the card records the content hash of `record_hash_of` (None: no hash, as older cards)."""
    from edgehar.card_io import content_digest
    from edgehar.export.c_array import write_c_array
    from edgehar.interpreters import litert_interpreter

    folder.mkdir()
    int8 = built_models()["tflite_int8"].read_bytes()
    it = litert_interpreter(int8, xnnpack=False)
    (si, zi), (so, zo) = (it.get_input_details()[0]["quantization"],
                          it.get_output_details()[0]["quantization"])
    card = bangle_card(quantization={"input_scale": si, "input_zero_point": zi,
                                     "output_scale": so, "output_zero_point": zo})
    if record_hash_of is not None:
        card.content_sha256 = {"model_int8.tflite": content_digest(record_hash_of, ".tflite")}
    (folder / "model_int8.tflite").write_bytes(model)
    write_c_array(model, card, folder / "model_int8.h", folder / "model_int8.cc")
    (folder / "modelcard.json").write_text(card.to_json())
    return folder


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgehar: error: "), err
    return err[0]


@pytest.fixture
def no_toolchain(monkeypatch, tmp_path):
    """Point EDGEHAR_TOOLCHAINS at an empty folder: a check that ran after the tools were
    looked for would report them instead of the export folder."""
    monkeypatch.setenv("EDGEHAR_TOOLCHAINS", str(tmp_path / "no-toolchains"))


def both_commands(folder: Path, tmp_path: Path) -> list[list[str]]:
    return [["firmware", "build", str(folder)],
            ["device", "emulate", "--model", str(folder), "--replay", str(tmp_path / "rec.csv")]]


def test_the_exported_int8_model_passes(tmp_path):
    from edgehar.mcu.firmware_build import artifact_files

    int8 = built_models()["tflite_int8"].read_bytes()
    folder = export_folder(tmp_path / "art", int8, record_hash_of=int8)
    assert artifact_files(str(folder))[1] == folder / "model_int8.tflite"


def test_float_model_renamed_int8_is_refused_by_its_content_hash(tmp_path, no_toolchain, capsys):
    int8 = built_models()["tflite_int8"].read_bytes()
    fp32 = built_models()["tflite"].read_bytes()
    folder = export_folder(tmp_path / "art", fp32, record_hash_of=int8)
    for argv in both_commands(folder, tmp_path):
        assert main(argv) == 2
        line = one_error_line(capsys)
        assert f"{folder / 'model_int8.tflite'}: is not the model its card describes" in line


def test_float_model_without_a_recorded_hash_is_refused_as_not_int8(tmp_path, no_toolchain, capsys):
    folder = export_folder(tmp_path / "art", built_models()["tflite"].read_bytes(), record_hash_of=None)
    for argv in both_commands(folder, tmp_path):
        assert main(argv) == 2
        assert "is not a full-integer int8 model (input float32" in one_error_line(capsys)


def test_c_array_of_other_bytes_is_refused(tmp_path, no_toolchain, capsys):
    from edgehar.export.c_array import source_text

    int8 = built_models()["tflite_int8"].read_bytes()
    folder = export_folder(tmp_path / "art", int8, record_hash_of=int8)
    (folder / "model_int8.cc").write_text(source_text(built_models()["tflite"].read_bytes(),
                                                      "model_int8.h"))
    for argv in both_commands(folder, tmp_path):
        assert main(argv) == 2
        assert "model_int8.cc: does not hold the bytes of model_int8.tflite" in one_error_line(capsys)


def test_out_that_is_a_folder_is_refused_before_the_build(tmp_path, no_toolchain, capsys):
    int8 = built_models()["tflite_int8"].read_bytes()
    folder = export_folder(tmp_path / "art", int8, record_hash_of=int8)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    assert main(["firmware", "build", str(folder), "--out", str(taken)]) == 2
    assert str(taken) in one_error_line(capsys)
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]


# -- the TFLM cache --------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_killed_build_leaves_no_staging_in_the_cache(tmp_path):
    """A build killed outright (SIGKILL) leaves its staging folder; the next build of any key
    sweeps it when its process is gone, and keeps one whose process still runs."""
    from edgehar.mcu import build

    root = tmp_path / "mcu"
    root.mkdir()
    killed = root / f".tflm-cmsis-nn-cortex-m4-0123.new-{dead_pid()}-abcd1234"
    killed.mkdir()
    (killed / "0001_micro_interpreter.o").write_bytes(b"\0" * 64)
    unnamed = root / "tflm-reference-cortex-m4-4567.tmp-k9x_2abc"  # before pid-named staging
    unnamed.mkdir()
    running = subprocess.Popen(["sleep", "30"])
    try:
        alive = root / f".tflm-reference-cortex-m55-89ab.new-{running.pid}-abcd1234"
        alive.mkdir()
        key = root / "insn_count-cdef"
        built = build._cached_dir(key, lambda tmp: (tmp / "libinsn_count.so").write_bytes(b"so"))
        assert (built / "libinsn_count.so").read_bytes() == b"so"
        assert not killed.exists() and not unnamed.exists()
        assert alive.is_dir()
        assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([key.name, alive.name])
    finally:
        running.kill()
        running.wait()


def test_a_failed_build_leaves_no_staging(tmp_path):
    from edgehar.errors import UserError
    from edgehar.mcu import build

    def fails(tmp):
        (tmp / "half.o").write_bytes(b"x")
        raise UserError("x.cc", "compiling failed")

    with pytest.raises(UserError):
        build._cached_dir(tmp_path / "key", fails)
    assert [p.name for p in tmp_path.iterdir()] == ["key.lock"]


def test_linker_overflow_is_read_as_regions():
    from edgehar.mcu.build import RegionOverflow, link_error

    ld = "/usr/lib/gcc/arm-none-eabi/12.2.1/../../../arm-none-eabi/bin/ld"
    stderr = (f"{ld}: /root/.cache/edgehar/mcu/.k.new-7-abcd1234/edgehar_wrist.elf section "
              f"`.stack' will not fit in region `RAM'\n{ld}: region `RAM' overflowed by 52344 bytes\n"
              "collect2: error: ld returned 1 exit status\n")
    e = link_error("edgehar_wrist", stderr)
    assert isinstance(e, RegionOverflow) and e.overflow == {"RAM": 52344}
    other = link_error("edgehar_wrist", f"{ld}: /root/.cache/edgehar/mcu/.k.new-7-abcd1234/00_main.o: "
                                        "in function `main':\nmain.cc:(.text+0x8): undefined "
                                        "reference to `missing'\ncollect2: error: ld returned 1\n")
    assert "\n" not in other.message and ".cache" not in other.message
    assert "undefined reference to `missing'" in other.message


# -- the board's capacity (needs the Arm toolchain) -------------------------------------------
@pytest.fixture(scope="module")
def toolchain():
    if not os.environ.get("EDGEHAR_TOOLCHAINS"):
        pytest.skip("EDGEHAR_TOOLCHAINS is unset (the TFLM sources; CI sets it to ../shared/toolchains)")
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is not installed (see .ci/run for the apt line)")
    from edgehar.mcu.toolchain import find_toolchain

    return find_toolchain(need_qemu=False)


@pytest.mark.parametrize("arena_kb, needs", [(300, 300), (250, None)])
def test_too_big_for_the_board_is_one_line(toolchain, tmp_path, capsys, arena_kb, needs):
    """300 KiB of arena alone exceeds the nRF52840's 256 KiB (refused before TFLM is built);
    250 KiB fits alone but not with the stack and TFLM's data (the linker's verdict)."""
    int8 = built_models()["tflite_int8"].read_bytes()
    folder = export_folder(tmp_path / "art", int8, record_hash_of=int8)
    assert main(["firmware", "build", str(folder), "--arena-kb", str(arena_kb)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"edgehar: error: {folder}: the model needs ")
    assert "KiB of RAM but nrf52840 has 256 KiB" in line and ".cache" not in line
    n = int(line.split("the model needs ")[1].split(" KiB")[0].replace(",", ""))
    assert n == needs if needs else n > 256
    assert not (folder / "firmware-nrf52840.elf").exists()


def test_emulate_link_never_replaces_a_users_link_or_file(tmp_path, capsys):
    """`device emulate --link` replaces only a pty link, like `device simulate --link`."""
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    for link in (tmp_path / "to-notes", mine):
        if link != mine:
            link.symlink_to(mine)
        with pytest.raises(SystemExit) as e:
            main(["device", "emulate", "--model", str(tmp_path), "--replay", str(mine), "--link", str(link)])
        assert e.value.code == 2 and "refusing to replace it" in capsys.readouterr().err
    assert mine.read_text() == "mine" and os.readlink(tmp_path / "to-notes") == str(mine)
