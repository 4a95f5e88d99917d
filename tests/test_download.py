"""HAPT download against a local HTTP server serving a small archive in the UCI layout."""

import functools
import hashlib
import http.server
import json
import socket
import threading
import zipfile

import pytest

from edgehar.data import hapt
from edgehar.data.download import HAPT_URL_ENV, SOURCE_FILE, download_hapt
from edgehar.errors import UserError

NEST = "HAPT Data Set"  # the UCI archive keeps the files one folder down in some versions
FILES = ["RawData/acc_exp01_user01.txt", "RawData/gyro_exp01_user01.txt", "RawData/labels.txt",
         "activity_labels.txt"]


@pytest.fixture(scope="module")
def served(data_root, tmp_path_factory):
    """(url, sha256, folder of served files) of a small HAPT-layout zip on 127.0.0.1."""
    www = tmp_path_factory.mktemp("www")
    with zipfile.ZipFile(www / "hapt.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in FILES:
            z.write(data_root / "hapt" / name, f"{NEST}/{name}")
        z.writestr(f"{NEST}/README.txt", "test archive\n")
    inner = www / "inner.zip"  # the layout at the top of a zip that is itself zipped
    with zipfile.ZipFile(inner, "w") as z:
        for name in FILES:
            z.write(data_root / "hapt" / name, name)
    with zipfile.ZipFile(www / "wrapped.zip", "w") as z:
        z.write(inner, "HAPT Data Set.zip")
    inner.unlink()
    (www / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with zipfile.ZipFile(www / "other.zip", "w") as z:
        z.writestr("data/readme.txt", "some other data set\n")
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, hashlib.sha256((www / "hapt.zip").read_bytes()).hexdigest(), www
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_verify_extract_and_load(served, tmp_path, data_root):
    url, sha, _ = served
    dest = tmp_path / "cache" / "hapt"
    root = download_hapt(dest, url=f"{url}/hapt.zip", sha256=sha, progress=False)
    assert root == dest / NEST
    for name in FILES:
        assert (root / name).read_bytes() == (data_root / "hapt" / name).read_bytes()
    info = json.loads((dest / SOURCE_FILE).read_text())
    assert info["sha256"] == sha and info["root"] == NEST and info["checked_sha256"]
    assert not list(dest.rglob("*.part")) and [p.name for p in dest.parent.iterdir()] == ["hapt"]
    rec = hapt.load_experiment(root, 1, 1)  # the lead's loader reads what we fetched
    assert rec.n_samples > 0 and rec.rate == 50.0
    # A complete cache is reused: even a dead URL is not contacted again.
    assert download_hapt(dest, url="http://127.0.0.1:9/none.zip", progress=False) == root


def test_wrong_sha256_leaves_nothing(served, tmp_path):
    url, sha, _ = served
    dest = tmp_path / "cache" / "hapt"
    with pytest.raises(UserError, match="SHA-256 mismatch") as e:
        download_hapt(dest, url=f"{url}/hapt.zip", sha256="0" * 64, progress=False)
    assert e.value.where == f"{url}/hapt.zip" and "\n" not in e.value.message
    assert not dest.exists() and list((tmp_path / "cache").iterdir()) == []


def test_unreachable_and_missing_url(served, tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}/hapt.zip"
    with pytest.raises(UserError, match="download failed") as e:
        download_hapt(tmp_path / "c" / "hapt", url=dead, progress=False)
    assert e.value.where == dead
    with pytest.raises(UserError, match="HTTP 404"):
        download_hapt(tmp_path / "c" / "hapt", url=f"{served[0]}/nope.zip", progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_bad_archives(served, tmp_path):
    url, _, www = served
    with pytest.raises(UserError, match="not a valid zip"):
        download_hapt(tmp_path / "hapt", url=f"{url}/broken.zip", sha256=None, progress=False)
    with pytest.raises(UserError, match="not the UCI HAPT archive"):
        download_hapt(tmp_path / "hapt", url=f"{url}/other.zip", sha256="none", progress=False)
    assert not (tmp_path / "hapt").exists()


def test_env_url_override_and_cli(served, tmp_path, monkeypatch, capsys):
    from edgehar import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["edgehar.data.cli"])  # only the command under test
    main = cli.main
    url, sha, _ = served
    monkeypatch.setenv(HAPT_URL_ENV, f"{url}/hapt.zip")
    dest = tmp_path / "hapt"
    assert main(["data", "download", "hapt", "--sha256", sha, "--dest", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest / NEST)
    assert main(["data", "download", "hapt", "--sha256", "1" * 64, "--dest",
                 str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the progress bar, then one error line
    assert err[-1].startswith(f"edgehar: error: {url}/hapt.zip: SHA-256 mismatch")
    assert sum(line.startswith("edgehar:") for line in err) == 1


def test_zip_inside_the_zip(served, tmp_path):
    root = download_hapt(tmp_path / "hapt", url=f"{served[0]}/wrapped.zip", sha256=None,
                         progress=False)
    assert root == tmp_path / "hapt" / "HAPT Data Set"
    assert (root / "RawData" / "labels.txt").is_file() and not list(root.parent.rglob("*.zip"))
