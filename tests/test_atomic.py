import os

import pytest

from edgehar.atomic import staged_folder, write_json, write_text
from edgehar.errors import UserError


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    p = write_text(tmp_path / "a.txt", "one")
    write_json(tmp_path / "b.json", {"x": 1})
    assert p.read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~umask  # as readable as a plain open() makes it


def test_staged_folder_failure_keeps_old_content(tmp_path):
    out = tmp_path / "art"
    with staged_folder(out) as tmp:
        (tmp / "model.bin").write_text("v1")
    with pytest.raises(RuntimeError):
        with staged_folder(out) as tmp:
            (tmp / "model.bin").write_text("half")
            raise RuntimeError("conversion failed")
    assert (out / "model.bin").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["art"]


def test_unwritable_output_is_a_user_error(tmp_path):
    # Runs as root in CI, so permission bits do not stop writes: a file in the way does.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create folder"):
        write_text(blocker / "sub" / "x.txt", "x")
    with pytest.raises(UserError, match="cannot create folder"):
        with staged_folder(blocker / "out"):
            pass
