"""The parsed-data-set cache (`edgehar.data.parsed`): a hit equals a fresh read, a change to the
folder is a miss, and nothing about the cache can make a load fail."""

import os
import pickle
from dataclasses import fields

import numpy as np
import pytest

from edgehar.data import parsed
from edgehar.data.datasets import load_dataset
from edgehar.data.recording import Recording


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEHAR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "recordings"


def folder_with(tmp_path, n=3):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    for i in range(n):
        (d / "sub" / f"r{i}.txt").write_text(f"{i}\n")
    return d


def reader(folder, calls):
    def read():
        calls.append(1)
        files = sorted(folder.rglob("*.txt"))
        return [Recording(np.full((4, 1), float(f.read_text())), 50.0, ("acc_x",), ("g",), name=f.name) for f in files]
    return read


def same(a, b):
    return len(a) == len(b) and all(x.name == y.name and np.array_equal(x.data, y.data) for x, y in zip(a, b))


def test_a_second_load_is_the_cached_first(tmp_path, cache):
    d, calls = folder_with(tmp_path), []
    first = parsed.load_parsed("x", None, d, reader(d, calls))
    second = parsed.load_parsed("x", None, d, reader(d, calls))
    assert calls == [1] and same(first, second) and len(list(cache.glob("*.pkl"))) == 1
    # an option or another folder is another entry
    parsed.load_parsed("x", "opt", d, reader(d, calls))
    assert calls == [1, 1] and len(list(cache.glob("*.pkl"))) == 2


@pytest.mark.parametrize("change", ["edit", "add", "remove", "touch"])
def test_a_changed_folder_is_read_again(tmp_path, cache, change):
    d, calls = folder_with(tmp_path), []
    parsed.load_parsed("x", None, d, reader(d, calls))
    f = d / "sub" / "r1.txt"
    if change == "edit":
        f.write_text("7\n")  # same size: the modification time tells
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1))
    elif change == "add":
        (d / "sub" / "r9.txt").write_text("9\n")
    elif change == "remove":
        f.unlink()
    else:
        os.utime(f, ns=(1, 1))
    again = parsed.load_parsed("x", None, d, reader(d, calls))
    assert calls == [1, 1] and same(again, reader(d, [])())


def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path, cache):
    d, calls = folder_with(tmp_path), []
    parsed.load_parsed("x", None, d, reader(d, calls))
    (entry,) = cache.glob("*.pkl")
    for damage in (entry.read_bytes()[: entry.stat().st_size // 2], b"not a pickle", b""):
        entry.write_bytes(damage)
        assert same(parsed.load_parsed("x", None, d, reader(d, calls)), reader(d, [])())
    assert len(calls) == 4
    with open(entry, "rb") as f:  # rewritten whole
        assert pickle.load(f)["folder"] == str(d.resolve())


def test_an_unwritable_cache_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("EDGEHAR_CACHE", str(blocker))
    d, calls = folder_with(tmp_path), []
    assert same(parsed.load_parsed("x", None, d, reader(d, calls)), reader(d, [])())
    assert same(parsed.load_parsed("x", None, d, reader(d, calls)), reader(d, [])()) and calls == [1, 1]


def test_entries_of_a_deleted_folder_go_at_the_next_write(tmp_path, cache):
    d, calls = folder_with(tmp_path), []
    parsed.load_parsed("x", None, d, reader(d, calls))
    gone = tmp_path / "copy"
    d.rename(gone)
    parsed.load_parsed("x", None, gone, reader(gone, calls))
    (entry,) = cache.glob("*.pkl")  # the first folder's entry went
    with open(entry, "rb") as f:
        assert pickle.load(f)["folder"] == str(gone.resolve())


def test_a_registered_data_set_loads_the_same_from_the_cache(data_root, cache):
    first = load_dataset("banglejs", data_root / "banglejs_wrist")
    assert len(list(cache.glob("*.pkl"))) == 1
    second = load_dataset("banglejs", data_root / "banglejs_wrist")
    assert [r.name for r in first] == [r.name for r in second]
    for a, b in zip(first, second):
        for f in fields(Recording):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name


def test_a_folder_with_too_many_files_is_read_each_time(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(parsed, "MAX_FILES", 2)
    d, calls = folder_with(tmp_path, n=3), []
    parsed.load_parsed("x", None, d, reader(d, calls))
    parsed.load_parsed("x", None, d, reader(d, calls))
    assert calls == [1, 1] and not cache.exists()
