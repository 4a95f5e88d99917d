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
