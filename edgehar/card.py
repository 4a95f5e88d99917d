"""The model card: everything a later step needs to feed a model and read its output.

Created with the first windows and carried inside every artifact (checkpoint dict key
`"card"`, TFLite metadata buffer `edgehar.card`, ONNX `metadata_props["edgehar.card"]`,
`modelcard.json`), so no step re-derives preprocessing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from edgehar import __version__
from edgehar.errors import UserError

CARD_KEY = "edgehar.card"  # name of the card in TFLite / ONNX metadata


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
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "model card") -> "ModelCard":
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(where, f"model card is not valid JSON ({e})") from None
        return cls.from_dict(d, where)


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
