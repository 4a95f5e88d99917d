"""Build TFLite-Micro for a Cortex-M once, then link runners and firmware against it (cached).

The TFLM library (`libtflm.a`, every kernel of one source tree) is compiled with
arm-none-eabi-gcc, one compile job per core, and cached under the user cache dir
(`<cache>/mcu/`, `edgehar.cachedir`) in a folder keyed by a hash of the source tree,
the CPU flags and the compiler version: a second call is instant, a changed source rebuilds.
Linked images (the semihosting runner, a firmware) are cached the same way, keyed also by the
firmware sources under `edgehar/mcu/firmware/` and the link inputs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgehar.atomic import remove_stale_staging, staged_folder
from edgehar.cachedir import cache_dir
from edgehar.errors import UserError
from edgehar.mcu.toolchain import Toolchain

FIRMWARE = Path(__file__).parent / "firmware"  # the C sources: boards, runner, plugin, firmware


@dataclass(frozen=True)
class Cpu:
    name: str
    flags: tuple[str, ...]
    machine: str        # the qemu-system-arm board that emulates it
    board: str          # firmware/boards/<board>.ld and board_<board>.c


# Hard float on all: the M4F of wrist chips (nRF52840) has the FPU, and the M55 needs hard float
# for MVE (Helium) to be enabled in GCC.
CPUS = {
    "cortex-m4": Cpu("cortex-m4", ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                                   "-mfpu=fpv4-sp-d16"), "mps2-an386", "mps2_an386"),
    "cortex-m33": Cpu("cortex-m33", ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard",
                                     "-mfpu=fpv5-sp-d16"), "mps2-an505", "mps2_an505"),
    "cortex-m55": Cpu("cortex-m55", ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
                      "mps3-an547", "mps3_an547"),
}
DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DNDEBUG", "-DTF_LITE_MCU_DEBUG_LOG")
CMSIS_DEFINES = ("-DCMSIS_NN", "-DKERNELS_OPTIMIZED_FOR_SPEED")
CXXFLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
            "-fno-use-cxa-atexit")
COMMON = ("-ffunction-sections", "-fdata-sections", "-fno-unwind-tables", "-w")
INCLUDES = ("", "third_party/gemmlowp", "third_party/flatbuffers/include", "third_party/kissfft",
            "third_party/ruy", "third_party/cmsis", "third_party/cmsis/CMSIS/Core/Include",
            "third_party/cmsis_nn", "third_party/cmsis_nn/Include")
# Not compiled: audio signal ops, test scaffolding, and the kernels of ops the runner does not
# register (firmware/tflm_runner/op_resolver.cc): compiling them would only cost build time.
# cortex_m_generic/micro_time.cc (reference tree only) needs a CMSIS device header; nothing the
# runner or firmware links calls the timer.
SKIP_PARTS = ("signal/", "third_party/kissfft/", "micro/test_helper", "micro/fake_micro_context",
              "micro/mock_micro_graph", "cortex_m_generic/micro_time")
UNREGISTERED_KERNELS = {
    "add_n", "assign_variable", "batch_to_space_nd", "broadcast_args", "broadcast_to",
    "call_once", "ceil", "circular_buffer", "circular_buffer_common", "comparisons", "cumsum",
    "decode", "decode_state", "decode_state_huffman", "decode_state_lut", "decode_state_prune",
    "decompress", "decompress_common", "depth_to_space", "detection_postprocess",
    "dynamic_update_slice", "embedding_lookup", "ethosu", "fill", "floor", "floor_div",
    "floor_mod", "gather_nd", "if", "kernel_runner", "l2_pool_2d", "logical", "logical_common",
    "lstm_eval", "lstm_eval_common", "mirror_pad", "read_variable", "resize_bilinear",
    "resize_nearest_neighbor", "reverse", "round", "select", "space_to_batch_nd",
    "space_to_depth", "split_v", "svdf", "svdf_common", "transpose_conv",
    "unidirectional_sequence_lstm", "var_handle", "while", "zeros_like"}


def _compiled(tree: Path, path: Path) -> bool:
    rel = path.relative_to(tree).as_posix()
    if path.suffix not in (".c", ".cc") or any(s in rel for s in SKIP_PARTS):
        return False
    return not ("/micro/kernels/" in rel and path.stem in UNREGISTERED_KERNELS)


def parse_cpu(name: str) -> Cpu:
    if name not in CPUS:
        raise UserError("--measure", f"unknown CPU {name!r}; known: {', '.join(CPUS)}")
    return CPUS[name]


def cache_root() -> Path:
    return cache_dir("mcu")


def _digest(*parts, files: list[Path] = (), base: Path | None = None) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode())
    for f in sorted(files):
        h.update(str(f.relative_to(base) if base else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _compiler_version(tc: Toolchain) -> str:
    return subprocess.run([tc.gcc, "--version"], capture_output=True, text=True).stdout.split("\n")[0]


def compile_flags(tc: Toolchain, cpu: Cpu, kernels: str) -> tuple[list[str], list[str]]:
    """(C flags, C++ flags) for TFLM sources and code that includes its headers."""
    tree = tc.tree(kernels)
    common = [*cpu.flags, *COMMON, *DEFINES, *(CMSIS_DEFINES if kernels == "cmsis-nn" else ()),
              *(f"-I{tree / inc}" for inc in INCLUDES)]
    return [*common, "-std=c11"], [*common, *CXXFLAGS]


def _optimisation(rel: str) -> str:
    # Kernels for speed, the framework (interpreter, allocator, flatbuffers) for size.
    return "-O2" if "/kernels/" in rel or rel.startswith("third_party/cmsis_nn") else "-Os"


def _run_jobs(commands: list[list[str]], what: str) -> None:
    def one(cmd):
        r = subprocess.run(cmd, capture_output=True, text=True)
        return cmd, r

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for cmd, r in pool.map(one, commands):
            if r.returncode:
                lines = r.stderr.strip().splitlines()
                first = next((l for l in lines if "error" in l), lines[-1] if lines else "")
                raise UserError(cmd[-1] if cmd[-2] == "-c" else what, f"{what} failed: {first[:300]}")


# A build's staging folder (edgehar.atomic's `.<key>.new-<pid>-<random>`), and the
# `<key>.tmp-<random>` one that builds before the pid-named convention left.
_STAGING = re.compile(r"\.(.+)\.(?:new|old|tmp|scratch)-\d+-[A-Za-z0-9_]{8}")
_UNNAMED_STAGING = re.compile(r"(.+)\.tmp-[A-Za-z0-9_]{8}")


def sweep_stale_builds(root: Path, holding: str | None = None) -> list[Path]:
    """Remove the staging folders of builds that were killed outright (SIGKILL, power loss):
    pid-named ones whose process is gone, and unnamed ones whose key nobody holds locked
    (`holding`: the key whose lock the caller holds, so none of its staging is live)."""
    removed = []
    for entry in sorted(root.iterdir()) if root.is_dir() else ():
        if m := _STAGING.fullmatch(entry.name):
            removed += remove_stale_staging(root / m.group(1))
        elif ((m := _UNNAMED_STAGING.fullmatch(entry.name)) and entry.is_dir()
              and (m.group(1) == holding or not _locked(root / f"{m.group(1)}.lock"))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _locked(lock_path: Path) -> bool:
    """Whether a build holds this key's lock now (a killed build's lock went with it)."""
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def _cached_dir(key_dir: Path, build) -> Path:
    """Run `build(tmp)` into a fresh folder and move it into place atomically, once."""
    if key_dir.is_dir():
        return key_dir
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    # One builder per key: parallel test workers wait for the first instead of compiling twice.
    with open(key_dir.parent / f"{key_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if key_dir.is_dir():
            return key_dir
        sweep_stale_builds(key_dir.parent, holding=key_dir.name)
        with staged_folder(key_dir) as tmp:
            build(tmp)
    return key_dir


def library(tc: Toolchain, cpu: Cpu, kernels: str, *, quiet: bool = False) -> Path:
    """`libtflm.a` for (source tree, CPU, flags), built on first use."""
    tree = tc.tree(kernels)
    files = [p for p in tree.rglob("*") if p.is_file()]
    sources = sorted(p for p in files if _compiled(tree, p))
    cflags, cxxflags = compile_flags(tc, cpu, kernels)
    key = _digest(_compiler_version(tc), cflags, cxxflags, [str(p.relative_to(tree)) for p in sources],
                  files=files, base=tree)
    out = cache_root() / f"tflm-{kernels}-{cpu.name}-{key}"

    def build(tmp: Path) -> None:
        start = time.monotonic()
        if not quiet:
            print(f"edgehar: building TFLite-Micro ({kernels} kernels) for {cpu.name}: "
                  f"{len(sources)} files, first time only (a few minutes), cached in {out}",
                  file=sys.stderr)
        objs, cmds = [], []
        for i, src in enumerate(sources):
            rel = src.relative_to(tree).as_posix()
            obj = tmp / f"{i:04d}_{src.stem}.o"
            flags = cxxflags if src.suffix == ".cc" else cflags
            # GCC 12.2 rejects resize_nearest_neighbor.cc for M55 hard float without it.
            extra = ["-fno-if-conversion"] if (cpu.name == "cortex-m55" and
                                                src.name == "resize_nearest_neighbor.cc") else []
            cmds.append([tc.gxx if src.suffix == ".cc" else tc.gcc, *flags, _optimisation(rel),
                         *extra, "-o", str(obj), "-c", str(src)])
            objs.append(obj)
        _run_jobs(cmds, f"compiling TFLM for {cpu.name}")
        subprocess.run([tc.ar, "rcs", str(tmp / "libtflm.a"), *map(str, objs)], check=True)
        for o in objs:
            o.unlink()
        (tmp / "build_seconds").write_text(f"{time.monotonic() - start:.0f}\n")

    return _cached_dir(out, build) / "libtflm.a"


class RegionOverflow(UserError):
    """The image does not fit its board: `overflow` is {"CODE" | "RAM": bytes too many}."""

    def __init__(self, where, overflow: dict[str, int]):
        self.overflow = overflow
        super().__init__(where, "does not fit: " + ", ".join(
            f"region {region} overflowed by {n:,} bytes" for region, n in overflow.items()))


_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def link_error(name: str, stderr: str) -> UserError:
    """One line for a failed link: the regions that overflowed, else the linker's first error
    with the cache folder's paths cut to file names."""
    overflow = {}
    for region, n in _OVERFLOW.findall(stderr):
        overflow[region] = max(overflow.get(region, 0), int(n))
    if overflow:
        return RegionOverflow(name, overflow)
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    first = next((l for l in lines if "error" in l or "undefined reference" in l),
                 lines[-1] if lines else "no output")
    first = re.sub(r"(?:/[^\s:/]+)+/([^\s:/]+)", r"\1", first)
    return UserError(name, f"link failed: {first[:300]}")


