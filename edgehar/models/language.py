"""Sensor-language teacher (UniMTS / NLS style): motion windows aligned with text, CLIP-style.

Pretraining is weakly supervised by text: each labelled window is paired with one of several
descriptions of its activity (templates x synonyms + hand-written paraphrases), embedded by the
offline all-MiniLM-L6-v2 (`edgehar.text`, cached); unlabelled windows are skipped. The loss is
the symmetric contrastive (CLIP) loss with a learned temperature, where every window of the same
class counts as a match. Every sensor position is turned by its own uniform random SO(3)
rotation (acc and gyro by the same matrix) so the embedding does not depend on how the device
sits. Zero-shot classification: cosine between the window's projection and class-text
embeddings (`zero_shot_logits`), so classes never seen in training (e.g. "running") can be named.

Encoders (`config["encoder"]`): "cnn" (1-D conv stack, the CPU default) or "stgcn" (UniMTS's
spatio-temporal graph convolution over the 22 SMPL body joints; each sensor position sits at its
nearest joint, joints without a sensor are zeros; one sensor = one populated joint).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgehar.data.normalise import rotation_safe_stats
from edgehar.errors import UserError
from edgehar.models import teacher
from edgehar.models.augment import default_positions, rotate, sensor_positions
from edgehar.models.teacher import Teacher
from edgehar.text import embed_texts

TEXT_DIM = 384

CONFIGS = {
    "tiny": {"encoder": "cnn", "widths": [16, 32], "strides": [2, 2], "kernel": 5,
             "placement": "waist", "placements": {}, "rotate": True, "init_temperature": 0.07},
    "cpu": {"encoder": "cnn", "widths": [32, 64, 96], "strides": [1, 2, 2], "kernel": 5,
            "placement": "waist", "placements": {}, "rotate": True, "init_temperature": 0.07},
    "paper": {"encoder": "stgcn", "widths": [64, 64, 128, 128, 256, 256], "strides": [1, 1, 2, 1, 2, 1],
              "kernel": 9, "placement": "waist", "placements": {}, "rotate": True,
              "init_temperature": 0.07},
}

# -- activity descriptions -----------------------------------------------------------------
SYNONYMS = {
    "walking": ["walking", "walking at a normal pace", "strolling on flat ground"],
    "walking_upstairs": ["walking upstairs", "climbing stairs", "going up a staircase"],
    "walking_downstairs": ["walking downstairs", "descending stairs", "going down a staircase"],
    "sitting": ["sitting", "sitting on a chair", "seated and still"],
    "standing": ["standing", "standing still", "standing upright without moving"],
    "laying": ["lying down", "lying on a bed", "resting while lying flat"],
    "running": ["running", "jogging", "running at a fast pace"],
    "cycling": ["cycling", "riding a bicycle", "pedalling a bike"],
    "jumping": ["jumping", "jumping up and down", "hopping"],
}
SYNONYMS["lying"] = SYNONYMS["laying"]
PARAPHRASES = {
    "walking": ["The person walks with steady, rhythmic steps.",
                "Someone is taking a walk, legs swinging at a regular pace."],
    "walking_upstairs": ["The person climbs a flight of stairs, lifting each leg to the next step.",
                         "Someone walks up the steps, moving upward against gravity."],
    "walking_downstairs": ["The person walks down the stairs, stepping carefully down each step.",
                           "Someone descends a staircase with jolting downward steps."],
    "sitting": ["The person sits quietly with the upper body upright and barely moves.",
                "Someone is seated, resting on a chair with little motion."],
    "standing": ["The person stands still on both feet with almost no movement.",
                 "Someone is standing upright in one place, waiting."],
    "laying": ["The person lies flat on their back, body horizontal and at rest.",
               "Someone is lying in bed, not moving."],
    "running": ["The person runs quickly, with fast strides and strong impacts on every step.",
                "Someone is jogging, the body bouncing rapidly and rhythmically."],
    "cycling": ["The person rides a bicycle, legs pedalling in smooth circles."],
    "jumping": ["The person jumps repeatedly, leaving the ground with both feet."],
}
PARAPHRASES["lying"] = PARAPHRASES["laying"]
TEMPLATES = ["a person is {}.", "the subject is {}.", "someone is {}.", "a recording of a person {}."]


def class_descriptions(label: str) -> list[str]:
    """Several texts describing activity `label` (synonyms in templates, then paraphrases)."""
    key = str(label).lower().strip().replace(" ", "_").replace("-", "_")
    words = SYNONYMS.get(key, [key.replace("_", " ")])
    texts = [t.format(w) for w in words for t in TEMPLATES]
    return texts + PARAPHRASES.get(key, [])


# -- sensors on the body (SMPL's 22 joints) ------------------------------------------------
JOINTS = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
          "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
          "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
          "left_wrist", "right_wrist")
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
# placement words -> the nearest joint (first match wins; "left"/"right" refine below)
PLACEMENT_JOINTS = [("wrist", "wrist"), ("watch", "wrist"), ("hand", "wrist"), ("forearm", "elbow"),
                    ("elbow", "elbow"), ("arm", "shoulder"), ("shoulder", "shoulder"),
                    ("ankle", "ankle"), ("foot", "foot"), ("shin", "knee"), ("knee", "knee"),
                    ("thigh", "hip"), ("pocket", "hip"), ("hip", "pelvis"), ("waist", "pelvis"),
                    ("belt", "pelvis"), ("pelvis", "pelvis"), ("lower back", "spine1"),
                    ("back", "spine2"), ("chest", "spine3"), ("neck", "neck"), ("head", "head")]


def nearest_joint(placement: str) -> int:
    """Index into JOINTS of the body joint nearest to a free-text sensor placement."""
    text = str(placement).lower().replace("_", " ")
    for word, joint in PLACEMENT_JOINTS:
        if word in text:
            if joint in ("pelvis", "spine1", "spine2", "spine3", "neck", "head"):
                return JOINTS.index(joint)
            side = "right" if "right" in text else "left"  # one-sided without a side: left
            return JOINTS.index(f"{side}_{joint}")
    raise ValueError(f"unknown sensor placement {placement!r}")


def skeleton_adjacency() -> torch.Tensor:
    """(J, J) symmetric-normalised adjacency of the SMPL skeleton with self loops."""
    a = torch.eye(len(JOINTS))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            a[j, p] = a[p, j] = 1.0
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


# -- encoders ------------------------------------------------------------------------------
class ConvEncoder(nn.Module):
    """Conv-BN-ReLU stack over time: (B, T, C) -> tokens (B, T', D)."""

    def __init__(self, in_channels: int, widths, strides, kernel: int):
        super().__init__()
        layers, c = [], in_channels
        for w, s in zip(widths, strides):
            layers += [nn.Conv1d(c, w, kernel, s, kernel // 2, bias=False), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.net = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x):
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class GraphBlock(nn.Module):
    """ST-GCN unit: graph conv over joints (learned edge importance), then a temporal conv."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int):
        super().__init__()
        self.spatial = nn.Conv2d(c_in, c_out, 1)
        self.importance = nn.Parameter(torch.ones(len(JOINTS), len(JOINTS)))
        self.temporal = nn.Sequential(
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, (kernel, 1), (stride, 1), (kernel // 2, 0)), nn.BatchNorm2d(c_out))
        self.residual = (nn.Identity() if c_in == c_out and stride == 1 else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)), nn.BatchNorm2d(c_out)))
        self.register_buffer("adjacency", skeleton_adjacency(), persistent=False)

    def forward(self, x):  # (B, C, T, J)
        h = torch.einsum("bctj,jk->bctk", self.spatial(x), self.adjacency * self.importance)
        return F.relu(self.temporal(h) + self.residual(x))


class GraphEncoder(nn.Module):
    """UniMTS-style ST-GCN: channels -> (acc, gyro) per joint -> graph blocks -> tokens (B, T', D)."""

    def __init__(self, positions, joints, widths, strides, kernel: int):
        super().__init__()
        self.positions, self.joints = positions, joints  # per position: its triples and its joint
        self.data_bn = nn.BatchNorm1d(6 * len(JOINTS))
        blocks, c = [], 6
        for w, s in zip(widths, strides):
            blocks.append(GraphBlock(c, w, s, kernel))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c

    def to_joints(self, x):
        """(B, T, C) -> (B, 6, T, J): acc then gyro triple at each populated joint, zeros elsewhere."""
        b, t, _ = x.shape
        out = x.new_zeros(b, 6, t, len(JOINTS))
        for triples, joint in zip(self.positions, self.joints):
            for k, idx in enumerate(triples[:2]):
                out[:, 3 * k:3 * k + 3, :, joint] = x[..., idx].transpose(1, 2)
        return out

    def forward(self, x):
        h = self.to_joints(x)
        b, c, t, j = h.shape
        h = self.data_bn(h.permute(0, 3, 1, 2).reshape(b, j * c, t)).reshape(b, j, c, t).permute(0, 2, 3, 1)
        for block in self.blocks:
            h = block(h)
        return h.mean(3).transpose(1, 2)  # pool the joints: (B, T', D)


class LanguageTeacher(Teacher):
    """Motion encoder + projection into the 384-d sentence space; see the module docstring."""

    family = "language"

    def __init__(self, config: dict):
        super().__init__(full_config(config))
        cfg = self.config
        c = int(cfg["in_channels"])
        channels = cfg.get("channels")
        self.positions = sensor_positions(channels) if channels else default_positions(c)
        if cfg["encoder"] == "cnn":
            self.encoder = ConvEncoder(c, cfg["widths"], cfg["strides"], cfg["kernel"])
        elif cfg["encoder"] == "stgcn":
            names = [self.position_name(triples) for triples in self.positions]
            joints = [nearest_joint(cfg["placements"].get(n, cfg["placement"])) for n in names]
            self.encoder = GraphEncoder(self.positions, joints, cfg["widths"], cfg["strides"], cfg["kernel"])
        else:
            raise ValueError(f"unknown encoder {cfg['encoder']!r} (cnn or stgcn)")
        self.embed_dim = self.encoder.out_channels
        self.text_dim = TEXT_DIM
        self.project = nn.Linear(self.embed_dim, TEXT_DIM)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg["init_temperature"])))
        self._bank = None  # (texts (K, 384), class of each text (K,)), built on first use

    def position_name(self, triples) -> str:
        """Position prefix of a sensor ("" for plain "acc_x" names) for `placements` lookups."""
        channels = self.config.get("channels")
        if not channels:
            return ""
        return str(channels[triples[0][0]]).rpartition("_")[0].rpartition("_")[0]

    # -- representation ----------------------------------------------------------------------
    def tokens(self, x):
        return self.encoder(x)

    def text_projection(self, x):
        return self.project(self.features(x))

    # -- supervised task: classes are text prototypes -----------------------------------------
    def make_head(self, n_classes: int) -> nn.Module:
        return PrototypeHead(n_classes)

    def set_task(self, n_classes: int, labels=None) -> None:
        """Task head whose class weights start at the class descriptions' embeddings, so
        fine-tuning starts from the zero-shot classifier."""
        super().set_task(n_classes, labels)
        if labels is not None:
            protos = self.class_prototypes([class_descriptions(n) for n in labels])
            with torch.no_grad():
                self.head.prototypes.copy_(protos)

    def forward(self, x):
        if self.head is None:
            return super().forward(x)  # raises the "no task head" error
        return self.head(self.text_projection(x), self.logit_scale)

    # -- text --------------------------------------------------------------------------------
    @staticmethod
    def class_prototypes(class_texts) -> torch.Tensor:
        """(K, 384) unit class embeddings; each class is a string or a list of strings (averaged)."""
        groups = [[t] if isinstance(t, str) else list(t) for t in class_texts]
        flat = embed_texts([t for g in groups for t in g])
        out, i = [], 0
        for g in groups:
            out.append(flat[i:i + len(g)].mean(0))
            i += len(g)
        return F.normalize(torch.from_numpy(np.stack(out)), dim=1)

    def zero_shot_logits(self, x, class_texts=None, prototypes=None) -> torch.Tensor:
        """(N, K) scaled cosine similarities to the classes described by `class_texts` (strings
        or lists of strings), or to precomputed `prototypes` (K, 384), e.g. a card's."""
        if prototypes is None:
            prototypes = self.class_prototypes(class_texts)
        prototypes = F.normalize(torch.as_tensor(prototypes, dtype=torch.float32), dim=1)
        z = F.normalize(self.text_projection(x), dim=1)
        return self.logit_scale.exp().clamp(max=100) * z @ prototypes.T

    def text_bank(self):
        if self._bank is None:
            labels = self.config.get("labels")
            if not labels:
                raise UserError("language teacher", "pretrains on text: its config needs 'labels' "
                                                    "(the class names of the windows' y)")
            # `label_texts`: more names per class (a pooled corpus's original labels, e.g.
            # "jogging" or "walking on a treadmill inclined" for its canonical "running" or "walking")
            extra = self.config.get("label_texts") or {}
            texts, cls = [], []
            for k, name in enumerate(labels):
                d = class_descriptions(name) + [t for other in extra.get(name, []) for t in class_descriptions(other)]
                texts += d
                cls += [k] * len(d)
            self._bank = (torch.from_numpy(embed_texts(texts)), torch.tensor(cls))
        return self._bank

    # -- pretraining -------------------------------------------------------------------------
    def normalisation(self, windows):
        """Rotation-safe: no offset, one scale per sensor triple (`rotation_safe_stats`), so the
        SO(3) augmentation of normalised windows stays a physical rotation."""
        return rotation_safe_stats(windows.x, self.positions)

    def pretrain_loss(self, batch: dict):
        x, y, gen = batch["x"], batch["y"], batch.get("generator")
        keep = y >= 0
        if keep.sum() < 2:  # nothing to align: a zero loss that still has a graph
            return self.logit_scale * 0.0, {"clip": 0.0, "labelled": float(keep.sum())}
        x, y = x[keep], y[keep]
        if self.config["rotate"]:  # in card units: a rotation, see `normalisation`
            x = rotate(x, gen, self.positions)
        texts, cls = self.text_bank()
        # one random description of each window's class
        pick = torch.empty(len(y), dtype=torch.long)
        for k in y.unique().tolist():
            options = (cls == k).nonzero()[:, 0]
            rows = (y == k).nonzero()[:, 0]
            pick[rows] = options[torch.randint(len(options), (len(rows),), generator=gen)]
        t = F.normalize(texts[pick], dim=1)
        z = F.normalize(self.text_projection(x), dim=1)
        logits = self.logit_scale.exp().clamp(max=100) * z @ t.T
        match = (y[:, None] == y[None, :]).float()  # same class = a correct pairing
        loss = 0.5 * (clip_side(logits, match) + clip_side(logits.T, match.T))
        acc = (match.gather(1, logits.argmax(1, keepdim=True))).mean()
        return loss, {"clip": loss.item(), "match_acc": acc.item(), "scale": self.logit_scale.exp().item()}


def text_prototypes(labels) -> list[list[float]]:
    """Card-ready class prototypes (`ModelCard.text_prototypes`): each class's mean description
    embedding, the same vectors `zero_shot_logits` and the task head start from."""
    return LanguageTeacher.class_prototypes([class_descriptions(n) for n in labels]).tolist()


class PrototypeHead(nn.Module):
    """Logits = scale x cosine(projected window, class prototype); prototypes are learnable."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.prototypes = nn.Parameter(torch.zeros(n_classes, TEXT_DIM))

    def forward(self, z, logit_scale):
        protos = F.normalize(self.prototypes, dim=1)
        return logit_scale.exp().clamp(max=100) * F.normalize(z, dim=1) @ protos.T


def clip_side(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """-log of the softmax mass on the matching columns, averaged over rows."""
    return -(torch.logsumexp(logits.masked_fill(match == 0, float("-inf")), 1)
             - torch.logsumexp(logits, 1)).mean()


def full_config(config: dict) -> dict:
    """`config` over its named size (`CONFIGS`, default "cpu") and the default HAPT input."""
    return teacher.full_config("language", CONFIGS, config)


def default_config(size: str = "cpu", *, channels, rate: float, window: int, **overrides) -> dict:
    """A full config for windows of `window` samples of `channels` at `rate` Hz."""
    return full_config(teacher.input_config(size, channels, rate, window, **overrides))


def build(arch: dict) -> LanguageTeacher:
    """Language teacher from a card's `arch` (`{"name": "language", "config": {...}}`)."""
    return LanguageTeacher.from_arch(arch)
