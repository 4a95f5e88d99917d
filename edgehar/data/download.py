"""Fetch, verify and cache the public UCI HAPT archive (UCI ML repository data set 341).

The archive is streamed into a staged folder while its SHA-256 is computed, checked, extracted
there and deleted; the staged folder replaces the cache folder only when everything worked, so
an interrupted or failed download leaves nothing behind. The cache folder must be new, empty
or a previous download (`edgehar.outputs`): a folder holding anything else is refused before
the download starts, never replaced.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from edgehar import __version__
from edgehar.cachedir import cache_dir
from edgehar.errors import UserError
from edgehar.outputs import claim_folder, staged_output_folder

HAPT_URL = ("https://archive.ics.uci.edu/static/public/341/"
            "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip")
# SHA-256 and size of the archive UCI serves at HAPT_URL (79,596,192 bytes), as pinned by two
# independent public projects that fetch it; a mirror must serve the identical file.
HAPT_SHA256 = "4ac4ae064227c07045a99551876b54d204837e995e298b6488559e209b3deb09"
HAPT_URL_ENV = "EDGEHAR_HAPT_URL"
SOURCE_FILE = "edgehar-download.json"  # what was fetched, written beside the extracted files
COMMAND = "data download"
# the top level of the UCI archive (a download made before output markers is recognised by it)
HAPT_TOP = frozenset({"RawData", "Train", "Test", "README.txt", "activity_labels.txt", "features.txt",
                      "features_info.txt"})
_CHUNK = 1 << 16


def default_cache() -> Path:
    """`<cache>/hapt` (`edgehar.cachedir`)."""
    return cache_dir("hapt")


def find_hapt_root(folder: Path, depth: int = 3) -> Path | None:
    """The folder under `folder` (itself included) holding `RawData/labels.txt` and
    `activity_labels.txt`, searched `depth` levels deep; None if there is none."""
    folder = Path(folder)
    if (folder / "RawData" / "labels.txt").is_file() and (folder / "activity_labels.txt").is_file():
        return folder
    if depth > 0 and folder.is_dir():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found = find_hapt_root(sub, depth - 1)
            if found is not None:
                return found
    return None


def previous_download(folder: Path) -> set[str] | None:
    """The names a download written before output markers left in `folder`: its
    `edgehar-download.json` and the archive's top level; None when `folder` is not one."""
    try:
        source = json.loads((folder / SOURCE_FILE).read_text())
        root = PurePosixPath(source["root"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return {SOURCE_FILE, root.parts[0]} if root.parts else {SOURCE_FILE, *HAPT_TOP}


def download_hapt(dest: str | Path | None = None, url: str = HAPT_URL,
                  sha256: str | None = HAPT_SHA256, progress: bool = True,
                  force: bool = False) -> Path:
    """Download, verify and extract the UCI HAPT archive; return the folder holding `RawData/`.

    `dest`: cache folder (default `<user cache dir>/edgehar/hapt`); an already complete cache
    is returned as is unless `force`. `url`: `$EDGEHAR_HAPT_URL` replaces the default (for
    mirrors). `sha256`: expected digest of the archive; None (or "none") skips it, leaving the
    zip's own CRCs and the expected layout as the only checks.
    """
    if sha256 is not None and sha256.strip().lower() in ("", "none"):
        sha256 = None
    if url == HAPT_URL:
        url = os.environ.get(HAPT_URL_ENV) or url
    check_url(url)

    dest = Path(dest) if dest is not None else default_cache()
    if not force and dest.is_dir():
        cached = find_hapt_root(dest)
        if cached is not None:
            return cached
    claim_folder(dest, COMMAND, inputs=[_local_file(url)], replaces=True, legacy=previous_download,
                 flag="--dest")
    with staged_output_folder(dest, COMMAND, previous_download) as stage:
        # The archive goes into the staged folder too: a failure anywhere removes both.
        archive = stage / ".archive.zip.part"
        digest = _fetch(url, archive, progress)
        if sha256 is not None and digest != sha256.lower():
            raise UserError(url, f"SHA-256 mismatch: the download is {digest}, expected {sha256} "
                                 "(corrupt download, or a different file at this URL)")
        size = archive.stat().st_size
        _extract(url, archive, stage)
        archive.unlink()
        root = find_hapt_root(stage)
        if root is None:  # some UCI archives wrap the data set in an inner zip
            for inner in sorted(stage.rglob("*.zip")):
                _extract(url, inner, inner.with_suffix(""))
                inner.unlink()
            root = find_hapt_root(stage)
        if root is None:
            raise UserError(url, "the archive holds no RawData/labels.txt with "
                                 "activity_labels.txt beside it: not the UCI HAPT archive")
        relative = root.relative_to(stage)
        (stage / SOURCE_FILE).write_text(json.dumps(
            {"url": url, "sha256": digest, "bytes": size, "checked_sha256": sha256 is not None,
             "root": str(relative)}, indent=2) + "\n")
    return dest / relative


def _local_file(url: str) -> str | None:
    """The file a file:// URL names (an input: the cache may not hold or be it)."""
    parts = urlparse(url)
    return unquote(parts.path) if parts.scheme == "file" and parts.path else None


def check_url(url: str) -> str:
    """`url` if it is an http(s) or file URL; else a one-line `UserError`."""
    parts = urlparse(url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise UserError(url, "not a URL (expected http://, https:// or file://...)")
    return url


def _fetch(url: str, out: Path, progress: bool) -> str:
    """Stream `url` into `out`; return the SHA-256 of what arrived."""
    digest = hashlib.sha256()
    got = 0
    request = urllib.request.Request(url, headers={"User-Agent": f"edgehar/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, out.open("wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                      desc="HAPT archive", disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise UserError(url, f"download failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise UserError(url, f"download failed: {e.reason} (offline? pass --url for a mirror)") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, resets, bad URLs
        raise UserError(url, f"download failed: {e}") from None
    if total is not None and got != total:
        raise UserError(url, f"download cut short: {got} of {total} bytes")
    return digest.hexdigest()


def _extract(url: str, archive: Path, into: Path) -> None:
    """Unzip `archive` into `into`, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            if bad is not None:
                raise UserError(url, f"corrupt archive: member {bad!r} fails its CRC check")
            for member in z.infolist():
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                if member.filename.startswith("/") or ".." in parts:
                    raise UserError(url, f"archive member {member.filename!r} points outside the folder")
                if member.is_dir() or "__MACOSX" in parts:
                    continue
                target = into.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except zipfile.BadZipFile as e:
        raise UserError(url, f"not a valid zip archive ({e})") from None