def link(tc: Toolchain, cpu: Cpu, kernels: str, *, name: str, sources: list[Path],
         board: str | None = None, semihosting: bool, defines: tuple[str, ...] = (),
         include_dirs: tuple[Path, ...] = (), quiet: bool = False) -> Path:
    """Compile `sources` (firmware files) and link them with TFLM into `<name>.elf` (cached)."""
    lib = library(tc, cpu, kernels, quiet=quiet)
    board = board or cpu.board
    boards = FIRMWARE / "boards"
    startup = [boards / "startup.c", boards / "cxx_support.c"]
    if not semihosting:
        startup.append(boards / f"board_{board}.c")
    all_sources = [*sources, *startup]
    cflags, cxxflags = compile_flags(tc, cpu, kernels)
    extra = [*defines, *(f"-I{d}" for d in include_dirs), f"-I{FIRMWARE / 'boards'}"]
    ld_files = [boards / f"{board}.ld", boards / "sections.ld"]
    key = _digest(lib.parent.name, cflags, cxxflags, extra, semihosting,
                  files=[*all_sources, *ld_files, *FIRMWARE.glob("**/*.h")])
    out = cache_root() / f"{name}-{board}-{kernels}-{cpu.name}-{key}"

    def build(tmp: Path) -> None:
        objs, cmds = [], []
        for i, src in enumerate(all_sources):
            obj = tmp / f"{i:02d}_{src.stem}.o"
            cc, flags = (tc.gxx, cxxflags) if src.suffix == ".cc" else (tc.gcc, cflags)
            cmds.append([cc, *flags, "-O2", *extra, "-o", str(obj), "-c", str(src)])
            objs.append(obj)
        _run_jobs(cmds, f"compiling {name}")
        libs = ["-lc", "-lrdimon", "-lm", "-lgcc"] if semihosting else ["-lc_nano", "-lnosys",
                                                                        "-lm", "-lgcc"]
        cmd = [tc.gcc, *cpu.flags, "-nostartfiles", f"-L{boards}", f"-T{boards / f'{board}.ld'}",
               "-Wl,--gc-sections", f"-Wl,-Map={tmp / (name + '.map')}", *map(str, objs),
               str(lib), "-Wl,--start-group", *libs, "-Wl,--end-group",
               "-o", str(tmp / f"{name}.elf")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise link_error(name, r.stderr)
        for o in objs:
            o.unlink()

    return _cached_dir(out, build) / f"{name}.elf"


def runner(tc: Toolchain, cpu: Cpu, kernels: str, *, quiet: bool = False) -> Path:
    """The semihosting TFLM runner ELF: reads model.tflite/input.bin, writes output.bin."""
    return link(tc, cpu, kernels, name="tflm_runner", semihosting=True, quiet=quiet,
                sources=[FIRMWARE / "tflm_runner" / "runner.cc",
                         FIRMWARE / "tflm_runner" / "op_resolver.cc"],
                include_dirs=(FIRMWARE / "tflm_runner",))


def insn_plugin(tc: Toolchain) -> Path:
    """The QEMU TCG plugin (`libinsn_count.so`) built with the host compiler."""
    src = FIRMWARE / "qemu_plugin" / "insn_count.c"
    header = tc.plugin_header_dir
    key = _digest(files=[src, header / "qemu-plugin.h"])
    out = cache_root() / f"insn_count-{key}"

    def build(tmp: Path) -> None:
        so = tmp / "libinsn_count.so"
        cmd = [tc.host_cc, "-O2", "-shared", "-fPIC", f"-I{header}",
               "-o", str(so), str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise UserError(src, f"plugin build failed: {r.stderr.strip()[-400:]}")

    return _cached_dir(out, build) / "libinsn_count.so"

