"""`edgehar models [--json]` and `edgehar models show NAME [--json]`: the shipped models.

Reads index.json only (no torch, no TensorFlow), so listing is instant; `show` of a teacher
reads its card from the checkpoint (torch).
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser(
        "models", help="the trained models shipped with edgehar (a zoo name works as any MODEL argument)",
        description="List the models shipped with edgehar: task, input, classes, cost (params, "
                    "MACs, int8 bytes, Cortex-M4 instructions measured on an emulated MCU) and "
                    "headline figures (test macro-F1, mean +- std over the training seeds; "
                    "Bangle.js, a watch no model trained on). Every command that takes a model "
                    "takes these names: `edgehar export wrist-small --int8`, `edgehar live "
                    "--model wrist-small ...`. The training data's licences: edgehar/zoo/NOTICE.")
    p.add_argument("--json", action="store_true", help="print the index entries as JSON")
    p.set_defaults(func=run_list)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    s = msub.add_parser("show", help="one model's card and index entry",
                        description="One shipped model: its index entry (files and sha256, recipe "
                                    "key, provenance, figures) and its model card.")
    s.add_argument("name", metavar="NAME", help="a model name (see `edgehar models`)")
    s.add_argument("--json", action="store_true", help="print {\"entry\": ..., \"card\": ...} as JSON")
    s.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    from edgehar import zoo

    models = zoo.index()["models"]
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print(f"the model zoo is empty ({zoo.zoo_dir()})")
        return 0
    print(format_table([models[n] for n in sorted(models)]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from edgehar import zoo

    e = zoo.entry(args.name)
    card = zoo.card(args.name).to_dict()
    if args.json:
        print(json.dumps({"entry": e, "card": card}, indent=2))
        return 0
    print(f"{e['name']}: {e.get('task', '')} {e.get('kind', '')}, input {input_text(e)}")
    print(f"  classes ({len(e.get('classes', []))}): {', '.join(e.get('classes', []))}")
    print(f"  recipe key {e.get('recipe_key', '-')}")
    for rel, digest in e["sha256"].items():
        print(f"  {rel}  sha256 {digest}")
    for section in ("provenance", "figures"):
        print(f"  {section}:")
        for key, value in flatten(e.get(section) or {}):
            print(f"    {key}: {shown(value)}")
    print("  card:")
    for key in ("kind", "labels", "rate", "window", "hop", "channels", "units", "streams", "tasks"):
        print(f"    {key}: {shown(card.get(key))}")
    print(f"    arch: {card.get('arch', {}).get('name', '-')}")
    return 0


# -- formatting ---------------------------------------------------------------------------------
COLUMNS = ("name", "task", "input", "classes", "params", "MACs", "int8 B", "M4 instr",
           "test macro-F1 (seeds)", "Bangle.js")


def format_table(entries: list[dict]) -> str:
    """A fixed-width table of index entries, one row per model ('-' where a figure is absent)."""
    rows = [COLUMNS] + [row(e) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    numeric = {3, 4, 5, 6, 7}
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def row(e: dict) -> tuple[str, ...]:
    f = e.get("figures") or {}
    return (e["name"], f"{e.get('task', '')} {e.get('kind', '')}".strip(), input_text(e),
            str(len(e.get("classes", []))), count(f.get("params")), count(f.get("macs")),
            count(f.get("int8_bytes")), count((f.get("instructions") or {}).get("cortex-m4")),
            seed_spread(f.get("test_seeds")), score(f.get("bangle")))


def input_text(e: dict) -> str:
    """"20 Hz x 100 acc": rate, window samples and the sensor streams of the channels."""
    i = e.get("input") or {}
    streams = []
    for c in i.get("channels", []):
        s = str(c).split("_")[0]
        if s not in streams:
            streams.append(s)
    return f"{float(i.get('rate', 0)):g} Hz x {i.get('window', '?')} {'+'.join(streams)}"


def count(v) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "-"


def score(v) -> str:
    """A macro-F1 figure: a number, or a dict holding `macro_f1`."""
    if isinstance(v, dict):
        v = v.get("macro_f1")
    return f"{v:.3f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def seed_spread(v) -> str:
    """"0.845 +- 0.004 (3)": the macro-F1 mean and std over seeds, from a {"mean", "std", "n"}
    dict found under `macro_f1` (directly, or of the pooled figure when per data set)."""
    found = _mean_std(v)
    if found is None:
        return "-"
    mean, std, n = found
    return f"{mean:.3f} +- {std:.3f}" + (f" ({n})" if n else "")


def _mean_std(v):
    if not isinstance(v, dict):
        return None
    if isinstance(v.get("mean"), (int, float)) and isinstance(v.get("std"), (int, float)):
        return v["mean"], v["std"], v.get("n") or len(v.get("values", []) or [])
    if "macro_f1" in v:
        return _mean_std(v["macro_f1"])
    for key in ("pool", "mean", "all"):
        if key in v:
            return _mean_std(v[key])
    return None


def flatten(d: dict, prefix: str = ""):
    """(dotted key, value) pairs of nested dicts; lists and numbers stay whole."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from flatten(v, key + ".")
        else:
            yield key, v


def shown(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, list):
        return ", ".join(shown(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)
