"""ESTIMATED latency on microcontrollers: MACs x cycles-per-MAC / clock.

These are estimates, not measurements. They count only the MAC layers (conv, depthwise,
fully-connected, matmul), so they are a lower bound: element-wise ops, normalisation, softmax,
requantisation, memory stalls and flash wait states add to them. Use them to rank models and to
see orders of magnitude, then measure on the board.

Cycles per MAC, with where each number comes from:

int8 (TFLM with the vendor-optimised kernels: CMSIS-NN on Arm, ESP-NN on ESP32-S3)
- Cortex-M7 1.74: Lai, Suda, Chandra, "CMSIS-NN: Efficient Neural Network Kernels for Arm
  Cortex-M CPUs", arXiv:1801.06601 (2018): their CIFAR-10 CNN (conv 5x5 3->32 on 32x32,
  32->32 on 16x16, 32->64 on 8x8, FC 1024->10: 12.3 M MACs by our count) runs in 99.1 ms on a
  Cortex-M7 at 216 MHz = 21.4 M cycles, i.e. 1.74 cycles/MAC.
- Cortex-M4F 2.55 and Cortex-M33 2.17: the M7 figure scaled by Arm's published CoreMark/MHz
  (Cortex-M7 5.01, Cortex-M4 3.42, Cortex-M33 4.02; developer.arm.com processor pages). All
  three have the DSP extension's dual 16-bit MAC (SMLAD) that CMSIS-NN's int8 kernels use.
- ESP32-S3 2.0: ESP-NN README (github.com/espressif/esp-nn, "Kernelwise performance for s8
  versions", ESP32-S3 at 240 MHz): 1x1 conv 64->64 on 10x10 = 409,600 MACs in 428,675 ticks
  (1.05/MAC); 1x1 conv 16->16 on 8x8 = 16,384 MACs in 32,433 ticks (1.98/MAC); 3x3 depthwise,
  16 ch on 18x18 = 36,864 MACs in 203,278 ticks (5.5/MAC). Small HAR models have few channels,
  so we take 2.0, not the best case.

float32 (TFLM's portable reference kernels: CMSIS-NN and ESP-NN have no float path)
- Cortex-M7 8.0: Lai et al. (above) report their kernels at 4.6x the throughput of the
  baseline C kernels on the same M7: 1.74 x 4.6 = 8.0 cycles/MAC for plain C inner loops.
- Cortex-M4F 11.7 and Cortex-M33 10.0: that scaled by CoreMark/MHz as for int8.
- ESP32-S3 11.4: ESP-NN's own ANSI-C baseline in the same README table, 1x1 conv 64->64:
  4,663,012 ticks / 409,600 MACs.
float16 weights are dequantised to float32 before use, so they cost float32 MACs; int16
activations (16x8 quantisation) are costed as int8.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgehar.errors import UserError


@dataclass(frozen=True)
class Target:
    name: str
    core: str
    mhz: float
    cycles_per_mac: dict  # {"int8": c, "float32": c}
    example: str


TARGETS = {
    "cortex-m4f": Target("cortex-m4f", "Arm Cortex-M4F", 64, {"int8": 2.55, "float32": 11.7},
                         "nRF52840 (Bangle.js 2)"),
    "cortex-m33": Target("cortex-m33", "Arm Cortex-M33", 160, {"int8": 2.17, "float32": 10.0},
                         "STM32U5"),
    "cortex-m7": Target("cortex-m7", "Arm Cortex-M7", 480, {"int8": 1.74, "float32": 8.0},
                        "STM32H7"),
    "esp32-s3": Target("esp32-s3", "Xtensa LX7 (ESP32-S3)", 240, {"int8": 2.0, "float32": 11.4},
                       "ESP32-S3"),
}
NOTE = ("estimates, not measurements: MAC layers only x cycles-per-MAC (sources in "
        "edgehar/profile/targets.py) / clock; a lower bound")


def split_clock(spec: str) -> tuple[str, float | None, bool]:
    """`NAME` or `NAME@MHZ` (any case; `216` or `216mhz`) -> (name, MHz or None, clock ok).

    The one reader of a clocked name, for `--target` and `--measure`; "clock ok" is False when
    the part after `@` is not a positive finite number (each caller words its own error)."""
    name, _, mhz = spec.strip().lower().partition("@")
    if not mhz:
        return name, None, True
    try:
        clock = float(mhz.removesuffix("mhz"))
    except ValueError:
        return name, None, False
    return name, clock, 0 < clock < float("inf")


def parse_target(spec: str) -> Target:
    """`NAME` or `NAME@MHZ` (e.g. `cortex-m7@216`) -> a Target; `UserError` if unknown."""
    name, clock, clock_ok = split_clock(spec)
    if name not in TARGETS:
        raise UserError("--target", f"unknown target {spec!r}; known: {', '.join(TARGETS)} "
                                    "(optionally NAME@MHZ)")
    if not clock_ok:
        raise UserError("--target", f"bad clock in {spec!r}; expected NAME@MHZ, e.g. cortex-m7@216")
    target = TARGETS[name]
    if clock is not None:
        target = Target(target.name, target.core, clock, target.cycles_per_mac, target.example)
    return target


def compute_class(dtype: str) -> str:
    """Which cost table a layer's activation dtype uses."""
    return "int8" if dtype in ("int8", "uint8", "int16", "int4") else "float32"


def estimate(target: Target, macs_by_class: dict[str, int]) -> dict:
    """Estimated milliseconds of the MAC work on `target`."""
    cycles = sum(macs * target.cycles_per_mac[cls] for cls, macs in macs_by_class.items())
    return {"name": f"{target.name}@{target.mhz:g}MHz", "core": target.core, "mhz": target.mhz,
            "example": target.example,
            "macs": {cls: int(m) for cls, m in macs_by_class.items() if m},
            "cycles_per_mac": {cls: target.cycles_per_mac[cls] for cls, m in macs_by_class.items() if m},
            "estimated_ms": cycles / (target.mhz * 1e3), "estimate": True}
