"""Checkpoints: a torch file holding the weights *and* the model card that rebuilds them.

`{"format": FORMAT, "card": card.to_dict(), "state_dict": ..., "extra": {...}}`, loaded with
`weights_only=True` (no pickled code runs on load).

`read_torch_file` is the one place edgehar calls `torch.load`: whatever a damaged, truncated,
empty or foreign file makes torch raise becomes one `UserError` line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgehar.atomic import check_writable, staged_file
from edgehar.card import ModelCard
from edgehar.errors import UserError, first_line, require_file

FORMAT = "edgehar-checkpoint/1"
_FORMAT_RE = re.compile(r"edgehar-checkpoint/(\S+)")


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint"):
    """`torch.load(path, weights_only=True)` on the CPU, any failure a one-line `UserError`."""
    import torch

    path = require_file(path, what)
    if os.path.getsize(path) == 0:
        raise UserError(path, f"empty file, not a torch {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise UserError(path, f"not a torch {what} (it asks for more memory than there is)") from None
    except Exception as e:  # noqa: BLE001 - torch raises anything on a damaged file
        kind = "truncated or damaged" if isinstance(e, (OSError, EOFError)) else "not a torch"
        raise UserError(path, f"{kind} {what} ({first_line(e, 120)})") from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, with its card (validated) as a `ModelCard` under "card"."""
    ckpt = read_torch_file(path)
    path = os.fspath(path)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != FORMAT:
        if isinstance(fmt, str) and _FORMAT_RE.fullmatch(fmt):
            raise UserError(path, f"checkpoint format {fmt} is not supported by this edgehar "
                                  f"(it reads {FORMAT}; upgrade edgehar or re-create the checkpoint)")
        raise UserError(path, "not an edgehar checkpoint (no card; make it with pretrain, "
                              "finetune or distill)")
    if not isinstance(ckpt.get("card"), dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(path, "damaged edgehar checkpoint (card or weights missing)")
    ckpt["card"] = ModelCard.from_dict(ckpt["card"], where=path)
    bad = non_finite(ckpt["state_dict"])
    if bad:
        raise UserError(path, f"weights hold NaN or infinite values ({', '.join(bad[:3])}): the run "
                              "that wrote it diverged; retrain it")
    return ckpt


def non_finite(state: dict) -> list[str]:
    """Names of the floating-point tensors in `state` holding NaN or infinity."""
    import torch

    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def load_weights(model, state_dict: dict, path, name: str | None = None, strict: bool = False) -> None:
    """`model.load_state_dict(state_dict)`; weights that do not fit (missing, unexpected, or of
    another shape) are a one-line `UserError`."""
    name = name or type(model).__name__
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=strict)
    except Exception as e:  # noqa: BLE001 - size mismatch (RuntimeError), a non-tensor value...
        text = str(e)
        shapes = re.search(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) "
                           r"from checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)", text)
        if shapes:
            p, have, want = shapes.groups()
            raise UserError(path, f"weights do not fit {name}: {p} has shape ({have}) in the file, "
                                  f"the model needs ({want})") from None
        raise UserError(path, f"weights do not fit {name} ({first_line(text.replace(chr(9), ' '), 160)})") from None
    if missing or unexpected:
        raise UserError(path, f"weights do not fit {name}: missing {list(missing)[:3]}, "
                              f"unexpected {list(unexpected)[:3]}")


def check_checkpoint_out(path: str | os.PathLike) -> None:
    """Fail before training, not after, when the checkpoint cannot be written to `path`: a
    folder or a file in the way, an unwritable folder, or an existing file that is not an
    edgehar checkpoint (never overwritten)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(path, "is a folder, expected a checkpoint file path")
    check_writable(path)
    if path.exists():
        if not path.is_file():
            raise UserError(path, "exists and is not a regular file; refusing to replace it")
        try:
            fmt = read_torch_file(path).get("format")
        except (UserError, AttributeError):
            fmt = None
        if not (isinstance(fmt, str) and _FORMAT_RE.fullmatch(fmt)):
            raise UserError(path, "exists and is not an edgehar checkpoint; refusing to overwrite "
                                  "it (choose another --out)")


def save_checkpoint(path: str | os.PathLike, model, card: ModelCard, extra: dict | None = None) -> None:
    """Write model weights + card atomically; weights holding NaN or infinity are refused
    (a diverged run), and nothing is written."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = non_finite(state)
    if bad:
        raise UserError(path, f"not written: the weights hold NaN or infinite values ({', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}); training diverged (lower --lr, "
                              "check --temperature and the loss weights)")
    check_checkpoint_out(path)
    with staged_file(path) as tmp:
        torch.save({"format": FORMAT, "card": card.to_dict(), "state_dict": state,
                    "extra": extra or {}}, tmp)
