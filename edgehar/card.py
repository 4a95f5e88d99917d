"""The model card: everything a later step needs to feed a model and read its output.

Created with the first windows and carried inside every artifact (checkpoint dict key
`"card"`, TFLite metadata buffer `edgehar.card`, ONNX `metadata_props["edgehar.card"]`,
`modelcard.json`), so no step re-derives preprocessing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from edgehar import __version__
from edgehar.data.channel_names import SENSOR_AXES
from edgehar.data.recording import MAX_RATE_HZ
from edgehar.errors import UserError

CARD_KEY = "edgehar.card"  # name of the card in TFLite / ONNX metadata
# Channel names a card may use: sensor stream + axis ("acc_x"); the stream prefix groups them.
KNOWN_CHANNELS = SENSOR_AXES


@dataclass
class ModelCard:
    """Labels, input format, normalisation, tasks, prompts, quantisation and provenance."""

    labels: list[str]  # class names of the main task, index = class id
    rate: float  # Hz of the model input
    window: int  # samples per window
    hop: int  # samples between window starts (live inference stride)
    channels: list[str]  # input channel order
    units: list[str]  # unit per channel ("g", "m/s^2", "rad/s")
    norm_mean: list[float] = field(default_factory=list)  # per channel, subtracted first
    norm_std: list[float] = field(default_factory=list)  # per channel, divided after
    streams: dict[str, list[int]] = field(default_factory=dict)  # stream -> channel indices
    tasks: dict[str, list[str]] = field(default_factory=dict)  # task -> class names
    prompts: dict[str, str] = field(default_factory=dict)  # class -> text prompt
    text_prototypes: list[list[float]] | None = None  # class-text embeddings (zero-shot)
    quantization: dict = field(default_factory=dict)  # input/output scale and zero point
    kind: str = "model"  # "teacher", "student", "baseline"
    arch: dict = field(default_factory=dict)  # architecture name + config to rebuild it
    provenance: dict = field(default_factory=dict)  # teacher, data, split, metrics, created
    content_sha256: dict[str, str] = field(default_factory=dict)  # model file -> content hash
    version: str = __version__

    def __post_init__(self):
        if not self.streams:
            self.streams = default_streams(self.channels)

    # -- preprocessing, the single place it is defined --------------------------------------
    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Apply the card's per-channel normalisation to raw windows (..., T, C)."""
        x = np.asarray(x, dtype=np.float32)
        if not self.norm_mean:
            return x
        return (x - np.asarray(self.norm_mean, np.float32)) / np.asarray(self.norm_std, np.float32)

    def check_input(self, rate: float, channels, where: str = "input") -> None:
        """Raise a `UserError` naming both sides when data does not match this card."""
        if abs(float(rate) - float(self.rate)) > 1e-6:
            raise UserError(where, f"rate {rate:g} Hz does not match the model's {self.rate:g} Hz")
        if len(channels) != len(self.channels):
            raise UserError(where, f"{len(channels)} channels ({', '.join(map(str, channels))}) do not "
                                   f"match the model's {len(self.channels)} ({', '.join(self.channels)})")

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict, where: str = "model card") -> "ModelCard":
        if not isinstance(d, dict):
            raise UserError(where, "model card is not a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("labels", "rate", "window", "hop", "channels", "units") if k not in d]
        if missing:
            raise UserError(where, f"model card lacks {', '.join(missing)}")
        return cls(**validated_fields({k: v for k, v in d.items() if k in known}, where))

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "model card") -> "ModelCard":
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(where, f"model card is not valid JSON ({e})") from None
        return cls.from_dict(d, where)


