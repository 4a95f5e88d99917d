"""Instruction counts of a .tflite on an emulated Cortex-M4 (TFLM + CMSIS-NN under QEMU).

Needs arm-none-eabi-gcc, qemu-system-arm and EDGEHAR_TOOLCHAINS (CI sets all three); skips with
the reason otherwise. The session builds ONE runner (cortex-m4, cmsis-nn: minutes the first
time, then cached under the user cache dir) and every test here shares it.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from edgehar.cli import main
from tiny_har_models import built_models


def _toolchain_or_skip():
    if not os.environ.get("EDGEHAR_TOOLCHAINS"):
        pytest.skip("EDGEHAR_TOOLCHAINS is unset (the TFLM sources; CI sets it to ../shared/toolchains)")
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "gcc"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (see .ci/run for the apt line)")
    from edgehar.mcu.toolchain import find_toolchain

    return find_toolchain()


@pytest.fixture(scope="session")
def toolchain():
    return _toolchain_or_skip()


@pytest.fixture(scope="session")
def m4_runner(toolchain):
    from edgehar.mcu import build

    return build.runner(toolchain, build.CPUS["cortex-m4"], "cmsis-nn")


@pytest.fixture(scope="session")
def tiny_int8():
    return str(built_models()["tflite_int8"])


@pytest.fixture(scope="session")
def two_runs(toolchain, m4_runner, tiny_int8):
    from edgehar.mcu.run import probe_windows, run_on_mcu

    windows = probe_windows(tiny_int8, 3, seed=7)
    return [run_on_mcu(toolchain, tiny_int8, windows) for _ in range(2)]


def test_counts_repeat_exactly_run_to_run(two_runs):
    a, b = two_runs
    assert [i.instructions for i in a.inferences] == [i.instructions for i in b.inferences]
    assert [i.ops for i in a.inferences] == [i.ops for i in b.inferences]
    assert a.outputs == b.outputs and a.arena_used_bytes == b.arena_used_bytes
    # the same window three times: steady-state inferences repeat within one run too
    assert a.inferences[1].instructions == a.inferences[2].instructions


def test_per_op_counts_sum_to_the_total(two_runs):
    for inference in two_runs[0].inferences:
        ops = sum(n for _, n in inference.ops)
        assert ops <= inference.instructions
        assert ops >= 0.99 * inference.instructions, (ops, inference.instructions)
    names = [op for op, _ in two_runs[0].inferences[0].ops]
    assert "CONV_2D" in names and "FULLY_CONNECTED" in names


def test_runner_outputs_match_litert(two_runs, tiny_int8):
    """Wrist-like windows in the card's units (not the probe): top-1 equal, within a few LSB.
    The demo student on real HAPT test windows, both kernel sets: benchmarks/bench_mcu.py."""
    from edgehar.interpreters import litert_interpreter
    from edgehar.mcu.run import outputs_array, run_on_mcu
    from edgehar.mcu.toolchain import find_toolchain
    from tiny_har_models import bangle_card, random_windows

    card = bangle_card()
    it = litert_interpreter(tiny_int8, xnnpack=False)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    x = np.clip(np.round(card.normalise(random_windows(card, 40, seed=3)) / scale + zero),
                -128, 127).astype(np.int8)
    run = run_on_mcu(find_toolchain(), tiny_int8, x.tobytes())
    mcu = outputs_array(tiny_int8, run)
    host = []
    for w in x:
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        host.append(it.get_tensor(out["index"]).copy())
    host = np.stack(host)
    assert np.abs(mcu.astype(int) - host.astype(int)).max() <= 3
    assert (mcu.reshape(40, -1).argmax(1) == host.reshape(40, -1).argmax(1)).mean() >= 0.995


def test_profile_measure_json(toolchain, m4_runner, tiny_int8, capsys):
    import json

    assert main(["profile", tiny_int8, "--json", "--no-latency", "--measure", "cortex-m4@64"]) == 0
    report = json.loads(capsys.readouterr().out)
    m = report["mcu_measured"][0]
    assert report["targets"] == []  # the MAC-constant estimate is only the fallback
    assert m["cpu"] == "cortex-m4" and m["kernels"] == "cmsis-nn"
    assert m["instructions"] == sum(o["instructions"] for o in m["per_op"]) + m["interpreter_instructions"]
    conv = next(o for o in m["per_op"] if o["op"] == "CONV_2D")
    assert conv["macs"] > 0 and conv["instructions_per_mac"] == round(conv["instructions"] / conv["macs"], 3)
    assert m["arena_used_bytes"] > 0
    lo, hi = m["latency_ms"]
    assert lo == round(m["instructions"] * m["cycles_per_instruction"][0] / 64e3, 4) and lo < hi
    assert m["latency_kind"] == "estimate from a measured instruction count"


def test_profile_without_measure_labels_the_fallback(tiny_int8, capsys):
    import json

    assert main(["profile", tiny_int8, "--json", "--no-latency", "--no-arena"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mcu_measured"] is None and report["targets"]
    assert report["targets_note"].startswith("fallback")


def test_missing_op_is_named(toolchain, m4_runner, tmp_path, capsys):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def floor_twice(x):
        return tf.math.floor(x) * 2.0

    path = tmp_path / "floor.tflite"
    conv = tf.lite.TFLiteConverter.from_concrete_functions([floor_twice.get_concrete_function()],
                                                           floor_twice)
    path.write_bytes(conv.convert())
    assert main(["profile", str(path), "--no-latency", "--no-arena", "--measure", "cortex-m4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "op FLOOR is not in edgehar's TFLM runner" in err[0]


@pytest.mark.parametrize("env, tool, expect", [
    ({"EDGEHAR_TOOLCHAINS": ""}, None, "EDGEHAR_TOOLCHAINS: not set"),
    ({"EDGEHAR_TOOLCHAINS": "/nonexistent/toolchains"}, None, "no such toolchains folder"),
    (None, "arm-none-eabi-gcc", "arm-none-eabi-gcc: not found; install it: apt-get install"),
    (None, "qemu-system-arm", "qemu-system-arm: not found; install it: apt-get install"),
])
def test_missing_toolchain_is_one_line(env, tool, expect, tiny_int8, tmp_path, monkeypatch, capsys):
    if env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    else:
        root = tmp_path / "toolchains"
        root.mkdir()
        monkeypatch.setenv("EDGEHAR_TOOLCHAINS", str(root))
        real = shutil.which
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == tool else real(name, *a, **k))
    code = main(["profile", tiny_int8, "--no-latency", "--no-arena", "--measure", "cortex-m4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expect in err[0], err


def test_missing_source_tree_is_one_line(tiny_int8, tmp_path, monkeypatch, capsys):
    if not (shutil.which("arm-none-eabi-g++") and shutil.which("qemu-system-arm")):
        pytest.skip("needs the Arm compiler and QEMU to reach the source-tree check")
    monkeypatch.setenv("EDGEHAR_TOOLCHAINS", str(tmp_path))
    code = main(["profile", tiny_int8, "--no-latency", "--no-arena", "--measure", "cortex-m4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no TFLite-Micro source tree here" in err[0], err


def test_bad_measure_flag_is_a_parse_error(tiny_int8, capsys):
    with pytest.raises(SystemExit) as e:
        main(["profile", tiny_int8, "--measure", "cortex-m99"])
    assert e.value.code == 2 and "unknown CPU 'cortex-m99'" in capsys.readouterr().err


@pytest.mark.parametrize("spec, expect", [
    ("cortex-m4", ("cortex-m4", None, True)), ("Cortex-M7@216MHz", ("cortex-m7", 216.0, True)),
    ("cortex-m4@0", ("cortex-m4", 0.0, False)), ("cortex-m4@inf", ("cortex-m4", float("inf"), False)),
    ("cortex-m4@fast", ("cortex-m4", None, False))])
def test_one_reader_of_name_at_mhz(spec, expect):
    """`--target` and `--measure` read NAME@MHZ with the same function, so they agree on it."""
    from argparse import ArgumentTypeError

    from edgehar.errors import UserError
    from edgehar.profile.mcu_report import parse_measure
    from edgehar.profile.targets import parse_target, split_clock

    assert split_clock(spec) == expect
    name, clock, ok = expect
    if name == "cortex-m4":
        if ok:
            assert parse_measure(spec) == [(name, clock)]
        else:
            with pytest.raises(ArgumentTypeError, match="bad clock"):
                parse_measure(spec)
            with pytest.raises(UserError, match="bad clock"):
                parse_target(spec.replace("cortex-m4", "cortex-m4f"))
