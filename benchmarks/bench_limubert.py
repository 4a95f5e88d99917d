"""Benchmark the published LIMU-BERT classifier on its own UCI windows rebuilt from HAPT raw.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_limubert.py [--out benchmarks/results]

Writes `limubert.json` and `limubert.md`: accuracy and macro-F1 on all 2088 windows and on the
HAPT official test subjects, chunk-level (1 s) figures, params and MACs per window.
Note: the published GRU head was trained on a (small, random) part of these 2088 windows, so
"all 2088" is not a held-out figure; the test-subject figure is a subset, not a clean split either.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from edgehar.models.torch_macs import torch_macs

from edgehar.atomic import write_json, write_text
from edgehar.data import hapt
from edgehar.data.limu import limu_uci_windows, reference_labels
from edgehar.metrics import report
from edgehar.models.limubert import teacher_from_spec

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("bench_limubert: set EDGEHAR_DATA or pass --data")
    torch.set_num_threads(1)
    data = Path(args.data)

    t0 = time.perf_counter()
    w = limu_uci_windows(data / "hapt")
    ref_y, ref_user = reference_labels(data / "limu_bert")
    prep_s = time.perf_counter() - t0
    model, card = teacher_from_spec(f"limu-bert:{data / 'limu_bert'}")

    t0 = time.perf_counter()
    with torch.no_grad():
        chunks = torch.cat([model.chunk_logits(torch.from_numpy(card.normalise(w.x[i:i + 256])))
                            for i in range(0, len(w), 256)]).numpy()
    infer_s = time.perf_counter() - t0
    pred = chunks.mean(1).argmax(1)
    n_chunks = chunks.shape[1]

    def scores(mask):
        win = report(w.y[mask], pred[mask], card.labels)
        chk = report(np.repeat(w.y[mask], n_chunks), chunks[mask].reshape(-1, chunks.shape[-1]).argmax(1),
                     card.labels)
        return {"windows": int(mask.sum()), "accuracy": win["accuracy"], "macro_f1": win["macro_f1"],
                "per_class_f1": win["per_class_f1"], "confusion": win["confusion"],
                "chunk_accuracy": chk["accuracy"], "chunk_macro_f1": chk["macro_f1"]}

    everything = np.ones(len(w), bool)
    test = np.isin(w.subject, hapt.TEST_SUBJECTS)
    enc = model.encoder
    pretrain_only = sum(p.numel() for m in (enc.fc, enc.linear, enc.norm, enc.decoder) for p in m.parameters())
    result = {
        "model": "LIMU-BERT base_v1 + LIMU-GRU gru_v1 (published UCI weights)",
        "windows": len(w),
        "labels_equal_reference": bool(np.array_equal(w.y, ref_y) and np.array_equal(w.subject, ref_user)),
        "class_counts": w.class_counts(),
        "all": scores(everything),
        "test_subjects": {"subjects": list(hapt.TEST_SUBJECTS), **scores(test)},
        "params": int(sum(p.numel() for p in model.parameters())),
        "params_inference": int(sum(p.numel() for p in model.parameters()) - pretrain_only),
        "macs_per_window": torch_macs(model, torch.zeros(1, card.window, len(card.channels))),
        "encoder_macs_per_window": torch_macs(model.encoder, torch.zeros(1, card.window, len(card.channels))),
        "preprocess_s": round(prep_s, 2),
        "inference_s_2088_windows_1_thread": round(infer_s, 2),
        "card": {"rate": card.rate, "window": card.window, "hop": card.hop, "labels": card.labels},
        "torch": torch.__version__,
    }
    out = Path(args.out)
    write_json(out / "limubert.json", result)
    a, t = result["all"], result["test_subjects"]
    md = ["# LIMU-BERT (published UCI weights) on its 2088 UCI windows rebuilt from HAPT raw", "",
          f"Labels equal the published `uci_label_20_120.npy`: **{result['labels_equal_reference']}**. "
          "The GRU head was trained on part of these windows: these are not held-out figures.", "",
          "| set | windows | accuracy | macro-F1 | 1 s chunk accuracy | chunk macro-F1 |",
          "|---|---:|---:|---:|---:|---:|",
          f"| all | {a['windows']} | {a['accuracy']:.4f} | {a['macro_f1']:.4f} | {a['chunk_accuracy']:.4f} | {a['chunk_macro_f1']:.4f} |",
          f"| HAPT test subjects | {t['windows']} | {t['accuracy']:.4f} | {t['macro_f1']:.4f} | {t['chunk_accuracy']:.4f} | {t['chunk_macro_f1']:.4f} |",
          "", "| params (all) | params (inference) | MACs / window | encoder MACs |", "|---:|---:|---:|---:|",
          f"| {result['params']:,} | {result['params_inference']:,} | {result['macs_per_window']:,} | "
          f"{result['encoder_macs_per_window']:,} |", ""]
    write_text(out / "limubert.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
