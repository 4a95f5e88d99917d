"""Reuse a trained model only when nothing that made it has changed.

A model's key hashes its recipe (a JSON-able dict), the source of the modules that train it
and the exact windows it saw. `Manifest` keeps `{name: {key, sha256, recipe, created}}` beside
the models; a file is reused only when its key and its own bytes both match, so a file from
another run, another recipe, edited code or other data is rebuilt, never silently reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edgehar.atomic import write_json
from edgehar.digest import file_sha256


def windows_sha256(*windows) -> str:
    """Hash of the samples, labels and subjects of `Windows` (what a model was trained on)."""
    h = hashlib.sha256()
    for w in windows:
        for a in (w.x, w.y, w.subject):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.data)
        h.update(json.dumps([list(w.channels), list(w.label_names), float(w.rate)]).encode())
    return h.hexdigest()


def code_sha256(modules) -> str:
    """Hash of the source files of `modules` (dotted names), in the order given."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ValueError(f"no source for module {name}")
        h.update(name.encode())
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()


def content_key(recipe: dict, modules, data_sha256: str) -> str:
    """The key of a model made by `recipe`, with the code of `modules`, from data `data_sha256`."""
    h = hashlib.sha256()
    h.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    h.update(code_sha256(modules).encode())
    h.update(data_sha256.encode())
    return h.hexdigest()


class Manifest:
    """`manifest.json` in a models folder: which file was made from which key."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / "manifest.json"
        self.entries = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def reusable(self, name: str, key: str) -> bool:
        """True when `name` exists, was recorded under `key`, and its bytes are the ones recorded."""
        entry, path = self.entries.get(name), self.folder / name
        return (entry is not None and entry.get("key") == key and path.is_file()
                and file_sha256(path) == entry.get("sha256"))

    def record(self, name: str, key: str, recipe: dict) -> None:
        self.entries[name] = {"key": key, "sha256": file_sha256(self.folder / name), "recipe": recipe,
                              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(self.path, self.entries)

    def build_many(self, jobs: dict, processes: int = 1, done=None, failed=None) -> dict:
        """{name: (path, reused, result)} of `jobs` ({name: (key, recipe, make, args)}): a file
        that is not reusable is made by `make(*args)` (a module-level function that writes
        `folder / name`; `result` is what it returns), `processes` at a time, each in a spawned
        process of its own (in this one when `processes` is 1), and recorded as it finishes.
        `done(name, result)` is called for each made file; a job that raises is passed to
        `failed(name, exception)` and left out of the answer, or, without `failed`, stops the run."""
        out, todo = {}, {}
        for name, (key, recipe, make, args) in jobs.items():
            if self.reusable(name, key):
                out[name] = (self.folder / name, True, None)
            else:
                todo[name] = (key, recipe, make, args)
        pool = (ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
                if processes > 1 and todo else None)
        try:
            futures = {name: pool.submit(make, *args) for name, (_, _, make, args) in todo.items()} if pool else {}
            for name, (key, recipe, make, args) in todo.items():
                try:
                    result = futures[name].result() if pool else make(*args)
                except Exception as e:
                    if failed is None:
                        raise
                    failed(name, e)
                    continue
                self.record(name, key, recipe)
                out[name] = (self.folder / name, False, result)
                if done:
                    done(name, result)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        return out

    def build(self, name: str, key: str, recipe: dict, make) -> tuple[Path, bool]:
        """(path, reused): `make(path)` writes the file unless a reusable one is there."""
        path = self.folder / name
        if self.reusable(name, key):
            return path, True
        make(path)
        self.record(name, key, recipe)
        return path, False
