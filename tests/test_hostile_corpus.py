"""A damaged corpus is one line naming the file, before anything trains on it: a truncated,
deleted or tampered shard (its SHA-256 is checked on open), a cut or incomplete corpus.json,
a corrupt .npy header (also with --no-verify, which skips only the hashes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgehar.cli import main
from edgehar.data import corpus as corpus_mod
from edgehar.data.corpus import build_corpus, read_manifest, stream
from edgehar.errors import UserError


@pytest.fixture()
def corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "_VERIFIED", set())  # each test hashes afresh
    monkeypatch.setattr(corpus_mod, "_UNVERIFIED_FOLDERS", set())
    own = tmp_path / "own"
    own.mkdir()
    (own / "edgehar.json").write_text(json.dumps({"rate": 25, "subject": {"pattern": r"^s(\d+)_"},
                                                  "label": {"column": "act"}}))
    rng = np.random.default_rng(0)
    for s in range(1, 7):
        x = rng.normal(size=(2000, 3))
        (own / f"s{s}_a.csv").write_text("acc_x,acc_y,acc_z,act\n" + "".join(
            f"{a:.6f},{b:.6f},{c:.6f},{'walk' if i < 1000 else 'sit'}\n" for i, (a, b, c) in enumerate(x)))
    out = tmp_path / "corpus"
    build_corpus([str(own)], rate=25, window=50, out=out)
    return out


def _first_x(folder):
    return folder / json.loads((folder / "corpus.json").read_text())["shards"][0]["x"]


def _all(folder, **kw):
    return sum(len(x) for x, _ in stream(folder, split=None, rank=0, world=1, **kw))


def _one_line(folder, expected, **kw):
    with pytest.raises(UserError) as e:
        _all(folder, **kw)
    assert expected in e.value.message and "\n" not in e.value.message, e.value.message


def test_an_intact_corpus_reads_and_hashes_once_per_process(corpus, monkeypatch):
    n = _all(corpus)
    assert n == read_manifest(corpus)["windows"] > 0
    calls = []
    monkeypatch.setattr(corpus_mod, "_sha256", lambda p: calls.append(p) or "")
    assert _all(corpus) == n and calls == []  # verified already, unchanged since


def test_a_flipped_region_is_found_by_its_hash(corpus):
    shard = _first_x(corpus)
    data = bytearray(shard.read_bytes())
    lo = min(256, len(data) // 2)
    data[lo:lo + 65536] = bytes(b ^ 0xFF for b in data[lo:lo + 65536])
    shard.write_bytes(bytes(data))
    _one_line(corpus, f"{shard}: content differs from its SHA-256 in corpus.json")
    assert _all(corpus, verify=False) > 0  # the flag reads it anyway


def test_a_truncated_shard(corpus):
    shard = _first_x(corpus)
    shard.write_bytes(shard.read_bytes()[:1000])
    _one_line(corpus, f"{shard}: content differs from its SHA-256")
    _one_line(corpus, f"{shard}: not a readable .npy array", verify=False)


def test_a_deleted_shard(corpus):
    shard = _first_x(corpus)
    shard.unlink()
    _one_line(corpus, f"{shard}: no such shard (corpus.json lists it)")
    _one_line(corpus, f"{shard}: no such shard", verify=False)


def test_a_corrupt_npy_header(corpus):
    shard = _first_x(corpus)
    data = bytearray(shard.read_bytes())
    data[10:60] = b"{'descr': '<f4', 'fortran_order': False, 'shape'"[:50].replace(b"'", b"#")
    shard.write_bytes(bytes(data))
    _one_line(corpus, f"{shard}: content differs")
    _one_line(corpus, f"{shard}: not a readable .npy array", verify=False)


def test_a_header_cut_inside_its_shape(corpus):
    """numpy tokenizes the header: an unclosed bracket is a tokenize.TokenError, not a ValueError."""
    shard = _first_x(corpus)
    data = bytearray(shard.read_bytes())
    data[10:40] = b"{'descr': '<f4', 'shape': (((("
    shard.write_bytes(bytes(data))
    _one_line(corpus, f"{shard}: content differs")
    _one_line(corpus, f"{shard}: not a readable .npy array", verify=False)


def test_a_shard_of_another_shape(corpus):
    shard = _first_x(corpus)
    np.save(shard, np.zeros((3, 7, 2), np.float32))
    _one_line(corpus, f"{shard}: holds float32 (3, 7, 2), corpus.json says float32 (N, 50, 3)", verify=False)


@pytest.mark.parametrize("damage,expected", [
    (lambda text: text[:len(text) // 2], "not valid JSON"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "shards"}), "no 'shards'"),
    (lambda text: json.dumps({**json.loads(text), "shards": {"0": 1}}), "'shards' is dict"),
    (lambda text: json.dumps({**json.loads(text), "shards": [{"x": "../../etc/passwd"}]}), "shards[0]"),
    (lambda text: "[]", "not a JSON object"),
], ids=["cut in half", "no shards", "shards an object", "shard outside", "a list"])
def test_a_damaged_manifest(corpus, damage, expected):
    path = corpus / "corpus.json"
    path.write_text(damage(path.read_text()))
    _one_line(corpus, f"{path}: ")
    _one_line(corpus, expected)


@pytest.mark.parametrize("command", [
    ["pretrain", "--method", "harfm", "--steps", "5"],
    ["distill", "--teacher", "TEACHER", "--steps", "1"],
], ids=["pretrain", "distill"])
def test_commands_refuse_a_tampered_corpus_in_one_line_and_no_verify_skips_the_hash(
        corpus, tmp_path, capsys, command):
    shard = _first_x(corpus)
    data = bytearray(shard.read_bytes())
    data[10:60] = b"#" * 50  # the header: unreadable whether hashed or not
    shard.write_bytes(bytes(data))
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(b"not a checkpoint")  # a file: the corpus is checked before it is read
    args = [str(teacher) if a == "TEACHER" else a for a in command]
    args = [*args, "--data", str(corpus), "--out", str(tmp_path / "out.pt")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"edgehar: error: {shard}: content differs from its SHA-256 in corpus.json (a truncated, " \
                  "damaged or edited shard): rebuild the corpus, or pass --no-verify to read it anyway\n"
    assert main([*args, "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgehar: error: ") and err.count("\n") == 1 and "content differs" not in err
    assert not (tmp_path / "out.pt").exists()
