"""The Pareto front of a tune and its report: pareto.json, pareto.md, pareto.png.

A trial is on the front when no other trial has validation macro-F1 at least as high and
instructions (first target), arena and flash each at most as high, one of them strictly
better. The budget filters the front; the chosen model is the trial within budget with the
best validation macro-F1 (ties: fewer instructions).
"""

from __future__ import annotations

import io
from pathlib import Path

from edgehar.atomic import write_bytes, write_json, write_text
from edgehar.tune.budget import Budget


def dominates(a: dict, b: dict, primary: str) -> bool:
    ka = (-a["validation_macro_f1"], a["instructions"][primary], a["arena"], a["flash"])
    kb = (-b["validation_macro_f1"], b["instructions"][primary], b["arena"], b["flash"])
    return all(x <= y for x, y in zip(ka, kb)) and ka != kb


def front(rows: list[dict], primary: str) -> list[dict]:
    """The non-dominated rows, cheapest first."""
    keep = [r for r in rows if not any(dominates(o, r, primary) for o in rows)]
    return sorted(keep, key=lambda r: r["instructions"][primary])


def within(row: dict, budget: Budget) -> bool:
    return budget.within(max(row["instructions"].values()), row["arena"], row["flash"])


def choose(rows: list[dict], budget: Budget, primary: str) -> dict | None:
    ok = [r for r in rows if within(r, budget)]
    return max(ok, key=lambda r: (r["validation_macro_f1"], -r["instructions"][primary]), default=None)


def report(rows: list[dict], budget: Budget, targets: list[str], smallest: dict, settings: dict) -> dict:
    primary = targets[0]
    on_front = front(rows, primary)
    chosen = choose(rows, budget, primary)
    return {"settings": settings, "targets": targets, "primary_target": primary,
            "budget": budget.to_dict(), "smallest_configuration": smallest,
            "trials": rows, "front": [r["trial"] for r in on_front],
            "front_within_budget": [r["trial"] for r in on_front if within(r, budget)],
            "chosen": None if chosen is None else chosen["trial"]}


def markdown(rep: dict) -> str:
    primary, targets = rep["primary_target"], rep["targets"]
    rows = {r["trial"]: r for r in rep["trials"]}
    b = Budget(**rep["budget"])
    lines = [f"# edgehar tune: validation macro-F1 against MEASURED {', '.join(targets)} instructions", "",
             f"Budget: {b.describe()} (instructions on every target; flash = the int8 model file). "
             f"{len(rows)} trials; {len(rep['front'])} on the Pareto front "
             f"(F1 up; {primary} instructions, arena, flash down), {len(rep['front_within_budget'])} of "
             "them within budget. Instructions: one steady-state inference in TFLM with CMSIS-NN "
             "kernels under qemu-system-arm (counted, not estimated).", "",
             "Smallest configuration of the space (measured before any training): "
             + ", ".join(f"{c} {n:,}" for c, n in rep["smallest_configuration"]["instructions"].items())
             + f" instructions, arena {rep['smallest_configuration']['arena']:,} B, "
               f"flash {rep['smallest_configuration']['flash']:,} B.", "",
             "| trial | val macro-F1 | " + " | ".join(f"{t} instr" for t in targets)
             + " | arena B | flash B | head | encoder (kernel; widths; strides) | d | tokens | within budget |",
             "|---:|---:|" + "---:|" * len(targets) + "---:|---:|---|---|---:|---:|---|"]
    for n in rep["front"]:
        r = rows[n]
        c = r["config"]
        mark = " **chosen**" if n == rep["chosen"] else ""
        lines.append(f"| {n}{mark} | {r['validation_macro_f1']:.4f} | "
                     + " | ".join(f"{r['instructions'][t]:,}" for t in targets)
                     + f" | {r['arena']:,} | {r['flash']:,} | {r['head']} | {c['kernel']}; "
                       f"{'/'.join(map(str, c['widths']))}; {'/'.join(map(str, c['strides']))} | {c['d']} | "
                       f"{r['tokens']} | {'yes' if within(r, b) else 'no'} |")
    if rep["chosen"] is None:
        lines += ["", "No trial is within the budget: nothing was exported."]
    else:
        lines += ["", f"Chosen (best validation macro-F1 within budget): trial {rep['chosen']}, exported to "
                      "`chosen/`."]
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primary = rep["primary_target"]
    rows = rep["trials"]
    on_front = set(rep["front"])
    budget = rep["budget"]
    axes_spec = [(f"{primary} instructions / inference (measured)", lambda r: r["instructions"][primary],
                  budget["instructions"]),
                 ("TFLM arena (B)", lambda r: r["arena"], budget["arena"]),
                 ("flash: int8 model (B)", lambda r: r["flash"], budget["flash"])]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    for ax, (label, value, limit) in zip(axes, axes_spec):
        rest = [r for r in rows if r["trial"] not in on_front]
        ax.scatter([value(r) for r in rest], [r["validation_macro_f1"] for r in rest], s=14, c="0.7",
                   label="trial")
        fr = [r for r in rows if r["trial"] in on_front]
        ax.scatter([value(r) for r in fr], [r["validation_macro_f1"] for r in fr], s=22, c="C0",
                   label="Pareto front")
        chosen = [r for r in rows if r["trial"] == rep["chosen"]]
        if chosen:
            ax.scatter([value(chosen[0])], [chosen[0]["validation_macro_f1"]], marker="*", s=160, c="C3",
                       label="chosen")
        if limit:
            ax.axvline(limit, ls="--", c="C3", lw=1, label="budget")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation macro-F1")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def write_report(rep: dict, folder: Path) -> None:
    write_json(folder / "pareto.json", rep)
    write_text(folder / "pareto.md", markdown(rep))
    plot(rep, folder / "pareto.png")
