"""SHA-256 of files, the one way edgehar hashes what it reads or writes."""

from __future__ import annotations

import hashlib
import os


def file_sha256(*paths: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes; of several files, of their bytes one after another."""
    if len(paths) == 1:
        with open(paths[0], "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()
