"""Stream pieces: causal resampling equals the offline resampler, windows equal offline
windows, gaps are bridged or split, smoothing, and the bounded ring."""

import numpy as np
import pytest
from scipy.signal import resample_poly

from edgehar.bridge.ring import Ring
from edgehar.bridge.smoothing import Smoother
from edgehar.bridge.stream import Assembler, Block, StreamResampler, Windower
from edgehar.data.resample import resample_array
from edgehar.data.windows import window_starts
from edgehar.errors import UserError


def _push_in_chunks(obj, x, rng, *args):
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 23))
        out.append(obj.push(x[i:i + n], *args))
        i += n
    return out


@pytest.mark.parametrize("source,target", [(200, 50), (100, 50), (52, 50), (25, 50), (50, 20), (50, 50)])
def test_stream_resampler_equals_offline(source, target):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 3)).cumsum(0).astype(np.float32) * 0.01
    r = StreamResampler(source, target)
    y = np.concatenate(_push_in_chunks(r, x, rng))
    ref = resample_poly(x.astype(np.float64), r.up, r.down, axis=0)
    k = int(np.ceil(11 * max(1, target / source)))  # filter half-length, in output samples
    assert 0 <= len(ref) - len(y) <= k  # the tail waits for future samples (filter delay)
    np.testing.assert_allclose(y[k:], ref[k:len(y)], atol=1e-5)  # the start differs by padding only
    # and the same as the project's offline resampler away from the edges
    off = resample_array(x, source, target)
    np.testing.assert_allclose(y[k:len(y) - k], off[k:len(y) - k], atol=1e-5)


def test_windower_equals_offline_windows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1000, 3)).astype(np.float32)
    w = Windower(128, 64, segment=0, first_index=500)
    wins = [win for part in _push_in_chunks(w, x, rng, 0.0) for win in part]
    starts = window_starts(len(x), 128, 64)
    assert [win.start for win in wins] == (starts + 500).tolist()
    for win, s in zip(wins, starts):
        np.testing.assert_array_equal(win.data, x[s:s + 128])


def test_assembler_bridges_short_gaps_and_splits_long_ones():
    a = Assembler(rate=50, window=10, hop=5, max_gap=0.1)  # up to 5 missing samples are filled
    ones = np.ones((10, 1), np.float32)
    a.push(Block(ones * 0, 50, 0.0, index=0))
    wins = a.push(Block(ones * 6, 50, 1.0, index=13))  # 3 missing: 0 -> 6 linearly
    assert a.counts["filled"] == 3 and a.counts["segments"] == 1
    assert [w.start for w in wins] == [5, 10]  # 23 samples: 10 + 3 filled + 10
    np.testing.assert_allclose(wins[0].data[:, 0], [0] * 5 + [1.5, 3, 4.5, 6, 6])
    wins = a.push(Block(ones * 9, 50, 2.0, index=40))  # 17 missing: new segment at index 40
    assert a.counts["segments"] == 2 and wins[0].segment == 1 and wins[0].start == 40
    a.push(Block(ones, 50, 3.0, index=45))  # overlap of 5 with what was placed: trimmed
    assert a.counts["overlap"] == 5


def test_assembler_text_reconnect_starts_segment_on_same_index_line():
    a = Assembler(rate=50, window=10, hop=10)
    x = np.arange(25, dtype=np.float32)[:, None]
    first = a.push(Block(x, 50, 0.0, connection=0))
    second = a.push(Block(x, 50, 1.0, connection=1))
    assert [w.start for w in first] == [0, 10]
    assert [(w.segment, w.start) for w in second] == [(1, 25), (1, 35)]
    np.testing.assert_array_equal(second[0].data[:, 0], np.arange(10))


def test_smoothers():
    p = np.eye(3, dtype=np.float32)
    v = Smoother("vote:3")
    assert [v.update(p[i])[0] for i in (0, 0, 1, 1, 2)] == [0, 0, 0, 1, 1]
    e = Smoother("ema:0.5")
    assert e.update(p[0])[0] == 0 and e.update(p[1])[0] in (0, 1) and e.update(p[1])[0] == 1
    e.reset()
    assert e.update(p[2])[0] == 2
    assert Smoother("none").update(p[1])[0] == 1
    for bad in ("vote:0", "ema:2", "median:3", "vote:x"):
        with pytest.raises(UserError):
            Smoother(bad)


def test_ring_drops_oldest_when_full():
    r = Ring(3)
    for i in range(5):
        r.put(i)
    assert r.overruns == 2 and r.get_all() == [2, 3, 4] and r.get_all(timeout=0.01) == []
