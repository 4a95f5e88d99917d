"""The kit's cache folder: `$EDGEHAR_CACHE`, else the platform's user cache (`~/.cache/edgehar`
on Linux). Everything in it can be deleted; the kit makes it again when needed."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir(kind: str) -> Path:
    """The cache folder of one kind of thing (`text`, `mcu`, `hapt`, `recordings`)."""
    return Path(os.environ.get("EDGEHAR_CACHE") or user_cache_dir("edgehar")) / kind
