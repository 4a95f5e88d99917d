"""LIMU-BERT (Xu et al., SenSys 2021) rebuilt to load its published weights unchanged.

Encoder (`LimuBertEncoder`, the 29 tensors of `saved/pretrain_base_<set>_20_120/<set>.pt`):
a linear embedding of each 6-channel sample into `hidden` dims, LayerNorm, a learned position
embedding, LayerNorm again (the same one), then ONE transformer block (self-attention ->
output projection -> add & LayerNorm -> GELU feed-forward -> add & LayerNorm) applied
`n_layers` times with the same weights (cross-layer sharing). LayerNorms are TF style (eps
1e-12 inside the root). `fc`, `linear`, `norm` and `decoder` form the masked-reconstruction
head of pre-training; they are loaded (strict) but unused for classification.

Head (`GruHead`, the 14 tensors of `saved/classifier_base_gru_<set>_20_120/<set>.pt`): LIMU-GRU
`gru_v1` reads 20-token (1 s) chunks of the encoder's 120 x 72 output: GRU 72->20 (2 layers),
GRU 20->10, last step, linear 10->classes, no activation, no dropout.

Input: LIMU-BERT's `Preprocess4Normalization` divides acc (m/s^2) by 9.8 and leaves gyro
(rad/s) alone. That scaling lives in the model card (`norm_std` 9.8 / 1), so `forward` takes
card-normalised windows like every edgehar model. A 120-sample window's logits are the mean of
its six 1-second chunk logits (the head was trained on chunks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgehar.card import ModelCard, provenance
from edgehar.checkpoint import load_weights, read_torch_file
from edgehar.errors import UserError, require_dir, require_file

SPEC_PREFIX = "limu-bert:"
PAPER = ("Huatao Xu, Pengfei Zhou, Rui Tan, Mo Li, Guobin Shen. LIMU-BERT: Unleashing the "
         "Potential of Unlabeled Data for IMU Sensing Applications. ACM SenSys 2021. "
         "doi:10.1145/3485730.3485937")
CODE = "https://github.com/dapowan/LIMU-BERT-Public"
ACC_SCALE = 9.8  # LIMU-BERT's Preprocess4Normalization acc_norm (not 9.80665)
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("m/s^2", "m/s^2", "m/s^2", "rad/s", "rad/s", "rad/s")

# the published sets' class names on the kit's activity vocabulary (edgehar.data.vocabulary);
# a name not here is canonical already ("walking", "sitting", "lying", ...)
CANONICAL = {"upstairs": "stairs up", "downstairs": "stairs down", "walk": "walking", "sit": "sitting",
             "stand": "standing", "bike": "cycling", "jogging": "running"}

# config/limu_bert.json "base_v1" and config/classifier.json "gru_v1", the published set-up
BASE_V1 = {"feature_num": 6, "hidden": 72, "hidden_ff": 144, "n_layers": 4, "n_heads": 4, "seq_len": 120}
GRU_V1 = {"seq_len": 20, "num_layers": [2, 1], "rnn_io": [[72, 20], [20, 10]], "n_classes": 6}


class TFLayerNorm(nn.Module):
    """LayerNorm with `gamma`/`beta` names (the checkpoint's) and eps 1e-12."""

    def __init__(self, dim: int, eps: float = 1e-12):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, self.eps)


class Embeddings(nn.Module):
    def __init__(self, feature_num: int, hidden: int, seq_len: int):
        super().__init__()
        self.lin = nn.Linear(feature_num, hidden)
        self.pos_embed = nn.Embedding(seq_len, hidden)
        self.norm = TFLayerNorm(hidden)

    def forward(self, x):
        e = self.norm(self.lin(x))  # the original normalises before *and* after adding positions
        return self.norm(e + self.pos_embed.weight[: x.shape[1]])


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, n_heads: int):
        super().__init__()
        self.proj_q = nn.Linear(hidden, hidden)
        self.proj_k = nn.Linear(hidden, hidden)
        self.proj_v = nn.Linear(hidden, hidden)
        self.n_heads = n_heads

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (p(x).reshape(n, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for p in (self.proj_q, self.proj_k, self.proj_v))
        scores = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.n_heads), dim=-1)
        return (scores @ v).transpose(1, 2).reshape(n, t, d)


class FeedForward(nn.Module):
    def __init__(self, hidden: int, hidden_ff: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden_ff)
        self.fc2 = nn.Linear(hidden_ff, hidden)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as the original


