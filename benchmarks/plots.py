"""The benchmark's two figures (matplotlib, Agg backend, PNG written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"teacher": "tab:blue", "student": "tab:red", "baseline": "tab:gray"}


def _save(fig, path: Path) -> None:
    from edgehar.atomic import staged_file

    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")


def f1_vs_macs(rows: list[dict], path: Path, title: str) -> None:
    """Macro-F1 against MACs per window (log x), one point per model row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.2))
    for kind, colour in COLOURS.items():
        pts = [r for r in rows if r["kind"] == kind and r.get("macs") and r.get("macro_f1") is not None]
        if not pts:
            continue
        ax.scatter([r["macs"] for r in pts], [r["macro_f1"] for r in pts], c=colour, label=kind, s=36,
                   marker="o" if kind != "student" else "D", zorder=3)
        seen = set()
        for r in pts:  # one label per model (its formats share the MACs)
            if r["name"] in seen:
                continue
            seen.add(r["name"])
            ax.annotate(r["name"], (r["macs"], r["macro_f1"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("MACs per window (log scale)")
    ax.set_ylabel("macro-F1 (HAPT official test subjects)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a point
    _save(fig, path)
    plt.close(fig)


def confusion(matrix, labels: list[str], path: Path, title: str) -> None:
    """A confusion matrix (rows: true class; an extra last column counts any other class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    cols = list(labels) + (["(other)"] if m.shape[1] > len(labels) else [])
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2, 0.9 * len(labels) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    _save(fig, path)
    plt.close(fig)
