"""The README's side-by-side table: rows in, markdown and target checks out, README rewritten
between markers. Plain functions of plain dicts, so they are tested without training anything.

A row: {name, kind (teacher|student|baseline), format, macro_f1, accuracy, params, macs,
flash_bytes, arena_bytes, tflm_unsupported_ops, latency_ms, m4f_ms, m4_instructions,
m55_instructions, wrist_f1, wrist_input, origin}; figures may be None where a model has none.
The microcontroller column shows instructions MEASURED on emulated Cortex-M4 / M55 where the
model was run there, else the MAC-constant Cortex-M4F estimate, marked "est.".
"""

from __future__ import annotations

import os
from pathlib import Path

from edgehar.atomic import write_text

TARGET_F1 = 0.94


def _n(v, fmt="{:,}") -> str:
    return "-" if v is None else fmt.format(v)


def arena_cell(r: dict) -> str:
    if r.get("arena_bytes"):
        return f"{r['arena_bytes']:,}"
    if r.get("tflm_unsupported_ops"):
        return f"n/a (TFLM lacks {', '.join(r['tflm_unsupported_ops'])})"
    return "n/a"


def mcu_cell(r: dict) -> str:
    if r.get("m4_instructions"):
        return f"{r['m4_instructions']:,} / {_n(r.get('m55_instructions'))}"
    return "-" if r.get("m4f_ms") is None else f"~{r['m4f_ms']:.1f} ms est."


def wrist_cell(r: dict) -> str:
    if r.get("wrist_f1") is None:
        return r.get("wrist_input") or "-"
    cell = f"{r['wrist_f1']:.3f}"
    return cell + " (gyro absent)" if r.get("wrist_input") == "acc, gyro absent" else cell


def table(rows: list[dict]) -> list[str]:
    lines = ["| model | format | macro-F1 | accuracy | params | MACs | flash (bytes) | TFLM arena (bytes) | "
             "host ms (median) | Cortex-M4 / M55 instructions (measured; else M4F ms est.) | wrist macro-F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['format']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | "
                     f"{_n(r.get('params'))} | {_n(r.get('macs'))} | {_n(r.get('flash_bytes'))} | "
                     f"{arena_cell(r)} | {_n(r.get('latency_ms'), '{:.3f}')} | {mcu_cell(r)} | "
                     f"{wrist_cell(r)} |")
    return lines


def check_targets(rows: list[dict], best: dict, small: dict, others: list[dict],
                  reference_macs: int | None = None) -> list[dict]:
    """The kit's targets for the int8 small student `small` against the best teacher `best`
    and every fp32 baseline among `rows`; `others` are the other int8 students, named when one
    of them covers a baseline the small one misses. `reference_macs`: HAR-FM's published size,
    counted, when no such teacher was trained in this run."""
    out = [{"target": f"int8 small student macro-F1 >= {TARGET_F1}", "measured": round(small["macro_f1"], 4),
            "met": small["macro_f1"] >= TARGET_F1},
           {"target": f"within 1 point of the best teacher ({best['name']}, {best['macro_f1']:.4f})",
            "measured": round(100 * (best["macro_f1"] - small["macro_f1"]), 2),
            "unit": "points (teacher minus student)", "met": best["macro_f1"] - small["macro_f1"] <= 0.01},
           {"target": "<= 2% of the best teacher's MACs",
            "measured": round(100 * small["macs"] / best["macs"], 2) if best.get("macs") else None,
            "unit": "% of teacher MACs", "met": bool(best.get("macs")) and small["macs"] <= 0.02 * best["macs"]}]
    if reference_macs:
        out.append({"target": "(reference only) <= 2% of the MACs of HAR-FM at its published size "
                              f"({reference_macs:,} MACs; counted, not trained in this run)",
                    "measured": round(100 * small["macs"] / reference_macs, 2), "unit": "% of its MACs",
                    "met": small["macs"] <= 0.02 * reference_macs})
    for r in rows:
        if r["kind"] != "baseline" or r["format"] != "fp32 ONNX":
            continue
        met = small["macro_f1"] >= r["macro_f1"] and small["macs"] <= r["macs"]
        measured = f"{small['macro_f1']:.4f} at {small['macs']:,} MACs"
        if not met:
            alt = [v for v in others if v["macro_f1"] >= r["macro_f1"] and v["macs"] <= r["macs"]]
            if alt:
                measured += f"; the int8 {alt[0]['name']} meets it: {alt[0]['macro_f1']:.4f} at {alt[0]['macs']:,} MACs"
        out.append({"target": f"int8 small student at or above {r['name']} (fp32 macro-F1 {r['macro_f1']:.4f}, "
                              f"{r['macs']:,} MACs) at equal or fewer MACs", "measured": measured, "met": met})
    return out


def target_lines(targets: list[dict]) -> list[str]:
    return [f"- {'met' if t['met'] else '**missed**'}: {t['target']}: measured {t['measured']}"
            + (f" {t['unit']}" if t.get("unit") else "") for t in targets]


def update_readme(readme: str | os.PathLike, md: str, images: list[tuple[str, Path]],
                  section: str = "benchmark", title: str = "# Results") -> None:
    """Replace (or append) the README section between `<!-- {section}:start -->` and
    `<!-- {section}:end -->` with `title`, `md` and `images` ((alt text, path) pairs, linked
    relative to the README)."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    readme = Path(readme)
    links = "".join(f"\n![{alt}]({os.path.relpath(p, readme.parent)})\n" for alt, p in images)
    body = f"{start}\n{title}\n\n{md}{links}{end}\n"
    text = readme.read_text() if readme.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + body + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    write_text(readme, text)