def _bad(where, key: str, what: str, value) -> UserError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return UserError(where, f"model card {key} {what}, got {shown}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    """A finite JSON number (an int too large for a float counts as not finite)."""
    try:
        return _is_number(v) and math.isfinite(v)
    except OverflowError:
        return False


def _whole(d: dict, key: str, where, low: int = 1, high: int = 10_000_000) -> int:
    v = d[key]
    if not _finite(v) or v != int(v) or not low <= v <= high:
        raise _bad(where, key, f"must be a whole number in [{low}, {high:,}]", v)
    return int(v)


def _texts(d: dict, key: str, where, non_empty: bool = True) -> list[str]:
    v = d[key]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v) or (non_empty and not v):
        raise _bad(where, key, f"must be a{' non-empty' if non_empty else ''} list of names", v)
    return v


def _numbers(v, key: str, where, n: int | None = None) -> list:
    if not isinstance(v, list) or not all(_finite(x) for x in v):
        raise _bad(where, key, "must be a list of finite numbers", v)
    if n is not None and len(v) != n:
        raise _bad(where, key, f"must hold {n} values (one per channel)", v)
    return v


def validated_fields(d: dict, where) -> dict:
    """The card fields `d` (a loaded card's dict), checked for types and ranges; any field a
    later step would choke on (rate 0, "fast" or NaN, a channel edgehar does not know, a
    normalisation of the wrong length) is a one-line `UserError` naming the field."""
    d = dict(d)
    rate = d["rate"]
    if not _finite(rate) or not 0 < rate <= MAX_RATE_HZ:
        raise _bad(where, "rate", f"must be a number of Hz in (0, {MAX_RATE_HZ:g}]", rate)
    d["rate"] = float(rate)
    d["window"] = _whole(d, "window", where)
    d["hop"] = _whole(d, "hop", where)
    _texts(d, "labels", where)
    channels = _texts(d, "channels", where)
    unknown = [c for c in channels if c not in KNOWN_CHANNELS]
    if unknown:
        raise _bad(where, "channels", f"must be names among {', '.join(KNOWN_CHANNELS)}", unknown)
    if len(set(channels)) != len(channels):
        raise _bad(where, "channels", "must not repeat a name", channels)
    if len(_texts(d, "units", where)) != len(channels):
        raise _bad(where, "units", f"must hold {len(channels)} units (one per channel)", d["units"])
    n = len(channels)
    mean, std = d.get("norm_mean", []), d.get("norm_std", [])
    if mean or std:
        _numbers(mean, "norm_mean", where, n)
        if not all(s > 0 for s in _numbers(std, "norm_std", where, n)):
            raise _bad(where, "norm_std", "must be > 0 for every channel", std)
    streams = d.get("streams") or {}
    if not isinstance(streams, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v
            and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in v)
            for k, v in streams.items()):
        raise _bad(where, "streams", f"must map stream names to channel indices in [0, {n})", streams)
    for key, value_type in (("tasks", list), ("prompts", str)):
        v = d.get(key) or {}
        if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, value_type)
                                              for k, x in v.items()):
            raise _bad(where, key, f"must map names to {'class lists' if value_type is list else 'text'}", v)
    protos = d.get("text_prototypes")
    if protos is not None:
        if not isinstance(protos, list) or len(protos) != len(d["labels"]):
            raise _bad(where, "text_prototypes", f"must hold one embedding per class ({len(d['labels'])})", protos)
        width = len(_numbers(protos[0], "text_prototypes", where)) if protos else 0
        for row in protos:
            _numbers(row, "text_prototypes", where, width)
    for key in ("quantization", "arch", "provenance", "content_sha256"):
        if not isinstance(d.get(key, {}), dict):
            raise _bad(where, key, "must be a JSON object", d[key])
    for key in ("kind", "version"):
        if key in d and not isinstance(d[key], str):
            raise _bad(where, key, "must be text", d[key])
    return d


def default_streams(channels) -> dict[str, list[int]]:
    """Group channels into sensor streams by name prefix ("acc_x" -> "acc")."""
    streams: dict[str, list[int]] = {}
    for i, name in enumerate(channels):
        streams.setdefault(str(name).split("_")[0], []).append(i)
    return streams


def provenance(**items) -> dict:
    """A provenance dict stamped with the time and edgehar version."""
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "edgehar": __version__, **items}
