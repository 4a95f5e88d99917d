"""`edgehar data summary|check|download|corpus`."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import nonneg_int, positive_float, positive_int
from edgehar.data.registry import data_arg, names


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect and fetch recordings",
                       description="Inspect real recordings and fetch public data sets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    s = dsub.add_parser("summary", help="subjects, recordings, hours, classes, windows per class",
                        description="Summarise a data set: subjects, recordings, hours, classes "
                                    "and windows per class at the default 2.56 s window, 50%% hop.")
    s.add_argument("dataset", type=data_arg, metavar="DATA",
                   help=f"a data set ({', '.join(names())}; dsads:UNIT for one unit) or a folder "
                        "of your own CSV recordings with an edgehar.json manifest")
    s.add_argument("--root", help="its folder (default: $EDGEHAR_DATA/<dataset folder>)")
    s.add_argument("--json", action="store_true", help="print JSON for scripts")
    s.set_defaults(func=run_summary)

    c = dsub.add_parser("check", help="read a folder of your own recordings and report every problem",
                        description="Read a folder of CSV recordings and its edgehar.json manifest "
                                    "(README: Your own data); print per file its rows, rate, channels "
                                    "and labels, then every problem with file and line. Exit status "
                                    "2 when there is any problem. Each accelerometer is checked "
                                    "against its declared units from the signal (gravity reads 1 g "
                                    "at rest), and for gravity: a warning says what to write, and "
                                    "does not change the exit status.")
    c.add_argument("folder", help="folder holding edgehar.json and the CSV files")
    c.add_argument("--model", metavar="MODEL",
                   help="also compare the direction of gravity with this model's card (a gravity-"
                        "vector stream, e.g. Bangle.js's, points against what it was trained on): "
                        "a model file/folder or a zoo name (edgehar models)")
    c.add_argument("--json", action="store_true", help="print JSON for scripts")
    c.set_defaults(func=run_check)

    co = dsub.add_parser("corpus", help="pooled training corpus of many data sets",
                         description="Pooled training corpus (memory-mapped shards).")
    cosub = co.add_subparsers(dest="corpus_command", metavar="ACTION")
    cosub.required = True
    b = cosub.add_parser(
        "build", help="resample, convert to g, window and shard several data sets",
        description="Resample every recording of the listed data sets to --rate, convert "
                    "acceleration to g, cut --window-sample windows and write them to "
                    "memory-mapped .npy shards with per-window provenance (data set, subject, "
                    "placement, device, channels present, canonical and original label), a "
                    "subject-disjoint train/validation/test split per data set (HAPT: its official "
                    "test subjects) and corpus.json with content hashes. Bangle.js is refused: it "
                    "is the unseen-device test.")
    b.add_argument("--data", required=True, type=_data_list, metavar="LIST",
                   help="comma-separated data set names and/or own-data folders, e.g. "
                        "hapt,wisdm_watch,dsads,geotec_watch,axivity")
    b.add_argument("--rate", required=True, type=positive_float, help="corpus rate in Hz")
    b.add_argument("--window", required=True, type=positive_int, help="window length in samples")
    b.add_argument("--hop", type=positive_int, help="window hop in samples (default: half a window)")
    b.add_argument("--shard-windows", type=positive_int, default=16384, help="windows per shard (default 16384)")
    b.add_argument("--seed", type=nonneg_int, default=0, help="seed of the subject splits (default 0)")
    b.add_argument("--root", help="folder holding the data set folders (default: $EDGEHAR_DATA)")
    b.add_argument("--out", required=True, help="corpus folder (new or empty)")
    b.add_argument("--json", action="store_true", help="print the manifest's figures as JSON")
    b.set_defaults(func=run_corpus_build)

    d = dsub.add_parser("download", help="fetch, verify and cache a public data set",
                        description="Download the public UCI HAPT archive, verify its checksum and "
                                    "cache it under the user cache folder; prints the folder.")
    d.add_argument("dataset", choices=["hapt"], help="data set name")
    d.add_argument("--url", type=_url, help="archive URL (default: the UCI repository, or $EDGEHAR_HAPT_URL)")
    d.add_argument("--sha256", help="expected SHA-256 of the archive")
    d.add_argument("--dest", help="cache folder (default: the user cache folder)")
    d.set_defaults(func=run_download)


def _url(text: str) -> str:
    from edgehar.data.download import check_url
    from edgehar.errors import UserError

    try:
        return check_url(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def run_summary(args: argparse.Namespace) -> int:
    from edgehar.data.datasets import summary

    info = summary(args.dataset, args.root)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['dataset']}: {info['root']}")
    print(f"  subjects    {info['subjects']}")
    print(f"  recordings  {info['recordings']}")
    print(f"  hours       {info['hours']:.2f}")
    print(f"  rate        {', '.join(f'{r:g}' for r in info['rate_hz'])} Hz")
    print(f"  channels    {', '.join(f'{c} [{u}]' for c, u in zip(info['channels'], info['units']))}")
    print(f"  placements  {', '.join(info['placements'])}")
    print(f"  devices     {', '.join(info['devices'])}")
    if info["classes"]:
        win = info["window"]
        print(f"  {'class':<22}{'hours':>8}{'windows':>10}   ({win['samples']} samples, hop {win['hop']})")
        for name, hours in info["classes"].items():
            canon = info["canonical"].get(name, name)
            print(f"  {name:<22}{hours:>8.3f}{info['windows_per_class'][name]:>10}"
                  + (f"   -> {canon}" if canon != name else ""))
        print(f"  {'(unlabelled)':<22}{'':>8}{info['unlabelled_windows']:>10}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    import sys

    from edgehar.data.owndata import check_folder
    from edgehar.data.plausibility import check_stream, warning_lines

    card = None
    if args.model:
        from edgehar import zoo
        from edgehar.card_io import read_card
        card = read_card(zoo.resolve(args.model, "model"))

    def inspect(rec):
        return check_stream(rec.data, rec.channels, rec.units, rec.rate, card=card, fix="manifest")

    info = check_folder(args.folder, inspect=inspect)
    # warnings: the data is valid input, but not what the manifest says it is
    info["warnings"] = [line for f in info["files"] for line in warning_lines(f.get("check", {}), f["file"])]
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{info['folder']}: {len(info['files'])} files")
        for f in info["files"]:
            if not f["ok"]:
                print(f"  {f['file']}: unreadable (see below)")
                continue
            labels = ", ".join(f"{k} {v}" for k, v in f["labels"].items()) or "none"
            print(f"  {f['file']}: {f['rows']} rows, {f['rate_hz']:g} Hz"
                  f"{' (resampled on its times)' if f['resampled'] else ''}, "
                  f"{_channels(f)}; "
                  f"subject {f['subject']}; labels {labels}; unlabelled {f['unlabelled']}")
    for line in info["warnings"]:
        print(f"edgehar: warning: {line}", file=sys.stderr)
    for problem in info["problems"]:
        print(f"edgehar: error: {problem}", file=sys.stderr)
    return 2 if info["problems"] else 0


def _data_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("name at least one data set")
    return [data_arg(t) for t in items]


def _claim_corpus_out(args: argparse.Namespace) -> None:
    """The corpus folder must be new or empty, and hold none of the data it pools: checked
    before any data is read (a corpus is never replaced; build it into a new folder)."""
    import os
    from pathlib import Path

    from edgehar.data.registry import is_folder_arg
    from edgehar.errors import UserError
    from edgehar.outputs import claim_folder

    if (Path(args.out) / "corpus.json").is_file():
        raise UserError(args.out, "holds a corpus already (corpus build never replaces one): choose a new "
                                  "or empty folder")
    claim_folder(args.out, "data corpus build", replaces=True, legacy=lambda folder: (),
                 inputs=[args.root or os.environ.get("EDGEHAR_DATA"), *(d for d in args.data if is_folder_arg(d))])


def run_corpus_build(args: argparse.Namespace) -> int:
    import sys

    from edgehar.data.corpus import build_corpus
    from edgehar.errors import UserError

    if not args.rate > 0 or args.window < 2 or (args.hop is not None and args.hop < 1) \
            or args.shard_windows < 1:
        raise UserError("--rate/--window/--hop/--shard-windows", "must be positive (window >= 2)")
    _claim_corpus_out(args)
    m = build_corpus(args.data, args.rate, args.window, args.out, args.hop, args.shard_windows,
                     seed=args.seed, root=args.root, log=None if args.json else lambda s: print(s, file=sys.stderr))
    figures = {k: m[k] for k in ("windows", "bytes", "build_seconds", "channels", "counts", "splits")}
    if args.json:
        print(json.dumps({"out": args.out, **figures}, indent=2))
    else:
        print(f"{args.out}: {m['windows']} windows, {m['bytes'] / 1e6:.1f} MB in {len(m['shards'])} "
              f"shards, {m['build_seconds']} s; channels {', '.join(m['channels'])}")
        for name, c in m["counts"].items():
            print(f"  {name:<16} {c['windows']:>8} windows  " +
                  ", ".join(f"{s} {n}" for s, n in c["per_split"].items()))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from edgehar.data.download import download_hapt

    kwargs = {k: v for k, v in (("url", args.url), ("sha256", args.sha256)) if v}
    print(download_hapt(dest=args.dest, **kwargs))
    return 0


def _channels(entry: dict) -> str:
    """`acc_x [g]` per channel, `acc_x [g] (column ax)` where the axis is not the column's name."""
    return ", ".join(f"{c} [{u}]" + (f" (column {k})" if k != c else "") for c, u, k in
                     zip(entry["channels"], entry["units"], entry.get("channel_columns", entry["channels"])))