class Transformer(nn.Module):
    """Embedding + one block whose weights serve all `n_layers` passes."""

    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden"]
        self.embed = Embeddings(cfg["feature_num"], h, cfg["seq_len"])
        self.n_layers = cfg["n_layers"]
        self.attn = SelfAttention(h, cfg["n_heads"])
        self.proj = nn.Linear(h, h)
        self.norm1 = TFLayerNorm(h)
        self.pwff = FeedForward(h, cfg["hidden_ff"])
        self.norm2 = TFLayerNorm(h)

    def forward(self, x):
        h = self.embed(x)
        for _ in range(self.n_layers):
            # as published: the residual adds the attention output, not the block input
            h = self.attn(h)
            h = self.norm1(h + self.proj(h))
            h = self.norm2(h + self.pwff(h))
        return h


class LimuBertEncoder(nn.Module):
    """LIMU-BERT pre-training model: transformer + masked-reconstruction head."""

    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden"]
        self.cfg = dict(cfg)
        self.transformer = Transformer(cfg)
        self.fc = nn.Linear(h, h)  # present in the published weights, unused by its forward
        self.linear = nn.Linear(h, h)
        self.norm = TFLayerNorm(h)
        self.decoder = nn.Linear(h, cfg["feature_num"])

    def forward(self, x):
        """Token embeddings (N, T, hidden)."""
        return self.transformer(x)

    def reconstruct(self, x):
        """The pre-training output: every input sample reconstructed (N, T, feature_num)."""
        return self.decoder(self.norm(F.gelu(self.linear(self.transformer(x)))))


