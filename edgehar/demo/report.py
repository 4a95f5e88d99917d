"""The demo's report: a JSON summary of what every step made and measured (demo.json), and the
text a user reads. Made from the steps' results after the flow has run."""

from __future__ import annotations

from pathlib import Path

from edgehar.demo.config import ACC, DemoConfig


def make_summary(cfg: DemoConfig, done: dict, times: dict) -> dict:
    export, profile, live = done["export"], done["profile"], done["live"]
    folder = export["folder"]
    summary = {"flow": cfg.flow, "mode": cfg.mode if cfg.flow == "train" else "deploy", "out": str(cfg.out),
               "seconds": times}
    if cfg.flow == "deploy":
        entry, card = export["entry"], export["card"]
        summary["model"] = {
            "name": cfg.model, "zoo": entry is not None, "source": str(export["source"]),
            "sha256": export["sha256"], "task": entry.get("task") if entry else None,
            "input": {"rate": card.rate, "window": card.window, "channels": list(card.channels)},
            "classes": list(card.labels), "recipe_key": entry.get("recipe_key") if entry else None,
            "figures": entry.get("figures") if entry else None}
    else:
        data, teacher, student = done["data"], done["teacher"], done["student"]
        wrist = data.source == "wrist"
        summary.update({
            "data": {"source": data.source, "description": data.description, "channels": list(ACC),
                     "why_acc_only": "the wrist recordings streamed in the live step have no gyroscope",
                     "train_windows": teacher["train_windows"] if wrist else len(data.train),
                     "test_windows": teacher["test_windows"] if wrist else int((data.test.y >= 0).sum()),
                     "test_subjects": data.test_subjects},
            "teacher": {"path": str(teacher["path"]), "family": "corpus_fm" if wrist else "harfm",
                        "config": teacher["config"], "params": teacher["params"], "macro_f1": teacher["macro_f1"],
                        "accuracy": teacher["accuracy"]},
            "student": {"path": str(student["path"]), "size": student["size"], "params": student["params"],
                        "macs": student["macs"], "macro_f1": student["macro_f1"], "accuracy": student["accuracy"]},
        })
        if wrist:  # every recipe choice is made on the validation split; test is scored once, here
            summary["data"].update(corpus=str(data.extra["corpus"]), labelled_train_windows=teacher["labelled_windows"],
                                   classes=teacher["labels"])
            summary["teacher"].update(validation=teacher["validation"], test_per_dataset=teacher["per_dataset"])
            summary["student"].update(distill_steps=student["distill_steps"], test_per_dataset=student["per_dataset"])
    summary["export"] = {"folder": str(folder), "files": export["files"], "bytes": export["bytes"],
                         "int8_tflite": str(folder / "model_int8.tflite"), "c_header": str(folder / "model_int8.h")}
    if cfg.flow == "deploy":
        summary["export"]["sha256"] = export["sha256"]
    else:
        summary["export"].update(macro_f1=export["macro_f1"], parity_ok=export["parity_ok"],
                                 parity_failed=export["parity_failed"], parity_bounds=export["parity_bounds"],
                                 int8_onnx=str(folder / "model_int8.onnx"))
    summary["profile"] = {k: {**v, "path": str(v["path"])} for k, v in profile.items()}
    summary["live"] = {**live, "log": str(live["log"])}
    return summary


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def _kib(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def _profile_row(tfl: dict) -> str:
    text = (f"{tfl['macs']:,} MACs, flash {_kib(tfl['file_bytes'])}, arena {_kib(tfl['arena_bytes'])}, "
            f"host {_ms(tfl['latency_ms'])}")
    measured = tfl.get("instructions") or {}
    if measured:
        return text + ", " + ", ".join(f"{cpu} {n:,} instructions" for cpu, n in measured.items()) + \
            " (measured for the card: TFLite-Micro + CMSIS-NN under QEMU)"
    if tfl["cortex_m4f_ms"] is not None:
        return text + f", Cortex-M4F ~{tfl['cortex_m4f_ms']:.2f} ms (estimate)"
    return text


def live_lines(lv: dict) -> list[str]:
    """The live figures as the README states them: `live agreement A over N windows`, then each
    class's agreement, to the stored 4 decimals; in the deploy flow, whether they equal the card's."""
    fig = lv["figures"]
    per_class = ", ".join(f"{c} {_f(v, 4)}" for c, v in fig["per_class"].items())
    lines = [f"live agreement {_f(fig['agreement'], 4)} over {fig['n']} windows of {fig['recording']}"
             + (f": {per_class}" if per_class else "")]
    if "equals_card" in lv:
        card = lv["card_figures"]
        if card is None:
            lines.append("the zoo card holds no live figures to compare with")
        elif lv["equals_card"]:
            lines.append("equal to the card's live figures (agreement, every class, windows), to the digit")
        else:
            theirs = ", ".join(f"{c} {_f(v, 4)}" for c, v in (card.get("per_class") or {}).items())
            lines.append(f"DIFFERENT from the card's live figures: agreement {_f(card.get('agreement'), 4)} over "
                         f"{card.get('n')} windows: {theirs}")
    return lines


def format_summary(s: dict) -> str:
    ex, pr, lv = s["export"], s["profile"], s["live"]
    tfl = pr["int8_tflite"]
    rows = []
    if s["flow"] == "deploy":
        m = s["model"]
        rows += [("int8 TFLite", ex["int8_tflite"], f"{ex['bytes']['int8_tflite']:,} bytes, sha256 "
                  f"{ex['sha256'][:16]}... ({'the zoo' + chr(39) + 's, checked' if m['zoo'] else 'your export'})"),
                 ("C header", ex["c_header"], "model_int8.h/.cc for TFLite-Micro")]
    else:
        t, st = s["teacher"], s["student"]
        onx = pr.get("int8_onnx")
        rows += [
            ("teacher", t["path"], (f"HAR-FM ({t['config']})" if t["family"] == "harfm" else t["config"])
             + f", {t['params']:,} params, test macro-F1 {_f(t['macro_f1'])}"),
            ("student", st["path"], f"{st['size']}, {st['params']:,} params, {st['macs']:,} MACs/window, "
                                    f"test macro-F1 {_f(st['macro_f1'])}"),
            ("int8 TFLite", ex["int8_tflite"], f"{ex['bytes'].get('int8_tflite', tfl['file_bytes']):,} bytes, "
                                               f"held-out macro-F1 {_f(ex['macro_f1'].get('int8_tflite'))}"),
        ]
        if onx:
            rows.append(("int8 ONNX", ex["int8_onnx"], f"{onx['file_bytes']:,} bytes, held-out macro-F1 "
                                                       f"{_f(ex['macro_f1'].get('int8_onnx'))}"))
        rows.append(("C header", ex["c_header"], "model_int8.h/.cc for TFLite-Micro; parity bounds "
                     f"{ex['parity_bounds'] - len(ex['parity_failed'])}/{ex['parity_bounds']} ok"
                     + (f" (missed: {', '.join(ex['parity_failed'])})" if ex["parity_failed"] else "")))
    rows.append(("profile", tfl["path"], _profile_row(tfl)))
    if pr.get("int8_onnx"):
        rows.append(("profile", pr["int8_onnx"]["path"], f"host {_ms(pr['int8_onnx']['latency_ms'])} "
                                                         "(onnxruntime, 1 thread)"))
    rows.append(("live log", lv["log"], f"{lv['windows']} of {lv['expected_windows']} windows of the "
                                        f"{lv['replayed_seconds']:g} s replay in {lv['seconds']:g} s, "
                                        f"{lv['garbled']} garbled lines, delay median {lv['delay_ms']['median']} ms"))
    width = max(len(r[1]) for r in rows)
    if s["flow"] == "deploy":
        m = s["model"]
        fig = m["figures"] or {}
        head = [f"edgehar demo (deploy {m['name']}, no training) finished in {s['seconds']['total']:g} s",
                f"model: {m['name']} ({m['task'] or 'an export folder'}): {m['input']['rate']:g} Hz x "
                f"{m['input']['window']} {', '.join(m['input']['channels'])}, {len(m['classes'])} classes"
                + (f", made by {m['recipe_key'][:12]}..." if m["recipe_key"] else "")]
        test = {k: v.get("macro_f1") if isinstance(v, dict) else v for k, v in (fig.get("test") or {}).items()}
        test = {k: v for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if test:
            head.append("card test macro-F1: " + ", ".join(f"{k} {_f(v)}" for k, v in test.items()))
    else:
        d = s["data"]
        tests = d["test_subjects"]
        tests = ("; ".join(f"{k} {', '.join(map(str, v))}" for k, v in tests.items()) if isinstance(tests, dict)
                 else ", ".join(map(str, tests)))
        head = [f"edgehar demo ({s['mode']}, trained here) finished in {s['seconds']['total']:g} s",
                f"data: {d['description']}",
                f"model input: {', '.join(d['channels'])} only ({d['why_acc_only']}); "
                f"{d['train_windows']} training windows, {d['test_windows']} labelled test windows "
                f"(test subjects: {tests})"]
        if d["source"] == "wrist":
            val = s["teacher"].get("validation", {}).get("generic") or {}
            head.append(f"teacher validation (corpus validation subjects, generic stem): macro-F1 "
                        f"{_f(val.get('macro_f1'))}, accuracy {_f(val.get('accuracy'))}")
    lines = head + [""] + [f"  {name:<12} {path:<{width}}  {what}" for name, path, what in rows] + [""]
    lines += ["seconds per step: " + ", ".join(f"{k} {v:g}" for k, v in s["seconds"].items()),
              f"summary: {Path(s['out']) / 'demo.json'}",
              f"live predictions seen (smoothed): "
              f"{', '.join(f'{k} x{v}' for k, v in lv['classes_seen'].items()) or 'none'}",
              f"replayed: {lv['replay']}"]
    lines += live_lines(lv)
    if s["flow"] == "train" and s["data"]["source"] == "hapt":
        lines.append("note: the model learnt from HAPT's waist phone and the replay is a wrist watch, so the "
                     "live agreement measures waist -> wrist transfer (gravity points elsewhere on a wrist)")
    return "\n".join(lines)
