"""The microcontroller toolchain, used by `profile --measure` and by the bridge's firmware commands.

`toolchain` finds arm-none-eabi-gcc, qemu-system-arm and the TFLite-Micro sources; `build`
compiles TFLM once per CPU and links images against it (cached); `run` runs a .tflite on an
emulated Cortex-M under the instruction-counting QEMU plugin; `firmware_build` links the wrist
firmware for a board and reads its footprint. The C sources (boards, the semihosting runner, the
QEMU plugin, the frame encoder, the device sketch and the wrist application) are in `firmware/`.
"""
