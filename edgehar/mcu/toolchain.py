"""Find what building and emulating Cortex-M firmware needs, or say in one line what is missing.

Needs: the Arm cross compiler (Debian `gcc-arm-none-eabi`, `libnewlib-arm-none-eabi`,
`libstdc++-arm-none-eabi-dev` for the C++ headers TFLM includes), `qemu-system-arm`, a host `gcc`
(for the QEMU plugin), and the TFLite-Micro source trees + `qemu-plugin.h` found through
`--toolchains DIR` or `EDGEHAR_TOOLCHAINS` (layout: `tflm/cmsis_nn`, `tflm/reference`,
`qemu/qemu-plugin.h`; see the shared toolchains README for provenance and licences).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgehar.errors import UserError

APT_ARM = ("apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
           "libstdc++-arm-none-eabi-dev")
APT_QEMU = "apt-get install --no-install-recommends qemu-system-arm"
KERNEL_TREES = {"cmsis-nn": "tflm/cmsis_nn", "reference": "tflm/reference"}
ENV = "EDGEHAR_TOOLCHAINS"


@dataclass(frozen=True)
class Toolchain:
    root: Path
    gcc: str
    gxx: str
    ar: str
    nm: str
    size: str
    qemu: str
    host_cc: str

    def tree(self, kernels: str) -> Path:
        """The TFLM source tree of a kernel set ("cmsis-nn" or "reference")."""
        path = self.root / KERNEL_TREES[kernels]
        if not (path / "tensorflow/lite/micro/micro_interpreter.cc").is_file():
            raise UserError(path, f"no TFLite-Micro source tree here (the {kernels} kernels); "
                                  f"set {ENV} or --toolchains to the toolchains folder")
        return path

    @property
    def plugin_header_dir(self) -> Path:
        path = self.root / "qemu"
        if not (path / "qemu-plugin.h").is_file():
            raise UserError(path / "qemu-plugin.h", f"missing (QEMU 7.2's plugin API header); "
                                                     f"set {ENV} or --toolchains")
        return path


def _which(name: str, install: str) -> str:
    path = shutil.which(name)
    if not path:
        raise UserError(name, f"not found; install it: {install}")
    return path


def find_toolchain(root: str | os.PathLike | None = None, *, need_qemu: bool = True) -> Toolchain:
    """The tools and source folder, or a `UserError` naming what to install or set."""
    root = root or os.environ.get(ENV)
    if not root:
        raise UserError(ENV, "not set: point it (or --toolchains DIR) at the folder holding "
                             "tflm/cmsis_nn, tflm/reference and qemu/qemu-plugin.h")
    root = Path(root)
    if not root.is_dir():
        raise UserError(root, f"no such toolchains folder ({ENV} / --toolchains)")
    tc = Toolchain(root=root, gcc=_which("arm-none-eabi-gcc", APT_ARM),
                   gxx=_which("arm-none-eabi-g++", APT_ARM), ar=_which("arm-none-eabi-ar", APT_ARM),
                   nm=_which("arm-none-eabi-nm", APT_ARM), size=_which("arm-none-eabi-size", APT_ARM),
                   qemu=_which("qemu-system-arm", APT_QEMU) if need_qemu else "",
                   host_cc=_which("gcc", "apt-get install gcc") if need_qemu else "")
    probe = subprocess.run([tc.gxx, "-mthumb", "-mcpu=cortex-m4", "-E", "-x", "c++", "-"],
                           input="#include <cstdint>\n", capture_output=True, text=True)
    if probe.returncode:
        raise UserError("arm-none-eabi-g++", f"has no C++ headers (<cstdint>); install them: "
                                             f"{APT_ARM}")
    return tc
