"""Shared fixtures. Real-data tests take `data_root` and skip, with the reason, when
EDGEHAR_DATA is unset (CI always sets it)."""

import os
from pathlib import Path

import pytest

import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("EDGEHAR_DATA")
    if not root:
        pytest.skip("EDGEHAR_DATA is unset: real-data test (CI sets it to ../shared/data)")
    path = Path(root)
    if not path.is_dir():
        pytest.skip(f"EDGEHAR_DATA={root} is not a folder")
    return path


@pytest.fixture(scope="session")
def tflite_runtime_python() -> str:
    """A python with the legacy `tflite-runtime` (needs numpy<2, so it lives in its own venv).

    $EDGEHAR_TFLITE_RUNTIME_PYTHON if set; otherwise the venv is made once under the user
    cache folder (pip reaches PyPI in CI).
    """
    import subprocess
    import sys

    from edgehar.cachedir import cache_dir

    given = os.environ.get("EDGEHAR_TFLITE_RUNTIME_PYTHON")
    if given:
        return given
    venv = cache_dir("venv-tflite-runtime")
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import tflite_runtime.interpreter"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "tflite-runtime==2.14.0",
                              "numpy<2"], capture_output=True, text=True)
    if install.returncode != 0:
        pytest.fail(f"could not install tflite-runtime: {install.stderr[-500:]}")
    return str(python)