class GruHead(nn.Module):
    """LIMU-GRU: stacked GRUs over a chunk of tokens, last step, linear."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.seq_len = cfg["seq_len"]
        self.n_rnn = len(cfg["rnn_io"])
        for i, ((n_in, n_out), layers) in enumerate(zip(cfg["rnn_io"], cfg["num_layers"])):
            setattr(self, f"gru{i}", nn.GRU(n_in, n_out, num_layers=layers, batch_first=True))
        self.lin0 = nn.Linear(cfg["rnn_io"][-1][1], cfg["n_classes"])

    def forward(self, tokens):
        h = tokens
        for i in range(self.n_rnn):
            h, _ = getattr(self, f"gru{i}")(h)
        return self.lin0(h[:, -1])


class LimuBertClassifier(nn.Module):
    """LIMU-BERT encoder + LIMU-GRU head over card-normalised (N, 120, 6) windows."""

    def __init__(self, encoder_cfg: dict = BASE_V1, head_cfg: dict = GRU_V1):
        super().__init__()
        self.encoder = LimuBertEncoder(encoder_cfg)
        self.head = GruHead(head_cfg)
        self.window = encoder_cfg["seq_len"]
        self.chunk = head_cfg["seq_len"]
        if self.window % self.chunk:
            raise ValueError(f"window {self.window} is not a multiple of the head's {self.chunk}")

    def tokens(self, x):
        """Encoder output (N, T, hidden)."""
        return self.encoder(x)

    def features(self, x):
        """Pooled embedding (N, hidden): the mean over tokens."""
        return self.tokens(x).mean(1)

    def chunk_logits(self, x):
        """Logits of every 1-second chunk, (N, window // chunk, classes): the head's own task."""
        if x.shape[1] != self.window:
            raise ValueError(f"LIMU-BERT takes {self.window}-sample windows, got {x.shape[1]}")
        tok = self.tokens(x)
        n, t, d = tok.shape
        return self.head(tok.reshape(n * t // self.chunk, self.chunk, d)).reshape(n, t // self.chunk, -1)

    def forward(self, x):
        """Window logits (N, classes): mean of the chunk logits."""
        return self.chunk_logits(x).mean(1)


# -- building and loading ----------------------------------------------------------------

def build(arch: dict) -> LimuBertClassifier:
    """Registry entry: `arch = {"name": "limubert", "config": {"encoder": {...}, "head": {...}}}`."""
    cfg = arch.get("config", {})
    return LimuBertClassifier(cfg.get("encoder", BASE_V1), cfg.get("head", GRU_V1))


def _json(path: Path, key: str) -> dict:
    path = Path(require_file(path, "LIMU-BERT config"))
    try:
        table = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(path, f"not valid JSON ({e})") from None
    if key not in table:
        raise UserError(path, f"has no {key!r} entry")
    return table[key]


def _state_dict(path: Path) -> dict:
    sd = read_torch_file(path, "LIMU-BERT weights file")
    if not isinstance(sd, dict):
        raise UserError(path, "not a torch state_dict")
    return sd


def _load_strict(module: nn.Module, sd: dict, path: Path) -> None:
    load_weights(module, sd, path, "LIMU-BERT", strict=True)


def configs(limu_dir: str | Path, dataset: str = "uci") -> tuple[dict, dict, dict]:
    """(encoder config, head config, data config) of a LIMU-BERT folder for `dataset`."""
    root = Path(limu_dir)
    data = _json(root / "data_config.json", f"{dataset}_20_120")
    if data.get("dimension") != 6:
        raise UserError(root / "data_config.json",
                        f"{dataset} has {data.get('dimension')} channels; only 6-channel (acc + gyro) sets are supported")
    enc = _json(root / "config" / "limu_bert.json", "base_v1")
    gru = _json(root / "config" / "classifier.json", "gru_v1")
    # the head reads the encoder's tokens, so its first GRU takes `hidden` inputs (the
    # original passes input=72 at construction); its output size is the set's class count
    rnn_io = [list(io) for io in gru["rnn_io"]]
    rnn_io[0][0] = enc["hidden"]
    head = {"seq_len": gru["seq_len"], "num_layers": list(gru["num_layers"]), "rnn_io": rnn_io,
            "n_classes": data["activity_label_size"]}
    if gru.get("activ") or gru.get("dropout"):
        raise UserError(root / "config" / "classifier.json", "gru_v1 with activation/dropout is not the published head")
    return dict(enc), head, data


def load_limubert(limu_dir: str | Path, dataset: str = "uci") -> LimuBertClassifier:
    """The published LIMU-BERT encoder + GRU classifier for `dataset`, loaded strictly."""
    root = Path(require_dir(limu_dir, "LIMU-BERT folder"))
    enc_cfg, head_cfg, _ = configs(root, dataset)
    model = LimuBertClassifier(enc_cfg, head_cfg)
    enc_path = root / "saved" / f"pretrain_base_{dataset}_20_120" / f"{dataset}.pt"
    head_path = root / "saved" / f"classifier_base_gru_{dataset}_20_120" / f"{dataset}.pt"
    _load_strict(model.encoder, _state_dict(enc_path), enc_path)
    _load_strict(model.head, _state_dict(head_path), head_path)
    return model.eval()


def limubert_card(limu_dir: str | Path, dataset: str = "uci") -> ModelCard:
    """The model card of the published LIMU-BERT classifier for `dataset`."""
    root = Path(limu_dir)
    enc_cfg, head_cfg, data = configs(root, dataset)
    window = enc_cfg["seq_len"]
    return ModelCard(
        labels=list(data["activity_label"]), rate=float(data["sr"]), window=window,
        hop=window,  # the published windows do not overlap
        channels=list(CHANNELS), units=list(UNITS),
        norm_mean=[0.0] * 6, norm_std=[ACC_SCALE] * 3 + [1.0] * 3,
        kind="teacher",
        arch={"name": "limubert", "config": {"encoder": enc_cfg, "head": head_cfg}},
        provenance=provenance(
            teacher="LIMU-BERT (published weights)", paper=PAPER, code=CODE,
            weights=[f"saved/pretrain_base_{dataset}_20_120/{dataset}.pt",
                     f"saved/classifier_base_gru_{dataset}_20_120/{dataset}.pt"],
            weights_dir=str(root.resolve()), dataset=f"{dataset}_20_120",
            preprocessing="50 Hz -> 20 Hz by averaging 2/3-sample blocks, acc x 9.80665 (m/s^2) "
                          "then / 9.8 inside the card, gyro rad/s; see edgehar.data.limu",
            head="LIMU-GRU gru_v1 on 20-token chunks; window logits = mean of 6 chunk logits",
            licence="MIT"),
    )


def canonical_labels(card: ModelCard) -> list[str]:
    """The card's class names on the activity vocabulary (LIMU-BERT's "upstairs" -> "stairs up")."""
    return [CANONICAL.get(n, n) for n in card.labels]


def is_limubert(card: ModelCard) -> bool:
    return (card.arch or {}).get("name") == "limubert"


def teacher_from_spec(spec: str, dataset: str = "uci") -> tuple[LimuBertClassifier, ModelCard]:
    """(model, card) from a teacher spec `limu-bert:DIR` (DIR holds config/ and saved/)."""
    if not spec.startswith(SPEC_PREFIX) or not spec[len(SPEC_PREFIX):]:
        raise UserError(spec, f"expected a teacher spec {SPEC_PREFIX}DIR")
    root = Path(spec[len(SPEC_PREFIX):]).expanduser()
    model = load_limubert(root, dataset)
    return model, limubert_card(root, dataset)
