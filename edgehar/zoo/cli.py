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
                    "headline figures (test macro-F1, and on Bangle.js, a watch no model trained on: mean "
                    "+- std over the training seeds). Every command that takes a model "
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
    print("test macro-F1: wrist models on the pooled test subjects of their training sets, waist models "
          "on HAPT's; mean +- std over the training seeds (how many). Every figure: edgehar models show NAME")
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
           "test macro-F1 (seeds)", "Bangle.js (seeds)")


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
    seeds = f.get("test_seeds") or {}
    return (e["name"], f"{e.get('task', '')} {e.get('kind', '')}".strip(), input_text(e),
            str(len(e.get("classes", []))), count(f.get("params")), count(f.get("macs")),
            count(f.get("int8_bytes")), count((f.get("instructions") or {}).get("cortex-m4")),
            spread(seeds, headline_key(seeds)), spread(seeds, "bangle"))


def headline_key(seeds: dict) -> str | None:
    """The test figure a row shows: the wrist sets' pool mean, else the one data set's (HAPT)."""
    if "pool_mean" in seeds:
        return "pool_mean"
    sets = [k for k, v in seeds.items() if isinstance(v, dict) and "mean" in v and not k.startswith("bangle")]
    return sets[0] if len(sets) == 1 else None


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


def spread(seeds: dict, key: str | None) -> str:
    """"0.845 +- 0.004 (3)": a figure's mean and std over the training seeds, and how many."""
    v = seeds.get(key) if key else None
    if not isinstance(v, dict) or not all(isinstance(v.get(k), (int, float)) for k in ("mean", "std")):
        return "-"
    n = len(v.get("runs") or [])
    return f"{v['mean']:.3f} +- {v['std']:.3f}" + (f" ({n})" if n else "")


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
