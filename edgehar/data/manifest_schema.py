"""The one schema of an own-data manifest (`edgehar.json`), checked before any CSV is read.

Each key has a small check that says what is wrong and what to write instead; a problem is a
`UserError` on the manifest, `<folder>/edgehar.json: <key path>: <what, and what to write>`,
with key paths like `files["a.csv"].label.value`. The same checks run on the top level and
on every `files` entry (which may override the per-file keys only), so a value of the wrong
JSON type never reaches the reader.

A hand-written table rather than JSON Schema: `jsonschema` is not a dependency, and its
messages name the violated rule ("5 is not valid under any of the given schemas" for the
`subject`/`label` alternatives), not what to write.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable

from edgehar.data.channel_names import SENSOR_AXES
from edgehar.data.recording import MAX_RATE_HZ
from edgehar.errors import UserError

# MAX_RATE_HZ is the kit's one maximum sensor rate (flags, files, devices and model cards).
MIN_RATE_HZ = 1.0  # below one sample a second no activity shows; lower is a unit mistake
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
UNITS = ("g", "m/s^2", "rad/s", "deg/s")
SOURCES = ("column", "pattern", "folder", "value")
MAX_NAME = 200  # characters of a column, channel or class name


class Problem(Exception):
    """What is wrong with one value; callers prepend the keys that lead to it."""

    def __init__(self, what: str, path: tuple = ()):
        super().__init__(what)
        self.what, self.path = what, path

    def __str__(self) -> str:
        if not self.path:
            return self.what
        shown = str(self.path[0]) + "".join(
            f"[{k}]" if isinstance(k, int) else f".{k}" if re.fullmatch(r"[A-Za-z_]\w*", k)
            else f"[{json.dumps(k)}]" for k in self.path[1:])
        return f"{shown}: {self.what}"


def _show(value) -> str:
    text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            type(None): "null"}.get(type(value), "a number")


def _expect(value, kinds: tuple, what: str) -> None:
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise Problem(f"expected {what}, got {_type_name(value)} {_show(value)}")


def _name(value, what: str = "a name") -> str:
    _expect(value, (str,), what)
    if not value.strip():
        raise Problem(f"expected {what}, got an empty string")
    if len(value) > MAX_NAME:
        raise Problem(f"a name of {len(value)} characters (at most {MAX_NAME})")
    return value


def _names(value, what: str, example: str) -> None:
    _expect(value, (list,), f"a list of {what}, e.g. {example}")
    if not value:
        raise Problem(f"an empty list: name at least one, e.g. {example}")
    for i, item in enumerate(value):
        _at(i, _name, item, f"names ({what})")
    twice = next((v for i, v in enumerate(value) if v in value[:i]), None)
    if twice is not None:
        raise Problem(f"{twice!r} is listed twice")


def _channels(value) -> None:
    """A list of channel columns, or an object from each channel column to its sensor axis."""
    example = '{"ax": "acc_x", "ay": "acc_y", "az": "acc_z"}'
    if not isinstance(value, dict):
        _expect(value, (list,), f'a list of channel names, e.g. ["ax", "ay", "az"], or an object '
                                f'naming each column\'s sensor axis, e.g. {example}')
        _names(value, "channel names", '["ax", "ay", "az"]')
        return
    if not value:
        raise Problem(f"an empty object: name each channel column's sensor axis, e.g. {example}")
    for column, axis in value.items():
        _at(column, _name, column, "a column name")
        if not isinstance(axis, str) or axis not in SENSOR_AXES:
            raise Problem(f"expected a sensor axis ({', '.join(SENSOR_AXES)}), got {_show(axis)}",
                          (column,))
    twice = next((a for i, a in enumerate(value.values()) if a in list(value.values())[:i]), None)
    if twice is not None:
        columns = [c for c, a in value.items() if a == twice]
        raise Problem(f"columns {columns[0]!r} and {columns[1]!r} are both {twice!r}: give each "
                      "axis one column")


def _rate(value) -> None:
    _expect(value, (int, float), f"a number of Hz, e.g. 50")
    if not (isinstance(value, int) or math.isfinite(value)) or not MIN_RATE_HZ <= value <= MAX_RATE_HZ:
        raise Problem(f"{_show(value)} Hz is outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz: write the "
                      "sensor's sampling rate in Hz, e.g. 50")


def _time(value) -> None:
    example = '{"column": "t", "unit": "ms"}'
    _expect(value, (dict,), f"an object like {example}")
    _keys(value, {"column", "unit"}, example)
    if "column" not in value:
        raise Problem(f"no \"column\": name the time column, e.g. {example}")
    _at("column", _name, value["column"], "the time column's name")
    if "unit" in value and (not isinstance(value["unit"], str) or value["unit"] not in TIME_UNITS):
        raise Problem(f"expected one of {', '.join(TIME_UNITS)}, got {_show(value['unit'])}", ("unit",))


def _units(value) -> None:
    if isinstance(value, list):
        if not value:
            raise Problem(f"an empty list: one unit, or one per channel ({', '.join(UNITS)})")
        for i, u in enumerate(value):
            if not isinstance(u, str) or u not in UNITS:
                raise Problem(f"expected one of {', '.join(UNITS)}, got {_show(u)}", (i,))
        return
    if not isinstance(value, str) or value not in UNITS:
        raise Problem(f"expected one of {', '.join(UNITS)} (or a list, one per channel), got "
                      f"{_show(value)}")


def _source(key: str) -> Callable:
    forms = '{"column": NAME}, {"pattern": REGEX}, {"folder": N} or {"value": V}'

    def check(value) -> None:
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in SOURCES:
            raise Problem(f"expected one of {forms}, got {_show(value)}")
        kind, arg = next(iter(value.items()))
        if kind == "column":
            _at(kind, _name, arg, "a column name")
        elif kind == "pattern":
            _expect_at(kind, arg, (str,), "a regular expression on the file's path, e.g. \"^(\\\\w+?)_\"")
            try:
                rx = re.compile(arg)
            except re.error as e:
                raise Problem(f"not a regular expression ({e})", ("pattern",)) from None
        elif kind == "folder":
            _expect_at(kind, arg, (int,), "a whole number >= 1 (1: the folder holding the file)")
            if arg < 1:
                raise Problem(f"expected a whole number >= 1 (1: the folder holding the file), "
                              f"got {arg}", ("folder",))
        else:
            _expect_at(kind, arg, (str, int), f"the {key} as a string, e.g. \"3\"")
            if isinstance(arg, str) and (not arg.strip() or len(arg) > MAX_NAME):
                raise Problem(f"expected a non-empty name of at most {MAX_NAME} characters", ("value",))
    return check


def _label_map(value) -> None:
    _expect(value, (dict,), 'an object from your class names to the vocabulary\'s, e.g. '
                            '{"walk": "walking"}')
    for k, v in value.items():
        _at(k, _name, v, "a vocabulary class name")


def _text(value) -> None:
    _expect(value, (str,), "a string")
    if len(value) > 1000:
        raise Problem(f"a string of {len(value)} characters (at most 1000)")


def _delimiter(value) -> None:
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n\"'0123456789.-+eE":
        raise Problem(f"expected one character that separates cells, e.g. \",\", \";\" or "
                      f"\"\\t\", got {_show(value)}")


def _bool(value) -> None:
    _expect(value, (bool,), "true or false")


def _count(value) -> None:
    _expect(value, (int,), "a whole number")
    if value < 0:
        raise Problem(f"expected a whole number >= 0, got {value}")


def _anything_json(value) -> None:
    """Informational keys (what `edgehar record` notes): any JSON value, never read."""


# Keys a `files` entry may override (read per file) ...
PER_FILE: dict[str, Callable] = {
    "rate": _rate, "time": _time, "header": _bool,
    "columns": lambda v: _names(v, "column names", '["t", "ax", "ay", "az", "act"]'),
    "channels": _channels,
    "units": _units, "subject": _source("subject"), "label": _source("label"),
    "placement": _text, "device": _text, "delimiter": _delimiter,
    # what `edgehar record` notes about a take
    "samples": _count, "ended_by": _text, "counters": _anything_json, "partial": _bool,
    "check": _anything_json,  # the take's stream checks (`edgehar.data.plausibility`)
}
# ... and the folder-wide ones.
TOP: dict[str, Callable] = {
    **{k: v for k, v in PER_FILE.items() if k not in ("samples", "ended_by", "partial", "check")},
    "classes": lambda v: _names(v, "class names", '["walk", "sit"]'),
    "label_map": _label_map, "format": _text, "files": None,  # files: checked below
}


def _at(key, check: Callable, value, *args) -> None:
    try:
        check(value, *args)
    except Problem as e:
        raise Problem(e.what, (key, *e.path)) from None


def _expect_at(key: str, value, kinds: tuple, what: str) -> None:
    _at(key, _expect, value, kinds, what)


def _keys(obj: dict, known, example: str | None = None) -> None:
    unknown = sorted(set(obj) - set(known))
    if unknown:
        hint = f"write {example}" if example else f"known: {', '.join(sorted(known))}"
        raise Problem(f"unknown key {unknown[0]!r} ({hint})")


def _entry(spec: dict, table: dict) -> None:
    for key, value in spec.items():
        if key not in table:
            where = ("is folder-wide: move it to the top level" if key in TOP else
                     f"known: {', '.join(sorted(table))}")
            raise Problem(f"unknown key {key!r} ({where})")
        if table[key] is not None:
            _at(key, table[key], value)


def _rate_source(spec: dict) -> None:
    if spec.get("header") is False and "columns" not in spec:
        raise Problem("\"header\": false needs \"columns\" naming every column of the files")
    if "rate" not in spec and "time" not in spec:
        raise Problem("no \"rate\" and no \"time\" column, so the sampling rate is unknown: write "
                      "\"rate\": HZ or \"time\": {\"column\": NAME}")


def _no_duplicate_keys(pairs: list) -> dict:
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise Problem(f"key {k!r} given twice in one object (JSON keeps only the last)")
        seen[k] = v
    return seen


def _file_entry(entry) -> None:
    _expect(entry, (dict,), 'an object of overrides, e.g. {"label": {"value": "sit"}}')
    _entry(entry, PER_FILE)


def parse(path: Path, text: str) -> dict:
    """The manifest's JSON object; a `UserError` naming the manifest when it is not one."""
    try:
        spec = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise UserError(path, f"line {e.lineno}: not valid JSON ({e.msg})") from None
    except Problem as e:
        raise UserError(path, str(e)) from None
    except RecursionError:
        raise UserError(path, "JSON nested too deeply") from None
    if not isinstance(spec, dict):
        raise UserError(path, f"expected a JSON object {{\"rate\": 50, ...}}, got {_type_name(spec)}")
    return spec


def validate(path: Path, spec: dict, csv_names: list[str] | None = None) -> None:
    """Check every key of a parsed manifest (types, ranges, unknown keys, `files` entries);
    `csv_names` (paths inside the folder) lets a `files` entry naming no file be caught."""
    try:
        _entry(spec, TOP)
        files = spec.get("files", {})
        _expect_at("files", files, (dict,), 'an object from a file\'s path in the folder to its '
                   'overrides, e.g. {"take_3.csv": {"label": {"value": "sit"}}}')
        for name, entry in files.items():
            _at("files", _at, name, _file_entry, entry)
            if csv_names is not None and name not in csv_names:
                raise Problem("no such .csv file in the folder (a path inside it, with /): fix the "
                              "name or remove the entry", ("files", name))
        if csv_names is None or any(n not in files for n in csv_names):
            _rate_source(spec)
        for name, entry in files.items():
            _at("files", _at, name, _rate_source, {**spec, **entry})
    except Problem as e:
        raise UserError(path, str(e)) from None
