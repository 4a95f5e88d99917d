"""Zero-shot labels: score any label set by cosine between the model's embedding and the
labels' text, with no retraining.

A distilled student's embedding head lives in a reduction of its teacher's text-aligned space
(`edgehar.train.distill.reduction_basis`): embedding ~ text embedding @ basis. So a new label's
prototype is its prompt's all-MiniLM embedding (`edgehar.text`) times the basis, unit-normed;
a window's score for it is the cosine of its embedding to that prototype. The basis (text dim x
embedding dim) travels in the student checkpoint (buffer `text_basis`) and, exported, as
`text_basis.npy` beside the model files (its digest in the card: `arch.config.text_basis_sha256`);
the card carries the training labels' prototypes in float and int8, the C header the int8 ones.

`ZeroShotPredictor` wraps a `runtime.Predictor` with the same interface (card, predict_proba,
predict, describe), so `edgehar eval` and `edgehar live` take it in place of the model's own head.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgehar.checkpoint import load_checkpoint
from edgehar.data.vocabulary import activity_prompt
from edgehar.errors import UserError
from edgehar.metrics import softmax
from edgehar.text import embed_texts

BASIS_FILE = "text_basis.npy"
# softmax(cosine / temperature): the probabilities live smoothing and the panel show
TEMPERATURE = 0.05


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return (a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def label_text_embeddings(labels: list[str], prompt: str = "activity") -> np.ndarray:
    """(K, 384) unit text embeddings of `labels`: HAR-FM's activity prompt, or (`prompt` =
    "descriptions", the language teacher's) the mean of each label's descriptions."""
    if prompt == "descriptions":
        from edgehar.models.language import text_prototypes
        return unit(np.asarray(text_prototypes(labels), np.float32))
    return unit(embed_texts([activity_prompt(n) for n in labels]))


def prototypes(labels: list[str], basis: np.ndarray, prompt: str = "activity") -> np.ndarray:
    """(K, E) unit prototypes of `labels` in the student's embedding space."""
    return unit(label_text_embeddings(labels, prompt) @ np.asarray(basis, np.float32))


def quantize_prototypes(protos: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric int8 prototypes and their scale (prototype ~ q * scale); cosine is
    scale-free, so firmware can score with integer dot products."""
    protos = np.asarray(protos, np.float32)
    scale = float(max(np.abs(protos).max(), 1e-12) / 127.0)
    return np.clip(np.round(protos / scale), -127, 127).astype(np.int8), scale


def basis_digest(basis: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(basis, np.float32).tobytes()).hexdigest()


def text_space(card) -> dict:
    """The card's zero-shot settings ({} when the model has no text-aligned embedding)."""
    cfg = (card.arch or {}).get("config") or {}
    if not cfg.get("text_dim"):
        return {}
    return {"text_dim": int(cfg["text_dim"]), "embed_dim": int(cfg.get("embed_dim", 0)),
            "prompt": cfg.get("text_prompt", "activity"), "sha256": cfg.get("text_basis_sha256")}


def load_basis(path, card) -> np.ndarray:
    """The text basis of a model: the checkpoint's buffer, or `text_basis.npy` beside an
    exported model file (checked against the card's digest)."""
    space = text_space(card)
    if not space:
        raise UserError(path, "the model has no text-aligned embedding (distil it from a text-aligned "
                              "teacher: HAR-FM or the language teacher) so it cannot score --labels")
    p = Path(path)
    if p.suffix in (".pt", ".pth"):
        state = load_checkpoint(p)["state_dict"]
        if "text_basis" not in state:
            raise UserError(p, "checkpoint holds no text basis (state `text_basis`)")
        basis = state["text_basis"].numpy().astype(np.float32)
    else:
        folder = p if p.is_dir() else p.parent
        f = folder / BASIS_FILE
        try:
            basis = np.load(f, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as e:
            raise UserError(f, f"cannot read the text basis that --labels needs ({type(e).__name__}); "
                               "it is written by `edgehar export` beside the model") from None
        if space["sha256"] and basis_digest(basis) != space["sha256"]:
            raise UserError(f, "text basis does not match the model card's digest (another export's file?)")
    if basis.shape != (space["text_dim"], space["embed_dim"]):
        raise UserError(path, f"text basis is {basis.shape}, the card says "
                              f"({space['text_dim']}, {space['embed_dim']})")
    return basis


class ZeroShotPredictor:
    """A `Predictor` whose classes are `labels`, scored by cosine of the model's embedding
    output to the labels' text prototypes."""

    def __init__(self, predictor, labels: list[str]):
        self.predictor = predictor
        self.labels = list(labels)
        space = text_space(predictor.card)
        self.prototypes = prototypes(self.labels, load_basis(predictor.path, predictor.card),
                                     space.get("prompt", "activity"))
        self.card = replace(predictor.card, labels=list(self.labels), tasks={"zero_shot": list(self.labels)},
                            text_prototypes=self.prototypes.tolist())
        self.backend = predictor.backend
        self.n_classes = len(self.labels)

    def predict_scores(self, windows_raw: np.ndarray) -> np.ndarray:
        """Cosine of each window's embedding to each label's prototype (N, K)."""
        return unit(self.predictor.predict_embedding(windows_raw)) @ self.prototypes.T

    def predict_proba(self, windows_raw: np.ndarray) -> np.ndarray:
        return softmax(self.predict_scores(windows_raw) / TEMPERATURE)

    def predict(self, windows_raw: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_scores(windows_raw), axis=-1)

    def describe(self) -> dict:
        return {**self.predictor.describe(), "zero_shot_labels": self.labels}
