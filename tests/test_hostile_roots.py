"""Regression tests for the classes the hostile sweep (tests/test_hostile_sweep.py) found after
issue 16's fixes: links as outputs, numeric flags typed by hand, too many threads, a window
longer than the data, and a recording folder made before the port opened."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from edgehar import atomic, cli_types
from edgehar.cli import build_parser, main
from edgehar.data.recording import Recording
from edgehar.data.windows import make_windows
from edgehar.errors import UserError


def _loop(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


@pytest.mark.parametrize("write", [
    lambda p: atomic.write_bytes(p, b"x"),
    lambda p: atomic.check_writable(p),
    lambda p: atomic.staged_file(p).__enter__(),
    lambda p: atomic.staged_folder(p).__enter__(),
    lambda p: atomic.scratch_folder(p).__enter__(),
], ids=["write_bytes", "check_writable", "staged_file", "staged_folder", "scratch_folder"])
def test_a_link_loop_as_output_is_one_user_error_before_any_work(tmp_path, write):
    loop = _loop(tmp_path)
    with pytest.raises(UserError, match="symbolic link that cannot be followed"):
        write(loop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # nothing staged
    assert os.readlink(tmp_path / "a") == str(tmp_path / "b")


def test_a_link_to_a_file_stays_a_link_and_its_target_gets_the_content(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "out.json"
    link.symlink_to(real)
    atomic.write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    with atomic.staged_file(link) as tmp:
        tmp.write_text("newer")
    assert link.is_symlink() and real.read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "real.json"]


def test_a_link_to_a_folder_stays_a_link_when_an_artifact_folder_is_replaced(tmp_path):
    real = tmp_path / "disk" / "art"
    real.mkdir(parents=True)
    (real / "old.txt").write_text("old")
    link = tmp_path / "art"
    link.symlink_to(real)
    with atomic.staged_folder(link) as tmp:
        (tmp / "model.tflite").write_bytes(b"m")
    assert link.is_symlink() and sorted(os.listdir(real)) == ["model.tflite"]
    assert sorted(os.listdir(real.parent)) == ["art"]  # no staging left beside the target


def _actions(parser, path=()):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _actions(sub, path + (name,))
        else:
            yield path, a


def test_no_flag_takes_a_bare_int_or_float():
    """int() and float() accept "nan", "inf", "-5" and 10**30: every numeric flag goes through
    edgehar.cli_types (or a check built on it), so a bad number fails at parse time."""
    bare = [(" ".join(p), a.option_strings or a.dest) for p, a in _actions(build_parser())
            if a.type in (int, float)]
    assert bare == []


def test_threads_are_bounded_by_the_machine():
    most = cli_types.MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    assert cli_types.threads("1") == 1 and cli_types.threads(str(most)) == most
    for bad in ("0", "-1", str(most + 1), "1000000", "nan", "2.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_types.threads(bad)
    thread_flags = [(p, a.type) for p, a in _actions(build_parser()) if "--threads" in a.option_strings]
    assert thread_flags and all(t is cli_types.threads for _, t in thread_flags), thread_flags


@pytest.mark.parametrize("argv", [
    ["data", "corpus", "build", "--data", "hapt", "--rate", "50", "--window", "0", "--out", "c"],
    ["data", "corpus", "build", "--data", "hapt", "--rate", "50", "--window", "128", "--hop", "-1", "--out", "c"],
    ["record", "--port", "p", "--label", "walking", "--out", "o", "--baud", "-9600"],
    ["record", "--port", "p", "--label", "walking", "--out", "o", "--seconds", "inf"],
    ["record", "--port", "p", "--label", "walking", "--out", "o", "--rate", "1e9"],
])
def test_bad_numbers_found_by_the_sweep_fail_at_parse_time(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "error: argument" in err[-1], err


def test_a_window_longer_than_every_recording_is_one_user_error():
    rec = Recording(data=np.zeros((500, 3), np.float32), rate=50.0, channels=("acc_x", "acc_y", "acc_z"), units=("g",) * 3,
                    source="short.csv")
    with pytest.raises(UserError, match=r"short.csv: every recording is shorter than one window of 1000 samples "
                                        r"\(the longest has 500 at 50 Hz\)"):
        make_windows([rec], 1000, 500)


def test_record_makes_no_folder_when_the_port_cannot_be_opened(tmp_path, capsys):
    out = tmp_path / "mydata"
    code = main(["record", "--port", str(tmp_path / "ttyACM9"), "--label", "walking", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "no such serial port" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pct_start", [0.1, 0.3])
def test_one_cycle_runs_for_any_number_of_steps(pct_start):
    """torch's OneCycleLR divides by zero when the warm-up is exactly one step (10 steps at
    0.1: `edgehar demo --data` on a small folder, `finetune --steps 10`)."""
    import torch

    from edgehar.train.schedule import one_cycle

    for total in range(1, 61):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        sched = one_cycle(opt, 1e-3, total, pct_start=pct_start)
        for _ in range(total):
            opt.step()
            sched.step()
            assert np.isfinite(opt.param_groups[0]["lr"])


def test_every_trainer_uses_the_one_schedule():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    direct = [str(p.relative_to(root)) for d in ("edgehar", "calib", "export", "firmware_bridge")
              for p in (root / d).rglob("*.py") if "OneCycleLR(" in p.read_text() and p.name != "schedule.py"]
    assert direct == []


RUN_STRING_INTERRUPT = """
import ctypes, sys
import edgehar.evaluate as e
from edgehar.cli import main

def importing(*a, **k):  # Ctrl-C landing in code a C extension runs (TensorFlow's import)
    run = ctypes.pythonapi.PyRun_String
    run.restype, run.argtypes = ctypes.py_object, [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    run(b"raise KeyboardInterrupt", 257, {}, {})
e.evaluate_file = importing
sys.exit(main(["eval", "m.tflite"]))
"""


def test_ctrl_c_inside_extension_code_still_exits_130(tmp_path):
    import subprocess
    import sys

    # run as a module, as `python -m edgehar` is: only then does CPython act on the flag
    (tmp_path / "interrupted_run.py").write_text(RUN_STRING_INTERRUPT)
    (tmp_path / "m.tflite").write_bytes(b"stand-in")  # found; evaluate_file is replaced above
    p = subprocess.run([sys.executable, "-m", "interrupted_run"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 130 and p.stderr.strip().splitlines()[-1] == "edgehar: interrupted", (p.returncode, p.stderr)


SWALLOWING_LIBRARY = """
import sys, time
import edgehar.evaluate as e
from edgehar.cli import main

def importing(*a, **k):
    try:
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        pass  # a library swallowing the interrupt half-way through an import
    raise ImportError("To use Keras, you need to have `optree` installed.")
e.evaluate_file = importing
sys.exit(main(["eval", "m.tflite"]))
"""


@pytest.mark.parametrize("sig,code,word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_an_error_after_a_stop_signal_is_the_signal_not_a_traceback(tmp_path, sig, code, word):
    import signal
    import subprocess
    import sys

    (tmp_path / "m.tflite").write_bytes(b"stand-in")  # found; evaluate_file is replaced above
    p = subprocess.Popen([sys.executable, "-c", SWALLOWING_LIBRARY], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=60)
    assert p.returncode == code and err.strip().splitlines()[-1] == f"edgehar: {word}", err
    assert "Traceback" not in err
