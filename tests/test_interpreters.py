"""The shared runtime loader: int8 (de)quantisation of TFLite tensors and the C-level output
redirects (the loaders themselves run in test_runtime.py and test_profile.py)."""

import os
import tempfile

import numpy as np

from edgehar.interpreters import c_output_to, c_stderr_silenced, dequantize, quantize


def test_quantize_rounds_clips_and_dequantize_inverts():
    x = np.array([-10.0, -0.26, 0.0, 0.24, 0.26, 10.0], np.float32)
    q = quantize(x, np.int8, 0.5, -3)
    assert q.dtype == np.int8 and q.tolist() == [-23, -4, -3, -3, -2, 17]
    assert quantize(np.array([1e6, -1e6]), np.int8, 0.01, 0).tolist() == [127, -128]
    assert quantize(np.array([1e6]), np.uint8, 0.01, 0).tolist() == [255]
    assert dequantize(q, 0.5, -3).tolist() == [-10.0, -0.5, 0.0, 0.0, 0.5, 10.0]
    assert dequantize(q, 0.5, -3).dtype == np.float32
    f = np.array([0.25, -1.5], np.float64)  # float tensors pass through unscaled
    assert quantize(f, np.float32, 0.0, 0).dtype == np.float32
    assert dequantize(f, 0.5, 7).tolist() == [0.25, -1.5]


def test_c_output_redirects_catch_fd_writes_and_restore():
    with tempfile.TemporaryFile() as log:
        with c_output_to(log):
            os.write(1, b"from C stdout\n")
            os.write(2, b"from C stderr\n")
        log.seek(0)
        assert log.read() == b"from C stdout\nfrom C stderr\n"
    with tempfile.TemporaryFile() as log:
        with c_output_to(log):
            with c_stderr_silenced():
                os.write(2, b"dropped\n")
            os.write(2, b"kept\n")
        log.seek(0)
        assert log.read() == b"kept\n"
